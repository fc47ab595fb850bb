//! `/api/v1/tokens`: API token administration (admin scope).

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use clinic_auth::{ApiToken, NewToken};
use clinic_domain::auth::Scope;
use clinic_domain::ids::TokenId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_tokens).service(create_token).service(revoke_token);
}

/// A token as listed. The secret is never shown again after creation.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1a", "name": "front desk", "scopes": ["patients:read", "scheduling:write"],
    "created_at": "2027-01-04T14:00:00Z", "expires_at": "2027-12-31T23:59:59Z", "revoked_at": null,
    "last_used_at": "2027-01-04T16:20:13Z"
}))]
pub struct TokenResponse {
    #[schema(example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10")]
    pub id: String,
    #[schema(example = "front desk")]
    pub name: String,
    #[schema(example = json!(["patients:read", "scheduling:write"]))]
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for TokenResponse {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            scopes: t.scopes.scopes().to_vec(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "front desk", "scopes": ["patients:read", "scheduling:write"], "expires_at": "2027-12-31T23:59:59Z"}))]
pub struct CreateTokenRequest {
    /// A label for people: who or what uses the token.
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    pub name: String,
    /// One or more of: admin, patients:read, patients:write, content:write, scheduling:write,
    /// pumps:read, pumps:write, reminders:admin.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    pub scopes: Vec<String>,
    /// When the token stops working: at most `CLINIC_TOKEN_MAX_DAYS` (default 365) days
    /// ahead; none means that maximum. A later time is refused (422 `too_late`).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new token with its secret, shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct CreatedTokenResponse {
    #[serde(flatten)]
    pub token: TokenResponse,
    /// The bearer secret. Store it now: only its hash is kept.
    #[schema(example = "clinic_5f2b…")]
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenResponse>,
}

/// List API tokens, newest first.
#[utoipa::path(tag = "tokens", security(("bearer" = ["admin"])), responses((status = 200, body = TokenList)))]
#[get("/tokens")]
pub async fn list_tokens(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::Admin>,
) -> Result<web::Json<TokenList>, ApiError> {
    let tokens = state.db(clinic_auth::list).await?;
    Ok(web::Json(TokenList {
        items: tokens.into_iter().map(TokenResponse::from).collect(),
    }))
}

/// Create an API token. The response holds the secret; it cannot be retrieved later.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = ["admin"])),
    request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedTokenResponse))
)]
#[post("/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    auth: Authorized<scopes::Admin>,
    body: JsonBody<CreateTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let body = body.into_inner()?;
    let max = chrono::Duration::days(state.limits.token_max_days);
    let new = NewToken::parse(&body.name, &body.scopes, body.expires_at, now)?.within(max, now)?;
    let actor = auth.actor;
    let issued = state.db(move |conn| create_audited(conn, &actor, new, now)).await?;
    Ok(HttpResponse::Created().json(CreatedTokenResponse {
        token: issued.token.into(),
        secret: issued.secret,
    }))
}

/// Creates a token and records `token.create` in the same transaction (API and CLI).
pub fn create_audited(
    conn: &mut clinic_store::DbConnection,
    actor: &clinic_patients::audit::Actor,
    new: NewToken,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<clinic_auth::IssuedToken, clinic_auth::AuthError> {
    clinic_store::dialect::write_transaction(conn, |conn| {
        let issued = clinic_auth::create(conn, new, now)?;
        clinic_patients::audit::record(conn, actor, "token.create", "token", &issued.token.id.to_string(), now)?;
        Ok(issued)
    })
}

/// Revokes a token and records `token.revoke` in the same transaction (API and CLI).
pub fn revoke_audited(
    conn: &mut clinic_store::DbConnection,
    actor: &clinic_patients::audit::Actor,
    id: TokenId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<clinic_auth::ApiToken, clinic_auth::AuthError> {
    clinic_store::dialect::write_transaction(conn, |conn| {
        let token = clinic_auth::revoke(conn, id, now)?;
        clinic_patients::audit::record(conn, actor, "token.revoke", "token", &token.id.to_string(), now)?;
        Ok(token)
    })
}

/// Revoke an API token. It stays listed, with `revoked_at` set, and stops working at once.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenResponse))
)]
#[delete("/tokens/{id}")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    auth: Authorized<scopes::Admin>,
    id: web::Path<String>,
) -> Result<web::Json<TokenResponse>, ApiError> {
    let id: TokenId = super::path_id(&id, "token")?;
    let (now, actor) = (state.now(), auth.actor);
    let token = state.db(move |conn| revoke_audited(conn, &actor, id, now)).await?;
    state.tokens.clear();
    Ok(web::Json(token.into()))
}
