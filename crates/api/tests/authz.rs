//! The authorization matrix: every operation in the OpenAPI document, called with no token,
//! an expired token, a revoked token and a token of each scope, gets the outcome its
//! documented security promises. Public operations are the ones whose security is empty
//! (the platform test pins that list). An authorized call with an empty or bogus request is
//! refused as bad input or not found, never with a 5xx.

mod common;

use actix_web::http::{Method, StatusCode};
use chrono::Duration;
use clinic_domain::auth::Scope;
use common::TestApp;
use serde_json::{json, Value};

struct Operation {
    method: Method,
    path: String,
    /// `None` for public operations.
    scopes: Option<Vec<String>>,
}

/// Every operation, with its path parameters filled by an id that names nothing.
fn operations() -> Vec<Operation> {
    let doc = serde_json::to_value(clinic_api::openapi_document()).expect("json");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let security = op["security"].as_array().expect("security");
            let scopes = security.iter().find_map(|s| s.get("bearer")).map(|b| {
                b.as_array()
                    .expect("scopes")
                    .iter()
                    .map(|s| s.as_str().expect("scope").to_owned())
                    .collect()
            });
            // Integer parameters get a number (a malformed one would be a 404 that may
            // race the token check); the rest an id that names nothing.
            let integer = |name: &str| {
                op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["name"] == name && p["schema"]["type"] == "integer")
            };
            let concrete: String = path
                .split('/')
                .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) if integer(name) => "1",
                    Some(_) => "01930000-0000-7000-8000-000000000001",
                    None => seg,
                })
                .collect::<Vec<_>>()
                .join("/");
            ops.push(Operation {
                method: Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"),
                path: concrete,
                scopes,
            });
        }
    }
    ops
}

async fn call(app: &TestApp, op: &Operation, token: Option<&str>) -> common::TestResponse {
    let body = matches!(op.method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
    app.call(op.method.clone(), &op.path, token, body).await
}

#[actix_web::test]
async fn every_operation_enforces_its_documented_scopes() {
    let app = TestApp::new().await;
    let expiring = app.token_with_expiry(&["admin"], Some(app.state().now() + Duration::minutes(1)));
    let created = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "to revoke", "scopes": ["admin"]}),
        )
        .await
        .json();
    let revoked = created["secret"].as_str().expect("secret").to_owned();
    let res = app
        .delete(
            &format!("/api/v1/tokens/{}", created["id"].as_str().expect("id")),
            &app.admin,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let scoped: Vec<(Scope, String)> = Scope::ALL.iter().map(|s| (*s, app.token(&[s.as_str()]))).collect();
    app.clock.advance(Duration::minutes(2));

    let ops = operations();
    assert!(ops.len() > 80, "{} operations", ops.len());
    let mut checked = 0;
    for op in &ops {
        let label = format!("{} {}", op.method, op.path);
        let anonymous = call(&app, op, None).await;
        let Some(required) = &op.scopes else {
            assert!(
                !matches!(anonymous.status.as_u16(), 401 | 403),
                "{label}: public, yet {}",
                anonymous.status
            );
            assert!(anonymous.status.as_u16() < 500, "{label}: {}", anonymous.text());
            continue;
        };
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{label}: {}",
            anonymous.text()
        );
        for (what, token) in [("expired", &expiring), ("revoked", &revoked)] {
            let res = call(&app, op, Some(token)).await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "{label} with the {what} token: {}",
                res.text()
            );
        }
        for (scope, token) in &scoped {
            let res = call(&app, op, Some(token)).await;
            let allowed = *scope == Scope::Admin || required.iter().any(|r| r == scope.as_str());
            if allowed {
                assert!(
                    !matches!(res.status.as_u16(), 401 | 403) && res.status.as_u16() < 500,
                    "{label} with {}: {} {}",
                    scope.as_str(),
                    res.status,
                    res.text()
                );
            } else {
                let body: Value = res.problem(403, "forbidden");
                assert!(
                    body["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(required[0].as_str()),
                    "{label}: the refusal names the scope: {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 600, "{checked} scoped calls");
}
