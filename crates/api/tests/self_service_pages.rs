//! The patients' self-service pages through HTTP, on the backend under test (SQLite, or
//! PostgreSQL with TEST_DATABASE_URL): the visit page and its confirm, reschedule and cancel
//! actions with every refusal; links that follow a rescheduled visit and expire with the
//! injected clock; the refill booking page and its due date; a GET-only crawl of every link in
//! the real emails that changes nothing; a patient and staff acting at once; the outreach
//! list after a cancelled refill; the pages' privacy headers and wording; the rate limit.
//!
//! "Now" starts on Monday 2027-01-04 12:00 in Chicago, the clinic's and the provider's zone;
//! the patient lives in New York, so her pages show her own times.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use base64::Engine;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use clinic_api::rate_limit::SelfServiceLimits;
use clinic_domain::ids::{AppointmentId, PatientId};
use clinic_reminders::dispatcher::{DispatchOptions, Dispatcher};
use clinic_reminders::mailer::{Delivered, Mailer};
use clinic_reminders::patient_links::{self, LinkSubject};
use common::{TestApp, TestResponse};
use diesel::prelude::*;
use serde_json::{json, Value};

/// The clinic's phone, as every page links it.
const PHONE: &str = "tel:+13125550100";
/// Where the emails' links point (`common::test_composer`).
const ORIGIN: &str = "http://clinic.test";

/// A wall time in Chicago, as UTC.
fn chicago(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::America::Chicago
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("a Chicago instant")
        .to_utc()
}

fn on(d: NaiveDate, h: u32, min: u32) -> DateTime<Utc> {
    chicago(d.year(), d.month(), d.day(), h, min)
}

/// The first instant after the Chicago day `d`: when a link about that day ends.
fn end_of_day(d: NaiveDate) -> DateTime<Utc> {
    on(d.succ_opt().expect("a next day"), 0, 0)
}

fn chicago_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&chrono_tz::America::Chicago).date_naive()
}

fn is_weekday(d: NaiveDate) -> bool {
    d.weekday().number_from_monday() <= 5
}

/// `d`, or the weekday before it.
fn weekday_by(d: NaiveDate) -> NaiveDate {
    let mut d = d;
    while !is_weekday(d) {
        d = d.pred_opt().expect("a day before");
    }
    d
}

