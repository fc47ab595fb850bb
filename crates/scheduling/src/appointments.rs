//! Appointments: availability, booking, reschedule, status changes, history.
//!
//! Booking never double-books. Every write runs in `dialect::write_transaction`: on SQLite
//! that serialises writers, so the conflict check and the insert see the same calendar; on
//! PostgreSQL two transactions may both pass the check, and the exclusion constraint
//! `appointments_no_overlap` refuses the second insert, which is reported as the same 409.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use clinic_domain::ids::{AppointmentId, PatientId, ProviderId};
use clinic_domain::scheduling::{AppointmentStatus, Calendar, Slot, Span, TypeRules};
use clinic_domain::time::ClinicZone;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_patients::audit::{self, Actor, AuditWriter, PendingEvent};
use clinic_patients::repo as patients;
use clinic_store::idempotency::{self, Prior};
use clinic_store::schema::{appointment_history, appointment_types, appointments, providers as provider_table};
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;

use crate::providers::{self, Provider};
use crate::types::{self, AppointmentType};
use crate::{closures, corrupt, SchedulingError};

const LIVE: [&str; 2] = ["booked", "checked_in"];
const SUBJECT: &str = "patient";

#[derive(Debug, Clone, PartialEq)]
pub struct Appointment {
    pub id: AppointmentId,
    pub patient_id: PatientId,
    pub provider_id: ProviderId,
    pub type_code: String,
    pub type_name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub note: Option<String>,
    pub cancel_reason: Option<String>,
    /// iCalendar SEQUENCE.
    pub sequence: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The provider's zone, for showing wall times.
    pub provider_zone: ClinicZone,
    /// When the patient confirmed this visit from their link; a reschedule clears it.
    pub patient_confirmed_at: Option<DateTime<Utc>>,
}

#[derive(Queryable)]
struct Row {
    id: String,
    patient_id: String,
    provider_id: String,
    type_code: String,
    starts_at: NaiveDateTime,
    ends_at: NaiveDateTime,
    _blocked_from: NaiveDateTime,
    _blocked_until: NaiveDateTime,
    status: String,
    note: Option<String>,
    cancel_reason: Option<String>,
    sequence: i64,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    patient_confirmed_at: Option<NaiveDateTime>,
}

type Joined = (Row, String, String);

fn to_appointment((r, type_name, zone): Joined) -> Result<Appointment, SchedulingError> {
    Ok(Appointment {
        id: r.id.parse().map_err(|_| corrupt("appointment id"))?,
        patient_id: r.patient_id.parse().map_err(|_| corrupt("patient id"))?,
        provider_id: r.provider_id.parse().map_err(|_| corrupt("provider id"))?,
        type_code: r.type_code,
        type_name,
        start: time::from_db(r.starts_at),
        end: time::from_db(r.ends_at),
        status: r.status.parse().map_err(|_| corrupt("status"))?,
        note: r.note,
        cancel_reason: r.cancel_reason,
        sequence: r.sequence,
        version: r.version,
        created_at: time::from_db(r.created_at),
        updated_at: time::from_db(r.updated_at),
        provider_zone: ClinicZone::parse(&zone).map_err(|_| corrupt("zone"))?,
        patient_confirmed_at: r.patient_confirmed_at.map(time::from_db),
    })
}

/// Appointments with their type and provider.
macro_rules! joined_tables {
    () => {
        appointments::table
            .inner_join(appointment_types::table)
            .inner_join(provider_table::table)
    };
}

macro_rules! joined_query {
    () => {
        joined_tables!().select((
            appointments::all_columns,
            appointment_types::name,
            provider_table::time_zone,
        ))
    };
}

/// One appointment, not audited (for internal use and after writes that audit themselves).
pub fn load(conn: &mut DbConnection, id: AppointmentId) -> Result<Appointment, SchedulingError> {
    let row: Joined = joined_query!()
        .filter(appointments::id.eq(id.to_string()))
        .first(conn)
        .optional()?
        .ok_or(SchedulingError::NotFound("appointment"))?;
    to_appointment(row)
}

