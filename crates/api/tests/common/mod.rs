//! `TestApp`: a fresh database (SQLite, or PostgreSQL with TEST_DATABASE_URL), the real
//! actix application in process, an injectable clock, and helpers that speak HTTP.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServiceResponse;
use futures_util::future::LocalBoxFuture;

use actix_web::http::{header, Method, StatusCode};
use actix_web::test;
use chrono::{DateTime, Duration, Utc};
use clinic_api::metrics::Metrics;
use clinic_api::state::Limits;
use clinic_api::{AppState, ClinicInfo};
use clinic_auth::NewToken;
use clinic_domain::contact::PhoneRegion;
use clinic_domain::time::{ClinicZone, Clock};
use clinic_store::testing::TestDatabase;
use clinic_store::Pool;
use serde_json::Value;

/// A clock tests move by hand.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = t;
    }
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

pub struct TestApp {
    pub db: TestDatabase,
    pub pool: Pool,
    /// Read through [`Self::state`]; change through [`Self::state_mut`], which rebuilds the app.
    state: AppState,
    pub clock: Arc<TestClock>,
    /// An admin token's secret.
    pub admin: String,
    /// The app built from `state`, once: building it per request cost more than most
    /// requests in a debug build, and starved concurrent requests of their turn.
    service: RefCell<Option<ServiceFn>>,
}

type ServiceFn = Rc<dyn Fn(test::TestRequest) -> LocalBoxFuture<'static, ServiceResponse>>;

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// Asserts a problem+json body with this status and code and returns it.
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "body: {}",
            self.text()
        );
        let body = self.json();
        assert_eq!(body["code"], code, "body: {body}");
        assert_eq!(body["status"], status);
        body
    }

    /// The fields named in a problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The email side as the server builds it, pointing links at `http://clinic.test`.
pub fn test_composer(pool: &Pool) -> clinic_reminders::compose::Composer {
    use clinic_reminders::compose::{ClinicDetails, Composer};
    let mut conn = clinic_store::pool::get(pool).expect("connection");
    Composer {
        templates: Arc::new(clinic_reminders::templates::Templates::load(None).expect("templates")),
        clinic: ClinicDetails {
            name: "Lakeside Pain Clinic".into(),
            phone: "+13125550100".into(),
            location: "100 Lake St, Chicago".into(),
            time_zone: ClinicZone::default(),
            public_url: "http://clinic.test".into(),
        },
        sender: clinic_reminders::mailer::Sender {
            from: "Lakeside Pain Clinic <appointments@clinic.example>"
                .parse()
                .expect("mailbox"),
            reply_to: Some("front-desk@clinic.example".parse().expect("mailbox")),
        },
        links: clinic_reminders::links::LinkSigner::load_or_create(&mut conn, clinic_store::time::now())
            .expect("link key"),
    }
}

impl TestApp {
    pub async fn new() -> Self {
        let db = TestDatabase::new();
        let pool = db.pool();
        let clock = Arc::new(TestClock(Mutex::new(clinic_store::time::now())));
        let composer = Arc::new(test_composer(&pool));
        let state = AppState {
            pool: pool.clone(),
            clinic: ClinicInfo {
                name: "Lakeside Pain Clinic".into(),
                phone: "+13125550100".into(),
                time_zone: ClinicZone::default(),
                phone_region: PhoneRegion::default(),
                address: Some("100 Lake St, Chicago".into()),
            },
            clock: clock.clone(),
            metrics: Arc::new(Metrics::new().expect("metrics")),
            limits: Limits::default(),
            tokens: Default::default(),
            content: Default::default(),
            availability: Default::default(),
            public_limiter: Default::default(),
            self_service_limits: Default::default(),
            audit: clinic_patients::audit::AuditWriter::start(db.url().clone()),
            composer,
            metrics_token: None,
            self_service_settings: Default::default(),
            db_gate: clinic_api::state::DbGate::for_pool(&pool, db.url()),
        };
        let mut app = Self {
            db,
            pool,
            state,
            clock,
            admin: String::new(),
            service: RefCell::new(None),
        };
        app.admin = app.token(&["admin"]);
        app
    }

