//! The checks every request passes at the door, before any route sees it (the middleware
//! `middleware::guard` runs the header, path and query checks): the size of its headers, and
//! the character rule of [`clinic_domain::text`] for every text it carries
//! (JSON string values, form fields, query parameters, path segments). Putting the rule here,
//! in the extractors and the form parser every door uses, means no handler has to remember
//! it, and SQLite and PostgreSQL give the same answer (PostgreSQL cannot store U+0000).

use clinic_domain::text::{self, Lines};
use clinic_domain::{FieldError, ValidationErrors};
use serde_json::Value;

use crate::problem::ApiError;

/// The most a request's header lines may hold together (names, values and their separators),
/// in bytes. Real clients send well under 4 KiB; a larger total is a mistake or an attack.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Fields documented as multi-line, by their last name in the path (`steps[0].note` is a
/// `note`): they may hold tab, line feed and carriage return. Every other text is one line.
pub const MULTILINE_FIELDS: &[&str] = &["body_markdown", "notes", "note", "reason", "preferred_times"];

/// Whether the field at `path` (`steps[2].note`, `reason`) may break lines.
pub fn lines_of(path: &str) -> Lines {
    let last = path.rsplit('.').next().unwrap_or(path);
    let name = last.split('[').next().unwrap_or(last);
    if MULTILINE_FIELDS.contains(&name) {
        Lines::Multi
    } else {
        Lines::Single
    }
}

/// Refuses a JSON body in which any string (or object key), at any depth, holds a forbidden
/// character: 422 naming every such value by its path. Runs before the strict parse, so an id
/// or enum value with a NUL in it is named for its characters, not as an unknown value.
///
/// A C0 control character can only reach a JSON string through an escape (raw ones are a
/// syntax error); DEL may also stand raw. So a body with neither a backslash nor a DEL byte,
/// which is almost every body, costs one byte scan.
pub fn check_json(body: &[u8]) -> Result<(), ApiError> {
    if !body.iter().any(|&b| b == b'\\' || b == 0x7f) {
        return Ok(());
    }
    // A body that does not parse is left to the strict parse, which says why.
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let mut errors = ValidationErrors::new();
    walk_json(&value, &mut String::new(), &mut errors);
    errors.finish().map_err(ApiError::Validation)
}

