//! `/api/v1/availability` and `/api/v1/appointments`: free slots, booking (idempotent with
//! `Idempotency-Key`; never double-booked), reschedule, cancel, status changes, history and
//! the iCalendar invitation. Writes need `scheduling:write`; reads of appointments are reads
//! of patient data and need `patients:read` (audited).

use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use clinic_domain::ids::{AppointmentId, PatientId, ProviderId};
use clinic_domain::scheduling::{AppointmentStatus, Span};
use clinic_domain::{FieldError, ValidationErrors};
use clinic_scheduling::appointments::{
    self as repo, Appointment, AppointmentFilter, Booking, IdempotencyKey, NewAppointment,
};
use clinic_scheduling::ical::{self, ClinicContact};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody, QueryParams};
use crate::pagination::{self, Page};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_availability)
        .service(create_appointment)
        .service(list_appointments)
        .service(get_appointment)
        .service(reschedule_appointment)
        .service(cancel_appointment)
        .service(check_in_appointment)
        .service(complete_appointment)
        .service(mark_no_show_appointment)
        .service(list_appointment_history)
        .service(get_appointment_ics);
}

/// The clinic's contact details for calendar text.
pub fn contact(state: &AppState) -> ClinicContact {
    ClinicContact {
        name: state.clinic.name.clone(),
        phone: state.clinic.phone.clone(),
        location: state
            .clinic
            .address
            .clone()
            .unwrap_or_else(|| state.clinic.name.clone()),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// One provider; omitted means every active provider.
    #[param(format = Uuid)]
    pub provider_id: Option<String>,
    /// Appointment type code, e.g. `refill`.
    pub appointment_type: String,
    /// Window start, RFC 3339 with an offset (encode `+` as `%2B`).
    pub from: DateTime<Utc>,
    /// Window end (exclusive), at most 92 days after `from`.
    pub to: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SlotResponse {
    /// The start instant (UTC).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The same start on the provider's wall clock (no offset), e.g. `2027-03-15T09:00:00`.
    #[schema(value_type = String, example = "2027-03-15T09:00:00")]
    pub local_start: NaiveDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderSlots {
    pub provider_id: String,
    pub provider_name: String,
    pub time_zone: String,
    pub slots: Vec<SlotResponse>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "appointment_type": "refill",
    "items": [
        {
            "provider_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11", "provider_name": "Dr. Ana Ruiz",
            "time_zone": "America/Chicago",
            "slots": [
                {"start": "2027-03-15T14:00:00Z", "end": "2027-03-15T14:30:00Z", "local_start": "2027-03-15T09:00:00"},
                {"start": "2027-03-15T14:15:00Z", "end": "2027-03-15T14:45:00Z", "local_start": "2027-03-15T09:15:00"}
            ]
        }
    ]
}))]
pub struct AvailabilityResponse {
    pub appointment_type: String,
    pub items: Vec<ProviderSlots>,
}

