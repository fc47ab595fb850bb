//! Providers, their hours and time off, clinic closures, appointment types, and calendar
//! feeds. Everything here needs `scheduling:write`, except the feed itself, which is
//! authorised by its own revocable feed token.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc, Weekday};
use clinic_domain::ids::{FeedTokenId, ProviderId, TimeOffId};
use clinic_domain::scheduling::{self, Span, WorkingInterval};
use clinic_domain::time::ClinicZone;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_scheduling::closures::{self, Closure};
use clinic_scheduling::feeds::{self, FeedToken};
use clinic_scheduling::providers::{self as repo, Provider, ProviderChanges, ProviderFields, TimeOff};
use clinic_scheduling::types::{self, AppointmentType, TypeChanges};
use clinic_scheduling::{appointments, ical};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody, QueryParams};
use crate::fields::{nullable, parse_required};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_providers)
        .service(create_provider)
        .service(get_provider)
        .service(update_provider)
        .service(list_time_off)
        .service(create_time_off)
        .service(delete_time_off)
        .service(list_closures)
        .service(create_closure)
        .service(delete_closure)
        .service(list_appointment_types)
        .service(update_appointment_type)
        .service(create_feed_token)
        .service(list_feed_tokens)
        .service(revoke_feed_token)
        .service(get_provider_calendar);
}

#[derive(Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct HoursDto {
    /// monday … sunday
    #[schema(example = "monday", value_type = WeekdayName)]
    pub weekday: String,
    /// Wall time on the provider's clock, `HH:MM` on a 5-minute grid.
    #[schema(example = "09:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][05]$")]
    pub start: String,
    /// After `start`, on the same grid.
    #[schema(example = "12:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][05]$")]
    pub end: String,
}

/// A day of the week, as `HoursDto.weekday` takes it (the field is read as text so that a
/// wrong day is a 422 naming it, not a parse error).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum WeekdayName {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Mon),
    ("tuesday", Weekday::Tue),
    ("wednesday", Weekday::Wed),
    ("thursday", Weekday::Thu),
    ("friday", Weekday::Fri),
    ("saturday", Weekday::Sat),
    ("sunday", Weekday::Sun),
];

fn weekday_name(d: Weekday) -> String {
    WEEKDAYS
        .iter()
        .find(|(_, w)| *w == d)
        .map(|(n, _)| (*n).to_owned())
        .unwrap_or_default()
}

fn parse_hours(e: &mut ValidationErrors, hours: &[HoursDto]) -> Option<Vec<WorkingInterval>> {
    let before = e.errors().len();
    let mut out = Vec::new();
    for (i, h) in hours.iter().enumerate() {
        let weekday = WEEKDAYS
            .iter()
            .find(|(n, _)| *n == h.weekday.to_lowercase())
            .map(|(_, w)| *w);
        if weekday.is_none() {
            e.push(FieldError::new(
                format!("hours[{i}].weekday"),
                "invalid_weekday",
                "expected monday … sunday",
            ));
        }
        let start = e.check(
            &format!("hours[{i}].start"),
            scheduling::parse_wall_time(&h.start, "start"),
        );
        let end = e.check(&format!("hours[{i}].end"), scheduling::parse_wall_time(&h.end, "end"));
        if let (Some(weekday), Some(start), Some(end)) = (weekday, start, end) {
            out.push(WorkingInterval { weekday, start, end });
        }
    }
    if e.errors().len() > before {
        return None;
    }
    if let Err(v) = scheduling::check_weekly_hours(&out) {
        v.into_errors().into_iter().for_each(|x| e.push(x));
        return None;
    }
    Some(out)
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11", "name": "Dr. Ana Ruiz", "role": "pain physician", "active": true,
    "time_zone": "America/Chicago",
    "hours": [
        {"weekday": "monday", "start": "09:00", "end": "12:00"},
        {"weekday": "monday", "start": "13:00", "end": "17:00"},
        {"weekday": "friday", "start": "09:00", "end": "13:00"}
    ],
    "version": 1, "created_at": "2027-01-04T15:00:00Z", "updated_at": "2027-01-04T15:00:00Z"
}))]
pub struct ProviderResponse {
    pub id: String,
    #[schema(example = "Dr. Ana Ruiz")]
    pub name: String,
    #[schema(example = "pain physician")]
    pub role: String,
    pub active: bool,
    /// IANA zone of the provider's wall clock.
    #[schema(example = "America/Chicago")]
    pub time_zone: String,
    /// Weekly working intervals; gaps are breaks.
    pub hours: Vec<HoursDto>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Provider> for ProviderResponse {
    fn from(p: Provider) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            role: p.role,
            active: p.active,
            time_zone: p.time_zone.name().to_owned(),
            hours: p
                .hours
                .iter()
                .map(|h| HoursDto {
                    weekday: weekday_name(h.weekday),
                    start: h.start.format("%H:%M").to_string(),
                    end: h.end.format("%H:%M").to_string(),
                })
                .collect(),
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    pub items: Vec<ProviderResponse>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProvidersQuery {
    /// Include inactive providers (default false).
    pub include_inactive: Option<bool>,
}

fn text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let t = value.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "invalid_length",
            format!("{field} must be 1 to {max} printable characters"),
        ));
    }
    Ok(t.to_owned())
}

