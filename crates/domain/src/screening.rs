//! Candidacy screening for intrathecal therapy: answers per criterion turned into a
//! recorded, explained result. It supports a clinician's decision; it never replaces it.
//!
//! Rules (criteria are clinic-editable; each says whether it is required for a trial and/or
//! for an implant):
//! 1. Any required criterion answered `no` → not a candidate, naming those criteria.
//! 2. Otherwise any criterion required for a trial still `unknown` → needs evaluation,
//!    naming the unknowns.
//! 3. Otherwise, when every criterion required for an implant is `yes` (which includes a
//!    successful trial) → ready for implant; else → ready for trial.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::{FieldError, ValidationErrors};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Yes,
    No,
    Unknown,
}

impl Answer {
    pub fn as_str(&self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Unknown => "unknown",
        }
    }
}

impl FromStr for Answer {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "yes" => Ok(Answer::Yes),
            "no" => Ok(Answer::No),
            "unknown" => Ok(Answer::Unknown),
            _ => Err(FieldError::new(
                "answer",
                "invalid_answer",
                "expected yes, no or unknown",
            )),
        }
    }
}

/// A criterion as the rules need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub code: String,
    pub question: String,
    pub required_for_trial: bool,
    pub required_for_implant: bool,
}

/// The result of a screening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    NotACandidate,
    NeedsEvaluation,
    ReadyForTrial,
    ReadyForImplant,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::NotACandidate => "not_a_candidate",
            Outcome::NeedsEvaluation => "needs_evaluation",
            Outcome::ReadyForTrial => "ready_for_trial",
            Outcome::ReadyForImplant => "ready_for_implant",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Outcome::NotACandidate,
            Outcome::NeedsEvaluation,
            Outcome::ReadyForTrial,
            Outcome::ReadyForImplant,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| FieldError::new("result", "invalid_outcome", "unknown screening result"))
    }
}

/// The evaluated screening: the outcome, the criteria behind it and a plain-language
/// explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub outcome: Outcome,
    /// Codes of required criteria answered `no` (for `not_a_candidate`).
    pub failed: Vec<String>,
    /// Codes of trial criteria still `unknown` (for `needs_evaluation`).
    pub unknown: Vec<String>,
    pub explanation: String,
}

fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

const DISCLAIMER: &str = "This screening supports the clinical team's decision; it does not replace it.";

/// Checks that `answers` covers each criterion exactly once and names only known criteria.
pub fn check_answers(criteria: &[Criterion], answers: &[(String, Answer)]) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let mut seen = HashSet::new();
    for (i, (code, _)) in answers.iter().enumerate() {
        if !criteria.iter().any(|c| &c.code == code) {
            errors.push(FieldError::new(
                format!("answers[{i}].criterion"),
                "unknown_criterion",
                format!("'{code}' is not a screening criterion"),
            ));
        } else if !seen.insert(code.as_str()) {
            errors.push(FieldError::new(
                format!("answers[{i}].criterion"),
                "duplicate_criterion",
                format!("'{code}' is answered more than once"),
            ));
        }
    }
    let missing: Vec<&str> = criteria
        .iter()
        .filter(|c| !seen.contains(c.code.as_str()))
        .map(|c| c.code.as_str())
        .collect();
    if !missing.is_empty() && errors.is_empty() {
        errors.push(FieldError::new(
            "answers",
            "missing_criteria",
            format!(
                "every criterion needs an answer (yes, no or unknown); missing: {}",
                missing.join(", ")
            ),
        ));
    }
    errors.finish()
}

