//! The every-minute tick (UTC) that runs the dispatcher inside `clinic serve`. Only a
//! ticker: what is due lives in the outbox, so a missed or doubled tick loses and repeats
//! nothing, and several instances ticking together share the work through their claims.

use std::sync::Arc;

use chrono::Utc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::dispatcher::Dispatcher;

/// Every minute, at second 0, in UTC.
pub const EVERY_MINUTE: &str = "0 * * * * *";

/// Starts the every-minute ticker; keep the returned scheduler alive (drop or `shutdown`
/// stops it).
pub async fn start(dispatcher: Arc<Dispatcher>) -> Result<JobScheduler, JobSchedulerError> {
    start_on(dispatcher, EVERY_MINUTE).await
}

/// Starts a ticker on a six-field cron `schedule` (UTC), e.g. every second in tests.
pub async fn start_on(dispatcher: Arc<Dispatcher>, schedule: &str) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async(schedule, move |_id, _scheduler| {
        let d = dispatcher.clone();
        Box::pin(async move { d.tick(Utc::now()).await })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}