/// List providers by name.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(ProvidersQuery), responses((status = 200, body = ProviderList)))]
#[get("/providers")]
pub async fn list_providers(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::SchedulingWrite>,
    query: QueryParams<ProvidersQuery>,
) -> Result<web::Json<ProviderList>, ApiError> {
    let all = query.into_inner()?.include_inactive.unwrap_or(false);
    let list = state.db(move |conn| repo::list(conn, all)).await?;
    Ok(web::Json(ProviderList {
        items: list.into_iter().map(ProviderResponse::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Dr. Ana Ruiz", "role": "pain physician", "time_zone": "America/Chicago",
    "hours": [{"weekday": "monday", "start": "09:00", "end": "12:00"}, {"weekday": "monday", "start": "13:00", "end": "17:00"}]
}))]
pub struct CreateProviderRequest {
    #[schema(min_length = 1, max_length = 120, format = "text-line")]
    pub name: String,
    #[schema(min_length = 1, max_length = 80, format = "text-line")]
    pub role: String,
    /// Defaults to the clinic's zone.
    #[schema(value_type = Option<crate::openapi::TimeZoneName>)]
    pub time_zone: Option<String>,
    /// Weekly hours; none when omitted.
    #[serde(default)]
    #[schema(required = false)]
    pub hours: Vec<HoursDto>,
}

/// Add a provider with weekly hours.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), request_body = CreateProviderRequest, responses((status = 201, body = ProviderResponse)))]
#[post("/providers")]
pub async fn create_provider(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    body: JsonBody<CreateProviderRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let name = e.check("name", text("name", &b.name, 120));
    let role = e.check("role", text("role", &b.role, 80));
    let zone = match &b.time_zone {
        Some(z) => e.check("time_zone", ClinicZone::parse(z)),
        None => Some(state.clinic.time_zone),
    };
    let hours = parse_hours(&mut e, &b.hours);
    let (Some(name), Some(role), Some(time_zone), Some(hours)) = (name, role, zone, hours) else {
        return Err(e.into());
    };
    let now = state.now();
    let fields = ProviderFields {
        name,
        role,
        time_zone,
        hours,
    };
    let p = state
        .db_change(
            auth.actor,
            "provider.create",
            "provider",
            |p: &Provider| p.id.to_string(),
            move |conn| repo::create(conn, fields, now),
        )
        .await?;
    state.availability.clear();
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/providers/{}", p.id)))
        .json(ProviderResponse::from(p)))
}

/// Read a provider.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Provider id")), responses((status = 200, body = ProviderResponse)))]
#[get("/providers/{id}")]
pub async fn get_provider(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<ProviderResponse>, ApiError> {
    let id: ProviderId = super::path_id(&id, "provider")?;
    Ok(web::Json(state.db(move |conn| repo::get(conn, id)).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "hours": [{"weekday": "tuesday", "start": "08:00", "end": "16:00"}]}))]
pub struct UpdateProviderRequest {
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 120, format = "text-line")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 80, format = "text-line")]
    pub role: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    pub active: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = crate::openapi::TimeZoneName, required = false)]
    pub time_zone: Option<Option<String>>,
    /// Replaces the whole week (`[]` for none).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Vec<HoursDto>, required = false)]
    pub hours: Option<Option<Vec<HoursDto>>>,
}

