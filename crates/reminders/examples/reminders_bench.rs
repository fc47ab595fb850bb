//! Reminders at scale (issue 6, item 12), for bench/reminders.sh.
//!
//!     reminders_bench seed <database-url> [patients]       100,000 patients by default, each
//!                                                          with a pump and an appointment
//!     reminders_bench plan <database-url>                  times one planning pass, twice
//!     reminders_bench dispatch <database-url> <smtp-url> [n]   sends n confirmations (10,000)
//!     reminders_bench sink <port>                          an SMTP sink (mailin-embedded)
//!
//! `seed` builds one realistic patient, pump, programme and fill through the crates' own
//! functions, then copies them in bulk: every patient gets a pump due on a day spread evenly
//! over the next 180 days, and an appointment spread over the next 90 days across 1,000
//! providers (so no provider is double-booked). `plan` runs `planner::plan` on that database:
//! the first pass creates the day's reminders, the second finds them all planned. `dispatch`
//! queues n confirmations for the nearest appointments and runs the dispatcher's batches
//! (claim, re-read, render with .ics, send over SMTP, record) until none are left.
//! Each mode prints `RESULT` lines for scripts.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use clinic_domain::contact::PersonName;
use clinic_domain::forecast::{Delivery, Programme, Step};
use clinic_domain::ids::ProviderId;
use clinic_domain::patient::{Language, NewPatient};
use clinic_domain::reminders::ReminderSettings;
use clinic_domain::time::ClinicZone;
use clinic_patients::audit::Actor;
use clinic_pumps::registry::{self, NewFill, NewProgramme, NewPump};
use clinic_reminders::compose::{ClinicDetails, Composer};
use clinic_reminders::dispatcher::{DispatchOptions, Dispatcher, Report};
use clinic_reminders::links::LinkSigner;
use clinic_reminders::mailer::{Mailer, Sender};
use clinic_reminders::outbox::{self, NewOutboxRow};
use clinic_reminders::templates::Templates;
use clinic_scheduling::providers::{self, ProviderFields};
use clinic_store::schema::{appointments, patients, pumps};
use clinic_store::{time, DatabaseUrl, DbConnection};
use diesel::prelude::*;
use rust_decimal::Decimal;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reminders_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

const USAGE: &str = "usage: reminders_bench seed|plan|dispatch|sink …";

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sink") => sink(args.get(1).ok_or(USAGE)?),
        Some(mode @ ("seed" | "plan" | "dispatch")) => {
            let url = DatabaseUrl::parse(args.get(1).ok_or(USAGE)?).map_err(err)?;
            let mut conn = url.establish().map_err(err)?;
            clinic_store::migrations::run_pending(&mut conn).map_err(err)?;
            match mode {
                "seed" => seed(&mut conn, args.get(2).map_or(Ok(100_000), |n| n.parse().map_err(err))?),
                "plan" => plan(&mut conn),
                _ => dispatch(
                    &url,
                    args.get(2).ok_or(USAGE)?,
                    args.get(3).map_or(Ok(10_000), |n| n.parse().map_err(err))?,
                ),
            }
        }
        _ => Err(USAGE.into()),
    }
}

fn sink(port: &str) -> Result<(), String> {
    let port: u16 = port.parse().map_err(err)?;
    let _sink = clinic_reminders::testing::SmtpSink::bind(&format!("127.0.0.1:{port}")).map_err(err)?;
    println!("sink listening on 127.0.0.1:{port}");
    loop {
        std::thread::park();
    }
}

fn name(s: &str) -> Result<PersonName, String> {
    PersonName::parse(s).map_err(|e| format!("{e:?}"))
}

