//! `/api/v1/users` through HTTP on a real database: make, list, read, change and disable
//! staff accounts, hand out set-password links; validation writes nothing; every change is
//! audited against the token that made it.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::TestApp;
use serde_json::json;

#[actix_web::test]
async fn admins_make_list_change_and_disable_staff_accounts() {
    let app = TestApp::new().await;
    let made = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "Nia.Okafor@Clinic.Example", "display_name": "Nia Okafor", "role": "scheduler"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let user = made.json();
    let id = user["id"].as_str().expect("id").to_owned();
    assert_eq!(user["email"], "Nia.Okafor@clinic.example");
    assert_eq!(user["role"], "scheduler");
    assert_eq!(
        user["scopes"],
        json!(["patients:read", "patients:write", "scheduling:write", "pumps:read"])
    );
    assert_eq!(user["state"], "active");
    assert_eq!(user["has_password"], false);
    assert!(user.get("password_hash").is_none());

    // One account per address, whatever its case; bad fields are 422; nothing is written.
    let before = app.row_counts();
    let taken = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "nia.okafor@clinic.example", "display_name": "Someone", "role": "viewer"}),
        )
        .await;
    taken.problem(409, "email_taken");
    let bad = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "not an address", "display_name": " ", "role": "root"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.error_fields(), vec!["email", "display_name", "role"]);
    assert_eq!(app.row_counts(), before);

    let list = app.get("/api/v1/users", &app.admin).await.json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get(&format!("/api/v1/users/{id}"), &app.admin).await.json()["id"],
        id
    );
    assert_eq!(
        app.get("/api/v1/users/0193a0c4-2222-7000-8000-000000000003", &app.admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let promoted = app
        .patch(&format!("/api/v1/users/{id}"), &app.admin, json!({"role": "clinician"}))
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text());
    assert!(promoted.json()["scopes"]
        .as_array()
        .expect("scopes")
        .contains(&json!("pumps:write")));
    let wrong = app
        .patch(&format!("/api/v1/users/{id}"), &app.admin, json!({"state": "gone"}))
        .await;
    assert_eq!(wrong.error_fields(), vec!["state"]);

    // A set-password link for the person, to hand over; it opens the page.
    let link = app
        .post(&format!("/api/v1/users/{id}/password-link"), &app.admin, json!({}))
        .await;
    assert_eq!(link.status, StatusCode::CREATED, "{}", link.text());
    let url = link.json()["url"].as_str().expect("url").to_owned();
    let path = url.strip_prefix("http://clinic.test").expect("under the public URL");
    assert!(path.starts_with("/console/set-password/"));
    assert_eq!(app.send(TestRequest::get().uri(path)).await.status, StatusCode::OK);

    // Disabled: the link stops, no new one is given.
    let disabled = app
        .patch(&format!("/api/v1/users/{id}"), &app.admin, json!({"state": "disabled"}))
        .await;
    assert_eq!(disabled.json()["state"], "disabled");
    assert_eq!(app.send(TestRequest::get().uri(path)).await.status, StatusCode::GONE);
    app.post(&format!("/api/v1/users/{id}/password-link"), &app.admin, json!({}))
        .await
        .problem(409, "user_disabled");

    // Every change is audited against the admin's token.
    let events = app
        .get("/api/v1/audit-events?subject_type=user", &app.admin)
        .await
        .json();
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            assert_eq!(e["actor_type"], "token");
            assert_eq!(e["subject_id"], id.as_str());
            e["action"].as_str().expect("action")
        })
        .collect();
    assert_eq!(
        actions,
        vec!["user.disable", "user.password_link", "user.update", "user.create"]
    );
}

#[actix_web::test]
async fn only_admins_manage_accounts() {
    let app = TestApp::new().await;
    let scheduler = app.token(&["scheduling:write", "patients:read", "patients:write"]);
    app.get("/api/v1/users", &scheduler).await.problem(403, "forbidden");
    app.post(
        "/api/v1/users",
        &scheduler,
        json!({"email": "x@clinic.example", "display_name": "X", "role": "admin"}),
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(
        app.send(TestRequest::get().uri("/api/v1/users")).await.status,
        StatusCode::UNAUTHORIZED
    );
}
