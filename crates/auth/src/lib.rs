//! `clinic-auth`: API tokens, staff accounts ([`users`]) and their passwords ([`passwords`]).
//!
//! A token is `clinic_` followed by 64 hex digits of randomness. Only its SHA-256 hash is
//! stored; the secret is shown once, when it is made. Tokens carry scopes, may expire and
//! may be revoked. The API layer turns a bearer header into a [`Principal`] through
//! [`authenticate`].

use chrono::{DateTime, Duration, Utc};
use clinic_domain::auth::{Scope, ScopeSet};
use clinic_domain::ids::TokenId;
use clinic_domain::FieldError;
use clinic_store::schema::api_tokens;
use clinic_store::{dialect, time, DbConnection, StoreError};
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub mod passwords;
pub mod users;

/// The prefix every token starts with, so leaked tokens are easy to find in scanners.
pub const TOKEN_PREFIX: &str = "clinic_";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token not found")]
    NotFound,
    #[error("invalid, expired or revoked token")]
    InvalidToken,
    #[error("user not found")]
    UserNotFound,
    #[error("a user with this email exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for AuthError {
    fn from(e: diesel::result::Error) -> Self {
        AuthError::Store(StoreError::Query(e))
    }
}

/// A token as listed: never the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    pub scopes: ScopeSet,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A freshly made token with its secret, which is not stored anywhere.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: ApiToken,
    pub secret: String,
}

/// Who is calling: the token's id, scopes and expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub token_id: TokenId,
    pub scopes: ScopeSet,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What is needed to make a token, already validated.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scopes: ScopeSet,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewToken {
    /// Validates a name (1–100 characters), at least one scope and an expiry in the future.
    pub fn parse(
        name: &str,
        scopes: &[String],
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, clinic_domain::ValidationErrors> {
        let mut errors = clinic_domain::ValidationErrors::new();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "name",
                "invalid_name",
                "name must be 1 to 100 printable characters",
            ));
        }
        let mut parsed = Vec::new();
        for (i, s) in scopes.iter().enumerate() {
            if let Some(scope) = errors.check(&format!("scopes[{i}]"), s.parse::<Scope>()) {
                parsed.push(scope);
            }
        }
        if scopes.is_empty() {
            errors.push(FieldError::new("scopes", "required", "at least one scope is required"));
        }
        if let Some(at) = expires_at {
            if at <= now {
                errors.push(FieldError::new("expires_at", "in_past", "expiry must be in the future"));
            }
        }
        errors.finish()?;
        Ok(Self {
            name: name.to_owned(),
            scopes: ScopeSet::new(parsed),
            expires_at: expires_at.map(|t| time::from_db(time::to_db(t))),
        })
    }
}

impl NewToken {
    /// Holds the token to a maximum lifetime (security review F15): no expiry becomes
    /// `now + max`, a later expiry is refused. The API applies it to every token it makes,
    /// so a stolen admin token cannot mint a credential that outlives its own revocation
    /// for ever; the CLI, run by whoever holds the server, may make lasting ones.
    pub fn within(mut self, max: Duration, now: DateTime<Utc>) -> Result<Self, clinic_domain::ValidationErrors> {
        let latest = time::from_db(time::to_db(now + max));
        match self.expires_at {
            None => self.expires_at = Some(latest),
            Some(at) if at > latest => {
                return Err(FieldError::new(
                    "expires_at",
                    "too_late",
                    format!(
                        "tokens made through the API last at most {} days (CLINIC_TOKEN_MAX_DAYS): expire by {}",
                        max.num_days(),
                        latest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                )
                .into())
            }
            Some(_) => {}
        }
        Ok(self)
    }
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = api_tokens)]
struct TokenRow {
    id: String,
    name: String,
    token_hash: String,
    scopes: String,
    created_at: chrono::NaiveDateTime,
    expires_at: Option<chrono::NaiveDateTime>,
    revoked_at: Option<chrono::NaiveDateTime>,
    last_used_at: Option<chrono::NaiveDateTime>,
    user_id: Option<String>,
}

