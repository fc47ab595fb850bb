//! A short-lived cache of authenticated tokens, so a request costs one database round trip
//! for its work rather than two. Keyed by the token's SHA-256 (never the secret).
//!
//! Revoking through this process's API clears the cache at once; a revocation made by
//! another process (the CLI, another replica) takes effect within [`TTL`]. Expiry is
//! checked against the clock on every hit.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clinic_auth::Principal;
use moka::sync::Cache;

/// How long a verified token is trusted without asking the database again.
pub const TTL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct TokenCache {
    entries: Cache<String, (Principal, Option<DateTime<Utc>>)>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            entries: Cache::builder().max_capacity(10_000).time_to_live(TTL).build(),
        }
    }
}

impl TokenCache {
    /// The principal for this token hash, if cached and not expired at `now`.
    pub fn get(&self, hash: &str, now: DateTime<Utc>) -> Option<Principal> {
        let (principal, expires_at) = self.entries.get(hash)?;
        if expires_at.is_some_and(|at| at <= now) {
            self.entries.invalidate(hash);
            return None;
        }
        Some(principal)
    }

    pub fn insert(&self, hash: String, principal: Principal, expires_at: Option<DateTime<Utc>>) {
        self.entries.insert(hash, (principal, expires_at));
    }

    /// Forget everything (after a revocation).
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}
