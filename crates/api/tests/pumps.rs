//! Pumps through HTTP on both databases: the worked examples of intrathecal.md §4, fills
//! with discrepancies, programmes, missing data, policy, worklist, refill slots, bad input.

mod common;

use actix_web::http::StatusCode;
use chrono::{TimeZone, Utc};
use common::TestApp;
use serde_json::{json, Value};

struct Clinic {
    app: TestApp,
    staff: String,
    patient: String,
}

async fn clinic() -> Clinic {
    let app = TestApp::new().await;
    app.clock
        .set(Utc.with_ymd_and_hms(2027, 1, 4, 18, 0, 0).single().expect("instant"));
    {
        let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
        clinic_pumps::catalog::seed(&mut conn, app.state().now()).expect("catalogue");
        clinic_scheduling::types::seed(&mut conn, app.state().now()).expect("types");
    }
    let staff = app.token(&["pumps:write", "pumps:read", "scheduling:write", "patients:read"]);
    let patient = app.create_patient("Ray", "Quinn").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    Clinic { app, staff, patient }
}

impl Clinic {
    async fn pump(&self, model: &str, serial: &str, alarm: Option<&str>) -> String {
        let mut body =
            json!({"patient_id": self.patient, "model": model, "serial_number": serial, "implanted_on": "2026-06-01"});
        if let Some(a) = alarm {
            body["alarm_ml"] = json!(a);
        }
        let res = self.app.post("/api/v1/pumps", &self.staff, body).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()["id"].as_str().expect("id").to_owned()
    }

    async fn program(&self, pump: &str, body: Value) -> Value {
        let res = self
            .app
            .post(&format!("/api/v1/pumps/{pump}/programs"), &self.staff, body)
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()
    }

    async fn fill(&self, pump: &str, body: Value) -> common::TestResponse {
        self.app
            .post(&format!("/api/v1/pumps/{pump}/fills"), &self.staff, body)
            .await
    }

    async fn forecast(&self, pump: &str) -> Value {
        self.app
            .get(&format!("/api/v1/pumps/{pump}/forecast"), &self.staff)
            .await
            .json()
    }
}

fn fill_body(at: &str, drug: &str, conc: &str, unit: &str, volume: &str) -> Value {
    json!({"filled_at": at, "drug": drug, "concentration": conc, "concentration_unit": unit,
           "volume_ml": volume, "residual_ml": "0", "clinician": "R. Alvarez, RN"})
}

