//! The patients' self-service pages, reached from the links in their emails:
//! [`appointments`] (`/my/appointments/{token}`: see, confirm, reschedule, cancel a visit) and
//! [`book`] (`/my/book/{token}`: book the refill a reminder is about).
//!
//! Thin adapters over `clinic_flows::self_service`, which runs the same use cases as the
//! REST API with the patient's link as the actor. The signed token in the path is the only
//! credential: no cookies, no session. A GET never changes anything (mail scanners fetch
//! every link in an email); every action is a POST from the page's own form, answered with a
//! redirect to the page that shows the result. Every refusal is a page with the clinic's
//! phone and a 4xx status. Pages are never cached, send no referrer, carry a strict CSP
//! and nothing clinical: the visit's label is its type's name only when that name says
//! nothing clinical.

pub mod appointments;
pub mod book;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use clinic_domain::ids::ProviderId;
use clinic_domain::scheduling::Slot;
use clinic_domain::time::ClinicZone;
use clinic_flows::self_service::{PhoneOnly, Refused, SelfServiceError};
use clinic_flows::FlowError;
use clinic_reminders::templates::EmailContext;
use clinic_scheduling::providers::Provider;
use minijinja::{context, Value};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(appointments::configure).configure(book::configure);
}

/// What every self-service flow is called with: the link signer and the cache of free times,
/// the clinic's zone, the
/// request's instant and id (for the audit events) and the token from the path.
struct LinkCall {
    links: clinic_flows::self_service::Links,
    zone: ClinicZone,
    now: DateTime<Utc>,
    request_id: Option<String>,
    token: String,
}

impl LinkCall {
    fn new(state: &AppState, req: &HttpRequest, token: &str) -> Self {
        Self {
            links: clinic_flows::self_service::Links {
                signer: state.composer.patient_links(),
                times: state.availability.times(),
                settings: state.self_service_settings.clone(),
            },
            zone: state.clinic.time_zone,
            now: state.now(),
            request_id: request_id(req),
            token: token.to_owned(),
        }
    }
}

/// The request id, for the audit events the pages' reads and actions record.
fn request_id(req: &HttpRequest) -> Option<String> {
    crate::extract::request_id_of(req)
}

/// Splits a flow's outcome: what the page shows (done or refused) and a server fault.
fn split<T>(r: Result<T, SelfServiceError>) -> Result<Result<T, SelfServiceError>, FlowError> {
    match r {
        Err(SelfServiceError::Flow(e)) => Err(e),
        other => Ok(other),
    }
}

/// An instant as the patient reads it: "Monday, March 15, 2027 at 9:00 AM CDT (America/Chicago)".
fn when(at: DateTime<Utc>, zone: ClinicZone) -> String {
    EmailContext::at_instant(at, zone).0
}

fn date_text(d: NaiveDate) -> String {
    EmailContext::by_date(d).0
}

/// Renders a self-service page: never cached (it carries the token), no referrer.
fn page(state: &AppState, status: StatusCode, template: &str, ctx: Value) -> Result<HttpResponse, ApiError> {
    crate::pages::clinic_page(state, status, template, ctx)
}

/// The page for a link that opens nothing, or an action that could not be done.
fn refusal(state: &AppState, e: &SelfServiceError) -> Result<HttpResponse, ApiError> {
    let (status, heading, message) = match e {
        SelfServiceError::Refused(Refused::Invalid) => (
            StatusCode::NOT_FOUND,
            "This link does not work",
            "It may have been copied incompletely. Please open it again from the email we sent you.",
        ),
        SelfServiceError::Refused(Refused::Expired) => (
            StatusCode::GONE,
            "This link has expired",
            "Links in our emails work until the end of the day they are about.",
        ),
        SelfServiceError::Refused(Refused::Revoked) => (
            StatusCode::GONE,
            "This link is no longer active",
            "The clinic has replaced the links it sent you. Our next email will carry a new one.",
        ),
        SelfServiceError::Refused(Refused::Done) => (
            StatusCode::GONE,
            "Nothing to book with this link",
            "Our records show this visit has already taken place.",
        ),
        SelfServiceError::NotAllowed | SelfServiceError::PhoneOnly(_) => (
            StatusCode::FORBIDDEN,
            "Please call us to change this appointment",
            "This change cannot be made online.",
        ),
        SelfServiceError::Stale => (
            StatusCode::CONFLICT,
            "This appointment has changed",
            "It was changed since you opened the page. Please open the link again to see it as it is now.",
        ),
        SelfServiceError::SlotGone => (
            StatusCode::CONFLICT,
            "That time is no longer free",
            "Someone booked it a moment ago. Please open the link again and choose another time.",
        ),
        SelfServiceError::AlreadyBooked => (
            StatusCode::CONFLICT,
            "A visit is already booked",
            "Please open the link again to see it.",
        ),
        SelfServiceError::Flow(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Something went wrong on our side",
            "Please try again in a few minutes.",
        ),
    };
    page(state, status, "my/refused.html", context! { heading, message })
}

