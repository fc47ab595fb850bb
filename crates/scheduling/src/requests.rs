//! Public appointment requests: anyone may ask for a publicly requestable type; staff
//! confirm one (creating or linking the patient and booking, in one transaction) or
//! decline it with a reason. The requester only ever gets a reference back.

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::contact::{EmailAddress, PersonName, Phone};
use clinic_domain::ids::{AppointmentRequestId, PatientId, ProviderId};
use clinic_domain::patient::{Language, NewPatient};
use clinic_domain::time::ClinicZone;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_patients::audit::{Actor, AuditWriter, PendingEvent};
use clinic_patients::repo as patients;
use clinic_store::schema::appointment_requests;
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;
use rand::Rng;

use crate::appointments::{self, Appointment, Booking, NewAppointment};
use crate::{corrupt, types, SchedulingError};

/// A request as submitted, validated.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub given_name: PersonName,
    pub family_name: PersonName,
    pub email: EmailAddress,
    pub phone: Phone,
    pub preferred_times: String,
    pub type_code: String,
    pub consent_to_contact: bool,
}

#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct AppointmentRequest {
    pub id: String,
    pub reference: String,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    pub phone: String,
    pub preferred_times: String,
    pub type_code: String,
    pub consent_to_contact: bool,
    /// `new`, `confirmed` or `declined`.
    pub status: String,
    pub decline_reason: Option<String>,
    pub patient_id: Option<String>,
    pub appointment_id: Option<String>,
    pub handled_by: Option<String>,
    pub handled_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// A short reference the requester can quote on the phone (no personal data in it).
fn new_reference() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    let code: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("REQ-{code}")
}

/// Stores a request and returns its reference.
pub fn submit(conn: &mut DbConnection, new: NewRequest, now: DateTime<Utc>) -> Result<String, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        let mut errors = ValidationErrors::new();
        match types::get(conn, &new.type_code) {
            Ok(t) if t.active && t.publicly_requestable => {}
            Ok(_) | Err(SchedulingError::NotFound(_)) => errors.push(FieldError::new(
                "reason",
                "not_requestable",
                "this kind of appointment cannot be requested online; please call the clinic",
            )),
            Err(e) => return Err(e),
        }
        if !new.consent_to_contact {
            errors.push(FieldError::new(
                "consent_to_contact",
                "consent_required",
                "we need your consent to contact you",
            ));
        }
        errors.finish()?;
        let reference = new_reference();
        diesel::insert_into(appointment_requests::table)
            .values((
                appointment_requests::id.eq(AppointmentRequestId::new().to_string()),
                appointment_requests::reference.eq(&reference),
                appointment_requests::given_name.eq(new.given_name.as_str()),
                appointment_requests::family_name.eq(new.family_name.as_str()),
                appointment_requests::email.eq(new.email.as_str()),
                appointment_requests::phone.eq(new.phone.as_str()),
                appointment_requests::preferred_times.eq(&new.preferred_times),
                appointment_requests::type_code.eq(&new.type_code),
                appointment_requests::consent_to_contact.eq(true),
                appointment_requests::status.eq("new"),
                appointment_requests::created_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        Ok(reference)
    })
}

pub const SUBJECT: &str = "appointment_request";

fn read_events(actor: &Actor, action: &'static str, ids: &[&str], now: DateTime<Utc>) -> Vec<PendingEvent> {
    ids.iter()
        .map(|id| PendingEvent {
            actor: actor.clone(),
            action,
            subject_type: SUBJECT,
            subject_id: (*id).to_owned(),
            at: now,
        })
        .collect()
}

