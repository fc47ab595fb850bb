//! Calendar feed tokens: a revocable secret per subscription to a provider's calendar.
//! Only the SHA-256 of the secret is stored, like API tokens.

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::ids::{FeedTokenId, ProviderId};
use clinic_store::schema::calendar_feed_tokens;
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{corrupt, providers, SchedulingError};

pub const PREFIX: &str = "feed_";

#[derive(Debug, Clone, PartialEq)]
pub struct FeedToken {
    pub id: FeedTokenId,
    pub provider_id: ProviderId,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Makes a feed token; returns it with its secret (shown once).
pub fn create(
    conn: &mut DbConnection,
    provider: ProviderId,
    now: DateTime<Utc>,
) -> Result<(FeedToken, String), SchedulingError> {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{PREFIX}{}", hex::encode(bytes));
    let id = FeedTokenId::new();
    dialect::write_transaction(conn, |conn| {
        providers::get(conn, provider)?;
        diesel::insert_into(calendar_feed_tokens::table)
            .values((
                calendar_feed_tokens::id.eq(id.to_string()),
                calendar_feed_tokens::provider_id.eq(provider.to_string()),
                calendar_feed_tokens::token_hash.eq(hash(&secret)),
                calendar_feed_tokens::created_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        Ok::<(), SchedulingError>(())
    })?;
    Ok((
        FeedToken {
            id,
            provider_id: provider,
            created_at: now,
            revoked_at: None,
        },
        secret,
    ))
}

pub fn list(conn: &mut DbConnection, provider: ProviderId) -> Result<Vec<FeedToken>, SchedulingError> {
    let rows: Vec<(String, NaiveDateTime, Option<NaiveDateTime>)> = calendar_feed_tokens::table
        .filter(calendar_feed_tokens::provider_id.eq(provider.to_string()))
        .order(calendar_feed_tokens::id.desc())
        .select((
            calendar_feed_tokens::id,
            calendar_feed_tokens::created_at,
            calendar_feed_tokens::revoked_at,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, c, r)| {
            Ok(FeedToken {
                id: id.parse().map_err(|_| corrupt("feed token id"))?,
                provider_id: provider,
                created_at: time::from_db(c),
                revoked_at: r.map(time::from_db),
            })
        })
        .collect()
}

pub fn revoke(
    conn: &mut DbConnection,
    provider: ProviderId,
    id: FeedTokenId,
    now: DateTime<Utc>,
) -> Result<(), SchedulingError> {
    let n = dialect::write_transaction(conn, |conn| {
        let mine = || {
            calendar_feed_tokens::table
                .filter(calendar_feed_tokens::id.eq(id.to_string()))
                .filter(calendar_feed_tokens::provider_id.eq(provider.to_string()))
        };
        // Revoking twice keeps the first revocation time.
        diesel::update(mine().filter(calendar_feed_tokens::revoked_at.is_null()))
            .set(calendar_feed_tokens::revoked_at.eq(time::to_db(now)))
            .execute(conn)?;
        mine().count().get_result::<i64>(conn)
    })?;
    if n == 0 {
        return Err(SchedulingError::NotFound("feed token"));
    }
    Ok(())
}

/// True when `secret` is a live feed token of `provider`.
pub fn allows(conn: &mut DbConnection, provider: ProviderId, secret: &str) -> Result<bool, SchedulingError> {
    if !secret.starts_with(PREFIX) || secret.len() > 100 {
        return Ok(false);
    }
    let n: i64 = calendar_feed_tokens::table
        .filter(calendar_feed_tokens::token_hash.eq(hash(secret)))
        .filter(calendar_feed_tokens::provider_id.eq(provider.to_string()))
        .filter(calendar_feed_tokens::revoked_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
