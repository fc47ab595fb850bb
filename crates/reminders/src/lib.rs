//! `clinic-reminders`: emails that are never lost, never leak and escalate to staff.
//!
//! Will own: the outbox (one row per email, idempotent keys), the planner for appointment and
//! refill reminders, the dispatcher (claim with a lease, render, send over SMTP, record,
//! retry with backoff), the mailers (SMTP, `.eml` files, memory), the templates, the outreach
//! worklist and the scheduler wiring. Reads `clinic-scheduling` and `clinic-pumps`.
