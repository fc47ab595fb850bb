//! Candidacy screening: the clinic-editable criteria and each patient's recorded
//! screenings. Recording and reading a patient's screenings is audited.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clinic_domain::ids::{PatientId, ScreeningId};
use clinic_domain::screening::{self, Answer, Criterion, Outcome};
use clinic_domain::FieldError;
use clinic_patients::audit::{self, Actor, AuditWriter, PendingEvent};
use clinic_patients::repo as patients;
use clinic_store::schema::{screening_answers, screening_criteria, screenings};
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;

use crate::{corrupt, stale, ContentError};

#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = screening_criteria)]
pub struct CriterionRecord {
    pub code: String,
    pub question: String,
    pub why: String,
    pub required_for_trial: bool,
    pub required_for_implant: bool,
    /// Inactive criteria are kept for history and not asked any more.
    pub active: bool,
    pub position: i64,
    pub version: i64,
    pub updated_at: NaiveDateTime,
}

/// A criterion code: lower-case letters, digits and underscores, 1–60 characters.
pub fn parse_code(input: &str) -> Result<String, FieldError> {
    let ok = !input.is_empty()
        && input.len() <= 60
        && input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(input.to_owned())
    } else {
        Err(FieldError::new(
            "code",
            "invalid_code",
            "a code is 1 to 60 characters of a-z, 0-9 and _",
        ))
    }
}

/// Validated fields of a new criterion.
#[derive(Debug, Clone)]
pub struct NewCriterion {
    pub code: String,
    pub question: String,
    pub why: String,
    pub required_for_trial: bool,
    pub required_for_implant: bool,
    pub position: i64,
}

#[derive(Debug, Clone, Default)]
pub struct CriterionChanges {
    pub question: Option<String>,
    pub why: Option<String>,
    pub required_for_trial: Option<bool>,
    pub required_for_implant: Option<bool>,
    pub active: Option<bool>,
    pub position: Option<i64>,
}

/// Criteria in asking order; inactive ones only when asked for.
pub fn criteria(conn: &mut DbConnection, include_inactive: bool) -> Result<Vec<CriterionRecord>, ContentError> {
    let mut q = screening_criteria::table.into_boxed();
    if !include_inactive {
        q = q.filter(screening_criteria::active.eq(true));
    }
    Ok(q.order((screening_criteria::position, screening_criteria::code))
        .load(conn)?)
}

pub fn create_criterion(
    conn: &mut DbConnection,
    new: NewCriterion,
    now: DateTime<Utc>,
) -> Result<CriterionRecord, ContentError> {
    dialect::write_transaction(conn, |conn| {
        let exists: i64 = screening_criteria::table.find(&new.code).count().get_result(conn)?;
        if exists > 0 {
            return Err(ContentError::Conflict {
                code: "code_taken",
                detail: format!("a criterion with code '{}' exists", new.code),
            });
        }
        let record = CriterionRecord {
            code: new.code,
            question: new.question,
            why: new.why,
            required_for_trial: new.required_for_trial,
            required_for_implant: new.required_for_implant,
            active: true,
            position: new.position,
            version: 1,
            updated_at: time::to_db(now),
        };
        diesel::insert_into(screening_criteria::table)
            .values(&record)
            .execute(conn)?;
        Ok(record)
    })
}

