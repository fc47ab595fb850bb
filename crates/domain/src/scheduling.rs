//! Scheduling rules: appointment states, weekly working hours, and which start times are
//! bookable. Pure functions of their inputs (the store gathers them).
//!
//! Slots are laid on the provider's wall clock: a provider who starts at 09:00 has a 09:00
//! slot on both sides of a DST change. A wall time that does not exist (clocks jump forward
//! over it) is not offered; a wall time that occurs twice (clocks go back) is offered once,
//! at its first occurrence. An appointment occupies `[start, start + duration)` in elapsed
//! time, and with its buffers it blocks `[start − before, end + after)`; two live
//! appointments of one provider may never have overlapping blocked ranges.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};

use crate::time::{ClinicZone, LocalTime};
use crate::{FieldError, ValidationErrors};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    CheckedIn,
    Completed,
    NoShow,
    Cancelled,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 5] = [
        AppointmentStatus::Booked,
        AppointmentStatus::CheckedIn,
        AppointmentStatus::Completed,
        AppointmentStatus::NoShow,
        AppointmentStatus::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::CheckedIn => "checked_in",
            AppointmentStatus::Completed => "completed",
            AppointmentStatus::NoShow => "no_show",
            AppointmentStatus::Cancelled => "cancelled",
        }
    }

    /// Live appointments hold their time; the others free it.
    pub fn is_live(&self) -> bool {
        matches!(self, AppointmentStatus::Booked | AppointmentStatus::CheckedIn)
    }

    /// booked → checked_in → completed; booked → no_show; booked | checked_in → cancelled.
    pub fn can_become(&self, to: AppointmentStatus) -> bool {
        use AppointmentStatus::*;
        matches!(
            (self, to),
            (Booked, CheckedIn) | (CheckedIn, Completed) | (Booked, NoShow) | (Booked | CheckedIn, Cancelled)
        )
    }
}

impl fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AppointmentStatus {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| FieldError::new("status", "invalid_status", "unknown appointment status"))
    }
}

/// A half-open span of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Span {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end }
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// One working interval of a weekday, on the provider's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingInterval {
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// Exactly `HH:MM`, as the API schema's patterns say (chrono alone would also take `9:00`).
pub fn parse_hh_mm(input: &str) -> Option<NaiveTime> {
    let b = input.as_bytes();
    if b.len() != 5 || b[2] != b':' || !b.iter().enumerate().all(|(i, c)| i == 2 || c.is_ascii_digit()) {
        return None;
    }
    NaiveTime::parse_from_str(input, "%H:%M").ok()
}

/// Parses `HH:MM` on a 5-minute grid.
pub fn parse_wall_time(input: &str, field: &str) -> Result<NaiveTime, FieldError> {
    let t = parse_hh_mm(input)
        .ok_or_else(|| FieldError::new(field, "invalid_time", "expected a wall time such as 09:00"))?;
    if t.minute() % 5 != 0 {
        return Err(FieldError::new(field, "invalid_time", "times are on a 5-minute grid"));
    }
    Ok(t)
}

use chrono::Timelike;

/// Validates a week of hours: each interval starts before it ends and none overlap on a day.
pub fn check_weekly_hours(intervals: &[WorkingInterval]) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    for (i, a) in intervals.iter().enumerate() {
        if a.start >= a.end {
            errors.push(FieldError::new(
                format!("hours[{i}].end"),
                "end_before_start",
                "an interval must end after it starts",
            ));
            continue;
        }
        if intervals[..i]
            .iter()
            .any(|b| b.weekday == a.weekday && b.start < a.end && a.start < b.end)
        {
            errors.push(FieldError::new(
                format!("hours[{i}]"),
                "overlapping_hours",
                "overlaps another interval of the same day",
            ));
        }
    }
    errors.finish()
}

/// The timing rules of an appointment type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeRules {
    pub duration: Duration,
    pub buffer_before: Duration,
    pub buffer_after: Duration,
    pub min_notice: Duration,
    pub horizon: Duration,
}

