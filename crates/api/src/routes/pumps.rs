//! Pumps: catalogues (`pumps:read` to read, `pumps:write` to edit), the forecast policy,
//! each patient's pumps, fills, dose programmes, the stored forecast with its explanation,
//! the refill worklist and suggested refill slots. Every read and write of a pump is audited
//! against its patient.

use actix_web::{get, patch, post, put, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use clinic_domain::forecast::{self, Binding, Delivery, MassUnit, Programme};
use clinic_domain::ids::PatientId;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_pumps::catalog::{self, Drug, DrugChanges, PumpModel};
use clinic_pumps::registry::{
    self as repo, Fill, NewFill, NewProgramme, NewPump, ProgramRow, Pump, PumpChanges, StoredForecast,
};
use clinic_pumps::worklist;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody, QueryParams};
use crate::fields::{decimal_input, nullable, opt_decimal_input, parse_required, DecimalInput};
use crate::pagination::{self, Page};
use crate::problem::{ApiError, Problem};
use crate::routes::appointments::AppointmentResponse;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_pump_models)
        .service(create_pump_model)
        .service(update_pump_model)
        .service(list_drugs)
        .service(create_drug)
        .service(update_drug)
        .service(get_forecast_policy)
        .service(update_forecast_policy)
        .service(create_pump)
        .service(list_pumps)
        .service(get_pump)
        .service(update_pump)
        .service(list_patient_pumps)
        .service(create_fill)
        .service(list_fills)
        .service(create_program)
        .service(list_programs)
        .service(get_pump_forecast)
        .service(get_pump_forecast_svg)
        .service(list_refill_worklist)
        .service(list_refill_slots);
}

/// How a programme delivers (the request field is read as text so that a wrong kind is a
/// 422 naming it).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ProgrammeKind {
    Continuous,
    Flex,
}

// ---- catalogues -----------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "code": "synchromed-ii-40", "manufacturer": "Medtronic", "model": "SynchroMed II 8637-40", "reservoir_ml": "40",
    "default_alarm_ml": "2", "service_life_months": 60,
    "source": "intrathecal.md §2: 40 mL reservoir, LRA programmable with 2 mL recommended, 5–7 years, stops 90 days after ERI (manufacturer labelling)",
    "version": 1
}))]
pub struct PumpModelResponse {
    #[schema(example = "synchromed-ii-40")]
    pub code: String,
    pub manufacturer: String,
    pub model: String,
    #[schema(value_type = String, example = "40")]
    pub reservoir_ml: Decimal,
    #[schema(value_type = String, example = "2")]
    pub default_alarm_ml: Decimal,
    #[schema(minimum = 1, maximum = 240)]
    pub service_life_months: u32,
    /// Where the defaults come from.
    pub source: String,
    pub version: i64,
}

impl From<PumpModel> for PumpModelResponse {
    fn from(m: PumpModel) -> Self {
        Self {
            version: m.version,
            code: m.code,
            manufacturer: m.manufacturer,
            model: m.model,
            reservoir_ml: m.reservoir_ml,
            default_alarm_ml: m.default_alarm_ml,
            service_life_months: m.service_life_months,
            source: m.source,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PumpModelList {
    pub items: Vec<PumpModelResponse>,
}

/// Pump models with their reservoir, default alarm volume and service life.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), responses((status = 200, body = PumpModelList)))]
#[get("/pump-models")]
pub async fn list_pump_models(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::PumpsRead>,
) -> Result<web::Json<PumpModelList>, ApiError> {
    let list = state.db(catalog::models).await?;
    Ok(web::Json(PumpModelList {
        items: list.into_iter().map(PumpModelResponse::from).collect(),
    }))
}

/// A catalogue code: lower-case letters, digits and hyphens, 1–60 characters.
fn catalogue_code(e: &mut ValidationErrors, v: &str) -> Option<String> {
    let ok = !v.is_empty()
        && v.len() <= 60
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        e.push(FieldError::new(
            "code",
            "invalid_code",
            "1 to 60 characters of a-z, 0-9 and -",
        ));
        return None;
    }
    Some(v.to_owned())
}

fn catalogue_text(e: &mut ValidationErrors, field: &str, v: &str, max: usize) -> Option<String> {
    let t = v.trim();
    if t.is_empty() || t.chars().count() > max {
        e.push(FieldError::new(
            field,
            "invalid_length",
            format!("1 to {max} characters"),
        ));
        return None;
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        e.push(FieldError::new(
            field,
            "invalid_characters",
            format!("{field} contains control characters"),
        ));
        return None;
    }
    Some(t.to_owned())
}

fn stability_days(e: &mut ValidationErrors, field: &str, v: Option<u32>) -> Option<u32> {
    if v.is_some_and(|d| !(1..=3650).contains(&d)) {
        e.push(FieldError::new(field, "out_of_range", "stability is 1 to 3650 days"));
    }
    v
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "code": "acme-flow-30", "manufacturer": "Acme", "model": "Flow 30", "reservoir_ml": "30",
    "default_alarm_ml": "2.5", "service_life_months": 84, "source": "Acme labelling rev. 3"
}))]
pub struct CreatePumpModelRequest {
    /// Lower-case letters, digits and `-`.
    #[schema(pattern = "^[a-z0-9-]{1,60}$")]
    pub code: String,
    #[schema(min_length = 1, max_length = 80)]
    pub manufacturer: String,
    #[schema(min_length = 1, max_length = 80)]
    pub model: String,
    #[schema(value_type = DecimalInput)]
    #[serde(deserialize_with = "decimal_input")]
    pub reservoir_ml: Decimal,
    #[schema(value_type = DecimalInput)]
    #[serde(deserialize_with = "decimal_input")]
    pub default_alarm_ml: Decimal,
    #[schema(minimum = 1, maximum = 240)]
    pub service_life_months: u32,
    /// Where the values come from.
    #[schema(min_length = 1, max_length = 500)]
    pub source: String,
}

/// Add a pump model to the catalogue.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    request_body = CreatePumpModelRequest,
    responses((status = 201, body = PumpModelResponse), (status = 409, description = "The code exists (`code_taken`)", body = Problem, content_type = "application/problem+json"))
)]
#[post("/pump-models")]
pub async fn create_pump_model(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    body: JsonBody<CreatePumpModelRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let code = catalogue_code(&mut e, &b.code);
    let manufacturer = catalogue_text(&mut e, "manufacturer", &b.manufacturer, 80);
    let model = catalogue_text(&mut e, "model", &b.model, 80);
    let source = catalogue_text(&mut e, "source", &b.source, 500);
    if b.reservoir_ml <= Decimal::ZERO || b.reservoir_ml > Decimal::from(100) {
        e.push(FieldError::new(
            "reservoir_ml",
            "out_of_range",
            "the reservoir is above 0 and at most 100 mL",
        ));
    }
    if b.default_alarm_ml <= Decimal::ZERO || b.default_alarm_ml >= b.reservoir_ml {
        e.push(FieldError::new(
            "default_alarm_ml",
            "out_of_range",
            "the alarm volume must be above 0 and below the reservoir",
        ));
    }
    if !(1..=240).contains(&b.service_life_months) {
        e.push(FieldError::new(
            "service_life_months",
            "out_of_range",
            "1 to 240 months",
        ));
    }
    let (Some(code), Some(manufacturer), Some(model), Some(source)) = (code, manufacturer, model, source) else {
        return Err(e.into());
    };
    e.finish()?;
    let new = catalog::NewModel {
        code,
        manufacturer,
        model,
        reservoir_ml: b.reservoir_ml,
        default_alarm_ml: b.default_alarm_ml,
        service_life_months: b.service_life_months,
        source,
    };
    let now = state.now();
    let m = state
        .db(move |conn| catalog::create_model(conn, &auth.actor, new, now))
        .await?;
    Ok(HttpResponse::Created().json(PumpModelResponse::from(m)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "service_life_months": 72, "source": "Clinic policy 2027"}))]
