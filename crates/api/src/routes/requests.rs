//! Appointment requests. `POST /api/v1/appointment-requests` is public: no token,
//! rate-limited per client address, strictly validated, and it answers with a reference
//! only (nothing the requester sent is echoed). Staff (`scheduling:write`) list, confirm
//! (creating or linking the patient and booking in one transaction) or decline them.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use clinic_domain::contact::{EmailAddress, PersonName, Phone};
use clinic_domain::ids::{AppointmentRequestId, PatientId, ProviderId};
use clinic_domain::{FieldError, ValidationErrors};
use clinic_scheduling::requests::{self as repo, AppointmentRequest, Confirmation, NewRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody, QueryParams};
use crate::pagination::{self, Page};
use crate::problem::{ApiError, Problem};
use crate::routes::appointments::AppointmentResponse;
use crate::state::{AppState, ClinicInfo};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_appointment_request)
        .service(list_appointment_requests)
        .service(get_appointment_request)
        .service(confirm_appointment_request)
        .service(decline_appointment_request);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "given_name": "Maria", "family_name": "Lopez", "email": "maria.lopez@example.org", "phone": "(312) 555-0142",
    "preferred_times": "Weekday mornings", "reason": "consultation", "consent_to_contact": true
}))]
pub struct AppointmentRequestBody {
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    pub given_name: String,
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    pub family_name: String,
    pub email: String,
    pub phone: String,
    /// Free text: preferred days or times (at most 500 characters).
    #[schema(min_length = 1, max_length = 500)]
    pub preferred_times: String,
    /// The code of a publicly requestable appointment type (e.g. `consultation`).
    pub reason: String,
    /// Must be true: we may contact you about this request.
    pub consent_to_contact: bool,
}

