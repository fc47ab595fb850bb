//! The OpenAPI document: base information and the bearer security scheme. Paths are
//! collected from the registered handlers by utoipa-actix-web.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use crate::problem::Problem;

pub const BEARER: &str = "bearer";
/// The security scheme of `/metrics` when `CLINIC_METRICS_TOKEN` is set.
pub const METRICS_TOKEN: &str = "metrics_token";

/// A string schema with a description, a pattern and a maximum length: the shape of the
/// named text types below.
fn patterned_text(description: &str, pattern: &str, max_length: usize) -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .max_length(Some(max_length))
}

/// An IANA time zone name, exactly as the tz database spells it (`America/Chicago`). A
/// pattern, not an enum of the ~600 names: names such as `GMT+0`, `GMT-0` and `GMT0` become
/// the same identifier in generated clients' enums, which then fail to build.
pub struct TimeZoneName;

impl PartialSchema for TimeZoneName {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        patterned_text(
            "An IANA time zone name from the tz database, e.g. `America/Chicago`; an unknown name is a 422.",
            r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$",
            64,
        )
        .examples([serde_json::json!("America/Chicago")])
        .into()
    }
}

impl ToSchema for TimeZoneName {}

/// A slug (`living-with-a-pump`): what content URLs and links between content use.
pub struct SlugText;

impl PartialSchema for SlugText {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        patterned_text(
            "Lower-case letters and digits in words joined by single hyphens.",
            r"^[a-z0-9]+(-[a-z0-9]+)*$",
            100,
        )
        .into()
    }
}

impl ToSchema for SlugText {}

/// An article tag: a slug of at most 40 characters, upper case folded to lower.
pub struct TagText;

impl PartialSchema for TagText {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        patterned_text(
            "Letters and digits in words joined by single hyphens; stored in lower case.",
            r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$",
            40,
        )
        .into()
    }
}

impl ToSchema for TagText {}

pub fn base() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Clinic platform API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "REST API of the intrathecal pump clinic platform. Authenticate with `Authorization: Bearer clinic_…`; each \
                     operation names the scope it needs (`admin` holds every scope). Errors are RFC 9457 \
                     `application/problem+json` bodies with a stable `code`. Instants are RFC 3339 with an \
                     offset, dates ISO 8601, zones IANA names. See docs/api.md for a walkthrough.",
                ))
                .build(),
        )
        .build()
}

/// Error responses every operation may give, declared once and added where they apply.
const COMMON_RESPONSES: [(&str, &str, &str); 9] = [
    ("400", "BadRequest", "Malformed JSON or query string"),
    (
        "401",
        "Unauthorized",
        "Missing, unknown, expired or revoked bearer token",
    ),
    ("403", "Forbidden", "The token lacks the scope this operation needs"),
    ("404", "NotFound", "No such resource (or one this token may not see)"),
    (
        "413",
        "PayloadTooLarge",
        "The request body is larger than the configured limit",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The request body is not application/json",
    ),
    (
        "422",
        "ValidationFailed",
        "One or more fields are invalid; `errors` names each",
    ),
    (
        "500",
        "InternalError",
        "An unexpected fault; the X-Request-Id response header identifies it in the logs",
    ),
    (
        "503",
        "ServiceUnavailable",
        "The database is unreachable; retry after the Retry-After delay",
    ),
];

/// Which common responses apply to an operation.
fn applies(status: &str, op: &Operation, secured: bool) -> bool {
    let has_body = op.request_body.is_some();
    let params = op
        .parameters
        .as_ref()
        .and_then(|ps| serde_json::to_value(ps).ok())
        .map(|v| v.to_string())
        .unwrap_or_default();
    let has_query = params.contains(r#""in":"query""#);
    let has_path = params.contains(r#""in":"path""#);
    match status {
        "400" => has_body || has_query,
        "401" | "403" => secured,
        "404" => has_path,
        "413" | "415" => has_body,
        // Only operations that use the database can find it unavailable.
        "503" => !matches!(op.operation_id.as_deref(), Some("get_health" | "get_metrics")),
        "422" => has_body || has_query,
        _ => true,
    }
}

/// True when the operation requires a token (its security list is not just `{}`).
fn is_secured(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|reqs| {
        serde_json::to_value(reqs).is_ok_and(|v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|r| r.as_object().is_some_and(|o| !o.is_empty())))
        })
    })
}

/// Adds what utoipa-actix-web cannot know: the security scheme, the problem schema and
/// the common error responses of every operation.
pub fn finish(mut api: OpenApi) -> OpenApi {
    for item in api.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let secured = is_secured(op);
            for (status, name, _) in COMMON_RESPONSES {
                if applies(status, op, secured) {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
    let components = api.components.get_or_insert_with(Default::default);
    let mut schemas = vec![("Problem".to_owned(), Problem::schema())];
    Problem::schemas(&mut schemas);
    components.schemas.extend(schemas);
    for (_, name, description) in COMMON_RESPONSES {
        components.responses.insert(
            name.to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            ),
        );
    }
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("clinic_<64 hex digits>")
                .description(Some("An API token from `clinic token create` or POST /api/v1/tokens"))
                .build(),
        ),
    );
    components.add_security_scheme(
        METRICS_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The value of CLINIC_METRICS_TOKEN, when the server sets it"))
                .build(),
        ),
    );
    tidy_for_generators(api)
}