    /// Makes a token with these scopes directly in the database and returns its secret.
    pub fn token(&self, scopes: &[&str]) -> String {
        self.token_with_expiry(scopes, None)
    }

    pub fn token_with_expiry(&self, scopes: &[&str], expires_at: Option<DateTime<Utc>>) -> String {
        let mut conn = clinic_store::pool::get(&self.pool).expect("connection");
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let now = self.state.now();
        let new = NewToken::parse("test", &scopes, expires_at, now).expect("token request");
        clinic_auth::create(&mut conn, new, now).expect("token").secret
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Change the app's state; the next request runs on an app built from the new state.
    pub fn state_mut(&mut self) -> &mut AppState {
        self.service.replace(None);
        &mut self.state
    }

    async fn service(&self) -> ServiceFn {
        let built = self.service.borrow().clone();
        if let Some(service) = built {
            return service;
        }
        let app = Rc::new(test::init_service(clinic_api::app(self.state.clone())).await);
        let service: ServiceFn = Rc::new(move |req: test::TestRequest| {
            let app = app.clone();
            Box::pin(async move { test::call_service(&*app, req.to_request()).await.map_into_boxed_body() })
        });
        self.service.replace(Some(service.clone()));
        service
    }

    pub async fn send(&self, req: test::TestRequest) -> TestResponse {
        let res = self.service().await(req).await;
        let status = res.status();
        let headers = res.headers().clone();
        let body = test::read_body(res).await.to_vec();
        TestResponse { status, headers, body }
    }

    /// A JSON request with an optional bearer token.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> TestResponse {
        let mut req = test::TestRequest::default().method(method).uri(path);
        if let Some(t) = token {
            req = req.insert_header((header::AUTHORIZATION, format!("Bearer {t}")));
        }
        if let Some(b) = body {
            req = req.set_json(b);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Creates a patient through the API and returns its JSON.
    pub async fn create_patient(&self, given: &str, family: &str) -> Value {
        let res = self
            .post(
                "/api/v1/patients",
                &self.admin,
                serde_json::json!({
                    "given_name": given,
                    "family_name": family,
                    "email": format!("{}.{}@example.org", given.to_lowercase(), family.to_lowercase()),
                    "phone": "(312) 555-0123",
                    "email_consent": true
                }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()
    }

    /// Row counts that bad input must leave unchanged.
    pub async fn counts(&self) -> (usize, usize) {
        let patients = self.get("/api/v1/patients?limit=100", &self.admin).await.json()["items"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        let mut conn = clinic_store::pool::get(&self.pool).expect("connection");
        let (events, _) = clinic_patients::audit::list(
            &mut conn,
            &clinic_patients::audit::AuditFilter {
                action: Some("patient.create".into()),
                ..Default::default()
            },
            1000,
        )
        .expect("audit");
        (patients, events.len())
    }
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct TableCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

impl TestApp {
    /// The row count of every table of the database, for proving a request stored nothing.
    /// Nothing is excluded (a token's `last_used_at` is an update, not a row).
    pub fn row_counts(&self) -> std::collections::BTreeMap<String, i64> {
        use diesel::RunQueryDsl;
        let mut conn = clinic_store::pool::get(&self.pool).expect("a connection for the row counts");
        let conn: &mut clinic_store::DbConnection = &mut conn;
        let list = match conn {
            clinic_store::DbConnection::Sqlite(_) => "SELECT name FROM sqlite_master WHERE type = 'table'",
            clinic_store::DbConnection::Postgresql(_) => {
                "SELECT table_name::text AS name FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            }
        };
        let tables: Vec<TableName> = diesel::sql_query(list).load(conn).expect("list the tables");
        assert!(tables.len() > 20, "only {} tables found", tables.len());
        let sql = tables
            .iter()
            .map(|t| {
                format!(
                    "SELECT CAST('{}' AS TEXT) AS name, COUNT(*) AS n FROM \"{}\"",
                    t.name, t.name
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let counts: Vec<TableCount> = diesel::sql_query(sql).load(conn).expect("count the rows");
        counts.into_iter().map(|c| (c.name, c.n)).collect()
    }
}

/// The HTML with the entities minijinja writes decoded (it writes `/` as `&#x2f;`).
pub fn unescape_html(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}
