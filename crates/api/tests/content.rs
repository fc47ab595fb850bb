//! Articles, conditions and public pages through HTTP.

mod common;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use common::TestApp;
use serde_json::{json, Value};

async fn seeded() -> (TestApp, String) {
    let app = TestApp::new().await;
    let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
    clinic_content::seed::run(&mut conn, app.state().now()).expect("seed");
    let editor = app.token(&["content:write"]);
    (app, editor)
}

async fn create_draft(app: &TestApp, editor: &str, title: &str, body: &str) -> Value {
    let res = app
        .post(
            "/api/v1/editor/articles",
            editor,
            json!({"title": title, "summary": "A summary.", "body_markdown": body, "author": "Care team",
                   "tags": ["refills"], "conditions": ["severe-spasticity"]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()
}

async fn public_slugs(app: &TestApp, query: &str) -> Vec<String> {
    let res = app
        .call(Method::GET, &format!("/api/v1/articles{query}"), None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["slug"].as_str().map(str::to_owned))
        .collect()
}

#[actix_web::test]
async fn drafts_are_never_public_until_published() {
    let (app, editor) = seeded().await;
    let draft = create_draft(
        &app,
        &editor,
        "Your First Refill Visit",
        "## Before\n\nBring your card.",
    )
    .await;
    assert_eq!(draft["slug"], "your-first-refill-visit");
    assert_eq!(draft["status"], "draft");
    let id = draft["id"].as_str().expect("id");

    assert_eq!(public_slugs(&app, "").await, ["intrathecal-pump-therapy"]);
    app.call(Method::GET, "/api/v1/articles/your-first-refill-visit", None, None)
        .await
        .problem(404, "not_found");
    let page = app
        .send(TestRequest::get().uri("/articles/your-first-refill-visit"))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.text().contains("Page not found"));
    let editor_list = app.get("/api/v1/editor/articles?status=draft", &editor).await.json();
    assert_eq!(editor_list["items"][0]["slug"], "your-first-refill-visit");

    let published = app
        .post(&format!("/api/v1/editor/articles/{id}/publish"), &editor, json!({}))
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text());
    assert!(published.json()["published_at"].is_string());
    assert_eq!(
        public_slugs(&app, "").await,
        ["your-first-refill-visit", "intrathecal-pump-therapy"]
    );
    let page = app
        .send(TestRequest::get().uri("/articles/your-first-refill-visit"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .text()
        .contains("<h1 id=\"article-title\">Your First Refill Visit</h1>"));

    app.post(&format!("/api/v1/editor/articles/{id}/publish"), &editor, json!({}))
        .await
        .problem(409, "invalid_transition");
    app.post(&format!("/api/v1/editor/articles/{id}/unpublish"), &editor, json!({}))
        .await;
    assert_eq!(
        public_slugs(&app, "").await,
        ["intrathecal-pump-therapy"],
        "unpublishing takes it down at once"
    );
    app.post(&format!("/api/v1/editor/articles/{id}/archive"), &editor, json!({}))
        .await;
    app.post(&format!("/api/v1/editor/articles/{id}/unpublish"), &editor, json!({}))
        .await
        .problem(409, "invalid_transition");
    app.call(Method::GET, "/api/v1/articles?status=draft", None, None)
        .await
        .problem(400, "invalid_query");
}

#[actix_web::test]
async fn editor_routes_need_the_content_scope() {
    let (app, _) = seeded().await;
    let reader = app.token(&["patients:read", "patients:write"]);
    let body = json!({"title": "T", "summary": "S", "body_markdown": "B", "author": "A"});
    app.call(Method::POST, "/api/v1/editor/articles", None, Some(body.clone()))
        .await
        .problem(401, "unauthorized");
    app.post("/api/v1/editor/articles", &reader, body)
        .await
        .problem(403, "forbidden");
    app.get("/api/v1/editor/articles", &reader)
        .await
        .problem(403, "forbidden");
    app.post(
        "/api/v1/editor/conditions",
        &reader,
        json!({"name": "X", "summary": "Y"}),
    )
    .await
    .problem(403, "forbidden");
}

#[actix_web::test]
async fn bodies_are_sanitised() {
    let (app, editor) = seeded().await;
    let body = "Hello <script>alert('x')</script>\n\n<img src=x onerror=\"alert(1)\">\n\n[bad](javascript:alert(1)) [ok](https://example.org)";
    let a = create_draft(&app, &editor, "Sanitise me", body).await;
    let html = a["body_html"].as_str().expect("html").to_lowercase();
    assert!(
        !html.contains("<script") && !html.contains("onerror") && !html.contains("javascript:"),
        "{html}"
    );
    assert!(html.contains("href=\"https://example.org\""));
    assert_eq!(a["body_markdown"], body, "the source is kept as written");
    let id = a["id"].as_str().expect("id");
    app.post(&format!("/api/v1/editor/articles/{id}/publish"), &editor, json!({}))
        .await;
    let page = app
        .send(TestRequest::get().uri("/articles/sanitise-me"))
        .await
        .text()
        .to_lowercase();
    assert!(!page.contains("<script") && !page.contains("onerror") && !page.contains("javascript:"));
}

#[actix_web::test]
async fn slug_conflicts_and_stale_versions_are_409() {
    let (app, editor) = seeded().await;
    let a = create_draft(&app, &editor, "Living with a pump", "Body").await;
    let res = app
        .post(
            "/api/v1/editor/articles",
            &editor,
            json!({"title": "Living With A Pump", "summary": "S", "body_markdown": "B", "author": "A"}),
        )
        .await;
    res.problem(409, "slug_taken");
    let other = create_draft(&app, &editor, "Something else", "Body").await;
    let path = format!("/api/v1/editor/articles/{}", other["id"].as_str().expect("id"));
    app.patch(&path, &editor, json!({"version": 1, "slug": "living-with-a-pump"}))
        .await
        .problem(409, "slug_taken");

    let apath = format!("/api/v1/editor/articles/{}", a["id"].as_str().expect("id"));
    assert_eq!(
        app.patch(&apath, &editor, json!({"version": 1, "summary": "New"}))
            .await
            .status,
        StatusCode::OK
    );
    let stale = app
        .patch(&apath, &editor, json!({"version": 1, "summary": "Lost update"}))
        .await;
    stale.problem(409, "version_conflict");
    assert_eq!(app.get(&apath, &editor).await.json()["summary"], "New");
}

#[actix_web::test]
async fn every_edit_is_a_revision_and_any_can_be_restored() {
    let (app, editor) = seeded().await;
    let a = create_draft(&app, &editor, "Pump alarms", "First body").await;
    let id = a["id"].as_str().expect("id");
    let path = format!("/api/v1/editor/articles/{id}");
    app.patch(
        &path,
        &editor,
        json!({"version": 1, "body_markdown": "Second body", "tags": ["alarms"]}),
    )
    .await;
    app.patch(
        &path,
        &editor,
        json!({"version": 2, "title": "Pump alarms explained", "body_markdown": "Third body"}),
    )
    .await;

    let revs = app.get(&format!("{path}/revisions"), &editor).await.json();
    let items = revs["items"].as_array().expect("items");
    let bodies: Vec<&str> = items.iter().filter_map(|r| r["body_markdown"].as_str()).collect();
    assert_eq!(bodies, ["Third body", "Second body", "First body"]);
    assert!(items
        .iter()
        .all(|r| r["edited_by"].is_string() && r["edited_at"].is_string()));

    let restored = app
        .post(&format!("{path}/revisions/1/restore"), &editor, json!({}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());
    let restored = restored.json();
    assert_eq!(restored["body_markdown"], "First body");
    assert_eq!(restored["title"], "Pump alarms");
    assert_eq!(restored["tags"], json!(["refills"]));
    assert_eq!(restored["version"], 4);
    let revs = app.get(&format!("{path}/revisions"), &editor).await.json();
    assert_eq!(revs["items"][0]["number"], 4, "a restore is itself a new revision");
    app.post(&format!("{path}/revisions/99/restore"), &editor, json!({}))
        .await
        .problem(404, "not_found");
}

#[actix_web::test]
async fn lists_filter_by_tag_condition_and_words() {
    let (app, editor) = seeded().await;
    for (title, body) in [
        ("Refill day", "What happens when the reservoir is filled"),
        ("Travel tips", "Airport security and your card"),
    ] {
        let a = create_draft(&app, &editor, title, body).await;
        app.post(
            &format!("/api/v1/editor/articles/{}/publish", a["id"].as_str().expect("id")),
            &editor,
            json!({}),
        )
        .await;
    }
    assert_eq!(public_slugs(&app, "?q=AIRPORT%20card").await, ["travel-tips"]);
    assert_eq!(public_slugs(&app, "?q=airport%20reservoir").await, Vec::<String>::new());
    assert_eq!(
        public_slugs(&app, "?tag=intrathecal-pump").await,
        ["intrathecal-pump-therapy"]
    );
    assert_eq!(
        public_slugs(&app, "?condition=cancer-pain").await,
        ["intrathecal-pump-therapy"]
    );
    assert_eq!(
        public_slugs(&app, "?tag=refills").await,
        ["travel-tips", "refill-day", "intrathecal-pump-therapy"]
    );
    assert_eq!(
        public_slugs(&app, "?condition=severe-spasticity&q=airport").await,
        ["travel-tips"]
    );
    assert_eq!(
        public_slugs(&app, "?condition=cancer-pain&q=airport").await,
        Vec::<String>::new()
    );
    let first = app
        .call(Method::GET, "/api/v1/articles?limit=2", None, None)
        .await
        .json();
    let next = first["next_cursor"].as_str().expect("cursor");
    assert_eq!(
        public_slugs(&app, &format!("?limit=2&cursor={next}")).await,
        ["intrathecal-pump-therapy"]
    );
}

#[actix_web::test]
async fn bad_article_input_names_fields_and_writes_nothing() {
    let (app, editor) = seeded().await;
    let count = || async {
        app.get("/api/v1/editor/articles", &editor).await.json()["items"]
            .as_array()
            .map(Vec::len)
    };
    let before = count().await;
    let res = app
        .post(
            "/api/v1/editor/articles",
            &editor,
            json!({"title": " ", "summary": "", "body_markdown": "", "author": "A", "slug": "Not A Slug",
                   "tags": ["ok", "not ok"], "conditions": ["no-such-condition"]}),
        )
        .await;
    res.problem(422, "validation_failed");
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(fields, ["body_markdown", "slug", "summary", "tags[1]", "title"]);
    let unknown = app
        .post(
            "/api/v1/editor/articles",
            &editor,
            json!({"title": "T", "summary": "S", "body_markdown": "B", "author": "A", "conditions": ["no-such-condition"]}),
        )
        .await;
    unknown.problem(422, "validation_failed");
    assert_eq!(unknown.error_fields(), ["conditions[0]"]);
    assert_eq!(unknown.json()["errors"][0]["code"], "unknown_condition");
    assert_eq!(count().await, before);
}

#[actix_web::test]
async fn conditions_are_public_and_editable() {
    let (app, editor) = seeded().await;
    let list = app.call(Method::GET, "/api/v1/conditions", None, None).await.json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names.len(), 6);
    assert!(names.contains(&"Complex regional pain syndrome (reflex sympathetic dystrophy)"));
    let c = app
        .call(Method::GET, "/api/v1/conditions/cancer-pain", None, None)
        .await
        .json();
    assert_eq!(c["articles"][0]["page_url"], "/articles/intrathecal-pump-therapy");

    let created = app
        .post(
            "/api/v1/editor/conditions",
            &editor,
            json!({"name": "Multiple sclerosis spasticity", "summary": "Stiff muscles."}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let created = created.json();
    assert_eq!(created["slug"], "multiple-sclerosis-spasticity");
    app.post(
        "/api/v1/editor/conditions",
        &editor,
        json!({"name": "Multiple Sclerosis Spasticity", "summary": "Dup"}),
    )
    .await
    .problem(409, "slug_taken");
    let path = format!("/api/v1/editor/conditions/{}", created["id"].as_str().expect("id"));
    let edited = app
        .patch(
            &path,
            &editor,
            json!({"version": 1, "summary": "Muscle stiffness from MS."}),
        )
        .await;
    assert_eq!(edited.json()["summary"], "Muscle stiffness from MS.");
    app.patch(&path, &editor, json!({"version": 1, "summary": "stale"}))
        .await
        .problem(409, "version_conflict");
    app.patch(&path, &editor, json!({"version": 2, "name": null}))
        .await
        .problem(422, "validation_failed");
}

#[actix_web::test]
async fn public_pages_show_the_clinic_and_how_to_book() {
    let (app, _) = seeded().await;
    let index = app.send(TestRequest::get().uri("/articles")).await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(
        index.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(index.text().contains("href=\"/articles/intrathecal-pump-therapy\""));
    let page = app
        .send(TestRequest::get().uri("/articles/intrathecal-pump-therapy"))
        .await;
    let html = page.text();
    assert_eq!(html.matches("<h1").count(), 1);
    assert!(html.contains("Lakeside Pain Clinic"));
    assert!(html.contains("href=\"tel:+13125550100\""));
    assert!(html.contains("+1 312-555-0100"));
    assert!(!html.to_lowercase().contains("<script"));
    assert!(page
        .header("content-security-policy")
        .expect("csp")
        .contains("default-src 'none'"));
}
