//! The real `clinic` binary: first start prints an admin token, serves over HTTP on a free
//! port, shuts down gracefully on SIGTERM; the CLI's token and openapi commands.

mod common;

use std::path::Path;
use std::process::Command;

use clinic_store::testing::TestDatabase;
use common::{clinic, Server, BIN};
use serde_json::{json, Value};

#[test]
fn serve_prints_a_token_once_serves_http_and_stops_on_sigterm() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let mut server = Server::start(&mut clinic(&db, data.path()));
    let token = server.token.clone().expect("first start prints an admin token");
    assert!(
        server.banner.iter().any(|l| l.contains("It expires on")),
        "the banner says when the first token expires: {:?}",
        server.banner
    );
    let base = server.base.clone();

    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let health: Value = agent
        .get(format!("{base}/healthz"))
        .call()
        .expect("healthz")
        .body_mut()
        .read_json()
        .expect("json");
    assert_eq!(health["status"], "ok");
    let mut unauth = agent.get(format!("{base}/api/v1/patients")).call().expect("call");
    assert_eq!(unauth.status(), 401);
    assert_eq!(
        unauth.body_mut().read_json::<Value>().expect("problem")["code"],
        "unauthorized"
    );

    let mut created = agent
        .post(format!("{base}/api/v1/patients"))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(json!({"given_name": "Ivy", "family_name": "Jones", "email": "ivy@example.org"}))
        .expect("create");
    assert_eq!(created.status(), 201);
    let id = created.body_mut().read_json::<Value>().expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut read = agent
        .get(format!("{base}/api/v1/patients/{id}"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("read");
    assert_eq!(read.body_mut().read_json::<Value>().expect("json")["given_name"], "Ivy");
    let swagger = agent.get(format!("{base}/swagger-ui/")).call().expect("swagger");
    assert_eq!(swagger.status(), 200);

    assert!(server.terminate().success(), "graceful shutdown exits 0");

    // A second start on the same database prints no new token.
    let mut again = Server::start(&mut clinic(&db, data.path()));
    assert!(again.token.is_none());
    assert!(again.terminate().success());
}

#[test]
fn token_commands_print_only_what_scripts_need() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let out = clinic(&db, data.path())
        .args([
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "patients:read",
            "--scope",
            "pumps:read",
        ])
        .output()
        .expect("token create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let secret = stdout.trim();
    assert_eq!(stdout.lines().count(), 1);
    assert!(secret.starts_with("clinic_") && secret.len() == 71, "{stdout}");

    let list = clinic(&db, data.path())
        .args(["token", "list"])
        .output()
        .expect("token list");
    let listing = String::from_utf8(list.stdout).expect("utf8");
    assert!(listing.contains("patients:read pumps:read") && listing.contains("active"));
    assert!(!listing.contains(secret));
    let id = listing
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("id")
        .to_owned();

    let revoke = clinic(&db, data.path())
        .args(["token", "revoke", &id])
        .output()
        .expect("revoke");
    assert!(revoke.status.success());
    let listing = String::from_utf8(
        clinic(&db, data.path())
            .args(["token", "list"])
            .output()
            .expect("list")
            .stdout,
    )
    .expect("utf8");
    assert!(listing.contains("revoked"));

    let bad = clinic(&db, data.path())
        .args(["token", "create", "--name", "x", "--scope", "root"])
        .output()
        .expect("bad scope");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope 'root'"));
}

#[test]
fn invalid_configuration_stops_with_the_variable_named() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let out = clinic(&db, data.path())
        .env("CLINIC_TIME_ZONE", "Mars/Base")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CLINIC_TIME_ZONE"), "{stderr}");

    // A CA file that is not there stops the start too (security finding F13).
    let out = clinic(&db, data.path())
        .env("CLINIC_SMTP_URL", "smtp://relay.example")
        .env("CLINIC_SMTP_CA_FILE", data.path().join("missing-ca.pem"))
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CLINIC_SMTP_CA_FILE") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn openapi_command_prints_the_committed_document() {
    let out = Command::new(BIN).arg("openapi").output().expect("openapi");
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"))
            .expect("docs/openapi.json"),
    )
    .expect("json");
    assert_eq!(printed, committed);
}