/// Applies the rules. Call [`check_answers`] first; an unanswered criterion counts as unknown.
pub fn evaluate(criteria: &[Criterion], answers: &[(String, Answer)]) -> Evaluation {
    let answer_of = |c: &Criterion| {
        answers
            .iter()
            .find(|(code, _)| *code == c.code)
            .map(|(_, a)| *a)
            .unwrap_or(Answer::Unknown)
    };
    let required = |c: &&Criterion| c.required_for_trial || c.required_for_implant;
    let failed: Vec<&Criterion> = criteria
        .iter()
        .filter(required)
        .filter(|c| answer_of(c) == Answer::No)
        .collect();
    let unknown: Vec<&Criterion> = criteria
        .iter()
        .filter(|c| c.required_for_trial && answer_of(c) == Answer::Unknown)
        .collect();
    let implant_pending: Vec<&Criterion> = criteria
        .iter()
        .filter(|c| c.required_for_implant && answer_of(c) != Answer::Yes)
        .collect();
    let questions = |list: &[&Criterion]| {
        list.iter()
            .map(|c| format!("“{}”", c.question))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let codes = |list: &[&Criterion]| list.iter().map(|c| c.code.clone()).collect::<Vec<_>>();

    let (outcome, explanation) = if !failed.is_empty() {
        (
            Outcome::NotACandidate,
            format!(
                "Not a candidate for intrathecal therapy at this time: {} answered no: {}. {DISCLAIMER}",
                count(failed.len(), "required criterion", "required criteria"),
                questions(&failed)
            ),
        )
    } else if !unknown.is_empty() {
        (
            Outcome::NeedsEvaluation,
            format!(
                "More evaluation is needed before a trial: {} still unknown: {}. {DISCLAIMER}",
                count(unknown.len(), "criterion is", "criteria are"),
                questions(&unknown)
            ),
        )
    } else if implant_pending.is_empty() {
        (
            Outcome::ReadyForImplant,
            format!(
                "Every criterion for a trial and for an implant is met, including a successful trial. {DISCLAIMER}"
            ),
        )
    } else {
        (
            Outcome::ReadyForTrial,
            format!(
                "Every criterion for a trial is met. Before an implant, these must also be met: {}. {DISCLAIMER}",
                questions(&implant_pending)
            ),
        )
    };
    Evaluation {
        outcome,
        failed: codes(&failed),
        unknown: codes(&unknown),
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria() -> Vec<Criterion> {
        let c = |code: &str, trial: bool, implant: bool| Criterion {
            code: code.into(),
            question: format!("{code}?"),
            required_for_trial: trial,
            required_for_implant: implant,
        };
        vec![
            c("medication_dependence", true, true),
            c("psychological_evaluation_passed", true, true),
            c("no_active_infection", true, true),
            c("successful_trial", false, true),
            c("informational_only", false, false),
        ]
    }

    fn answers(pairs: &[(&str, Answer)]) -> Vec<(String, Answer)> {
        pairs.iter().map(|(c, a)| (c.to_string(), *a)).collect()
    }

    fn all(trial: Answer, implant: Answer) -> Vec<(String, Answer)> {
        answers(&[
            ("medication_dependence", trial),
            ("psychological_evaluation_passed", trial),
            ("no_active_infection", trial),
            ("successful_trial", implant),
            ("informational_only", Answer::No),
        ])
    }

    #[test]
    fn a_no_on_a_required_criterion_means_not_a_candidate() {
        let mut a = all(Answer::Yes, Answer::Unknown);
        a[1].1 = Answer::No;
        a[2].1 = Answer::Unknown;
        let e = evaluate(&criteria(), &a);
        assert_eq!(e.outcome, Outcome::NotACandidate);
        assert_eq!(e.failed, ["psychological_evaluation_passed"]);
        assert!(e.explanation.contains("psychological_evaluation_passed?"));
        assert!(e.explanation.contains("does not replace it"));
    }

    #[test]
    fn a_failed_trial_means_not_a_candidate() {
        let e = evaluate(&criteria(), &all(Answer::Yes, Answer::No));
        assert_eq!(e.outcome, Outcome::NotACandidate);
        assert_eq!(e.failed, ["successful_trial"]);
    }

    #[test]
    fn unknown_trial_criteria_need_evaluation() {
        let mut a = all(Answer::Yes, Answer::Unknown);
        a[0].1 = Answer::Unknown;
        let e = evaluate(&criteria(), &a);
        assert_eq!(e.outcome, Outcome::NeedsEvaluation);
        assert_eq!(e.unknown, ["medication_dependence"]);
        assert!(e.explanation.contains("medication_dependence?"));
    }

    #[test]
    fn all_trial_criteria_met_without_a_trial_is_ready_for_trial() {
        let e = evaluate(&criteria(), &all(Answer::Yes, Answer::Unknown));
        assert_eq!(e.outcome, Outcome::ReadyForTrial);
        assert!(e.explanation.contains("successful_trial?"), "{}", e.explanation);
    }

    #[test]
    fn a_successful_trial_makes_ready_for_implant() {
        let e = evaluate(&criteria(), &all(Answer::Yes, Answer::Yes));
        assert_eq!(e.outcome, Outcome::ReadyForImplant);
        assert!(e.failed.is_empty() && e.unknown.is_empty());
    }

    #[test]
    fn informational_criteria_never_decide() {
        let a = all(Answer::Yes, Answer::Yes);
        assert_eq!(a[4].1, Answer::No);
        assert_eq!(evaluate(&criteria(), &a).outcome, Outcome::ReadyForImplant);
    }

    #[test]
    fn answers_must_cover_each_criterion_once() {
        let c = criteria();
        assert!(check_answers(&c, &all(Answer::Yes, Answer::Yes)).is_ok());
        let mut extra = all(Answer::Yes, Answer::Yes);
        extra.push(("shoe_size".into(), Answer::Yes));
        extra.push(("medication_dependence".into(), Answer::No));
        let fields: Vec<String> = check_answers(&c, &extra)
            .expect_err("invalid")
            .into_errors()
            .into_iter()
            .map(|e| format!("{}:{}", e.field, e.code))
            .collect();
        assert_eq!(
            fields,
            [
                "answers[5].criterion:unknown_criterion",
                "answers[6].criterion:duplicate_criterion"
            ]
        );
        let missing = check_answers(&c, &all(Answer::Yes, Answer::Yes)[..3]).expect_err("missing");
        assert_eq!(missing.errors()[0].code, "missing_criteria");
        assert!(missing.errors()[0].message.contains("successful_trial"));
    }
}
