//! Scheduling through HTTP: providers, availability (breaks, time off, closures, buffers,
//! notice, horizon, DST north and south), booking under concurrency, idempotency, lifecycle,
//! iCalendar, feeds, public requests.

mod common;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use chrono::{DateTime, TimeZone, Utc};
use common::TestApp;
use serde_json::{json, Value};

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("instant")
}

struct Clinic {
    app: TestApp,
    staff: String,
    provider: String,
    patient: String,
}

/// A clinic "now" on Friday 2027-01-01 12:00 UTC, seeded types, one Chicago provider working
/// weekdays 09:00–12:00 and 13:00–17:00, one patient.
async fn clinic_with(zone: &str) -> Clinic {
    let app = TestApp::new().await;
    app.clock.set(utc(2027, 1, 1, 12, 0));
    {
        let mut conn = clinic_store::pool::get(&app.pool).expect("connection");
        clinic_scheduling::types::seed(&mut conn, app.state().now()).expect("types");
    }
    let staff = app.token(&["scheduling:write", "patients:read"]);
    let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday"]
        .iter()
        .flat_map(|d| {
            [
                json!({"weekday": d, "start": "09:00", "end": "12:00"}),
                json!({"weekday": d, "start": "13:00", "end": "17:00"}),
            ]
        })
        .collect();
    let p = app
        .post(
            "/api/v1/providers",
            &staff,
            json!({"name": "Dr. Ana Ruiz", "role": "pain physician", "time_zone": zone, "hours": hours}),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text());
    let provider = p.json()["id"].as_str().expect("id").to_owned();
    let patient = app.create_patient("Nia", "Okafor").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    Clinic {
        app,
        staff,
        provider,
        patient,
    }
}

async fn clinic() -> Clinic {
    clinic_with("America/Chicago").await
}

impl Clinic {
    async fn slots(&self, kind: &str, from: &str, to: &str) -> Vec<String> {
        let res = self
            .app
            .get(
                &format!(
                    "/api/v1/availability?provider_id={}&appointment_type={kind}&from={}&to={}",
                    self.provider,
                    from.replace('+', "%2B"),
                    to.replace('+', "%2B")
                ),
                &self.staff,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["items"][0]["slots"]
            .as_array()
            .expect("slots")
            .iter()
            .map(|s| s["local_start"].as_str().expect("local").to_owned())
            .collect()
    }

    async fn book(&self, kind: &str, start: &str) -> common::TestResponse {
        self.app
            .post(
                "/api/v1/appointments",
                &self.staff,
                json!({"patient_id": self.patient, "provider_id": self.provider, "appointment_type": kind, "start": start}),
            )
            .await
    }
}

fn times(slots: &[String]) -> Vec<&str> {
    slots.iter().map(|s| &s[11..16]).collect()
}

#[actix_web::test]
async fn availability_honours_breaks_buffers_time_off_and_closures() {
    let c = clinic().await;
    // Monday 2027-01-04, follow-up 20 min + 5 min buffer after, on a 15-minute grid.
    let day = ("2027-01-04T00:00:00-06:00", "2027-01-05T00:00:00-06:00");
    let all = c.slots("follow_up", day.0, day.1).await;
    assert_eq!(all.first().map(String::as_str), Some("2027-01-04T09:00:00"));
    assert!(
        !times(&all).contains(&"11:45"),
        "11:45 + 20 min runs past the 12:00 break"
    );
    assert!(times(&all).contains(&"11:30") && times(&all).contains(&"13:00"));
    assert!(!times(&all).iter().any(|t| t.starts_with("12:")), "lunch is a gap");

    // A consultation 10:00–11:00 with its 10-minute buffer after blocks until 11:10.
    assert_eq!(
        c.book("consultation", "2027-01-04T10:00:00-06:00").await.status,
        StatusCode::CREATED
    );
    let after = times(&c.slots("follow_up", day.0, day.1).await)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        after.contains(&"09:30".to_owned()),
        "09:30 + 20 + 5 buffer ends at 09:55"
    );
    for blocked in ["09:45", "10:00", "10:30", "11:00"] {
        assert!(
            !after.contains(&blocked.to_owned()),
            "{blocked} overlaps the consultation or its buffer"
        );
    }
    assert!(after.contains(&"11:15".to_owned()));

