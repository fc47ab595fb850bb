//! Articles: drafts, publishing, revisions. Only published articles are ever public.

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::content::{ArticleStatus, ArticleTransition, Slug};
use clinic_domain::ids::ArticleId;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_patients::audit::Actor;
use clinic_store::schema::{article_conditions, article_revisions, article_tags, articles, conditions};
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;

use crate::render::markdown_to_html;
use crate::{corrupt, stale, ContentError};

/// A condition an article relates to, as shown with the article.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionRef {
    pub id: String,
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    pub id: ArticleId,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    pub body_html: String,
    pub author: String,
    pub status: ArticleStatus,
    pub tags: Vec<String>,
    pub conditions: Vec<ConditionRef>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

/// The editable content of an article, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleContent {
    pub slug: Slug,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    pub author: String,
    pub tags: Vec<String>,
    /// Slugs of related conditions.
    pub conditions: Vec<Slug>,
}

/// A validated partial edit; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArticleChanges {
    pub slug: Option<Slug>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub body_markdown: Option<String>,
    pub author: Option<String>,
    pub tags: Option<Vec<String>>,
    pub conditions: Option<Vec<Slug>>,
}

#[derive(Queryable, Insertable, AsChangeset, Clone)]
#[diesel(table_name = articles, treat_none_as_null = true)]
struct ArticleRow {
    id: String,
    slug: String,
    title: String,
    summary: String,
    body_markdown: String,
    body_html: String,
    author: String,
    status: String,
    search_text: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    published_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = article_revisions)]
struct RevisionRow {
    article_id: String,
    number: i64,
    slug: String,
    title: String,
    summary: String,
    body_markdown: String,
    tags: String,
    condition_ids: String,
    edited_by: Option<String>,
    edited_at: NaiveDateTime,
}

/// One saved state of an article's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub number: i64,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    pub tags: Vec<String>,
    /// Token that saved it; `None` for the seed and the CLI.
    pub edited_by: Option<String>,
    pub edited_at: DateTime<Utc>,
}

fn search_text(title: &str, summary: &str, body: &str) -> String {
    format!("{title}\n{summary}\n{body}").to_lowercase()
}

/// Condition slugs → ids; every unknown slug is a field error.
fn resolve_conditions(conn: &mut DbConnection, slugs: &[Slug]) -> Result<Vec<ConditionRef>, ContentError> {
    let names: Vec<&str> = slugs.iter().map(Slug::as_str).collect();
    let found: Vec<(String, String, String)> = conditions::table
        .filter(conditions::slug.eq_any(&names))
        .select((conditions::id, conditions::slug, conditions::name))
        .load(conn)?;
    let mut errors = ValidationErrors::new();
    let mut refs = Vec::new();
    for (i, slug) in slugs.iter().enumerate() {
        match found.iter().find(|(_, s, _)| s == slug.as_str()) {
            Some((id, slug, name)) => {
                if !refs.iter().any(|r: &ConditionRef| &r.id == id) {
                    refs.push(ConditionRef {
                        id: id.clone(),
                        slug: slug.clone(),
                        name: name.clone(),
                    })
                }
            }
            None => errors.push(FieldError::new(
                format!("conditions[{i}]"),
                "unknown_condition",
                format!("no condition with slug '{slug}'"),
            )),
        }
    }
    errors.finish()?;
    Ok(refs)
}

fn slug_taken(conn: &mut DbConnection, slug: &str, except: Option<&str>) -> Result<bool, ContentError> {
    let mut q = articles::table.filter(articles::slug.eq(slug)).into_boxed();
    if let Some(id) = except {
        q = q.filter(articles::id.ne(id));
    }
    Ok(q.count().get_result::<i64>(conn)? > 0)
}

fn slug_conflict(slug: &str) -> ContentError {
    ContentError::Conflict {
        code: "slug_taken",
        detail: format!("another article already uses the slug '{slug}'"),
    }
}

