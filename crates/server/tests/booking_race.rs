//! Fifty clients book the same slot at the same moment against the real server: exactly
//! one 201, forty-nine 409s, one appointment stored. On PostgreSQL this exercises the
//! exclusion constraint; on SQLite the immediate write transaction.

mod common;

use std::sync::{Arc, Barrier};

use chrono::{Duration as Days, Timelike, Utc};
use clinic_store::testing::TestDatabase;
use common::{clinic, Server};
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build())
}

fn post(agent: &ureq::Agent, url: &str, token: &str, body: &Value) -> (u16, Value) {
    let mut res = agent
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(body)
        .expect("request");
    let status = res.status().as_u16();
    (status, res.body_mut().read_json().unwrap_or(Value::Null))
}

#[test]
fn fifty_simultaneous_bookings_of_one_slot_store_exactly_one() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let server = Server::start(clinic(&db, data.path()).env("CLINIC_DB_POOL_SIZE", "16"));
    let (token, base) = (server.token.clone().expect("first-start token"), server.base.clone());
    let a = agent();
    let every_day: Vec<Value> = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .iter()
    .map(|d| json!({"weekday": d, "start": "00:00", "end": "23:55"}))
    .collect();
    let (s, provider) = post(
        &a,
        &format!("{base}/api/v1/providers"),
        &token,
        &json!({"name": "Dr. Race", "role": "physician", "time_zone": "UTC", "hours": every_day}),
    );
    assert_eq!(s, 201, "{provider}");
    let mut patients = Vec::new();
    for i in 0..10 {
        let (s, p) = post(
            &a,
            &format!("{base}/api/v1/patients"),
            &token,
            &json!({"given_name": format!("P{i}"), "family_name": "Race"}),
        );
        assert_eq!(s, 201);
        patients.push(p["id"].as_str().expect("id").to_owned());
    }
    let start = (Utc::now() + Days::days(2))
        .with_hour(10)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .expect("time");
    let start = start.with_nanosecond(0).expect("time").to_rfc3339();

    let gate = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (gate, base, token, start) = (gate.clone(), base.clone(), token.clone(), start.clone());
            let body = json!({"patient_id": patients[i % 10], "provider_id": provider["id"], "appointment_type": "consultation", "start": start});
            std::thread::spawn(move || {
                let agent = agent();
                gate.wait();
                post(&agent, &format!("{base}/api/v1/appointments"), &token, &body)
            })
        })
        .collect();
    let results: Vec<(u16, Value)> = threads.into_iter().map(|t| t.join().expect("client thread")).collect();
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let conflicts: Vec<&Value> = results.iter().filter(|(s, _)| *s == 409).map(|(_, b)| b).collect();
    assert_eq!(
        (created, conflicts.len()),
        (1, 49),
        "{:?}",
        results.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    assert!(conflicts.iter().all(|b| b["code"] == "slot_taken"), "{conflicts:?}");

    let mut res = a
        .get(format!(
            "{base}/api/v1/appointments?provider_id={}",
            provider["id"].as_str().expect("id")
        ))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("list");
    let list: Value = res.body_mut().read_json().expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}
