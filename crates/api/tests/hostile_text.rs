//! NUL and other control characters, sent to every operation of the OpenAPI document
//! (`clinic_api::openapi_document()`, the one served at `/api-docs/openapi.json`), are refused
//! the same way everywhere and store nothing (issue 21, item 5).
//!
//! The contract under test:
//!
//! - a JSON body in which any string value, at any depth, holds U+0000 (or U+0001, U+007F)
//!   is a 422 `validation_failed` whose `errors` hold `{"code": "invalid_characters",
//!   "field": <the value's JSON path, like `steps[0].label`>}`, checked before any other
//!   validation of the body, so enum values and ids are refused the same way;
//! - a query parameter holding `%00` is a 400 `invalid_query` naming the parameter (a public
//!   HTML page, `/email/stop`, may answer its own 400 page instead: a browser shows it);
//! - a path segment holding `%00` is a 404 (`not_found` under `/api/`, an HTML page for the
//!   public pages);
//! - an HTML form body (`application/x-www-form-urlencoded`, the patients' self-service pages)
//!   in which any field holds U+0000 (or U+0001, U+007F) is a 422 HTML page;
//! - and none of these stores anything: every table keeps its row count (a form's 422 page
//!   that shows the patient's visit again records that read: `audit_events` may gain `*.read`
//!   events there, and nothing else).
//!
//! How the cases are made, so that a new operation is covered without touching this file:
//!
//! 1. The document is walked ([`operations`]): each operation's path and query parameters
//!    (with their schema types, following `$ref`), and its JSON body schema and example (the
//!    media type's `example`, else the schema's, following `$ref`).
//! 2. A clinic is set up through the API ([`Clinic::new`]): a patient, a provider with time off
//!    and a feed token, an appointment (and the reminder it plans), a pending appointment
//!    request, a closure, an article and a condition, a pump, a token, an outreach entry, and
//!    the seeded catalogue. Path parameters are filled from it by the literal segment before
//!    them and their name ([`Fixtures::path_value`]); required query parameters by name
//!    ([`Fixtures::query_value`]). A parameter that cannot be filled is a failure naming it.
//! 3. A valid body is the document's example with the fixture's ids and the target's current
//!    `version` put in ([`Clinic::valid_body`]); a valid form is the document's example with
//!    the fields the page's own form carries put in (its hidden fields and first choice, as a
//!    browser would send them: [`Clinic::shown_form`]). Its string slots are every string value,
//!    every `null` whose schema allows a string, and every string property of the schema that
//!    the example leaves out ([`string_slots`]); each slot gets its own request with
//!    `"x\u0000y"` there and nothing else changed, and two more requests carry U+0001 and
//!    U+007F.
//! 4. Every table's row count ([`TestApp::row_counts`](common::TestApp::row_counts), tables found in `sqlite_master` or
//!    `information_schema`) is taken before and after an operation's hostile requests.
//! 5. Proof that a refusal is about the one bad value: a `GET` is first sent with valid
//!    parameters and must answer 2xx; any other operation runs on a clinic of its own and,
//!    after its hostile requests and the row count, is sent once with valid parameters and
//!    body and must answer 2xx (or the status [`valid_request_exception`] gives, with why); a
//!    form may answer 303 instead, to the page that shows what it did.
//!
//! Every failure is collected, and one assertion at the end lists them all by kind.
//!
//! Out of scope: header parameters (`Idempotency-Key`), bodies that are neither JSON nor a
//! form, and forms the document shows no example of; the operations skipped for that are
//! listed in [`EXCLUDED`].

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::test::TestRequest;
use chrono::{TimeZone, Utc};
use clinic_reminders::patient_links::LinkSubject;
use common::{TestApp, TestResponse};
use serde_json::{json, Value};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Far deeper than any real chain of `$ref`s; only a guard against cycles.
const MAX_DEPTH: usize = 8;

/// Operations not covered at all, by operation id, with the reason.
const EXCLUDED: [(&str, &str); 1] = [(
    "submit_request_form",
    "the document shows no example of its form (a person's typed details), so no valid form can be \
     built from it; the JSON door it feeds (create_appointment_request) is covered",
)];

/// Operations whose valid request cannot answer 2xx on the fixtures: the status and problem
/// code it answers instead (which still proves the path names a real object: an unknown one
/// is 404), and why.
fn valid_request_exception(operation_id: &str) -> Option<(u16, &'static str, &'static str)> {
    match operation_id {
        "retry_reminder" => Some((
            409,
            "invalid_state",
            "only a failed email can be retried; the fixture's is pending",
        )),
        "publish_article" => Some((
            409,
            "invalid_transition",
            "the fixture article is published, so that its slug is public",
        )),
        "complete_appointment" => Some((
            409,
            "invalid_transition",
            "the fixture appointment is booked, not checked in",
        )),
        "mark_no_show_appointment" => Some((409, "not_started", "the fixture appointment has not started")),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Path,
    Query,
    Header,
    Cookie,
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    location: Location,
    required: bool,
    /// The schema is a string (following `$ref`).
    string: bool,
}

#[derive(Debug, Clone)]
struct JsonBody {
    schema: Value,
    /// The document's example, as the document gives it.
    example: Option<Value>,
}

#[derive(Debug, Clone)]
struct Operation {
    id: String,
    method: Method,
    path: String,
    params: Vec<Param>,
    body: Option<JsonBody>,
    /// The schema and example of an HTML form body (`application/x-www-form-urlencoded`).
    form: Option<JsonBody>,
    /// Media types of a body that is neither JSON nor a form.
    other_body: Vec<String>,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} ({} {})", self.id, self.method, self.path)
    }

    /// A public HTML page rather than an API route.
    fn is_page(&self) -> bool {
        !self.path.starts_with("/api/")
    }

    /// Its body is an HTML form.
    fn is_form(&self) -> bool {
        self.form.is_some()
    }
}

