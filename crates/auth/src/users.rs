//! Staff accounts: who a person is (email, name), what they may do (their role) and whether
//! they may sign in at all (their state), with their password's hash.
//!
//! Email addresses are unique whatever their case (`email_key` holds the lower-cased form)
//! and kept as entered. Disabling a user revokes their personal tokens in the same
//! transaction (and will end their sessions), so access stops at once.

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::auth::Role;
use clinic_domain::contact::EmailAddress;
use clinic_domain::ids::UserId;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_store::schema::{api_tokens, users};
use clinic_store::{time, DbConnection, StoreError};
use diesel::prelude::*;

use crate::AuthError;

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    Active,
    Disabled,
}

impl UserState {
    pub fn as_str(&self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Disabled => "disabled",
        }
    }
}

/// A user as listed: never the password or its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub state: UserState,
    /// Whether a password is set (an invited user has none until they follow their link).
    pub has_password: bool,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// Grows with every password set through a link, so each link works once.
    pub credential_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    email: String,
    email_key: String,
    display_name: String,
    role: String,
    state: String,
    password_hash: Option<String>,
    password_changed_at: Option<NaiveDateTime>,
    credential_version: i64,
    last_sign_in_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    version: i64,
}

impl UserRow {
    fn into_user(self) -> Result<User, AuthError> {
        let corrupt = |what: &str| AuthError::Store(StoreError::Corrupt(format!("stored user has an invalid {what}")));
        Ok(User {
            id: self.id.parse().map_err(|_| corrupt("id"))?,
            email: self.email,
            display_name: self.display_name,
            role: self.role.parse().map_err(|_| corrupt("role"))?,
            state: match self.state.as_str() {
                "active" => UserState::Active,
                "disabled" => UserState::Disabled,
                _ => return Err(corrupt("state")),
            },
            has_password: self.password_hash.is_some(),
            password_changed_at: self.password_changed_at.map(time::from_db),
            last_sign_in_at: self.last_sign_in_at.map(time::from_db),
            credential_version: self.credential_version,
            created_at: time::from_db(self.created_at),
            updated_at: time::from_db(self.updated_at),
            version: self.version,
        })
    }
}

/// The unique form of an address: lower-cased (addresses differing only in case are one).
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A display name: 1 to 100 printable characters.
fn check_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "display_name",
            "invalid_name",
            "a name is 1 to 100 printable characters",
        ));
    }
    Ok(name.to_owned())
}

/// What is needed to make a user, validated.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub role: Role,
}

impl NewUser {
    pub fn parse(email: &str, display_name: &str, role: &str) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let email = errors.check("email", EmailAddress::parse(email));
        let display_name = errors.check("display_name", check_name(display_name));
        let role = errors.check("role", role.parse::<Role>());
        errors.finish()?;
        match (email, display_name, role) {
            (Some(email), Some(display_name), Some(role)) => Ok(Self {
                email: email.as_str().to_owned(),
                display_name,
                role,
            }),
            // `finish` returned the errors of any field that did not parse.
            _ => Err(FieldError::new("email", "invalid", "the user could not be read").into()),
        }
    }
}

/// Makes an active user with no password (they set one through a link, or the CLI sets it).
pub fn create(conn: &mut DbConnection, new: NewUser, now: DateTime<Utc>) -> Result<User, AuthError> {
    let key = email_key(&new.email);
    let row = UserRow {
        id: UserId::new().to_string(),
        email: new.email,
        email_key: key.clone(),
        display_name: new.display_name,
        role: new.role.as_str().to_owned(),
        state: UserState::Active.as_str().to_owned(),
        password_hash: None,
        password_changed_at: None,
        credential_version: 0,
        last_sign_in_at: None,
        created_at: time::to_db(now),
        updated_at: time::to_db(now),
        version: 1,
    };
    let taken: i64 = users::table
        .filter(users::email_key.eq(&key))
        .count()
        .get_result(conn)?;
    if taken > 0 {
        return Err(AuthError::EmailTaken);
    }
    match diesel::insert_into(users::table).values(&row).execute(conn) {
        Ok(_) => row.into_user(),
        // Two makers of one address at once: the unique index decides.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(AuthError::EmailTaken)
        }
        Err(e) => Err(e.into()),
    }
}

