//! `/api/v1/self-service/settings` (`reminders:admin`): what patients may do from the links
//! in their emails (confirm, reschedule or cancel a visit, book a refill online). Read and
//! replaced whole, with the `version` read, like the reminder settings.

use actix_web::{get, put, web};
use clinic_reminders::self_service::{self, SelfServiceDocument, StoredSelfService};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_self_service_settings)
        .service(update_self_service_settings);
}

/// Whom a patient may move a visit to: the visit's own provider, or any provider who sees
/// its appointment type.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RescheduleTo {
    SameProvider,
    AnyProvider,
}

/// The self-service policy. Until it is first saved it is the defaults, at `version` 0.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "version": 0,
    "enabled_appointment_types": ["consultation", "follow_up", "refill", "psychological_evaluation"],
    "cutoff_hours": 24,
    "patients_may_cancel": true,
    "reschedule_to": "same_provider",
    "refill_booking": true
}))]
pub struct SelfServiceSettingsDto {
    /// The version these settings replace (0 while the defaults are in use); a stale one is 409.
    pub version: i64,
    #[schema(schema_with = enabled_types_schema)]
    pub enabled_appointment_types: Vec<String>,
    /// Within this many hours before the start (0–168), the patient's page offers only the
    /// clinic's phone number. Default 24.
    #[schema(minimum = 0, maximum = 168, example = 24)]
    pub cutoff_hours: i64,
    /// Whether patients may cancel a visit from their link (else only confirm or reschedule).
    /// Default true.
    #[schema(example = true)]
    pub patients_may_cancel: bool,
    /// `same_provider` (default: a pump patient usually stays with their nurse) or
    /// `any_provider` (any provider who sees this type).
    #[schema(value_type = RescheduleTo, example = "same_provider")]
    pub reschedule_to: String,
    /// Whether refill reminders carry the "choose a time online" link to the refill booking
    /// page. Default true.
    #[schema(example = true)]
    pub refill_booking: bool,
}

/// A list of distinct appointment type codes (utoipa's field attributes cannot say that the
/// items are unique).
fn enabled_types_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .description(Some(
            "Appointment type codes (existing types, none twice) whose visits patients may confirm, reschedule \
             and cancel from their links; `[]`: none. Default: `consultation`, `follow_up`, `refill`, \
             `psychological_evaluation`, not the procedures (`trial`, `implant`, `pump_replacement`, \
             `pump_programming`), which staff coordinate.",
        ))
        .items(ObjectBuilder::new().schema_type(Type::String))
        .unique_items(true)
        .examples([serde_json::json!(["consultation", "follow_up", "refill"])])
        .build()
}

fn settings_dto(s: &StoredSelfService) -> SelfServiceSettingsDto {
    let d = SelfServiceDocument::from(&s.settings);
    SelfServiceSettingsDto {
        version: s.version,
        enabled_appointment_types: d.enabled_appointment_types,
        cutoff_hours: d.cutoff_hours,
        patients_may_cancel: d.patients_may_cancel,
        reschedule_to: d.reschedule_to,
        refill_booking: d.refill_booking,
    }
}

/// The self-service settings: what patients may do from the links in their emails.
///
/// The defaults until first saved (`version` 0). Needs `reminders:admin`; `admin` works too.
/// Reading them is not audited: they hold no patient data.
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    responses((status = 200, body = SelfServiceSettingsDto))
)]
#[get("/self-service/settings")]
pub async fn get_self_service_settings(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::RemindersAdmin>,
) -> Result<web::Json<SelfServiceSettingsDto>, ApiError> {
    let s = state.db(self_service::load).await?;
    Ok(web::Json(settings_dto(&s)))
}

/// Replace the self-service settings.
///
/// Send every field with the `version` read; a stale one is 409 `version_conflict` and nothing
/// changes. Every bad field is named in one 422: `unknown_appointment_type` and
/// `duplicate_appointment_type` on `enabled_appointment_types[i]`, `out_of_range` on
/// `cutoff_hours`, `invalid_value` on `reschedule_to`, `unknown_field` for a field the
/// settings do not have. Needs `reminders:admin`; `admin` works too. Audited as
/// `self_service_settings.update` (subject type `settings`, id `self_service`).
#[utoipa::path(
    tag = "reminders",
    security(("bearer" = ["reminders:admin"])),
    request_body = SelfServiceSettingsDto,
    responses(
        (status = 200, body = SelfServiceSettingsDto),
        (status = 409, description = "Stale `version` (`version_conflict`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/self-service/settings")]
pub async fn update_self_service_settings(
    state: web::Data<AppState>,
    auth: Authorized<scopes::RemindersAdmin>,
    body: JsonBody<SelfServiceSettingsDto>,
) -> Result<web::Json<SelfServiceSettingsDto>, ApiError> {
    let b = body.into_inner()?;
    let doc = SelfServiceDocument {
        enabled_appointment_types: b.enabled_appointment_types,
        cutoff_hours: b.cutoff_hours,
        patients_may_cancel: b.patients_may_cancel,
        reschedule_to: b.reschedule_to,
        refill_booking: b.refill_booking,
    };
    let (now, version, actor) = (state.now(), b.version, auth.actor);
    let stored = state
        .db(move |conn| self_service::save(conn, &actor, version, &doc, now))
        .await?;
    // The pages of this process show the change at once (others within a few seconds).
    state.self_service_settings.clear();
    Ok(web::Json(settings_dto(&stored)))
}