/// Every value that follows `marker` up to the next `"` (in decoded HTML).
fn values_after(html: &str, marker: &str) -> Vec<String> {
    html.match_indices(marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .collect()
}

/// The times a page offers (its `slot` radio values), in page order.
fn slots(html: &str) -> Vec<String> {
    values_after(html, "name=\"slot\" value=\"")
}

/// A hidden field's value.
fn hidden(html: &str, name: &str) -> Option<String> {
    values_after(html, &format!("type=\"hidden\" name=\"{name}\" value=\"")).pop()
}

/// A slot value's provider and start (`<provider id>_<unix seconds>`).
fn slot_parts(value: &str) -> (String, DateTime<Utc>) {
    let (provider, secs) = value.split_once('_').expect("a slot value");
    let secs: i64 = secs.parse().expect("unix seconds");
    (
        provider.to_owned(),
        DateTime::from_timestamp(secs, 0).expect("an instant"),
    )
}

fn slot_value(provider: &str, start: DateTime<Utc>) -> String {
    format!("{provider}_{}", start.timestamp())
}

fn title(html: &str) -> String {
    let start = html.find("<title>").map_or(0, |i| i + "<title>".len());
    let end = html[start..].find("</title>").map_or(html.len(), |i| start + i);
    html[start..end].to_owned()
}

/// A page for a person from the patient's link: never stored, no referrer, a strict CSP (no
/// script at all, no framing), no cookie, the clinic's phone, nothing clinical, and no
/// patient name in the title.
fn assert_private_page(res: &TestResponse, what: &str) {
    assert!(
        res.header("content-type").is_some_and(|c| c.starts_with("text/html")),
        "{what}: {:?}",
        res.header("content-type")
    );
    assert_private_headers(res, what);
    let csp = res
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    let directives: BTreeMap<String, String> = csp
        .split(';')
        .filter_map(|d| {
            let d = d.trim();
            let (name, value) = d.split_once(' ').unwrap_or((d, ""));
            (!name.is_empty()).then(|| (name.to_owned(), value.trim().to_owned()))
        })
        .collect();
    let scripts = directives
        .get("script-src")
        .or_else(|| directives.get("default-src"))
        .unwrap_or_else(|| panic!("{what}: the CSP leaves scripts open: {csp}"));
    assert!(
        !scripts.contains("unsafe-inline") && scripts == "'none'",
        "{what}: scripts may run: {csp}"
    );
    assert_eq!(
        directives.get("frame-ancestors").map(String::as_str),
        Some("'none'"),
        "{what}: {csp}"
    );
    let html = res.text();
    assert!(!html.to_lowercase().contains("<script"), "{what}: {html}");
    let found = clinic_reminders::templates::clinical_words(&html);
    assert!(found.is_empty(), "{what} says {found:?}:\n{html}");
    let t = title(&html);
    assert!(
        !t.contains("Nia") && !t.contains("Okafor") && !t.is_empty(),
        "{what}: title {t:?}"
    );
    assert!(html.contains(PHONE), "{what} offers the clinic's phone:\n{html}");
}

/// What every answer of the pages carries, redirects included.
fn assert_private_headers(res: &TestResponse, what: &str) {
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"), "{what}");
    assert_eq!(res.header("referrer-policy").as_deref(), Some("no-referrer"), "{what}");
    assert!(res.headers.get("set-cookie").is_none(), "{what} sets a cookie");
}

fn assert_refused(res: &TestResponse, status: u16, heading: &str, what: &str) {
    assert_eq!(res.status.as_u16(), status, "{what}: {}", res.text());
    assert_private_page(res, what);
    let html = common::unescape_html(&res.text());
    assert!(html.contains(heading), "{what}: expected {heading:?} in\n{html}");
    assert!(!html.contains("<form"), "{what} offers no form:\n{html}");
}

struct Clinic {
    app: TestApp,
    provider: String,
    patient: String,
}

/// A fresh clinic: seeded types and catalogue, one Chicago provider working weekdays
/// 08:00–17:00, one patient who consents to email and lives in New York.
async fn clinic() -> Clinic {
    let app = TestApp::new().await;
    app.clock.set(chicago(2027, 1, 4, 12, 0));
    {
        let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
        let now = app.state().now();
        clinic_scheduling::types::seed(&mut conn, now).expect("types");
        clinic_pumps::catalog::seed(&mut conn, now).expect("pump catalogue");
    }
    let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "08:00", "end": "17:00"}))
        .collect();
    let res = app
        .post(
            "/api/v1/providers",
            &app.admin,
            json!({"name": "Dr. Ana Ruiz", "role": "pain physician", "time_zone": "America/Chicago", "hours": hours}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let provider = res.json()["id"].as_str().expect("provider id").to_owned();
    let patient = app.create_patient("Nia", "Okafor").await["id"]
        .as_str()
        .expect("patient id")
        .to_owned();
    let res = app
        .patch(
            &format!("/api/v1/patients/{patient}"),
            &app.admin,
            json!({"version": 1, "time_zone": "America/New_York"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    Clinic { app, provider, patient }
}

impl Clinic {
    fn now(&self) -> DateTime<Utc> {
        self.app.state().now()
    }

    /// Staff book a visit of the patient.
    async fn book(&self, kind: &str, start: DateTime<Utc>) -> Value {
        let res = self
            .app
            .post(
                "/api/v1/appointments",
                &self.app.admin,
                json!({"patient_id": self.patient, "provider_id": self.provider, "appointment_type": kind,
                       "start": start.to_rfc3339()}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()
    }

    fn generation(&self) -> u32 {
        let mut conn = clinic_store::pool::get(&self.app.pool).expect("connection");
        let patient: PatientId = self.patient.parse().expect("a patient id");
        patient_links::generation(&mut conn, patient).expect("the link generation")
    }

    /// The visit's page, as its emails link it.
    fn visit_path(&self, a: &Value) -> String {
        let id: AppointmentId = a["id"]
            .as_str()
            .expect("appointment id")
            .parse()
            .expect("an appointment id");
        let token = self
            .app
            .state()
            .composer
            .patient_links()
            .sign(LinkSubject::Appointment(id), self.generation());
        format!("/my/appointments/{token}")
    }

    /// The pump's refill booking page, as its refill reminder links it (its current episode).
    fn refill_path(&self, pump: &str) -> String {
        let episode = {
            let mut conn = clinic_store::pool::get(&self.app.pool).expect("connection");
            clinic_pumps::registry::last_fill_id(&mut conn, pump).expect("last fill")
        };
        let uuid = |id: &str| uuid::Uuid::parse_str(id).expect("a uuid");
        let subject = LinkSubject::Refill {
            pump: uuid(pump),
            episode: episode.as_deref().map(uuid),
        };
        let token = self
            .app
            .state()
            .composer
            .patient_links()
            .sign(subject, self.generation());
        format!("/my/book/{token}")
    }

    /// A GET as a browser sends it: no token.
    async fn get(&self, path: &str) -> TestResponse {
        self.app.send(TestRequest::get().uri(path)).await
    }

    /// A page's form, posted as a browser posts it.
    async fn post_form(&self, path: &str, form: &str) -> TestResponse {
        self.app.send(form_request(path, form)).await
    }

    /// The page at `path`, which must answer 200; its decoded HTML.
    async fn page(&self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status, StatusCode::OK, "GET {path}: {}", res.text());
        common::unescape_html(&res.text())
    }

    async fn appointment(&self, a: &Value) -> Value {
        let id = a["id"].as_str().expect("appointment id");
        let res = self
            .app
            .get(&format!("/api/v1/appointments/{id}"), &self.app.admin)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()
    }

    async fn history(&self, a: &Value) -> Vec<Value> {
        let id = a["id"].as_str().expect("appointment id");
        let res = self
            .app
            .get(&format!("/api/v1/appointments/{id}/history"), &self.app.admin)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["items"].as_array().expect("items").clone()
    }

    /// The patient's appointments of a type.
    async fn appointments_of_type(&self, kind: &str) -> Vec<Value> {
        let res = self
            .app
            .get(
                &format!("/api/v1/appointments?patient_id={}&limit=100", self.patient),
                &self.app.admin,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|a| a["appointment_type"] == kind)
            .cloned()
            .collect()
    }

    /// The outbox rows of `kind` about `subject`.
    async fn emails(&self, kind: &str, subject: &str) -> Vec<Value> {
        let res = self
            .app
            .get(
                &format!("/api/v1/reminders?patient_id={}&kind={kind}&limit=100", self.patient),
                &self.app.admin,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|r| r["subject_id"] == subject)
            .cloned()
            .collect()
    }

    /// Changes the self-service settings through the API.
    async fn settings(&self, change: impl FnOnce(&mut Value)) {
        let path = "/api/v1/self-service/settings";
        let mut body = self.app.get(path, &self.app.admin).await.json();
        change(&mut body);
        let res = self
            .app
            .call(actix_web::http::Method::PUT, path, Some(&self.app.admin), Some(body))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }

    /// A programmed pump filled at `filled_at` with 20 mL of 10 mg/mL at `dose` a day; its
    /// id and due date.
    async fn pump(&self, serial: &str, dose: &str, filled_at: DateTime<Utc>) -> (String, NaiveDate) {
        let res = self
            .app
            .post(
                "/api/v1/pumps",
                &self.app.admin,
                json!({"patient_id": self.patient, "model": "synchromed-ii-20", "serial_number": serial,
                       "implanted_on": "2026-06-01"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let pump = res.json()["id"].as_str().expect("pump id").to_owned();
        let res = self
            .app
            .post(
                &format!("/api/v1/pumps/{pump}/programs"),
                &self.app.admin,
                json!({"effective_at": filled_at.to_rfc3339(), "kind": "continuous", "daily_dose": dose}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        self.fill(&pump, filled_at).await;
        let due = self.due(&pump).await;
        (pump, due)
    }

    async fn fill(&self, pump: &str, at: DateTime<Utc>) {
        let res = self
            .app
            .post(
                &format!("/api/v1/pumps/{pump}/fills"),
                &self.app.admin,
                json!({"filled_at": at.to_rfc3339(), "drug": "morphine", "concentration": "10",
                       "concentration_unit": "mg/mL", "volume_ml": "20.0", "residual_ml": "0",
                       "clinician": "R. Alvarez, RN"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }

    async fn due(&self, pump: &str) -> NaiveDate {
        let f = self
            .app
            .get(&format!("/api/v1/pumps/{pump}/forecast"), &self.app.admin)
            .await
            .json();
        f["due_date"].as_str().expect("a due date").parse().expect("a date")
    }

    /// A pump due on a weekday 10 to 30 days from now (Monday 4 January), and its due date.
    async fn refill_pump(&self, serial: &str) -> (String, NaiveDate) {
        let (pump, due) = self.pump(serial, "6", chicago(2027, 1, 4, 9, 0)).await;
        assert!(
            is_weekday(due) && due > date(2027, 1, 14) && due < date(2027, 2, 3),
            "the fixture pump is due on {due} ({})",
            due.weekday()
        );
        (pump, due)
    }

    /// Staff move a visit through the API.
    async fn staff_reschedule(&self, a: &Value, start: DateTime<Utc>) -> TestResponse {
        let id = a["id"].as_str().expect("appointment id");
        self.app
            .post(
                &format!("/api/v1/appointments/{id}/reschedule"),
                &self.app.admin,
                json!({"start": start.to_rfc3339()}),
            )
            .await
    }

    async fn staff_cancel(&self, a: &Value) {
        let id = a["id"].as_str().expect("appointment id");
        let res = self
            .app
            .post(
                &format!("/api/v1/appointments/{id}/cancel"),
                &self.app.admin,
                json!({"reason": "the clinic is closed"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }

    async fn outreach(&self) -> Vec<Value> {
        let res = self
            .app
            .get(
                &format!("/api/v1/worklists/outreach?patient_id={}", self.patient),
                &self.app.admin,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["items"].as_array().expect("items").clone()
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a date")
}

/// The token with its last character changed (the signature no longer matches).
fn tamper_last(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}

fn form_request(path: &str, form: &str) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(form.to_owned())
}

fn version_of(a: &Value) -> i64 {
    a["version"].as_i64().expect("a version")
}

/// A 303 to `path?done=<done>`; the page it leads to.
fn assert_done(res: &TestResponse, path: &str, done: &str) -> String {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text());
    assert_private_headers(res, "the redirect after an action");
    let location = res.header("location").expect("a Location");
    assert_eq!(location, format!("{path}?done={done}"));
    location
}

// ---- the visit page and its actions -------------------------------------------------

#[actix_web::test]
async fn the_visit_page_shows_when_in_the_patients_zone_what_its_state_and_the_actions() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let res = c.get(&path).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_private_page(&res, "the visit page");
    let html = common::unescape_html(&res.text());
    for expected in [
        "<dd>Wednesday, January 13, 2027 at 11:00 AM EST (America/New_York)</dd>",
        "<dd>Consultation with Dr. Ana Ruiz</dd>",
        "<dd>100 Lake St, Chicago</dd>",
        "<dd>Booked</dd>",
        &format!("<form method=\"post\" action=\"{path}/confirm\">"),
        &format!("href=\"{path}/reschedule\""),
        &format!("href=\"{path}/cancel\""),
        "Changes are possible online until Tuesday, January 12, 2027 at 11:00 AM EST (America/New_York)",
    ] {
        assert!(html.contains(expected), "expected {expected:?} in\n{html}");
    }
    assert_eq!(hidden(&html, "version"), Some(version_of(&a).to_string()));
    assert_eq!(
        version_of(&c.appointment(&a).await),
        version_of(&a),
        "a GET changes nothing"
    );
}

#[actix_web::test]
async fn confirming_records_the_patients_word_in_the_visit_and_its_history() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let version = hidden(&c.page(&path).await, "version").expect("the confirm form's version");
    let res = c
        .post_form(&format!("{path}/confirm"), &format!("version={version}"))
        .await;
    let location = assert_done(&res, &path, "confirmed");
    let html = c.page(&location).await;
    assert!(
        html.contains("Thank you. We have noted that you will come.")
            && html.contains("Booked; you confirmed you will come"),
        "{html}"
    );
    assert!(!html.contains("/confirm\""), "no second confirmation: {html}");

    let now = c.appointment(&a).await;
    assert_eq!(now["status"], "booked");
    assert_eq!(version_of(&now), version_of(&a) + 1);
    let at: DateTime<Utc> = now["patient_confirmed_at"]
        .as_str()
        .unwrap_or_else(|| panic!("patient_confirmed_at is set: {now}"))
        .parse()
        .expect("an instant");
    assert_eq!(at, c.now());
    let history = c.history(&a).await;
    let entry = history
        .iter()
        .find(|h| h["action"] == "patient_confirmed")
        .unwrap_or_else(|| panic!("no patient_confirmed entry: {history:?}"));
    assert_eq!(entry["actor_type"], "patient_link", "{entry}");
    assert_eq!(
        entry["actor_link"],
        format!("appointment:{}", a["id"].as_str().expect("id")),
        "{entry}"
    );
    assert!(entry["actor_token_id"].is_null(), "{entry}");
}

#[actix_web::test]
async fn rescheduling_to_an_offered_time_moves_the_visit_and_plans_the_update_email() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let res = c.get(&format!("{path}/reschedule")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_private_page(&res, "the reschedule page");
    let html = common::unescape_html(&res.text());
    assert!(html.contains("Times are shown in America/New York."), "{html}");
    let offered = slots(&html);
    assert!(!offered.is_empty(), "{html}");
    for value in &offered {
        let (provider, start) = slot_parts(value);
        assert_eq!(provider, c.provider, "the same provider by default");
        assert!(start >= c.now() && start < c.now() + Duration::days(28), "{start}");
        assert_ne!(start, chicago(2027, 1, 13, 10, 0), "not where it is");
    }
    // Tuesday 5 January at 09:00 in Chicago: another day, 10:00 for the patient.
    let target = chicago(2027, 1, 5, 9, 0);
    let chosen = slot_value(&c.provider, target);
    assert!(offered.contains(&chosen), "{offered:?}");
    assert!(
        html.contains(&format!("value=\"{chosen}\" required> 10:00 AM</label>")),
        "labelled in her zone: {html}"
    );
    let version = hidden(&html, "version").expect("version");
    let res = c
        .post_form(
            &format!("{path}/reschedule"),
            &format!("version={version}&slot={chosen}"),
        )
        .await;
    let location = assert_done(&res, &path, "rescheduled");
    let page = c.page(&location).await;
    assert!(
        page.contains("Your appointment has moved.")
            && page.contains("Tuesday, January 5, 2027 at 10:00 AM EST (America/New_York)"),
        "{page}"
    );

    let moved = c.appointment(&a).await;
    let start: DateTime<Utc> = moved["start"].as_str().expect("start").parse().expect("instant");
    assert_eq!(start, target);
    assert_eq!(moved["status"], "booked");
    assert_eq!(version_of(&moved), version_of(&a) + 1);
    let id = a["id"].as_str().expect("id");
    let updates = c.emails("appointment_update", id).await;
    assert_eq!(updates.len(), 1, "the update email is planned: {updates:?}");
    assert_eq!(updates[0]["state"], "pending", "{updates:?}");
    let history = c.history(&a).await;
    assert!(
        history
            .iter()
            .any(|h| h["action"] == "rescheduled" && h["actor_type"] == "patient_link"),
        "{history:?}"
    );
}

#[actix_web::test]
async fn cancelling_with_a_reason_cancels_and_plans_the_cancellation_email() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let res = c.get(&format!("{path}/cancel")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_private_page(&res, "the cancel page");
    let html = common::unescape_html(&res.text());
    assert!(
        html.contains("Cancel this appointment?") && html.contains(&format!("action=\"{path}/cancel\"")),
        "{html}"
    );
    assert_eq!(
        version_of(&c.appointment(&a).await),
        version_of(&a),
        "asking changes nothing"
    );
    let version = hidden(&html, "version").expect("version");
    let res = c
        .post_form(
            &format!("{path}/cancel"),
            &format!("version={version}&reason=I+am+away+that+week"),
        )
        .await;
    let location = assert_done(&res, &path, "cancelled");
    let page = c.page(&location).await;
    assert!(
        page.contains("Your appointment is cancelled.") && page.contains("This appointment is cancelled."),
        "{page}"
    );
    let cancelled = c.appointment(&a).await;
    assert_eq!(cancelled["status"], "cancelled");
    let reason = cancelled["cancel_reason"].as_str().expect("a reason");
    assert!(reason.contains("I am away that week"), "{reason}");
    let id = a["id"].as_str().expect("id");
    assert_eq!(
        c.emails("appointment_cancellation", id).await.len(),
        1,
        "the cancellation email is planned"
    );
}

#[actix_web::test]
async fn within_the_cutoff_the_page_offers_only_the_phone_and_actions_are_refused() {
    let c = clinic().await;
    let start = chicago(2027, 1, 6, 10, 0);
    let a = c.book("consultation", start).await;
    let path = c.visit_path(&a);
    let version = version_of(&a);
    // One minute before the cut-off, everything is open.
    c.app.clock.set(start - Duration::hours(24) - Duration::minutes(1));
    let html = c.page(&path).await;
    assert!(html.contains(&format!("{path}/confirm")), "{html}");

    c.app.clock.set(start - Duration::hours(24) + Duration::minutes(1));
    let res = c.get(&path).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_private_page(&res, "the visit page within the cut-off");
    let html = common::unescape_html(&res.text());
    assert!(
        html.contains("It is too close to the appointment to change it online."),
        "{html}"
    );
    assert!(
        !html.contains("<form") && !html.contains(&format!("{path}/")),
        "no action is offered: {html}"
    );
    for (res, what) in [
        (c.get(&format!("{path}/reschedule")).await, "GET reschedule"),
        (c.get(&format!("{path}/cancel")).await, "GET cancel"),
        (
            c.post_form(&format!("{path}/confirm"), &format!("version={version}"))
                .await,
            "POST confirm",
        ),
        (
            c.post_form(
                &format!("{path}/reschedule"),
                &format!(
                    "version={version}&slot={}",
                    slot_value(&c.provider, chicago(2027, 1, 8, 10, 0))
                ),
            )
            .await,
            "POST reschedule",
        ),
        (
            c.post_form(&format!("{path}/cancel"), &format!("version={version}"))
                .await,
            "POST cancel",
        ),
    ] {
        assert_refused(&res, 403, "Please call us to change this appointment", what);
    }
    let now = c.appointment(&a).await;
    assert_eq!((version_of(&now), now["status"].as_str()), (version, Some("booked")));
}

#[actix_web::test]
async fn a_type_the_clinic_does_not_offer_is_phone_only() {
    let c = clinic().await;
    c.settings(|s| s["enabled_appointment_types"] = json!(["follow_up", "refill"]))
        .await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let html = c.page(&path).await;
    assert!(
        html.contains("This appointment can only be changed by phone.") && html.contains(PHONE),
        "{html}"
    );
    assert!(!html.contains("<form"), "{html}");
    let res = c
        .post_form(&format!("{path}/confirm"), &format!("version={}", version_of(&a)))
        .await;
    assert_refused(&res, 403, "Please call us", "confirming a type not offered");
    let res = c.get(&format!("{path}/reschedule")).await;
    assert_refused(&res, 403, "Please call us", "rescheduling a type not offered");
    // A procedure is not offered by default.
    let trial = c.book("trial", chicago(2027, 1, 20, 9, 0)).await;
    let html = c.page(&c.visit_path(&trial)).await;
    assert!(
        html.contains("This appointment can only be changed by phone."),
        "{html}"
    );
    assert_eq!(version_of(&c.appointment(&a).await), version_of(&a));
}

#[actix_web::test]
async fn when_patients_may_not_cancel_the_page_does_not_offer_it_and_a_post_is_refused() {
    let c = clinic().await;
    c.settings(|s| s["patients_may_cancel"] = json!(false)).await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let html = c.page(&path).await;
    assert!(
        html.contains(&format!("{path}/confirm")) && html.contains(&format!("{path}/reschedule")),
        "{html}"
    );
    assert!(!html.contains(&format!("{path}/cancel")), "{html}");
    assert_refused(
        &c.get(&format!("{path}/cancel")).await,
        403,
        "Please call us",
        "GET cancel",
    );
    let res = c
        .post_form(
            &format!("{path}/cancel"),
            &format!("version={}&reason=away", version_of(&a)),
        )
        .await;
    assert_refused(&res, 403, "Please call us", "POST cancel");
    let now = c.appointment(&a).await;
    assert_eq!(now["status"], "booked");
    assert_eq!(version_of(&now), version_of(&a));
}

#[actix_web::test]
async fn a_tampered_or_made_up_link_is_a_404_page_with_the_clinics_phone() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let token = path.trim_start_matches("/my/appointments/").to_owned();
    let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .expect("base64");
    raw[7] ^= 1;
    let tampered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
    let (pump, _) = c.refill_pump("NGP900001H").await;
    let refill = c.refill_path(&pump);
    let refill_token = refill.trim_start_matches("/my/book/");
    let version = version_of(&a);
    for (res, what) in [
        (c.get(&format!("/my/appointments/{tampered}")).await, "tampered visit"),
        (
            c.get(&format!("/my/appointments/{tampered}/reschedule")).await,
            "tampered reschedule",
        ),
        (
            c.post_form(
                &format!("/my/appointments/{tampered}/confirm"),
                &format!("version={version}"),
            )
            .await,
            "tampered confirm",
        ),
        (
            c.post_form(
                &format!("/my/appointments/{tampered}/cancel"),
                &format!("version={version}"),
            )
            .await,
            "tampered cancel",
        ),
        (c.get("/my/appointments/AAAA").await, "made up"),
        (
            c.get(&format!("/my/appointments/{refill_token}")).await,
            "a refill link as a visit link",
        ),
        (
            c.get(&format!("/my/book/{token}")).await,
            "a visit link as a refill link",
        ),
        (
            c.get(&format!("/my/book/{}", tamper_last(refill_token))).await,
            "tampered refill link",
        ),
    ] {
        assert_refused(&res, 404, "This link does not work", what);
    }
    let now = c.appointment(&a).await;
    assert_eq!((version_of(&now), now["status"].as_str()), (version, Some("booked")));
    assert!(c.appointments_of_type("refill").await.is_empty());
}

#[actix_web::test]
async fn a_stale_form_is_a_409_that_changes_nothing() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let old = hidden(&c.page(&format!("{path}/cancel")).await, "version").expect("version");
    // Another tab confirms meanwhile.
    let res = c.post_form(&format!("{path}/confirm"), &format!("version={old}")).await;
    assert_done(&res, &path, "confirmed");
    let after = c.appointment(&a).await;
    for (form, what) in [
        (format!("version={old}&reason=away"), "the old version"),
        ("reason=away".to_owned(), "no version"),
        ("version=x&reason=away".to_owned(), "a broken version"),
    ] {
        let res = c.post_form(&format!("{path}/cancel"), &form).await;
        assert_refused(&res, 409, "This appointment has changed", what);
    }
    let res = c
        .post_form(
            &format!("{path}/reschedule"),
            &format!(
                "version={old}&slot={}",
                slot_value(&c.provider, chicago(2027, 1, 5, 9, 0))
            ),
        )
        .await;
    assert_refused(&res, 409, "This appointment has changed", "a stale reschedule");
    let now = c.appointment(&a).await;
    assert_eq!(now, after, "nothing changed");
    let id = a["id"].as_str().expect("id");
    assert!(c.emails("appointment_cancellation", id).await.is_empty());
    assert!(c.emails("appointment_update", id).await.is_empty());
}

#[actix_web::test]
async fn no_time_chosen_is_422_and_a_time_not_offered_is_409_and_neither_changes_anything() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let version = version_of(&a);
    for form in [
        format!("version={version}"),
        format!("version={version}&slot="),
        format!("version={version}&slot=tomorrow"),
        format!("version={version}&slot={}_x", c.provider),
    ] {
        let res = c.post_form(&format!("{path}/reschedule"), &form).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {}", res.text());
        assert_private_page(&res, "no time chosen");
        let html = common::unescape_html(&res.text());
        assert!(
            html.contains("Please choose one of the times.") && !slots(&html).is_empty(),
            "the page again, with its times: {html}"
        );
    }
    let other = uuid::Uuid::now_v7().to_string();
    for (value, what) in [
        (slot_value(&c.provider, chicago(2027, 1, 9, 10, 0)), "a Saturday"),
        (slot_value(&c.provider, chicago(2027, 1, 7, 3, 0)), "outside hours"),
        (slot_value(&c.provider, chicago(2027, 1, 7, 9, 7)), "off the grid"),
        (slot_value(&c.provider, chicago(2027, 1, 4, 8, 0)), "in the past"),
        (
            slot_value(&c.provider, chicago(2027, 2, 15, 10, 0)),
            "beyond four weeks",
        ),
        (slot_value(&other, chicago(2027, 1, 7, 10, 0)), "another provider"),
    ] {
        let res = c
            .post_form(
                &format!("{path}/reschedule"),
                &format!("version={version}&slot={value}"),
            )
            .await;
        assert_refused(&res, 409, "That time is no longer free", what);
    }
    let now = c.appointment(&a).await;
    assert_eq!(version_of(&now), version);
    assert_eq!(now["start"], a["start"]);
    assert!(c
        .emails("appointment_update", a["id"].as_str().expect("id"))
        .await
        .is_empty());
}

// ---- links follow their visit and expire ----------------------------------------------

#[actix_web::test]
async fn an_old_link_follows_the_visit_and_lives_until_the_end_of_its_new_day() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    // Staff move it to Friday 15 January; the link in the first email shows it there.
    let res = c.staff_reschedule(&a, chicago(2027, 1, 15, 14, 0)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let html = c.page(&path).await;
    assert!(
        html.contains("Friday, January 15, 2027 at 3:00 PM EST (America/New_York)"),
        "{html}"
    );
    // The patient moves it again from the same link, to Tuesday 5 January.
    let version = hidden(&c.page(&format!("{path}/reschedule")).await, "version").expect("version");
    let target = chicago(2027, 1, 5, 15, 0);
    let res = c
        .post_form(
            &format!("{path}/reschedule"),
            &format!("version={version}&slot={}", slot_value(&c.provider, target)),
        )
        .await;
    assert_done(&res, &path, "rescheduled");
    let html = c.page(&path).await;
    assert!(
        html.contains("Tuesday, January 5, 2027 at 4:00 PM EST (America/New_York)"),
        "{html}"
    );
    // It lives until the end of the visit's new day, not its first one.
    c.app.clock.set(end_of_day(date(2027, 1, 5)) - Duration::seconds(1));
    let html = c.page(&path).await;
    assert!(html.contains("The time of this appointment has passed."), "{html}");
    c.app.clock.set(end_of_day(date(2027, 1, 5)));
    assert_refused(&c.get(&path).await, 410, "This link has expired", "after the new day");
}

#[actix_web::test]
async fn a_cancelled_visits_link_says_so_and_a_cancelled_refill_offers_booking_again() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    c.staff_cancel(&a).await;
    let res = c.get(&c.visit_path(&a)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_private_page(&res, "a cancelled visit");
    let html = common::unescape_html(&res.text());
    assert!(
        html.contains("This appointment is cancelled.") && html.contains("<dd>Cancelled</dd>"),
        "{html}"
    );
    assert!(!html.contains("<form") && !html.contains("/my/book/"), "{html}");

    let (_pump, due) = c.refill_pump("NGP900001H").await;
    let first = c.book("refill", on(weekday_by(due - Duration::days(2)), 9, 0)).await;
    let path = c.visit_path(&first);
    let version = hidden(&c.page(&format!("{path}/cancel")).await, "version").expect("version");
    let res = c
        .post_form(&format!("{path}/cancel"), &format!("version={version}"))
        .await;
    let location = assert_done(&res, &path, "cancelled");
    let html = c.page(&location).await;
    assert!(html.contains("This appointment is cancelled."), "{html}");
    let book = values_after(&html, "href=\"/my/book/");
    assert_eq!(book.len(), 1, "a booking link: {html}");
    let booking = c.page(&format!("/my/book/{}", book[0])).await;
    assert!(
        booking.contains("Book your next visit") && !slots(&booking).is_empty(),
        "{booking}"
    );

    // Once the pump has another visit, the cancelled one offers only the phone.
    c.book("refill", on(weekday_by(due - Duration::days(1)), 9, 0)).await;
    let html = c.page(&path).await;
    assert!(
        html.contains("This appointment is cancelled.") && !html.contains("/my/book/"),
        "{html}"
    );
}

#[actix_web::test]
async fn a_visit_link_expires_at_the_end_of_the_visits_day() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    c.app.clock.set(end_of_day(date(2027, 1, 13)) - Duration::seconds(1));
    c.page(&path).await;
    c.app.clock.set(end_of_day(date(2027, 1, 13)));
    assert_refused(&c.get(&path).await, 410, "This link has expired", "GET the visit");
    assert_refused(
        &c.get(&format!("{path}/reschedule")).await,
        410,
        "This link has expired",
        "GET reschedule",
    );
    assert_refused(
        &c.post_form(&format!("{path}/confirm"), &format!("version={}", version_of(&a)))
            .await,
        410,
        "This link has expired",
        "POST confirm",
    );
}

#[actix_web::test]
async fn a_refill_link_expires_after_the_due_date_and_after_a_new_fill() {
    let c = clinic().await;
    let (pump, due) = c.refill_pump("NGP900001H").await;
    let path = c.refill_path(&pump);
    c.page(&path).await;
    c.app.clock.set(end_of_day(due) - Duration::seconds(1));
    c.page(&path).await;
    c.app.clock.set(end_of_day(due));
    assert_refused(&c.get(&path).await, 410, "This link has expired", "after the due date");
    assert_refused(
        &c.post_form(&path, &format!("slot={}", slot_value(&c.provider, on(due, 10, 0))))
            .await,
        410,
        "This link has expired",
        "booking after the due date",
    );

    // A new fill ends the episode the link was about, before its due date.
    c.app.clock.set(chicago(2027, 1, 6, 12, 0));
    c.page(&path).await;
    c.fill(&pump, chicago(2027, 1, 6, 11, 0)).await;
    assert_refused(
        &c.get(&path).await,
        410,
        "Nothing to book with this link",
        "after a new fill",
    );
    // The next reminder's link (the new episode) works.
    c.page(&c.refill_path(&pump)).await;
    assert!(c.appointments_of_type("refill").await.is_empty());
}

#[actix_web::test]
async fn revoked_links_are_gone_and_new_ones_work() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let (pump, _) = c.refill_pump("NGP900001H").await;
    let (visit, refill) = (c.visit_path(&a), c.refill_path(&pump));
    c.page(&visit).await;
    c.page(&refill).await;
    {
        let mut conn = clinic_store::pool::get(&c.app.pool).expect("connection");
        let patient: PatientId = c.patient.parse().expect("patient id");
        let generation =
            patient_links::revoke_all(&mut conn, &clinic_patients::audit::Actor::system(), patient, c.now())
                .expect("revoke");
        assert_eq!(generation, 1);
    }
    for (res, what) in [
        (c.get(&visit).await, "the visit"),
        (
            c.post_form(&format!("{visit}/confirm"), &format!("version={}", version_of(&a)))
                .await,
            "confirming",
        ),
        (c.get(&refill).await, "the refill"),
    ] {
        assert_refused(&res, 410, "This link is no longer active", what);
    }
    assert!(c.appointment(&a).await["patient_confirmed_at"].is_null());
    c.page(&c.visit_path(&a)).await;
    c.page(&c.refill_path(&pump)).await;
}

// ---- refill booking ---------------------------------------------------------------------

#[actix_web::test]
async fn a_refill_link_never_offers_or_accepts_a_time_after_the_due_date() {
    let c = clinic().await;
    let (pump, due) = c.refill_pump("NGP900001H").await;
    let path = c.refill_path(&pump);
    // The morning of the due date: what is left of it is all there is.
    c.app.clock.set(on(due, 7, 0));
    let res = c.get(&path).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_private_page(&res, "the booking page");
    let html = common::unescape_html(&res.text());
    assert!(html.contains("Please come in by"), "{html}");
    let offered = slots(&html);
    assert!(!offered.is_empty(), "{html}");
    for value in &offered {
        let (_, start) = slot_parts(value);
        assert!(
            start >= c.now() && start < end_of_day(due),
            "{start} is after the due date {due}"
        );
    }
    assert!(
        offered.iter().any(|v| chicago_date(slot_parts(v).1) == due),
        "times on the due date itself"
    );
    // The next weekday is open to staff, but not to the link.
    let after = (1..5)
        .map(|i| due + Duration::days(i))
        .find(|d| is_weekday(*d))
        .expect("a weekday after the due date");
    let late = on(after, 10, 0);
    let free = c
        .app
        .get(
            &format!(
                "/api/v1/availability?provider_id={}&appointment_type=refill&from={}&to={}",
                c.provider,
                on(after, 0, 0).to_rfc3339().replace('+', "%2B"),
                end_of_day(after).to_rfc3339().replace('+', "%2B"),
            ),
            &c.app.admin,
        )
        .await;
    assert_eq!(free.status, StatusCode::OK, "{}", free.text());
    let staff_slots: Vec<DateTime<Utc>> = free.json()["items"][0]["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["start"].as_str().expect("start").parse().expect("an instant"))
        .collect();
    assert!(staff_slots.contains(&late), "{late} is free for staff: {staff_slots:?}");
    let res = c
        .post_form(&path, &format!("slot={}", slot_value(&c.provider, late)))
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text());
    assert_private_page(&res, "a time after the due date");
    assert!(
        common::unescape_html(&res.text()).contains("That time was just taken. Please choose another."),
        "{}",
        res.text()
    );
    assert!(c.appointments_of_type("refill").await.is_empty(), "nothing booked");

    // A time it offers (the last) books a refill visit, with its confirmation email.
    let chosen = offered.last().expect("a time").clone();
    let res = c.post_form(&path, &format!("slot={chosen}")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text());
    assert_private_headers(&res, "the redirect after booking");
    let location = res.header("location").expect("a Location");
    assert!(
        location.starts_with("/my/appointments/") && location.ends_with("?done=booked"),
        "{location}"
    );
    let html = c.page(&location).await;
    assert!(
        html.contains("Your visit is booked. We have emailed you the details.")
            && html.contains("<dd>Appointment with Dr. Ana Ruiz</dd>"),
        "{html}"
    );
    let booked = c.appointments_of_type("refill").await;
    assert_eq!(booked.len(), 1, "{booked:?}");
    let start: DateTime<Utc> = booked[0]["start"].as_str().expect("start").parse().expect("instant");
    assert_eq!(start, slot_parts(&chosen).1);
    assert_eq!(booked[0]["status"], "booked");
    let id = booked[0]["id"].as_str().expect("id");
    assert_eq!(c.emails("appointment_confirmation", id).await.len(), 1);
    let history = c.history(&booked[0]).await;
    assert!(
        history.iter().any(|h| h["action"] == "booked"
            && h["actor_type"] == "patient_link"
            && h["actor_link"] == format!("refill:{pump}")),
        "{history:?}"
    );
    // The booking page now shows the visit, not times.
    let html = c.page(&path).await;
    assert!(
        html.contains("Your visit is booked") && slots(&html).is_empty(),
        "{html}"
    );
    let manage = location.trim_end_matches("?done=booked");
    assert!(html.contains(&format!("href=\"{manage}\"")), "{html}");

    // Its reschedule page keeps to the due date too: the day before, outside the cut-off.
    c.app.clock.set(start - Duration::hours(25));
    let html = c.page(&format!("{manage}/reschedule")).await;
    let offered = slots(&html);
    assert!(
        offered.iter().any(|v| chicago_date(slot_parts(v).1) == due),
        "{offered:?}"
    );
    for value in &offered {
        assert!(slot_parts(value).1 < end_of_day(due), "{value}");
    }
    let version = hidden(&html, "version").expect("version");
    let res = c
        .post_form(
            &format!("{manage}/reschedule"),
            &format!("version={version}&slot={}", slot_value(&c.provider, late)),
        )
        .await;
    assert_refused(
        &res,
        409,
        "That time is no longer free",
        "moving a refill past its due date",
    );
    assert_eq!(c.appointments_of_type("refill").await[0]["start"], booked[0]["start"]);
}

#[actix_web::test]
async fn two_tabs_booking_two_times_book_one_visit() {
    let c = clinic().await;
    let (pump, due) = c.refill_pump("NGP900001H").await;
    let path = c.refill_path(&pump);
    c.app.clock.set(on(due - Duration::days(3), 12, 0));
    let offered = slots(&c.page(&path).await);
    assert!(offered.len() >= 4, "{offered:?}");
    // At once.
    let (first, second) = futures_util::future::join(
        c.app.send(form_request(&path, &format!("slot={}", offered[0]))),
        c.app.send(form_request(&path, &format!("slot={}", offered[1]))),
    )
    .await;
    let statuses = BTreeSet::from([first.status.as_u16(), second.status.as_u16()]);
    assert_eq!(
        statuses,
        BTreeSet::from([303, 409]),
        "{} / {}",
        first.text(),
        second.text()
    );
    let refused = if first.status == StatusCode::CONFLICT {
        &first
    } else {
        &second
    };
    let html = common::unescape_html(&refused.text());
    assert!(html.contains("Your visit is booked"), "the booked page: {html}");
    assert_eq!(c.appointments_of_type("refill").await.len(), 1);
    // One after the other.
    let res = c.post_form(&path, &format!("slot={}", offered[3])).await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text());
    assert!(common::unescape_html(&res.text()).contains("Your visit is booked"));
    assert_eq!(c.appointments_of_type("refill").await.len(), 1);
    // No time chosen.
    let res = c.post_form(&path, "").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text());
    assert_private_page(&res, "booking without a time");
}

#[actix_web::test]
async fn a_refill_cancelled_by_the_patient_with_nothing_else_booked_reaches_outreach() {
    let c = clinic().await;
    let (pump, due) = c.refill_pump("NGP900001H").await;
    let a = c.book("refill", on(weekday_by(due - Duration::days(2)), 9, 0)).await;
    assert!(
        c.outreach().await.iter().all(|e| e["reason"] != "cancelled_by_patient"),
        "nothing before"
    );
    let path = c.visit_path(&a);
    let version = hidden(&c.page(&format!("{path}/cancel")).await, "version").expect("version");
    let res = c
        .post_form(
            &format!("{path}/cancel"),
            &format!("version={version}&reason=car+broke+down"),
        )
        .await;
    assert_done(&res, &path, "cancelled");
    let entries = c.outreach().await;
    let entry = entries
        .iter()
        .find(|e| e["reason"] == "cancelled_by_patient")
        .unwrap_or_else(|| panic!("no cancelled_by_patient entry: {entries:?}"));
    assert_eq!(entry["subject_type"], "pump", "{entry}");
    assert_eq!(entry["subject_id"], pump.as_str(), "{entry}");
    assert_eq!(entry["patient_id"], c.patient.as_str(), "{entry}");
    assert!(entry["done_at"].is_null(), "open: {entry}");
}

// ---- concurrency with staff -------------------------------------------------------------

#[actix_web::test]
async fn staff_moving_the_visit_after_the_page_was_shown_makes_the_patients_form_stale() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    let html = c.page(&format!("{path}/reschedule")).await;
    let version = hidden(&html, "version").expect("version");
    let mine = slots(&html)[0].clone();
    let staff_time = chicago(2027, 1, 14, 9, 0);
    let res = c.staff_reschedule(&a, staff_time).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = c
        .post_form(&format!("{path}/reschedule"), &format!("version={version}&slot={mine}"))
        .await;
    assert_refused(&res, 409, "This appointment has changed", "the patient's stale form");
    assert!(
        common::unescape_html(&res.text()).contains("Please open the link again to see it as it is now."),
        "{}",
        res.text()
    );
    let now = c.appointment(&a).await;
    let start: DateTime<Utc> = now["start"].as_str().expect("start").parse().expect("instant");
    assert_eq!(start, staff_time, "the staff's change stands");
    assert_eq!(version_of(&now), version_of(&a) + 1, "one change");
}

#[actix_web::test]
async fn a_patient_and_staff_rescheduling_at_once_exactly_one_change_wins() {
    let c = clinic().await;
    for round in 0..3 {
        let a = c.book("consultation", chicago(2027, 1, 13 + round, 10, 0)).await;
        let path = c.visit_path(&a);
        let html = c.page(&format!("{path}/reschedule")).await;
        let version = hidden(&html, "version").expect("version");
        let mine = slots(&html)[0].clone();
        // Staff send the version their screen showed, as the patient's form does.
        let staff_time = chicago(2027, 1, 20 + round, 9, 0);
        let id = a["id"].as_str().expect("id");
        let patient_post = form_request(&format!("{path}/reschedule"), &format!("version={version}&slot={mine}"));
        let staff_post = TestRequest::post()
            .uri(&format!("/api/v1/appointments/{id}/reschedule"))
            .insert_header(("authorization", format!("Bearer {}", c.app.admin)))
            .set_json(json!({"start": staff_time.to_rfc3339(), "version": version_of(&a)}));
        // Each order of polling, so that either may reach the database first.
        let (patient, staff) = if round % 2 == 0 {
            futures_util::future::join(c.app.send(patient_post), c.app.send(staff_post)).await
        } else {
            let (s, p) = futures_util::future::join(c.app.send(staff_post), c.app.send(patient_post)).await;
            (p, s)
        };
        let patient_won = patient.status == StatusCode::SEE_OTHER;
        let staff_won = staff.status == StatusCode::OK;
        assert!(
            patient_won != staff_won,
            "exactly one wins: patient {} {}, staff {} {}",
            patient.status,
            patient.text(),
            staff.status,
            staff.text()
        );
        let now = c.appointment(&a).await;
        assert_eq!(version_of(&now), version_of(&a) + 1, "one change");
        let start: DateTime<Utc> = now["start"].as_str().expect("start").parse().expect("instant");
        let moves: Vec<Value> = c
            .history(&a)
            .await
            .into_iter()
            .filter(|h| h["action"] == "rescheduled")
            .collect();
        assert_eq!(moves.len(), 1, "{moves:?}");
        if patient_won {
            assert_eq!(start, slot_parts(&mine).1);
            assert_eq!(moves[0]["actor_type"], "patient_link");
            staff.problem(409, "version_conflict");
        } else {
            assert_eq!(start, staff_time);
            assert_eq!(moves[0]["actor_type"], "token");
            assert_refused(&patient, 409, "This appointment has changed", "the patient who lost");
            assert!(
                common::unescape_html(&patient.text()).contains("Please open the link again to see it as it is now."),
                "{}",
                patient.text()
            );
        }
    }
}

// ---- the emails' links, followed by a mail scanner ----------------------------------------

/// Every appointment's version and every outbox row's state, read without an audit event.
fn versions_and_outbox(app: &TestApp) -> (BTreeMap<String, i64>, BTreeMap<String, String>) {
    use clinic_store::schema::{appointments, outbox};
    let mut pooled = clinic_store::pool::get(&app.pool).expect("connection");
    let conn: &mut clinic_store::DbConnection = &mut pooled;
    let versions: Vec<(String, i64)> = appointments::table
        .select((appointments::id, appointments::version))
        .load(conn)
        .expect("appointments");
    let rows: Vec<(String, String)> = outbox::table
        .select((outbox::id, outbox::state))
        .load(conn)
        .expect("outbox");
    (versions.into_iter().collect(), rows.into_iter().collect())
}

fn newest_audit_id(app: &TestApp) -> i64 {
    let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
    let (events, _) = clinic_patients::audit::list(&mut conn, &Default::default(), 1).expect("audit");
    events.first().map_or(0, |e| e.id)
}

fn audit_actions_after(app: &TestApp, id: i64) -> Vec<String> {
    let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
    let (events, _) = clinic_patients::audit::list(&mut conn, &Default::default(), 1000).expect("audit");
    events.into_iter().filter(|e| e.id > id).map(|e| e.action).collect()
}

/// The decoded text and HTML parts of a raw email.
fn text_parts(raw: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let lower = raw.to_ascii_lowercase();
    for (at, _) in lower.match_indices("content-type: text/") {
        let Some(head_end) = raw[at..].find("\r\n\r\n").map(|i| at + i) else {
            continue;
        };
        let head = lower[at..head_end].to_owned();
        if !(head.starts_with("content-type: text/plain") || head.starts_with("content-type: text/html")) {
            continue;
        }
        let body_start = head_end + 4;
        let body_end = raw[body_start..].find("\r\n--").map_or(raw.len(), |i| body_start + i);
        let body = &raw[body_start..body_end];
        let decoded = if head.contains("content-transfer-encoding: base64") {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("a base64 part");
            String::from_utf8(bytes).expect("a UTF-8 part")
        } else if head.contains("content-transfer-encoding: quoted-printable") {
            quoted_printable(body)
        } else {
            body.to_owned()
        };
        parts.push(decoded);
    }
    parts
}

fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("a UTF-8 part")
}

/// Every URL of our origin in `text`.
fn our_urls(text: &str) -> Vec<String> {
    text.match_indices(ORIGIN)
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '<' | '>' | '\'' | ')'))
                .collect()
        })
        .collect()
}

#[actix_web::test]
async fn following_every_link_of_the_real_emails_with_gets_changes_nothing() {
    let mut c = clinic().await;
    // A mail scanner opens many links; the limits are not under test here.
    c.app.state_mut().self_service_limits = Arc::new(SelfServiceLimits::new(10_000, 10_000));
    let (mailer, sent): (Mailer, Arc<Mutex<Vec<Delivered>>>) = Mailer::memory();
    let d = Dispatcher::new(
        c.app.pool.clone(),
        mailer,
        c.app.state().composer.clone(),
        DispatchOptions::default(),
    );
    let (pump, due) = c.refill_pump("NGP900001H").await;
    let a = c.book("consultation", chicago(2027, 1, 15, 10, 0)).await;
    // Run the dispatcher as the scheduler would, until the confirmation, the first reminder
    // and the first refill reminder have gone out.
    let kinds = ["appointment_confirmation", "appointment_reminder", "refill_reminder"];
    let id = a["id"].as_str().expect("id");
    let mut at = c.now();
    for _ in 0..(12 * 8) {
        c.app.clock.set(at);
        d.run_once(at).await.expect("a dispatcher run");
        let mut done = true;
        for kind in kinds {
            let subject = if kind == "refill_reminder" { pump.as_str() } else { id };
            done &= c.emails(kind, subject).await.iter().any(|r| r["state"] == "sent");
        }
        if done {
            break;
        }
        at += Duration::hours(3);
    }
    assert!(
        c.now() < chicago(2027, 1, 14, 10, 0) && c.now() < end_of_day(due),
        "all three went out by {}",
        c.now()
    );
    let raws: Vec<String> = sent.lock().expect("sent").iter().map(|m| m.raw.clone()).collect();
    assert!(raws.len() >= 3, "{} emails", raws.len());

    let mut urls: BTreeSet<String> = BTreeSet::new();
    for raw in &raws {
        let parts = text_parts(raw);
        assert!(parts.len() >= 2, "a text and an HTML part: {raw}");
        for part in parts {
            urls.extend(our_urls(&common::unescape_html(&part)));
        }
    }
    assert!(
        urls.iter().any(|u| u.contains("/my/appointments/")) && urls.iter().any(|u| u.contains("/my/book/")),
        "the emails link the visit's page and the booking page: {urls:?}"
    );

    let counts = c.app.row_counts();
    let (versions, outbox) = versions_and_outbox(&c.app);
    let last_event = newest_audit_id(&c.app);
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    for url in &urls {
        let path = url.trim_start_matches(ORIGIN).to_owned();
        if !seen.insert(path.clone()) {
            continue;
        }
        let res = c.get(&path).await;
        assert_eq!(res.status, StatusCode::OK, "GET {url}: {}", res.text());
        pages += 1;
        // One level on: every link on that page to our own site.
        for href in values_after(&common::unescape_html(&res.text()), "href=\"") {
            let next = href.strip_prefix(ORIGIN).unwrap_or(&href).to_owned();
            if !next.starts_with('/') || next.starts_with("//") || !seen.insert(next.clone()) {
                continue;
            }
            let res = c.get(&next).await;
            assert!(
                res.status.is_success(),
                "GET {next} (linked from {path}): {} {}",
                res.status,
                res.text()
            );
            pages += 1;
        }
    }
    assert!(
        seen.iter().any(|p| p.ends_with("/reschedule")) && seen.iter().any(|p| p.ends_with("/cancel")),
        "the crawl reached the action pages: {seen:?}"
    );
    assert!(pages >= 6, "{pages} pages");

    let mut after = c.app.row_counts();
    let mut before = counts.clone();
    assert!(
        after.get("audit_events") > before.get("audit_events"),
        "the reads were audited"
    );
    after.remove("audit_events");
    before.remove("audit_events");
    assert_eq!(after, before, "no table but the audit log changed");
    let added = audit_actions_after(&c.app, last_event);
    assert!(added.iter().all(|a| a.ends_with(".read")), "only reads: {added:?}");
    assert!(
        added.iter().any(|a| a == "appointment.read") && added.iter().any(|a| a == "pump.read"),
        "{added:?}"
    );
    assert_eq!(
        versions_and_outbox(&c.app),
        (versions, outbox),
        "same versions, same outbox"
    );
    let now = c.appointment(&a).await;
    assert!(
        now["status"] == "booked" && now["patient_confirmed_at"].is_null(),
        "{now}"
    );
    let patient = c
        .app
        .get(&format!("/api/v1/patients/{}", c.patient), &c.app.admin)
        .await
        .json();
    assert_eq!(patient["email_consent"], true, "the stop link's GET only asks");
}

// ---- page safety and limits ---------------------------------------------------------------

#[actix_web::test]
async fn every_page_and_refusal_is_private_scriptless_and_says_nothing_clinical() {
    let mut c = clinic().await;
    let (pump, due) = c.refill_pump("NGP900001H").await;
    let refill = c.book("refill", on(weekday_by(due - Duration::days(2)), 9, 0)).await;
    let near = c.book("consultation", chicago(2027, 1, 5, 9, 0)).await;
    let path = c.visit_path(&refill);
    let mut checked: Vec<(TestResponse, &str)> = vec![
        (c.get(&path).await, "the visit page of a refill"),
        (c.get(&format!("{path}/reschedule")).await, "its reschedule page"),
        (c.get(&format!("{path}/cancel")).await, "its cancel page"),
        (c.get(&c.visit_path(&near)).await, "a visit within the cut-off"),
        (c.get("/my/appointments/AAAA").await, "404"),
        (
            c.post_form(&format!("{}/confirm", c.visit_path(&near)), "version=1")
                .await,
            "403",
        ),
        (c.post_form(&format!("{path}/confirm"), "version=99").await, "409"),
        (c.post_form(&format!("{path}/reschedule"), "version=1").await, "422"),
        (
            c.post_form(
                &format!("{path}/cancel"),
                &format!("version=1&reason={}", "x".repeat(501)),
            )
            .await,
            "422 reason too long",
        ),
    ];
    // The booking page of a second pump with nothing booked.
    let (other, _) = c.refill_pump("NGP900002H").await;
    checked.push((c.get(&c.refill_path(&other)).await, "the booking page"));
    // A cancelled refill's page with its booking link, then the 410s.
    let version = version_of(&c.appointment(&refill).await);
    let res = c
        .post_form(&format!("{path}/cancel"), &format!("version={version}"))
        .await;
    assert_private_headers(&res, "303");
    checked.push((c.get(&path).await, "a cancelled refill visit"));
    c.app.clock.set(end_of_day(due));
    checked.push((c.get(&path).await, "410 expired"));
    checked.push((c.get(&c.refill_path(&pump)).await, "410 refill expired"));
    // And 429.
    c.app.state_mut().self_service_limits = Arc::new(SelfServiceLimits::new(1, 1));
    c.get("/my/appointments/AAAA").await;
    checked.push((c.get("/my/appointments/AAAA").await, "429"));

    for (res, what) in &checked {
        assert_private_page(res, what);
        let code = res.status.as_u16();
        match *what {
            "404" | "403" | "409" | "422" | "429" | "410 expired" | "410 refill expired" => {
                let expected: u16 = what[..3].parse().expect("a status");
                assert_eq!(code, expected, "{what}: {}", res.text());
            }
            "422 reason too long" => assert_eq!(code, 422, "{what}: {}", res.text()),
            _ => assert_eq!(code, 200, "{what}: {}", res.text()),
        }
    }
    let html = common::unescape_html(&checked[0].0.text());
    assert!(
        html.contains("<dd>Appointment with Dr. Ana Ruiz</dd>"),
        "a refill is an appointment on the page: {html}"
    );
}

#[actix_web::test]
async fn too_many_requests_is_a_429_page_with_retry_after() {
    let mut c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let path = c.visit_path(&a);
    c.app.state_mut().self_service_limits = Arc::new(SelfServiceLimits::new(2, 2));
    c.page(&path).await;
    c.page(&path).await;
    let res = c.get(&path).await;
    assert_refused(&res, 429, "Please try again in a minute", "the third view");
    assert_eq!(res.header("retry-after").as_deref(), Some("60"));
    let res = c
        .post_form(&format!("{path}/confirm"), &format!("version={}", version_of(&a)))
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text());
    assert!(
        c.appointment(&a).await["patient_confirmed_at"].is_null(),
        "a refused action does nothing"
    );
}

