//! The append-only audit log: who touched which record, how, when, under which request.
//!
//! Changes record their event inside their own transaction ([`record`]). Reads go through
//! the [`AuditWriter`]: one thread commits the events of all reads that arrive together in
//! one transaction (group commit) and only then releases each waiting read, so no record
//! leaves the platform before its audit event is stored, and a busy clinic does not pay a
//! commit per read. The API reads with a [deferred](AuditWriter::deferred) writer: the read
//! gives its pooled connection back first and then awaits the commit, so waiting reads do
//! not hold the pool (docs/performance.md, foundation).

use std::sync::{mpsc, Arc, Mutex};

use chrono::{DateTime, NaiveDateTime, Utc};
use clinic_domain::ids::{TokenId, UserId};
use clinic_store::checkpoint::Checkpointer;
use clinic_store::schema::audit_events;
use clinic_store::{dialect, time, DatabaseUrl, DbConnection, StoreError};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, Nullable, Text, Timestamp};

/// Who is acting and under which request; every audited call carries one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Actor {
    /// The API token, or `None` for the CLI, the scheduler and a patient's link.
    pub token_id: Option<TokenId>,
    /// A patient acting from the self-service link in an email: which link, as
    /// `appointment:<appointment id>` or `refill:<pump id>` (never a patient id).
    pub link: Option<String>,
    /// The staff member acting: through a console session (no token) or a personal token
    /// they made (beside `token_id`).
    pub user_id: Option<UserId>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The platform itself (CLI, scheduler): no token, no request.
    pub fn system() -> Self {
        Self::default()
    }

    /// A caller holding an API token.
    pub fn token(token_id: TokenId, request_id: Option<String>) -> Self {
        Self {
            token_id: Some(token_id),
            link: None,
            user_id: None,
            request_id,
        }
    }

    /// A staff member signed in to the console (a session, no token).
    pub fn user(user_id: UserId, request_id: Option<String>) -> Self {
        Self {
            token_id: None,
            link: None,
            user_id: Some(user_id),
            request_id,
        }
    }

    /// The same actor, naming the person behind it (a personal token's maker).
    pub fn on_behalf_of(mut self, user_id: Option<UserId>) -> Self {
        self.user_id = user_id;
        self
    }

    /// A patient acting from the link `link` (see [`Actor::link`]).
    pub fn patient_link(link: String, request_id: Option<String>) -> Self {
        Self {
            token_id: None,
            link: Some(link),
            user_id: None,
            request_id,
        }
    }

    /// What kind of actor this is, as the API and the history show it: `token` (an API
    /// token, personal or not), `user` (a console session), `patient_link` or `system`.
    pub fn kind(&self) -> &'static str {
        kind_of(self.token_id.is_some(), self.link.is_some(), self.user_id.is_some())
    }
}

/// The actor kind of a stored event or history row.
pub fn kind_of(has_token: bool, has_link: bool, has_user: bool) -> &'static str {
    match (has_token, has_link, has_user) {
        (true, _, _) => "token",
        (false, true, _) => "patient_link",
        (false, false, true) => "user",
        (false, false, false) => "system",
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_token_id: Option<String>,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub request_id: Option<String>,
    pub actor_link: Option<String>,
    /// The person, when one acted (with a session or a personal token).
    pub actor_user_id: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
struct NewEventRow<'a> {
    occurred_at: NaiveDateTime,
    actor_token_id: Option<String>,
    action: &'a str,
    subject_type: &'a str,
    subject_id: &'a str,
    request_id: Option<&'a str>,
    actor_link: Option<&'a str>,
    actor_user_id: Option<String>,
}

#[derive(Queryable)]
struct EventRow {
    id: i64,
    occurred_at: NaiveDateTime,
    actor_token_id: Option<String>,
    action: String,
    subject_type: String,
    subject_id: String,
    request_id: Option<String>,
    actor_link: Option<String>,
    actor_user_id: Option<String>,
}

/// Appends one event. Call inside the transaction of the access it records.
pub fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    action: &str,
    subject_type: &str,
    subject_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::insert_into(audit_events::table)
        .values(NewEventRow::new(actor, action, subject_type, subject_id, at))
        .execute(conn)?;
    Ok(())
}

