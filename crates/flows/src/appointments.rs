//! Appointment changes together with their emails: each call runs the scheduling change and
//! plans its confirmation, update or cancellation notice and reminders in one transaction,
//! so an email exists exactly when the change it announces does. Every door calls these
//! instead of `clinic_scheduling` directly for every change a patient hears about.

use chrono::{DateTime, Utc};
use clinic_domain::ids::{AppointmentId, ProviderId};
use clinic_domain::scheduling::AppointmentStatus;
use clinic_domain::time::ClinicZone;
use clinic_patients::audit::Actor;
use clinic_reminders::planner::{self, Change};
use clinic_reminders::settings;
use clinic_scheduling::appointments::{self, Appointment, Booking, IdempotencyKey, NewAppointment};
use clinic_store::{dialect, DbConnection};

use crate::FlowError;

/// Plans the emails that announce `change` of `a` (in the caller's transaction).
fn plan(conn: &mut DbConnection, a: &Appointment, change: Change, now: DateTime<Utc>) -> Result<(), FlowError> {
    let s = settings::load(conn)?;
    planner::after_appointment_change(conn, a, change, &s.settings, now)?;
    Ok(())
}

/// Plans the confirmation and reminders of an appointment booked by another use case (a
/// confirmed public request) in the caller's transaction.
pub(crate) fn plan_booked(conn: &mut DbConnection, a: &Appointment, now: DateTime<Utc>) -> Result<(), FlowError> {
    plan(conn, a, Change::Booked, now)
}

/// Books an appointment and plans its confirmation and reminders. A replayed booking
/// (same `Idempotency-Key`) plans nothing new.
pub fn book(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewAppointment,
    key: Option<IdempotencyKey>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Booking, FlowError> {
    dialect::write_transaction(conn, |conn| {
        let booking = appointments::book(conn, actor, new, key, clinic_zone, now)?;
        if let Booking::Created(a) = &booking {
            plan(conn, a, Change::Booked, now)?;
        }
        Ok(booking)
    })
}

/// Moves an appointment: the old reminders are void, the update and new reminders planned.
/// With `expected_version` (the version the caller saw) a visit changed meanwhile, by a
/// patient from their link for example, is a 409 `version_conflict` instead of being moved
/// again.
pub fn reschedule(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentId,
    expected_version: Option<i64>,
    start: DateTime<Utc>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Appointment, FlowError> {
    reschedule_to(conn, actor, id, expected_version, None, start, clinic_zone, now)
}

/// [`reschedule`], optionally to another provider.
#[allow(clippy::too_many_arguments)]
pub fn reschedule_to(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentId,
    expected_version: Option<i64>,
    provider: Option<ProviderId>,
    start: DateTime<Utc>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Appointment, FlowError> {
    dialect::write_transaction(conn, |conn| {
        if let Some(version) = expected_version {
            let current = appointments::load(conn, id)?;
            if current.version != version || !appointments::lock_at_version(conn, id, version)? {
                return Err(clinic_scheduling::SchedulingError::Conflict {
                    code: "version_conflict",
                    detail: format!(
                        "the appointment changed since version {version} (it was changed meanwhile); read it again"
                    ),
                }
                .into());
            }
        }
        let a = appointments::reschedule_to(conn, actor, id, provider, start, clinic_zone, now)?;
        plan(conn, &a, Change::Rescheduled, now)?;
        Ok(a)
    })
}

/// The patient confirms a booked visit from their link (`patient_confirmed_at`). No email:
/// the patient just told us.
pub fn confirm_by_patient(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentId,
    now: DateTime<Utc>,
) -> Result<Appointment, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(appointments::confirm_by_patient(conn, actor, id, now)?))
}

/// Cancels, checks in, completes or marks a no-show: pending reminders are void; a
/// cancellation also plans its notice.
pub fn set_status(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentId,
    to: AppointmentStatus,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Appointment, FlowError> {
    dialect::write_transaction(conn, |conn| {
        let a = appointments::set_status(conn, actor, id, to, reason, now)?;
        plan(conn, &a, Change::StatusChanged, now)?;
        Ok(a)
    })
}
