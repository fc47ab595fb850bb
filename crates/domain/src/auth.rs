//! Access scopes carried by API tokens.

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

#[cfg(test)]
mod tests {
    use super::*;

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
