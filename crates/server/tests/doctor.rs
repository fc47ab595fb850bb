//! `clinic doctor` on the real binary: exit 1 and the row's table, column and id (never its
//! value) when a SQLite text holds U+0000; exit 0 on a clean database and on PostgreSQL.

mod common;

use clinic_store::testing::TestDatabase;
use clinic_store::Backend;
use common::clinic;
use diesel::sql_types::Text;
use diesel::RunQueryDsl;

const PATIENT: &str = "0195f3a2-7c1d-7000-8000-00000000d0c7";
const PLANTED: &str = "planted-secret";

fn doctor(db: &TestDatabase) -> (Option<i32>, String, String) {
    let data = tempfile::tempdir().expect("data dir");
    let out = clinic(db, data.path()).arg("doctor").output().expect("clinic doctor");
    (
        out.status.code(),
        String::from_utf8(out.stdout).expect("utf8 stdout"),
        String::from_utf8(out.stderr).expect("utf8 stderr"),
    )
}

#[test]
fn a_nul_row_fails_the_check_by_table_column_and_id_without_its_value() {
    let db = TestDatabase::new();
    if db.url().backend() == Backend::Postgres {
        // PostgreSQL refuses U+0000 on insert, so no row can be planted.
        let (code, stdout, stderr) = doctor(&db);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(stdout.contains("nothing to check"), "{stdout}");
        return;
    }
    let mut conn = db.url().establish().expect("connect");
    diesel::sql_query(
        "INSERT INTO patients (id, given_name, family_name, time_zone, preferred_language, \
         email_consent, notes, search_key, version, created_at, updated_at) \
         VALUES ($1, 'Ann', 'Jones', 'Europe/London', 'en', 0, $2, 'jones', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    .bind::<Text, _>(PATIENT)
    .bind::<Text, _>(format!("{PLANTED}\0{PLANTED}"))
    .execute(&mut conn)
    .expect("plant a NUL");
    drop(conn);

    let (code, stdout, stderr) = doctor(&db);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("error: patients.notes: 1 row holds U+0000"), "{stdout}");
    assert!(stdout.lines().any(|l| l.trim() == PATIENT), "{stdout}");
    assert!(stdout.contains("blocks a move to PostgreSQL"), "{stdout}");
    assert!(stderr.contains("U+0000 found in 1 column"), "{stderr}");
    assert!(
        !stdout.contains(PLANTED) && !stderr.contains(PLANTED),
        "{stdout}{stderr}"
    );
}

#[test]
fn a_clean_database_passes() {
    let db = TestDatabase::new();
    let (code, stdout, stderr) = doctor(&db);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let expected = match db.url().backend() {
        Backend::Sqlite => "nothing blocks a move to PostgreSQL",
        Backend::Postgres => "nothing to check",
    };
    assert!(stdout.contains(expected), "{stdout}");
    assert!(!stdout.contains("error:") && !stdout.contains("warning:"), "{stdout}");
}

#[test]
fn a_missing_sqlite_file_is_an_error_not_a_clean_database() {
    let data = tempfile::tempdir().expect("data dir");
    let missing = data.path().join("missing.db");
    let out = std::process::Command::new(common::BIN)
        .arg("doctor")
        .env_clear()
        .env("DATABASE_URL", &missing)
        .env("CLINIC_DATA_DIR", data.path())
        .output()
        .expect("clinic doctor");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no SQLite database"));
    assert!(!missing.exists(), "the check must not create the database");
}
