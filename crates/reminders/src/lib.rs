//! `clinic-reminders`: emails that are never lost, never leak and escalate to staff.
//!
//! So far it holds the outbox (idempotent rows, claims with a lease), the email templates (typed context, strict rendering, embedded and
//! overridable, no clinical words) and the mailers (SMTP with TLS unless the URL says
//! otherwise, `.eml` files for the embedded default, memory for tests). Still to come in
//! this crate: the planner for appointment and refill reminders, the dispatcher loop that
//! renders and sends what it claims, the outreach worklist and the scheduler wiring.

pub mod mailer;
pub mod outbox;
pub mod templates;
