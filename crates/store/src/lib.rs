//! `clinic-store`: the database.
//!
//! One binary serves SQLite (the embedded default) and PostgreSQL through diesel's
//! `MultiConnection`: [`DbConnection`] picks its backend from the URL scheme, the pool
//! applies per-connection settings, migrations for both backends are embedded, and
//! [`dialect`] holds the few statements that differ between them. Feature crates own their
//! queries against the shared [`schema`].

pub mod connection;
pub mod dialect;
pub mod error;
pub mod idempotency;
pub mod migrations;
pub mod pool;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use connection::{Backend, DatabaseUrl, DbConnection};
pub use error::StoreError;
pub use pool::{Pool, PooledConnection};

/// Runs `$body` with `$c` bound to the concrete connection of either backend.
///
/// Through the `MultiConnection` enum diesel cannot key its prepared-statement cache by a
/// query's type, so it renders the SQL text of every query again on each call just to look
/// the statement up; on the concrete connection a typed query is found by its type. Worth it
/// on hot paths (a patient read, the audit writer; docs/performance.md), not elsewhere.
///
/// ```ignore
/// let row = clinic_store::on_backend!(conn, |c| patients::table.find(id).first::<Row>(c))?;
/// ```
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::DbConnection::Sqlite($c) => $body,
            $crate::DbConnection::Postgresql($c) => $body,
        }
    };
}

/// A trivial round trip, for readiness checks.
pub fn ping(conn: &mut DbConnection) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SELECT 1")
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}
