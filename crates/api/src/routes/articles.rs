//! Articles. Public: `/api/v1/articles` (published only). Editors (`content:write`):
//! `/api/v1/editor/articles…` — drafts, edits with versions, status changes, revisions.

use std::sync::Arc;

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use clinic_content::articles::{self as repo, Article, ArticleChanges, ArticleContent, ArticleFilter, Revision};
use clinic_domain::content::{self, ArticleStatus, ArticleTransition, Slug};
use clinic_domain::ids::ArticleId;
use clinic_domain::{FieldError, ValidationErrors};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody, QueryParams};
use crate::fields::{nullable, parse_required};
use crate::pagination::{self, Page};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_articles)
        .service(get_article)
        .service(list_editor_articles)
        .service(create_article)
        .service(get_editor_article)
        .service(update_article)
        .service(publish_article)
        .service(unpublish_article)
        .service(archive_article)
        .service(list_article_revisions)
        .service(restore_article_revision);
}

#[derive(Serialize, ToSchema)]
pub struct ConditionLink {
    #[schema(example = "severe-spasticity")]
    pub slug: String,
    #[schema(example = "Severe spasticity")]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", "slug": "intrathecal-pump-therapy",
    "title": "Intrathecal pump therapy: what it is and what to expect",
    "summary": "How the pump works, who may benefit and why refills matter.",
    "body_markdown": "## How it works\n\nA small pump…", "body_html": "<h2>How it works</h2>\n<p>A small pump…</p>",
    "author": "Clinic care team", "status": "published", "tags": ["refills"],
    "conditions": [{"slug": "severe-spasticity", "name": "Severe spasticity"}], "version": 2,
    "created_at": "2027-01-04T15:00:00Z", "updated_at": "2027-01-04T15:05:00Z",
    "published_at": "2027-01-04T15:05:00Z", "page_url": "/articles/intrathecal-pump-therapy"
}))]
pub struct ArticleResponse {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub summary: String,
    /// The source, CommonMark.
    pub body_markdown: String,
    /// Rendered and sanitised (no scripts, event handlers or `javascript:` links).
    pub body_html: String,
    pub author: String,
    pub status: ArticleStatus,
    pub tags: Vec<String>,
    pub conditions: Vec<ConditionLink>,
    /// Send back in PATCH; a stale version is refused with 409.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    /// The public page (served only while published).
    pub page_url: String,
}

