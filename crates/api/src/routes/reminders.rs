//! `/api/v1/reminders` (`reminders:admin`): the email outbox (list with filters, one row
//! with its rendered email, retry, void), the reminder settings, and previews of any email
//! without sending it. `/api/v1/worklists/outreach`: the patients staff must phone
//! (`patients:read`; marking one done needs `patients:write`). Every access is audited
//! against the patient it concerns.

use actix_web::{get, post, put, web};
use chrono::{DateTime, Utc};
use clinic_domain::ids::PatientId;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_patients::audit::{Actor, PendingEvent};
use clinic_reminders::outbox::{self, OutboxRow};
use clinic_reminders::outreach::{self, Entry, Reason};
use clinic_reminders::settings::{self, SettingsDocument};
use clinic_reminders::templates::{EmailContext, EmailKind};
use clinic_store::time;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody, QueryParams};
use crate::pagination::{self, Page};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    // The fixed paths first, so `settings` and `preview` are never read as ids.
    cfg.service(get_reminder_status)
        .service(get_reminder_settings)
        .service(update_reminder_settings)
        .service(preview_email)
        .service(list_reminders)
        .service(get_reminder)
        .service(retry_reminder)
        .service(void_reminder)
        .service(list_outreach)
        .service(mark_outreach_done);
}

/// An optional patient id from a query or body, its error recorded against `field`.
fn optional_patient(e: &mut ValidationErrors, field: &str, raw: Option<&str>) -> Option<PatientId> {
    let parsed = raw.map(|p| p.parse::<PatientId>().map_err(|f| f.at(field))).transpose();
    e.check(field, parsed).flatten()
}

fn events(
    actor: &Actor,
    action: &'static str,
    patients: impl IntoIterator<Item = String>,
    at: DateTime<Utc>,
) -> Vec<PendingEvent> {
    patients
        .into_iter()
        .map(|p| PendingEvent {
            actor: actor.clone(),
            action,
            subject_type: "patient",
            subject_id: p,
            at,
        })
        .collect()
}

// ---- outbox rows ------------------------------------------------------------------------

// The closed value sets of this API, for the document (fields are read as text so that a
// wrong value is a 422 naming the field).

/// An email kind.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum EmailKindName {
    AppointmentConfirmation,
    AppointmentUpdate,
    AppointmentCancellation,
    AppointmentReminder,
    RefillReminder,
}

/// An outbox row's state.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum OutboxState {
    Pending,
    Sending,
    Sent,
    Failed,
    Void,
}

/// Why staff should phone a patient.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum OutreachReason {
    RefillUnbooked,
    EmailFailed,
    NoEmail,
    ReminderNotSent,
    EmailStopped,
    CancelledByPatient,
}

/// One email in the outbox.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1b", "kind": "appointment_reminder", "state": "pending",
    "subject_type": "appointment", "subject_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e12",
    "patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", "refers_to": "2027-03-15T14:00:00Z",
    "due_at": "2027-03-14T14:00:00Z", "attempts": 0, "next_attempt_at": "2027-03-14T14:00:00Z", "last_error": null,
    "message_id": "<0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1b@clinic-platform>", "provider_message_id": null,
    "sent_at": null, "created_at": "2027-03-01T15:00:00Z", "updated_at": "2027-03-01T15:00:00Z"
}))]
pub struct ReminderResponse {
    pub id: String,
    /// `appointment_confirmation`, `appointment_update`, `appointment_cancellation`,
    /// `appointment_reminder` or `refill_reminder`.
    #[schema(value_type = EmailKindName)]
    pub kind: String,
    /// `pending`, `sending`, `sent`, `failed` or `void`.
    #[schema(value_type = OutboxState)]
    pub state: String,
    /// `appointment` or `pump`.
    pub subject_type: String,
    pub subject_id: String,
    /// The recipient (the address is read from the patient record at send time).
    pub patient_id: Option<String>,
    /// The instant the email is about: the appointment's start, or the start of the refill due date.
    pub refers_to: DateTime<Utc>,
    /// When it is to be sent.
    pub due_at: DateTime<Utc>,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed, or why it was voided.
    pub last_error: Option<String>,
    /// The `Message-ID` header, the same on every attempt.
    pub message_id: String,
    /// What the SMTP server answered on acceptance.
    pub provider_message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<OutboxRow> for ReminderResponse {
    fn from(r: OutboxRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            state: r.state,
            subject_type: r.subject_type,
            subject_id: r.subject_id,
            patient_id: r.patient_id,
            refers_to: time::from_db(r.refers_to),
            due_at: time::from_db(r.due_at),
            attempts: r.attempts,
            next_attempt_at: time::from_db(r.next_attempt_at),
            last_error: r.last_error,
            message_id: r.message_id,
            provider_message_id: r.provider_message_id,
            sent_at: r.sent_at.map(time::from_db),
            created_at: time::from_db(r.created_at),
            updated_at: time::from_db(r.updated_at),
        }
    }
}

