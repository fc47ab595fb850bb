//! Candidacy screening: the criteria (`patients:read` to read, `content:write` to edit) and
//! each patient's screenings (`patients:write` to record, `patients:read` to list; audited).

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use clinic_content::screening::{
    self as repo, CriterionChanges, CriterionRecord, NewCriterion, NewScreening, Screening,
};
use clinic_domain::content;
use clinic_domain::ids::PatientId;
use clinic_domain::screening::{Answer, Outcome};
use clinic_domain::{FieldError, ValidationErrors};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{scopes, Authorized, JsonBody, QueryParams};
use crate::fields::{nullable, parse_required};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_screening_criteria)
        .service(create_screening_criterion)
        .service(update_screening_criterion)
        .service(create_screening)
        .service(list_screenings);
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "code": "psychological_evaluation_passed",
    "question": "Has a psychological evaluation been completed without finding a contraindication?",
    "why": "Pain and mood affect each other; the evaluation checks that the therapy is safe and realistic.",
    "required_for_trial": true, "required_for_implant": true, "active": true, "position": 50, "version": 1,
    "updated_at": "2027-01-04T15:00:00Z"
}))]
pub struct CriterionResponse {
    pub code: String,
    pub question: String,
    /// Why it matters, in plain language.
    pub why: String,
    pub required_for_trial: bool,
    pub required_for_implant: bool,
    /// Inactive criteria are no longer asked; past screenings keep their answers.
    pub active: bool,
    /// Asking order (ascending).
    pub position: i64,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<CriterionRecord> for CriterionResponse {
    fn from(c: CriterionRecord) -> Self {
        Self {
            code: c.code,
            question: c.question,
            why: c.why,
            required_for_trial: c.required_for_trial,
            required_for_implant: c.required_for_implant,
            active: c.active,
            position: c.position,
            version: c.version,
            updated_at: clinic_store::time::from_db(c.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CriterionList {
    pub items: Vec<CriterionResponse>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CriteriaQuery {
    /// Include criteria no longer asked (default false).
    pub include_inactive: Option<bool>,
}

/// List the screening criteria in asking order.
#[utoipa::path(
    tag = "screening",
    security(("bearer" = ["patients:read"])),
    params(CriteriaQuery),
    responses((status = 200, body = CriterionList))
)]
#[get("/screening-criteria")]
pub async fn list_screening_criteria(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::PatientsRead>,
    query: QueryParams<CriteriaQuery>,
) -> Result<web::Json<CriterionList>, ApiError> {
    let all = query.into_inner()?.include_inactive.unwrap_or(false);
    let list = state.db(move |conn| repo::criteria(conn, all)).await?;
    Ok(web::Json(CriterionList {
        items: list.into_iter().map(CriterionResponse::from).collect(),
    }))
}

fn parse_text(field: &'static str, max: usize) -> impl Fn(String) -> Result<String, FieldError> {
    move |v: String| {
        let t = v.trim();
        if t.is_empty() || t.chars().count() > max {
            Err(FieldError::new(
                field,
                "invalid_length",
                format!("{field} must be 1 to {max} characters"),
            ))
        } else {
            Ok(t.to_owned())
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "code": "no_pregnancy", "question": "Has pregnancy been ruled out?",
    "why": "Some drugs used in the pump are not studied in pregnancy.",
    "required_for_trial": true, "required_for_implant": true, "position": 85
}))]
pub struct CreateCriterionRequest {
    /// Lower-case letters, digits and `_`.
    #[schema(pattern = "^[a-z0-9_]{1,60}$")]
    pub code: String,
    /// Phrased so that `yes` is the favourable answer.
    #[schema(min_length = 1, max_length = 300)]
    pub question: String,
    #[schema(min_length = 1, max_length = 1000)]
    pub why: String,
    pub required_for_trial: bool,
    pub required_for_implant: bool,
    pub position: i64,
}

/// Add a screening criterion.
#[utoipa::path(
    tag = "screening",
    security(("bearer" = ["content:write"])),
    request_body = CreateCriterionRequest,
    responses(
        (status = 201, body = CriterionResponse),
        (status = 409, description = "The code exists (`code_taken`)", body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/screening-criteria")]
pub async fn create_screening_criterion(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    body: JsonBody<CreateCriterionRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let code = e.check("code", repo::parse_code(&b.code));
    let question = e.check("question", parse_text("question", 300)(b.question));
    let why = e.check("why", parse_text("why", 1000)(b.why));
    let (Some(code), Some(question), Some(why)) = (code, question, why) else {
        return Err(e.into());
    };
    let new = NewCriterion {
        code,
        question,
        why,
        required_for_trial: b.required_for_trial,
        required_for_implant: b.required_for_implant,
        position: b.position,
    };
    let now = state.now();
    let c = state.db(move |conn| repo::create_criterion(conn, new, now)).await?;
    Ok(HttpResponse::Created().json(CriterionResponse::from(c)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "active": false}))]
pub struct UpdateCriterionRequest {
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 300)]
    pub question: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 1000)]
    pub why: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    pub required_for_trial: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    pub required_for_implant: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    pub active: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = i64, required = false)]
    pub position: Option<Option<i64>>,
}

