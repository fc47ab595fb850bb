//! `clinic-store`: the database.
//!
//! One binary serves SQLite (the embedded default) and PostgreSQL through diesel's
//! `MultiConnection`: [`DbConnection`] picks its backend from the URL scheme, the pool
//! applies per-connection settings, migrations for both backends are embedded, and
//! [`dialect`] holds the few statements that differ between them. Feature crates own their
//! queries against the shared [`schema`].

pub mod checkpoint;
pub mod connection;
pub mod dialect;
pub mod doctor;
pub mod error;
pub mod idempotency;
pub mod migrations;
pub mod named_settings;
pub mod pool;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use connection::{Backend, DatabaseUrl, DbConnection};
pub use error::StoreError;
pub use pool::{Pool, PooledConnection};

/// A trivial round trip, for readiness checks.
pub fn ping(conn: &mut DbConnection) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SELECT 1")
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}
