//! `/api/v1/patients`: the patient record. The pattern later resources copy: strict DTOs,
//! parsing into domain types with every bad field reported, versioned updates, archive
//! instead of delete, cursor pages, and an audit event for every access.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use clinic_domain::contact::{EmailAddress, PersonName, Phone};
use clinic_domain::ids::PatientId;
use clinic_domain::patient::{parse_notes, DateOfBirth, Language, NewPatient, Patient, PatientChanges};
use clinic_domain::time::ClinicZone;
use clinic_domain::ValidationErrors;
use clinic_patients::{repo, PatientFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody, QueryParams};
use crate::fields::{nullable, parse_nullable, parse_opt, parse_required};
use crate::pagination::{self, Page};
use crate::problem::{ApiError, Problem};
use crate::state::{AppState, ClinicInfo};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_patient)
        .service(list_patients)
        .service(get_patient)
        .service(update_patient)
        .service(archive_patient)
        .service(revoke_patient_links);
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", "given_name": "Ann", "family_name": "Lee",
    "email": "ann.lee@example.org", "phone": "+13125550123", "date_of_birth": "1961-04-23",
    "time_zone": "America/Chicago", "preferred_language": "en", "email_consent": true,
    "notes": null, "version": 1, "created_at": "2027-01-04T15:00:00Z",
    "updated_at": "2027-01-04T15:00:00Z", "archived_at": null
}))]
pub struct PatientResponse {
    pub id: String,
    pub given_name: String,
    pub family_name: String,
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    /// IANA zone the patient's emails are written in.
    pub time_zone: String,
    /// BCP 47 tag.
    pub preferred_language: String,
    /// Whether the patient agreed to email reminders.
    pub email_consent: bool,
    pub notes: Option<String>,
    /// Send back in PATCH; a stale version is refused with 409.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

impl From<Patient> for PatientResponse {
    fn from(p: Patient) -> Self {
        Self {
            id: p.id.to_string(),
            given_name: p.given_name.to_string(),
            family_name: p.family_name.to_string(),
            email: p.email.map(|e| e.to_string()),
            phone: p.phone.map(|e| e.to_string()),
            date_of_birth: p.date_of_birth.map(|d| d.date()),
            time_zone: p.time_zone.name().to_owned(),
            preferred_language: p.preferred_language.as_str().to_owned(),
            email_consent: p.email_consent,
            notes: p.notes,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
            archived_at: p.archived_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "given_name": "Ann", "family_name": "Lee", "email": "ann.lee@example.org",
    "phone": "(312) 555-0123", "date_of_birth": "1961-04-23", "time_zone": "America/Chicago",
    "preferred_language": "en", "email_consent": true
}))]
pub struct CreatePatientRequest {
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    pub given_name: String,
    #[schema(min_length = 1, max_length = 100, format = "text-line")]
    pub family_name: String,
    pub email: Option<String>,
    /// Any common notation; numbers without `+` are read in the clinic's phone region.
    pub phone: Option<String>,
    #[schema(format = Date, example = "1961-04-23")]
    pub date_of_birth: Option<String>,
    /// IANA zone; defaults to the clinic's.
    #[schema(value_type = Option<crate::openapi::TimeZoneName>)]
    pub time_zone: Option<String>,
    /// BCP 47 tag; defaults to `en`.
    #[schema(pattern = "^[A-Za-z]{2,3}(-([A-Za-z]{2}|[0-9]{3}))?$")]
    pub preferred_language: Option<String>,
    /// Defaults to false: no reminder emails without explicit consent.
    #[serde(default)]
    pub email_consent: bool,
    pub notes: Option<String>,
}

