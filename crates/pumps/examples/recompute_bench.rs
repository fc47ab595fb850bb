//! Cost of recomputing one pump's stored forecast (issue 5: under 1 ms), for bench/pumps_scale.sh.
//!
//!     cargo run --release -p clinic-pumps --example recompute_bench -- <database-url> [N]
//!
//! On the given database (migrated and catalogue-seeded here if needed) it creates a patient,
//! a pump, a flex programme and a fill, then runs `registry::recompute` N times (default
//! 1000), each in its own `dialect::write_transaction`, after 20 untimed warm-up calls. It
//! reports two timings per call: the recompute alone (inside the open transaction: load the
//! pump, policy, last fill and programmes, run the forecast, write the row) and the whole
//! transaction (begin + recompute + commit). In the application the recompute runs inside
//! the fill's (or programme's) own transaction, so the first is its added cost. Output: one
//! human-readable block, then one `RESULT` line per timing for scripts:
//!
//!     RESULT recompute n=1000 mean_us=… p50_us=… p99_us=… max_us=…
//!     RESULT transaction n=1000 mean_us=… p50_us=… p99_us=… max_us=…

use std::process::ExitCode;
use std::time::Instant;

use chrono::{Duration, NaiveTime, Utc};
use clinic_domain::contact::PersonName;
use clinic_domain::forecast::{Delivery, Programme, Step};
use clinic_domain::patient::{Language, NewPatient};
use clinic_domain::time::ClinicZone;
use clinic_patients::audit::Actor;
use clinic_pumps::registry::{self, NewFill, NewProgramme, NewPump};
use clinic_pumps::PumpError;
use clinic_store::{dialect, DatabaseUrl};
use rust_decimal::Decimal;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recompute_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn time(h: u32, m: u32) -> Result<NaiveTime, String> {
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(|| "bad time".to_owned())
}

/// mean, p50, p99, max in microseconds.
fn stats(samples: &mut [f64]) -> (f64, f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let at = |q: f64| samples[(((n as f64) * q).ceil() as usize).clamp(1, n) - 1];
    let mean = samples.iter().sum::<f64>() / n as f64;
    (mean, at(0.50), at(0.99), samples[n - 1])
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: recompute_bench <database-url> [iterations]")?;
    let n: usize = match args.next() {
        Some(s) => s.parse().map_err(|_| format!("not a count: {s}"))?,
        None => 1000,
    };
    if n == 0 {
        return Err("iterations must be at least 1".into());
    }
    let db = DatabaseUrl::parse(&url).map_err(err)?;
    let mut conn = db.establish().map_err(err)?;
    clinic_store::migrations::run_pending(&mut conn).map_err(err)?;
    let now = Utc::now();
    clinic_pumps::catalog::seed(&mut conn, now).map_err(err)?;

    let zone = ClinicZone::default();
    let actor = Actor::system();
    let patient = clinic_patients::repo::create(
        &mut conn,
        &actor,
        NewPatient {
            given_name: PersonName::parse("Recompute").map_err(|e| format!("{e:?}"))?,
            family_name: PersonName::parse("Bench").map_err(|e| format!("{e:?}"))?,
            email: None,
            phone: None,
            date_of_birth: None,
            time_zone: zone,
            preferred_language: Language::default(),
            email_consent: false,
            notes: None,
        },
        now,
    )
    .map_err(err)?;
    let pump = registry::create(
        &mut conn,
        &actor,
        NewPump {
            patient_id: patient.id,
            model_code: "synchromed-ii-40".into(),
            serial_number: format!("RB-{}", now.timestamp_micros()),
            implanted_on: zone.local_date(now) - Duration::days(365),
            alarm_ml: None,
            replacement_indicator_on: None,
        },
        zone,
        now,
    )
    .map_err(err)?;
    // Baclofen, flex: 20 mcg/h 06:00–22:00 and 35 mcg/h 22:00–06:00, a bolus of 25 mcg up
    // to 4 a day (700 mcg/day); 40 mL of 2000 mcg/mL lasts about 108 days to the alarm.
    let programme = Programme {
        effective_at: now - Duration::days(2),
        delivery: Delivery::Flex {
            steps: vec![
                Step {
                    start: time(6, 0)?,
                    rate_per_hour: Decimal::from(20),
                },
                Step {
                    start: time(22, 0)?,
                    rate_per_hour: Decimal::from(35),
                },
            ],
        },
        bolus_dose: Decimal::from(25),
        bolus_max_per_day: 4,
    };
    registry::record_programme(&mut conn, &actor, &pump.id, NewProgramme { programme }, zone, now).map_err(err)?;
    let outcome = registry::record_fill(
        &mut conn,
        &actor,
        &pump.id,
        NewFill {
            filled_at: now - Duration::hours(1),
            drug_code: "baclofen".into(),
            concentration: Decimal::from(2000),
            concentration_unit: "mcg/mL".into(),
            diluted: false,
            volume_ml: Decimal::from(40),
            residual_ml: Decimal::from(4),
            prime_ml: Decimal::ZERO,
            first_fill: false,
            clinician: "Bench".into(),
        },
        zone,
        now,
    )
    .map_err(err)?;

    let mut inner = Vec::with_capacity(n);
    let mut outer = Vec::with_capacity(n);
    let mut last = outcome.forecast.clone();
    for i in 0..(n + 20) {
        let started = Instant::now();
        let (forecast, took) = dialect::write_transaction(&mut conn, |conn| {
            let t = Instant::now();
            let f = registry::recompute(conn, &pump.id, zone, now)?;
            Ok::<_, PumpError>((f, t.elapsed()))
        })
        .map_err(err)?;
        let total = started.elapsed();
        if i >= 20 {
            inner.push(took.as_secs_f64() * 1e6);
            outer.push(total.as_secs_f64() * 1e6);
        }
        last = forecast;
    }
    if last.due_date != outcome.forecast.due_date {
        return Err(format!(
            "the recomputed due date {} differs from the fill's {}",
            last.due_date, outcome.forecast.due_date
        ));
    }

    println!(
        "backend {}; pump {} due {} ({}, {} mL/day); {n} recomputes after 20 warm-up calls",
        db.backend(),
        pump.id,
        last.due_date,
        last.binding.as_str(),
        last.daily_volume_ml
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    for (name, samples) in [("recompute", &mut inner), ("transaction", &mut outer)] {
        let (mean, p50, p99, max) = stats(samples);
        println!("RESULT {name} n={n} mean_us={mean:.1} p50_us={p50:.1} p99_us={p99:.1} max_us={max:.1}");
    }
    Ok(())
}
