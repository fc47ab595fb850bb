//! Health, readiness, metrics, unknown routes, request ids and the committed OpenAPI file.

mod common;

use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::TestApp;

#[actix_web::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::new().await;
    let health = app.send(TestRequest::get().uri("/healthz")).await;
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (StatusCode::OK, "ok".into())
    );
    let ready = app.send(TestRequest::get().uri("/readyz")).await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (StatusCode::OK, "ready".into())
    );

    let p = app.create_patient("Hal", "Ives").await;
    app.get(
        &format!("/api/v1/patients/{}", p["id"].as_str().expect("id")),
        &app.admin,
    )
    .await;
    let metrics = app.send(TestRequest::get().uri("/metrics")).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.header("content-type").expect("type").starts_with("text/plain"));
    let text = metrics.text();
    assert!(
        text.contains(r#"clinic_http_requests_total{method="GET",route="/api/v1/patients/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("clinic_http_request_duration_seconds_bucket"));
    assert!(
        !text.contains(p["id"].as_str().expect("id")),
        "no identifiers in labels"
    );
}

#[actix_web::test]
async fn readiness_fails_with_a_problem_when_the_database_is_gone() {
    let app = TestApp::new().await;
    // A pool to a database that cannot be reached: readiness must say 503, not hang or 500.
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-dir").join("x.db");
    let pool = clinic_store::Pool::builder()
        .max_size(1)
        .connection_timeout(std::time::Duration::from_millis(200))
        .build_unchecked(clinic_store::pool::Manager::new(
            clinic_store::DatabaseUrl::sqlite_file(&missing),
        ));
    let mut state = app.state().clone();
    state.pool = pool;
    let svc = actix_web::test::init_service(clinic_api::app(state)).await;
    let res = actix_web::test::call_service(&svc, TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
}

/// Gives the app a pool (and a fair queue) of a single connection.
fn give_one_connection(app: &mut TestApp, checkout_timeout: std::time::Duration) {
    let pool = clinic_store::Pool::builder()
        .max_size(1)
        .connection_timeout(checkout_timeout)
        .build(clinic_store::pool::Manager::new(app.db.url().clone()))
        .expect("pool");
    let url = app.db.url().clone();
    app.state_mut().pool = pool.clone();
    app.state_mut().db_gate = clinic_api::state::DbGate::for_pool(&pool, &url);
}

/// Starts a request whose work holds the connection (and the queue's turn) until the
/// returned sender says so; the handle ends with that work.
async fn hold_the_connection(
    app: &TestApp,
) -> (
    std::sync::mpsc::Sender<()>,
    actix_web::rt::task::JoinHandle<Result<(), clinic_api::ApiError>>,
) {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let state = app.state().clone();
    let holder = actix_web::rt::spawn(async move {
        state
            .db(move |_conn| {
                held.recv().ok();
                Ok::<_, clinic_api::ApiError>(())
            })
            .await
    });
    actix_web::rt::task::yield_now().await;
    (release, holder)
}

/// The fair queue in front of the pool (`DbGate`): with every connection busy a request
/// waits its turn, and gets 503 with `Retry-After` once the checkout timeout has passed
/// in the queue, not a hang; the turn comes as soon as the connection is back.
#[actix_web::test]
async fn a_request_that_cannot_get_a_connection_in_time_is_answered_503() {
    let mut app = TestApp::new().await;
    give_one_connection(&mut app, std::time::Duration::from_millis(300));
    assert_eq!(app.get("/readyz", &app.admin).await.status, StatusCode::OK);

    // The gate's only turn is taken by a request whose work holds the connection until told.
    let (release, holder) = hold_the_connection(&app).await;
    let res = app.get("/readyz", &app.admin).await;
    res.problem(503, "service_unavailable");
    assert_eq!(res.header("retry-after").as_deref(), Some("5"));

    release.send(()).expect("holder waiting");
    holder.await.expect("holder task").expect("holder work");
    assert_eq!(app.get("/readyz", &app.admin).await.status, StatusCode::OK);
}

/// A keyed read (`AppState::db_audited_keyed`) runs at once when a connection is free (on
/// SQLite on the worker thread itself), and otherwise queues like any other request: here
/// the only connection is busy, the read waits its turn instead of failing or overtaking,
/// and either way its audit event is stored before the record is returned.
#[actix_web::test]
async fn a_keyed_read_waits_its_turn_when_no_connection_is_free_and_is_audited() {
    let mut app = TestApp::new().await;
    let patient = app.create_patient("Queued", "Reader").await;
    let id = patient["id"].as_str().expect("id").to_string();
    give_one_connection(&mut app, std::time::Duration::from_secs(30));
    let reader = app.token(&["patients:read"]);
    let path = format!("/api/v1/patients/{id}");
    let reads = || async {
        let page = app
            .get(
                &format!("/api/v1/audit-events?subject_id={id}&action=patient.read"),
                &app.admin,
            )
            .await
            .json();
        page["items"].as_array().expect("items").len()
    };

    // A free connection: answered at once, audited.
    assert_eq!(app.get(&path, &reader).await.status, StatusCode::OK);
    assert_eq!(reads().await, 1);

    // The only connection is held: the read queues, and is answered once it comes back.
    let (release, holder) = hold_the_connection(&app).await;
    let (res, ()) = futures_util::future::join(app.get(&path, &reader), async {
        actix_web::rt::task::yield_now().await;
        release.send(()).expect("holder waiting");
    })
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["id"], id.as_str());
    holder.await.expect("holder task").expect("holder work");
    assert_eq!(reads().await, 2);
}

#[actix_web::test]
async fn unknown_routes_are_problem_404s_and_ids_are_echoed() {
    let app = TestApp::new().await;
    let res = app.send(TestRequest::get().uri("/api/v1/nothing-here")).await;
    res.problem(404, "not_found");
    let id = res.header("x-request-id").expect("request id");
    assert!(uuid_like(&id), "{id}");
    let bad_id = app
        .send(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-request-id", "no spaces allowed")),
        )
        .await;
    assert_ne!(bad_id.header("x-request-id").as_deref(), Some("no spaces allowed"));
    assert_eq!(bad_id.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        app.send(TestRequest::get().uri("/swagger-ui/")).await.status,
        StatusCode::OK
    );
    let redirect = app.send(TestRequest::get().uri("/swagger-ui")).await;
    assert!(redirect.status.is_redirection());
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[actix_web::test]
async fn served_openapi_matches_the_committed_file() {
    let app = TestApp::new().await;
    let served = app.send(TestRequest::get().uri("/api-docs/openapi.json")).await.json();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let pretty = serde_json::to_string_pretty(&served).expect("json") + "\n";
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(&path, &pretty).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == pretty,
        "docs/openapi.json differs from the served document; regenerate with \
         `UPDATE_OPENAPI=1 cargo test -p clinic-api --test platform` (or `clinic openapi > docs/openapi.json`) and review the diff"
    );
}

#[actix_web::test]
async fn every_operation_is_documented_with_security_and_an_operation_id() {
    let doc = serde_json::to_value(clinic_api::openapi_document()).expect("json");
    // Operations that need no token, by method and path.
    let public = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/v1/articles"),
        ("get", "/api/v1/articles/{slug}"),
        ("get", "/api/v1/conditions"),
        ("get", "/api/v1/conditions/{slug}"),
        ("get", "/articles"),
        ("get", "/articles/{slug}"),
        ("post", "/api/v1/appointment-requests"),
        ("get", "/api/v1/providers/{id}/calendar.ics"),
        ("get", "/appointments/request"),
        ("post", "/appointments/request"),
        ("get", "/email/stop"),
        ("post", "/email/stop"),
        // The patients' self-service pages: the signed token in the path is the credential.
        ("get", "/my/appointments/{token}"),
        ("post", "/my/appointments/{token}/confirm"),
        ("get", "/my/appointments/{token}/reschedule"),
        ("post", "/my/appointments/{token}/reschedule"),
        ("get", "/my/appointments/{token}/cancel"),
        ("post", "/my/appointments/{token}/cancel"),
        ("get", "/my/book/{token}"),
        ("post", "/my/book/{token}"),
        // A staff member's one-time set-password link: the signed token is the credential.
        ("get", "/console/set-password/{token}"),
        ("post", "/console/set-password/{token}"),
        ("get", "/console/password-set"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/v1/patients/{id}"));
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("item") {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                id.contains('_'),
                "{method} {path}: operation id '{id}' is not <verb>_<resource>"
            );
            assert!(
                op["description"].is_string() || op["summary"].is_string(),
                "{method} {path} has no description"
            );
            let security = op["security"].as_array().expect("security listed");
            // Open: one of the alternatives asks for nothing (`/metrics` also names the
            // optional CLINIC_METRICS_TOKEN).
            let open = security.iter().any(|s| s.as_object().is_some_and(|o| o.is_empty()));
            assert_eq!(
                open,
                public.contains(&(method.as_str(), path.as_str())),
                "{method} {path}: public/secured mismatch"
            );
            if !open {
                assert!(
                    op["responses"]["401"].is_object() && op["responses"]["403"].is_object(),
                    "{method} {path}"
                );
            }
        }
    }
}