/// Replaces the tag and condition links of an article.
fn write_links(conn: &mut DbConnection, id: &str, tags: &[String], conds: &[ConditionRef]) -> Result<(), ContentError> {
    diesel::delete(article_tags::table.filter(article_tags::article_id.eq(id))).execute(conn)?;
    diesel::delete(article_conditions::table.filter(article_conditions::article_id.eq(id))).execute(conn)?;
    for tag in tags {
        diesel::insert_into(article_tags::table)
            .values((article_tags::article_id.eq(id), article_tags::tag.eq(tag)))
            .execute(conn)?;
    }
    for c in conds {
        diesel::insert_into(article_conditions::table)
            .values((
                article_conditions::article_id.eq(id),
                article_conditions::condition_id.eq(&c.id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn write_revision(
    conn: &mut DbConnection,
    row: &ArticleRow,
    tags: &[String],
    conds: &[ConditionRef],
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), ContentError> {
    let last: Option<i64> = article_revisions::table
        .filter(article_revisions::article_id.eq(&row.id))
        .select(diesel::dsl::max(article_revisions::number))
        .first(conn)?;
    diesel::insert_into(article_revisions::table)
        .values(RevisionRow {
            article_id: row.id.clone(),
            number: last.unwrap_or(0) + 1,
            slug: row.slug.clone(),
            title: row.title.clone(),
            summary: row.summary.clone(),
            body_markdown: row.body_markdown.clone(),
            tags: tags.join(" "),
            condition_ids: conds.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(" "),
            edited_by: actor.token_id.map(|t| t.to_string()),
            edited_at: time::to_db(now),
        })
        .execute(conn)?;
    Ok(())
}

/// Creates a draft and its first revision.
pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    content: ArticleContent,
    now: DateTime<Utc>,
) -> Result<Article, ContentError> {
    let id = ArticleId::new();
    dialect::write_transaction(conn, |conn| {
        if slug_taken(conn, content.slug.as_str(), None)? {
            return Err(slug_conflict(content.slug.as_str()));
        }
        let conds = resolve_conditions(conn, &content.conditions)?;
        let row = ArticleRow {
            id: id.to_string(),
            slug: content.slug.to_string(),
            body_html: markdown_to_html(&content.body_markdown),
            search_text: search_text(&content.title, &content.summary, &content.body_markdown),
            title: content.title,
            summary: content.summary,
            body_markdown: content.body_markdown,
            author: content.author,
            status: ArticleStatus::Draft.as_str().to_owned(),
            version: 1,
            created_at: time::to_db(now),
            updated_at: time::to_db(now),
            published_at: None,
        };
        diesel::insert_into(articles::table).values(&row).execute(conn)?;
        write_links(conn, &row.id, &content.tags, &conds)?;
        write_revision(conn, &row, &content.tags, &conds, actor, now)?;
        load(conn, id)
    })
}

fn load_row(conn: &mut DbConnection, id: ArticleId) -> Result<ArticleRow, ContentError> {
    articles::table
        .find(id.to_string())
        .first::<ArticleRow>(conn)
        .optional()?
        .ok_or(ContentError::NotFound("article"))
}

/// Attaches tags and conditions to rows, keeping their order.
fn hydrate(conn: &mut DbConnection, rows: Vec<ArticleRow>) -> Result<Vec<Article>, ContentError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let tags: Vec<(String, String)> = article_tags::table
        .filter(article_tags::article_id.eq_any(&ids))
        .select((article_tags::article_id, article_tags::tag))
        .order((article_tags::article_id, article_tags::tag))
        .load(conn)?;
    let conds: Vec<(String, String, String, String)> = article_conditions::table
        .inner_join(conditions::table)
        .filter(article_conditions::article_id.eq_any(&ids))
        .select((
            article_conditions::article_id,
            conditions::id,
            conditions::slug,
            conditions::name,
        ))
        .order((article_conditions::article_id, conditions::name))
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            Ok(Article {
                id: r.id.parse().map_err(|_| corrupt("article id"))?,
                status: r.status.parse().map_err(|_| corrupt("article status"))?,
                tags: tags
                    .iter()
                    .filter(|(a, _)| *a == r.id)
                    .map(|(_, t)| t.clone())
                    .collect(),
                conditions: conds
                    .iter()
                    .filter(|(a, ..)| *a == r.id)
                    .map(|(_, id, slug, name)| ConditionRef {
                        id: id.clone(),
                        slug: slug.clone(),
                        name: name.clone(),
                    })
                    .collect(),
                slug: r.slug,
                title: r.title,
                summary: r.summary,
                body_markdown: r.body_markdown,
                body_html: r.body_html,
                author: r.author,
                version: r.version,
                created_at: time::from_db(r.created_at),
                updated_at: time::from_db(r.updated_at),
                published_at: r.published_at.map(time::from_db),
            })
        })
        .collect()
}

/// Any article by id, whatever its status (editors).
pub fn load(conn: &mut DbConnection, id: ArticleId) -> Result<Article, ContentError> {
    let row = load_row(conn, id)?;
    hydrate(conn, vec![row])?.pop().ok_or(ContentError::NotFound("article"))
}

/// A published article by slug; drafts and archived articles are "not found".
pub fn published_by_slug(conn: &mut DbConnection, slug: &str) -> Result<Article, ContentError> {
    let row = articles::table
        .filter(articles::slug.eq(slug))
        .filter(articles::status.eq(ArticleStatus::Published.as_str()))
        .first::<ArticleRow>(conn)
        .optional()?
        .ok_or(ContentError::NotFound("article"))?;
    hydrate(conn, vec![row])?.pop().ok_or(ContentError::NotFound("article"))
}

/// Applies an edit when `expected_version` is current, keeping a revision.
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ArticleId,
    expected_version: i64,
    changes: ArticleChanges,
    now: DateTime<Utc>,
) -> Result<Article, ContentError> {
    dialect::write_transaction(conn, |conn| {
        let current = load(conn, id)?;
        if current.version != expected_version {
            return Err(stale(current.version));
        }
        let content = ArticleContent {
            slug: match changes.slug {
                Some(s) => s,
                None => Slug::parse(&current.slug).map_err(|_| corrupt("article slug"))?,
            },
            title: changes.title.unwrap_or(current.title),
            summary: changes.summary.unwrap_or(current.summary),
            body_markdown: changes.body_markdown.unwrap_or(current.body_markdown),
            author: changes.author.unwrap_or(current.author),
            tags: changes.tags.unwrap_or(current.tags),
            conditions: match changes.conditions {
                Some(c) => c,
                None => current
                    .conditions
                    .iter()
                    .map(|c| Slug::parse(&c.slug))
                    .collect::<Result<_, _>>()
                    .map_err(|_| corrupt("condition slug"))?,
            },
        };
        save_content(conn, actor, id, expected_version, content, now)
    })
}

