//! What every handler can reach: the pool, clinic facts, the clock, metrics, limits.

use std::sync::Arc;
use std::time::Instant;

use actix_web::web;
use chrono::{DateTime, Utc};
use clinic_domain::contact::PhoneRegion;
use clinic_domain::time::{ClinicZone, Clock};
use clinic_patients::audit::{self, Actor, AuditWriter};
use clinic_store::{dialect, pool, DatabaseUrl, DbConnection, Pool, StoreError};

use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::token_cache::TokenCache;

/// Facts about the clinic from configuration.
#[derive(Debug, Clone)]
pub struct ClinicInfo {
    pub name: String,
    pub phone: String,
    pub time_zone: ClinicZone,
    /// Region for phone numbers written without a country code.
    pub phone_region: PhoneRegion,
    /// Where the clinic is, for calendar invitations (the name when not configured).
    pub address: Option<String>,
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// The longest life of a token made through the API (`CLINIC_TOKEN_MAX_DAYS`).
    pub token_max_days: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            token_max_days: 365,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub clinic: ClinicInfo,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Group-commit writer for the audit events of reads.
    pub audit: AuditWriter,
    /// Recent availability answers (cleared by every calendar change in this process).
    pub availability: crate::availability_cache::AvailabilityCache,
    /// Published articles for the public pages and API.
    pub content: crate::content_cache::ContentCache,
    /// Per-address limit for the public (tokenless) write routes.
    pub public_limiter: std::sync::Arc<crate::rate_limit::PublicLimiter>,
    /// Per-address and per-link limits of the patients' self-service pages.
    pub self_service_limits: std::sync::Arc<crate::rate_limit::SelfServiceLimits>,
    /// Recently verified tokens (see [`TokenCache`] for the revocation delay).
    pub tokens: TokenCache,
    /// Renders outbox rows and previews; signs and checks "stop emailing me" links.
    pub composer: Arc<clinic_reminders::compose::Composer>,
    /// The first-come, first-served queue in front of [`Self::pool`].
    pub db_gate: DbGate,
    /// The self-service settings the patients' pages show (cleared when they are saved).
    pub self_service_settings: clinic_flows::self_service::SettingsCache,
    /// The bearer value `/metrics` requires (`CLINIC_METRICS_TOKEN`); `None` leaves it open.
    pub metrics_token: Option<Arc<str>>,
}

/// A fair queue for pooled connections, one permit per connection.
///
/// r2d2 hands a freed connection to whichever waiting thread takes it first, so under load
/// some requests waited many times longer than others (PostgreSQL `/readyz` p99 of 0.3–1 s
/// at 32 clients on 16 connections; docs/performance.md). Requests wait here in arrival
/// order instead, without holding a blocking thread, and take a connection only once one
/// is theirs. Waiting here and in the pool together is bounded by the pool's checkout
/// timeout, after which the request is answered 503.
#[derive(Clone)]
pub struct DbGate {
    turns: Arc<tokio::sync::Semaphore>,
    /// Whether keyed reads may run on the worker thread ([`AppState::db_audited_keyed`]).
    inline_keyed_reads: bool,
}

impl DbGate {
    /// Keyed reads run inline only when the database is on this machine (SQLite, or
    /// PostgreSQL on the loopback or a socket), where the worker waits no longer than a
    /// local round trip; a database across a network is waited on from the blocking pool.
    pub fn for_pool(pool: &Pool, url: &DatabaseUrl) -> Self {
        Self {
            turns: Arc::new(tokio::sync::Semaphore::new(pool.max_size() as usize)),
            inline_keyed_reads: url.is_local(),
        }
    }
}

impl AppState {
    /// Now, at the precision the database keeps.
    pub fn now(&self) -> DateTime<Utc> {
        clinic_store::time::from_db(clinic_store::time::to_db(self.clock.now()))
    }

