//! `clinic-scheduling`: the clinic's calendar.
//!
//! Owns providers (weekly hours on their own wall clock, time off), clinic closures,
//! appointment types (clinic-editable, seeded), availability, booking that can never
//! double-book (a `BEGIN IMMEDIATE` transaction on SQLite; an exclusion constraint on
//! PostgreSQL), reschedule, cancel and the status machine with a history of who did what,
//! public appointment requests, and iCalendar events and feeds. The timing rules themselves
//! are pure code in `clinic_domain::scheduling`.

pub mod appointments;
pub mod closures;
pub mod feeds;
pub mod ical;
pub mod providers;
pub mod requests;
pub mod types;

use clinic_domain::scheduling::Unbookable;
use clinic_domain::ValidationErrors;
use clinic_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SchedulingError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{}", .0.message())]
    Unbookable(Unbookable),
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for SchedulingError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            // PostgreSQL's appointments_no_overlap refused a booking that raced another:
            // whichever path wrote it, the caller gets the same 409.
            Error::DatabaseError(DatabaseErrorKind::ExclusionViolation, _) => SchedulingError::Conflict {
                code: "slot_taken",
                detail: "the provider was booked at that time by another request".into(),
            },
            e => SchedulingError::Store(StoreError::Query(e)),
        }
    }
}

impl From<clinic_patients::PatientError> for SchedulingError {
    fn from(e: clinic_patients::PatientError) -> Self {
        match e {
            clinic_patients::PatientError::NotFound => SchedulingError::NotFound("patient"),
            clinic_patients::PatientError::VersionConflict { current } => SchedulingError::Conflict {
                code: "version_conflict",
                detail: format!("current version is {current}"),
            },
            clinic_patients::PatientError::Store(s) => SchedulingError::Store(s),
        }
    }
}

pub(crate) fn corrupt(what: &str) -> SchedulingError {
    SchedulingError::Store(StoreError::Corrupt(what.to_owned()))
}

pub(crate) fn stale(current: i64) -> SchedulingError {
    SchedulingError::Conflict {
        code: "version_conflict",
        detail: format!("the record was changed by someone else; current version is {current}"),
    }
}
