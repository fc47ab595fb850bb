//! The dispatcher: plan, then claim ready rows with a lease, decide and render each, send,
//! and record the outcome. At-least-once: a crash between the SMTP server's acceptance and
//! "mark sent" leaves the lease to expire and the email is sent again under the same
//! Message-ID; nothing else sends twice. Several instances on one PostgreSQL never claim
//! the same row (`FOR UPDATE SKIP LOCKED`).
//!
//! Logs carry row ids, kinds and counts only: never an address, a name or an SMTP reply
//! (which may quote the address); those stay in the database.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use clinic_domain::time::ClinicZone;
use clinic_store::pool::Pool;
use clinic_store::{dialect, DbConnection};
use futures_util::stream::{self, StreamExt};

use crate::compose::{Composer, Decision};
use crate::mailer::{MailError, Mailer};
use crate::outbox::{self, OutboxRow};
use crate::outreach::{self, NewEntry, Reason};
use crate::planner::{self, Planned};
use crate::{settings, ReminderError};

#[derive(Debug, Clone, Copy)]
pub struct DispatchOptions {
    /// How long a claimed row is ours before another dispatcher may take it.
    pub lease: Duration,
    /// Rows claimed at a time.
    pub batch: i64,
    /// Emails in flight at once (SMTP connections from the pool).
    pub concurrency: usize,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        Self {
            lease: Duration::minutes(5),
            batch: 100,
            concurrency: 4,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub planned: Planned,
    pub claimed: usize,
    pub sent: usize,
    /// Failed this time, to be retried after a backoff.
    pub retrying: usize,
    /// Failed for good: on the outreach list.
    pub failed: usize,
    /// Not sent: stale, no consent or address, too late. Now `void`.
    pub skipped: usize,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, o: Self) {
        self.planned += o.planned;
        self.claimed += o.claimed;
        self.sent += o.sent;
        self.retrying += o.retrying;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

/// The last run, for health checks and operators.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_report: Option<Report>,
    pub last_error: Option<String>,
}

enum Outcome {
    Sent(Option<String>),
    Failed(MailError),
    Skipped { reason: String, outreach: Option<NewEntry> },
}

pub struct Dispatcher {
    pool: Pool,
    mailer: Mailer,
    composer: Arc<Composer>,
    clinic_zone: ClinicZone,
    options: DispatchOptions,
    /// One run at a time in this process (ticks never pile up behind a slow SMTP server).
    running: tokio::sync::Mutex<()>,
    status: Mutex<Status>,
}

impl Dispatcher {
    pub fn new(pool: Pool, mailer: Mailer, composer: Arc<Composer>, options: DispatchOptions) -> Self {
        Self {
            pool,
            mailer,
            clinic_zone: composer.clinic.time_zone,
            composer,
            options,
            running: tokio::sync::Mutex::new(()),
            status: Mutex::new(Status::default()),
        }
    }

    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, ReminderError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ReminderError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = clinic_store::pool::get(&pool)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| ReminderError::Corrupt(format!("dispatcher task: {e}")))?
    }

    /// Plans, then dispatches everything ready at `now`. Waits for a run already going.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Report, ReminderError> {
        let _running = self.running.lock().await;
        self.run_locked(now).await
    }

    /// The scheduler's tick: like [`run_once`](Self::run_once), but skipped when a run is
    /// still going, and never failing (the error is logged and kept in [`status`](Self::status)).
    pub async fn tick(&self, now: DateTime<Utc>) {
        let Ok(_running) = self.running.try_lock() else {
            tracing::info!("reminders: previous run still going; skipping this tick");
            return;
        };
        let result = self.run_locked(now).await;
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.last_run_at = Some(now);
        match result {
            Ok(report) => {
                if report != Report::default() {
                    tracing::info!(?report, "reminders: run done");
                }
                status.last_report = Some(report);
                status.last_error = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "reminders: run failed; the next tick tries again");
                status.last_error = Some(e.to_string());
            }
        }
    }

    async fn run_locked(&self, now: DateTime<Utc>) -> Result<Report, ReminderError> {
        let zone = self.clinic_zone;
        let planned = self
            .blocking(move |conn| {
                let s = settings::load(conn)?;
                planner::plan(conn, &s.settings, zone, now)
            })
            .await?;
        let mut report = Report {
            planned,
            ..Report::default()
        };
        // A run can outlast the lease (a backlog, a slow relay): each batch's lease and records
        // count from when that batch starts, not from the tick, or another instance would
        // take the later batches back while this one is still sending them.
        let started = std::time::Instant::now();
        loop {
            let batch = self.dispatch_batch(later(now, started)).await?;
            report += batch;
            if batch.claimed < usize::try_from(self.options.batch).unwrap_or(usize::MAX) {
                return Ok(report);
            }
        }
    }

    /// Claims one batch at `now`, sends it, records the outcomes (at `now` plus the time the
    /// sending took).
    pub async fn dispatch_batch(&self, now: DateTime<Utc>) -> Result<Report, ReminderError> {
        let started = std::time::Instant::now();
        let (composer, options) = (self.composer.clone(), self.options);
        let decided: Vec<(OutboxRow, Result<Decision, String>)> = self
            .blocking(move |conn| {
                let rows = outbox::claim(conn, now, options.lease, options.batch)?;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let d = composer.decide(conn, &row, now).map_err(|e| e.to_string());
                        (row, d)
                    })
                    .collect())
            })
            .await?;
        let claimed = decided.len();
        let (mailer, sender) = (&self.mailer, &self.composer.sender);
        let outcomes: Vec<(OutboxRow, Outcome)> = stream::iter(decided)
            .map(|(row, decision)| async move {
                let outcome = match decision {
                    Ok(Decision::Send(email)) => match mailer.send(sender, &email).await {
                        Ok(provider_id) => Outcome::Sent(provider_id),
                        Err(e) => Outcome::Failed(e),
                    },
                    Ok(Decision::Skip { reason, outreach }) => Outcome::Skipped { reason, outreach },
                    // Data the email needs could not be read or rendered: retry, then staff.
                    Err(message) => Outcome::Failed(MailError {
                        permanent: false,
                        message,
                    }),
                };
                (row, outcome)
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let done = later(now, started);
        self.blocking(move |conn| record(conn, outcomes, claimed, now, done))
            .await
    }
}