/// Free start times honouring working hours (breaks are gaps), time off, clinic closures,
/// existing appointments with their buffers, minimum notice and booking horizon. Slots are
/// laid every 15 minutes on each provider's wall clock, so 09:00 stays 09:00 across DST;
/// a wall time that does not exist that day is not offered, one that occurs twice is offered
/// once (its first occurrence).
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(AvailabilityQuery),
    responses((status = 200, body = AvailabilityResponse))
)]
#[get("/availability")]
pub async fn get_availability(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::SchedulingWrite>,
    query: QueryParams<AvailabilityQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner()?;
    let mut e = ValidationErrors::new();
    if q.to <= q.from {
        e.push(FieldError::new("to", "end_before_start", "to must be after from"));
    } else if q.to - q.from > Duration::days(92) {
        e.push(FieldError::new(
            "to",
            "window_too_long",
            "the window is at most 92 days",
        ));
    }
    let provider = match q.provider_id.as_deref().map(str::parse::<ProviderId>) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            e.push(FieldError::new(
                "provider_id",
                "unknown_provider",
                "no active provider with this id",
            ));
            None
        }
    };
    e.finish()?;
    let (now, zone, code) = (state.now(), state.clinic.time_zone, q.appointment_type.clone());
    // Answers depend on the query and, through minimum notice, on the minute.
    let key = format!(
        "{}|{}|{}|{}|{}",
        provider.map(|p| p.to_string()).unwrap_or_default(),
        code,
        q.from.timestamp(),
        q.to.timestamp(),
        now.timestamp().div_euclid(60)
    );
    if let Some(answer) = state.availability.get(&key) {
        return Ok(HttpResponse::Ok().content_type("application/json").body(answer));
    }
    let window = Span::new(q.from, q.to);
    let found = state
        .db(move |conn| repo::availability(conn, provider, &code, window, zone, now))
        .await?;
    let answer = AvailabilityResponse {
        appointment_type: q.appointment_type,
        items: found
            .into_iter()
            .map(|(p, slots)| ProviderSlots {
                provider_id: p.id.to_string(),
                provider_name: p.name,
                time_zone: p.time_zone.name().to_owned(),
                slots: slots
                    .into_iter()
                    .map(|s| SlotResponse {
                        start: s.start,
                        end: s.end,
                        local_start: s.local,
                    })
                    .collect(),
            })
            .collect(),
    };
    let bytes = Bytes::from(serde_json::to_vec(&answer).map_err(|e| ApiError::Internal(e.to_string()))?);
    state.availability.insert(key, bytes.clone());
    Ok(HttpResponse::Ok().content_type("application/json").body(bytes))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e12", "patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10",
    "provider_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11", "appointment_type": "refill",
    "appointment_type_name": "Refill", "start": "2027-03-15T14:00:00Z", "end": "2027-03-15T14:30:00Z",
    "local_start": "2027-03-15T09:00:00", "local_end": "2027-03-15T09:30:00", "time_zone": "America/Chicago",
    "status": "booked", "note": null, "cancel_reason": null, "sequence": 0, "version": 1,
    "created_at": "2027-03-01T15:00:00Z", "updated_at": "2027-03-01T15:00:00Z",
    "ics_url": "/api/v1/appointments/0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e12/ics",
    "patient_confirmed_at": null
}))]
pub struct AppointmentResponse {
    pub id: String,
    pub patient_id: String,
    pub provider_id: String,
    pub appointment_type: String,
    pub appointment_type_name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Start on the provider's wall clock.
    #[schema(value_type = String)]
    pub local_start: NaiveDateTime,
    #[schema(value_type = String)]
    pub local_end: NaiveDateTime,
    /// The provider's zone.
    pub time_zone: String,
    pub status: AppointmentStatus,
    pub note: Option<String>,
    pub cancel_reason: Option<String>,
    /// iCalendar SEQUENCE: grows with every reschedule and the cancellation.
    pub sequence: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ics_url: String,
    /// When the patient confirmed the visit from the link in their email; null until then,
    /// and again after a reschedule.
    pub patient_confirmed_at: Option<DateTime<Utc>>,
}

impl From<Appointment> for AppointmentResponse {
    fn from(a: Appointment) -> Self {
        let tz = a.provider_zone.tz();
        Self {
            ics_url: format!("/api/v1/appointments/{}/ics", a.id),
            id: a.id.to_string(),
            patient_id: a.patient_id.to_string(),
            provider_id: a.provider_id.to_string(),
            appointment_type: a.type_code,
            appointment_type_name: a.type_name,
            local_start: a.start.with_timezone(&tz).naive_local(),
            local_end: a.end.with_timezone(&tz).naive_local(),
            start: a.start,
            end: a.end,
            time_zone: a.provider_zone.name().to_owned(),
            status: a.status,
            note: a.note,
            cancel_reason: a.cancel_reason,
            sequence: a.sequence,
            version: a.version,
            patient_confirmed_at: a.patient_confirmed_at,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", "provider_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11",
    "appointment_type": "refill", "start": "2027-03-15T09:00:00-05:00", "note": "bring pump card"
}))]
pub struct CreateAppointmentRequest {
    #[schema(format = Uuid)]
    pub patient_id: String,
    #[schema(format = Uuid)]
    pub provider_id: String,
    pub appointment_type: String,
    /// RFC 3339 with an offset; a timestamp without one is refused.
    pub start: DateTime<Utc>,
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

fn parse_note(e: &mut ValidationErrors, note: Option<String>) -> Option<String> {
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > 1000) {
        e.push(FieldError::new("note", "too_long", "a note is at most 1000 characters"));
    }
    note
}

