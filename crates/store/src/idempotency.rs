//! Idempotency keys for writes that create things: the same key with the same request
//! gives the same resource; the same key with a different request is refused.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::idempotency_keys;
use crate::{time, DbConnection, StoreError};

/// What a key already stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// Unused key.
    None,
    /// Used for the same request: this resource was created.
    Same(String),
    /// Used for a different request.
    Different,
}

/// Looks a key up. Call inside the write transaction that creates the resource.
pub fn lookup(conn: &mut DbConnection, scope: &str, key: &str, request_hash: &str) -> Result<Prior, StoreError> {
    let row: Option<(String, String)> = idempotency_keys::table
        .find((scope, key))
        .select((idempotency_keys::request_hash, idempotency_keys::resource_id))
        .first(conn)
        .optional()?;
    Ok(match row {
        None => Prior::None,
        Some((hash, id)) if hash == request_hash => Prior::Same(id),
        Some(_) => Prior::Different,
    })
}

/// Records that `key` created `resource_id`, in the same transaction.
pub fn remember(
    conn: &mut DbConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
    resource_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::scope.eq(scope),
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(request_hash),
            idempotency_keys::resource_id.eq(resource_id),
            idempotency_keys::created_at.eq(time::to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}