/// Requests by status (all when `None`), oldest first, after the cursor id. They hold the
/// requesters' names and contact details, so each listed request's read is audited.
pub fn list(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    status: Option<&str>,
    after: Option<AppointmentRequestId>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<(Vec<AppointmentRequest>, bool), SchedulingError> {
    let mut q = appointment_requests::table.into_boxed();
    if let Some(s) = status {
        q = q.filter(appointment_requests::status.eq(s.to_owned()));
    }
    if let Some(a) = after {
        q = q.filter(appointment_requests::id.gt(a.to_string()));
    }
    let mut rows: Vec<AppointmentRequest> = q.order(appointment_requests::id).limit(limit + 1).load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    audit.record(read_events(actor, "appointment_request.list", &ids, now))?;
    Ok((rows, more))
}

/// One request, read by staff (audited).
pub fn read(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    id: AppointmentRequestId,
    now: DateTime<Utc>,
) -> Result<AppointmentRequest, SchedulingError> {
    let r = get(conn, id)?;
    audit.record(read_events(actor, "appointment_request.read", &[r.id.as_str()], now))?;
    Ok(r)
}

pub fn get(conn: &mut DbConnection, id: AppointmentRequestId) -> Result<AppointmentRequest, SchedulingError> {
    appointment_requests::table
        .find(id.to_string())
        .first(conn)
        .optional()?
        .ok_or(SchedulingError::NotFound("appointment request"))
}

fn open_request(conn: &mut DbConnection, id: AppointmentRequestId) -> Result<AppointmentRequest, SchedulingError> {
    let r = get(conn, id)?;
    if r.status != "new" {
        return Err(SchedulingError::Conflict {
            code: "already_handled",
            detail: format!("this request was already {}", r.status),
        });
    }
    Ok(r)
}

/// How to confirm: which patient, and the booking.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// An existing patient, or `None` to create one from the request.
    pub patient_id: Option<PatientId>,
    pub provider_id: ProviderId,
    pub start: DateTime<Utc>,
    pub note: Option<String>,
}

/// Creates or links the patient and books, all in one transaction with the request update.
pub fn confirm(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentRequestId,
    c: Confirmation,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(AppointmentRequest, Appointment), SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        let r = open_request(conn, id)?;
        let patient_id = match c.patient_id {
            Some(p) => p,
            None => {
                let new = NewPatient {
                    given_name: PersonName::parse(&r.given_name).map_err(|_| corrupt("request name"))?,
                    family_name: PersonName::parse(&r.family_name).map_err(|_| corrupt("request name"))?,
                    email: Some(EmailAddress::parse(&r.email).map_err(|_| corrupt("request email"))?),
                    phone: Some(Phone::from_e164(&r.phone).map_err(|_| corrupt("request phone"))?),
                    date_of_birth: None,
                    time_zone: clinic_zone,
                    preferred_language: Language::default(),
                    // Consent to be contacted about the request is not consent to reminder emails.
                    email_consent: false,
                    notes: None,
                };
                patients::create(conn, actor, new, now)?.id
            }
        };
        let booking = appointments::book_in_transaction(
            conn,
            actor,
            NewAppointment {
                patient_id,
                provider_id: c.provider_id,
                type_code: r.type_code.clone(),
                start: c.start,
                note: c.note,
            },
            None,
            clinic_zone,
            now,
        )?;
        let appointment = match booking {
            Booking::Created(a) | Booking::Replayed(a) => a,
        };
        diesel::update(appointment_requests::table.find(id.to_string()))
            .set((
                appointment_requests::status.eq("confirmed"),
                appointment_requests::patient_id.eq(patient_id.to_string()),
                appointment_requests::appointment_id.eq(appointment.id.to_string()),
                appointment_requests::handled_by.eq(actor.token_id.map(|t| t.to_string())),
                appointment_requests::handled_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        clinic_patients::audit::record(
            conn,
            actor,
            "appointment_request.confirm",
            "appointment_request",
            &id.to_string(),
            now,
        )?;
        Ok((get(conn, id)?, appointment))
    })
}

pub fn decline(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentRequestId,
    reason: String,
    now: DateTime<Utc>,
) -> Result<AppointmentRequest, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        open_request(conn, id)?;
        diesel::update(appointment_requests::table.find(id.to_string()))
            .set((
                appointment_requests::status.eq("declined"),
                appointment_requests::decline_reason.eq(reason),
                appointment_requests::handled_by.eq(actor.token_id.map(|t| t.to_string())),
                appointment_requests::handled_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        // The request holds the requester's name and contact details: changing it is audited.
        clinic_patients::audit::record(
            conn,
            actor,
            "appointment_request.decline",
            "appointment_request",
            &id.to_string(),
            now,
        )?;
        get(conn, id)
    })
}
