//! Every read and write of patient data leaves an audit event, proved per route through the
//! real HTTP layer on both databases.
//!
//! [`AUDITED`] names each operation of the OpenAPI document that reads or writes patient
//! data and the audit actions it must record; [`NOT_PATIENT_DATA`] names every other
//! operation with the reason it holds none. `every_operation_is_classified` fails when an
//! operation is in neither list (a new route must be classified), in both, or when a list
//! names an operation the document no longer has.
//!
//! `every_patient_data_operation_leaves_its_audit_event` builds real fixtures (patients, a
//! provider, appointments, a programmed and filled pump, screenings, public appointment
//! requests, outbox rows, outreach entries), performs each operation of [`AUDITED`]
//! successfully (2xx), and then reads `GET /api/v1/audit-events` for an event that this very
//! call recorded: the expected action, about the record the call concerned (subject type and
//! id), newer than the log's last event before the call, under the calling token and the
//! call's `X-Request-Id` (the stop link, which patients follow without a token, records the
//! system as actor; the self-service pages under `/my/` record the patient's link as actor:
//! `actor_type` `patient_link`, `actor_link` naming the visit or the pump, and the call's
//! `X-Request-Id`). A page's POST succeeds with a 303 to the page that says what was done.
//! Every missing event is reported at once, naming the route.

mod common;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use chrono::{DateTime, Duration, TimeZone, Utc};
use clinic_domain::ids::AppointmentId;
use clinic_reminders::patient_links::LinkSubject;
use common::{TestApp, TestResponse};
use serde_json::{json, Value};

/// Operations that read or write patient data, by operation id, with the audit actions each
/// must record about the record it concerned.
const AUDITED: &[(&str, &[&str])] = &[
    // The patient record.
    ("create_patient", &["patient.create"]),
    ("list_patients", &["patient.list"]),
    ("get_patient", &["patient.read"]),
    ("update_patient", &["patient.update"]),
    ("archive_patient", &["patient.archive"]),
    ("revoke_patient_links", &["patient.links_revoked"]),
    // Self-service links handed to staff tools: whoever holds one can change the visit.
    ("get_appointment_self_service_link", &["appointment.link_issued"]),
    ("get_pump_refill_link", &["pump.link_issued"]),
    // Candidacy screening.
    ("create_screening", &["screening.create"]),
    ("list_screenings", &["screening.list"]),
    // Appointments.
    ("create_appointment", &["appointment.create"]),
    ("list_appointments", &["appointment.list"]),
    ("get_appointment", &["appointment.read"]),
    ("reschedule_appointment", &["appointment.update"]),
    ("cancel_appointment", &["appointment.update"]),
    ("check_in_appointment", &["appointment.update"]),
    ("complete_appointment", &["appointment.update"]),
    ("mark_no_show_appointment", &["appointment.update"]),
    ("list_appointment_history", &["appointment.read"]),
    ("get_appointment_ics", &["appointment.read"]),
    // Public appointment requests, as staff handle them (names and contact details).
    ("list_appointment_requests", &["appointment_request.list"]),
    ("get_appointment_request", &["appointment_request.read"]),
    ("confirm_appointment_request", &["patient.create", "appointment.create"]),
    ("decline_appointment_request", &["appointment_request.decline"]),
    // Pumps.
    ("create_pump", &["pump.create"]),
    ("list_pumps", &["pump.list"]),
    ("list_patient_pumps", &["pump.list"]),
    ("get_pump", &["pump.read"]),
    ("update_pump", &["pump.update"]),
    ("create_fill", &["pump.fill"]),
    ("list_fills", &["pump.fills"]),
    ("create_program", &["pump.program"]),
    ("list_programs", &["pump.programs"]),
    ("get_pump_forecast", &["pump.read"]),
    ("get_pump_forecast_svg", &["pump.read"]),
    ("list_refill_slots", &["pump.read"]),
    ("list_refill_worklist", &["pump.worklist"]),
    // The email outbox, previews for a named patient, the outreach list, the stop link.
    ("list_reminders", &["reminder.list"]),
    ("get_reminder", &["reminder.read"]),
    ("retry_reminder", &["reminder.retry"]),
    ("void_reminder", &["reminder.void"]),
    ("preview_email", &["patient.read"]),
    ("list_outreach", &["outreach.list"]),
    ("mark_outreach_done", &["outreach.done"]),
    ("email_stop", &["patient.email_consent_withdrawn"]),
    // The patients' self-service pages: the link in their email acts (no token).
    ("appointment_page", &["appointment.read"]),
    ("reschedule_appointment_page", &["appointment.read"]),
    ("cancel_appointment_page", &["appointment.read"]),
    ("confirm_appointment_page", &["appointment.confirm"]),
    ("reschedule_appointment_form", &["appointment.update"]),
    ("cancel_appointment_form", &["appointment.update"]),
    ("refill_booking_page", &["pump.read"]),
    ("book_refill_form", &["appointment.create"]),
];

