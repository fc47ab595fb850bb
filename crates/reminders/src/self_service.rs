//! The clinic's self-service policy: what patients may do from the links in their emails
//! (confirm, reschedule or cancel a visit, book a refill online). Stored like the reminder
//! [`settings`](crate::settings): one validated JSON document in `settings` (row
//! `self_service`), versioned, edited through the API with optimistic concurrency.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use clinic_domain::{FieldError, ValidationErrors};
use clinic_store::schema::settings;
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use clinic_patients::audit::Actor;

use crate::ReminderError;

const NAME: &str = "self_service";

/// The visits patients manage themselves until the clinic says otherwise: the ones a front
/// desk would move on the phone without asking anyone. The procedures (`trial`, `implant`,
/// `pump_replacement`, `pump_programming`) are left out: moving one means coordinating a
/// theatre, a physician and often a drug order, which staff must do.
pub const DEFAULT_ENABLED_TYPES: [&str; 4] = ["consultation", "follow_up", "refill", "psychological_evaluation"];

/// Hours before a visit's start within which the patient's page offers only the phone number.
pub const DEFAULT_CUTOFF_HOURS: i64 = 24;

/// A week: a longer cutoff would leave a link useless for most of the reminders it rides on.
pub const MAX_CUTOFF_HOURS: i64 = 168;

/// Whom a patient may move a visit to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RescheduleTo {
    /// The visit's own provider: a pump patient usually stays with their nurse.
    #[default]
    SameProvider,
    /// Any provider who sees this appointment type.
    AnyProvider,
}

impl RescheduleTo {
    pub const ALL: [RescheduleTo; 2] = [RescheduleTo::SameProvider, RescheduleTo::AnyProvider];

    pub fn as_str(self) -> &'static str {
        match self {
            RescheduleTo::SameProvider => "same_provider",
            RescheduleTo::AnyProvider => "any_provider",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The policy, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfServiceSettings {
    /// Appointment type codes whose visits patients may confirm, reschedule and cancel from
    /// their links, in the clinic's order.
    pub enabled_appointment_types: Vec<String>,
    /// Within this many hours of the start (0–168) the page offers only the phone number.
    pub cutoff_hours: i64,
    pub patients_may_cancel: bool,
    pub reschedule_to: RescheduleTo,
    /// Whether refill reminders carry the "choose a time online" link.
    pub refill_booking: bool,
}

impl Default for SelfServiceSettings {
    fn default() -> Self {
        Self {
            enabled_appointment_types: DEFAULT_ENABLED_TYPES.iter().map(|&t| t.to_owned()).collect(),
            cutoff_hours: DEFAULT_CUTOFF_HOURS,
            patients_may_cancel: true,
            reschedule_to: RescheduleTo::default(),
            refill_booking: true,
        }
    }
}

impl SelfServiceSettings {
    /// Whether patients may manage visits of this appointment type from their links.
    pub fn allows(&self, type_code: &str) -> bool {
        self.enabled_appointment_types.iter().any(|t| t == type_code)
    }

    /// The cutoff as a span of time.
    pub fn cutoff(&self) -> Duration {
        Duration::hours(self.cutoff_hours)
    }
}

/// The settings as written and read: plain values, the enum as its `snake_case` name (text,
/// so that a wrong one is an error naming the field rather than a parse failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfServiceDocument {
    pub enabled_appointment_types: Vec<String>,
    pub cutoff_hours: i64,
    pub patients_may_cancel: bool,
    pub reschedule_to: String,
    pub refill_booking: bool,
}

impl From<&SelfServiceSettings> for SelfServiceDocument {
    fn from(s: &SelfServiceSettings) -> Self {
        Self {
            enabled_appointment_types: s.enabled_appointment_types.clone(),
            cutoff_hours: s.cutoff_hours,
            patients_may_cancel: s.patients_may_cancel,
            reschedule_to: s.reschedule_to.as_str().to_owned(),
            refill_booking: s.refill_booking,
        }
    }
}

impl SelfServiceDocument {
    /// Validates every field, naming each bad one. `known_types` are the appointment type
    /// codes the clinic has; any other code is refused.
    pub fn validate(&self, known_types: &[String]) -> Result<SelfServiceSettings, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let mut seen = BTreeSet::new();
        for (i, code) in self.enabled_appointment_types.iter().enumerate() {
            let field = format!("enabled_appointment_types[{i}]");
            if !known_types.contains(code) {
                e.push(FieldError::new(
                    field,
                    "unknown_appointment_type",
                    format!("there is no appointment type '{code}'"),
                ));
            } else if !seen.insert(code.as_str()) {
                e.push(FieldError::new(
                    field,
                    "duplicate_appointment_type",
                    format!("'{code}' is listed more than once"),
                ));
            }
        }
        if !(0..=MAX_CUTOFF_HOURS).contains(&self.cutoff_hours) {
            e.push(FieldError::new(
                "cutoff_hours",
                "out_of_range",
                format!("give a number of hours from 0 to {MAX_CUTOFF_HOURS}"),
            ));
        }
        let reschedule_to = e.check(
            "reschedule_to",
            RescheduleTo::parse(&self.reschedule_to).ok_or_else(|| {
                FieldError::new(
                    "reschedule_to",
                    "invalid_value",
                    format!(
                        "'{}' is not one of {}",
                        self.reschedule_to,
                        RescheduleTo::ALL.map(RescheduleTo::as_str).join(", ")
                    ),
                )
            }),
        );
        e.finish()?;
        let Some(reschedule_to) = reschedule_to else {
            return Err(ValidationErrors::single(FieldError::new(
                "settings",
                "invalid",
                "the settings are invalid",
            )));
        };
        Ok(SelfServiceSettings {
            enabled_appointment_types: self.enabled_appointment_types.clone(),
            cutoff_hours: self.cutoff_hours,
            patients_may_cancel: self.patients_may_cancel,
            reschedule_to,
            refill_booking: self.refill_booking,
        })
    }
}

