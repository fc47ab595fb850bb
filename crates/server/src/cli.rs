//! The command line: `serve`, `migrate`, `token create|list|revoke`, `openapi`, `seed`,
//! `reminders run-once`, `backup`, `restore`, `healthcheck`, `doctor`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use clinic_auth::NewToken;
use clinic_domain::ids::TokenId;
use clinic_patients::audit::Actor;
use clinic_store::doctor::{self, TextProblem};
use clinic_store::{migrations, DatabaseUrl, DbConnection};

use crate::settings::Settings;
use crate::{backup, healthcheck, serve, telemetry};

#[derive(Parser)]
#[command(name = "clinic", version, about = "Intrathecal pump clinic platform")]
pub struct Cli {
    /// Optional TOML settings file (keys as in the README); environment variables win.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Apply migrations and serve the API (Swagger UI at /swagger-ui/), with the reminder
    /// scheduler planning and sending emails every minute.
    Serve {
        /// Do not run the reminder scheduler in this process (another process or cron runs
        /// `clinic reminders run-once`).
        #[arg(long)]
        no_scheduler: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage staff accounts (people who sign in to the console).
    #[command(subcommand)]
    User(UserCommand),
    /// Print the OpenAPI document (JSON) on stdout.
    Openapi,
    /// Add the seed content (conditions, screening criteria, articles) that is missing.
    /// Safe to run again: it never overwrites the clinic's edits.
    Seed,
    /// Email reminders.
    #[command(subcommand)]
    Reminders(RemindersCommand),
    /// Copy the SQLite database to FILE (mode 0600), consistently, also while `serve` runs.
    /// FILE must not exist. On PostgreSQL use pg_dump (docs/operations.md#backups).
    Backup {
        /// The new backup file.
        file: PathBuf,
    },
    /// Replace the SQLite database with the backup FILE, then apply pending migrations.
    /// Stop the server first. Tokens revoked since the backup are active again: revoke them.
    Restore {
        /// A file made by `clinic backup`.
        file: PathBuf,
    },
    /// Exit 0 only when GET /readyz answers 200 (for container health checks).
    Healthcheck {
        /// What to GET, http:// only; default /readyz on CLINIC_BIND (a wildcard bind on
        /// the loopback).
        #[arg(long)]
        url: Option<String>,
        /// Give up after this many seconds (/readyz itself may wait 5 s for the database).
        #[arg(long, default_value_t = 8, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
    },
    /// Check a SQLite database before moving it to PostgreSQL: count the rows of every text
    /// column holding U+0000 (PostgreSQL cannot store it) or other control characters (the
    /// API refuses them; a warning), with up to 10 ids each, never the values. Exits 1 when
    /// U+0000 is found. Only reads: applies no migrations.
    Doctor,
}

#[derive(Subcommand)]
pub enum RemindersCommand {
    /// Plan due reminders and send everything ready, once, then exit (for cron-driven
    /// installs and for operations). Safe beside running servers: claims keep each email
    /// to one sender.
    RunOnce,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints only the secret on stdout.
    Create {
        /// A label: who or what uses the token.
        #[arg(long)]
        name: String,
        /// A scope (repeat for several): admin, patients:read, patients:write, content:write,
        /// scheduling:write, pumps:read, pumps:write, reminders:admin.
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Expiry, RFC 3339 (e.g. 2027-12-31T23:59:59Z); none means until revoked.
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. Prints a one-time set-password link (valid 24 h) on stdout, or with
    /// --password-stdin reads the password from standard input instead.
    Create {
        #[arg(long)]
        email: String,
        /// The name the console shows.
        #[arg(long)]
        name: String,
        /// admin, clinician, scheduler, editor or viewer (docs/security.md lists their scopes).
        #[arg(long)]
        role: String,
        /// Read the password from standard input (one line) instead of printing a link.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (never their passwords).
    List,
    /// Disable a user: they cannot sign in, and their personal tokens are revoked at once.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Print a new one-time set-password link (valid 24 h) for a user. Their current
    /// password works until they set a new one.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        return match serde_json::to_string_pretty(&clinic_api::openapi_document()) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    // With a URL the check reads no configuration: a broken setting cannot fail a live server.
    if let Command::Healthcheck {
        url: Some(url),
        timeout,
    } = &cli.command
    {
        return exit(healthcheck::check(url, Duration::from_secs(*timeout)));
    }
    let settings = match Settings::from_env(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(&format!("configuration error: {e}")),
    };
    telemetry::init(settings.log_format);
    let result = match cli.command {
        Command::Serve { no_scheduler } => serve::run(settings, !no_scheduler),
        Command::Reminders(RemindersCommand::RunOnce) => reminders_run_once(&settings),
        Command::Migrate => migrate(&settings),
        Command::Token(cmd) => token(&settings, cmd),
        Command::User(cmd) => user(&settings, cmd),
        Command::Seed => seed(&settings),
        Command::Backup { file } => backup::backup(&settings, &file),
        Command::Restore { file } => backup::restore(&settings, &file),
        Command::Healthcheck { url, timeout } => {
            let url = url.unwrap_or_else(|| healthcheck::default_url(settings.bind));
            healthcheck::check(&url, Duration::from_secs(timeout))
        }
        Command::Doctor => doctor(&settings),
        Command::Openapi => Ok(()),
    };
    exit(result)
}

fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("clinic: {message}");
    ExitCode::FAILURE
}

/// One migrated connection, for the one-shot commands.
pub fn open(settings: &Settings) -> Result<DbConnection, String> {
    serve::prepare_data_dir(settings)?;
    let mut conn = settings.database_url.establish().map_err(|e| e.to_string())?;
    migrations::run_pending(&mut conn).map_err(|e| e.to_string())?;
    Ok(conn)
}

fn migrate(settings: &Settings) -> Result<(), String> {
    serve::prepare_data_dir(settings)?;
    let mut conn = settings.database_url.establish().map_err(|e| e.to_string())?;
    let applied = migrations::run_pending(&mut conn).map_err(|e| e.to_string())?;
    if applied.is_empty() {
        println!("database {} is up to date", settings.database_url);
    }
    for name in applied {
        println!("applied {name}");
    }
    Ok(())
}

/// `clinic doctor`. Unlike the other one-shot commands it applies no migrations: it only
/// reads, and takes the tables from the database itself, so it checks whatever version of
/// the schema the file has.
fn doctor(settings: &Settings) -> Result<(), String> {
    let path = match &settings.database_url {
        DatabaseUrl::Sqlite(path) => path,
        DatabaseUrl::Postgres(_) => {
            println!("DATABASE_URL is PostgreSQL: nothing to check (PostgreSQL text cannot hold U+0000)");
            return Ok(());
        }
    };
    // Opening a missing path would create an empty database and call it clean.
    if !path.is_file() {
        return Err(format!("no SQLite database at {}", path.display()));
    }
    let mut conn = settings.database_url.establish().map_err(|e| e.to_string())?;
    let scan = doctor::scan_text(&mut conn).map_err(|e| e.to_string())?;
    for f in &scan.findings {
        let (level, what) = match f.problem {
            TextProblem::Nul => ("error", "U+0000, which PostgreSQL cannot store"),
            TextProblem::Control => ("warning", "control characters the API refuses"),
        };
        let rows = match f.rows {
            1 => "1 row holds".to_owned(),
            n => format!("{n} rows hold"),
        };
        let ids = if f.rows > f.ids.len() as u64 {
            format!("first {} ids", f.ids.len())
        } else {
            "ids".to_owned()
        };
        println!("{level}: {}.{}: {rows} {what}; {ids}:", f.table, f.column);
        // One per line: a key may hold commas or spaces (control characters come escaped).
        for id in &f.ids {
            println!("    {id}");
        }
    }
    let columns_with = |problem| scan.findings.iter().filter(|f| f.problem == problem).count();
    let plural = |n: usize| if n == 1 { "column" } else { "columns" };
    let (nul, control) = (columns_with(TextProblem::Nul), columns_with(TextProblem::Control));
    let mut summary = format!(
        "checked {} columns in {} tables of {}: ",
        scan.columns, scan.tables, settings.database_url
    );
    summary += &if nul == 0 {
        "nothing blocks a move to PostgreSQL".to_owned()
    } else {
        format!("U+0000 in {nul} {} blocks a move to PostgreSQL", plural(nul))
    };
    if control > 0 {
        summary += &format!("; control characters in {control} {} (warnings)", plural(control));
    }
    println!("{summary}");
    if scan.blocks_postgres() {
        return Err(format!(
            "U+0000 found in {nul} {}: clean those rows before moving to PostgreSQL \
             (docs/operations.md#checking-text-before-moving-to-postgresql)",
            plural(nul)
        ));
    }
    Ok(())
}

fn reminders_run_once(settings: &Settings) -> Result<(), String> {
    drop(open(settings)?);
    let db_pool = clinic_store::pool::connect(&settings.database_url, &clinic_store::pool::PoolOptions::default())
        .map_err(|e| e.to_string())?;
    let composer = serve::composer(settings, &db_pool)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The SMTP pool lives on the runtime.
    let _entered = runtime.enter();
    let dispatcher = clinic_reminders::dispatcher::Dispatcher::new(
        db_pool,
        serve::mailer(settings)?,
        composer,
        serve::dispatch_options(settings),
    );
    let report = runtime
        .block_on(dispatcher.run_once(clinic_store::time::now()))
        .map_err(|e| e.to_string())?;
    println!(
        "reminders: planned {}, voided as stale {}, sent {}, retrying {}, failed {}, not sent {}; outreach entries raised {}, closed {}",
        report.planned.enqueued,
        report.planned.voided,
        report.sent,
        report.retrying,
        report.failed,
        report.skipped,
        report.planned.outreach_raised,
        report.planned.outreach_closed,
    );
    Ok(())
}

fn seed(settings: &Settings) -> Result<(), String> {
    let mut conn = open(settings)?;
    let now = clinic_store::time::now();
    let report = clinic_content::seed::run(&mut conn, now).map_err(|e| e.to_string())?;
    let types = clinic_scheduling::types::seed(&mut conn, now).map_err(|e| e.to_string())?;
    let (models, drugs) = clinic_pumps::catalog::seed(&mut conn, now).map_err(|e| e.to_string())?;
    println!(
        "seed: added {} conditions, {} screening criteria, {} articles, {} appointment types, {} pump models, {} drugs",
        report.conditions, report.criteria, report.articles, types, models, drugs
    );
    Ok(())
}

/// Field errors as one line: `field: message; …`.
fn field_errors(e: &clinic_domain::ValidationErrors) -> String {
    e.errors()
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn user_error(e: clinic_flows::users::UserFlowError) -> String {
    use clinic_flows::users::UserFlowError;
    match e {
        UserFlowError::Invalid(errors) => field_errors(&errors),
        other => other.to_string(),
    }
}

fn user_by_email(conn: &mut DbConnection, email: &str) -> Result<clinic_auth::users::User, String> {
    clinic_auth::users::find_by_email(conn, email)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user has the email {email}"))
}

fn user(settings: &Settings, cmd: UserCommand) -> Result<(), String> {
    use clinic_flows::users as flows;
    let mut conn = open(settings)?;
    let now = clinic_store::time::now();
    let secret = clinic_reminders::links::LinkSigner::load_or_create(&mut conn, now).map_err(|e| e.to_string())?;
    let signer = flows::password_links(&secret);
    let link = |path: String| format!("{}{path}", settings.public_url);
    match cmd {
        UserCommand::Create {
            email,
            name,
            role,
            password_stdin,
        } => {
            let new = clinic_auth::users::NewUser::parse(&email, &name, &role).map_err(|e| field_errors(&e))?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("reading the password: {e}"))?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let user = flows::create(&mut conn, &Actor::system(), new, password.as_deref(), now).map_err(user_error)?;
            if password.is_some() {
                eprintln!(
                    "created user {} ({}, {}) with the password given",
                    user.id, user.email, user.role
                );
            } else {
                let path =
                    flows::password_link(&mut conn, &Actor::system(), &signer, user.id, now).map_err(user_error)?;
                // Only the link on stdout, for scripts; it works once, for 24 hours.
                println!("{}", link(path));
                eprintln!(
                    "created user {} ({}, {}); give them the link above to choose a password (it works once, for {} hours)",
                    user.id,
                    user.email,
                    user.role,
                    flows::PASSWORD_LINK_HOURS
                );
            }
        }
        UserCommand::List => {
            println!(
                "{:<36}  {:<9}  {:<9}  {:<8}  {:<25}  EMAIL",
                "ID", "ROLE", "STATE", "PASSWORD", "LAST SIGN-IN"
            );
            for u in clinic_auth::users::list(&mut conn).map_err(|e| e.to_string())? {
                let last = u
                    .last_sign_in_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{:<36}  {:<9}  {:<9}  {:<8}  {:<25}  {}",
                    u.id,
                    u.role,
                    u.state.as_str(),
                    if u.has_password { "set" } else { "not set" },
                    last,
                    u.email
                );
            }
        }
        UserCommand::Disable { email } => {
            let u = user_by_email(&mut conn, &email)?;
            let changes = clinic_auth::users::UserChanges {
                state: Some(clinic_auth::users::UserState::Disabled),
                ..Default::default()
            };
            let u = flows::update(&mut conn, &Actor::system(), u.id, changes, now).map_err(user_error)?;
            println!("disabled {} ({}); their personal tokens are revoked", u.id, u.email);
        }
        UserCommand::ResetPassword { email } => {
            let u = user_by_email(&mut conn, &email)?;
            let path = flows::password_link(&mut conn, &Actor::system(), &signer, u.id, now).map_err(user_error)?;
            println!("{}", link(path));
            eprintln!(
                "a set-password link for {}: it works once, for {} hours; the current password works until then",
                u.email,
                flows::PASSWORD_LINK_HOURS
            );
        }
    }
    Ok(())
}

fn token(settings: &Settings, cmd: TokenCommand) -> Result<(), String> {
    let mut conn = open(settings)?;
    let now = clinic_store::time::now();
    match cmd {
        TokenCommand::Create {
            name,
            scopes,
            expires_at,
        } => {
            let new = NewToken::parse(&name, &scopes, expires_at, now).map_err(|e| {
                e.errors()
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            let issued = clinic_api::routes::tokens::create_audited(&mut conn, &Actor::system(), new, now)
                .map_err(|e| e.to_string())?;
            // Only the secret on stdout, so `TOKEN=$(clinic token create …)` works.
            println!("{}", issued.secret);
            eprintln!(
                "created token {} ({})",
                issued.token.id,
                issued.token.scopes.to_storage()
            );
        }
        TokenCommand::List => {
            println!(
                "{:<36}  {:<8}  {:<40}  {:<25}  NAME",
                "ID", "STATE", "SCOPES", "EXPIRES"
            );
            for t in clinic_auth::list(&mut conn).map_err(|e| e.to_string())? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                let expires = t.expires_at.map(|e| e.to_rfc3339()).unwrap_or_else(|| "never".into());
                println!(
                    "{:<36}  {:<8}  {:<40}  {:<25}  {}",
                    t.id,
                    state,
                    t.scopes.to_storage(),
                    expires,
                    t.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let id: TokenId = id.parse().map_err(|_| format!("'{id}' is not a token id"))?;
            let t = clinic_api::routes::tokens::revoke_audited(&mut conn, &Actor::system(), id, now)
                .map_err(|e| e.to_string())?;
            println!("revoked {}", t.id);
        }
    }
    Ok(())
}