/// Follows `$ref`s to the schema (or parameter, or request body) they name.
fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..MAX_DEPTH {
        let Some(target) = node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| doc.pointer(pointer))
        else {
            return node;
        };
        node = target;
    }
    node
}

/// The schema and the schemas it is composed of (`oneOf`, `anyOf`, `allOf`), resolved.
fn branches<'a>(doc: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    fn walk<'a>(doc: &'a Value, schema: &'a Value, depth: usize, out: &mut Vec<&'a Value>) {
        if depth > MAX_DEPTH {
            return;
        }
        let schema = resolve(doc, schema);
        out.push(schema);
        for key in ["oneOf", "anyOf", "allOf"] {
            for part in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
                walk(doc, part, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(doc, schema, 0, &mut out);
    out
}

fn has_type(schema: &Value, wanted: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == wanted),
        _ => false,
    }
}

/// Whether a value of this schema may be a string.
fn string_capable(doc: &Value, schema: &Value) -> bool {
    branches(doc, schema).iter().any(|s| has_type(s, "string"))
}

fn format_of<'a>(doc: &'a Value, schema: &'a Value) -> Option<&'a str> {
    branches(doc, schema)
        .into_iter()
        .find_map(|s| s.get("format").and_then(Value::as_str))
}

/// The schema of property `key` of an object schema (`Null` when the schema does not say).
fn property_schema(doc: &Value, schema: &Value, key: &str) -> Value {
    branches(doc, schema)
        .into_iter()
        .find_map(|s| {
            s.get("properties")
                .and_then(|p| p.get(key))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
        })
        .cloned()
        .unwrap_or(Value::Null)
}

