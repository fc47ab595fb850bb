//! The conditions the clinic treats, each with its published articles.

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::content::{ArticleStatus, Slug};
use clinic_domain::ids::ConditionId;
use clinic_store::schema::{article_conditions, articles, conditions};
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;

use crate::{corrupt, stale, ContentError};

/// A published article as listed under a condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleRef {
    pub slug: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub id: ConditionId,
    pub slug: String,
    pub name: String,
    pub summary: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Published articles about it, by title.
    pub articles: Vec<ArticleRef>,
}

/// Validated fields of a condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionFields {
    pub slug: Slug,
    pub name: String,
    pub summary: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConditionChanges {
    pub slug: Option<Slug>,
    pub name: Option<String>,
    pub summary: Option<String>,
}

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(table_name = conditions)]
struct ConditionRow {
    id: String,
    slug: String,
    name: String,
    summary: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn with_articles(conn: &mut DbConnection, rows: Vec<ConditionRow>) -> Result<Vec<Condition>, ContentError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let links: Vec<(String, String, String)> = article_conditions::table
        .inner_join(articles::table)
        .filter(article_conditions::condition_id.eq_any(&ids))
        .filter(articles::status.eq(ArticleStatus::Published.as_str()))
        .select((article_conditions::condition_id, articles::slug, articles::title))
        .order(articles::title)
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            Ok(Condition {
                id: r.id.parse().map_err(|_| corrupt("condition id"))?,
                articles: links
                    .iter()
                    .filter(|(c, ..)| *c == r.id)
                    .map(|(_, slug, title)| ArticleRef {
                        slug: slug.clone(),
                        title: title.clone(),
                    })
                    .collect(),
                slug: r.slug,
                name: r.name,
                summary: r.summary,
                version: r.version,
                created_at: time::from_db(r.created_at),
                updated_at: time::from_db(r.updated_at),
            })
        })
        .collect()
}

/// Every condition, by name.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Condition>, ContentError> {
    let rows = conditions::table.order(conditions::name).load::<ConditionRow>(conn)?;
    with_articles(conn, rows)
}

pub fn by_slug(conn: &mut DbConnection, slug: &str) -> Result<Condition, ContentError> {
    let row = conditions::table
        .filter(conditions::slug.eq(slug))
        .first::<ConditionRow>(conn)
        .optional()?
        .ok_or(ContentError::NotFound("condition"))?;
    with_articles(conn, vec![row])?
        .pop()
        .ok_or(ContentError::NotFound("condition"))
}

fn by_id(conn: &mut DbConnection, id: ConditionId) -> Result<ConditionRow, ContentError> {
    conditions::table
        .find(id.to_string())
        .first::<ConditionRow>(conn)
        .optional()?
        .ok_or(ContentError::NotFound("condition"))
}

fn check_slug_free(conn: &mut DbConnection, slug: &str, except: Option<&str>) -> Result<(), ContentError> {
    let mut q = conditions::table.filter(conditions::slug.eq(slug)).into_boxed();
    if let Some(id) = except {
        q = q.filter(conditions::id.ne(id));
    }
    if q.count().get_result::<i64>(conn)? > 0 {
        return Err(ContentError::Conflict {
            code: "slug_taken",
            detail: format!("another condition already uses the slug '{slug}'"),
        });
    }
    Ok(())
}

pub fn create(conn: &mut DbConnection, fields: ConditionFields, now: DateTime<Utc>) -> Result<Condition, ContentError> {
    dialect::write_transaction(conn, |conn| {
        check_slug_free(conn, fields.slug.as_str(), None)?;
        let row = ConditionRow {
            id: ConditionId::new().to_string(),
            slug: fields.slug.to_string(),
            name: fields.name,
            summary: fields.summary,
            version: 1,
            created_at: time::to_db(now),
            updated_at: time::to_db(now),
        };
        diesel::insert_into(conditions::table).values(&row).execute(conn)?;
        by_slug(conn, &row.slug)
    })
}

pub fn update(
    conn: &mut DbConnection,
    id: ConditionId,
    expected_version: i64,
    changes: ConditionChanges,
    now: DateTime<Utc>,
) -> Result<Condition, ContentError> {
    dialect::write_transaction(conn, |conn| {
        let mut row = by_id(conn, id)?;
        if row.version != expected_version {
            return Err(stale(row.version));
        }
        if let Some(slug) = changes.slug {
            check_slug_free(conn, slug.as_str(), Some(&row.id))?;
            row.slug = slug.to_string();
        }
        if let Some(name) = changes.name {
            row.name = name;
        }
        if let Some(summary) = changes.summary {
            row.summary = summary;
        }
        row.version += 1;
        row.updated_at = time::to_db(now);
        let written = diesel::update(
            conditions::table
                .filter(conditions::id.eq(&row.id))
                .filter(conditions::version.eq(expected_version)),
        )
        .set(&row)
        .execute(conn)?;
        if written != 1 {
            return Err(stale(expected_version + 1));
        }
        by_slug(conn, &row.slug)
    })
}
