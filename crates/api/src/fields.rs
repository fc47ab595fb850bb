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

/// Free text a person writes (a reason, a note): trimmed, 1 to `max` characters, and no
/// control character but a line feed (the OpenAPI pattern `PRINTABLE_TEXT` says the same).
/// `message` names the field's rule for the 422.
pub fn free_text(field: &str, value: &str, max: usize, message: &str) -> Result<String, crate::problem::ApiError> {
    let t = value.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(crate::problem::ApiError::field(field, "invalid_length", message));
    }
    Ok(t.to_owned())
}

/// The reason staff give for cancelling or declining: 1 to 500 characters of free text.
pub fn reason(value: &str) -> Result<String, crate::problem::ApiError> {
    free_text("reason", value, 500, "a reason of 1 to 500 characters is required")
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

/// An exact decimal as requests send it: a JSON number (`0.25`) or a string of digits with
/// an optional fraction (`"0.25"`, at most nine digits either side). Anything else in a
/// string (`"+1"`, `"1e3"`, `" 2"`, `"1_000"`) is refused rather than guessed at, so the
/// server takes exactly what the OpenAPI pattern describes. Fields stay `Decimal` and use
/// [`decimal_input`]; this type gives them their schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalInput(pub rust_decimal::Decimal);

impl DecimalInput {
    pub const PATTERN: &'static str = r"^[0-9]{1,9}(\.[0-9]{1,9})?$";

    /// What the pattern allows as text, for numbers too: 0 up to 999,999,999.999999999.
    fn in_range(d: rust_decimal::Decimal) -> Option<DecimalInput> {
        (d >= rust_decimal::Decimal::ZERO && d < rust_decimal::Decimal::from(1_000_000_000)).then_some(DecimalInput(d))
    }

    fn parse_text(s: &str) -> Option<rust_decimal::Decimal> {
        let (whole, fraction) = s.split_once('.').unwrap_or((s, "1"));
        let digits = |p: &str| (1..=9).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(fraction) {
            return None;
        }
        s.parse().ok()
    }
}

/// `#[serde(deserialize_with = "decimal_input")]` for a `Decimal` field documented as
/// [`DecimalInput`].
pub fn decimal_input<'de, D: Deserializer<'de>>(d: D) -> Result<rust_decimal::Decimal, D::Error> {
    DecimalInput::deserialize(d).map(|v| v.0)
}

/// The same for an optional field (`null` or absent: `None`; pair with `#[serde(default)]`).
pub fn opt_decimal_input<'de, D: Deserializer<'de>>(d: D) -> Result<Option<rust_decimal::Decimal>, D::Error> {
    Option::<DecimalInput>::deserialize(d).map(|v| v.map(|v| v.0))
}

impl<'de> Deserialize<'de> for DecimalInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DecimalInput;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal number, or a string such as \"2.5\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DecimalInput, E> {
                DecimalInput::parse_text(v)
                    .map(DecimalInput)
                    .ok_or_else(|| E::custom(format!("'{v}' is not a decimal such as \"2.5\"")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DecimalInput, E> {
                DecimalInput::in_range(v.into()).ok_or_else(|| E::custom(format!("{v} is out of range")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DecimalInput, E> {
                DecimalInput::in_range(v.into()).ok_or_else(|| E::custom(format!("{v} is out of range")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DecimalInput, E> {
                // Display gives the shortest text that reads back as the same f64 (0.1, not
                // 0.1000000000000000055…), which is what the client meant.
                format!("{v}")
                    .parse()
                    .ok()
                    .and_then(DecimalInput::in_range)
                    .ok_or_else(|| E::custom(format!("{v} is out of range")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl utoipa::PartialSchema for DecimalInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Number]))
            .pattern(Some(Self::PATTERN))
            .minimum(Some(0))
            .exclusive_maximum(Some(1_000_000_000))
            .description(Some(
                "An exact decimal: a string of digits with an optional fraction (\"2.5\"), or a JSON number.",
            ))
            .examples([serde_json::json!("2.5")])
            .into()
    }
}

impl utoipa::ToSchema for DecimalInput {}

#[cfg(test)]
mod tests {
    use super::DecimalInput;

    #[test]
    fn decimals_are_read_exactly_as_the_pattern_says() {
        for ok in ["0", "2.5", "40", "0.000001", "123456789.123456789"] {
            let d: DecimalInput = serde_json::from_str(&format!("\"{ok}\"")).expect(ok);
            assert_eq!(d.0.to_string(), ok);
        }
        for bad in [
            "",
            "+1",
            "-1",
            "1e3",
            " 2",
            "2 ",
            "1_000",
            ".5",
            "5.",
            "1234567890",
            "NaN",
        ] {
            assert!(
                serde_json::from_str::<DecimalInput>(&format!("\"{bad}\"")).is_err(),
                "{bad}"
            );
        }
        let n: DecimalInput = serde_json::from_str("0.1").expect("number");
        assert_eq!(n.0.to_string(), "0.1");
        let n: DecimalInput = serde_json::from_str("40").expect("integer");
        assert_eq!(n.0.to_string(), "40");
        assert!(serde_json::from_str::<DecimalInput>("true").is_err());
        for out in ["-0.5", "1000000000", "1e300"] {
            assert!(serde_json::from_str::<DecimalInput>(out).is_err(), "{out}");
        }
    }
}
