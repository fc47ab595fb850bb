//! The reminder commands of the real binary: `clinic serve --no-scheduler` leaves sending
//! to `clinic reminders run-once`, which plans and sends through the configured SMTP server
//! once per due email, however often it runs; without SMTP, emails become `.eml` files.

mod common;

use std::process::Command;

use chrono::{Datelike, Duration, TimeZone, Utc, Weekday};
use clinic_reminders::testing::{SinkTls, SmtpSink};
use clinic_store::testing::TestDatabase;
use common::{clinic, Server};
use serde_json::{json, Value};

/// A weekday at least three days ahead, 10:00 in Chicago, RFC 3339.
fn next_weekday_ten() -> String {
    let mut d = (Utc::now() + Duration::days(3)).date_naive();
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d += Duration::days(1);
    }
    chrono_tz::America::Chicago
        .from_local_datetime(&d.and_hms_opt(10, 0, 0).expect("time"))
        .single()
        .expect("instant")
        .to_rfc3339()
}

/// Books one consultation over HTTP and returns nothing; the server must be running.
fn book_one(server: &Server) {
    let token = server.token.clone().expect("admin token");
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let post = |path: &str, body: Value| -> Value {
        let mut res = agent
            .post(format!("{}{path}", server.base))
            .header("Authorization", &format!("Bearer {token}"))
            .send_json(body)
            .expect("post");
        let status = res.status();
        let json: Value = res.body_mut().read_json().expect("json");
        assert_eq!(status, 201, "{json}");
        json
    };
    let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "08:00", "end": "17:00"}))
        .collect();
    let provider = post(
        "/api/v1/providers",
        json!({"name": "Dr. Ana Ruiz", "role": "physician", "time_zone": "America/Chicago", "hours": hours}),
    );
    let patient = post(
        "/api/v1/patients",
        json!({"given_name": "Ivy", "family_name": "Jones", "email": "ivy@example.org", "email_consent": true}),
    );
    post(
        "/api/v1/appointments",
        json!({"patient_id": patient["id"], "provider_id": provider["id"], "appointment_type": "consultation",
               "start": next_weekday_ten()}),
    );
}

fn run_once(cmd: &mut Command) -> String {
    let out = cmd.args(["reminders", "run-once"]).output().expect("run-once");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn run_once_sends_what_a_server_without_scheduler_planned_exactly_once() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let sink = SmtpSink::start().expect("smtp");
    let mut server = Server::start_with(
        clinic(&db, data.path()).env("CLINIC_SMTP_URL", sink.url()),
        &["--no-scheduler"],
    );
    assert!(
        server.banner.iter().any(|l| l.contains("Reminder scheduler is off")),
        "{:?}",
        server.banner
    );
    book_one(&server);
    assert!(sink.messages().is_empty(), "no scheduler, nothing sent yet");

    let first = run_once(clinic(&db, data.path()).env("CLINIC_SMTP_URL", sink.url()));
    assert!(first.contains("sent 1,"), "{first}");
    let second = run_once(clinic(&db, data.path()).env("CLINIC_SMTP_URL", sink.url()));
    assert!(second.contains("sent 0,"), "{second}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("To: Ivy <ivy@example.org>"), "{}", messages[0]);
    assert!(server.terminate().success());
}

#[test]
fn run_once_sends_over_starttls_to_a_relay_signed_by_the_smtp_ca_file() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let sink = SmtpSink::tls(SinkTls::StartTls).expect("smtp");
    let certs = tempfile::tempdir().expect("certs dir");
    let ca = certs.path().join("relay-ca.pem");
    std::fs::write(&ca, sink.ca_pem().expect("a TLS sink")).expect("ca file");
    let mut server = Server::start_with(
        clinic(&db, data.path())
            .env("CLINIC_SMTP_URL", sink.url())
            .env("CLINIC_SMTP_CA_FILE", &ca),
        &["--no-scheduler"],
    );
    book_one(&server);
    let sent = run_once(
        clinic(&db, data.path())
            .env("CLINIC_SMTP_URL", sink.url())
            .env("CLINIC_SMTP_CA_FILE", &ca),
    );
    assert!(sent.contains("sent 1,"), "{sent}");
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(sink.tls_handshakes(), 1, "the email went over STARTTLS");
    assert!(server.terminate().success());
}

#[test]
fn without_smtp_emails_are_eml_files_in_the_data_folder() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let mut server = Server::start_with(&mut clinic(&db, data.path()), &["--no-scheduler"]);
    let outbox = data.path().join("outbox");
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains(".eml files") && l.contains(&outbox.display().to_string())),
        "{:?}",
        server.banner
    );
    book_one(&server);
    #[cfg(unix)]
    {
        // An operator made it readable by everyone; any `clinic` command tightens it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    assert!(run_once(&mut clinic(&db, data.path())).contains("sent 1,"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.path()).expect("data dir").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data folder (database, .eml files) is private");
    }
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .expect("outbox folder")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read_to_string(files[0].path()).expect("eml");
    assert!(raw.contains("ivy@example.org"));
    assert!(server.terminate().success());
}

#[test]
fn logs_carry_no_patient_names_addresses_or_phones() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let logs_path = data.path().join("server.log");
    let logs = std::fs::File::create(&logs_path).expect("log file");
    let sink = SmtpSink::start().expect("smtp");
    // The most talkative level, in both formats across the two processes.
    let mut server = Server::start_logging(
        clinic(&db, data.path())
            .env("CLINIC_SMTP_URL", sink.url())
            .env("RUST_LOG", "debug"),
        &["--no-scheduler"],
        logs.into(),
    );
    book_one(&server);
    let out = clinic(&db, data.path())
        .env("CLINIC_SMTP_URL", sink.url())
        .env("RUST_LOG", "debug")
        .env("CLINIC_LOG_FORMAT", "json")
        .args(["reminders", "run-once"])
        .output()
        .expect("run-once");
    assert!(out.status.success());
    assert!(server.terminate().success());
    assert_eq!(
        sink.messages().len(),
        1,
        "an email went out, so the logs had the chance to leak it"
    );
    let mut logs = std::fs::read_to_string(&logs_path).expect("logs");
    logs.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(
        logs.contains("reminders: run done") || logs.contains("request"),
        "the logs are not empty: {logs}"
    );
    for secret in ["Ivy", "Jones", "ivy@example.org", "5550123", "555-0123"] {
        assert!(!logs.contains(secret), "the logs contain '{secret}':\n{logs}");
    }
}
