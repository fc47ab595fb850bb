//! From an outbox row to the email to send, or the reason not to send it.
//!
//! Everything is read again at send time: the patient's address and consent (so a changed
//! address or a withdrawn consent applies to emails planned earlier), the appointment (a
//! reminder for a time that no longer stands is void) and the pump's forecast (a refill
//! reminder for an old due date, or for a refill now booked, is void). A reminder we may
//! not or cannot send puts the patient on the outreach list instead.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use clinic_domain::contact::Phone;
use clinic_domain::ids::{AppointmentId, PatientId};
use clinic_domain::patient::Patient;
use clinic_domain::scheduling::AppointmentStatus;
use clinic_domain::time::ClinicZone;
use clinic_scheduling::appointments::{self, Appointment};
use clinic_scheduling::ical::{self, ClinicContact};
use clinic_store::{time, DbConnection};
use lettre::message::Mailbox;

use crate::links::{self, LinkSigner};
use crate::mailer::{OutgoingEmail, Sender};
use crate::outbox::OutboxRow;
use crate::outreach::{NewEntry, Reason};
use crate::patient_links::{self, LinkSubject, PatientLinks};
use crate::planner::{APPOINTMENT, PUMP};
use crate::templates::{EmailContext, EmailKind, RenderedEmail, Templates};
use crate::ReminderError;

/// What the emails say about the clinic, and where links point.
#[derive(Debug, Clone)]
pub struct ClinicDetails {
    pub name: String,
    /// E.164.
    pub phone: String,
    /// Street address for invitations (the name when not configured).
    pub location: String,
    pub time_zone: ClinicZone,
    /// The address patients reach the platform at, for the stop link, e.g.
    /// `https://clinic.example` (no trailing slash).
    pub public_url: String,
}

/// Renders rows into emails. Shared by the dispatcher and the API's previews.
#[derive(Clone)]
pub struct Composer {
    pub templates: Arc<Templates>,
    pub clinic: ClinicDetails,
    pub sender: Sender,
    pub links: LinkSigner,
}

/// What to do with a claimed row.
#[derive(Debug)]
pub enum Decision {
    Send(Box<OutgoingEmail>),
    /// Do not send: the row becomes `void` with `reason`; `outreach` goes on staff's list.
    Skip {
        reason: String,
        outreach: Option<NewEntry>,
    },
}

/// A row rendered for reading (the API), whether or not it would be sent now.
#[derive(Debug, Clone)]
pub struct Preview {
    pub to: Option<String>,
    pub email: RenderedEmail,
    pub calendar: Option<String>,
    /// Why it would not be sent now, if it would not.
    pub would_skip: Option<String>,
}

/// An iCalendar attachment and its METHOD.
type Calendar = (String, &'static str);

/// The facts a row's email is about, read fresh.
enum About {
    Appointment(Box<Appointment>),
    Refill { due: chrono::NaiveDate, pump_id: String },
}

fn kind_of(row: &OutboxRow) -> Result<EmailKind, ReminderError> {
    EmailKind::parse(&row.kind).ok_or_else(|| ReminderError::Corrupt(format!("outbox {}: kind {}", row.id, row.kind)))
}

/// Why a patient cannot be emailed, if they cannot: no address, or no consent.
fn why_not_emailable(patient: &Patient) -> Option<&'static str> {
    match (&patient.email, patient.email_consent) {
        (None, _) => Some("the patient has no email address"),
        (Some(_), false) => Some("the patient has not consented to email"),
        _ => None,
    }
}

fn skip(reason: impl Into<String>) -> Decision {
    Decision::Skip {
        reason: reason.into(),
        outreach: None,
    }
}

impl Composer {
    fn contact(&self) -> ClinicContact {
        ClinicContact {
            name: self.clinic.name.clone(),
            phone: self.clinic.phone.clone(),
            location: self.clinic.location.clone(),
        }
    }

    /// The template context for a patient and what the email is about.
    pub fn context(
        &self,
        first_name: Option<String>,
        when: (String, String),
        stop_url: Option<String>,
        self_service_url: Option<String>,
    ) -> EmailContext {
        EmailContext {
            first_name,
            clinic_name: self.clinic.name.clone(),
            clinic_phone: self.clinic.phone.clone(),
            clinic_phone_display: Phone::from_e164(&self.clinic.phone)
                .map(|p| p.international())
                .unwrap_or_else(|_| self.clinic.phone.clone()),
            when: when.0,
            when_short: when.1,
            stop_url,
            self_service_url,
        }
    }

    pub fn stop_url(&self, row_id: &str, now: DateTime<Utc>) -> String {
        format!(
            "{}/email/stop?t={}",
            self.clinic.public_url,
            self.links.sign(row_id, now + links::lifetime())
        )
    }

