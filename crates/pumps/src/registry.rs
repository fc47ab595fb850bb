//! Pumps, their fills and dose programmes, and the stored forecast. Every write that can
//! change the forecast recomputes and stores it in the same transaction; every read and
//! write of a pump is audited against its patient.

use chrono::{DateTime, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use clinic_domain::forecast::{self, Binding, Delivery, Forecast, Inputs, Programme, Step};
use clinic_domain::ids::PatientId;
use clinic_domain::time::ClinicZone;
use clinic_domain::{FieldError, ValidationErrors};
use clinic_patients::audit::{self, Actor, AuditWriter, PendingEvent};
use clinic_patients::repo as patients;
use clinic_store::schema::{pump_fills, pump_programs, pumps, settings};
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::catalog::{self, Drug, PumpModel};
use crate::{corrupt, decimal, stale, PumpError};

const SUBJECT: &str = "patient";

#[derive(Debug, Clone, PartialEq, Queryable)]
struct PumpRow {
    id: String,
    patient_id: String,
    model_code: String,
    serial_number: String,
    implanted_on: String,
    reservoir_ml: String,
    alarm_ml: String,
    replacement_indicator_on: Option<String>,
    replacement_deadline: String,
    status: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    due_date: String,
    due_binding: String,
    alarm_at: Option<NaiveDateTime>,
    forecast: String,
    forecast_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pump {
    pub id: String,
    pub patient_id: PatientId,
    pub model_code: String,
    pub serial_number: String,
    pub implanted_on: NaiveDate,
    pub reservoir_ml: Decimal,
    pub alarm_ml: Decimal,
    pub replacement_indicator_on: Option<NaiveDate>,
    pub replacement_deadline: NaiveDate,
    /// `active` or `explanted`.
    pub status: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub forecast: StoredForecast,
}

/// The forecast as stored with the pump: the result and every input it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredForecast {
    pub due_date: NaiveDate,
    pub binding: Binding,
    pub alarm_at: Option<DateTime<Utc>>,
    pub volume_due: Option<NaiveDate>,
    pub stability_due: Option<NaiveDate>,
    pub battery_due: Option<NaiveDate>,
    pub daily_volume_ml: Option<Decimal>,
    pub usable_volume_ml: Decimal,
    pub problems: Vec<String>,
    pub computed_at: DateTime<Utc>,
    pub inputs: ForecastInputs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastInputs {
    pub time_zone: String,
    pub filled_at: Option<DateTime<Utc>>,
    pub drug: Option<String>,
    pub concentration: Option<Decimal>,
    pub concentration_unit: Option<String>,
    pub fill_volume_ml: Option<Decimal>,
    pub prime_volume_ml: Option<Decimal>,
    pub alarm_volume_ml: Decimal,
    pub stability_days: Option<u32>,
    pub battery_deadline: NaiveDate,
    pub margin_days: u32,
    pub over_infusion_factor: Option<Decimal>,
    pub daily_dose: Option<Decimal>,
    pub programmes: usize,
}

fn date(s: &str, what: &str) -> Result<NaiveDate, PumpError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| corrupt(what))
}

fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl TryFrom<PumpRow> for Pump {
    type Error = PumpError;
    fn try_from(r: PumpRow) -> Result<Self, PumpError> {
        Ok(Pump {
            patient_id: r.patient_id.parse().map_err(|_| corrupt("patient id"))?,
            implanted_on: date(&r.implanted_on, "implant date")?,
            reservoir_ml: decimal(&r.reservoir_ml, "reservoir")?,
            alarm_ml: decimal(&r.alarm_ml, "alarm volume")?,
            replacement_indicator_on: r
                .replacement_indicator_on
                .as_deref()
                .map(|d| date(d, "ERI date"))
                .transpose()?,
            replacement_deadline: date(&r.replacement_deadline, "replacement deadline")?,
            forecast: serde_json::from_str(&r.forecast).map_err(|_| corrupt("stored forecast"))?,
            created_at: time::from_db(r.created_at),
            updated_at: time::from_db(r.updated_at),
            id: r.id,
            model_code: r.model_code,
            serial_number: r.serial_number,
            status: r.status,
            version: r.version,
        })
    }
}

