//! Extractors: a strict JSON body that names the offending field, bearer-token auth with a
//! required scope checked by type, and problem bodies for bad paths and query strings.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use clinic_auth::Principal;
use clinic_domain::auth::Scope;
use clinic_patients::audit::Actor;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;
use crate::state::AppState;

/// The request body limit in bytes (app data).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The request's id, set by the observing middleware (from `X-Request-Id` or fresh).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A JSON body deserialised strictly (DTOs deny unknown fields), with errors that name the
/// field: `{"field": "steps[2].rate", "code": "invalid_value", ...}`.
///
/// Extraction never fails: the outcome is held until the handler calls
/// [`JsonBody::into_inner`]. Actix runs a handler's extractors together, so a body error
/// could otherwise answer before the token check; this way 401/403 always come first.
pub struct JsonBody<T>(Result<T, ApiError>);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map(|l| l.0).unwrap_or(64 * 1024);
        let is_json = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move { Ok(JsonBody(read_json(is_json, declared, limit, &mut payload).await)) })
    }
}

async fn read_json<T: DeserializeOwned>(
    is_json: bool,
    declared: Option<usize>,
    limit: usize,
    payload: &mut Payload,
) -> Result<T, ApiError> {
    {
        {
            if !is_json {
                return Err(ApiError::UnsupportedMediaType);
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::BadRequest {
                    code: "invalid_body",
                    detail: format!("could not read the request body: {e}"),
                    field: None,
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body)
        }
    }
}

/// Names the field a serde error is about and gives it a stable code.
fn field_error(path: &str, message: &str, whole: &str) -> clinic_domain::FieldError {
    let named = backticked(message);
    let (code, field) = if message.starts_with("missing field") {
        ("required", join_path(path, named))
    } else if message.starts_with("unknown field") && path == "." {
        ("unknown_field", named.unwrap_or_default().to_owned())
    } else if message.starts_with("unknown field") {
        ("unknown_field", path.to_owned())
    } else {
        ("invalid_value", path.to_owned())
    };
    let field = if field.is_empty() || field == "." {
        whole.to_owned()
    } else {
        field
    };
    // serde_json's message ends with " at line 1 column 42": not useful beside the field.
    let message = message.split(" at line ").next().unwrap_or(message);
    clinic_domain::FieldError::new(field, code, message)
}

/// Deserialises `body`, mapping serde's error to a field-level problem. One strict pass; only
/// a body that serde refuses for a float where an integer belongs is read a second time,
/// with whole floats made integers (see [`WholeFloatsAsIntegers`]).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::edge::check_json(body)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        Err(e) if crate::edge::is_lone_surrogate(e.inner()) => {
            let path = e.path().to_string();
            let field = if path.is_empty() || path == "." {
                "body".to_owned()
            } else {
                path
            };
            return Err(ApiError::Validation(
                clinic_domain::FieldError::new(
                    field,
                    clinic_domain::text::INVALID_CHARACTERS,
                    "holds a lone UTF-16 surrogate escape, which is no character",
                )
                .into(),
            ));
        }
        Err(e) if e.inner().is_syntax() || e.inner().is_eof() => {
            return Err(ApiError::BadRequest {
                code: "malformed_json",
                detail: format!("the body is not valid JSON: {}", e.inner()),
                field: None,
            });
        }
        Err(e) if e.inner().to_string().starts_with("invalid type: floating point") => {
            let json: WholeFloatsAsIntegers = serde_json::from_slice(body).map_err(|e| {
                if e.is_data() {
                    ApiError::Validation(field_error("", &e.to_string(), "body").into())
                } else {
                    malformed_trailer()
                }
            })?;
            return serde_path_to_error::deserialize(json.0).map_err(|e| validation(&e));
        }
        Err(e) => return Err(validation(&e)),
    };
    de.end().map_err(|_| malformed_trailer())?;
    Ok(value)
}

fn validation(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    ApiError::Validation(field_error(&e.path().to_string(), &e.inner().to_string(), "body").into())
}

fn malformed_trailer() -> ApiError {
    ApiError::BadRequest {
        code: "malformed_json",
        detail: "trailing characters after the JSON value".into(),
        field: None,
    }
}