pub struct UpdatePumpModelRequest {
    #[schema(minimum = 1)]
    pub version: i64,
    #[schema(min_length = 1, max_length = 80)]
    pub manufacturer: Option<String>,
    #[schema(min_length = 1, max_length = 80)]
    pub model: Option<String>,
    #[schema(value_type = Option<DecimalInput>)]
    #[serde(default, deserialize_with = "opt_decimal_input")]
    pub default_alarm_ml: Option<Decimal>,
    #[schema(minimum = 1, maximum = 240)]
    pub service_life_months: Option<u32>,
    #[schema(min_length = 1, max_length = 500)]
    pub source: Option<String>,
}

/// Edit a pump model. Pumps registered later use the new defaults; registered pumps keep
/// theirs (edit the pump's alarm volume on the pump).
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    params(("code" = String, Path, description = "Model code")),
    request_body = UpdatePumpModelRequest,
    responses((status = 200, body = PumpModelResponse), (status = 409, description = "Stale `version`", body = Problem, content_type = "application/problem+json"))
)]
#[patch("/pump-models/{code}")]
pub async fn update_pump_model(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    code: web::Path<String>,
    body: JsonBody<UpdatePumpModelRequest>,
) -> Result<web::Json<PumpModelResponse>, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let changes = catalog::ModelChanges {
        manufacturer: b
            .manufacturer
            .as_deref()
            .and_then(|v| catalogue_text(&mut e, "manufacturer", v, 80)),
        model: b.model.as_deref().and_then(|v| catalogue_text(&mut e, "model", v, 80)),
        default_alarm_ml: b.default_alarm_ml,
        service_life_months: b.service_life_months,
        source: b
            .source
            .as_deref()
            .and_then(|v| catalogue_text(&mut e, "source", v, 500)),
    };
    if b.service_life_months.is_some_and(|m| !(1..=240).contains(&m)) {
        e.push(FieldError::new(
            "service_life_months",
            "out_of_range",
            "1 to 240 months",
        ));
    }
    e.finish()?;
    let (code, version, now) = (code.into_inner(), b.version, state.now());
    Ok(web::Json(
        state
            .db(move |conn| catalog::update_model(conn, &auth.actor, &code, version, changes, now))
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "code": "baclofen", "name": "Baclofen", "unit": "mcg", "stability_undiluted_days": 180,
    "stability_diluted_days": null, "stability_first_fill_days": null, "source": "intrathecal.md §3: baclofen 180 days",
    "version": 1
}))]
pub struct DrugResponse {
    #[schema(example = "baclofen")]
    pub code: String,
    pub name: String,
    /// Mass unit of doses; concentrations are per mL of it.
    pub unit: MassUnit,
    /// Days the drug stays stable in the pump; null when unknown (then it cannot be filled).
    #[schema(minimum = 1, maximum = 3650)]
    pub stability_undiluted_days: Option<u32>,
    #[schema(minimum = 1, maximum = 3650)]
    pub stability_diluted_days: Option<u32>,
    #[schema(minimum = 1, maximum = 3650)]
    pub stability_first_fill_days: Option<u32>,
    pub source: String,
    pub version: i64,
}

impl From<Drug> for DrugResponse {
    fn from(d: Drug) -> Self {
        Self {
            code: d.code,
            name: d.name,
            unit: d.unit,
            stability_undiluted_days: d.stability_undiluted_days,
            stability_diluted_days: d.stability_diluted_days,
            stability_first_fill_days: d.stability_first_fill_days,
            source: d.source,
            version: d.version,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DrugList {
    pub items: Vec<DrugResponse>,
}

/// Drugs and admixtures with their units and stability limits.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), responses((status = 200, body = DrugList)))]
#[get("/drugs")]
pub async fn list_drugs(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::PumpsRead>,
) -> Result<web::Json<DrugList>, ApiError> {
    let list = state.db(catalog::drugs).await?;
    Ok(web::Json(DrugList {
        items: list.into_iter().map(DrugResponse::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "clonidine", "name": "Clonidine", "unit": "mcg", "stability_undiluted_days": 90, "source": "Pharmacy protocol 2027-02"}))]
pub struct CreateDrugRequest {
    /// Lower-case letters, digits and `-`.
    #[schema(pattern = "^[a-z0-9-]{1,60}$")]
    pub code: String,
    #[schema(min_length = 1, max_length = 120)]
    pub name: String,
    pub unit: MassUnit,
    #[schema(minimum = 1, maximum = 3650)]
    pub stability_undiluted_days: Option<u32>,
    #[schema(minimum = 1, maximum = 3650)]
    pub stability_diluted_days: Option<u32>,
    #[schema(minimum = 1, maximum = 3650)]
    pub stability_first_fill_days: Option<u32>,
    /// Where the limits come from.
    #[schema(min_length = 1, max_length = 500)]
    pub source: String,
}

/// Add a drug or admixture. Without a stability limit it cannot be used in a fill.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    request_body = CreateDrugRequest,
    responses((status = 201, body = DrugResponse), (status = 409, description = "The code exists (`code_taken`)", body = Problem, content_type = "application/problem+json"))
)]
#[post("/drugs")]
pub async fn create_drug(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    body: JsonBody<CreateDrugRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let code = catalogue_code(&mut e, &b.code);
    let name = catalogue_text(&mut e, "name", &b.name, 120);
    let source = catalogue_text(&mut e, "source", &b.source, 500);
    let new = catalog::NewDrug {
        code: code.unwrap_or_default(),
        name: name.unwrap_or_default(),
        unit: b.unit,
        stability_undiluted_days: stability_days(&mut e, "stability_undiluted_days", b.stability_undiluted_days),
        stability_diluted_days: stability_days(&mut e, "stability_diluted_days", b.stability_diluted_days),
        stability_first_fill_days: stability_days(&mut e, "stability_first_fill_days", b.stability_first_fill_days),
        source: source.unwrap_or_default(),
    };
    e.finish()?;
    let now = state.now();
    let d = state
        .db(move |conn| catalog::create_drug(conn, &auth.actor, new, now))
        .await?;
    Ok(HttpResponse::Created().json(DrugResponse::from(d)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "stability_undiluted_days": 60, "source": "Pharmacy protocol 2027-02"}))]
pub struct UpdateDrugRequest {
    #[schema(minimum = 1)]
    pub version: i64,
    #[schema(min_length = 1, max_length = 120)]
    pub name: Option<String>,
    /// Days; `null` clears the limit.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub stability_undiluted_days: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub stability_diluted_days: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub stability_first_fill_days: Option<Option<u32>>,
    /// Where the new values come from.
    #[schema(min_length = 1, max_length = 500)]
    pub source: Option<String>,
}

/// Edit a drug's stability limits (e.g. enter one for fentanyl before its first fill).
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    params(("code" = String, Path, description = "Drug code")),
    request_body = UpdateDrugRequest,
    responses((status = 200, body = DrugResponse), (status = 409, description = "Stale `version`", body = Problem, content_type = "application/problem+json"))
)]
#[patch("/drugs/{code}")]
pub async fn update_drug(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    code: web::Path<String>,
    body: JsonBody<UpdateDrugRequest>,
) -> Result<web::Json<DrugResponse>, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    for (field, v) in [
        ("stability_undiluted_days", b.stability_undiluted_days),
        ("stability_diluted_days", b.stability_diluted_days),
        ("stability_first_fill_days", b.stability_first_fill_days),
    ] {
        stability_days(&mut e, field, v.flatten());
    }
    e.finish()?;
    let changes = DrugChanges {
        name: b.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        stability_undiluted_days: b.stability_undiluted_days,
        stability_diluted_days: b.stability_diluted_days,
        stability_first_fill_days: b.stability_first_fill_days,
        source: b.source.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
    };
    let (code, version, now) = (code.into_inner(), b.version, state.now());
    Ok(web::Json(
        state
            .db(move |conn| catalog::update_drug(conn, &auth.actor, &code, version, changes, now))
            .await?
            .into(),
    ))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "margin_days": 7, "over_infusion_factor": null}))]
