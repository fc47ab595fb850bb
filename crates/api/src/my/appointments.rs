//! `/my/appointments/{token}`: a patient's visit from the link in their email, and the
//! confirm, reschedule and cancel actions the clinic allows on it.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use clinic_domain::scheduling::AppointmentStatus;
use clinic_flows::self_service::{self as flows, SelfServiceError, Visit};
use minijinja::{context, Value};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    allowed, busy, days, form, page, parse_slot, phone_only_text, refusal, see_other, split, when, zone_text, LinkCall,
};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(appointment_page)
        .service(confirm_appointment_page)
        .service(reschedule_appointment_page)
        .service(reschedule_appointment_form)
        .service(cancel_appointment_page)
        .service(cancel_appointment_form);
}

/// What the page says after an action (`?done=`); anything else shows nothing extra.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DoneQuery {
    /// `confirmed`, `rescheduled`, `cancelled` or `booked`: the action just done.
    pub done: Option<String>,
}

fn done_text(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "confirmed" => Some("Thank you. We have noted that you will come."),
        "rescheduled" => Some("Your appointment has moved. We have emailed you the new time."),
        "cancelled" => Some("Your appointment is cancelled. We have emailed you to confirm."),
        "booked" => Some("Your visit is booked. We have emailed you the details."),
        _ => None,
    }
}

fn status_text(v: &Visit) -> &'static str {
    match v.appointment.status {
        AppointmentStatus::Booked if v.appointment.patient_confirmed_at.is_some() => {
            "Booked; you confirmed you will come"
        }
        AppointmentStatus::Booked => "Booked",
        AppointmentStatus::CheckedIn => "Checked in",
        AppointmentStatus::Completed => "Completed",
        AppointmentStatus::NoShow => "Missed",
        AppointmentStatus::Cancelled => "Cancelled",
    }
}

/// The visit as the templates show it.
fn visit_context(v: &Visit) -> Value {
    let zone = v.patient_zone;
    context! {
        label => v.label.clone(),
        provider_name => v.provider_name.clone(),
        when => when(v.appointment.start, zone),
        status_text => status_text(v),
        version => v.appointment.version,
        can_confirm => v.can_confirm,
        can_reschedule => v.can_reschedule,
        can_cancel => v.can_cancel,
        cutoff => when(v.changes_until, zone),
        phone_only => v.phone_only.map(phone_only_text),
        rebook_url => v.rebook_token.as_ref().map(|t| format!("/my/book/{t}")),
    }
}

async fn load_visit(
    state: &AppState,
    req: &HttpRequest,
    token: String,
) -> Result<Result<Visit, SelfServiceError>, ApiError> {
    let c = LinkCall::new(state, req, &token);
    // A handful of reads by key (the visit with its provider, the patient, the link
    // generation, the settings): on the worker thread when a connection is free at once.
    state
        .db_audited_keyed(move |conn, audit| {
            split(flows::visit(
                conn,
                audit,
                &c.links,
                &c.token,
                c.request_id,
                c.zone,
                c.now,
            ))
        })
        .await
}

/// The patient's visit: when and where (in their zone), its state, and what they may do now.
/// Changes nothing.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token from the email's link"), DoneQuery),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html", body = String,
            example = "<!doctype html>\n<html lang=\"en\">\n<head><title>Your appointment · Lakeside Pain Clinic</title></head>\n<body><main id=\"content\">\n<h1>Your appointment</h1>\n<dl class=\"facts\"><dt>When</dt><dd>Monday, March 15, 2027 at 9:00 AM CDT (America/Chicago)</dd></dl>\n<form method=\"post\" action=\"/my/appointments/AQGZ…/confirm\"><button type=\"submit\">I will be there</button></form>\n</main></body>\n</html>\n"),
        (status = 400, description = "HTML page: the address could not be read (a control character in it)", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired or was revoked", content_type = "text/html", body = String),
        (status = 429, description = "HTML page: too many requests", content_type = "text/html", body = String)
    )
)]
#[get("/my/appointments/{token}")]
pub async fn appointment_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if !allowed(&state, &req, &token) {
        return busy(&state);
    }
    visit_page(&state, &req, token, StatusCode::OK, done_text(q.done.as_deref()), None).await
}

