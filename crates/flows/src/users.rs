//! Staff accounts: making users, changing their role, name or state, and setting passwords,
//! whichever door it comes through (the CLI today; the users API and the console next). Each
//! change writes its audit event (`user.create`, `user.update`, `user.disable`,
//! `user.enable`, `user.password_set`, `user.password_link`) in its own transaction.
//!
//! A set-password link is signed (HMAC under a key derived from the database's link secret)
//! and names the user and their credential version; setting a password moves the version
//! on, so each link works once, and it expires ([`PASSWORD_LINK_HOURS`]). Nothing about the
//! link is stored.

use chrono::{DateTime, Duration, Utc};
use clinic_auth::passwords;
use clinic_auth::users::{self, NewUser, User, UserChanges, UserState};
use clinic_auth::AuthError;
use clinic_domain::ids::UserId;
use clinic_domain::ValidationErrors;
use clinic_patients::audit::{self, Actor};
use clinic_reminders::links::LinkSigner;
use clinic_store::{dialect, DbConnection, StoreError};

/// How long a set-password link works (invitations and resets alike).
pub const PASSWORD_LINK_HOURS: i64 = 24;

/// Why an account change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UserFlowError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A field is wrong (nothing was stored).
    #[error("invalid input")]
    Invalid(ValidationErrors),
    /// The set-password link is not ours, was used, or expired (the page says which).
    #[error("the set-password link does not work")]
    Link(LinkRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for UserFlowError {
    fn from(e: diesel::result::Error) -> Self {
        UserFlowError::Store(StoreError::Query(e))
    }
}

impl From<ValidationErrors> for UserFlowError {
    fn from(e: ValidationErrors) -> Self {
        UserFlowError::Invalid(e)
    }
}

/// Why a set-password link opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefused {
    /// Not one of our links, or about a user who no longer exists.
    Invalid,
    /// Its day is over.
    Expired,
    /// A password was set since it was made (by this link or another).
    Used,
    /// The account is disabled.
    Disabled,
}

/// The signer of set-password links: a key derived from the link secret, so no other link
/// (stop, self-service) passes as one.
pub fn password_links(secret: &LinkSigner) -> LinkSigner {
    LinkSigner::from_key(&secret.derive_key(b"staff set-password links v1"))
}

/// The path (under the public URL) of a set-password link for `user` as they are now.
pub fn password_link_path(signer: &LinkSigner, user: &User, now: DateTime<Utc>) -> String {
    let expires = now + Duration::hours(PASSWORD_LINK_HOURS);
    let token = signer.sign(&format!("{}:{}", user.id, user.credential_version), expires);
    format!("/console/set-password/{token}")
}

fn event(
    conn: &mut DbConnection,
    actor: &Actor,
    action: &str,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    audit::record(conn, actor, action, "user", &user.to_string(), now)
}

/// Makes a user; with `password`, also sets it (checked against the rules first). Audited
/// as `user.create` (and `user.password_set`).
pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewUser,
    password: Option<&str>,
    now: DateTime<Utc>,
) -> Result<User, UserFlowError> {
    let phc = match password {
        Some(p) => {
            passwords::check_new(p, &[&new.email, &new.display_name]).map_err(ValidationErrors::from)?;
            Some(passwords::hash(p).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        }
        None => None,
    };
    dialect::write_transaction(conn, |conn| {
        let user = users::create(conn, new, now)?;
        event(conn, actor, "user.create", user.id, now)?;
        match &phc {
            Some(phc) => {
                let user = users::set_password_hash(conn, user.id, phc, now)?;
                event(conn, actor, "user.password_set", user.id, now)?;
                Ok(user)
            }
            None => Ok(user),
        }
    })
}

/// Changes a user's name, role or state. Disabling revokes their personal tokens at once.
/// Audited as `user.update`, `user.disable` or `user.enable`.
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: UserId,
    changes: UserChanges,
    now: DateTime<Utc>,
) -> Result<User, UserFlowError> {
    dialect::write_transaction(conn, |conn| {
        let (before, after) = users::update(conn, id, &changes, now)?;
        let action = match (before.state, after.state) {
            (UserState::Active, UserState::Disabled) => "user.disable",
            (UserState::Disabled, UserState::Active) => "user.enable",
            _ => "user.update",
        };
        event(conn, actor, action, id, now)?;
        Ok(after)
    })
}