pub struct ForecastPolicyDto {
    /// Send the version you read (0 before the policy was first saved).
    pub version: i64,
    /// Days before the alarm date that the refill falls due (default 7).
    #[schema(minimum = 0, maximum = 60)]
    pub margin_days: u32,
    /// Plan for pumps delivering this much faster than programmed (1.145 = +14.5 %); null: off.
    #[schema(value_type = Option<DecimalInput>, example = "1.145")]
    #[serde(default, deserialize_with = "opt_decimal_input")]
    pub over_infusion_factor: Option<Decimal>,
}

/// The clinic's forecast policy.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), responses((status = 200, body = ForecastPolicyDto)))]
#[get("/forecast-policy")]
pub async fn get_forecast_policy(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::PumpsRead>,
) -> Result<web::Json<ForecastPolicyDto>, ApiError> {
    let p = state.db(catalog::policy).await?;
    Ok(web::Json(ForecastPolicyDto {
        version: p.version,
        margin_days: p.margin_days,
        over_infusion_factor: p.over_infusion_factor,
    }))
}

/// Change the policy; every active pump's forecast is recomputed in the same transaction.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    request_body = ForecastPolicyDto,
    responses((status = 200, body = ForecastPolicyDto), (status = 409, description = "Stale `version`", body = Problem, content_type = "application/problem+json"))
)]
#[put("/forecast-policy")]
pub async fn update_forecast_policy(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    body: JsonBody<ForecastPolicyDto>,
) -> Result<web::Json<ForecastPolicyDto>, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    if b.margin_days > 60 {
        e.push(FieldError::new(
            "margin_days",
            "out_of_range",
            "the margin is 0 to 60 days",
        ));
    }
    if b.over_infusion_factor
        .is_some_and(|f| f < Decimal::ONE || f > Decimal::TWO)
    {
        e.push(FieldError::new(
            "over_infusion_factor",
            "out_of_range",
            "the factor is between 1 and 2",
        ));
    }
    e.finish()?;
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let p = state
        .db(move |conn| {
            clinic_flows::pumps::set_forecast_policy(
                conn,
                &auth.actor,
                b.version,
                b.margin_days,
                b.over_infusion_factor,
                zone,
                now,
            )
        })
        .await?;
    Ok(web::Json(ForecastPolicyDto {
        version: p.version,
        margin_days: p.margin_days,
        over_infusion_factor: p.over_infusion_factor,
    }))
}

// ---- pumps ----------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct ForecastSummary {
    /// The refill due date: the earliest of the volume, stability and battery limits.
    #[schema(value_type = String, format = Date)]
    pub due_date: NaiveDate,
    pub binding: Binding,
    /// When the reservoir reaches its low-reservoir alarm.
    pub alarm_at: Option<DateTime<Utc>>,
    /// Why the pump is due now, when inputs are missing or contradictory.
    pub problems: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e13", "patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10",
    "model": "synchromed-ii-40", "serial_number": "NGP123456H", "implanted_on": "2026-06-01", "reservoir_ml": "40",
    "alarm_ml": "2", "replacement_indicator_on": null, "replacement_deadline": "2031-06-01", "status": "active",
    "version": 1, "created_at": "2027-01-04T15:02:00Z", "updated_at": "2027-01-04T15:02:00Z",
    "forecast": {"due_date": "2027-07-03", "binding": "stability", "alarm_at": "2027-07-13T15:00:00Z", "problems": []},
    "forecast_url": "/api/v1/pumps/0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e13/forecast"
}))]
pub struct PumpResponse {
    pub id: String,
    pub patient_id: String,
    pub model: String,
    pub serial_number: String,
    #[schema(value_type = String, format = Date)]
    pub implanted_on: NaiveDate,
    #[schema(value_type = String)]
    pub reservoir_ml: Decimal,
    /// The low-reservoir alarm volume (mL).
    #[schema(value_type = String)]
    pub alarm_ml: Decimal,
    #[schema(value_type = Option<String>, format = Date)]
    pub replacement_indicator_on: Option<NaiveDate>,
    /// 90 days after the replacement indicator when recorded, else implant + service life.
    #[schema(value_type = String, format = Date)]
    pub replacement_deadline: NaiveDate,
    /// active or explanted
    pub status: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub forecast: ForecastSummary,
    pub forecast_url: String,
}

fn summary(f: &StoredForecast) -> ForecastSummary {
    ForecastSummary {
        due_date: f.due_date,
        binding: f.binding,
        alarm_at: f.alarm_at,
        problems: f.problems.clone(),
    }
}