fn idempotency_key(
    req: &HttpRequest,
    auth: &Authorized<scopes::SchedulingWrite>,
    body: &impl Serialize,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(raw) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                "invalid_idempotency_key",
                "1 to 255 visible ASCII characters",
            )
        })?;
    let canonical = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Some(IdempotencyKey {
        scope: format!("{}:create_appointment", auth.principal.token_id),
        key: key.to_owned(),
        request_hash: hex::encode(Sha256::digest(&canonical)),
    }))
}

/// Book an appointment. The slot must be free (409 `slot_taken` names the conflicting
/// time) and within the type's rules (422 on `start`). With an `Idempotency-Key`, repeating
/// the same request returns the same appointment; reusing the key for another request is 422.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body → the same appointment")),
    request_body = CreateAppointmentRequest,
    responses(
        (status = 201, body = AppointmentResponse),
        (status = 409, description = "The provider is busy then (`slot_taken`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/appointments")]
pub async fn create_appointment(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authorized<scopes::SchedulingWrite>,
    body: JsonBody<CreateAppointmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner()?;
    let key = idempotency_key(&req, &auth, &b)?;
    let mut e = ValidationErrors::new();
    let patient_id = e.check(
        "patient_id",
        b.patient_id.parse::<PatientId>().map_err(|f| f.at("patient_id")),
    );
    let provider_id = e.check(
        "provider_id",
        b.provider_id.parse::<ProviderId>().map_err(|f| f.at("provider_id")),
    );
    let note = parse_note(&mut e, b.note);
    let (Some(patient_id), Some(provider_id)) = (patient_id, provider_id) else {
        return Err(e.into());
    };
    e.finish()?;
    let new = NewAppointment {
        patient_id,
        provider_id,
        type_code: b.appointment_type,
        start: clinic_store::time::from_db(clinic_store::time::to_db(b.start)),
        note,
    };
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let booking = state
        .db(move |conn| clinic_flows::appointments::book(conn, &auth.actor, new, key, zone, now))
        .await?;
    state.availability.clear();
    let (Booking::Created(a) | Booking::Replayed(a)) = booking;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/appointments/{}", a.id)))
        .json(AppointmentResponse::from(a)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAppointmentsQuery {
    #[param(format = Uuid)]
    pub provider_id: Option<String>,
    #[param(format = Uuid)]
    pub patient_id: Option<String>,
    pub status: Option<AppointmentStatus>,
    /// Appointments starting at or after (RFC 3339 with offset).
    pub from: Option<DateTime<Utc>>,
    /// Appointments starting before.
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List appointments by start time with filters; every listed patient's access is audited.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["patients:read"])),
    params(ListAppointmentsQuery),
    responses((status = 200, body = Page<AppointmentResponse>))
)]
#[get("/appointments")]
pub async fn list_appointments(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsRead>,
    query: QueryParams<ListAppointmentsQuery>,
) -> Result<web::Json<Page<AppointmentResponse>>, ApiError> {
    let q = query.into_inner()?;
    let limit = pagination::limit(q.limit)?;
    let mut e = ValidationErrors::new();
    let provider = q
        .provider_id
        .as_deref()
        .and_then(|p| e.check("provider_id", p.parse::<ProviderId>()));
    let patient = q
        .patient_id
        .as_deref()
        .and_then(|p| e.check("patient_id", p.parse::<PatientId>()));
    e.finish()?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| pagination::decode_instant_cursor(pagination::List::Appointments, c))
        .transpose()?;
    let filter = AppointmentFilter {
        provider,
        patient,
        status: q.status,
        from: q.from,
        to: q.to,
        after,
    };
    let now = state.now();
    let (list, more) = state
        .db_audited(move |conn, audit| repo::list(conn, audit, &auth.actor, &filter, limit, now))
        .await?;
    let next_cursor = if more {
        list.last()
            .map(|a| pagination::instant_cursor(pagination::List::Appointments, a.start, &a.id))
    } else {
        None
    };
    Ok(web::Json(Page {
        items: list.into_iter().map(AppointmentResponse::from).collect(),
        next_cursor,
    }))
}

