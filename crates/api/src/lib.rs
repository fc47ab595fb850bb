//! `clinic-api`: the actix-web service.
//!
//! Routes, DTOs (with their OpenAPI schemas), bearer-token auth with scopes, RFC 9457
//! problem responses, request ids, metrics, the OpenAPI document and Swagger UI. Handlers
//! hold no SQL and no business rules: they turn a DTO into a domain command, call the
//! capability crate inside [`state::AppState::db`], and turn the result back into a DTO.

pub mod availability_cache;
pub mod console;
pub mod content_cache;
pub mod edge;
pub mod extract;
pub mod fields;
pub mod metrics;
pub mod middleware;
pub mod my;
pub mod openapi;
pub mod pages;
pub mod pagination;
pub mod plot;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod state;
pub mod token_cache;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

pub use problem::ApiError;
pub use state::{AppState, ClinicInfo};

/// Where the OpenAPI JSON is served.
pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";

/// The whole application for one worker: routes, docs and middleware.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = state.limits.max_body_bytes;
    let (app, api) = App::new()
        .into_utoipa_app()
        .openapi(openapi::base())
        .app_data(web::Data::new(state.clone()))
        .app_data(extract::BodyLimit(body_limit))
        .app_data(extract::path_config())
        .configure(routes::configure)
        .split_for_parts();
    let api = openapi::finish(api);
    app.service(SwaggerUi::new("/swagger-ui/{_:.*}").url(OPENAPI_PATH, api))
        .service(web::redirect("/swagger-ui", "/swagger-ui/"))
        .default_service(web::to(routes::not_found))
        .wrap(actix_web::middleware::from_fn(middleware::guard))
        .wrap(actix_web::middleware::from_fn(middleware::observe))
        .wrap(middleware::security_headers())
}

/// The OpenAPI document exactly as the server serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(openapi::base())
        .configure(routes::configure)
        .split_for_parts();
    openapi::finish(api)
}