impl TokenRow {
    fn into_token(self) -> Result<ApiToken, AuthError> {
        let corrupt =
            |what: &str| AuthError::Store(StoreError::Migration(format!("stored token has an invalid {what}")));
        Ok(ApiToken {
            id: self.id.parse().map_err(|_| corrupt("id"))?,
            name: self.name,
            scopes: ScopeSet::from_storage(&self.scopes).map_err(|_| corrupt("scope"))?,
            created_at: time::from_db(self.created_at),
            expires_at: self.expires_at.map(time::from_db),
            revoked_at: self.revoked_at.map(time::from_db),
            last_used_at: self.last_used_at.map(time::from_db),
        })
    }
}

/// SHA-256 of the whole token, hex. Tokens carry 256 bits of randomness, so a fast hash is
/// the right tool: there is nothing to brute-force.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// Makes a token and returns it with its secret.
pub fn create(conn: &mut DbConnection, new: NewToken, now: DateTime<Utc>) -> Result<IssuedToken, AuthError> {
    let secret = new_secret();
    let row = TokenRow {
        id: TokenId::new().to_string(),
        name: new.name,
        token_hash: hash_secret(&secret),
        scopes: new.scopes.to_storage(),
        created_at: time::to_db(now),
        expires_at: new.expires_at.map(time::to_db),
        revoked_at: None,
        last_used_at: None,
        user_id: None,
    };
    dialect::write_transaction(conn, |conn| {
        diesel::insert_into(api_tokens::table).values(&row).execute(conn)
    })?;
    Ok(IssuedToken {
        token: row.into_token()?,
        secret,
    })
}

/// How long the first admin token lasts. It is printed to stdout, which logs often keep
/// (compose, journald): long enough to set up, short enough that an old log is not a key.
pub const INITIAL_ADMIN_DAYS: i64 = 7;

