//! Conditions treated. Public read at `/api/v1/conditions`; editors (`content:write`) add
//! and edit at `/api/v1/editor/conditions`.

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use clinic_content::conditions::{self as repo, Condition, ConditionChanges, ConditionFields};
use clinic_domain::content::{self, Slug};
use clinic_domain::ids::ConditionId;
use clinic_domain::{FieldError, ValidationErrors};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody};
use crate::fields::{nullable, parse_required};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_conditions)
        .service(get_condition)
        .service(create_condition)
        .service(update_condition);
}

#[derive(Serialize, ToSchema)]
pub struct ArticleLink {
    pub slug: String,
    pub title: String,
    /// The public page.
    pub page_url: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11", "slug": "severe-spasticity", "name": "Severe spasticity",
    "summary": "Muscles that stay tight or spasm…", "version": 1,
    "created_at": "2027-01-04T15:00:00Z", "updated_at": "2027-01-04T15:00:00Z",
    "articles": [{"slug": "intrathecal-pump-therapy", "title": "Intrathecal pump therapy: what it is and what to expect", "page_url": "/articles/intrathecal-pump-therapy"}]
}))]
pub struct ConditionResponse {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub summary: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Published articles about this condition.
    pub articles: Vec<ArticleLink>,
}

impl From<Condition> for ConditionResponse {
    fn from(c: Condition) -> Self {
        Self {
            id: c.id.to_string(),
            slug: c.slug,
            name: c.name,
            summary: c.summary,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
            articles: c
                .articles
                .into_iter()
                .map(|a| ArticleLink {
                    page_url: format!("/articles/{}", a.slug),
                    slug: a.slug,
                    title: a.title,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConditionList {
    /// By name.
    pub items: Vec<ConditionResponse>,
}

/// List the conditions the clinic treats, with their published articles. Public.
#[utoipa::path(tag = "content", security(()), responses((status = 200, body = ConditionList)))]
#[get("/conditions")]
pub async fn list_conditions(state: web::Data<AppState>) -> Result<web::Json<ConditionList>, ApiError> {
    let list = state.db(repo::list).await?;
    Ok(web::Json(ConditionList {
        items: list.into_iter().map(ConditionResponse::from).collect(),
    }))
}

/// Read a condition by slug, with its published articles. Public.
#[utoipa::path(
    tag = "content",
    security(()),
    params(("slug" = String, Path, description = "Condition slug", example = "severe-spasticity")),
    responses((status = 200, body = ConditionResponse))
)]
#[get("/conditions/{slug}")]
pub async fn get_condition(
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<web::Json<ConditionResponse>, ApiError> {
    let slug = slug.into_inner();
    let condition = state.db(move |conn| repo::by_slug(conn, &slug)).await?;
    Ok(web::Json(condition.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Multiple sclerosis spasticity", "summary": "Stiff muscles caused by multiple sclerosis."}))]
pub struct CreateConditionRequest {
    #[schema(min_length = 1, max_length = 150)]
    pub name: String,
    /// Derived from the name when omitted.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 100)]
    pub slug: Option<String>,
    #[schema(min_length = 1, max_length = 500)]
    pub summary: String,
}

/// Add a condition.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    request_body = CreateConditionRequest,
    responses(
        (status = 201, body = ConditionResponse),
        (status = 409, description = "The slug is taken (`slug_taken`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/editor/conditions")]
pub async fn create_condition(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    body: JsonBody<CreateConditionRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let name = e.check("name", content::parse_condition_name(&body.name));
    let slug = match (&body.slug, &name) {
        (Some(s), _) => e.check("slug", Slug::parse(s)),
        (None, Some(n)) => e.check("slug", Slug::from_title(n)),
        (None, None) => None,
    };
    let summary = e.check("summary", content::parse_summary(&body.summary));
    let (Some(name), Some(slug), Some(summary)) = (name, slug, summary) else {
        return Err(e.into());
    };
    let now = state.now();
    let fields = ConditionFields { slug, name, summary };
    let condition = state.db(move |conn| repo::create(conn, fields, now)).await?;
    state.content.clear();
    Ok(HttpResponse::Created().json(ConditionResponse::from(condition)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "summary": "A clearer summary."}))]
pub struct UpdateConditionRequest {
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 150)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 100)]
    pub slug: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 500)]
    pub summary: Option<Option<String>>,
}

/// Edit a condition. Send the `version` you read; a stale one gets 409.
#[utoipa::path(
    tag = "content",
    security(("bearer" = ["content:write"])),
    params(("id" = String, Path, description = "Condition id")),
    request_body = UpdateConditionRequest,
    responses(
        (status = 200, body = ConditionResponse),
        (status = 409, description = "Stale `version` or a slug that is taken", body = Problem, content_type = "application/problem+json")
    )
)]
#[patch("/editor/conditions/{id}")]
pub async fn update_condition(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    id: web::Path<String>,
    body: JsonBody<UpdateConditionRequest>,
) -> Result<web::Json<ConditionResponse>, ApiError> {
    let id: ConditionId = super::path_id(&id, "condition")?;
    let body = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let changes = ConditionChanges {
        name: parse_required(&mut e, "name", body.name, |v| content::parse_condition_name(&v)),
        slug: parse_required(&mut e, "slug", body.slug, |v| Slug::parse(&v)),
        summary: parse_required(&mut e, "summary", body.summary, |v| content::parse_summary(&v)),
    };
    if body.version < 1 {
        e.push(FieldError::new("version", "out_of_range", "version starts at 1"));
    }
    e.finish()?;
    let now = state.now();
    let version = body.version;
    let condition = state
        .db(move |conn| repo::update(conn, id, version, changes, now))
        .await?;
    state.content.clear();
    Ok(web::Json(condition.into()))
}
