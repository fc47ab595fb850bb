//! The patient record as the rest of the platform sees it, and the rules for changing it.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::contact::{EmailAddress, PersonName, Phone};
use crate::ids::PatientId;
use crate::time::ClinicZone;
use crate::FieldError;

/// A BCP 47 language tag of the simple kind clinics use (`en`, `es`, `pt-BR`), normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Language(String);

impl Language {
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let invalid = || {
            FieldError::new(
                "preferred_language",
                "invalid_language",
                "expected a language tag such as en, es or pt-BR",
            )
        };
        let mut parts = input.split('-');
        let primary = parts
            .next()
            .filter(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
        let primary = primary.ok_or_else(invalid)?.to_ascii_lowercase();
        let region = match parts.next() {
            None => None,
            Some(r) if r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()) => Some(r.to_ascii_uppercase()),
            Some(r) if r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()) => Some(r.to_owned()),
            Some(_) => return Err(invalid()),
        };
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self(match region {
            Some(r) => format!("{primary}-{r}"),
            None => primary,
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Language {
    fn default() -> Self {
        Self("en".to_owned())
    }
}

/// A date of birth: not in the future and not before 1900.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DateOfBirth(NaiveDate);

impl DateOfBirth {
    pub fn parse(input: &str, today: NaiveDate) -> Result<Self, FieldError> {
        let date = NaiveDate::parse_from_str(input.trim(), "%Y-%m-%d").map_err(|_| {
            FieldError::new(
                "date_of_birth",
                "invalid_date",
                "expected an ISO date such as 1961-04-23",
            )
        })?;
        Self::new(date, today)
    }

    pub fn new(date: NaiveDate, today: NaiveDate) -> Result<Self, FieldError> {
        if date > today {
            return Err(FieldError::new(
                "date_of_birth",
                "in_future",
                "date of birth is in the future",
            ));
        }
        if date.year() < 1900 {
            return Err(FieldError::new(
                "date_of_birth",
                "too_early",
                "date of birth is before 1900",
            ));
        }
        Ok(Self(date))
    }

    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

/// Free-text notes, at most 10,000 characters.
pub fn parse_notes(input: &str) -> Result<Option<String>, FieldError> {
    let trimmed = input.trim();
    if trimmed.chars().count() > 10_000 {
        return Err(FieldError::new(
            "notes",
            "too_long",
            "notes are longer than 10000 characters",
        ));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// A validated new patient: every field already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPatient {
    pub given_name: PersonName,
    pub family_name: PersonName,
    pub email: Option<EmailAddress>,
    pub phone: Option<Phone>,
    pub date_of_birth: Option<DateOfBirth>,
    pub time_zone: ClinicZone,
    pub preferred_language: Language,
    pub email_consent: bool,
    pub notes: Option<String>,
}

/// A stored patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub id: PatientId,
    pub given_name: PersonName,
    pub family_name: PersonName,
    pub email: Option<EmailAddress>,
    pub phone: Option<Phone>,
    pub date_of_birth: Option<DateOfBirth>,
    pub time_zone: ClinicZone,
    pub preferred_language: Language,
    pub email_consent: bool,
    pub notes: Option<String>,
    /// Optimistic-concurrency version: starts at 1, grows on every change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// A validated partial update. `None` leaves a field alone; for nullable fields
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatientChanges {
    pub given_name: Option<PersonName>,
    pub family_name: Option<PersonName>,
    pub email: Option<Option<EmailAddress>>,
    pub phone: Option<Option<Phone>>,
    pub date_of_birth: Option<Option<DateOfBirth>>,
    pub time_zone: Option<ClinicZone>,
    pub preferred_language: Option<Language>,
    pub email_consent: Option<bool>,
    pub notes: Option<Option<String>>,
}

impl Patient {
    pub fn create(id: PatientId, new: NewPatient, now: DateTime<Utc>) -> Self {
        Self {
            id,
            given_name: new.given_name,
            family_name: new.family_name,
            email: new.email,
            phone: new.phone,
            date_of_birth: new.date_of_birth,
            time_zone: new.time_zone,
            preferred_language: new.preferred_language,
            email_consent: new.email_consent,
            notes: new.notes,
            version: 1,
            created_at: now,
            updated_at: now,
            archived_at: None,
        }
    }

    /// Applies `changes`, bumping the version. Archived records do not change.
    pub fn apply(&mut self, changes: PatientChanges, now: DateTime<Utc>) {
        let PatientChanges {
            given_name,
            family_name,
            email,
            phone,
            date_of_birth,
            time_zone,
            preferred_language,
            email_consent,
            notes,
        } = changes;
        if let Some(v) = given_name {
            self.given_name = v;
        }
        if let Some(v) = family_name {
            self.family_name = v;
        }
        if let Some(v) = email {
            self.email = v;
        }
        if let Some(v) = phone {
            self.phone = v;
        }
        if let Some(v) = date_of_birth {
            self.date_of_birth = v;
        }
        if let Some(v) = time_zone {
            self.time_zone = v;
        }
        if let Some(v) = preferred_language {
            self.preferred_language = v;
        }
        if let Some(v) = email_consent {
            self.email_consent = v;
        }
        if let Some(v) = notes {
            self.notes = v;
        }
        self.version += 1;
        self.updated_at = now;
    }

    pub fn archive(&mut self, now: DateTime<Utc>) {
        self.archived_at = Some(now);
        self.version += 1;
        self.updated_at = now;
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    /// Lower-cased text that name/email search matches against.
    pub fn search_key(&self) -> String {
        let email = self.email.as_ref().map(EmailAddress::as_str).unwrap_or("");
        format!("{} {} {}", self.given_name, self.family_name, email).to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).expect("date")
    }

    fn sample() -> Patient {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).single().expect("instant");
        Patient::create(
            PatientId::new(),
            NewPatient {
                given_name: PersonName::parse("Ann").expect("name"),
                family_name: PersonName::parse("Lee").expect("name"),
                email: Some(EmailAddress::parse("Ann@Example.org").expect("email")),
                phone: None,
                date_of_birth: None,
                time_zone: ClinicZone::default(),
                preferred_language: Language::default(),
                email_consent: true,
                notes: None,
            },
            now,
        )
    }

    #[test]
    fn languages_are_normalised() {
        assert_eq!(Language::parse("PT-br").expect("tag").as_str(), "pt-BR");
        assert_eq!(Language::parse("es-419").expect("tag").as_str(), "es-419");
        for bad in ["", "e", "english", "en-", "en-US-x", "e1"] {
            assert!(Language::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_of_birth_bounds() {
        assert!(DateOfBirth::parse("1961-04-23", today()).is_ok());
        assert_eq!(
            DateOfBirth::parse("2027-01-01", today()).expect_err("future").code,
            "in_future"
        );
        assert_eq!(
            DateOfBirth::parse("1899-12-31", today()).expect_err("early").code,
            "too_early"
        );
        assert_eq!(
            DateOfBirth::parse("23/04/1961", today()).expect_err("format").code,
            "invalid_date"
        );
    }

    #[test]
    fn apply_changes_only_what_is_given_and_bumps_version() {
        let mut p = sample();
        let later = p.updated_at + chrono::Duration::minutes(5);
        p.apply(
            PatientChanges {
                family_name: Some(PersonName::parse("Park").expect("name")),
                email: Some(None),
                ..PatientChanges::default()
            },
            later,
        );
        assert_eq!(p.given_name.as_str(), "Ann");
        assert_eq!(p.family_name.as_str(), "Park");
        assert_eq!(p.email, None);
        assert_eq!(p.version, 2);
        assert_eq!(p.updated_at, later);
    }

    #[test]
    fn search_key_is_lowercase_name_and_email() {
        assert_eq!(sample().search_key(), "ann lee ann@example.org");
    }

    #[test]
    fn notes_are_trimmed_and_empty_means_none() {
        assert_eq!(parse_notes("  ").expect("ok"), None);
        assert_eq!(parse_notes(" x ").expect("ok").as_deref(), Some("x"));
        assert!(parse_notes(&"n".repeat(10_001)).is_err());
    }
}
