//! Request observation (request id, one structured log line, metrics), the door's guard
//! (header size, path and query characters) and security headers.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{web, HttpMessage, HttpResponse, ResponseError};
use clinic_domain::ids::TokenId;
use tracing::Instrument;

use crate::edge;
use crate::extract::RequestId;
use crate::problem::ApiError;
use crate::state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A caller-supplied request id is kept when it is short and plain; otherwise a new one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .filter(|v| {
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Tags the request with an id, logs one line when it completes and records metrics.
/// The log line names the route pattern, never the path or query, which may carry
/// identifiers or search terms (patient names).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %method);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let mut response = result?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let token = response
        .request()
        .extensions()
        .get::<TokenId>()
        .map(ToString::to_string);
    span.in_scope(|| {
        tracing::info!(
            route = %route,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            token_id = token.as_deref().unwrap_or("-"),
            "request completed"
        );
    });
    if let Some(metrics) = metrics {
        metrics.observe(&method, &route, status, elapsed.as_secs_f64());
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(response)
}

/// Headers every response carries. No CORS headers are sent: cross-origin browser calls
/// are closed by default.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}

/// Whether a response for `path` is a page for people (HTML) rather than the JSON API.
fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/") || path.starts_with("/api-docs/") || path == "/metrics")
}

/// Sum of the header lines' bytes (`name: value\r\n`).
fn header_bytes(req: &ServiceRequest) -> usize {
    req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum()
}

/// The door itself (the checks are in [`edge`]): 431 for oversized headers, 404 for a path segment with a forbidden
/// character, 400 for such a query parameter; HTML doors get a page with the clinic's phone,
/// the API a problem body. Everything else passes on untouched.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refusal = if header_bytes(&req) > edge::MAX_HEADER_BYTES {
        Some(Refusal::HeadersTooLarge)
    } else if !edge::path_is_clean(req.path()) {
        Some(Refusal::Api(ApiError::NotFound("resource")))
    } else {
        edge::check_query(req.query_string()).err().map(Refusal::Api)
    };
    let Some(refusal) = refusal else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let response = match refusal {
        Refusal::HeadersTooLarge => header_problem(),
        Refusal::Api(e) if is_page(req.path()) => {
            let state = req.app_data::<web::Data<AppState>>().cloned();
            match state {
                Some(state) => crate::pages::error_page(&state, e.status_code()),
                None => e.error_response(),
            }
        }
        Refusal::Api(e) => e.error_response(),
    };
    Ok(req.into_response(response))
}

enum Refusal {
    HeadersTooLarge,
    Api(ApiError),
}

fn header_problem() -> HttpResponse {
    let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(serde_json::json!({
            "type": "urn:clinic:problem:headers_too_large",
            "title": "Request Header Fields Too Large",
            "status": status.as_u16(),
            "detail": format!("the request's headers hold more than {} bytes", edge::MAX_HEADER_BYTES),
            "code": "headers_too_large",
        }))
}