/// The visit's page, saying what was just done or what was wrong with the form sent.
async fn visit_page(
    state: &AppState,
    req: &HttpRequest,
    token: String,
    status: StatusCode,
    done: Option<&str>,
    problem: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    match load_visit(state, req, token.clone()).await? {
        Ok(v) => page(
            state,
            status,
            "my/visit.html",
            context! { visit => visit_context(&v), token, done, problem },
        ),
        Err(e) => refusal(state, &e),
    }
}

/// The version of the visit the form was shown for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"version": "3"}))]
pub struct ConfirmForm {
    /// The appointment's version when the page was shown; a changed visit is 409.
    #[serde(default)]
    pub version: Option<String>,
}

fn version_of(raw: Option<&str>) -> i64 {
    // A missing or broken version cannot match any visit: the answer is "it changed".
    raw.and_then(|v| v.trim().parse().ok()).unwrap_or(-1)
}

/// Records that the patient will come (`patient_confirmed_at`), then shows the visit again.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token from the email's link")),
    request_body(content = ConfirmForm, content_type = "application/x-www-form-urlencoded", description = "The form fields"),
    responses(
        (status = 303, description = "Done: to the visit's page, which says so",
            headers(("Location" = String, description = "`/my/appointments/{token}?done=confirmed`")),
            example = json!(null)),
        (status = 403, description = "HTML page: not possible online now", content_type = "text/html", body = String),
        (status = 400, description = "HTML page: the address could not be read (a control character in it)", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 409, description = "HTML page: the visit changed since the page was shown", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired or was revoked", content_type = "text/html", body = String),
        (status = 422, description = "HTML page: the form held characters it may not", content_type = "text/html", body = String),
        (status = 429, description = "HTML page: too many requests", content_type = "text/html", body = String)
    )
)]
#[post("/my/appointments/{token}/confirm")]
pub async fn confirm_appointment_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if !allowed(&state, &req, &token) {
        return busy(&state);
    }
    let version = match form::<ConfirmForm>(&req, payload).await? {
        Ok(f) => version_of(f.version.as_deref()),
        Err(()) => {
            return visit_page(
                &state,
                &req,
                token,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(super::REFUSED_CHARACTERS),
            )
            .await;
        }
    };
    let c = LinkCall::new(&state, &req, &token);
    let outcome = state
        .db(move |conn| {
            split(flows::confirm(
                conn,
                &c.links,
                &c.token,
                version,
                c.request_id,
                c.zone,
                c.now,
            ))
        })
        .await?;
    match outcome {
        Ok(_) => Ok(see_other(format!("/my/appointments/{token}?done=confirmed"))),
        Err(e) => refusal(&state, &e),
    }
}

/// The times the visit may move to, as a form (same type; the providers the clinic allows;
/// a refill visit never after the due date). Changes nothing.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token from the email's link")),
    responses(
        (status = 200, description = "HTML page with the times, grouped by day", content_type = "text/html", body = String,
            example = "<!doctype html>\n<html lang=\"en\">\n<head><title>Choose another time · Lakeside Pain Clinic</title></head>\n<body><main id=\"content\">\n<h1>Choose another time</h1>\n<form method=\"post\" action=\"/my/appointments/AQGZ…/reschedule\"><fieldset class=\"day\"><legend>Tuesday, March 16</legend><label><input type=\"radio\" name=\"slot\" value=\"…\"> 9:30 AM</label></fieldset><button type=\"submit\">Move my appointment</button></form>\n</main></body>\n</html>\n"),
        (status = 403, description = "HTML page: not possible online now", content_type = "text/html", body = String),
        (status = 400, description = "HTML page: the address could not be read (a control character in it)", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired or was revoked", content_type = "text/html", body = String),
        (status = 429, description = "HTML page: too many requests", content_type = "text/html", body = String)
    )
)]
#[get("/my/appointments/{token}/reschedule")]
pub async fn reschedule_appointment_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if !allowed(&state, &req, &token) {
        return busy(&state);
    }
    reschedule_page(&state, &req, token, StatusCode::OK, None).await
}