impl<'a> NewEventRow<'a> {
    fn new(actor: &'a Actor, action: &'a str, subject_type: &'a str, subject_id: &'a str, at: DateTime<Utc>) -> Self {
        Self {
            occurred_at: time::to_db(at),
            actor_token_id: actor.token_id.map(|t| t.to_string()),
            action,
            subject_type,
            subject_id,
            request_id: actor.request_id.as_deref(),
            actor_link: actor.link.as_deref(),
            actor_user_id: actor.user_id.map(|u| u.to_string()),
        }
    }

    fn of(e: &'a PendingEvent) -> Self {
        Self::new(&e.actor, e.action, e.subject_type, &e.subject_id, e.at)
    }
}

/// An event to be written by the [`AuditWriter`].
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub actor: Actor,
    pub action: &'static str,
    pub subject_type: &'static str,
    pub subject_id: String,
    pub at: DateTime<Utc>,
}

/// Why a batch could not be written; cloned to every waiting read.
#[derive(Debug, Clone)]
struct BatchFailure {
    unavailable: bool,
    message: String,
}

/// Where the writer reports a batch's outcome: a blocked thread or an awaiting task.
enum Ack {
    Blocking(mpsc::SyncSender<Result<(), BatchFailure>>),
    Async(tokio::sync::oneshot::Sender<Result<(), BatchFailure>>),
}

impl Ack {
    fn send(self, result: Result<(), BatchFailure>) {
        // A read that gave up waiting is gone; nothing to tell it.
        let _ = match self {
            Ack::Blocking(tx) => tx.send(result).map_err(drop),
            Ack::Async(tx) => tx.send(result).map_err(drop),
        };
    }
}