const STATES: [&str; 5] = ["pending", "sending", "sent", "failed", "void"];

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRemindersQuery {
    /// `pending`, `sending`, `sent`, `failed` or `void`.
    #[param(value_type = Option<OutboxState>)]
    pub state: Option<String>,
    /// An email kind, e.g. `refill_reminder`.
    #[param(value_type = Option<EmailKindName>)]
    pub kind: Option<String>,
    #[param(format = Uuid)]
    pub patient_id: Option<String>,
    /// Due at or after (RFC 3339 with offset).
    pub due_from: Option<DateTime<Utc>>,
    /// Due before.
    pub due_to: Option<DateTime<Utc>>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List outbox rows by due time, with filters. Each listed patient's access is audited.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    params(ListRemindersQuery),
    responses((status = 200, body = Page<ReminderResponse>))
)]
#[get("/reminders")]
pub async fn list_reminders(
    state: web::Data<AppState>,
    auth: Authorized<scopes::RemindersAdmin>,
    q: QueryParams<ListRemindersQuery>,
) -> Result<web::Json<Page<ReminderResponse>>, ApiError> {
    let q = q.into_inner()?;
    let limit = pagination::limit(q.limit)?;
    let mut e = ValidationErrors::new();
    if let Some(s) = q.state.as_deref().filter(|s| !STATES.contains(s)) {
        e.push(FieldError::new(
            "state",
            "unknown_state",
            format!("'{s}' is not one of {}", STATES.join(", ")),
        ));
    }
    if let Some(k) = q.kind.as_deref().filter(|k| EmailKind::parse(k).is_none()) {
        e.push(FieldError::new(
            "kind",
            "unknown_kind",
            format!("'{k}' is not an email kind"),
        ));
    }
    let patient_id = optional_patient(&mut e, "patient_id", q.patient_id.as_deref());
    e.finish()?;
    let filter = outbox::Filter {
        state: q.state,
        kind: q.kind,
        patient_id: patient_id.map(|p| p.to_string()),
        due_from: q.due_from,
        due_to: q.due_to,
        after: q
            .cursor
            .as_deref()
            .map(|c| pagination::decode_instant_cursor(pagination::List::Reminders, c))
            .transpose()?,
    };
    let (now, actor) = (state.now(), auth.actor);
    let rows = state
        .db_audited(move |conn, audit| {
            let rows = outbox::list(conn, &filter, limit + 1)?;
            let mut patients: Vec<String> = rows.iter().filter_map(|r| r.patient_id.clone()).collect();
            patients.sort();
            patients.dedup();
            audit.record(events(&actor, "reminder.list", patients, now))?;
            Ok::<_, clinic_store::StoreError>(rows)
        })
        .await?;
    let mut rows = rows;
    let next_cursor = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| pagination::instant_cursor(pagination::List::Reminders, time::from_db(r.due_at), &r.id))
    });
    Ok(web::Json(Page {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor: next_cursor.flatten(),
    }))
}

