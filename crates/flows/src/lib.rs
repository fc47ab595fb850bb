//! `clinic-flows`: one function per change that somebody hears about, whichever door it came
//! through (the REST API today; patient pages, the staff console and webhooks next).
//!
//! Each function writes the change, records its audit event against its [`Actor`], plans its
//! emails and (soon) records its webhook events, all in **one transaction**, so nothing is
//! announced that did not happen and nothing happens unannounced. Doors are thin adapters:
//! they parse their input into the domain types these functions take, call one of them, and
//! render the answer; they hold no SQL and no business rule. Reads stay in the capability
//! crates, which the doors call directly.
//!
//! - [`appointments`]: book, reschedule, change status (cancel, check in, complete, no-show);
//! - [`requests`]: public appointment requests: submit, confirm by booking, decline;
//! - [`patients`]: create, update, archive a patient record;
//! - [`pumps`]: register and change a pump, record a fill or a dose programme, the forecast policy;
//! - [`outreach`]: mark an outreach call done;
//! - [`outbox`]: staff retry or void an email;
//! - [`articles`]: write, publish and restore articles;
//! - [`self_service`]: what a patient does from the links in their emails (the same use cases);
//! - [`users`]: staff accounts: make, change, disable, set a password (also from a one-time link).
//!
//! [`Actor`]: clinic_patients::audit::Actor

pub mod appointments;
pub mod articles;
pub mod outbox;
pub mod outreach;
pub mod patients;
pub mod pumps;
pub mod requests;
pub mod self_service;
pub mod users;

use clinic_store::StoreError;

/// Why a change did not happen: the error of the capability that refused it.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Patients(#[from] clinic_patients::PatientError),
    #[error(transparent)]
    Content(#[from] clinic_content::ContentError),
    #[error(transparent)]
    Scheduling(#[from] clinic_scheduling::SchedulingError),
    #[error(transparent)]
    Pumps(#[from] clinic_pumps::PumpError),
    #[error(transparent)]
    Reminders(#[from] clinic_reminders::ReminderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for FlowError {
    fn from(e: diesel::result::Error) -> Self {
        FlowError::Store(StoreError::Query(e))
    }
}
