//! Which outbox rows should exist. Two entry points:
//!
//! - [`after_appointment_change`], inside the booking, rescheduling or cancelling
//!   transaction: the confirmation, update or cancellation notice, the appointment's
//!   reminders, and voiding the rows a change made stale;
//! - [`plan`], every scheduler tick: reminders for booked appointments and for refills due
//!   soon, voiding refill reminders a booking or a new forecast made stale, and raising or
//!   closing outreach entries.
//!
//! Every row has a key naming what it is about and the version of it (the appointment's
//! SEQUENCE, the refill due date), so planning twice plans once and a change plans anew.
//! The dispatcher checks each row against the current data again before sending it.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clinic_domain::ids::PatientId;
use clinic_domain::reminders::{appointment_reminder_at, refill_reminder_at, ReminderSettings};
use clinic_domain::scheduling::AppointmentStatus;
use clinic_domain::time::ClinicZone;
use clinic_scheduling::appointments::{self, Appointment};
use clinic_store::schema::outbox;
use clinic_store::{dialect, DbConnection};
use diesel::prelude::*;

use crate::outbox::{enqueue_many, NewOutboxRow};
use crate::outreach::{self, NewEntry, Reason};
use crate::templates::EmailKind;
use crate::ReminderError;

pub const APPOINTMENT: &str = "appointment";
pub const PUMP: &str = "pump";

/// How far ahead a tick plans: the day's reminders.
pub fn planning_window() -> Duration {
    Duration::hours(24)
}

/// When a tick finds an appointment reminder row missing (the appointment predates the
/// settings, or was written before reminders existed), it still plans one whose time passed
/// at most this long ago, if still before the start. Rows planned at booking are sent however
/// late, until the start (then they become `reminder_not_sent` outreach entries).
fn grace() -> Duration {
    Duration::hours(24)
}

/// A refill reminder missed by up to a week (the scheduler was down, or a new forecast
/// moved the date nearer) is sent late rather than not at all.
fn refill_catch_up() -> Duration {
    Duration::days(7)
}

/// A send time already passed is moved to now, and then out of the patient's quiet hours.
fn late_but_not_at_night(
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    settings: &ReminderSettings,
    zone: ClinicZone,
) -> Option<DateTime<Utc>> {
    (at < now).then(|| settings.quiet_hours.next_allowed(now, zone))
}

/// What one planning step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    pub enqueued: usize,
    pub voided: usize,
    pub outreach_raised: usize,
    pub outreach_closed: usize,
}

impl std::ops::AddAssign for Planned {
    fn add_assign(&mut self, o: Self) {
        self.enqueued += o.enqueued;
        self.voided += o.voided;
        self.outreach_raised += o.outreach_raised;
        self.outreach_closed += o.outreach_closed;
    }
}

/// What happened to an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Booked,
    Rescheduled,
    /// Cancelled, checked in, completed or no-show.
    StatusChanged,
}

fn row(
    key: String,
    kind: EmailKind,
    subject_type: &str,
    subject_id: String,
    patient: PatientId,
    refers_to: DateTime<Utc>,
    due_at: DateTime<Utc>,
) -> NewOutboxRow {
    NewOutboxRow {
        dedupe_key: key,
        kind: kind.name().to_owned(),
        subject_type: subject_type.to_owned(),
        subject_id,
        patient_id: Some(patient.to_string()),
        refers_to,
        due_at,
    }
}