async fn reschedule_page(
    state: &AppState,
    req: &HttpRequest,
    token: String,
    status: StatusCode,
    problem: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let c = LinkCall::new(state, req, &token);
    let outcome = state
        .db_audited(move |conn, audit| {
            split(flows::reschedule_options(
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
        Ok((v, _)) if !v.can_reschedule => refusal(
            state,
            &SelfServiceError::PhoneOnly(v.phone_only.unwrap_or(flows::PhoneOnly::NotOffered)),
        ),
        Ok((v, slots)) => page(
            state,
            status,
            "my/reschedule.html",
            context! {
                visit => visit_context(&v),
                token,
                days => days(&slots, v.patient_zone),
                zone => zone_text(v.patient_zone),
                problem,
            },
        ),
        Err(e) => refusal(state, &e),
    }
}

/// The time chosen on the reschedule page.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"version": "3", "slot": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11_1804773600"}))]
pub struct RescheduleForm {
    /// The appointment's version when the page was shown.
    #[serde(default)]
    pub version: Option<String>,
    /// One of the offered times, as the page gives it (`<provider id>_<unix seconds>`).
    #[serde(default)]
    pub slot: Option<String>,
}

/// Moves the visit to the chosen time: the normal reschedule, with its update email.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token from the email's link")),
    request_body(content = RescheduleForm, content_type = "application/x-www-form-urlencoded", description = "The form fields"),
    responses(
        (status = 303, description = "Done: to the visit's page, which says so",
            headers(("Location" = String, description = "`/my/appointments/{token}?done=rescheduled`")),
            example = json!(null)),
        (status = 403, description = "HTML page: not possible online now", content_type = "text/html", body = String),
        (status = 400, description = "HTML page: the address could not be read (a control character in it)", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 409, description = "HTML page: the visit changed, or the time was taken", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired or was revoked", content_type = "text/html", body = String),
        (status = 422, description = "HTML page: no time was chosen, or the form held characters it may not", content_type = "text/html", body = String),
        (status = 429, description = "HTML page: too many requests", content_type = "text/html", body = String)
    )
)]
#[post("/my/appointments/{token}/reschedule")]
pub async fn reschedule_appointment_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if !allowed(&state, &req, &token) {
        return busy(&state);
    }
    let Ok(f) = form::<RescheduleForm>(&req, payload).await? else {
        return reschedule_page(
            &state,
            &req,
            token,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(super::REFUSED_CHARACTERS),
        )
        .await;
    };
    let version = version_of(f.version.as_deref());
    let Some((provider, start)) = f.slot.as_deref().and_then(parse_slot) else {
        return reschedule_page(
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
            split(flows::reschedule(
                conn,
                &c.links,
                &c.token,
                version,
                provider,
                start,
                c.request_id,
                c.zone,
                c.now,
            ))
        })
        .await?;
    match outcome {
        Ok(_) => {
            // The calendar changed: staff tools' cached availability must not offer the old
            // state (as after a change through the API).
            state.availability.clear();
            Ok(see_other(format!("/my/appointments/{token}?done=rescheduled")))
        }
        Err(e) => refusal(&state, &e),
    }
}

/// Asks "are you sure?" before cancelling. Changes nothing.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token from the email's link")),
    responses(
        (status = 200, description = "HTML page with the confirmation form", content_type = "text/html", body = String,
            example = "<!doctype html>\n<html lang=\"en\">\n<head><title>Cancel your appointment · Lakeside Pain Clinic</title></head>\n<body><main id=\"content\">\n<h1>Cancel this appointment?</h1>\n<form method=\"post\" action=\"/my/appointments/AQGZ…/cancel\"><textarea name=\"reason\"></textarea><button type=\"submit\">Yes, cancel it</button></form>\n</main></body>\n</html>\n"),
        (status = 403, description = "HTML page: not possible online now", content_type = "text/html", body = String),
        (status = 400, description = "HTML page: the address could not be read (a control character in it)", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired or was revoked", content_type = "text/html", body = String),
        (status = 429, description = "HTML page: too many requests", content_type = "text/html", body = String)
    )
)]
#[get("/my/appointments/{token}/cancel")]
pub async fn cancel_appointment_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if !allowed(&state, &req, &token) {
        return busy(&state);
    }
    cancel_page(&state, &req, token, StatusCode::OK, None, "").await
}

