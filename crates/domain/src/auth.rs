//! Access scopes carried by API tokens, and the staff roles that grant them.

use std::fmt;
use std::str::FromStr;

use crate::FieldError;

/// What a token may do. `Admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "patients:read")]
    PatientsRead,
    #[serde(rename = "patients:write")]
    PatientsWrite,
    #[serde(rename = "content:write")]
    ContentWrite,
    #[serde(rename = "scheduling:write")]
    SchedulingWrite,
    #[serde(rename = "pumps:read")]
    PumpsRead,
    #[serde(rename = "pumps:write")]
    PumpsWrite,
    #[serde(rename = "reminders:admin")]
    RemindersAdmin,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::Admin,
        Scope::PatientsRead,
        Scope::PatientsWrite,
        Scope::ContentWrite,
        Scope::SchedulingWrite,
        Scope::PumpsRead,
        Scope::PumpsWrite,
        Scope::RemindersAdmin,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::PatientsRead => "patients:read",
            Scope::PatientsWrite => "patients:write",
            Scope::ContentWrite => "content:write",
            Scope::SchedulingWrite => "scheduling:write",
            Scope::PumpsRead => "pumps:read",
            Scope::PumpsWrite => "pumps:write",
            Scope::RemindersAdmin => "reminders:admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(Scope::as_str).collect();
            FieldError::new(
                "scope",
                "unknown_scope",
                format!("unknown scope '{s}'; known: {}", known.join(", ")),
            )
        })
    }
}

/// The scopes a token holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }

    /// True when the set holds `needed` or `admin`.
    pub fn allows(&self, needed: Scope) -> bool {
        self.0.contains(&Scope::Admin) || self.0.contains(&needed)
    }

    pub fn scopes(&self) -> &[Scope] {
        &self.0
    }

    /// Space-separated, the stored form.
    pub fn to_storage(&self) -> String {
        self.0.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    pub fn from_storage(s: &str) -> Result<Self, FieldError> {
        s.split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }
}

/// A staff member's role: a fixed set of scopes, each role holding the one before it.
/// A viewer reads patients, pumps and the calendar; an editor also writes articles; a
/// scheduler also books and edits patients (not articles); a clinician also records fills
/// and programmes; an admin does everything (settings, users, tokens, the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Clinician,
    Scheduler,
    Editor,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Clinician,
        Role::Scheduler,
        Role::Editor,
        Role::Viewer,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Scheduler => "scheduler",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// The scopes the role grants.
    pub fn scopes(&self) -> ScopeSet {
        use Scope::*;
        let read = [PatientsRead, PumpsRead];
        let scopes: Vec<Scope> = match self {
            Role::Admin => vec![Admin],
            Role::Clinician => [&read[..], &[PatientsWrite, SchedulingWrite, PumpsWrite]].concat(),
            Role::Scheduler => [&read[..], &[PatientsWrite, SchedulingWrite]].concat(),
            Role::Editor => [&read[..], &[ContentWrite]].concat(),
            Role::Viewer => read.to_vec(),
        };
        ScopeSet::new(scopes)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Role::ALL.iter().map(Role::as_str).collect();
            FieldError::new(
                "role",
                "unknown_role",
                format!("unknown role '{s}'; known: {}", known.join(", ")),
            )
        })
    }
}

impl ScopeSet {
    /// The scopes both sets allow: what a personal token may do is what its maker's role
    /// allows now, never more than the scopes it was made with.
    pub fn intersect(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet::new(
            Scope::ALL
                .into_iter()
                .filter(|s| self.allows(*s) && other.allows(*s))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_docs_say_and_each_holds_the_one_before() {
        use Scope::*;
        let allows = |r: Role| {
            Scope::ALL
                .into_iter()
                .filter(|s| r.scopes().allows(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(allows(Role::Viewer), vec![PatientsRead, PumpsRead]);
        assert_eq!(allows(Role::Editor), vec![PatientsRead, ContentWrite, PumpsRead]);
        assert_eq!(
            allows(Role::Scheduler),
            vec![PatientsRead, PatientsWrite, SchedulingWrite, PumpsRead]
        );
        assert_eq!(
            allows(Role::Clinician),
            vec![PatientsRead, PatientsWrite, SchedulingWrite, PumpsRead, PumpsWrite]
        );
        assert_eq!(allows(Role::Admin), Scope::ALL.to_vec());
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn a_personal_token_never_outgrows_its_makers_role() {
        let made_with = ScopeSet::new(vec![Scope::Admin]);
        let now = made_with.intersect(&Role::Scheduler.scopes());
        assert!(now.allows(Scope::SchedulingWrite) && !now.allows(Scope::PumpsWrite) && !now.allows(Scope::Admin));
        let narrow = ScopeSet::new(vec![Scope::PatientsRead]);
        assert_eq!(narrow.intersect(&Role::Admin.scopes()).scopes(), &[Scope::PatientsRead]);
    }

    #[test]
    fn admin_allows_everything_and_others_only_themselves() {
        let admin = ScopeSet::new(vec![Scope::Admin]);
        let reader = ScopeSet::new(vec![Scope::PatientsRead]);
        for scope in Scope::ALL {
            assert!(admin.allows(scope));
            assert_eq!(reader.allows(scope), scope == Scope::PatientsRead);
        }
    }

    #[test]
    fn storage_round_trips_and_rejects_unknown() {
        let set = ScopeSet::new(vec![Scope::PumpsWrite, Scope::PatientsRead, Scope::PumpsWrite]);
        assert_eq!(set.to_storage(), "patients:read pumps:write");
        assert_eq!(ScopeSet::from_storage(&set.to_storage()), Ok(set));
        assert!(ScopeSet::from_storage("patients:read root").is_err());
    }
}