/// One appointment with its provider's name, in one query (the patient's manage page shows
/// both), not audited.
pub fn load_with_provider_name(
    conn: &mut DbConnection,
    id: AppointmentId,
) -> Result<(Appointment, String), SchedulingError> {
    let (row, type_name, zone, provider_name): (Row, String, String, String) = joined_tables!()
        .select((
            appointments::all_columns,
            appointment_types::name,
            provider_table::time_zone,
            provider_table::name,
        ))
        .filter(appointments::id.eq(id.to_string()))
        .first(conn)
        .optional()?
        .ok_or(SchedulingError::NotFound("appointment"))?;
    Ok((to_appointment((row, type_name, zone))?, provider_name))
}

/// The blocked spans of a provider's live appointments overlapping `window`, by start.
fn busy(
    conn: &mut DbConnection,
    provider: ProviderId,
    window: Span,
    except: Option<AppointmentId>,
) -> Result<Vec<Span>, SchedulingError> {
    let mut q = appointments::table
        .filter(appointments::provider_id.eq(provider.to_string()))
        .filter(appointments::status.eq_any(LIVE))
        .filter(appointments::blocked_from.lt(time::to_db(window.end)))
        .filter(appointments::blocked_until.gt(time::to_db(window.start)))
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(appointments::id.ne(id.to_string()));
    }
    let rows: Vec<(NaiveDateTime, NaiveDateTime)> = q
        .order(appointments::blocked_from)
        .select((appointments::blocked_from, appointments::blocked_until))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(s, e)| Span::new(time::from_db(s), time::from_db(e)))
        .collect())
}

/// Everything the rules need about a provider around `window`.
struct CalendarData {
    provider: Provider,
    clinic_zone: ClinicZone,
    time_off: Vec<Span>,
    closures: Vec<chrono::NaiveDate>,
    busy: Vec<Span>,
}

impl CalendarData {
    fn load(
        conn: &mut DbConnection,
        provider: Provider,
        clinic_zone: ClinicZone,
        window: Span,
        except: Option<AppointmentId>,
    ) -> Result<Self, SchedulingError> {
        // Wide enough for buffers and for local dates on either side of the window.
        let wide = Span::new(window.start - Duration::days(2), window.end + Duration::days(2));
        let time_off = providers::time_off(conn, provider.id, Some(wide))?
            .into_iter()
            .map(|t| t.span)
            .collect();
        let closures = closures::list(
            conn,
            Some((clinic_zone.local_date(wide.start), clinic_zone.local_date(wide.end))),
        )?
        .into_iter()
        .map(|c| c.date)
        .collect();
        let busy = busy(conn, provider.id, wide, except)?;
        Ok(Self {
            provider,
            clinic_zone,
            time_off,
            closures,
            busy,
        })
    }

    fn calendar(&self) -> Calendar<'_> {
        Calendar {
            zone: self.provider.time_zone,
            clinic_zone: self.clinic_zone,
            hours: &self.provider.hours,
            time_off: &self.time_off,
            closures: &self.closures,
            busy: &self.busy,
        }
    }
}

/// Slots are offered every 15 minutes of the provider's wall clock.
pub const SLOT_STEP_MINUTES: i64 = 15;

/// A type that can be booked, or a field error naming `field`.
fn bookable_type(conn: &mut DbConnection, code: &str, field: &str) -> Result<AppointmentType, SchedulingError> {
    match types::get(conn, code) {
        Ok(t) if t.active => Ok(t),
        Ok(_) => Err(ValidationErrors::single(FieldError::new(
            field,
            "inactive_type",
            "this appointment type is no longer booked",
        ))
        .into()),
        Err(SchedulingError::NotFound(_)) => Err(ValidationErrors::single(FieldError::new(
            field,
            "unknown_type",
            format!("no appointment type '{code}'"),
        ))
        .into()),
        Err(e) => Err(e),
    }
}