pub fn update_criterion(
    conn: &mut DbConnection,
    code: &str,
    expected_version: i64,
    changes: CriterionChanges,
    now: DateTime<Utc>,
) -> Result<CriterionRecord, ContentError> {
    dialect::write_transaction(conn, |conn| {
        let mut c: CriterionRecord = screening_criteria::table
            .find(code)
            .first(conn)
            .optional()?
            .ok_or(ContentError::NotFound("criterion"))?;
        if c.version != expected_version {
            return Err(stale(c.version));
        }
        c.question = changes.question.unwrap_or(c.question);
        c.why = changes.why.unwrap_or(c.why);
        c.required_for_trial = changes.required_for_trial.unwrap_or(c.required_for_trial);
        c.required_for_implant = changes.required_for_implant.unwrap_or(c.required_for_implant);
        c.active = changes.active.unwrap_or(c.active);
        c.position = changes.position.unwrap_or(c.position);
        c.version += 1;
        c.updated_at = time::to_db(now);
        let written = diesel::update(
            screening_criteria::table
                .filter(screening_criteria::code.eq(code))
                .filter(screening_criteria::version.eq(expected_version)),
        )
        .set((
            screening_criteria::question.eq(&c.question),
            screening_criteria::why.eq(&c.why),
            screening_criteria::required_for_trial.eq(c.required_for_trial),
            screening_criteria::required_for_implant.eq(c.required_for_implant),
            screening_criteria::active.eq(c.active),
            screening_criteria::position.eq(c.position),
            screening_criteria::version.eq(c.version),
            screening_criteria::updated_at.eq(c.updated_at),
        ))
        .execute(conn)?;
        if written != 1 {
            return Err(stale(expected_version + 1));
        }
        Ok(c)
    })
}

/// What a clinician records.
#[derive(Debug, Clone)]
pub struct NewScreening {
    pub clinician: String,
    pub screened_on: NaiveDate,
    /// (criterion code, answer, note)
    pub answers: Vec<(String, Answer, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScreeningAnswer {
    pub criterion: String,
    pub question: String,
    pub required_for_trial: bool,
    pub required_for_implant: bool,
    pub answer: Answer,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Screening {
    pub id: ScreeningId,
    pub patient_id: PatientId,
    pub clinician: String,
    pub screened_on: NaiveDate,
    pub result: Outcome,
    /// Required criteria answered no.
    pub failed: Vec<String>,
    /// Trial criteria still unknown.
    pub unknown: Vec<String>,
    pub explanation: String,
    pub answers: Vec<ScreeningAnswer>,
    pub recorded_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = screenings)]
struct ScreeningRow {
    id: String,
    patient_id: String,
    clinician: String,
    screened_on: String,
    result: String,
    explanation: String,
    recorded_by: Option<String>,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = screening_answers)]
struct AnswerRow {
    screening_id: String,
    criterion_code: String,
    question: String,
    required_for_trial: bool,
    required_for_implant: bool,
    position: i64,
    answer: String,
    note: Option<String>,
}

pub const SUBJECT: &str = "patient";

/// Records a screening of an active patient against the active criteria, with its result.
pub fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    patient_id: PatientId,
    new: NewScreening,
    now: DateTime<Utc>,
) -> Result<Screening, ContentError> {
    dialect::write_transaction(conn, |conn| {
        if !patients::exists_active(conn, patient_id)? {
            return Err(ContentError::NotFound("patient"));
        }
        let active = criteria(conn, false)?;
        let rules: Vec<Criterion> = active
            .iter()
            .map(|c| Criterion {
                code: c.code.clone(),
                question: c.question.clone(),
                required_for_trial: c.required_for_trial,
                required_for_implant: c.required_for_implant,
            })
            .collect();
        let pairs: Vec<(String, Answer)> = new.answers.iter().map(|(c, a, _)| (c.clone(), *a)).collect();
        screening::check_answers(&rules, &pairs)?;
        let evaluation = screening::evaluate(&rules, &pairs);
        let id = ScreeningId::new();
        diesel::insert_into(screenings::table)
            .values(ScreeningRow {
                id: id.to_string(),
                patient_id: patient_id.to_string(),
                clinician: new.clinician,
                screened_on: new.screened_on.format("%Y-%m-%d").to_string(),
                result: evaluation.outcome.as_str().to_owned(),
                explanation: evaluation.explanation,
                recorded_by: actor.token_id.map(|t| t.to_string()),
                created_at: time::to_db(now),
            })
            .execute(conn)?;
        for (code, answer, note) in &new.answers {
            let c = active
                .iter()
                .find(|c| &c.code == code)
                .ok_or_else(|| corrupt("criterion"))?;
            diesel::insert_into(screening_answers::table)
                .values(AnswerRow {
                    screening_id: id.to_string(),
                    criterion_code: code.clone(),
                    question: c.question.clone(),
                    required_for_trial: c.required_for_trial,
                    required_for_implant: c.required_for_implant,
                    position: c.position,
                    answer: answer.as_str().to_owned(),
                    note: note.clone(),
                })
                .execute(conn)?;
        }
        audit::record(conn, actor, "screening.create", SUBJECT, &patient_id.to_string(), now)?;
        load_for_patient(conn, patient_id, Some(id))?
            .pop()
            .ok_or_else(|| corrupt("screening"))
    })
}

