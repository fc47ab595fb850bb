//! Patients through HTTP: the pattern every later resource copies.

mod common;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use common::TestApp;
use serde_json::json;

#[actix_web::test]
async fn create_read_update_archive() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/api/v1/patients",
            &app.admin,
            json!({
                "given_name": "  Ann ", "family_name": "Lee", "email": "Ann.Lee@Example.ORG",
                "phone": "(312) 555-0123", "date_of_birth": "1961-04-23",
                "time_zone": "Australia/Sydney", "preferred_language": "es-419",
                "email_consent": true, "notes": "prefers mornings"
            }),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let created = res.json();
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(res.header("location"), Some(format!("/api/v1/patients/{id}")));
    assert_eq!(created["given_name"], "Ann");
    assert_eq!(created["email"], "Ann.Lee@example.org");
    assert_eq!(created["phone"], "+13125550123");
    assert_eq!(created["date_of_birth"], "1961-04-23");
    assert_eq!(created["time_zone"], "Australia/Sydney");
    assert_eq!(created["preferred_language"], "es-419");
    assert_eq!(created["version"], 1);

    let read = app.get(&format!("/api/v1/patients/{id}"), &app.admin).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), created);

    let updated = app
        .patch(
            &format!("/api/v1/patients/{id}"),
            &app.admin,
            json!({"version": 1, "email": null, "family_name": "Park", "notes": null}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    let updated = updated.json();
    assert_eq!(updated["family_name"], "Park");
    assert_eq!(updated["email"], serde_json::Value::Null);
    assert_eq!(updated["notes"], serde_json::Value::Null);
    assert_eq!(updated["given_name"], "Ann", "fields not sent stay");
    assert_eq!(updated["version"], 2);

    let archived = app.delete(&format!("/api/v1/patients/{id}"), &app.admin).await;
    assert_eq!(archived.status, StatusCode::NO_CONTENT);
    let list = app.get("/api/v1/patients", &app.admin).await.json();
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "archived patients leave lists"
    );
    let still = app.get(&format!("/api/v1/patients/{id}"), &app.admin).await.json();
    assert!(still["archived_at"].is_string(), "the record stays for audit");
    app.delete(&format!("/api/v1/patients/{id}"), &app.admin)
        .await
        .problem(404, "not_found");
    app.patch(
        &format!("/api/v1/patients/{id}"),
        &app.admin,
        json!({"version": 3, "given_name": "X"}),
    )
    .await
    .problem(404, "not_found");
}

#[actix_web::test]
async fn clinic_zone_and_language_are_the_defaults() {
    let app = TestApp::new().await;
    let p = app
        .post(
            "/api/v1/patients",
            &app.admin,
            json!({"given_name": "Bo", "family_name": "Ng"}),
        )
        .await
        .json();
    assert_eq!(p["time_zone"], "America/Chicago");
    assert_eq!(p["preferred_language"], "en");
    assert_eq!(p["email_consent"], false, "no consent unless given");
}

#[actix_web::test]
async fn stale_version_is_a_conflict_and_changes_nothing() {
    let app = TestApp::new().await;
    let p = app.create_patient("Cy", "Ode").await;
    let path = format!("/api/v1/patients/{}", p["id"].as_str().expect("id"));
    assert_eq!(
        app.patch(&path, &app.admin, json!({"version": 1, "given_name": "Cyd"}))
            .await
            .status,
        StatusCode::OK
    );
    let stale = app
        .patch(&path, &app.admin, json!({"version": 1, "given_name": "Cyrus"}))
        .await;
    let body = stale.problem(409, "version_conflict");
    assert!(body["detail"]
        .as_str()
        .expect("detail")
        .contains("current version is 2"));
    assert_eq!(app.get(&path, &app.admin).await.json()["given_name"], "Cyd");
}