/// Change a provider (send the `version` you read). `hours` replaces the whole week;
/// `active: false` stops new bookings.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(("id" = String, Path, description = "Provider id")),
    request_body = UpdateProviderRequest,
    responses((status = 200, body = ProviderResponse), (status = 409, description = "Stale `version`", body = Problem, content_type = "application/problem+json"))
)]
#[patch("/providers/{id}")]
pub async fn update_provider(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
    body: JsonBody<UpdateProviderRequest>,
) -> Result<web::Json<ProviderResponse>, ApiError> {
    let id: ProviderId = super::path_id(&id, "provider")?;
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let hours = match b.hours {
        None => None,
        Some(None) => {
            e.push(FieldError::new(
                "hours",
                "not_nullable",
                "hours cannot be null; send [] for none",
            ));
            None
        }
        Some(Some(h)) => parse_hours(&mut e, &h),
    };
    let changes = ProviderChanges {
        name: parse_required(&mut e, "name", b.name, |v| text("name", &v, 120)),
        role: parse_required(&mut e, "role", b.role, |v| text("role", &v, 80)),
        active: parse_required(&mut e, "active", b.active, Ok),
        time_zone: parse_required(&mut e, "time_zone", b.time_zone, |v| ClinicZone::parse(&v)),
        hours,
    };
    e.finish()?;
    let (version, now) = (b.version, state.now());
    let changed = state
        .db_change(
            auth.actor,
            "provider.update",
            "provider",
            move |_| id.to_string(),
            move |conn| repo::update(conn, id, version, changes, now),
        )
        .await?;
    state.availability.clear();
    Ok(web::Json(changed.into()))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e18", "provider_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11",
    "starts_at": "2027-02-01T06:00:00Z", "ends_at": "2027-02-06T06:00:00Z", "reason": "conference"
}))]
pub struct TimeOffResponse {
    pub id: String,
    pub provider_id: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: Option<String>,
}

impl From<TimeOff> for TimeOffResponse {
    fn from(t: TimeOff) -> Self {
        Self {
            id: t.id.to_string(),
            provider_id: t.provider_id.to_string(),
            starts_at: t.span.start,
            ends_at: t.span.end,
            reason: t.reason,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TimeOffList {
    pub items: Vec<TimeOffResponse>,
}

/// A provider's time off, by start.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Provider id")), responses((status = 200, body = TimeOffList)))]
#[get("/providers/{id}/time-off")]
pub async fn list_time_off(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<TimeOffList>, ApiError> {
    let id: ProviderId = super::path_id(&id, "provider")?;
    let list = state
        .db(move |conn| {
            repo::get(conn, id)?;
            repo::time_off(conn, id, None)
        })
        .await?;
    Ok(web::Json(TimeOffList {
        items: list.into_iter().map(TimeOffResponse::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"starts_at": "2027-02-01T00:00:00-06:00", "ends_at": "2027-02-06T00:00:00-06:00", "reason": "conference"}))]
pub struct CreateTimeOffRequest {
    /// RFC 3339 with an offset.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Add time off for a provider (existing appointments stay; new bookings avoid it).
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Provider id")), request_body = CreateTimeOffRequest, responses((status = 201, body = TimeOffResponse)))]
#[post("/providers/{id}/time-off")]
pub async fn create_time_off(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
    body: JsonBody<CreateTimeOffRequest>,
) -> Result<HttpResponse, ApiError> {
    let id: ProviderId = super::path_id(&id, "provider")?;
    let b = body.into_inner()?;
    if b.ends_at <= b.starts_at {
        return Err(ApiError::field(
            "ends_at",
            "end_before_start",
            "time off must end after it starts",
        ));
    }
    let reason = b
        .reason
        .map(|r| r.trim().chars().take(200).collect::<String>())
        .filter(|r| !r.is_empty());
    let now = state.now();
    let span = Span::new(b.starts_at, b.ends_at);
    let t = state
        .db_change(
            auth.actor,
            "provider.time_off_add",
            "provider",
            move |_| id.to_string(),
            move |conn| repo::add_time_off(conn, id, span, reason, now),
        )
        .await?;
    state.availability.clear();
    Ok(HttpResponse::Created().json(TimeOffResponse::from(t)))
}

/// Remove time off.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(
        ("id" = String, Path, description = "Provider id", example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11"),
        ("time_off_id" = String, Path, description = "Time off id", example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e18")
    ),
    responses((status = 204, description = "Removed"))
)]
#[delete("/providers/{id}/time-off/{time_off_id}")]
pub async fn delete_time_off(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, t) = path.into_inner();
    let id: ProviderId = super::path_id(&id, "provider")?;
    let t: TimeOffId = super::path_id(&t, "time off")?;
    state
        .db_change(
            auth.actor,
            "provider.time_off_remove",
            "provider",
            move |_| id.to_string(),
            move |conn| repo::delete_time_off(conn, id, t),
        )
        .await?;
    state.availability.clear();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"date": "2027-12-25", "name": "Christmas Day"}))]
pub struct ClosureDto {
    /// A date on the clinic's calendar.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    #[schema(min_length = 1, max_length = 120, format = "text-line")]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct ClosureList {
    pub items: Vec<ClosureDto>,
}

/// Days the whole clinic is closed.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), responses((status = 200, body = ClosureList)))]
#[get("/closures")]
pub async fn list_closures(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::SchedulingWrite>,
) -> Result<web::Json<ClosureList>, ApiError> {
    let list = state.db(|conn| closures::list(conn, None)).await?;
    Ok(web::Json(ClosureList {
        items: list
            .into_iter()
            .map(|c| ClosureDto {
                date: c.date,
                name: c.name,
            })
            .collect(),
    }))
}

/// Close the clinic on a date: no provider can be booked that day.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    request_body = ClosureDto,
    responses((status = 201, body = ClosureDto), (status = 409, description = "Already closed", body = Problem, content_type = "application/problem+json"))
)]
#[post("/closures")]
pub async fn create_closure(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    body: JsonBody<ClosureDto>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner()?;
    let name = text("name", &b.name, 120).map_err(ValidationErrors::from)?;
    let now = state.now();
    let c = state
        .db_change(
            auth.actor,
            "closure.create",
            "closure",
            |c: &Closure| c.date.to_string(),
            move |conn| closures::add(conn, Closure { date: b.date, name }, now),
        )
        .await?;
    state.availability.clear();
    Ok(HttpResponse::Created().json(ClosureDto {
        date: c.date,
        name: c.name,
    }))
}

