//! The refill forecast (shared/domain/intrathecal.md §3): when a pump's reservoir reaches its
//! low-reservoir alarm, capped by drug stability and battery, and never a day late.
//!
//! Arithmetic is exact: volumes, doses and concentrations are `Decimal`s, time is whole
//! seconds, and every rounding goes toward an earlier alarm. The simulation walks the dose
//! programme step by step from the fill instant: flex steps follow the clinic's wall clock
//! (a 22:00–06:00 step is 9 hours long on the night the clocks go back), boluses are spread
//! evenly over the hours, and programme changes after the fill take effect at their instant.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::time::ClinicZone;

/// A flex step: from `start` (wall clock) until the next step's start, at `rate` per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub start: NaiveTime,
    /// Drug amount per hour, in the concentration's mass unit (mg or mcg).
    pub rate_per_hour: Decimal,
}

/// How the pump delivers its drug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The same rate all day: `daily_dose` per 24 elapsed hours.
    Continuous { daily_dose: Decimal },
    /// Rates by time of day; steps sorted by start, each lasting until the next (the last
    /// wraps to the first), so together they cover the day without overlap.
    Flex { steps: Vec<Step> },
}

/// A dose programme in force from `effective_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programme {
    pub effective_at: DateTime<Utc>,
    pub delivery: Delivery,
    /// Patient bolus: dose per bolus and the most allowed per day (counted as all taken).
    pub bolus_dose: Decimal,
    pub bolus_max_per_day: u32,
}

impl Programme {
    /// Drug amount per day, boluses included.
    pub fn daily_amount(&self) -> Decimal {
        let basal = match &self.delivery {
            Delivery::Continuous { daily_dose } => *daily_dose,
            Delivery::Flex { steps } => {
                let mut total = Decimal::ZERO;
                for (i, s) in steps.iter().enumerate() {
                    let next = steps[(i + 1) % steps.len()].start;
                    let minutes = minutes_between(s.start, next);
                    total += s.rate_per_hour * Decimal::from(minutes) / Decimal::from(60);
                }
                total
            }
        };
        basal + self.bolus_dose * Decimal::from(self.bolus_max_per_day)
    }

    fn bolus_per_hour(&self) -> Decimal {
        self.bolus_dose * Decimal::from(self.bolus_max_per_day) / Decimal::from(24)
    }
}

/// Checks flex steps given as (start, end, rate): rates not negative, and the intervals
/// tile the 24-hour day exactly (each ends where the next begins, the last where the first
/// begins). Returns the steps sorted by start.
pub fn check_flex_steps(steps: &[(NaiveTime, NaiveTime, Decimal)]) -> Result<Vec<Step>, crate::ValidationErrors> {
    use crate::FieldError;
    let mut errors = crate::ValidationErrors::new();
    if steps.is_empty() || steps.len() > 48 {
        errors.push(FieldError::new(
            "steps",
            "invalid_steps",
            "give 1 to 48 steps covering the 24-hour day",
        ));
        return Err(errors);
    }
    for (i, (_, _, rate)) in steps.iter().enumerate() {
        if *rate < Decimal::ZERO {
            errors.push(FieldError::new(
                format!("steps[{i}].rate_per_hour"),
                "negative",
                "a rate cannot be negative",
            ));
        }
    }
    let mut sorted: Vec<&(NaiveTime, NaiveTime, Decimal)> = steps.iter().collect();
    sorted.sort_by_key(|s| s.0);
    let total: i64 = sorted.iter().map(|(a, b, _)| minutes_between(*a, *b)).sum();
    let chained = sorted
        .iter()
        .enumerate()
        .all(|(i, (_, end, _))| *end == sorted[(i + 1) % sorted.len()].0);
    if total != 24 * 60 || !chained {
        errors.push(FieldError::new(
            "steps",
            "steps_do_not_cover_the_day",
            "the steps must cover the 24-hour day without gaps or overlaps (each ends where the next starts)",
        ));
    }
    errors.finish()?;
    Ok(sorted
        .into_iter()
        .map(|(start, _, rate)| Step {
            start: *start,
            rate_per_hour: *rate,
        })
        .collect())
}

/// The mass unit of a drug's doses and concentration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MassUnit {
    #[serde(rename = "mg")]
    Mg,
    #[serde(rename = "mcg")]
    Mcg,
}

