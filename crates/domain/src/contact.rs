//! Contact details parsed at the boundary: email addresses, phone numbers (E.164), names.

use std::fmt;
use std::str::FromStr;

use crate::FieldError;

/// A syntactically valid email address (RFC 5322 addr-spec as checked by `email_address`),
/// trimmed, with the domain lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub const MAX_LEN: usize = 254;

    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("email", "required", "email must not be empty"));
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(FieldError::new(
                "email",
                "too_long",
                "email is longer than 254 characters",
            ));
        }
        // Display names ("Ann <a@b.c>") are valid RFC 5322 but not an address we can store.
        if trimmed.contains(['<', '>', ' ']) {
            return Err(FieldError::new("email", "invalid_email", "not a valid email address"));
        }
        let parsed = email_address::EmailAddress::from_str(trimmed)
            .map_err(|_| FieldError::new("email", "invalid_email", "not a valid email address"))?;
        // Require a dot in the domain: `user@localhost` is valid syntax but never a patient's address.
        if !parsed.domain().contains('.') {
            return Err(FieldError::new(
                "email",
                "invalid_email",
                "email domain must contain a dot",
            ));
        }
        Ok(Self(format!(
            "{}@{}",
            parsed.local_part(),
            parsed.domain().to_ascii_lowercase()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid phone number, stored and shown in E.164 (`+13125550100`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Phone(String);

/// The region used for numbers written without a country code (ISO 3166-1 alpha-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneRegion(phonenumber::country::Id);

impl PhoneRegion {
    pub fn parse(code: &str) -> Result<Self, FieldError> {
        phonenumber::country::Id::from_str(&code.trim().to_ascii_uppercase())
            .map(Self)
            .map_err(|_| {
                FieldError::new(
                    "phone_region",
                    "invalid_region",
                    format!("unknown region code '{code}'"),
                )
            })
    }
}

impl Default for PhoneRegion {
    fn default() -> Self {
        Self(phonenumber::country::Id::US)
    }
}

impl Phone {
    /// Parses a number; one without `+` is read as a number of `region`.
    pub fn parse(input: &str, region: PhoneRegion) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("phone", "required", "phone must not be empty"));
        }
        if trimmed.len() > 40 {
            return Err(FieldError::new(
                "phone",
                "too_long",
                "phone is longer than 40 characters",
            ));
        }
        let invalid = || FieldError::new("phone", "invalid_phone", "not a valid phone number");
        let number = phonenumber::parse(Some(region.0), trimmed).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(Self(number.format().mode(phonenumber::Mode::E164).to_string()))
    }

    /// Rebuilds a phone from its stored E.164 form.
    ///
    /// Every stored number was parsed, validated and normalised by [`Phone::parse`] on the
    /// way in, so only its E.164 shape is checked here: `phonenumber`'s full parse costs more
    /// than the rest of a patient read, and a list reads a page of patients.
    pub fn from_e164(stored: &str) -> Result<Self, FieldError> {
        let digits = stored.strip_prefix('+').unwrap_or_default();
        let e164 =
            (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if e164 {
            Ok(Self(stored.to_owned()))
        } else {
            Err(FieldError::new("phone", "invalid_phone", "not an E.164 phone number"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For people: international notation with spaces (`+1 312-555-0100`).
    pub fn international(&self) -> String {
        phonenumber::parse(None, &self.0)
            .map(|n| n.format().mode(phonenumber::Mode::International).to_string())
            .unwrap_or_else(|_| self.0.clone())
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's given or family name: trimmed, 1–100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("name", "required", "name must not be empty"));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "name",
                "too_long",
                "name is longer than 100 characters",
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "invalid_characters",
                "name contains control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_accepts_plain_addresses_and_lowercases_the_domain() {
        let e = EmailAddress::parse("  Ann.Lee+pump@Example.ORG ").expect("valid");
        assert_eq!(e.as_str(), "Ann.Lee+pump@example.org");
    }

    #[test]
    fn email_rejects_garbage() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.org",
            "ann@localhost",
            "Ann <ann@example.org>",
            "a b@example.org",
        ] {
            let err = EmailAddress::parse(bad).expect_err(bad);
            assert_eq!(err.field, "email");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long).expect_err("long").code, "too_long");
    }

    #[test]
    fn phone_normalises_to_e164() {
        let us = PhoneRegion::default();
        assert_eq!(
            Phone::parse("(312) 555-0123", us).expect("valid").as_str(),
            "+13125550123"
        );
        assert_eq!(
            Phone::parse("+44 20 7946 0958", us).expect("valid").as_str(),
            "+442079460958"
        );
        let au = PhoneRegion::parse("au").expect("region");
        assert_eq!(
            Phone::parse("02 9374 4000", au).expect("valid").as_str(),
            "+61293744000"
        );
    }

    #[test]
    fn phone_rejects_invalid_numbers() {
        for bad in ["", "12", "not a phone", "+1 000 000 0000", "555-0100-9999-9999-12345"] {
            assert!(Phone::parse(bad, PhoneRegion::default()).is_err(), "{bad}");
        }
        assert!(PhoneRegion::parse("XX").is_err());
    }

    #[test]
    fn stored_numbers_are_read_back_by_their_e164_shape() {
        let us = PhoneRegion::default();
        for input in ["(312) 555-0123", "+44 20 7946 0958", "+61 2 9374 4000"] {
            let parsed = Phone::parse(input, us).expect("valid");
            assert_eq!(Phone::from_e164(parsed.as_str()).expect("stored"), parsed);
        }
        for corrupt in [
            "",
            "+",
            "3125550123",
            "+0123456789",
            "+1312555012x",
            "+1234567890123456",
            "+123456",
        ] {
            assert!(Phone::from_e164(corrupt).is_err(), "{corrupt}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("  Zoë ").expect("valid").as_str(), "Zoë");
        assert_eq!(PersonName::parse("   ").expect_err("blank").code, "required");
        assert_eq!(PersonName::parse(&"x".repeat(101)).expect_err("long").code, "too_long");
        assert_eq!(
            PersonName::parse("a\u{0}b").expect_err("ctl").code,
            "invalid_characters"
        );
    }
}
