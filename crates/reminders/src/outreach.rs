//! The outreach worklist: patients staff must phone, with the reason. Email is never the
//! only safety net: a refill due soon with nothing booked, an email that failed for good, a
//! patient we may not or cannot email, an appointment reminder that could not go out in
//! time, or a patient who asked us to stop emailing, each puts the patient here once (a
//! unique key per cause). Staff mark an entry done with a note; a refill entry closes itself
//! when the refill gets booked.

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::ids::PatientId;
use clinic_store::schema::{outreach, patients};
use clinic_store::{dialect, time, DbConnection, StoreError};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ReminderError;

/// Why staff should call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A refill is due within the escalation window and no refill appointment is booked.
    RefillUnbooked,
    /// An email failed permanently or too often.
    EmailFailed,
    /// A reminder was due but the patient has no email address or no consent to email.
    NoEmail,
    /// An appointment reminder could not be sent before the appointment.
    ReminderNotSent,
    /// The patient used the link in an email to ask the clinic to stop emailing.
    EmailStopped,
    /// The patient cancelled their refill visit from their link and nothing else is booked
    /// before the due date.
    CancelledByPatient,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::RefillUnbooked,
        Reason::EmailFailed,
        Reason::NoEmail,
        Reason::ReminderNotSent,
        Reason::EmailStopped,
        Reason::CancelledByPatient,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::RefillUnbooked => "refill_unbooked",
            Reason::EmailFailed => "email_failed",
            Reason::NoEmail => "no_email",
            Reason::ReminderNotSent => "reminder_not_sent",
            Reason::EmailStopped => "email_stopped",
            Reason::CancelledByPatient => "cancelled_by_patient",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An entry to raise.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub dedupe_key: String,
    pub patient_id: String,
    pub reason: Reason,
    /// What it is about: `pump`, `appointment`, `outbox`, `patient`.
    pub subject_type: String,
    pub subject_id: String,
    /// The instant it is about (appointment start, refill due date).
    pub refers_to: DateTime<Utc>,
}

/// Raises entries whose key is new; returns how many were added.
pub fn raise(conn: &mut DbConnection, entries: Vec<NewEntry>, now: DateTime<Utc>) -> Result<usize, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let values: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                outreach::id.eq(uuid::Uuid::now_v7().to_string()),
                outreach::dedupe_key.eq(e.dedupe_key.clone()),
                outreach::patient_id.eq(e.patient_id.clone()),
                outreach::reason.eq(e.reason.as_str()),
                outreach::subject_type.eq(e.subject_type.clone()),
                outreach::subject_id.eq(e.subject_id.clone()),
                outreach::refers_to.eq(time::to_db(e.refers_to)),
                outreach::created_at.eq(time::to_db(now)),
            )
        })
        .collect();
    dialect::write_transaction(conn, |conn| {
        let mut added = 0;
        // 8 columns a row: 100 rows stay under SQLite's bound-parameter limit.
        for chunk in values.chunks(100) {
            added += clinic_store::on_native!(conn, c => diesel::insert_into(outreach::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(c))?;
        }
        Ok(added)
    })
}

/// Closes open entries of `reason` about `subject_ids` whose cause has gone (a refill
/// booked, a new forecast), noting why. Returns how many were closed.
pub fn close_resolved(
    conn: &mut DbConnection,
    reason: Reason,
    keep_open_keys: &[String],
    subject_type: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let open: Vec<(String, String)> = outreach::table
        .filter(outreach::reason.eq(reason.as_str()))
        .filter(outreach::subject_type.eq(subject_type))
        .filter(outreach::done_at.is_null())
        .select((outreach::id, outreach::dedupe_key))
        .load(conn)?;
    // A set: each tick checks every open entry against every pump still unbooked.
    let keep: std::collections::HashSet<&String> = keep_open_keys.iter().collect();
    let stale: Vec<String> = open
        .into_iter()
        .filter(|(_, key)| !keep.contains(key))
        .map(|(id, _)| id)
        .collect();
    let mut closed = 0;
    for chunk in stale.chunks(500) {
        closed += diesel::update(outreach::table.filter(outreach::id.eq_any(chunk)))
            .set((
                outreach::done_at.eq(time::to_db(now)),
                outreach::done_by.eq("system"),
                outreach::note.eq(note),
            ))
            .execute(conn)?;
    }
    Ok(closed)
}

