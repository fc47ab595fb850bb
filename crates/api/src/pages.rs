//! Public, server-rendered HTML pages for patients: `/articles` and `/articles/{slug}`.
//! No JavaScript; semantic headings; readable on a phone. Templates are embedded and
//! rendered by minijinja in strict mode (an undefined variable is an error, not blank text),
//! with HTML auto-escaping; only the sanitised article body is inserted as-is.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpResponse, ResponseError};
use clinic_content::articles::{self as repo, ArticleFilter};
use clinic_domain::contact::Phone;
use clinic_domain::content::ArticleStatus;
use minijinja::{context, Environment, UndefinedBehavior};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::problem::ApiError;
use crate::routes::articles::published;
use crate::state::AppState;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("articles.html", include_str!("../templates/articles.html")),
        ("article.html", include_str!("../templates/article.html")),
        ("not_found.html", include_str!("../templates/not_found.html")),
        ("bad_request.html", include_str!("../templates/bad_request.html")),
        ("request.html", include_str!("../templates/request.html")),
        ("request_done.html", include_str!("../templates/request_done.html")),
        ("email_stop.html", include_str!("../templates/email_stop.html")),
        (
            "my/_visit_facts.html",
            include_str!("../templates/my/_visit_facts.html"),
        ),
        ("my/_help.html", include_str!("../templates/my/_help.html")),
        ("my/_times.html", include_str!("../templates/my/_times.html")),
        ("my/visit.html", include_str!("../templates/my/visit.html")),
        ("my/reschedule.html", include_str!("../templates/my/reschedule.html")),
        ("my/cancel.html", include_str!("../templates/my/cancel.html")),
        ("my/book.html", include_str!("../templates/my/book.html")),
        ("my/refused.html", include_str!("../templates/my/refused.html")),
        (
            "console/set_password.html",
            include_str!("../templates/console/set_password.html"),
        ),
        (
            "console/password_set.html",
            include_str!("../templates/console/password_set.html"),
        ),
        (
            "console/refused.html",
            include_str!("../templates/console/refused.html"),
        ),
    ] {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "invalid embedded template");
        }
    }
    env
});

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(article_index_page)
        .service(article_page)
        .service(request_form_page)
        .service(submit_request_form)
        .service(email_stop_page)
        .service(email_stop);
}

pub(crate) fn clinic_context(state: &AppState) -> minijinja::Value {
    let display = Phone::from_e164(&state.clinic.phone)
        .map(|p| p.international())
        .unwrap_or_else(|_| state.clinic.phone.clone());
    context! {
        name => state.clinic.name.clone(),
        phone => state.clinic.phone.clone(),
        phone_display => display,
        address => state.clinic.address.clone().unwrap_or_else(|| state.clinic.name.clone()),
    }
}

pub(crate) fn render_html(name: &str, ctx: minijinja::Value) -> Result<Bytes, ApiError> {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("rendering {name}: {e}")))
}

fn render(name: &str, status: StatusCode, ctx: minijinja::Value) -> Result<HttpResponse, ApiError> {
    Ok(html_response(status, render_html(name, ctx)?))
}

fn html_response(status: StatusCode, html: Bytes) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=60"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"))
        .body(html)
}

/// The page for a request the edge refused before any route saw it ([`crate::edge::guard`]):
/// "not found" for a path that names nothing, "could not read that link" for anything else,
/// both with the clinic's phone. Never cached: the address may carry a token.
pub fn error_page(state: &AppState, status: StatusCode) -> HttpResponse {
    let template = if status == StatusCode::NOT_FOUND {
        "not_found.html"
    } else {
        "bad_request.html"
    };
    match render_html(template, context! { clinic => clinic_context(state) }) {
        Ok(html) => private_page(status, html),
        Err(e) => e.error_response(),
    }
}