#[actix_web::test]
async fn example_1_morphine_through_the_api() {
    let c = clinic().await;
    let pump = c.pump("synchromed-ii-40", "NGP100001H", None).await;
    let before = c.forecast(&pump).await;
    assert_eq!(before["binding"], "missing_data", "a pump without a fill is due now");
    c.program(
        &pump,
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "5"}),
    )
    .await;
    let res = c
        .fill(
            &pump,
            fill_body("2027-01-04T09:00:00-06:00", "morphine", "25", "mg/mL", "40.0"),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let f = c.forecast(&pump).await;
    assert_eq!(f["alarm_at"], "2027-07-13T15:00:00Z", "10:00 CDT, day 190");
    assert_eq!(f["volume_due"], "2027-07-06");
    assert_eq!(
        (f["due_date"].as_str(), f["binding"].as_str()),
        (Some("2027-07-03"), Some("stability"))
    );
    assert_eq!(f["daily_volume_ml"], "0.2");
    assert!(f["explanation"].as_str().expect("text").contains("2027-07-03"));
    assert_eq!(f["inputs"]["concentration"], "25");
    let plot = c.app.get(f["plot_url"].as_str().expect("plot url"), &c.staff).await;
    assert_eq!(plot.header("content-type").as_deref(), Some("image/svg+xml"));
    let svg = plot.text();
    assert!(
        svg.starts_with("<svg") && svg.contains("refill due 2027-07-03") && svg.contains("low-reservoir alarm (2"),
        "{}",
        &svg[..300.min(svg.len())]
    );
    if let Ok(path) = std::env::var("CLINIC_PLOT_OUT") {
        std::fs::write(path, &svg).expect("write plot");
    }

    // The clinic's 90-day morphine limit: the next fill gets it.
    let drug = c.app.get("/api/v1/drugs", &c.staff).await.json();
    let morphine = drug["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|d| d["code"] == "morphine")
        .expect("morphine")
        .clone();
    let edited = c
        .app
        .patch(
            "/api/v1/drugs/morphine",
            &c.staff,
            json!({"version": morphine["version"], "stability_undiluted_days": 90}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text());
    let mut again = fill_body("2027-01-04T09:00:00-06:00", "morphine", "25", "mg/mL", "40.0");
    again["residual_ml"] = json!("40.0");
    c.fill(&pump, again).await;
    assert_eq!(c.forecast(&pump).await["due_date"], "2027-04-04", "day 90");

    // The over-infusion factor: every forecast is recomputed with the policy.
    let policy = c.app.get("/api/v1/forecast-policy", &c.staff).await.json();
    let set = c
        .app
        .call(
            actix_web::http::Method::PUT,
            "/api/v1/forecast-policy",
            Some(&c.staff),
            Some(json!({"version": policy["version"], "margin_days": 7, "over_infusion_factor": "1.145"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    let policy_events = c
        .app
        .get("/api/v1/audit-events?action=forecast_policy.update", &c.app.admin)
        .await
        .json();
    assert_eq!(policy_events["items"].as_array().map(Vec::len), Some(1));
    let f = c.forecast(&pump).await;
    assert_eq!(
        f["alarm_at"].as_str().map(|s| &s[..16]),
        Some("2027-06-19T13:31"),
        "08:32 CDT to the minute"
    );
    assert_eq!(
        (f["due_date"].as_str(), f["binding"].as_str()),
        (Some("2027-04-04"), Some("stability"))
    );
}

#[actix_web::test]
async fn example_2_baclofen_flex_steps_through_the_api() {
    let c = clinic().await;
    let pump = c.pump("synchromed-ii-20", "NGP200002H", Some("3.0")).await;
    c.program(&pump, json!({"effective_at": "2027-01-04T10:00:00-06:00", "kind": "flex",
        "steps": [{"start": "22:00", "end": "06:00", "rate_per_hour": "35"}, {"start": "06:00", "end": "22:00", "rate_per_hour": "20"}]})).await;
    c.fill(
        &pump,
        fill_body("2027-01-04T10:00:00-06:00", "baclofen", "2000", "mcg/mL", "20.0"),
    )
    .await;
    let f = c.forecast(&pump).await;
    assert_eq!(
        f["alarm_at"].as_str().map(|s| &s[..16]),
        Some("2027-03-02T08:34"),
        "02:34 CST"
    );
    assert_eq!(
        (f["due_date"].as_str(), f["binding"].as_str()),
        (Some("2027-02-23"), Some("volume"))
    );
    let programs = c
        .app
        .get(&format!("/api/v1/pumps/{pump}/programs"), &c.staff)
        .await
        .json();
    assert_eq!(programs["items"][0]["daily_amount"], "600");
}

#[actix_web::test]
async fn examples_3_to_5_through_the_api() {
    let c = clinic().await;
    // Ex 3: ziconotide diluted 5 mcg/mL, 3.6 mcg/day → stability 40 days binds.
    let zic = c.pump("synchromed-ii-40", "NGP300003H", None).await;
    c.program(
        &zic,
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "3.6"}),
    )
    .await;
    let mut body = fill_body("2027-01-04T09:00:00-06:00", "ziconotide", "5", "mcg/mL", "40.0");
    body["diluted"] = json!(true);
    let res = c.fill(&zic, body.clone()).await.json();
    assert_eq!(res["fill"]["stability_days"], 40);
    let f = c.forecast(&zic).await;
    assert_eq!(f["alarm_at"], "2027-02-26T09:40:00Z", "03:40 CST");
    assert_eq!(
        (f["due_date"].as_str(), f["binding"].as_str()),
        (Some("2027-02-13"), Some("stability"))
    );
    body["first_fill"] = json!(true);
    body["residual_ml"] = json!("40.0");
    c.fill(&zic, body).await;
    assert_eq!(c.forecast(&zic).await["due_date"], "2027-01-18", "first fill: day 14");

    // Ex 4: boluses counted as all taken.
    let bol = c.pump("synchromed-ii-20", "NGP400004H", None).await;
    c.program(
        &bol,
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "2.0",
        "bolus": {"dose": "0.1", "max_per_day": 4}}),
    )
    .await;
    c.fill(
        &bol,
        fill_body("2027-01-04T09:00:00-06:00", "morphine", "10", "mg/mL", "20.0"),
    )
    .await;
    let f = c.forecast(&bol).await;
    assert_eq!(f["alarm_at"], "2027-03-20T15:00:00Z", "10:00 CDT, 75 days");
    assert_eq!(f["due_date"], "2027-03-13");

    // Ex 5: priming bolus and a raised alarm volume.
    let prime = c.pump("synchromed-ii-20", "NGP500005H", Some("4")).await;
    c.program(
        &prime,
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "400"}),
    )
    .await;
    let mut body = fill_body("2027-01-04T09:00:00-06:00", "baclofen", "2000", "mcg/mL", "20.0");
    body["prime_ml"] = json!("0.25");
    body["first_fill"] = json!(true);
    c.fill(&prime, body).await;
    let f = c.forecast(&prime).await;
    assert_eq!(f["usable_volume_ml"], "15.75");
    assert_eq!(f["alarm_at"], "2027-03-24T09:00:00Z", "04:00 CDT");
    assert_eq!(f["due_date"], "2027-03-17");
}