/// Every other operation, with why it reads or writes no patient data.
const NOT_PATIENT_DATA: &[(&str, &str)] = &[
    // Public submissions and pages.
    (
        "create_appointment_request",
        "public: the requester sends their own details and gets only a reference back; staff access to requests is audited",
    ),
    ("submit_request_form", "the HTML form of create_appointment_request"),
    ("request_form_page", "public HTML page: an empty form"),
    ("email_stop_page", "public HTML page: checks the link's signature, reads no record"),
    ("article_index_page", "public HTML content"),
    ("article_page", "public HTML content"),
    // A staff member's own account (no patient data); setting the password is audited as
    // `user.password_set` (crates/api/tests/console_set_password.rs).
    (
        "set_password_page",
        "shows the staff member's own address to the holder of their one-time link",
    ),
    ("set_password", "sets the link holder's own password; audited as user.password_set"),
    ("password_set_page", "a static confirmation page"),
    // Content.
    ("list_articles", "public content"),
    ("get_article", "public content"),
    ("list_conditions", "public content"),
    ("get_condition", "public content"),
    ("list_editor_articles", "editorial content"),
    ("create_article", "editorial content"),
    ("get_editor_article", "editorial content"),
    ("update_article", "editorial content"),
    ("archive_article", "editorial content"),
    ("publish_article", "editorial content"),
    ("unpublish_article", "editorial content"),
    ("list_article_revisions", "editorial content"),
    ("restore_article_revision", "editorial content"),
    ("create_condition", "editorial content"),
    ("update_condition", "editorial content"),
    // Catalogues and clinic-wide settings.
    ("list_appointment_types", "catalogue of appointment types"),
    ("update_appointment_type", "catalogue of appointment types (audited as appointment_type.update)"),
    ("list_screening_criteria", "catalogue of screening questions"),
    ("create_screening_criterion", "catalogue of screening questions"),
    ("update_screening_criterion", "catalogue of screening questions"),
    ("list_drugs", "drug catalogue"),
    ("create_drug", "drug catalogue (audited as drug.create)"),
    ("update_drug", "drug catalogue (audited as drug.update)"),
    ("list_pump_models", "pump-model catalogue"),
    ("create_pump_model", "pump-model catalogue (audited as pump_model.create)"),
    ("update_pump_model", "pump-model catalogue (audited as pump_model.update)"),
    ("get_forecast_policy", "clinic-wide forecast policy"),
    (
        "update_forecast_policy",
        "clinic-wide policy (audited as forecast_policy.update); forecasts are recomputed, no record is returned",
    ),
    ("get_reminder_settings", "clinic-wide reminder policy"),
    (
        "update_reminder_settings",
        "clinic-wide reminder policy (audited as reminder_settings.update)",
    ),
    ("get_self_service_settings", "clinic-wide self-service policy"),
    (
        "update_self_service_settings",
        "clinic-wide self-service policy (audited as self_service_settings.update)",
    ),
    ("get_reminder_status", "pipeline counts only"),
    // The clinic's calendar and staff.
    ("get_availability", "free slots only: names no appointment or patient"),
    ("list_closures", "the clinic's closure days"),
    ("create_closure", "the clinic's closure days (audited as closure.create)"),
    ("delete_closure", "the clinic's closure days (audited as closure.delete)"),
    ("list_providers", "staff records and working hours"),
    ("create_provider", "staff records and working hours (audited as provider.create)"),
    ("get_provider", "staff records and working hours"),
    ("update_provider", "staff records and working hours (audited as provider.update)"),
    ("list_time_off", "a provider's time off"),
    ("create_time_off", "a provider's time off (audited as provider.time_off_add)"),
    ("delete_time_off", "a provider's time off (audited as provider.time_off_remove)"),
    ("list_feed_tokens", "a provider's calendar-feed credentials"),
    ("create_feed_token", "a provider's calendar-feed credentials (audited as feed_token.create)"),
    ("revoke_feed_token", "a provider's calendar-feed credentials (audited as feed_token.revoke)"),
    (
        "get_provider_calendar",
        "a provider's feed: appointment times and types, no patient name or id",
    ),
    // Access control and operations.
    (
        "list_audit_events",
        "the audit log itself (admin): reading it opens no patient record (audited as audit.list)",
    ),
    ("list_tokens", "API credentials"),
    ("create_token", "API credentials (audited as token.create)"),
    ("list_users", "staff accounts, no patient data"),
    ("get_user", "a staff account, no patient data"),
    ("create_user", "a staff account (audited as user.create, tests/users.rs)"),
    ("update_user", "a staff account (audited as user.update/disable/enable, tests/users.rs)"),
    ("create_password_link", "a staff account's link (audited as user.password_link, tests/users.rs)"),
    ("revoke_token", "API credentials (audited as token.revoke)"),
    ("get_health", "liveness"),
    ("get_readiness", "readiness"),
    ("get_metrics", "request counters by route"),
];

/// Operation id → (method, path template), from the served OpenAPI document.
fn documented_operations() -> BTreeMap<String, (Method, String)> {
    let doc = serde_json::to_value(clinic_api::openapi_document()).expect("json");
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
                .to_owned();
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let previous = ops.insert(id.clone(), (method, path.clone()));
            assert!(previous.is_none(), "operationId {id} is used twice");
        }
    }
    ops
}