#[actix_web::test]
async fn bad_input_names_every_field_and_writes_nothing() {
    let app = TestApp::new().await;
    let before = app.counts().await;
    let res = app
        .post(
            "/api/v1/patients",
            &app.admin,
            json!({
                "given_name": " ", "family_name": "Lee", "email": "ann@", "phone": "12",
                "date_of_birth": "2999-01-01", "time_zone": "Mars/Olympus", "preferred_language": "english"
            }),
        )
        .await;
    res.problem(422, "validation_failed");
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "date_of_birth",
            "email",
            "given_name",
            "phone",
            "preferred_language",
            "time_zone"
        ]
    );

    for (body, field, code) in [
        (
            json!({"given_name": "A", "family_name": "B", "shoe_size": 9}),
            "shoe_size",
            "unknown_field",
        ),
        (json!({"family_name": "B"}), "given_name", "required"),
        (
            json!({"given_name": "A", "family_name": "B", "email_consent": "yes"}),
            "email_consent",
            "invalid_value",
        ),
        (
            json!({"given_name": 7, "family_name": "B"}),
            "given_name",
            "invalid_value",
        ),
    ] {
        let res = app.post("/api/v1/patients", &app.admin, body).await;
        let problem = res.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{problem}");
    }

    let malformed = app
        .send(
            TestRequest::post()
                .uri("/api/v1/patients")
                .insert_header(("authorization", format!("Bearer {}", app.admin)))
                .insert_header(("content-type", "application/json"))
                .set_payload("{\"given_name\": \"A\","),
        )
        .await;
    malformed.problem(400, "malformed_json");

    let not_json = app
        .send(
            TestRequest::post()
                .uri("/api/v1/patients")
                .insert_header(("authorization", format!("Bearer {}", app.admin)))
                .insert_header(("content-type", "text/plain"))
                .set_payload("given_name=A"),
        )
        .await;
    not_json.problem(415, "unsupported_media_type");

    let huge_notes = "n".repeat(100 * 1024);
    let oversized = app
        .post(
            "/api/v1/patients",
            &app.admin,
            json!({"given_name": "A", "family_name": "B", "notes": huge_notes}),
        )
        .await;
    oversized.problem(413, "payload_too_large");

    let p = app.create_patient("Di", "Eng").await;
    let path = format!("/api/v1/patients/{}", p["id"].as_str().expect("id"));
    let bad_patch = app
        .patch(
            &path,
            &app.admin,
            json!({"version": 1, "phone": "not a phone", "time_zone": "Nowhere"}),
        )
        .await;
    bad_patch.problem(422, "validation_failed");
    assert_eq!(bad_patch.error_fields(), ["phone", "time_zone"]);
    app.patch(&path, &app.admin, json!({"phone": "+13125550199"}))
        .await
        .problem(422, "validation_failed");
    let unchanged = app.get(&path, &app.admin).await.json();
    assert_eq!(
        (unchanged["version"].clone(), unchanged["phone"].clone()),
        (json!(1), json!("+13125550123"))
    );

    let after = app.counts().await;
    assert_eq!(
        after,
        (before.0 + 1, before.1 + 1),
        "only the one valid patient was written"
    );
}

#[actix_web::test]
async fn unknown_and_malformed_ids_are_not_found() {
    let app = TestApp::new().await;
    app.get("/api/v1/patients/0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", &app.admin)
        .await
        .problem(404, "not_found");
    app.get("/api/v1/patients/not-an-id", &app.admin)
        .await
        .problem(404, "not_found");
}

#[actix_web::test]
async fn list_searches_and_pages_with_a_capped_size() {
    let app = TestApp::new().await;
    for (g, f) in [
        ("Ann", "Lee"),
        ("Bo", "Leeds"),
        ("Cy", "Park"),
        ("Di", "Quinn"),
        ("Ed", "Lee"),
    ] {
        app.create_patient(g, f).await;
    }
    let found = app.get("/api/v1/patients?q=LEE", &app.admin).await.json();
    let names: Vec<&str> = found["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["given_name"].as_str())
        .collect();
    assert_eq!(names, ["Ann", "Bo", "Ed"]);
    let by_email = app.get("/api/v1/patients?q=cy.park%40example", &app.admin).await.json();
    assert_eq!(by_email["items"][0]["given_name"], "Cy");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/patients?limit=2&cursor={c}"),
            None => "/api/v1/patients?limit=2".to_owned(),
        };
        let page = app.get(&path, &app.admin).await.json();
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(items.iter().filter_map(|p| p["given_name"].as_str().map(str::to_owned)));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["Ann", "Bo", "Cy", "Di", "Ed"]);

    app.get("/api/v1/patients?limit=101", &app.admin)
        .await
        .problem(422, "validation_failed");
    app.get("/api/v1/patients?limit=0", &app.admin)
        .await
        .problem(422, "validation_failed");
    app.get("/api/v1/patients?cursor=nope", &app.admin)
        .await
        .problem(422, "validation_failed");
    let typo = app.get("/api/v1/patients?serach=lee", &app.admin).await;
    typo.problem(400, "invalid_query");
    app.get("/api/v1/patients?limit=ten", &app.admin)
        .await
        .problem(400, "invalid_query");
}

