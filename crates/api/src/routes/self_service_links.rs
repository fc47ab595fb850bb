//! Self-service links for staff tools: the link a patient's emails carry for a visit or a
//! refill, so a call-centre or messaging tool can send it another way (a text message).
//! Whoever holds a link can change the visit, so issuing one needs `scheduling:write` (which
//! can make the same changes itself) and is audited.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use clinic_domain::ids::AppointmentId;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_appointment_self_service_link)
        .service(get_pump_refill_link);
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "url": "https://clinic.example/my/appointments/AQGZoMQ_PntheZpRPBwrDQ4SAAAAAB2a8Yt0iU3pKp2xkGkqWw",
    "expires_at": "2027-03-16T05:00:00Z"
}))]
pub struct SelfServiceLinkResponse {
    /// Under `CLINIC_PUBLIC_URL`: `/my/appointments/{token}` or `/my/book/{token}`.
    pub url: String,
    /// Until when it opens, as the visit or refill is now (the end of the visit's day, or of
    /// the refill's due date); a reschedule or a new due date moves it, revoking the
    /// patient's links ends it.
    pub expires_at: DateTime<Utc>,
}

/// The manage link of a visit, as its emails carry it (see, confirm, reschedule, cancel).
/// Audited as `appointment.link_issued`.
#[utoipa::path(
    tag = "scheduling",
    security(("bearer" = ["scheduling:write"])),
    params(("id" = String, Path, description = "Appointment id", example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e12")),
    responses((status = 200, body = SelfServiceLinkResponse))
)]
#[get("/appointments/{id}/self-service-link")]
pub async fn get_appointment_self_service_link(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<SelfServiceLinkResponse>, ApiError> {
    let id: AppointmentId = super::path_id(&id, "appointment")?;
    let (links, now) = (state.composer.patient_links(), state.now());
    let link = state
        .db_audited(move |conn, audit| {
            clinic_flows::self_service::visit_link(conn, audit, &links, &auth.actor, id, now)
        })
        .await?;
    Ok(web::Json(SelfServiceLinkResponse {
        url: format!("{}/my/appointments/{}", state.composer.clinic.public_url, link.token),
        expires_at: link.expires_at,
    }))
}

/// The refill booking link of a pump for its current refill, as its refill reminders carry
/// it. Audited as `pump.link_issued`.
#[utoipa::path(
    tag = "pumps",
    security(("bearer" = ["scheduling:write"])),
    params(("id" = String, Path, description = "Pump id", example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e20")),
    responses((status = 200, body = SelfServiceLinkResponse))
)]
#[get("/pumps/{id}/refill-link")]
pub async fn get_pump_refill_link(
    state: web::Data<AppState>,
    auth: Authorized<scopes::SchedulingWrite>,
    id: web::Path<String>,
) -> Result<web::Json<SelfServiceLinkResponse>, ApiError> {
    let id = id.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::NotFound("pump"));
    }
    let (links, zone, now) = (state.composer.patient_links(), state.clinic.time_zone, state.now());
    let link = state
        .db_audited(move |conn, audit| {
            clinic_flows::self_service::refill_link(conn, audit, &links, &auth.actor, &id, zone, now)
        })
        .await?;
    Ok(web::Json(SelfServiceLinkResponse {
        url: format!("{}/my/book/{}", state.composer.clinic.public_url, link.token),
        expires_at: link.expires_at,
    }))
}