/// The list of published articles, as an HTML page for patients.
#[utoipa::path(
    tag = "pages",
    security(()),
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String,
        example = "<!doctype html>\n\
        <html lang=\"en\">\n\
        <head>\n\
        <meta charset=\"utf-8\">\n\
        <title>Patient information · Lakeside Pain Clinic</title>\n\
        <!-- description, viewport and styles -->\n\
        </head>\n\
        <body>\n\
        <!-- header: clinic name, link to the articles, phone -->\n\
        <main id=\"content\">\n\
        <h1>Patient information</h1>\n\
        <p class=\"summary\">Plain-language articles about intrathecal pump therapy and the conditions we treat.</p>\n\
        <ul class=\"list\">\n\
        \x20 <li>\n\
        \x20   <h2><a href=\"/articles/intrathecal-pump-therapy\">Intrathecal pump therapy: what it is and what to expect</a></h2>\n\
        \x20   <p>How the pump works, who may benefit and why refills matter.</p>\n\
        \x20 </li>\n\
        </ul>\n\
        <!-- how to call or request an appointment -->\n\
        </main>\n\
        <!-- footer -->\n\
        </body>\n\
        </html>\n"))
)]
#[get("/articles")]
pub async fn article_index_page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = ArticleFilter {
        status: Some(ArticleStatus::Published),
        ..ArticleFilter::default()
    };
    let (articles, _) = state.db(move |conn| repo::list(conn, &filter, 100)).await?;
    let articles: Vec<_> = articles
        .iter()
        .map(|a| context! { slug => a.slug.clone(), title => a.title.clone(), summary => a.summary.clone() })
        .collect();
    render(
        "articles.html",
        StatusCode::OK,
        context! { clinic => clinic_context(&state), articles },
    )
}

/// One published article as an HTML page; unknown or unpublished slugs get a 404 page.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("slug" = String, Path, description = "Article slug", example = "intrathecal-pump-therapy")),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html", body = String,
            example = "<!doctype html>\n\
            <html lang=\"en\">\n\
            <head>\n\
            <meta charset=\"utf-8\">\n\
            <title>Intrathecal pump therapy: what it is and what to expect · Lakeside Pain Clinic</title>\n\
            <!-- description, viewport and styles -->\n\
            </head>\n\
            <body>\n\
            <!-- header: clinic name, link to the articles, phone -->\n\
            <main id=\"content\">\n\
            <article aria-labelledby=\"article-title\">\n\
            \x20 <h1 id=\"article-title\">Intrathecal pump therapy: what it is and what to expect</h1>\n\
            \x20 <p class=\"summary\">How the pump works, who may benefit and why refills matter.</p>\n\
            \x20 <p class=\"meta\">By Clinic care team · Published January 4, 2027</p>\n\
            \x20 <h2>How it works</h2>\n\
            <p>A small pump…</p>\n\
            </article>\n\
            <p><a href=\"/articles\">← All patient information</a></p>\n\
            <!-- how to call or request an appointment -->\n\
            </main>\n\
            <!-- footer -->\n\
            </body>\n\
            </html>\n"),
        (status = 404, description = "HTML page saying the article does not exist", content_type = "text/html", body = String)
    )
)]
#[get("/articles/{slug}")]
pub async fn article_page(state: web::Data<AppState>, slug: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let slug = slug.into_inner();
    if let Some(html) = state.content.page(&slug) {
        return Ok(html_response(StatusCode::OK, html));
    }
    let clinic = clinic_context(&state);
    match published(&state, slug.clone()).await {
        Ok(a) => {
            let tz = state.clinic.time_zone;
            let article = context! {
                title => a.title.clone(),
                summary => a.summary.clone(),
                author => a.author.clone(),
                body_html => a.body_html.clone(),
                published_on => a.published_at.map(|t| tz.local_date(t).format("%B %-d, %Y").to_string()),
                conditions => a.conditions.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                tags => a.tags.clone(),
            };
            let html = render_html("article.html", context! { clinic, article })?;
            state.content.keep_page(slug, html.clone());
            Ok(html_response(StatusCode::OK, html))
        }
        Err(ApiError::NotFound(_)) => render("not_found.html", StatusCode::NOT_FOUND, context! { clinic }),
        Err(e) => Err(e),
    }
}

