//! The mailers against a real SMTP server (mailin-embedded, in process): what is sent is
//! what arrives, TLS is required unless the URL says otherwise, certificates are checked on
//! `smtp://` (STARTTLS) and `smtps://` against the roots plus `CLINIC_SMTP_CA_FILE`, and the
//! file mailer writes `.eml` files.

use std::time::Duration;

use clinic_domain::time::ClinicZone;
use clinic_reminders::mailer::{MailError, Mailer, OutgoingEmail, Sender};
use clinic_reminders::smtp::CaCertificates;
use clinic_reminders::templates::{EmailContext, EmailKind, Templates};
use clinic_reminders::testing::{SinkTls, SmtpSink};

fn email() -> OutgoingEmail {
    let templates = Templates::load(None).expect("templates");
    let zone = ClinicZone::parse("America/Chicago").expect("zone");
    let at = chrono::DateTime::parse_from_rfc3339("2027-03-15T09:00:00-05:00")
        .expect("time")
        .to_utc();
    let (when, when_short) = EmailContext::at_instant(at, zone);
    let content = templates
        .render(
            EmailKind::AppointmentConfirmation,
            &EmailContext {
                first_name: Some("Ana".into()),
                clinic_name: "Lakeside Pain Clinic".into(),
                clinic_phone: "+13125550100".into(),
                clinic_phone_display: "+1 312-555-0100".into(),
                when,
                when_short,
                stop_url: None,
                self_service_url: None,
            },
        )
        .expect("render");
    OutgoingEmail {
        to: "Ana Diaz <ana@example.org>".parse().expect("mailbox"),
        message_id: "<reminder-0193a0c4@clinic-platform>".into(),
        content,
        calendar: Some((
            "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n".into(),
            "REQUEST",
        )),
        unsubscribe_url: Some("https://clinic.example/email/stop?t=abc.def".into()),
    }
}

fn sender() -> Sender {
    Sender {
        from: "Lakeside Pain Clinic <appointments@clinic.example>"
            .parse()
            .expect("mailbox"),
        reply_to: Some("front-desk@clinic.example".parse().expect("mailbox")),
    }
}

#[tokio::test]
async fn what_is_sent_over_smtp_is_what_arrives() {
    let sink = SmtpSink::start().expect("smtp");
    let mailer = Mailer::smtp(&sink.url()).expect("mailer");
    let reply = mailer.send(&sender(), &email()).await.expect("sent");
    assert!(reply.is_some_and(|r| !r.is_empty()), "the server's acceptance is kept");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let raw = &messages[0];
    assert!(raw.contains("Message-ID: <reminder-0193a0c4@clinic-platform>"), "{raw}");
    assert!(
        raw.contains("Subject: Your appointment at Lakeside Pain Clinic on Mon, Mar 15 at 9:00 AM"),
        "{raw}"
    );
    assert!(raw.contains("Reply-To: front-desk@clinic.example"));
    assert!(
        raw.contains("List-Unsubscribe: <https://clinic.example/email/stop?t=abc.def>"),
        "{raw}"
    );
    assert!(
        raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{raw}"
    );
    assert!(raw.contains("Content-Type: text/plain") && raw.contains("Content-Type: text/html"));
    assert!(
        raw.contains("text/calendar; charset=utf-8; method=REQUEST") && raw.contains("filename=\"appointment.ics\"")
    );
    // Bodies are quoted-printable: undo its soft line breaks to read the text.
    let body = raw.replace("=\r\n", "");
    assert!(
        body.contains("Monday, March 15, 2027 at 9:00 AM CDT (America/Chicago)"),
        "{body}"
    );
}

/// One send, waited for at most 30 s: a hang fails the test instead of stalling it.
async fn send(mailer: &Mailer) -> Result<Option<String>, MailError> {
    tokio::time::timeout(Duration::from_secs(30), mailer.send(&sender(), &email()))
        .await
        .expect("the send ends within 30 s")
}

/// The sink's CA as `CLINIC_SMTP_CA_FILE` would hold it, read the way the setting is.
fn ca_file(sink: &SmtpSink, dir: &tempfile::TempDir) -> CaCertificates {
    let path = dir.path().join("relay-ca.pem");
    std::fs::write(&path, sink.ca_pem().expect("a TLS sink")).expect("write");
    CaCertificates::read(&path).expect("ca file")
}

