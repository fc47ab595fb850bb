//! Reminders end to end on both databases, driven by the test clock: bookings plan their
//! emails in the same transaction, the dispatcher plans and sends once, reschedules and
//! cancels void what they replace, quiet hours follow the patient's zone across DST, refill
//! reminders stop when a refill is booked, failures back off and reach the outreach list,
//! an expired lease re-sends, two dispatchers share 1,000 emails exactly once, the stop
//! link works, and one run goes through a real SMTP server.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use clinic_reminders::dispatcher::{DispatchOptions, Dispatcher, Report};
use clinic_reminders::mailer::{Delivered, Mailer};
use clinic_reminders::testing::SmtpSink;
use common::TestApp;
use serde_json::{json, Value};

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("instant")
}

/// No email may carry a clinical word (intrathecal.md §5): the templates' own check, applied
/// to what was really sent, headers and invitation included.
fn assert_no_clinical_words(raw: &str) {
    let found = clinic_reminders::templates::clinical_words(raw);
    assert!(found.is_empty(), "an email contains {found:?}:\n{raw}");
}

struct Clinic {
    app: TestApp,
    staff: String,
    reminders: String,
    provider: String,
    patient: String,
}

/// "Now" is Friday 2027-01-01 12:00 UTC; one Chicago provider working weekdays 08:00–17:00;
/// one Chicago patient who consents to email.
async fn clinic() -> Clinic {
    let app = TestApp::new().await;
    app.clock.set(utc(2027, 1, 1, 12, 0));
    {
        let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
        clinic_scheduling::types::seed(&mut conn, app.state().now()).expect("types");
        clinic_pumps::catalog::seed(&mut conn, app.state().now()).expect("catalogue");
    }
    let staff = app.token(&[
        "scheduling:write",
        "patients:read",
        "patients:write",
        "pumps:read",
        "pumps:write",
    ]);
    let reminders = app.token(&["reminders:admin"]);
    let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "08:00", "end": "17:00"}))
        .collect();
    let p = app
        .post(
            "/api/v1/providers",
            &staff,
            json!({"name": "Dr. Ana Ruiz", "role": "pain physician", "time_zone": "America/Chicago", "hours": hours}),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text());
    let provider = p.json()["id"].as_str().expect("id").to_owned();
    let patient = app.create_patient("Nia", "Okafor").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    Clinic {
        app,
        staff,
        reminders,
        provider,
        patient,
    }
}

impl Clinic {
    fn dispatcher(&self, mailer: Mailer) -> Dispatcher {
        Dispatcher::new(
            self.app.pool.clone(),
            mailer,
            self.app.state().composer.clone(),
            DispatchOptions::default(),
        )
    }

    fn memory_dispatcher(&self) -> (Dispatcher, Arc<Mutex<Vec<Delivered>>>) {
        let (mailer, sent) = Mailer::memory();
        (self.dispatcher(mailer), sent)
    }

    async fn run(&self, d: &Dispatcher) -> Report {
        d.run_once(self.app.state().now()).await.expect("run")
    }