/// Reopen a closed date.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("date" = String, Path, description = "ISO date", example = "2027-12-25")), responses((status = 204, description = "Removed")))]
#[delete("/closures/{date}")]
pub async fn delete_closure(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    date: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| ApiError::NotFound("closure"))?;
    state
        .db_change(
            auth.actor,
            "closure.delete",
            "closure",
            move |_| date.to_string(),
            move |conn| closures::delete(conn, date),
        )
        .await?;
    state.availability.clear();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "code": "refill", "name": "Refill", "duration_minutes": 30, "buffer_before_minutes": 0,
    "buffer_after_minutes": 10, "min_notice_minutes": 60, "horizon_days": 180,
    "publicly_requestable": false, "active": true, "version": 1
}))]
pub struct AppointmentTypeResponse {
    pub code: String,
    pub name: String,
    pub duration_minutes: i64,
    pub buffer_before_minutes: i64,
    pub buffer_after_minutes: i64,
    /// How long before its start an appointment may be booked at the latest.
    pub min_notice_minutes: i64,
    /// How far ahead it may be booked.
    #[schema(minimum = 1, maximum = 730)]
    pub horizon_days: i64,
    /// Whether patients may ask for it through the public request form.
    pub publicly_requestable: bool,
    pub active: bool,
    pub version: i64,
}

impl From<AppointmentType> for AppointmentTypeResponse {
    fn from(t: AppointmentType) -> Self {
        Self {
            code: t.code,
            name: t.name,
            duration_minutes: t.duration_minutes,
            buffer_before_minutes: t.buffer_before_minutes,
            buffer_after_minutes: t.buffer_after_minutes,
            min_notice_minutes: t.min_notice_minutes,
            horizon_days: t.horizon_days,
            publicly_requestable: t.publicly_requestable,
            active: t.active,
            version: t.version,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AppointmentTypeList {
    pub items: Vec<AppointmentTypeResponse>,
}

/// Appointment types, in the clinic's order.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), responses((status = 200, body = AppointmentTypeList)))]
#[get("/appointment-types")]
pub async fn list_appointment_types(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::SchedulingWrite>,
) -> Result<web::Json<AppointmentTypeList>, ApiError> {
    let list = state.db(types::list).await?;
    Ok(web::Json(AppointmentTypeList {
        items: list.into_iter().map(AppointmentTypeResponse::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "duration_minutes": 45, "buffer_after_minutes": 15}))]
pub struct UpdateAppointmentTypeRequest {
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 80, format = "text-line")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, required = false, minimum = 5, maximum = 1440)]
    pub duration_minutes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, required = false, minimum = 0, maximum = 240)]
    pub buffer_before_minutes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, required = false, minimum = 0, maximum = 240)]
    pub buffer_after_minutes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, required = false, minimum = 0, maximum = 86400)]
    pub min_notice_minutes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, required = false, minimum = 1, maximum = 730)]
    pub horizon_days: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    pub publicly_requestable: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    pub active: Option<Option<bool>>,
}