impl From<&Article> for ArticleResponse {
    fn from(a: &Article) -> Self {
        Self {
            id: a.id.to_string(),
            slug: a.slug.clone(),
            title: a.title.clone(),
            summary: a.summary.clone(),
            body_markdown: a.body_markdown.clone(),
            body_html: a.body_html.clone(),
            author: a.author.clone(),
            status: a.status,
            tags: a.tags.clone(),
            conditions: a
                .conditions
                .iter()
                .map(|c| ConditionLink {
                    slug: c.slug.clone(),
                    name: c.name.clone(),
                })
                .collect(),
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
            published_at: a.published_at,
            page_url: format!("/articles/{}", a.slug),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListArticlesQuery {
    /// Only articles with this tag.
    pub tag: Option<String>,
    /// Only articles about this condition (its slug).
    pub condition: Option<String>,
    /// Words that must all appear in the title, summary or body (case-insensitive).
    pub q: Option<String>,
    /// Editors only: `draft`, `published` or `archived` (default: all).
    pub status: Option<ArticleStatus>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The public list's filters: those of [`ListArticlesQuery`] without `status` (it holds
/// published articles only).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PublicArticlesQuery {
    /// Only articles with this tag.
    pub tag: Option<String>,
    /// Only articles about this condition (its slug).
    pub condition: Option<String>,
    /// Words that must all appear in the title, summary or body (case-insensitive).
    pub q: Option<String>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl From<PublicArticlesQuery> for ListArticlesQuery {
    fn from(q: PublicArticlesQuery) -> Self {
        Self {
            tag: q.tag,
            condition: q.condition,
            q: q.q,
            status: None,
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

impl ListArticlesQuery {
    fn into_filter(self, status: Option<ArticleStatus>) -> Result<(ArticleFilter, i64), ApiError> {
        let limit = pagination::limit(self.limit)?;
        let words: Vec<String> = self
            .q
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if words.len() > 10 || words.iter().any(|w| w.chars().count() > 50) {
            return Err(ApiError::field(
                "q",
                "too_long",
                "at most 10 words of up to 50 characters",
            ));
        }
        let before = self
            .cursor
            .as_deref()
            .map(|c| pagination::cursor_key::<ArticleId>(pagination::List::Articles, c))
            .transpose()?;
        Ok((
            ArticleFilter {
                status,
                tag: self.tag,
                condition: self.condition,
                words,
                before,
            },
            limit,
        ))
    }
}

fn page(articles: Vec<Article>, more: bool) -> Page<ArticleResponse> {
    let next_cursor = if more {
        articles
            .last()
            .map(|a| pagination::cursor(pagination::List::Articles, &a.id))
    } else {
        None
    };
    Page {
        items: articles.iter().map(ArticleResponse::from).collect(),
        next_cursor,
    }
}

/// List published articles, newest first, by tag, condition or words. Public.
#[utoipa::path(
    tag = "content",
    security(()),
    params(PublicArticlesQuery),
    responses((status = 200, body = Page<ArticleResponse>))
)]
#[get("/articles")]
pub async fn list_articles(
    state: web::Data<AppState>,
    query: QueryParams<PublicArticlesQuery>,
) -> Result<web::Json<Page<ArticleResponse>>, ApiError> {
    let query = ListArticlesQuery::from(query.into_inner()?);
    let (filter, limit) = query.into_filter(Some(ArticleStatus::Published))?;
    let (articles, more) = state.db(move |conn| repo::list(conn, &filter, limit)).await?;
    Ok(web::Json(page(articles, more)))
}

/// A published article by slug, served from a short cache.
pub async fn published(state: &AppState, slug: String) -> Result<Arc<Article>, ApiError> {
    if let Some(article) = state.content.article(&slug) {
        return Ok(article);
    }
    let article = Arc::new(state.db(move |conn| repo::published_by_slug(conn, &slug)).await?);
    state.content.keep(article.clone());
    Ok(article)
}

/// Read a published article by slug. Drafts and archived articles are 404. Public.
#[utoipa::path(
    tag = "content",
    security(()),
    params(("slug" = String, Path, description = "Article slug", example = "intrathecal-pump-therapy")),
    responses((status = 200, body = ArticleResponse))
)]
#[get("/articles/{slug}")]
pub async fn get_article(
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<web::Json<ArticleResponse>, ApiError> {
    let article = published(&state, slug.into_inner()).await?;
    Ok(web::Json(ArticleResponse::from(article.as_ref())))
}

/// List articles of every status (drafts included), newest first.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(ListArticlesQuery),
    responses((status = 200, body = Page<ArticleResponse>))
)]
#[get("/editor/articles")]
pub async fn list_editor_articles(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    query: QueryParams<ListArticlesQuery>,
) -> Result<web::Json<Page<ArticleResponse>>, ApiError> {
    let query = query.into_inner()?;
    let status = query.status;
    let (filter, limit) = query.into_filter(status)?;
    let (articles, more) = state.db(move |conn| repo::list(conn, &filter, limit)).await?;
    Ok(web::Json(page(articles, more)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Your first refill visit", "summary": "What happens at a refill and how long it takes.",
    "body_markdown": "## Before you come\n\nBring your pump card.", "author": "Clinic care team",
    "tags": ["refills"], "conditions": ["severe-spasticity"]
}))]
pub struct CreateArticleRequest {
    #[schema(min_length = 1, max_length = 200, format = "text-line")]
    pub title: String,
    /// Derived from the title when omitted.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 100)]
    pub slug: Option<String>,
    #[schema(min_length = 1, max_length = 500)]
    pub summary: String,
    /// CommonMark; rendered and sanitised on save.
    #[schema(
        min_length = 1,
        max_length = 50000,
        pattern = r"^[^\x00]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00][^\x00]*$"
    )]
    pub body_markdown: String,
    #[schema(min_length = 1, max_length = 100)]
    pub author: String,
    #[serde(default)]
    #[schema(value_type = Vec<crate::openapi::TagText>, required = false, max_items = 20)]
    pub tags: Vec<String>,
    /// Slugs of related conditions.
    #[serde(default)]
    #[schema(value_type = Vec<crate::openapi::SlugText>, required = false)]
    pub conditions: Vec<String>,
}

fn parse_conditions(errors: &mut ValidationErrors, slugs: &[String]) -> Vec<Slug> {
    slugs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| errors.check(&format!("conditions[{i}]"), Slug::parse(s)))
        .collect()
}