impl TypeRules {
    /// What an appointment starting at `start` occupies, buffers included.
    pub fn blocked(&self, start: DateTime<Utc>) -> Span {
        Span::new(start - self.buffer_before, start + self.duration + self.buffer_after)
    }
}

/// One provider's calendar facts for the period in question.
#[derive(Debug, Clone, Copy)]
pub struct Calendar<'a> {
    /// The provider's zone: hours are on this wall clock.
    pub zone: ClinicZone,
    /// The clinic's zone: closures are dates on this calendar.
    pub clinic_zone: ClinicZone,
    pub hours: &'a [WorkingInterval],
    pub time_off: &'a [Span],
    pub closures: &'a [NaiveDate],
    /// Blocked spans of the provider's live appointments, sorted by start. They never
    /// overlap each other, which lets a conflict check be a binary search.
    pub busy: &'a [Span],
}

/// Why a start time cannot be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbookable {
    /// Starts are whole minutes.
    NotOnMinute,
    TooSoon,
    BeyondHorizon,
    OutsideHours,
    ClinicClosed,
    TimeOff,
    /// Overlaps this live appointment's blocked span.
    Conflict(Span),
}

impl Unbookable {
    pub fn code(&self) -> &'static str {
        match self {
            Unbookable::NotOnMinute => "not_on_a_whole_minute",
            Unbookable::TooSoon => "too_soon",
            Unbookable::BeyondHorizon => "beyond_horizon",
            Unbookable::OutsideHours => "outside_working_hours",
            Unbookable::ClinicClosed => "clinic_closed",
            Unbookable::TimeOff => "provider_time_off",
            Unbookable::Conflict(_) => "slot_taken",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Unbookable::NotOnMinute => "the start must be on a whole minute (no seconds)".into(),
            Unbookable::TooSoon => "the start is sooner than this appointment type's minimum notice".into(),
            Unbookable::BeyondHorizon => "the start is beyond this appointment type's booking horizon".into(),
            Unbookable::OutsideHours => "the appointment does not fit in the provider's working hours".into(),
            Unbookable::ClinicClosed => "the clinic is closed that day".into(),
            Unbookable::TimeOff => "the provider is off at that time".into(),
            Unbookable::Conflict(s) => format!(
                "the provider is busy from {} to {} (buffers included)",
                s.start.to_rfc3339(),
                s.end.to_rfc3339()
            ),
        }
    }
}

impl Calendar<'_> {
    /// The first busy span overlapping `span`, if any.
    pub fn conflict(&self, span: &Span) -> Option<Span> {
        let first = self.busy.partition_point(|b| b.end <= span.start);
        self.busy.get(first).filter(|b| b.start < span.end).copied()
    }

    /// Whether an appointment of `rules` may start at `start`, as seen at `now`.
    pub fn check(&self, rules: &TypeRules, start: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Unbookable> {
        if start.second() != 0 || start.nanosecond() != 0 {
            return Err(Unbookable::NotOnMinute);
        }
        if start < now + rules.min_notice {
            return Err(Unbookable::TooSoon);
        }
        if start > now + rules.horizon {
            return Err(Unbookable::BeyondHorizon);
        }
        let end = start + rules.duration;
        let local_start = start.with_timezone(&self.zone.tz()).naive_local();
        let local_end = end.with_timezone(&self.zone.tz()).naive_local();
        let fits = local_start.date() == local_end.date()
            && self.hours.iter().any(|h| {
                h.weekday == local_start.weekday() && h.start <= local_start.time() && local_end.time() <= h.end
            });
        if !fits {
            return Err(Unbookable::OutsideHours);
        }
        let first_day = self.clinic_zone.local_date(start);
        let last_day = self.clinic_zone.local_date(end - Duration::seconds(1));
        if self.closures.iter().any(|d| (first_day..=last_day).contains(d)) {
            return Err(Unbookable::ClinicClosed);
        }
        let blocked = rules.blocked(start);
        if self.time_off.iter().any(|t| t.overlaps(&blocked)) {
            return Err(Unbookable::TimeOff);
        }
        match self.conflict(&blocked) {
            Some(busy) => Err(Unbookable::Conflict(busy)),
            None => Ok(()),
        }
    }

    /// Free start times in `[from, to)`, every `step` along each working interval's wall clock.
    pub fn free_slots(
        &self,
        rules: &TypeRules,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
        step: Duration,
    ) -> Vec<Slot> {
        let mut slots = Vec::new();
        if from >= to || step <= Duration::zero() {
            return slots;
        }
        let first = self.zone.local_date(from) - Duration::days(1);
        let last = self.zone.local_date(to);
        let mut day = first;
        while day <= last {
            for h in self.hours.iter().filter(|h| h.weekday == day.weekday()) {
                let mut wall = day.and_time(h.start);
                let end_wall = day.and_time(h.end);
                while wall + rules.duration <= end_wall {
                    let start = match self.zone.resolve_local(wall) {
                        LocalTime::Single(t) => Some(t),
                        // The first of the two instants: the earlier appointment.
                        LocalTime::Repeated(first, _) => Some(first),
                        // Not a real time that day: not offered.
                        LocalTime::Skipped => None,
                    };
                    if let Some(start) = start.filter(|s| *s >= from && *s < to) {
                        if self.check(rules, start, now).is_ok() {
                            slots.push(Slot {
                                start,
                                end: start + rules.duration,
                                local: wall,
                            });
                        }
                    }
                    wall += step;
                }
            }
            day = day.succ_opt().unwrap_or(day + Duration::days(1));
        }
        slots.sort_by_key(|s| s.start);
        slots.dedup_by_key(|s| s.start);
        slots
    }
}

