//! The refill worklist (active pumps due within N days or overdue, soonest first, with the
//! facts staff act on) and suggested refill slots. Reads through `clinic-scheduling`.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clinic_domain::forecast::Binding;
use clinic_domain::scheduling::{Slot, Span};
use clinic_domain::time::ClinicZone;
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

/// The first instant of the day after `d` on the clinic's calendar (a midnight skipped by
/// DST is the first instant the clock shows after it).
pub fn end_of_day(zone: ClinicZone, d: NaiveDate) -> DateTime<Utc> {
    let next = (d + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default();
    zone.first_instant_at_or_after(next).unwrap_or_else(|| next.and_utc())
}

/// An active pump due by some date, its patient's name, and the live refill appointment
/// that covers it, if one is booked.
#[derive(Debug, Clone, PartialEq)]
pub struct DuePump {
    pub pump: Pump,
    pub patient_name: String,
    /// A live refill appointment after the last fill (and from the start of today) and
    /// before the end of the due date.
    pub refill_booked: Option<appointments::Appointment>,
}

/// Active pumps due on or before `until` (overdue ones included), soonest first, each with
/// its booked refill. Three queries for the whole list, whatever its length; not audited
/// (callers that show it to staff audit each patient).
pub fn due_pumps(
    conn: &mut DbConnection,
    until: NaiveDate,
    limit: i64,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Vec<DuePump>, PumpError> {
    let today = zone.local_date(now);
    let due = registry::due_with_names(conn, &until.format("%Y-%m-%d").to_string(), limit)?;
    // A refill still ahead (from the start of today) and after the last fill counts.
    let start_of_today = end_of_day(zone, today - Duration::days(1));
    let latest_due = due.iter().map(|(p, _)| p.forecast.due_date).max().unwrap_or(today);
    let mut patient_ids: Vec<_> = due.iter().map(|(p, _)| p.patient_id).collect();
    patient_ids.sort();
    patient_ids.dedup();
    let mut booked = Vec::new();
    // Chunks keep SQLite under its bound-parameter limit.
    for chunk in patient_ids.chunks(500) {
        booked.extend(appointments::live_of_type_for_patients(
            conn,
            chunk,
            REFILL,
            start_of_today,
            end_of_day(zone, latest_due),
        )?);
    }
    Ok(due
        .into_iter()
        .map(|(pump, patient_name)| {
            let refill_booked = covering_refill(&booked, &pump, zone, start_of_today);
            DuePump {
                pump,
                patient_name,
                refill_booked,
            }
        })
        .collect())
}

/// The refill among `booked` (live refills of the pump's patient) that covers the pump: after
/// its last fill, from the start of today, before the end of its due date.
fn covering_refill(
    booked: &[appointments::Appointment],
    pump: &Pump,
    zone: ClinicZone,
    start_of_today: DateTime<Utc>,
) -> Option<appointments::Appointment> {
    let from = pump
        .forecast
        .inputs
        .filled_at
        .map_or(start_of_today, |f| f.max(start_of_today));
    let until_due = end_of_day(zone, pump.forecast.due_date);
    booked
        .iter()
        .find(|a| a.patient_id == pump.patient_id && a.start >= from && a.start < until_due)
        .cloned()
}

/// The booked refill that covers one pump, if any (see [`due_pumps`]).
pub fn refill_booked_for(
    conn: &mut DbConnection,
    pump: &Pump,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Option<appointments::Appointment>, PumpError> {
    let start_of_today = end_of_day(zone, zone.local_date(now) - Duration::days(1));
    let booked = appointments::live_of_type_for_patients(
        conn,
        &[pump.patient_id],
        REFILL,
        start_of_today,
        end_of_day(zone, pump.forecast.due_date),
    )?;
    Ok(covering_refill(&booked, pump, zone, start_of_today))
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
    let until = today + Duration::days(i64::from(within_days));
    let due = due_pumps(conn, until, limit, zone, now)?;
    let last_fills: Vec<(String, DateTime<Utc>)> = due
        .iter()
        .filter_map(|d| d.pump.forecast.inputs.filled_at.map(|f| (d.pump.id.clone(), f)))
        .collect();
    let flagged = registry::discrepancies(conn, &last_fills)?;
    let mut entries = Vec::with_capacity(due.len());
    let mut events = Vec::new();
    for DuePump {
        pump,
        patient_name,
        refill_booked,
    } in due
    {
        let due_date = pump.forecast.due_date;
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
            replacement_due: pump.replacement_deadline <= until,
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_day_ends_when_the_next_begins_even_when_dst_skips_midnight() {
        // São Paulo sprang forward at midnight on 4 November 2018: 00:00 became 01:00 (-02:00).
        let zone = ClinicZone::parse("America/Sao_Paulo").expect("zone");
        let d = NaiveDate::from_ymd_opt(2018, 11, 3).expect("date");
        assert_eq!(
            end_of_day(zone, d),
            Utc.with_ymd_and_hms(2018, 11, 4, 3, 0, 0).single().expect("instant")
        );
        // An ordinary day: the next local midnight (-03:00).
        let d = NaiveDate::from_ymd_opt(2018, 11, 2).expect("date");
        assert_eq!(
            end_of_day(zone, d),
            Utc.with_ymd_and_hms(2018, 11, 3, 3, 0, 0).single().expect("instant")
        );
    }
}