/// The deadline for replacing a pump: 90 days after its replacement indicator (the pump
/// stops then, intrathecal.md §2), else implant date plus the model's service life.
pub fn replacement_deadline(model: &PumpModel, implanted_on: NaiveDate, eri: Option<NaiveDate>) -> NaiveDate {
    match eri {
        Some(e) => e + Duration::days(90),
        None => implanted_on
            .checked_add_months(Months::new(model.service_life_months))
            .unwrap_or(implanted_on),
    }
}

/// A fill as stored.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct Fill {
    pub id: String,
    pub pump_id: String,
    pub filled_at: NaiveDateTime,
    pub drug_code: String,
    pub concentration: String,
    pub concentration_unit: String,
    pub diluted: bool,
    pub volume_ml: String,
    pub residual_ml: String,
    pub prime_ml: String,
    pub first_fill: bool,
    pub stability_days: i64,
    pub clinician: String,
    pub expected_residual_ml: Option<String>,
    pub discrepancy: bool,
    pub recorded_by: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct ProgramRow {
    pub id: String,
    pub pump_id: String,
    pub effective_at: NaiveDateTime,
    pub kind: String,
    pub daily_dose: Option<String>,
    pub steps: Option<String>,
    pub bolus_dose: String,
    pub bolus_max_per_day: i64,
    pub recorded_by: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Steps stored as `HH:MM=rate;HH:MM=rate`.
pub fn encode_steps(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| format!("{}={}", s.start.format("%H:%M"), s.rate_per_hour))
        .collect::<Vec<_>>()
        .join(";")
}

pub fn decode_steps(s: &str) -> Result<Vec<Step>, PumpError> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (t, r) = p.split_once('=').ok_or_else(|| corrupt("step"))?;
            Ok(Step {
                start: NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| corrupt("step time"))?,
                rate_per_hour: decimal(r, "step rate")?,
            })
        })
        .collect()
}

impl ProgramRow {
    pub fn to_programme(&self) -> Result<Programme, PumpError> {
        let delivery = match self.kind.as_str() {
            "continuous" => Delivery::Continuous {
                daily_dose: decimal(self.daily_dose.as_deref().unwrap_or(""), "daily dose")?,
            },
            "flex" => Delivery::Flex {
                steps: decode_steps(self.steps.as_deref().unwrap_or(""))?,
            },
            _ => return Err(corrupt("programme kind")),
        };
        Ok(Programme {
            effective_at: time::from_db(self.effective_at),
            delivery,
            bolus_dose: decimal(&self.bolus_dose, "bolus")?,
            bolus_max_per_day: u32::try_from(self.bolus_max_per_day).map_err(|_| corrupt("bolus count"))?,
        })
    }
}

/// Takes the pump's row lock for the rest of the transaction (a no-op update): concurrent
/// fills, programmes and edits of one pump then run one after the other on PostgreSQL, so
/// each recomputed forecast sees the other's rows (and two bookings of its refill from two
/// tabs see each other). SQLite's writer lock already does this.
pub fn lock(conn: &mut DbConnection, id: &str) -> Result<(), PumpError> {
    let n = diesel::update(pumps::table.find(id))
        .set(pumps::version.eq(pumps::version))
        .execute(conn)?;
    if n == 0 {
        return Err(PumpError::NotFound("pump"));
    }
    Ok(())
}

fn load_row(conn: &mut DbConnection, id: &str) -> Result<PumpRow, PumpError> {
    pumps::table
        .find(id)
        .first(conn)
        .optional()?
        .ok_or(PumpError::NotFound("pump"))
}

/// The patient's active pumps, not audited (for the patient's own self-service pages, which
/// audit what they show).
pub fn active_for_patient_unaudited(conn: &mut DbConnection, patient: PatientId) -> Result<Vec<Pump>, PumpError> {
    let rows: Vec<PumpRow> = pumps::table
        .filter(pumps::patient_id.eq(patient.to_string()))
        .filter(pumps::status.eq("active"))
        .order(pumps::id)
        .load(conn)?;
    rows.into_iter().map(Pump::try_from).collect()
}

/// One pump, not audited: for the reminder dispatcher, which re-checks a refill reminder
/// against the current forecast before sending it.
pub fn load_unaudited(conn: &mut DbConnection, id: &str) -> Result<Pump, PumpError> {
    Pump::try_from(load_row(conn, id)?)
}

/// The id of the pump's latest fill, if it has one: what a refill "episode" is (a patient's
/// refill link is for the refill after this fill).
pub fn last_fill_id(conn: &mut DbConnection, pump_id: &str) -> Result<Option<String>, PumpError> {
    Ok(last_fill(conn, pump_id)?.map(|f| f.id))
}

