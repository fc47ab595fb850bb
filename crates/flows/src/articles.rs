//! Article changes: write a draft, edit it, publish or unpublish it, restore a revision.

use chrono::{DateTime, Utc};
use clinic_content::articles::{self, Article, ArticleChanges, ArticleContent};
use clinic_domain::content::ArticleTransition;
use clinic_domain::ids::ArticleId;
use clinic_patients::audit::Actor;
use clinic_store::{dialect, DbConnection};

use crate::FlowError;

pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    content: ArticleContent,
    now: DateTime<Utc>,
) -> Result<Article, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(articles::create(conn, actor, content, now)?))
}

/// Applies `changes` if the article is still at `expected_version` (409 otherwise).
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ArticleId,
    expected_version: i64,
    changes: ArticleChanges,
    now: DateTime<Utc>,
) -> Result<Article, FlowError> {
    dialect::write_transaction(conn, |conn| {
        Ok(articles::update(conn, actor, id, expected_version, changes, now)?)
    })
}

/// Publishes, unpublishes or archives.
pub fn transition(
    conn: &mut DbConnection,
    id: ArticleId,
    change: ArticleTransition,
    now: DateTime<Utc>,
) -> Result<Article, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(articles::transition(conn, id, change, now)?))
}

/// Makes revision `number` the current text again (a new revision).
pub fn restore(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ArticleId,
    number: i64,
    now: DateTime<Utc>,
) -> Result<Article, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(articles::restore(conn, actor, id, number, now)?))
}