/// All users, by email.
pub fn list(conn: &mut DbConnection) -> Result<Vec<User>, AuthError> {
    users::table
        .order(users::email_key)
        .load::<UserRow>(conn)?
        .into_iter()
        .map(UserRow::into_user)
        .collect()
}

pub fn count(conn: &mut DbConnection) -> Result<i64, AuthError> {
    Ok(users::table.count().get_result(conn)?)
}

pub fn get(conn: &mut DbConnection, id: UserId) -> Result<User, AuthError> {
    users::table
        .find(id.to_string())
        .first::<UserRow>(conn)
        .optional()?
        .ok_or(AuthError::UserNotFound)?
        .into_user()
}

/// The user with this address (any case), if there is one.
pub fn find_by_email(conn: &mut DbConnection, email: &str) -> Result<Option<User>, AuthError> {
    users::table
        .filter(users::email_key.eq(email_key(email)))
        .first::<UserRow>(conn)
        .optional()?
        .map(UserRow::into_user)
        .transpose()
}

/// The stored hash of the user's password, for checking one at sign-in.
pub fn password_hash(conn: &mut DbConnection, id: UserId) -> Result<Option<String>, AuthError> {
    Ok(users::table
        .find(id.to_string())
        .select(users::password_hash)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// What an administrator may change about a user.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub state: Option<UserState>,
}

impl UserChanges {
    pub fn parse(
        display_name: Option<&str>,
        role: Option<&str>,
        state: Option<&str>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let display_name = display_name.and_then(|n| errors.check("display_name", check_name(n)));
        let role = role.and_then(|r| errors.check("role", r.parse::<Role>()));
        let state = state.and_then(|s| {
            let parsed = match s {
                "active" => Ok(UserState::Active),
                "disabled" => Ok(UserState::Disabled),
                _ => Err(FieldError::new(
                    "state",
                    "invalid_state",
                    "state is 'active' or 'disabled'",
                )),
            };
            errors.check("state", parsed)
        });
        errors.finish()?;
        Ok(Self {
            display_name,
            role,
            state,
        })
    }
}

/// Applies `changes` (the caller's transaction). Disabling revokes the user's personal
/// tokens at the same instant. Returns the user before and after.
pub fn update(
    conn: &mut DbConnection,
    id: UserId,
    changes: &UserChanges,
    now: DateTime<Utc>,
) -> Result<(User, User), AuthError> {
    let before = get(conn, id)?;
    let name = changes
        .display_name
        .clone()
        .unwrap_or_else(|| before.display_name.clone());
    let role = changes.role.unwrap_or(before.role);
    let state = changes.state.unwrap_or(before.state);
    diesel::update(users::table.find(id.to_string()))
        .set((
            users::display_name.eq(&name),
            users::role.eq(role.as_str()),
            users::state.eq(state.as_str()),
            users::updated_at.eq(time::to_db(now)),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    if state == UserState::Disabled && before.state != UserState::Disabled {
        revoke_personal_tokens(conn, id, now)?;
    }
    Ok((before, get(conn, id)?))
}

/// Revokes every personal token the user made; returns how many were live.
pub fn revoke_personal_tokens(conn: &mut DbConnection, id: UserId, now: DateTime<Utc>) -> Result<usize, AuthError> {
    Ok(diesel::update(
        api_tokens::table
            .filter(api_tokens::user_id.eq(id.to_string()))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(time::to_db(now)))
    .execute(conn)?)
}

/// Stores a new password hash and moves the credential version on (ending every
/// set-password link made before). The caller checked the password against the rules.
pub fn set_password_hash(
    conn: &mut DbConnection,
    id: UserId,
    phc: &str,
    now: DateTime<Utc>,
) -> Result<User, AuthError> {
    let changed = diesel::update(users::table.find(id.to_string()))
        .set((
            users::password_hash.eq(Some(phc)),
            users::password_changed_at.eq(Some(time::to_db(now))),
            users::credential_version.eq(users::credential_version + 1),
            users::updated_at.eq(time::to_db(now)),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    if changed == 0 {
        return Err(AuthError::UserNotFound);
    }
    get(conn, id)
}