// ---- staff and their tools ---------------------------------------------------------------

#[actix_web::test]
async fn staff_tools_get_the_emails_links_and_revoking_over_the_api_ends_them() {
    let c = clinic().await;
    let a = c.book("consultation", chicago(2027, 1, 13, 10, 0)).await;
    let (pump, due) = c.refill_pump("NGP900002H").await;
    let id = a["id"].as_str().expect("appointment id");
    let scheduler = c.app.token(&["scheduling:write"]);
    let reader = c.app.token(&["patients:read"]);

    // The links staff tools get are the links the emails carry, and open the same pages.
    let visit = c
        .app
        .get(&format!("/api/v1/appointments/{id}/self-service-link"), &scheduler)
        .await;
    assert_eq!(visit.status, StatusCode::OK, "{}", visit.text());
    let visit = visit.json();
    let url = visit["url"].as_str().expect("url");
    let path = url
        .strip_prefix(c.app.state().composer.clinic.public_url.as_str())
        .expect("under the public URL");
    assert_eq!(path, c.visit_path(&a));
    assert_eq!(
        visit["expires_at"],
        json!(end_of_day(date(2027, 1, 13)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    let refill = c
        .app
        .get(&format!("/api/v1/pumps/{pump}/refill-link"), &scheduler)
        .await
        .json();
    let refill_path = refill["url"]
        .as_str()
        .expect("url")
        .strip_prefix(c.app.state().composer.clinic.public_url.as_str())
        .expect("under the public URL")
        .to_owned();
    assert_eq!(refill_path, c.refill_path(&pump));
    assert_eq!(
        refill["expires_at"],
        json!(end_of_day(due).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    c.page(path).await;
    c.page(&refill_path).await;

    // Whoever holds a link can change the visit: reading patients is not enough to get one.
    c.app
        .get(&format!("/api/v1/appointments/{id}/self-service-link"), &reader)
        .await
        .problem(403, "forbidden");
    c.app
        .get(&format!("/api/v1/pumps/{pump}/refill-link"), &reader)
        .await
        .problem(403, "forbidden");
    c.app
        .get("/api/v1/pumps/not-a-pump/refill-link", &scheduler)
        .await
        .problem(404, "not_found");

    // Revoking through the API ends both, and the next links work.
    let writer = c.app.token(&["patients:write"]);
    let res = c
        .app
        .post(
            &format!("/api/v1/patients/{}/revoke-links", c.patient),
            &writer,
            json!({}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["generation"], 1);
    assert_refused(
        &c.get(path).await,
        410,
        "This link is no longer active",
        "the revoked visit link",
    );
    assert_refused(
        &c.get(&refill_path).await,
        410,
        "This link is no longer active",
        "the revoked refill link",
    );
    let fresh = c
        .app
        .get(&format!("/api/v1/appointments/{id}/self-service-link"), &scheduler)
        .await
        .json();
    let fresh_path = fresh["url"]
        .as_str()
        .expect("url")
        .strip_prefix(c.app.state().composer.clinic.public_url.as_str())
        .expect("under the public URL")
        .to_owned();
    assert_ne!(fresh_path, path);
    c.page(&fresh_path).await;
    c.app
        .post(
            "/api/v1/patients/0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10/revoke-links",
            &writer,
            json!({}),
        )
        .await
        .problem(404, "not_found");
}