/// The email as it would be sent now.
#[derive(Serialize, ToSchema)]
pub struct RenderedEmailResponse {
    /// The patient's current address (read at send time), if any.
    pub to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The attached iCalendar, for appointment confirmations, updates and cancellations.
    pub calendar: Option<String>,
    /// Why it would not be sent now (stale, no consent, no address), if it would not.
    pub would_skip: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReminderDetailResponse {
    #[serde(flatten)]
    pub reminder: ReminderResponse,
    pub email: RenderedEmailResponse,
}

/// One outbox row with its email rendered from the current data. Audited.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    params(("id" = String, Path, description = "Outbox row id")),
    responses((status = 200, body = ReminderDetailResponse), (status = 404, body = Problem, content_type = "application/problem+json"))
)]
#[get("/reminders/{id}")]
pub async fn get_reminder(
    state: web::Data<AppState>,
    auth: Authorized<scopes::RemindersAdmin>,
    id: web::Path<String>,
) -> Result<web::Json<ReminderDetailResponse>, ApiError> {
    let id = id.into_inner();
    let (now, actor, composer) = (state.now(), auth.actor, state.composer.clone());
    let (row, preview) = state
        .db_audited(move |conn, audit| {
            let row = outbox::get(conn, &id)?.ok_or(clinic_reminders::ReminderError::NotFound("reminder"))?;
            let preview = composer.preview(conn, &row, now)?;
            audit.record(events(&actor, "reminder.read", row.patient_id.clone(), now))?;
            Ok::<_, clinic_reminders::ReminderError>((row, preview))
        })
        .await?;
    Ok(web::Json(ReminderDetailResponse {
        reminder: row.into(),
        email: RenderedEmailResponse {
            to: preview.to,
            subject: preview.email.subject,
            text: preview.email.text,
            html: preview.email.html,
            calendar: preview.calendar,
            would_skip: preview.would_skip,
        },
    }))
}

/// Send a failed (or voided) email again: back to `pending`, due now, attempts reset.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    params(("id" = String, Path, description = "Outbox row id")),
    responses((status = 200, body = ReminderResponse), (status = 409, description = "Not failed or void (`invalid_state`)", body = Problem, content_type = "application/problem+json"))
)]
#[post("/reminders/{id}/retry")]
pub async fn retry_reminder(
    state: web::Data<AppState>,
    auth: Authorized<scopes::RemindersAdmin>,
    id: web::Path<String>,
) -> Result<web::Json<ReminderResponse>, ApiError> {
    let (id, now, actor) = (id.into_inner(), state.now(), auth.actor);
    let row = state
        .db(move |conn| clinic_flows::outbox::retry(conn, &actor, &id, now))
        .await?;
    Ok(web::Json(row.into()))
}

/// Do not send this email: `void`. Sent emails cannot be voided.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    params(("id" = String, Path, description = "Outbox row id")),
    responses((status = 200, body = ReminderResponse), (status = 409, description = "Already sent or void (`invalid_state`)", body = Problem, content_type = "application/problem+json"))
)]
#[post("/reminders/{id}/void")]
pub async fn void_reminder(
    state: web::Data<AppState>,
    auth: Authorized<scopes::RemindersAdmin>,
    id: web::Path<String>,
) -> Result<web::Json<ReminderResponse>, ApiError> {
    let (id, now, actor) = (id.into_inner(), state.now(), auth.actor);
    let row = state
        .db(move |conn| clinic_flows::outbox::void(conn, &actor, &id, now))
        .await?;
    Ok(web::Json(row.into()))
}

// ---- status -----------------------------------------------------------------------------