/// An entry as staff see it: who to call, on which number, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub patient_id: PatientId,
    pub patient_name: String,
    pub patient_phone: Option<String>,
    pub reason: Reason,
    pub subject_type: String,
    pub subject_id: String,
    pub refers_to: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub done_by: Option<String>,
    pub note: Option<String>,
}

type Joined = (
    (
        String,
        String,
        String,
        String,
        String,
        NaiveDateTime,
        NaiveDateTime,
        Option<NaiveDateTime>,
        Option<String>,
        Option<String>,
    ),
    String,
    String,
    Option<String>,
);

macro_rules! joined_query {
    () => {
        outreach::table.inner_join(patients::table).select((
            (
                outreach::id,
                outreach::patient_id,
                outreach::reason,
                outreach::subject_type,
                outreach::subject_id,
                outreach::refers_to,
                outreach::created_at,
                outreach::done_at,
                outreach::done_by,
                outreach::note,
            ),
            patients::given_name,
            patients::family_name,
            patients::phone,
        ))
    };
}

fn to_entry(j: Joined) -> Result<Entry, ReminderError> {
    let (
        (id, patient_id, reason, subject_type, subject_id, refers_to, created_at, done_at, done_by, note),
        given,
        family,
        phone,
    ) = j;
    Ok(Entry {
        patient_id: patient_id
            .parse()
            .map_err(|_| ReminderError::Corrupt(format!("outreach {id}: patient id")))?,
        reason: Reason::parse(&reason).ok_or_else(|| ReminderError::Corrupt(format!("outreach {id}: reason")))?,
        id,
        patient_name: format!("{given} {family}"),
        patient_phone: phone,
        subject_type,
        subject_id,
        refers_to: time::from_db(refers_to),
        created_at: time::from_db(created_at),
        done_at: done_at.map(time::from_db),
        done_by,
        note,
    })
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Include entries already marked done.
    pub include_done: bool,
    pub reason: Option<Reason>,
    pub patient_id: Option<PatientId>,
    /// Keyset cursor: entries after this (refers_to, id).
    pub after: Option<(DateTime<Utc>, String)>,
}

/// Entries by the instant they are about (most urgent first), then id.
pub fn list(conn: &mut DbConnection, filter: &Filter, limit: i64) -> Result<Vec<Entry>, ReminderError> {
    let mut q = joined_query!().into_boxed();
    if !filter.include_done {
        q = q.filter(outreach::done_at.is_null());
    }
    if let Some(r) = filter.reason {
        q = q.filter(outreach::reason.eq(r.as_str()));
    }
    if let Some(p) = filter.patient_id {
        q = q.filter(outreach::patient_id.eq(p.to_string()));
    }
    if let Some((at, id)) = &filter.after {
        let at = time::to_db(*at);
        q = q.filter(
            outreach::refers_to
                .gt(at)
                .or(outreach::refers_to.eq(at).and(outreach::id.gt(id.clone()))),
        );
    }
    let rows: Vec<Joined> = q.order((outreach::refers_to, outreach::id)).limit(limit).load(conn)?;
    rows.into_iter().map(to_entry).collect()
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<Entry, ReminderError> {
    let row: Joined = joined_query!()
        .filter(outreach::id.eq(id))
        .first(conn)
        .optional()?
        .ok_or(ReminderError::NotFound("outreach entry"))?;
    to_entry(row)
}

/// Staff called (or otherwise handled it): the entry is done, with who and a note.
/// Marking a done entry again is a conflict, so a second caller learns someone was first.
pub fn mark_done(
    conn: &mut DbConnection,
    id: &str,
    done_by: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<Entry, ReminderError> {
    dialect::write_transaction(conn, |conn| {
        let entry = get(conn, id)?;
        if entry.done_at.is_some() {
            return Err(ReminderError::Conflict {
                code: "already_done",
                detail: format!("this entry was marked done by {}", entry.done_by.unwrap_or_default()),
            });
        }
        diesel::update(outreach::table.find(id))
            .set((
                outreach::done_at.eq(time::to_db(now)),
                outreach::done_by.eq(done_by),
                outreach::note.eq(note),
            ))
            .execute(conn)?;
        get(conn, id)
    })
}

/// Open entries and the most urgent one's instant.
pub fn open_summary(conn: &mut DbConnection) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
    use diesel::dsl::{count_star, min};
    let (n, oldest): (i64, Option<NaiveDateTime>) = outreach::table
        .filter(outreach::done_at.is_null())
        .select((count_star(), min(outreach::refers_to)))
        .first(conn)?;
    Ok((n, oldest.map(time::from_db)))
}