    async fn book_for(&self, patient: &str, kind: &str, start: &str) -> Value {
        let res = self
            .app
            .post(
                "/api/v1/appointments",
                &self.staff,
                json!({"patient_id": patient, "provider_id": self.provider, "appointment_type": kind, "start": start}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()
    }

    async fn book(&self, kind: &str, start: &str) -> Value {
        self.book_for(&self.patient.clone(), kind, start).await
    }

    /// The patient's outbox rows, by due time.
    async fn rows(&self, patient: &str) -> Vec<Value> {
        let res = self
            .app
            .get(
                &format!("/api/v1/reminders?patient_id={patient}&limit=100"),
                &self.reminders,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["items"].as_array().expect("items").clone()
    }

    /// `PUT /api/v1/reminders/settings` with the reminders token.
    async fn put_settings(&self, body: Value) -> common::TestResponse {
        self.app
            .call(
                actix_web::http::Method::PUT,
                "/api/v1/reminders/settings",
                Some(&self.reminders),
                Some(body),
            )
            .await
    }

    async fn outreach(&self) -> Vec<Value> {
        let res = self.app.get("/api/v1/worklists/outreach", &self.staff).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["items"].as_array().expect("items").clone()
    }
}

fn of_kind<'a>(rows: &'a [Value], kind: &str, state: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["kind"] == kind && r["state"] == state)
        .collect()
}

fn due_at(row: &Value) -> DateTime<Utc> {
    row["due_at"].as_str().expect("due_at").parse().expect("instant")
}

#[actix_web::test]
async fn a_booking_plans_its_confirmation_and_reminders_once_and_sends_each_once() {
    let c = clinic().await;
    // Wednesday 6 January 10:00 CST = 16:00 UTC.
    let a = c.book("consultation", "2027-01-06T10:00:00-06:00").await;
    let rows = c.rows(&c.patient).await;
    assert_eq!(of_kind(&rows, "appointment_confirmation", "pending").len(), 1);
    let reminders = of_kind(&rows, "appointment_reminder", "pending");
    let times: Vec<DateTime<Utc>> = reminders.iter().map(|r| due_at(r)).collect();
    assert_eq!(
        times,
        [utc(2027, 1, 3, 16, 0), utc(2027, 1, 5, 16, 0)],
        "72 h and 24 h before"
    );
    assert!(reminders.iter().all(|r| r["subject_id"] == a["id"]));

    // Nothing has run: the confirmation waits, and after 5 minutes the status says stalled.
    let status = c.app.get("/api/v1/reminders/status", &c.reminders).await.json();
    assert_eq!(
        (status["ready"].as_i64(), status["stalled"].as_bool()),
        (Some(1), Some(false)),
        "{status}"
    );
    c.app.clock.advance(Duration::minutes(6));
    let status = c.app.get("/api/v1/reminders/status", &c.reminders).await.json();
    assert_eq!(status["stalled"], true, "{status}");
    let (d, sent) = c.memory_dispatcher();
    let first = c.run(&d).await;
    assert_eq!(first.sent, 1, "{first:?}");
    let status = c.app.get("/api/v1/reminders/status", &c.reminders).await.json();
    assert_eq!(
        (status["ready"].as_i64(), status["stalled"].as_bool()),
        (Some(0), Some(false)),
        "{status}"
    );
    assert_eq!(first.planned.enqueued, 0, "the booking planned everything already");
    let second = c.run(&d).await;
    assert_eq!(second, Report::default(), "planning and dispatching again does nothing");
    assert_eq!(c.rows(&c.patient).await.len(), 3, "planning twice plans once");
    {
        let sent = sent.lock().expect("sent");
        assert_eq!(sent.len(), 1);
        let raw = &sent[0].raw;
        assert!(raw.contains("METHOD:REQUEST"), "{raw}");
        assert!(
            raw.contains("ORGANIZER;CN=Lakeside Pain Clinic:mailto:appointments@clinic.example"),
            "{raw}"
        );
        assert!(
            raw.contains("ATTENDEE;ROLE=REQ-PARTICIPANT:mailto:nia.okafor@example.org"),
            "{raw}"
        );
        assert!(
            raw.contains("List-Unsubscribe: <http://clinic.test/email/stop?t="),
            "{raw}"
        );
        assert_no_clinical_words(raw);
    }

    // Not before its time, then exactly once.
    c.app.clock.set(utc(2027, 1, 3, 15, 59));
    assert_eq!(c.run(&d).await.sent, 0);
    c.app.clock.set(utc(2027, 1, 3, 16, 0));
    assert_eq!(c.run(&d).await.sent, 1);
    assert_eq!(c.run(&d).await.sent, 0);
    let sent = sent.lock().expect("sent");
    assert_eq!(sent.len(), 2);
    assert!(!sent[1].raw.contains("text/calendar"), "reminders carry no invitation");
    let ids: HashSet<&str> = sent.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), 2, "one Message-ID per row");
}

