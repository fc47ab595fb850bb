//! The outreach list's one change: staff record a call's outcome and mark the entry done.

use chrono::{DateTime, Utc};
use clinic_patients::audit::{self, Actor};
use clinic_reminders::outreach::{self, Entry};
use clinic_store::{dialect, DbConnection};

use crate::FlowError;

/// Marks entry `id` done with the call's `note`, recording who handled it.
pub fn mark_done(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<Entry, FlowError> {
    let done_by = actor.token_id.map(|t| t.to_string()).unwrap_or_else(|| "system".into());
    dialect::write_transaction(conn, |conn| {
        let entry = outreach::mark_done(conn, id, &done_by, note, now)?;
        audit::record(
            conn,
            actor,
            "outreach.done",
            "patient",
            &entry.patient_id.to_string(),
            now,
        )?;
        Ok(entry)
    })
}
