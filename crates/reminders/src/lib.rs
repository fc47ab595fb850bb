//! `clinic-reminders`: emails that are never lost, never leak and escalate to staff.
//!
//! This first part holds the email templates (typed context, strict rendering, embedded and
//! overridable, no clinical words) and the mailers (SMTP with TLS unless the URL says
//! otherwise, `.eml` files for the embedded default, memory for tests). Still to come in
//! this crate: the outbox, the planner for appointment and refill reminders, the dispatcher
//! with leases and backoff, the outreach worklist and the scheduler wiring.

pub mod mailer;
pub mod templates;