#[actix_web::test]
async fn refills_compare_the_residual_with_the_forecast() {
    let c = clinic().await;
    let pump = c.pump("synchromed-ii-20", "NGP600006H", None).await;
    c.program(
        &pump,
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "2"}),
    )
    .await;
    c.fill(
        &pump,
        fill_body("2027-01-04T09:00:00-06:00", "morphine", "10", "mg/mL", "20.0"),
    )
    .await;
    // 0.2 mL/day for 10 days: 18.0 mL expected at the next refill.
    let mut close = fill_body("2027-01-14T09:00:00-06:00", "morphine", "10", "mg/mL", "20.0");
    close["residual_ml"] = json!("17.2");
    c.app
        .clock
        .set(Utc.with_ymd_and_hms(2027, 1, 14, 18, 0, 0).single().expect("instant"));
    let res = c.fill(&pump, close).await.json();
    assert_eq!(
        (
            res["fill"]["expected_residual_ml"].as_str(),
            res["fill"]["discrepancy"].as_bool()
        ),
        (Some("18"), Some(false))
    );
    let mut far = fill_body("2027-01-24T09:00:00-06:00", "morphine", "10", "mg/mL", "20.0");
    far["residual_ml"] = json!("16.5");
    c.app
        .clock
        .set(Utc.with_ymd_and_hms(2027, 1, 24, 18, 0, 0).single().expect("instant"));
    let res = c.fill(&pump, far).await.json();
    assert_eq!(res["fill"]["discrepancy"], true, "1.5 mL off on a 20 mL pump");
    let list = c
        .app
        .get("/api/v1/worklists/refills?within_days=365", &c.staff)
        .await
        .json();
    let entry = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["pump_id"] == pump.as_str())
        .expect("on the list")
        .clone();
    assert_eq!(entry["discrepancy_at_last_fill"], true);
}

