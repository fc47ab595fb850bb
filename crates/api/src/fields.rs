//! Parsing request fields into domain values while collecting every field error, and the
//! absent / `null` / value distinction of PATCH bodies.

use clinic_domain::{FieldError, ValidationErrors};
use serde::{Deserialize, Deserializer};

/// Shared parsing of one optional text field into a domain value.
pub fn parse_opt<T>(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Option<Option<T>> {
    match value {
        None => Some(None),
        Some(v) => errors.check(field, parse(v)).map(Some),
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A field that may be absent or a value, but not `null`: it cannot be cleared.
pub fn parse_required<T, V>(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<Option<V>>,
    parse: impl FnOnce(V) -> Result<T, FieldError>,
) -> Option<T> {
    match value? {
        None => {
            errors.push(FieldError::new(
                field,
                "not_nullable",
                format!("{field} cannot be null"),
            ));
            None
        }
        Some(v) => errors.check(field, parse(v)),
    }
}

/// A field that may be absent, `null` (cleared) or a value to parse.
pub fn parse_nullable<T>(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<Option<String>>,
    parse: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Option<Option<T>> {
    match value {
        None => None,
        Some(None) => Some(None),
        Some(Some(v)) => errors.check(field, parse(&v)).map(Some),
    }
}
