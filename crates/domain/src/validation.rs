//! Field-level validation errors, collected so one response can name every bad field.

use std::fmt;

/// One rejected input field: which field, a stable machine code, and a readable message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON path of the field, e.g. `email` or `steps[2].rate`.
    #[cfg_attr(feature = "openapi", schema(example = "email"))]
    pub field: String,
    /// Stable machine-readable reason, e.g. `invalid_email`, `required`, `too_long`.
    #[cfg_attr(feature = "openapi", schema(example = "invalid_email"))]
    pub code: String,
    /// Human-readable explanation.
    #[cfg_attr(feature = "openapi", schema(example = "not a valid email address"))]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The same error reported under another field name (a domain parser does not know
    /// which request field it was given).
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
}

/// A non-empty set of field errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(error: FieldError) -> Self {
        Self(vec![error])
    }

    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Keeps the value when `result` is Ok, records the error under `field` otherwise.
    pub fn check<T>(&mut self, field: &str, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.0.push(e.at(field));
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    pub fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<&str> = self.0.iter().map(|e| e.field.as_str()).collect();
        write!(f, "invalid fields: {}", fields.join(", "))
    }
}

impl std::error::Error for ValidationErrors {}

impl From<FieldError> for ValidationErrors {
    fn from(e: FieldError) -> Self {
        Self::single(e)
    }
}