/// `now` moved on by the real time elapsed since `started`: runs are given the tick's instant
/// (a fake clock in tests), and this keeps their later steps in step with it.
fn later(now: DateTime<Utc>, started: std::time::Instant) -> DateTime<Utc> {
    now + Duration::from_std(started.elapsed()).unwrap_or_default()
}

/// Writes a batch's outcomes in one transaction, at `now` (when sending ended). A failure's
/// retry counts from `attempted` (when the batch was claimed, on the tick), so that a
/// 1-minute backoff is due at the next tick, not the one after.
fn record(
    conn: &mut DbConnection,
    outcomes: Vec<(OutboxRow, Outcome)>,
    claimed: usize,
    attempted: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Report, ReminderError> {
    dialect::write_transaction(conn, |conn| {
        let mut report = Report {
            claimed,
            ..Report::default()
        };
        let mut entries = Vec::new();
        for (row, outcome) in outcomes {
            match outcome {
                Outcome::Sent(provider_id) => {
                    outbox::mark_sent(conn, &row.id, provider_id.as_deref(), now)?;
                    report.sent += 1;
                }
                Outcome::Skipped { reason, outreach } => {
                    outbox::mark_void(conn, &row.id, &reason, now)?;
                    tracing::info!(row = %row.id, kind = %row.kind, "reminders: not sent ({reason})");
                    entries.extend(outreach);
                    report.skipped += 1;
                }
                Outcome::Failed(e) => {
                    let state = outbox::mark_failed(conn, &row.id, &e.message, e.permanent, attempted)?;
                    tracing::warn!(row = %row.id, kind = %row.kind, permanent = e.permanent, %state, "reminders: send failed");
                    if state == "failed" {
                        report.failed += 1;
                        if let Some(patient_id) = row.patient_id.clone() {
                            entries.push(NewEntry {
                                // Per final failure: a retried email that fails again asks again.
                                dedupe_key: format!("email_failed:{}:{}", row.id, now.timestamp()),
                                patient_id,
                                reason: Reason::EmailFailed,
                                subject_type: row.subject_type.clone(),
                                subject_id: row.subject_id.clone(),
                                refers_to: clinic_store::time::from_db(row.refers_to),
                            });
                        }
                    } else {
                        report.retrying += 1;
                    }
                }
            }
        }
        outreach::raise(conn, entries, now)?;
        Ok(report)
    })
}