#[actix_web::test]
async fn the_document_suits_client_generators() {
    let doc = serde_json::to_value(clinic_api::openapi_document()).expect("json");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                let described =
                    response.get("$ref").is_some() || response["description"].as_str().is_some_and(|d| !d.is_empty());
                assert!(described, "{method} {path} {status}: OpenAPI requires a description");
            }
        }
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let pages: Vec<&String> = schemas.keys().filter(|k| k.starts_with("Page_")).collect();
    assert!(!pages.is_empty());
    for name in pages {
        let item = name.trim_start_matches("Page_");
        assert_eq!(
            schemas[name]["properties"]["items"]["items"]["$ref"],
            format!("#/components/schemas/{item}"),
            "{name} should point at {item}, not copy it"
        );
    }
}

#[actix_web::test]
async fn raw_bodies_get_the_configured_limit_too() {
    let app = TestApp::new().await;
    let big = format!("given_name={}", "a".repeat(70 * 1024));
    let res = app
        .send(
            actix_web::test::TestRequest::post()
                .uri("/appointments/request")
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(big),
        )
        .await;
    res.problem(413, "payload_too_large");
}

#[actix_web::test]
async fn no_cross_origin_access_and_the_security_headers_are_set() {
    let app = TestApp::new().await;
    let res = app
        .send(
            actix_web::test::TestRequest::get()
                .uri("/api/v1/patients")
                .insert_header(("Origin", "https://evil.example"))
                .insert_header(("Authorization", format!("Bearer {}", app.admin))),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    // No CORS: a browser page from another origin cannot read any answer.
    assert!(res.header("access-control-allow-origin").is_none());
    assert!(res.header("access-control-allow-credentials").is_none());
    let preflight = app
        .send(
            actix_web::test::TestRequest::default()
                .method(actix_web::http::Method::OPTIONS)
                .uri("/api/v1/patients")
                .insert_header(("Origin", "https://evil.example"))
                .insert_header(("Access-Control-Request-Method", "POST")),
        )
        .await;
    assert!(preflight.header("access-control-allow-origin").is_none());
    assert!(!preflight.status.is_success(), "{}", preflight.status);
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(res.header(name).as_deref(), Some(value), "{name}");
        assert_eq!(preflight.header(name).as_deref(), Some(value), "{name} on errors too");
    }
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = TestApp::new().await;
    for (method, path, allow) in [
        ("TRACE", "/api/v1/tokens", "GET, POST"),
        ("PUT", "/api/v1/patients", "GET, POST"),
        ("DELETE", "/healthz", "GET"),
        (
            "POST",
            "/api/v1/patients/0193a0c5-0000-7000-8000-000000000001",
            "DELETE, GET, PATCH",
        ),
        // A literal path beside a template it also fits: only its own methods.
        ("OPTIONS", "/api/v1/reminders/preview", "POST"),
    ] {
        let res = app
            .call(
                actix_web::http::Method::from_bytes(method.as_bytes()).expect("method"),
                path,
                Some(&app.admin),
                None,
            )
            .await;
        res.problem(405, "method_not_allowed");
        assert_eq!(res.header("allow").as_deref(), Some(allow), "{method} {path}");
    }
    app.get("/api/v1/nothing-here", &app.admin)
        .await
        .problem(404, "not_found");
}

#[actix_web::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let mut app = TestApp::new().await;
    let secret = "m3tr1cs-0123456789abcdef0123456789abcdef";
    app.state_mut().metrics_token = Some(secret.into());
    let missing = app.send(TestRequest::get().uri("/metrics")).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.json()["code"], "unauthorized");
    assert!(missing
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    for wrong in [
        "Bearer m3tr1cs".to_owned(),
        format!("Bearer {secret}x"),
        format!("Basic {secret}"),
        format!("bearer{secret}"),
        // An admin API token is not the metrics token.
        format!("Bearer {}", app.admin),
    ] {
        let r = app
            .send(
                TestRequest::get()
                    .uri("/metrics")
                    .insert_header(("authorization", wrong.clone())),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let right = app
        .send(
            TestRequest::get()
                .uri("/metrics")
                .insert_header(("authorization", format!("Bearer {secret}"))),
        )
        .await;
    assert_eq!(right.status, StatusCode::OK);
    assert!(right.text().contains("clinic_http_requests_total"));
}