/// A JSON value read for the second pass of [`parse_json`]. JSON Schema counts `3.0` as an
/// integer, so a client (or a generated one) may send it where the schema says `integer`;
/// serde would refuse it. Whole floats below 2^53 (where every whole f64 is exact; a larger
/// literal reaches us rounded and must stay refused) become integers, and fields typed as
/// numbers read them the same either way. Like serde's derive, and unlike
/// `serde_json::Value`, it refuses an object with the same key twice.
struct WholeFloatsAsIntegers(serde_json::Value);

impl<'de> serde::Deserialize<'de> for WholeFloatsAsIntegers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, SeqAccess, Visitor};
        use serde_json::Value;
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = WholeFloatsAsIntegers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(WholeFloatsAsIntegers(Value::Null))
            }
            fn visit_bool<E: Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(WholeFloatsAsIntegers(Value::from(v)))
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WholeFloatsAsIntegers(Value::from(v)))
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(WholeFloatsAsIntegers(Value::from(v)))
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
                const EXACT: f64 = 9_007_199_254_740_992.0;
                Ok(WholeFloatsAsIntegers(
                    if v.fract() == 0.0 && (-EXACT..=EXACT).contains(&v) {
                        Value::from(v as i64)
                    } else {
                        Value::from(v)
                    },
                ))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WholeFloatsAsIntegers(Value::from(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(WholeFloatsAsIntegers(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(WholeFloatsAsIntegers(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let WholeFloatsAsIntegers(value) = map.next_value()?;
                    if fields.contains_key(&key) {
                        return Err(A::Error::custom(format!("duplicate field `{key}`")));
                    }
                    fields.insert(key, value);
                }
                Ok(WholeFloatsAsIntegers(Value::Object(fields)))
            }
        }
        d.deserialize_any(JsonVisitor)
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn join_path(path: &str, name: Option<&str>) -> String {
    match (path, name) {
        (".", Some(n)) | ("", Some(n)) => n.to_owned(),
        (p, Some(n)) => format!("{p}.{n}"),
        (p, None) => p.to_owned(),
    }
}

/// Query parameters deserialised strictly, with a 400 `invalid_query` problem naming the
/// parameter. Like [`JsonBody`], the outcome waits for [`QueryParams::into_inner`] so auth
/// errors come first.
pub struct QueryParams<T>(Result<T, ApiError>);

impl<T> QueryParams<T> {
    pub fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned> FromRequest for QueryParams<T> {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(QueryParams(parse_query(req.query_string()))))
    }
}

/// Parses a query string (`+` decodes to a space, so offsets must be sent as `%2B`).
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let error = field_error(&e.path().to_string(), &e.inner().to_string(), "query");
        ApiError::BadRequest {
            code: "invalid_query",
            detail: format!("{}: {}", error.field, error.message),
            field: Some(error.field),
        }
    })
}

/// A form body (`application/x-www-form-urlencoded`, the HTML doors) read into `T`, after
/// the character rule has passed every field ([`crate::edge::check_form`]). Missing or
/// unparsable fields read as their defaults, for the page to name with its own rules.
pub fn parse_form<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, clinic_domain::ValidationErrors> {
    crate::edge::check_form(body)?;
    Ok(serde_urlencoded::from_bytes(body).unwrap_or_default())
}

/// A raw body (the HTML request form) under the same limit as JSON bodies, refused with a
/// problem body like them.
pub async fn read_body(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let limit = req.app_data::<BodyLimit>().map(|l| l.0).unwrap_or(64 * 1024);
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::BadRequest {
            code: "bad_body",
            detail: format!("the request body could not be read: {e}"),
            field: None,
        }),
        Err(_) => Err(ApiError::PayloadTooLarge(limit)),
    }
}

/// Path segments that do not parse mean there is no such resource.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err, _req| ApiError::NotFound("resource").into())
}

/// A scope that a route requires, as a type.
pub trait RequiredScope {
    const SCOPE: Scope;
}

macro_rules! scope_marker {
    ($($name:ident => $scope:expr),* $(,)?) => {
        $(
            #[doc = concat!("Requires the `", stringify!($name), "` scope.")]
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = $scope;
            }
        )*
    };
}

/// Scope markers for [`Authorized`].
pub mod scopes {
    use super::{RequiredScope, Scope};
    scope_marker!(
        Admin => Scope::Admin,
        PatientsRead => Scope::PatientsRead,
        PatientsWrite => Scope::PatientsWrite,
        ContentWrite => Scope::ContentWrite,
        SchedulingWrite => Scope::SchedulingWrite,
        PumpsRead => Scope::PumpsRead,
        PumpsWrite => Scope::PumpsWrite,
        RemindersAdmin => Scope::RemindersAdmin,
    );
}

