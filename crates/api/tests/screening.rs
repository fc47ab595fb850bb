//! Candidacy screening through HTTP: criteria, every outcome, audit, bad input.

mod common;

use actix_web::http::StatusCode;
use common::TestApp;
use serde_json::{json, Value};

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

async fn seeded() -> (TestApp, String) {
    let app = TestApp::new().await;
    let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
    clinic_content::seed::run(&mut conn, app.state().now()).expect("seed");
    let p = app.create_patient("Lena", "Moss").await;
    (app, p["id"].as_str().expect("id").to_owned())
}

/// Answers: every criterion `base`, with overrides.
fn answers(base: &str, overrides: &[(&str, &str)]) -> Value {
    let list: Vec<Value> = CRITERIA
        .iter()
        .map(|c| {
            let a = overrides.iter().find(|(k, _)| k == c).map(|(_, v)| *v).unwrap_or(base);
            json!({"criterion": c, "answer": a})
        })
        .collect();
    json!(list)
}

async fn screen(app: &TestApp, patient: &str, answers: Value) -> common::TestResponse {
    app.post(
        &format!("/api/v1/patients/{patient}/screenings"),
        &app.admin,
        json!({"clinician": "Dr. R. Alvarez", "screened_on": "2026-01-05", "answers": answers}),
    )
    .await
}

#[actix_web::test]
async fn criteria_are_seeded_in_order() {
    let (app, _) = seeded().await;
    let reader = app.token(&["patients:read"]);
    let list = app.get("/api/v1/screening-criteria", &reader).await.json();
    let codes: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert_eq!(codes, CRITERIA);
    assert_eq!(list["items"][7]["required_for_trial"], false);
    assert_eq!(list["items"][7]["required_for_implant"], true);
}

#[actix_web::test]
async fn every_outcome_is_reached_and_explained() {
    let (app, patient) = seeded().await;
    let trial = screen(&app, &patient, answers("yes", &[("successful_trial", "unknown")])).await;
    assert_eq!(trial.status, StatusCode::CREATED, "{}", trial.text());
    let trial = trial.json();
    assert_eq!(trial["result"], "ready_for_trial");
    assert!(
        trial["explanation"].as_str().expect("text").contains("50"),
        "names the trial requirement"
    );

    let implant = screen(&app, &patient, answers("yes", &[])).await.json();
    assert_eq!(implant["result"], "ready_for_implant");

    let unknown = screen(
        &app,
        &patient,
        answers("yes", &[("psychological_evaluation_passed", "unknown")]),
    )
    .await
    .json();
    assert_eq!(unknown["result"], "needs_evaluation");
    assert_eq!(unknown["unknown_criteria"], json!(["psychological_evaluation_passed"]));

    let no = screen(
        &app,
        &patient,
        answers(
            "yes",
            &[
                ("no_active_infection", "no"),
                ("psychological_evaluation_passed", "unknown"),
            ],
        ),
    )
    .await
    .json();
    assert_eq!(no["result"], "not_a_candidate");
    assert_eq!(no["failed_criteria"], json!(["no_active_infection"]));
    assert!(no["explanation"].as_str().expect("text").contains("does not replace"));

    let failed_trial = screen(&app, &patient, answers("yes", &[("successful_trial", "no")]))
        .await
        .json();
    assert_eq!(failed_trial["result"], "not_a_candidate");

    let list = app
        .get(&format!("/api/v1/patients/{patient}/screenings"), &app.admin)
        .await
        .json();
    let results: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["result"].as_str())
        .collect();
    assert_eq!(
        results,
        [
            "not_a_candidate",
            "not_a_candidate",
            "needs_evaluation",
            "ready_for_implant",
            "ready_for_trial"
        ],
        "newest first"
    );
    assert_eq!(list["items"][0]["answers"].as_array().map(Vec::len), Some(8));
}

