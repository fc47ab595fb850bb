//! `/api/v1/audit-events`: who read or changed which record (admin scope).

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use clinic_patients::audit::{self, AuditEvent, AuditFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, QueryParams};
use crate::pagination::{self, Page};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_audit_events);
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "occurred_at": "2027-01-04T15:00:00.123456Z",
    "actor_token_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", "action": "patient.read",
    "subject_type": "patient", "subject_id": "0193a0c5-0000-7000-8000-000000000001",
    "request_id": "0193a0c5-1111-7000-8000-000000000002", "actor_type": "token", "actor_link": null,
    "actor_user_id": "0193a0c4-2222-7000-8000-000000000003"
}))]
pub struct AuditEventResponse {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    /// The token that acted; null for the CLI and the scheduler.
    pub actor_token_id: Option<String>,
    /// `patient.create`, `patient.read`, `patient.list`, `patient.update`, `patient.archive`, …
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub request_id: Option<String>,
    /// Who acted: `token` (an API token, `actor_token_id`; a personal one names its maker in
    /// `actor_user_id`), `user` (a staff member signed in to the console, `actor_user_id`),
    /// `patient_link` (the patient, from the self-service link named in `actor_link`) or
    /// `system` (the CLI or the scheduler).
    pub actor_type: String,
    /// The patient's link when `actor_type` is `patient_link`: `appointment:<appointment id>`
    /// or `refill:<pump id>`.
    pub actor_link: Option<String>,
    /// The staff member who acted (a console session or their personal token), when a person did.
    pub actor_user_id: Option<String>,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            occurred_at: e.occurred_at,
            actor_type: clinic_patients::audit::kind_of(
                e.actor_token_id.is_some(),
                e.actor_link.is_some(),
                e.actor_user_id.is_some(),
            )
            .to_owned(),
            actor_token_id: e.actor_token_id,
            actor_link: e.actor_link,
            actor_user_id: e.actor_user_id,
            action: e.action,
            subject_type: e.subject_type,
            subject_id: e.subject_id,
            request_id: e.request_id,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAuditQuery {
    /// Only events of this token.
    pub actor_token_id: Option<String>,
    /// Only events of this staff member (their console sessions and personal tokens).
    pub actor_user_id: Option<String>,
    /// Only events about this kind of record, e.g. `patient`.
    pub subject_type: Option<String>,
    /// Only events about this record.
    pub subject_id: Option<String>,
    /// Only this action, e.g. `patient.read`.
    pub action: Option<String>,
    /// Events at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Events before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List audit events, newest first, with filters.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = ["admin"])),
    params(ListAuditQuery),
    responses((status = 200, body = Page<AuditEventResponse>))
)]
#[get("/audit-events")]
pub async fn list_audit_events(
    state: web::Data<AppState>,
    auth: Authorized<scopes::Admin>,
    query: QueryParams<ListAuditQuery>,
) -> Result<web::Json<Page<AuditEventResponse>>, ApiError> {
    let q = query.into_inner()?;
    let limit = pagination::limit(q.limit)?;
    let before_id = q
        .cursor
        .as_deref()
        .map(|c| pagination::cursor_key::<i64>(pagination::List::AuditEvents, c))
        .transpose()?;
    let filter = AuditFilter {
        actor_token_id: q.actor_token_id,
        actor_user_id: q.actor_user_id,
        subject_type: q.subject_type,
        subject_id: q.subject_id,
        action: q.action,
        from: q.from,
        to: q.to,
        before_id,
    };
    // Reading the log is itself recorded (security review F5); committed after the list is
    // read, so a page never shows its own read.
    let (actor, now) = (auth.actor, state.now());
    let (events, more) = state
        .db_audited(move |conn, writer| {
            let page = audit::list(conn, &filter, limit)?;
            writer.record(vec![audit::PendingEvent {
                actor,
                action: "audit.list",
                subject_type: "audit_log",
                subject_id: filter.subject_id.clone().unwrap_or_else(|| "*".into()),
                at: now,
            }])?;
            Ok::<_, clinic_store::StoreError>(page)
        })
        .await?;
    let next_cursor = if more {
        events
            .last()
            .map(|e| pagination::cursor(pagination::List::AuditEvents, &e.id))
    } else {
        None
    };
    Ok(web::Json(Page {
        items: events.into_iter().map(AuditEventResponse::from).collect(),
        next_cursor,
    }))
}
