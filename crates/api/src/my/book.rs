//! `/my/book/{token}`: the refill booking page from a refill reminder: the suggested times
//! (never after the due date, never in the past) and booking one.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use clinic_flows::self_service::{self as flows, SelfServiceError};
use minijinja::context;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    allowed, busy, date_text, days, form, page, parse_slot, refusal, see_other, split, when, zone_text, LinkCall,
};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(refill_booking_page).service(book_refill_form);
}

/// The suggested times grouped by day in the patient's zone, or the visit already booked
/// (with its own link). Changes nothing.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token from the email's link")),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html", body = String,
            example = "<!doctype html>\n<html lang=\"en\">\n<head><title>Book your visit · Lakeside Pain Clinic</title></head>\n<body><main id=\"content\">\n<h1>Book your next visit</h1>\n<p class=\"summary\">Please come in by <strong>Monday, March 15, 2027</strong>.</p>\n<form method=\"post\" action=\"/my/book/AgGZ…\"><fieldset class=\"day\"><legend>Tuesday, March 9</legend><label><input type=\"radio\" name=\"slot\" value=\"…\"> 9:30 AM</label></fieldset><button type=\"submit\">Book this time</button></form>\n</main></body>\n</html>\n"),
        (status = 403, description = "HTML page: the clinic does not offer booking online", content_type = "text/html", body = String),
        (status = 400, description = "HTML page: the address could not be read (a control character in it)", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired, was revoked, or its visit took place", content_type = "text/html", body = String),
        (status = 429, description = "HTML page: too many requests", content_type = "text/html", body = String)
    )
)]
#[get("/my/book/{token}")]
pub async fn refill_booking_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if !allowed(&state, &req, &token) {
        return busy(&state);
    }
    booking_page(&state, &req, token, StatusCode::OK, None).await
}

async fn booking_page(
    state: &AppState,
    req: &HttpRequest,
    token: String,
    status: StatusCode,
    problem: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let c = LinkCall::new(state, req, &token);
    // On the blocking pool, not the worker thread: working out free times that are not
    // kept (`TimesCache`) reads several calendars, and other pages asking the same wait for it.
    let outcome = state
        .db_audited(move |conn, audit| {
            split(flows::refill(
                conn,
                audit,
                &c.links,
                &c.token,
                c.request_id,
                c.zone,
                c.now,
            ))
        })
        .await?;
    match outcome {
        Ok(r) => page(
            state,
            status,
            "my/book.html",
            context! {
                token,
                due => date_text(r.due_date),
                zone => zone_text(r.patient_zone),
                days => days(&r.slots, r.patient_zone),
                booked => r.booked.as_ref().map(|(a, t)| context! { when => when(a.start, r.patient_zone), token => t.clone() }),
                problem,
            },
        ),
        Err(e) => refusal(state, &e),
    }
}

/// The time chosen on the booking page.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"slot": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11_1804773600"}))]
pub struct BookForm {
    /// One of the offered times, as the page gives it (`<provider id>_<unix seconds>`).
    #[serde(default)]
    pub slot: Option<String>,
}

/// Books the chosen time through the shared booking path (confirmation email; the refill
/// reminders stop). Two tabs posting at once book one visit; the other sees it.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token from the email's link")),
    request_body(content = BookForm, content_type = "application/x-www-form-urlencoded", description = "The form fields"),
    responses(
        (status = 303, description = "Booked: to the new visit's own page",
            headers(("Location" = String, description = "`/my/appointments/{token of the visit}?done=booked`")),
            example = json!(null)),
        (status = 403, description = "HTML page: the clinic does not offer booking online", content_type = "text/html", body = String),
        (status = 400, description = "HTML page: the address could not be read (a control character in it)", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 409, description = "HTML page: the time was taken, or a visit is already booked", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired, was revoked, or its visit took place", content_type = "text/html", body = String),
        (status = 422, description = "HTML page: no time was chosen, or the form held characters it may not", content_type = "text/html", body = String),
        (status = 429, description = "HTML page: too many requests", content_type = "text/html", body = String)
    )
)]
#[post("/my/book/{token}")]
pub async fn book_refill_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if !allowed(&state, &req, &token) {
        return busy(&state);
    }
    let Ok(f) = form::<BookForm>(&req, payload).await? else {
        return booking_page(
            &state,
            &req,
            token,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(super::REFUSED_CHARACTERS),
        )
        .await;
    };
    let Some((provider, start)) = f.slot.as_deref().and_then(parse_slot) else {
        return booking_page(
            &state,
            &req,
            token,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Please choose one of the times."),
        )
        .await;
    };
    let c = LinkCall::new(&state, &req, &token);
    let outcome = state
        .db(move |conn| {
            split(flows::book_refill(
                conn,
                &c.links,
                &c.token,
                provider,
                start,
                c.request_id,
                c.zone,
                c.now,
            ))
        })
        .await?;
    match outcome {
        Ok((_, visit_token)) => {
            state.availability.clear();
            Ok(see_other(format!("/my/appointments/{visit_token}?done=booked")))
        }
        Err(SelfServiceError::AlreadyBooked) => booking_page(&state, &req, token, StatusCode::CONFLICT, None).await,
        Err(SelfServiceError::SlotGone) => {
            booking_page(
                &state,
                &req,
                token,
                StatusCode::CONFLICT,
                Some("That time was just taken. Please choose another."),
            )
            .await
        }
        Err(e) => refusal(&state, &e),
    }
}