fn item_schema(doc: &Value, schema: &Value) -> Value {
    branches(doc, schema)
        .into_iter()
        .find_map(|s| s.get("items"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The properties an object schema declares, with their schemas.
fn declared_properties(doc: &Value, schema: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for s in branches(doc, schema) {
        for (k, v) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
            if !out.iter().any(|(name, _)| name == k) {
                out.push((k.clone(), v.clone()));
            }
        }
    }
    out
}

/// A schema's own example (`example`, or the first of `examples`), following `$ref`.
fn schema_example(doc: &Value, schema: &Value) -> Option<Value> {
    let s = resolve(doc, schema);
    s.get("example").cloned().or_else(|| {
        s.get("examples")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
            .cloned()
    })
}

fn media_example(media: &Value) -> Option<Value> {
    media.get("example").cloned().or_else(|| {
        media
            .get("examples")
            .and_then(Value::as_object)
            .and_then(|e| e.values().next())
            .and_then(|e| e.get("value"))
            .cloned()
    })
}

fn parse_param(doc: &Value, raw: &Value) -> Option<Param> {
    let p = resolve(doc, raw);
    let location = match p.get("in").and_then(Value::as_str)? {
        "path" => Location::Path,
        "query" => Location::Query,
        "header" => Location::Header,
        _ => Location::Cookie,
    };
    let schema = p.get("schema").cloned().unwrap_or(Value::Null);
    Some(Param {
        name: p.get("name").and_then(Value::as_str)?.to_owned(),
        location,
        required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
        string: branches(doc, &schema).iter().any(|s| has_type(s, "string")),
    })
}

/// Every operation of the document.
fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let paths = doc["paths"].as_object().expect("the document has paths");
    for (path, item) in paths {
        let item = resolve(doc, item);
        let shared: Vec<Param> = item
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| parse_param(doc, p))
            .collect();
        for (method, op) in item.as_object().expect("a path item is an object") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let mut params: Vec<Param> = op
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| parse_param(doc, p))
                .collect();
            for p in &shared {
                if !params.iter().any(|q| q.name == p.name && q.location == p.location) {
                    params.push(p.clone());
                }
            }
            let (mut body, mut form, mut other_body) = (None, None, Vec::new());
            if let Some(request) = op.get("requestBody").map(|b| resolve(doc, b)) {
                for (media_type, media) in request.get("content").and_then(Value::as_object).into_iter().flatten() {
                    let is_json = media_type == "application/json" || media_type.ends_with("+json");
                    let schema = media.get("schema").cloned().unwrap_or(Value::Null);
                    let example = media_example(media).or_else(|| schema_example(doc, &schema));
                    if is_json && body.is_none() {
                        body = Some(JsonBody { schema, example });
                    } else if media_type == "application/x-www-form-urlencoded" && form.is_none() {
                        form = Some(JsonBody { schema, example });
                    } else if !is_json {
                        other_body.push(media_type.clone());
                    }
                }
            }
            out.push(Operation {
                id: op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .unwrap_or("(no operationId)")
                    .to_owned(),
                method: Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method"),
                path: path.clone(),
                params,
                body,
                form,
                other_body,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// String slots of a body
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where a hostile string goes: the steps to it and the path the 422 must name.
#[derive(Debug, Clone)]
struct Slot {
    steps: Vec<Step>,
    field: String,
    /// `"present"`, `"null"` or `"absent"` in the valid body.
    was: &'static str,
}

fn field_path(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Every place in `value` (read against `schema`) that holds or may hold a string.
fn string_slots(doc: &Value, value: &Value, schema: &Value) -> Vec<Slot> {
    fn walk(doc: &Value, value: &Value, schema: &Value, steps: &mut Vec<Step>, out: &mut Vec<Slot>) {
        match value {
            Value::String(_) if !steps.is_empty() => out.push(Slot {
                steps: steps.clone(),
                field: field_path(steps),
                was: "present",
            }),
            Value::Null if !steps.is_empty() && string_capable(doc, schema) => out.push(Slot {
                steps: steps.clone(),
                field: field_path(steps),
                was: "null",
            }),
            Value::Array(items) => {
                let item = item_schema(doc, schema);
                for (i, v) in items.iter().enumerate() {
                    steps.push(Step::Index(i));
                    walk(doc, v, &item, steps, out);
                    steps.pop();
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    steps.push(Step::Key(k.clone()));
                    walk(doc, v, &property_schema(doc, schema, k), steps, out);
                    steps.pop();
                }
                for (k, s) in declared_properties(doc, schema) {
                    if !map.contains_key(&k) && string_capable(doc, &s) {
                        steps.push(Step::Key(k));
                        out.push(Slot {
                            steps: steps.clone(),
                            field: field_path(steps),
                            was: "absent",
                        });
                        steps.pop();
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, value, schema, &mut Vec::new(), &mut out);
    out
}

/// A copy of `body` with `new` at `steps` (an absent last key is added).
fn with_value(body: &Value, steps: &[Step], new: Value) -> Value {
    fn set(node: &mut Value, steps: &[Step], new: Value) {
        let Some((step, rest)) = steps.split_first() else {
            *node = new;
            return;
        };
        let child = match step {
            Step::Key(k) => node
                .as_object_mut()
                .expect("a key step is into an object")
                .entry(k.clone())
                .or_insert(Value::Null),
            Step::Index(i) => node.get_mut(*i).expect("the slot's item exists"),
        };
        set(child, rest, new);
    }
    let mut copy = body.clone();
    set(&mut copy, steps, new);
    copy
}

// ---------------------------------------------------------------------------------------
// Row counts
// ---------------------------------------------------------------------------------------

/// The id of the newest audit event (0 for an empty log).
fn newest_audit_id(app: &TestApp) -> i64 {
    let mut conn = clinic_store::pool::get(&app.pool).expect("a connection for the audit log");
    let (events, _) = clinic_patients::audit::list(&mut conn, &Default::default(), 1).expect("the audit log");
    events.first().map_or(0, |e| e.id)
}

/// The actions of the audit events recorded after event `id`.
fn audit_actions_after(app: &TestApp, id: i64) -> Vec<String> {
    let mut conn = clinic_store::pool::get(&app.pool).expect("a connection for the audit log");
    let (events, more) = clinic_patients::audit::list(&mut conn, &Default::default(), 1000).expect("the audit log");
    let after: Vec<String> = events.into_iter().filter(|e| e.id > id).map(|e| e.action).collect();
    assert!(!more || after.len() < 1000, "more than 1000 audit events after {id}");
    after
}

fn count_changes(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> Vec<String> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|t| {
            let (b, a) = (before.get(t).copied().unwrap_or(0), after.get(t).copied().unwrap_or(0));
            (a != b).then(|| format!("{t} {b}→{a}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The clinic the requests run against
// ---------------------------------------------------------------------------------------

/// Values for parameters, taken from objects that exist.
struct Fixtures {
    /// (the literal path segment before the parameter, the parameter's name) → value.
    path: HashMap<(&'static str, &'static str), String>,
    /// Required query parameters, by name → a valid value (already percent-encoded).
    query: HashMap<&'static str, String>,
    patient: String,
    provider: String,
    /// Objects by id or code, for the `version` a change must send.
    objects: HashMap<String, Value>,
}

impl Fixtures {
    fn path_value(&self, template: &str, name: &str) -> Result<String, String> {
        let segments: Vec<&str> = template.split('/').collect();
        let at = segments
            .iter()
            .position(|s| *s == format!("{{{name}}}"))
            .ok_or_else(|| format!("parameter {name} is not in the path"))?;
        let before = at.checked_sub(1).map(|i| segments[i]).unwrap_or("");
        self.path
            .iter()
            .find(|((seg, param), _)| *seg == before && *param == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("no fixture for path parameter {{{name}}} after /{before}/"))
    }

    fn query_value(&self, name: &str) -> Result<String, String> {
        self.query
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no fixture for required query parameter {name}"))
    }
}

struct Clinic {
    app: TestApp,
    fx: Fixtures,
}

fn id_of(v: &Value, what: &str) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{what} has no id: {v}"))
        .to_owned()
}

fn created(res: TestResponse, what: &str) -> Value {
    assert!(res.status.is_success(), "fixture {what}: {} {}", res.status, res.text());
    res.json()
}

fn first_item(res: TestResponse, what: &str) -> Value {
    let list = created(res, what);
    list["items"]
        .get(0)
        .cloned()
        .unwrap_or_else(|| panic!("fixture {what}: the list is empty: {list}"))
}

fn encoded(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Clinic {
    /// A fresh database with one of everything, on Monday 2027-01-04 12:00 in Chicago (the
    /// document's examples are written for then).
    async fn new() -> Self {
        let mut app = TestApp::new().await;
        // Rate limits are not under test: the public write routes take many requests here.
        app.state_mut().public_limiter = Arc::new(clinic_api::rate_limit::PublicLimiter::new(100_000, 100_000));
        app.state_mut().self_service_limits =
            Arc::new(clinic_api::rate_limit::SelfServiceLimits::new(100_000, 100_000));
        app.clock
            .set(Utc.with_ymd_and_hms(2027, 1, 4, 18, 0, 0).single().expect("instant"));
        {
            let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
            let now = app.state().now();
            clinic_scheduling::types::seed(&mut conn, now).expect("appointment types");
            clinic_pumps::catalog::seed(&mut conn, now).expect("pump catalogue");
            clinic_content::seed::run(&mut conn, now).expect("content");
        }
        let admin = app.admin.clone();
        let mut objects = HashMap::new();
        let mut keep = |v: &Value, key: &str| {
            if let Some(k) = v[key].as_str() {
                objects.insert(k.to_owned(), v.clone());
            }
        };

        let patient = app.create_patient("Nia", "Okafor").await;
        keep(&patient, "id");
        let patient_id = id_of(&patient, "patient");
        let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday"]
            .iter()
            .map(|d| json!({"weekday": d, "start": "08:00", "end": "17:00"}))
            .collect();
        let provider = created(
            app.post(
                "/api/v1/providers",
                &admin,
                json!({"name": "Dr. Ana Ruiz", "role": "pain physician", "time_zone": "America/Chicago", "hours": hours}),
            )
            .await,
            "provider",
        );
        keep(&provider, "id");
        let provider_id = id_of(&provider, "provider");
        let time_off = created(
            app.post(
                &format!("/api/v1/providers/{provider_id}/time-off"),
                &admin,
                json!({"starts_at": "2027-05-03T00:00:00-05:00", "ends_at": "2027-05-04T00:00:00-05:00", "reason": "training"}),
            )
            .await,
            "time off",
        );
        let feed = created(
            app.post(
                &format!("/api/v1/providers/{provider_id}/feed-tokens"),
                &admin,
                json!({}),
            )
            .await,
            "feed token",
        );
        let feed_secret = feed["feed_path"]
            .as_str()
            .and_then(|p| p.split_once("token="))
            .map(|(_, t)| t.to_owned())
            .unwrap_or_else(|| panic!("feed token without a feed_path: {feed}"));
        // Wednesday, away from the examples' Monday 15 and Tuesday 16 March.
        let appointment = created(
            app.post(
                "/api/v1/appointments",
                &admin,
                json!({"patient_id": patient_id, "provider_id": provider_id, "appointment_type": "consultation",
                       "start": "2027-03-17T10:00:00-05:00"}),
            )
            .await,
            "appointment",
        );
        let reminder = first_item(
            app.get(&format!("/api/v1/reminders?patient_id={patient_id}"), &admin)
                .await,
            "reminder",
        );
        created(
            app.call(
                Method::POST,
                "/api/v1/appointment-requests",
                None,
                Some(
                    json!({"given_name": "Maria", "family_name": "Lopez", "email": "maria@example.org",
                            "phone": "(312) 555-0142", "preferred_times": "Weekday mornings",
                            "reason": "consultation", "consent_to_contact": true}),
                ),
            )
            .await,
            "appointment request",
        );
        let request = first_item(
            app.get("/api/v1/appointment-requests?status=new", &admin).await,
            "request",
        );
        let closure = created(
            app.post(
                "/api/v1/closures",
                &admin,
                json!({"date": "2027-07-05", "name": "Independence Day (observed)"}),
            )
            .await,
            "closure",
        );
        let closure_date = closure["date"]
            .as_str()
            .unwrap_or_else(|| panic!("closure without a date: {closure}"))
            .to_owned();
        let article = created(
            app.post(
                "/api/v1/editor/articles",
                &admin,
                json!({"title": "Hostile text fixture", "summary": "A summary.", "body_markdown": "Body.",
                       "author": "Care team", "tags": ["refills"], "conditions": ["severe-spasticity"]}),
            )
            .await,
            "article",
        );
        let article_id = id_of(&article, "article");
        created(
            app.post(
                &format!("/api/v1/editor/articles/{article_id}/publish"),
                &admin,
                json!({}),
            )
            .await,
            "published article",
        );
        let article_slug = article["slug"]
            .as_str()
            .unwrap_or_else(|| panic!("article without a slug: {article}"))
            .to_owned();
        let condition = created(
            app.post(
                "/api/v1/editor/conditions",
                &admin,
                json!({"name": "Fixture condition", "summary": "A condition the test made."}),
            )
            .await,
            "condition",
        );
        keep(&condition, "id");
        let condition_slug = condition["slug"]
            .as_str()
            .unwrap_or_else(|| panic!("condition without a slug: {condition}"))
            .to_owned();
        let pump = created(
            app.post(
                "/api/v1/pumps",
                &admin,
                json!({"patient_id": patient_id, "model": "synchromed-ii-40", "serial_number": "NGP900001H",
                       "implanted_on": "2026-06-01"}),
            )
            .await,
            "pump",
        );
        keep(&pump, "id");
        // A second pump, programmed and filled: its refill is due in about three months, so
        // its booking link offers times.
        let refill_pump = id_of(
            &created(
                app.post(
                    "/api/v1/pumps",
                    &admin,
                    json!({"patient_id": patient_id, "model": "synchromed-ii-20", "serial_number": "NGP900002H",
                           "implanted_on": "2026-06-01"}),
                )
                .await,
                "refill pump",
            ),
            "refill pump",
        );
        created(
            app.post(
                &format!("/api/v1/pumps/{refill_pump}/programs"),
                &admin,
                json!({"effective_at": "2027-01-04T09:00:00-06:00", "kind": "continuous", "daily_dose": "2"}),
            )
            .await,
            "programme",
        );
        created(
            app.post(
                &format!("/api/v1/pumps/{refill_pump}/fills"),
                &admin,
                json!({"filled_at": "2027-01-04T09:00:00-06:00", "drug": "morphine", "concentration": "10",
                       "concentration_unit": "mg/mL", "volume_ml": "20.0", "residual_ml": "0",
                       "clinician": "R. Alvarez, RN"}),
            )
            .await,
            "fill",
        );
        // The self-service links of the appointment and of that refill, as emails carry them.
        let links = app.state().composer.patient_links();
        let appointment_token = links.sign(
            LinkSubject::Appointment(id_of(&appointment, "appointment").parse().expect("an appointment id")),
            0,
        );
        let episode = {
            let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
            clinic_pumps::registry::last_fill_id(&mut conn, &refill_pump).expect("last fill")
        };
        let uuid = |id: &str| uuid::Uuid::parse_str(id).expect("a uuid");
        let refill_token = links.sign(
            LinkSubject::Refill {
                pump: uuid(&refill_pump),
                episode: episode.as_deref().map(uuid),
            },
            0,
        );
        // A staff member's set-password link, as `clinic user create` prints it.
        let (staff_user_id, set_password_token) = {
            let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
            let new =
                clinic_auth::users::NewUser::parse("staff@clinic.example", "Staff Member", "viewer").expect("user");
            let actor = clinic_patients::audit::Actor::system();
            let user = clinic_flows::users::create(&mut conn, &actor, new, None, app.state().now()).expect("user");
            let signer = clinic_flows::users::password_links(app.state().composer.link_secret());
            let path = clinic_flows::users::password_link(&mut conn, &actor, &signer, user.id, app.state().now())
                .expect("link");
            (user.id.to_string(), path.rsplit('/').next().expect("token").to_owned())
        };
        let token = created(
            app.post(
                "/api/v1/tokens",
                &admin,
                json!({"name": "fixture", "scopes": ["patients:read"]}),
            )
            .await,
            "token",
        );
        {
            let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
            clinic_reminders::outreach::raise(
                &mut conn,
                vec![clinic_reminders::outreach::NewEntry {
                    dedupe_key: "hostile-text-fixture".into(),
                    patient_id: patient_id.clone(),
                    reason: clinic_reminders::outreach::Reason::NoEmail,
                    subject_type: "patient".into(),
                    subject_id: patient_id.clone(),
                    refers_to: app.state().now(),
                }],
                app.state().now(),
            )
            .expect("outreach entry");
        }
        let outreach = first_item(app.get("/api/v1/worklists/outreach", &admin).await, "outreach");
        // The seeded catalogue, by code, for the versions its changes must send.
        for list in [
            "/api/v1/appointment-types",
            "/api/v1/drugs",
            "/api/v1/pump-models",
            "/api/v1/screening-criteria",
        ] {
            let items = created(app.get(list, &admin).await, list);
            for item in items["items"].as_array().into_iter().flatten() {
                keep(item, "code");
            }
        }

        let path = HashMap::from([
            (("appointment-requests", "id"), id_of(&request, "request")),
            (("appointment-types", "code"), "follow_up".to_owned()),
            (("appointments", "id"), id_of(&appointment, "appointment")),
            (("articles", "slug"), article_slug),
            (("articles", "id"), article_id),
            (("revisions", "number"), "1".to_owned()),
            (("closures", "date"), closure_date),
            (("conditions", "slug"), condition_slug),
            (("conditions", "id"), id_of(&condition, "condition")),
            (("drugs", "code"), "morphine".to_owned()),
            (("patients", "id"), patient_id.clone()),
            (("providers", "id"), provider_id.clone()),
            (("feed-tokens", "token_id"), id_of(&feed, "feed token")),
            (("time-off", "time_off_id"), id_of(&time_off, "time off")),
            (("pump-models", "code"), "synchromed-ii-40".to_owned()),
            (("pumps", "id"), id_of(&pump, "pump")),
            (("reminders", "id"), id_of(&reminder, "reminder")),
            (("screening-criteria", "code"), "successful_trial".to_owned()),
            (("tokens", "id"), id_of(&token, "token")),
            (("outreach", "id"), id_of(&outreach, "outreach entry")),
            (("appointments", "token"), appointment_token),
            (("book", "token"), refill_token),
            (("set-password", "token"), set_password_token),
            (("users", "id"), staff_user_id),
        ]);
        // The "stop emailing me" link of the reminder's email.
        let stop = app.state().composer.links.sign(
            &id_of(&reminder, "reminder"),
            app.state().now() + clinic_reminders::links::lifetime(),
        );
        let query = HashMap::from([
            ("t", encoded(&stop)),
            ("appointment_type", "consultation".to_owned()),
            ("from", encoded("2027-03-15T00:00:00Z")),
            ("to", encoded("2027-03-16T00:00:00Z")),
            ("token", feed_secret),
        ]);
        Clinic {
            app,
            fx: Fixtures {
                path,
                query,
                patient: patient_id,
                provider: provider_id,
                objects,
            },
        }
    }

    /// The version a change to `path` must send: what a `GET` of the same path shows, else
    /// what the list one level up shows for the object the path ends with, else the version
    /// the fixture object had when it was made.
    async fn current_version(&self, path: &str) -> Option<i64> {
        let (parent, last) = path.rsplit_once('/')?;
        let read = |res: TestResponse| {
            res.status
                .is_success()
                .then(|| serde_json::from_slice::<Value>(&res.body).ok())
                .flatten()
        };
        if let Some(v) = read(self.app.get(path, &self.app.admin).await).and_then(|b| b["version"].as_i64()) {
            return Some(v);
        }
        let listed = read(self.app.get(parent, &self.app.admin).await).and_then(|list| {
            list["items"]
                .as_array()?
                .iter()
                .find(|item| item["id"] == last || item["code"] == last)?["version"]
                .as_i64()
        });
        listed.or_else(|| self.fx.objects.get(last)?["version"].as_i64())
    }

    /// The document's example body for `op` at `path`, with the fixture's ids and the
    /// current version put in.
    async fn valid_body(&self, doc: &Value, op: &Operation, path: &str) -> Result<Option<Value>, String> {
        if op.is_form() {
            return self.valid_form(op, path).await.map(Some);
        }
        let Some(body) = &op.body else {
            return Ok(None);
        };
        let mut example = body
            .example
            .clone()
            .ok_or_else(|| "the document shows no example of the JSON body".to_owned())?;
        if let Some(map) = example.as_object_mut() {
            if map.contains_key("version") {
                let v = self
                    .current_version(path)
                    .await
                    .ok_or_else(|| format!("cannot find the current version of {path}"))?;
                map.insert("version".into(), json!(v));
            }
        }
        let mut unmapped = Vec::new();
        substitute_ids(
            doc,
            &mut example,
            &body.schema,
            &self.fx,
            &mut Vec::new(),
            &mut unmapped,
        );
        if !unmapped.is_empty() {
            return Err(format!(
                "the example holds ids the test does not map to fixtures: {}",
                unmapped.join(", ")
            ));
        }
        Ok(Some(example))
    }
}

impl Clinic {
    /// The document's example form for `op` at `path` (an object of strings), with the
    /// fields the page's own form carries put in.
    async fn valid_form(&self, op: &Operation, path: &str) -> Result<Value, String> {
        let example = op
            .form
            .as_ref()
            .and_then(|f| f.example.as_ref())
            .and_then(Value::as_object)
            .ok_or_else(|| "the document shows no example of the form".to_owned())?;
        let mut fields: serde_json::Map<String, Value> = example
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    json!(v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
                )
            })
            .collect();
        for (name, value) in self.shown_form(path).await? {
            fields.insert(name, json!(value));
        }
        Ok(Value::Object(fields))
    }

    /// The fields a browser sends from the form that posts to `path`, as the page at `path`
    /// or one level up shows it: its hidden fields and the first of each choice.
    async fn shown_form(&self, path: &str) -> Result<Vec<(String, String)>, String> {
        let parent = path.rsplit_once('/').map_or(path, |(p, _)| p);
        for page in [path, parent] {
            let res = self.app.send(TestRequest::get().uri(page)).await;
            if !res.status.is_success() {
                continue;
            }
            let html = res.text();
            let Some(start) = html.find(&format!("<form method=\"post\" action=\"{path}\"")) else {
                continue;
            };
            let form = &html[start..];
            let form = &form[..form.find("</form>").unwrap_or(form.len())];
            let mut fields: Vec<(String, String)> = Vec::new();
            for tag in form.split("<input").skip(1) {
                let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
                let attr = |name: &str| {
                    let marker = format!(" {name}=\"");
                    tag.find(&marker).map(|at| {
                        let rest = &tag[at + marker.len()..];
                        common::unescape_html(&rest[..rest.find('"').unwrap_or(rest.len())])
                    })
                };
                let (Some(name), Some(kind)) = (attr("name"), attr("type")) else {
                    continue;
                };
                let taken = fields.iter().any(|(n, _)| *n == name);
                if kind == "hidden" || (kind == "radio" && !taken) {
                    fields.push((name, attr("value").unwrap_or_default()));
                }
            }
            return Ok(fields);
        }
        Err(format!("no page at {path} or one level up shows a form posting to it"))
    }
}

/// Puts the fixture's patient and provider where the example names one, and lists any other
/// `uuid` it holds (an id the test would have to make exist).
fn substitute_ids(
    doc: &Value,
    value: &mut Value,
    schema: &Value,
    fx: &Fixtures,
    steps: &mut Vec<Step>,
    unmapped: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let child = property_schema(doc, schema, k);
                match (k.as_str(), &v) {
                    ("patient_id", Value::String(_)) => *v = json!(fx.patient),
                    ("provider_id", Value::String(_)) => *v = json!(fx.provider),
                    _ => {
                        steps.push(Step::Key(k.clone()));
                        substitute_ids(doc, v, &child, fx, steps, unmapped);
                        steps.pop();
                    }
                }
            }
        }
        Value::Array(items) => {
            let child = item_schema(doc, schema);
            for (i, v) in items.iter_mut().enumerate() {
                steps.push(Step::Index(i));
                substitute_ids(doc, v, &child, fx, steps, unmapped);
                steps.pop();
            }
        }
        Value::String(_) if format_of(doc, schema) == Some("uuid") => unmapped.push(field_path(steps)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Requests and what they must answer
// ---------------------------------------------------------------------------------------

/// Sends `body` as JSON, or for a form operation (`op.is_form()`) its fields (an object of
/// strings) as `application/x-www-form-urlencoded`.
async fn send(app: &TestApp, op: &Operation, uri: &str, body: Option<&Value>) -> TestResponse {
    let mut req = TestRequest::default()
        .method(op.method.clone())
        .uri(uri)
        .insert_header((header::AUTHORIZATION, format!("Bearer {}", app.admin)));
    match body {
        Some(b) if op.is_form() => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in b.as_object().into_iter().flatten() {
                form.append_pair(k, v.as_str().unwrap_or_default());
            }
            // As a browser posts a page's form: from the page's own origin.
            req = req
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .insert_header((header::ORIGIN, "http://clinic.test"))
                .set_payload(form.finish());
        }
        Some(b) => req = req.set_json(b),
        None => {}
    }
    app.send(req).await
}

/// What came back, short: status, problem code or content type, the errors, the body's start.
fn describe(res: &TestResponse) -> String {
    let kind = res.header("content-type").unwrap_or_default();
    match serde_json::from_slice::<Value>(&res.body) {
        Ok(body) if kind.contains("problem+json") => {
            let errors: Vec<String> = body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    format!(
                        "{}:{}",
                        e["field"].as_str().unwrap_or("?"),
                        e["code"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!(
                "{} {} [{}]",
                res.status.as_u16(),
                body["code"].as_str().unwrap_or("?"),
                errors.join(", ")
            )
        }
        _ => {
            let text: String = res.text().chars().take(80).collect();
            format!("{} {kind} {text:?}", res.status.as_u16())
        }
    }
}

fn problem_body(res: &TestResponse) -> Option<Value> {
    let is_problem = res
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/problem+json"));
    is_problem.then(|| serde_json::from_slice(&res.body).ok()).flatten()
}

/// A 422 naming `field` as `invalid_characters`.
fn refused_body(res: &TestResponse, field: &str) -> bool {
    res.status.as_u16() == 422
        && problem_body(res).is_some_and(|b| {
            b["code"] == "validation_failed"
                && b["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["code"] == "invalid_characters" && e["field"] == field)
        })
}

/// A 422 HTML page: a form's refusal, shown to a person.
fn refused_form(res: &TestResponse) -> bool {
    res.status.as_u16() == 422 && res.header("content-type").is_some_and(|c| c.starts_with("text/html"))
}

/// A 400 `invalid_query` naming `name` first. A public HTML page may answer its own 400 page.
fn refused_query(op: &Operation, res: &TestResponse, name: &str) -> bool {
    if res.status.as_u16() != 400 {
        return false;
    }
    if let Some(b) = problem_body(res) {
        return b["code"] == "invalid_query" && b["errors"][0]["field"] == name;
    }
    op.is_page() && res.header("content-type").is_some_and(|c| c.starts_with("text/html"))
}

/// A 404: a problem `not_found` under `/api/`, an HTML page for a public page.
fn refused_path(op: &Operation, res: &TestResponse) -> bool {
    if res.status.as_u16() != 404 {
        return false;
    }
    if op.is_page() {
        res.header("content-type").is_some_and(|c| c.starts_with("text/html"))
    } else {
        problem_body(res).is_some_and(|b| b["code"] == "not_found")
    }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    /// (case kind, operation, case, expected, got)
    failures: Vec<(&'static str, String, String, String, String)>,
    cases: BTreeMap<&'static str, usize>,
}

impl Report {
    fn fail(
        &mut self,
        kind: &'static str,
        op: &Operation,
        case: impl Into<String>,
        expected: &str,
        got: impl Into<String>,
    ) {
        self.failures
            .push((kind, op.name(), case.into(), expected.to_owned(), got.into()));
    }

    fn ran(&mut self, kind: &'static str) {
        *self.cases.entry(kind).or_default() += 1;
    }

    fn summary(&self) -> String {
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.failures {
            *by_kind.entry(f.0).or_default() += 1;
        }
        let counts: Vec<String> = self
            .cases
            .iter()
            .map(|(k, n)| format!("{k}: {} of {n} failed", by_kind.get(k).copied().unwrap_or(0)))
            .collect();
        let lines: Vec<String> = self
            .failures
            .iter()
            .map(|(kind, op, case, expected, got)| format!("[{kind}] {op} {case}: expected {expected}, got {got}"))
            .collect();
        format!(
            "{} failures ({})\n  {}",
            self.failures.len(),
            counts.join("; "),
            lines.join("\n  ")
        )
    }
}

/// The URI of `op` with every path parameter filled (one may be replaced), the required
/// query parameters filled, and one query parameter `extra` added.
fn uri(
    op: &Operation,
    fx: &Fixtures,
    hostile_path: Option<&str>,
    hostile_query: Option<&str>,
) -> Result<String, String> {
    let mut path = op.path.clone();
    for p in op.params.iter().filter(|p| p.location == Location::Path) {
        let value = if hostile_path == Some(p.name.as_str()) {
            "a%00b".to_owned()
        } else {
            fx.path_value(&op.path, &p.name)?
        };
        path = path.replace(&format!("{{{}}}", p.name), &value);
    }
    let mut query = Vec::new();
    for p in op.params.iter().filter(|p| p.location == Location::Query) {
        if hostile_query == Some(p.name.as_str()) {
            query.push(format!("{}=x%00y", p.name));
        } else if p.required {
            query.push(format!("{}={}", p.name, fx.query_value(&p.name)?));
        }
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    Ok(path)
}

async fn run_operation(doc: &Value, clinic: &Clinic, op: &Operation, report: &mut Report) {
    let app = &clinic.app;
    let valid_uri = match uri(op, &clinic.fx, None, None) {
        Ok(u) => u,
        Err(e) => return report.fail("unfillable", op, "parameters", "every parameter filled", e),
    };
    let filled_path = valid_uri.split('?').next().unwrap_or(&valid_uri).to_owned();
    if !op.other_body.is_empty() {
        report.fail(
            "unfillable",
            op,
            "body",
            "a JSON body or an entry in EXCLUDED",
            op.other_body.join(", "),
        );
        return;
    }
    let body = match clinic.valid_body(doc, op, &filled_path).await {
        Ok(b) => b,
        Err(e) => return report.fail("unfillable", op, "body", "a valid body from the document", e),
    };
    // A GET changes nothing, so its valid request comes first (its audit event before the
    // count); other operations send theirs last.
    if op.method == Method::GET {
        report.ran("valid request");
        let res = send(app, op, &valid_uri, None).await;
        if !res.status.is_success() {
            report.fail("valid request", op, valid_uri.clone(), "2xx", describe(&res));
        }
    }

    let before = app.row_counts();
    let last_audit_id = newest_audit_id(app);
    for p in &op.params {
        match p.location {
            Location::Query if p.string => {
                report.ran("query %00");
                let u = uri(op, &clinic.fx, None, Some(&p.name)).expect("filled above");
                let res = send(app, op, &u, body.as_ref()).await;
                if !refused_query(op, &res, &p.name) {
                    let expected = format!("400 invalid_query [{}]", p.name);
                    report.fail("query %00", op, format!("?{}=x%00y", p.name), &expected, describe(&res));
                }
            }
            Location::Path => {
                report.ran("path %00");
                let u = uri(op, &clinic.fx, Some(&p.name), None).expect("filled above");
                let res = send(app, op, &u, body.as_ref()).await;
                if !refused_path(op, &res) {
                    let expected = if op.is_page() { "404 HTML page" } else { "404 not_found" };
                    report.fail("path %00", op, u, expected, describe(&res));
                }
            }
            _ => {}
        }
    }
    if let (Some(valid), Some(spec)) = (&body, op.body.as_ref().or(op.form.as_ref())) {
        let slots = string_slots(doc, valid, &spec.schema);
        if slots.is_empty() {
            report.fail("unfillable", op, "body", "a string slot in the body", "none");
        }
        let mut cases: Vec<(&'static str, &Slot, &str)> = slots.iter().map(|s| ("body U+0000", s, "x\u{0}y")).collect();
        if let (Some(first), Some(last)) = (slots.first(), slots.last()) {
            cases.push(("body U+0001", first, "x\u{1}y"));
            cases.push(("body U+007F", last, "x\u{7f}y"));
        }
        for (kind, slot, text) in cases {
            report.ran(kind);
            let hostile = with_value(valid, &slot.steps, json!(text));
            let res = send(app, op, &valid_uri, Some(&hostile)).await;
            let refused = if op.is_form() {
                refused_form(&res)
            } else {
                refused_body(&res, &slot.field)
            };
            if !refused {
                let expected = if op.is_form() {
                    "422 HTML page".to_owned()
                } else {
                    format!("422 validation_failed [{}:invalid_characters]", slot.field)
                };
                report.fail(
                    kind,
                    op,
                    format!("{} ({})", slot.field, slot.was),
                    &expected,
                    describe(&res),
                );
            }
        }
    }
    report.ran("nothing stored");
    let mut changed = count_changes(&before, &app.row_counts());
    if op.is_form() {
        // A form's 422 page shows the visit again, and records that read; only reads.
        changed.retain(|c| !c.starts_with("audit_events "));
        let written: Vec<String> = audit_actions_after(app, last_audit_id)
            .into_iter()
            .filter(|a| !a.ends_with(".read"))
            .collect();
        if !written.is_empty() {
            changed.push(format!("audit events {}", written.join(", ")));
        }
    }
    if !changed.is_empty() {
        report.fail("nothing stored", op, "row counts", "no change", changed.join(", "));
    }

    if op.method != Method::GET {
        report.ran("valid request");
        // Built again: the version may have moved if a hostile request was wrongly taken.
        let body = match clinic.valid_body(doc, op, &filled_path).await {
            Ok(b) => b,
            Err(e) => return report.fail("valid request", op, "body", "a valid body", e),
        };
        let res = send(app, op, &valid_uri, body.as_ref()).await;
        let ok = match valid_request_exception(&op.id) {
            Some((status, code, _)) => {
                res.status.as_u16() == status && problem_body(&res).is_some_and(|b| b["code"] == code)
            }
            // A form answers with the page it shows, or a 303 to the page that says what it did.
            None if op.is_form() => {
                res.status.is_success() || (res.status.as_u16() == 303 && res.header("location").is_some())
            }
            None => res.status.is_success(),
        };
        if !ok {
            let expected = valid_request_exception(&op.id).map_or_else(
                || if op.is_form() { "2xx or 303" } else { "2xx" }.to_owned(),
                |(status, code, why)| format!("{status} {code} ({why})"),
            );
            let case = match &body {
                Some(b) => format!("{valid_uri} {b}"),
                None => valid_uri.clone(),
            };
            report.fail("valid request", op, case, &expected, describe(&res));
        }
    }
}

#[actix_web::test]
async fn control_characters_are_refused_by_every_operation_and_nothing_is_stored() {
    let doc = serde_json::to_value(clinic_api::openapi_document()).expect("the document as JSON");
    let ops = operations(&doc);
    assert!(
        ops.len() > 90,
        "only {} operations found; is the document complete?",
        ops.len()
    );
    for (id, _) in EXCLUDED {
        assert!(
            ops.iter().any(|op| op.id == id),
            "EXCLUDED names {id}, which the document no longer has"
        );
    }
    let mut report = Report::default();
    // GETs change nothing and share one clinic; every other operation gets its own, so its
    // valid request finds the fixtures as they were made.
    let shared = Clinic::new().await;
    for op in &ops {
        if EXCLUDED.iter().any(|(id, _)| *id == op.id) {
            continue;
        }
        if op.method == Method::GET {
            run_operation(&doc, &shared, op, &mut report).await;
        } else {
            let own = Clinic::new().await;
            run_operation(&doc, &own, op, &mut report).await;
        }
    }
    assert!(report.failures.is_empty(), "{}", report.summary());
}

/// The machinery on a small document: slots (present, null, absent, nested, in arrays) and
/// their paths, and the copy that changes exactly one of them.
#[test]
fn slots_cover_every_string_and_name_its_path() {
    let doc = json!({"components": {"schemas": {
        "Dec": {"type": ["string", "number"]},
        "Step": {"type": "object", "properties": {"start": {"type": "string"}, "label": {"type": ["string", "null"]},
                                                   "rate": {"$ref": "#/components/schemas/Dec"}}},
        "Body": {"type": "object", "properties": {
            "kind": {"type": "string"}, "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
            "factor": {"oneOf": [{"$ref": "#/components/schemas/Dec"}, {"type": "null"}]},
            "count": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": ["string", "null"]}}}
    }}});
    let schema = json!({"$ref": "#/components/schemas/Body"});
    let body =
        json!({"kind": "flex", "steps": [{"start": "06:00", "rate": 20}], "factor": null, "count": 3, "tags": ["a"]});
    let fields: Vec<(String, &str)> = string_slots(&doc, &body, &schema)
        .into_iter()
        .map(|s| (s.field, s.was))
        .collect();
    let mut want: Vec<(String, &str)> = [
        ("factor", "null"),
        ("kind", "present"),
        ("steps[0].start", "present"),
        ("steps[0].label", "absent"),
        ("tags[0]", "present"),
        ("note", "absent"),
    ]
    .into_iter()
    .map(|(f, w)| (f.to_owned(), w))
    .collect();
    want.sort();
    let mut got = fields.clone();
    got.sort();
    assert_eq!(got, want, "{fields:?}");
    let slot = string_slots(&doc, &body, &schema)
        .into_iter()
        .find(|s| s.field == "steps[0].label")
        .expect("slot");
    let hostile = with_value(&body, &slot.steps, json!("x\u{0}y"));
    assert_eq!(hostile["steps"][0]["label"], "x\u{0}y");
    assert_eq!(hostile["steps"][0]["start"], "06:00");
    assert_eq!(hostile["kind"], body["kind"]);
}
