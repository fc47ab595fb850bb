//! The few statements that differ between SQLite and PostgreSQL. Nothing outside this
//! module matches on the backend to write SQL.

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::BigInt;
use std::sync::Mutex;

use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::DbConnection;

/// Advisory-lock key held while migrations run (any constant, unique to this purpose).
pub const MIGRATION_LOCK: i64 = 0x636c_696e_6963_0001;

/// One SQLite writer at a time per process. SQLite allows a single writer anyway; queueing
/// here instead of in SQLite's busy handler avoids its sleep-and-retry back-off (1 ms, 2 ms,
/// 5 ms … 100 ms) that otherwise shows up as latency spikes under concurrent writes.
static SQLITE_WRITER: Mutex<()> = Mutex::new(());

/// Runs `f` in a transaction that takes the write lock up front. On SQLite that is the
/// process's writer lock, then `BEGIN IMMEDIATE`, so a read-then-write (check a slot, then
/// book it) cannot interleave with another writer and cannot fail late with SQLITE_BUSY;
/// on PostgreSQL an ordinary transaction, where constraints guard the invariants. Nested
/// calls become savepoints.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(inner) => {
            let depth = AnsiTransactionManager::transaction_manager_status_mut(inner)
                .transaction_depth()
                .map_err(E::from)?;
            if depth.is_some() {
                #[allow(clippy::disallowed_methods)] // a savepoint inside our own transaction
                return conn.transaction(f);
            }
            // A poisoned lock only means another writer panicked; the database rolled back.
            let _writer = SQLITE_WRITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            match f(conn) {
                Ok(value) => match <DbConnection as Connection>::TransactionManager::commit_transaction(conn) {
                    Ok(()) => Ok(value),
                    Err(e) => {
                        let _ = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
                        Err(e.into())
                    }
                },
                Err(e) => {
                    <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)?;
                    Err(e)
                }
            }
        }
        #[allow(clippy::disallowed_methods)] // PostgreSQL: an ordinary transaction is right
        DbConnection::Postgresql(_) => conn.transaction(f),
    }
}

pub(crate) fn pg_advisory_lock(conn: &mut PgConnection, key: i64) -> Result<(), DieselError> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(key)
        .execute(conn)
        .map(drop)
}

pub(crate) fn pg_advisory_unlock(conn: &mut PgConnection, key: i64) -> Result<(), DieselError> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(key)
        .execute(conn)
        .map(drop)
}

/// True for a unique-key violation on either backend.
pub fn is_unique_violation(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}

/// Runs the same backend-generic diesel code on the native connection, for what
/// `MultiConnection` cannot express (batch inserts, upserts), and on hot paths: through the
/// enum diesel keys its prepared-statement cache by the SQL text, which it renders again on
/// every call, while on the native connection a typed query is found by its type (the
/// patient read; docs/performance.md). `$c` is bound to the `SqliteConnection` or
/// `PgConnection`; the body is compiled once for each.
#[macro_export]
macro_rules! on_native {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::DbConnection::Sqlite($c) => $body,
            $crate::DbConnection::Postgresql($c) => $body,
        }
    };
}

/// Claims up to `limit` outbox rows that are ready (pending and due, or sending with an
/// expired lease) for `lease`, and returns their ids. On PostgreSQL `FOR UPDATE SKIP
/// LOCKED` lets several dispatchers claim at once without ever taking the same row; on
/// SQLite the writer lock serialises claims.
pub fn claim_outbox(
    conn: &mut DbConnection,
    now: chrono::NaiveDateTime,
    lease_until: chrono::NaiveDateTime,
    limit: i64,
) -> Result<Vec<String>, DieselError> {
    use diesel::sql_types::{Text, Timestamp};
    #[derive(diesel::QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = Text)]
        id: String,
    }
    const READY: &str = "(state = 'pending' AND next_attempt_at <= $1 AND due_at <= $1) \
                         OR (state = 'sending' AND lease_until < $1)";
    let rows: Vec<Claimed> = match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(format!(
            "UPDATE outbox SET state = 'sending', lease_until = $2, attempts = attempts + 1, updated_at = $1 \
             WHERE id IN (SELECT id FROM outbox WHERE {READY} ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id"
        ))
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(lease_until)
        .bind::<BigInt, _>(limit)
        .load(pg)?,
        DbConnection::Sqlite(_) => write_transaction(conn, |conn| {
            let ids: Vec<Claimed> = diesel::sql_query(format!(
                "SELECT id FROM outbox WHERE {READY} ORDER BY due_at, id LIMIT $2"
            ))
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load(conn)?;
            for c in &ids {
                diesel::sql_query(
                    "UPDATE outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1, updated_at = $2 \
                     WHERE id = $3",
                )
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(&c.id)
                .execute(conn)?;
            }
            Ok::<_, DieselError>(ids)
        })?,
    };
    Ok(rows.into_iter().map(|c| c.id).collect())
}