/// The reminders an appointment should have, and the outreach entries for reminders that
/// quiet hours push past its start. Only reminders due after the appointment's last change
/// (a booking made two days ahead gets its confirmation, not also a late "72 hours before")
/// and at most `grace` late (the scheduler was down).
fn appointment_reminders(
    a: &Appointment,
    zone: ClinicZone,
    settings: &ReminderSettings,
    now: DateTime<Utc>,
) -> (Vec<NewOutboxRow>, Vec<NewEntry>) {
    let (mut rows, mut entries) = (Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    let floor = (now - grace()).max(a.updated_at);
    for &hours in settings.offsets_for(&a.type_code).hours() {
        let before = Duration::hours(i64::from(hours));
        match appointment_reminder_at(a.start, before, settings.quiet_hours, zone) {
            // Two offsets that quiet hours move to the same instant make one email.
            Some(at) if at >= floor && seen.insert(at) => rows.push(row(
                format!("appointment:{}:{}:reminder:{hours}h", a.id, a.sequence),
                EmailKind::AppointmentReminder,
                APPOINTMENT,
                a.id.to_string(),
                a.patient_id,
                a.start,
                // A late reminder still waits for the end of quiet hours (if that is before the start).
                late_but_not_at_night(at, now, settings, zone)
                    .filter(|t| *t < a.start)
                    .unwrap_or(at.max(now)),
            )),
            None if a.start - before >= now => entries.push(NewEntry {
                dedupe_key: format!("reminder_not_sent:{}:{}:{hours}h", a.id, a.sequence),
                patient_id: a.patient_id.to_string(),
                reason: Reason::ReminderNotSent,
                subject_type: APPOINTMENT.into(),
                subject_id: a.id.to_string(),
                refers_to: a.start,
            }),
            _ => {}
        }
    }
    (rows, entries)
}

/// Voids the pending rows of `kinds` about an appointment that changed.
fn void_superseded(
    conn: &mut DbConnection,
    appointment_id: &str,
    kinds: &[EmailKind],
    now: DateTime<Utc>,
) -> Result<usize, ReminderError> {
    let kinds: Vec<&str> = kinds.iter().map(EmailKind::name).collect();
    Ok(crate::outbox::void_pending(
        conn,
        APPOINTMENT,
        appointment_id,
        &kinds,
        "superseded by a change to the appointment",
        now,
    )?)
}

/// Plans the emails for an appointment that was just booked or changed. Call inside the
/// change's transaction so the emails exist if and only if the change does.
pub fn after_appointment_change(
    conn: &mut DbConnection,
    a: &Appointment,
    change: Change,
    settings: &ReminderSettings,
    now: DateTime<Utc>,
) -> Result<Planned, ReminderError> {
    let zone = clinic_patients::repo::time_zones(conn, &[a.patient_id])?
        .remove(&a.patient_id)
        .ok_or(ReminderError::NotFound("patient"))?;
    let mut planned = Planned::default();
    let id = a.id.to_string();
    let mut rows = Vec::new();
    let mut entries = Vec::new();
    let notice = |key: String, kind| row(key, kind, APPOINTMENT, id.clone(), a.patient_id, a.start, now);
    match change {
        Change::Booked => {
            rows.push(notice(
                format!("appointment:{id}:confirmation"),
                EmailKind::AppointmentConfirmation,
            ));
        }
        Change::Rescheduled => {
            // The update replaces any confirmation or update not yet sent.
            planned.voided += void_superseded(
                conn,
                &id,
                &[
                    EmailKind::AppointmentReminder,
                    EmailKind::AppointmentConfirmation,
                    EmailKind::AppointmentUpdate,
                ],
                now,
            )?;
            rows.push(notice(
                format!("appointment:{id}:{}:update", a.sequence),
                EmailKind::AppointmentUpdate,
            ));
        }
        Change::StatusChanged => {
            planned.voided += void_superseded(conn, &id, &[EmailKind::AppointmentReminder], now)?;
            if a.status == AppointmentStatus::Cancelled {
                planned.voided += void_superseded(
                    conn,
                    &id,
                    &[EmailKind::AppointmentConfirmation, EmailKind::AppointmentUpdate],
                    now,
                )?;
                rows.push(notice(
                    format!("appointment:{id}:cancellation"),
                    EmailKind::AppointmentCancellation,
                ));
            }
        }
    }
    if a.status == AppointmentStatus::Booked {
        let (r, e) = appointment_reminders(a, zone, settings, now);
        rows.extend(r);
        entries.extend(e);
    }
    planned.enqueued += enqueue_many(conn, rows, now)?;
    planned.outreach_raised += outreach::raise(conn, entries, now)?;
    Ok(planned)
}

/// After the reminder settings change (in that change's transaction): voids the planned,
/// unsent appointment and refill reminders whose offset the new settings no longer have, so
/// a removed "24 hours before" does not still go out. Reminders for offsets that remain keep
/// their rows; offsets that are new are planned by the next tick. Rows a dispatcher holds
/// under a lease are left alone: they are being sent. Returns how many were voided.
pub fn void_dropped_offsets(
    conn: &mut DbConnection,
    settings: &ReminderSettings,
    now: DateTime<Utc>,
) -> Result<usize, ReminderError> {
    let now_db = clinic_store::time::to_db(now);
    let pending: Vec<(String, String, String, String)> = outbox::table
        .filter(outbox::state.eq("pending"))
        .filter(outbox::kind.eq_any([EmailKind::AppointmentReminder.name(), EmailKind::RefillReminder.name()]))
        .filter(outbox::lease_until.is_null().or(outbox::lease_until.lt(now_db)))
        .select((outbox::id, outbox::kind, outbox::subject_id, outbox::dedupe_key))
        .load(conn)?;
    let appointment_ids: Vec<&str> = pending
        .iter()
        .filter(|(_, kind, _, _)| kind == EmailKind::AppointmentReminder.name())
        .map(|(_, _, subject, _)| subject.as_str())
        .collect();
    let mut types = std::collections::HashMap::new();
    for chunk in appointment_ids.chunks(500) {
        let found: Vec<(String, String)> = clinic_store::schema::appointments::table
            .filter(clinic_store::schema::appointments::id.eq_any(chunk))
            .select((
                clinic_store::schema::appointments::id,
                clinic_store::schema::appointments::type_code,
            ))
            .load(conn)?;
        types.extend(found);
    }
    // Keys end in the offset: `…:reminder:{hours}h` and `refill:{pump}:{due}:{days}d`.
    let offset = |key: &str, unit: char| -> Option<u32> { key.rsplit(':').next()?.strip_suffix(unit)?.parse().ok() };
    let dropped: Vec<String> = pending
        .into_iter()
        .filter(|(_, kind, subject, key)| {
            if kind == EmailKind::RefillReminder.name() {
                offset(key, 'd').is_some_and(|d| !settings.refill_offsets.days().contains(&d))
            } else {
                let Some(code) = types.get(subject) else { return false };
                offset(key, 'h').is_some_and(|h| !settings.offsets_for(code).hours().contains(&h))
            }
        })
        .map(|(id, ..)| id)
        .collect();
    Ok(crate::outbox::void_pending_ids(
        conn,
        &dropped,
        "superseded by a change to the reminder settings",
        now,
    )?)
}

/// Keys among `keys` that exist already (in chunks, for SQLite's parameter limit).
fn existing_keys(conn: &mut DbConnection, keys: &[String]) -> Result<HashSet<String>, ReminderError> {
    let mut out = HashSet::new();
    for chunk in keys.chunks(500) {
        let found: Vec<String> = outbox::table
            .filter(outbox::dedupe_key.eq_any(chunk))
            .select(outbox::dedupe_key)
            .load(conn)?;
        out.extend(found);
    }
    Ok(out)
}

/// Enqueues the rows whose keys are new: one read for the lot instead of a write per row.
fn enqueue_new(conn: &mut DbConnection, rows: Vec<NewOutboxRow>, now: DateTime<Utc>) -> Result<usize, ReminderError> {
    let keys: Vec<String> = rows.iter().map(|r| r.dedupe_key.clone()).collect();
    let existing = existing_keys(conn, &keys)?;
    let new: Vec<NewOutboxRow> = rows.into_iter().filter(|r| !existing.contains(&r.dedupe_key)).collect();
    Ok(enqueue_many(conn, new, now)?)
}

/// The start of a local date in the clinic's zone: what a refill reminder "refers to".
pub fn refill_refers_to(zone: ClinicZone, d: NaiveDate) -> DateTime<Utc> {
    clinic_pumps::worklist::end_of_day(zone, d - Duration::days(1))
}

/// One planning pass (every tick): the day's appointment and refill reminders, stale
/// refill reminders voided, outreach entries raised and closed.
pub fn plan(
    conn: &mut DbConnection,
    settings: &ReminderSettings,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Planned, ReminderError> {
    let mut planned = Planned::default();
    planned += plan_appointments(conn, settings, now)?;
    planned += plan_refills(conn, settings, clinic_zone, now)?;
    Ok(planned)
}

fn plan_appointments(
    conn: &mut DbConnection,
    settings: &ReminderSettings,
    now: DateTime<Utc>,
) -> Result<Planned, ReminderError> {
    // An appointment whose furthest reminder falls within the window starts at most
    // horizon + window from now.
    let until = now + settings.appointment_horizon() + planning_window();
    let booked = appointments::booked_starting_between(conn, now, until)?;
    let patients: Vec<PatientId> = booked.iter().map(|a| a.patient_id).collect();
    let zones = clinic_patients::repo::time_zones(conn, &patients)?;
    let (mut rows, mut entries) = (Vec::new(), Vec::new());
    for a in &booked {
        let Some(&zone) = zones.get(&a.patient_id) else {
            continue;
        };
        let (r, e) = appointment_reminders(a, zone, settings, now);
        rows.extend(r.into_iter().filter(|r| r.due_at <= now + planning_window()));
        entries.extend(e);
    }
    dialect::write_transaction(conn, |conn| {
        Ok(Planned {
            enqueued: enqueue_new(conn, rows, now)?,
            outreach_raised: outreach::raise(conn, entries, now)?,
            ..Planned::default()
        })
    })
}

/// The key prefix of a pump's refill reminders for one due date.
fn refill_prefix(pump_id: &str, due: NaiveDate) -> String {
    format!("refill:{pump_id}:{due}:")
}

fn plan_refills(
    conn: &mut DbConnection,
    settings: &ReminderSettings,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Planned, ReminderError> {
    let today = clinic_zone.local_date(now);
    let furthest = settings.refill_offsets.days().first().copied().unwrap_or(0);
    let reach = i64::from(furthest.max(settings.escalation_days)) + 2;
    let due = clinic_pumps::worklist::due_pumps(conn, today + Duration::days(reach), i64::MAX, clinic_zone, now)?;
    let patients: Vec<PatientId> = due.iter().map(|d| d.pump.patient_id).collect();
    let zones = clinic_patients::repo::time_zones(conn, &patients)?;
    let escalate_until = today + Duration::days(i64::from(settings.escalation_days));

    let (mut rows, mut entries) = (Vec::new(), Vec::new());
    let mut live_prefixes = HashSet::new();
    let mut open_refill_keys = Vec::new();
    for d in &due {
        if d.refill_booked.is_some() {
            continue;
        }
        let (pump, due_date) = (&d.pump, d.pump.forecast.due_date);
        let refers_to = refill_refers_to(clinic_zone, due_date);
        if due_date <= escalate_until {
            let key = format!("refill_unbooked:{}:{due_date}", pump.id);
            open_refill_keys.push(key.clone());
            entries.push(NewEntry {
                dedupe_key: key,
                patient_id: pump.patient_id.to_string(),
                reason: Reason::RefillUnbooked,
                subject_type: PUMP.into(),
                subject_id: pump.id.clone(),
                refers_to,
            });
        }
        // Overdue pumps get phone calls, not emails about a date already past.
        if due_date < today {
            continue;
        }
        let Some(&zone) = zones.get(&pump.patient_id) else {
            continue;
        };
        live_prefixes.insert(refill_prefix(&pump.id, due_date));
        let times: Vec<(u32, DateTime<Utc>)> = settings
            .refill_offsets
            .days()
            .iter()
            .map(|&days| {
                let at = refill_reminder_at(due_date, days, settings.refill_send_at, settings.quiet_hours, zone);
                (days, at)
            })
            .collect();
        // Of the reminders whose time has passed, only the latest is still worth sending
        // (a forecast that moved the date nearer must not send three emails at once).
        let latest_passed = times.iter().filter(|(_, at)| *at <= now).map(|(_, at)| *at).max();
        for (days, at) in times {
            let wanted = if at <= now {
                Some(at) == latest_passed && at >= now - refill_catch_up()
            } else {
                at <= now + planning_window()
            };
            if wanted {
                rows.push(row(
                    format!("{}{days}d", refill_prefix(&pump.id, due_date)),
                    EmailKind::RefillReminder,
                    PUMP,
                    pump.id.clone(),
                    pump.patient_id,
                    refers_to,
                    late_but_not_at_night(at, now, settings, zone).unwrap_or(at),
                ));
            }
        }
    }

    dialect::write_transaction(conn, |conn| {
        let mut planned = Planned {
            enqueued: enqueue_new(conn, rows, now)?,
            outreach_raised: outreach::raise(conn, entries, now)?,
            ..Planned::default()
        };
        // Pending refill reminders for a date no longer current, or for a pump now booked
        // or explanted, are void.
        let pending: Vec<(String, String)> = outbox::table
            .filter(outbox::kind.eq(EmailKind::RefillReminder.name()))
            .filter(outbox::state.eq("pending"))
            .select((outbox::id, outbox::dedupe_key))
            .load(conn)?;
        let stale: Vec<String> = pending
            .into_iter()
            .filter(|(_, key)| {
                let prefix = key.rsplit_once(':').map(|(p, _)| format!("{p}:")).unwrap_or_default();
                !live_prefixes.contains(&prefix)
            })
            .map(|(id, _)| id)
            .collect();
        planned.voided +=
            crate::outbox::void_pending_ids(conn, &stale, "a refill was booked or the due date changed", now)?;
        planned.outreach_closed += outreach::close_resolved(
            conn,
            Reason::RefillUnbooked,
            &open_refill_keys,
            PUMP,
            "closed by the system: a refill is booked or the due date changed",
            now,
        )?;
        Ok(planned)
    })
}