impl MassUnit {
    pub fn as_str(&self) -> &'static str {
        match self {
            MassUnit::Mg => "mg",
            MassUnit::Mcg => "mcg",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mg" => Some(MassUnit::Mg),
            "mcg" => Some(MassUnit::Mcg),
            _ => None,
        }
    }

    /// The concentration unit that goes with it.
    pub fn per_ml(&self) -> &'static str {
        match self {
            MassUnit::Mg => "mg/mL",
            MassUnit::Mcg => "mcg/mL",
        }
    }
}

/// Which stability limit applies to a fill: the first fill of a new pump, else diluted,
/// else undiluted; a more specific limit that is unknown falls back to the general one.
pub fn stability_for(
    first_fill: bool,
    diluted: bool,
    undiluted: Option<u32>,
    diluted_limit: Option<u32>,
    first: Option<u32>,
) -> Option<u32> {
    let general = if diluted {
        diluted_limit.or(undiluted)
    } else {
        undiluted
    };
    if first_fill {
        first.or(general)
    } else {
        general
    }
}

/// A refill discrepancy worth review: more than 1 mL off on reservoirs up to 20 mL, more
/// than 2 mL on larger ones (intrathecal.md §3 rule 9).
pub fn is_discrepancy(reservoir_ml: Decimal, expected_ml: Decimal, found_ml: Decimal) -> bool {
    let tolerance = if reservoir_ml <= Decimal::from(20) {
        Decimal::ONE
    } else {
        Decimal::TWO
    };
    (expected_ml - found_ml).abs() > tolerance
}

/// Minutes from `a` to the next `b` on the clock (a full day when equal).
fn minutes_between(a: NaiveTime, b: NaiveTime) -> i64 {
    let d = (b - a).num_minutes();
    if d <= 0 {
        d + 24 * 60
    } else {
        d
    }
}

/// Everything the forecast uses, echoed back with the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub zone: ClinicZone,
    /// When the reservoir was filled, and what it then held (mL).
    pub filled_at: DateTime<Utc>,
    pub fill_volume_ml: Decimal,
    pub prime_volume_ml: Decimal,
    pub alarm_volume_ml: Decimal,
    /// Drug per mL in the programme's mass unit; `None` when unknown.
    pub concentration: Option<Decimal>,
    /// Programmes by `effective_at`; the one in force at the fill is the last that started
    /// at or before it (or the first, if all start later).
    pub programmes: Vec<Programme>,
    /// Days the drug (as filled) stays stable in the pump; `None` when unknown.
    pub stability_days: Option<u32>,
    /// Date by which the pump must be replaced, if known.
    pub battery_deadline: Option<NaiveDate>,
    pub margin_days: u32,
    /// Over-infusion factor (1.145 when the clinic plans for the +14.5 % tolerance).
    pub over_infusion_factor: Option<Decimal>,
}

/// Which limit set the refill due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    Volume,
    Stability,
    Battery,
    /// Inputs missing or contradictory: due now.
    MissingData,
}