/// The fields of the request form, as posted (`application/x-www-form-urlencoded`). Missing
/// fields read as empty and are named on the page that comes back; the rules are those of
/// `AppointmentRequestBody`.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RequestForm {
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    given_name: String,
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    family_name: String,
    email: String,
    phone: String,
    /// The code of a publicly requestable appointment type (e.g. `consultation`).
    reason: String,
    #[schema(min_length = 1, max_length = 500)]
    preferred_times: String,
    /// Present (any value, the form sends `yes`) only when the box is ticked; required.
    #[schema(required = true)]
    consent_to_contact: Option<String>,
}

impl RequestForm {
    /// Drops the characters the edge refuses, so the form can be shown again with the rest.
    fn scrub(&mut self) {
        for (field, value) in [
            ("given_name", &mut self.given_name),
            ("family_name", &mut self.family_name),
            ("email", &mut self.email),
            ("phone", &mut self.phone),
            ("reason", &mut self.reason),
            ("preferred_times", &mut self.preferred_times),
        ] {
            let lines = crate::edge::lines_of(field);
            value.retain(|c| !clinic_domain::text::is_forbidden(c, lines));
        }
        self.consent_to_contact = self.consent_to_contact.take().map(|_| "yes".to_owned());
    }
}

/// Field errors as the form templates show them.
fn page_errors(errors: &clinic_domain::ValidationErrors) -> Vec<minijinja::Value> {
    errors
        .errors()
        .iter()
        .map(|e| context! { field => e.field.clone(), message => e.message.clone() })
        .collect()
}

async fn requestable_types(state: &AppState) -> Result<Vec<minijinja::Value>, ApiError> {
    let list = state.db(clinic_scheduling::types::list).await?;
    Ok(list
        .into_iter()
        .filter(|t| t.active && t.publicly_requestable)
        .map(|t| context! { code => t.code, name => t.name })
        .collect())
}

async fn form_page(
    state: &AppState,
    status: StatusCode,
    form: &RequestForm,
    errors: Vec<minijinja::Value>,
) -> Result<HttpResponse, ApiError> {
    let types = requestable_types(state).await?;
    let form_ctx = context! {
        given_name => form.given_name.clone(),
        family_name => form.family_name.clone(),
        email => form.email.clone(),
        phone => form.phone.clone(),
        reason => form.reason.clone(),
        preferred_times => form.preferred_times.clone(),
        consent => form.consent_to_contact.is_some(),
    };
    // The form echoes what someone typed (name, email, phone): never in a shared cache.
    let html = render_html(
        "request.html",
        context! { clinic => clinic_context(state), types, form => form_ctx, errors },
    )?;
    Ok(private_page(status, html))
}

/// The appointment request form for patients (no JavaScript; posts to itself).
#[utoipa::path(
    tag = "pages",
    security(()),
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String,
        example = "<!doctype html>\n\
        <html lang=\"en\">\n\
        <head>\n\
        <meta charset=\"utf-8\">\n\
        <title>Request an appointment · Lakeside Pain Clinic</title>\n\
        <!-- description, viewport and styles -->\n\
        </head>\n\
        <body>\n\
        <!-- header: clinic name, link to the articles, phone -->\n\
        <main id=\"content\">\n\
        <h1>Request an appointment</h1>\n\
        <form method=\"post\" action=\"/appointments/request\" class=\"request\">\n\
        \x20 <!-- first and last name, email, phone, appointment type, preferred times, consent -->\n\
        \x20 <p><button type=\"submit\">Send request</button></p>\n\
        </form>\n\
        <!-- how to call or request an appointment -->\n\
        </main>\n\
        <!-- footer -->\n\
        </body>\n\
        </html>\n"))
)]
#[get("/appointments/request")]
pub async fn request_form_page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    form_page(&state, StatusCode::OK, &RequestForm::default(), Vec::new()).await
}

