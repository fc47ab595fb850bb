//! The append-only audit log: who touched which record, how, when, under which request.

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::ids::TokenId;
use clinic_store::schema::audit_events;
use clinic_store::{time, DbConnection, StoreError};
use diesel::prelude::*;

/// Who is acting and under which request; every audited call carries one.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// The API token, or `None` for the CLI and the scheduler.
    pub token_id: Option<TokenId>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The platform itself (CLI, scheduler): no token, no request.
    pub fn system() -> Self {
        Self {
            token_id: None,
            request_id: None,
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_token_id: Option<String>,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub request_id: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
struct NewEventRow<'a> {
    occurred_at: NaiveDateTime,
    actor_token_id: Option<String>,
    action: &'a str,
    subject_type: &'a str,
    subject_id: &'a str,
    request_id: Option<&'a str>,
}

#[derive(Queryable)]
struct EventRow {
    id: i64,
    occurred_at: NaiveDateTime,
    actor_token_id: Option<String>,
    action: String,
    subject_type: String,
    subject_id: String,
    request_id: Option<String>,
}

/// Appends one event. Call inside the transaction of the access it records.
pub fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    action: &str,
    subject_type: &str,
    subject_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::insert_into(audit_events::table)
        .values(NewEventRow {
            occurred_at: time::to_db(at),
            actor_token_id: actor.token_id.map(|t| t.to_string()),
            action,
            subject_type,
            subject_id,
            request_id: actor.request_id.as_deref(),
        })
        .execute(conn)?;
    Ok(())
}

/// Filters for listing events; all optional and combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_token_id: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only events with an id below this (the cursor; lists run newest first).
    pub before_id: Option<i64>,
}

/// Newest first, at most `limit` events, plus whether more follow.
pub fn list(conn: &mut DbConnection, filter: &AuditFilter, limit: i64) -> Result<(Vec<AuditEvent>, bool), StoreError> {
    let mut query = audit_events::table.into_boxed();
    if let Some(v) = &filter.actor_token_id {
        query = query.filter(audit_events::actor_token_id.eq(v.clone()));
    }
    if let Some(v) = &filter.subject_type {
        query = query.filter(audit_events::subject_type.eq(v.clone()));
    }
    if let Some(v) = &filter.subject_id {
        query = query.filter(audit_events::subject_id.eq(v.clone()));
    }
    if let Some(v) = &filter.action {
        query = query.filter(audit_events::action.eq(v.clone()));
    }
    if let Some(v) = filter.from {
        query = query.filter(audit_events::occurred_at.ge(time::to_db(v)));
    }
    if let Some(v) = filter.to {
        query = query.filter(audit_events::occurred_at.lt(time::to_db(v)));
    }
    if let Some(v) = filter.before_id {
        query = query.filter(audit_events::id.lt(v));
    }
    let mut rows: Vec<EventRow> = query.order(audit_events::id.desc()).limit(limit + 1).load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((
        rows.into_iter()
            .map(|r| AuditEvent {
                id: r.id,
                occurred_at: time::from_db(r.occurred_at),
                actor_token_id: r.actor_token_id,
                action: r.action,
                subject_type: r.subject_type,
                subject_id: r.subject_id,
                request_id: r.request_id,
            })
            .collect(),
        more,
    ))
}