/// Free start times for one provider, or for every active provider when `provider` is `None`.
pub fn availability(
    conn: &mut DbConnection,
    provider: Option<ProviderId>,
    type_code: &str,
    window: Span,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Vec<(Provider, Vec<Slot>)>, SchedulingError> {
    let kind = bookable_type(conn, type_code, "appointment_type")?;
    let rules = kind.rules();
    let candidates = match provider {
        Some(id) => match providers::get(conn, id) {
            Ok(p) if p.active => vec![p],
            Ok(_) | Err(SchedulingError::NotFound(_)) => {
                return Err(ValidationErrors::single(FieldError::new(
                    "provider_id",
                    "unknown_provider",
                    "no active provider with this id",
                ))
                .into())
            }
            Err(e) => return Err(e),
        },
        None => providers::list(conn, false)?,
    };
    let mut result = Vec::new();
    for p in candidates {
        let data = CalendarData::load(conn, p, clinic_zone, window, None)?;
        let slots = data.calendar().free_slots(
            &rules,
            window.start,
            window.end,
            now,
            Duration::minutes(SLOT_STEP_MINUTES),
        );
        result.push((data.provider, slots));
    }
    Ok(result)
}

/// What a booking asks for, validated.
#[derive(Debug, Clone)]
pub struct NewAppointment {
    pub patient_id: PatientId,
    pub provider_id: ProviderId,
    pub type_code: String,
    pub start: DateTime<Utc>,
    pub note: Option<String>,
}

/// An `Idempotency-Key` with the caller's scope and a hash of the request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Booking {
    Created(Appointment),
    /// The same key and request were seen before: the appointment they made.
    Replayed(Appointment),
}

fn taken(conn: &mut DbConnection, provider: ProviderId, blocked: Span) -> SchedulingError {
    match busy(conn, provider, blocked, None) {
        Ok(spans) if !spans.is_empty() => {
            SchedulingError::Unbookable(clinic_domain::scheduling::Unbookable::Conflict(spans[0]))
        }
        _ => SchedulingError::Conflict {
            code: "slot_taken",
            detail: "the provider was booked at that time by another request".into(),
        },
    }
}