/// 429 with the clinic's phone: too many page views or actions from one address or on one link.
fn busy(state: &AppState) -> Result<HttpResponse, ApiError> {
    page(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "my/refused.html",
        context! {
            heading => "Please try again in a minute",
            message => "We received many requests for this page just now.",
        },
    )
    .map(|mut res| {
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from_static("60"),
        );
        res
    })
}

/// Whether the caller may go ahead (per address and per link).
fn allowed(state: &AppState, req: &HttpRequest, token: &str) -> bool {
    state.self_service_limits.allow(req.peer_addr().map(|a| a.ip()), token)
}

/// What a page says when the visit offers only the phone.
fn phone_only_text(why: PhoneOnly) -> &'static str {
    match why {
        PhoneOnly::Cancelled => "This appointment is cancelled.",
        PhoneOnly::Over => "This appointment has taken place.",
        PhoneOnly::Past => "The time of this appointment has passed.",
        PhoneOnly::TooLate => "It is too close to the appointment to change it online.",
        PhoneOnly::NotOffered => "This appointment can only be changed by phone.",
    }
}

/// A slot as a form value: `<provider id>_<unix seconds>`.
fn slot_value(provider: &Provider, slot: &Slot) -> String {
    format!("{}_{}", provider.id, slot.start.timestamp())
}

/// Reads a slot form value back.
fn parse_slot(value: &str) -> Option<(ProviderId, DateTime<Utc>)> {
    let (provider, secs) = value.split_once('_')?;
    Some((provider.parse().ok()?, DateTime::from_timestamp(secs.parse().ok()?, 0)?))
}

/// Times grouped by day in the patient's zone, each labelled with its wall time (and the
/// provider's name when the patient may choose among several).
fn days(slots: &[(Provider, Slot)], zone: ClinicZone) -> Vec<Value> {
    let tz = zone.tz();
    let several = slots.iter().any(|(p, _)| p.id != slots[0].0.id);
    let mut out: Vec<(NaiveDate, Vec<Value>)> = Vec::new();
    for (p, s) in slots {
        let local = s.start.with_timezone(&tz);
        let day = local.date_naive();
        let label = if several {
            format!("{} with {}", local.format("%-I:%M %p"), p.name)
        } else {
            local.format("%-I:%M %p").to_string()
        };
        let time = context! { value => slot_value(p, s), label };
        match out.last_mut() {
            Some((d, times)) if *d == day => times.push(time),
            _ => out.push((day, vec![time])),
        }
    }
    out.into_iter()
        .map(|(d, times)| context! { label => d.format("%A, %B %-d").to_string(), times })
        .collect()
}

/// The zone's name as a page shows it.
fn zone_text(zone: ClinicZone) -> String {
    let name = zone.name();
    name.replace('_', " ")
}

/// 303 to the page that shows what a POST did (post/redirect/get: reloading never repeats it).
fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// What a page says about a form that held characters the character rule refuses.
const REFUSED_CHARACTERS: &str = "Please use only letters, numbers and punctuation.";

/// The form body of an action, read under the request limits and the character rule.
async fn form<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Result<T, ()>, ApiError> {
    let body = crate::extract::read_body(req, payload).await?;
    Ok(crate::extract::parse_form(&body).map_err(|_| ()))
}
