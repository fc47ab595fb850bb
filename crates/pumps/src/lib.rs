//! `clinic-pumps`: implanted pumps and their refill forecast.
//!
//! Owns the pump-model and drug catalogues (clinic-editable, seeded with sourced defaults),
//! the forecast policy, each patient's pumps, their fills and dose programmes, and the stored
//! forecast: recomputed by `clinic_domain::forecast` and written in the same transaction as
//! every fill, programme, pump or policy change, so the indexed due date is always current.
//! The refill worklist and suggested refill slots read through `clinic-scheduling`.

pub mod catalog;
pub mod registry;
pub mod worklist;

use clinic_domain::ValidationErrors;
use clinic_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for PumpError {
    fn from(e: diesel::result::Error) -> Self {
        PumpError::Store(StoreError::Query(e))
    }
}

impl From<clinic_patients::PatientError> for PumpError {
    fn from(e: clinic_patients::PatientError) -> Self {
        match e {
            clinic_patients::PatientError::NotFound => PumpError::NotFound("patient"),
            clinic_patients::PatientError::VersionConflict { current } => PumpError::Conflict {
                code: "version_conflict",
                detail: format!("current version is {current}"),
            },
            clinic_patients::PatientError::Store(s) => PumpError::Store(s),
        }
    }
}

impl From<clinic_scheduling::SchedulingError> for PumpError {
    fn from(e: clinic_scheduling::SchedulingError) -> Self {
        use clinic_scheduling::SchedulingError as S;
        match e {
            S::NotFound(w) => PumpError::NotFound(w),
            S::Conflict { code, detail } => PumpError::Conflict { code, detail },
            S::Unbookable(u) => PumpError::Conflict {
                code: u.code(),
                detail: u.message(),
            },
            S::Invalid(v) => PumpError::Invalid(v),
            S::Store(s) => PumpError::Store(s),
        }
    }
}

pub(crate) fn corrupt(what: &str) -> PumpError {
    PumpError::Store(StoreError::Corrupt(what.to_owned()))
}

pub(crate) fn stale(current: i64) -> PumpError {
    PumpError::Conflict {
        code: "version_conflict",
        detail: format!("the record was changed by someone else; current version is {current}"),
    }
}

pub(crate) fn decimal(s: &str, what: &str) -> Result<rust_decimal::Decimal, PumpError> {
    s.parse().map_err(|_| corrupt(what))
}