impl From<BatchFailure> for StoreError {
    fn from(f: BatchFailure) -> Self {
        if f.unavailable {
            StoreError::Unavailable(f.message)
        } else {
            StoreError::Corrupt(format!("audit write failed: {}", f.message))
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the audit writer has stopped".into())
}

/// Writes the audit events of reads, and returns only once they are committed.
///
/// One thread commits the events of all reads that arrive together in one transaction
/// (group commit): a commit per read costs more than the hand-over on both backends (see
/// docs/performance.md). The thread has its own connection, never one from the pool: the
/// reads waiting on it hold pooled connections, and a writer that needed one too could
/// starve. Cloning shares the writer; the thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct AuditWriter {
    batches: mpsc::Sender<(Vec<PendingEvent>, Ack)>,
    /// Set on a [deferred](Self::deferred) writer: events wait here for [`Self::commit_deferred`].
    held: Option<Arc<Mutex<Vec<PendingEvent>>>>,
}

/// The most events one transaction takes; more wait for the next.
const MAX_BATCH: usize = 512;

/// How long a busy writer lets its queue fill before it takes the next batch. A commit
/// costs about the same for one event as for twenty (on PostgreSQL a WAL flush, on SQLite
/// the index pages and WAL frames written again), so under load a short wait buys fewer,
/// larger commits; like PostgreSQL's `commit_delay`, it applies only when the last batch
/// held more than one read, so a lone read is never delayed. SQLite's commit has no flush
/// to share and every read waits through the delay, so its delay is shorter (both
/// measured, docs/performance.md).
fn commit_delay(url: &DatabaseUrl) -> std::time::Duration {
    std::time::Duration::from_micros(match url {
        DatabaseUrl::Sqlite(_) => 150,
        DatabaseUrl::Postgres(_) => 400,
    })
}

/// SQLite: how many audit commits between the checkpoints asked of the [`Checkpointer`]
/// thread (about 200 WAL pages at 32 concurrent reads). The writer's own automatic
/// checkpoint then finds the WAL nearly copied already, and its syncs are short instead of
/// stalling every read waiting on its commit (docs/performance.md). Of 50 and 100, 50
/// gave the lower p99.
const CHECKPOINT_EVERY: u64 = 50;

impl AuditWriter {
    pub fn start(url: DatabaseUrl) -> Self {
        let (jobs, queue) = mpsc::channel::<(Vec<PendingEvent>, Ack)>();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut conn: Option<DbConnection> = None;
                let mut busy = false;
                let checkpointer = Checkpointer::start(&url);
                let delay = commit_delay(&url);
                let mut commits = 0u64;
                while let Ok(first) = queue.recv() {
                    if busy {
                        std::thread::sleep(delay);
                    }
                    let mut batch = vec![first];
                    let mut events = batch[0].0.len();
                    while events < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => {
                                events += job.0.len();
                                batch.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    busy = batch.len() > 1;
                    let result = write_batch(&url, &mut conn, &batch);
                    commits += 1;
                    if let Some(checkpointer) = checkpointer.as_ref().filter(|_| commits % CHECKPOINT_EVERY == 0) {
                        checkpointer.request();
                    }
                    for (_, ack) in batch {
                        ack.send(result.clone());
                    }
                }
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the audit writer"));
        Self {
            batches: jobs,
            held: None,
        }
    }

    /// Stores the events and returns once they are committed; on a deferred writer, holds
    /// them for [`Self::commit_deferred`] instead.
    pub fn record(&self, events: Vec<PendingEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        if let Some(held) = &self.held {
            held.lock()
                .map_err(|_| StoreError::Corrupt("audit events lost to a panic".into()))?
                .extend(events);
            return Ok(());
        }
        let (ack, done) = mpsc::sync_channel(1);
        self.batches.send((events, Ack::Blocking(ack))).map_err(|_| stopped())?;
        done.recv().map_err(|_| stopped())?.map_err(StoreError::from)
    }

    /// A writer that holds what is recorded through it until [`Self::commit_deferred`], so
    /// a read can return its pooled connection before it waits for the commit. Whoever
    /// makes one must commit it before anything read under it leaves the process
    /// (`AppState::db_audited` in the API does both).
    pub fn deferred(&self) -> AuditWriter {
        AuditWriter {
            batches: self.batches.clone(),
            held: Some(Arc::new(Mutex::new(Vec::new()))),
        }
    }

    /// Commits the events held by this deferred writer (and its clones), without blocking
    /// a thread while the writer works. A plain writer holds nothing: `Ok` at once.
    pub async fn commit_deferred(&self) -> Result<(), StoreError> {
        self.submit_deferred()?.committed().await
    }

    /// Hands the events held by this deferred writer to the writer thread now, from any
    /// thread, and returns their commit to await. Submitting from the thread that did the
    /// read lets the commit start while the answer is still on its way back to the async
    /// task, which then often finds the commit done instead of waiting to be woken again.
    pub fn submit_deferred(&self) -> Result<PendingCommit, StoreError> {
        let events = match &self.held {
            Some(held) => std::mem::take(
                &mut *held
                    .lock()
                    .map_err(|_| StoreError::Corrupt("audit events lost to a panic".into()))?,
            ),
            None => Vec::new(),
        };
        if events.is_empty() {
            return Ok(PendingCommit::none());
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        self.batches.send((events, Ack::Async(ack))).map_err(|_| stopped())?;
        Ok(PendingCommit(Some(done)))
    }
}

/// Events handed to the writer by [`AuditWriter::submit_deferred`]; await [`Self::committed`]
/// before anything read under them leaves the process.
#[must_use = "the events are not known to be stored until `committed` returns Ok"]
pub struct PendingCommit(Option<tokio::sync::oneshot::Receiver<Result<(), BatchFailure>>>);

impl PendingCommit {
    /// Nothing was handed over.
    fn none() -> Self {
        Self(None)
    }

    pub async fn committed(self) -> Result<(), StoreError> {
        match self.0 {
            Some(done) => done.await.map_err(|_| stopped())?.map_err(StoreError::from),
            None => Ok(()),
        }
    }
}

/// PostgreSQL: a whole batch as one `INSERT … SELECT … FROM unnest(…)` with one array per
/// column. Its SQL is the same for every batch size, so diesel prepares it once per
/// connection; a multi-row `VALUES` list differs with its row count, and PostgreSQL parsed
/// and planned one for every batch (docs/performance.md, foundation).
struct UnnestEvents<'a> {
    occurred_at: Vec<NaiveDateTime>,
    actor_token_id: Vec<Option<String>>,
    action: Vec<&'a str>,
    subject_type: Vec<&'a str>,
    subject_id: Vec<&'a str>,
    request_id: Vec<Option<&'a str>>,
    actor_link: Vec<Option<&'a str>>,
    actor_user_id: Vec<Option<String>>,
}

impl<'a> UnnestEvents<'a> {
    fn new(events: impl Iterator<Item = &'a PendingEvent>) -> Self {
        let mut columns = Self {
            occurred_at: Vec::new(),
            actor_token_id: Vec::new(),
            action: Vec::new(),
            subject_type: Vec::new(),
            subject_id: Vec::new(),
            request_id: Vec::new(),
            actor_link: Vec::new(),
            actor_user_id: Vec::new(),
        };
        for e in events {
            columns.occurred_at.push(time::to_db(e.at));
            columns.actor_token_id.push(e.actor.token_id.map(|t| t.to_string()));
            columns.action.push(e.action);
            columns.subject_type.push(e.subject_type);
            columns.subject_id.push(&e.subject_id);
            columns.request_id.push(e.actor.request_id.as_deref());
            columns.actor_link.push(e.actor.link.as_deref());
            columns.actor_user_id.push(e.actor.user_id.map(|u| u.to_string()));
        }
        columns
    }
}

/// The statement cache's key for [`UnnestEvents`], whose SQL never changes.
struct UnnestEventsQuery;

impl QueryId for UnnestEvents<'_> {
    type QueryId = UnnestEventsQuery;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for UnnestEvents<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO audit_events \
             (occurred_at, actor_token_id, action, subject_type, subject_id, request_id, actor_link, actor_user_id) \
             SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<Timestamp>, _>(&self.occurred_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.actor_token_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.action)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.subject_type)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.subject_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.request_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.actor_link)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.actor_user_id)?;
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for UnnestEvents<'_> {}

