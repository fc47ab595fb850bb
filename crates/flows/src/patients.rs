//! The patient record's changes: create, update (contact details, consent, zone, language),
//! archive, and revoking the self-service links they were sent. Each records its audit
//! event in the change's transaction.

use chrono::{DateTime, Utc};
use clinic_domain::ids::PatientId;
use clinic_domain::patient::{NewPatient, Patient, PatientChanges};
use clinic_patients::audit::Actor;
use clinic_patients::repo;
use clinic_store::{dialect, DbConnection};

use crate::FlowError;

pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewPatient,
    now: DateTime<Utc>,
) -> Result<Patient, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(repo::create(conn, actor, new, now)?))
}

/// Applies `changes` if the record is still at `expected_version` (409 otherwise).
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: PatientId,
    expected_version: i64,
    changes: PatientChanges,
    now: DateTime<Utc>,
) -> Result<Patient, FlowError> {
    dialect::write_transaction(conn, |conn| {
        Ok(repo::update(conn, actor, id, expected_version, changes, now)?)
    })
}

/// Archives the record (patients are never deleted).
pub fn archive(
    conn: &mut DbConnection,
    actor: &Actor,
    id: PatientId,
    now: DateTime<Utc>,
) -> Result<Patient, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(repo::archive(conn, actor, id, now)?))
}

/// Ends every self-service link the patient was sent (their next emails carry new ones).
/// Refuses an unknown patient; audited as `patient.links_revoked`. Returns the new generation.
pub fn revoke_links(
    conn: &mut DbConnection,
    actor: &Actor,
    id: PatientId,
    now: DateTime<Utc>,
) -> Result<u32, FlowError> {
    dialect::write_transaction(conn, |conn| {
        if !repo::exists(conn, id)? {
            return Err(clinic_patients::PatientError::NotFound.into());
        }
        Ok(clinic_reminders::patient_links::revoke_all(conn, actor, id, now)?)
    })
}