impl CreatePatientRequest {
    fn into_command(self, clinic: &ClinicInfo, today: NaiveDate) -> Result<NewPatient, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let given_name = e.check("given_name", PersonName::parse(&self.given_name));
        let family_name = e.check("family_name", PersonName::parse(&self.family_name));
        let email = parse_opt(&mut e, "email", self.email.as_deref(), EmailAddress::parse);
        let phone = parse_opt(&mut e, "phone", self.phone.as_deref(), |v| {
            Phone::parse(v, clinic.phone_region)
        });
        let date_of_birth = parse_opt(&mut e, "date_of_birth", self.date_of_birth.as_deref(), |v| {
            DateOfBirth::parse(v, today)
        });
        let time_zone = parse_opt(&mut e, "time_zone", self.time_zone.as_deref(), ClinicZone::parse);
        let language = parse_opt(
            &mut e,
            "preferred_language",
            self.preferred_language.as_deref(),
            Language::parse,
        );
        let notes = parse_opt(&mut e, "notes", self.notes.as_deref(), parse_notes);
        match (
            given_name,
            family_name,
            email,
            phone,
            date_of_birth,
            time_zone,
            language,
            notes,
        ) {
            (
                Some(given_name),
                Some(family_name),
                Some(email),
                Some(phone),
                Some(dob),
                Some(zone),
                Some(lang),
                Some(notes),
            ) if e.is_empty() => Ok(NewPatient {
                given_name,
                family_name,
                email,
                phone,
                date_of_birth: dob,
                time_zone: zone.unwrap_or(clinic.time_zone),
                preferred_language: lang.unwrap_or_default(),
                email_consent: self.email_consent,
                notes: notes.flatten(),
            }),
            _ => Err(e),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "phone": "+13125550199", "email": null}))]
pub struct UpdatePatientRequest {
    /// The version you read; 409 when someone changed the record since.
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 100, format = "text-line")]
    pub given_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 100, format = "text-line")]
    pub family_name: Option<Option<String>>,
    /// `null` removes the address.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// `null` removes the number.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = crate::openapi::TimeZoneName, required = false)]
    pub time_zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, pattern = "^[A-Za-z]{2,3}(-([A-Za-z]{2}|[0-9]{3}))?$")]
    pub preferred_language: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    pub email_consent: Option<Option<bool>>,
    /// `null` clears the notes.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
}

impl UpdatePatientRequest {
    fn into_command(self, clinic: &ClinicInfo, today: NaiveDate) -> Result<(i64, PatientChanges), ValidationErrors> {
        let mut e = ValidationErrors::new();
        let changes = PatientChanges {
            given_name: parse_required(&mut e, "given_name", self.given_name, |v| PersonName::parse(&v)),
            family_name: parse_required(&mut e, "family_name", self.family_name, |v| PersonName::parse(&v)),
            email: parse_nullable(&mut e, "email", self.email, EmailAddress::parse),
            phone: parse_nullable(&mut e, "phone", self.phone, |v| Phone::parse(v, clinic.phone_region)),
            date_of_birth: parse_nullable(&mut e, "date_of_birth", self.date_of_birth, |v| {
                DateOfBirth::parse(v, today)
            }),
            time_zone: parse_required(&mut e, "time_zone", self.time_zone, |v| ClinicZone::parse(&v)),
            preferred_language: parse_required(&mut e, "preferred_language", self.preferred_language, |v| {
                Language::parse(&v)
            }),
            email_consent: parse_required(&mut e, "email_consent", self.email_consent, Ok),
            notes: parse_nullable(&mut e, "notes", self.notes, parse_notes).map(Option::flatten),
        };
        if self.version < 1 {
            e.push(clinic_domain::FieldError::new(
                "version",
                "out_of_range",
                "version starts at 1",
            ));
        }
        e.finish()?;
        Ok((self.version, changes))
    }
}

/// Create a patient.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = ["patients:write"])),
    request_body = CreatePatientRequest,
    responses((status = 201, body = PatientResponse))
)]
#[post("/patients")]
pub async fn create_patient(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsWrite>,
    body: JsonBody<CreatePatientRequest>,
) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let today = state.clinic.time_zone.local_date(now);
    let new = body.into_inner()?.into_command(&state.clinic, today)?;
    let patient = state
        .db(move |conn| clinic_flows::patients::create(conn, &auth.actor, new, now))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/patients/{}", patient.id)))
        .json(PatientResponse::from(patient)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPatientsQuery {
    /// Case-insensitive part of a given name, family name or email.
    pub q: Option<String>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List active patients (archived ones drop out), oldest first, with search and cursor pages.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = ["patients:read"])),
    params(ListPatientsQuery),
    responses((status = 200, body = Page<PatientResponse>))
)]
#[get("/patients")]
pub async fn list_patients(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsRead>,
    query: QueryParams<ListPatientsQuery>,
) -> Result<web::Json<Page<PatientResponse>>, ApiError> {
    let query = query.into_inner()?;
    let limit = pagination::limit(query.limit)?;
    if query.q.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::field(
            "q",
            "too_long",
            "search text is longer than 100 characters",
        ));
    }
    let after = query
        .cursor
        .as_deref()
        .map(|c| pagination::cursor_key::<PatientId>(pagination::List::Patients, c))
        .transpose()?;
    let filter = PatientFilter { query: query.q, after };
    let now = state.now();
    let page = state
        .db_audited(move |conn, audit| repo::list(conn, audit, &auth.actor, &filter, limit, now))
        .await?;
    Ok(web::Json(Page {
        items: page.patients.into_iter().map(PatientResponse::from).collect(),
        next_cursor: page.next.map(|id| pagination::cursor(pagination::List::Patients, &id)),
    }))
}

