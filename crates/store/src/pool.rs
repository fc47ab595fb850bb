//! The r2d2 pool over [`DbConnection`], with our own manager so that each new connection
//! is opened by [`DatabaseUrl::establish`] (backend by scheme, pragmas applied).

use std::time::{Duration, Instant};

use diesel::r2d2::{self, ManageConnection, R2D2Connection};

use crate::{DatabaseUrl, DbConnection, StoreError};

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConnection = r2d2::PooledConnection<Manager>;

#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    trusted_for: Duration,
}

impl Manager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self::checking_after(url, TRUSTED_FOR)
    }

    /// A manager that trusts a PostgreSQL connection for `trusted_for` after it last
    /// answered a check (zero: check on every checkout).
    pub fn checking_after(url: DatabaseUrl, trusted_for: Duration) -> Self {
        Self { url, trusted_for }
    }
}

/// How long a PostgreSQL connection that answered a check is trusted without another.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// A pooled connection, and when it last proved alive.
pub struct Pooled {
    conn: DbConnection,
    checked_at: Instant,
}

impl std::ops::Deref for Pooled {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = StoreError;

    fn connect(&self) -> Result<Pooled, StoreError> {
        Ok(Pooled {
            conn: self.url.establish()?,
            checked_at: Instant::now(),
        })
    }

    /// Run on every checkout. A PostgreSQL server can restart under a pooled connection, and
    /// diesel does not report such a connection as broken, so a `SELECT 1` checks it, but at
    /// most once per [`TRUSTED_FOR`]: a check on every checkout was a round trip per request
    /// (docs/performance.md, foundation). After a restart each connection fails at most the
    /// requests of that second, then is checked, dropped and replaced. A SQLite connection is
    /// a file handle in this process that nothing can restart: never checked.
    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), StoreError> {
        match &mut pooled.conn {
            DbConnection::Sqlite(_) => Ok(()),
            DbConnection::Postgresql(_) if pooled.checked_at.elapsed() < self.trusted_for => Ok(()),
            conn @ DbConnection::Postgresql(_) => {
                conn.ping().map_err(StoreError::from)?;
                pooled.checked_at = Instant::now();
                Ok(())
            }
        }
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        std::thread::panicking() || pooled.conn.is_broken()
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
        // Checkout runs `Manager::is_valid`: PostgreSQL connections not checked within the
        // last second are, so a restarted server is noticed within a second.
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
