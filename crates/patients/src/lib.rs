//! `clinic-patients`: the patient record and the audit log of access to it.
//!
//! Every capability crate reads patients through here. Each function that reads or writes a
//! patient takes an [`audit::Actor`] and appends the audit event in the same transaction, so
//! there is no path to patient data that leaves no trace.

pub mod audit;
pub mod repo;

pub use repo::{PatientError, PatientFilter, PatientPage};
