//! The staff console's pages under `/console/`. So far: [`set_password`], where a staff
//! member invited or reset by an administrator (`clinic user create`, `clinic user
//! reset-password`) chooses their password from a one-time link. Sign-in and the clinic's day
//! follow (issues 18 and 19).
//!
//! Thin adapters over `clinic_flows::users`. Pages are never cached, send no referrer and
//! carry the strict CSP of every page; a GET never changes anything; a POST from another
//! site is refused (its `Origin` must be this server's public address).

pub mod set_password;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use minijinja::{context, Value};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(set_password::configure);
}

/// Renders a console page: never cached, no referrer (the middleware sets it for all pages).
fn page(state: &AppState, status: StatusCode, template: &str, ctx: Value) -> Result<HttpResponse, ApiError> {
    crate::pages::clinic_page(state, status, template, ctx)
}

/// A console page that refuses: a heading, a sentence, and whom to ask.
fn refusal(state: &AppState, status: StatusCode, heading: &str, message: &str) -> Result<HttpResponse, ApiError> {
    page(state, status, "console/refused.html", context! { heading, message })
}

/// Whether a state-changing request comes from our own pages: its `Origin` (or, without
/// one, its `Referer`) must be the public address. Browsers send `Origin` on every POST from
/// a form; a request with neither header is refused too (OWASP CSRF cheat sheet).
fn same_origin(state: &AppState, req: &HttpRequest) -> bool {
    let ours = origin_of(&state.composer.public_url());
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    match (
        header(actix_web::http::header::ORIGIN),
        header(actix_web::http::header::REFERER),
    ) {
        (Some(origin), _) => ours.as_deref() == Some(origin.trim_end_matches('/')),
        (None, Some(referer)) => ours.is_some() && origin_of(referer) == ours,
        (None, None) => false,
    }
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// 403 for a POST that did not come from our own page.
fn cross_site(state: &AppState) -> Result<HttpResponse, ApiError> {
    refusal(
        state,
        StatusCode::FORBIDDEN,
        "This form was sent from another site",
        "Please open the page again from your link and send the form from there.",
    )
}
