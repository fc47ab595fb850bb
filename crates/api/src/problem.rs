//! RFC 9457 problem details: every error the API returns is `application/problem+json`
//! with a stable `code`, and validation failures name each field.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use clinic_domain::auth::Scope;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// A problem details body (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:clinic:problem:validation_failed",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "invalid fields: email",
    "code": "validation_failed",
    "errors": [{"field": "email", "code": "invalid_email", "message": "not a valid email address"}]
}))]
pub struct Problem {
    /// `urn:clinic:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code; switch on this, not on `detail`.
    pub code: String,
    /// Per-field errors, for validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(ValidationErrors),
    #[error("{detail}")]
    BadRequest {
        code: &'static str,
        detail: String,
        field: Option<String>,
    },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("this token lacks the '{0}' scope")]
    Forbidden(Scope),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("too many requests from this address; try again in a minute")]
    TooManyRequests,
    #[error("this resource does not support that method; it allows {}", .0.join(", "))]
    MethodNotAllowed(Vec<String>),
    #[error("the database is unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(ValidationErrors::single(FieldError::new(field, code, message)))
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::BadRequest { code, .. } | ApiError::Conflict { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests => "rate_limited",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status_code();
        let errors = match self {
            ApiError::Validation(v) => v.errors().to_vec(),
            ApiError::BadRequest {
                code,
                detail,
                field: Some(field),
            } => vec![FieldError::new(field.clone(), code, detail.clone())],
            _ => Vec::new(),
        };
        Problem {
            problem_type: format!("urn:clinic:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().to_owned(),
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Details of server-side failures go to the log (they never hold patient values:
        // database errors carry the statement's message, not its parameters), not the client.
        match self {
            ApiError::Internal(detail) => tracing::error!(error = %detail, "request failed"),
            ApiError::Unavailable(detail) => tracing::warn!(error = %detail, "database unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if matches!(self, ApiError::TooManyRequests) {
            response.insert_header((header::RETRY_AFTER, "60"));
        }
        if matches!(self, ApiError::Unavailable(_)) {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        if let ApiError::MethodNotAllowed(methods) = self {
            response.insert_header((header::ALLOW, methods.join(", ")));
        }
        response.json(self.to_problem())
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Validation(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<clinic_auth::AuthError> for ApiError {
    fn from(e: clinic_auth::AuthError) -> Self {
        match e {
            clinic_auth::AuthError::NotFound => ApiError::NotFound("token"),
            clinic_auth::AuthError::InvalidToken => ApiError::Unauthorized,
            clinic_auth::AuthError::UserNotFound => ApiError::NotFound("user"),
            clinic_auth::AuthError::EmailTaken => ApiError::Conflict {
                code: "email_taken",
                detail: "a user with this email exists".into(),
            },
            clinic_auth::AuthError::Store(s) => s.into(),
        }
    }
}

impl From<clinic_patients::PatientError> for ApiError {
    fn from(e: clinic_patients::PatientError) -> Self {
        use clinic_patients::PatientError;
        match e {
            PatientError::NotFound => ApiError::NotFound("patient"),
            PatientError::VersionConflict { current } => ApiError::Conflict {
                code: "version_conflict",
                detail: format!("the record was changed by someone else; current version is {current}"),
            },
            PatientError::Store(s) => s.into(),
        }
    }
}

impl From<clinic_content::ContentError> for ApiError {
    fn from(e: clinic_content::ContentError) -> Self {
        use clinic_content::ContentError;
        match e {
            ContentError::NotFound(what) => ApiError::NotFound(what),
            ContentError::Conflict { code, detail } => ApiError::Conflict { code, detail },
            ContentError::Invalid(v) => ApiError::Validation(v),
            ContentError::Store(s) => s.into(),
        }
    }
}

impl From<clinic_scheduling::SchedulingError> for ApiError {
    fn from(e: clinic_scheduling::SchedulingError) -> Self {
        use clinic_domain::scheduling::Unbookable;
        use clinic_scheduling::SchedulingError;
        match e {
            SchedulingError::NotFound(what) => ApiError::NotFound(what),
            SchedulingError::Conflict { code, detail } => ApiError::Conflict { code, detail },
            SchedulingError::Unbookable(u @ Unbookable::Conflict(_)) => ApiError::Conflict {
                code: "slot_taken",
                detail: u.message(),
            },
            SchedulingError::Unbookable(u) => ApiError::field("start", u.code(), u.message()),
            SchedulingError::Invalid(v) => ApiError::Validation(v),
            SchedulingError::Store(s) => s.into(),
        }
    }
}

impl From<clinic_pumps::PumpError> for ApiError {
    fn from(e: clinic_pumps::PumpError) -> Self {
        use clinic_pumps::PumpError;
        match e {
            PumpError::NotFound(what) => ApiError::NotFound(what),
            PumpError::Conflict { code, detail } => ApiError::Conflict { code, detail },
            PumpError::Invalid(v) => ApiError::Validation(v),
            PumpError::Store(s) => s.into(),
        }
    }
}

impl From<clinic_reminders::ReminderError> for ApiError {
    fn from(e: clinic_reminders::ReminderError) -> Self {
        use clinic_reminders::ReminderError;
        match e {
            ReminderError::NotFound(what) => ApiError::NotFound(what),
            ReminderError::Conflict { code, detail } => ApiError::Conflict { code, detail },
            ReminderError::Invalid(v) => ApiError::Validation(v),
            ReminderError::Scheduling(s) => s.into(),
            ReminderError::Pumps(p) => p.into(),
            ReminderError::Patients(p) => p.into(),
            ReminderError::Store(s) => s.into(),
            e @ (ReminderError::Template(_) | ReminderError::Corrupt(_)) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<clinic_flows::FlowError> for ApiError {
    fn from(e: clinic_flows::FlowError) -> Self {
        use clinic_flows::FlowError;
        match e {
            FlowError::Patients(e) => e.into(),
            FlowError::Content(e) => e.into(),
            FlowError::Scheduling(e) => e.into(),
            FlowError::Pumps(e) => e.into(),
            FlowError::Reminders(e) => e.into(),
            FlowError::Store(e) => e.into(),
        }
    }
}