    /// Runs blocking database work on actix's blocking pool with a pooled connection.
    pub async fn db<T, E, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let deadline = Instant::now() + self.pool.connection_timeout();
        let turn = tokio::time::timeout_at(deadline.into(), self.db_gate.turns.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable("no database connection became free in time".into()))?
            .map_err(|_| ApiError::Internal("the connection queue is closed".into()))?;
        let pool = self.pool.clone();
        web::block(move || {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut conn = pool::get_within(&pool, left).map_err(ApiError::from)?;
            let result = f(&mut conn).map_err(Into::into);
            // The turn ends with the connection's return, here, not when the awaiting
            // task is next polled: a busy worker thread must not keep the queue waiting.
            drop(conn);
            drop(turn);
            result
        })
        .await
        .map_err(|_| ApiError::Internal("blocking task was cancelled".into()))?
    }

    /// Like [`Self::db`] for an administrative change (providers, closures, appointment
    /// types, feed tokens): `f` and its audit event, naming the subject `f` returned, are
    /// committed in one transaction, so a change never lands without its trace (security
    /// review F5).
    pub async fn db_change<T, E, F, S>(
        &self,
        actor: Actor,
        action: &'static str,
        subject_type: &'static str,
        subject: S,
        f: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        S: FnOnce(&T) -> String + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + From<diesel::result::Error> + From<StoreError> + Send + 'static,
    {
        let now = self.now();
        self.db(move |conn| {
            dialect::write_transaction(conn, |conn| {
                let value = f(conn)?;
                audit::record(conn, &actor, action, subject_type, &subject(&value), now)?;
                Ok::<T, E>(value)
            })
        })
        .await
    }

    /// Like [`Self::db_audited`] for a read bounded by key: one record and at most a few
    /// rows beside it, found through primary-key or unique indexes.
    ///
    /// When the database is on this machine and a pooled connection is free at once and no
    /// request is queued for one, the read runs right here on the worker thread instead of
    /// on the blocking pool. Such a read takes microseconds, like rendering its JSON: SQLite
    /// reads the pages from memory and, in WAL mode, a reader never waits for the writer; a
    /// local PostgreSQL answers a primary-key lookup in one loopback round trip. Skipping
    /// the two thread hand-overs of the blocking pool was the largest single cost left in
    /// the patient read, and on PostgreSQL halved its p99 (docs/performance.md, foundation).
    /// Anything that could take longer (lists, searches, computations over a history) stays
    /// on [`Self::db_audited`], and so does every read from a PostgreSQL across a network,
    /// where a worker would wait on the network with all its other connections.
    pub async fn db_audited_keyed<T, E, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection, &AuditWriter) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        if !self.db_gate.inline_keyed_reads {
            return self.db_audited(f).await;
        }
        // The fair queue hands out no permit while anyone waits, so this never overtakes.
        let Ok(turn) = self.db_gate.turns.clone().try_acquire_owned() else {
            return self.db_audited(f).await;
        };
        let Some(mut conn) = self.pool.try_get() else {
            drop(turn);
            return self.db_audited(f).await;
        };
        let writer = self.audit.deferred();
        let result = f(&mut conn, &writer).map_err(Into::into);
        drop(conn);
        drop(turn);
        answer_once_audited(result, writer.commit_deferred().await)
    }

    /// Like [`Self::db`] for work that reads patient data: `f` records its read events on
    /// the writer it is given, the pooled connection goes back, and the events are
    /// committed before the result is handed over, so nothing leaves unaudited and waiting
    /// reads do not hold the pool. Events are committed even when `f` fails part-way (what
    /// it read before failing was still read).
    pub async fn db_audited<T, E, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection, &AuditWriter) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let deferred = self.audit.deferred();
        let writer = deferred.clone();
        let outcome = self
            .db(move |conn| {
                let result = f(conn, &writer);
                // Handed over here rather than by the awaiting task: the commit starts
                // while the answer travels back (docs/performance.md, foundation).
                Ok::<_, ApiError>((result, writer.submit_deferred()))
            })
            .await;
        let (result, committed) = match outcome {
            Ok((result, Ok(pending))) => (result.map_err(Into::into), pending.committed().await),
            Ok((result, Err(e))) => (result.map_err(Into::into), Err(e)),
            // The closure did not run to its end: commit what it recorded before it stopped.
            Err(e) => (Err(e), deferred.commit_deferred().await),
        };
        answer_once_audited(result, committed)
    }
}

/// A read's answer once its audit events have been committed or have failed to be: the
/// read's own error first, else the commit's, since nothing read may leave unaudited.
fn answer_once_audited<T>(result: Result<T, ApiError>, committed: Result<(), StoreError>) -> Result<T, ApiError> {
    let value = result?;
    committed.map_err(ApiError::from)?;
    Ok(value)
}
