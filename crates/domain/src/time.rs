//! Time: instants are UTC; calendar questions are answered in an IANA zone.

use std::fmt;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::FieldError;

/// An IANA time zone (`America/Chicago`), the zone calendar dates and wall times are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClinicZone(Tz);

impl ClinicZone {
    pub fn parse(name: &str) -> Result<Self, FieldError> {
        name.parse::<Tz>().map(Self).map_err(|_| {
            FieldError::new(
                "time_zone",
                "unknown_time_zone",
                format!("'{name}' is not an IANA time zone name such as America/Chicago"),
            )
        })
    }

    pub fn tz(&self) -> Tz {
        self.0
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The local calendar date of an instant.
    pub fn local_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        instant.with_timezone(&self.0).date_naive()
    }

    /// Resolves a local wall time to an instant, saying explicitly what happened around DST
    /// changes instead of silently shifting.
    pub fn resolve_local(&self, local: NaiveDateTime) -> LocalTime {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => LocalTime::Single(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, second) => {
                LocalTime::Repeated(first.with_timezone(&Utc), second.with_timezone(&Utc))
            }
            LocalResult::None => LocalTime::Skipped,
        }
    }

    /// The instant a wall time first shows on the clock: its only instant, the earlier of
    /// two when the clocks go back, or, for a time the clocks skip, the moment they jump past
    /// it (found by bisection to the second). `None` only if the zone's data make no sense.
    pub fn first_instant_at_or_after(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let instant = |w| match self.resolve_local(w) {
            LocalTime::Single(t) | LocalTime::Repeated(t, _) => Some(t),
            LocalTime::Skipped => None,
        };
        if let Some(t) = instant(wall) {
            return Some(t);
        }
        // Whole seconds: clocks change on a second.
        let mut lo = instant(wall - Duration::hours(3))?.timestamp();
        let mut hi = instant(wall + Duration::hours(3))?.timestamp();
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let at = DateTime::from_timestamp(mid, 0)?;
            if at.with_timezone(&self.0).naive_local() >= wall {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

impl Default for ClinicZone {
    fn default() -> Self {
        Self(chrono_tz::America::Chicago)
    }
}

impl fmt::Display for ClinicZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a local wall time means in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTime {
    /// The usual case: one instant.
    Single(DateTime<Utc>),
    /// The wall time occurs twice (clocks went back): the earlier and the later instant.
    Repeated(DateTime<Utc>, DateTime<Utc>),
    /// The wall time does not exist (clocks went forward over it).
    Skipped,
}

/// Where "now" comes from; tests inject a fixed or stepping clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|date| date.and_hms_opt(h, min, 0))
            .expect("valid test date")
    }

    #[test]
    fn parses_iana_names_and_rejects_others() {
        assert_eq!(
            ClinicZone::parse("Australia/Sydney").expect("zone").name(),
            "Australia/Sydney"
        );
        let err = ClinicZone::parse("Mars/Olympus").expect_err("unknown");
        assert_eq!(err.code, "unknown_time_zone");
        assert!(ClinicZone::parse("").is_err());
    }

    #[test]
    fn spring_forward_gap_is_reported_as_skipped() {
        let chicago = ClinicZone::default();
        // 2027-03-14 02:30 does not exist in Chicago.
        assert_eq!(chicago.resolve_local(at(2027, 3, 14, 2, 30)), LocalTime::Skipped);
    }

    #[test]
    fn fall_back_hour_is_reported_as_repeated() {
        let chicago = ClinicZone::default();
        match chicago.resolve_local(at(2027, 11, 7, 1, 30)) {
            LocalTime::Repeated(first, second) => {
                assert_eq!(second - first, chrono::Duration::hours(1));
                assert_eq!(first.to_rfc3339(), "2027-11-07T06:30:00+00:00");
            }
            other => panic!("expected a repeated local time, got {other:?}"),
        }
    }

    #[test]
    fn local_date_uses_the_zone_not_utc() {
        let chicago = ClinicZone::default();
        let late_evening = Utc.with_ymd_and_hms(2027, 1, 5, 3, 0, 0).single().expect("instant");
        assert_eq!(
            chicago.local_date(late_evening),
            NaiveDate::from_ymd_opt(2027, 1, 4).expect("date")
        );
    }
}