/// Whether a concrete path (query string ignored) fits a template like `/pumps/{id}/fills`.
fn fits(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

#[test]
fn every_operation_is_classified() {
    let documented = documented_operations();
    let mut listed = BTreeSet::new();
    let mut problems = Vec::new();
    for id in AUDITED
        .iter()
        .map(|(id, _)| *id)
        .chain(NOT_PATIENT_DATA.iter().map(|(id, _)| *id))
    {
        if !listed.insert(id) {
            problems.push(format!("{id} is classified twice"));
        }
        if !documented.contains_key(id) {
            problems.push(format!("{id} is classified but not in the OpenAPI document"));
        }
    }
    for (id, (method, path)) in &documented {
        if !listed.contains(id.as_str()) {
            problems.push(format!(
                "{method} {path} ({id}) is not classified: add it to AUDITED with the audit \
                 actions it records, or to NOT_PATIENT_DATA with the reason it holds none"
            ));
        }
    }
    for (id, actions) in AUDITED {
        if actions.is_empty() {
            problems.push(format!("{id} is audited but expects no action"));
        }
    }
    for (id, reason) in NOT_PATIENT_DATA {
        if reason.trim().is_empty() {
            problems.push(format!("{id} needs a reason"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        AUDITED.len() >= 40 && documented.len() > 80,
        "{} audited of {} operations",
        AUDITED.len(),
        documented.len()
    );
}

// ---- the walk ---------------------------------------------------------------------------

/// Monday 2027-01-04, 12:00 in Chicago.
fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 4, 18, 0, 0).single().expect("instant")
}

const CRITERIA: [&str; 8] = [
    "medication_dependence",
    "conservative_treatment_failed",
    "surgery_not_expected_to_help",
    "no_drug_contraindication",
    "psychological_evaluation_passed",
    "no_active_infection",
    "bleeding_risk_managed",
    "successful_trial",
];

/// The operation's own call: what was sent, what came back, and the newest audit event id
/// before it was sent.
struct Call {
    method: Method,
    path: String,
    before: i64,
    res: TestResponse,
}

/// Who the audit event of a call must name as actor.
#[derive(Clone, PartialEq)]
enum Acting {
    /// The staff token, under the call's request id.
    Token,
    /// The system (the stop link: no token, no link).
    System,
    /// A patient's self-service link (`appointment:<id>` or `refill:<pump id>`), under the
    /// call's request id.
    Link(String),
}

/// The record a call concerned, which its audit events must name.
struct Subject {
    kind: &'static str,
    id: String,
    actor: Acting,
}

impl Subject {
    fn patient(id: &str) -> Self {
        Self {
            kind: "patient",
            id: id.to_owned(),
            actor: Acting::Token,
        }
    }

    /// The patient, as the self-service page of `link` acted for them.
    fn by_link(patient: &str, link: String) -> Self {
        Self {
            kind: "patient",
            id: patient.to_owned(),
            actor: Acting::Link(link),
        }
    }
}

struct Walk {
    app: TestApp,
    /// A staff token holding every scope patient data needs (not admin), and its id.
    staff: String,
    staff_id: String,
    provider: String,
    /// A patient who consents to email, with a programmed and filled pump due in two days.
    patient: String,
    pump: String,
    slots: Cell<usize>,
    later_slots: Cell<usize>,
    serials: Cell<usize>,
    addresses: Cell<u8>,
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

fn created(res: TestResponse, what: &str) -> Value {
    assert!(res.status.is_success(), "{what}: {} {}", res.status, res.text());
    res.json()
}

impl Walk {
    async fn new() -> Self {
        let app = TestApp::new().await;
        app.clock.set(base_time());
        {
            let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
            let now = app.state().now();
            clinic_scheduling::types::seed(&mut conn, now).expect("types");
            clinic_pumps::catalog::seed(&mut conn, now).expect("pump catalogue");
            clinic_content::seed::run(&mut conn, now).expect("content");
        }
        let token = created(
            app.post(
                "/api/v1/tokens",
                &app.admin,
                json!({"name": "audit walk", "scopes": ["patients:read", "patients:write",
                       "scheduling:write", "pumps:read", "pumps:write", "reminders:admin"]}),
            )
            .await,
            "staff token",
        );
        let staff = token["secret"].as_str().expect("secret").to_owned();
        let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday"]
            .iter()
            .map(|d| json!({"weekday": d, "start": "08:00", "end": "17:00"}))
            .collect();
        let provider = id_of(&created(
            app.post(
                "/api/v1/providers",
                &staff,
                json!({"name": "Dr. Ana Ruiz", "role": "pain physician", "time_zone": "America/Chicago", "hours": hours}),
            )
            .await,
            "provider",
        ));
        let patient = id_of(&app.create_patient("Ray", "Quinn").await);
        let mut walk = Self {
            app,
            staff,
            staff_id: id_of(&token),
            provider,
            patient,
            pump: String::new(),
            slots: Cell::new(0),
            later_slots: Cell::new(0),
            serials: Cell::new(0),
            addresses: Cell::new(0),
        };
        let pump = walk.new_pump(&walk.patient).await;
        walk.program(&pump).await;
        walk.fill(&pump).await;
        walk.pump = pump;
        walk
    }

    /// The newest audit event's id (0 for an empty log).
    async fn last_event_id(&self) -> i64 {
        let res = self.app.get("/api/v1/audit-events?limit=1", &self.app.admin).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["items"][0]["id"].as_i64().unwrap_or(0)
    }

    /// The operation's call with the staff token.
    async fn op(&self, method: Method, path: &str, body: Option<Value>) -> Call {
        let before = self.last_event_id().await;
        let res = self.app.call(method.clone(), path, Some(&self.staff), body).await;
        Call {
            method,
            path: path.to_owned(),
            before,
            res,
        }
    }

    async fn get(&self, path: &str) -> Value {
        let res = self.app.get(path, &self.staff).await;
        assert_eq!(res.status, StatusCode::OK, "GET {path}: {}", res.text());
        res.json()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        created(self.app.post(path, &self.staff, body).await, path)
    }

    /// A fresh start for a consultation (60 min + 10 buffer): weekdays from Tuesday 5
    /// January, every two hours from 08:00 Chicago, never the same twice.
    fn slot(&self) -> String {
        const DAYS: [u32; 14] = [5, 6, 7, 8, 11, 12, 13, 14, 15, 18, 19, 20, 21, 22];
        const HOURS: [u32; 4] = [8, 10, 12, 14];
        let n = self.slots.get();
        self.slots.set(n + 1);
        let day = DAYS.get(n / HOURS.len()).expect("a free slot left");
        format!("2027-01-{day:02}T{:02}:00:00-06:00", HOURS[n % HOURS.len()])
    }

    /// A start weeks ahead, past the self-service cut-off (24 hours), for the visits patients
    /// manage from their links: weekdays from Monday 25 January, never the same twice.
    fn later_slot(&self) -> String {
        const DAYS: [u32; 5] = [25, 26, 27, 28, 29];
        const HOURS: [u32; 4] = [8, 10, 12, 14];
        let n = self.later_slots.get();
        self.later_slots.set(n + 1);
        let day = DAYS.get(n / HOURS.len()).expect("a free later slot left");
        format!("2027-01-{day:02}T{:02}:00:00-06:00", HOURS[n % HOURS.len()])
    }

    /// A consultation of `patient` weeks ahead, and the path of its self-service page as the
    /// confirmation email links it (generation 0: nothing was revoked).
    async fn visit_link(&self, patient: &str) -> (Value, String) {
        let a = self
            .post("/api/v1/appointments", self.booking(patient, &self.later_slot()))
            .await;
        let id: AppointmentId = id_of(&a).parse().expect("an appointment id");
        let token = self
            .app
            .state()
            .composer
            .patient_links()
            .sign(LinkSubject::Appointment(id), 0);
        (a, format!("/my/appointments/{token}"))
    }

    /// A new patient with a programmed and filled pump (due Wednesday 6 January), the pump,
    /// and the path of the booking page its refill reminder links.
    async fn refill_link(&self, given: &str) -> (String, String, String) {
        let patient = self.new_patient(given).await;
        let pump = self.new_pump(&patient).await;
        self.program(&pump).await;
        self.fill(&pump).await;
        let episode = {
            let mut conn = clinic_store::pool::get(&self.app.pool).expect("connection");
            clinic_pumps::registry::last_fill_id(&mut conn, &pump).expect("last fill")
        };
        let uuid = |id: &str| uuid::Uuid::parse_str(id).expect("a uuid");
        let subject = LinkSubject::Refill {
            pump: uuid(&pump),
            episode: episode.as_deref().map(uuid),
        };
        let token = self.app.state().composer.patient_links().sign(subject, 0);
        (patient, pump, format!("/my/book/{token}"))
    }

    /// The first time a self-service page offers (its `slot` form value).
    async fn offered_slot(&self, page: &str) -> String {
        let res = self.app.send(TestRequest::get().uri(page)).await;
        assert_eq!(res.status, StatusCode::OK, "GET {page}: {}", res.text());
        let html = res.text();
        let marker = "name=\"slot\" value=\"";
        let at = html
            .find(marker)
            .unwrap_or_else(|| panic!("no time offered on {page}: {html}"));
        html[at + marker.len()..]
            .split('"')
            .next()
            .expect("a slot value")
            .to_owned()
    }

    /// A call from a patient's link: no token; a POST sends its page's form.
    async fn link_op(&self, method: Method, path: &str, form: Option<String>) -> Call {
        let before = self.last_event_id().await;
        let mut req = TestRequest::default().method(method.clone()).uri(path);
        if let Some(form) = form {
            req = req
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(form);
        }
        let res = self.app.send(req).await;
        Call {
            method,
            path: path.to_owned(),
            before,
            res,
        }
    }

    fn booking(&self, patient: &str, start: &str) -> Value {
        json!({"patient_id": patient, "provider_id": self.provider, "appointment_type": "consultation", "start": start})
    }

    async fn book(&self, patient: &str) -> Value {
        let start = self.slot();
        self.post("/api/v1/appointments", self.booking(patient, &start)).await
    }

    async fn new_patient(&self, given: &str) -> String {
        id_of(&self.app.create_patient(given, "Walker").await)
    }

    fn pump_body(&self, patient: &str) -> Value {
        let n = self.serials.get();
        self.serials.set(n + 1);
        json!({"patient_id": patient, "model": "synchromed-ii-20", "serial_number": format!("AUD{n:06}H"),
               "implanted_on": "2026-06-01"})
    }

    async fn new_pump(&self, patient: &str) -> String {
        id_of(&self.post("/api/v1/pumps", self.pump_body(patient)).await)
    }

    fn program_body() -> Value {
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "20"})
    }

    /// 10 mg/mL at 20 mg/day in a 20 mL pump: due on Wednesday 6 January.
    fn fill_body() -> Value {
        json!({"filled_at": "2027-01-04T09:00:00-06:00", "drug": "morphine", "concentration": "10",
               "concentration_unit": "mg/mL", "volume_ml": "20.0", "residual_ml": "0", "clinician": "R. Alvarez, RN"})
    }

    async fn program(&self, pump: &str) {
        self.post(&format!("/api/v1/pumps/{pump}/programs"), Self::program_body())
            .await;
    }

    async fn fill(&self, pump: &str) {
        self.post(&format!("/api/v1/pumps/{pump}/fills"), Self::fill_body())
            .await;
    }

    async fn screen(&self, patient: &str) -> Call {
        let answers: Vec<Value> = CRITERIA
            .iter()
            .map(|c| json!({"criterion": c, "answer": "yes"}))
            .collect();
        self.op(
            Method::POST,
            &format!("/api/v1/patients/{patient}/screenings"),
            Some(json!({"clinician": "Dr. R. Alvarez", "screened_on": "2027-01-04", "answers": answers})),
        )
        .await
    }

    /// Submits a public request from a fresh address; returns the request as staff see it.
    async fn request(&self) -> Value {
        let n = self.addresses.get();
        self.addresses.set(n + 1);
        let res = self
            .app
            .send(
                TestRequest::post()
                    .uri("/api/v1/appointment-requests")
                    .peer_addr(std::net::SocketAddr::from(([198, 51, 100, n], 40000)))
                    .set_json(
                        json!({"given_name": "Maria", "family_name": "Lopez", "email": "maria@example.org",
                        "phone": "(312) 555-0142", "preferred_times": "Weekday mornings", "reason": "consultation",
                        "consent_to_contact": true}),
                    ),
            )
            .await;
        let reference = created(res, "public request")["reference"]
            .as_str()
            .expect("reference")
            .to_owned();
        let list = self.get("/api/v1/appointment-requests?status=new&limit=100").await;
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|r| r["reference"] == reference.as_str())
            .unwrap_or_else(|| panic!("request {reference} not listed: {list}"))
            .clone()
    }

    /// The pending confirmation email of a booking.
    async fn confirmation_row(&self, appointment: &Value) -> Value {
        let patient = appointment["patient_id"].as_str().expect("patient");
        let rows = self
            .get(&format!(
                "/api/v1/reminders?patient_id={patient}&kind=appointment_confirmation&limit=100"
            ))
            .await;
        rows["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|r| r["subject_id"] == appointment["id"])
            .unwrap_or_else(|| panic!("no confirmation row for {appointment}: {rows}"))
            .clone()
    }

    /// A consenting patient with a booking, and the stop link of their confirmation email.
    async fn stop_link(&self, given: &str) -> (String, String) {
        let patient = self.new_patient(given).await;
        let appointment = self.book(&patient).await;
        let row = self.confirmation_row(&appointment).await;
        let url = self.app.state().composer.stop_url(&id_of(&row), self.app.state().now());
        let path = url
            .strip_prefix("http://clinic.test")
            .unwrap_or_else(|| panic!("stop link {url}"))
            .to_owned();
        (patient, path)
    }

    /// A patient who followed their stop link: staff now have an outreach entry to phone them.
    async fn stopped_patient(&self, given: &str) -> String {
        let (patient, path) = self.stop_link(given).await;
        let res = self.app.call(Method::POST, &path, None, None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        patient
    }

    /// Performs one operation successfully, with its fixtures, and says whom it concerned.
    async fn perform(&self, operation: &str) -> (Call, Subject) {
        let p = self.patient.as_str();
        let pump = self.pump.as_str();
        match operation {
            "create_patient" => {
                let call = self
                    .op(
                        Method::POST,
                        "/api/v1/patients",
                        Some(
                            json!({"given_name": "Ada", "family_name": "Stone", "email": "ada.stone@example.org",
                                    "email_consent": true}),
                        ),
                    )
                    .await;
                let id = call.res.json()["id"].as_str().unwrap_or_default().to_owned();
                (call, Subject::patient(&id))
            }
            "list_patients" => (
                self.op(Method::GET, "/api/v1/patients?limit=100", None).await,
                Subject::patient(p),
            ),
            "get_patient" => (
                self.op(Method::GET, &format!("/api/v1/patients/{p}"), None).await,
                Subject::patient(p),
            ),
            "update_patient" => {
                let id = self.new_patient("Bea").await;
                let body = json!({"version": 1, "phone": "+13125550199"});
                (
                    self.op(Method::PATCH, &format!("/api/v1/patients/{id}"), Some(body))
                        .await,
                    Subject::patient(&id),
                )
            }
            "archive_patient" => {
                let id = self.new_patient("Cal").await;
                (
                    self.op(Method::DELETE, &format!("/api/v1/patients/{id}"), None).await,
                    Subject::patient(&id),
                )
            }
            "revoke_patient_links" => {
                // A patient of its own: revoking the shared one's links would end the links the
                // self-service operations use.
                let id = self.new_patient("Dee").await;
                (
                    self.op(Method::POST, &format!("/api/v1/patients/{id}/revoke-links"), None)
                        .await,
                    Subject::patient(&id),
                )
            }
            "get_appointment_self_service_link" => {
                let a = id_of(&self.book(p).await);
                (
                    self.op(
                        Method::GET,
                        &format!("/api/v1/appointments/{a}/self-service-link"),
                        None,
                    )
                    .await,
                    Subject::patient(p),
                )
            }
            "get_pump_refill_link" => (
                self.op(Method::GET, &format!("/api/v1/pumps/{pump}/refill-link"), None)
                    .await,
                Subject::patient(p),
            ),
            "create_screening" => (self.screen(p).await, Subject::patient(p)),
            "list_screenings" => {
                let first = self.screen(p).await;
                assert!(first.res.status.is_success(), "{}", first.res.text());
                (
                    self.op(Method::GET, &format!("/api/v1/patients/{p}/screenings"), None)
                        .await,
                    Subject::patient(p),
                )
            }
            "create_appointment" => {
                let body = self.booking(p, &self.slot());
                (
                    self.op(Method::POST, "/api/v1/appointments", Some(body)).await,
                    Subject::patient(p),
                )
            }
            "list_appointments" => {
                self.book(p).await;
                (
                    self.op(Method::GET, &format!("/api/v1/appointments?patient_id={p}"), None)
                        .await,
                    Subject::patient(p),
                )
            }
            "get_appointment" | "list_appointment_history" | "get_appointment_ics" => {
                let a = id_of(&self.book(p).await);
                let path = match operation {
                    "get_appointment" => format!("/api/v1/appointments/{a}"),
                    "list_appointment_history" => format!("/api/v1/appointments/{a}/history"),
                    _ => format!("/api/v1/appointments/{a}/ics"),
                };
                (self.op(Method::GET, &path, None).await, Subject::patient(p))
            }
            "reschedule_appointment" => {
                let a = id_of(&self.book(p).await);
                let body = json!({"start": self.slot()});
                (
                    self.op(
                        Method::POST,
                        &format!("/api/v1/appointments/{a}/reschedule"),
                        Some(body),
                    )
                    .await,
                    Subject::patient(p),
                )
            }
            "cancel_appointment" => {
                let a = id_of(&self.book(p).await);
                (
                    self.op(
                        Method::POST,
                        &format!("/api/v1/appointments/{a}/cancel"),
                        Some(json!({"reason": "patient called"})),
                    )
                    .await,
                    Subject::patient(p),
                )
            }
            "check_in_appointment" => {
                let a = id_of(&self.book(p).await);
                (
                    self.op(
                        Method::POST,
                        &format!("/api/v1/appointments/{a}/check-in"),
                        Some(json!({})),
                    )
                    .await,
                    Subject::patient(p),
                )
            }
            "complete_appointment" => {
                let a = id_of(&self.book(p).await);
                self.post(&format!("/api/v1/appointments/{a}/check-in"), json!({}))
                    .await;
                (
                    self.op(
                        Method::POST,
                        &format!("/api/v1/appointments/{a}/complete"),
                        Some(json!({})),
                    )
                    .await,
                    Subject::patient(p),
                )
            }
            "mark_no_show_appointment" => {
                let a = self.book(p).await;
                // A no-show is only possible once the appointment has begun.
                let start: DateTime<Utc> = a["start"].as_str().expect("start").parse().expect("instant");
                self.app.clock.set(start + Duration::hours(1));
                let call = self
                    .op(
                        Method::POST,
                        &format!("/api/v1/appointments/{}/no-show", id_of(&a)),
                        Some(json!({})),
                    )
                    .await;
                self.app.clock.set(base_time());
                (call, Subject::patient(p))
            }
            "list_appointment_requests" => {
                let r = self.request().await;
                (
                    self.op(Method::GET, "/api/v1/appointment-requests?status=new&limit=100", None)
                        .await,
                    Subject {
                        kind: "appointment_request",
                        id: id_of(&r),
                        actor: Acting::Token,
                    },
                )
            }
            "get_appointment_request" | "decline_appointment_request" => {
                let r = id_of(&self.request().await);
                let call = if operation == "get_appointment_request" {
                    self.op(Method::GET, &format!("/api/v1/appointment-requests/{r}"), None)
                        .await
                } else {
                    self.op(
                        Method::POST,
                        &format!("/api/v1/appointment-requests/{r}/decline"),
                        Some(json!({"reason": "We do not treat this condition."})),
                    )
                    .await
                };
                (
                    call,
                    Subject {
                        kind: "appointment_request",
                        id: r,
                        actor: Acting::Token,
                    },
                )
            }
            "confirm_appointment_request" => {
                let r = id_of(&self.request().await);
                let body = json!({"provider_id": self.provider, "start": self.slot()});
                let call = self
                    .op(
                        Method::POST,
                        &format!("/api/v1/appointment-requests/{r}/confirm"),
                        Some(body),
                    )
                    .await;
                let patient = call.res.json()["appointment"]["patient_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (call, Subject::patient(&patient))
            }
            "create_pump" => {
                let body = self.pump_body(p);
                (
                    self.op(Method::POST, "/api/v1/pumps", Some(body)).await,
                    Subject::patient(p),
                )
            }
            "list_pumps" => (
                self.op(Method::GET, "/api/v1/pumps?limit=100", None).await,
                Subject::patient(p),
            ),
            "list_patient_pumps" => (
                self.op(Method::GET, &format!("/api/v1/patients/{p}/pumps"), None).await,
                Subject::patient(p),
            ),
            "get_pump"
            | "list_fills"
            | "list_programs"
            | "get_pump_forecast"
            | "get_pump_forecast_svg"
            | "list_refill_slots" => {
                let path = match operation {
                    "get_pump" => format!("/api/v1/pumps/{pump}"),
                    "list_fills" => format!("/api/v1/pumps/{pump}/fills"),
                    "list_programs" => format!("/api/v1/pumps/{pump}/programs"),
                    "get_pump_forecast" => format!("/api/v1/pumps/{pump}/forecast"),
                    "get_pump_forecast_svg" => format!("/api/v1/pumps/{pump}/forecast.svg"),
                    _ => format!("/api/v1/pumps/{pump}/refill-slots"),
                };
                (self.op(Method::GET, &path, None).await, Subject::patient(p))
            }
            "update_pump" => {
                let id = self.new_pump(p).await;
                (
                    self.op(
                        Method::PATCH,
                        &format!("/api/v1/pumps/{id}"),
                        Some(json!({"version": 1, "alarm_ml": "3.0"})),
                    )
                    .await,
                    Subject::patient(p),
                )
            }
            "create_program" => {
                let id = self.new_pump(p).await;
                (
                    self.op(
                        Method::POST,
                        &format!("/api/v1/pumps/{id}/programs"),
                        Some(Self::program_body()),
                    )
                    .await,
                    Subject::patient(p),
                )
            }
            "create_fill" => {
                let id = self.new_pump(p).await;
                self.program(&id).await;
                (
                    self.op(
                        Method::POST,
                        &format!("/api/v1/pumps/{id}/fills"),
                        Some(Self::fill_body()),
                    )
                    .await,
                    Subject::patient(p),
                )
            }
            "list_refill_worklist" => (
                self.op(Method::GET, "/api/v1/worklists/refills?within_days=14", None)
                    .await,
                Subject::patient(p),
            ),
            "list_reminders" => {
                self.book(p).await;
                (
                    self.op(Method::GET, &format!("/api/v1/reminders?patient_id={p}"), None)
                        .await,
                    Subject::patient(p),
                )
            }
            "get_reminder" | "void_reminder" | "retry_reminder" => {
                let appointment = self.book(p).await;
                let row = id_of(&self.confirmation_row(&appointment).await);
                let call = match operation {
                    "get_reminder" => self.op(Method::GET, &format!("/api/v1/reminders/{row}"), None).await,
                    "void_reminder" => {
                        self.op(Method::POST, &format!("/api/v1/reminders/{row}/void"), Some(json!({})))
                            .await
                    }
                    _ => {
                        // Only a failed or void email can be sent again.
                        self.post(&format!("/api/v1/reminders/{row}/void"), json!({})).await;
                        self.op(Method::POST, &format!("/api/v1/reminders/{row}/retry"), Some(json!({})))
                            .await
                    }
                };
                (call, Subject::patient(p))
            }
            "preview_email" => (
                self.op(
                    Method::POST,
                    "/api/v1/reminders/preview",
                    Some(json!({"kind": "appointment_reminder", "patient_id": p})),
                )
                .await,
                Subject::patient(p),
            ),
            "list_outreach" => {
                let q = self.stopped_patient("Dee").await;
                (
                    self.op(Method::GET, &format!("/api/v1/worklists/outreach?patient_id={q}"), None)
                        .await,
                    Subject::patient(&q),
                )
            }
            "mark_outreach_done" => {
                let q = self.stopped_patient("Eve").await;
                let entries = self.get(&format!("/api/v1/worklists/outreach?patient_id={q}")).await;
                let entry = id_of(&entries["items"][0]);
                (
                    self.op(
                        Method::POST,
                        &format!("/api/v1/worklists/outreach/{entry}/done"),
                        Some(json!({"note": "Called; agreed to phone reminders."})),
                    )
                    .await,
                    Subject::patient(&q),
                )
            }
            "email_stop" => {
                let (q, path) = self.stop_link("Fay").await;
                // The patient follows the link from their email: no token.
                let before = self.last_event_id().await;
                let res = self.app.call(Method::POST, &path, None, None).await;
                (
                    Call {
                        method: Method::POST,
                        path,
                        before,
                        res,
                    },
                    Subject {
                        kind: "patient",
                        id: q,
                        actor: Acting::System,
                    },
                )
            }
            "appointment_page"
            | "reschedule_appointment_page"
            | "cancel_appointment_page"
            | "confirm_appointment_page"
            | "reschedule_appointment_form"
            | "cancel_appointment_form" => {
                let (a, page) = self.visit_link(p).await;
                let version = a["version"].as_i64().expect("version");
                let call = match operation {
                    "appointment_page" => self.link_op(Method::GET, &page, None).await,
                    "reschedule_appointment_page" => {
                        self.link_op(Method::GET, &format!("{page}/reschedule"), None).await
                    }
                    "cancel_appointment_page" => self.link_op(Method::GET, &format!("{page}/cancel"), None).await,
                    "confirm_appointment_page" => {
                        let form = format!("version={version}");
                        self.link_op(Method::POST, &format!("{page}/confirm"), Some(form)).await
                    }
                    "reschedule_appointment_form" => {
                        let slot = self.offered_slot(&format!("{page}/reschedule")).await;
                        let form = format!("version={version}&slot={slot}");
                        self.link_op(Method::POST, &format!("{page}/reschedule"), Some(form))
                            .await
                    }
                    _ => {
                        let form = format!("version={version}&reason=Away+that+week");
                        self.link_op(Method::POST, &format!("{page}/cancel"), Some(form)).await
                    }
                };
                (call, Subject::by_link(p, format!("appointment:{}", id_of(&a))))
            }
            "refill_booking_page" | "book_refill_form" => {
                let given = if operation == "refill_booking_page" {
                    "Gus"
                } else {
                    "Hal"
                };
                let (q, pump, page) = self.refill_link(given).await;
                let call = if operation == "refill_booking_page" {
                    self.link_op(Method::GET, &page, None).await
                } else {
                    let slot = self.offered_slot(&page).await;
                    self.link_op(Method::POST, &page, Some(format!("slot={slot}"))).await
                };
                (call, Subject::by_link(&q, format!("refill:{pump}")))
            }
            other => panic!("no call is written for the audited operation {other}"),
        }
    }

    /// Events recorded since `before`, for the failure message.
    async fn events_since(&self, before: i64) -> Vec<String> {
        let res = self.app.get("/api/v1/audit-events?limit=100", &self.app.admin).await;
        res.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["id"].as_i64().unwrap_or(0) > before)
            .map(|e| format!("{} on {} {}", e["action"], e["subject_type"], e["subject_id"]))
            .collect()
    }

    /// Why the call's audit event for `action` is missing, or `None` when it is there.
    async fn missing_event(&self, call: &Call, subject: &Subject, action: &str) -> Option<String> {
        let res = self
            .app
            .get(
                &format!(
                    "/api/v1/audit-events?action={action}&subject_id={}&limit=100",
                    subject.id
                ),
                &self.app.admin,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        let request_id = call.res.header("x-request-id");
        let found = res.json()["items"].as_array().expect("items").iter().any(|e| {
            let same_request = request_id.is_some() && e["request_id"].as_str() == request_id.as_deref();
            let actor_ok = match &subject.actor {
                Acting::Token => {
                    e["actor_token_id"] == self.staff_id.as_str() && e["actor_type"] == "token" && same_request
                }
                Acting::System => e["actor_token_id"].is_null() && e["actor_type"] == "system",
                Acting::Link(link) => {
                    e["actor_token_id"].is_null()
                        && e["actor_type"] == "patient_link"
                        && e["actor_link"] == link.as_str()
                        && same_request
                }
            };
            e["id"].as_i64().unwrap_or(0) > call.before && e["subject_type"] == subject.kind && actor_ok
        });
        if found {
            return None;
        }
        Some(format!(
            "no audit event `{action}` about {} {} was recorded {}; this call recorded: {:?}",
            subject.kind,
            subject.id,
            match &subject.actor {
                Acting::Token => "under the staff token and this request's X-Request-Id".to_owned(),
                Acting::System => "with the system as actor".to_owned(),
                Acting::Link(link) => format!("by the patient's link {link} under this request's X-Request-Id"),
            },
            self.events_since(call.before).await
        ))
    }
}

#[actix_web::test]
async fn every_patient_data_operation_leaves_its_audit_event() {
    let documented = documented_operations();
    let w = Walk::new().await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for (operation, actions) in AUDITED {
        let (method, template) = documented
            .get(*operation)
            .unwrap_or_else(|| panic!("{operation} is not in the OpenAPI document"));
        let (call, subject) = w.perform(operation).await;
        assert!(
            call.method == *method && fits(template, &call.path),
            "{operation} is {method} {template}, but the walk called {} {}",
            call.method,
            call.path
        );
        let label = format!("{} {} ({operation})", call.method, call.path);
        // A self-service page's POST succeeds with a 303 to the page that says what it did.
        let done = call.res.status == StatusCode::SEE_OTHER
            && call.res.header("location").is_some_and(|l| l.contains("?done="));
        if !call.res.status.is_success() && !done {
            failures.push(format!(
                "{label}: the call itself failed: {} {}",
                call.res.status,
                call.res.text()
            ));
            continue;
        }
        assert!(!subject.id.is_empty(), "{label}: no subject in {}", call.res.text());
        for action in *actions {
            if let Some(why) = w.missing_event(&call, &subject, action).await {
                failures.push(format!("{label} ({}): {why}", call.res.status));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} expected audit events are missing across the {} patient-data operations:\n{}",
        failures.len(),
        AUDITED.len(),
        failures.join("\n")
    );
    assert!(checked >= AUDITED.len());
}

/// Administrative changes leave a trace too (security review F5): each change to providers,
/// their time off, closures, appointment types, calendar-feed tokens, the reminder policy and
/// the self-service policy records an event naming the changed record, under the calling
/// token and request id, committed with the change. Reading the audit log records `audit.list`.
#[actix_web::test]
async fn administrative_changes_and_audit_log_reads_are_recorded() {
    let w = Walk::new().await;
    let subject = |kind: &'static str, id: &str| Subject {
        kind,
        id: id.to_owned(),
        actor: Acting::Token,
    };
    let mut failures = Vec::new();
    let check = |call: Call, subject: Subject, action: &'static str| {
        assert!(
            call.res.status.is_success(),
            "{} {}: {}",
            call.method,
            call.path,
            call.res.text()
        );
        (call, subject, action)
    };
    let mut calls = Vec::new();

    let hours = json!([{"weekday": "monday", "start": "09:00", "end": "12:00"}]);
    let created = w
        .op(
            Method::POST,
            "/api/v1/providers",
            Some(json!({"name": "Dr. Lee", "role": "nurse", "hours": hours})),
        )
        .await;
    let provider = id_of(&created.res.json());
    calls.push(check(created, subject("provider", &provider), "provider.create"));
    let path = format!("/api/v1/providers/{provider}");
    let updated = w
        .op(
            Method::PATCH,
            &path,
            Some(json!({"version": 1, "role": "nurse practitioner"})),
        )
        .await;
    calls.push(check(updated, subject("provider", &provider), "provider.update"));
    let off = w
        .op(
            Method::POST,
            &format!("{path}/time-off"),
            Some(json!({"starts_at": "2027-02-01T15:00:00Z", "ends_at": "2027-02-01T18:00:00Z"})),
        )
        .await;
    let off_id = id_of(&off.res.json());
    calls.push(check(off, subject("provider", &provider), "provider.time_off_add"));
    let removed = w.op(Method::DELETE, &format!("{path}/time-off/{off_id}"), None).await;
    calls.push(check(
        removed,
        subject("provider", &provider),
        "provider.time_off_remove",
    ));

    let closed = w
        .op(
            Method::POST,
            "/api/v1/closures",
            Some(json!({"date": "2027-07-05", "name": "Independence Day (observed)"})),
        )
        .await;
    calls.push(check(closed, subject("closure", "2027-07-05"), "closure.create"));
    let reopened = w.op(Method::DELETE, "/api/v1/closures/2027-07-05", None).await;
    calls.push(check(reopened, subject("closure", "2027-07-05"), "closure.delete"));

    let typed = w
        .op(
            Method::PATCH,
            "/api/v1/appointment-types/refill",
            Some(json!({"version": 1, "buffer_after_minutes": 10})),
        )
        .await;
    calls.push(check(
        typed,
        subject("appointment_type", "refill"),
        "appointment_type.update",
    ));

    let feed = w.op(Method::POST, &format!("{path}/feed-tokens"), None).await;
    let feed_body = feed.res.json();
    let feed_id = id_of(&feed_body);
    let secret = feed_body["feed_path"]
        .as_str()
        .expect("path")
        .split("token=")
        .nth(1)
        .expect("secret")
        .to_owned();
    calls.push(check(feed, subject("feed_token", &feed_id), "feed_token.create"));
    let revoked = w
        .op(Method::DELETE, &format!("{path}/feed-tokens/{feed_id}"), None)
        .await;
    calls.push(check(revoked, subject("feed_token", &feed_id), "feed_token.revoke"));

    let mut settings = w.get("/api/v1/reminders/settings").await;
    settings["appointment_offsets_hours"] = json!({"follow_up": [24]});
    let policy = w.op(Method::PUT, "/api/v1/reminders/settings", Some(settings)).await;
    calls.push(check(
        policy,
        subject("settings", "reminders"),
        "reminder_settings.update",
    ));

    let mut self_service = w.get("/api/v1/self-service/settings").await;
    self_service["cutoff_hours"] = json!(48);
    let policy = w
        .op(Method::PUT, "/api/v1/self-service/settings", Some(self_service))
        .await;
    calls.push(check(
        policy,
        subject("settings", "self_service"),
        "self_service_settings.update",
    ));

    for (call, subject, action) in &calls {
        if let Some(why) = w.missing_event(call, subject, action).await {
            failures.push(format!("{} {}: {why}", call.method, call.path));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing secret in the trail: the feed token's secret is not an event field.
    let all = w.app.get("/api/v1/audit-events?limit=100", &w.app.admin).await.text();
    assert!(all.contains("feed_token.create") && !all.contains(&secret), "{all}");

    // Reading the log is recorded, naming the subject filtered on, under that request; the
    // page read does not contain its own event.
    let read = w
        .app
        .get(
            &format!("/api/v1/audit-events?subject_id={provider}&limit=100"),
            &w.app.admin,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    let request_id = read.header("x-request-id").expect("request id");
    assert!(!read.text().contains(&request_id), "{}", read.text());
    let trail = w
        .app
        .get(
            &format!("/api/v1/audit-events?action=audit.list&subject_id={provider}"),
            &w.app.admin,
        )
        .await
        .json();
    let items = trail["items"].as_array().expect("items");
    assert!(
        items.iter().any(|e| e["request_id"] == request_id.as_str()
            && e["subject_type"] == "audit_log"
            && e["actor_token_id"].is_string()),
        "{trail}"
    );
}
