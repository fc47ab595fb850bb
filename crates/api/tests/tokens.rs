//! Token administration and token validity through HTTP.

mod common;

use actix_web::http::{Method, StatusCode};
use chrono::Duration;
use common::TestApp;
use serde_json::json;

#[actix_web::test]
async fn admin_creates_lists_and_revokes_tokens() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "front desk", "scopes": ["patients:read", "scheduling:write"]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let created = res.json();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(secret.starts_with("clinic_"));
    assert_eq!(created["scopes"], json!(["patients:read", "scheduling:write"]));

    assert_eq!(app.get("/api/v1/patients", &secret).await.status, StatusCode::OK);

    let list = app.get("/api/v1/tokens", &app.admin).await;
    assert!(!list.text().contains(&secret), "secrets are never listed");
    let items = list.json()["items"].as_array().expect("items").clone();
    assert!(items
        .iter()
        .any(|t| t["id"] == id.as_str() && t["name"] == "front desk"));

    let revoked = app.delete(&format!("/api/v1/tokens/{id}"), &app.admin).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.json()["revoked_at"].is_string());
    app.get("/api/v1/patients", &secret).await.problem(401, "unauthorized");

    // Both are in the audit log, against the token.
    let audit = app
        .get(&format!("/api/v1/audit-events?subject_id={id}"), &app.admin)
        .await
        .json();
    let mut actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["subject_type"] == "token")
        .filter_map(|e| e["action"].as_str())
        .collect();
    actions.sort_unstable();
    assert_eq!(actions, ["token.create", "token.revoke"]);

    app.delete("/api/v1/tokens/0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", &app.admin)
        .await
        .problem(404, "not_found");
}

#[actix_web::test]
async fn token_requests_are_validated() {
    let app = TestApp::new().await;
    let before = app.get("/api/v1/tokens", &app.admin).await.json()["items"]
        .as_array()
        .map(Vec::len);
    let past = (app.state().now() - Duration::hours(1)).to_rfc3339();
    let res = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "", "scopes": ["root"], "expires_at": past}),
        )
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["name", "scopes[0]", "expires_at"]);
    app.post(
        "/api/v1/tokens",
        &app.admin,
        json!({"name": "x", "scopes": ["admin"], "expires_at": "tomorrow"}),
    )
    .await
    .problem(422, "validation_failed");
    app.post(
        "/api/v1/tokens",
        &app.admin,
        json!({"name": "x", "scopes": ["admin"], "expires_at": "2030-01-01T00:00:00"}),
    )
    .await
    .problem(422, "validation_failed");
    let after = app.get("/api/v1/tokens", &app.admin).await.json()["items"]
        .as_array()
        .map(Vec::len);
    assert_eq!(before, after);
}

#[actix_web::test]
async fn expired_tokens_stop_working() {
    let app = TestApp::new().await;
    let expires = app.state().now() + Duration::minutes(10);
    let token = app.token_with_expiry(&["patients:read"], Some(expires));
    assert_eq!(app.get("/api/v1/patients", &token).await.status, StatusCode::OK);
    app.clock.advance(Duration::minutes(10));
    app.get("/api/v1/patients", &token).await.problem(401, "unauthorized");
}

#[actix_web::test]
async fn only_admins_manage_tokens() {
    let app = TestApp::new().await;
    let writer = app.token(&["patients:write", "patients:read"]);
    app.get("/api/v1/tokens", &writer).await.problem(403, "forbidden");
    app.post(
        "/api/v1/tokens",
        &writer,
        json!({"name": "escalate", "scopes": ["admin"]}),
    )
    .await
    .problem(403, "forbidden");
    app.call(Method::GET, "/api/v1/tokens", None, None)
        .await
        .problem(401, "unauthorized");
}

/// Security review F15: tokens made through the API live at most `CLINIC_TOKEN_MAX_DAYS`;
/// without an expiry they get that maximum, a later expiry is refused and writes nothing.
#[actix_web::test]
async fn api_tokens_have_a_maximum_lifetime() {
    let mut app = TestApp::new().await;
    app.state_mut().limits.token_max_days = 30;
    let now = app.state().now();

    let res = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "integration", "scopes": ["patients:read"]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let token = res.json();
    let expires: chrono::DateTime<chrono::Utc> = token["expires_at"]
        .as_str()
        .expect("an expiry is set")
        .parse()
        .expect("instant");
    assert!(
        (expires - (now + Duration::days(30))).num_seconds().abs() <= 1,
        "{expires}"
    );
    let secret = token["secret"].as_str().expect("secret").to_owned();

    let before = app.get("/api/v1/tokens", &app.admin).await.json()["items"]
        .as_array()
        .expect("items")
        .len();
    let too_late = (now + Duration::days(31)).to_rfc3339();
    let refused = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "forever", "scopes": ["admin"], "expires_at": too_late}),
        )
        .await;
    refused.problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["expires_at"]);
    assert_eq!(refused.json()["errors"][0]["code"], "too_late");
    let after = app.get("/api/v1/tokens", &app.admin).await.json()["items"]
        .as_array()
        .expect("items")
        .len();
    assert_eq!(before, after, "nothing written");

    let within = (now + Duration::days(29)).to_rfc3339();
    let ok = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "month", "scopes": ["admin"], "expires_at": within}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());

    assert_eq!(app.get("/api/v1/patients", &secret).await.status, StatusCode::OK);
    app.clock.advance(Duration::days(30) + Duration::seconds(2));
    app.get("/api/v1/patients", &secret).await.problem(401, "unauthorized");
}