impl Binding {
    pub fn as_str(&self) -> &'static str {
        match self {
            Binding::Volume => "volume",
            Binding::Stability => "stability",
            Binding::Battery => "battery",
            Binding::MissingData => "missing_data",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub due_date: NaiveDate,
    pub binding: Binding,
    /// When the reservoir reaches the alarm volume (when it could be computed).
    pub alarm_at: Option<DateTime<Utc>>,
    pub volume_due: Option<NaiveDate>,
    pub stability_due: Option<NaiveDate>,
    pub battery_due: Option<NaiveDate>,
    /// Volume per day under the programme in force at the fill (mL), factor included.
    pub daily_volume_ml: Option<Decimal>,
    pub usable_volume_ml: Decimal,
    /// Why the pump is due now, when it is.
    pub problems: Vec<String>,
}

/// How far the simulation looks ahead. A reservoir that lasts longer has no volume limit in
/// the forecast (stability and battery, far shorter in practice, bind instead).
const HORIZON_DAYS: i64 = 3 * 366;

/// Computes the forecast. `today` is the clinic's current date, used for "due now".
pub fn forecast(inputs: &Inputs, today: NaiveDate) -> Forecast {
    let usable = inputs.fill_volume_ml - inputs.prime_volume_ml - inputs.alarm_volume_ml;
    let fill_date = inputs.zone.local_date(inputs.filled_at);
    let stability_due = inputs.stability_days.map(|d| fill_date + Duration::days(i64::from(d)));
    let battery_due = inputs.battery_deadline;
    let mut problems = Vec::new();

    let concentration = match inputs.concentration {
        Some(c) if c > Decimal::ZERO => Some(c),
        Some(_) => {
            problems.push("the concentration is zero".to_owned());
            None
        }
        None => {
            problems.push("no concentration is recorded for the last fill".to_owned());
            None
        }
    };
    if inputs.programmes.is_empty() {
        problems.push("no dose programme is recorded".to_owned());
    }
    for p in &inputs.programmes {
        if let Delivery::Flex { steps } = &p.delivery {
            if steps.is_empty() {
                problems.push("a flex programme has no steps".to_owned());
            }
        }
    }
    if let Some(p) = programme_at(&inputs.programmes, inputs.filled_at) {
        if p.daily_amount() <= Decimal::ZERO {
            problems.push("the programme delivers nothing while the reservoir holds drug".to_owned());
        }
    }
    if inputs.stability_days.is_none() {
        problems.push("the drug has no stability limit".to_owned());
    }
    if usable <= Decimal::ZERO {
        problems.push(format!(
            "the usable volume is {usable} mL (fill − priming bolus − alarm volume): the alarm is already reached"
        ));
    }
    let factor = inputs.over_infusion_factor.unwrap_or(Decimal::ONE);

    let (alarm_at, daily_volume) = match concentration {
        Some(c) if problems.is_empty() => {
            let first = programme_at(&inputs.programmes, inputs.filled_at);
            let daily = first.map(|p| p.daily_amount() / c * factor);
            match simulate(inputs, c, factor, usable) {
                // None: the reservoir outlasts the look-ahead; stability or battery binds.
                Ok(at) => (at, daily),
                Err(problem) => {
                    problems.push(problem);
                    (None, daily)
                }
            }
        }
        _ => (None, None),
    };

    let volume_due = alarm_at.map(|at| inputs.zone.local_date(at) - Duration::days(i64::from(inputs.margin_days)));
    if !problems.is_empty() {
        return Forecast {
            due_date: today,
            binding: Binding::MissingData,
            alarm_at,
            volume_due,
            stability_due,
            battery_due,
            daily_volume_ml: daily_volume,
            usable_volume_ml: usable,
            problems,
        };
    }
    // The earliest limit wins; ties go to the volume, then stability, then battery.
    let candidates = [
        (volume_due, Binding::Volume),
        (stability_due, Binding::Stability),
        (battery_due, Binding::Battery),
    ];
    let (due_date, binding) = candidates
        .iter()
        .filter_map(|(d, b)| d.map(|d| (d, *b)))
        .min_by_key(|(d, _)| *d)
        .unwrap_or((today, Binding::MissingData));
    Forecast {
        due_date,
        binding,
        alarm_at,
        volume_due,
        stability_due,
        battery_due,
        daily_volume_ml: daily_volume,
        usable_volume_ml: usable,
        problems,
    }
}

/// The programme in force at `at`.
fn programme_at(programmes: &[Programme], at: DateTime<Utc>) -> Option<&Programme> {
    programmes
        .iter()
        .filter(|p| p.effective_at <= at)
        .max_by_key(|p| p.effective_at)
        .or_else(|| programmes.iter().min_by_key(|p| p.effective_at))
}

/// The next instant after `at` at which the flex step changes (on the wall clock).
fn next_step_boundary(zone: ClinicZone, steps: &[Step], at: DateTime<Utc>) -> DateTime<Utc> {
    let local = at.with_timezone(&zone.tz()).naive_local();
    let mut best: Option<DateTime<Utc>> = None;
    // Look at each step start today and tomorrow (and the day after, for safety near DST).
    for day_offset in 0..3 {
        let date = local.date() + Duration::days(day_offset);
        for s in steps {
            let wall = date.and_time(s.start);
            // A start inside the spring-forward gap begins when the clock jumps past it.
            let Some(instant) = zone.first_instant_at_or_after(wall) else {
                continue;
            };
            if instant > at && best.is_none_or(|b| instant < b) {
                best = Some(instant);
            }
        }
    }
    best.unwrap_or(at + Duration::hours(1))
}

/// The step rate in force at `at` (by wall clock).
fn rate_at(zone: ClinicZone, steps: &[Step], at: DateTime<Utc>) -> Decimal {
    let t = at.with_timezone(&zone.tz()).naive_local().time();
    steps
        .iter()
        .rev()
        .find(|s| s.start <= t)
        .or_else(|| steps.last())
        .map(|s| s.rate_per_hour)
        .unwrap_or(Decimal::ZERO)
}

const SECONDS_PER_HOUR: i64 = 3600;

/// Walks the delivery segments from the fill instant (each with a constant mL/hour) and
/// hands each to `visit` until it returns `Some` or the horizon ends.
fn walk<T>(
    inputs: &Inputs,
    concentration: Decimal,
    factor: Decimal,
    mut visit: impl FnMut(DateTime<Utc>, DateTime<Utc>, Decimal) -> Option<T>,
) -> Option<T> {
    let mut t = inputs.filled_at;
    let end = inputs.filled_at + Duration::days(HORIZON_DAYS);
    let mut changes: Vec<DateTime<Utc>> = inputs
        .programmes
        .iter()
        .map(|p| p.effective_at)
        .filter(|e| *e > inputs.filled_at)
        .collect();
    changes.sort();
    while t < end {
        let programme = programme_at(&inputs.programmes, t)?;
        let next_change = changes.iter().find(|c| **c > t).copied().unwrap_or(end);
        let (rate, segment_end) = match &programme.delivery {
            Delivery::Continuous { daily_dose } => (*daily_dose / Decimal::from(24), next_change),
            Delivery::Flex { steps } => (
                rate_at(inputs.zone, steps, t),
                next_step_boundary(inputs.zone, steps, t).min(next_change),
            ),
        };
        let ml_per_hour = (rate + programme.bolus_per_hour()) / concentration * factor;
        if let Some(found) = visit(t, segment_end, ml_per_hour) {
            return Some(found);
        }
        t = segment_end;
    }
    None
}

fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> Decimal {
    Decimal::from((to - from).num_seconds()) / Decimal::from(SECONDS_PER_HOUR)
}

/// Walks from the fill instant until `usable` mL have been delivered: `Ok(None)` when that
/// lies beyond the look-ahead.
fn simulate(
    inputs: &Inputs,
    concentration: Decimal,
    factor: Decimal,
    usable: Decimal,
) -> Result<Option<DateTime<Utc>>, String> {
    let mut remaining = usable;
    let found = walk(inputs, concentration, factor, |start, end, ml_per_hour| {
        if ml_per_hour <= Decimal::ZERO {
            return None;
        }
        let segment_ml = ml_per_hour * hours(start, end);
        if segment_ml >= remaining {
            // Seconds into the segment when the alarm volume is reached, rounded down.
            let exact = remaining / ml_per_hour * Decimal::from(SECONDS_PER_HOUR);
            return Some(exact.floor().to_i64().map(|s| start + Duration::seconds(s)));
        }
        remaining -= segment_ml;
        None
    });
    match found {
        Some(Some(at)) => Ok(Some(at)),
        Some(None) => Ok(None),
        None if inputs.programmes.iter().all(|p| p.daily_amount() <= Decimal::ZERO) => {
            Err("the programme delivers nothing while the reservoir holds drug".to_owned())
        }
        None => Ok(None),
    }
}

/// The volume the reservoir should hold at `at` (fill − priming bolus − delivered, never
/// below zero), or `None` when the inputs cannot say (no concentration or programme).
pub fn expected_volume(inputs: &Inputs, at: DateTime<Utc>) -> Option<Decimal> {
    let c = inputs.concentration.filter(|c| *c > Decimal::ZERO)?;
    if inputs.programmes.is_empty() || at < inputs.filled_at {
        return None;
    }
    // The residual check compares with what the programme delivers; the over-infusion
    // factor is a planning margin for the due date, not an expectation.
    let factor = Decimal::ONE;
    let mut delivered = Decimal::ZERO;
    walk(inputs, c, factor, |start, end, ml_per_hour| {
        if end >= at {
            delivered += ml_per_hour * hours(start, at);
            return Some(());
        }
        delivered += ml_per_hour * hours(start, end);
        None
    })?;
    // To the microlitre: recurring decimals (5/24/25 mL/h) leave digits no one can measure.
    Some(
        (inputs.fill_volume_ml - inputs.prime_volume_ml - delivered)
            .max(Decimal::ZERO)
            .round_dp(3)
            .normalize(),
    )
}

#[cfg(test)]
mod tests;
