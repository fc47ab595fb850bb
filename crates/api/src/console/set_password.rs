//! `/console/set-password/{token}`: a staff member chooses their password from the one-time
//! link an administrator gave them (`clinic user create`, `clinic user reset-password`).
//! The link works once and for a day; the password must meet the rules of
//! `clinic_auth::passwords`. Nothing is stored when the form is wrong.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use clinic_flows::users::{self as flows, LinkRefused, UserFlowError};
use minijinja::context;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{cross_site, page, refusal, same_origin};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(set_password_page)
        .service(set_password)
        .service(password_set_page);
}

fn signer(state: &AppState) -> clinic_reminders::links::LinkSigner {
    flows::password_links(state.composer.link_secret())
}

/// The page for a link that does not work (or a server fault behind it).
fn link_refusal(state: &AppState, e: &UserFlowError) -> Result<HttpResponse, ApiError> {
    let (status, heading, message) = match e {
        UserFlowError::Link(LinkRefused::Invalid) => (
            StatusCode::NOT_FOUND,
            "This link does not work",
            "It may have been copied incompletely. Ask your clinic's administrator for a new one.",
        ),
        UserFlowError::Link(LinkRefused::Expired) => (
            StatusCode::GONE,
            "This link has expired",
            "Set-password links work for a day. Ask your clinic's administrator for a new one.",
        ),
        UserFlowError::Link(LinkRefused::Used) => (
            StatusCode::GONE,
            "This link was used",
            "A password was set with it (or with a newer link). Sign in with that password, or ask for a new link.",
        ),
        UserFlowError::Link(LinkRefused::Disabled) => (
            StatusCode::GONE,
            "This account is disabled",
            "Ask your clinic's administrator.",
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Something went wrong on our side",
            "Please try again in a few minutes.",
        ),
    };
    refusal(state, status, heading, message)
}

fn form_page(
    state: &AppState,
    status: StatusCode,
    token: &str,
    email: &str,
    problem: Option<String>,
) -> Result<HttpResponse, ApiError> {
    page(
        state,
        status,
        "console/set_password.html",
        context! { token, email, problem, min_chars => clinic_auth::passwords::MIN_CHARS, max_chars => clinic_auth::passwords::MAX_CHARS },
    )
}

/// The form to choose a password, for the account the link names. Changes nothing.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token of the set-password link")),
    responses(
        (status = 200, description = "HTML page: the form", content_type = "text/html", body = String,
            example = "<!doctype html>\n<html lang=\"en\">\n<head><title>Choose your password · Lakeside Pain Clinic</title></head>\n<body><main id=\"content\">\n<h1>Choose your password</h1>\n<form method=\"post\" action=\"/console/set-password/MDFh…\"><label for=\"password\">New password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>…</form>\n</main></body>\n</html>\n"),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired, was used, or its account is disabled", content_type = "text/html", body = String)
    )
)]
#[get("/console/set-password/{token}")]
pub async fn set_password_page(state: web::Data<AppState>, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    let (signer, now, t) = (signer(&state), state.now(), token.clone());
    let opened = state
        .db(move |conn| Ok::<_, ApiError>(flows::open_password_link(conn, &signer, &t, now)))
        .await?;
    match opened {
        Ok(user) => form_page(&state, StatusCode::OK, &token, &user.email, None),
        Err(e) => link_refusal(&state, &e),
    }
}

/// The chosen password, twice.
#[derive(Deserialize, Default, ToSchema)]
#[serde(default)]
#[schema(example = json!({"password": "gravel lantern orbit tulip", "confirm": "gravel lantern orbit tulip"}))]
pub struct SetPasswordForm {
    /// 12 to 128 characters, not common or guessable.
    #[schema(min_length = 12, max_length = 128)]
    pub password: String,
    /// The same again.
    #[schema(min_length = 12, max_length = 128)]
    pub confirm: String,
}

/// Sets the password (303 to the confirmation page); a wrong form is shown again with what
/// is wrong (422), a dead link is a refusal page.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token of the set-password link")),
    request_body(content = SetPasswordForm, content_type = "application/x-www-form-urlencoded", description = "The form fields"),
    responses(
        (status = 303, description = "Password set: to the confirmation page"),
        (status = 403, description = "HTML page: the form was not sent from this server's page", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired, was used, or its account is disabled", content_type = "text/html", body = String),
        (status = 422, description = "HTML page: the form again, saying what is wrong", content_type = "text/html", body = String)
    )
)]
#[post("/console/set-password/{token}")]
pub async fn set_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    // A link that does not work says so first (to anyone); a working one takes forms only
    // from our own page.
    let (check_signer, check_now, check_token) = (signer(&state), state.now(), token.clone());
    let opened = state
        .db(move |conn| Ok::<_, ApiError>(flows::open_password_link(conn, &check_signer, &check_token, check_now)))
        .await?;
    let holder = match opened {
        Ok(user) => user,
        Err(e) => return link_refusal(&state, &e),
    };
    if !same_origin(&state, &req) {
        return cross_site(&state);
    }
    let body = crate::extract::read_body(&req, payload).await?;
    let form: SetPasswordForm = match crate::extract::parse_form(&body) {
        Ok(f) => f,
        // A control character in a field (the character rule): say so, store nothing.
        Err(_) => {
            let problem = Some("Please use only letters, numbers, spaces and punctuation.".to_owned());
            return form_page(&state, StatusCode::UNPROCESSABLE_ENTITY, &token, &holder.email, problem);
        }
    };
    if form.password != form.confirm {
        let problem = Some("The two passwords differ.".to_owned());
        return form_page(&state, StatusCode::UNPROCESSABLE_ENTITY, &token, &holder.email, problem);
    }
    let (signer, now, t) = (signer(&state), state.now(), token.clone());
    let request_id = crate::extract::request_id_of(&req);
    let outcome = state
        .db(move |conn| {
            Ok::<_, ApiError>(flows::set_password_from_link(
                conn,
                &signer,
                &t,
                &form.password,
                request_id,
                now,
            ))
        })
        .await?;
    match outcome {
        Ok(_) => Ok(HttpResponse::SeeOther()
            .insert_header((actix_web::http::header::LOCATION, "/console/password-set"))
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .finish()),
        Err(UserFlowError::Invalid(errors)) => {
            let problem = errors
                .errors()
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join(" ");
            form_page(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                &token,
                &holder.email,
                Some(problem),
            )
        }
        Err(e) => link_refusal(&state, &e),
    }
}

/// Says the password is set. Changes nothing.
#[utoipa::path(
    tag = "pages",
    security(()),
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String,
        example = "<!doctype html>\n<html lang=\"en\">\n<head><title>Your password is set · Lakeside Pain Clinic</title></head>\n<body><main id=\"content\">\n<h1>Your password is set</h1>\n</main></body>\n</html>\n"))
)]
#[get("/console/password-set")]
pub async fn password_set_page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    page(&state, StatusCode::OK, "console/password_set.html", context! {})
}
