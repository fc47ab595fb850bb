//! Staff changes to one email in the outbox: send a failed or void one again, or void one
//! not yet sent. Both are audited against the patient the email is for.

use chrono::{DateTime, Utc};
use clinic_patients::audit::{self, Actor};
use clinic_reminders::outbox::{self, OutboxRow};
use clinic_reminders::ReminderError;
use clinic_store::{dialect, DbConnection};

use crate::FlowError;

/// Back to `pending`, due now, attempts reset; only a `failed` or `void` email.
pub fn retry(conn: &mut DbConnection, actor: &Actor, id: &str, now: DateTime<Utc>) -> Result<OutboxRow, FlowError> {
    change(conn, actor, id, Action::Retry, now)
}

/// Never send it; only an email not yet sent.
pub fn void(conn: &mut DbConnection, actor: &Actor, id: &str, now: DateTime<Utc>) -> Result<OutboxRow, FlowError> {
    change(conn, actor, id, Action::Void, now)
}

#[derive(Clone, Copy)]
enum Action {
    Retry,
    Void,
}

fn change(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<OutboxRow, FlowError> {
    dialect::write_transaction(conn, |conn| {
        let row = outbox::get(conn, id)?.ok_or(ReminderError::NotFound("reminder"))?;
        let changed = match action {
            Action::Retry => outbox::retry(conn, id, now)?,
            Action::Void => outbox::mark_void(conn, id, "voided by staff", now)?,
        };
        if !changed {
            return Err(ReminderError::Conflict {
                code: "invalid_state",
                detail: match action {
                    Action::Retry => format!("only failed or void emails can be retried; this one is {}", row.state),
                    Action::Void => format!("only unsent emails can be voided; this one is {}", row.state),
                },
            }
            .into());
        }
        let event = match action {
            Action::Retry => "reminder.retry",
            Action::Void => "reminder.void",
        };
        let subject = row.patient_id.clone().unwrap_or_else(|| row.id.clone());
        audit::record(conn, actor, event, "patient", &subject, now)?;
        Ok(outbox::get(conn, id)?.ok_or(ReminderError::NotFound("reminder"))?)
    })
}
