//! Cursor pagination: `limit` (1–100, default 50) and an opaque `cursor` from the previous
//! page's `next_cursor`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 100;

/// Checks a requested page size against the hard cap.
pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::field(
            "limit",
            "out_of_range",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// An invalid cursor is the caller's error, not an empty page.
pub fn bad_cursor() -> ApiError {
    ApiError::field("cursor", "invalid_cursor", "cursor is not one returned by this list")
}

/// The lists that issue cursors. A cursor names its list, so one list's cursor (or a bare
/// id, or anything else a client made up) is refused by every other with `invalid_cursor`,
/// the same way on every list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Appointments,
    AppointmentRequests,
    Articles,
    AuditEvents,
    Outreach,
    Patients,
    Pumps,
    Reminders,
}

impl List {
    fn tag(self) -> &'static str {
        match self {
            List::Appointments => "appointments",
            List::AppointmentRequests => "appointment_requests",
            List::Articles => "articles",
            List::AuditEvents => "audit_events",
            List::Outreach => "outreach",
            List::Patients => "patients",
            List::Pumps => "pumps",
            List::Reminders => "reminders",
        }
    }
}

/// The cursor `list` hands out for the position `key`: opaque to clients (base64url of the
/// list's name and the key), so nobody comes to rely on its insides.
pub fn cursor(list: List, key: &impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}:{key}", list.tag()))
}

/// The key inside a cursor that `list` issued; anything else is 422 `invalid_cursor`.
pub fn cursor_key<T: std::str::FromStr>(list: List, cursor: &str) -> Result<T, ApiError> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?;
    let text = String::from_utf8(raw).map_err(|_| bad_cursor())?;
    let key = text
        .strip_prefix("v1:")
        .and_then(|rest| rest.strip_prefix(list.tag()))
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(bad_cursor)?;
    key.parse().map_err(|_| bad_cursor())
}

/// A keyset cursor for lists ordered by an instant, then an id.
pub fn instant_cursor(list: List, at: DateTime<Utc>, id: &impl std::fmt::Display) -> String {
    cursor(list, &format!("{}_{id}", at.timestamp_micros()))
}

/// Reads an [`instant_cursor`] of `list`; anything else is a 422 naming `cursor`.
pub fn decode_instant_cursor<T: std::str::FromStr>(list: List, c: &str) -> Result<(DateTime<Utc>, T), ApiError> {
    let key: String = cursor_key(list, c)?;
    let (micros, id) = key.split_once('_').ok_or_else(bad_cursor)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad_cursor)?;
    Ok((at, id.parse().map_err(|_| bad_cursor())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<T: std::fmt::Debug>(r: Result<T, ApiError>) -> bool {
        matches!(r, Err(ApiError::Validation(v)) if v.errors()[0].code == "invalid_cursor")
    }

    #[test]
    fn a_cursor_works_only_on_the_list_that_issued_it() {
        let c = cursor(List::Patients, &"0190a1b2-0000-7000-8000-000000000001");
        assert_eq!(
            cursor_key::<String>(List::Patients, &c).ok().as_deref(),
            Some("0190a1b2-0000-7000-8000-000000000001")
        );
        assert!(refused(cursor_key::<String>(List::Pumps, &c)), "another list's cursor");
        assert!(
            refused(cursor_key::<String>(
                List::Patients,
                "0190a1b2-0000-7000-8000-000000000001"
            )),
            "a bare id"
        );
        assert!(refused(cursor_key::<i64>(List::AuditEvents, "42")), "a bare number");
        assert!(refused(cursor_key::<String>(List::Patients, "")), "empty");
        assert!(
            refused(cursor_key::<i64>(List::AuditEvents, &cursor(List::AuditEvents, &"x"))),
            "a key of the wrong type"
        );
        let at = DateTime::from_timestamp_micros(1_800_000_000_123_456).expect("instant");
        let c = instant_cursor(List::Reminders, at, &"r1");
        assert_eq!(
            decode_instant_cursor::<String>(List::Reminders, &c).ok(),
            Some((at, "r1".to_owned()))
        );
        assert!(refused(decode_instant_cursor::<String>(List::Outreach, &c)));
        assert!(
            refused(decode_instant_cursor::<String>(List::Reminders, "1800000000123456_r1")),
            "the old bare form"
        );
    }
}
