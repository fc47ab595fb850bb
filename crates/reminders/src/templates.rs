//! Email templates: subject, text and HTML per kind, embedded in the binary and overridable
//! file by file from a folder. Rendered by minijinja in strict mode from a typed context, so
//! a missing value is an error, never a blank. What they may say is intrathecal.md §5: a
//! first name, the date and time in the patient's zone (named), the clinic's name and phone,
//! how to confirm or change — never drug, dose, device, reservoir, alarm or diagnosis.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use clinic_domain::time::ClinicZone;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// The emails the platform sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    AppointmentConfirmation,
    AppointmentUpdate,
    AppointmentCancellation,
    AppointmentReminder,
    RefillReminder,
}

impl EmailKind {
    pub const ALL: [EmailKind; 5] = [
        EmailKind::AppointmentConfirmation,
        EmailKind::AppointmentUpdate,
        EmailKind::AppointmentCancellation,
        EmailKind::AppointmentReminder,
        EmailKind::RefillReminder,
    ];

    /// The kind stored in `outbox.kind`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(&self) -> &'static str {
        match self {
            EmailKind::AppointmentConfirmation => "appointment_confirmation",
            EmailKind::AppointmentUpdate => "appointment_update",
            EmailKind::AppointmentCancellation => "appointment_cancellation",
            EmailKind::AppointmentReminder => "appointment_reminder",
            EmailKind::RefillReminder => "refill_reminder",
        }
    }
}

/// Everything a template may show. Nothing clinical can reach an email because nothing
/// clinical is in here.
#[derive(Debug, Clone, Serialize)]
pub struct EmailContext {
    pub first_name: Option<String>,
    pub clinic_name: String,
    /// E.164, for `tel:` links.
    pub clinic_phone: String,
    pub clinic_phone_display: String,
    /// Long form in the patient's zone, the zone named: "Tuesday, January 5, 2027 at 9:00 AM CST (America/Chicago)".
    pub when: String,
    /// Short form for subjects: "Tue, Jan 5 at 9:00 AM".
    pub when_short: String,
    /// The one-click "stop emails" link, when the patient can be given one.
    pub stop_url: Option<String>,
    /// The patient's self-service page for what the email is about: the visit's manage page
    /// (confirmation, update, reminder) or the refill booking page (refill reminder), when the
    /// clinic offers it. Its path says nothing clinical (`/my/appointments/…`, `/my/book/…`).
    pub self_service_url: Option<String>,
}

impl EmailContext {
    /// Wording for an appointment at `at`, shown in the patient's zone.
    pub fn at_instant(at: DateTime<Utc>, zone: ClinicZone) -> (String, String) {
        let local = at.with_timezone(&zone.tz());
        (
            format!("{} ({})", local.format("%A, %B %-d, %Y at %-I:%M %p %Z"), zone.name()),
            local.format("%a, %b %-d at %-I:%M %p").to_string(),
        )
    }

