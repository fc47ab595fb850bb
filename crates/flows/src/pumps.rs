//! Pump changes: registering a pump, changing it (alarm volume, replacement indicator,
//! explant), recording a fill or a dose programme, and the clinic's forecast policy. Each
//! stores the recomputed refill forecast in the change's transaction, under the pump's lock.

use chrono::{DateTime, Utc};
use clinic_domain::time::ClinicZone;
use clinic_patients::audit::Actor;
use clinic_pumps::catalog::{self, Policy};
use clinic_pumps::registry::{
    self, FillOutcome, NewFill, NewProgramme, NewPump, ProgramRow, Pump, PumpChanges, StoredForecast,
};
use clinic_store::{dialect, DbConnection};
use rust_decimal::Decimal;

use crate::FlowError;

pub fn register(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewPump,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Pump, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(registry::create(conn, actor, new, zone, now)?))
}

/// Applies `changes` if the pump is still at `expected_version` (409 otherwise).
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    expected_version: i64,
    changes: PumpChanges,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Pump, FlowError> {
    dialect::write_transaction(conn, |conn| {
        Ok(registry::update(conn, actor, id, expected_version, changes, zone, now)?)
    })
}

/// Records a refill: the expected residual, the discrepancy flag and the new forecast.
pub fn record_fill(
    conn: &mut DbConnection,
    actor: &Actor,
    pump_id: &str,
    fill: NewFill,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<FillOutcome, FlowError> {
    dialect::write_transaction(conn, |conn| {
        Ok(registry::record_fill(conn, actor, pump_id, fill, zone, now)?)
    })
}

/// Records a new dose programme and the forecast it gives.
pub fn record_programme(
    conn: &mut DbConnection,
    actor: &Actor,
    pump_id: &str,
    programme: NewProgramme,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(ProgramRow, StoredForecast), FlowError> {
    dialect::write_transaction(conn, |conn| {
        Ok(registry::record_programme(conn, actor, pump_id, programme, zone, now)?)
    })
}

/// Changes the forecast policy and recomputes every pump's forecast under it, together.
pub fn set_forecast_policy(
    conn: &mut DbConnection,
    actor: &Actor,
    expected_version: i64,
    margin_days: u32,
    over_infusion_factor: Option<Decimal>,
    zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Policy, FlowError> {
    dialect::write_transaction(conn, |conn| {
        let policy = catalog::set_policy(conn, actor, expected_version, margin_days, over_infusion_factor, now)?;
        registry::recompute_all(conn, zone, now)?;
        Ok(policy)
    })
}
