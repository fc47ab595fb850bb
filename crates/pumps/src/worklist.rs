//! The refill worklist (active pumps due within N days or overdue, soonest first, with the
//! facts staff act on) and suggested refill slots. Reads through `clinic-scheduling`.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clinic_domain::forecast::Binding;
use clinic_domain::scheduling::{Slot, Span};
use clinic_domain::time::{ClinicZone, LocalTime};
use clinic_patients::audit::{Actor, AuditWriter, PendingEvent};
use clinic_scheduling::appointments;
use clinic_scheduling::providers::Provider;
use clinic_scheduling::types::REFILL;
use clinic_store::DbConnection;

use crate::registry::{self, Pump};
use crate::PumpError;

#[derive(Debug, Clone, PartialEq)]
pub struct WorklistEntry {
    pub pump: Pump,
    pub patient_name: String,
    pub overdue: bool,
    pub due_now_missing_data: bool,
    pub discrepancy_at_last_fill: bool,
    pub replacement_due: bool,
    /// A live refill appointment on or before the due date, if one is booked.
    pub refill_booked: Option<appointments::Appointment>,
}

/// The first instant of the day after `d` on the clinic's calendar.
fn end_of_day(zone: ClinicZone, d: NaiveDate) -> DateTime<Utc> {
    let next = (d + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default();
    match zone.resolve_local(next) {
        LocalTime::Single(t) | LocalTime::Repeated(t, _) => t,
        LocalTime::Skipped => next.and_utc(),
    }
}

/// Active pumps due on or before today + `within_days` (overdue ones included), soonest
/// first. Uses the stored, indexed due date; each listed patient's access is audited.
pub fn refills(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    within_days: u32,
    limit: i64,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Vec<WorklistEntry>, PumpError> {
    let today = zone.local_date(now);
    let until = (today + Duration::days(i64::from(within_days)))
        .format("%Y-%m-%d")
        .to_string();
    // Three queries for the whole list: the due pumps, their last fills' flags, and the
    // refills booked for their patients (matched up in memory).
    let due = registry::due_with_names(conn, &until, limit)?;
    let last_fills: Vec<(String, DateTime<Utc>)> = due
        .iter()
        .filter_map(|(p, _)| p.forecast.inputs.filled_at.map(|f| (p.id.clone(), f)))
        .collect();
    let flagged = registry::discrepancies(conn, &last_fills)?;
    // A refill still ahead (from the start of today) and after the last fill counts.
    let start_of_today = end_of_day(zone, today - Duration::days(1));
    let latest_due = due.iter().map(|(p, _)| p.forecast.due_date).max().unwrap_or(today);
    let mut patient_ids: Vec<_> = due.iter().map(|(p, _)| p.patient_id).collect();
    patient_ids.sort();
    patient_ids.dedup();
    let booked = appointments::live_of_type_for_patients(
        conn,
        &patient_ids,
        REFILL,
        start_of_today,
        end_of_day(zone, latest_due),
    )?;
    let mut entries = Vec::with_capacity(due.len());
    let mut events = Vec::new();
    for (pump, patient_name) in due {
        let due_date = pump.forecast.due_date;
        let from = pump
            .forecast
            .inputs
            .filled_at
            .map_or(start_of_today, |f| f.max(start_of_today));
        let until_due = end_of_day(zone, due_date);
        let refill_booked = booked
            .iter()
            .find(|a| a.patient_id == pump.patient_id && a.start >= from && a.start < until_due)
            .cloned();
        events.push(PendingEvent {
            actor: actor.clone(),
            action: "pump.worklist",
            subject_type: "patient",
            subject_id: pump.patient_id.to_string(),
            at: now,
        });
        entries.push(WorklistEntry {
            overdue: due_date < today,
            due_now_missing_data: pump.forecast.binding == Binding::MissingData,
            discrepancy_at_last_fill: flagged.contains(&pump.id),
            replacement_due: pump.replacement_deadline <= today + Duration::days(i64::from(within_days)),
            patient_name,
            refill_booked,
            pump,
        });
    }
    audit.record(events)?;
    Ok(entries)
}

/// Free refill slots in [due − 14 days, due] (from now on), earliest first, across every
/// active provider.
pub fn refill_slots(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    pump_id: &str,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(NaiveDate, Vec<(Provider, Slot)>), PumpError> {
    let pump = registry::get(conn, audit, actor, pump_id, now)?;
    let due = pump.forecast.due_date;
    // Overdue or due now: offer the next 14 days instead of an empty window.
    let today = zone.local_date(now);
    let window_start = end_of_day(zone, due - Duration::days(15)).max(now);
    let window_end = end_of_day(zone, due.max(today + Duration::days(14)));
    if window_start >= window_end {
        return Ok((due, Vec::new()));
    }
    let found = appointments::availability(conn, None, REFILL, Span::new(window_start, window_end), zone, now)?;
    let mut slots: Vec<(Provider, Slot)> = found
        .into_iter()
        .flat_map(|(p, slots)| slots.into_iter().map(move |s| (p.clone(), s)))
        .collect();
    slots.sort_by_key(|(p, s)| (s.start, p.name.clone()));
    slots.truncate(50);
    Ok((due, slots))
}