/// How the email side is doing, read from the database (every instance's work shows).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "ready": 0, "oldest_ready_due_at": null, "stalled": false, "sending": 0, "expired_leases": 0, "failed": 1,
    "open_outreach": 3, "oldest_open_outreach_refers_to": "2027-06-28T05:00:00Z"
}))]
pub struct ReminderStatusResponse {
    /// Emails due now or earlier, not waiting for a retry.
    pub ready: i64,
    pub oldest_ready_due_at: Option<DateTime<Utc>>,
    /// True when an email has been ready for more than 5 minutes: no dispatcher is running
    /// (every `clinic serve` ticks each minute unless `--no-scheduler`), or it cannot keep up.
    pub stalled: bool,
    /// Claimed by a dispatcher right now.
    pub sending: i64,
    /// Claimed by a dispatcher that stopped before finishing; they are sent again by the next run.
    pub expired_leases: i64,
    /// Emails given up on (each has an outreach entry).
    pub failed: i64,
    /// Outreach entries not yet done, and the most urgent one's instant.
    pub open_outreach: i64,
    pub oldest_open_outreach_refers_to: Option<DateTime<Utc>>,
}

/// Health of the reminder pipeline for monitoring: alert on `stalled`, on `failed` growing and
/// on the outreach backlog. No patient data.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    responses((status = 200, body = ReminderStatusResponse))
)]
#[get("/reminders/status")]
pub async fn get_reminder_status(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::RemindersAdmin>,
) -> Result<web::Json<ReminderStatusResponse>, ApiError> {
    let now = state.now();
    let (health, (open, oldest_open)) = state
        .db(move |conn| Ok::<_, clinic_store::StoreError>((outbox::health(conn, now)?, outreach::open_summary(conn)?)))
        .await?;
    Ok(web::Json(ReminderStatusResponse {
        ready: health.ready,
        stalled: health
            .oldest_ready_due_at
            .is_some_and(|t| now - t > chrono::Duration::minutes(5)),
        oldest_ready_due_at: health.oldest_ready_due_at,
        sending: health.sending,
        expired_leases: health.expired_leases,
        failed: health.failed,
        open_outreach: open,
        oldest_open_outreach_refers_to: oldest_open,
    }))
}

// ---- settings ---------------------------------------------------------------------------

/// The reminder policy. Times are `HH:MM` wall-clock times in the patient's own zone.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "version": 0,
    "default_appointment_offsets_hours": [72, 24],
    "appointment_offsets_hours": {"implant": [168, 72, 24]},
    "quiet_hours_start": "21:00",
    "quiet_hours_end": "08:00",
    "refill_offsets_days": [21, 14, 7],
    "refill_send_at": "10:00",
    "escalation_days": 7
}))]
pub struct ReminderSettingsDto {
    /// The version these settings replace (0 while the defaults are in use); a stale one is 409.
    pub version: i64,
    #[schema(schema_with = default_offsets_schema)]
    pub default_appointment_offsets_hours: Vec<i64>,
    #[schema(schema_with = per_type_offsets_schema)]
    pub appointment_offsets_hours: std::collections::BTreeMap<String, Vec<i64>>,
    /// Quiet hours (no emails) start, on the patient's clock.
    #[schema(example = "21:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub quiet_hours_start: String,
    /// Quiet hours end; differs from the start (a span may cross midnight).
    #[schema(example = "08:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub quiet_hours_end: String,
    #[schema(schema_with = refill_offsets_schema)]
    pub refill_offsets_days: Vec<i64>,
    /// The time of day refill reminders go out.
    #[schema(example = "10:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub refill_send_at: String,
    /// A refill due within this many days with nothing booked goes on the outreach list (1–60).
    #[schema(minimum = 1, maximum = 60)]
    pub escalation_days: i64,
}

/// A list of distinct whole numbers in `min..=max` (utoipa's field attributes cannot bound
/// the items of a list).
fn offsets_list(description: &str, min_items: usize, max: u32) -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ArrayBuilder::new()
        .description(Some(description))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1))
                .maximum(Some(max)),
        )
        .min_items(Some(min_items))
        .max_items(Some(10))
        .unique_items(true)
}

