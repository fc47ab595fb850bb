//! Route registration. Each module owns its handlers and DTOs.

pub mod appointments;
pub mod articles;
pub mod audit;
pub mod conditions;
pub mod health;
pub mod patients;
pub mod providers;
pub mod pumps;
pub mod reminders;
pub mod requests;
pub mod screening;
pub mod self_service;
pub mod self_service_links;
pub mod tokens;
pub mod users;

use actix_web::HttpRequest;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::problem::ApiError;

/// An id from the path. A malformed id names nothing, so it is 404 like an unknown one.
pub(crate) fn path_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(crate::pages::configure);
    cfg.configure(crate::my::configure);
    cfg.configure(crate::console::configure);
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(
            utoipa_actix_web::scope("/api/v1")
                .configure(tokens::configure)
                .configure(users::configure)
                .configure(patients::configure)
                .configure(audit::configure)
                .configure(articles::configure)
                .configure(conditions::configure)
                .configure(screening::configure)
                .configure(providers::configure)
                .configure(appointments::configure)
                .configure(requests::configure)
                .configure(pumps::configure)
                .configure(reminders::configure)
                .configure(self_service::configure)
                .configure(self_service_links::configure),
        );
}

/// Anything unrouted is a problem, not an empty body: 405 with `Allow` when the path exists
/// with other methods (RFC 9110 §15.5.6), otherwise 404.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    let allowed = allowed_methods(req.path());
    if allowed.is_empty() {
        Err(ApiError::NotFound("resource"))
    } else {
        Err(ApiError::MethodNotAllowed(allowed))
    }
}

/// The documented paths (templates split into segments) and their methods, from the OpenAPI
/// document, which holds every route.
static PATHS: std::sync::LazyLock<Vec<(Vec<String>, Vec<String>)>> = std::sync::LazyLock::new(|| {
    let doc = serde_json::to_value(crate::openapi_document()).unwrap_or_default();
    doc["paths"]
        .as_object()
        .map(|paths| {
            paths
                .iter()
                .map(|(path, item)| {
                    let segments = path.split('/').map(str::to_owned).collect();
                    let methods = item
                        .as_object()
                        .map(|m| m.keys().map(|k| k.to_uppercase()).collect())
                        .unwrap_or_default();
                    (segments, methods)
                })
                .collect()
        })
        .unwrap_or_default()
});

fn allowed_methods(path: &str) -> Vec<String> {
    let given: Vec<&str> = path.split('/').collect();
    let matching: Vec<&(Vec<String>, Vec<String>)> = PATHS
        .iter()
        .filter(|(template, _)| {
            template.len() == given.len()
                && template
                    .iter()
                    .zip(&given)
                    .all(|(t, g)| t == g || (t.starts_with('{') && !g.is_empty()))
        })
        .collect();
    // A literal path (`/reminders/preview`) is its own resource: the methods of a template
    // it also fits (`/reminders/{id}`) are not its methods.
    let literal: Vec<_> = matching
        .iter()
        .copied()
        .filter(|(template, _)| !template.iter().any(|t| t.starts_with('{')))
        .collect();
    let chosen = if literal.is_empty() { matching } else { literal };
    let mut methods: Vec<String> = chosen.iter().flat_map(|(_, m)| m.iter().cloned()).collect();
    methods.sort();
    methods.dedup();
    methods
}