    // Time off in the afternoon.
    let off = c
        .app
        .post(
            &format!("/api/v1/providers/{}/time-off", c.provider),
            &c.staff,
            json!({"starts_at": "2027-01-04T13:00:00-06:00", "ends_at": "2027-01-04T15:00:00-06:00", "reason": "training"}),
        )
        .await;
    assert_eq!(off.status, StatusCode::CREATED, "{}", off.text());
    let with_off = c.slots("follow_up", day.0, day.1).await;
    assert!(!times(&with_off)
        .iter()
        .any(|t| t.starts_with("13:") || t.starts_with("14:")));
    assert!(times(&with_off).contains(&"15:00"));

    // A clinic closure removes the day.
    let closed = c
        .app
        .post(
            "/api/v1/closures",
            &c.staff,
            json!({"date": "2027-01-04", "name": "Staff day"}),
        )
        .await;
    assert_eq!(closed.status, StatusCode::CREATED);
    assert!(c.slots("follow_up", day.0, day.1).await.is_empty());
    c.app
        .post(
            "/api/v1/closures",
            &c.staff,
            json!({"date": "2027-01-04", "name": "Again"}),
        )
        .await
        .problem(409, "already_closed");
    c.book("follow_up", "2027-01-04T15:00:00-06:00")
        .await
        .problem(422, "validation_failed");
}

#[actix_web::test]
async fn minimum_notice_and_horizon_bound_the_slots() {
    let c = clinic().await;
    // Now is Friday 2027-01-01 06:00 in Chicago; the types' notice is 60 min, horizon 180 days.
    let today = c
        .slots("follow_up", "2027-01-01T00:00:00-06:00", "2027-01-02T00:00:00-06:00")
        .await;
    assert_eq!(today.first().map(String::as_str), Some("2027-01-01T09:00:00"));
    c.app.clock.set(utc(2027, 1, 1, 16, 0)); // 10:00 local
    let later = c
        .slots("follow_up", "2027-01-01T00:00:00-06:00", "2027-01-02T00:00:00-06:00")
        .await;
    assert_eq!(
        later.first().map(String::as_str),
        Some("2027-01-01T11:00:00"),
        "an hour's notice"
    );
    let far = c
        .slots("follow_up", "2027-06-28T00:00:00-05:00", "2027-07-03T00:00:00-05:00")
        .await;
    // now (10:00 on 1 January) + 180 days = 11:00 on 30 June: the last bookable start.
    assert_eq!(
        far.last().map(String::as_str),
        Some("2027-06-30T11:00:00"),
        "nothing beyond 180 days"
    );
    assert!(!far.is_empty());
    let res = c.book("follow_up", "2027-01-01T10:30:00-06:00").await;
    res.problem(422, "validation_failed");
    assert_eq!(res.json()["errors"][0]["code"], "too_soon");
    let res = c.book("follow_up", "2027-09-01T10:00:00-05:00").await;
    assert_eq!(res.json()["errors"][0]["code"], "beyond_horizon");
}

#[actix_web::test]
async fn nine_oclock_stays_nine_oclock_across_dst_in_chicago() {
    let c = clinic().await;
    let spring = c
        .slots("consultation", "2027-03-12T00:00:00-06:00", "2027-03-16T00:00:00-05:00")
        .await;
    let nines: Vec<&String> = spring.iter().filter(|s| s.ends_with("T09:00:00")).collect();
    assert_eq!(nines.len(), 2, "Friday and Monday: {spring:?}");
    let res = c.book("consultation", "2027-03-15T09:00:00-05:00").await.json();
    assert_eq!(res["local_start"], "2027-03-15T09:00:00");
    assert_eq!(res["start"], "2027-03-15T14:00:00Z", "CDT: UTC-5");
    c.app.clock.set(utc(2027, 11, 1, 12, 0));
    let fall = c
        .slots("consultation", "2027-11-05T00:00:00-05:00", "2027-11-09T00:00:00-06:00")
        .await;
    assert_eq!(fall.iter().filter(|s| s.ends_with("T09:00:00")).count(), 2);
    let res = c.book("consultation", "2027-11-08T09:00:00-06:00").await.json();
    assert_eq!(res["start"], "2027-11-08T15:00:00Z", "CST: UTC-6");
}

