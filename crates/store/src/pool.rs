//! The r2d2 pool over [`DbConnection`], with our own manager so that each new connection
//! is opened by [`DatabaseUrl::establish`] (backend by scheme, pragmas applied).

use std::time::Duration;

use diesel::r2d2::{self, ManageConnection, R2D2Connection};

use crate::{DatabaseUrl, DbConnection, StoreError};

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConnection = r2d2::PooledConnection<Manager>;

#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl Manager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = StoreError;

    fn connect(&self) -> Result<DbConnection, StoreError> {
        self.url.establish()
    }

    /// Run on every checkout. A PostgreSQL server can restart under a pooled connection, and
    /// a `SELECT 1` notices; a SQLite connection is a file handle in this process that nothing
    /// can restart, so the statement would only cost time on every request.
    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        match conn {
            DbConnection::Sqlite(_) => Ok(()),
            DbConnection::Postgresql(_) => conn.ping().map_err(StoreError::from),
        }
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a request waits for a free connection before it fails with 503.
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            connection_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens one connection first (so a wrong password or path is reported as such instead of a
/// pool timeout), then builds the pool.
pub fn connect(url: &DatabaseUrl, options: &PoolOptions) -> Result<Pool, StoreError> {
    drop(url.establish()?);
    r2d2::Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(1))
        .connection_timeout(options.connection_timeout)
        // Connections are checked on checkout, so a restarted PostgreSQL is noticed per request.
        .test_on_check_out(true)
        .build(Manager::new(url.clone()))
        .map_err(|e| StoreError::Connect(e.to_string()))
}

/// Takes a connection from the pool; a timeout means the database is unavailable.
pub fn get(pool: &Pool) -> Result<PooledConnection, StoreError> {
    pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Like [`get`], waiting at most `timeout` (what is left of a request's time to queue).
pub fn get_within(pool: &Pool, timeout: Duration) -> Result<PooledConnection, StoreError> {
    pool.get_timeout(timeout)
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}