fn last_fill(conn: &mut DbConnection, pump_id: &str) -> Result<Option<Fill>, PumpError> {
    Ok(pump_fills::table
        .filter(pump_fills::pump_id.eq(pump_id))
        .order((pump_fills::filled_at.desc(), pump_fills::id.desc()))
        .first(conn)
        .optional()?)
}

fn programmes(conn: &mut DbConnection, pump_id: &str) -> Result<Vec<ProgramRow>, PumpError> {
    Ok(pump_programs::table
        .filter(pump_programs::pump_id.eq(pump_id))
        .order((pump_programs::effective_at, pump_programs::id))
        .load(conn)?)
}

/// The forecast inputs of a pump as stored now.
fn inputs_for(
    conn: &mut DbConnection,
    row: &PumpRow,
    zone: ClinicZone,
) -> Result<(Option<Inputs>, ForecastInputs), PumpError> {
    let policy = catalog::policy(conn)?;
    let fill = last_fill(conn, &row.id)?;
    let progs: Vec<Programme> = programmes(conn, &row.id)?
        .iter()
        .map(ProgramRow::to_programme)
        .collect::<Result<_, _>>()?;
    let alarm = decimal(&row.alarm_ml, "alarm volume")?;
    let deadline = date(&row.replacement_deadline, "replacement deadline")?;
    let mut echo = ForecastInputs {
        time_zone: zone.name().to_owned(),
        filled_at: None,
        drug: None,
        concentration: None,
        concentration_unit: None,
        fill_volume_ml: None,
        prime_volume_ml: None,
        alarm_volume_ml: alarm,
        stability_days: None,
        battery_deadline: deadline,
        margin_days: policy.margin_days,
        over_infusion_factor: policy.over_infusion_factor,
        daily_dose: None,
        programmes: progs.len(),
    };
    let Some(fill) = fill else {
        return Ok((None, echo));
    };
    let inputs = Inputs {
        zone,
        filled_at: time::from_db(fill.filled_at),
        fill_volume_ml: decimal(&fill.volume_ml, "fill volume")?,
        prime_volume_ml: decimal(&fill.prime_ml, "prime volume")?,
        alarm_volume_ml: alarm,
        concentration: Some(decimal(&fill.concentration, "concentration")?),
        programmes: progs,
        stability_days: u32::try_from(fill.stability_days).ok(),
        battery_deadline: Some(deadline),
        margin_days: policy.margin_days,
        over_infusion_factor: policy.over_infusion_factor,
    };
    echo.filled_at = Some(inputs.filled_at);
    echo.drug = Some(fill.drug_code);
    echo.concentration = inputs.concentration;
    echo.concentration_unit = Some(fill.concentration_unit);
    echo.fill_volume_ml = Some(inputs.fill_volume_ml);
    echo.prime_volume_ml = Some(inputs.prime_volume_ml);
    echo.stability_days = inputs.stability_days;
    echo.daily_dose = inputs
        .programmes
        .iter()
        .rev()
        .find(|p| p.effective_at <= inputs.filled_at)
        .or(inputs.programmes.first())
        .map(Programme::daily_amount);
    Ok((Some(inputs), echo))
}

