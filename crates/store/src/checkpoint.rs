//! SQLite WAL checkpoints off the hot writer's thread.
//!
//! By default a SQLite connection checkpoints on the commit that grows the WAL past 1,000
//! pages: it copies the pages into the database file and syncs both files, and with
//! `synchronous = NORMAL` those syncs are the only ones SQLite makes. On the audit writer
//! that meant every read waiting on its commit waited for two or three `fsync`s as well
//! (several milliseconds on this VM, a few times a second under load: the read's p99).
//!
//! A [`Checkpointer`] runs `PRAGMA wal_checkpoint(PASSIVE)` on its own thread and
//! connection when asked, beside the writer (a passive checkpoint never blocks writers or
//! readers). The writer keeps its own automatic checkpoint: only a checkpoint that finds
//! every frame copied lets the next write start the WAL from its beginning again, and the
//! writer's then has little left to copy, so its syncs are short (docs/performance.md).

use std::sync::mpsc;

use diesel::prelude::*;
use diesel::sql_types::Integer;

use crate::{DatabaseUrl, DbConnection, StoreError};

/// Where a passive checkpoint left the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct WalState {
    /// 1 when it could not run at all because another checkpoint held the lock.
    #[diesel(sql_type = Integer)]
    pub busy: i32,
    /// Frames in the WAL.
    #[diesel(sql_type = Integer)]
    pub log: i32,
    /// Frames copied into the database file.
    #[diesel(sql_type = Integer)]
    pub checkpointed: i32,
}

/// Copies what it can of the WAL into the database file without waiting for anyone.
pub fn passive(conn: &mut DbConnection) -> Result<WalState, StoreError> {
    match conn {
        DbConnection::Sqlite(c) => diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result(c)
            .map_err(StoreError::from),
        DbConnection::Postgresql(_) => Err(StoreError::Corrupt(
            "WAL checkpoints are SQLite's; PostgreSQL runs its own".into(),
        )),
    }
}

/// A thread that checkpoints a SQLite database when asked. Dropping the last handle ends it.
pub struct Checkpointer {
    requests: mpsc::SyncSender<Option<mpsc::SyncSender<Result<WalState, StoreError>>>>,
}

impl Checkpointer {
    /// `None` for PostgreSQL, which needs none.
    pub fn start(url: &DatabaseUrl) -> Option<Self> {
        if !matches!(url, DatabaseUrl::Sqlite(_)) {
            return None;
        }
        // One slot: a request made while one is pending is already served by it.
        let (requests, queue) = mpsc::sync_channel::<Option<mpsc::SyncSender<Result<WalState, StoreError>>>>(1);
        let url = url.clone();
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                let mut conn: Option<DbConnection> = None;
                while let Ok(reply) = queue.recv() {
                    let result = match &mut conn {
                        Some(c) => passive(c),
                        None => url.establish().and_then(|c| passive(conn.insert(c))),
                    };
                    if let Err(e) = &result {
                        // Reconnect next time; the writer's own checkpoint still runs meanwhile.
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                        conn = None;
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start the WAL checkpointer"))
            .ok()?;
        Some(Self { requests })
    }

    /// Asks for a checkpoint and returns at once.
    pub fn request(&self) {
        // Full: one is pending already. Disconnected: the thread is gone (its start was
        // logged), and the writer's own checkpoints still keep the WAL in bounds.
        let _ = self.requests.try_send(None);
    }

    /// Checkpoints now and waits for the outcome.
    pub fn checkpoint(&self) -> Result<WalState, StoreError> {
        let (reply, outcome) = mpsc::sync_channel(1);
        let gone = || StoreError::Unavailable("the WAL checkpointer has stopped".into());
        self.requests.send(Some(reply)).map_err(|_| gone())?;
        outcome.recv().map_err(|_| gone())?
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;

    #[test]
    fn the_thread_copies_what_a_writer_without_automatic_checkpoints_left_in_the_wal() {
        let (_dir, url) = crate::connection::temp_sqlite_url();
        let mut writer = url.establish().expect("open");
        writer
            .batch_execute(
                "PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x TEXT); \
                 INSERT INTO t VALUES (hex(randomblob(3000))), (hex(randomblob(3000)));",
            )
            .expect("write");
        let checkpointer = Checkpointer::start(&url).expect("SQLite has a checkpointer");
        let state = checkpointer.checkpoint().expect("checkpoint");
        assert_eq!(state.busy, 0);
        assert!(state.log > 0, "the writes are in the WAL: {state:?}");
        assert_eq!(state.checkpointed, state.log, "every frame copied: {state:?}");

        // The next write starts the WAL from its beginning again, so it stays small.
        writer.batch_execute("INSERT INTO t VALUES ('again')").expect("write");
        let after = passive(&mut writer).expect("checkpoint");
        assert!(after.log < state.log, "the WAL restarted: {after:?} after {state:?}");
        // Nothing written was lost on the way.
        let rows: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM t)",
        ))
        .get_result(&mut writer)
        .expect("count");
        assert_eq!(rows, 3);
    }

    #[test]
    fn requests_made_while_one_is_pending_do_not_block() {
        let (_dir, url) = crate::connection::temp_sqlite_url();
        url.establish().expect("open");
        let checkpointer = Checkpointer::start(&url).expect("checkpointer");
        for _ in 0..1_000 {
            checkpointer.request();
        }
        assert_eq!(checkpointer.checkpoint().expect("checkpoint").busy, 0);
    }

    #[test]
    fn postgres_has_none() {
        assert!(Checkpointer::start(&DatabaseUrl::Postgres("postgres://x@127.0.0.1/db".into())).is_none());
    }
}