/// Writes a batch in one transaction, (re)connecting first when needed. A failed batch
/// drops the connection, so a restarted database is reconnected on the next batch.
fn write_batch(
    url: &DatabaseUrl,
    slot: &mut Option<DbConnection>,
    batch: &[(Vec<PendingEvent>, Ack)],
) -> Result<(), BatchFailure> {
    let fail = |e: StoreError| BatchFailure {
        unavailable: e.is_unavailable() || matches!(e, StoreError::Query(_)),
        message: e.to_string(),
    };
    let conn = match slot {
        Some(conn) => conn,
        None => slot.insert(url.establish().map_err(fail)?),
    };
    let events = || batch.iter().flat_map(|(events, _)| events);
    let result = match conn {
        // SQLite: the single-row insert, prepared once per connection, for each event.
        DbConnection::Sqlite(_) => dialect::write_transaction(conn, |conn| {
            for e in events() {
                let insert = diesel::insert_into(audit_events::table).values(NewEventRow::of(e));
                clinic_store::on_native!(&mut *conn, c => insert.execute(c))?;
            }
            Ok(())
        }),
        // PostgreSQL: one statement, which is a transaction of its own.
        DbConnection::Postgresql(c) => UnnestEvents::new(events())
            .execute(c)
            .map(drop)
            .map_err(StoreError::from),
    };
    if result.is_err() {
        *slot = None;
    }
    result.map_err(fail)
}

/// Filters for listing events; all optional and combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_token_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only events with an id below this (the cursor; lists run newest first).
    pub before_id: Option<i64>,
}

/// Newest first, at most `limit` events, plus whether more follow.
pub fn list(conn: &mut DbConnection, filter: &AuditFilter, limit: i64) -> Result<(Vec<AuditEvent>, bool), StoreError> {
    let mut query = audit_events::table.into_boxed();
    if let Some(v) = &filter.actor_token_id {
        query = query.filter(audit_events::actor_token_id.eq(v.clone()));
    }
    if let Some(v) = &filter.actor_user_id {
        query = query.filter(audit_events::actor_user_id.eq(v.clone()));
    }
    if let Some(v) = &filter.subject_type {
        query = query.filter(audit_events::subject_type.eq(v.clone()));
    }
    if let Some(v) = &filter.subject_id {
        query = query.filter(audit_events::subject_id.eq(v.clone()));
    }
    if let Some(v) = &filter.action {
        query = query.filter(audit_events::action.eq(v.clone()));
    }
    if let Some(v) = filter.from {
        query = query.filter(audit_events::occurred_at.ge(time::to_db(v)));
    }
    if let Some(v) = filter.to {
        query = query.filter(audit_events::occurred_at.lt(time::to_db(v)));
    }
    if let Some(v) = filter.before_id {
        query = query.filter(audit_events::id.lt(v));
    }
    let mut rows: Vec<EventRow> = query.order(audit_events::id.desc()).limit(limit + 1).load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((
        rows.into_iter()
            .map(|r| AuditEvent {
                id: r.id,
                occurred_at: time::from_db(r.occurred_at),
                actor_token_id: r.actor_token_id,
                action: r.action,
                subject_type: r.subject_type,
                subject_id: r.subject_id,
                request_id: r.request_id,
                actor_link: r.actor_link,
                actor_user_id: r.actor_user_id,
            })
            .collect(),
        more,
    ))
}
