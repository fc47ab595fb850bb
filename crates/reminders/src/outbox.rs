//! The outbox: every email is a row before it is sent.
//!
//! Rows are created idempotently by a dedupe key that names what the email is about and the
//! instant it refers to (so a rescheduled appointment gets new rows and the old ones can be
//! voided). Dispatchers claim ready rows with a lease; a crash leaves the lease to expire and
//! the row is claimed again (at-least-once: only the in-flight batch can be sent twice, and
//! its stable Message-ID makes that traceable). Failures back off exponentially; a row that
//! keeps failing, or is refused permanently, ends `failed` for staff to follow up.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use clinic_store::schema::outbox;
use clinic_store::{dialect, time, DbConnection, StoreError};
use diesel::prelude::*;

#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct OutboxRow {
    pub id: String,
    pub dedupe_key: String,
    pub kind: String,
    pub subject_type: String,
    pub subject_id: String,
    pub patient_id: Option<String>,
    pub refers_to: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub message_id: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// What the SMTP server answered on acceptance (its queue id, where it gives one).
    pub provider_message_id: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
}

/// A row to create.
#[derive(Debug, Clone)]
pub struct NewOutboxRow {
    pub dedupe_key: String,
    pub kind: String,
    pub subject_type: String,
    pub subject_id: String,
    pub patient_id: Option<String>,
    pub refers_to: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    Created(String),
    /// A row with this key exists already: nothing was added.
    Existing(String),
}

/// Creates the row unless its key exists. Call inside the transaction of the change that
/// causes it, where there is one.
pub fn enqueue(conn: &mut DbConnection, new: NewOutboxRow, now: DateTime<Utc>) -> Result<Enqueued, StoreError> {
    let key = new.dedupe_key.clone();
    let created = enqueue_many(conn, vec![new], now)?;
    let id: String = outbox::table
        .filter(outbox::dedupe_key.eq(&key))
        .select(outbox::id)
        .first(conn)?;
    Ok(if created == 1 {
        Enqueued::Created(id)
    } else {
        Enqueued::Existing(id)
    })
}

/// Creates every row whose key does not exist yet, in one transaction; returns how many
/// were created. Keys already present (even from a concurrent planner on another
/// instance) are skipped by `ON CONFLICT DO NOTHING`, never an error.
pub fn enqueue_many(conn: &mut DbConnection, rows: Vec<NewOutboxRow>, now: DateTime<Utc>) -> Result<usize, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let values: Vec<_> = rows
        .iter()
        .map(|new| {
            let id = uuid::Uuid::now_v7().to_string();
            (
                outbox::message_id.eq(format!("<{id}@clinic-platform>")),
                outbox::id.eq(id),
                outbox::dedupe_key.eq(new.dedupe_key.clone()),
                outbox::kind.eq(new.kind.clone()),
                outbox::subject_type.eq(new.subject_type.clone()),
                outbox::subject_id.eq(new.subject_id.clone()),
                outbox::patient_id.eq(new.patient_id.clone()),
                outbox::refers_to.eq(time::to_db(new.refers_to)),
                outbox::due_at.eq(time::to_db(new.due_at)),
                outbox::state.eq("pending"),
                outbox::attempts.eq(0i64),
                outbox::next_attempt_at.eq(time::to_db(new.due_at)),
                outbox::created_at.eq(time::to_db(now)),
                outbox::updated_at.eq(time::to_db(now)),
            )
        })
        .collect();
    dialect::write_transaction(conn, |conn| {
        let mut created = 0;
        // 14 columns a row: 60 rows stay under SQLite's 999 bound parameters.
        for chunk in values.chunks(60) {
            created += clinic_store::on_native!(conn, c => diesel::insert_into(outbox::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(c))?;
        }
        Ok(created)
    })
}

