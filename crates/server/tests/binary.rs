//! The real `clinic` binary: first start prints an admin token, serves over HTTP on a free
//! port, shuts down gracefully on SIGTERM; the CLI's token and openapi commands.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clinic_store::testing::TestDatabase;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_clinic");

fn clinic(db: &TestDatabase, data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url_string())
        .env("CLINIC_DATA_DIR", data_dir)
        .env("CLINIC_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    cmd
}

/// A running `clinic serve`, killed and reaped if a test fails before stopping it.
struct Server {
    child: Child,
    token: Option<String>,
    base: String,
}

impl Server {
    /// Starts `clinic serve` and reads its banner: the admin token (if printed) and the address.
    fn start(cmd: &mut Command) -> Self {
        let child = cmd
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn clinic");
        let mut server = Server {
            child,
            token: None,
            base: String::new(),
        };
        let stdout = server.child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while server.base.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("clinic serve printed its address");
            let trimmed = line.trim();
            if trimmed.starts_with("clinic_") {
                server.token = Some(trimmed.to_owned());
            }
            if let Some(addr) = trimmed.strip_prefix("Listening on ") {
                server.base = addr.to_owned();
            }
        }
        server
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait for clinic")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_prints_a_token_once_serves_http_and_stops_on_sigterm() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let mut server = Server::start(&mut clinic(&db, data.path()));
    let token = server.token.clone().expect("first start prints an admin token");
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
