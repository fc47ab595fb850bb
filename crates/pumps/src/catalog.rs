//! Catalogues (pump models, drugs) and the forecast policy, seeded with sourced defaults.

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::forecast::MassUnit;
use clinic_patients::audit::{self, Actor};
use clinic_store::schema::{drugs, forecast_policy, pump_models};
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::{corrupt, decimal, stale, PumpError};

#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = pump_models)]
pub struct ModelRow {
    pub code: String,
    pub manufacturer: String,
    pub model: String,
    pub reservoir_ml: String,
    pub default_alarm_ml: String,
    pub service_life_months: i64,
    pub source: String,
    pub version: i64,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PumpModel {
    pub code: String,
    pub manufacturer: String,
    pub model: String,
    pub reservoir_ml: Decimal,
    pub default_alarm_ml: Decimal,
    pub service_life_months: u32,
    pub source: String,
    pub version: i64,
}

impl TryFrom<ModelRow> for PumpModel {
    type Error = PumpError;
    fn try_from(r: ModelRow) -> Result<Self, PumpError> {
        Ok(PumpModel {
            reservoir_ml: decimal(&r.reservoir_ml, "reservoir")?,
            default_alarm_ml: decimal(&r.default_alarm_ml, "alarm volume")?,
            service_life_months: u32::try_from(r.service_life_months).map_err(|_| corrupt("service life"))?,
            code: r.code,
            manufacturer: r.manufacturer,
            model: r.model,
            source: r.source,
            version: r.version,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = drugs)]
pub struct DrugRow {
    pub code: String,
    pub name: String,
    pub unit: String,
    pub stability_undiluted_days: Option<i64>,
    pub stability_diluted_days: Option<i64>,
    pub stability_first_fill_days: Option<i64>,
    pub source: String,
    pub version: i64,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Drug {
    pub code: String,
    pub name: String,
    pub unit: MassUnit,
    pub stability_undiluted_days: Option<u32>,
    pub stability_diluted_days: Option<u32>,
    pub stability_first_fill_days: Option<u32>,
    pub source: String,
    pub version: i64,
}

fn days(v: Option<i64>) -> Result<Option<u32>, PumpError> {
    v.map(|d| u32::try_from(d).map_err(|_| corrupt("stability days")))
        .transpose()
}

impl TryFrom<DrugRow> for Drug {
    type Error = PumpError;
    fn try_from(r: DrugRow) -> Result<Self, PumpError> {
        Ok(Drug {
            unit: MassUnit::parse(&r.unit).ok_or_else(|| corrupt("drug unit"))?,
            stability_undiluted_days: days(r.stability_undiluted_days)?,
            stability_diluted_days: days(r.stability_diluted_days)?,
            stability_first_fill_days: days(r.stability_first_fill_days)?,
            code: r.code,
            name: r.name,
            source: r.source,
            version: r.version,
        })
    }
}

pub fn models(conn: &mut DbConnection) -> Result<Vec<PumpModel>, PumpError> {
    pump_models::table
        .order(pump_models::code)
        .load::<ModelRow>(conn)?
        .into_iter()
        .map(PumpModel::try_from)
        .collect()
}

pub fn model(conn: &mut DbConnection, code: &str) -> Result<PumpModel, PumpError> {
    pump_models::table
        .find(code)
        .first::<ModelRow>(conn)
        .optional()?
        .ok_or(PumpError::NotFound("pump model"))?
        .try_into()
}

pub fn drugs(conn: &mut DbConnection) -> Result<Vec<Drug>, PumpError> {
    drugs::table
        .order(drugs::code)
        .load::<DrugRow>(conn)?
        .into_iter()
        .map(Drug::try_from)
        .collect()
}

pub fn drug(conn: &mut DbConnection, code: &str) -> Result<Drug, PumpError> {
    drugs::table
        .find(code)
        .first::<DrugRow>(conn)
        .optional()?
        .ok_or(PumpError::NotFound("drug"))?
        .try_into()
}

/// Validated stability changes for a drug; `Some(None)` clears a limit.
#[derive(Debug, Clone, Default)]
pub struct DrugChanges {
    pub name: Option<String>,
    pub stability_undiluted_days: Option<Option<u32>>,
    pub stability_diluted_days: Option<Option<u32>>,
    pub stability_first_fill_days: Option<Option<u32>>,
    pub source: Option<String>,
}

/// Edits a drug. Existing fills keep the limit they were given; the next fill uses the new one.
pub fn update_drug(
    conn: &mut DbConnection,
    actor: &Actor,
    code: &str,
    expected_version: i64,
    c: DrugChanges,
    now: DateTime<Utc>,
) -> Result<Drug, PumpError> {
    dialect::write_transaction(conn, |conn| {
        let d = drug(conn, code)?;
        if d.version != expected_version {
            return Err(stale(d.version));
        }
        let pick = |new: Option<Option<u32>>, old: Option<u32>| new.unwrap_or(old).map(i64::from);
        let written = diesel::update(drugs::table.find(code).filter(drugs::version.eq(expected_version)))
            .set((
                drugs::name.eq(c.name.unwrap_or(d.name)),
                drugs::stability_undiluted_days.eq(pick(c.stability_undiluted_days, d.stability_undiluted_days)),
                drugs::stability_diluted_days.eq(pick(c.stability_diluted_days, d.stability_diluted_days)),
                drugs::stability_first_fill_days.eq(pick(c.stability_first_fill_days, d.stability_first_fill_days)),
                drugs::source.eq(c.source.unwrap_or(d.source)),
                drugs::version.eq(expected_version + 1),
                drugs::updated_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        if written != 1 {
            return Err(stale(expected_version + 1));
        }
        audit::record(conn, actor, "drug.update", "drug", code, now)?;
        drug(conn, code)
    })
}

/// Clinic policy for forecasts.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub margin_days: u32,
    pub over_infusion_factor: Option<Decimal>,
    pub version: i64,
}

const POLICY_ID: &str = "default";

pub fn policy(conn: &mut DbConnection) -> Result<Policy, PumpError> {
    let row: Option<(i64, Option<String>, i64)> = forecast_policy::table
        .find(POLICY_ID)
        .select((
            forecast_policy::margin_days,
            forecast_policy::over_infusion_factor,
            forecast_policy::version,
        ))
        .first(conn)
        .optional()?;
    match row {
        // Defaults of intrathecal.md §3: 7 days' margin, over-infusion factor off.
        None => Ok(Policy {
            margin_days: 7,
            over_infusion_factor: None,
            version: 0,
        }),
        Some((m, f, v)) => Ok(Policy {
            margin_days: u32::try_from(m).map_err(|_| corrupt("margin"))?,
            over_infusion_factor: f.as_deref().map(|f| decimal(f, "factor")).transpose()?,
            version: v,
        }),
    }
}

/// Stores the policy (version 0 means "never set"). The caller recomputes every forecast
/// in the same transaction.
pub fn set_policy(
    conn: &mut DbConnection,
    actor: &Actor,
    expected_version: i64,
    margin_days: u32,
    factor: Option<Decimal>,
    now: DateTime<Utc>,
) -> Result<Policy, PumpError> {
    let current = policy(conn)?;
    if current.version != expected_version {
        return Err(stale(current.version));
    }
    let values = (
        forecast_policy::margin_days.eq(i64::from(margin_days)),
        forecast_policy::over_infusion_factor.eq(factor.map(|f| f.to_string())),
        forecast_policy::version.eq(expected_version + 1),
        forecast_policy::updated_at.eq(time::to_db(now)),
    );
    if expected_version == 0 {
        diesel::insert_into(forecast_policy::table)
            .values((forecast_policy::id.eq(POLICY_ID), values))
            .execute(conn)?;
    } else {
        diesel::update(forecast_policy::table.find(POLICY_ID))
            .set(values)
            .execute(conn)?;
    }
    audit::record(conn, actor, "forecast_policy.update", "forecast_policy", POLICY_ID, now)?;
    policy(conn)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    model: Vec<SeedModel>,
    drug: Vec<SeedDrug>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedModel {
    code: String,
    manufacturer: String,
    model: String,
    reservoir_ml: String,
    default_alarm_ml: String,
    service_life_months: i64,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedDrug {
    code: String,
    name: String,
    unit: String,
    stability_undiluted_days: Option<i64>,
    stability_diluted_days: Option<i64>,
    stability_first_fill_days: Option<i64>,
    source: String,
}

const CATALOG: &str = include_str!("../seed/catalog.toml");

/// Adds the seed models and drugs that are missing; returns (models, drugs) added.
pub fn seed(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<(usize, usize), PumpError> {
    let file: CatalogFile = toml::from_str(CATALOG).map_err(|e| corrupt(&format!("seed catalogue: {e}")))?;
    dialect::write_transaction(conn, |conn| {
        let (mut m, mut d) = (0, 0);
        for s in file.model {
            if pump_models::table.find(&s.code).count().get_result::<i64>(conn)? == 0 {
                decimal(&s.reservoir_ml, "seed reservoir")?;
                decimal(&s.default_alarm_ml, "seed alarm")?;
                diesel::insert_into(pump_models::table)
                    .values(ModelRow {
                        code: s.code,
                        manufacturer: s.manufacturer,
                        model: s.model,
                        reservoir_ml: s.reservoir_ml,
                        default_alarm_ml: s.default_alarm_ml,
                        service_life_months: s.service_life_months,
                        source: s.source,
                        version: 1,
                        updated_at: time::to_db(now),
                    })
                    .execute(conn)?;
                m += 1;
            }
        }
        for s in file.drug {
            if drugs::table.find(&s.code).count().get_result::<i64>(conn)? == 0 {
                MassUnit::parse(&s.unit).ok_or_else(|| corrupt("seed unit"))?;
                diesel::insert_into(drugs::table)
                    .values(DrugRow {
                        code: s.code,
                        name: s.name,
                        unit: s.unit,
                        stability_undiluted_days: s.stability_undiluted_days,
                        stability_diluted_days: s.stability_diluted_days,
                        stability_first_fill_days: s.stability_first_fill_days,
                        source: s.source,
                        version: 1,
                        updated_at: time::to_db(now),
                    })
                    .execute(conn)?;
                d += 1;
            }
        }
        Ok((m, d))
    })
}

/// A new pump model, validated.
#[derive(Debug, Clone)]
pub struct NewModel {
    pub code: String,
    pub manufacturer: String,
    pub model: String,
    pub reservoir_ml: Decimal,
    pub default_alarm_ml: Decimal,
    pub service_life_months: u32,
    pub source: String,
}

pub fn create_model(
    conn: &mut DbConnection,
    actor: &Actor,
    m: NewModel,
    now: DateTime<Utc>,
) -> Result<PumpModel, PumpError> {
    dialect::write_transaction(conn, |conn| {
        if pump_models::table.find(&m.code).count().get_result::<i64>(conn)? > 0 {
            return Err(PumpError::Conflict {
                code: "code_taken",
                detail: format!("a pump model with code '{}' exists", m.code),
            });
        }
        diesel::insert_into(pump_models::table)
            .values(ModelRow {
                code: m.code.clone(),
                manufacturer: m.manufacturer,
                model: m.model,
                reservoir_ml: m.reservoir_ml.normalize().to_string(),
                default_alarm_ml: m.default_alarm_ml.normalize().to_string(),
                service_life_months: i64::from(m.service_life_months),
                source: m.source,
                version: 1,
                updated_at: time::to_db(now),
            })
            .execute(conn)?;
        audit::record(conn, actor, "pump_model.create", "pump_model", &m.code, now)?;
        model(conn, &m.code)
    })
}

/// Changes to a model; they apply to pumps registered afterwards (a registered pump keeps
/// its reservoir and alarm volume, which are edited on the pump).
#[derive(Debug, Clone, Default)]
pub struct ModelChanges {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub default_alarm_ml: Option<Decimal>,
    pub service_life_months: Option<u32>,
    pub source: Option<String>,
}

pub fn update_model(
    conn: &mut DbConnection,
    actor: &Actor,
    code: &str,
    expected_version: i64,
    c: ModelChanges,
    now: DateTime<Utc>,
) -> Result<PumpModel, PumpError> {
    dialect::write_transaction(conn, |conn| {
        let m = model(conn, code)?;
        if m.version != expected_version {
            return Err(stale(m.version));
        }
        let alarm = c.default_alarm_ml.unwrap_or(m.default_alarm_ml);
        if alarm <= Decimal::ZERO || alarm >= m.reservoir_ml {
            return Err(clinic_domain::ValidationErrors::single(clinic_domain::FieldError::new(
                "default_alarm_ml",
                "out_of_range",
                "the alarm volume must be above 0 and below the reservoir",
            ))
            .into());
        }
        let written = diesel::update(
            pump_models::table
                .find(code)
                .filter(pump_models::version.eq(expected_version)),
        )
        .set((
            pump_models::manufacturer.eq(c.manufacturer.unwrap_or(m.manufacturer)),
            pump_models::model.eq(c.model.unwrap_or(m.model)),
            pump_models::default_alarm_ml.eq(alarm.normalize().to_string()),
            pump_models::service_life_months.eq(i64::from(c.service_life_months.unwrap_or(m.service_life_months))),
            pump_models::source.eq(c.source.unwrap_or(m.source)),
            pump_models::version.eq(expected_version + 1),
            pump_models::updated_at.eq(time::to_db(now)),
        ))
        .execute(conn)?;
        if written != 1 {
            return Err(stale(expected_version + 1));
        }
        audit::record(conn, actor, "pump_model.update", "pump_model", code, now)?;
        model(conn, code)
    })
}

/// A new drug or admixture, validated.
#[derive(Debug, Clone)]
pub struct NewDrug {
    pub code: String,
    pub name: String,
    pub unit: MassUnit,
    pub stability_undiluted_days: Option<u32>,
    pub stability_diluted_days: Option<u32>,
    pub stability_first_fill_days: Option<u32>,
    pub source: String,
}

pub fn create_drug(conn: &mut DbConnection, actor: &Actor, d: NewDrug, now: DateTime<Utc>) -> Result<Drug, PumpError> {
    dialect::write_transaction(conn, |conn| {
        if drugs::table.find(&d.code).count().get_result::<i64>(conn)? > 0 {
            return Err(PumpError::Conflict {
                code: "code_taken",
                detail: format!("a drug with code '{}' exists", d.code),
            });
        }
        diesel::insert_into(drugs::table)
            .values(DrugRow {
                code: d.code.clone(),
                name: d.name,
                unit: d.unit.as_str().to_owned(),
                stability_undiluted_days: d.stability_undiluted_days.map(i64::from),
                stability_diluted_days: d.stability_diluted_days.map(i64::from),
                stability_first_fill_days: d.stability_first_fill_days.map(i64::from),
                source: d.source,
                version: 1,
                updated_at: time::to_db(now),
            })
            .execute(conn)?;
        audit::record(conn, actor, "drug.create", "drug", &d.code, now)?;
        drug(conn, &d.code)
    })
}