/// A set-password link for the user with this address (a reset, or an invitation again).
/// Audited as `user.password_link`; the old password keeps working until a new one is set.
pub fn password_link(
    conn: &mut DbConnection,
    actor: &Actor,
    signer: &LinkSigner,
    id: UserId,
    now: DateTime<Utc>,
) -> Result<String, UserFlowError> {
    dialect::write_transaction(conn, |conn| {
        let user = users::get(conn, id)?;
        if user.state == UserState::Disabled {
            return Err(UserFlowError::Link(LinkRefused::Disabled));
        }
        event(conn, actor, "user.password_link", id, now)?;
        Ok(password_link_path(signer, &user, now))
    })
}

/// The user a set-password link is for, if it still works.
pub fn open_password_link(
    conn: &mut DbConnection,
    signer: &LinkSigner,
    token: &str,
    now: DateTime<Utc>,
) -> Result<User, UserFlowError> {
    use clinic_reminders::links::LinkError;
    let named = signer.verify(token, now).map_err(|e| {
        UserFlowError::Link(match e {
            LinkError::Expired => LinkRefused::Expired,
            LinkError::Malformed | LinkError::BadSignature => LinkRefused::Invalid,
        })
    })?;
    let invalid = || UserFlowError::Link(LinkRefused::Invalid);
    let (id, version) = named.split_once(':').ok_or_else(invalid)?;
    let id: UserId = id.parse().map_err(|_| invalid())?;
    let version: i64 = version.parse().map_err(|_| invalid())?;
    let user = match users::get(conn, id) {
        Ok(u) => u,
        Err(AuthError::UserNotFound) => return Err(invalid()),
        Err(e) => return Err(e.into()),
    };
    if user.state == UserState::Disabled {
        return Err(UserFlowError::Link(LinkRefused::Disabled));
    }
    if user.credential_version != version {
        return Err(UserFlowError::Link(LinkRefused::Used));
    }
    Ok(user)
}

/// Sets the password a set-password link's holder chose (checked against the rules), which
/// ends the link. Audited as `user.password_set` against the user.
pub fn set_password_from_link(
    conn: &mut DbConnection,
    signer: &LinkSigner,
    token: &str,
    password: &str,
    request_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<User, UserFlowError> {
    // Checked and hashed before the transaction: hashing takes tens of milliseconds.
    let user = open_password_link(conn, signer, token, now)?;
    passwords::check_new(password, &[&user.email, &user.display_name]).map_err(ValidationErrors::from)?;
    let phc = passwords::hash(password).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    dialect::write_transaction(conn, |conn| {
        // Again inside the transaction: two tabs posting one link, only the first sets it.
        let current = open_password_link(conn, signer, token, now)?;
        let user = users::set_password_hash(conn, current.id, &phc, now)?;
        event(
            conn,
            &Actor::user(user.id, request_id),
            "user.password_set",
            user.id,
            now,
        )?;
        Ok(user)
    })
}

/// Sets a password directly (the CLI's `--password-stdin`). Audited as `user.password_set`.
pub fn set_password(
    conn: &mut DbConnection,
    actor: &Actor,
    id: UserId,
    password: &str,
    now: DateTime<Utc>,
) -> Result<User, UserFlowError> {
    let user = users::get(conn, id)?;
    passwords::check_new(password, &[&user.email, &user.display_name]).map_err(ValidationErrors::from)?;
    let phc = passwords::hash(password).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    dialect::write_transaction(conn, |conn| {
        let user = users::set_password_hash(conn, id, &phc, now)?;
        event(conn, actor, "user.password_set", id, now)?;
        Ok(user)
    })
}
