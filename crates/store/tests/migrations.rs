//! Both migration folders must describe the same database, and the store's write
//! transaction must commit and roll back on the backend under test.

use std::collections::BTreeSet;
use std::path::Path;

use clinic_store::testing::TestDatabase;
use clinic_store::{dialect, migrations, DatabaseUrl, DbConnection};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

fn migration_names(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend);
    std::fs::read_dir(&dir)
        .expect("migration folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_backends_have_the_same_migration_names() {
    let sqlite = migration_names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, migration_names("postgres"));
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = BigInt)]
    not_null: i64,
}

/// (table, column, type family, not null) for every application table.
fn columns(conn: &mut DbConnection) -> BTreeSet<(String, String, &'static str, bool)> {
    let sql = match conn {
        DbConnection::Sqlite(_) => {
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
             CAST(p.\"notnull\" OR p.pk > 0 AS BIGINT) AS not_null \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '__diesel%'"
        }
        DbConnection::Postgresql(_) => {
            "SELECT table_name::text AS table_name, column_name::text AS column_name, \
             data_type::text AS data_type, CAST(CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END AS BIGINT) AS not_null \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '__diesel%'"
        }
    };
    let rows: Vec<ColumnRow> = diesel::sql_query(sql).load(conn).expect("introspect columns");
    rows.into_iter()
        .map(|r| (r.table_name, r.column_name, family(&r.data_type), r.not_null != 0))
        .collect()
}

fn family(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.starts_with("timestamp") {
        "timestamp"
    } else if t == "text" {
        "text"
    } else if t == "integer" || t == "bigint" {
        "integer"
    } else if t == "boolean" {
        "boolean"
    } else {
        panic!("column type '{declared}' is not one of the portable types")
    }
}

#[test]
fn both_migration_sets_give_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sqlite = DatabaseUrl::sqlite_file(&dir.path().join("m.db"))
        .establish()
        .expect("sqlite");
    migrations::run_pending(&mut sqlite).expect("sqlite migrations");
    let sqlite_columns = columns(&mut sqlite);
    assert!(sqlite_columns
        .iter()
        .any(|(t, c, _, _)| t == "patients" && c == "email"));

    if std::env::var("TEST_DATABASE_URL").is_err() {
        // Without a PostgreSQL server only the SQLite side can be checked here; CI's
        // PostgreSQL pass compares both.
        return;
    }
    let db = TestDatabase::new();
    let mut pg = db.url().establish().expect("postgres");
    assert_eq!(columns(&mut pg), sqlite_columns);
}

#[test]
fn migrations_are_idempotent() {
    let db = TestDatabase::new();
    let mut conn = db.url().establish().expect("connect");
    assert!(migrations::run_pending(&mut conn).expect("second run").is_empty());
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        name -> Text,
    }
}

#[test]
fn write_transaction_commits_and_rolls_back() {
    let db = TestDatabase::new();
    let mut conn = db.url().establish().expect("connect");
    let insert = |conn: &mut DbConnection, id: &str| {
        diesel::sql_query(
            "INSERT INTO api_tokens (id, name, token_hash, scopes, created_at) \
             VALUES ($1, 'n', $1, 'admin', CURRENT_TIMESTAMP)",
        )
        .bind::<Text, _>(id)
        .execute(conn)
    };
    dialect::write_transaction(&mut conn, |c| insert(c, "kept")).expect("commit");
    let failed: Result<(), diesel::result::Error> = dialect::write_transaction(&mut conn, |c| {
        insert(c, "dropped")?;
        // A nested transaction becomes a savepoint inside the immediate transaction.
        dialect::write_transaction(c, |c| insert(c, "nested").map(drop))?;
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(failed.is_err());
    let names: Vec<String> = api_tokens::table
        .select(api_tokens::id)
        .order(api_tokens::id)
        .load(&mut conn)
        .expect("load");
    assert_eq!(names, vec!["kept".to_owned()]);
    // The connection is usable again after the rollback.
    dialect::write_transaction(&mut conn, |c| insert(c, "after")).expect("commit after rollback");
}

#[test]
fn the_audit_log_refuses_updates_and_deletes() {
    let db = TestDatabase::new();
    let mut conn = db.url().establish().expect("connect");
    diesel::sql_query(
        "INSERT INTO audit_events (occurred_at, action, subject_type, subject_id) \
         VALUES (CURRENT_TIMESTAMP, 'patient.read', 'patient', 'p1')",
    )
    .execute(&mut conn)
    .expect("insert");
    for statement in [
        "UPDATE audit_events SET subject_id = 'someone-else'",
        "DELETE FROM audit_events",
    ] {
        let error = diesel::sql_query(statement).execute(&mut conn).expect_err(statement);
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
    diesel::table! {
        audit_events (id) {
            id -> BigInt,
            subject_id -> Text,
        }
    }
    let kept: Vec<String> = audit_events::table
        .select(audit_events::subject_id)
        .load(&mut conn)
        .expect("read");
    assert_eq!(kept, ["p1"], "the event is still there, unchanged");
}
