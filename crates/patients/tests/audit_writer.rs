//! The audit writer on the test database (PostgreSQL when `TEST_DATABASE_URL` is set):
//! events recorded by many threads at once are all committed once, field for field,
//! whatever batches the writer made of them, and so is one batch of hundreds.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use clinic_domain::ids::TokenId;
use clinic_patients::audit::{self, Actor, AuditFilter, AuditWriter, PendingEvent};
use clinic_store::pool;
use clinic_store::testing::TestDatabase;

type Row = (
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    Option<String>,
    Option<String>,
);

fn event(actor: &Actor, subject_id: String, at: DateTime<Utc>) -> PendingEvent {
    PendingEvent {
        actor: actor.clone(),
        action: "read",
        subject_type: "patient",
        subject_id,
        at,
    }
}

fn row(e: &PendingEvent) -> Row {
    (
        e.actor.token_id.map(|t| t.to_string()),
        e.action.to_string(),
        e.subject_type.to_string(),
        e.subject_id.clone(),
        e.actor.request_id.clone(),
        e.at,
        e.actor.link.clone(),
        e.actor.user_id.map(|u| u.to_string()),
    )
}

#[test]
fn events_from_concurrent_reads_are_all_committed_once_field_for_field() {
    let db = TestDatabase::new();
    let writer = AuditWriter::start(db.url().clone());
    let token = TokenId::new();
    let start = Utc
        .with_ymd_and_hms(2026, 3, 8, 7, 30, 0)
        .single()
        .expect("a valid instant");

    // One batch of 250 events from the platform itself (no token, no request id)...
    let bulk: Vec<PendingEvent> = (0..250)
        .map(|i| event(&Actor::system(), format!("bulk-{i}"), start + Duration::seconds(i)))
        .collect();
    let mut expected: Vec<Row> = bulk.iter().map(row).collect();
    writer.record(bulk).expect("the bulk batch is committed");

    // ...then 8 threads recording 1 to 4 events per read, 30 reads each, all at once.
    let recorded: Vec<Vec<PendingEvent>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let writer = writer.clone();
                s.spawn(move || {
                    let mut sent = Vec::new();
                    for i in 0..30_i64 {
                        // Every fifth read is a patient's link instead of a token; every
                        // other one is a staff member's (a personal token).
                        let by_link = i % 5 == 0;
                        let actor = Actor {
                            token_id: (!by_link).then_some(token),
                            link: by_link.then(|| format!("appointment:{t}-{i}")),
                            user_id: (!by_link && i % 2 == 0).then(clinic_domain::ids::UserId::new),
                            request_id: (i % 3 != 0).then(|| format!("req-{t}-{i}")),
                        };
                        let events: Vec<PendingEvent> = (0..1 + i % 4)
                            .map(|k| event(&actor, format!("p-{t}-{i}-{k}"), start + Duration::minutes(i)))
                            .collect();
                        writer.record(events.clone()).expect("the read's events are committed");
                        sent.extend(events);
                    }
                    sent
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a recording thread"))
            .collect()
    });
    expected.extend(recorded.iter().flatten().map(row));

    let mut conn = pool::get(&db.pool()).expect("a connection");
    let (stored, more) = audit::list(&mut conn, &AuditFilter::default(), 5_000).expect("the events");
    assert!(!more);
    assert_eq!(stored.len(), expected.len(), "every event stored exactly once");
    let stored: BTreeSet<Row> = stored
        .into_iter()
        .map(|e| {
            (
                e.actor_token_id,
                e.action,
                e.subject_type,
                e.subject_id,
                e.request_id,
                e.occurred_at,
                e.actor_link,
                e.actor_user_id,
            )
        })
        .collect();
    assert_eq!(stored, expected.into_iter().collect::<BTreeSet<Row>>());
}