fn default_offsets_schema() -> utoipa::openapi::schema::Array {
    offsets_list(
        "Hours before an appointment its reminders go out (1–672, distinct), for types without their own list; empty: none.",
        0,
        clinic_domain::reminders::AppointmentOffsets::MAX_HOURS,
    )
    .build()
}

fn per_type_offsets_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .description(Some(
            "Per appointment type code (an existing type): hours before its appointments that reminders go out; an empty list means no reminders for that type.",
        ))
        .additional_properties(Some(offsets_list(
            "Hours (1–672, distinct)",
            0,
            clinic_domain::reminders::AppointmentOffsets::MAX_HOURS,
        )))
        .build()
}

fn refill_offsets_schema() -> utoipa::openapi::schema::Array {
    offsets_list(
        "Days before the refill due date on which a reminder goes out (1–180, distinct).",
        1,
        clinic_domain::reminders::RefillOffsets::MAX_DAYS,
    )
    .build()
}

fn settings_dto(s: &settings::Stored) -> ReminderSettingsDto {
    let d = SettingsDocument::from(&s.settings);
    ReminderSettingsDto {
        version: s.version,
        default_appointment_offsets_hours: d.default_appointment_offsets_hours,
        appointment_offsets_hours: d.appointment_offsets_hours,
        quiet_hours_start: d.quiet_hours_start,
        quiet_hours_end: d.quiet_hours_end,
        refill_offsets_days: d.refill_offsets_days,
        refill_send_at: d.refill_send_at,
        escalation_days: d.escalation_days,
    }
}

/// The reminder settings (defaults until first edited).
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    responses((status = 200, body = ReminderSettingsDto))
)]
#[get("/reminders/settings")]
pub async fn get_reminder_settings(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::RemindersAdmin>,
) -> Result<web::Json<ReminderSettingsDto>, ApiError> {
    let s = state.db(settings::load).await?;
    Ok(web::Json(settings_dto(&s)))
}