/// Read one patient (archived records too, for audit).
#[utoipa::path(
    tag = "patients",
    security(("bearer" = ["patients:read"])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, body = PatientResponse))
)]
#[get("/patients/{id}")]
pub async fn get_patient(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsRead>,
    id: web::Path<String>,
) -> Result<web::Json<PatientResponse>, ApiError> {
    let id: PatientId = super::path_id(&id, "patient")?;
    let now = state.now();
    let patient = state
        .db_audited_keyed(move |conn, audit| repo::get(conn, audit, &auth.actor, id, now))
        .await?;
    Ok(web::Json(patient.into()))
}

/// Change some fields of a patient. Send the `version` you read; a stale one gets 409.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = ["patients:write"])),
    params(("id" = String, Path, description = "Patient id")),
    request_body = UpdatePatientRequest,
    responses(
        (status = 200, body = PatientResponse),
        (status = 409, description = "Stale `version`: read the patient again", body = Problem, content_type = "application/problem+json")
    )
)]
#[patch("/patients/{id}")]
pub async fn update_patient(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsWrite>,
    id: web::Path<String>,
    body: JsonBody<UpdatePatientRequest>,
) -> Result<web::Json<PatientResponse>, ApiError> {
    let id: PatientId = super::path_id(&id, "patient")?;
    let now = state.now();
    let today = state.clinic.time_zone.local_date(now);
    let (version, changes) = body.into_inner()?.into_command(&state.clinic, today)?;
    let patient = state
        .db(move |conn| clinic_flows::patients::update(conn, &auth.actor, id, version, changes, now))
        .await?;
    Ok(web::Json(patient.into()))
}

/// Archive a patient. The record is kept (and stays readable by id) but leaves lists.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = ["patients:write"])),
    params(("id" = String, Path, description = "Patient id", example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10")),
    responses((status = 204, description = "Archived"))
)]
#[delete("/patients/{id}")]
pub async fn archive_patient(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: PatientId = super::path_id(&id, "patient")?;
    let now = state.now();
    state
        .db(move |conn| clinic_flows::patients::archive(conn, &auth.actor, id, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The answer to revoking a patient's links.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10", "generation": 1}))]
pub struct LinksRevokedResponse {
    pub patient_id: String,
    /// How many times this patient's links have been revoked; links signed before the
    /// latest revocation no longer open.
    pub generation: u32,
}

/// End every self-service link the patient was sent (`/my/appointments/…`, `/my/book/…`),
/// for example when an email went to the wrong person. The next emails carry new links.
/// Audited as `patient.links_revoked`.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = ["patients:write"])),
    params(("id" = String, Path, description = "Patient id", example = "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10")),
    responses((status = 200, body = LinksRevokedResponse))
)]
#[post("/patients/{id}/revoke-links")]
pub async fn revoke_patient_links(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsWrite>,
    id: web::Path<String>,
) -> Result<web::Json<LinksRevokedResponse>, ApiError> {
    let id: PatientId = super::path_id(&id, "patient")?;
    let now = state.now();
    let generation = state
        .db(move |conn| clinic_flows::patients::revoke_links(conn, &auth.actor, id, now))
        .await?;
    Ok(web::Json(LinksRevokedResponse {
        patient_id: id.to_string(),
        generation,
    }))
}
