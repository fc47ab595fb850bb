//! Reminder timing: when an appointment reminder may go out, given how long before the
//! appointment it is planned and the patient's quiet hours in the patient's own zone.
//!
//! A reminder that falls inside quiet hours moves to the end of that quiet period (a wall
//! time, so it follows DST), and is dropped when that is no longer before the appointment:
//! the planner then puts the patient on the outreach list instead.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::time::ClinicZone;
use crate::FieldError;

/// Local wall times during which no email is sent. `start > end` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
}

impl Default for QuietHours {
    /// 21:00–08:00.
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl QuietHours {
    pub fn new(start: NaiveTime, end: NaiveTime) -> Result<Self, FieldError> {
        if start == end {
            return Err(FieldError::new(
                "quiet_hours",
                "empty_quiet_hours",
                "quiet hours must start and end at different times",
            ));
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn end(&self) -> NaiveTime {
        self.end
    }

    pub fn contains(&self, local: NaiveTime) -> bool {
        if self.start < self.end {
            local >= self.start && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// The first instant at or after `t` that is outside quiet hours in `zone`.
    pub fn next_allowed(&self, t: DateTime<Utc>, zone: ClinicZone) -> DateTime<Utc> {
        let local = t.with_timezone(&zone.tz()).naive_local();
        if !self.contains(local.time()) {
            return t;
        }
        // Quiet hours that wrap midnight and began this evening end tomorrow.
        let date = if self.start > self.end && local.time() >= self.start {
            local.date().succ_opt().unwrap_or(local.date())
        } else {
            local.date()
        };
        first_instant_from(zone, date.and_time(self.end)).max(t)
    }
}

/// The instant of a local wall time, as the clock first shows it (see
/// [`ClinicZone::first_instant_at_or_after`]); read as UTC only if the zone data make no sense.
fn first_instant_from(zone: ClinicZone, local: NaiveDateTime) -> DateTime<Utc> {
    zone.first_instant_at_or_after(local).unwrap_or_else(|| local.and_utc())
}

/// When a reminder planned `before` an appointment starting at `start` goes out, or `None`
/// when quiet hours push it to or past the start.
pub fn appointment_reminder_at(
    start: DateTime<Utc>,
    before: Duration,
    quiet: QuietHours,
    patient_zone: ClinicZone,
) -> Option<DateTime<Utc>> {
    let at = quiet.next_allowed(start - before, patient_zone);
    (at < start).then_some(at)
}

/// Days before the refill due date on which a refill reminder is sent (21, 14, 7 by
/// default), kept from the furthest to the nearest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefillOffsets(Vec<u32>);

impl Default for RefillOffsets {
    fn default() -> Self {
        Self(vec![21, 14, 7])
    }
}

impl RefillOffsets {
    /// The longest a pump may go between refills is well under a year; 1–180 days bounds typos.
    pub const MAX_DAYS: u32 = 180;

    pub fn new(days: &[i64]) -> Result<Self, FieldError> {
        let invalid = |message: String| FieldError::new("refill_offsets_days", "invalid_offsets", message);
        if days.is_empty() || days.len() > 10 {
            return Err(invalid("give between 1 and 10 offsets".into()));
        }
        let mut out = Vec::with_capacity(days.len());
        for &d in days {
            match u32::try_from(d) {
                Ok(d) if (1..=Self::MAX_DAYS).contains(&d) => out.push(d),
                _ => {
                    return Err(invalid(format!(
                        "{d} is not a number of days from 1 to {}",
                        Self::MAX_DAYS
                    )))
                }
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        if out.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("each offset may appear once".into()));
        }
        Ok(Self(out))
    }

    pub fn days(&self) -> &[u32] {
        &self.0
    }
}

/// When the refill reminder `days_before` the due date goes out: that local date at
/// `send_at` on the patient's wall clock, moved out of quiet hours if `send_at` is inside them.
pub fn refill_reminder_at(
    due: NaiveDate,
    days_before: u32,
    send_at: NaiveTime,
    quiet: QuietHours,
    patient_zone: ClinicZone,
) -> DateTime<Utc> {
    let date = due - Duration::days(i64::from(days_before));
    quiet.next_allowed(first_instant_from(patient_zone, date.and_time(send_at)), patient_zone)
}

/// Hours before an appointment at which its reminders go out (72 h and 24 h by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentOffsets(Vec<u32>);

impl Default for AppointmentOffsets {
    fn default() -> Self {
        Self(vec![72, 24])
    }
}

impl AppointmentOffsets {
    /// Four weeks: a reminder further ahead than that is a letter, not a reminder.
    pub const MAX_HOURS: u32 = 672;

    /// `field` names the setting in errors (one list per appointment type).
    pub fn new(hours: &[i64], field: &str) -> Result<Self, FieldError> {
        let invalid = |message: String| FieldError::new(field, "invalid_offsets", message);
        if hours.len() > 10 {
            return Err(invalid("give at most 10 offsets".into()));
        }
        let mut out = Vec::with_capacity(hours.len());
        for &h in hours {
            match u32::try_from(h) {
                Ok(h) if (1..=Self::MAX_HOURS).contains(&h) => out.push(h),
                _ => {
                    return Err(invalid(format!(
                        "{h} is not a number of hours from 1 to {}",
                        Self::MAX_HOURS
                    )))
                }
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        if out.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("each offset may appear once".into()));
        }
        Ok(Self(out))
    }

    /// An empty list means "no reminders for this type".
    pub fn hours(&self) -> &[u32] {
        &self.0
    }
}

/// The clinic's reminder policy, editable by `reminders:admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderSettings {
    /// Used for appointment types without their own entry.
    pub default_appointment_offsets: AppointmentOffsets,
    /// Per appointment type code.
    pub appointment_offsets: std::collections::BTreeMap<String, AppointmentOffsets>,
    pub quiet_hours: QuietHours,
    pub refill_offsets: RefillOffsets,
    /// Wall-clock time (patient's zone) at which refill reminders go out.
    pub refill_send_at: NaiveTime,
    /// A refill due within this many days with nothing booked puts the patient on the
    /// outreach list.
    pub escalation_days: u32,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        Self {
            default_appointment_offsets: AppointmentOffsets::default(),
            appointment_offsets: std::collections::BTreeMap::new(),
            quiet_hours: QuietHours::default(),
            refill_offsets: RefillOffsets::default(),
            refill_send_at: NaiveTime::from_hms_opt(10, 0, 0).unwrap_or(NaiveTime::MIN),
            escalation_days: 7,
        }
    }
}

impl ReminderSettings {
    pub const MAX_ESCALATION_DAYS: u32 = 60;

    pub fn offsets_for(&self, type_code: &str) -> &AppointmentOffsets {
        self.appointment_offsets
            .get(type_code)
            .unwrap_or(&self.default_appointment_offsets)
    }

    pub fn check_escalation_days(days: i64) -> Result<u32, FieldError> {
        u32::try_from(days)
            .ok()
            .filter(|d| (1..=Self::MAX_ESCALATION_DAYS).contains(d))
            .ok_or_else(|| {
                FieldError::new(
                    "escalation_days",
                    "out_of_range",
                    format!("give a number of days from 1 to {}", Self::MAX_ESCALATION_DAYS),
                )
            })
    }

    /// How far ahead of an appointment the planner must look.
    pub fn appointment_horizon(&self) -> Duration {
        let longest = self
            .appointment_offsets
            .values()
            .chain(std::iter::once(&self.default_appointment_offsets))
            .flat_map(|o| o.hours().iter().copied())
            .max()
            .unwrap_or(0);
        Duration::hours(i64::from(longest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn zone(name: &str) -> ClinicZone {
        ClinicZone::parse(name).expect("zone")
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("instant")
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("time")
    }

    const CHICAGO: &str = "America/Chicago";

    #[test]
    fn reminders_outside_quiet_hours_keep_their_offset() {
        // 10:00 CST on 10 Feb 2027 is 16:00 UTC.
        let start = utc(2027, 2, 10, 16, 0);
        let at = appointment_reminder_at(start, Duration::hours(72), QuietHours::default(), zone(CHICAGO));
        assert_eq!(at, Some(utc(2027, 2, 7, 16, 0)));
    }

    #[test]
    fn a_reminder_in_the_night_goes_out_when_quiet_hours_end() {
        // Appointment 07:00 CST; 24 h before is 07:00 the day before, inside 21:00–08:00.
        let start = utc(2027, 2, 10, 13, 0);
        let at = appointment_reminder_at(start, Duration::hours(24), QuietHours::default(), zone(CHICAGO));
        assert_eq!(at, Some(utc(2027, 2, 9, 14, 0)), "08:00 CST on the 9th");
        // Appointment 22:00 CST: 24 h before is 22:00 the evening before; quiet ends 08:00
        // on the appointment's own day, still before it.
        let start = utc(2027, 2, 11, 4, 0);
        let at = appointment_reminder_at(start, Duration::hours(24), QuietHours::default(), zone(CHICAGO));
        assert_eq!(at, Some(utc(2027, 2, 10, 14, 0)));
    }

    #[test]
    fn a_reminder_that_quiet_hours_push_past_the_start_is_dropped() {
        // Appointment 07:30 CST, reminder an hour before: quiet until 08:00, after the start.
        let start = utc(2027, 2, 10, 13, 30);
        assert_eq!(
            appointment_reminder_at(start, Duration::hours(1), QuietHours::default(), zone(CHICAGO)),
            None
        );
    }

    #[test]
    fn quiet_hours_end_on_the_wall_clock_across_dst() {
        let q = QuietHours::default();
        // Spring forward in Chicago on 14 Mar 2027: 08:00 that morning is CDT (13:00 UTC).
        assert_eq!(
            q.next_allowed(utc(2027, 3, 14, 5, 0), zone(CHICAGO)),
            utc(2027, 3, 14, 13, 0)
        );
        // Fall back on 7 Nov 2027: 08:00 that morning is CST (14:00 UTC).
        assert_eq!(
            q.next_allowed(utc(2027, 11, 7, 5, 0), zone(CHICAGO)),
            utc(2027, 11, 7, 14, 0)
        );
        // Sydney springs forward on 3 Oct 2027: 08:00 AEDT is 21:00 UTC the day before.
        assert_eq!(
            q.next_allowed(utc(2027, 10, 2, 12, 0), zone("Australia/Sydney")),
            utc(2027, 10, 2, 21, 0)
        );
    }

    #[test]
    fn quiet_hours_ending_inside_the_spring_gap_end_when_the_gap_does() {
        // Chicago skips 02:00–03:00 on 14 Mar 2027; quiet hours to 02:30 end at 03:00 CDT.
        let q = QuietHours::new(hm(21, 0), hm(2, 30)).expect("quiet hours");
        assert_eq!(
            q.next_allowed(utc(2027, 3, 14, 4, 0), zone(CHICAGO)),
            utc(2027, 3, 14, 8, 0)
        );
    }

    #[test]
    fn quiet_hours_within_one_day_and_the_patients_own_zone() {
        let lunch = QuietHours::new(hm(12, 0), hm(13, 0)).expect("quiet hours");
        assert!(lunch.contains(hm(12, 30)) && !lunch.contains(hm(13, 0)) && !lunch.contains(hm(23, 0)));
        // 12:15 in Sydney (AEDT, UTC+11) on 10 Feb 2027 is 01:15 UTC.
        assert_eq!(
            lunch.next_allowed(utc(2027, 2, 10, 1, 15), zone("Australia/Sydney")),
            utc(2027, 2, 10, 2, 0)
        );
        assert!(QuietHours::new(hm(9, 0), hm(9, 0)).is_err());
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn refill_offsets_are_validated_and_sorted() {
        assert_eq!(RefillOffsets::default().days(), &[21, 14, 7]);
        assert_eq!(RefillOffsets::new(&[7, 21, 14]).expect("offsets").days(), &[21, 14, 7]);
        for bad in [
            &[][..],
            &[0],
            &[-3],
            &[181],
            &[7, 7],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        ] {
            let e = RefillOffsets::new(bad).expect_err("refused");
            assert_eq!(
                (e.field.as_str(), e.code.as_str()),
                ("refill_offsets_days", "invalid_offsets"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refill_reminders_go_out_on_the_local_date_at_the_send_time() {
        let q = QuietHours::default();
        // Due 31 Mar 2027; 21 days before is 10 Mar (CST), 7 days before 24 Mar (CDT).
        assert_eq!(
            refill_reminder_at(date(2027, 3, 31), 21, hm(9, 0), q, zone(CHICAGO)),
            utc(2027, 3, 10, 15, 0)
        );
        assert_eq!(
            refill_reminder_at(date(2027, 3, 31), 7, hm(9, 0), q, zone(CHICAGO)),
            utc(2027, 3, 24, 14, 0)
        );
        // A send time inside quiet hours waits for their end.
        assert_eq!(
            refill_reminder_at(date(2027, 3, 31), 7, hm(6, 0), q, zone(CHICAGO)),
            utc(2027, 3, 24, 13, 0)
        );
        // A send time the clocks skip goes out when the gap ends (2027-03-14 02:30 CST → 03:00 CDT).
        let night_owl = QuietHours::new(hm(23, 0), hm(1, 0)).expect("quiet hours");
        assert_eq!(
            refill_reminder_at(date(2027, 3, 21), 7, hm(2, 30), night_owl, zone(CHICAGO)),
            utc(2027, 3, 14, 8, 0)
        );
    }

    proptest! {
        #[test]
        fn planned_reminders_are_outside_quiet_hours_and_before_the_start(
            minutes in 0i64..(2 * 366 * 24 * 60),
            before_hours in 1i64..100,
            qs in 0u32..24, qe in 0u32..24,
            z in prop::sample::select(vec![CHICAGO, "Australia/Sydney", "Europe/London", "Australia/Lord_Howe"]),
        ) {
            prop_assume!(qs != qe);
            let quiet = QuietHours::new(hm(qs, 0), hm(qe, 0)).expect("quiet hours");
            let zone = zone(z);
            let start = utc(2027, 1, 1, 0, 0) + Duration::minutes(minutes);
            let earliest = start - Duration::hours(before_hours);
            match appointment_reminder_at(start, Duration::hours(before_hours), quiet, zone) {
                Some(at) => {
                    prop_assert!(at >= earliest && at < start);
                    let local = at.with_timezone(&zone.tz()).time();
                    prop_assert!(!quiet.contains(local), "{at} is {local} local, inside quiet hours");
                    // Moved only as far as needed: a minute earlier is quiet or before the offset.
                    if at > earliest {
                        let prev = (at - Duration::minutes(1)).with_timezone(&zone.tz()).time();
                        prop_assert!(quiet.contains(prev), "moved further than needed: {prev} is allowed");
                    }
                }
                None => {
                    // Every minute from the planned time to the start is quiet.
                    let mut t = earliest;
                    while t < start {
                        prop_assert!(quiet.contains(t.with_timezone(&zone.tz()).time()), "{t} was allowed");
                        t += Duration::minutes(15);
                    }
                }
            }
        }
    }
}