#[actix_web::test]
async fn bad_fills_and_programmes_are_refused_and_write_nothing() {
    let c = clinic().await;
    let pump = c.pump("synchromed-ii-20", "NGP700007H", None).await;
    let cases = [
        (json!({"volume_ml": "25"}), "volume_ml", "out_of_range"),
        // A sign is not part of the decimal format: refused as a value, before any range.
        (json!({"residual_ml": "-1"}), "residual_ml", "invalid_value"),
        (json!({"residual_ml": -1}), "residual_ml", "invalid_value"),
        (json!({"drug": "aspirin"}), "drug", "unknown_drug"),
        (
            json!({"concentration_unit": "mcg/mL"}),
            "concentration_unit",
            "wrong_unit",
        ),
        (
            json!({"drug": "fentanyl", "concentration_unit": "mcg/mL"}),
            "drug",
            "no_stability_limit",
        ),
        (json!({"filled_at": "2030-01-01T00:00:00Z"}), "filled_at", "in_future"),
        (json!({"concentration": "0"}), "concentration", "out_of_range"),
    ];
    for (overrides, field, code) in cases {
        let mut body = fill_body("2027-01-04T09:00:00-06:00", "morphine", "10", "mg/mL", "20.0");
        for (k, v) in overrides.as_object().expect("object") {
            body[k] = v.clone();
        }
        let res = c.fill(&pump, body).await;
        res.problem(422, "validation_failed");
        assert_eq!(res.json()["errors"][0]["field"], field, "{}", res.text());
        assert_eq!(res.json()["errors"][0]["code"], code, "{}", res.text());
    }
    let naive = c
        .fill(
            &pump,
            fill_body("2027-01-04T09:00:00", "morphine", "10", "mg/mL", "20.0"),
        )
        .await;
    naive.problem(422, "validation_failed");
    assert_eq!(
        c.app.get(&format!("/api/v1/pumps/{pump}/fills"), &c.staff).await.json()["items"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );

    for (body, field, code) in [
        (
            json!({"effective_at": "2027-01-04T09:00:00Z", "kind": "flex", "steps": [{"start": "06:00", "end": "20:00", "rate_per_hour": "20"}, {"start": "22:00", "end": "06:00", "rate_per_hour": "35"}]}),
            "steps",
            "steps_do_not_cover_the_day",
        ),
        (
            json!({"effective_at": "2027-01-04T09:00:00Z", "kind": "continuous"}),
            "daily_dose",
            "required",
        ),
        (
            json!({"effective_at": "2027-01-04T09:00:00Z", "kind": "daily", "daily_dose": "1"}),
            "kind",
            "invalid_kind",
        ),
        (
            json!({"effective_at": "2027-01-04T09:00:00Z", "kind": "continuous", "daily_dose": "-1"}),
            "daily_dose",
            "invalid_value",
        ),
        (
            json!({"effective_at": "2027-01-04T09:00:00Z", "kind": "flex", "steps": [{"start": "6am", "end": "06:00", "rate_per_hour": "1"}]}),
            "steps[0].start",
            "invalid_time",
        ),
    ] {
        let res = c
            .app
            .post(&format!("/api/v1/pumps/{pump}/programs"), &c.staff, body)
            .await;
        res.problem(422, "validation_failed");
        assert_eq!(
            (
                res.json()["errors"][0]["field"].as_str(),
                res.json()["errors"][0]["code"].as_str()
            ),
            (Some(field), Some(code)),
            "{}",
            res.text()
        );
    }
    assert_eq!(
        c.app
            .get(&format!("/api/v1/pumps/{pump}/programs"), &c.staff)
            .await
            .json()["items"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );

    let dup = c.app.post("/api/v1/pumps", &c.staff, json!({"patient_id": c.patient, "model": "synchromed-ii-20", "serial_number": "NGP700007H", "implanted_on": "2026-06-01"})).await;
    dup.problem(409, "serial_taken");
    let bad = c.app.post("/api/v1/pumps", &c.staff, json!({"patient_id": c.patient, "model": "pumpomatic", "serial_number": "X1", "implanted_on": "2026-06-01", "alarm_ml": "25"})).await;
    bad.problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["model"]);
    let alarm = c.app.post("/api/v1/pumps", &c.staff, json!({"patient_id": c.patient, "model": "synchromed-ii-20", "serial_number": "X2", "implanted_on": "2026-06-01", "alarm_ml": "25"})).await;
    assert_eq!(alarm.error_fields(), ["alarm_ml"]);
}

#[actix_web::test]
async fn the_worklist_lists_due_pumps_with_booking_and_flags() {
    let c = clinic().await;
    let soon = c.pump("synchromed-ii-20", "NGP800008H", None).await;
    c.program(
        &soon,
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "20"}),
    )
    .await;
    // 10 mg/mL at 20 mg/day: 2 mL/day; 18 usable mL → alarm on day 9, due day 2 (Jan 6).
    c.fill(
        &soon,
        fill_body("2027-01-04T09:00:00-06:00", "morphine", "10", "mg/mL", "20.0"),
    )
    .await;
    let missing = c.pump("synchromed-ii-20", "NGP800009H", None).await;
    let later = c.pump("synchromed-ii-40", "NGP800010H", None).await;
    c.program(
        &later,
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "5"}),
    )
    .await;
    c.fill(
        &later,
        fill_body("2027-01-04T09:00:00-06:00", "morphine", "25", "mg/mL", "40.0"),
    )
    .await;

    let list = c
        .app
        .get("/api/v1/worklists/refills?within_days=14", &c.staff)
        .await
        .json();
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["pump_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [missing.as_str(), soon.as_str()],
        "soonest first; the 180-day pump is not due"
    );
    assert_eq!(list["items"][0]["due_now_missing_data"], true);
    assert_eq!(list["items"][0]["patient_name"], "Ray Quinn");
    assert!(list["items"][1]["refill_appointment"].is_null());

    // Book a refill before the due date: the worklist says so.
    let hours: Vec<Value> = ["monday", "tuesday", "wednesday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "08:00", "end": "17:00"}))
        .collect();
    let provider = c
        .app
        .post(
            "/api/v1/providers",
            &c.staff,
            json!({"name": "Nurse Kim", "role": "nurse", "hours": hours}),
        )
        .await
        .json();
    let slots = c
        .app
        .get(&format!("/api/v1/pumps/{soon}/refill-slots"), &c.staff)
        .await
        .json();
    assert_eq!(slots["due_date"], "2027-01-06");
    let first = slots["items"][0].clone();
    assert_eq!(
        first["local_start"], "2027-01-04T13:00:00",
        "now is 12:00 and refills need an hour's notice"
    );
    let booked = c.app.post("/api/v1/appointments", &c.staff,
        json!({"patient_id": c.patient, "provider_id": provider["id"], "appointment_type": "refill", "start": first["start"]})).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text());
    let list = c
        .app
        .get("/api/v1/worklists/refills?within_days=14", &c.staff)
        .await
        .json();
    assert_eq!(list["items"][1]["refill_appointment"]["id"], booked.json()["id"]);

    c.app
        .clock
        .set(Utc.with_ymd_and_hms(2027, 1, 8, 18, 0, 0).single().expect("instant"));
    let list = c
        .app
        .get("/api/v1/worklists/refills?within_days=0", &c.staff)
        .await
        .json();
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|e| e["overdue"] == true),
        "{list}"
    );
    c.app
        .get("/api/v1/worklists/refills?within_days=999", &c.staff)
        .await
        .problem(422, "validation_failed");
}