/// Edit a criterion or stop asking it (`active: false`). Past screenings keep their answers.
#[utoipa::path(
    tag = "screening",
    security(("bearer" = ["content:write"])),
    params(("code" = String, Path, description = "Criterion code")),
    request_body = UpdateCriterionRequest,
    responses(
        (status = 200, body = CriterionResponse),
        (status = 409, description = "Stale `version`", body = Problem, content_type = "application/problem+json")
    )
)]
#[patch("/screening-criteria/{code}")]
pub async fn update_screening_criterion(
    state: web::Data<AppState>,
    _auth: Authorized<scopes::ContentWrite>,
    code: web::Path<String>,
    body: JsonBody<UpdateCriterionRequest>,
) -> Result<web::Json<CriterionResponse>, ApiError> {
    let b = body.into_inner()?;
    let mut e = ValidationErrors::new();
    let changes = CriterionChanges {
        question: parse_required(&mut e, "question", b.question, parse_text("question", 300)),
        why: parse_required(&mut e, "why", b.why, parse_text("why", 1000)),
        required_for_trial: parse_required(&mut e, "required_for_trial", b.required_for_trial, Ok),
        required_for_implant: parse_required(&mut e, "required_for_implant", b.required_for_implant, Ok),
        active: parse_required(&mut e, "active", b.active, Ok),
        position: parse_required(&mut e, "position", b.position, Ok),
    };
    if b.version < 1 {
        e.push(FieldError::new("version", "out_of_range", "version starts at 1"));
    }
    e.finish()?;
    let (code, version, now) = (code.into_inner(), b.version, state.now());
    let c = state
        .db(move |conn| repo::update_criterion(conn, &code, version, changes, now))
        .await?;
    Ok(web::Json(c.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// A criterion code.
    #[schema(example = "no_active_infection")]
    pub criterion: String,
    pub answer: Answer,
    pub note: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "clinician": "Dr. R. Alvarez", "screened_on": "2027-01-04",
    "answers": [
        {"criterion": "medication_dependence", "answer": "yes"},
        {"criterion": "conservative_treatment_failed", "answer": "yes", "note": "PT, injections, oral opioids"},
        {"criterion": "surgery_not_expected_to_help", "answer": "yes"},
        {"criterion": "no_drug_contraindication", "answer": "yes"},
        {"criterion": "psychological_evaluation_passed", "answer": "unknown", "note": "booked for next week"},
        {"criterion": "no_active_infection", "answer": "yes"},
        {"criterion": "bleeding_risk_managed", "answer": "yes"},
        {"criterion": "successful_trial", "answer": "unknown"}
    ]
}))]
pub struct CreateScreeningRequest {
    /// Who screened.
    #[schema(min_length = 1, max_length = 100)]
    pub clinician: String,
    /// The day of the screening (clinic's calendar), not in the future.
    #[schema(format = Date)]
    pub screened_on: String,
    /// One answer for every active criterion: yes, no or unknown, with an optional note.
    pub answers: Vec<AnswerRequest>,
}