/// A free start time: the instant and the wall time it was laid on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub local: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("instant")
    }

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("time")
    }

    fn weekdays(intervals: &[(u32, u32, u32, u32)]) -> Vec<WorkingInterval> {
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
            .into_iter()
            .flat_map(|weekday| {
                intervals.iter().map(move |(sh, sm, eh, em)| WorkingInterval {
                    weekday,
                    start: t(*sh, *sm),
                    end: t(*eh, *em),
                })
            })
            .collect()
    }

    fn rules(minutes: i64) -> TypeRules {
        TypeRules {
            duration: Duration::minutes(minutes),
            buffer_before: Duration::zero(),
            buffer_after: Duration::zero(),
            min_notice: Duration::zero(),
            horizon: Duration::days(365),
        }
    }

    fn calendar<'a>(zone: &str, hours: &'a [WorkingInterval], busy: &'a [Span]) -> Calendar<'a> {
        let zone = ClinicZone::parse(zone).expect("zone");
        Calendar {
            zone,
            clinic_zone: zone,
            hours,
            time_off: &[],
            closures: &[],
            busy,
        }
    }

    #[test]
    fn status_machine() {
        use AppointmentStatus::*;
        assert!(Booked.can_become(CheckedIn) && CheckedIn.can_become(Completed));
        assert!(Booked.can_become(NoShow) && Booked.can_become(Cancelled) && CheckedIn.can_become(Cancelled));
        for (from, to) in [
            (Completed, Cancelled),
            (Cancelled, Booked),
            (NoShow, CheckedIn),
            (Booked, Completed),
            (CheckedIn, NoShow),
        ] {
            assert!(!from.can_become(to), "{from} -> {to}");
        }
        assert!(Booked.is_live() && CheckedIn.is_live() && !Cancelled.is_live() && !NoShow.is_live());
    }

    #[test]
    fn breaks_are_gaps_and_slots_fit_inside_intervals() {
        let hours = weekdays(&[(9, 0, 12, 0), (13, 0, 15, 0)]);
        let cal = calendar("America/Chicago", &hours, &[]);
        let now = utc(2027, 1, 1, 0, 0);
        // Monday 2027-01-04 in Chicago (UTC-6).
        let slots = cal.free_slots(
            &rules(60),
            utc(2027, 1, 4, 6, 0),
            utc(2027, 1, 5, 6, 0),
            now,
            Duration::minutes(60),
        );
        let walls: Vec<String> = slots.iter().map(|s| s.local.format("%H:%M").to_string()).collect();
        assert_eq!(walls, ["09:00", "10:00", "11:00", "13:00", "14:00"]);
        assert_eq!(slots[0].start, utc(2027, 1, 4, 15, 0));
    }

    #[test]
    fn nine_oclock_stays_nine_oclock_across_spring_forward_and_fall_back() {
        let hours = weekdays(&[(9, 0, 10, 0)]);
        let cal = calendar("America/Chicago", &hours, &[]);
        let now = utc(2027, 1, 1, 0, 0);
        // Friday before and Monday after 2027-03-14 (clocks forward).
        let spring = cal.free_slots(
            &rules(60),
            utc(2027, 3, 12, 0, 0),
            utc(2027, 3, 16, 0, 0),
            now,
            Duration::minutes(60),
        );
        assert_eq!(
            spring.iter().map(|s| s.start).collect::<Vec<_>>(),
            [utc(2027, 3, 12, 15, 0), utc(2027, 3, 15, 14, 0)]
        );
        assert!(spring.iter().all(|s| s.local.time() == t(9, 0)));
        // Friday before and Monday after 2027-11-07 (clocks back).
        let fall = cal.free_slots(
            &rules(60),
            utc(2027, 11, 5, 0, 0),
            utc(2027, 11, 9, 0, 0),
            now,
            Duration::minutes(60),
        );
        assert_eq!(
            fall.iter().map(|s| s.start).collect::<Vec<_>>(),
            [utc(2027, 11, 5, 14, 0), utc(2027, 11, 8, 15, 0)]
        );
    }

    #[test]
    fn nonexistent_local_times_are_skipped_and_repeated_ones_offered_once() {
        let sunday = |s: (u32, u32, u32, u32)| {
            vec![WorkingInterval {
                weekday: Weekday::Sun,
                start: t(s.0, s.1),
                end: t(s.2, s.3),
            }]
        };
        let night = sunday((1, 0, 4, 0));
        let cal = calendar("America/Chicago", &night, &[]);
        let now = utc(2027, 1, 1, 0, 0);
        let spring = cal.free_slots(
            &rules(30),
            utc(2027, 3, 14, 0, 0),
            utc(2027, 3, 15, 0, 0),
            now,
            Duration::minutes(30),
        );
        let walls: Vec<String> = spring.iter().map(|s| s.local.format("%H:%M").to_string()).collect();
        assert_eq!(
            walls,
            ["01:00", "01:30", "03:00", "03:30"],
            "02:00 and 02:30 do not exist that night"
        );
        let fall = cal.free_slots(
            &rules(30),
            utc(2027, 11, 7, 0, 0),
            utc(2027, 11, 8, 0, 0),
            now,
            Duration::minutes(30),
        );
        let walls: Vec<String> = fall.iter().map(|s| s.local.format("%H:%M").to_string()).collect();
        assert_eq!(walls, ["01:00", "01:30", "02:00", "02:30", "03:00", "03:30"]);
        assert_eq!(
            fall[0].start,
            utc(2027, 11, 7, 6, 0),
            "01:00 CDT, the first of the two 01:00s"
        );
    }

    #[test]
    fn southern_hemisphere_dst() {
        // Sydney: clocks go forward on 2027-10-03 (Sunday), back on 2027-04-04.
        let hours = weekdays(&[(9, 0, 10, 0)]);
        let cal = calendar("Australia/Sydney", &hours, &[]);
        let now = utc(2027, 1, 1, 0, 0);
        let slots = cal.free_slots(
            &rules(60),
            utc(2027, 9, 30, 0, 0),
            utc(2027, 10, 4, 12, 0),
            now,
            Duration::minutes(60),
        );
        // Fri 1 Oct 09:00 AEST = 23:00 UTC the day before; Mon 4 Oct 09:00 AEDT = 22:00 UTC.
        assert_eq!(
            slots.iter().map(|s| s.start).collect::<Vec<_>>(),
            [utc(2027, 9, 30, 23, 0), utc(2027, 10, 3, 22, 0)]
        );
    }

    #[test]
    fn buffers_notice_horizon_closures_and_time_off() {
        let hours = weekdays(&[(9, 0, 12, 0)]);
        let booked = [Span::new(utc(2027, 1, 4, 16, 0), utc(2027, 1, 4, 17, 0))]; // 10:00-11:00 local
        let mut cal = calendar("America/Chicago", &hours, &booked);
        let mut r = rules(30);
        r.buffer_before = Duration::minutes(15);
        r.buffer_after = Duration::minutes(15);
        let now = utc(2027, 1, 4, 14, 0); // 08:00 local
        let day = (utc(2027, 1, 4, 6, 0), utc(2027, 1, 5, 6, 0));
        let walls = |cal: &Calendar, r: &TypeRules, now| {
            cal.free_slots(r, day.0, day.1, now, Duration::minutes(15))
                .iter()
                .map(|s| s.local.format("%H:%M").to_string())
                .collect::<Vec<_>>()
        };
        // 09:15 ends 09:45 + 15 buffer = 10:00: fits; 09:30 would run into the booking.
        assert_eq!(walls(&cal, &r, now), ["09:00", "09:15", "11:15", "11:30"]);
        r.min_notice = Duration::hours(2); // now 08:00 → nothing before 10:00
        assert_eq!(walls(&cal, &r, now), ["11:15", "11:30"]);
        r.min_notice = Duration::zero();
        r.horizon = Duration::minutes(90); // until 09:30
        assert_eq!(walls(&cal, &r, now), ["09:00", "09:15"]);
        r.horizon = Duration::days(30);
        let off = [Span::new(utc(2027, 1, 4, 17, 0), utc(2027, 1, 4, 18, 0))]; // 11:00-12:00 local
        cal.time_off = &off;
        assert_eq!(walls(&cal, &r, now), ["09:00", "09:15"]);
        let closed = [NaiveDate::from_ymd_opt(2027, 1, 4).expect("date")];
        cal.closures = &closed;
        assert!(walls(&cal, &r, now).is_empty());
        assert_eq!(
            cal.check(&r, utc(2027, 1, 4, 15, 0), now),
            Err(Unbookable::ClinicClosed)
        );
    }

    #[test]
    fn check_names_the_conflict() {
        let hours = weekdays(&[(9, 0, 17, 0)]);
        let booked = [Span::new(utc(2027, 1, 4, 16, 0), utc(2027, 1, 4, 17, 0))];
        let cal = calendar("America/Chicago", &hours, &booked);
        let now = utc(2027, 1, 1, 0, 0);
        assert_eq!(
            cal.check(&rules(60), utc(2027, 1, 4, 16, 30), now),
            Err(Unbookable::Conflict(booked[0]))
        );
        assert_eq!(cal.check(&rules(60), utc(2027, 1, 4, 17, 0), now), Ok(()));
        assert_eq!(
            cal.check(&rules(60), utc(2027, 1, 4, 22, 30), now),
            Err(Unbookable::OutsideHours)
        );
        assert_eq!(
            cal.check(&rules(60), utc(2027, 1, 2, 16, 0), now),
            Err(Unbookable::OutsideHours),
            "Saturday"
        );
    }

    #[test]
    fn weekly_hours_are_validated() {
        let bad = [
            WorkingInterval {
                weekday: Weekday::Mon,
                start: t(9, 0),
                end: t(12, 0),
            },
            WorkingInterval {
                weekday: Weekday::Mon,
                start: t(11, 0),
                end: t(13, 0),
            },
            WorkingInterval {
                weekday: Weekday::Tue,
                start: t(12, 0),
                end: t(9, 0),
            },
            WorkingInterval {
                weekday: Weekday::Tue,
                start: t(9, 0),
                end: t(12, 0),
            },
        ];
        let codes: Vec<String> = check_weekly_hours(&bad)
            .expect_err("bad")
            .into_errors()
            .into_iter()
            .map(|e| e.code)
            .collect();
        assert_eq!(codes, ["overlapping_hours", "end_before_start"]);
        assert!(parse_wall_time("09:07", "start").is_err());
        assert!(parse_wall_time("9am", "start").is_err());
        assert!(parse_wall_time("9:00", "start").is_err(), "two digits for the hour");
        assert!(parse_wall_time(" 09:00", "start").is_err());
        assert_eq!(parse_wall_time("13:30", "start").expect("time"), t(13, 30));
    }
}