#[actix_web::test]
async fn pump_access_is_scoped_and_audited() {
    let c = clinic().await;
    let pump = c.pump("synchromed-ii-20", "NGP900011H", None).await;
    let reader = c.app.token(&["pumps:read"]);
    let other = c.app.token(&["patients:read"]);
    c.app
        .get(&format!("/api/v1/pumps/{pump}"), &other)
        .await
        .problem(403, "forbidden");
    c.app
        .post(&format!("/api/v1/pumps/{pump}/fills"), &reader, json!({}))
        .await
        .problem(403, "forbidden");
    assert_eq!(
        c.app
            .get(&format!("/api/v1/pumps/{pump}/forecast"), &reader)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        c.app
            .get(&format!("/api/v1/patients/{}/pumps", c.patient), &reader)
            .await
            .json()["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let events = c
        .app
        .get(&format!("/api/v1/audit-events?subject_id={}", c.patient), &c.app.admin)
        .await
        .json();
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in ["pump.create", "pump.read", "pump.list"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let explanted = c
        .app
        .patch(
            &format!("/api/v1/pumps/{pump}"),
            &c.staff,
            json!({"version": 1, "status": "explanted"}),
        )
        .await;
    assert_eq!(explanted.json()["status"], "explanted");
    c.fill(
        &pump,
        fill_body("2027-01-04T09:00:00-06:00", "morphine", "10", "mg/mL", "20.0"),
    )
    .await
    .problem(409, "pump_explanted");
    let list = c
        .app
        .get("/api/v1/worklists/refills?within_days=30", &c.staff)
        .await
        .json();
    assert!(
        list["items"].as_array().expect("items").is_empty(),
        "explanted pumps leave the worklist"
    );
}

#[actix_web::test]
async fn catalogues_are_clinic_editable() {
    let c = clinic().await;
    let model = c
        .app
        .post("/api/v1/pump-models", &c.staff, json!({"code": "acme-flow-30", "manufacturer": "Acme", "model": "Flow 30",
            "reservoir_ml": "30", "default_alarm_ml": "2.5", "service_life_months": 84, "source": "Acme labelling rev. 3"}))
        .await;
    assert_eq!(model.status, StatusCode::CREATED, "{}", model.text());
    c.app
        .post(
            "/api/v1/pump-models",
            &c.staff,
            json!({"code": "acme-flow-30", "manufacturer": "A", "model": "B",
            "reservoir_ml": "30", "default_alarm_ml": "2.5", "service_life_months": 84, "source": "x"}),
        )
        .await
        .problem(409, "code_taken");
    let bad = c
        .app
        .post(
            "/api/v1/pump-models",
            &c.staff,
            json!({"code": "Bad Code", "manufacturer": "", "model": "B",
            "reservoir_ml": "30", "default_alarm_ml": "31", "service_life_months": 0, "source": "x"}),
        )
        .await;
    bad.problem(422, "validation_failed");
    assert_eq!(
        bad.error_fields(),
        ["code", "manufacturer", "default_alarm_ml", "service_life_months"]
    );

    let edited = c
        .app
        .patch(
            "/api/v1/pump-models/acme-flow-30",
            &c.staff,
            json!({"version": 1, "default_alarm_ml": "3"}),
        )
        .await;
    assert_eq!(edited.json()["default_alarm_ml"], "3");
    let pump = c.pump("acme-flow-30", "ACME0001", None).await;
    let p = c.app.get(&format!("/api/v1/pumps/{pump}"), &c.staff).await.json();
    assert_eq!(
        (p["reservoir_ml"].as_str(), p["alarm_ml"].as_str()),
        (Some("30"), Some("3"))
    );
    assert_eq!(p["replacement_deadline"], "2033-06-01", "implant + 84 months");

    let drug = c
        .app
        .post(
            "/api/v1/drugs",
            &c.staff,
            json!({"code": "clonidine", "name": "Clonidine", "unit": "mcg", "source": "none yet"}),
        )
        .await;
    assert_eq!(drug.status, StatusCode::CREATED, "{}", drug.text());
    c.program(
        &pump,
        json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "100"}),
    )
    .await;
    let refused = c
        .fill(
            &pump,
            fill_body("2027-01-04T09:00:00-06:00", "clonidine", "500", "mcg/mL", "30"),
        )
        .await;
    assert_eq!(refused.json()["errors"][0]["code"], "no_stability_limit");
    c.app
        .patch(
            "/api/v1/drugs/clonidine",
            &c.staff,
            json!({"version": 1, "stability_undiluted_days": 60}),
        )
        .await;
    let filled = c
        .fill(
            &pump,
            fill_body("2027-01-04T09:00:00-06:00", "clonidine", "500", "mcg/mL", "30"),
        )
        .await;
    assert_eq!(filled.status, StatusCode::CREATED, "{}", filled.text());
    assert_eq!(filled.json()["fill"]["stability_days"], 60);
    let events = c
        .app
        .get("/api/v1/audit-events?subject_type=drug", &c.app.admin)
        .await
        .json();
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["drug.update", "drug.create"],
        "who changed a stability limit is recorded"
    );
    let models = c
        .app
        .get("/api/v1/audit-events?subject_id=acme-flow-30", &c.app.admin)
        .await
        .json();
    assert_eq!(models["items"].as_array().map(Vec::len), Some(2));
    c.app
        .get("/api/v1/pump-models", &c.app.token(&["patients:read"]))
        .await
        .problem(403, "forbidden");
    c.app
        .get("/api/v1/pumps?cursor=nonsense", &c.staff)
        .await
        .problem(422, "validation_failed");
}