impl AppointmentRequestBody {
    /// Parses into the domain request; shared by the JSON route and the HTML form.
    /// `requestable`: codes of the active, publicly requestable types.
    pub fn into_request(self, clinic: &ClinicInfo, requestable: &[String]) -> Result<NewRequest, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let given = e.check("given_name", PersonName::parse(&self.given_name));
        let family = e.check("family_name", PersonName::parse(&self.family_name));
        let email = e.check("email", EmailAddress::parse(&self.email));
        let phone = e.check("phone", Phone::parse(&self.phone, clinic.phone_region));
        // Browsers send a textarea's line breaks as CRLF (HTML's form encoding): keep them as LF.
        let preferred = self.preferred_times.replace("\r\n", "\n").trim().to_owned();
        if preferred.is_empty()
            || preferred.chars().count() > 500
            || preferred.chars().any(|c| c.is_control() && c != '\n')
        {
            e.push(FieldError::new(
                "preferred_times",
                "invalid_length",
                "tell us when suits you, in 1 to 500 characters",
            ));
        }
        let reason = self.reason.trim().to_owned();
        if !requestable.contains(&reason) {
            e.push(FieldError::new(
                "reason",
                "not_requestable",
                "this kind of appointment cannot be requested online; please call the clinic",
            ));
        }
        if !self.consent_to_contact {
            e.push(FieldError::new(
                "consent_to_contact",
                "consent_required",
                "we need your consent to contact you",
            ));
        }
        let (Some(given_name), Some(family_name), Some(email), Some(phone)) = (given, family, email, phone) else {
            return Err(e);
        };
        e.finish()?;
        Ok(NewRequest {
            given_name,
            family_name,
            email,
            phone,
            preferred_times: preferred,
            type_code: reason,
            consent_to_contact: self.consent_to_contact,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct RequestReceipt {
    /// Quote this reference when you call the clinic.
    #[schema(example = "REQ-7KQ2M9XW")]
    pub reference: String,
}

/// Submits a request after the per-address rate limit; shared by the JSON route and the form.
pub async fn submit(state: &AppState, req: &HttpRequest, body: AppointmentRequestBody) -> Result<String, ApiError> {
    if !state.public_limiter.allow(req.peer_addr().map(|a| a.ip())) {
        return Err(ApiError::TooManyRequests);
    }
    let requestable: Vec<String> = state
        .db(clinic_scheduling::types::list)
        .await?
        .into_iter()
        .filter(|t| t.active && t.publicly_requestable)
        .map(|t| t.code)
        .collect();
    let new = body.into_request(&state.clinic, &requestable)?;
    let now = state.now();
    state
        .db(move |conn| clinic_flows::requests::submit(conn, new, now))
        .await
}

/// Ask for an appointment (public, no token, rate-limited per address). The answer is a
/// reference only; the clinic calls or emails back.
#[utoipa::path(
    tag = "scheduling",
    security(()),
    request_body = AppointmentRequestBody,
    responses(
        (status = 201, body = RequestReceipt),
        (status = 429, description = "Too many requests from this address (`rate_limited`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/appointment-requests")]
pub async fn create_appointment_request(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<AppointmentRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let reference = submit(&state, &req, body.into_inner()?).await?;
    Ok(HttpResponse::Created().json(RequestReceipt { reference }))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e17", "reference": "REQ-7KQ2M9XW", "given_name": "Maria",
    "family_name": "Lopez", "email": "maria.lopez@example.org", "phone": "+13125550142",
    "preferred_times": "Weekday mornings", "reason": "consultation", "consent_to_contact": true, "status": "new",
    "decline_reason": null, "patient_id": null, "appointment_id": null, "handled_by": null, "handled_at": null,
    "created_at": "2027-03-01T14:12:09Z"
}))]
pub struct AppointmentRequestResponse {
    pub id: String,
    pub reference: String,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    pub phone: String,
    pub preferred_times: String,
    pub reason: String,
    pub consent_to_contact: bool,
    /// new, confirmed or declined
    pub status: String,
    pub decline_reason: Option<String>,
    pub patient_id: Option<String>,
    pub appointment_id: Option<String>,
    pub handled_by: Option<String>,
    pub handled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<AppointmentRequest> for AppointmentRequestResponse {
    fn from(r: AppointmentRequest) -> Self {
        Self {
            id: r.id,
            reference: r.reference,
            given_name: r.given_name,
            family_name: r.family_name,
            email: r.email,
            phone: r.phone,
            preferred_times: r.preferred_times,
            reason: r.type_code,
            consent_to_contact: r.consent_to_contact,
            status: r.status,
            decline_reason: r.decline_reason,
            patient_id: r.patient_id,
            appointment_id: r.appointment_id,
            handled_by: r.handled_by,
            handled_at: r.handled_at.map(clinic_store::time::from_db),
            created_at: clinic_store::time::from_db(r.created_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRequestsQuery {
    /// new, confirmed or declined (default: all)
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Appointment requests, oldest first.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(ListRequestsQuery), responses((status = 200, body = Page<AppointmentRequestResponse>)))]
#[get("/appointment-requests")]
pub async fn list_appointment_requests(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    query: QueryParams<ListRequestsQuery>,
) -> Result<web::Json<Page<AppointmentRequestResponse>>, ApiError> {
    let q = query.into_inner()?;
    let limit = pagination::limit(q.limit)?;
    if q.status
        .as_deref()
        .is_some_and(|s| !["new", "confirmed", "declined"].contains(&s))
    {
        return Err(ApiError::field(
            "status",
            "invalid_status",
            "expected new, confirmed or declined",
        ));
    }
    let after = q
        .cursor
        .as_deref()
        .map(|c| pagination::cursor_key::<AppointmentRequestId>(pagination::List::AppointmentRequests, c))
        .transpose()?;
    let (status, now) = (q.status, state.now());
    let (list, more) = state
        .db_audited(move |conn, audit| repo::list(conn, audit, &auth.actor, status.as_deref(), after, limit, now))
        .await?;
    let next_cursor = if more {
        list.last()
            .map(|r| pagination::cursor(pagination::List::AppointmentRequests, &r.id))
    } else {
        None
    };
    Ok(web::Json(Page {
        items: list.into_iter().map(AppointmentRequestResponse::from).collect(),
        next_cursor,
    }))
}

/// Read one request.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Request id")), responses((status = 200, body = AppointmentRequestResponse)))]
#[get("/appointment-requests/{id}")]
pub async fn get_appointment_request(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<AppointmentRequestResponse>, ApiError> {
    let id: AppointmentRequestId = super::path_id(&id, "appointment request")?;
    let now = state.now();
    Ok(web::Json(
        state
            .db_audited_keyed(move |conn, audit| repo::read(conn, audit, &auth.actor, id, now))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11", "start": "2027-03-15T09:00:00-05:00"}))]
pub struct ConfirmRequestBody {
    /// An existing patient; omitted creates one from the request (without email consent).
    #[schema(format = Uuid)]
    pub patient_id: Option<String>,
    #[schema(format = Uuid)]
    pub provider_id: String,
    /// RFC 3339 with an offset.
    pub start: DateTime<Utc>,
    pub note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConfirmedRequest {
    pub request: AppointmentRequestResponse,
    pub appointment: AppointmentResponse,
}

/// Confirm a request: create (or link) the patient and book, in one transaction.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(("id" = String, Path, description = "Request id")),
    request_body = ConfirmRequestBody,
    responses(
        (status = 200, body = ConfirmedRequest),
        (status = 409, description = "Already handled, or the slot is taken", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/appointment-requests/{id}/confirm")]
pub async fn confirm_appointment_request(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
    body: JsonBody<ConfirmRequestBody>,
) -> Result<web::Json<ConfirmedRequest>, ApiError> {
    let id: AppointmentRequestId = super::path_id(&id, "appointment request")?;
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let patient_id = match b.patient_id.as_deref() {
        None => Some(None),
        Some(p) => e.check("patient_id", p.parse::<PatientId>()).map(Some),
    };
    let provider_id = e.check("provider_id", b.provider_id.parse::<ProviderId>());
    let (Some(patient_id), Some(provider_id)) = (patient_id, provider_id) else {
        return Err(e.into());
    };
    let c = Confirmation {
        patient_id,
        provider_id,
        start: clinic_store::time::from_db(clinic_store::time::to_db(b.start)),
        note: b.note.map(|n| n.trim().chars().take(1000).collect()),
    };
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let (request, appointment) = state
        .db(move |conn| clinic_flows::requests::confirm(conn, &auth.actor, id, c, zone, now))
        .await?;
    state.availability.clear();
    Ok(web::Json(ConfirmedRequest {
        request: request.into(),
        appointment: appointment.into(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "We do not treat this condition; referred back to the family doctor."}))]
pub struct DeclineRequestBody {
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// Decline a request with a reason.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(("id" = String, Path, description = "Request id")),
    request_body = DeclineRequestBody,
    responses((status = 200, body = AppointmentRequestResponse), (status = 409, description = "Already handled", body = Problem, content_type = "application/problem+json"))
)]
#[post("/appointment-requests/{id}/decline")]
pub async fn decline_appointment_request(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
    body: JsonBody<DeclineRequestBody>,
) -> Result<web::Json<AppointmentRequestResponse>, ApiError> {
    let id: AppointmentRequestId = super::path_id(&id, "appointment request")?;
    let reason = crate::fields::reason(&body.into_inner()?.reason)?;
    let now = state.now();
    Ok(web::Json(
        state
            .db(move |conn| clinic_flows::requests::decline(conn, &auth.actor, id, reason, now))
            .await?
            .into(),
    ))
}