/// Read an appointment (audited).
#[utoipa::path(tag = "scheduling", security(("bearer" = ["patients:read"])), params(("id" = String, Path, description = "Appointment id")), responses((status = 200, body = AppointmentResponse)))]
#[get("/appointments/{id}")]
pub async fn get_appointment(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsRead>,
    id: web::Path<String>,
) -> Result<web::Json<AppointmentResponse>, ApiError> {
    let id: AppointmentId = super::path_id(&id, "appointment")?;
    let now = state.now();
    Ok(web::Json(
        state
            .db_audited_keyed(move |conn, audit| repo::get(conn, audit, &auth.actor, id, now))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": "2027-03-16T10:00:00-05:00"}))]
pub struct RescheduleRequest {
    /// The new start, RFC 3339 with an offset.
    pub start: DateTime<Utc>,
    /// The appointment's `version` as the caller last saw it. When given, an appointment
    /// changed since (patients move their own visits from their links) is a 409
    /// `version_conflict` instead of being moved again; without it the move applies to the
    /// appointment as it is.
    #[serde(default)]
    pub version: Option<i64>,
}

/// Move a booked appointment (same id, SEQUENCE + 1) under the same rules as booking.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(("id" = String, Path, description = "Appointment id")),
    request_body = RescheduleRequest,
    responses(
        (status = 200, body = AppointmentResponse),
        (status = 409, description = "Slot taken, the appointment is not booked (`invalid_transition`), or it changed since `version` (`version_conflict`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/appointments/{id}/reschedule")]
pub async fn reschedule_appointment(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
    body: JsonBody<RescheduleRequest>,
) -> Result<web::Json<AppointmentResponse>, ApiError> {
    let id: AppointmentId = super::path_id(&id, "appointment")?;
    let body = body.into_inner()?;
    let (start, expected) = (
        clinic_store::time::from_db(clinic_store::time::to_db(body.start)),
        body.version,
    );
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let changed = state
        .db(move |conn| clinic_flows::appointments::reschedule(conn, &auth.actor, id, expected, start, zone, now))
        .await?;
    state.availability.clear();
    Ok(web::Json(changed.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "patient asked to cancel"}))]
pub struct CancelRequest {
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

async fn change(
    state: &AppState,
    auth: &Authorized<impl crate::extract::RequiredScope>,
    id: &str,
    to: AppointmentStatus,
    reason: Option<String>,
) -> Result<web::Json<AppointmentResponse>, ApiError> {
    let id: AppointmentId = super::path_id(id, "appointment")?;
    let (actor, now) = (auth.actor.clone(), state.now());
    let changed = state
        .db(move |conn| clinic_flows::appointments::set_status(conn, &actor, id, to, reason, now))
        .await?;
    state.availability.clear();
    Ok(web::Json(changed.into()))
}

/// Cancel a booked or checked-in appointment with a reason; its time is freed and its
/// invitation becomes a CANCEL.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(("id" = String, Path, description = "Appointment id")),
    request_body = CancelRequest,
    responses((status = 200, body = AppointmentResponse), (status = 409, description = "Not cancellable (`invalid_transition`)", body = Problem, content_type = "application/problem+json"))
)]
#[post("/appointments/{id}/cancel")]
pub async fn cancel_appointment(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
    body: JsonBody<CancelRequest>,
) -> Result<web::Json<AppointmentResponse>, ApiError> {
    let reason = crate::fields::reason(&body.into_inner()?.reason)?;
    change(&state, &auth, &id, AppointmentStatus::Cancelled, Some(reason)).await
}

/// The patient has arrived (booked → checked_in).
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Appointment id")),
    responses((status = 200, body = AppointmentResponse), (status = 409, description = "`invalid_transition`", body = Problem, content_type = "application/problem+json")))]
#[post("/appointments/{id}/check-in")]
pub async fn check_in_appointment(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<AppointmentResponse>, ApiError> {
    change(&state, &auth, &id, AppointmentStatus::CheckedIn, None).await
}

/// The visit took place (checked_in → completed).
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Appointment id")),
    responses((status = 200, body = AppointmentResponse), (status = 409, description = "`invalid_transition`", body = Problem, content_type = "application/problem+json")))]
#[post("/appointments/{id}/complete")]
pub async fn complete_appointment(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<AppointmentResponse>, ApiError> {
    change(&state, &auth, &id, AppointmentStatus::Completed, None).await
}

/// The patient did not come (booked → no_show). Only once the appointment has started.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Appointment id")),
    responses((status = 200, body = AppointmentResponse), (status = 409, description = "Not booked (`invalid_transition`), or not started yet (`not_started`)", body = Problem, content_type = "application/problem+json")))]