/// A patient's screenings, newest first (audited as one read of the patient's record).
pub fn list_for_patient(
    conn: &mut DbConnection,
    audit_writer: &AuditWriter,
    actor: &Actor,
    patient_id: PatientId,
    now: DateTime<Utc>,
) -> Result<Vec<Screening>, ContentError> {
    if !patients::exists(conn, patient_id)? {
        return Err(ContentError::NotFound("patient"));
    }
    let list = load_for_patient(conn, patient_id, None)?;
    audit_writer.record(vec![PendingEvent {
        actor: actor.clone(),
        action: "screening.list",
        subject_type: SUBJECT,
        subject_id: patient_id.to_string(),
        at: now,
    }])?;
    Ok(list)
}

fn load_for_patient(
    conn: &mut DbConnection,
    patient_id: PatientId,
    only: Option<ScreeningId>,
) -> Result<Vec<Screening>, ContentError> {
    let mut q = screenings::table
        .filter(screenings::patient_id.eq(patient_id.to_string()))
        .into_boxed();
    if let Some(id) = only {
        q = q.filter(screenings::id.eq(id.to_string()));
    }
    let rows: Vec<ScreeningRow> = q.order(screenings::id.desc()).load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let answers: Vec<AnswerRow> = screening_answers::table
        .filter(screening_answers::screening_id.eq_any(&ids))
        .order((screening_answers::position, screening_answers::criterion_code))
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            let answers = answers
                .iter()
                .filter(|a| a.screening_id == r.id)
                .map(|a| {
                    Ok(ScreeningAnswer {
                        criterion: a.criterion_code.clone(),
                        question: a.question.clone(),
                        required_for_trial: a.required_for_trial,
                        required_for_implant: a.required_for_implant,
                        answer: a.answer.parse().map_err(|_| corrupt("answer"))?,
                        note: a.note.clone(),
                    })
                })
                .collect::<Result<Vec<_>, ContentError>>()?;
            // The lists behind the result follow from the answers as recorded.
            let rules: Vec<Criterion> = answers
                .iter()
                .map(|a| Criterion {
                    code: a.criterion.clone(),
                    question: a.question.clone(),
                    required_for_trial: a.required_for_trial,
                    required_for_implant: a.required_for_implant,
                })
                .collect();
            let pairs: Vec<(String, Answer)> = answers.iter().map(|a| (a.criterion.clone(), a.answer)).collect();
            let evaluation = screening::evaluate(&rules, &pairs);
            Ok(Screening {
                id: r.id.parse().map_err(|_| corrupt("screening id"))?,
                patient_id,
                clinician: r.clinician,
                screened_on: NaiveDate::parse_from_str(&r.screened_on, "%Y-%m-%d")
                    .map_err(|_| corrupt("screening date"))?,
                result: r.result.parse().map_err(|_| corrupt("screening result"))?,
                failed: evaluation.failed,
                unknown: evaluation.unknown,
                explanation: r.explanation,
                answers,
                recorded_by: r.recorded_by,
                created_at: time::from_db(r.created_at),
            })
        })
        .collect()
}
