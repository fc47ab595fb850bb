//! The connection enum over both backends, chosen by the URL scheme.

use std::fmt;
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::StoreError;

/// A connection to either backend. Queries written against [`crate::schema`] run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgresql(PgConnection),
}

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A parsed database URL: `postgres://…` / `postgresql://…`, or `sqlite://PATH`,
/// `sqlite:PATH` or a plain file path for SQLite.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreError::InvalidUrl("empty".into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.contains("://") {
            let scheme = url.split("://").next().unwrap_or_default();
            return Err(StoreError::InvalidUrl(format!(
                "unsupported scheme '{scheme}' (use postgres://, sqlite:// or a file path)"
            )));
        }
        if path.is_empty() {
            return Err(StoreError::InvalidUrl("sqlite URL without a path".into()));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    pub fn sqlite_file(path: &Path) -> Self {
        Self::Sqlite(path.to_path_buf())
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL host this URL reaches (a `host=` parameter overrides the authority;
    /// "" for libpq's default socket); `None` for SQLite.
    pub fn postgres_host(&self) -> Option<&str> {
        let DatabaseUrl::Postgres(raw) = self else {
            return None;
        };
        let before_query = raw.split_once('?').map_or(raw.as_str(), |(before, _)| before);
        let authority_host = before_query
            .split_once("://")
            .map(|(_, rest)| rest)
            .and_then(|rest| rest.split('/').next())
            .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
            .map(|hostport| {
                if hostport.starts_with('[') {
                    hostport.split(']').next().unwrap_or(hostport).trim_start_matches('[')
                } else {
                    hostport.split(':').next().unwrap_or(hostport)
                }
            })
            .unwrap_or("");
        Some(self.query_param("host").unwrap_or(authority_host))
    }

    /// The last value of a query parameter of a PostgreSQL URL.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        let DatabaseUrl::Postgres(raw) = self else {
            return None;
        };
        raw.split_once('?')?
            .1
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .next_back()
    }

    /// Whether the database is on this machine: a SQLite file, or PostgreSQL on the
    /// loopback or a Unix socket (a path, libpq's default, or an abstract `%` socket).
    pub fn is_local(&self) -> bool {
        match self.postgres_host() {
            None => true,
            Some(host) => {
                host.is_empty()
                    || matches!(host, "localhost" | "127.0.0.1" | "::1")
                    || host.starts_with('%')
                    || host.starts_with('/')
            }
        }
    }

    /// Opens one connection with the backend's per-connection settings applied.
    /// Unlike the derived `establish`, the real error reaches the caller.
    pub fn establish(&self) -> Result<DbConnection, StoreError> {
        match self {
            DatabaseUrl::Sqlite(path) => {
                let path_str = path
                    .to_str()
                    .ok_or_else(|| StoreError::InvalidUrl("SQLite path is not UTF-8".into()))?;
                let mut conn = SqliteConnection::establish(path_str)
                    .map_err(|e| StoreError::Connect(format!("SQLite {}: {e}", path.display())))?;
                // WAL lets readers run beside the single writer; busy_timeout makes writers
                // queue instead of failing; foreign keys are off by default in SQLite.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| StoreError::Connect(format!("SQLite settings: {e}")))?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => PgConnection::establish(url)
                .map(DbConnection::Postgresql)
                .map_err(|e| StoreError::Connect(format!("PostgreSQL: {e}"))),
        }
    }
}

/// Never prints a PostgreSQL password.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

impl DbConnection {
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Sqlite(_) => Backend::Sqlite,
            DbConnection::Postgresql(_) => Backend::Postgres,
        }
    }
}

/// A new SQLite file for this crate's unit tests, not yet created or migrated; it goes
/// with the returned folder.
#[cfg(test)]
pub(crate) fn temp_sqlite_url() -> (tempfile::TempDir, DatabaseUrl) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = DatabaseUrl::sqlite_file(&dir.path().join("t.db"));
    (dir, url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_databases_are_files_loopback_hosts_and_sockets() {
        let local = |url: &str| DatabaseUrl::parse(url).expect("url").is_local();
        assert!(local("sqlite://data/clinic.db"));
        assert!(local("postgres://postgres@127.0.0.1:5432/test"));
        assert!(local("postgres://u:p@localhost/db"));
        assert!(local("postgres://u@[::1]:5433/db"));
        assert!(local("postgres:///db"));
        assert!(local("postgres://u@db.internal/db?host=/var/run/postgresql"));
        assert!(!local("postgres://u@db.internal:5432/db"));
        assert!(!local("postgres://u@10.0.0.5/db?sslmode=disable"));
        assert!(!local("postgres://u@[fd00::5]/db"));
        // `host=` wins over the authority, in both directions.
        assert!(!local("postgres://u@localhost/db?host=db.internal"));
        assert_eq!(
            DatabaseUrl::parse("postgres://u:secret@db.internal:5432/db?sslmode=verify-full&host=pg")
                .expect("url")
                .postgres_host(),
            Some("pg")
        );
    }

    #[test]
    fn scheme_picks_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h/db").expect("pg").backend(),
            Backend::Postgres
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@h/db").expect("pg").backend(),
            Backend::Postgres
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/clinic.db").expect("sqlite"),
            DatabaseUrl::Sqlite(PathBuf::from("data/clinic.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("/var/lib/clinic.db").expect("path"),
            DatabaseUrl::Sqlite(PathBuf::from("/var/lib/clinic.db"))
        );
        assert!(DatabaseUrl::parse("mysql://root@localhost/db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn display_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://clinic:s3cret@db:5432/clinic").expect("pg");
        assert_eq!(url.to_string(), "postgres://clinic:***@db:5432/clinic");
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    /// A connection to a new SQLite file; the file goes with the returned folder.
    fn temp_sqlite() -> (tempfile::TempDir, DbConnection) {
        let (dir, url) = temp_sqlite_url();
        (dir, url.establish().expect("open"))
    }

    #[test]
    fn sqlite_connections_get_their_pragmas() {
        use diesel::sql_types::BigInt;
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Value {
            #[diesel(sql_type = BigInt)]
            foreign_keys: i64,
        }
        let (_dir, mut conn) = temp_sqlite();
        let v: Value = diesel::sql_query("PRAGMA foreign_keys")
            .get_result(&mut conn)
            .expect("pragma");
        assert_eq!(v.foreign_keys, 1);
    }

    /// `.cargo/config.toml` builds the bundled SQLite without its process-wide allocation
    /// statistics lock and shared page cache, and with the query planner stability
    /// guarantee, without which every statement with a bound `LIMIT` (diesel's `.first()`,
    /// every page) is compiled again on each run (docs/performance.md); a lost setting
    /// shows here.
    #[test]
    fn bundled_sqlite_is_built_for_the_hot_path() {
        use diesel::sql_types::Text;
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Opt {
            #[diesel(sql_type = Text)]
            compile_options: String,
        }
        let (_dir, mut conn) = temp_sqlite();
        let opts: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<Opt>(&mut conn)
            .expect("pragma")
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        assert!(opts.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{opts:?}");
        assert!(!opts.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{opts:?}");
        assert!(opts.iter().any(|o| o == "ENABLE_QPSG"), "{opts:?}");
    }
}