impl From<Pump> for PumpResponse {
    fn from(p: Pump) -> Self {
        Self {
            forecast: summary(&p.forecast),
            forecast_url: format!("/api/v1/pumps/{}/forecast", p.id),
            id: p.id,
            patient_id: p.patient_id.to_string(),
            model: p.model_code,
            serial_number: p.serial_number,
            implanted_on: p.implanted_on,
            reservoir_ml: p.reservoir_ml,
            alarm_ml: p.alarm_ml,
            replacement_indicator_on: p.replacement_indicator_on,
            replacement_deadline: p.replacement_deadline,
            status: p.status,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

fn parse_date(e: &mut ValidationErrors, field: &str, v: &str) -> Option<NaiveDate> {
    e.check(
        field,
        NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
            .map_err(|_| FieldError::new(field, "invalid_date", "expected an ISO date such as 2027-01-04")),
    )
}

fn serial(e: &mut ValidationErrors, v: &str) -> Option<String> {
    let s = v;
    if s.is_empty() || s.len() > 40 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        e.push(FieldError::new(
            "serial_number",
            "invalid_serial",
            "1 to 40 letters, digits or hyphens",
        ));
        return None;
    }
    Some(s.to_owned())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", "model": "synchromed-ii-40",
    "serial_number": "NGP123456H", "implanted_on": "2026-06-01", "alarm_ml": "2"
}))]
pub struct CreatePumpRequest {
    #[schema(format = Uuid)]
    pub patient_id: String,
    /// A pump-model code.
    pub model: String,
    #[schema(pattern = "^[A-Za-z0-9-]{1,40}$")]
    pub serial_number: String,
    #[schema(format = Date)]
    pub implanted_on: String,
    /// Low-reservoir alarm volume; defaults to the model's.
    #[schema(value_type = Option<DecimalInput>)]
    #[serde(default, deserialize_with = "opt_decimal_input")]
    pub alarm_ml: Option<Decimal>,
    /// The date the pump showed its replacement indicator (ERI), if it has.
    #[schema(format = Date)]
    pub replacement_indicator_on: Option<String>,
}

/// Register a patient's implanted pump. Until a fill and a programme are recorded, its
/// forecast is "due now" with the reason.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    request_body = CreatePumpRequest,
    responses((status = 201, body = PumpResponse), (status = 409, description = "Serial number registered (`serial_taken`)", body = Problem, content_type = "application/problem+json"))
)]
#[post("/pumps")]
pub async fn create_pump(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    body: JsonBody<CreatePumpRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner()?;
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let mut e = ValidationErrors::new();
    let patient_id = e.check(
        "patient_id",
        b.patient_id.parse::<PatientId>().map_err(|f| f.at("patient_id")),
    );
    let serial_number = serial(&mut e, &b.serial_number);
    let implanted_on = parse_date(&mut e, "implanted_on", &b.implanted_on);
    if implanted_on.is_some_and(|d| d > zone.local_date(now)) {
        e.push(FieldError::new(
            "implanted_on",
            "in_future",
            "the implant date is in the future",
        ));
    }
    let eri = b
        .replacement_indicator_on
        .as_deref()
        .and_then(|d| parse_date(&mut e, "replacement_indicator_on", d));
    let (Some(patient_id), Some(serial_number), Some(implanted_on)) = (patient_id, serial_number, implanted_on) else {
        return Err(e.into());
    };
    e.finish()?;
    let new = NewPump {
        patient_id,
        model_code: b.model,
        serial_number,
        implanted_on,
        alarm_ml: b.alarm_ml,
        replacement_indicator_on: eri,
    };
    let pump = state
        .db(move |conn| clinic_flows::pumps::register(conn, &auth.actor, new, zone, now))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/pumps/{}", pump.id)))
        .json(PumpResponse::from(pump)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPumpsQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Pumps, newest first.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), params(ListPumpsQuery), responses((status = 200, body = Page<PumpResponse>)))]
#[get("/pumps")]
pub async fn list_pumps(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    query: QueryParams<ListPumpsQuery>,
) -> Result<web::Json<Page<PumpResponse>>, ApiError> {
    let q = query.into_inner()?;
    let limit = pagination::limit(q.limit)?;
    let after = q
        .cursor
        .map(|c| {
            pagination::cursor_key::<String>(pagination::List::Pumps, &c)
                .and_then(|k| pump_id(&k).map_err(|_| pagination::bad_cursor()))
        })
        .transpose()?;
    let now = state.now();
    let (list, more) = state
        .db_audited(move |conn, audit| repo::list(conn, audit, &auth.actor, None, after.as_deref(), limit, now))
        .await?;
    let next_cursor = if more {
        list.last().map(|p| pagination::cursor(pagination::List::Pumps, &p.id))
    } else {
        None
    };
    Ok(web::Json(Page {
        items: list.into_iter().map(PumpResponse::from).collect(),
        next_cursor,
    }))
}

/// A patient's pumps, newest first.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), params(("id" = String, Path, description = "Patient id")), responses((status = 200, body = Page<PumpResponse>)))]
#[get("/patients/{id}/pumps")]
pub async fn list_patient_pumps(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    id: web::Path<String>,
) -> Result<web::Json<Page<PumpResponse>>, ApiError> {
    let patient: PatientId = super::path_id(&id, "patient")?;
    let now = state.now();
    let (list, _) = state
        .db_audited(move |conn, audit| {
            repo::list(
                conn,
                audit,
                &auth.actor,
                Some(patient),
                None,
                pagination::MAX_LIMIT,
                now,
            )
        })
        .await?;
    Ok(web::Json(Page {
        items: list.into_iter().map(PumpResponse::from).collect(),
        next_cursor: None,
    }))
}

fn pump_id(raw: &str) -> Result<String, ApiError> {
    raw.parse::<uuid_like::Id>()
        .map(|_| raw.to_owned())
        .map_err(|_| ApiError::NotFound("pump"))
}

/// Pump ids are UUIDs; anything else names no pump.
mod uuid_like {
    pub type Id = clinic_domain::ids::PatientId;
}

/// Read a pump with its forecast summary.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), params(("id" = String, Path, description = "Pump id")), responses((status = 200, body = PumpResponse)))]
#[get("/pumps/{id}")]
pub async fn get_pump(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    id: web::Path<String>,
) -> Result<web::Json<PumpResponse>, ApiError> {
    let id = pump_id(&id)?;
    let now = state.now();
    Ok(web::Json(
        state
            .db_audited(move |conn, audit| repo::get(conn, audit, &auth.actor, &id, now))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "alarm_ml": "4"}))]
pub struct UpdatePumpRequest {
    #[schema(minimum = 1)]
    pub version: i64,
    #[schema(pattern = "^[A-Za-z0-9-]{1,40}$")]
    pub serial_number: Option<String>,
    /// A clinic may raise the alarm volume (e.g. to 4 mL) to refill before withdrawal starts.
    #[schema(value_type = Option<DecimalInput>)]
    #[serde(default, deserialize_with = "opt_decimal_input")]
    pub alarm_ml: Option<Decimal>,
    /// The replacement indicator date; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Date)]
    pub replacement_indicator_on: Option<Option<String>>,
    /// Only `explanted`.
    #[schema(value_type = Option<SettablePumpStatus>)]
    pub status: Option<String>,
}

/// The one status a client may set on a pump (the field is read as text so that another
/// value is a 422 naming it).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SettablePumpStatus {
    Explanted,
}