fn walk_json(value: &Value, path: &mut String, errors: &mut ValidationErrors) {
    match value {
        Value::String(s) => {
            let field = if path.is_empty() { "body" } else { path.as_str() };
            if let Err(e) = text::check(field, s, lines_of(field)) {
                errors.push(e);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_json(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                match text::forbidden_char(key, Lines::Single) {
                    // The key itself is the bad text: name it by its readable part.
                    Some(c) => {
                        path.push_str(&key.replace(|c| text::is_forbidden(c, Lines::Single), "?"));
                        errors.push(text::invalid_characters(path, c));
                    }
                    None => {
                        path.push_str(key);
                        walk_json(item, path, errors);
                    }
                }
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// serde_json refuses a lone surrogate escape (`"\ud800"`) as a syntax error; the caller
/// names the field it was in.
pub fn is_lone_surrogate(e: &serde_json::Error) -> bool {
    let message = e.to_string();
    message.contains("surrogate") || message.contains("end of hex escape")
}

/// Decoded `name=value` pairs of a query string or form body; `Err(name)` for the first
/// pair that is not UTF-8 once decoded (`name` as far as it decodes).
fn decoded_pairs(raw: &[u8]) -> Result<Vec<(String, String)>, String> {
    raw.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let decode = |part: &[u8]| {
                let plus_as_space: Vec<u8> = part.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
                let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
                String::from_utf8(bytes)
            };
            let lossy_name = || String::from_utf8_lossy(name).into_owned();
            let name = decode(name).map_err(|_| lossy_name())?;
            let value = decode(value).map_err(|_| name.clone())?;
            Ok((name, value))
        })
        .collect()
}

/// Refuses a query string with a parameter that does not decode to UTF-8 or holds a
/// forbidden character: 400 `invalid_query` naming the parameter. Query values are one line.
pub fn check_query(query: &str) -> Result<(), ApiError> {
    let bad = |name: String, what: &str| ApiError::BadRequest {
        code: "invalid_query",
        detail: format!("{name}: {what}"),
        field: Some(name),
    };
    let pairs = decoded_pairs(query.as_bytes()).map_err(|name| bad(name, "is not valid UTF-8 once decoded"))?;
    for (name, value) in pairs {
        for part in [&name, &value] {
            if let Some(c) = text::forbidden_char(part, Lines::Single) {
                let shown = name.replace(|c| text::is_forbidden(c, Lines::Single), "?");
                return Err(bad(
                    shown,
                    &format!("contains the control character U+{:04X}", c as u32),
                ));
            }
        }
    }
    Ok(())
}

/// Checks a form body (`application/x-www-form-urlencoded`) field by field: every field that
/// does not decode to UTF-8 or holds a forbidden character is named with
/// `invalid_characters`, as for JSON.
pub fn check_form(body: &[u8]) -> Result<(), ValidationErrors> {
    let pairs = decoded_pairs(body).map_err(|name| {
        ValidationErrors::single(FieldError::new(name, text::INVALID_CHARACTERS, "is not valid UTF-8"))
    })?;
    let mut errors = ValidationErrors::new();
    for (name, value) in &pairs {
        if let Err(e) = text::check(name, value, lines_of(name)) {
            errors.push(e);
        }
    }
    errors.finish()
}

/// Whether every segment of a raw (still percent-encoded) path decodes to UTF-8 text without
/// a forbidden character. Such a path names nothing we serve.
pub fn path_is_clean(raw: &str) -> bool {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    std::str::from_utf8(&decoded).is_ok_and(|p| text::forbidden_char(p, Lines::Single).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_fields(body: &str) -> Vec<(String, String)> {
        match check_json(body.as_bytes()) {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation(v)) => v.errors().iter().map(|e| (e.field.clone(), e.code.clone())).collect(),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }

    #[test]
    fn json_names_every_bad_string_by_its_path() {
        assert!(json_fields(r#"{"notes": "plain", "a": [1, "b"]}"#).is_empty());
        assert!(json_fields(r#"{"notes": "line\nbreak\ttab", "reason": "x\r\ny"}"#).is_empty());
        assert!(json_fields(r#"{"q": "a \"quoted\" \\ back\/slash \u00e9"}"#).is_empty());
        let bad = "invalid_characters".to_owned();
        assert_eq!(
            json_fields(r#"{"notes": "x\u0000y"}"#),
            vec![("notes".into(), bad.clone())]
        );
        assert_eq!(
            json_fields(r#"{"steps": [{"note": "ok\n"}, {"label": "a\nb"}], "given_name": "\u007f"}"#),
            vec![
                ("given_name".into(), bad.clone()),
                ("steps[1].label".into(), bad.clone())
            ]
        );
        assert_eq!(json_fields(r#"["\u001b"]"#), vec![("[0]".into(), bad.clone())]);
        assert_eq!(json_fields(r#""\u0000""#), vec![("body".into(), bad.clone())]);
        assert_eq!(json_fields(r#"{"a\u0000b": 1}"#), vec![("a?b".into(), bad.clone())]);
        assert_eq!(
            json_fields("{\"name\": \"raw\u{7f}del\"}"),
            vec![("name".into(), bad)],
            "DEL needs no escape"
        );
        // Broken JSON is the strict parser's to report.
        assert!(json_fields(r#"{"notes": "\u0000"#).is_empty());
    }

    #[test]
    fn queries_name_the_parameter() {
        let field = |q: &str| match check_query(q) {
            Ok(()) => None,
            Err(ApiError::BadRequest { code, field, .. }) => Some((code, field.unwrap_or_default())),
            Err(e) => panic!("unexpected error {e:?}"),
        };
        assert_eq!(field("q=Zo%C3%AB+O%27Brien&limit=5&flag"), None);
        assert_eq!(field("q=a%00b"), Some(("invalid_query", "q".into())));
        assert_eq!(field("limit=1&q=%0A"), Some(("invalid_query", "q".into())));
        assert_eq!(field("q%00=1"), Some(("invalid_query", "q?".into())));
        assert_eq!(
            field("q=%ED%A0%80"),
            Some(("invalid_query", "q".into())),
            "a surrogate in CESU-8"
        );
        assert_eq!(field("q=%FF"), Some(("invalid_query", "q".into())));
    }

    #[test]
    fn forms_allow_line_breaks_only_in_multiline_fields() {
        assert!(check_form(b"reason=line%0D%0Abreak&given_name=Zo%C3%AB").is_ok());
        let e = check_form(b"given_name=a%0Ab&reason=%00&email=%FF").expect_err("refused");
        let fields: Vec<_> = e.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["email"], "the first undecodable field is named alone");
        let e = check_form(b"given_name=a%0Ab&reason=%00").expect_err("refused");
        let fields: Vec<_> = e.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["given_name", "reason"]);
    }

    #[test]
    fn paths_with_control_characters_or_broken_utf8_are_unclean() {
        assert!(path_is_clean("/articles/pump-therapy"));
        assert!(path_is_clean("/articles/caf%C3%A9"));
        assert!(!path_is_clean("/articles/a%00b"));
        assert!(!path_is_clean("/api/v1/patients/%0a"));
        assert!(!path_is_clean("/articles/%C3"));
    }
}