#[actix_web::test]
async fn nine_oclock_stays_nine_oclock_across_dst_in_sydney() {
    let c = clinic_with("Australia/Sydney").await;
    c.app.clock.set(utc(2027, 9, 25, 0, 0));
    // Clocks go forward in Sydney on Sunday 2027-10-03.
    let slots = c
        .slots("consultation", "2027-10-01T00:00:00+10:00", "2027-10-05T00:00:00+11:00")
        .await;
    assert_eq!(
        slots.iter().filter(|s| s.ends_with("T09:00:00")).count(),
        2,
        "{slots:?}"
    );
    let res = c.book("consultation", "2027-10-04T09:00:00+11:00").await.json();
    assert_eq!(res["start"], "2027-10-03T22:00:00Z");
    assert_eq!(res["time_zone"], "Australia/Sydney");
}

#[actix_web::test]
async fn fifty_concurrent_bookings_of_one_slot_give_exactly_one_appointment() {
    let c = clinic().await;
    let mut patients = Vec::new();
    for i in 0..10 {
        patients.push(
            c.app.create_patient(&format!("P{i}"), "Race").await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let attempts = (0..50).map(|i| {
        let body = json!({"patient_id": patients[i % 10], "provider_id": c.provider, "appointment_type": "consultation",
                          "start": "2027-01-05T10:00:00-06:00"});
        let app = &c.app;
        let staff = c.staff.clone();
        async move { app.post("/api/v1/appointments", &staff, body).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let conflicts = results.iter().filter(|r| r.status == StatusCode::CONFLICT).count();
    assert_eq!(
        (created, conflicts),
        (1, 49),
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let conflict = results
        .iter()
        .find(|r| r.status == StatusCode::CONFLICT)
        .expect("a conflict")
        .json();
    assert_eq!(conflict["code"], "slot_taken");
    assert!(
        conflict["detail"]
            .as_str()
            .expect("detail")
            .contains("2027-01-05T16:00:00"),
        "names the conflicting time: {conflict}"
    );
    let list = c
        .app
        .get(&format!("/api/v1/appointments?provider_id={}", c.provider), &c.staff)
        .await
        .json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[actix_web::test]
async fn idempotency_keys_replay_and_refuse_reuse() {
    let c = clinic().await;
    let body = json!({"patient_id": c.patient, "provider_id": c.provider, "appointment_type": "refill", "start": "2027-01-06T09:00:00-06:00"});
    let send = |key: &'static str, body: Value| {
        let req = TestRequest::post()
            .uri("/api/v1/appointments")
            .insert_header(("authorization", format!("Bearer {}", c.staff)))
            .insert_header(("Idempotency-Key", key))
            .set_json(body);
        c.app.send(req)
    };
    let first = send("abc-123", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = send("abc-123", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.json()["id"], first.json()["id"]);
    let mut other = body.clone();
    other["start"] = json!("2027-01-06T10:00:00-06:00");
    let reused = send("abc-123", other).await;
    reused.problem(422, "validation_failed");
    assert_eq!(reused.json()["errors"][0]["code"], "idempotency_key_reused");
    let list = c
        .app
        .get(&format!("/api/v1/appointments?patient_id={}", c.patient), &c.staff)
        .await
        .json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[actix_web::test]
async fn reschedule_cancel_and_status_machine() {
    let c = clinic().await;
    let a = c.book("refill", "2027-01-06T09:00:00-06:00").await.json();
    let id = a["id"].as_str().expect("id");
    assert_eq!(a["sequence"], 0);
    let other = c.book("refill", "2027-01-06T10:00:00-06:00").await.json();

    let moved = c
        .app
        .post(
            &format!("/api/v1/appointments/{id}/reschedule"),
            &c.staff,
            json!({"start": "2027-01-06T11:00:00-06:00"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    let moved = moved.json();
    assert_eq!(
        (
            moved["id"].as_str(),
            moved["sequence"].as_i64(),
            moved["local_start"].as_str()
        ),
        (Some(id), Some(1), Some("2027-01-06T11:00:00"))
    );
    c.app
        .post(
            &format!("/api/v1/appointments/{id}/reschedule"),
            &c.staff,
            json!({"start": "2027-01-06T10:00:00-06:00"}),
        )
        .await
        .problem(409, "slot_taken");
    assert_eq!(
        c.book("refill", "2027-01-06T09:00:00-06:00").await.status,
        StatusCode::CREATED,
        "the old time is free again"
    );

    c.app
        .post(&format!("/api/v1/appointments/{id}/complete"), &c.staff, json!({}))
        .await
        .problem(409, "invalid_transition");
    assert_eq!(
        c.app
            .post(&format!("/api/v1/appointments/{id}/check-in"), &c.staff, json!({}))
            .await
            .json()["status"],
        "checked_in"
    );
    c.app
        .post(&format!("/api/v1/appointments/{id}/no-show"), &c.staff, json!({}))
        .await
        .problem(409, "invalid_transition");
    c.app
        .post(
            &format!("/api/v1/appointments/{id}/reschedule"),
            &c.staff,
            json!({"start": "2027-01-07T09:00:00-06:00"}),
        )
        .await
        .problem(409, "invalid_transition");
    assert_eq!(
        c.app
            .post(&format!("/api/v1/appointments/{id}/complete"), &c.staff, json!({}))
            .await
            .json()["status"],
        "completed"
    );
    c.app
        .post(
            &format!("/api/v1/appointments/{id}/cancel"),
            &c.staff,
            json!({"reason": "x"}),
        )
        .await
        .problem(409, "invalid_transition");

    let oid = other["id"].as_str().expect("id");
    c.app
        .post(
            &format!("/api/v1/appointments/{oid}/cancel"),
            &c.staff,
            json!({"reason": ""}),
        )
        .await
        .problem(422, "validation_failed");
    let cancelled = c
        .app
        .post(
            &format!("/api/v1/appointments/{oid}/cancel"),
            &c.staff,
            json!({"reason": "patient called"}),
        )
        .await
        .json();
    assert_eq!(
        (cancelled["status"].as_str(), cancelled["sequence"].as_i64()),
        (Some("cancelled"), Some(1))
    );
    assert_eq!(
        c.book("refill", "2027-01-06T10:00:00-06:00").await.status,
        StatusCode::CREATED,
        "a cancel frees the time"
    );

    let history = c
        .app
        .get(&format!("/api/v1/appointments/{id}/history"), &c.staff)
        .await
        .json();
    let actions: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|h| h["action"].as_str())
        .collect();
    assert_eq!(actions, ["booked", "rescheduled", "checked_in", "completed"]);
    assert!(history["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|h| h["actor_token_id"].is_string() && h["at"].is_string()));
}

#[actix_web::test]
async fn a_no_show_cannot_be_recorded_before_the_start() {
    let c = clinic().await;
    let booked = c.book("refill", "2027-01-06T09:00:00-06:00").await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text());
    let id = booked.json()["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/appointments/{id}/no-show");

    c.app.clock.set(utc(2027, 1, 6, 14, 59));
    c.app.post(&path, &c.staff, json!({})).await.problem(409, "not_started");
    let unchanged = c.app.get(&format!("/api/v1/appointments/{id}"), &c.staff).await.json();
    assert_eq!(unchanged["status"], "booked", "a refused no-show writes nothing");

    c.app.clock.set(utc(2027, 1, 6, 15, 0));
    assert_eq!(c.app.post(&path, &c.staff, json!({})).await.json()["status"], "no_show");
}

#[actix_web::test]
async fn bad_booking_input_names_fields_and_writes_nothing() {
    let c = clinic().await;
    let count = || async {
        c.app
            .get(&format!("/api/v1/appointments?provider_id={}", c.provider), &c.staff)
            .await
            .json()["items"]
            .as_array()
            .map(Vec::len)
    };
    for (body, field, code) in [
        (
            json!({"patient_id": c.patient, "provider_id": c.provider, "appointment_type": "massage", "start": "2027-01-06T09:00:00-06:00"}),
            "appointment_type",
            "unknown_type",
        ),
        (
            json!({"patient_id": c.patient, "provider_id": c.provider, "appointment_type": "refill", "start": "2027-01-06T07:00:00-06:00"}),
            "start",
            "outside_working_hours",
        ),
        (
            json!({"patient_id": c.patient, "provider_id": c.provider, "appointment_type": "refill", "start": "2027-01-09T10:00:00-06:00"}),
            "start",
            "outside_working_hours",
        ),
        (
            json!({"patient_id": c.patient, "provider_id": c.provider, "appointment_type": "refill", "start": "2027-01-06T09:00:00"}),
            "start",
            "invalid_value",
        ),
        (
            json!({"patient_id": c.patient, "provider_id": c.provider, "appointment_type": "refill", "start": "2027-01-06T09:00:30-06:00"}),
            "start",
            "not_on_a_whole_minute",
        ),
        (
            json!({"patient_id": "nobody", "provider_id": c.provider, "appointment_type": "refill", "start": "2027-01-06T09:00:00-06:00"}),
            "patient_id",
            "invalid_id",
        ),
        (
            json!({"patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", "provider_id": c.provider, "appointment_type": "refill", "start": "2027-01-06T09:00:00-06:00"}),
            "patient_id",
            "unknown_patient",
        ),
    ] {
        let res = c.app.post("/api/v1/appointments", &c.staff, body).await;
        res.problem(422, "validation_failed");
        assert_eq!(res.json()["errors"][0]["field"], field, "{}", res.text());
        assert_eq!(res.json()["errors"][0]["code"], code, "{}", res.text());
    }
    let backwards = c
        .app
        .get(&format!("/api/v1/availability?provider_id={}&appointment_type=refill&from=2027-01-06T00:00:00Z&to=2027-01-05T00:00:00Z", c.provider), &c.staff)
        .await;
    backwards.problem(422, "validation_failed");
    assert_eq!(backwards.error_fields(), ["to"]);
    c.app
        .get(
            "/api/v1/availability?appointment_type=refill&from=2027-01-06T00:00:00&to=2027-01-07T00:00:00Z",
            &c.staff,
        )
        .await
        .problem(400, "invalid_query");
    c.app
        .get(
            "/api/v1/availability?appointment_type=massage&from=2027-01-06T00:00:00Z&to=2027-01-07T00:00:00Z",
            &c.staff,
        )
        .await
        .problem(422, "validation_failed");
    let bad_hours = c
        .app
        .post(
            "/api/v1/providers",
            &c.staff,
            json!({"name": "X", "role": "nurse", "hours": [{"weekday": "monday", "start": "12:00", "end": "09:00"}]}),
        )
        .await;
    bad_hours.problem(422, "validation_failed");
    assert_eq!(bad_hours.json()["errors"][0]["code"], "end_before_start");
    assert_eq!(count().await, Some(0));
}

#[actix_web::test]
async fn any_provider_availability_and_audited_reads() {
    let c = clinic().await;
    let second = c
        .app
        .post("/api/v1/providers", &c.staff, json!({"name": "Nurse Bo", "role": "nurse", "hours": [{"weekday": "monday", "start": "08:00", "end": "09:00"}]}))
        .await
        .json();
    let res = c
        .app
        .get(
            "/api/v1/availability?appointment_type=refill&from=2027-01-04T00:00:00-06:00&to=2027-01-05T00:00:00-06:00",
            &c.staff,
        )
        .await;
    let items = res.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2);
    let bo = items
        .iter()
        .find(|p| p["provider_id"] == second["id"])
        .expect("second provider");
    assert_eq!(bo["slots"][0]["local_start"], "2027-01-04T08:00:00");

    let a = c.book("refill", "2027-01-04T09:00:00-06:00").await.json();
    let reader = c.app.token(&["patients:read"]);
    assert_eq!(
        c.app
            .get(
                &format!("/api/v1/appointments/{}", a["id"].as_str().expect("id")),
                &reader
            )
            .await
            .status,
        StatusCode::OK
    );
    let events = c
        .app
        .get(&format!("/api/v1/audit-events?subject_id={}", c.patient), &c.app.admin)
        .await
        .json();
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"appointment.create") && actions.contains(&"appointment.read"),
        "{actions:?}"
    );
    c.app
        .post("/api/v1/appointments", &reader, json!({}))
        .await
        .problem(403, "forbidden");
}

fn ics_lines(text: &str) -> Vec<String> {
    text.replace("\r\n ", "").split("\r\n").map(str::to_owned).collect()
}

#[actix_web::test]
async fn icalendar_invites_grow_their_sequence_and_cancel() {
    let c = clinic().await;
    let a = c.book("refill", "2027-01-06T09:00:00-06:00").await.json();
    let id = a["id"].as_str().expect("id");
    let ics = c.app.get(&format!("/api/v1/appointments/{id}/ics"), &c.staff).await;
    assert!(ics.header("content-type").expect("type").starts_with("text/calendar"));
    let lines = ics_lines(&ics.text());
    for expected in [
        "METHOD:REQUEST",
        "SEQUENCE:0",
        "DTSTART:20270106T150000Z",
        "DTEND:20270106T153000Z",
        "STATUS:CONFIRMED",
        "LOCATION:100 Lake St\\, Chicago",
    ] {
        assert!(lines.iter().any(|l| l == expected), "missing {expected} in {lines:?}");
    }
    let prodids: Vec<&String> = lines.iter().filter(|l| l.starts_with("PRODID:")).collect();
    assert_eq!(prodids.len(), 1, "{lines:?}");
    assert!(prodids[0].starts_with("PRODID:-//Clinic Platform//"), "{}", prodids[0]);
    assert_eq!(lines.iter().filter(|l| l.starts_with("VERSION:2.0")).count(), 1);
    let uid = lines.iter().find(|l| l.starts_with("UID:")).expect("uid").clone();
    let text = ics.text().to_lowercase();
    for word in ["refill", "pump", "dose", "morphine", "baclofen", "reservoir"] {
        assert!(!text.contains(word), "clinical word '{word}' in the invite");
    }
    assert!(ics.text().contains("+13125550100"), "the clinic's phone");

    c.app
        .post(
            &format!("/api/v1/appointments/{id}/reschedule"),
            &c.staff,
            json!({"start": "2027-01-06T10:00:00-06:00"}),
        )
        .await;
    let moved = ics_lines(
        &c.app
            .get(&format!("/api/v1/appointments/{id}/ics"), &c.staff)
            .await
            .text(),
    );
    assert!(moved.contains(&"SEQUENCE:1".to_owned()) && moved.contains(&uid));
    c.app
        .post(
            &format!("/api/v1/appointments/{id}/cancel"),
            &c.staff,
            json!({"reason": "called"}),
        )
        .await;
    let cancelled = ics_lines(
        &c.app
            .get(&format!("/api/v1/appointments/{id}/ics"), &c.staff)
            .await
            .text(),
    );
    for expected in ["METHOD:CANCEL", "STATUS:CANCELLED", "SEQUENCE:2"] {
        assert!(
            cancelled.iter().any(|l| l == expected),
            "missing {expected} in {cancelled:?}"
        );
    }
    assert!(cancelled.contains(&uid), "the same UID, so calendars remove the event");
}

#[actix_web::test]
async fn provider_feeds_need_a_live_feed_token() {
    let c = clinic().await;
    c.book("refill", "2027-01-06T09:00:00-06:00").await;
    let created = c
        .app
        .post(
            &format!("/api/v1/providers/{}/feed-tokens", c.provider),
            &c.staff,
            json!({}),
        )
        .await
        .json();
    let path = created["feed_path"].as_str().expect("path").to_owned();
    let feed = c.app.call(Method::GET, &path, None, None).await;
    assert_eq!(feed.status, StatusCode::OK, "{}", feed.text());
    let text = feed.text();
    assert!(text.contains("BEGIN:VEVENT") && text.contains("SUMMARY:Refill"));
    assert!(!text.contains("Okafor"), "no patient names in feeds");
    let wrong = path.split("token=").next().expect("base").to_owned() + "token=feed_0000";
    c.app
        .call(Method::GET, &wrong, None, None)
        .await
        .problem(404, "not_found");
    // No feed token, or a stray parameter: no calendar either (there is no bearer token to
    // blame, so not 401).
    let bare = path.split('?').next().expect("base").to_owned();
    c.app
        .call(Method::GET, &bare, None, None)
        .await
        .problem(404, "not_found");
    c.app
        .call(Method::GET, &format!("{path}&x=1"), None, None)
        .await
        .problem(404, "not_found");
    let tid = created["id"].as_str().expect("id");
    let revoked = c
        .app
        .delete(&format!("/api/v1/providers/{}/feed-tokens/{tid}", c.provider), &c.staff)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    c.app
        .call(Method::GET, &path, None, None)
        .await
        .problem(404, "not_found");
}

#[actix_web::test]
async fn public_requests_are_rate_limited_and_confirmed_by_staff() {
    let c = clinic().await;
    let body = json!({"given_name": "Maria", "family_name": "Lopez", "email": "maria@example.org", "phone": "(312) 555-0142",
                      "preferred_times": "Weekday mornings", "reason": "consultation", "consent_to_contact": true});
    let res = c
        .app
        .call(Method::POST, "/api/v1/appointment-requests", None, Some(body.clone()))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let receipt = res.json();
    assert!(receipt["reference"].as_str().expect("ref").starts_with("REQ-"));
    assert_eq!(
        receipt.as_object().map(|o| o.len()),
        Some(1),
        "nothing echoed back but the reference"
    );

    let mut bad = body.clone();
    bad["reason"] = json!("implant");
    bad["consent_to_contact"] = json!(false);
    bad["email"] = json!("nope");
    let res = c
        .app
        .call(Method::POST, "/api/v1/appointment-requests", None, Some(bad))
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(
        res.error_fields(),
        ["email", "reason", "consent_to_contact"],
        "every problem at once"
    );
    let mut not_public = body.clone();
    not_public["reason"] = json!("implant");
    not_public["consent_to_contact"] = json!(false);
    let res = c
        .app
        .call(Method::POST, "/api/v1/appointment-requests", None, Some(not_public))
        .await;
    assert_eq!(res.error_fields(), ["reason", "consent_to_contact"]);

    // A burst of 3 per address (invalid attempts count too), then 429 for that address only.
    let from = |ip: [u8; 4], body: Value| {
        c.app.send(
            TestRequest::post()
                .uri("/api/v1/appointment-requests")
                .peer_addr(std::net::SocketAddr::from((ip, 40000)))
                .set_json(body),
        )
    };
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(from([203, 0, 113, 7], body.clone()).await.status.as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 429]);
    let limited = from([203, 0, 113, 7], body.clone()).await;
    limited.problem(429, "rate_limited");
    assert_eq!(limited.header("retry-after").as_deref(), Some("60"));
    assert_eq!(
        from([203, 0, 113, 8], body.clone()).await.status,
        StatusCode::CREATED,
        "other addresses are not affected"
    );

    let list = c
        .app
        .get("/api/v1/appointment-requests?status=new", &c.staff)
        .await
        .json();
    let first = list["items"][0].clone();
    assert_eq!(first["email"], "maria@example.org");
    let id = first["id"].as_str().expect("id");
    let confirmed = c
        .app
        .post(
            &format!("/api/v1/appointment-requests/{id}/confirm"),
            &c.staff,
            json!({"provider_id": c.provider, "start": "2027-01-07T09:00:00-06:00"}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text());
    let confirmed = confirmed.json();
    assert_eq!(confirmed["request"]["status"], "confirmed");
    let patient = confirmed["appointment"]["patient_id"].as_str().expect("patient");
    let p = c
        .app
        .get(&format!("/api/v1/patients/{patient}"), &c.app.admin)
        .await
        .json();
    assert_eq!(
        (p["given_name"].as_str(), p["email_consent"].as_bool()),
        (Some("Maria"), Some(false))
    );
    c.app
        .post(
            &format!("/api/v1/appointment-requests/{id}/decline"),
            &c.staff,
            json!({"reason": "late"}),
        )
        .await
        .problem(409, "already_handled");
    let second = list["items"][1]["id"].as_str().expect("second");
    let declined = c
        .app
        .post(
            &format!("/api/v1/appointment-requests/{second}/decline"),
            &c.staff,
            json!({"reason": "Duplicate request"}),
        )
        .await;
    assert_eq!(declined.json()["status"], "declined");
    c.app
        .call(Method::GET, "/api/v1/appointment-requests", None, None)
        .await
        .problem(401, "unauthorized");
    let events = c
        .app
        .get(&format!("/api/v1/audit-events?subject_id={id}"), &c.app.admin)
        .await
        .json();
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"appointment_request.list"),
        "staff reads of requesters' details are audited: {actions:?}"
    );
    let typed = c
        .app
        .patch(
            "/api/v1/appointment-types/refill",
            &c.staff,
            json!({"version": 1, "duration_minutes": null}),
        )
        .await;
    typed.problem(422, "validation_failed");
    assert_eq!(typed.json()["errors"][0]["code"], "not_nullable");
}

#[actix_web::test]
async fn the_html_request_form_submits_and_explains_mistakes() {
    let c = clinic().await;
    let page = c.app.send(TestRequest::get().uri("/appointments/request")).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(
        html.contains("<option value=\"consultation\"") && !html.contains("value=\"implant\""),
        "only public types"
    );
    assert!(html.contains("<label for=\"email\">"), "every field is labelled");
    assert!(!html.to_lowercase().contains("<script"));

    let form = |body: &str, ip: [u8; 4]| {
        c.app.send(
            TestRequest::post()
                .uri("/appointments/request")
                .peer_addr(std::net::SocketAddr::from((ip, 50000)))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(body.to_owned()),
        )
    };
    let ok = form(
        "given_name=Ana&family_name=Diaz&email=ana%40example.org&phone=312+555+0199&reason=consultation&preferred_times=Mornings&consent_to_contact=yes",
        [198, 51, 100, 1],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(ok.text().contains("Your reference is <strong>REQ-"));

    let bad = form(
        "given_name=%3Cb%3EAna&family_name=&email=nope&phone=1&reason=consultation&preferred_times=x",
        [198, 51, 100, 2],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad.header("cache-control").as_deref(),
        Some("no-store"),
        "a page echoing what someone typed is never cached"
    );
    assert_eq!(ok.header("cache-control").as_deref(), Some("no-store"));
    let text = bad.text();
    assert!(text.contains("Please check the form") && text.contains("not a valid email address"));
    assert!(
        text.contains("value=\"&lt;b&gt;Ana\""),
        "what was typed comes back, escaped"
    );
    assert!(text.contains("we need your consent"));
    let stored = c.app.get("/api/v1/appointment-requests", &c.staff).await.json();
    assert_eq!(
        stored["items"].as_array().map(Vec::len),
        Some(1),
        "the invalid form stored nothing"
    );

    let article = c.app.send(TestRequest::get().uri("/articles")).await.text();
    assert!(
        article.contains("href=\"/appointments/request\""),
        "pages link to the form"
    );
}
