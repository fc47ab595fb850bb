//! `doctor::scan_text` finds text PostgreSQL cannot store, and control characters the API
//! refuses, by table, column and key, without ever returning a value.

use clinic_store::doctor::{scan_text, TextFinding, TextProblem, MAX_IDS};
use clinic_store::testing::TestDatabase;
use clinic_store::{Backend, DbConnection};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::RunQueryDsl;

fn plant_patient(conn: &mut DbConnection, id: &str, given_name: &str, notes: &str) {
    diesel::sql_query(
        "INSERT INTO patients (id, given_name, family_name, time_zone, preferred_language, \
         email_consent, notes, search_key, version, created_at, updated_at) \
         VALUES ($1, $2, 'Jones', 'Europe/London', 'en', 0, $3, 'jones', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    .bind::<Text, _>(id)
    .bind::<Text, _>(given_name)
    .bind::<Text, _>(notes)
    .execute(conn)
    .expect("plant a patient");
}

fn find<'a>(findings: &'a [TextFinding], table: &str, column: &str, problem: TextProblem) -> &'a TextFinding {
    findings
        .iter()
        .find(|f| f.table == table && f.column == column && f.problem == problem)
        .unwrap_or_else(|| panic!("no {problem:?} finding for {table}.{column} in {findings:?}"))
}

#[test]
fn a_clean_database_has_nothing_to_report() {
    let db = TestDatabase::new();
    let mut conn = db.url().establish().expect("connect");
    let scan = scan_text(&mut conn).expect("scan");
    assert!(scan.findings.is_empty(), "{:?}", scan.findings);
    assert!(!scan.blocks_postgres());
    if conn.backend() == Backend::Sqlite {
        assert!(scan.tables > 20 && scan.columns > scan.tables, "{scan:?}");
    }
}

#[test]
fn planted_rows_are_named_by_table_column_and_key_never_by_value() {
    let db = TestDatabase::new();
    let mut conn = db.url().establish().expect("connect");
    if conn.backend() == Backend::Postgres {
        // PostgreSQL cannot hold U+0000 at all: there is nothing to plant or find.
        assert_eq!(scan_text(&mut conn).expect("scan"), Default::default());
        return;
    }
    plant_patient(&mut conn, "p-nul", "Ann", "secret\0after\u{1}");
    plant_patient(&mut conn, "p-control", "Ivy\u{1}secret", "fine\ttab\nnewline\r");
    plant_patient(&mut conn, "p-clean", "Bo", "clean");
    // Tables the scan has never heard of: a BLOB's zero byte is fine (bytea takes it), a
    // key column's value must not leak through its id, and ids stop at MAX_IDS.
    conn.batch_execute(
        "CREATE TABLE probe_blob (k INTEGER PRIMARY KEY, b BLOB); \
         INSERT INTO probe_blob VALUES (1, x'0001ff'); \
         CREATE TABLE probe_codes (code TEXT PRIMARY KEY NOT NULL); \
         INSERT INTO probe_codes VALUES ('ok'), (CAST(x'7365637265740031' AS TEXT)); \
         CREATE TABLE probe_tags (owner TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (owner, tag)) WITHOUT ROWID; \
         INSERT INTO probe_tags VALUES ('o1', CAST(x'736563726574007f' AS TEXT)); \
         CREATE TABLE probe_many (k INTEGER PRIMARY KEY, t TEXT); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12) \
         INSERT INTO probe_many SELECT i, CAST(x'00' AS TEXT) FROM n;",
    )
    .expect("probe tables");

    let scan = scan_text(&mut conn).expect("scan");
    assert!(scan.blocks_postgres());
    let f = &scan.findings;

    let notes = find(f, "patients", "notes", TextProblem::Nul);
    assert_eq!((notes.rows, notes.ids.as_slice()), (1, ["p-nul".to_owned()].as_slice()));
    // A control character after the NUL still counts: the comparison is bytewise.
    let notes = find(f, "patients", "notes", TextProblem::Control);
    assert_eq!((notes.rows, notes.ids.as_slice()), (1, ["p-nul".to_owned()].as_slice()));
    let given = find(f, "patients", "given_name", TextProblem::Control);
    assert_eq!(
        (given.rows, given.ids.as_slice()),
        (1, ["p-control".to_owned()].as_slice())
    );

    let codes = find(f, "probe_codes", "code", TextProblem::Nul);
    assert_eq!(codes.ids, ["rowid=2"]);
    let tags = find(f, "probe_tags", "tag", TextProblem::Control);
    assert_eq!(tags.ids, ["owner=o1, tag=(withheld)"]);
    let many = find(f, "probe_many", "t", TextProblem::Nul);
    assert_eq!(many.rows, 12);
    assert_eq!(many.ids, (1..=MAX_IDS).map(|i| i.to_string()).collect::<Vec<_>>());

    // Tab, LF and CR are allowed; BLOBs and clean rows are not findings.
    assert!(!f
        .iter()
        .any(|x| x.table == "probe_blob" || x.ids.iter().any(|id| id == "p-clean")));
    assert_eq!(f.len(), 7, "{f:?}");
    assert!(!format!("{scan:?}").contains("secret"), "{scan:?}");
}