#[actix_web::test]
async fn every_access_is_audited_with_actor_and_request_id() {
    let app = TestApp::new().await;
    let reader = app.token(&["patients:read"]);
    let p = app.create_patient("Fay", "Gold").await;
    let id = p["id"].as_str().expect("id");
    let res = app
        .send(
            TestRequest::get()
                .uri(&format!("/api/v1/patients/{id}"))
                .insert_header(("authorization", format!("Bearer {reader}")))
                .insert_header(("x-request-id", "trace-123")),
        )
        .await;
    assert_eq!(res.header("x-request-id").as_deref(), Some("trace-123"));
    app.get("/api/v1/patients", &reader).await;
    app.patch(
        &format!("/api/v1/patients/{id}"),
        &app.admin,
        json!({"version": 1, "notes": "x"}),
    )
    .await;
    app.delete(&format!("/api/v1/patients/{id}"), &app.admin).await;

    let events = app
        .get(&format!("/api/v1/audit-events?subject_id={id}"), &app.admin)
        .await
        .json();
    let items = events["items"].as_array().expect("items");
    let actions: Vec<&str> = items.iter().rev().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "patient.create",
            "patient.read",
            "patient.list",
            "patient.update",
            "patient.archive"
        ]
    );
    let read = &items[items.len() - 2];
    assert_eq!(read["request_id"], "trace-123");
    assert!(read["actor_token_id"].is_string());
    assert_ne!(
        read["actor_token_id"], items[0]["actor_token_id"],
        "reader and admin are different actors"
    );

    let reads = app
        .get(
            &format!(
                "/api/v1/audit-events?action=patient.read&actor_token_id={}",
                read["actor_token_id"].as_str().expect("actor")
            ),
            &app.admin,
        )
        .await
        .json();
    assert_eq!(reads["items"].as_array().map(Vec::len), Some(1));
    let page = app.get("/api/v1/audit-events?limit=2", &app.admin).await.json();
    let next = page["next_cursor"].as_str().expect("more events");
    let page2 = app
        .get(&format!("/api/v1/audit-events?limit=2&cursor={next}"), &app.admin)
        .await
        .json();
    assert!(page2["items"][0]["id"].as_i64() < page["items"][1]["id"].as_i64());
    app.get("/api/v1/audit-events", &reader).await.problem(403, "forbidden");
}

#[actix_web::test]
async fn scopes_are_enforced_per_route() {
    let app = TestApp::new().await;
    let reader = app.token(&["patients:read"]);
    let writer = app.token(&["patients:write"]);
    let other = app.token(&["pumps:read"]);
    let p = app.create_patient("Gil", "Hart").await;
    let path = format!("/api/v1/patients/{}", p["id"].as_str().expect("id"));
    let body = json!({"given_name": "A", "family_name": "B"});

    app.call(Method::GET, "/api/v1/patients", None, None)
        .await
        .problem(401, "unauthorized");
    app.call(Method::POST, "/api/v1/patients", None, Some(body.clone()))
        .await
        .problem(401, "unauthorized");
    app.call(Method::GET, &path, Some("clinic_0123"), None)
        .await
        .problem(401, "unauthorized");
    let garbage = app
        .send(
            TestRequest::get()
                .uri(&path)
                .insert_header(("authorization", "Basic dXNlcjpwYXNz")),
        )
        .await;
    garbage.problem(401, "unauthorized");
    assert_eq!(garbage.header("www-authenticate").as_deref(), Some("Bearer"));

    app.get(&path, &other).await.problem(403, "forbidden");
    app.get(&path, &writer).await.problem(403, "forbidden");
    app.post("/api/v1/patients", &reader, body.clone())
        .await
        .problem(403, "forbidden");
    app.patch(&path, &reader, json!({"version": 1}))
        .await
        .problem(403, "forbidden");
    app.delete(&path, &reader).await.problem(403, "forbidden");
    assert_eq!(app.get(&path, &reader).await.status, StatusCode::OK);
    assert_eq!(
        app.post("/api/v1/patients", &writer, body).await.status,
        StatusCode::CREATED
    );
}