/// Receives the form: the same validation and per-address limit as
/// `POST /api/v1/appointment-requests`, answered as a page (a reference, or the form again
/// with each problem named).
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = RequestForm, content_type = "application/x-www-form-urlencoded", description = "The form fields"),
    responses(
        (status = 200, description = "HTML page with the reference", content_type = "text/html", body = String,
            example = "<!doctype html>\n\
            <html lang=\"en\">\n\
            <head>\n\
            <meta charset=\"utf-8\">\n\
            <title>Request received · Lakeside Pain Clinic</title>\n\
            <!-- description, viewport and styles -->\n\
            </head>\n\
            <body>\n\
            <!-- header: clinic name, link to the articles, phone -->\n\
            <main id=\"content\">\n\
            <h1>Thank you, we have your request</h1>\n\
            <p class=\"summary\">Your reference is <strong>REQ-7KQ2M9XW</strong>. We will contact you soon to agree a time.</p>\n\
            <!-- how to call or request an appointment -->\n\
            </main>\n\
            <!-- footer -->\n\
            </body>\n\
            </html>\n"),
        (status = 422, description = "The form again, with each problem named", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address", content_type = "text/html", body = String)
    )
)]
#[post("/appointments/request")]
pub async fn submit_request_form(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::extract::read_body(&req, payload).await?;
    let form: RequestForm = match crate::extract::parse_form(&body) {
        Ok(form) => form,
        Err(refused) => {
            // Echo what was typed without the refused characters, and name each such field.
            let mut form: RequestForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
            form.scrub();
            return form_page(&state, StatusCode::UNPROCESSABLE_ENTITY, &form, page_errors(&refused)).await;
        }
    };
    let request = crate::routes::requests::AppointmentRequestBody {
        given_name: form.given_name.clone(),
        family_name: form.family_name.clone(),
        email: form.email.clone(),
        phone: form.phone.clone(),
        preferred_times: form.preferred_times.clone(),
        reason: form.reason.clone(),
        consent_to_contact: form.consent_to_contact.is_some(),
    };
    match crate::routes::requests::submit(&state, &req, request).await {
        Ok(reference) => Ok(private_page(
            StatusCode::OK,
            render_html(
                "request_done.html",
                context! { clinic => clinic_context(&state), reference },
            )?,
        )),
        Err(ApiError::Validation(v)) => {
            form_page(&state, StatusCode::UNPROCESSABLE_ENTITY, &form, page_errors(&v)).await
        }
        Err(ApiError::TooManyRequests) => {
            let errors = vec![context! {
                field => "given_name",
                message => "We received several requests from your network just now. Please try again in a minute, or call us.",
            }];
            form_page(&state, StatusCode::TOO_MANY_REQUESTS, &form, errors).await
        }
        Err(e) => Err(e),
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StopQuery {
    /// The signed token from the email (a missing one gets the "link no longer works" page).
    #[param(required = true)]
    pub t: Option<String>,
}

/// Pages about one person (the stop link, the request form with what was typed): never cached.
/// A private page from `template` with the clinic's details (the patients' and the staff's
/// link pages).
pub(crate) fn clinic_page(
    state: &AppState,
    status: StatusCode,
    template: &str,
    ctx: minijinja::Value,
) -> Result<HttpResponse, ApiError> {
    let ctx = context! { clinic => clinic_context(state), ..ctx };
    Ok(private_page(status, render_html(template, ctx)?))
}

pub(crate) fn private_page(status: StatusCode, html: Bytes) -> HttpResponse {
    let mut res = html_response(status, html);
    res.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    res
}

fn stop_page(state: &AppState, status: StatusCode, page: &str, token: &str) -> Result<HttpResponse, ApiError> {
    let html = render_html(
        "email_stop.html",
        context! { clinic => clinic_context(state), state => page, token },
    )?;
    Ok(private_page(status, html))
}

/// The link in every email: asks the patient to confirm (a GET changes nothing, so mail
/// scanners that follow links cannot unsubscribe anyone).
#[utoipa::path(
    tag = "pages",
    security(()),
    params(StopQuery),
    responses(
        (status = 200, description = "HTML page with a confirm button", content_type = "text/html", body = String,
            example = "<!doctype html>\n\
            <html lang=\"en\">\n\
            <head>\n\
            <meta charset=\"utf-8\">\n\
            <title>Stop emails · Lakeside Pain Clinic</title>\n\
            <!-- description, viewport and styles -->\n\
            </head>\n\
            <body>\n\
            <!-- header: clinic name, link to the articles, phone -->\n\
            <main id=\"content\">\n\
            <h1>Stop emails from Lakeside Pain Clinic?</h1>\n\
            <p class=\"summary\">We will stop emailing you appointment confirmations and reminders. Our staff will phone you instead when something needs your attention.</p>\n\
            <form method=\"post\" action=\"/email/stop?t=MDE5M2EwYzQtM2YzZS03YjYxLTlhNTEtM2MxYzJiMGQ5ZTFiLjE4MTIxOTY4MDA.q3Jx0Vb8Zt2mW5yNcK4dP7sF1hL9eR6uA0iG3oT8vXw\">\n\
            \x20 <button type=\"submit\">Stop emails</button>\n\
            </form>\n\
            <!-- how to call or request an appointment -->\n\
            </main>\n\
            <!-- footer -->\n\
            </body>\n\
            </html>\n"),
        (status = 400, description = "HTML page: the link is invalid or expired", content_type = "text/html", body = String)
    )
)]
#[get("/email/stop")]
pub async fn email_stop_page(state: web::Data<AppState>, q: web::Query<StopQuery>) -> Result<HttpResponse, ApiError> {
    let token = q.into_inner().t.unwrap_or_default();
    if state.composer.links.verify(&token, state.now()).is_err() {
        return stop_page(&state, StatusCode::BAD_REQUEST, "invalid", "");
    }
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    stop_page(&state, StatusCode::OK, "confirm", &encoded)
}

