//! The checks at the door (`clinic_api::edge`), through the app on both databases: control
//! characters in JSON, forms, queries and paths; oversized headers; cursors a list did not
//! issue. `hostile_text.rs` repeats the character cases for every operation of the OpenAPI
//! document; this suite pins the exact answers and what is still accepted.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::TestApp;
use serde_json::{json, Value};

fn patient(notes: &str, given: &str) -> Value {
    json!({
        "given_name": given,
        "family_name": "Rivera",
        "date_of_birth": "1980-02-03",
        "email": "ana@example.org",
        "notes": notes,
    })
}

/// `(field, code)` of each field error in a problem body.
fn field_errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or("").to_owned(),
                        e["code"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn json_text_with_control_characters_is_refused_and_nothing_is_stored() {
    let app = TestApp::new().await;
    let before = app.counts().await;
    for (body, field) in [
        (patient("x\u{0}y", "Ana"), "notes"),
        (patient("ok", "A\u{7f}na"), "given_name"),
        (patient("ok", "Ana\nMaria"), "given_name"),
        (patient("\u{1b}[31mred", "Ana"), "notes"),
    ] {
        let res = app.post("/api/v1/patients", &app.admin, body).await;
        let problem = res.problem(422, "validation_failed");
        assert_eq!(
            field_errors(&problem),
            vec![(field.to_owned(), "invalid_characters".to_owned())]
        );
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.contains("red")),
            "the text is not echoed"
        );
    }
    // A lone surrogate cannot be a Rust string: named like the other refusals, not as broken JSON.
    let raw = br#"{"given_name": "\ud800", "family_name": "Rivera", "date_of_birth": "1980-02-03"}"#;
    let res = app
        .send(
            TestRequest::post()
                .uri("/api/v1/patients")
                .insert_header(("authorization", format!("Bearer {}", app.admin)))
                .insert_header(("content-type", "application/json"))
                .set_payload(raw.to_vec()),
        )
        .await;
    let problem = res.problem(422, "validation_failed");
    assert_eq!(
        field_errors(&problem),
        vec![("given_name".into(), "invalid_characters".into())]
    );
    assert_eq!(app.counts().await, before, "no patient and no audit event was written");

    // Notes are multi-line; the printable rest of Unicode is left to each field's rules.
    let ok = app
        .post(
            "/api/v1/patients",
            &app.admin,
            patient("line one\nline\ttwo\r\n", "Zoë"),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());
    assert_eq!(
        ok.json()["notes"],
        "line one\nline\ttwo",
        "trimmed, as notes always are"
    );
}

#[actix_web::test]
async fn query_parameters_and_path_segments_with_control_characters_are_refused() {
    let app = TestApp::new().await;
    for uri in [
        "/api/v1/articles?q=%00",
        "/api/v1/patients?q=a%00b",
        "/api/v1/patients?limit=5&q=%0A",
    ] {
        let res = app.get(uri, &app.admin).await;
        let problem = res.problem(400, "invalid_query");
        assert_eq!(
            field_errors(&problem),
            vec![("q".into(), "invalid_query".into())],
            "{uri}"
        );
    }
    let res = app.get("/api/v1/patients?q=%FF", &app.admin).await;
    res.problem(400, "invalid_query");
    // The public API needs no token and answers the same.
    let res = app.send(TestRequest::get().uri("/api/v1/articles?q=%00")).await;
    res.problem(400, "invalid_query");

    for uri in ["/api/v1/patients/%00", "/api/v1/articles/a%00b", "/api/v1/patients/%C3"] {
        app.get(uri, &app.admin).await.problem(404, "not_found");
    }

    // HTML doors answer with a page that offers the clinic's phone, never cached.
    let page = app.send(TestRequest::get().uri("/articles/a%00b")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert!(page.text().contains("tel:+13125550100"), "{}", page.text());
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    let page = app.send(TestRequest::get().uri("/email/stop?t=a%00b")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.text().contains("We could not read that link") && page.text().contains("tel:+13125550100"));
}

#[actix_web::test]
async fn the_request_form_names_fields_with_control_characters_and_stores_nothing() {
    let app = TestApp::new().await;
    {
        let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
        clinic_scheduling::types::seed(&mut conn, app.state().now()).expect("appointment types");
    }
    let form = |body: &'static str| {
        app.send(
            TestRequest::post()
                .uri("/appointments/request")
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(body),
        )
    };
    let bad = form(
        "given_name=Ana%00&family_name=Diaz&email=ana%40example.org&phone=312+555+0199&reason=consultation&preferred_times=Mornings&consent_to_contact=yes",
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text());
    let html = bad.text();
    assert!(html.contains("control character"), "the page names the problem: {html}");
    assert!(
        html.contains("value=\"Ana\""),
        "the rest of what was typed is kept: {html}"
    );
    let requests = app.get("/api/v1/appointment-requests", &app.admin).await.json();
    assert_eq!(requests["items"].as_array().map(Vec::len), Some(0), "nothing stored");

    // Preferred times are free text over several lines.
    let ok = form(
        "given_name=Ana&family_name=Diaz&email=ana%40example.org&phone=312+555+0199&reason=consultation&preferred_times=Mondays%0D%0AFridays&consent_to_contact=yes",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
}

#[actix_web::test]
async fn headers_over_the_documented_total_get_431() {
    let app = TestApp::new().await;
    let request = |size: usize| {
        TestRequest::get()
            .uri("/healthz")
            .insert_header(("x-padding", "a".repeat(size)))
    };
    assert_eq!(app.send(request(15 * 1024)).await.status, StatusCode::OK);
    let res = app.send(request(64 * 1024)).await;
    res.problem(431, "headers_too_large");
    let res = app.send(request(clinic_api::edge::MAX_HEADER_BYTES)).await;
    assert_eq!(
        res.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "the limit counts every header line"
    );
}

#[actix_web::test]
async fn every_list_refuses_a_cursor_it_did_not_issue() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for given in ["Ana", "Ben", "Cy"] {
        ids.push(
            app.create_patient(given, "Rivera").await["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    // Follow the patients list page by page: its own cursors work.
    let first = app.get("/api/v1/patients?limit=2", &app.admin).await.json();
    let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
    let second = app
        .get(&format!("/api/v1/patients?limit=2&cursor={cursor}"), &app.admin)
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let seen = first["items"].as_array().map(Vec::len).unwrap_or(0)
        + second.json()["items"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(seen, 3);

    let audit = app.get("/api/v1/audit-events?limit=1", &app.admin).await.json();
    let audit_cursor = audit["next_cursor"].as_str().expect("more audit events").to_owned();
    let lists = [
        "/api/v1/patients",
        "/api/v1/audit-events",
        "/api/v1/articles",
        "/api/v1/appointments",
        "/api/v1/appointment-requests",
        "/api/v1/pumps",
        "/api/v1/reminders",
        "/api/v1/worklists/outreach",
    ];
    let foreign = [
        ids[0].clone(),
        "42".to_owned(),
        "1800000000000000_x".to_owned(),
        "%2F%2F".to_owned(),
    ];
    for list in lists {
        let other = if list.ends_with("patients") {
            &audit_cursor
        } else {
            &cursor
        };
        for bad in foreign.iter().chain([other]) {
            let res = app.get(&format!("{list}?cursor={bad}"), &app.admin).await;
            let problem = res.problem(422, "validation_failed");
            assert_eq!(
                field_errors(&problem),
                vec![("cursor".into(), "invalid_cursor".into())],
                "{list} {bad}"
            );
        }
    }
}