#[actix_web::test]
async fn auth_errors_come_before_body_and_query_errors() {
    let app = TestApp::new().await;
    let reader = app.token(&["patients:read"]);
    let bad_body = json!({"given_name": 1, "unknown": true});
    app.call(
        Method::POST,
        "/api/v1/patients",
        Some("clinic_nope"),
        Some(bad_body.clone()),
    )
    .await
    .problem(401, "unauthorized");
    app.post("/api/v1/patients", &reader, bad_body)
        .await
        .problem(403, "forbidden");
    app.call(Method::GET, "/api/v1/patients?limit=ten", Some("clinic_nope"), None)
        .await
        .problem(401, "unauthorized");
    app.get("/api/v1/audit-events?limit=ten", &reader)
        .await
        .problem(403, "forbidden");
}

#[actix_web::test]
async fn null_is_refused_for_fields_that_cannot_be_cleared() {
    let app = TestApp::new().await;
    let p = app.create_patient("Jo", "Kim").await;
    let path = format!("/api/v1/patients/{}", p["id"].as_str().expect("id"));
    let res = app
        .patch(
            &path,
            &app.admin,
            json!({"version": 1, "given_name": null, "email_consent": null}),
        )
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["given_name", "email_consent"]);
    assert_eq!(app.get(&path, &app.admin).await.json()["version"], 1);
}

#[actix_web::test]
async fn query_errors_name_the_parameter() {
    let app = TestApp::new().await;
    let res = app
        .get("/api/v1/audit-events?from=2027-01-01T00:00:00+01:00", &app.admin)
        .await;
    res.problem(400, "invalid_query");
    assert_eq!(res.error_fields(), ["from"]);
    let ok = app
        .get("/api/v1/audit-events?from=2027-01-01T00:00:00%2B01:00", &app.admin)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[actix_web::test]
async fn concurrent_reads_and_writes_all_succeed() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for i in 0..16 {
        ids.push(
            app.create_patient(&format!("P{i}"), "Load").await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let reads = ids.iter().cycle().take(160).map(|id| {
        let path = format!("/api/v1/patients/{id}");
        let app = &app;
        async move { app.get(&path, &app.admin).await.status }
    });
    let writes = ids.iter().map(|id| {
        let path = format!("/api/v1/patients/{id}");
        let app = &app;
        async move {
            app.patch(&path, &app.admin, json!({"version": 1, "notes": "seen"}))
                .await
                .status
        }
    });
    let (read_statuses, write_statuses) = futures_util::future::join(
        futures_util::future::join_all(reads),
        futures_util::future::join_all(writes),
    )
    .await;
    assert!(read_statuses.iter().all(|s| *s == StatusCode::OK), "{read_statuses:?}");
    assert!(
        write_statuses.iter().all(|s| *s == StatusCode::OK),
        "{write_statuses:?}"
    );
}

/// Fail closed (security review F6): when a read's audit event cannot be committed, the
/// record is not returned: 503, and no patient data in the answer.
#[actix_web::test]
async fn a_read_whose_audit_event_cannot_be_stored_returns_nothing() {
    let mut app = TestApp::new().await;
    let id = app.create_patient("Grace", "Hopper").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/patients/{id}"), &app.admin).await.status,
        StatusCode::OK
    );

    // An audit writer whose database cannot be opened: every batch it takes fails.
    let nowhere = std::env::temp_dir()
        .join(format!("no-such-dir-{}", uuid::Uuid::new_v4()))
        .join("audit.db");
    app.state_mut().audit =
        clinic_patients::audit::AuditWriter::start(clinic_store::DatabaseUrl::sqlite_file(&nowhere));

    for path in [format!("/api/v1/patients/{id}"), "/api/v1/patients".to_owned()] {
        let res = app.get(&path, &app.admin).await;
        res.problem(503, "service_unavailable");
        let text = res.text();
        assert!(!text.contains("Grace") && !text.contains("Hopper"), "{path}: {text}");
    }
}