/// What utoipa leaves out and client generators need (checked by generating a Python client
/// in CI): every response has a description (OpenAPI requires one; utoipa drops an empty one),
/// and a page's items point at the item schema instead of copying it, so a generated client
/// has one `ReminderResponse` type, not one per list.
/// What the server checks on free text (names, summaries, reasons, notes): after trimming
/// (Unicode white space) something is left, and no control character but a line feed. The
/// explicit white-space class is Rust's `char::is_whitespace`, so that generators and the
/// server agree on what "blank" is.
pub const PRINTABLE_TEXT: &str = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x09\x0b-\x1f\x7f-\x9f]*$";

/// [`PRINTABLE_TEXT`] on one line: no line feed either.
pub const PRINTABLE_LINE: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// Every required-text property (a string with `minLength` ≥ 1 and no pattern, format or
/// enum of its own) gets [`PRINTABLE_TEXT`], and every `format: text-line` property (names,
/// titles: `#[schema(format = "text-line")]`) gets [`PRINTABLE_LINE`]: one rule here rather
/// than the same long literal on dozens of fields. Codes and slugs carry their own pattern.
///
/// Required text is one line ([`PRINTABLE_LINE`]) unless the field is one of the documented
/// multi-line fields (`crate::edge::MULTILINE_FIELDS`), as the server's character rule says.
fn printable_text_pattern(schema: &mut serde_json::Value) {
    let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        let Some(p) = property.as_object_mut() else {
            continue;
        };
        let is_string = p
            .get("type")
            .is_some_and(|t| t == "string" || t.as_array().is_some_and(|a| a.iter().any(|x| x == "string")));
        if !is_string || p.contains_key("pattern") {
            continue;
        }
        if p.get("format").is_some_and(|f| f == "text-line") {
            p.insert("pattern".into(), serde_json::Value::from(PRINTABLE_LINE));
            continue;
        }
        let required_text = p.get("minLength").and_then(|m| m.as_u64()).is_some_and(|m| m >= 1);
        if required_text && !p.contains_key("format") && !p.contains_key("enum") {
            let pattern = match crate::edge::lines_of(name) {
                clinic_domain::text::Lines::Multi => PRINTABLE_TEXT,
                clinic_domain::text::Lines::Single => PRINTABLE_LINE,
            };
            p.insert("pattern".into(), serde_json::Value::from(pattern));
        }
    }
}

/// A query value may hold no control character (the door refuses it with 400).
pub const QUERY_TEXT: &str = r"^[^\x00-\x1f\x7f]*$";

/// A cursor, as the lists issue them (`pagination::cursor`: base64url without padding).
pub const CURSOR: &str = r"^[A-Za-z0-9_-]+$";

/// Query parameters say what the door accepts: plain strings get [`QUERY_TEXT`], cursors
/// [`CURSOR`] (parameters with a format, an enum or a pattern of their own keep it).
fn query_parameter_patterns(op: &mut serde_json::Value) {
    let Some(parameters) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
        return;
    };
    for parameter in parameters {
        if parameter.get("in").is_none_or(|i| i != "query") {
            continue;
        }
        let name = parameter
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_owned();
        let Some(schema) = parameter.get_mut("schema").and_then(|s| s.as_object_mut()) else {
            continue;
        };
        let is_string = schema
            .get("type")
            .is_some_and(|t| t == "string" || t.as_array().is_some_and(|a| a.iter().any(|x| x == "string")));
        if !is_string || ["pattern", "format", "enum"].iter().any(|k| schema.contains_key(*k)) {
            continue;
        }
        let pattern = if name == "cursor" { CURSOR } else { QUERY_TEXT };
        schema.insert("pattern".into(), serde_json::Value::from(pattern));
    }
}

fn tidy_for_generators(api: OpenApi) -> OpenApi {
    let Ok(mut doc) = serde_json::to_value(&api) else {
        return api;
    };
    if let Some(paths) = doc["paths"].as_object_mut() {
        for op in paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|i| i.values_mut())
        {
            query_parameter_patterns(op);
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                if response.get("$ref").is_none() && response.get("description").is_none_or(|d| d == "") {
                    response["description"] = serde_json::Value::from(match status.as_str() {
                        "200" => "OK",
                        "201" => "Created",
                        "204" => "No content",
                        "404" => "No such resource",
                        _ => "Response",
                    });
                }
            }
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for schema in schemas.values_mut() {
            printable_text_pattern(schema);
        }
        let names: Vec<String> = schemas.keys().cloned().collect();
        for name in &names {
            let Some(item) = name.strip_prefix("Page_") else {
                continue;
            };
            if !names.iter().any(|n| n == item) {
                continue;
            }
            if let Some(items) = schemas[name]["properties"]["items"].as_object_mut() {
                items.insert(
                    "items".into(),
                    serde_json::json!({"$ref": format!("#/components/schemas/{item}")}),
                );
            }
        }
    }
    serde_json::from_value(doc).unwrap_or(api)
}