#[actix_web::test]
async fn reschedule_and_cancel_void_what_they_replace() {
    let c = clinic().await;
    let a = c.book("consultation", "2027-01-06T10:00:00-06:00").await;
    let id = a["id"].as_str().expect("id");
    let (d, sent) = c.memory_dispatcher();
    c.run(&d).await;

    let res = c
        .app
        .post(
            &format!("/api/v1/appointments/{id}/reschedule"),
            &c.staff,
            json!({"start": "2027-01-07T11:00:00-06:00"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let rows = c.rows(&c.patient).await;
    assert_eq!(
        of_kind(&rows, "appointment_reminder", "void").len(),
        2,
        "old reminders void"
    );
    let new: Vec<DateTime<Utc>> = of_kind(&rows, "appointment_reminder", "pending")
        .iter()
        .map(|r| due_at(r))
        .collect();
    assert_eq!(new, [utc(2027, 1, 4, 17, 0), utc(2027, 1, 6, 17, 0)]);
    assert_eq!(of_kind(&rows, "appointment_update", "pending").len(), 1);
    assert_eq!(c.run(&d).await.sent, 1);
    assert!(sent.lock().expect("sent")[1].raw.contains("SEQUENCE:1"));

    // Back to the original time: new reminders again (the key carries the SEQUENCE).
    let res = c
        .app
        .post(
            &format!("/api/v1/appointments/{id}/reschedule"),
            &c.staff,
            json!({"start": "2027-01-06T10:00:00-06:00"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let rows = c.rows(&c.patient).await;
    assert_eq!(of_kind(&rows, "appointment_reminder", "pending").len(), 2);

    let res = c
        .app
        .post(
            &format!("/api/v1/appointments/{id}/cancel"),
            &c.staff,
            json!({"reason": "patient asked"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let rows = c.rows(&c.patient).await;
    assert!(
        of_kind(&rows, "appointment_reminder", "pending").is_empty(),
        "a cancel voids them"
    );
    assert_eq!(
        of_kind(&rows, "appointment_update", "void").len(),
        1,
        "the unsent update is replaced by the cancellation"
    );
    assert_eq!(c.run(&d).await.sent, 1, "only the cancellation");
    let last = sent.lock().expect("sent").last().expect("cancellation").raw.clone();
    assert!(
        last.contains("METHOD:CANCEL") && last.contains("STATUS:CANCELLED"),
        "{last}"
    );

    // Later ticks send nothing about the cancelled appointment.
    for day in [3, 5, 6] {
        c.app.clock.set(utc(2027, 1, day, 16, 30));
        assert_eq!(c.run(&d).await.sent, 0);
    }
}

#[actix_web::test]
async fn quiet_hours_follow_the_patients_own_zone_across_the_dst_change() {
    let c = clinic().await;
    c.app.clock.set(utc(2027, 3, 1, 12, 0));
    let la = c
        .app
        .post(
            "/api/v1/patients",
            &c.app.admin,
            json!({"given_name": "Lou", "family_name": "Park", "email": "lou@example.org",
                   "time_zone": "America/Los_Angeles", "email_consent": true}),
        )
        .await;
    assert_eq!(la.status, StatusCode::CREATED, "{}", la.text());
    let la = la.json()["id"].as_str().expect("id").to_owned();
    // Monday 15 March, the day after clocks spring forward. Nia (Chicago) at 11:00 CDT
    // (16:00 UTC); Lou (Los Angeles) at 09:00 CDT (14:00 UTC), which is 07:00 PDT for him.
    c.book("consultation", "2027-03-15T11:00:00-05:00").await;
    c.book_for(&la, "consultation", "2027-03-15T09:00:00-05:00").await;
    let chicago = c.rows(&c.patient).await;
    let chicago: Vec<_> = of_kind(&chicago, "appointment_reminder", "pending")
        .iter()
        .map(|r| due_at(r))
        .collect();
    assert_eq!(
        chicago,
        [utc(2027, 3, 12, 16, 0), utc(2027, 3, 14, 16, 0)],
        "outside quiet hours"
    );
    let lou = c.rows(&la).await;
    let lou: Vec<_> = of_kind(&lou, "appointment_reminder", "pending")
        .iter()
        .map(|r| due_at(r))
        .collect();
    // 72 h before is Friday 06:00 PST → 08:00 PST (16:00 UTC); 24 h before is Sunday 07:00
    // PDT, after the change → 08:00 PDT (15:00 UTC), not 16:00 as a fixed offset would say.
    assert_eq!(lou, [utc(2027, 3, 12, 16, 0), utc(2027, 3, 14, 15, 0)]);

    // A reminder that quiet hours push past the start: staff are asked to call instead.
    let settings = c.app.get("/api/v1/reminders/settings", &c.reminders).await.json();
    let mut s = settings.clone();
    s["appointment_offsets_hours"] = json!({"follow_up": [2]});
    let res = c.put_settings(s).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // Tuesday 09:00 CDT is 07:00 PDT: 2 h before is 05:00 PDT, quiet until 08:00, after the start.
    c.book_for(&la, "follow_up", "2027-03-16T09:00:00-05:00").await;
    let follow: Vec<_> = c
        .rows(&la)
        .await
        .into_iter()
        .filter(|r| r["kind"] == "appointment_reminder" && r["refers_to"] == "2027-03-16T14:00:00Z")
        .collect();
    assert!(follow.is_empty(), "{follow:?}");
    let outreach = c.outreach().await;
    assert!(
        outreach
            .iter()
            .any(|e| e["reason"] == "reminder_not_sent" && e["patient_id"] == la.as_str()),
        "{outreach:?}"
    );
}

/// A pump whose forecast is due about 80 days after 2027-01-01, and its due date.
async fn pump_due(c: &Clinic) -> (String, NaiveDate) {
    let res = c
        .app
        .post(
            "/api/v1/pumps",
            &c.staff,
            json!({"patient_id": c.patient, "model": "synchromed-ii-20", "serial_number": "NGP900001H", "implanted_on": "2026-06-01"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let pump = res.json()["id"].as_str().expect("id").to_owned();
    let res = c
        .app
        .post(
            &format!("/api/v1/pumps/{pump}/programs"),
            &c.staff,
            json!({"effective_at": "2027-01-01T05:00:00-06:00", "kind": "continuous", "daily_dose": "2"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let res = c
        .app
        .post(
            &format!("/api/v1/pumps/{pump}/fills"),
            &c.staff,
            json!({"filled_at": "2027-01-01T05:00:00-06:00", "drug": "morphine", "concentration": "10",
                   "concentration_unit": "mg/mL", "volume_ml": "20.0", "residual_ml": "0", "clinician": "R. Alvarez, RN"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let forecast = c
        .app
        .get(&format!("/api/v1/pumps/{pump}/forecast"), &c.staff)
        .await
        .json();
    let due: NaiveDate = forecast["due_date"].as_str().expect("due").parse().expect("date");
    (pump, due)
}

/// 10:00 on a Chicago date (the default refill send time), as UTC.
fn ten_am_chicago(d: NaiveDate) -> DateTime<Utc> {
    chrono_tz::America::Chicago
        .from_local_datetime(&d.and_hms_opt(10, 0, 0).expect("time"))
        .single()
        .expect("instant")
        .to_utc()
}

#[actix_web::test]
async fn refill_reminders_go_out_until_a_refill_is_booked() {
    let c = clinic().await;
    let (pump, due) = pump_due(&c).await;
    assert!(due > NaiveDate::from_ymd_opt(2027, 2, 1).expect("date"), "due {due}");
    let (d, sent) = c.memory_dispatcher();
    assert_eq!(c.run(&d).await.sent, 0, "nothing is due yet");

    // 21 days before, at 10:00 in the patient's zone.
    let at21 = ten_am_chicago(due - Duration::days(21));
    c.app.clock.set(at21 - Duration::minutes(1));
    c.run(&d).await;
    assert_eq!(sent.lock().expect("sent").len(), 0);
    c.app.clock.set(at21);
    let r = c.run(&d).await;
    assert_eq!(r.sent, 1, "{r:?}");
    let raw = sent.lock().expect("sent")[0].raw.clone();
    assert_no_clinical_words(&raw);
    let rows = c.rows(&c.patient).await;
    let refill = of_kind(&rows, "refill_reminder", "sent");
    assert_eq!(refill.len(), 1);
    assert_eq!(refill[0]["subject_id"], pump.as_str());

    // A refill booked before the due date stops the 14- and 7-day reminders and keeps the
    // patient off the outreach list.
    let refill_day = due - Duration::days(3);
    let weekday_refill = (0..5)
        .map(|i| refill_day - Duration::days(i))
        .find(|d| chrono::Datelike::weekday(d).number_from_monday() <= 5)
        .expect("a weekday");
    c.book("refill", &format!("{weekday_refill}T09:00:00-06:00")).await;
    assert_eq!(c.run(&d).await.sent, 1, "the booking's confirmation");
    for days in [14, 7, 3] {
        c.app.clock.set(ten_am_chicago(due - Duration::days(days)));
        c.run(&d).await;
        let refills: Vec<_> = c
            .rows(&c.patient)
            .await
            .into_iter()
            .filter(|r| r["kind"] == "refill_reminder")
            .collect();
        assert_eq!(refills.len(), 1, "{days} days before: {refills:?}");
    }
    let later: Vec<String> = sent.lock().expect("sent")[1..].iter().map(|m| m.raw.clone()).collect();
    assert!(
        later.iter().all(|raw| !raw.contains("time to book your next visit")),
        "no refill reminder after the booking"
    );
    assert!(c.outreach().await.iter().all(|e| e["reason"] != "refill_unbooked"));
}

#[actix_web::test]
async fn an_unbooked_refill_reaches_staff_and_leaves_when_booked() {
    let c = clinic().await;
    let (pump, due) = pump_due(&c).await;
    let (d, sent) = c.memory_dispatcher();
    c.app.clock.set(ten_am_chicago(due - Duration::days(7)));
    let r = c.run(&d).await;
    // The 21- and 14-day reminders were missed (nothing ran): only the latest is sent.
    assert_eq!(r.sent, 1, "{r:?}");
    assert_eq!(sent.lock().expect("sent").len(), 1);
    let entries = c.outreach().await;
    let entry = entries
        .iter()
        .find(|e| e["reason"] == "refill_unbooked")
        .expect("refill entry");
    assert_eq!(entry["subject_id"], pump.as_str());
    assert_eq!(entry["patient_name"], "Nia Okafor");
    assert_eq!(entry["patient_phone"], "+13125550123");

    let weekday = (1..7)
        .map(|i| due - Duration::days(i))
        .find(|d| chrono::Datelike::weekday(d).number_from_monday() <= 5)
        .expect("a weekday");
    c.book("refill", &format!("{weekday}T09:00:00-06:00")).await;
    c.run(&d).await;
    assert!(
        c.outreach().await.iter().all(|e| e["reason"] != "refill_unbooked"),
        "closed by the booking"
    );
    let all = c
        .app
        .get("/api/v1/worklists/outreach?include_done=true", &c.staff)
        .await
        .json();
    assert_eq!(all["items"][0]["done_by"], "system");
}

#[actix_web::test]
async fn failures_back_off_then_fail_onto_the_outreach_list_and_can_be_retried() {
    let c = clinic().await;
    c.book("consultation", "2027-01-06T10:00:00-06:00").await;
    // Nothing listens on port 1: every attempt fails to connect (transient).
    let d = c.dispatcher(Mailer::smtp("smtp://127.0.0.1:1?tls=none").expect("mailer"));
    let mut waits = Vec::new();
    for _ in 0..8 {
        let r = c.run(&d).await;
        let rows = c.rows(&c.patient).await;
        let row = rows
            .iter()
            .find(|r| r["kind"] == "appointment_confirmation")
            .expect("row")
            .clone();
        if r.failed == 1 {
            assert_eq!(row["state"], "failed");
            break;
        }
        assert_eq!(r.retrying, 1, "{r:?}");
        assert_eq!(row["state"], "pending");
        let next: DateTime<Utc> = row["next_attempt_at"].as_str().expect("next").parse().expect("instant");
        waits.push((next - c.app.state().now()).num_minutes());
        // Just before the backoff ends nothing is tried.
        c.app.clock.set(next - Duration::seconds(1));
        assert_eq!(c.run(&d).await.claimed, 0);
        c.app.clock.set(next);
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64], "exponential backoff");
    let rows = c.rows(&c.patient).await;
    let failed = of_kind(&rows, "appointment_confirmation", "failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempts"], 8);
    assert!(failed[0]["last_error"].is_string());
    let outreach = c.outreach().await;
    assert!(outreach.iter().any(|e| e["reason"] == "email_failed"), "{outreach:?}");

    // Staff retry it: pending, due now, and a working mailer sends it.
    let id = failed[0]["id"].as_str().expect("id");
    let res = c
        .app
        .post(&format!("/api/v1/reminders/{id}/retry"), &c.reminders, json!({}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["state"], "pending");
    assert_eq!(res.json()["attempts"], 0);
    c.app
        .post(&format!("/api/v1/reminders/{id}/retry"), &c.reminders, json!({}))
        .await
        .problem(409, "invalid_state");
    let (ok, sent) = c.memory_dispatcher();
    assert_eq!(c.run(&ok).await.sent, 1);
    assert_eq!(sent.lock().expect("sent").len(), 1);
}

#[actix_web::test]
async fn a_refused_address_fails_at_once_and_reaches_staff() {
    let c = clinic().await;
    c.book("consultation", "2027-01-06T10:00:00-06:00").await;
    let sink = SmtpSink::refusing(&["nia.okafor@example.org"]).expect("smtp");
    let d = c.dispatcher(Mailer::smtp(&sink.url()).expect("mailer"));
    let r = c.run(&d).await;
    assert_eq!(r.failed, 1, "{r:?}");
    let outreach = c.outreach().await;
    assert_eq!(outreach.len(), 1);
    assert_eq!(outreach[0]["reason"], "email_failed");
    assert!(sink.messages().is_empty());
}

#[actix_web::test]
async fn after_a_crash_the_lease_expires_and_the_email_is_sent_again() {
    let c = clinic().await;
    c.book("consultation", "2027-01-06T10:00:00-06:00").await;
    // A dispatcher claims the confirmation and dies before recording anything.
    {
        let mut conn = clinic_store::pool::get(&c.app.pool).expect("connection");
        let claimed =
            clinic_reminders::outbox::claim(&mut conn, c.app.state().now(), Duration::minutes(5), 10).expect("claim");
        assert_eq!(claimed.len(), 1);
    }
    let (d, sent) = c.memory_dispatcher();
    c.app.clock.advance(Duration::minutes(4));
    let status = c.app.get("/api/v1/reminders/status", &c.reminders).await.json();
    assert_eq!(
        (status["sending"].as_i64(), status["expired_leases"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(c.run(&d).await.sent, 0, "the lease still holds");
    c.app.clock.advance(Duration::minutes(2));
    let status = c.app.get("/api/v1/reminders/status", &c.reminders).await.json();
    assert_eq!(status["expired_leases"], 1, "{status}");
    assert_eq!(c.run(&d).await.sent, 1, "the expired lease returns the row");
    let rows = c.rows(&c.patient).await;
    let row = of_kind(&rows, "appointment_confirmation", "sent");
    assert_eq!(row[0]["attempts"], 2);
    assert_eq!(
        sent.lock().expect("sent")[0].message_id,
        row[0]["message_id"].as_str().expect("id")
    );
}

#[actix_web::test]
async fn two_dispatchers_send_each_of_a_thousand_emails_exactly_once() {
    let c = clinic().await;
    let a = c.book("consultation", "2027-01-06T10:00:00-06:00").await;
    let id = a["id"].as_str().expect("id");
    {
        let mut conn = clinic_store::pool::get(&c.app.pool).expect("connection");
        let now = c.app.state().now();
        let rows = (0..1000)
            .map(|i| clinic_reminders::outbox::NewOutboxRow {
                dedupe_key: format!("load:{i}"),
                kind: "appointment_confirmation".into(),
                subject_type: "appointment".into(),
                subject_id: id.to_owned(),
                patient_id: Some(c.patient.clone()),
                refers_to: now,
                due_at: now,
            })
            .collect();
        assert_eq!(
            clinic_reminders::outbox::enqueue_many(&mut conn, rows, now).expect("rows"),
            1000
        );
    }
    let (m1, s1) = Mailer::memory();
    let (m2, s2) = Mailer::memory();
    let small = DispatchOptions {
        batch: 25,
        ..DispatchOptions::default()
    };
    let d1 = Dispatcher::new(c.app.pool.clone(), m1, c.app.state().composer.clone(), small);
    let d2 = Dispatcher::new(c.app.pool.clone(), m2, c.app.state().composer.clone(), small);
    let now = c.app.state().now();
    let (r1, r2) = tokio::join!(d1.run_once(now), d2.run_once(now));
    let (r1, r2) = (r1.expect("run 1"), r2.expect("run 2"));
    assert_eq!(r1.sent + r2.sent, 1001, "{r1:?} {r2:?}");
    let mut ids: Vec<String> = s1.lock().expect("s1").iter().map(|m| m.message_id.clone()).collect();
    ids.extend(s2.lock().expect("s2").iter().map(|m| m.message_id.clone()));
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 1001);
    assert_eq!(unique.len(), 1001, "no email sent twice");
}

#[actix_web::test]
async fn patients_without_consent_get_calls_not_emails() {
    let c = clinic().await;
    let res = c
        .app
        .post(
            "/api/v1/patients",
            &c.app.admin,
            json!({"given_name": "Sam", "family_name": "Lee", "email": "sam@example.org", "email_consent": false}),
        )
        .await;
    let sam = res.json()["id"].as_str().expect("id").to_owned();
    c.book_for(&sam, "consultation", "2027-01-06T10:00:00-06:00").await;
    let (d, sent) = c.memory_dispatcher();
    c.run(&d).await;
    c.app.clock.set(utc(2027, 1, 3, 16, 0));
    let r = c.run(&d).await;
    assert_eq!(r.skipped, 1, "{r:?}");
    assert!(sent.lock().expect("sent").is_empty());
    let rows = c.rows(&sam).await;
    assert!(
        rows.iter().all(|r| r["state"] == "void" || r["state"] == "pending"),
        "{rows:?}"
    );
    let outreach = c.outreach().await;
    let entry = outreach
        .iter()
        .find(|e| e["patient_id"] == sam.as_str())
        .expect("entry");
    assert_eq!(entry["reason"], "no_email");

    // Staff mark it done with a note.
    let done = c
        .app
        .post(
            &format!("/api/v1/worklists/outreach/{}/done", entry["id"].as_str().expect("id")),
            &c.staff,
            json!({"note": "Called; confirmed for Wednesday."}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.json()["note"], "Called; confirmed for Wednesday.");
    assert!(c.outreach().await.iter().all(|e| e["patient_id"] != sam.as_str()));
    c.app
        .post(
            &format!("/api/v1/worklists/outreach/{}/done", entry["id"].as_str().expect("id")),
            &c.staff,
            json!({"note": "again"}),
        )
        .await
        .problem(409, "already_done");
}

#[actix_web::test]
async fn end_to_end_through_a_real_smtp_server_and_the_stop_link() {
    let c = clinic().await;
    c.book("consultation", "2027-01-06T10:00:00-06:00").await;
    let sink = SmtpSink::start().expect("smtp");
    let d = c.dispatcher(Mailer::smtp(&sink.url()).expect("mailer"));
    assert_eq!(c.run(&d).await.sent, 1);
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let raw = &messages[0];
    assert!(raw.contains("To: Nia <nia.okafor@example.org>"), "{raw}");
    assert!(
        raw.contains("From: \"Lakeside Pain Clinic\" <appointments@clinic.example>"),
        "{raw}"
    );
    assert!(
        raw.contains("Subject: Your appointment at Lakeside Pain Clinic on Wed, Jan 6 at 10:00 AM"),
        "{raw}"
    );
    assert!(raw.contains("filename=\"appointment.ics\""), "{raw}");
    assert_no_clinical_words(raw);
    let rows = c.rows(&c.patient).await;
    let sent = of_kind(&rows, "appointment_confirmation", "sent");
    assert!(sent[0]["provider_message_id"].is_string(), "{:?}", sent[0]);
    assert!(raw.contains(sent[0]["message_id"].as_str().expect("id")));

    // The stop link: no patient id in it; GET asks, POST records.
    let start = raw.find("http://clinic.test/email/stop?t=").expect("link");
    let link: String = raw[start..]
        .chars()
        .take_while(|ch| !ch.is_whitespace() && *ch != '>')
        .collect();
    assert!(!link.contains(&c.patient));
    let path = link.trim_start_matches("http://clinic.test");
    let page = c.app.send(TestRequest::get().uri(path)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("Stop emails"));
    let patient = c
        .app
        .get(&format!("/api/v1/patients/{}", c.patient), &c.staff)
        .await
        .json();
    assert_eq!(patient["email_consent"], true, "a GET changes nothing");
    let done = c.app.send(TestRequest::post().uri(path)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.header("cache-control").as_deref(), Some("no-store"));
    let patient = c
        .app
        .get(&format!("/api/v1/patients/{}", c.patient), &c.staff)
        .await
        .json();
    assert_eq!(patient["email_consent"], false);
    assert!(c.outreach().await.iter().any(|e| e["reason"] == "email_stopped"));
    let bad = c.app.send(TestRequest::post().uri("/email/stop?t=forged.token")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Forged links run into the per-address limit; genuine ones never do.
    let mut limited = false;
    for _ in 0..20 {
        let res = c.app.send(TestRequest::post().uri("/email/stop?t=forged.token")).await;
        limited |= res.status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "forged links are rate limited");
    let again = c.app.send(TestRequest::post().uri(path)).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "a genuine link still works: {}",
        again.text()
    );

    // The 72-hour reminder is now a phone call, not an email.
    c.app.clock.set(utc(2027, 1, 3, 16, 0));
    assert_eq!(c.run(&d).await.skipped, 1);
    assert_eq!(sink.messages().len(), 1);
}

#[actix_web::test]
async fn the_admin_api_lists_shows_voids_previews_and_edits_settings() {
    let c = clinic().await;
    c.book("consultation", "2027-01-06T10:00:00-06:00").await;
    // Scope: reminders:admin only.
    c.app.get("/api/v1/reminders", &c.staff).await.problem(403, "forbidden");
    let list = c
        .app
        .get(
            "/api/v1/reminders?kind=appointment_reminder&state=pending",
            &c.reminders,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let items = list.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2);
    let bad = c
        .app
        .get("/api/v1/reminders?state=lost&kind=postcard", &c.reminders)
        .await;
    bad.problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["state", "kind"]);
    let window = c
        .app
        .get(
            "/api/v1/reminders?due_from=2027-01-04T00:00:00Z&due_to=2027-01-06T00:00:00Z",
            &c.reminders,
        )
        .await
        .json();
    assert_eq!(
        window["items"].as_array().expect("items").len(),
        1,
        "the 24-hour reminder only"
    );
    let page = c.app.get("/api/v1/reminders?limit=2", &c.reminders).await.json();
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let rest = c
        .app
        .get(&format!("/api/v1/reminders?limit=2&cursor={cursor}"), &c.reminders)
        .await
        .json();
    assert_eq!(rest["items"].as_array().expect("items").len(), 1);

    // One row with its email rendered.
    let id = items[0]["id"].as_str().expect("id");
    let detail = c.app.get(&format!("/api/v1/reminders/{id}"), &c.reminders).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text());
    let detail = detail.json();
    assert_eq!(detail["email"]["to"], "nia.okafor@example.org");
    assert!(detail["email"]["subject"]
        .as_str()
        .expect("subject")
        .contains("Lakeside Pain Clinic"));
    assert!(detail["email"]["would_skip"].is_null());
    assert_no_clinical_words(&detail["email"].to_string());

    // Void it; a void row cannot be voided again.
    let res = c
        .app
        .post(&format!("/api/v1/reminders/{id}/void"), &c.reminders, json!({}))
        .await;
    assert_eq!(res.json()["state"], "void");
    c.app
        .post(&format!("/api/v1/reminders/{id}/void"), &c.reminders, json!({}))
        .await
        .problem(409, "invalid_state");
    c.app
        .get("/api/v1/reminders/nope", &c.reminders)
        .await
        .problem(404, "not_found");

    // Preview without sending.
    let preview = c
        .app
        .post(
            "/api/v1/reminders/preview",
            &c.reminders,
            json!({"kind": "refill_reminder", "patient_id": c.patient, "at": "2027-02-10T18:00:00Z"}),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text());
    let preview = preview.json();
    assert!(preview["text"].as_str().expect("text").contains("Nia"));
    assert!(preview["text"].as_str().expect("text").contains("February 10, 2027"));
    assert_no_clinical_words(&preview.to_string());
    c.app
        .post("/api/v1/reminders/preview", &c.reminders, json!({"kind": "postcard"}))
        .await
        .problem(422, "validation_failed");

    // Settings: defaults, validation naming each field, optimistic concurrency.
    let s = c.app.get("/api/v1/reminders/settings", &c.reminders).await.json();
    assert_eq!(s["version"], 0);
    assert_eq!(s["default_appointment_offsets_hours"], json!([72, 24]));
    assert_eq!(s["refill_offsets_days"], json!([21, 14, 7]));
    assert_eq!(s["quiet_hours_start"], "21:00");
    assert_eq!(s["escalation_days"], 7);
    let mut bad = s.clone();
    bad["refill_offsets_days"] = json!([7, 7]);
    bad["quiet_hours_end"] = json!("25:00");
    bad["appointment_offsets_hours"] = json!({"massage": [2]});
    bad["escalation_days"] = json!(0);
    let res = c.put_settings(bad).await;
    res.problem(422, "validation_failed");
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "appointment_offsets_hours.massage",
            "escalation_days",
            "quiet_hours_end",
            "refill_offsets_days"
        ]
    );
    let mut good = s.clone();
    good["default_appointment_offsets_hours"] = json!([48]);
    let res = c.put_settings(good.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["version"], 1);
    c.put_settings(good).await.problem(409, "version_conflict");
    // New bookings use the new offsets.
    let a = c.book("consultation", "2027-01-08T10:00:00-06:00").await;
    let rows = c.rows(&c.patient).await;
    let new: Vec<_> = rows
        .iter()
        .filter(|r| r["subject_id"] == a["id"] && r["kind"] == "appointment_reminder")
        .map(due_at)
        .collect();
    assert_eq!(new, [utc(2027, 1, 6, 16, 0)]);

    // Reads were audited against the patient.
    let audit = c
        .app
        .get(&format!("/api/v1/audit-events?subject_id={}", c.patient), &c.app.admin)
        .await
        .json();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["reminder.list", "reminder.read", "reminder.void"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
}

#[actix_web::test]
async fn the_scheduler_ticks_the_dispatcher_on_its_own() {
    let c = clinic().await;
    // The real clock: the ticker passes the time it fires at.
    c.app.clock.set(Utc::now());
    // Two days ahead on a weekday: the 72-hour reminder's time has passed at booking, so
    // only the confirmation goes out now (not a late reminder beside it).
    let mut day = (Utc::now() + Duration::days(2)).date_naive();
    while chrono::Datelike::weekday(&day).number_from_monday() > 5 {
        day += Duration::days(1);
    }
    let start = chrono_tz::America::Chicago
        .from_local_datetime(&day.and_hms_opt(14, 0, 0).expect("time"))
        .single()
        .expect("instant");
    c.book("consultation", &start.to_rfc3339()).await;
    let (d, sent) = c.memory_dispatcher();
    let d = Arc::new(d);
    let mut ticker = clinic_reminders::scheduler::start_on(d.clone(), "* * * * * *")
        .await
        .expect("scheduler");
    // Wait for the tick's effects (bounded), not for a fixed time. The tick records its
    // status after the mailer has taken the email, so wait for both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while (sent.lock().expect("sent").is_empty() || d.status().last_run_at.is_none())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ticker.shutdown().await.expect("shutdown");
    assert_eq!(sent.lock().expect("sent").len(), 1, "the confirmation, sent by a tick");
    let status = d.status();
    assert!(
        status.last_run_at.is_some() && status.last_error.is_none(),
        "{status:?}"
    );
}

#[actix_web::test]
async fn a_new_forecast_replans_the_refill_reminders() {
    let c = clinic().await;
    let (pump, due) = pump_due(&c).await;
    let (d, _sent) = c.memory_dispatcher();
    // An hour before the 21-day reminder: it is planned, not yet sent.
    c.app
        .clock
        .set(ten_am_chicago(due - Duration::days(21)) - Duration::hours(1));
    let first = c.run(&d).await;
    assert_eq!((first.planned.enqueued, first.sent), (1, 0), "{first:?}");
    // The dose goes up: the pump will run dry sooner.
    let res = c
        .app
        .post(
            &format!("/api/v1/pumps/{pump}/programs"),
            &c.staff,
            json!({"effective_at": c.app.state().now().to_rfc3339(), "kind": "continuous", "daily_dose": "3"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let forecast = c
        .app
        .get(&format!("/api/v1/pumps/{pump}/forecast"), &c.staff)
        .await
        .json();
    let new_due: NaiveDate = forecast["due_date"].as_str().expect("due").parse().expect("date");
    assert!(new_due < due, "{new_due} vs {due}");
    let second = c.run(&d).await;
    assert_eq!(
        second.planned.voided, 1,
        "the reminder for the old date is void: {second:?}"
    );
    let rows: Vec<Value> = c
        .rows(&c.patient)
        .await
        .into_iter()
        .filter(|r| r["kind"] == "refill_reminder")
        .collect();
    let old = rows.iter().find(|r| r["state"] == "void").expect("old row");
    assert_eq!(old["last_error"], "a refill was booked or the due date changed");
    // The new date's reminders follow it: the latest one already due is sent now.
    let live: Vec<&Value> = rows.iter().filter(|r| r["state"] != "void").collect();
    assert!(!live.is_empty(), "{rows:?}");
    let new_start = chrono_tz::America::Chicago
        .from_local_datetime(&new_due.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("instant")
        .to_utc();
    assert!(
        live.iter()
            .all(|r| r["refers_to"] == new_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{live:?}"
    );
}

#[actix_web::test]
async fn emails_wait_while_smtp_is_down_and_all_go_out_when_it_returns() {
    let c = clinic().await;
    for day in [6, 7, 8] {
        c.book("consultation", &format!("2027-01-{day:02}T10:00:00-06:00"))
            .await;
    }
    // A port with nothing listening: the relay is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let d = c.dispatcher(Mailer::smtp(&format!("smtp://127.0.0.1:{port}?tls=none")).expect("mailer"));
    let down = c.run(&d).await;
    assert_eq!((down.sent, down.retrying, down.failed), (0, 3, 0), "{down:?}");
    c.app.clock.advance(Duration::minutes(1));
    assert_eq!(c.run(&d).await.retrying, 3, "still down: they wait, nothing is lost");
    // The relay comes back on the same address.
    let sink = SmtpSink::bind(&format!("127.0.0.1:{port}")).expect("smtp back");
    c.app.clock.advance(Duration::minutes(2));
    let up = c.run(&d).await;
    assert_eq!(up.sent, 3, "{up:?}");
    assert_eq!(sink.messages().len(), 3);
    let status = c.app.get("/api/v1/reminders/status", &c.reminders).await.json();
    assert_eq!(
        (status["ready"].as_i64(), status["failed"].as_i64()),
        (Some(0), Some(0)),
        "{status}"
    );
}

#[test]
fn the_documented_enums_are_the_code_s_sets() {
    let doc = serde_json::to_value(clinic_api::openapi_document()).expect("json");
    let values = |name: &str| -> Vec<String> {
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is an enum"))
            .iter()
            .map(|v| v.as_str().expect("text").to_owned())
            .collect()
    };
    let kinds: Vec<String> = clinic_reminders::templates::EmailKind::ALL
        .iter()
        .map(|k| k.name().to_owned())
        .collect();
    assert_eq!(values("EmailKindName"), kinds);
    let reasons: Vec<String> = clinic_reminders::outreach::Reason::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    assert_eq!(values("OutreachReason"), reasons);
    assert_eq!(values("OutboxState"), ["pending", "sending", "sent", "failed", "void"]);
}

/// Changing the offsets applies to appointments already booked: planned reminders for an
/// offset that was removed are voided (not sent), those for an offset that stays are kept,
/// and a new offset is planned by the tick.
#[actix_web::test]
async fn a_settings_change_replans_reminders_already_booked() {
    let c = clinic().await;
    // Friday 2027-01-08 10:00 CST: defaults plan "72 h before" and "24 h before".
    let a = c.book("consultation", "2027-01-08T10:00:00-06:00").await;
    let reminders = |rows: Vec<Value>| -> Vec<(DateTime<Utc>, String)> {
        let mut r: Vec<_> = rows
            .iter()
            .filter(|r| r["subject_id"] == a["id"] && r["kind"] == "appointment_reminder")
            .map(|r| (due_at(r), r["state"].as_str().unwrap_or_default().to_owned()))
            .collect();
        r.sort();
        r
    };
    assert_eq!(
        reminders(c.rows(&c.patient).await),
        [
            (utc(2027, 1, 5, 16, 0), "pending".to_owned()),
            (utc(2027, 1, 7, 16, 0), "pending".to_owned())
        ]
    );

    let mut s = c.app.get("/api/v1/reminders/settings", &c.reminders).await.json();
    s["default_appointment_offsets_hours"] = json!([48, 24]);
    let res = c.put_settings(s).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let rows = c.rows(&c.patient).await;
    assert_eq!(
        reminders(rows.clone()),
        [
            (utc(2027, 1, 5, 16, 0), "void".to_owned()),
            (utc(2027, 1, 7, 16, 0), "pending".to_owned())
        ],
        "72 h was dropped, 24 h stays"
    );
    let voided = rows
        .iter()
        .find(|r| r["subject_id"] == a["id"] && r["state"] == "void")
        .expect("voided row");
    assert_eq!(voided["last_error"], "superseded by a change to the reminder settings");

    // The tick within a day of the new 48 h reminder plans it; nothing goes out twice.
    c.app.clock.set(utc(2027, 1, 6, 1, 0));
    let (dispatcher, _sent) = c.memory_dispatcher();
    c.run(&dispatcher).await;
    assert_eq!(
        reminders(c.rows(&c.patient).await),
        [
            (utc(2027, 1, 5, 16, 0), "void".to_owned()),
            (utc(2027, 1, 6, 16, 0), "pending".to_owned()),
            (utc(2027, 1, 7, 16, 0), "pending".to_owned())
        ]
    );
}
