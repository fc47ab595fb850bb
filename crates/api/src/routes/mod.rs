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
pub mod tokens;

use actix_web::HttpRequest;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::problem::ApiError;

/// An id from the path. A malformed id names nothing, so it is 404 like an unknown one.
pub(crate) fn path_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(crate::pages::configure);
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(
            utoipa_actix_web::scope("/api/v1")
                .configure(tokens::configure)
                .configure(patients::configure)
                .configure(audit::configure)
                .configure(articles::configure)
                .configure(conditions::configure)
                .configure(screening::configure)
                .configure(providers::configure)
                .configure(appointments::configure)
                .configure(requests::configure)
                .configure(pumps::configure)
                .configure(reminders::configure),
        );
}

/// Anything unrouted is a 404 problem, not an empty body.
pub async fn not_found(_req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("resource"))
}