/// Decimals are read as the schema says (digits, an optional fraction, or a JSON number);
/// whole floats count as integers, as JSON Schema has it.
#[actix_web::test]
async fn decimals_and_integers_are_read_exactly_as_documented() {
    let c = clinic().await;
    let pump = c.pump("synchromed-ii-40", "NGP400009H", None).await;
    for (field, bad) in [
        ("volume_ml", "+40"),
        ("volume_ml", "4e1"),
        ("residual_ml", " 0"),
        ("concentration", "1_000"),
    ] {
        let mut body = fill_body("2027-01-04T09:00:00-06:00", "morphine", "25", "mg/mL", "40");
        body[field] = json!(bad);
        let problem = c.fill(&pump, body).await.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{bad}: {problem}");
    }
    // A JSON number is fine, and is stored exactly as written.
    let mut body = fill_body("2027-01-04T09:00:00-06:00", "morphine", "25", "mg/mL", "40");
    body["volume_ml"] = json!(39.9);
    let res = c.fill(&pump, body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.json()["fill"]["volume_ml"], "39.9");

    let policy = c.app.get("/api/v1/forecast-policy", &c.staff).await.json();
    let put = |body: Value| {
        c.app.call(
            actix_web::http::Method::PUT,
            "/api/v1/forecast-policy",
            Some(&c.staff),
            Some(body),
        )
    };
    let half = put(json!({"version": policy["version"], "margin_days": 7.5})).await;
    assert_eq!(
        half.problem(422, "validation_failed")["errors"][0]["field"],
        "margin_days"
    );
    let whole = put(json!({"version": policy["version"], "margin_days": 7.0})).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text());
    assert_eq!(whole.json()["margin_days"], 7);
}