#[tokio::test]
async fn tls_is_required_unless_the_url_says_otherwise() {
    // The test server offers no STARTTLS: a plain smtp:// URL must refuse to send in clear.
    let sink = SmtpSink::start().expect("smtp");
    let mailer = Mailer::smtp(&format!("smtp://127.0.0.1:{}", sink.port)).expect("mailer");
    let err = send(&mailer).await.expect_err("no TLS, no send");
    assert!(!err.permanent, "a TLS failure is worth retrying later: {err}");
    assert!(err.message.contains("STARTTLS"), "{err}");
    // Trusting a CA changes which certificates pass, not whether TLS is required.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(&SmtpSink::tls(SinkTls::StartTls).expect("tls sink"), &dir);
    let mailer = Mailer::smtp_trusting(&format!("smtp://127.0.0.1:{}?tls=required", sink.port), &ca).expect("mailer");
    let err = send(&mailer).await.expect_err("no STARTTLS offered, no send");
    assert!(err.message.contains("STARTTLS"), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn starttls_delivers_to_a_relay_signed_by_the_ca_file() {
    let sink = SmtpSink::tls(SinkTls::StartTls).expect("smtp");
    let dir = tempfile::tempdir().expect("tempdir");
    let mailer = Mailer::smtp_trusting(&sink.url(), &ca_file(&sink, &dir)).expect("mailer");
    assert!(
        mailer
            .describe()
            .ends_with("(STARTTLS required; trusting 1 extra CA certificate)"),
        "{}",
        mailer.describe()
    );
    let reply = send(&mailer).await.expect("sent");
    assert!(reply.is_some_and(|r| !r.is_empty()));
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("Message-ID: <reminder-0193a0c4@clinic-platform>"));
    // The sink takes mail only after STARTTLS, through its TLS front.
    assert_eq!(sink.tls_handshakes(), 1);
}

/// Neither the Mozilla roots nor another private CA make the relay's certificate trusted:
/// the send fails as retryable (the certificate may be fixed), before any mail is handed over.
async fn untrusted_relay_is_refused(mode: SinkTls) {
    let sink = SmtpSink::tls(mode).expect("smtp");
    let other = SmtpSink::tls(mode).expect("another CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let untrusted = [
        Mailer::smtp(&sink.url()).expect("mailer"),
        Mailer::smtp_trusting(&sink.url(), &ca_file(&other, &dir)).expect("mailer"),
    ];
    for mailer in untrusted {
        let err = send(&mailer).await.expect_err("certificate not trusted");
        assert!(!err.permanent, "the relay's certificate may be fixed: {err}");
        assert!(err.message.contains("certificate"), "{err}");
    }
    assert!(sink.messages().is_empty());
    assert_eq!(sink.tls_handshakes(), 0);
}

#[tokio::test]
async fn starttls_refuses_a_relay_whose_certificate_is_not_trusted() {
    untrusted_relay_is_refused(SinkTls::StartTls).await;
}

#[tokio::test]
async fn smtps_delivers_to_a_relay_signed_by_the_ca_file() {
    let sink = SmtpSink::tls(SinkTls::Implicit).expect("smtp");
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(sink.url().starts_with("smtps://"));
    let mailer = Mailer::smtp_trusting(&sink.url(), &ca_file(&sink, &dir)).expect("mailer");
    assert_eq!(
        mailer.describe(),
        "SMTP over TLS (smtps://; trusting 1 extra CA certificate)"
    );
    send(&mailer).await.expect("sent");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("Message-ID: <reminder-0193a0c4@clinic-platform>"));
    assert_eq!(sink.tls_handshakes(), 1);
}

#[tokio::test]
async fn smtps_refuses_a_relay_whose_certificate_is_not_trusted() {
    untrusted_relay_is_refused(SinkTls::Implicit).await;
}

#[tokio::test]
async fn a_refused_recipient_is_a_permanent_failure() {
    let sink = SmtpSink::refusing(&["ana@example.org"]).expect("smtp");
    let mailer = Mailer::smtp(&sink.url()).expect("mailer");
    let err = mailer.send(&sender(), &email()).await.expect_err("refused");
    assert!(err.permanent, "550 is permanent: {err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn the_file_mailer_writes_eml_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mailer = Mailer::files(dir.path().join("outbox")).expect("mailer");
    mailer.send(&sender(), &email()).await.expect("written");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let raw = std::fs::read_to_string(&files[0]).expect("read");
    assert!(raw.contains("Message-ID: <reminder-0193a0c4@clinic-platform>"));
}
