//! `clinic backup` and `clinic restore`: copies of the SQLite database file. PostgreSQL has
//! `pg_dump` and `pg_restore` for this; both commands say so and fail there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use clinic_store::{migrations, DatabaseUrl};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, RunQueryDsl, SqliteConnection};

use crate::settings::Settings;

/// The table diesel records applied migrations in: a file without it is not our database.
const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// Printed (on stderr) after every restore.
pub const RESTORE_WARNING: &str = "\
WARNING: the database is now as it was when the backup was taken.
  - Every API token and calendar feed token REVOKED since then is ACTIVE again.
    Tokens created since then are gone.
  - Consent withdrawals (stop links) and emails recorded since then are gone too, so the
    reminder scheduler may email those patients again.
Before the clinic uses the server again:
  clinic token list            # every token and its state
  clinic token revoke ID       # each token that was revoked after the backup
or rotate every token (create new ones, deploy them, revoke all the old ones), and revoke
feed tokens with DELETE /api/v1/providers/{id}/feed-tokens/{token_id}.
Start with `clinic serve --no-scheduler` until the withdrawals are re-entered.
See docs/operations.md#backups.";

fn sqlite_path<'a>(settings: &'a Settings, postgres_hint: &str) -> Result<&'a Path, String> {
    match &settings.database_url {
        DatabaseUrl::Sqlite(path) => Ok(path),
        DatabaseUrl::Postgres(_) => Err(postgres_hint.to_owned()),
    }
}

/// `clinic backup FILE`: a consistent copy of the live database, also while `serve` runs.
pub fn backup(settings: &Settings, target: &Path) -> Result<(), String> {
    let db = sqlite_path(
        settings,
        "DATABASE_URL is PostgreSQL: `clinic backup` copies SQLite databases only. Use pg_dump, \
         for example: pg_dump --format=custom --file=clinic.dump \"$DATABASE_URL\" \
         (docs/operations.md#backups)",
    )?;
    // Opening a missing path would create an empty database and back that up.
    if !db.is_file() {
        return Err(format!("no SQLite database at {}", db.display()));
    }
    let target_text = target
        .to_str()
        .ok_or_else(|| format!("{}: the backup path must be UTF-8", target.display()))?;
    // create_new refuses an existing FILE without a race. VACUUM INTO accepts an empty file
    // and writes into it, so the backup keeps this file's mode (0600).
    create_private(target).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => format!("{} already exists; refusing to overwrite it", target.display()),
        _ => format!("cannot create {}: {e}", target.display()),
    })?;
    let written = write_backup(db, target, target_text);
    if written.is_err() {
        // Only what this command created: a half-written backup must not look like one.
        let _ = fs::remove_file(target);
        let _ = fs::remove_file(with_suffix(target, "-journal"));
    }
    let bytes = written?;
    println!(
        "backup of {} written to {} ({bytes} bytes, integrity ok)",
        db.display(),
        target.display()
    );
    Ok(())
}

fn write_backup(db: &Path, target: &Path, target_text: &str) -> Result<u64, String> {
    let mut conn = open_plain(db)?;
    // The server may hold the write lock for a moment; wait like the CLI's other commands.
    conn.batch_execute("PRAGMA busy_timeout = 10000")
        .map_err(|e| format!("{}: {e}", db.display()))?;
    // VACUUM INTO reads one snapshot (WAL included) and writes a compact copy of it.
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target_text)
        .execute(&mut conn)
        .map_err(|e| format!("backup into {} failed: {e}", target.display()))?;
    drop(conn);
    check_database(target)?;
    let file = File::open(target).map_err(|e| format!("{}: {e}", target.display()))?;
    file.sync_all()
        .map_err(|e| format!("cannot flush {} to disk: {e}", target.display()))?;
    sync_parent(target);
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", target.display()))
}

