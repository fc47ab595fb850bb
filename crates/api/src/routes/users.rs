//! `/api/v1/users`: staff accounts (admin scope). Thin adapters over `clinic_flows::users`,
//! the same use cases as `clinic user …`.

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use clinic_auth::users::{NewUser, User, UserChanges};
use clinic_domain::auth::{Role, Scope};
use clinic_domain::ids::UserId;
use clinic_flows::users::{self as flows, LinkRefused, UserFlowError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_users)
        .service(create_user)
        .service(get_user)
        .service(update_user)
        .service(create_password_link);
}

impl From<UserFlowError> for ApiError {
    fn from(e: UserFlowError) -> Self {
        match e {
            UserFlowError::Auth(e) => e.into(),
            UserFlowError::Invalid(errors) => ApiError::Validation(errors),
            UserFlowError::Link(LinkRefused::Disabled) => ApiError::Conflict {
                code: "user_disabled",
                detail: "the user is disabled; enable them first".into(),
            },
            UserFlowError::Link(_) => ApiError::Conflict {
                code: "link_refused",
                detail: "the set-password link does not work".into(),
            },
            UserFlowError::Store(e) => e.into(),
        }
    }
}

/// A staff member's account. Never the password or its hash.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-2222-7000-8000-000000000003", "email": "nia.okafor@clinic.example",
    "display_name": "Nia Okafor", "role": "scheduler", "scopes": ["patients:read", "patients:write", "scheduling:write", "pumps:read"],
    "state": "active", "has_password": true, "password_changed_at": "2027-01-04T14:05:00Z",
    "last_sign_in_at": null, "created_at": "2027-01-04T14:00:00Z", "updated_at": "2027-01-04T14:05:00Z", "version": 2
}))]
pub struct UserResponse {
    pub id: String,
    /// Unique whatever its case.
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// What the role allows (docs/security.md, staff accounts).
    pub scopes: Vec<Scope>,
    /// `active` or `disabled` (a disabled user cannot sign in; their personal tokens are revoked).
    #[schema(example = "active")]
    pub state: String,
    /// Whether a password is set (an invited user sets one from their link).
    pub has_password: bool,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email,
            display_name: u.display_name,
            scopes: u.role.scopes().scopes().to_vec(),
            role: u.role,
            state: u.state.as_str().to_owned(),
            has_password: u.has_password,
            password_changed_at: u.password_changed_at,
            last_sign_in_at: u.last_sign_in_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
            version: u.version,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    /// By email.
    pub items: Vec<UserResponse>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "nia.okafor@clinic.example", "display_name": "Nia Okafor", "role": "scheduler"}))]
pub struct CreateUserRequest {
    #[schema(max_length = 254, format = "text-line")]
    pub email: String,
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    pub display_name: String,
    #[schema(value_type = Role)]
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "clinician"}))]
pub struct UpdateUserRequest {
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    pub display_name: Option<String>,
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
    /// `active` or `disabled`. Disabling revokes the user's personal tokens at once.
    #[schema(example = "disabled")]
    pub state: Option<String>,
}

/// A one-time set-password link, for the administrator to hand over.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"url": "https://clinic.example/console/set-password/MDFh…", "expires_at": "2027-01-05T14:00:00Z"}))]
pub struct PasswordLinkResponse {
    /// Works once (setting a password ends it and every older link) and until `expires_at`.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// List staff accounts.
#[utoipa::path(tag = "users", security(("bearer" = ["admin"])), responses((status = 200, body = UserList)))]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::Admin>,
) -> Result<web::Json<UserList>, ApiError> {
    let users = state.db(clinic_auth::users::list).await?;
    Ok(web::Json(UserList {
        items: users.into_iter().map(UserResponse::from).collect(),
    }))
}

/// Make a staff account, with no password yet: get its set-password link with
/// `POST /users/{id}/password-link` (or `clinic user reset-password`). Audited as `user.create`.
#[utoipa::path(
    tag = "users",
    security(("bearer" = ["admin"])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserResponse),
        (status = 409, description = "A user has this email (whatever its case): `email_taken`", body = crate::problem::Problem, content_type = "application/problem+json")
    )
)]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    auth: Authorized<scopes::Admin>,
    body: JsonBody<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner()?;
    let new = NewUser::parse(&b.email, &b.display_name, &b.role)?;
    let (now, actor) = (state.now(), auth.actor);
    let user = state
        .db(move |conn| flows::create(conn, &actor, new, None, now))
        .await?;
    Ok(HttpResponse::Created().json(UserResponse::from(user)))
}

/// One staff account.
#[utoipa::path(
    tag = "users",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserResponse))
)]
#[get("/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::Admin>,
    id: web::Path<String>,
) -> Result<web::Json<UserResponse>, ApiError> {
    let id: UserId = super::path_id(&id, "user")?;
    let user = state.db(move |conn| clinic_auth::users::get(conn, id)).await?;
    Ok(web::Json(user.into()))
}

/// Change a staff account's name, role or state. Disabling (`"state": "disabled"`) revokes
/// their personal tokens at once. Audited as `user.update`, `user.disable` or `user.enable`.
#[utoipa::path(
    tag = "users",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "User id")),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserResponse))
)]
#[patch("/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    auth: Authorized<scopes::Admin>,
    id: web::Path<String>,
    body: JsonBody<UpdateUserRequest>,
) -> Result<web::Json<UserResponse>, ApiError> {
    let id: UserId = super::path_id(&id, "user")?;
    let b = body.into_inner()?;
    let changes = UserChanges::parse(b.display_name.as_deref(), b.role.as_deref(), b.state.as_deref())?;
    let (now, actor) = (state.now(), auth.actor);
    let user = state
        .db(move |conn| flows::update(conn, &actor, id, changes, now))
        .await?;
    // Tokens this process verified lately must not outlive a disabling here.
    state.tokens.clear();
    Ok(web::Json(user.into()))
}

/// A one-time set-password link for the user (an invitation or a reset), valid 24 hours, to
/// hand over in person or by a channel of the clinic's. Their current password works until
/// they set a new one. Audited as `user.password_link`.
#[utoipa::path(
    tag = "users",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 201, body = PasswordLinkResponse),
        (status = 409, description = "The user is disabled: `user_disabled`", body = crate::problem::Problem, content_type = "application/problem+json")
    )
)]
#[post("/users/{id}/password-link")]
pub async fn create_password_link(
    state: web::Data<AppState>,
    auth: Authorized<scopes::Admin>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: UserId = super::path_id(&id, "user")?;
    let (now, actor) = (state.now(), auth.actor);
    let signer = flows::password_links(state.composer.link_secret());
    let path = state
        .db(move |conn| flows::password_link(conn, &actor, &signer, id, now))
        .await?;
    Ok(HttpResponse::Created().json(PasswordLinkResponse {
        url: format!("{}{path}", state.composer.public_url()),
        expires_at: now + chrono::Duration::hours(flows::PASSWORD_LINK_HOURS),
    }))
}
