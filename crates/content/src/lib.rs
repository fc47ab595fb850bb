//! `clinic-content`: what the clinic publishes and how it screens candidates.
//!
//! Owns patient-education articles (Markdown rendered to sanitised HTML when saved, drafts,
//! publishing, every edit kept as a revision that can be restored), the catalogue of
//! conditions treated, the candidacy-screening criteria and the recorded screenings of
//! patients (audited, like every patient record), and the seed data loaded on a fresh
//! database. The screening rules themselves live in `clinic-domain`.

pub mod articles;
pub mod conditions;
pub mod render;
pub mod screening;
pub mod seed;

use clinic_domain::ValidationErrors;
use clinic_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ContentError {
    fn from(e: diesel::result::Error) -> Self {
        ContentError::Store(StoreError::Query(e))
    }
}

impl From<clinic_patients::PatientError> for ContentError {
    fn from(e: clinic_patients::PatientError) -> Self {
        match e {
            clinic_patients::PatientError::NotFound => ContentError::NotFound("patient"),
            clinic_patients::PatientError::VersionConflict { current } => ContentError::Conflict {
                code: "version_conflict",
                detail: format!("current version is {current}"),
            },
            clinic_patients::PatientError::Store(s) => ContentError::Store(s),
        }
    }
}

/// A stored value that no longer parses.
pub(crate) fn corrupt(what: &str) -> ContentError {
    ContentError::Store(StoreError::Corrupt(what.to_owned()))
}

/// 409 for a stale `version`.
pub(crate) fn stale(current: i64) -> ContentError {
    ContentError::Conflict {
        code: "version_conflict",
        detail: format!("the record was changed by someone else; current version is {current}"),
    }
}