    /// Wording for a day ("come in by").
    pub fn by_date(date: NaiveDate) -> (String, String) {
        (
            date.format("%A, %B %-d, %Y").to_string(),
            date.format("%a, %b %-d").to_string(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("email template {template}: {message}")]
pub struct TemplateError {
    pub template: String,
    pub message: String,
}

const EMBEDDED: &[(&str, &str)] = &[
    ("_layout.html", include_str!("../templates/_layout.html")),
    (
        "appointment_confirmation.subject",
        include_str!("../templates/appointment_confirmation.subject"),
    ),
    (
        "appointment_confirmation.txt",
        include_str!("../templates/appointment_confirmation.txt"),
    ),
    (
        "appointment_confirmation.html",
        include_str!("../templates/appointment_confirmation.html"),
    ),
    (
        "appointment_update.subject",
        include_str!("../templates/appointment_update.subject"),
    ),
    (
        "appointment_update.txt",
        include_str!("../templates/appointment_update.txt"),
    ),
    (
        "appointment_update.html",
        include_str!("../templates/appointment_update.html"),
    ),
    (
        "appointment_cancellation.subject",
        include_str!("../templates/appointment_cancellation.subject"),
    ),
    (
        "appointment_cancellation.txt",
        include_str!("../templates/appointment_cancellation.txt"),
    ),
    (
        "appointment_cancellation.html",
        include_str!("../templates/appointment_cancellation.html"),
    ),
    (
        "appointment_reminder.subject",
        include_str!("../templates/appointment_reminder.subject"),
    ),
    (
        "appointment_reminder.txt",
        include_str!("../templates/appointment_reminder.txt"),
    ),
    (
        "appointment_reminder.html",
        include_str!("../templates/appointment_reminder.html"),
    ),
    (
        "refill_reminder.subject",
        include_str!("../templates/refill_reminder.subject"),
    ),
    ("refill_reminder.txt", include_str!("../templates/refill_reminder.txt")),
    (
        "refill_reminder.html",
        include_str!("../templates/refill_reminder.html"),
    ),
];

/// Words an email must never carry (intrathecal.md §5): the catalogue's drugs, device
/// and clinical words, and the conditions the clinic treats.
pub const FORBIDDEN_WORDS: &[&str] = &[
    "pump",
    "refill",
    "reservoir",
    "intrathecal",
    "dose",
    "dosage",
    "alarm",
    "catheter",
    "infusion",
    "morphine",
    "baclofen",
    "ziconotide",
    "hydromorphone",
    "bupivacaine",
    "clonidine",
    "fentanyl",
    "sufentanil",
    "opioid",
    "withdrawal",
    "spasticity",
    "pancreatitis",
    "cancer",
    "surgery",
    "regional pain",
    "dystrophy",
    "nerve injury",
    "diagnos",
    "concentration",
    "mg",
    "mcg",
    "ml",
];

/// The forbidden words in `text` (case-insensitive; the unit abbreviations as whole words).
pub fn clinical_words(text: &str) -> Vec<&'static str> {
    let lower = text.to_lowercase();
    FORBIDDEN_WORDS
        .iter()
        .copied()
        .filter(|word| {
            if word.len() <= 3 {
                lower.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == *word)
            } else {
                lower.contains(word)
            }
        })
        .collect()
}

/// The loaded templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The embedded templates, each replaced by a file of the same name in `overrides` when
    /// there is one (`CLINIC_TEMPLATE_DIR`). Every template is checked to parse here, so a
    /// broken override stops the start, not an email.
    pub fn load(overrides: Option<&Path>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(false);
        for (name, embedded) in EMBEDDED {
            let source = match overrides.map(|dir| dir.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| TemplateError {
                    template: PathBuf::from(&path).display().to_string(),
                    message: e.to_string(),
                })?,
                None => (*embedded).to_owned(),
            };
            env.add_template_owned(*name, source).map_err(|e| TemplateError {
                template: (*name).to_owned(),
                message: e.to_string(),
            })?;
        }
        let templates = Self { env };
        templates.check()?;
        Ok(templates)
    }

    /// Renders every email with a sample patient, so an override that names an unknown
    /// variable or says a clinical word stops the start instead of an email.
    fn check(&self) -> Result<(), TemplateError> {
        let (when, when_short) = EmailContext::by_date(NaiveDate::from_ymd_opt(2027, 3, 15).unwrap_or_default());
        let links = [None, Some("https://clinic.example/my/appointments/x".to_owned())];
        for (stop_url, self_service_url) in [None, Some("https://clinic.example/email/stop?t=x".to_owned())]
            .into_iter()
            .flat_map(|stop| links.clone().map(|link| (stop.clone(), link)))
        {
            let ctx = EmailContext {
                first_name: Some("Alex".into()),
                clinic_name: "Clinic".into(),
                clinic_phone: "+13125550100".into(),
                clinic_phone_display: "+1 312-555-0100".into(),
                when: when.clone(),
                when_short: when_short.clone(),
                stop_url,
                self_service_url,
            };
            for kind in EmailKind::ALL {
                let e = self.render(kind, &ctx)?;
                for (part, text) in [("subject", &e.subject), ("text", &e.text), ("html", &e.html)] {
                    if let Some(word) = clinical_words(text).first() {
                        return Err(TemplateError {
                            template: format!("{} ({part})", kind.name()),
                            message: format!("emails must not say '{word}' (intrathecal.md §5)"),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn render_one(&self, name: &str, ctx: &minijinja::Value) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| TemplateError {
                template: name.to_owned(),
                message: e.to_string(),
            })
    }

    pub fn render(&self, kind: EmailKind, ctx: &EmailContext) -> Result<RenderedEmail, TemplateError> {
        let base = minijinja::Value::from_serialize(ctx);
        let subject = self
            .render_one(&format!("{}.subject", kind.name()), &base)?
            .trim()
            .to_owned();
        let text = self
            .render_one(&format!("{}.txt", kind.name()), &base)?
            .trim()
            .to_owned()
            + "\n";
        let with_subject = minijinja::context! { subject => subject.clone(), ..base };
        let html = self.render_one(&format!("{}.html", kind.name()), &with_subject)?;
        Ok(RenderedEmail { subject, text, html })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn context(stop: bool) -> EmailContext {
        with_link(stop, false)
    }

    fn with_link(stop: bool, link: bool) -> EmailContext {
        let zone = ClinicZone::parse("America/Chicago").expect("zone");
        let at = Utc.with_ymd_and_hms(2027, 3, 15, 14, 0, 0).single().expect("instant");
        let (when, when_short) = EmailContext::at_instant(at, zone);
        EmailContext {
            first_name: Some("Ana".into()),
            clinic_name: "Lakeside Pain Clinic".into(),
            clinic_phone: "+13125550100".into(),
            clinic_phone_display: "+1 312-555-0100".into(),
            when,
            when_short,
            stop_url: stop.then(|| "https://clinic.example/stop/eyJhbGciOi".into()),
            self_service_url: link.then(|| "https://clinic.example/my/appointments/AQGZ".into()),
        }
    }

    #[test]
    fn the_word_check_finds_words_and_whole_unit_abbreviations() {
        assert_eq!(clinical_words("Your Pump refill"), ["pump", "refill"]);
        assert_eq!(clinical_words("10 mg daily"), ["mg"]);
        assert!(
            clinical_words("Remember your appointment").is_empty(),
            "'mg' inside a word is fine"
        );
    }

    #[test]
    fn no_email_carries_a_clinical_word() {
        let t = Templates::load(None).expect("templates");
        for kind in EmailKind::ALL {
            for (stop, link) in [(true, true), (true, false), (false, true), (false, false)] {
                let e = t.render(kind, &with_link(stop, link)).expect("render");
                for (part, text) in [("subject", &e.subject), ("text", &e.text), ("html", &e.html)] {
                    assert_eq!(
                        clinical_words(text),
                        Vec::<&str>::new(),
                        "{} {part}: {text}",
                        kind.name()
                    );
                }
            }
        }
    }

    #[test]
    fn times_are_in_the_patients_zone_with_the_zone_named() {
        let t = Templates::load(None).expect("templates");
        let e = t
            .render(EmailKind::AppointmentReminder, &context(false))
            .expect("render");
        assert!(
            e.text
                .contains("Monday, March 15, 2027 at 9:00 AM CDT (America/Chicago)"),
            "{}",
            e.text
        );
        assert_eq!(
            e.subject,
            "Reminder: your appointment at Lakeside Pain Clinic on Mon, Mar 15 at 9:00 AM"
        );
    }

    #[test]
    fn html_escapes_what_it_is_given() {
        let t = Templates::load(None).expect("templates");
        let mut ctx = context(false);
        ctx.first_name = Some("<b>Ana</b>".into());
        let e = t.render(EmailKind::AppointmentConfirmation, &ctx).expect("render");
        assert!(
            e.html.contains("&lt;b&gt;Ana&lt;&#x2f;b&gt;") || e.html.contains("&lt;b&gt;Ana&lt;/b&gt;"),
            "{}",
            e.html
        );
        assert!(!e.html.contains("<b>Ana</b>"));
    }

    #[test]
    fn overrides_replace_a_template_and_broken_ones_fail_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("refill_reminder.subject"),
            "Please call {{ clinic_name }}",
        )
        .expect("write");
        let t = Templates::load(Some(dir.path())).expect("templates");
        assert_eq!(
            t.render(EmailKind::RefillReminder, &context(false))
                .expect("render")
                .subject,
            "Please call Lakeside Pain Clinic"
        );
        std::fs::write(dir.path().join("refill_reminder.txt"), "{{ unknown_variable }}").expect("write");
        let strict = Templates::load(Some(dir.path()))
            .err()
            .expect("strict: undefined is an error at load");
        assert!(strict.message.contains("undefined"), "{strict}");
        std::fs::write(dir.path().join("refill_reminder.txt"), "{% if %}").expect("write");
        assert!(Templates::load(Some(dir.path())).is_err());
        std::fs::write(
            dir.path().join("refill_reminder.txt"),
            "Hi {{ first_name }}, your pump needs a refill. Call {{ clinic_phone_display }}.",
        )
        .expect("write");
        let leak = Templates::load(Some(dir.path()))
            .err()
            .expect("clinical words are refused");
        assert!(leak.message.contains("'pump'"), "{leak}");
    }

    #[test]
    fn snapshots_of_every_email() {
        let t = Templates::load(None).expect("templates");
        for kind in EmailKind::ALL {
            let e = t.render(kind, &context(true)).expect("render");
            insta::assert_snapshot!(kind.name(), format!("Subject: {}\n\n{}", e.subject, e.text));
            let e = t.render(kind, &with_link(true, true)).expect("render");
            insta::assert_snapshot!(
                format!("{}_with_link", kind.name()),
                format!("Subject: {}\n\n{}", e.subject, e.text)
            );
        }
    }

    #[test]
    fn the_self_service_link_is_offered_beside_the_phone() {
        let t = Templates::load(None).expect("templates");
        for kind in [EmailKind::AppointmentReminder, EmailKind::RefillReminder] {
            let e = t.render(kind, &with_link(false, true)).expect("render");
            assert!(
                e.text.contains("https://clinic.example/my/appointments/AQGZ"),
                "{}",
                e.text
            );
            // HTML escapes the slashes inside the attribute; a browser reads them back.
            assert!(
                e.html
                    .contains("href=\"https:&#x2f;&#x2f;clinic.example&#x2f;my&#x2f;appointments&#x2f;AQGZ\""),
                "{}",
                e.html
            );
            for part in [&e.text, &e.html] {
                assert!(part.contains("+1 312-555-0100"), "the phone stays: {part}");
            }
        }
    }
}