/// Writes new content with a compare-and-set on the version, its links and a revision.
fn save_content(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ArticleId,
    expected_version: i64,
    content: ArticleContent,
    now: DateTime<Utc>,
) -> Result<Article, ContentError> {
    if slug_taken(conn, content.slug.as_str(), Some(&id.to_string()))? {
        return Err(slug_conflict(content.slug.as_str()));
    }
    let conds = resolve_conditions(conn, &content.conditions)?;
    let mut row = load_row(conn, id)?;
    row.body_html = markdown_to_html(&content.body_markdown);
    row.search_text = search_text(&content.title, &content.summary, &content.body_markdown);
    row.slug = content.slug.to_string();
    row.title = content.title;
    row.summary = content.summary;
    row.body_markdown = content.body_markdown;
    row.author = content.author;
    row.version = expected_version + 1;
    row.updated_at = time::to_db(now);
    compare_and_set(conn, &row, expected_version)?;
    write_links(conn, &row.id, &content.tags, &conds)?;
    write_revision(conn, &row, &content.tags, &conds, actor, now)?;
    load(conn, id)
}

fn compare_and_set(conn: &mut DbConnection, row: &ArticleRow, expected_version: i64) -> Result<(), ContentError> {
    let written = diesel::update(
        articles::table
            .filter(articles::id.eq(&row.id))
            .filter(articles::version.eq(expected_version)),
    )
    .set(row)
    .execute(conn)?;
    if written == 1 {
        Ok(())
    } else {
        let current = articles::table.find(&row.id).select(articles::version).first(conn)?;
        Err(stale(current))
    }
}

/// Publishes, unpublishes or archives. A transition not allowed from the current status is a
/// 409 `invalid_transition`.
pub fn transition(
    conn: &mut DbConnection,
    id: ArticleId,
    change: ArticleTransition,
    now: DateTime<Utc>,
) -> Result<Article, ContentError> {
    dialect::write_transaction(conn, |conn| {
        let mut row = load_row(conn, id)?;
        let from: ArticleStatus = row.status.parse().map_err(|_| corrupt("article status"))?;
        let to = from.after(change).ok_or_else(|| ContentError::Conflict {
            code: "invalid_transition",
            detail: format!(
                "an article that is {from} cannot be {}",
                match change {
                    ArticleTransition::Publish => "published",
                    ArticleTransition::Unpublish => "unpublished",
                    ArticleTransition::Archive => "archived",
                }
            ),
        })?;
        let expected = row.version;
        row.status = to.as_str().to_owned();
        row.version += 1;
        row.updated_at = time::to_db(now);
        if to == ArticleStatus::Published {
            row.published_at = Some(time::to_db(now));
        }
        compare_and_set(conn, &row, expected)?;
        load(conn, id)
    })
}