/// Change a pump (alarm volume, replacement indicator, explant). The forecast is recomputed
/// in the same transaction.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    params(("id" = String, Path, description = "Pump id")),
    request_body = UpdatePumpRequest,
    responses((status = 200, body = PumpResponse), (status = 409, description = "Stale `version` or serial taken", body = Problem, content_type = "application/problem+json"))
)]
#[patch("/pumps/{id}")]
pub async fn update_pump(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    id: web::Path<String>,
    body: JsonBody<UpdatePumpRequest>,
) -> Result<web::Json<PumpResponse>, ApiError> {
    let id = pump_id(&id)?;
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let serial_number = b.serial_number.as_deref().and_then(|s| serial(&mut e, s));
    let eri = parse_required(
        &mut e,
        "replacement_indicator_on",
        b.replacement_indicator_on.map(Some),
        |v: Option<String>| {
            v.map(|d| {
                NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                    .map_err(|_| FieldError::new("replacement_indicator_on", "invalid_date", "expected an ISO date"))
            })
            .transpose()
        },
    );
    let explanted = match b.status.as_deref() {
        None => false,
        Some("explanted") => true,
        Some(_) => {
            e.push(FieldError::new(
                "status",
                "invalid_status",
                "only `explanted` can be set",
            ));
            false
        }
    };
    e.finish()?;
    let changes = PumpChanges {
        serial_number,
        alarm_ml: b.alarm_ml,
        replacement_indicator_on: eri,
        explanted,
    };
    let (now, zone, version) = (state.now(), state.clinic.time_zone, b.version);
    Ok(web::Json(
        state
            .db(move |conn| clinic_flows::pumps::update(conn, &auth.actor, &id, version, changes, zone, now))
            .await?
            .into(),
    ))
}

// ---- fills -----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "filled_at": "2027-01-04T09:00:00-06:00", "drug": "morphine", "concentration": "25",
    "concentration_unit": "mg/mL", "diluted": false, "volume_ml": "40.0", "residual_ml": "3.1",
    "prime_ml": "0", "first_fill": false, "clinician": "R. Alvarez, RN"
}))]
pub struct CreateFillRequest {
    /// RFC 3339 with an offset.
    pub filled_at: DateTime<Utc>,
    /// A drug code from /api/v1/drugs.
    pub drug: String,
    #[schema(value_type = DecimalInput)]
    #[serde(deserialize_with = "decimal_input")]
    pub concentration: Decimal,
    /// `mg/mL` or `mcg/mL`, matching the drug's unit.
    #[schema(pattern = "^(mg|mcg)/mL$", example = "mg/mL")]
    pub concentration_unit: String,
    #[serde(default)]
    pub diluted: bool,
    /// Volume in the reservoir after the fill.
    #[schema(value_type = DecimalInput)]
    #[serde(deserialize_with = "decimal_input")]
    pub volume_ml: Decimal,
    /// Volume found in the reservoir before filling.
    #[schema(value_type = DecimalInput)]
    #[serde(deserialize_with = "decimal_input")]
    pub residual_ml: Decimal,
    /// Priming bolus given after the fill, if any.
    #[serde(default)]
    #[schema(value_type = DecimalInput)]
    #[serde(deserialize_with = "decimal_input")]
    pub prime_ml: Decimal,
    /// The first fill of a newly implanted pump.
    #[serde(default)]
    pub first_fill: bool,
    #[schema(min_length = 1, max_length = 100)]
    pub clinician: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e14", "pump_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e13",
    "filled_at": "2027-01-04T15:00:00Z", "drug": "morphine", "concentration": "25", "concentration_unit": "mg/mL",
    "diluted": false, "volume_ml": "40", "residual_ml": "3.1", "prime_ml": "0", "first_fill": false,
    "stability_days": 180, "clinician": "R. Alvarez, RN", "expected_residual_ml": "3.4", "discrepancy": false,
    "recorded_by": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1a", "created_at": "2027-01-04T15:05:12Z"
}))]
pub struct FillResponse {
    pub id: String,
    pub pump_id: String,
    pub filled_at: DateTime<Utc>,
    pub drug: String,
    #[schema(value_type = String)]
    pub concentration: Decimal,
    pub concentration_unit: String,
    pub diluted: bool,
    #[schema(value_type = String)]
    pub volume_ml: Decimal,
    #[schema(value_type = String)]
    pub residual_ml: Decimal,
    #[schema(value_type = String)]
    pub prime_ml: Decimal,
    pub first_fill: bool,
    /// The stability limit this fill was given (days).
    #[schema(minimum = 1, maximum = 3650)]
    pub stability_days: i64,
    pub clinician: String,
    /// What the previous forecast expected to be left at this fill (null without one).
    #[schema(value_type = Option<String>)]
    pub expected_residual_ml: Option<Decimal>,
    /// Found and expected residual differ by more than 1 mL (≤ 20 mL pumps) or 2 mL: review.
    pub discrepancy: bool,
    pub recorded_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn fill_response(f: Fill) -> Result<FillResponse, ApiError> {
    let d = |s: &str| {
        s.parse::<Decimal>()
            .map_err(|_| ApiError::Internal("stored decimal".into()))
    };
    Ok(FillResponse {
        id: f.id,
        pump_id: f.pump_id,
        filled_at: clinic_store::time::from_db(f.filled_at),
        drug: f.drug_code,
        concentration: d(&f.concentration)?,
        concentration_unit: f.concentration_unit,
        diluted: f.diluted,
        volume_ml: d(&f.volume_ml)?,
        residual_ml: d(&f.residual_ml)?,
        prime_ml: d(&f.prime_ml)?,
        first_fill: f.first_fill,
        stability_days: f.stability_days,
        clinician: f.clinician,
        expected_residual_ml: f.expected_residual_ml.as_deref().map(d).transpose()?,
        discrepancy: f.discrepancy,
        recorded_by: f.recorded_by,
        created_at: clinic_store::time::from_db(f.created_at),
    })
}

#[derive(Serialize, ToSchema)]
pub struct FillOutcomeResponse {
    pub fill: FillResponse,
    /// The new forecast, stored in the same transaction.
    pub forecast: ForecastSummary,
}

/// Record a refill. The response has what the previous forecast expected to be left and a
/// discrepancy flag; the pump's forecast is recomputed and stored in the same transaction.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    params(("id" = String, Path, description = "Pump id")),
    request_body = CreateFillRequest,
    responses((status = 201, body = FillOutcomeResponse), (status = 409, description = "The pump is explanted", body = Problem, content_type = "application/problem+json"))
)]
#[post("/pumps/{id}/fills")]
pub async fn create_fill(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    id: web::Path<String>,
    body: JsonBody<CreateFillRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = pump_id(&id)?;
    let b = body.into_inner()?;
    let clinician = clinic_domain::content::parse_author(&b.clinician)
        .map_err(|f| ApiError::Validation(f.at("clinician").into()))?;
    let fill = NewFill {
        filled_at: clinic_store::time::from_db(clinic_store::time::to_db(b.filled_at)),
        drug_code: b.drug,
        concentration: b.concentration,
        concentration_unit: b.concentration_unit,
        diluted: b.diluted,
        volume_ml: b.volume_ml,
        residual_ml: b.residual_ml,
        prime_ml: b.prime_ml,
        first_fill: b.first_fill,
        clinician,
    };
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let out = state
        .db(move |conn| clinic_flows::pumps::record_fill(conn, &auth.actor, &id, fill, zone, now))
        .await?;
    Ok(HttpResponse::Created().json(FillOutcomeResponse {
        forecast: summary(&out.forecast),
        fill: fill_response(out.fill)?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct FillList {
    /// Newest first.
    pub items: Vec<FillResponse>,
}

/// A pump's fills, newest first.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), params(("id" = String, Path, description = "Pump id")), responses((status = 200, body = FillList)))]
#[get("/pumps/{id}/fills")]
pub async fn list_fills(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    id: web::Path<String>,
) -> Result<web::Json<FillList>, ApiError> {
    let id = pump_id(&id)?;
    let now = state.now();
    let list = state
        .db_audited(move |conn, audit| repo::fills(conn, audit, &auth.actor, &id, now))
        .await?;
    Ok(web::Json(FillList {
        items: list.into_iter().map(fill_response).collect::<Result<_, _>>()?,
    }))
}

// ---- programmes --------------------------------------------------------------------------

#[derive(Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct StepDto {
    /// Wall time on the clinic's clock, `HH:MM`.
    #[schema(example = "06:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    #[schema(example = "22:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
    /// Drug per hour, in the drug's mass unit.
    #[schema(value_type = DecimalInput, example = "20")]
    #[serde(deserialize_with = "decimal_input")]
    pub rate_per_hour: Decimal,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BolusDto {
    #[schema(value_type = DecimalInput, example = "0.1")]
    #[serde(deserialize_with = "decimal_input")]
    pub dose: Decimal,
    #[schema(minimum = 1, maximum = 48)]
    pub max_per_day: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "effective_at": "2027-01-04T10:00:00-06:00", "kind": "flex",
    "steps": [{"start": "06:00", "end": "22:00", "rate_per_hour": "20"}, {"start": "22:00", "end": "06:00", "rate_per_hour": "35"}]
}))]
pub struct CreateProgramRequest {
    /// When the programme took effect (RFC 3339 with an offset).
    pub effective_at: DateTime<Utc>,
    /// `continuous` (send daily_dose) or `flex` (send steps covering the 24-hour day).
    #[schema(value_type = ProgrammeKind)]
    pub kind: String,
    /// Drug per day, in the drug's mass unit (continuous).
    #[schema(value_type = Option<DecimalInput>)]
    #[serde(default, deserialize_with = "opt_decimal_input")]
    pub daily_dose: Option<Decimal>,
    pub steps: Option<Vec<StepDto>>,
    pub bolus: Option<BolusDto>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e15", "pump_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e13",
    "effective_at": "2027-01-04T15:00:00Z", "kind": "continuous", "daily_dose": "5", "steps": null, "bolus": null,
    "daily_amount": "5", "recorded_by": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1a", "created_at": "2027-01-04T15:04:30Z"
}))]
pub struct ProgramResponse {
    pub id: String,
    pub pump_id: String,
    pub effective_at: DateTime<Utc>,
    pub kind: String,
    #[schema(value_type = Option<String>)]
    pub daily_dose: Option<Decimal>,
    pub steps: Option<Vec<StepDto>>,
    pub bolus: Option<BolusDto>,
    /// Drug per day, steps and boluses included.
    #[schema(value_type = String)]
    pub daily_amount: Decimal,
    pub recorded_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn program_response(r: ProgramRow) -> Result<ProgramResponse, ApiError> {
    let p = r.to_programme()?;
    let steps = match &p.delivery {
        Delivery::Flex { steps } => Some(
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepDto {
                    start: s.start.format("%H:%M").to_string(),
                    end: steps[(i + 1) % steps.len()].start.format("%H:%M").to_string(),
                    rate_per_hour: s.rate_per_hour,
                })
                .collect(),
        ),
        Delivery::Continuous { .. } => None,
    };
    Ok(ProgramResponse {
        daily_amount: p.daily_amount().normalize(),
        daily_dose: match p.delivery {
            Delivery::Continuous { daily_dose } => Some(daily_dose),
            Delivery::Flex { .. } => None,
        },
        steps,
        bolus: (p.bolus_max_per_day > 0).then_some(BolusDto {
            dose: p.bolus_dose,
            max_per_day: p.bolus_max_per_day,
        }),
        id: r.id,
        pump_id: r.pump_id,
        effective_at: clinic_store::time::from_db(r.effective_at),
        kind: r.kind,
        recorded_by: r.recorded_by,
        created_at: clinic_store::time::from_db(r.created_at),
    })
}

