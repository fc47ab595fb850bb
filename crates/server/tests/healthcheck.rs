//! `clinic healthcheck`, the image's health check (security finding F16): exit 0 only when
//! `/readyz` answers 200.

mod common;

use std::net::TcpListener;

use clinic_store::testing::TestDatabase;
use common::{clinic, Server, BIN};

#[test]
fn healthcheck_passes_on_a_ready_server_and_fails_otherwise() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let mut server = Server::start(&mut clinic(&db, data.path()));
    let addr = server.base.strip_prefix("http://").expect("http base").to_owned();

    // The default: /readyz on CLINIC_BIND.
    let out = clinic(&db, data.path())
        .env("CLINIC_BIND", &addr)
        .arg("healthcheck")
        .output()
        .expect("healthcheck");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // An explicit URL needs no configuration at all.
    let out = std::process::Command::new(BIN)
        .env_clear()
        .args(["healthcheck", "--url", &format!("{}/readyz", server.base)])
        .output()
        .expect("healthcheck --url");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Anything but 200 fails.
    let out = std::process::Command::new(BIN)
        .env_clear()
        .args(["healthcheck", "--url", &format!("{}/no-such-page", server.base)])
        .output()
        .expect("healthcheck 404");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("answered 404"));
    assert!(server.terminate().success());

    // A closed port fails, promptly.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("addr").port()
    };
    let out = std::process::Command::new(BIN)
        .env_clear()
        .args([
            "healthcheck",
            "--timeout",
            "3",
            "--url",
            &format!("http://127.0.0.1:{port}/readyz"),
        ])
        .output()
        .expect("healthcheck closed port");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
