//! Instants cross the row boundary as UTC `NaiveDateTime` (both backends store
//! `TIMESTAMP`), truncated to microseconds so SQLite and PostgreSQL round-trip alike.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

pub fn to_db(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.naive_utc().trunc_subsecs(6)
}

pub fn from_db(stored: NaiveDateTime) -> DateTime<Utc> {
    stored.and_utc()
}

/// The current instant at the precision the database keeps.
pub fn now() -> DateTime<Utc> {
    from_db(to_db(Utc::now()))
}
