//! `/console/set-password/{token}` through HTTP on a real database: the one-time link an
//! administrator hands out, the password rules, the same-origin rule, expiry with the
//! injected clock, and the audit trail of the person.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use chrono::Duration;
use clinic_auth::users::{NewUser, UserChanges, UserState};
use clinic_flows::users as flows;
use clinic_patients::audit::Actor;
use common::TestApp;

const ORIGIN: &str = "http://clinic.test";
const GOOD: &str = "gravel lantern orbit tulip";

/// A user made as `clinic user create` makes one, and the path of their set-password link.
fn invite(app: &TestApp, email: &str) -> (clinic_auth::users::User, String) {
    let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
    let now = app.state().now();
    let new = NewUser::parse(email, "Nia Okafor", "scheduler").expect("valid user");
    let user = flows::create(&mut conn, &Actor::system(), new, None, now).expect("created");
    let signer = flows::password_links(app.state().composer.link_secret());
    let path = flows::password_link(&mut conn, &Actor::system(), &signer, user.id, now).expect("link");
    (user, path)
}

fn stored_hash(app: &TestApp, user: &clinic_auth::users::User) -> Option<String> {
    let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
    clinic_auth::users::password_hash(&mut conn, user.id).expect("read")
}

async fn post(app: &TestApp, path: &str, origin: Option<&str>, body: &str) -> common::TestResponse {
    let mut req = TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(body.to_owned());
    if let Some(o) = origin {
        req = req.insert_header(("origin", o));
    }
    app.send(req).await
}

fn form(password: &str, confirm: &str) -> String {
    serde_urlencoded::to_string([("password", password), ("confirm", confirm)]).expect("form")
}

