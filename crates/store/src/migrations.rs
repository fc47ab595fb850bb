//! Embedded migrations, one folder per backend with the same migration names.

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::{dialect, DbConnection, StoreError};

pub const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
pub const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Applies every pending migration and returns the names of those applied. On PostgreSQL an
/// advisory lock keeps several starting instances from migrating at once.
pub fn run_pending(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    let result = match conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE)
            .map(|v| v.iter().map(ToString::to_string).collect()),
        DbConnection::Postgresql(c) => {
            dialect::pg_advisory_lock(c, dialect::MIGRATION_LOCK)?;
            let applied = c
                .run_pending_migrations(POSTGRES)
                .map(|v| v.iter().map(ToString::to_string).collect());
            dialect::pg_advisory_unlock(c, dialect::MIGRATION_LOCK)?;
            applied
        }
    };
    result.map_err(|e| StoreError::Migration(e.to_string()))
}
