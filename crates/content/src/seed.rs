//! Seed content for a new clinic: the conditions treated, the screening criteria and the
//! original patient-education articles in `crates/content/seed/`. Idempotent: it only adds
//! what is missing (by slug or code) and never overwrites the clinic's edits.

use chrono::{DateTime, Utc};
use clinic_domain::content::{self, ArticleTransition, Slug};
use clinic_patients::audit::Actor;
use clinic_store::schema::{articles, conditions, screening_criteria};
use clinic_store::{dialect, DbConnection};
use diesel::prelude::*;
use serde::Deserialize;

use crate::articles::ArticleContent;
use crate::conditions::ConditionFields;
use crate::screening::NewCriterion;
use crate::{articles as article_repo, conditions as condition_repo, screening, ContentError};

const CONDITIONS: &str = include_str!("../seed/conditions.toml");
const CRITERIA: &str = include_str!("../seed/criteria.toml");
const ARTICLES: &str = include_str!("../seed/articles.toml");
/// Article bodies by the `body_file` names used in articles.toml.
const BODIES: &[(&str, &str)] = &[(
    "articles/intrathecal-pump-therapy.md",
    include_str!("../seed/articles/intrathecal-pump-therapy.md"),
)];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionsFile {
    condition: Vec<SeedCondition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedCondition {
    slug: String,
    name: String,
    summary: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CriteriaFile {
    criterion: Vec<SeedCriterion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedCriterion {
    code: String,
    question: String,
    why: String,
    required_for_trial: bool,
    required_for_implant: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArticlesFile {
    article: Vec<SeedArticle>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedArticle {
    slug: String,
    title: String,
    summary: String,
    tags: Vec<String>,
    conditions: Vec<String>,
    author: String,
    body_file: String,
}

/// What a seed run added.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub conditions: usize,
    pub criteria: usize,
    pub articles: usize,
}

fn bad_seed(what: String) -> ContentError {
    ContentError::Store(clinic_store::StoreError::Corrupt(format!("seed data: {what}")))
}

fn parse<T: for<'de> Deserialize<'de>>(name: &str, text: &str) -> Result<T, ContentError> {
    toml::from_str(text).map_err(|e| bad_seed(format!("{name}: {e}")))
}

/// True when the database holds no content at all (a first start).
pub fn is_empty(conn: &mut DbConnection) -> Result<bool, ContentError> {
    let n: i64 = conditions::table.count().get_result(conn)?;
    let m: i64 = screening_criteria::table.count().get_result(conn)?;
    let a: i64 = articles::table.count().get_result(conn)?;
    Ok(n + m + a == 0)
}

/// Adds whatever seed content is missing. Published articles are published.
pub fn run(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<SeedReport, ContentError> {
    let conditions_file: ConditionsFile = parse("conditions.toml", CONDITIONS)?;
    let criteria_file: CriteriaFile = parse("criteria.toml", CRITERIA)?;
    let articles_file: ArticlesFile = parse("articles.toml", ARTICLES)?;
    dialect::write_transaction(conn, |conn| {
        let mut report = SeedReport::default();
        for c in conditions_file.condition {
            let exists: i64 = conditions::table
                .filter(conditions::slug.eq(&c.slug))
                .count()
                .get_result(conn)?;
            if exists == 0 {
                let fields = ConditionFields {
                    slug: Slug::parse(&c.slug).map_err(|e| bad_seed(e.message))?,
                    name: content::parse_condition_name(&c.name).map_err(|e| bad_seed(e.message))?,
                    summary: content::parse_summary(&c.summary).map_err(|e| bad_seed(e.message))?,
                };
                condition_repo::create(conn, fields, now)?;
                report.conditions += 1;
            }
        }
        for (position, c) in criteria_file.criterion.into_iter().enumerate() {
            let exists: i64 = screening_criteria::table.find(&c.code).count().get_result(conn)?;
            if exists == 0 {
                let new = NewCriterion {
                    code: screening::parse_code(&c.code).map_err(|e| bad_seed(e.message))?,
                    question: c.question,
                    why: c.why,
                    required_for_trial: c.required_for_trial,
                    required_for_implant: c.required_for_implant,
                    position: (position as i64 + 1) * 10,
                };
                screening::create_criterion(conn, new, now)?;
                report.criteria += 1;
            }
        }
        for a in articles_file.article {
            let exists: i64 = articles::table
                .filter(articles::slug.eq(&a.slug))
                .count()
                .get_result(conn)?;
            if exists > 0 {
                continue;
            }
            let body = BODIES
                .iter()
                .find(|(name, _)| *name == a.body_file)
                .map(|(_, body)| *body)
                .ok_or_else(|| bad_seed(format!("no embedded body for {}", a.body_file)))?;
            let content = ArticleContent {
                slug: Slug::parse(&a.slug).map_err(|e| bad_seed(e.message))?,
                title: content::parse_title(&a.title).map_err(|e| bad_seed(e.message))?,
                summary: content::parse_summary(&a.summary).map_err(|e| bad_seed(e.message))?,
                body_markdown: content::parse_body(body).map_err(|e| bad_seed(e.message))?,
                author: content::parse_author(&a.author).map_err(|e| bad_seed(e.message))?,
                tags: content::parse_tags(&a.tags).map_err(|e| bad_seed(e.message))?,
                conditions: a
                    .conditions
                    .iter()
                    .map(|s| Slug::parse(s))
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad_seed(e.message))?,
            };
            let article = article_repo::create(conn, &Actor::system(), content, now)?;
            article_repo::transition(conn, article.id, ArticleTransition::Publish, now)?;
            report.articles += 1;
        }
        Ok(report)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinic_store::testing::TestDatabase;

    #[test]
    fn seeding_adds_everything_once_and_keeps_edits() {
        let db = TestDatabase::new();
        let mut conn = db.url().establish().expect("connect");
        let now = clinic_store::time::now();
        assert!(is_empty(&mut conn).expect("empty"));
        let first = run(&mut conn, now).expect("seed");
        assert_eq!(
            first,
            SeedReport {
                conditions: 6,
                criteria: 8,
                articles: 1
            }
        );
        assert!(!is_empty(&mut conn).expect("not empty"));

        let criteria = screening::criteria(&mut conn, false).expect("criteria");
        let trial = criteria
            .iter()
            .find(|c| c.code == "successful_trial")
            .expect("trial criterion");
        assert!(!trial.required_for_trial && trial.required_for_implant);
        assert!(criteria
            .iter()
            .filter(|c| c.code != "successful_trial")
            .all(|c| c.required_for_trial));

        let article = article_repo::published_by_slug(&mut conn, "intrathecal-pump-therapy").expect("published");
        assert_eq!(article.conditions.len(), 6);
        assert!(article.body_html.contains("<h2>"));

        let ab = condition_repo::by_slug(&mut conn, "cancer-pain").expect("condition");
        condition_repo::update(
            &mut conn,
            ab.id,
            ab.version,
            crate::conditions::ConditionChanges {
                summary: Some("Edited by the clinic.".into()),
                ..Default::default()
            },
            now,
        )
        .expect("edit");
        assert_eq!(run(&mut conn, now).expect("again"), SeedReport::default());
        assert_eq!(
            condition_repo::by_slug(&mut conn, "cancer-pain").expect("c").summary,
            "Edited by the clinic."
        );
    }
}