fn seed(conn: &mut DbConnection, n: usize) -> Result<(), String> {
    let now = Utc::now();
    let zone = ClinicZone::default();
    let actor = Actor::system();
    clinic_scheduling::types::seed(conn, now).map_err(err)?;
    clinic_pumps::catalog::seed(conn, now).map_err(err)?;
    let started = Instant::now();

    // The template: a patient, a pump, a flex baclofen programme and a fill.
    let template = clinic_patients::repo::create(
        conn,
        &actor,
        NewPatient {
            given_name: name("Template")?,
            family_name: name("Patient")?,
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
        conn,
        &actor,
        NewPump {
            patient_id: template.id,
            model_code: "synchromed-ii-40".into(),
            serial_number: "BENCH-TEMPLATE".into(),
            implanted_on: zone.local_date(now) - Duration::days(365),
            alarm_ml: None,
            replacement_indicator_on: None,
        },
        zone,
        now,
    )
    .map_err(err)?;
    let at = |h| NaiveTime::from_hms_opt(h, 0, 0).ok_or("bad time");
    let programme = Programme {
        effective_at: now - Duration::days(2),
        delivery: Delivery::Flex {
            steps: vec![
                Step {
                    start: at(6)?,
                    rate_per_hour: Decimal::from(20),
                },
                Step {
                    start: at(22)?,
                    rate_per_hour: Decimal::from(35),
                },
            ],
        },
        bolus_dose: Decimal::from(25),
        bolus_max_per_day: 4,
    };
    registry::record_programme(conn, &actor, &pump.id, NewProgramme { programme }, zone, now).map_err(err)?;
    let filled = registry::record_fill(
        conn,
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
    let template_due = filled.forecast.due_date.to_string();
    type PumpTemplate = (String, String, String, String, String, String, String);
    let (model, implanted, reservoir, alarm, deadline, binding, forecast): PumpTemplate = pumps::table
        .find(&pump.id)
        .select((
            pumps::model_code,
            pumps::implanted_on,
            pumps::reservoir_ml,
            pumps::alarm_ml,
            pumps::replacement_deadline,
            pumps::due_binding,
            pumps::forecast,
        ))
        .first(conn)
        .map_err(err)?;

    // Providers, each with its own appointments 21.6 hours apart.
    const PROVIDERS: usize = 1000;
    let mut provider_ids: Vec<ProviderId> = Vec::with_capacity(PROVIDERS);
    for i in 0..PROVIDERS {
        let p = providers::create(
            conn,
            ProviderFields {
                name: format!("Provider {i}"),
                role: "physician".into(),
                time_zone: zone,
                hours: Vec::new(),
            },
            now,
        )
        .map_err(err)?;
        provider_ids.push(p.id);
    }

    let today = zone.local_date(now);
    let db_now = time::to_db(now);
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(5000);
        let ids: Vec<String> = (0..chunk).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let patient_rows: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| {
                let i = done + k;
                (
                    patients::id.eq(id.clone()),
                    patients::given_name.eq(format!("Bench{i}")),
                    patients::family_name.eq("Patient"),
                    patients::email.eq(Some(format!("p{i}@example.org"))),
                    patients::phone.eq(Some("+13125550123")),
                    patients::time_zone.eq(if i % 5 == 0 {
                        "America/Los_Angeles"
                    } else {
                        "America/Chicago"
                    }),
                    patients::preferred_language.eq("en"),
                    patients::email_consent.eq(i % 20 != 0),
                    patients::search_key.eq(format!("bench{i} patient")),
                    patients::version.eq(1i64),
                    patients::created_at.eq(db_now),
                    patients::updated_at.eq(db_now),
                )
            })
            .collect();
        let pump_rows: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(k, patient)| {
                let i = done + k;
                let due = (today + Duration::days((i % 180) as i64)).to_string();
                (
                    pumps::id.eq(uuid::Uuid::now_v7().to_string()),
                    pumps::patient_id.eq(patient.clone()),
                    pumps::model_code.eq(model.clone()),
                    pumps::serial_number.eq(format!("BENCH-{i}")),
                    pumps::implanted_on.eq(implanted.clone()),
                    pumps::reservoir_ml.eq(reservoir.clone()),
                    pumps::alarm_ml.eq(alarm.clone()),
                    pumps::replacement_deadline.eq(deadline.clone()),
                    pumps::status.eq("active"),
                    pumps::version.eq(1i64),
                    pumps::created_at.eq(db_now),
                    pumps::updated_at.eq(db_now),
                    pumps::due_date.eq(due.clone()),
                    pumps::due_binding.eq(binding.clone()),
                    pumps::forecast.eq(forecast.replace(&template_due, &due)),
                    pumps::forecast_at.eq(db_now),
                )
            })
            .collect();
        let appointment_rows: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(k, patient)| {
                let i = done + k;
                let start: DateTime<Utc> =
                    now + Duration::minutes(60 + (i / PROVIDERS) as i64 * 1296 + (i % 60) as i64);
                (
                    appointments::id.eq(uuid::Uuid::now_v7().to_string()),
                    appointments::patient_id.eq(patient.clone()),
                    appointments::provider_id.eq(provider_ids[i % PROVIDERS].to_string()),
                    appointments::type_code.eq("consultation"),
                    appointments::starts_at.eq(time::to_db(start)),
                    appointments::ends_at.eq(time::to_db(start + Duration::minutes(60))),
                    appointments::blocked_from.eq(time::to_db(start)),
                    appointments::blocked_until.eq(time::to_db(start + Duration::minutes(70))),
                    appointments::status.eq("booked"),
                    appointments::sequence.eq(0i64),
                    appointments::version.eq(1i64),
                    appointments::created_at.eq(db_now),
                    appointments::updated_at.eq(db_now),
                )
            })
            .collect();
        clinic_store::dialect::write_transaction(conn, |conn| {
            // Rows per statement stay under SQLite's bound-parameter limit.
            for c in patient_rows.chunks(60) {
                clinic_store::on_native!(conn, x => diesel::insert_into(patients::table).values(c).execute(x))?;
            }
            for c in pump_rows.chunks(50) {
                clinic_store::on_native!(conn, x => diesel::insert_into(pumps::table).values(c).execute(x))?;
            }
            for c in appointment_rows.chunks(60) {
                clinic_store::on_native!(conn, x => diesel::insert_into(appointments::table).values(c).execute(x))?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .map_err(err)?;
        done += chunk;
    }
    println!(
        "seeded {n} patients, pumps and appointments ({PROVIDERS} providers) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn plan(conn: &mut DbConnection) -> Result<(), String> {
    let settings = ReminderSettings::default();
    let zone = ClinicZone::default();
    for pass in ["first", "again"] {
        let now = Utc::now();
        let started = Instant::now();
        let planned = clinic_reminders::planner::plan(conn, &settings, zone, now).map_err(err)?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "RESULT plan_{pass} ms={ms:.0} enqueued={} outreach_raised={} voided={}",
            planned.enqueued, planned.outreach_raised, planned.voided
        );
    }
    Ok(())
}

fn dispatch(url: &DatabaseUrl, smtp: &str, n: usize) -> Result<(), String> {
    let pool = clinic_store::pool::connect(
        url,
        &clinic_store::pool::PoolOptions {
            max_size: 8,
            ..Default::default()
        },
    )
    .map_err(err)?;
    let mut conn = clinic_store::pool::get(&pool).map_err(err)?;
    let now = Utc::now();
    let booked: Vec<(String, String, chrono::NaiveDateTime)> = appointments::table
        .filter(appointments::status.eq("booked"))
        .filter(appointments::starts_at.gt(time::to_db(now)))
        .order(appointments::starts_at)
        .limit(n as i64)
        .select((appointments::id, appointments::patient_id, appointments::starts_at))
        .load(&mut **conn)
        .map_err(err)?;
    // Only this run's emails are ready: rows the planning pass created wait.
    diesel::update(clinic_store::schema::outbox::table.filter(clinic_store::schema::outbox::state.eq("pending")))
        .set(clinic_store::schema::outbox::state.eq("void"))
        .execute(&mut **conn)
        .map_err(err)?;
    let run = uuid::Uuid::now_v7();
    let rows: Vec<NewOutboxRow> = booked
        .iter()
        .map(|(id, patient, start)| NewOutboxRow {
            dedupe_key: format!("bench:{run}:{id}"),
            kind: "appointment_confirmation".into(),
            subject_type: "appointment".into(),
            subject_id: id.clone(),
            patient_id: Some(patient.clone()),
            refers_to: time::from_db(*start),
            due_at: now,
        })
        .collect();
    let queued = outbox::enqueue_many(&mut conn, rows, now).map_err(err)?;
    let composer = Arc::new(Composer {
        templates: Arc::new(Templates::load(None).map_err(err)?),
        clinic: ClinicDetails {
            name: "Lakeside Pain Clinic".into(),
            phone: "+13125550100".into(),
            location: "100 Lake St, Chicago".into(),
            time_zone: ClinicZone::default(),
            public_url: "https://clinic.example".into(),
        },
        sender: Sender {
            from: "Lakeside Pain Clinic <reminders@clinic.example>".parse().map_err(err)?,
            reply_to: None,
        },
        links: LinkSigner::load_or_create(&mut conn, now).map_err(err)?,
    });
    drop(conn);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    let options = DispatchOptions::default();
    let report = runtime.block_on(async {
        // `memory` measures everything but the SMTP exchange.
        let mailer = if smtp == "memory" {
            Mailer::memory().0
        } else {
            Mailer::smtp(smtp)?
        };
        let dispatcher = Dispatcher::new(pool, mailer, composer, options);
        let started = Instant::now();
        let mut total = Report::default();
        loop {
            let batch = dispatcher.dispatch_batch(now).await.map_err(err)?;
            total += batch;
            if batch.claimed == 0 {
                break;
            }
        }
        Ok::<_, String>((total, started.elapsed().as_secs_f64()))
    })?;
    let (total, seconds) = report;
    println!(
        "RESULT dispatch n={queued} sent={} failed={} retrying={} skipped={} seconds={seconds:.2} per_second={:.0}",
        total.sent,
        total.failed,
        total.retrying,
        total.skipped,
        total.sent as f64 / seconds
    );
    Ok(())
}
