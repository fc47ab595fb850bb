//! The mailers against a real SMTP server (mailin-embedded, in process): what is sent is
//! what arrives, TLS is required unless the URL says otherwise, and the file mailer writes
//! `.eml` files.

use clinic_domain::time::ClinicZone;
use clinic_reminders::mailer::{Mailer, OutgoingEmail, Sender};
use clinic_reminders::templates::{EmailContext, EmailKind, Templates};
use clinic_reminders::testing::SmtpSink;

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

#[tokio::test]
async fn tls_is_required_unless_the_url_says_otherwise() {
    // The test server offers no STARTTLS: a plain smtp:// URL must refuse to send in clear.
    let sink = SmtpSink::start().expect("smtp");
    let mailer = Mailer::smtp(&format!("smtp://127.0.0.1:{}", sink.port)).expect("mailer");
    let err = mailer.send(&sender(), &email()).await.expect_err("no TLS, no send");
    assert!(!err.permanent, "a TLS failure is worth retrying later: {err}");
    assert!(sink.messages().is_empty());
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