/// When `CLINIC_TIME_ZONE` changes, `serve` recomputes at start the forecasts made in the old
/// zone: flex steps follow the clinic's wall clock, so the alarm moves with the zone.
#[actix_web::test]
async fn forecasts_made_in_another_clinic_zone_are_recomputed() {
    let c = clinic().await;
    let pump = c.pump("synchromed-ii-20", "NGP200002T", Some("3.0")).await;
    c.program(&pump, json!({"effective_at": "2027-01-04T10:00:00-06:00", "kind": "flex",
        "steps": [{"start": "22:00", "end": "06:00", "rate_per_hour": "35"}, {"start": "06:00", "end": "22:00", "rate_per_hour": "20"}]})).await;
    let res = c
        .fill(
            &pump,
            fill_body("2027-01-04T10:00:00-06:00", "baclofen", "2000", "mcg/mL", "20.0"),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let chicago = c.forecast(&pump).await;
    assert_eq!(chicago["inputs"]["time_zone"], "America/Chicago", "{chicago}");

    let recompute = |zone: &str| {
        let zone = clinic_domain::time::ClinicZone::parse(zone).expect("zone");
        let mut conn = clinic_store::pool::get(&c.app.pool).expect("connection");
        clinic_pumps::registry::recompute_made_in_other_zones(&mut conn, zone, c.app.state().now()).expect("recompute")
    };
    assert_eq!(recompute("America/Chicago"), 0, "nothing to do in the same zone");
    assert_eq!(recompute("Asia/Tokyo"), 1);
    let tokyo = c.forecast(&pump).await;
    assert_eq!(tokyo["inputs"]["time_zone"], "Asia/Tokyo", "{tokyo}");
    assert_ne!(
        tokyo["alarm_at"], chicago["alarm_at"],
        "the 22:00 to 06:00 step moved with the zone"
    );
    assert_eq!(recompute("Asia/Tokyo"), 0, "done once");
    {
        use diesel::prelude::*;
        let mut conn = clinic_store::pool::get(&c.app.pool).expect("connection");
        let recorded: String = clinic_store::schema::settings::table
            .find("forecast_time_zone")
            .select(clinic_store::schema::settings::body)
            .first(&mut **conn)
            .expect("the zone of the stored forecasts is recorded");
        assert_eq!(recorded, "Asia/Tokyo");
    }
    assert_eq!(recompute("America/Chicago"), 1);
    let back = c.forecast(&pump).await;
    assert_eq!(back["alarm_at"], chicago["alarm_at"]);
}