/// Recomputes and stores a pump's forecast. Call inside the write transaction of the change.
pub fn recompute(
    conn: &mut DbConnection,
    pump_id: &str,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<StoredForecast, PumpError> {
    let row = load_row(conn, pump_id)?;
    let today = zone.local_date(now);
    let (inputs, echo) = inputs_for(conn, &row, zone)?;
    let f: Forecast = match &inputs {
        Some(i) => forecast::forecast(i, today),
        None => Forecast {
            due_date: today,
            binding: Binding::MissingData,
            alarm_at: None,
            volume_due: None,
            stability_due: None,
            battery_due: Some(echo.battery_deadline),
            daily_volume_ml: None,
            usable_volume_ml: Decimal::ZERO,
            problems: vec!["no fill is recorded for this pump".to_owned()],
        },
    };
    let stored = StoredForecast {
        due_date: f.due_date,
        binding: f.binding,
        alarm_at: f.alarm_at,
        volume_due: f.volume_due,
        stability_due: f.stability_due,
        battery_due: f.battery_due,
        daily_volume_ml: f.daily_volume_ml.map(|v| v.round_dp(6).normalize()),
        usable_volume_ml: f.usable_volume_ml,
        problems: f.problems,
        computed_at: now,
        inputs: echo,
    };
    let json = serde_json::to_string(&stored).map_err(|e| corrupt(&e.to_string()))?;
    diesel::update(pumps::table.find(pump_id))
        .set((
            pumps::due_date.eq(iso(stored.due_date)),
            pumps::due_binding.eq(stored.binding.as_str()),
            pumps::alarm_at.eq(stored.alarm_at.map(time::to_db)),
            pumps::forecast.eq(json),
            pumps::forecast_at.eq(time::to_db(now)),
        ))
        .execute(conn)?;
    Ok(stored)
}

/// Validated fields of a new pump.
#[derive(Debug, Clone)]
pub struct NewPump {
    pub patient_id: PatientId,
    pub model_code: String,
    pub serial_number: String,
    pub implanted_on: NaiveDate,
    pub alarm_ml: Option<Decimal>,
    pub replacement_indicator_on: Option<NaiveDate>,
}

fn serial_taken(conn: &mut DbConnection, serial: &str, except: Option<&str>) -> Result<bool, PumpError> {
    let mut q = pumps::table.filter(pumps::serial_number.eq(serial)).into_boxed();
    if let Some(id) = except {
        q = q.filter(pumps::id.ne(id));
    }
    Ok(q.count().get_result::<i64>(conn)? > 0)
}

fn check_alarm(model: &PumpModel, alarm: Decimal) -> Result<(), PumpError> {
    if alarm <= Decimal::ZERO || alarm >= model.reservoir_ml {
        return Err(ValidationErrors::single(FieldError::new(
            "alarm_ml",
            "out_of_range",
            format!(
                "the alarm volume must be above 0 and below the {} mL reservoir",
                model.reservoir_ml
            ),
        ))
        .into());
    }
    Ok(())
}

pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewPump,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Pump, PumpError> {
    dialect::write_transaction(conn, |conn| {
        let mut errors = ValidationErrors::new();
        if !patients::exists_active(conn, new.patient_id)? {
            errors.push(FieldError::new(
                "patient_id",
                "unknown_patient",
                "no active patient with this id",
            ));
        }
        let model = match catalog::model(conn, &new.model_code) {
            Ok(m) => Some(m),
            Err(PumpError::NotFound(_)) => {
                errors.push(FieldError::new(
                    "model",
                    "unknown_model",
                    "no pump model with this code",
                ));
                None
            }
            Err(e) => return Err(e),
        };
        errors.finish()?;
        let model = model.ok_or_else(|| corrupt("model"))?;
        let alarm = new.alarm_ml.unwrap_or(model.default_alarm_ml);
        check_alarm(&model, alarm)?;
        if serial_taken(conn, &new.serial_number, None)? {
            return Err(PumpError::Conflict {
                code: "serial_taken",
                detail: format!("a pump with serial number {} is registered", new.serial_number),
            });
        }
        let id = clinic_domain::ids::PatientId::new().to_string();
        let deadline = replacement_deadline(&model, new.implanted_on, new.replacement_indicator_on);
        diesel::insert_into(pumps::table)
            .values((
                pumps::id.eq(&id),
                pumps::patient_id.eq(new.patient_id.to_string()),
                pumps::model_code.eq(&model.code),
                pumps::serial_number.eq(&new.serial_number),
                pumps::implanted_on.eq(iso(new.implanted_on)),
                pumps::reservoir_ml.eq(model.reservoir_ml.to_string()),
                pumps::alarm_ml.eq(alarm.to_string()),
                pumps::replacement_indicator_on.eq(new.replacement_indicator_on.map(iso)),
                pumps::replacement_deadline.eq(iso(deadline)),
                pumps::status.eq("active"),
                pumps::version.eq(1i64),
                pumps::created_at.eq(time::to_db(now)),
                pumps::updated_at.eq(time::to_db(now)),
                pumps::due_date.eq(iso(zone.local_date(now))),
                pumps::due_binding.eq(Binding::MissingData.as_str()),
                pumps::forecast.eq("{}"),
                pumps::forecast_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        recompute(conn, &id, zone, now)?;
        audit::record(conn, actor, "pump.create", SUBJECT, &new.patient_id.to_string(), now)?;
        load_row(conn, &id)?.try_into()
    })
}

fn read_event(actor: &Actor, action: &'static str, patient: &str, now: DateTime<Utc>) -> PendingEvent {
    PendingEvent {
        actor: actor.clone(),
        action,
        subject_type: SUBJECT,
        subject_id: patient.to_owned(),
        at: now,
    }
}

/// One pump (audited read).
pub fn get(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Pump, PumpError> {
    let row = load_row(conn, id)?;
    audit.record(vec![read_event(actor, "pump.read", &row.patient_id, now)])?;
    row.try_into()
}

/// Pumps, newest first: all, or one patient's (audited per patient).
pub fn list(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    patient: Option<PatientId>,
    after: Option<&str>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<(Vec<Pump>, bool), PumpError> {
    let mut q = pumps::table.into_boxed();
    if let Some(p) = patient {
        if !patients::exists(conn, p)? {
            return Err(PumpError::NotFound("patient"));
        }
        q = q.filter(pumps::patient_id.eq(p.to_string()));
    }
    if let Some(a) = after {
        q = q.filter(pumps::id.lt(a.to_owned()));
    }
    let mut rows: Vec<PumpRow> = q.order(pumps::id.desc()).limit(limit + 1).load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let mut seen: Vec<String> = rows.iter().map(|r| r.patient_id.clone()).collect();
    seen.sort();
    seen.dedup();
    audit.record(seen.iter().map(|p| read_event(actor, "pump.list", p, now)).collect())?;
    Ok((rows.into_iter().map(Pump::try_from).collect::<Result<_, _>>()?, more))
}

/// Validated changes to a pump.
#[derive(Debug, Clone, Default)]
pub struct PumpChanges {
    pub serial_number: Option<String>,
    pub alarm_ml: Option<Decimal>,
    pub replacement_indicator_on: Option<Option<NaiveDate>>,
    /// Only `explanted` (a pump is never re-implanted).
    pub explanted: bool,
}

pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    expected_version: i64,
    c: PumpChanges,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Pump, PumpError> {
    dialect::write_transaction(conn, |conn| {
        lock(conn, id)?;
        let row = load_row(conn, id)?;
        if row.version != expected_version {
            return Err(stale(row.version));
        }
        let pump: Pump = row.clone().try_into()?;
        let model = catalog::model(conn, &row.model_code)?;
        let alarm = c.alarm_ml.unwrap_or(pump.alarm_ml);
        check_alarm(&model, alarm)?;
        let serial = c.serial_number.unwrap_or(pump.serial_number);
        if serial_taken(conn, &serial, Some(id))? {
            return Err(PumpError::Conflict {
                code: "serial_taken",
                detail: format!("a pump with serial number {serial} is registered"),
            });
        }
        let eri = c.replacement_indicator_on.unwrap_or(pump.replacement_indicator_on);
        let status = if c.explanted { "explanted" } else { pump.status.as_str() };
        diesel::update(pumps::table.find(id).filter(pumps::version.eq(expected_version)))
            .set((
                pumps::serial_number.eq(&serial),
                pumps::alarm_ml.eq(alarm.to_string()),
                pumps::replacement_indicator_on.eq(eri.map(iso)),
                pumps::replacement_deadline.eq(iso(replacement_deadline(&model, pump.implanted_on, eri))),
                pumps::status.eq(status),
                pumps::version.eq(expected_version + 1),
                pumps::updated_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        recompute(conn, id, zone, now)?;
        audit::record(conn, actor, "pump.update", SUBJECT, &row.patient_id, now)?;
        load_row(conn, id)?.try_into()
    })
}

/// What a clinician records at a refill.
#[derive(Debug, Clone)]
pub struct NewFill {
    pub filled_at: DateTime<Utc>,
    pub drug_code: String,
    pub concentration: Decimal,
    /// `mg/mL` or `mcg/mL`; must match the drug's unit.
    pub concentration_unit: String,
    pub diluted: bool,
    pub volume_ml: Decimal,
    pub residual_ml: Decimal,
    pub prime_ml: Decimal,
    pub first_fill: bool,
    pub clinician: String,
}

/// A recorded fill with what the previous forecast expected to be left, and the forecast
/// it leads to.
#[derive(Debug, Clone)]
pub struct FillOutcome {
    pub fill: Fill,
    pub forecast: StoredForecast,
}

fn field(name: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(name, code, message)
}

pub fn record_fill(
    conn: &mut DbConnection,
    actor: &Actor,
    pump_id: &str,
    f: NewFill,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<FillOutcome, PumpError> {
    dialect::write_transaction(conn, |conn| {
        lock(conn, pump_id)?;
        let row = load_row(conn, pump_id)?;
        if row.status != "active" {
            return Err(PumpError::Conflict {
                code: "pump_explanted",
                detail: "an explanted pump cannot be filled".into(),
            });
        }
        let pump: Pump = row.clone().try_into()?;
        let mut e = ValidationErrors::new();
        let drug: Option<Drug> = match catalog::drug(conn, &f.drug_code) {
            Ok(d) => Some(d),
            Err(PumpError::NotFound(_)) => {
                e.push(field("drug", "unknown_drug", "no drug with this code"));
                None
            }
            Err(err) => return Err(err),
        };
        if f.volume_ml <= Decimal::ZERO || f.volume_ml > pump.reservoir_ml {
            e.push(field(
                "volume_ml",
                "out_of_range",
                format!(
                    "the volume must be above 0 and at most the {} mL reservoir",
                    pump.reservoir_ml
                ),
            ));
        }
        if f.residual_ml < Decimal::ZERO || f.residual_ml > pump.reservoir_ml {
            e.push(field(
                "residual_ml",
                "out_of_range",
                format!("the residual must be 0 to {} mL", pump.reservoir_ml),
            ));
        }
        if f.prime_ml < Decimal::ZERO || f.prime_ml >= f.volume_ml.max(Decimal::ZERO) && f.prime_ml > Decimal::ZERO {
            e.push(field(
                "prime_ml",
                "out_of_range",
                "the priming bolus must be 0 or more and less than the volume",
            ));
        }
        if f.concentration <= Decimal::ZERO {
            e.push(field(
                "concentration",
                "out_of_range",
                "the concentration must be above 0",
            ));
        }
        if f.filled_at > now + Duration::minutes(5) {
            e.push(field("filled_at", "in_future", "the fill is in the future"));
        }
        if zone.local_date(f.filled_at) < pump.implanted_on {
            e.push(field(
                "filled_at",
                "before_implant",
                "the fill is before the pump was implanted",
            ));
        }
        let mut stability = None;
        if let Some(d) = &drug {
            if f.concentration_unit != d.unit.per_ml() {
                e.push(field(
                    "concentration_unit",
                    "wrong_unit",
                    format!("{} is measured in {}", d.name, d.unit.per_ml()),
                ));
            }
            stability = forecast::stability_for(
                f.first_fill,
                f.diluted,
                d.stability_undiluted_days,
                d.stability_diluted_days,
                d.stability_first_fill_days,
            );
            if stability.is_none() {
                e.push(field(
                    "drug",
                    "no_stability_limit",
                    format!(
                        "{} has no stability limit; enter one in the drug catalogue before filling",
                        d.name
                    ),
                ));
            }
        }
        e.finish()?;
        let stability = stability.ok_or_else(|| corrupt("stability"))?;

        // What the previous fill's forecast expected to be left at this moment.
        let (previous, _) = inputs_for(conn, &row, zone)?;
        let expected = previous
            .as_ref()
            .and_then(|i| forecast::expected_volume(i, f.filled_at));
        let discrepancy = expected.is_some_and(|x| forecast::is_discrepancy(pump.reservoir_ml, x, f.residual_ml));
        let id = clinic_domain::ids::PatientId::new().to_string();
        diesel::insert_into(pump_fills::table)
            .values((
                pump_fills::id.eq(&id),
                pump_fills::pump_id.eq(pump_id),
                pump_fills::filled_at.eq(time::to_db(f.filled_at)),
                pump_fills::drug_code.eq(&f.drug_code),
                pump_fills::concentration.eq(f.concentration.normalize().to_string()),
                pump_fills::concentration_unit.eq(&f.concentration_unit),
                pump_fills::diluted.eq(f.diluted),
                pump_fills::volume_ml.eq(f.volume_ml.normalize().to_string()),
                pump_fills::residual_ml.eq(f.residual_ml.normalize().to_string()),
                pump_fills::prime_ml.eq(f.prime_ml.normalize().to_string()),
                pump_fills::first_fill.eq(f.first_fill),
                pump_fills::stability_days.eq(i64::from(stability)),
                pump_fills::clinician.eq(&f.clinician),
                pump_fills::expected_residual_ml.eq(expected.map(|x| x.to_string())),
                pump_fills::discrepancy.eq(discrepancy),
                pump_fills::recorded_by.eq(actor.token_id.map(|t| t.to_string())),
                pump_fills::created_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        let forecast = recompute(conn, pump_id, zone, now)?;
        audit::record(conn, actor, "pump.fill", SUBJECT, &row.patient_id, now)?;
        let fill = pump_fills::table.find(&id).first(conn)?;
        Ok(FillOutcome { fill, forecast })
    })
}

pub fn fills(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    pump_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Fill>, PumpError> {
    let row = load_row(conn, pump_id)?;
    audit.record(vec![read_event(actor, "pump.fills", &row.patient_id, now)])?;
    Ok(pump_fills::table
        .filter(pump_fills::pump_id.eq(pump_id))
        .order((pump_fills::filled_at.desc(), pump_fills::id.desc()))
        .load(conn)?)
}

/// Active pumps due on or before `until` (ISO date), soonest first, with their patients'
/// names: one query on the stored, indexed due date. Not audited: the caller audits.
pub fn due_with_names(conn: &mut DbConnection, until: &str, limit: i64) -> Result<Vec<(Pump, String)>, PumpError> {
    use clinic_store::schema::patients;
    let rows: Vec<(PumpRow, String, String)> = pumps::table
        .inner_join(patients::table)
        .filter(pumps::status.eq("active"))
        .filter(pumps::due_date.le(until))
        .order((pumps::due_date, pumps::id))
        .limit(limit)
        .select((pumps::all_columns, patients::given_name, patients::family_name))
        .load(conn)?;
    rows.into_iter()
        .map(|(row, given, family)| Ok((Pump::try_from(row)?, format!("{given} {family}"))))
        .collect()
}

/// Whether each pump's last fill (given as (pump id, filled_at)) was flagged for review, in
/// one query.
pub fn discrepancies(
    conn: &mut DbConnection,
    last_fills: &[(String, DateTime<Utc>)],
) -> Result<Vec<String>, PumpError> {
    let ids: Vec<&str> = last_fills.iter().map(|(id, _)| id.as_str()).collect();
    let flagged: Vec<(String, NaiveDateTime)> = pump_fills::table
        .filter(pump_fills::pump_id.eq_any(&ids))
        .filter(pump_fills::discrepancy.eq(true))
        .select((pump_fills::pump_id, pump_fills::filled_at))
        .load(conn)?;
    Ok(flagged
        .into_iter()
        .filter(|(id, at)| last_fills.iter().any(|(p, f)| p == id && time::to_db(*f) == *at))
        .map(|(id, _)| id)
        .collect())
}

/// A validated programme.
#[derive(Debug, Clone)]
pub struct NewProgramme {
    pub programme: Programme,
}

pub fn record_programme(
    conn: &mut DbConnection,
    actor: &Actor,
    pump_id: &str,
    p: NewProgramme,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(ProgramRow, StoredForecast), PumpError> {
    dialect::write_transaction(conn, |conn| {
        lock(conn, pump_id)?;
        let row = load_row(conn, pump_id)?;
        if row.status != "active" {
            return Err(PumpError::Conflict {
                code: "pump_explanted",
                detail: "an explanted pump cannot be programmed".into(),
            });
        }
        let id = clinic_domain::ids::PatientId::new().to_string();
        let (kind, daily, steps) = match &p.programme.delivery {
            Delivery::Continuous { daily_dose } => ("continuous", Some(daily_dose.normalize().to_string()), None),
            Delivery::Flex { steps } => ("flex", None, Some(encode_steps(steps))),
        };
        diesel::insert_into(pump_programs::table)
            .values((
                pump_programs::id.eq(&id),
                pump_programs::pump_id.eq(pump_id),
                pump_programs::effective_at.eq(time::to_db(p.programme.effective_at)),
                pump_programs::kind.eq(kind),
                pump_programs::daily_dose.eq(daily),
                pump_programs::steps.eq(steps),
                pump_programs::bolus_dose.eq(p.programme.bolus_dose.normalize().to_string()),
                pump_programs::bolus_max_per_day.eq(i64::from(p.programme.bolus_max_per_day)),
                pump_programs::recorded_by.eq(actor.token_id.map(|t| t.to_string())),
                pump_programs::created_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        let forecast = recompute(conn, pump_id, zone, now)?;
        audit::record(conn, actor, "pump.program", SUBJECT, &row.patient_id, now)?;
        Ok((pump_programs::table.find(&id).first(conn)?, forecast))
    })
}

pub fn programme_history(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    pump_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ProgramRow>, PumpError> {
    let row = load_row(conn, pump_id)?;
    audit.record(vec![read_event(actor, "pump.programs", &row.patient_id, now)])?;
    let mut list = programmes(conn, pump_id)?;
    list.reverse();
    Ok(list)
}

/// Recomputes every active pump's forecast (after a policy change), in the caller's
/// transaction. Returns how many were recomputed.
pub fn recompute_all(conn: &mut DbConnection, zone: ClinicZone, now: DateTime<Utc>) -> Result<usize, PumpError> {
    let ids: Vec<String> = pumps::table
        .filter(pumps::status.eq("active"))
        .select(pumps::id)
        .load(conn)?;
    for id in &ids {
        recompute(conn, id, zone, now)?;
    }
    Ok(ids.len())
}

/// The `settings` row naming the clinic time zone every stored forecast was made in.
const FORECAST_ZONE: &str = "forecast_time_zone";

/// Recomputes the active pumps whose stored forecast was made in another clinic time zone:
/// `CLINIC_TIME_ZONE` changed since. Due dates are clinic calendar dates and flex steps follow
/// the clinic's wall clock, so those forecasts are stale. `serve` runs this at start. The zone
/// of the last pass is kept in `settings`, so an ordinary start reads one row; only a start in
/// another zone (or the first) reads the pumps, in one write transaction. Returns how many
/// were recomputed.
pub fn recompute_made_in_other_zones(
    conn: &mut DbConnection,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<usize, PumpError> {
    // The zone of the last pass and the row's version (none yet: version 0).
    let recorded = |conn: &mut DbConnection| -> Result<Option<(String, i64)>, PumpError> {
        Ok(settings::table
            .find(FORECAST_ZONE)
            .select((settings::body, settings::version))
            .first::<(String, i64)>(conn)
            .optional()?)
    };
    let is_current = |row: &Option<(String, i64)>| row.as_ref().is_some_and(|(z, _)| z == zone.name());
    if is_current(&recorded(conn)?) {
        return Ok(0);
    }
    dialect::write_transaction(conn, |conn| {
        // Under the write lock: another instance may have done it meanwhile.
        let previous = recorded(conn)?;
        if is_current(&previous) {
            return Ok(0);
        }
        let rows: Vec<(String, String)> = pumps::table
            .filter(pumps::status.eq("active"))
            .select((pumps::id, pumps::forecast))
            .load(conn)?;
        let stale: Vec<String> = rows
            .into_iter()
            .filter(|(_, json)| {
                // An unreadable forecast is recomputed too: that repairs it.
                serde_json::from_str::<StoredForecast>(json).map_or(true, |f| f.inputs.time_zone != zone.name())
            })
            .map(|(id, _)| id)
            .collect();
        for id in &stale {
            recompute(conn, id, zone, now)?;
        }
        let version = previous.map_or(0, |(_, v)| v);
        clinic_store::named_settings::write(conn, FORECAST_ZONE, zone.name(), version, None, now)?;
        Ok(stale.len())
    })
}

/// Expected reservoir volumes over time.
pub type VolumeCurve = Vec<(DateTime<Utc>, Decimal)>;

/// The expected reservoir volume from the last fill until a little past the alarm, sampled
/// every `step` (for the forecast plot), with the stored forecast. Empty without a fill.
pub fn volume_curve(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    pump_id: &str,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(Pump, VolumeCurve), PumpError> {
    let pump = get(conn, audit, actor, pump_id, now)?;
    let row = load_row(conn, pump_id)?;
    let (inputs, _) = inputs_for(conn, &row, zone)?;
    let Some(inputs) = inputs else {
        return Ok((pump, Vec::new()));
    };
    let end = pump
        .forecast
        .alarm_at
        .map(|a| a + Duration::days(3))
        .unwrap_or(inputs.filled_at + Duration::days(30))
        .max(now.min(inputs.filled_at + Duration::days(3 * 366)));
    let total = (end - inputs.filled_at).num_minutes().max(1);
    // About 400 points, whatever the span.
    let step = Duration::minutes((total / 400).max(30));
    let mut points = Vec::new();
    let mut t = inputs.filled_at;
    while t <= end {
        if let Some(v) = forecast::expected_volume(&inputs, t) {
            points.push((t, v));
        }
        t += step;
    }
    Ok((pump, points))
}