#[derive(Serialize, ToSchema)]
pub struct ScreeningAnswerResponse {
    pub criterion: String,
    /// The question as it was asked.
    pub question: String,
    pub required_for_trial: bool,
    pub required_for_implant: bool,
    pub answer: Answer,
    pub note: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e16", "patient_id": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e10",
    "clinician": "Dr. R. Alvarez", "screened_on": "2027-01-04", "result": "needs_evaluation", "failed_criteria": [],
    "unknown_criteria": ["psychological_evaluation_passed"],
    "explanation": "More evaluation is needed before a trial: 1 criterion is still unknown: “Has a psychological evaluation been completed without finding a contraindication?”. This screening supports the clinical team's decision; it does not replace it.",
    "answers": [
        {
            "criterion": "medication_dependence",
            "question": "Does the patient remain dependent on pain medication despite conventional therapy?",
            "required_for_trial": true, "required_for_implant": true, "answer": "yes", "note": null
        },
        {
            "criterion": "conservative_treatment_failed",
            "question": "Have conservative treatments been tried without adequate relief?", "required_for_trial": true,
            "required_for_implant": true, "answer": "yes", "note": "PT, injections, oral opioids"
        },
        {
            "criterion": "surgery_not_expected_to_help",
            "question": "Has it been determined that further surgery is not expected to help?",
            "required_for_trial": true, "required_for_implant": true, "answer": "yes", "note": null
        },
        {
            "criterion": "no_drug_contraindication",
            "question": "Has a known allergy or contraindication to the intended drug been ruled out?",
            "required_for_trial": true, "required_for_implant": true, "answer": "yes", "note": null
        },
        {
            "criterion": "psychological_evaluation_passed",
            "question": "Has a psychological evaluation been completed without finding a contraindication?",
            "required_for_trial": true, "required_for_implant": true, "answer": "unknown",
            "note": "booked for next week"
        },
        {
            "criterion": "no_active_infection", "question": "Has an active infection been ruled out?",
            "required_for_trial": true, "required_for_implant": true, "answer": "yes", "note": null
        },
        {
            "criterion": "bleeding_risk_managed",
            "question": "Has an uncontrolled bleeding disorder been ruled out, and can any anticoagulation be safely managed around the procedure?",
            "required_for_trial": true, "required_for_implant": true, "answer": "yes", "note": null
        },
        {
            "criterion": "successful_trial",
            "question": "Did a trial give at least 50 % relief without intolerable side effects?",
            "required_for_trial": false, "required_for_implant": true, "answer": "unknown", "note": null
        }
    ],
    "recorded_by": "0193a0c4-3f3e-7b61-9a51-3c1c2b0d9e1a", "created_at": "2027-01-04T16:20:13Z"
}))]
pub struct ScreeningResponse {
    pub id: String,
    pub patient_id: String,
    pub clinician: String,
    pub screened_on: NaiveDate,
    /// not_a_candidate, needs_evaluation, ready_for_trial or ready_for_implant.
    pub result: Outcome,
    /// Required criteria answered no (why not a candidate).
    pub failed_criteria: Vec<String>,
    /// Trial criteria still unknown (what needs evaluating).
    pub unknown_criteria: Vec<String>,
    /// Plain-language explanation of the result.
    pub explanation: String,
    pub answers: Vec<ScreeningAnswerResponse>,
    pub recorded_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Screening> for ScreeningResponse {
    fn from(s: Screening) -> Self {
        Self {
            id: s.id.to_string(),
            patient_id: s.patient_id.to_string(),
            clinician: s.clinician,
            screened_on: s.screened_on,
            result: s.result,
            failed_criteria: s.failed,
            unknown_criteria: s.unknown,
            explanation: s.explanation,
            answers: s
                .answers
                .into_iter()
                .map(|a| ScreeningAnswerResponse {
                    criterion: a.criterion,
                    question: a.question,
                    required_for_trial: a.required_for_trial,
                    required_for_implant: a.required_for_implant,
                    answer: a.answer,
                    note: a.note,
                })
                .collect(),
            recorded_by: s.recorded_by,
            created_at: s.created_at,
        }
    }
}

/// Record a candidacy screening and get its result with an explanation. It supports the
/// clinician's decision; it does not replace it.
#[utoipa::path(
    tag = "screening",
    security(("bearer" = ["patients:write"])),
    params(("id" = String, Path, description = "Patient id")),
    request_body = CreateScreeningRequest,
    responses((status = 201, body = ScreeningResponse))
)]
#[post("/patients/{id}/screenings")]
pub async fn create_screening(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsWrite>,
    id: web::Path<String>,
    body: JsonBody<CreateScreeningRequest>,
) -> Result<HttpResponse, ApiError> {
    let id: PatientId = super::path_id(&id, "patient")?;
    let b = body.into_inner()?;
    let now = state.now();
    let today = state.clinic.time_zone.local_date(now);
    let mut e = ValidationErrors::new();
    let clinician = e.check(
        "clinician",
        content::parse_author(&b.clinician).map_err(|f| f.at("clinician")),
    );
    let screened_on = e.check(
        "screened_on",
        NaiveDate::parse_from_str(b.screened_on.trim(), "%Y-%m-%d")
            .map_err(|_| FieldError::new("screened_on", "invalid_date", "expected an ISO date such as 2027-01-04"))
            .and_then(|d| {
                if d > today {
                    Err(FieldError::new(
                        "screened_on",
                        "in_future",
                        "the screening date is in the future",
                    ))
                } else {
                    Ok(d)
                }
            }),
    );
    let mut answers = Vec::new();
    for (i, a) in b.answers.into_iter().enumerate() {
        let note = match a.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
            Some(n) if n.chars().count() > 2000 => {
                e.push(FieldError::new(
                    format!("answers[{i}].note"),
                    "too_long",
                    "a note is at most 2000 characters",
                ));
                None
            }
            other => other,
        };
        answers.push((a.criterion, a.answer, note));
    }
    let (Some(clinician), Some(screened_on)) = (clinician, screened_on) else {
        return Err(e.into());
    };
    e.finish()?;
    let new = NewScreening {
        clinician,
        screened_on,
        answers,
    };
    let screening = state
        .db(move |conn| repo::record(conn, &auth.actor, id, new, now))
        .await?;
    Ok(HttpResponse::Created().json(ScreeningResponse::from(screening)))
}

#[derive(Serialize, ToSchema)]
pub struct ScreeningList {
    /// Newest first.
    pub items: Vec<ScreeningResponse>,
}

/// A patient's screenings, newest first.
#[utoipa::path(
    tag = "screening",
    security(("bearer" = ["patients:read"])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, body = ScreeningList))
)]
#[get("/patients/{id}/screenings")]
pub async fn list_screenings(
    state: web::Data<AppState>,
    auth: Authorized<scopes::PatientsRead>,
    id: web::Path<String>,
) -> Result<web::Json<ScreeningList>, ApiError> {
    let id: PatientId = super::path_id(&id, "patient")?;
    let now = state.now();
    let list = state
        .db_audited(move |conn, audit| repo::list_for_patient(conn, audit, &auth.actor, id, now))
        .await?;
    Ok(web::Json(ScreeningList {
        items: list.into_iter().map(ScreeningResponse::from).collect(),
    }))
}