/// On a database with no tokens at all, makes the first admin token, valid for
/// [`INITIAL_ADMIN_DAYS`]. Returns `None` when any token exists already, so several starting
/// processes make at most one.
pub fn ensure_initial_admin(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<Option<IssuedToken>, AuthError> {
    dialect::write_transaction(conn, |conn| {
        let existing: i64 = api_tokens::table.count().get_result(conn)?;
        if existing > 0 {
            return Ok(None);
        }
        create(
            conn,
            NewToken {
                name: "initial admin".to_owned(),
                scopes: ScopeSet::new(vec![Scope::Admin]),
                expires_at: Some(now + Duration::days(INITIAL_ADMIN_DAYS)),
            },
            now,
        )
        .map(Some)
    })
}

/// All tokens, newest first.
pub fn list(conn: &mut DbConnection) -> Result<Vec<ApiToken>, AuthError> {
    api_tokens::table
        .order(api_tokens::id.desc())
        .load::<TokenRow>(conn)?
        .into_iter()
        .map(TokenRow::into_token)
        .collect()
}

pub fn get(conn: &mut DbConnection, id: TokenId) -> Result<ApiToken, AuthError> {
    api_tokens::table
        .find(id.to_string())
        .first::<TokenRow>(conn)
        .optional()?
        .ok_or(AuthError::NotFound)?
        .into_token()
}

/// Revokes a token. Revoking twice keeps the first revocation time.
pub fn revoke(conn: &mut DbConnection, id: TokenId, now: DateTime<Utc>) -> Result<ApiToken, AuthError> {
    dialect::write_transaction(conn, |conn| {
        diesel::update(
            api_tokens::table
                .find(id.to_string())
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(time::to_db(now)))
        .execute(conn)?;
        get(conn, id)
    })
}

/// How stale `last_used_at` may get before a request refreshes it (one write a minute per
/// token, not one per request).
const LAST_USED_GRANULARITY: Duration = Duration::seconds(60);

/// Checks a presented secret: it must exist, not be revoked and not be expired.
pub fn authenticate(conn: &mut DbConnection, secret: &str, now: DateTime<Utc>) -> Result<Principal, AuthError> {
    if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
        return Err(AuthError::InvalidToken);
    }
    let row = api_tokens::table
        .filter(api_tokens::token_hash.eq(hash_secret(secret)))
        .first::<TokenRow>(conn)
        .optional()?
        .ok_or(AuthError::InvalidToken)?;
    let stale = row
        .last_used_at
        .is_none_or(|t| now - time::from_db(t) >= LAST_USED_GRANULARITY);
    let token = row.into_token()?;
    if token.revoked_at.is_some() || token.expires_at.is_some_and(|at| at <= now) {
        return Err(AuthError::InvalidToken);
    }
    if stale {
        dialect::write_transaction(conn, |conn| {
            diesel::update(api_tokens::table.find(token.id.to_string()))
                .set(api_tokens::last_used_at.eq(time::to_db(now)))
                .execute(conn)
        })?;
    }
    Ok(Principal {
        token_id: token.id,
        scopes: token.scopes,
        expires_at: token.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinic_store::testing::TestDatabase;

    fn now() -> DateTime<Utc> {
        time::now()
    }

    fn new_token(scopes: &[&str], expires_at: Option<DateTime<Utc>>) -> NewToken {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        NewToken::parse("test", &scopes, expires_at, now()).expect("valid token request")
    }

    #[test]
    fn only_the_hash_is_stored_and_the_secret_authenticates() {
        let db = TestDatabase::new();
        let mut conn = db.url().establish().expect("connect");
        let issued = create(&mut conn, new_token(&["patients:read"], None), now()).expect("create");
        assert!(issued.secret.starts_with("clinic_") && issued.secret.len() == 7 + 64);
        let stored: String = api_tokens::table
            .select(api_tokens::token_hash)
            .first(&mut conn)
            .expect("row");
        assert_ne!(stored, issued.secret);
        assert_eq!(stored, hash_secret(&issued.secret));
        let principal = authenticate(&mut conn, &issued.secret, now()).expect("authenticates");
        assert_eq!(principal.token_id, issued.token.id);
        assert!(principal.scopes.allows(Scope::PatientsRead));
        assert!(!principal.scopes.allows(Scope::PatientsWrite));
        assert!(get(&mut conn, issued.token.id).expect("get").last_used_at.is_some());
    }

    #[test]
    fn revoked_expired_and_unknown_tokens_are_refused() {
        let db = TestDatabase::new();
        let mut conn = db.url().establish().expect("connect");
        let soon = now() + Duration::minutes(5);
        let expiring = create(&mut conn, new_token(&["admin"], Some(soon)), now()).expect("create");
        assert!(authenticate(&mut conn, &expiring.secret, now()).is_ok());
        assert!(matches!(
            authenticate(&mut conn, &expiring.secret, soon),
            Err(AuthError::InvalidToken)
        ));
        let revoked = create(&mut conn, new_token(&["admin"], None), now()).expect("create");
        let first = revoke(&mut conn, revoked.token.id, now()).expect("revoke");
        let again = revoke(&mut conn, revoked.token.id, now() + Duration::hours(1)).expect("revoke again");
        assert_eq!(first.revoked_at, again.revoked_at);
        assert!(authenticate(&mut conn, &revoked.secret, now()).is_err());
        assert!(authenticate(&mut conn, "clinic_0000", now()).is_err());
        assert!(authenticate(&mut conn, "Bearer something", now()).is_err());
        assert!(matches!(
            revoke(&mut conn, TokenId::new(), now()),
            Err(AuthError::NotFound)
        ));
    }

    #[test]
    fn initial_admin_is_made_once() {
        let db = TestDatabase::new();
        let mut conn = db.url().establish().expect("connect");
        let at = now();
        let first = ensure_initial_admin(&mut conn, at).expect("first").expect("made");
        assert!(first.token.scopes.allows(Scope::RemindersAdmin));
        let expires = first.token.expires_at.expect("it expires");
        // Stored to the microsecond.
        assert!(
            (expires - (at + Duration::days(7))).num_milliseconds().abs() < 1,
            "a week: {expires}"
        );
        assert!(ensure_initial_admin(&mut conn, now()).expect("second").is_none());
        assert_eq!(list(&mut conn).expect("list").len(), 1);
    }

    #[test]
    fn token_requests_are_validated() {
        let errors =
            NewToken::parse("", &["root".into()], Some(now() - Duration::seconds(1)), now()).expect_err("invalid");
        let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["name", "scopes[0]", "expires_at"]);
        assert!(NewToken::parse("ci", &[], None, now()).is_err());
    }
}
