//! A fresh database per test: a SQLite file in a temporary folder, or — when
//! `TEST_DATABASE_URL` names a PostgreSQL server — a new database on it, dropped afterwards.
//!
//! CI sets `CLINIC_REQUIRE_POSTGRES=1` for its PostgreSQL pass so a missing URL fails loudly,
//! and each PostgreSQL test database is recorded in the `clinic_test_databases` table of the
//! `TEST_DATABASE_URL` database (when CI has created it), which `.ci/run` counts to prove the
//! pass really ran on PostgreSQL.

use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::pool::{self, PoolOptions};
use crate::{migrations, DatabaseUrl, Pool};

pub struct TestDatabase {
    url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<PostgresTestDb>,
}

struct PostgresTestDb {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// A new, migrated, empty database. Panics (it is a test helper) when it cannot make one.
    pub fn new() -> Self {
        let db = match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.trim().is_empty() => Self::postgres(admin_url),
            _ => {
                assert!(
                    std::env::var("CLINIC_REQUIRE_POSTGRES").is_err(),
                    "CLINIC_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not"
                );
                Self::sqlite()
            }
        };
        let mut conn = db.url.establish().expect("connect to the test database");
        migrations::run_pending(&mut conn).expect("migrate the test database");
        db
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder for the test database");
        let url = DatabaseUrl::sqlite_file(&dir.path().join("clinic-test.db"));
        Self {
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    fn postgres(admin_url: String) -> Self {
        let name = format!("clinic_t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create a test database");
        // Only present when CI created it; a developer's server need not have it.
        let _ = diesel::sql_query("INSERT INTO clinic_test_databases (name) VALUES ($1)")
            .bind::<diesel::sql_types::Text, _>(&name)
            .execute(&mut admin);
        let url = DatabaseUrl::Postgres(with_database(&admin_url, &name));
        Self {
            url,
            _dir: None,
            postgres: Some(PostgresTestDb { admin_url, name }),
        }
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The URL as a string, for passing to a child process.
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(path) => path.display().to_string(),
            DatabaseUrl::Postgres(url) => url.clone(),
        }
    }

    pub fn pool(&self) -> Pool {
        pool::connect(
            &self.url,
            &PoolOptions {
                max_size: 8,
                ..PoolOptions::default()
            },
        )
        .expect("pool for the test database")
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(pg) = &self.postgres {
            if let Ok(mut admin) = PgConnection::establish(&pg.admin_url) {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name)).execute(&mut admin);
            }
        }
    }
}

/// Replaces the database name in a PostgreSQL URL, keeping any query parameters.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }
}
