//! Cursor pagination: `limit` (1–100, default 50) and an opaque `cursor` from the previous
//! page's `next_cursor`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 100;

/// Checks a requested page size against the hard cap.
pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::field(
            "limit",
            "out_of_range",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// An invalid cursor is the caller's error, not an empty page.
pub fn bad_cursor() -> ApiError {
    ApiError::field("cursor", "invalid_cursor", "cursor is not one returned by this list")
}

/// A keyset cursor for lists ordered by an instant, then an id: `{micros}_{id}`.
pub fn instant_cursor(at: DateTime<Utc>, id: &impl std::fmt::Display) -> String {
    format!("{}_{id}", at.timestamp_micros())
}

/// Reads an [`instant_cursor`]; anything else is a 422 naming `cursor`.
pub fn decode_instant_cursor<T: std::str::FromStr>(c: &str) -> Result<(DateTime<Utc>, T), ApiError> {
    let (micros, id) = c.split_once('_').ok_or_else(bad_cursor)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad_cursor)?;
    Ok((at, id.parse().map_err(|_| bad_cursor())?))
}
