//! Property: whatever sequence of bookings, reschedules and cancellations is attempted, a
//! provider never holds two live appointments whose blocked spans (buffers included)
//! overlap. Runs on SQLite, and on PostgreSQL with TEST_DATABASE_URL.

use chrono::{DateTime, Duration, TimeZone, Utc, Weekday};
use clinic_domain::contact::PersonName;
use clinic_domain::ids::AppointmentId;
use clinic_domain::patient::{Language, NewPatient};
use clinic_domain::scheduling::{AppointmentStatus, WorkingInterval};
use clinic_domain::time::ClinicZone;
use clinic_patients::audit::{Actor, AuditWriter};
use clinic_scheduling::appointments::{self, AppointmentFilter, Booking, NewAppointment};
use clinic_scheduling::providers::{self, ProviderFields};
use clinic_scheduling::types;
use clinic_store::testing::TestDatabase;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Book { slot: u32, kind: usize },
    Reschedule { which: usize, slot: u32 },
    Cancel { which: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..48, 0usize..3).prop_map(|(slot, kind)| Op::Book { slot, kind }),
        (0usize..20, 0u32..48).prop_map(|(which, slot)| Op::Reschedule { which, slot }),
        (0usize..20).prop_map(|which| Op::Cancel { which }),
    ]
}

const KINDS: [&str; 3] = ["consultation", "refill", "follow_up"];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single().expect("instant")
}

/// Starts on a 10-minute grid across two days from 08:00 UTC.
fn slot_start(slot: u32) -> DateTime<Utc> {
    let day = i64::from(slot / 24);
    Utc.with_ymd_and_hms(2027, 1, 4, 8, 0, 0).single().expect("instant")
        + Duration::days(day)
        + Duration::minutes(i64::from(slot % 24) * 20)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn live_appointments_never_overlap(ops in proptest::collection::vec(op(), 1..30)) {
        let db = TestDatabase::new();
        let mut conn = db.url().establish().expect("connect");
        let writer = AuditWriter::start(db.url().clone());
        let actor = Actor::system();
        let zone = ClinicZone::parse("UTC").expect("zone");
        types::seed(&mut conn, now()).expect("types");
        let hours: Vec<WorkingInterval> = [Weekday::Mon, Weekday::Tue, Weekday::Wed]
            .into_iter()
            .map(|weekday| WorkingInterval {
                weekday,
                start: chrono::NaiveTime::from_hms_opt(8, 0, 0).expect("time"),
                end: chrono::NaiveTime::from_hms_opt(18, 0, 0).expect("time"),
            })
            .collect();
        let provider = providers::create(&mut conn, ProviderFields { name: "P".into(), role: "r".into(), time_zone: zone, hours }, now())
            .expect("provider");
        let patient = clinic_patients::repo::create(&mut conn, &actor, NewPatient {
            given_name: PersonName::parse("A").expect("name"),
            family_name: PersonName::parse("B").expect("name"),
            email: None, phone: None, date_of_birth: None, time_zone: zone,
            preferred_language: Language::default(), email_consent: false, notes: None,
        }, now()).expect("patient");

        let mut made: Vec<AppointmentId> = Vec::new();
        for op in ops {
            match op {
                Op::Book { slot, kind } => {
                    let new = NewAppointment { patient_id: patient.id, provider_id: provider.id, type_code: KINDS[kind].into(), start: slot_start(slot), note: None };
                    if let Ok(Booking::Created(a)) = appointments::book(&mut conn, &actor, new, None, zone, now()) {
                        made.push(a.id);
                    }
                }
                Op::Reschedule { which, slot } => {
                    if let Some(id) = made.get(which % made.len().max(1)) {
                        let _ = appointments::reschedule(&mut conn, &actor, *id, slot_start(slot), zone, now());
                    }
                }
                Op::Cancel { which } => {
                    if let Some(id) = made.get(which % made.len().max(1)) {
                        let _ = appointments::set_status(&mut conn, &actor, *id, AppointmentStatus::Cancelled, Some("t".into()), now());
                    }
                }
            }
            let (all, _) = appointments::list(&mut conn, &writer, &actor, &AppointmentFilter::default(), 100, now()).expect("list");
            let spans: Vec<_> = all
                .iter()
                .filter(|a| a.status.is_live())
                .map(|a| {
                    let t = types::get(&mut conn, &a.type_code).expect("type").rules();
                    t.blocked(a.start)
                })
                .collect();
            for (i, x) in spans.iter().enumerate() {
                for y in &spans[i + 1..] {
                    prop_assert!(!x.overlaps(y), "overlap: {x:?} and {y:?}");
                }
            }
        }
    }
}
