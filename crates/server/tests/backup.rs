//! `clinic backup` and `clinic restore` through the real binary (security finding F14): a backup
//! taken while the server runs brings back exactly that moment; nothing is overwritten or
//! replaced by mistake.

mod common;

use std::path::Path;
use std::process::Output;

use clinic_store::testing::TestDatabase;
use clinic_store::DatabaseUrl;
use common::{clinic, Server};
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build())
}

fn create_patient(server: &Server, token: &str, given: &str) -> String {
    let mut created = agent()
        .post(format!("{}/api/v1/patients", server.base))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(json!({"given_name": given, "family_name": "Backup"}))
        .expect("create patient");
    assert_eq!(created.status(), 201);
    created.body_mut().read_json::<Value>().expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

fn patient_status(server: &Server, token: &str, id: &str) -> u16 {
    agent()
        .get(format!("{}/api/v1/patients/{id}", server.base))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("read patient")
        .status()
        .as_u16()
}

fn run(db: &TestDatabase, data: &Path, args: &[&str]) -> Output {
    clinic(db, data).args(args).output().expect("run clinic")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_backup_taken_while_serving_restores_that_moment() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let outside = tempfile::tempdir().expect("backup dir");
    let backup = outside.path().join("clinic-backup.db");
    let backup_arg = backup.to_str().expect("utf8 path");

    let DatabaseUrl::Sqlite(db_path) = db.url().clone() else {
        // PostgreSQL: both commands name the right tool and fail.
        let out = run(&db, data.path(), &["backup", backup_arg]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
        let out = run(&db, data.path(), &["restore", backup_arg]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("pg_restore"), "{}", stderr(&out));
        assert!(!backup.exists());
        return;
    };

    let mut server = Server::start(&mut clinic(&db, data.path()));
    let token = server.token.clone().expect("first start prints an admin token");
    let kept = create_patient(&server, &token, "Before");

    let out = run(&db, data.path(), &["backup", backup_arg]);
    assert!(out.status.success(), "backup while serving: {}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).expect("backup file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the backup is the service user's only");
    }

    // An existing file is never overwritten.
    let before = std::fs::read(&backup).expect("read backup");
    let out = run(&db, data.path(), &["backup", backup_arg]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&backup).expect("read backup"), before);

    let lost = create_patient(&server, &token, "After");

    // A running server keeps the database open: restoring under it is refused.
    let out = run(&db, data.path(), &["restore", backup_arg]);
    assert!(!out.status.success(), "restore under a running server");
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert!(server.terminate().success());

    // Files that are not a clinic database are refused and change nothing.
    let junk = outside.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database at all, just some bytes").expect("write junk");
    let out = run(&db, data.path(), &["restore", junk.to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a SQLite database"), "{}", stderr(&out));
    let mut header_only = b"SQLite format 3\0".to_vec();
    header_only.extend_from_slice(&[0u8; 200]);
    let damaged = outside.path().join("damaged.db");
    std::fs::write(&damaged, &header_only).expect("write damaged");
    let out = run(&db, data.path(), &["restore", damaged.to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot be restored"), "{}", stderr(&out));
    let foreign = outside.path().join("foreign.db");
    {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = diesel::SqliteConnection::establish(foreign.to_str().expect("utf8")).expect("foreign db");
        conn.batch_execute("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');")
            .expect("foreign table");
    }
    let out = run(&db, data.path(), &["restore", foreign.to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a clinic database"), "{}", stderr(&out));
    let leftovers: Vec<_> = std::fs::read_dir(db_path.parent().expect("db folder"))
        .expect("list db folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");

    let mut intact = Server::start(&mut clinic(&db, data.path()));
    assert_eq!(patient_status(&intact, &token, &kept), 200);
    assert_eq!(
        patient_status(&intact, &token, &lost),
        200,
        "refused restores changed nothing"
    );
    assert!(intact.terminate().success());

    let out = run(&db, data.path(), &["restore", backup_arg]);
    assert!(out.status.success(), "restore: {}", stderr(&out));
    let warning = stderr(&out);
    assert!(
        warning.contains("REVOKED since then is ACTIVE again")
            && warning.contains("clinic token list")
            && warning.contains("clinic token revoke ID"),
        "restore warns about revoked tokens: {warning}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db_path).expect("restored db").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the restored database is the service user's only");
    }
    let mut restored = Server::start(&mut clinic(&db, data.path()));
    assert!(restored.token.is_none(), "the restored database has its tokens");
    assert_eq!(
        patient_status(&restored, &token, &kept),
        200,
        "the patient from before the backup"
    );
    assert_eq!(
        patient_status(&restored, &token, &lost),
        404,
        "the patient from after it is gone"
    );
    assert!(restored.terminate().success());
}
