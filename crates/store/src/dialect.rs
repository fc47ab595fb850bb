//! The few statements that differ between SQLite and PostgreSQL. Nothing outside this
//! module matches on the backend to write SQL.

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::DbConnection;

/// Advisory-lock key held while migrations run (any constant, unique to this purpose).
pub const MIGRATION_LOCK: i64 = 0x636c_696e_6963_0001;

/// Runs `f` in a transaction that takes the write lock up front. On SQLite that is
/// `BEGIN IMMEDIATE`, so a read-then-write (check a slot, then book it) cannot interleave
/// with another writer and cannot fail late with SQLITE_BUSY; on PostgreSQL an ordinary
/// transaction, where constraints guard the invariants.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(inner) => {
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