    /// Reads what the row is about and decides: the current facts, or why it is stale.
    fn about(
        &self,
        conn: &mut DbConnection,
        row: &OutboxRow,
        kind: EmailKind,
        now: DateTime<Utc>,
    ) -> Result<Result<About, Decision>, ReminderError> {
        let refers_to = time::from_db(row.refers_to);
        match row.subject_type.as_str() {
            APPOINTMENT => {
                let id: AppointmentId = row
                    .subject_id
                    .parse()
                    .map_err(|_| ReminderError::Corrupt(format!("outbox {}: appointment id", row.id)))?;
                let a = appointments::load(conn, id)?;
                if kind == EmailKind::AppointmentReminder {
                    if a.status != AppointmentStatus::Booked || a.start != refers_to {
                        return Ok(Err(skip("the appointment was changed or cancelled")));
                    }
                    if now >= a.start {
                        return Ok(Err(Decision::Skip {
                            reason: "the appointment began before the reminder could be sent".into(),
                            outreach: Some(NewEntry {
                                dedupe_key: format!("reminder_not_sent:{}", row.id),
                                patient_id: a.patient_id.to_string(),
                                reason: Reason::ReminderNotSent,
                                subject_type: APPOINTMENT.into(),
                                subject_id: a.id.to_string(),
                                refers_to: a.start,
                            }),
                        }));
                    }
                }
                if matches!(kind, EmailKind::AppointmentConfirmation | EmailKind::AppointmentUpdate)
                    && a.status == AppointmentStatus::Cancelled
                {
                    return Ok(Err(skip("the appointment was cancelled since")));
                }
                Ok(Ok(About::Appointment(Box::new(a))))
            }
            PUMP => {
                let pump = clinic_pumps::registry::load_unaudited(conn, &row.subject_id)?;
                let due = pump.forecast.due_date;
                if pump.status != "active" {
                    return Ok(Err(skip("the device is no longer active")));
                }
                if crate::planner::refill_refers_to(self.clinic.time_zone, due) != refers_to {
                    return Ok(Err(skip("the due date changed")));
                }
                if clinic_pumps::worklist::refill_booked_for(conn, &pump, self.clinic.time_zone, now)?.is_some() {
                    return Ok(Err(skip("a visit is booked")));
                }
                Ok(Ok(About::Refill {
                    due,
                    pump_id: pump.id.clone(),
                }))
            }
            other => Err(ReminderError::Corrupt(format!(
                "outbox {}: subject type {other}",
                row.id
            ))),
        }
    }

    /// The database's link secret, from which each kind of link derives its own key.
    pub fn link_secret(&self) -> &LinkSigner {
        &self.links
    }

    /// The address the links in emails point at, without a trailing slash.
    pub fn public_url(&self) -> String {
        self.clinic.public_url.clone()
    }

    /// The signer of the patients' self-service links (a key derived from the link secret).
    pub fn patient_links(&self) -> PatientLinks {
        PatientLinks::from_secret(&self.links)
    }