impl CreateProgramRequest {
    fn into_programme(self) -> Result<Programme, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let delivery = match (self.kind.as_str(), self.daily_dose, self.steps) {
            ("continuous", Some(d), None) => {
                if d < Decimal::ZERO {
                    e.push(FieldError::new(
                        "daily_dose",
                        "negative",
                        "the daily dose cannot be negative",
                    ));
                }
                Some(Delivery::Continuous { daily_dose: d })
            }
            ("continuous", None, _) => {
                e.push(FieldError::new(
                    "daily_dose",
                    "required",
                    "a continuous programme needs daily_dose",
                ));
                None
            }
            ("flex", None, Some(steps)) => {
                let mut parsed = Vec::new();
                for (i, s) in steps.iter().enumerate() {
                    let t = |field: &str, v: &str| {
                        clinic_domain::scheduling::parse_hh_mm(v).ok_or_else(|| {
                            FieldError::new(format!("steps[{i}].{field}"), "invalid_time", "expected HH:MM")
                        })
                    };
                    match (t("start", &s.start), t("end", &s.end)) {
                        (Ok(a), Ok(b)) => parsed.push((a, b, s.rate_per_hour)),
                        (a, b) => {
                            a.err().into_iter().chain(b.err()).for_each(|x| e.push(x));
                        }
                    }
                }
                if e.is_empty() {
                    match forecast::check_flex_steps(&parsed) {
                        Ok(steps) => Some(Delivery::Flex { steps }),
                        Err(v) => {
                            v.into_errors().into_iter().for_each(|x| e.push(x));
                            None
                        }
                    }
                } else {
                    None
                }
            }
            ("flex", _, None) => {
                e.push(FieldError::new("steps", "required", "a flex programme needs steps"));
                None
            }
            ("continuous" | "flex", _, _) => {
                e.push(FieldError::new(
                    "kind",
                    "mixed_programme",
                    "send daily_dose for continuous or steps for flex, not both",
                ));
                None
            }
            _ => {
                e.push(FieldError::new("kind", "invalid_kind", "expected continuous or flex"));
                None
            }
        };
        let (bolus_dose, bolus_max) = match self.bolus {
            None => (Decimal::ZERO, 0),
            Some(b) => {
                if b.dose <= Decimal::ZERO || b.max_per_day == 0 || b.max_per_day > 48 {
                    e.push(FieldError::new(
                        "bolus",
                        "out_of_range",
                        "a bolus needs a dose above 0 and 1 to 48 per day",
                    ));
                }
                (b.dose, b.max_per_day)
            }
        };
        e.finish()?;
        Ok(Programme {
            effective_at: clinic_store::time::from_db(clinic_store::time::to_db(self.effective_at)),
            delivery: delivery.ok_or_else(ValidationErrors::new)?,
            bolus_dose,
            bolus_max_per_day: bolus_max,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProgramOutcome {
    pub program: ProgramResponse,
    pub forecast: ForecastSummary,
}

/// Record a dose programme (continuous, or flex steps covering the day; optional patient
/// bolus). The forecast is recomputed and stored in the same transaction.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:write"])),
    params(("id" = String, Path, description = "Pump id")),
    request_body = CreateProgramRequest,
    responses((status = 201, body = ProgramOutcome), (status = 409, description = "The pump is explanted", body = Problem, content_type = "application/problem+json"))
)]
#[post("/pumps/{id}/programs")]
pub async fn create_program(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsWrite>,
    id: web::Path<String>,
    body: JsonBody<CreateProgramRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = pump_id(&id)?;
    let programme = body.into_inner()?.into_programme()?;
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let (row, forecast) = state
        .db(move |conn| {
            clinic_flows::pumps::record_programme(conn, &auth.actor, &id, NewProgramme { programme }, zone, now)
        })
        .await?;
    Ok(HttpResponse::Created().json(ProgramOutcome {
        program: program_response(row)?,
        forecast: summary(&forecast),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ProgramList {
    /// Newest first.
    pub items: Vec<ProgramResponse>,
}

/// A pump's programmes, newest first.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), params(("id" = String, Path, description = "Pump id")), responses((status = 200, body = ProgramList)))]
#[get("/pumps/{id}/programs")]
pub async fn list_programs(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    id: web::Path<String>,
) -> Result<web::Json<ProgramList>, ApiError> {
    let id = pump_id(&id)?;
    let now = state.now();
    let list = state
        .db_audited(move |conn, audit| repo::programme_history(conn, audit, &auth.actor, &id, now))
        .await?;
    Ok(web::Json(ProgramList {
        items: list.into_iter().map(program_response).collect::<Result<_, _>>()?,
    }))
}

// ---- forecast ----------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "pump_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e13", "due_date": "2027-07-03", "binding": "stability",
    "alarm_at": "2027-07-13T15:00:00Z", "volume_due": "2027-07-06", "stability_due": "2027-07-03",
    "battery_due": "2031-06-01", "daily_volume_ml": "0.2", "usable_volume_ml": "38", "problems": [],
    "explanation": "At 0.2 mL a day, the 38 mL usable volume lasts until the low-reservoir alarm on 2027-07-13 at 10:00 (America/Chicago). With the 7-day margin, the volume limit falls on 2027-07-06. The drug is stable for 180 days after the fill: 2027-07-03. The pump must be replaced by 2031-06-01. The refill is due on 2027-07-03, set by the stability limit (the earliest).",
    "computed_at": "2027-01-04T15:05:12Z",
    "inputs": {
        "alarm_volume_ml": "2", "battery_deadline": "2031-06-01", "concentration": "25", "concentration_unit": "mg/mL",
        "daily_dose": "5", "drug": "morphine", "fill_volume_ml": "40", "filled_at": "2027-01-04T15:00:00Z",
        "margin_days": 7, "over_infusion_factor": null, "prime_volume_ml": "0", "programmes": 1, "stability_days": 180,
        "time_zone": "America/Chicago"
    },
    "plot_url": "/api/v1/pumps/0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e13/forecast.svg"
}))]
pub struct ForecastResponse {
    pub pump_id: String,
    #[schema(value_type = String, format = Date)]
    pub due_date: NaiveDate,
    pub binding: Binding,
    pub alarm_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = Date)]
    pub volume_due: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub stability_due: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub battery_due: Option<NaiveDate>,
    #[schema(value_type = Option<String>)]
    pub daily_volume_ml: Option<Decimal>,
    #[schema(value_type = String)]
    pub usable_volume_ml: Decimal,
    pub problems: Vec<String>,
    /// The forecast in plain language.
    pub explanation: String,
    pub computed_at: DateTime<Utc>,
    /// Every input the forecast used.
    #[schema(value_type = Object)]
    pub inputs: serde_json::Value,
    /// The forecast drawn as SVG.
    pub plot_url: String,
}