/// Replace the reminder settings. Unsent reminders for an offset the new settings drop are
/// voided; those for offsets that remain keep their times; new offsets are planned by the
/// next scheduler tick. Audited.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    request_body = ReminderSettingsDto,
    responses(
        (status = 200, body = ReminderSettingsDto),
        (status = 409, description = "Stale `version`", body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/reminders/settings")]
pub async fn update_reminder_settings(
    state: web::Data<AppState>,
    auth: Authorized<scopes::RemindersAdmin>,
    body: JsonBody<ReminderSettingsDto>,
) -> Result<web::Json<ReminderSettingsDto>, ApiError> {
    let b = body.into_inner()?;
    let doc = SettingsDocument {
        default_appointment_offsets_hours: b.default_appointment_offsets_hours,
        appointment_offsets_hours: b.appointment_offsets_hours,
        quiet_hours_start: b.quiet_hours_start,
        quiet_hours_end: b.quiet_hours_end,
        refill_offsets_days: b.refill_offsets_days,
        refill_send_at: b.refill_send_at,
        escalation_days: b.escalation_days,
    };
    let (now, version, actor) = (state.now(), b.version, auth.actor);
    let stored = state
        .db(move |conn| {
            let types: Vec<String> = clinic_scheduling::types::list(conn)?
                .into_iter()
                .map(|t| t.code)
                .collect();
            let new = doc.validate(&types)?;
            settings::save(conn, &new, version, &actor, now)
        })
        .await?;
    Ok(web::Json(settings_dto(&stored)))
}

// ---- preview ----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "appointment_reminder", "at": "2027-03-15T14:00:00Z"}))]
pub struct PreviewRequest {
    /// The email kind.
    #[schema(value_type = EmailKindName)]
    pub kind: String,
    /// Render for this patient (their first name and zone); omitted: a sample patient in
    /// the clinic's zone.
    #[schema(format = Uuid)]
    pub patient_id: Option<String>,
    /// The appointment start, or any instant on the refill due date; default: a week from now.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewResponse {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Render an email with the current templates without sending or recording anything: for
/// checking template overrides and wording. Audited when a patient is named.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    request_body = PreviewRequest,
    responses((status = 200, body = PreviewResponse), (status = 404, description = "No patient with `patient_id`", body = Problem, content_type = "application/problem+json"))
)]
#[post("/reminders/preview")]
pub async fn preview_email(
    state: web::Data<AppState>,
    auth: Authorized<scopes::RemindersAdmin>,
    body: JsonBody<PreviewRequest>,
) -> Result<web::Json<PreviewResponse>, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let kind = EmailKind::parse(&b.kind);
    if kind.is_none() {
        e.push(FieldError::new(
            "kind",
            "unknown_kind",
            format!("'{}' is not an email kind", b.kind),
        ));
    }
    let patient_id = optional_patient(&mut e, "patient_id", b.patient_id.as_deref());
    e.finish()?;
    let Some(kind) = kind else {
        return Err(ApiError::Internal("kind checked above".into()));
    };
    let now = state.now();
    let at = b.at.unwrap_or(now + chrono::Duration::days(7));
    let (composer, zone, actor) = (state.composer.clone(), state.clinic.time_zone, auth.actor);
    let rendered = state
        .db_audited(move |conn, audit| {
            let (first_name, patient_zone) = match patient_id {
                Some(id) => {
                    let p = clinic_patients::repo::get(conn, audit, &actor, id, now)?;
                    (Some(p.given_name.as_str().to_owned()), p.time_zone)
                }
                None => (Some("Alex".to_owned()), zone),
            };
            let when = match kind {
                EmailKind::RefillReminder => EmailContext::by_date(zone.local_date(at)),
                _ => EmailContext::at_instant(at, patient_zone),
            };
            let stop = composer.stop_url("preview", now);
            // A sample self-service link, as the patient's email would carry one.
            let link = match kind {
                EmailKind::AppointmentCancellation => None,
                EmailKind::RefillReminder => Some(format!("{}/my/book/preview", composer.clinic.public_url)),
                _ => Some(format!("{}/my/appointments/preview", composer.clinic.public_url)),
            };
            let ctx = composer.context(first_name, when, Some(stop), link);
            Ok::<_, clinic_reminders::ReminderError>(composer.templates.render(kind, &ctx)?)
        })
        .await?;
    Ok(web::Json(PreviewResponse {
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
    }))
}

// ---- outreach -----------------------------------------------------------------------------

/// A patient staff should phone, and why.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1c", "patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10",
    "patient_name": "Ann Lee", "patient_phone": "+13125550123", "reason": "refill_unbooked", "subject_type": "pump",
    "subject_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e13", "refers_to": "2027-07-03T05:00:00Z",
    "created_at": "2027-06-26T15:01:00Z", "done_at": null, "done_by": null, "note": null
}))]
pub struct OutreachEntryResponse {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    /// E.164, when the record has one.
    pub patient_phone: Option<String>,
    /// `refill_unbooked`, `email_failed`, `no_email`, `reminder_not_sent`, `email_stopped` or
    /// `cancelled_by_patient` (a refill visit the patient cancelled from their link, with
    /// nothing else booked before the due date).
    #[schema(value_type = OutreachReason)]
    pub reason: String,
    /// What it is about: `pump`, `appointment`, `patient`.
    pub subject_type: String,
    pub subject_id: String,
    /// The instant it is about (refill due date, appointment start); the list is in this order.
    pub refers_to: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    /// The token id that marked it done, or `system` when it closed itself (refill booked).
    pub done_by: Option<String>,
    pub note: Option<String>,
}