#[actix_web::test]
async fn screenings_are_audited_and_scoped() {
    let (app, patient) = seeded().await;
    let reader = app.token(&["patients:read"]);
    let path = format!("/api/v1/patients/{patient}/screenings");
    app.post(
        &path,
        &reader,
        json!({"clinician": "x", "screened_on": "2026-01-05", "answers": answers("yes", &[])}),
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(
        screen(&app, &patient, answers("yes", &[])).await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.get(&path, &reader).await.status, StatusCode::OK);
    let events = app
        .get(&format!("/api/v1/audit-events?subject_id={patient}"), &app.admin)
        .await
        .json();
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(&actions[..2], ["screening.list", "screening.create"]);
    app.get(
        "/api/v1/patients/0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10/screenings",
        &reader,
    )
    .await
    .problem(404, "not_found");
}

#[actix_web::test]
async fn bad_screening_input_names_fields_and_writes_nothing() {
    let (app, patient) = seeded().await;
    let count = || async {
        app.get(&format!("/api/v1/patients/{patient}/screenings"), &app.admin)
            .await
            .json()["items"]
            .as_array()
            .map(Vec::len)
    };

    let mut with_unknown = answers("yes", &[]);
    with_unknown
        .as_array_mut()
        .expect("array")
        .push(json!({"criterion": "shoe_size", "answer": "yes"}));
    let res = screen(&app, &patient, with_unknown).await;
    res.problem(422, "validation_failed");
    assert_eq!(res.json()["errors"][0]["code"], "unknown_criterion");
    assert_eq!(res.error_fields(), ["answers[8].criterion"]);

    let mut bad_answer = answers("yes", &[]);
    bad_answer[0]["answer"] = json!("maybe");
    let res = screen(&app, &patient, bad_answer).await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["answers[0].answer"]);

    let missing = json!(answers("yes", &[]).as_array().expect("array")[..7].to_vec());
    let res = screen(&app, &patient, missing).await;
    assert_eq!(res.json()["errors"][0]["code"], "missing_criteria");

    let res = app
        .post(
            &format!("/api/v1/patients/{patient}/screenings"),
            &app.admin,
            json!({"clinician": "", "screened_on": "2999-01-01", "answers": answers("yes", &[])}),
        )
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["clinician", "screened_on"]);
    assert_eq!(count().await, Some(0));
}

#[actix_web::test]
async fn edited_criteria_change_new_screenings_not_old_ones() {
    let (app, patient) = seeded().await;
    let editor = app.token(&["content:write"]);
    let first = screen(&app, &patient, answers("yes", &[])).await.json();
    let res = app
        .patch(
            "/api/v1/screening-criteria/bleeding_risk_managed",
            &editor,
            json!({"version": 1, "question": "Is anticoagulation managed for the procedure?"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let off = app
        .patch(
            "/api/v1/screening-criteria/surgery_not_expected_to_help",
            &editor,
            json!({"version": 1, "active": false}),
        )
        .await;
    assert_eq!(off.json()["active"], false);
    let seven: Vec<Value> = answers("yes", &[])
        .as_array()
        .expect("array")
        .iter()
        .filter(|a| a["criterion"] != "surgery_not_expected_to_help")
        .cloned()
        .collect();
    let second = screen(&app, &patient, json!(seven)).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text());
    let list = app
        .get(&format!("/api/v1/patients/{patient}/screenings"), &app.admin)
        .await
        .json();
    let old = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["id"] == first["id"])
        .expect("old");
    assert_eq!(
        old["answers"].as_array().map(Vec::len),
        Some(8),
        "history keeps what was asked"
    );
    assert!(old["answers"].as_array().expect("answers").iter().any(|a| a["question"]
        .as_str()
        .is_some_and(|q| !q.contains("anticoagulation managed for the procedure"))));
    app.patch(
        "/api/v1/screening-criteria/bleeding_risk_managed",
        &editor,
        json!({"version": 1, "why": "stale"}),
    )
    .await
    .problem(409, "version_conflict");
    app.post(
        "/api/v1/screening-criteria",
        &editor,
        json!({"code": "Bad Code", "question": "", "why": "w", "required_for_trial": true, "required_for_implant": true, "position": 1}),
    )
    .await
    .problem(422, "validation_failed");
}