/// The stored settings and their version (0 while the defaults are in use).
#[derive(Debug, Clone)]
pub struct StoredSelfService {
    pub settings: SelfServiceSettings,
    pub version: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

pub fn load(conn: &mut DbConnection) -> Result<StoredSelfService, ReminderError> {
    let row: Option<(String, i64, chrono::NaiveDateTime)> = settings::table
        .find(NAME)
        .select((settings::body, settings::version, settings::updated_at))
        .first(conn)
        .optional()?;
    let Some((body, version, updated_at)) = row else {
        return Ok(StoredSelfService {
            settings: SelfServiceSettings::default(),
            version: 0,
            updated_at: None,
        });
    };
    // Only validated documents are written; a row that no longer parses was edited by hand.
    let doc: SelfServiceDocument = serde_json::from_str(&body)
        .map_err(|e| ReminderError::Corrupt(format!("stored self-service settings: {e}")))?;
    // The codes were checked against the catalogue when saved; a type made inactive since
    // stays listed (it simply has no new visits), so they are not checked again here.
    let settings = doc
        .validate(&doc.enabled_appointment_types)
        .map_err(|e| ReminderError::Corrupt(format!("stored self-service settings: {e:?}")))?;
    Ok(StoredSelfService {
        settings,
        version,
        updated_at: Some(time::from_db(updated_at)),
    })
}

/// Validates `doc` against the appointment types the clinic has and replaces the settings
/// when `expected_version` is current (0 for the defaults). Audited as
/// `self_service_settings.update`.
pub fn save(
    conn: &mut DbConnection,
    actor: &Actor,
    expected_version: i64,
    doc: &SelfServiceDocument,
    now: DateTime<Utc>,
) -> Result<StoredSelfService, ReminderError> {
    let updated_by = actor.token_id.map(|t| t.to_string());
    dialect::write_transaction(conn, |conn| {
        let known: Vec<String> = clinic_scheduling::types::list(conn)?
            .into_iter()
            .map(|t| t.code)
            .collect();
        let new = doc.validate(&known)?;
        let current = load(conn)?;
        if current.version != expected_version {
            return Err(ReminderError::Conflict {
                code: "version_conflict",
                detail: format!(
                    "the settings are at version {}, not {expected_version}",
                    current.version
                ),
            });
        }
        // Written from the validated settings, so the row holds exactly what was checked.
        let body = serde_json::to_string(&SelfServiceDocument::from(&new))
            .map_err(|e| ReminderError::Corrupt(e.to_string()))?;
        let version =
            clinic_store::named_settings::write(conn, NAME, &body, expected_version, updated_by.as_deref(), now)?;
        clinic_patients::audit::record(conn, actor, "self_service_settings.update", "settings", NAME, now)?;
        Ok(StoredSelfService {
            settings: new,
            version,
            updated_at: Some(now),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        [
            "consultation",
            "psychological_evaluation",
            "trial",
            "implant",
            "refill",
            "follow_up",
            "pump_programming",
            "pump_replacement",
        ]
        .iter()
        .map(|&s| s.to_owned())
        .collect()
    }

    fn doc() -> SelfServiceDocument {
        SelfServiceDocument::from(&SelfServiceSettings::default())
    }

    fn codes(e: &ValidationErrors) -> Vec<String> {
        e.errors().iter().map(|f| format!("{}:{}", f.field, f.code)).collect()
    }

    #[test]
    fn the_defaults_let_patients_manage_visits_but_not_procedures() {
        let s = SelfServiceSettings::default();
        for t in ["consultation", "follow_up", "refill", "psychological_evaluation"] {
            assert!(s.allows(t), "{t}");
        }
        for t in ["trial", "implant", "pump_replacement", "pump_programming", "unknown"] {
            assert!(!s.allows(t), "{t}");
        }
        assert_eq!(s.cutoff_hours, 24);
        assert_eq!(s.cutoff(), Duration::hours(24));
        assert!(s.patients_may_cancel);
        assert_eq!(s.reschedule_to, RescheduleTo::SameProvider);
        assert!(s.refill_booking);
    }

    #[test]
    fn the_default_document_is_valid_and_round_trips() {
        let d = doc();
        assert_eq!(d.reschedule_to, "same_provider");
        assert_eq!(d.validate(&known()), Ok(SelfServiceSettings::default()));
        let json = serde_json::to_string(&d).expect("json");
        let back: SelfServiceDocument = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, d);
    }

    #[test]
    fn edge_values_are_accepted() {
        let mut d = doc();
        d.enabled_appointment_types = vec![];
        d.cutoff_hours = 0;
        d.reschedule_to = "any_provider".into();
        d.patients_may_cancel = false;
        d.refill_booking = false;
        let s = d.validate(&known()).expect("valid");
        assert!(!s.allows("refill"));
        assert_eq!(s.reschedule_to, RescheduleTo::AnyProvider);
        d.cutoff_hours = MAX_CUTOFF_HOURS;
        assert!(d.validate(&known()).is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut d = doc();
        d.enabled_appointment_types = vec!["refill".into(), "massage".into(), "refill".into()];
        d.cutoff_hours = 169;
        d.reschedule_to = "anyone".into();
        let e = d.validate(&known()).expect_err("invalid");
        assert_eq!(
            codes(&e),
            [
                "enabled_appointment_types[1]:unknown_appointment_type",
                "enabled_appointment_types[2]:duplicate_appointment_type",
                "cutoff_hours:out_of_range",
                "reschedule_to:invalid_value",
            ]
        );
        d = doc();
        d.cutoff_hours = -1;
        assert_eq!(
            codes(&d.validate(&known()).expect_err("negative")),
            ["cutoff_hours:out_of_range"]
        );
    }

    #[test]
    fn unknown_fields_are_refused_in_the_stored_document() {
        let err = serde_json::from_str::<SelfServiceDocument>(
            r#"{"enabled_appointment_types":[],"cutoff_hours":24,"patients_may_cancel":true,
                "reschedule_to":"same_provider","refill_booking":true,"extra":1}"#,
        );
        assert!(err.is_err());
    }

    #[test]
    fn reschedule_to_names_round_trip() {
        for r in RescheduleTo::ALL {
            assert_eq!(RescheduleTo::parse(r.as_str()), Some(r));
        }
        assert_eq!(RescheduleTo::parse("Same_Provider"), None);
    }
}