    /// The self-service link the email carries, if the clinic offers one for what it is about:
    /// the visit's manage page for a confirmation, update or reminder of a visit whose type
    /// patients may manage; the refill booking page for a refill reminder.
    fn self_service_url(
        &self,
        conn: &mut DbConnection,
        kind: EmailKind,
        patient: &Patient,
        about: &About,
    ) -> Result<Option<String>, ReminderError> {
        let subject = match (about, kind) {
            (About::Appointment(_), EmailKind::AppointmentCancellation) => return Ok(None),
            (About::Appointment(a), _) => {
                if !crate::self_service::load(conn)?.settings.allows(&a.type_code) {
                    return Ok(None);
                }
                LinkSubject::Appointment(a.id)
            }
            (About::Refill { pump_id, .. }, _) => {
                if !crate::self_service::load(conn)?.settings.refill_booking {
                    return Ok(None);
                }
                let parse = |id: &str| {
                    uuid::Uuid::parse_str(id).map_err(|_| ReminderError::Corrupt(format!("pump or fill id {id}")))
                };
                let episode = clinic_pumps::registry::last_fill_id(conn, pump_id)?;
                LinkSubject::Refill {
                    pump: parse(pump_id)?,
                    episode: episode.as_deref().map(parse).transpose()?,
                }
            }
        };
        let generation = patient_links::generation(conn, patient.id)?;
        let path = match subject {
            LinkSubject::Appointment(_) => "my/appointments",
            LinkSubject::Refill { .. } => "my/book",
        };
        Ok(Some(format!(
            "{}/{path}/{}",
            self.clinic.public_url,
            self.patient_links().sign(subject, generation)
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        row: &OutboxRow,
        kind: EmailKind,
        patient: &Patient,
        about: &About,
        link: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(RenderedEmail, Option<Calendar>), ReminderError> {
        let when = match about {
            About::Appointment(a) => EmailContext::at_instant(a.start, patient.time_zone),
            About::Refill { due, .. } => EmailContext::by_date(*due),
        };
        let ctx = self.context(
            Some(patient.given_name.as_str().to_owned()),
            when,
            Some(self.stop_url(&row.id, now)),
            link,
        );
        let email = self.templates.render(kind, &ctx)?;
        let calendar = match (about, kind) {
            (About::Appointment(a), EmailKind::AppointmentConfirmation | EmailKind::AppointmentUpdate) => {
                Some((self.invite(a, patient, now), "REQUEST"))
            }
            (About::Appointment(a), EmailKind::AppointmentCancellation) => {
                Some((self.invite(a, patient, now), "CANCEL"))
            }
            _ => None,
        };
        Ok((email, calendar))
    }

    fn invite(&self, a: &Appointment, patient: &Patient, now: DateTime<Utc>) -> String {
        let attendee = patient.email.as_ref().map(|e| e.as_str().to_owned());
        ical::appointment_invite_with_parties(
            a,
            &self.contact(),
            Some(self.sender.from.email.as_ref()),
            attendee.as_deref(),
            now,
        )
    }

    /// Decides what to do with a claimed row.
    pub fn decide(
        &self,
        conn: &mut DbConnection,
        row: &OutboxRow,
        now: DateTime<Utc>,
    ) -> Result<Decision, ReminderError> {
        let kind = kind_of(row)?;
        let Some(patient_id) = row.patient_id.as_deref() else {
            return Ok(skip("no recipient"));
        };
        let patient_id: PatientId = patient_id
            .parse()
            .map_err(|_| ReminderError::Corrupt(format!("outbox {}: patient id", row.id)))?;
        let Some(patient) = clinic_patients::repo::load_many_unaudited(conn, &[patient_id])?.pop() else {
            return Ok(skip("the patient no longer exists"));
        };
        if patient.is_archived() {
            return Ok(skip("the patient record is archived"));
        }
        let about = match self.about(conn, row, kind, now)? {
            Ok(about) => about,
            Err(decision) => return Ok(decision),
        };
        if let Some(reason) = why_not_emailable(&patient) {
            let reminder = matches!(kind, EmailKind::AppointmentReminder | EmailKind::RefillReminder);
            return Ok(Decision::Skip {
                reason: reason.into(),
                // One call per thing the patient is reminded of, not one per reminder.
                outreach: reminder.then(|| NewEntry {
                    dedupe_key: format!("no_email:{}:{}:{}", row.subject_type, row.subject_id, row.refers_to),
                    patient_id: patient.id.to_string(),
                    reason: Reason::NoEmail,
                    subject_type: row.subject_type.clone(),
                    subject_id: row.subject_id.clone(),
                    refers_to: time::from_db(row.refers_to),
                }),
            });
        }
        let Some(address) = patient.email.as_ref() else {
            return Err(ReminderError::Corrupt("an emailable patient without an address".into()));
        };
        let link = self.self_service_url(conn, kind, &patient, &about)?;
        let (content, calendar) = self.render(row, kind, &patient, &about, link, now)?;
        let to = Mailbox::new(
            Some(patient.given_name.as_str().to_owned()),
            address
                .as_str()
                .parse()
                .map_err(|_| ReminderError::Corrupt(format!("patient {}: email", patient.id)))?,
        );
        Ok(Decision::Send(Box::new(OutgoingEmail {
            to,
            message_id: row.message_id.clone(),
            content,
            calendar,
            unsubscribe_url: Some(self.stop_url(&row.id, now)),
        })))
    }

    /// Renders a row for reading, saying whether and why it would be skipped now.
    pub fn preview(
        &self,
        conn: &mut DbConnection,
        row: &OutboxRow,
        now: DateTime<Utc>,
    ) -> Result<Preview, ReminderError> {
        let kind = kind_of(row)?;
        let patient_id: PatientId = row
            .patient_id
            .as_deref()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| ReminderError::Corrupt(format!("outbox {}: patient id", row.id)))?;
        let patient = clinic_patients::repo::load_many_unaudited(conn, &[patient_id])?
            .pop()
            .ok_or(ReminderError::NotFound("patient"))?;
        let (about, would_skip) = match self.about(conn, row, kind, now)? {
            Ok(about) => (about, None),
            Err(Decision::Skip { reason, .. }) => (self.about_as_planned(conn, row, kind)?, Some(reason)),
            Err(Decision::Send(_)) => return Err(ReminderError::Corrupt("unreachable decision".into())),
        };
        let would_skip = would_skip.or_else(|| why_not_emailable(&patient).map(str::to_owned));
        let link = self.self_service_url(conn, kind, &patient, &about)?;
        let (email, calendar) = self.render(row, kind, &patient, &about, link, now)?;
        Ok(Preview {
            to: patient.email.as_ref().map(|e| e.as_str().to_owned()),
            email,
            calendar: calendar.map(|(ics, _)| ics),
            would_skip,
        })
    }

    /// What the row was planned about, when that no longer stands (for previews).
    fn about_as_planned(
        &self,
        conn: &mut DbConnection,
        row: &OutboxRow,
        kind: EmailKind,
    ) -> Result<About, ReminderError> {
        let refers_to = time::from_db(row.refers_to);
        Ok(match kind {
            EmailKind::RefillReminder => About::Refill {
                due: self.clinic.time_zone.local_date(refers_to),
                pump_id: row.subject_id.clone(),
            },
            _ => {
                let id: AppointmentId = row
                    .subject_id
                    .parse()
                    .map_err(|_| ReminderError::Corrupt(format!("outbox {}: appointment id", row.id)))?;
                let mut a = appointments::load(conn, id)?;
                a.start = refers_to;
                About::Appointment(Box::new(a))
            }
        })
    }
}