impl CreateArticleRequest {
    fn into_content(self) -> Result<ArticleContent, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let title = e.check("title", content::parse_title(&self.title));
        let slug = match (&self.slug, &title) {
            (Some(s), _) => e.check("slug", Slug::parse(s)),
            (None, Some(t)) => e.check("slug", Slug::from_title(t)),
            (None, None) => None,
        };
        let summary = e.check("summary", content::parse_summary(&self.summary));
        let body = e.check("body_markdown", content::parse_body(&self.body_markdown));
        let author = e.check("author", content::parse_author(&self.author));
        let tags = match content::parse_tags(&self.tags) {
            Ok(t) => Some(t),
            Err(err) => {
                e.push(err);
                None
            }
        };
        let conditions = parse_conditions(&mut e, &self.conditions);
        match (title, slug, summary, body, author, tags) {
            (Some(title), Some(slug), Some(summary), Some(body_markdown), Some(author), Some(tags)) if e.is_empty() => {
                Ok(ArticleContent {
                    slug,
                    title,
                    summary,
                    body_markdown,
                    author,
                    tags,
                    conditions,
                })
            }
            _ => Err(e),
        }
    }
}

/// Create a draft article.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    request_body = CreateArticleRequest,
    responses(
        (status = 201, body = ArticleResponse),
        (status = 409, description = "The slug is taken (`slug_taken`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/editor/articles")]
pub async fn create_article(
    state: web::Data<AppState>,
    auth: Authorized<scopes::ContentWrite>,
    body: JsonBody<CreateArticleRequest>,
) -> Result<HttpResponse, ApiError> {
    let content = body.into_inner()?.into_content()?;
    let now = state.now();
    let article = state
        .db(move |conn| clinic_flows::articles::create(conn, &auth.actor, content, now))
        .await?;
    state.content.clear();
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/editor/articles/{}", article.id)))
        .json(ArticleResponse::from(&article)))
}

/// Read any article by id, whatever its status.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(("id" = String, Path, description = "Article id")),
    responses((status = 200, body = ArticleResponse))
)]
#[get("/editor/articles/{id}")]
pub async fn get_editor_article(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    id: web::Path<String>,
) -> Result<web::Json<ArticleResponse>, ApiError> {
    let id: ArticleId = super::path_id(&id, "article")?;
    let article = state.db(move |conn| repo::load(conn, id)).await?;
    Ok(web::Json(ArticleResponse::from(&article)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 2, "summary": "A shorter summary.", "tags": ["refills", "visits"]}))]
pub struct UpdateArticleRequest {
    /// The version you read; 409 when someone changed the article since.
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 200, format = "text-line")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 100)]
    pub slug: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 500)]
    pub summary: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 50000, pattern = r"^[^\x00]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00][^\x00]*$")]
    pub body_markdown: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 100)]
    pub author: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Vec<crate::openapi::TagText>, required = false, max_items = 20)]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<crate::openapi::SlugText>>)]
    pub conditions: Option<Option<Vec<String>>>,
}

impl UpdateArticleRequest {
    fn into_changes(self) -> Result<(i64, ArticleChanges), ValidationErrors> {
        let mut e = ValidationErrors::new();
        let conditions = match self.conditions {
            None => None,
            Some(None) => {
                e.push(FieldError::new(
                    "conditions",
                    "not_nullable",
                    "conditions cannot be null; send []",
                ));
                None
            }
            Some(Some(list)) => Some(parse_conditions(&mut e, &list)),
        };
        let changes = ArticleChanges {
            title: parse_required(&mut e, "title", self.title, |v| content::parse_title(&v)),
            slug: parse_required(&mut e, "slug", self.slug, |v| Slug::parse(&v)),
            summary: parse_required(&mut e, "summary", self.summary, |v| content::parse_summary(&v)),
            body_markdown: parse_required(&mut e, "body_markdown", self.body_markdown, |v| content::parse_body(&v)),
            author: parse_required(&mut e, "author", self.author, |v| content::parse_author(&v)),
            tags: parse_required(&mut e, "tags", self.tags, |v| content::parse_tags(&v)),
            conditions,
        };
        if self.version < 1 {
            e.push(FieldError::new("version", "out_of_range", "version starts at 1"));
        }
        e.finish()?;
        Ok((self.version, changes))
    }
}

/// Edit an article (any status). Every edit is kept as a revision.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(("id" = String, Path, description = "Article id")),
    request_body = UpdateArticleRequest,
    responses(
        (status = 200, body = ArticleResponse),
        (status = 409, description = "Stale `version` or a slug that is taken", body = Problem, content_type = "application/problem+json")
    )
)]
#[patch("/editor/articles/{id}")]
pub async fn update_article(
    state: web::Data<AppState>,
    auth: Authorized<scopes::ContentWrite>,
    id: web::Path<String>,
    body: JsonBody<UpdateArticleRequest>,
) -> Result<web::Json<ArticleResponse>, ApiError> {
    let id: ArticleId = super::path_id(&id, "article")?;
    let (version, changes) = body.into_inner()?.into_changes()?;
    let now = state.now();
    let article = state
        .db(move |conn| clinic_flows::articles::update(conn, &auth.actor, id, version, changes, now))
        .await?;
    state.content.clear();
    Ok(web::Json(ArticleResponse::from(&article)))
}