/// Claims up to `limit` ready rows for `lease` and returns them.
pub fn claim(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    lease: Duration,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let ids = dialect::claim_outbox(conn, time::to_db(now), time::to_db(now + lease), limit)?;
    Ok(outbox::table
        .filter(outbox::id.eq_any(&ids))
        .order((outbox::due_at, outbox::id))
        .load(conn)?)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<Option<OutboxRow>, StoreError> {
    Ok(outbox::table.find(id).first(conn).optional()?)
}

/// The SMTP server accepted the message; `provider_id` is what it said about it.
pub fn mark_sent(
    conn: &mut DbConnection,
    id: &str,
    provider_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(outbox::table.find(id).filter(outbox::state.eq("sending")))
        .set((
            outbox::state.eq("sent"),
            outbox::lease_until.eq(None::<NaiveDateTime>),
            outbox::provider_message_id.eq(provider_id),
            outbox::sent_at.eq(time::to_db(now)),
            outbox::updated_at.eq(time::to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Not to be sent (stale, no consent, too late): `void`, with the reason in `last_error`.
pub fn mark_void(conn: &mut DbConnection, id: &str, reason: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    Ok(diesel::update(
        outbox::table
            .find(id)
            .filter(outbox::state.eq_any(["pending", "sending", "failed"])),
    )
    .set((
        outbox::state.eq("void"),
        outbox::lease_until.eq(None::<NaiveDateTime>),
        outbox::last_error.eq(reason.chars().take(500).collect::<String>()),
        outbox::updated_at.eq(time::to_db(now)),
    ))
    .execute(conn)?
        == 1)
}

/// Staff asked to try a failed (or voided) email again: `pending`, due now, attempts reset.
/// Returns false when the row is in another state.
pub fn retry(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    Ok(
        diesel::update(outbox::table.find(id).filter(outbox::state.eq_any(["failed", "void"])))
            .set((
                outbox::state.eq("pending"),
                outbox::attempts.eq(0i64),
                outbox::next_attempt_at.eq(time::to_db(now)),
                outbox::due_at.eq(time::to_db(now)),
                outbox::lease_until.eq(None::<NaiveDateTime>),
                outbox::updated_at.eq(time::to_db(now)),
            ))
            .execute(conn)?
            == 1,
    )
}

/// Filters for listing rows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub patient_id: Option<String>,
    pub due_from: Option<DateTime<Utc>>,
    pub due_to: Option<DateTime<Utc>>,
    /// Keyset cursor: rows after this (due_at, id).
    pub after: Option<(DateTime<Utc>, String)>,
}

/// Rows by due time, then id.
pub fn list(conn: &mut DbConnection, f: &Filter, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let mut q = outbox::table.into_boxed();
    if let Some(s) = &f.state {
        q = q.filter(outbox::state.eq(s.clone()));
    }
    if let Some(k) = &f.kind {
        q = q.filter(outbox::kind.eq(k.clone()));
    }
    if let Some(p) = &f.patient_id {
        q = q.filter(outbox::patient_id.eq(p.clone()));
    }
    if let Some(t) = f.due_from {
        q = q.filter(outbox::due_at.ge(time::to_db(t)));
    }
    if let Some(t) = f.due_to {
        q = q.filter(outbox::due_at.lt(time::to_db(t)));
    }
    if let Some((at, id)) = &f.after {
        let at = time::to_db(*at);
        q = q.filter(
            outbox::due_at
                .gt(at)
                .or(outbox::due_at.eq(at).and(outbox::id.gt(id.clone()))),
        );
    }
    Ok(q.order((outbox::due_at, outbox::id)).limit(limit).load(conn)?)
}

/// Attempts after which a failing email is given up (then `failed`, for staff).
pub const MAX_ATTEMPTS: i64 = 8;

/// Backoff after the `attempts`-th failed attempt: 1, 2, 4 … minutes, at most 6 hours.
pub fn backoff(attempts: i64) -> Duration {
    Duration::minutes(1i64 << (attempts - 1).clamp(0, 9)).min(Duration::hours(6))
}

/// When to try again after the `attempts`-th failure at `now`: the backoff later, on a whole
/// second, since ticks fire a few milliseconds after the minute and a retry due at
/// 10:01:00.004 would miss the 10:01:00.002 tick by a hair and wait a minute more.
fn retry_at(now: DateTime<Utc>, attempts: i64) -> DateTime<Utc> {
    let at = now + backoff(attempts);
    chrono::DurationRound::duration_trunc(at, Duration::seconds(1)).unwrap_or(at)
}

/// A send failed: retry later with backoff, or give up when it is permanent or has failed
/// too often. Returns the new state.
pub fn mark_failed(
    conn: &mut DbConnection,
    id: &str,
    error: &str,
    permanent: bool,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    dialect::write_transaction(conn, |conn| {
        let row: OutboxRow = outbox::table.find(id).first(conn)?;
        let give_up = permanent || row.attempts >= MAX_ATTEMPTS;
        let state = if give_up { "failed" } else { "pending" };
        diesel::update(outbox::table.find(id))
            .set((
                outbox::state.eq(state),
                outbox::lease_until.eq(None::<NaiveDateTime>),
                outbox::last_error.eq(error.chars().take(500).collect::<String>()),
                outbox::next_attempt_at.eq(time::to_db(retry_at(now, row.attempts))),
                outbox::updated_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        Ok(state.to_owned())
    })
}

/// Voids the unsent rows of these `kinds` about a subject (a rescheduled or cancelled
/// appointment), noting `reason`. Returns how many were voided.
pub fn void_pending(
    conn: &mut DbConnection,
    subject_type: &str,
    subject_id: &str,
    kinds: &[&str],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        outbox::table
            .filter(outbox::subject_type.eq(subject_type))
            .filter(outbox::subject_id.eq(subject_id))
            .filter(outbox::kind.eq_any(kinds))
            .filter(outbox::state.eq("pending")),
    )
    .set((
        outbox::state.eq("void"),
        outbox::last_error.eq(reason),
        outbox::updated_at.eq(time::to_db(now)),
    ))
    .execute(conn)?)
}

/// Voids these unsent rows, noting `reason`. Returns how many were voided.
pub fn void_pending_ids(
    conn: &mut DbConnection,
    ids: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut voided = 0;
    // Chunks keep SQLite under its bound-parameter limit.
    for chunk in ids.chunks(500) {
        voided += diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(chunk))
                .filter(outbox::state.eq("pending")),
        )
        .set((
            outbox::state.eq("void"),
            outbox::last_error.eq(reason),
            outbox::updated_at.eq(time::to_db(now)),
        ))
        .execute(conn)?;
    }
    Ok(voided)
}

/// The outbox's health, from the database (so it covers every instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Pending rows due now or earlier and not waiting for a retry.
    pub ready: i64,
    pub oldest_ready_due_at: Option<DateTime<Utc>>,
    pub sending: i64,
    /// Rows claimed by a dispatcher whose lease ran out (it stopped or crashed).
    pub expired_leases: i64,
    pub failed: i64,
}

pub fn health(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<Health, StoreError> {
    use diesel::dsl::{count_star, min};
    let now_db = time::to_db(now);
    let (ready, oldest): (i64, Option<NaiveDateTime>) = outbox::table
        .filter(outbox::state.eq("pending"))
        .filter(outbox::due_at.le(now_db))
        .filter(outbox::next_attempt_at.le(now_db))
        .select((count_star(), min(outbox::due_at)))
        .first(conn)?;
    let count = |conn: &mut DbConnection, state: &str| -> Result<i64, StoreError> {
        Ok(outbox::table
            .filter(outbox::state.eq(state.to_owned()))
            .select(count_star())
            .first(conn)?)
    };
    let expired_leases = outbox::table
        .filter(outbox::state.eq("sending"))
        .filter(outbox::lease_until.lt(now_db))
        .select(count_star())
        .first(conn)?;
    Ok(Health {
        ready,
        oldest_ready_due_at: oldest.map(time::from_db),
        sending: count(conn, "sending")?,
        expired_leases,
        failed: count(conn, "failed")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_retry_is_due_on_the_whole_second_so_the_next_tick_takes_it() {
        let failed = Utc.with_ymd_and_hms(2027, 1, 4, 10, 0, 0).single().expect("instant") + Duration::milliseconds(4);
        let next_tick =
            Utc.with_ymd_and_hms(2027, 1, 4, 10, 1, 0).single().expect("instant") + Duration::milliseconds(2);
        let at = retry_at(failed, 1);
        assert!(at <= next_tick, "{at} misses the tick at {next_tick}");
        assert_eq!(at, next_tick - Duration::milliseconds(2));
        assert_eq!(
            retry_at(failed, 3) - at,
            Duration::minutes(3),
            "4 minutes after the third"
        );
    }
}