impl From<Entry> for OutreachEntryResponse {
    fn from(e: Entry) -> Self {
        Self {
            id: e.id,
            patient_id: e.patient_id.to_string(),
            patient_name: e.patient_name,
            patient_phone: e.patient_phone,
            reason: e.reason.as_str().to_owned(),
            subject_type: e.subject_type,
            subject_id: e.subject_id,
            refers_to: e.refers_to,
            created_at: e.created_at,
            done_at: e.done_at,
            done_by: e.done_by,
            note: e.note,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOutreachQuery {
    /// Include entries already done (default false).
    pub include_done: Option<bool>,
    /// One reason, e.g. `refill_unbooked`.
    #[param(value_type = Option<OutreachReason>)]
    pub reason: Option<String>,
    #[param(format = Uuid)]
    pub patient_id: Option<String>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Patients to phone, most urgent (earliest `refers_to`) first. Refill entries close
/// themselves when the refill is booked. Each listed patient's access is audited.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["patients:read"])),
    params(ListOutreachQuery),
    responses((status = 200, body = Page<OutreachEntryResponse>))
)]
#[get("/worklists/outreach")]
pub async fn list_outreach(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsRead>,
    q: QueryParams<ListOutreachQuery>,
) -> Result<web::Json<Page<OutreachEntryResponse>>, ApiError> {
    let q = q.into_inner()?;
    let limit = pagination::limit(q.limit)?;
    let mut e = ValidationErrors::new();
    let reason = match q.reason.as_deref() {
        None => None,
        Some(r) => {
            let parsed = Reason::parse(r);
            if parsed.is_none() {
                e.push(FieldError::new(
                    "reason",
                    "unknown_reason",
                    format!("'{r}' is not an outreach reason"),
                ));
            }
            parsed
        }
    };
    let patient_id = optional_patient(&mut e, "patient_id", q.patient_id.as_deref());
    e.finish()?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| pagination::decode_instant_cursor(pagination::List::Outreach, c))
        .transpose()?;
    let filter = outreach::Filter {
        include_done: q.include_done.unwrap_or(false),
        reason,
        patient_id,
        after,
    };
    let (now, actor) = (state.now(), auth.actor);
    let mut entries = state
        .db_audited(move |conn, audit| {
            let entries = outreach::list(conn, &filter, limit + 1)?;
            let mut patients: Vec<String> = entries.iter().map(|e| e.patient_id.to_string()).collect();
            patients.sort();
            patients.dedup();
            audit.record(events(&actor, "outreach.list", patients, now))?;
            Ok::<_, clinic_reminders::ReminderError>(entries)
        })
        .await?;
    let next_cursor = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries
            .last()
            .map(|e| pagination::instant_cursor(pagination::List::Outreach, e.refers_to, &e.id))
    } else {
        None
    };
    Ok(web::Json(Page {
        items: entries.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "Called; refill booked for Tuesday."}))]
pub struct OutreachDoneRequest {
    /// What was done (1–1000 characters).
    #[schema(min_length = 1, max_length = 1000)]
    pub note: String,
}

/// Mark an entry done with a note (who called, what was agreed). Audited.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["patients:write"])),
    params(("id" = String, Path, description = "Outreach entry id")),
    request_body = OutreachDoneRequest,
    responses(
        (status = 200, body = OutreachEntryResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already done (`already_done`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/worklists/outreach/{id}/done")]
pub async fn mark_outreach_done(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsWrite>,
    id: web::Path<String>,
    body: JsonBody<OutreachDoneRequest>,
) -> Result<web::Json<OutreachEntryResponse>, ApiError> {
    let note = crate::fields::free_text(
        "note",
        &body.into_inner()?.note,
        1000,
        "a note of 1 to 1000 characters is required",
    )?;
    let (id, now, actor) = (id.into_inner(), state.now(), auth.actor);
    let entry = state
        .db(move |conn| clinic_flows::outreach::mark_done(conn, &actor, &id, &note, now))
        .await?;
    Ok(web::Json(entry.into()))
}