#[post("/appointments/{id}/no-show")]
pub async fn mark_no_show_appointment(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<AppointmentResponse>, ApiError> {
    change(&state, &auth, &id, AppointmentStatus::NoShow, None).await
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "at": "2027-03-02T16:20:00Z", "actor_token_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1a", "action": "rescheduled",
    "detail": "2027-03-12T15:00:00+00:00 → 2027-03-15T14:00:00+00:00", "actor_type": "token", "actor_link": null, "actor_user_id": null
}))]
pub struct HistoryEntryResponse {
    pub at: DateTime<Utc>,
    /// The token that made the change.
    pub actor_token_id: Option<String>,
    /// booked, rescheduled, patient_confirmed, checked_in, completed, no_show, cancelled
    pub action: String,
    pub detail: Option<String>,
    /// `token`, `user` (a staff member in the console), `patient_link` (the patient, from
    /// their self-service link) or `system`.
    pub actor_type: String,
    /// `appointment:<id>` or `refill:<pump id>` when the patient acted from a link.
    pub actor_link: Option<String>,
    /// The staff member, when a person made the change (a session or their personal token).
    pub actor_user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryList {
    /// Oldest first.
    pub items: Vec<HistoryEntryResponse>,
}

/// Who changed the appointment and when.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["patients:read"])), params(("id" = String, Path, description = "Appointment id")), responses((status = 200, body = HistoryList)))]
#[get("/appointments/{id}/history")]
pub async fn list_appointment_history(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsRead>,
    id: web::Path<String>,
) -> Result<web::Json<HistoryList>, ApiError> {
    let id: AppointmentId = super::path_id(&id, "appointment")?;
    let now = state.now();
    let list = state
        .db_audited(move |conn, audit| {
            repo::get(conn, audit, &auth.actor, id, now)?;
            repo::history_of(conn, id)
        })
        .await?;
    Ok(web::Json(HistoryList {
        items: list
            .into_iter()
            .map(|h| HistoryEntryResponse {
                at: h.at,
                actor_type: clinic_patients::audit::kind_of(
                    h.actor_token_id.is_some(),
                    h.actor_link.is_some(),
                    h.actor_user_id.is_some(),
                )
                .to_owned(),
                actor_link: h.actor_link,
                actor_user_id: h.actor_user_id,
                actor_token_id: h.actor_token_id,
                action: h.action,
                detail: h.detail,
            })
            .collect(),
    }))
}

/// The appointment as an iCalendar invitation (RFC 5545): stable UID, growing SEQUENCE,
/// `METHOD:REQUEST` while it stands, `METHOD:CANCEL` + `STATUS:CANCELLED` once cancelled.
/// Times in UTC; no clinical words.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["patients:read"])),
    params(("id" = String, Path, description = "Appointment id")),
    responses((status = 200, description = "iCalendar", content_type = "text/calendar", body = String,
        example = "BEGIN:VCALENDAR\r\n\
        VERSION:2.0\r\n\
        PRODID:-//Clinic Platform//Clinic Platform 0.1.0//EN\r\n\
        CALSCALE:GREGORIAN\r\n\
        METHOD:REQUEST\r\n\
        BEGIN:VEVENT\r\n\
        DESCRIPTION:To confirm or reschedule\\, call +13125550100.\r\n\
        DTEND:20270315T143000Z\r\n\
        DTSTAMP:20270301T150000Z\r\n\
        DTSTART:20270315T140000Z\r\n\
        LOCATION:1200 W Harrison St\\, Chicago\\, IL 60607\r\n\
        SEQUENCE:0\r\n\
        STATUS:CONFIRMED\r\n\
        SUMMARY:Appointment at Lakeside Pain Clinic\r\n\
        UID:0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e12@clinic-platform\r\n\
        END:VEVENT\r\n\
        END:VCALENDAR\r\n"))
)]
#[get("/appointments/{id}/ics")]
pub async fn get_appointment_ics(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: AppointmentId = super::path_id(&id, "appointment")?;
    let now = state.now();
    let a = state
        .db_audited_keyed(move |conn, audit| repo::get(conn, audit, &auth.actor, id, now))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(
            "text/calendar; charset=utf-8; method=".to_owned()
                + if a.status == AppointmentStatus::Cancelled {
                    "CANCEL"
                } else {
                    "REQUEST"
                },
        )
        .insert_header(("Content-Disposition", "attachment; filename=\"appointment.ics\""))
        .body(ical::appointment_invite(&a, &contact(&state), now)))
}