/// Filters for article lists.
#[derive(Debug, Clone, Default)]
pub struct ArticleFilter {
    /// `Some(Published)` for the public list; `None` means every status (editors).
    pub status: Option<ArticleStatus>,
    pub tag: Option<String>,
    pub condition: Option<String>,
    /// Words that must all appear in the title, summary or body (case-insensitive).
    pub words: Vec<String>,
    /// Cursor: only articles with an id below this (lists run newest first).
    pub before: Option<ArticleId>,
}

/// Newest first, at most `limit`, and whether more follow.
pub fn list(conn: &mut DbConnection, filter: &ArticleFilter, limit: i64) -> Result<(Vec<Article>, bool), ContentError> {
    let mut q = articles::table.into_boxed();
    if let Some(status) = filter.status {
        q = q.filter(articles::status.eq(status.as_str()));
    }
    if let Some(tag) = &filter.tag {
        q = q.filter(
            articles::id.eq_any(
                article_tags::table
                    .filter(article_tags::tag.eq(tag.clone()))
                    .select(article_tags::article_id),
            ),
        );
    }
    if let Some(condition) = &filter.condition {
        q = q.filter(
            articles::id.eq_any(
                article_conditions::table
                    .inner_join(conditions::table)
                    .filter(conditions::slug.eq(condition.clone()))
                    .select(article_conditions::article_id),
            ),
        );
    }
    for word in &filter.words {
        q = q.filter(
            articles::search_text
                .like(like_pattern(&word.to_lowercase()))
                .escape('\\'),
        );
    }
    if let Some(before) = filter.before {
        q = q.filter(articles::id.lt(before.to_string()));
    }
    let mut rows: Vec<ArticleRow> = q.order(articles::id.desc()).limit(limit + 1).load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((hydrate(conn, rows)?, more))
}

/// `%term%` with LIKE's wildcards escaped.
pub(crate) fn like_pattern(term: &str) -> String {
    let mut p = String::from("%");
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Every saved state of an article, newest first.
pub fn revisions(conn: &mut DbConnection, id: ArticleId) -> Result<Vec<Revision>, ContentError> {
    load_row(conn, id)?;
    let rows: Vec<RevisionRow> = article_revisions::table
        .filter(article_revisions::article_id.eq(id.to_string()))
        .order(article_revisions::number.desc())
        .load(conn)?;
    Ok(rows.into_iter().map(revision_from_row).collect())
}

fn revision_from_row(r: RevisionRow) -> Revision {
    Revision {
        number: r.number,
        slug: r.slug,
        title: r.title,
        summary: r.summary,
        body_markdown: r.body_markdown,
        tags: r.tags.split_whitespace().map(str::to_owned).collect(),
        edited_by: r.edited_by,
        edited_at: time::from_db(r.edited_at),
    }
}

/// Makes revision `number`'s content current again (as a new revision); status stays.
pub fn restore(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ArticleId,
    number: i64,
    now: DateTime<Utc>,
) -> Result<Article, ContentError> {
    dialect::write_transaction(conn, |conn| {
        let current = load_row(conn, id)?;
        let rev: RevisionRow = article_revisions::table
            .find((id.to_string(), number))
            .first(conn)
            .optional()?
            .ok_or(ContentError::NotFound("revision"))?;
        let condition_ids: Vec<String> = rev.condition_ids.split_whitespace().map(str::to_owned).collect();
        let slugs: Vec<String> = conditions::table
            .filter(conditions::id.eq_any(&condition_ids))
            .select(conditions::slug)
            .load(conn)?;
        let content = ArticleContent {
            slug: Slug::parse(&rev.slug).map_err(|_| corrupt("revision slug"))?,
            title: rev.title,
            summary: rev.summary,
            body_markdown: rev.body_markdown,
            author: current.author.clone(),
            tags: rev.tags.split_whitespace().map(str::to_owned).collect(),
            conditions: slugs
                .iter()
                .map(|s| Slug::parse(s))
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("slug"))?,
        };
        save_content(conn, actor, id, current.version, content, now)
    })
}