fn in_range(e: &mut ValidationErrors, field: &str, v: Option<i64>, min: i64, max: i64) -> Option<i64> {
    match v {
        Some(n) if !(min..=max).contains(&n) => {
            e.push(FieldError::new(
                field,
                "out_of_range",
                format!("{field} must be between {min} and {max}"),
            ));
            None
        }
        other => other,
    }
}

/// Change an appointment type (existing appointments keep their times).
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(("code" = String, Path, description = "Type code")),
    request_body = UpdateAppointmentTypeRequest,
    responses((status = 200, body = AppointmentTypeResponse), (status = 409, description = "Stale `version`", body = Problem, content_type = "application/problem+json"))
)]
#[patch("/appointment-types/{code}")]
pub async fn update_appointment_type(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    code: web::Path<String>,
    body: JsonBody<UpdateAppointmentTypeRequest>,
) -> Result<web::Json<AppointmentTypeResponse>, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    // `null` cannot clear any of these: refused, like every other PATCH.
    let duration = parse_required(&mut e, "duration_minutes", b.duration_minutes, Ok);
    let before = parse_required(&mut e, "buffer_before_minutes", b.buffer_before_minutes, Ok);
    let after = parse_required(&mut e, "buffer_after_minutes", b.buffer_after_minutes, Ok);
    let notice = parse_required(&mut e, "min_notice_minutes", b.min_notice_minutes, Ok);
    let horizon = parse_required(&mut e, "horizon_days", b.horizon_days, Ok);
    let changes = TypeChanges {
        name: parse_required(&mut e, "name", b.name, |n| text("name", &n, 80)),
        duration_minutes: in_range(&mut e, "duration_minutes", duration, 5, 24 * 60),
        buffer_before_minutes: in_range(&mut e, "buffer_before_minutes", before, 0, 240),
        buffer_after_minutes: in_range(&mut e, "buffer_after_minutes", after, 0, 240),
        min_notice_minutes: in_range(&mut e, "min_notice_minutes", notice, 0, 60 * 24 * 60),
        horizon_days: in_range(&mut e, "horizon_days", horizon, 1, 730),
        publicly_requestable: parse_required(&mut e, "publicly_requestable", b.publicly_requestable, Ok),
        active: parse_required(&mut e, "active", b.active, Ok),
    };
    e.finish()?;
    let (code, version, now) = (code.into_inner(), b.version, state.now());
    let changed = state
        .db_change(
            auth.actor,
            "appointment_type.update",
            "appointment_type",
            |t: &AppointmentType| t.code.clone(),
            move |conn| types::update(conn, &code, version, changes, now),
        )
        .await?;
    state.availability.clear();
    Ok(web::Json(changed.into()))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e19", "provider_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11",
    "created_at": "2027-01-04T15:10:00Z", "revoked_at": null
}))]
pub struct FeedTokenResponse {
    pub id: String,
    pub provider_id: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedFeedToken {
    #[serde(flatten)]
    pub token: FeedTokenResponse,
    /// The subscription URL path (append it to the server's base URL). Shown once.
    #[schema(example = "/api/v1/providers/0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10/calendar.ics?token=feed_…")]
    pub feed_path: String,
}

fn feed_response(t: feeds::FeedToken) -> FeedTokenResponse {
    FeedTokenResponse {
        id: t.id.to_string(),
        provider_id: t.provider_id.to_string(),
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

/// Make a calendar-feed token for a provider; the response holds the subscription path.
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Provider id")), responses((status = 201, body = CreatedFeedToken)))]
#[post("/providers/{id}/feed-tokens")]
pub async fn create_feed_token(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ProviderId = super::path_id(&id, "provider")?;
    let now = state.now();
    let (token, secret) = state
        .db_change(
            auth.actor,
            "feed_token.create",
            "feed_token",
            |(t, _): &(FeedToken, String)| t.id.to_string(),
            move |conn| feeds::create(conn, id, now),
        )
        .await?;
    Ok(HttpResponse::Created().json(CreatedFeedToken {
        feed_path: format!("/api/v1/providers/{id}/calendar.ics?token={secret}"),
        token: feed_response(token),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct FeedTokenList {
    pub items: Vec<FeedTokenResponse>,
}

/// A provider's feed tokens (never their secrets).
#[utoipa::path(tag = "scheduling", security(("bearer" = ["scheduling:write"])), params(("id" = String, Path, description = "Provider id")), responses((status = 200, body = FeedTokenList)))]
#[get("/providers/{id}/feed-tokens")]
pub async fn list_feed_tokens(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<FeedTokenList>, ApiError> {
    let id: ProviderId = super::path_id(&id, "provider")?;
    let list = state.db(move |conn| feeds::list(conn, id)).await?;
    Ok(web::Json(FeedTokenList {
        items: list.into_iter().map(feed_response).collect(),
    }))
}

/// Revoke a feed token: the subscription stops at once.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(
        ("id" = String, Path, description = "Provider id", example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11"),
        ("token_id" = String, Path, description = "Feed token id", example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e19")
    ),
    responses((status = 204, description = "Revoked"))
)]
#[delete("/providers/{id}/feed-tokens/{token_id}")]
pub async fn revoke_feed_token(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, t) = path.into_inner();
    let id: ProviderId = super::path_id(&id, "provider")?;
    let t: FeedTokenId = super::path_id(&t, "feed token")?;
    let now = state.now();
    state
        .db_change(
            auth.actor,
            "feed_token.revoke",
            "feed_token",
            move |_| t.to_string(),
            move |conn| feeds::revoke(conn, id, t, now),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The feed token (`feed_…`).
    pub token: String,
}

/// A provider's upcoming appointments as a subscribable iCalendar feed, authorised by a
/// feed token in the URL (calendar apps cannot send headers). No patient names.
#[utoipa::path(
    tag = "scheduling",
    security(()),
    params(("id" = String, Path, description = "Provider id"), FeedQuery),
    responses((status = 200, description = "iCalendar", content_type = "text/calendar", body = String,
        example = "BEGIN:VCALENDAR\r\n\
        VERSION:2.0\r\n\
        PRODID:-//Clinic Platform//Clinic Platform 0.1.0//EN\r\n\
        CALSCALE:GREGORIAN\r\n\
        METHOD:PUBLISH\r\n\
        NAME:Dr. Ana Ruiz · Lakeside Pain Clinic\r\n\
        X-WR-CALNAME:Dr. Ana Ruiz · Lakeside Pain Clinic\r\n\
        BEGIN:VEVENT\r\n\
        DESCRIPTION:\r\n\
        DTEND:20270315T143000Z\r\n\
        DTSTAMP:20270308T120000Z\r\n\
        DTSTART:20270315T140000Z\r\n\
        LOCATION:1200 W Harrison St\\, Chicago\\, IL 60607\r\n\
        SEQUENCE:0\r\n\
        STATUS:CONFIRMED\r\n\
        SUMMARY:Refill\r\n\
        UID:0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e12@clinic-platform\r\n\
        END:VEVENT\r\n\
        END:VCALENDAR\r\n"))
)]
#[get("/providers/{id}/calendar.ics")]
pub async fn get_provider_calendar(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: QueryParams<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let id: ProviderId = super::path_id(&id, "provider")?;
    // A missing or malformed feed token names no calendar, like a wrong one: 404 (no bearer
    // token is involved, so 401 would mislead).
    let token = query.into_inner().map_err(|_| ApiError::NotFound("calendar"))?.token;
    let now = state.now();
    let contact = crate::routes::appointments::contact(&state);
    let (name, list) = state
        .db(move |conn| {
            if !feeds::allows(conn, id, &token)? {
                return Err(clinic_scheduling::SchedulingError::NotFound("calendar"));
            }
            let p = repo::get(conn, id)?;
            Ok((
                p.name,
                appointments::upcoming_for_provider(conn, id, now - chrono::Duration::days(1), 1000)?,
            ))
        })
        .await?;
    let live: Vec<_> = list.into_iter().filter(|a| a.status.is_live()).collect();
    Ok(HttpResponse::Ok()
        .content_type("text/calendar; charset=utf-8")
        .body(ical::provider_feed(&name, &live, &contact, now)))
}