/// A caller holding a valid token with scope `S` (or `admin`): 401 without a valid token,
/// 403 without the scope.
pub struct Authorized<S> {
    pub principal: Principal,
    /// The actor for audit events: the token and the request id.
    pub actor: Actor,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let secret = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|s| s.trim().to_owned());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        let req = req.clone();
        Box::pin(async move {
            let secret = secret.ok_or(ApiError::Unauthorized)?;
            let state = state.ok_or_else(|| ApiError::Internal("application state missing".into()))?;
            let now = state.now();
            let hash = clinic_auth::hash_secret(&secret);
            let principal = match state.tokens.get(&hash, now) {
                Some(principal) => principal,
                None => {
                    let principal = state
                        .db(move |conn| clinic_auth::authenticate(conn, &secret, now))
                        .await?;
                    state.tokens.insert(hash, principal.clone(), principal.expires_at);
                    principal
                }
            };
            req.extensions_mut().insert(principal.token_id);
            if !principal.scopes.allows(S::SCOPE) {
                return Err(ApiError::Forbidden(S::SCOPE));
            }
            Ok(Authorized {
                actor: Actor::token(principal.token_id, request_id),
                principal,
                _scope: PhantomData,
            })
        })
    }
}

/// The request's id (set by the request-id middleware), for the audit events of pages that
/// have no token to carry it.
pub fn request_id_of(req: &HttpRequest) -> Option<String> {
    use actix_web::HttpMessage;
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        rate: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        steps: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Query {
        limit: Option<i64>,
        from: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let field = |q: &str| match parse_query::<Query>(q) {
            Err(ApiError::BadRequest { code, field, .. }) => (code, field.unwrap_or_default()),
            other => panic!("expected an error, got {:?}", other.map(|_| ())),
        };
        assert_eq!(field("limit=ten"), ("invalid_query", "limit".into()));
        assert_eq!(field("serach=x"), ("invalid_query", "serach".into()));
        assert_eq!(
            field("from=2027-01-01T00:00:00+01:00"),
            ("invalid_query", "from".into())
        );
        assert!(parse_query::<Query>("from=2027-01-01T00:00:00%2B01:00&limit=5").is_ok());
    }

    #[test]
    fn whole_floats_are_integers_and_fields_are_read_once() {
        let rate = |body: &str| parse_json::<Inner>(body.as_bytes()).map(|i| i.rate);
        assert_eq!(rate(r#"{"rate": 3.0}"#).ok(), Some(3));
        assert!(rate(r#"{"rate": 3.5}"#).is_err());
        assert!(rate(r#"{"rate": 3.0} x"#).is_err(), "trailing characters");
        for twice in [r#"{"rate": 1, "rate": 2}"#, r#"{"rate": 1.0, "rate": 2}"#] {
            assert!(rate(twice).is_err(), "a field given twice is refused: {twice}");
        }
    }

    fn field_of(body: &str) -> (String, String) {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::Validation(v)) => (v.errors()[0].field.clone(), v.errors()[0].code.clone()),
            Err(ApiError::BadRequest { code, .. }) => ("-".into(), code.into()),
            other => panic!("expected an error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"steps": []}"#), ("name".into(), "required".into()));
        assert_eq!(
            field_of(r#"{"name": "a", "steps": [], "x": 1}"#),
            ("x".into(), "unknown_field".into())
        );
        assert_eq!(
            field_of(r#"{"name": "a", "steps": [{"rate": 1}, {"rate": "fast"}]}"#),
            ("steps[1].rate".into(), "invalid_value".into())
        );
        assert_eq!(
            field_of(r#"{"name": "a", "steps": [{"rate": 1, "extra": 2}]}"#),
            ("steps[0].extra".into(), "unknown_field".into())
        );
        assert_eq!(field_of(r#"{"name": "a", "#), ("-".into(), "malformed_json".into()));
        assert_eq!(
            field_of(r#"{"name": "a", "steps": []} {}"#),
            ("-".into(), "malformed_json".into())
        );
        assert_eq!(field_of(r#"[]"#), ("body".into(), "invalid_value".into()));
    }
}