/// Records the choice: the patient's email consent is withdrawn (audited) and staff get an
/// outreach entry to phone instead. Also the RFC 8058 one-click target
/// (`List-Unsubscribe=One-Click`). Safe to repeat.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(StopQuery),
    responses(
        (status = 200, description = "HTML page confirming the choice", content_type = "text/html", body = String,
            example = "<!doctype html>\n\
            <html lang=\"en\">\n\
            <head>\n\
            <meta charset=\"utf-8\">\n\
            <title>Stop emails · Lakeside Pain Clinic</title>\n\
            <!-- description, viewport and styles -->\n\
            </head>\n\
            <body>\n\
            <!-- header: clinic name, link to the articles, phone -->\n\
            <main id=\"content\">\n\
            <h1>We will stop emailing you</h1>\n\
            <p class=\"summary\">Your choice is recorded. Our staff will phone you when something needs your attention.</p>\n\
            <!-- how to call or request an appointment -->\n\
            </main>\n\
            <!-- footer -->\n\
            </body>\n\
            </html>\n"),
        (status = 400, description = "HTML page: the link is invalid or expired", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address", content_type = "text/html", body = String)
    )
)]
#[post("/email/stop")]
pub async fn email_stop(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    q: web::Query<StopQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = q.into_inner().t.unwrap_or_default();
    // Only links that fail their signature count against the per-address limit: mail
    // providers send many genuine one-click requests from few addresses, and a patient's
    // "stop" must never be refused for someone else's traffic.
    if state.composer.links.verify(&token, state.now()).is_err() {
        if !state.public_limiter.allow(req.peer_addr().map(|a| a.ip())) {
            return stop_page(&state, StatusCode::TOO_MANY_REQUESTS, "busy", "");
        }
        return stop_page(&state, StatusCode::BAD_REQUEST, "invalid", "");
    }
    let (composer, now) = (state.composer.clone(), state.now());
    let outcome = state
        .db(move |conn| clinic_reminders::links::stop_emails(conn, &composer.links, &token, now))
        .await?;
    match outcome {
        Ok(_) => stop_page(&state, StatusCode::OK, "done", ""),
        Err(_) => stop_page(&state, StatusCode::BAD_REQUEST, "invalid", ""),
    }
}