async fn change_status(
    state: &AppState,
    id: &str,
    change: ArticleTransition,
) -> Result<web::Json<ArticleResponse>, ApiError> {
    let id: ArticleId = super::path_id(id, "article")?;
    let now = state.now();
    let article = state
        .db(move |conn| clinic_flows::articles::transition(conn, id, change, now))
        .await?;
    state.content.clear();
    Ok(web::Json(ArticleResponse::from(&article)))
}

/// Publish a draft or archived article: it becomes public.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(("id" = String, Path, description = "Article id")),
    responses(
        (status = 200, body = ArticleResponse),
        (status = 409, description = "Already published (`invalid_transition`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/editor/articles/{id}/publish")]
pub async fn publish_article(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    id: web::Path<String>,
) -> Result<web::Json<ArticleResponse>, ApiError> {
    change_status(&state, &id, ArticleTransition::Publish).await
}

/// Take a published article back to draft: it stops being public.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(("id" = String, Path, description = "Article id")),
    responses(
        (status = 200, body = ArticleResponse),
        (status = 409, description = "Not published (`invalid_transition`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/editor/articles/{id}/unpublish")]
pub async fn unpublish_article(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    id: web::Path<String>,
) -> Result<web::Json<ArticleResponse>, ApiError> {
    change_status(&state, &id, ArticleTransition::Unpublish).await
}

/// Archive a draft or published article: kept, not public, can be published again.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(("id" = String, Path, description = "Article id")),
    responses(
        (status = 200, body = ArticleResponse),
        (status = 409, description = "Already archived (`invalid_transition`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/editor/articles/{id}/archive")]
pub async fn archive_article(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    id: web::Path<String>,
) -> Result<web::Json<ArticleResponse>, ApiError> {
    change_status(&state, &id, ArticleTransition::Archive).await
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "number": 2, "slug": "intrathecal-pump-therapy", "title": "Intrathecal pump therapy: what it is and what to expect",
    "summary": "How the pump works, who may benefit and why refills matter.",
    "body_markdown": "## How it works\n\nA small pump…", "tags": ["refills"],
    "edited_by": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1a", "edited_at": "2027-01-04T15:05:00Z"
}))]
pub struct RevisionResponse {
    /// 1 for the first saved content, growing with every edit and restore.
    pub number: i64,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    pub tags: Vec<String>,
    /// The token that saved it; null for seed data and the CLI.
    pub edited_by: Option<String>,
    pub edited_at: DateTime<Utc>,
}

impl From<Revision> for RevisionResponse {
    fn from(r: Revision) -> Self {
        Self {
            number: r.number,
            slug: r.slug,
            title: r.title,
            summary: r.summary,
            body_markdown: r.body_markdown,
            tags: r.tags,
            edited_by: r.edited_by,
            edited_at: r.edited_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RevisionList {
    /// Newest first.
    pub items: Vec<RevisionResponse>,
}

/// Every saved state of an article's content, newest first.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(("id" = String, Path, description = "Article id")),
    responses((status = 200, body = RevisionList))
)]
#[get("/editor/articles/{id}/revisions")]
pub async fn list_article_revisions(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    id: web::Path<String>,
) -> Result<web::Json<RevisionList>, ApiError> {
    let id: ArticleId = super::path_id(&id, "article")?;
    let revisions = state.db(move |conn| repo::revisions(conn, id)).await?;
    Ok(web::Json(RevisionList {
        items: revisions.into_iter().map(RevisionResponse::from).collect(),
    }))
}

/// Make a revision's content current again (saved as a new revision; status unchanged).
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(
        ("id" = String, Path, description = "Article id"),
        ("number" = i64, Path, description = "Revision number")
    ),
    responses(
        (status = 200, body = ArticleResponse),
        (status = 409, description = "The revision's slug is now used by another article", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/editor/articles/{id}/revisions/{number}/restore")]
pub async fn restore_article_revision(
    state: web::Data<AppState>,
    auth: Authorized<scopes::ContentWrite>,
    // Both as text, parsed after the token check: a bad number with a bad token is a 401.
    path: web::Path<(String, String)>,
) -> Result<web::Json<ArticleResponse>, ApiError> {
    let (id, number) = path.into_inner();
    let id: ArticleId = super::path_id(&id, "article")?;
    let number: i64 = super::path_id(&number, "revision")?;
    let now = state.now();
    let article = state
        .db(move |conn| clinic_flows::articles::restore(conn, &auth.actor, id, number, now))
        .await?;
    state.content.clear();
    Ok(web::Json(ArticleResponse::from(&article)))
}
