//! The outbox on the backend under test: idempotent enqueue, claims that honour due times and
//! leases, backoff and giving up, voiding, and concurrent dispatchers never sharing a row.

use chrono::{DateTime, Duration, TimeZone, Utc};
use clinic_reminders::outbox::{self, Enqueued, NewOutboxRow, MAX_ATTEMPTS};
use clinic_store::testing::TestDatabase;
use clinic_store::time;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, h, m, 0)
        .single()
        .expect("valid instant")
}

fn row(key: &str, subject: &str, due: DateTime<Utc>) -> NewOutboxRow {
    NewOutboxRow {
        dedupe_key: key.to_owned(),
        kind: "appointment_reminder".to_owned(),
        subject_type: "appointment".to_owned(),
        subject_id: subject.to_owned(),
        patient_id: None,
        refers_to: due + Duration::days(1),
        due_at: due,
    }
}

fn created(e: Enqueued) -> String {
    match e {
        Enqueued::Created(id) => id,
        Enqueued::Existing(id) => panic!("expected a new row, found {id}"),
    }
}

#[test]
fn enqueue_is_idempotent_by_dedupe_key() {
    let db = TestDatabase::new();
    let mut conn = db.pool().get().expect("connection");
    let id = created(outbox::enqueue(&mut conn, row("k1", "a1", at(9, 0)), at(8, 0)).expect("enqueue"));
    let again = outbox::enqueue(&mut conn, row("k1", "a1", at(10, 0)), at(8, 1)).expect("enqueue again");
    assert_eq!(again, Enqueued::Existing(id.clone()));
    let stored = outbox::get(&mut conn, &id).expect("get").expect("row");
    assert_eq!(stored.due_at, time::to_db(at(9, 0)), "the first row is kept unchanged");
    assert_eq!(stored.state, "pending");
    assert_eq!(stored.message_id, format!("<{id}@clinic-platform>"));
}

#[test]
fn claim_takes_only_due_rows_and_a_lease_blocks_reclaiming_until_it_expires() {
    let db = TestDatabase::new();
    let mut conn = db.pool().get().expect("connection");
    let early = created(outbox::enqueue(&mut conn, row("early", "a1", at(9, 0)), at(8, 0)).expect("enqueue"));
    let late = created(outbox::enqueue(&mut conn, row("late", "a2", at(11, 0)), at(8, 0)).expect("enqueue"));

    let first = outbox::claim(&mut conn, at(9, 30), Duration::minutes(5), 10).expect("claim");
    assert_eq!(
        first.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec![early.as_str()]
    );
    assert_eq!(first[0].state, "sending");
    assert_eq!(first[0].attempts, 1);
    assert_eq!(first[0].lease_until, Some(time::to_db(at(9, 35))));

    assert!(
        outbox::claim(&mut conn, at(9, 34), Duration::minutes(5), 10)
            .expect("claim")
            .is_empty(),
        "leased"
    );

    // The dispatcher that held the lease died: after it expires the row is claimed again.
    let reclaimed = outbox::claim(&mut conn, at(9, 36), Duration::minutes(5), 10).expect("claim");
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].id, early);
    assert_eq!(reclaimed[0].attempts, 2);

    outbox::mark_sent(&mut conn, &early, Some("250 queued as A1"), at(9, 37)).expect("sent");
    let both_due = outbox::claim(&mut conn, at(12, 0), Duration::minutes(5), 10).expect("claim");
    assert_eq!(
        both_due.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec![late.as_str()],
        "sent rows stay sent"
    );
    let sent = outbox::get(&mut conn, &early).expect("get").expect("row");
    assert_eq!((sent.state.as_str(), sent.lease_until), ("sent", None));
}

#[test]
fn claim_respects_the_limit_in_due_order() {
    let db = TestDatabase::new();
    let mut conn = db.pool().get().expect("connection");
    let ids: Vec<String> = (0..5)
        .map(|i| {
            created(
                outbox::enqueue(&mut conn, row(&format!("k{i}"), "a", at(9, 50 - i * 10)), at(8, 0)).expect("enqueue"),
            )
        })
        .collect();
    let claimed = outbox::claim(&mut conn, at(10, 0), Duration::minutes(5), 2).expect("claim");
    // Due 9:10 and 9:20 are the two oldest: ids[4] and ids[3].
    assert_eq!(
        claimed.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[3].clone()]
    );
}

