//! iCalendar (RFC 5545) for appointments, built with the `icalendar` crate.
//!
//! Times are written in UTC (`…Z`), which every calendar converts to its owner's zone, so
//! no VTIMEZONE can be wrong or stale. The UID is stable per appointment; SEQUENCE grows with
//! every change; a cancelled appointment is sent as `METHOD:CANCEL` with `STATUS:CANCELLED`
//! so the event is removed. Patient-facing events carry no clinical words: the summary names
//! the clinic, not the appointment type.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus, Property};

use crate::appointments::Appointment;
use clinic_domain::scheduling::AppointmentStatus;

/// Where and whom to call, for the event text.
#[derive(Debug, Clone)]
pub struct ClinicContact {
    pub name: String,
    pub phone: String,
    /// Street address or other location text; the clinic name when not configured.
    pub location: String,
}

/// Identifies this product to calendar clients (RFC 5545 §3.7.3) instead of the library's default.
const PRODID: &str = concat!(
    "-//Clinic Platform//Clinic Platform ",
    env!("CARGO_PKG_VERSION"),
    "//EN"
);

fn calendar(method: &str) -> Calendar {
    let mut cal = Calendar::empty();
    cal.append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("PRODID", PRODID))
        .append_property(Property::new("CALSCALE", "GREGORIAN"))
        .append_property(Property::new("METHOD", method));
    cal
}

pub fn uid(a: &Appointment) -> String {
    format!("{}@clinic-platform", a.id)
}

fn event(a: &Appointment, summary: &str, description: &str, location: &str, now: DateTime<Utc>) -> Event {
    let cancelled = a.status == AppointmentStatus::Cancelled;
    let mut e = Event::new();
    e.uid(&uid(a))
        .timestamp(now)
        .sequence(u32::try_from(a.sequence).unwrap_or(u32::MAX))
        .starts(a.start)
        .ends(a.end)
        .summary(summary)
        .description(description)
        .location(location)
        .status(if cancelled {
            EventStatus::Cancelled
        } else {
            EventStatus::Confirmed
        });
    e.done()
}

/// The invitation for one appointment, for the patient: REQUEST while it stands, CANCEL
/// once cancelled.
pub fn appointment_invite(a: &Appointment, clinic: &ClinicContact, now: DateTime<Utc>) -> String {
    appointment_invite_with_parties(a, clinic, None, None, now)
}

/// The invitation as emailed: with the clinic's sending address as ORGANIZER and the
/// patient's as ATTENDEE (RFC 5546 needs both for REQUEST and CANCEL to be acted on).
pub fn appointment_invite_with_parties(
    a: &Appointment,
    clinic: &ClinicContact,
    organizer: Option<&str>,
    attendee: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    let cancelled = a.status == AppointmentStatus::Cancelled;
    let summary = format!("Appointment at {}", clinic.name);
    let description = if cancelled {
        format!(
            "This appointment is cancelled. To book another time, call {}.",
            clinic.phone
        )
    } else {
        format!("To confirm or reschedule, call {}.", clinic.phone)
    };
    let mut cal = calendar(if cancelled { "CANCEL" } else { "REQUEST" });
    let mut e = event(a, &summary, &description, &clinic.location, now);
    if let Some(org) = organizer {
        let mut p = Property::new("ORGANIZER", format!("mailto:{org}"));
        p.add_parameter("CN", &clinic.name);
        e.append_property(p);
    }
    if let Some(att) = attendee {
        let mut p = Property::new("ATTENDEE", format!("mailto:{att}"));
        p.add_parameter("ROLE", "REQ-PARTICIPANT");
        e.append_property(p);
    }
    cal.push(e);
    cal.done().to_string()
}

/// A provider's subscribable feed: their upcoming appointments, by type, without patient
/// names (the feed URL is a bearer secret that may end up in a calendar app).
pub fn provider_feed(provider_name: &str, list: &[Appointment], clinic: &ClinicContact, now: DateTime<Utc>) -> String {
    let mut cal = calendar("PUBLISH");
    cal.name(&format!("{provider_name} · {}", clinic.name));
    for a in list {
        let description = a
            .note
            .as_deref()
            .map(|_| "Has a booking note; see the clinic system.")
            .unwrap_or("");
        cal.push(event(a, &a.type_name, description, &clinic.location, now));
    }
    cal.done().to_string()
}
