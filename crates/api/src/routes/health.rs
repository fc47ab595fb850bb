//! Process health, database readiness and metrics.

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process answers. Touches no database.
#[utoipa::path(tag = "operations", operation_id = "get_health", security(()), responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// Readiness: a connection from the pool runs a trivial query.
#[utoipa::path(tag = "operations", operation_id = "get_readiness", security(()), responses((status = 200, body = Health)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<web::Json<Health>, ApiError> {
    state.db(clinic_store::ping).await?;
    Ok(web::Json(Health { status: "ready" }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    tag = "operations",
    operation_id = "get_metrics",
    description = "Open unless `CLINIC_METRICS_TOKEN` is set; then it needs `Authorization: Bearer` with that value.",
    security((), ("metrics_token" = [])),
    responses(
        (status = 401, description = "`CLINIC_METRICS_TOKEN` is set and the request does not carry it", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain",
        example = "# HELP clinic_http_request_duration_seconds HTTP request latency by method and route pattern\n\
        # TYPE clinic_http_request_duration_seconds histogram\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.0005\"} 0\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.001\"} 0\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.0025\"} 1\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.005\"} 6\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.01\"} 11\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.025\"} 12\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.05\"} 12\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.1\"} 12\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.25\"} 12\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"0.5\"} 12\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"1\"} 12\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"2.5\"} 12\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"5\"} 12\n\
        clinic_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/patients/{id}\",le=\"+Inf\"} 12\n\
        clinic_http_request_duration_seconds_sum{method=\"GET\",route=\"/api/v1/patients/{id}\"} 0.0731\n\
        clinic_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/patients/{id}\"} 12\n\
        # HELP clinic_http_requests_total HTTP requests by method, route pattern and status\n\
        # TYPE clinic_http_requests_total counter\n\
        clinic_http_requests_total{method=\"GET\",route=\"/api/v1/patients/{id}\",status=\"200\"} 11\n\
        clinic_http_requests_total{method=\"GET\",route=\"/api/v1/patients/{id}\",status=\"404\"} 1\n"))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.metrics_token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared in constant time: the answer's timing must not tell how much matched.
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiError::Unauthorized);
        }
    }
    let text = state.metrics.render().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
