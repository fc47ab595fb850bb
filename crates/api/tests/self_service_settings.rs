//! The clinic's self-service settings through HTTP, on the backend under test: the defaults,
//! a save read back, optimistic concurrency, every 422, the scope, and the audit event.

mod common;

use actix_web::http::{Method, StatusCode};
use common::{TestApp, TestResponse};
use serde_json::{json, Value};

const PATH: &str = "/api/v1/self-service/settings";

struct Clinic {
    app: TestApp,
    /// A `reminders:admin` token's secret and id.
    token: String,
    token_id: String,
}

/// A fresh clinic with the seeded appointment types and a `reminders:admin` token made
/// through the API (so that its id is known for the audit check).
async fn clinic() -> Clinic {
    let app = TestApp::new().await;
    {
        let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
        clinic_scheduling::types::seed(&mut conn, app.state().now()).expect("types");
    }
    let res = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "self-service admin", "scopes": ["reminders:admin"]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let body = res.json();
    Clinic {
        token: body["secret"].as_str().expect("secret").to_owned(),
        token_id: body["id"].as_str().expect("id").to_owned(),
        app,
    }
}

impl Clinic {
    async fn read(&self) -> Value {
        let res = self.app.get(PATH, &self.token).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()
    }

    async fn put(&self, body: Value) -> TestResponse {
        self.app.call(Method::PUT, PATH, Some(&self.token), Some(body)).await
    }

    /// A PUT of the current settings with one field changed must be a 422 naming `field`
    /// with `code`, and change nothing.
    async fn refused(&self, key: &str, value: Value, field: &str, code: &str) {
        let mut body = self.read().await;
        body[key] = value;
        let res = self.put(body).await;
        let problem = res.problem(422, "validation_failed");
        let errors = problem["errors"].as_array().expect("errors");
        assert!(
            errors.iter().any(|e| e["field"] == field && e["code"] == code),
            "{key}: expected {field}:{code} in {problem}"
        );
        assert_eq!(self.read().await["version"], 0, "nothing was saved");
    }
}

fn defaults() -> Value {
    json!({
        "version": 0,
        "enabled_appointment_types": ["consultation", "follow_up", "refill", "psychological_evaluation"],
        "cutoff_hours": 24,
        "patients_may_cancel": true,
        "reschedule_to": "same_provider",
        "refill_booking": true
    })
}

#[actix_web::test]
async fn the_defaults_apply_until_the_settings_are_saved() {
    let c = clinic().await;
    assert_eq!(c.read().await, defaults());
    // The general admin scope reads them too.
    let res = c.app.get(PATH, &c.app.admin).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json(), defaults());
}

#[actix_web::test]
async fn a_save_is_read_back_and_a_stale_version_is_a_conflict() {
    let c = clinic().await;
    let new = json!({
        "version": 0,
        "enabled_appointment_types": ["refill", "follow_up"],
        "cutoff_hours": 48,
        "patients_may_cancel": false,
        "reschedule_to": "any_provider",
        "refill_booking": false
    });
    let res = c.put(new.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let mut expected = new.clone();
    expected["version"] = json!(1);
    assert_eq!(res.json(), expected, "the order given is kept");
    assert_eq!(c.read().await, expected);

    // Version 0 again: someone saved in between.
    c.put(new).await.problem(409, "version_conflict");
    assert_eq!(c.read().await, expected, "the conflict changed nothing");

    // With the current version the next save goes through; an empty list turns links off.
    let mut next = expected.clone();
    next["enabled_appointment_types"] = json!([]);
    next["cutoff_hours"] = json!(0);
    let res = c.put(next.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    next["version"] = json!(2);
    assert_eq!(res.json(), next);
}

#[actix_web::test]
async fn each_bad_field_is_a_422_naming_it() {
    let c = clinic().await;
    c.refused(
        "enabled_appointment_types",
        json!(["refill", "massage"]),
        "enabled_appointment_types[1]",
        "unknown_appointment_type",
    )
    .await;
    c.refused(
        "enabled_appointment_types",
        json!(["refill", "consultation", "refill"]),
        "enabled_appointment_types[2]",
        "duplicate_appointment_type",
    )
    .await;
    c.refused("cutoff_hours", json!(169), "cutoff_hours", "out_of_range")
        .await;
    c.refused("cutoff_hours", json!(-1), "cutoff_hours", "out_of_range")
        .await;
    c.refused("reschedule_to", json!("anyone"), "reschedule_to", "invalid_value")
        .await;
    c.refused("extra", json!(true), "extra", "unknown_field").await;

    // Every bad field at once, in one answer.
    let mut bad = c.read().await;
    bad["enabled_appointment_types"] = json!(["implant", "massage"]);
    bad["cutoff_hours"] = json!(500);
    bad["reschedule_to"] = json!("");
    let res = c.put(bad).await;
    res.problem(422, "validation_failed");
    assert_eq!(
        res.error_fields(),
        ["enabled_appointment_types[1]", "cutoff_hours", "reschedule_to"]
    );

    // A missing field is named as required.
    let mut partial = c.read().await;
    partial.as_object_mut().expect("object").remove("refill_booking");
    let res = c.put(partial).await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["refill_booking"]);
}

#[actix_web::test]
async fn the_settings_need_the_reminders_admin_scope() {
    let c = clinic().await;
    c.app
        .call(Method::GET, PATH, None, None)
        .await
        .problem(401, "unauthorized");
    c.app
        .call(Method::PUT, PATH, None, Some(defaults()))
        .await
        .problem(401, "unauthorized");
    let reader = c.app.token(&["patients:read"]);
    c.app.get(PATH, &reader).await.problem(403, "forbidden");
    c.app
        .call(Method::PUT, PATH, Some(&reader), Some(defaults()))
        .await
        .problem(403, "forbidden");
    assert_eq!(c.read().await["version"], 0, "nothing was saved");
}

/// The audit log's `self_service_settings.update` events, read with the admin token.
async fn updates(app: &TestApp) -> Vec<Value> {
    let res = app
        .get("/api/v1/audit-events?action=self_service_settings.update", &app.admin)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()["items"].as_array().expect("items").clone()
}

#[actix_web::test]
async fn an_update_is_audited_and_a_read_is_not() {
    let c = clinic().await;
    c.read().await;
    assert!(updates(&c.app).await.is_empty(), "reading records no event");

    let mut body = defaults();
    body["cutoff_hours"] = json!(12);
    let res = c.put(body).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let request_id = res.header("x-request-id").expect("request id");

    let events = updates(&c.app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["subject_type"], "settings");
    assert_eq!(e["subject_id"], "self_service");
    assert_eq!(e["actor_type"], "token");
    assert_eq!(e["actor_token_id"], c.token_id.as_str());
    assert_eq!(e["request_id"], request_id.as_str());

    // A refused update records nothing.
    let mut stale = defaults();
    stale["cutoff_hours"] = json!(6);
    c.put(stale).await.problem(409, "version_conflict");
    assert_eq!(updates(&c.app).await.len(), 1);
}
