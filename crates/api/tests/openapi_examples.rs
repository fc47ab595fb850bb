//! Proves that every operation in the OpenAPI document (`clinic_api::openapi_document()`, the
//! one served at `/api-docs/openapi.json`) has a non-empty description or summary and shows at
//! least one concrete example. An example counts when it is found:
//!
//! - on the request body's or a 2xx response's media type (`example` / `examples`), or
//! - in that media type's schema, following `$ref`s, `allOf` / `oneOf` / `anyOf`, an array's
//!   `items` and a list wrapper's `items` property (`Page<T>`, `…List`), or
//! - on one of the operation's parameters or its schema (how 204 deletes show theirs).
//!
//! Error responses do not count: an operation whose only example is a `Problem` fails.
//! A failure lists every offending operation.

use serde_json::Value;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Far deeper than any real chain (`Page` → `items` → `$ref` → item is 4); only a guard
/// against reference cycles.
const MAX_DEPTH: usize = 8;

fn has_own_example(node: &Value) -> bool {
    node.get("example").is_some() || node.get("examples").is_some()
}

/// Whether `schema` shows an example itself or through what it is made of.
fn schema_has_example(doc: &Value, schema: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH || !schema.is_object() {
        return false;
    }
    if has_own_example(schema) {
        return true;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference.strip_prefix('#').and_then(|pointer| doc.pointer(pointer));
        return target.is_some_and(|t| schema_has_example(doc, t, depth + 1));
    }
    if let Some(items) = schema.get("items") {
        return schema_has_example(doc, items, depth + 1);
    }
    let composed = ["allOf", "oneOf", "anyOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .any(|part| schema_has_example(doc, part, depth + 1));
    if composed {
        return true;
    }
    schema
        .get("properties")
        .and_then(|p| p.get("items"))
        .is_some_and(|items| schema_has_example(doc, items, depth + 1))
}

/// A request body or response: any of its media types shows an example.
fn content_has_example(doc: &Value, holder: &Value) -> bool {
    holder.get("content").and_then(Value::as_object).is_some_and(|content| {
        content
            .values()
            .any(|media| has_own_example(media) || media.get("schema").is_some_and(|s| schema_has_example(doc, s, 0)))
    })
}

fn parameter_has_example(doc: &Value, parameter: &Value) -> bool {
    has_own_example(parameter) || parameter.get("schema").is_some_and(|s| schema_has_example(doc, s, 0))
}

fn operation_has_example(doc: &Value, path_item: &Value, op: &Value) -> bool {
    let request = op.get("requestBody").is_some_and(|b| content_has_example(doc, b));
    let success = op.get("responses").and_then(Value::as_object).is_some_and(|responses| {
        responses
            .iter()
            .any(|(status, r)| status.starts_with('2') && content_has_example(doc, r))
    });
    let parameters = [path_item, op]
        .iter()
        .filter_map(|holder| holder.get("parameters").and_then(Value::as_array))
        .flatten()
        .any(|p| parameter_has_example(doc, p));
    request || success || parameters
}

fn non_empty(op: &Value, key: &str) -> bool {
    op.get(key)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

#[actix_web::test]
async fn every_operation_has_a_description_and_an_example() {
    let doc = serde_json::to_value(clinic_api::openapi_document()).expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    let (mut operations, mut undescribed, mut without_example) = (0, Vec::new(), Vec::new());
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let name = format!("{} {path}", method.to_uppercase());
            if !non_empty(op, "description") && !non_empty(op, "summary") {
                undescribed.push(name.clone());
            }
            if !operation_has_example(&doc, item, op) {
                without_example.push(name);
            }
        }
    }
    assert!(
        operations > 90,
        "only {operations} operations found; is the document complete?"
    );
    assert!(
        undescribed.is_empty() && without_example.is_empty(),
        "of {operations} operations, {} have no description or summary:\n  {}\n{} show no example \
         (request body, 2xx response or parameter):\n  {}",
        undescribed.len(),
        undescribed.join("\n  "),
        without_example.len(),
        without_example.join("\n  ")
    );
}

/// The rule itself: a list resolves through `items` to its item type, an error body does not
/// count, and a parameter example does.
#[test]
fn the_example_rule_follows_refs_and_ignores_error_responses() {
    let doc = serde_json::json!({
        "components": {"schemas": {
            "Item": {"type": "object", "example": {"id": "x"}},
            "Bare": {"type": "object", "properties": {"id": {"type": "string"}}},
            "Page_Item": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}},
            "Problem": {"type": "object", "example": {"status": 404}}
        }},
    });
    let op = |status: &str, schema: &str| {
        let media = serde_json::json!({"schema": {"$ref": format!("#/components/schemas/{schema}")}});
        serde_json::json!({"responses": {status: {"content": {"application/json": media}}}})
    };
    let none = serde_json::json!({});
    assert!(operation_has_example(&doc, &none, &op("200", "Page_Item")));
    assert!(!operation_has_example(&doc, &none, &op("200", "Bare")));
    assert!(!operation_has_example(&doc, &none, &op("404", "Problem")));
    let delete = serde_json::json!({
        "parameters": [{"name": "id", "in": "path", "example": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10"}],
        "responses": {"204": {"description": "Removed"}}
    });
    assert!(operation_has_example(&doc, &none, &delete));
    let text = serde_json::json!({"responses": {"200": {"content": {"text/plain": {"schema": {"type": "string"}, "example": "ok"}}}}});
    assert!(operation_has_example(&doc, &none, &text));
}