#[actix_web::test]
async fn a_set_password_link_sets_a_password_once() {
    let app = TestApp::new().await;
    let (user, path) = invite(&app, "Nia.Okafor@Clinic.Example");
    assert!(path.starts_with("/console/set-password/"));
    assert!(
        !path.contains(&user.id.to_string()),
        "the link names no user id in clear"
    );

    let page = app.send(TestRequest::get().uri(&path)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    let html = page.text();
    // Kept as entered (the domain part lower-cased, as for every address).
    assert!(html.contains("Nia.Okafor@clinic.example"), "{html}");
    assert!(html.contains(r#"autocomplete="new-password""#));
    assert!(html.contains(r#"<label for="password">"#));
    // A GET changes nothing (a mail scanner may fetch the link).
    assert_eq!(stored_hash(&app, &user), None);

    // Refused and nothing stored: another site's form, no origin at all, two different
    // passwords, a short one, a common one.
    let before = app.row_counts();
    for (origin, body, status) in [
        (Some("https://evil.example"), form(GOOD, GOOD), StatusCode::FORBIDDEN),
        (None, form(GOOD, GOOD), StatusCode::FORBIDDEN),
        (
            Some(ORIGIN),
            form(GOOD, "gravel lantern orbit tulips"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(ORIGIN),
            form("short-one", "short-one"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(ORIGIN),
            form("password1234", "password1234"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (Some(ORIGIN), String::new(), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let r = post(&app, &path, origin, &body).await;
        assert_eq!(r.status, status, "{origin:?} {body}: {}", r.text());
        assert_eq!(stored_hash(&app, &user), None);
    }
    assert_eq!(app.row_counts(), before, "no refused form wrote anything");
    let common = post(&app, &path, Some(ORIGIN), &form("password1234", "password1234")).await;
    assert!(common.text().contains("less common password"), "{}", common.text());

    let done = post(&app, &path, Some(ORIGIN), &form(GOOD, GOOD)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.header("location").as_deref(), Some("/console/password-set"));
    let phc = stored_hash(&app, &user).expect("a hash is stored");
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(clinic_auth::passwords::verify(GOOD, &phc));
    assert_eq!(
        app.send(TestRequest::get().uri("/console/password-set")).await.status,
        StatusCode::OK
    );

    // The link worked once: opening or posting it again is refused, the password stays.
    let again = app.send(TestRequest::get().uri(&path)).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.text().contains("This link was used"));
    let reuse = post(
        &app,
        &path,
        Some(ORIGIN),
        &form("another long passphrase here", "another long passphrase here"),
    )
    .await;
    assert_eq!(reuse.status, StatusCode::GONE);
    assert_eq!(stored_hash(&app, &user), Some(phc));

    // The change is audited against the person, with the request id.
    let events = app
        .get("/api/v1/audit-events?subject_type=user", &app.admin)
        .await
        .json();
    let actions: Vec<(&str, &str)> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["actor_type"].as_str().expect("type"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("user.password_set", "user"),
            ("user.password_link", "system"),
            ("user.create", "system")
        ]
    );
    let set = &events["items"][0];
    assert_eq!(set["actor_user_id"], user.id.to_string());
    assert_eq!(set["subject_id"], user.id.to_string());
    assert!(set["request_id"].is_string());
    let by_person = app
        .get(&format!("/api/v1/audit-events?actor_user_id={}", user.id), &app.admin)
        .await
        .json();
    assert_eq!(by_person["items"].as_array().map(Vec::len), Some(1));
}

#[actix_web::test]
async fn dead_links_are_refused_plainly() {
    let app = TestApp::new().await;
    let (user, path) = invite(&app, "sam@clinic.example");

    // Tampered or made up: 404.
    let mut tampered = path.clone();
    tampered.pop();
    tampered.push(if path.ends_with('A') { 'B' } else { 'A' });
    for p in [
        tampered.as_str(),
        "/console/set-password/nothing",
        "/console/set-password/a.b",
    ] {
        let r = app.send(TestRequest::get().uri(p)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        assert!(r.text().contains("This link does not work"));
    }

    // After a day: 410, for the page and the form.
    app.clock
        .advance(Duration::hours(flows::PASSWORD_LINK_HOURS) + Duration::seconds(1));
    let late = app.send(TestRequest::get().uri(&path)).await;
    assert_eq!(late.status, StatusCode::GONE);
    assert!(late.text().contains("This link has expired"));
    assert_eq!(
        post(&app, &path, Some(ORIGIN), &form(GOOD, GOOD)).await.status,
        StatusCode::GONE
    );
    assert_eq!(stored_hash(&app, &user), None);

    // A fresh link works; disabling the account ends it at once.
    let (_, fresh) = {
        let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
        let signer = flows::password_links(app.state().composer.link_secret());
        let p = flows::password_link(&mut conn, &Actor::system(), &signer, user.id, app.state().now()).expect("link");
        ((), p)
    };
    assert_eq!(app.send(TestRequest::get().uri(&fresh)).await.status, StatusCode::OK);
    {
        let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
        let disable = UserChanges {
            state: Some(UserState::Disabled),
            ..Default::default()
        };
        flows::update(&mut conn, &Actor::system(), user.id, disable, app.state().now()).expect("disabled");
    }
    let disabled = post(&app, &fresh, Some(ORIGIN), &form(GOOD, GOOD)).await;
    assert_eq!(disabled.status, StatusCode::GONE);
    assert!(disabled.text().contains("disabled"));
    assert_eq!(stored_hash(&app, &user), None);
}

#[actix_web::test]
async fn a_referer_from_our_pages_stands_in_for_a_missing_origin() {
    let app = TestApp::new().await;
    let (user, path) = invite(&app, "ref@clinic.example");
    let from_elsewhere = app
        .send(
            TestRequest::post()
                .uri(&path)
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .insert_header(("referer", "https://clinic.test.evil.example/console/"))
                .set_payload(form(GOOD, GOOD)),
        )
        .await;
    assert_eq!(from_elsewhere.status, StatusCode::FORBIDDEN);
    let ours = app
        .send(
            TestRequest::post()
                .uri(&path)
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .insert_header(("referer", format!("{ORIGIN}{path}")))
                .set_payload(form(GOOD, GOOD)),
        )
        .await;
    assert_eq!(ours.status, StatusCode::SEE_OTHER);
    assert!(stored_hash(&app, &user).is_some());
}