/// `clinic restore FILE`: replaces the database file with a backup. The server must be stopped.
pub fn restore(settings: &Settings, source: &Path) -> Result<(), String> {
    let db = sqlite_path(
        settings,
        "DATABASE_URL is PostgreSQL: `clinic restore` restores SQLite backups only. Use \
         pg_restore, for example: pg_restore --clean --if-exists --no-owner \
         --dbname=\"$DATABASE_URL\" clinic.dump, then `clinic migrate`, then revoke the tokens \
         revoked since the dump (docs/operations.md#backups)",
    )?
    .to_path_buf();
    check_header(source)?;
    crate::serve::prepare_data_dir(settings)?;
    if db.exists() {
        ensure_unused(&db)?;
    }
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "clinic.db".into());
    // Beside the database, so that the rename below stays on one filesystem and is atomic.
    let temp = dir.join(format!(".{name}.restore-{}", std::process::id()));
    if let Err(e) = stage(source, &temp) {
        remove_with_journals(&temp);
        return Err(e);
    }
    // A journal of the old database would be replayed into the restored one on the next open.
    for suffix in ["-wal", "-shm", "-journal"] {
        let stale = with_suffix(&db, suffix);
        if let Err(e) = fs::remove_file(&stale) {
            if e.kind() != io::ErrorKind::NotFound {
                remove_with_journals(&temp);
                return Err(format!("cannot remove {}: {e}", stale.display()));
            }
        }
    }
    if let Err(e) = fs::rename(&temp, &db) {
        remove_with_journals(&temp);
        return Err(format!("cannot move the backup into {}: {e}", db.display()));
    }
    sync_parent(&db);

    let mut conn = settings.database_url.establish().map_err(|e| e.to_string())?;
    let applied = migrations::run_pending(&mut conn).map_err(|e| e.to_string())?;
    drop(conn);
    println!("restored {} from {}", db.display(), source.display());
    for name in applied {
        println!("applied {name}");
    }
    eprintln!("{RESTORE_WARNING}");
    Ok(())
}

/// Copies `source` to a new private file at `temp`, flushes it and checks the copy (not the
/// source, which could change in between).
fn stage(source: &Path, temp: &Path) -> Result<(), String> {
    let mut from = File::open(source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let mut to = create_private(temp).map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
    io::copy(&mut from, &mut to).map_err(|e| format!("cannot copy {} to {}: {e}", source.display(), temp.display()))?;
    to.sync_all()
        .map_err(|e| format!("cannot flush {} to disk: {e}", temp.display()))?;
    drop(to);
    check_database(temp).map_err(|e| format!("{} cannot be restored: {e}", source.display()))
}

/// Fails fast, before anything is touched, on a file that is not SQLite at all.
fn check_header(source: &Path) -> Result<(), String> {
    let mut header = [0u8; 16];
    let mut file = File::open(source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    match file.read_exact(&mut header) {
        Ok(()) if &header == b"SQLite format 3\0" => Ok(()),
        Ok(()) => Err(format!("{} is not a SQLite database", source.display())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(format!("{} is not a SQLite database", source.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", source.display())),
    }
}

#[derive(diesel::QueryableByName)]
struct IntegrityRow {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A sound SQLite file holding this application's migrations table.
fn check_database(path: &Path) -> Result<(), String> {
    let mut conn = open_plain(path)?;
    let rows: Vec<IntegrityRow> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .map_err(|e| format!("not a readable SQLite database ({e})"))?;
    if rows.len() != 1 || rows[0].integrity_check != "ok" {
        let problems: Vec<_> = rows.into_iter().take(3).map(|r| r.integrity_check).collect();
        return Err(format!("integrity check failed: {}", problems.join("; ")));
    }
    let found: Count = diesel::sql_query("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?")
        .bind::<Text, _>(MIGRATIONS_TABLE)
        .get_result(&mut conn)
        .map_err(|e| format!("not a readable SQLite database ({e})"))?;
    if found.n != 1 {
        return Err(format!(
            "a SQLite database, but not a clinic database (no {MIGRATIONS_TABLE} table)"
        ));
    }
    Ok(())
}

/// Refuses while another connection (a running `clinic serve`) has the database open. A
/// WAL-mode connection holds a shared lock on the file for as long as it is open, so an
/// exclusive lock, tried without waiting, is refused while any is. Best effort: a server
/// started after this check is not stopped by it.
fn ensure_unused(db: &Path) -> Result<(), String> {
    let mut conn = open_plain(db)?;
    let probe = conn
        .batch_execute("PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE; SELECT count(*) FROM sqlite_master;");
    match probe {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().contains("locked") || e.to_string().contains("busy") => Err(format!(
            "{} is in use (is `clinic serve` running?); stop the server before restoring",
            db.display()
        )),
        // A damaged current database is what a restore is for: go on.
        Err(_) => Ok(()),
    }
}

/// A connection without the server's settings: no switch to WAL mode, which would change the
/// file being checked.
fn open_plain(path: &Path) -> Result<SqliteConnection, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{}: the path must be UTF-8", path.display()))?;
    SqliteConnection::establish(text).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// A new file only the service's user can read (patient data).
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_with_journals(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(with_suffix(path, suffix));
    }
}

/// Makes a new or renamed directory entry durable. Best effort: not every platform or
/// filesystem can sync a directory, and the data itself is already flushed.
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