#[test]
fn failures_back_off_then_give_up() {
    assert_eq!(outbox::backoff(1), Duration::minutes(1));
    assert_eq!(outbox::backoff(2), Duration::minutes(2));
    assert_eq!(outbox::backoff(4), Duration::minutes(8));
    assert_eq!(outbox::backoff(30), Duration::hours(6));

    let db = TestDatabase::new();
    let mut conn = db.pool().get().expect("connection");
    let id = created(outbox::enqueue(&mut conn, row("k", "a", at(9, 0)), at(8, 0)).expect("enqueue"));
    let mut now = at(9, 0);
    for attempt in 1..=MAX_ATTEMPTS {
        let claimed = outbox::claim(&mut conn, now, Duration::minutes(5), 10).expect("claim");
        assert_eq!(claimed.len(), 1, "attempt {attempt} is due");
        assert_eq!(claimed[0].attempts, attempt);
        let state = outbox::mark_failed(&mut conn, &id, "451 try later", false, now).expect("fail");
        let stored = outbox::get(&mut conn, &id).expect("get").expect("row");
        assert_eq!(stored.last_error.as_deref(), Some("451 try later"));
        if attempt < MAX_ATTEMPTS {
            assert_eq!(state, "pending");
            let retry = now + outbox::backoff(attempt);
            assert_eq!(stored.next_attempt_at, time::to_db(retry));
            assert!(
                outbox::claim(&mut conn, retry - Duration::seconds(1), Duration::minutes(5), 10)
                    .expect("claim")
                    .is_empty(),
                "not before the backoff"
            );
            now = retry;
        } else {
            assert_eq!(state, "failed");
        }
    }
    assert!(
        outbox::claim(&mut conn, now + Duration::days(30), Duration::minutes(5), 10)
            .expect("claim")
            .is_empty(),
        "failed rows are not retried"
    );
}

#[test]
fn a_permanent_refusal_fails_at_once() {
    let db = TestDatabase::new();
    let mut conn = db.pool().get().expect("connection");
    let id = created(outbox::enqueue(&mut conn, row("k", "a", at(9, 0)), at(8, 0)).expect("enqueue"));
    outbox::claim(&mut conn, at(9, 0), Duration::minutes(5), 10).expect("claim");
    assert_eq!(
        outbox::mark_failed(&mut conn, &id, "550 no such user", true, at(9, 1)).expect("fail"),
        "failed"
    );
}

#[test]
fn voiding_touches_only_pending_rows_of_the_subject() {
    let db = TestDatabase::new();
    let mut conn = db.pool().get().expect("connection");
    let sent = created(outbox::enqueue(&mut conn, row("a1-sent", "a1", at(9, 0)), at(8, 0)).expect("enqueue"));
    outbox::claim(&mut conn, at(9, 0), Duration::minutes(5), 10).expect("claim");
    outbox::mark_sent(&mut conn, &sent, None, at(9, 1)).expect("sent");
    let pending = created(outbox::enqueue(&mut conn, row("a1-later", "a1", at(12, 0)), at(8, 0)).expect("enqueue"));
    let other = created(outbox::enqueue(&mut conn, row("a2-later", "a2", at(12, 0)), at(8, 0)).expect("enqueue"));

    assert_eq!(
        outbox::void_pending(
            &mut conn,
            "appointment",
            "a1",
            &["appointment_reminder"],
            "moved",
            at(10, 0)
        )
        .expect("void"),
        1
    );
    let state = |conn: &mut _, id: &str| outbox::get(conn, id).expect("get").expect("row").state;
    assert_eq!(state(&mut conn, &sent), "sent");
    assert_eq!(state(&mut conn, &pending), "void");
    let voided = outbox::get(&mut conn, &pending).expect("get").expect("row");
    assert_eq!(voided.last_error.as_deref(), Some("moved"));
    assert_eq!(state(&mut conn, &other), "pending");
    let claimed = outbox::claim(&mut conn, at(13, 0), Duration::minutes(5), 10).expect("claim");
    assert_eq!(
        claimed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec![other.as_str()]
    );
}

#[test]
fn concurrent_dispatchers_never_claim_the_same_row() {
    let db = TestDatabase::new();
    let pool = db.pool();
    {
        let mut conn = pool.get().expect("connection");
        for i in 0..200 {
            outbox::enqueue(&mut conn, row(&format!("k{i}"), &format!("a{i}"), at(9, 0)), at(8, 0)).expect("enqueue");
        }
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut conn = pool.get().expect("connection");
                let mut mine = Vec::new();
                loop {
                    let batch = outbox::claim(&mut conn, at(9, 30), Duration::minutes(5), 7).expect("claim");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|r| r.id));
                }
            })
        })
        .collect();
    let mut all: Vec<String> = workers.into_iter().flat_map(|w| w.join().expect("worker")).collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), claimed, "a row was claimed twice");
    assert_eq!(claimed, 200, "every row was claimed");
}