/// A plain-language account of a stored forecast.
pub fn explain(f: &StoredForecast, zone: clinic_domain::time::ClinicZone) -> String {
    if f.binding == Binding::MissingData {
        return format!(
            "Due now: the forecast cannot be trusted because {}. Check the pump's records and call the patient.",
            f.problems.join("; ")
        );
    }
    let mut parts = Vec::new();
    match (f.alarm_at, f.daily_volume_ml) {
        (Some(alarm), Some(daily)) => {
            let local = alarm.with_timezone(&zone.tz());
            let pace = if f.inputs.programmes > 1 {
                format!("Starting at {daily} mL a day and following the later programme changes")
            } else {
                format!("At {daily} mL a day")
            };
            parts.push(format!(
                "{pace}, the {} mL usable volume lasts until the low-reservoir alarm on {} at {} ({}).",
                f.usable_volume_ml,
                local.format("%Y-%m-%d"),
                local.format("%H:%M"),
                zone.name()
            ));
        }
        (None, _) => parts.push("The reservoir outlasts the forecast's three-year look-ahead.".to_owned()),
        _ => {}
    }
    if let Some(v) = f.volume_due {
        parts.push(format!(
            "With the {}-day margin, the volume limit falls on {v}.",
            f.inputs.margin_days
        ));
    }
    if let (Some(s), Some(days)) = (f.stability_due, f.inputs.stability_days) {
        parts.push(format!("The drug is stable for {days} days after the fill: {s}."));
    }
    if let Some(b) = f.battery_due {
        parts.push(format!("The pump must be replaced by {b}."));
    }
    parts.push(format!(
        "The refill is due on {}, set by the {} limit (the earliest).",
        f.due_date,
        f.binding.as_str()
    ));
    parts.join(" ")
}

