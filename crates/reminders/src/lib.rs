//! `clinic-reminders`: emails that are never lost, never leak and escalate to staff.
//!
//! - [`outbox`]: every email is a row first (idempotent by key, claimed with a lease);
//! - [`planner`]: which rows should exist, from appointments, pumps and [`settings`];
//! - [`compose`]: a row → the email to send, or the reason not to (consent, stale, too late);
//! - [`dispatcher`]: claim, render, send, record; [`scheduler`] ticks it every minute;
//! - [`outreach`]: the patients staff must phone, because email is never the only net;
//! - [`self_service`]: what patients may do from their links (confirm, reschedule, cancel, book a refill);
//! - [`links`]: signed, expiring "stop emailing me" links that carry no patient id;
//! - [`patient_links`]: the self-service links in emails (a visit, a refill), signed, revocable;
//! - [`mailer`] (SMTP, `.eml` files, memory) and [`templates`].

pub mod compose;
pub mod dispatcher;
pub mod links;
pub mod mailer;
pub mod outbox;
pub mod outreach;
pub mod patient_links;
pub mod planner;
pub mod scheduler;
pub mod self_service;
pub mod settings;
pub mod smtp;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;

use clinic_domain::ValidationErrors;
use clinic_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Scheduling(#[from] clinic_scheduling::SchedulingError),
    #[error(transparent)]
    Pumps(#[from] clinic_pumps::PumpError),
    #[error(transparent)]
    Patients(#[from] clinic_patients::PatientError),
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ReminderError {
    fn from(e: diesel::result::Error) -> Self {
        ReminderError::Store(StoreError::Query(e))
    }
}