fn history(
    conn: &mut DbConnection,
    id: &str,
    actor: &Actor,
    action: &str,
    detail: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), SchedulingError> {
    diesel::insert_into(appointment_history::table)
        .values((
            appointment_history::appointment_id.eq(id),
            appointment_history::at.eq(time::to_db(now)),
            appointment_history::actor_token_id.eq(actor.token_id.map(|t| t.to_string())),
            appointment_history::actor_link.eq(actor.link.as_deref()),
            appointment_history::actor_user_id.eq(actor.user_id.map(|u| u.to_string())),
            appointment_history::action.eq(action),
            appointment_history::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// Books an appointment (idempotently when a key is given).
pub fn book(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewAppointment,
    key: Option<IdempotencyKey>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Booking, SchedulingError> {
    let (provider, type_code, start) = (new.provider_id, new.type_code.clone(), new.start);
    let result = dialect::write_transaction(conn, |conn| {
        book_in_transaction(conn, actor, new, key, clinic_zone, now)
    });
    match result {
        // PostgreSQL: another transaction won the race and the constraint refused this one;
        // name the appointment that won.
        Err(SchedulingError::Conflict { code: "slot_taken", .. }) => {
            let blocked = types::get(conn, &type_code)
                .map(|t| t.rules().blocked(start))
                .unwrap_or(Span::new(start, start + Duration::minutes(1)));
            Err(taken(conn, provider, blocked))
        }
        other => other,
    }
}

/// The booking itself, for callers that already hold a write transaction.
pub fn book_in_transaction(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewAppointment,
    key: Option<IdempotencyKey>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Booking, SchedulingError> {
    if let Some(k) = &key {
        match idempotency::lookup(conn, &k.scope, &k.key, &k.request_hash)? {
            Prior::Same(id) => {
                return Ok(Booking::Replayed(load(
                    conn,
                    id.parse().map_err(|_| corrupt("idempotent id"))?,
                )?))
            }
            Prior::Different => {
                return Err(ValidationErrors::single(FieldError::new(
                    "Idempotency-Key",
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                ))
                .into())
            }
            Prior::None => {}
        }
    }
    let mut errors = ValidationErrors::new();
    if !patients::exists_active(conn, new.patient_id)? {
        errors.push(FieldError::new(
            "patient_id",
            "unknown_patient",
            "no active patient with this id",
        ));
    }
    let provider = match providers::get(conn, new.provider_id) {
        Ok(p) if p.active => Some(p),
        Ok(_) | Err(SchedulingError::NotFound(_)) => {
            errors.push(FieldError::new(
                "provider_id",
                "unknown_provider",
                "no active provider with this id",
            ));
            None
        }
        Err(e) => return Err(e),
    };
    let kind = match bookable_type(conn, &new.type_code, "appointment_type") {
        Ok(t) => Some(t),
        Err(SchedulingError::Invalid(v)) => {
            v.into_errors().into_iter().for_each(|e| errors.push(e));
            None
        }
        Err(e) => return Err(e),
    };
    let (Some(provider), Some(kind)) = (provider, kind) else {
        return Err(errors.into());
    };
    errors.finish()?;
    let rules = kind.rules();
    let data = CalendarData::load(
        conn,
        provider,
        clinic_zone,
        Span::new(new.start, new.start + rules.duration),
        None,
    )?;
    data.calendar()
        .check(&rules, new.start, now)
        .map_err(SchedulingError::Unbookable)?;

    let id = AppointmentId::new();
    insert(conn, &id, &new, &rules, now)?;
    history(conn, &id.to_string(), actor, "booked", None, now)?;
    audit::record(
        conn,
        actor,
        "appointment.create",
        SUBJECT,
        &new.patient_id.to_string(),
        now,
    )?;
    if let Some(k) = &key {
        idempotency::remember(conn, &k.scope, &k.key, &k.request_hash, &id.to_string(), now)?;
    }
    Ok(Booking::Created(load(conn, id)?))
}

fn insert(
    conn: &mut DbConnection,
    id: &AppointmentId,
    new: &NewAppointment,
    rules: &TypeRules,
    now: DateTime<Utc>,
) -> Result<(), SchedulingError> {
    let blocked = rules.blocked(new.start);
    diesel::insert_into(appointments::table)
        .values((
            appointments::id.eq(id.to_string()),
            appointments::patient_id.eq(new.patient_id.to_string()),
            appointments::provider_id.eq(new.provider_id.to_string()),
            appointments::type_code.eq(&new.type_code),
            appointments::starts_at.eq(time::to_db(new.start)),
            appointments::ends_at.eq(time::to_db(new.start + rules.duration)),
            appointments::blocked_from.eq(time::to_db(blocked.start)),
            appointments::blocked_until.eq(time::to_db(blocked.end)),
            appointments::status.eq(AppointmentStatus::Booked.as_str()),
            appointments::note.eq(&new.note),
            appointments::sequence.eq(0i64),
            appointments::version.eq(1i64),
            appointments::created_at.eq(time::to_db(now)),
            appointments::updated_at.eq(time::to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Takes the appointment's row lock for the rest of the transaction if it is still at
/// `version` (a no-op update), so that a change made on what a caller saw (a patient's page,
/// a staff screen) cannot land on a newer version: on PostgreSQL a concurrent writer waits
/// for this transaction and every later read in it sees the version checked here. False
/// when the appointment has changed (or does not exist). SQLite's writer lock already
/// serialises writers.
pub fn lock_at_version(conn: &mut DbConnection, id: AppointmentId, version: i64) -> Result<bool, SchedulingError> {
    let n = diesel::update(
        appointments::table
            .find(id.to_string())
            .filter(appointments::version.eq(version)),
    )
    .set(appointments::version.eq(appointments::version))
    .execute(conn)?;
    Ok(n == 1)
}

/// Another change won the race for this appointment since it was loaded.
fn changed_meanwhile(current: &Appointment) -> SchedulingError {
    SchedulingError::Conflict {
        code: "version_conflict",
        detail: format!(
            "the appointment was changed by someone else meanwhile; it was at version {}",
            current.version
        ),
    }
}

/// Writes `changes` to appointment `current` only if nobody changed it since it was loaded
/// (compare-and-set on `version`: on PostgreSQL two transactions may load the same version,
/// and the second must not overwrite the first). A macro because diesel's update types are
/// not worth naming.
macro_rules! update_if_unchanged {
    ($conn:expr, $current:expr, $changes:expr $(,)?) => {{
        let current: &Appointment = $current;
        let updated = diesel::update(
            appointments::table
                .filter(appointments::id.eq(current.id.to_string()))
                .filter(appointments::version.eq(current.version)),
        )
        .set($changes)
        .execute($conn)?;
        if updated == 1 {
            Ok(())
        } else {
            Err(changed_meanwhile(current))
        }
    }};
}

fn invalid_transition(from: AppointmentStatus, to: &str) -> SchedulingError {
    SchedulingError::Conflict {
        code: "invalid_transition",
        detail: format!("an appointment that is {from} cannot be {to}"),
    }
}

/// Moves a booked appointment to a new start (same id; SEQUENCE + 1), under the same rules.
pub fn reschedule(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentId,
    start: DateTime<Utc>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Appointment, SchedulingError> {
    reschedule_to(conn, actor, id, None, start, clinic_zone, now)
}

/// [`reschedule`], optionally to another (active) provider: the same checks against that
/// provider's calendar.
pub fn reschedule_to(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentId,
    to_provider: Option<ProviderId>,
    start: DateTime<Utc>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Appointment, SchedulingError> {
    let result = dialect::write_transaction(conn, |conn| {
        let current = load(conn, id)?;
        if current.status != AppointmentStatus::Booked {
            return Err(invalid_transition(current.status, "rescheduled"));
        }
        let rules = types::get(conn, &current.type_code)?.rules();
        let provider_id = to_provider.unwrap_or(current.provider_id);
        let provider = providers::get(conn, provider_id)?;
        if !provider.active {
            return Err(SchedulingError::Invalid(ValidationErrors::single(FieldError::new(
                "provider_id",
                "unknown_provider",
                "this provider does not take appointments",
            ))));
        }
        let data = CalendarData::load(
            conn,
            provider,
            clinic_zone,
            Span::new(start, start + rules.duration),
            Some(id),
        )?;
        data.calendar()
            .check(&rules, start, now)
            .map_err(SchedulingError::Unbookable)?;
        let blocked = rules.blocked(start);
        update_if_unchanged!(
            conn,
            &current,
            (
                appointments::provider_id.eq(provider_id.to_string()),
                appointments::starts_at.eq(time::to_db(start)),
                appointments::ends_at.eq(time::to_db(start + rules.duration)),
                appointments::blocked_from.eq(time::to_db(blocked.start)),
                appointments::blocked_until.eq(time::to_db(blocked.end)),
                appointments::sequence.eq(current.sequence + 1),
                appointments::version.eq(current.version + 1),
                appointments::updated_at.eq(time::to_db(now)),
                // The patient confirmed the old time, not this one.
                appointments::patient_confirmed_at.eq(None::<NaiveDateTime>),
            ),
        )?;
        let mut detail = format!("{} → {}", current.start.to_rfc3339(), start.to_rfc3339());
        if provider_id != current.provider_id {
            detail.push_str(&format!(" (provider {} → {provider_id})", current.provider_id));
        }
        history(conn, &id.to_string(), actor, "rescheduled", Some(detail), now)?;
        audit::record(
            conn,
            actor,
            "appointment.update",
            SUBJECT,
            &current.patient_id.to_string(),
            now,
        )?;
        load(conn, id)
    });
    result
}

/// Checks in, completes, marks no-show or cancels (with a reason). Cancelling grows the
/// SEQUENCE so calendar clients replace the event.
pub fn set_status(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentId,
    to: AppointmentStatus,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Appointment, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        let current = load(conn, id)?;
        if !current.status.can_become(to) {
            return Err(invalid_transition(current.status, to.as_str()));
        }
        // A patient cannot have missed an appointment that has not begun; an early no-show
        // would also free the slot and stop its reminders.
        if to == AppointmentStatus::NoShow && now < current.start {
            return Err(SchedulingError::Conflict {
                code: "not_started",
                detail: format!(
                    "an appointment cannot be a no-show before it starts ({})",
                    current.start.to_rfc3339()
                ),
            });
        }
        let sequence = current.sequence + i64::from(to == AppointmentStatus::Cancelled);
        update_if_unchanged!(
            conn,
            &current,
            (
                appointments::status.eq(to.as_str()),
                appointments::cancel_reason.eq(if to == AppointmentStatus::Cancelled {
                    reason.clone()
                } else {
                    current.cancel_reason.clone()
                }),
                appointments::sequence.eq(sequence),
                appointments::version.eq(current.version + 1),
                appointments::updated_at.eq(time::to_db(now)),
            ),
        )?;
        history(conn, &id.to_string(), actor, to.as_str(), reason, now)?;
        audit::record(
            conn,
            actor,
            "appointment.update",
            SUBJECT,
            &current.patient_id.to_string(),
            now,
        )?;
        load(conn, id)
    })
}

/// Records that the patient confirmed a booked visit (from their link). Confirming again
/// changes nothing; only a `booked` visit can be confirmed.
pub fn confirm_by_patient(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentId,
    now: DateTime<Utc>,
) -> Result<Appointment, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        let current = load(conn, id)?;
        if current.status != AppointmentStatus::Booked {
            return Err(invalid_transition(current.status, "confirmed"));
        }
        if current.patient_confirmed_at.is_some() {
            return Ok(current);
        }
        update_if_unchanged!(
            conn,
            &current,
            (
                appointments::patient_confirmed_at.eq(Some(time::to_db(now))),
                appointments::version.eq(current.version + 1),
                appointments::updated_at.eq(time::to_db(now)),
            ),
        )?;
        history(conn, &id.to_string(), actor, "patient_confirmed", None, now)?;
        audit::record(
            conn,
            actor,
            "appointment.confirm",
            SUBJECT,
            &current.patient_id.to_string(),
            now,
        )?;
        load(conn, id)
    })
}

fn read_event(actor: &Actor, action: &'static str, patient: PatientId, now: DateTime<Utc>) -> PendingEvent {
    PendingEvent {
        actor: actor.clone(),
        action,
        subject_type: SUBJECT,
        subject_id: patient.to_string(),
        at: now,
    }
}

/// One appointment; the read is audited against its patient.
pub fn get(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    id: AppointmentId,
    now: DateTime<Utc>,
) -> Result<Appointment, SchedulingError> {
    let a = load(conn, id)?;
    audit.record(vec![read_event(actor, "appointment.read", a.patient_id, now)])?;
    Ok(a)
}

#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub provider: Option<ProviderId>,
    pub patient: Option<PatientId>,
    pub status: Option<AppointmentStatus>,
    /// Appointments starting at or after.
    pub from: Option<DateTime<Utc>>,
    /// Appointments starting before.
    pub to: Option<DateTime<Utc>>,
    /// Cursor: (start, id) of the last item of the previous page.
    pub after: Option<(DateTime<Utc>, AppointmentId)>,
}

/// By start time, then id. Each patient whose appointments are listed gets an audit event.
pub fn list(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    f: &AppointmentFilter,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<(Vec<Appointment>, bool), SchedulingError> {
    let mut q = joined_query!().into_boxed();
    if let Some(p) = f.provider {
        q = q.filter(appointments::provider_id.eq(p.to_string()));
    }
    if let Some(p) = f.patient {
        q = q.filter(appointments::patient_id.eq(p.to_string()));
    }
    if let Some(s) = f.status {
        q = q.filter(appointments::status.eq(s.as_str()));
    }
    if let Some(t) = f.from {
        q = q.filter(appointments::starts_at.ge(time::to_db(t)));
    }
    if let Some(t) = f.to {
        q = q.filter(appointments::starts_at.lt(time::to_db(t)));
    }
    if let Some((start, id)) = f.after {
        let s = time::to_db(start);
        q = q.filter(
            appointments::starts_at
                .gt(s)
                .or(appointments::starts_at.eq(s).and(appointments::id.gt(id.to_string()))),
        );
    }
    let mut rows: Vec<Joined> = q
        .order((appointments::starts_at, appointments::id))
        .limit(limit + 1)
        .load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let list = rows.into_iter().map(to_appointment).collect::<Result<Vec<_>, _>>()?;
    let mut patients_seen: Vec<PatientId> = list.iter().map(|a| a.patient_id).collect();
    patients_seen.sort();
    patients_seen.dedup();
    audit.record(
        patients_seen
            .into_iter()
            .map(|p| read_event(actor, "appointment.list", p, now))
            .collect(),
    )?;
    Ok((list, more))
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor_token_id: Option<String>,
    /// The patient's link, when the patient made the change (see `Actor::link`).
    pub actor_link: Option<String>,
    /// The staff member, when a person made the change.
    pub actor_user_id: Option<String>,
    pub action: String,
    pub detail: Option<String>,
}

pub fn history_of(conn: &mut DbConnection, id: AppointmentId) -> Result<Vec<HistoryEntry>, SchedulingError> {
    type HistoryRow = (
        NaiveDateTime,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    );
    let rows: Vec<HistoryRow> = appointment_history::table
        .filter(appointment_history::appointment_id.eq(id.to_string()))
        .order(appointment_history::id)
        .select((
            appointment_history::at,
            appointment_history::actor_token_id,
            appointment_history::actor_link,
            appointment_history::actor_user_id,
            appointment_history::action,
            appointment_history::detail,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(at, actor_token_id, actor_link, actor_user_id, action, detail)| HistoryEntry {
                at: time::from_db(at),
                actor_token_id,
                actor_link,
                actor_user_id,
                action,
                detail,
            },
        )
        .collect())
}

/// Live appointments of a provider from `from` on, by start (for calendar feeds).
pub fn upcoming_for_provider(
    conn: &mut DbConnection,
    provider: ProviderId,
    from: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Appointment>, SchedulingError> {
    let rows: Vec<Joined> = joined_query!()
        .filter(appointments::provider_id.eq(provider.to_string()))
        .filter(appointments::status.eq_any(LIVE))
        .filter(appointments::starts_at.ge(time::to_db(from)))
        .order(appointments::starts_at)
        .limit(limit)
        .load(conn)?;
    rows.into_iter().map(to_appointment).collect()
}

/// Booked appointments starting in `[from, to)`, by start, not audited: for the reminder
/// planner, whose outbox rows record what it planned for whom.
pub fn booked_starting_between(
    conn: &mut DbConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Appointment>, SchedulingError> {
    let rows: Vec<Joined> = joined_query!()
        .filter(appointments::status.eq(AppointmentStatus::Booked.as_str()))
        .filter(appointments::starts_at.ge(time::to_db(from)))
        .filter(appointments::starts_at.lt(time::to_db(to)))
        .order((appointments::starts_at, appointments::id))
        .load(conn)?;
    rows.into_iter().map(to_appointment).collect()
}

/// Live appointments of a type for any of `patients`, starting in `[from, to)`, by start
/// (one query, for lists that match them up in memory).
pub fn live_of_type_for_patients(
    conn: &mut DbConnection,
    patients: &[PatientId],
    type_code: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Appointment>, SchedulingError> {
    let ids: Vec<String> = patients.iter().map(ToString::to_string).collect();
    let rows: Vec<Joined> = joined_query!()
        .filter(appointments::patient_id.eq_any(&ids))
        .filter(appointments::type_code.eq(type_code))
        .filter(appointments::status.eq_any(LIVE))
        .filter(appointments::starts_at.ge(time::to_db(from)))
        .filter(appointments::starts_at.lt(time::to_db(to)))
        .order(appointments::starts_at)
        .load(conn)?;
    rows.into_iter().map(to_appointment).collect()
}