async fn cancel_page(
    state: &AppState,
    req: &HttpRequest,
    token: String,
    status: StatusCode,
    problem: Option<&str>,
    reason: &str,
) -> Result<HttpResponse, ApiError> {
    match load_visit(state, req, token.clone()).await? {
        Ok(v) if !v.can_cancel => refusal(
            state,
            &v.phone_only
                .map_or(SelfServiceError::NotAllowed, SelfServiceError::PhoneOnly),
        ),
        Ok(v) => page(
            state,
            status,
            "my/cancel.html",
            context! { visit => visit_context(&v), token, problem, reason },
        ),
        Err(e) => refusal(state, &e),
    }
}

/// The cancellation, with an optional reason.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"version": "3", "reason": "I am away that week"}))]
pub struct CancelForm {
    /// The appointment's version when the page was shown.
    #[serde(default)]
    pub version: Option<String>,
    /// Why, if the patient wants to say (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// The longest reason a patient may give.
const MAX_REASON: usize = 500;

/// Cancels the visit, with the cancellation notice. A refill visit cancelled with nothing
/// else booked before the due date puts the patient on the outreach list at once.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("token" = String, Path, description = "The signed token from the email's link")),
    request_body(content = CancelForm, content_type = "application/x-www-form-urlencoded", description = "The form fields"),
    responses(
        (status = 303, description = "Done: to the visit's page, which says so",
            headers(("Location" = String, description = "`/my/appointments/{token}?done=cancelled`")),
            example = json!(null)),
        (status = 403, description = "HTML page: the clinic does not allow cancelling online, or not now", content_type = "text/html", body = String),
        (status = 400, description = "HTML page: the address could not be read (a control character in it)", content_type = "text/html", body = String),
        (status = 404, description = "HTML page: not a link of ours", content_type = "text/html", body = String),
        (status = 409, description = "HTML page: the visit changed since the page was shown", content_type = "text/html", body = String),
        (status = 410, description = "HTML page: the link expired or was revoked", content_type = "text/html", body = String),
        (status = 422, description = "HTML page: the reason is too long, or holds characters it may not", content_type = "text/html", body = String),
        (status = 429, description = "HTML page: too many requests", content_type = "text/html", body = String)
    )
)]
#[post("/my/appointments/{token}/cancel")]
pub async fn cancel_appointment_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if !allowed(&state, &req, &token) {
        return busy(&state);
    }
    let f = match form::<CancelForm>(&req, payload).await? {
        Ok(f) => f,
        Err(()) => {
            return cancel_page(
                &state,
                &req,
                token,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(super::REFUSED_CHARACTERS),
                "",
            )
            .await;
        }
    };
    let reason = f
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    if reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON) {
        let typed = reason.unwrap_or_default();
        return cancel_page(
            &state,
            &req,
            token,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Please keep the reason to 500 characters."),
            &typed,
        )
        .await;
    }
    let version = version_of(f.version.as_deref());
    let c = LinkCall::new(&state, &req, &token);
    let outcome = state
        .db(move |conn| {
            split(flows::cancel(
                conn,
                &c.links,
                &c.token,
                version,
                reason,
                c.request_id,
                c.zone,
                c.now,
            ))
        })
        .await?;
    match outcome {
        Ok(_) => {
            // The calendar changed: staff tools' cached availability must not offer the old
            // state (as after a change through the API).
            state.availability.clear();
            Ok(see_other(format!("/my/appointments/{token}?done=cancelled")))
        }
        Err(e) => refusal(&state, &e),
    }
}
