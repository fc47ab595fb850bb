//! The clinic's reminder policy (offsets per appointment type, quiet hours, refill offsets,
//! escalation window), stored as one validated JSON document in `settings` and edited
//! through the API with optimistic concurrency.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, Utc};
use clinic_domain::reminders::{AppointmentOffsets, QuietHours, RefillOffsets, ReminderSettings};
use clinic_domain::{FieldError, ValidationErrors};
use clinic_store::schema::settings;
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use clinic_patients::audit::Actor;

use crate::ReminderError;

const NAME: &str = "reminders";

/// The settings as written and read: plain numbers and `HH:MM` times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsDocument {
    pub default_appointment_offsets_hours: Vec<i64>,
    pub appointment_offsets_hours: BTreeMap<String, Vec<i64>>,
    pub quiet_hours_start: String,
    pub quiet_hours_end: String,
    pub refill_offsets_days: Vec<i64>,
    pub refill_send_at: String,
    pub escalation_days: i64,
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn parse_hhmm(field: &str, v: &str) -> Result<NaiveTime, FieldError> {
    clinic_domain::scheduling::parse_hh_mm(v)
        .ok_or_else(|| FieldError::new(field, "invalid_time", format!("'{v}' is not a time such as 08:00")))
}

impl From<&ReminderSettings> for SettingsDocument {
    fn from(s: &ReminderSettings) -> Self {
        let hours = |o: &AppointmentOffsets| o.hours().iter().map(|&h| i64::from(h)).collect();
        Self {
            default_appointment_offsets_hours: hours(&s.default_appointment_offsets),
            appointment_offsets_hours: s
                .appointment_offsets
                .iter()
                .map(|(k, v)| (k.clone(), hours(v)))
                .collect(),
            quiet_hours_start: hhmm(s.quiet_hours.start()),
            quiet_hours_end: hhmm(s.quiet_hours.end()),
            refill_offsets_days: s.refill_offsets.days().iter().map(|&d| i64::from(d)).collect(),
            refill_send_at: hhmm(s.refill_send_at),
            escalation_days: i64::from(s.escalation_days),
        }
    }
}

impl SettingsDocument {
    /// Validates every field, naming each bad one. `known_types` are the appointment type
    /// codes the clinic has; offsets for any other code are refused.
    pub fn validate(&self, known_types: &[String]) -> Result<ReminderSettings, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let default_appointment_offsets = e.check(
            "default_appointment_offsets_hours",
            AppointmentOffsets::new(
                &self.default_appointment_offsets_hours,
                "default_appointment_offsets_hours",
            ),
        );
        let mut appointment_offsets = BTreeMap::new();
        for (code, hours) in &self.appointment_offsets_hours {
            let field = format!("appointment_offsets_hours.{code}");
            if !known_types.contains(code) {
                e.push(FieldError::new(
                    field,
                    "unknown_appointment_type",
                    format!("there is no appointment type '{code}'"),
                ));
                continue;
            }
            if let Some(o) = e.check(&field, AppointmentOffsets::new(hours, &field)) {
                appointment_offsets.insert(code.clone(), o);
            }
        }
        let start = e.check(
            "quiet_hours_start",
            parse_hhmm("quiet_hours_start", &self.quiet_hours_start),
        );
        let end = e.check("quiet_hours_end", parse_hhmm("quiet_hours_end", &self.quiet_hours_end));
        let quiet_hours = match (start, end) {
            (Some(s), Some(en)) => e.check(
                "quiet_hours_end",
                QuietHours::new(s, en).map_err(|f| f.at("quiet_hours_end")),
            ),
            _ => None,
        };
        let refill_offsets = e.check("refill_offsets_days", RefillOffsets::new(&self.refill_offsets_days));
        let refill_send_at = e.check("refill_send_at", parse_hhmm("refill_send_at", &self.refill_send_at));
        let escalation_days = e.check(
            "escalation_days",
            ReminderSettings::check_escalation_days(self.escalation_days),
        );
        e.finish()?;
        match (
            default_appointment_offsets,
            quiet_hours,
            refill_offsets,
            refill_send_at,
            escalation_days,
        ) {
            (Some(d), Some(q), Some(r), Some(t), Some(days)) => Ok(ReminderSettings {
                default_appointment_offsets: d,
                appointment_offsets,
                quiet_hours: q,
                refill_offsets: r,
                refill_send_at: t,
                escalation_days: days,
            }),
            _ => Err(ValidationErrors::single(FieldError::new(
                "settings",
                "invalid",
                "the settings are invalid",
            ))),
        }
    }
}

/// The stored settings and their version (0 while the defaults are in use).
#[derive(Debug, Clone)]
pub struct Stored {
    pub settings: ReminderSettings,
    pub version: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

pub fn load(conn: &mut DbConnection) -> Result<Stored, ReminderError> {
    let row: Option<(String, i64, chrono::NaiveDateTime)> = settings::table
        .find(NAME)
        .select((settings::body, settings::version, settings::updated_at))
        .first(conn)
        .optional()?;
    let Some((body, version, updated_at)) = row else {
        return Ok(Stored {
            settings: ReminderSettings::default(),
            version: 0,
            updated_at: None,
        });
    };
    // Only validated documents are written; a row that no longer parses was edited by hand.
    let doc: SettingsDocument =
        serde_json::from_str(&body).map_err(|e| ReminderError::Corrupt(format!("stored reminder settings: {e}")))?;
    let settings = doc
        .validate(&doc.appointment_offsets_hours.keys().cloned().collect::<Vec<_>>())
        .map_err(|e| ReminderError::Corrupt(format!("stored reminder settings: {e:?}")))?;
    Ok(Stored {
        settings,
        version,
        updated_at: Some(time::from_db(updated_at)),
    })
}

/// Replaces the settings when `expected_version` is current (0 for the defaults).
pub fn save(
    conn: &mut DbConnection,
    new: &ReminderSettings,
    expected_version: i64,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Stored, ReminderError> {
    let updated_by = actor.token_id.map(|t| t.to_string());
    let body =
        serde_json::to_string(&SettingsDocument::from(new)).map_err(|e| ReminderError::Corrupt(e.to_string()))?;
    dialect::write_transaction(conn, |conn| {
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
        let version =
            clinic_store::named_settings::write(conn, NAME, &body, expected_version, updated_by.as_deref(), now)?;
        clinic_patients::audit::record(conn, actor, "reminder_settings.update", "settings", NAME, now)?;
        let voided = crate::planner::void_dropped_offsets(conn, new, now)?;
        if voided > 0 {
            tracing::info!(
                voided,
                "reminder settings changed: planned reminders for dropped offsets voided"
            );
        }
        Ok(Stored {
            settings: new.clone(),
            version,
            updated_at: Some(now),
        })
    })
}