/// The pump's stored forecast: the due date, which limit set it, the alarm instant, every
/// input used and a plain-language explanation.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), params(("id" = String, Path, description = "Pump id")), responses((status = 200, body = ForecastResponse)))]
#[get("/pumps/{id}/forecast")]
pub async fn get_pump_forecast(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    id: web::Path<String>,
) -> Result<web::Json<ForecastResponse>, ApiError> {
    let id = pump_id(&id)?;
    let now = state.now();
    let pump = state
        .db_audited(move |conn, audit| repo::get(conn, audit, &auth.actor, &id, now))
        .await?;
    let f = pump.forecast;
    Ok(web::Json(ForecastResponse {
        explanation: explain(&f, state.clinic.time_zone),
        plot_url: format!("/api/v1/pumps/{}/forecast.svg", pump.id),
        pump_id: pump.id,
        due_date: f.due_date,
        binding: f.binding,
        alarm_at: f.alarm_at,
        volume_due: f.volume_due,
        stability_due: f.stability_due,
        battery_due: f.battery_due,
        daily_volume_ml: f.daily_volume_ml,
        usable_volume_ml: f.usable_volume_ml,
        problems: f.problems,
        computed_at: f.computed_at,
        inputs: serde_json::to_value(&f.inputs).map_err(|e| ApiError::Internal(e.to_string()))?,
    }))
}

/// The forecast as a picture: expected reservoir volume from the last fill to the alarm,
/// with the alarm volume, the refill due date and today marked.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["pumps:read"])),
    params(("id" = String, Path, description = "Pump id")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml", body = String,
        example = "<svg width=\"900\" height=\"480\" viewBox=\"0 0 900 480\" xmlns=\"http://www.w3.org/2000/svg\">\n\
        <rect x=\"0\" y=\"0\" width=\"900\" height=\"480\" opacity=\"1\" fill=\"#FFFFFF\" stroke=\"none\"/>\n\
        <text x=\"450\" y=\"16\" dy=\"0.76em\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"22\" opacity=\"1\" fill=\"#000000\">Reservoir NGP123456H — refill due 2027-07-03 (stability)</text>\n\
        <!-- axes, the expected volume, the alarm volume and the due, today and alarm markers -->\n\
        </svg>\n"))
)]
#[get("/pumps/{id}/forecast.svg")]
pub async fn get_pump_forecast_svg(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = pump_id(&id)?;
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let (pump, points) = state
        .db_audited(move |conn, audit| repo::volume_curve(conn, audit, &auth.actor, &id, zone, now))
        .await?;
    let svg = crate::plot::forecast_svg(&crate::plot::PlotInput {
        serial: &pump.serial_number,
        filled_at: pump.forecast.inputs.filled_at.unwrap_or(now),
        points: &points,
        alarm_ml: pump.alarm_ml,
        alarm_at: pump.forecast.alarm_at,
        due_date: pump.forecast.due_date,
        binding: pump.forecast.binding.as_str(),
        now,
        zone,
    })
    .map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

// ---- worklist and slots --------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorklistQuery {
    /// Pumps due within this many days (overdue ones always included); default 14, 0–365.
    #[param(minimum = 0, maximum = 365)]
    pub within_days: Option<u32>,
    /// At most this many (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "pump_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e13", "patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10",
    "patient_name": "Ann Lee", "serial_number": "NGP123456H", "due_date": "2027-07-03", "binding": "stability",
    "overdue": false, "due_now_missing_data": false, "problems": [], "discrepancy_at_last_fill": false,
    "replacement_due": false, "refill_appointment": null
}))]
pub struct WorklistEntryResponse {
    pub pump_id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub serial_number: String,
    #[schema(value_type = String, format = Date)]
    pub due_date: NaiveDate,
    pub binding: Binding,
    pub overdue: bool,
    /// Due now because inputs are missing or contradictory (see problems).
    pub due_now_missing_data: bool,
    pub problems: Vec<String>,
    pub discrepancy_at_last_fill: bool,
    pub replacement_due: bool,
    /// A live refill appointment on or before the due date, if booked.
    pub refill_appointment: Option<AppointmentResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct Worklist {
    /// Soonest due first.
    pub items: Vec<WorklistEntryResponse>,
}

/// Active pumps due within N days or overdue, soonest first, with what staff need: the
/// patient, the due date and its limit, flags, and whether a refill is booked in time.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), params(WorklistQuery), responses((status = 200, body = Worklist)))]
#[get("/worklists/refills")]
pub async fn list_refill_worklist(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    query: QueryParams<WorklistQuery>,
) -> Result<web::Json<Worklist>, ApiError> {
    let q = query.into_inner()?;
    let within = q.within_days.unwrap_or(14);
    if within > 365 {
        return Err(ApiError::field("within_days", "out_of_range", "0 to 365 days"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "1 to 500"));
    }
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let list = state
        .db_audited(move |conn, audit| worklist::refills(conn, audit, &auth.actor, within, limit, zone, now))
        .await?;
    Ok(web::Json(Worklist {
        items: list
            .into_iter()
            .map(|e| WorklistEntryResponse {
                pump_id: e.pump.id.clone(),
                patient_id: e.pump.patient_id.to_string(),
                patient_name: e.patient_name,
                serial_number: e.pump.serial_number.clone(),
                due_date: e.pump.forecast.due_date,
                binding: e.pump.forecast.binding,
                overdue: e.overdue,
                due_now_missing_data: e.due_now_missing_data,
                problems: e.pump.forecast.problems.clone(),
                discrepancy_at_last_fill: e.discrepancy_at_last_fill,
                replacement_due: e.replacement_due,
                refill_appointment: e.refill_booked.map(AppointmentResponse::from),
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct RefillSlot {
    pub provider_id: String,
    pub provider_name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[schema(value_type = String)]
    pub local_start: chrono::NaiveDateTime,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "due_date": "2027-07-03",
    "items": [
        {
            "provider_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11", "provider_name": "Dr. Ana Ruiz",
            "start": "2027-06-21T14:00:00Z", "end": "2027-06-21T14:30:00Z", "local_start": "2027-06-21T09:00:00"
        },
        {
            "provider_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e11", "provider_name": "Dr. Ana Ruiz",
            "start": "2027-06-21T14:15:00Z", "end": "2027-06-21T14:45:00Z", "local_start": "2027-06-21T09:15:00"
        }
    ]
}))]
pub struct RefillSlots {
    #[schema(value_type = String, format = Date)]
    pub due_date: NaiveDate,
    /// Free refill slots in [due − 14 days, due], earliest first (at most 50).
    pub items: Vec<RefillSlot>,
}

/// Suggested refill slots before the due date, from scheduling's availability.
#[utoipa::path(tag = "pumps", security(("bearer" = ["pumps:read"])), params(("id" = String, Path, description = "Pump id")), responses((status = 200, body = RefillSlots)))]
#[get("/pumps/{id}/refill-slots")]
pub async fn list_refill_slots(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PumpsRead>,
    id: web::Path<String>,
) -> Result<web::Json<RefillSlots>, ApiError> {
    let id = pump_id(&id)?;
    let (now, zone) = (state.now(), state.clinic.time_zone);
    let (due, slots) = state
        .db_audited(move |conn, audit| worklist::refill_slots(conn, audit, &auth.actor, &id, zone, now))
        .await?;
    Ok(web::Json(RefillSlots {
        due_date: due,
        items: slots
            .into_iter()
            .map(|(p, s)| RefillSlot {
                provider_id: p.id.to_string(),
                provider_name: p.name,
                start: s.start,
                end: s.end,
                local_start: s.local,
            })
            .collect(),
    }))
}
