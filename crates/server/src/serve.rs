//! `clinic serve`: prepare the database, print how to get in, serve until SIGTERM/SIGINT.

use std::sync::Arc;

use clinic_api::metrics::Metrics;
use clinic_api::state::{DbGate, Limits};
use clinic_api::token_cache::TokenCache;
use clinic_api::{AppState, ClinicInfo};
use clinic_domain::time::SystemClock;
use clinic_patients::audit::AuditWriter;
use clinic_store::pool::{self, PoolOptions};
use clinic_store::{migrations, DatabaseUrl};

use clinic_reminders::compose::{ClinicDetails, Composer};
use clinic_reminders::dispatcher::{DispatchOptions, Dispatcher};
use clinic_reminders::links::LinkSigner;
use clinic_reminders::mailer::{Mailer, Sender};
use clinic_reminders::templates::Templates;

use crate::settings::Settings;

/// Creates the data folder (and the SQLite file's folder) when needed.
pub fn prepare_data_dir(settings: &Settings) -> Result<(), String> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| format!("cannot create CLINIC_DATA_DIR {}: {e}", settings.data_dir.display()))?;
    owner_only(&settings.data_dir);
    if let DatabaseUrl::Sqlite(path) = &settings.database_url {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
    }
    Ok(())
}

/// The email side: templates (embedded or overridden) and the link signer.
/// The dispatcher's options from the settings (the lease; the rest are the defaults).
pub fn dispatch_options(settings: &Settings) -> DispatchOptions {
    DispatchOptions {
        lease: chrono::Duration::seconds(settings.reminder_lease_seconds),
        ..DispatchOptions::default()
    }
}

pub fn composer(settings: &Settings, db_pool: &clinic_store::Pool) -> Result<Arc<Composer>, String> {
    let templates =
        Templates::load(settings.template_dir.as_deref()).map_err(|e| format!("CLINIC_TEMPLATE_DIR: {e}"))?;
    let links = {
        let mut conn = pool::get(db_pool).map_err(|e| e.to_string())?;
        LinkSigner::load_or_create(&mut conn, clinic_store::time::now()).map_err(|e| e.to_string())?
    };
    let composer = Composer {
        templates: Arc::new(templates),
        clinic: ClinicDetails {
            name: settings.clinic_name.clone(),
            phone: settings.clinic_phone.clone(),
            location: settings
                .clinic_address
                .clone()
                .unwrap_or_else(|| settings.clinic_name.clone()),
            time_zone: settings.time_zone,
            public_url: settings.public_url.clone(),
        },
        sender: Sender {
            from: settings.mail_from.clone(),
            reply_to: settings.mail_reply_to.clone(),
        },
        links,
    };
    Ok(Arc::new(composer))
}

/// The mailer: SMTP when configured (trusting `CLINIC_SMTP_CA_FILE` too), otherwise `.eml`
/// files under `$CLINIC_DATA_DIR/outbox/`.
/// Call inside the Tokio runtime: the SMTP connection pool lives on it.
pub fn mailer(settings: &Settings) -> Result<Mailer, String> {
    match &settings.smtp_url {
        Some(url) => match &settings.smtp_ca {
            Some(ca) => Mailer::smtp_trusting(url, ca),
            None => Mailer::smtp(url),
        }
        .map_err(|e| format!("CLINIC_SMTP_URL: {e}")),
        None => Mailer::files(settings.data_dir.join("outbox")),
    }
}

/// The data folder holds the SQLite database and `.eml` files (patient data): readable by the
/// service's user only. A folder the operator made more open is tightened, with a warning if
/// that is not possible.
fn owner_only(dir: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the data folder private (mode 0700)");
        }
    }
}

pub fn run(settings: Settings, scheduler: bool) -> Result<(), String> {
    prepare_data_dir(&settings)?;
    let db_pool = pool::connect(
        &settings.database_url,
        &PoolOptions {
            max_size: settings.db_pool_size,
            ..PoolOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    {
        let mut conn = pool::get(&db_pool).map_err(|e| e.to_string())?;
        let applied = migrations::run_pending(&mut conn).map_err(|e| e.to_string())?;
        for name in &applied {
            tracing::info!(migration = %name, "applied migration");
        }
        if let Some(issued) =
            clinic_auth::ensure_initial_admin(&mut conn, clinic_store::time::now()).map_err(|e| e.to_string())?
        {
            println!("First start on an empty database: created an admin token. It is shown only once:");
            println!();
            println!("    {}", issued.secret);
            println!();
            if let Some(expires) = issued.token.expires_at {
                println!(
                    "It expires on {} (in {} days). Make lasting tokens before then with:",
                    expires.format("%Y-%m-%d %H:%M UTC"),
                    clinic_auth::INITIAL_ADMIN_DAYS
                );
            }
            println!("    clinic token create --name NAME --scope SCOPE [--scope SCOPE…]");
        }
        // Until the first person has an account, every start says how to make one.
        if clinic_auth::users::count(&mut conn).map_err(|e| e.to_string())? == 0 {
            println!("No staff accounts yet. Create the first admin with:");
            println!("    clinic user create --email EMAIL --name \"NAME\" --role admin");
            println!(
                "It prints a one-time link under {}/console/ where they choose their password.",
                settings.public_url
            );
        }
    }
    if settings.seed_on_first_start {
        let mut conn = pool::get(&db_pool).map_err(|e| e.to_string())?;
        if clinic_content::seed::is_empty(&mut conn).map_err(|e| e.to_string())? {
            let report = clinic_content::seed::run(&mut conn, clinic_store::time::now()).map_err(|e| e.to_string())?;
            tracing::info!(
                conditions = report.conditions,
                criteria = report.criteria,
                articles = report.articles,
                "empty database: loaded the seed content (CLINIC_SEED_ON_FIRST_START=false turns this off)"
            );
        }
        if clinic_scheduling::types::list(&mut conn)
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            let added =
                clinic_scheduling::types::seed(&mut conn, clinic_store::time::now()).map_err(|e| e.to_string())?;
            tracing::info!(appointment_types = added, "no appointment types: loaded the defaults");
        }
        if clinic_pumps::catalog::models(&mut conn)
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            let (models, drugs) =
                clinic_pumps::catalog::seed(&mut conn, clinic_store::time::now()).map_err(|e| e.to_string())?;
            tracing::info!(
                pump_models = models,
                drugs,
                "empty catalogues: loaded the sourced defaults"
            );
        }
    }
    {
        let mut conn = pool::get(&db_pool).map_err(|e| e.to_string())?;
        let n = clinic_pumps::registry::recompute_made_in_other_zones(
            &mut conn,
            settings.time_zone,
            clinic_store::time::now(),
        )
        .map_err(|e| e.to_string())?;
        if n > 0 {
            tracing::info!(
                pumps = n,
                time_zone = settings.time_zone.name(),
                "forecasts made in another CLINIC_TIME_ZONE recomputed"
            );
        }
    }
    if let Some(warning) = &settings.database_tls_warning {
        tracing::warn!("{warning}");
    }
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    if settings.public_url.starts_with("http://") && !local.iter().any(|l| settings.public_url.starts_with(l)) {
        tracing::warn!(
            public_url = %settings.public_url,
            "CLINIC_PUBLIC_URL is plain http: the stop links in emails would travel unencrypted; use https://"
        );
    }
    if !settings.clinic_phone_configured {
        tracing::warn!("CLINIC_PHONE is not set: a placeholder number will be shown to patients");
    }
    tracing::info!(database = %settings.database_url, backend = %settings.database_url.backend(), "database ready");

    let composer = composer(&settings, &db_pool)?;
    let dispatcher_pool = db_pool.clone();

    let state = AppState {
        pool: db_pool.clone(),
        clinic: ClinicInfo {
            name: settings.clinic_name.clone(),
            phone: settings.clinic_phone.clone(),
            time_zone: settings.time_zone,
            phone_region: settings.phone_region,
            address: settings.clinic_address.clone(),
        },
        clock: Arc::new(SystemClock),
        metrics: Arc::new(Metrics::new().map_err(|e| e.to_string())?),
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            token_max_days: settings.token_max_days,
        },
        tokens: TokenCache::default(),
        content: Default::default(),
        availability: Default::default(),
        public_limiter: Default::default(),
        self_service_limits: Arc::new(clinic_api::rate_limit::SelfServiceLimits::new(
            settings.self_service_address_limit,
            settings.self_service_link_limit,
        )),
        audit: AuditWriter::start(settings.database_url.clone()),
        composer: composer.clone(),
        db_gate: DbGate::for_pool(&db_pool, &settings.database_url),
        self_service_settings: Default::default(),
        metrics_token: settings.metrics_token.as_deref().map(Arc::from),
    };

    let system = actix_web::rt::System::new();
    system.block_on(async move {
        // Registered before the banner is printed, so a supervisor that sends SIGTERM as
        // soon as it sees "Listening on" still gets a graceful shutdown.
        let shutdown = shutdown_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let mailer = mailer(&settings)?;
        // Never the URL itself: it may hold SMTP credentials.
        tracing::info!("emails go to {}", mailer.describe());
        if settings.smtp_url.is_none() {
            println!(
                "Emails are written as .eml files to {} (set CLINIC_SMTP_URL to send them).",
                settings.data_dir.join("outbox").display()
            );
        }
        let dispatcher = Arc::new(Dispatcher::new(
            dispatcher_pool,
            mailer,
            composer,
            dispatch_options(&settings),
        ));
        // Kept alive for the server's lifetime; dropping it stops the ticks.
        let _ticker = if scheduler {
            let t = clinic_reminders::scheduler::start(dispatcher.clone())
                .await
                .map_err(|e| format!("cannot start the reminder scheduler: {e}"))?;
            println!("Reminder scheduler: planning and sending every minute (UTC).");
            Some(t)
        } else {
            println!("Reminder scheduler is off (--no-scheduler): run `clinic reminders run-once` from cron.");
            None
        };
        let server = actix_web::HttpServer::new(move || clinic_api::app(state.clone()))
            .shutdown_timeout(30)
            .shutdown_signal(shutdown)
            .bind(settings.bind)
            .map_err(|e| format!("cannot listen on CLINIC_BIND {}: {e}", settings.bind))?;
        for addr in server.addrs() {
            println!("Listening on http://{addr}");
            println!("Swagger UI: http://{addr}/swagger-ui/  (OpenAPI JSON at /api-docs/openapi.json)");
        }
        server.run().await.map_err(|e| e.to_string())
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers exist from the moment this returns.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down gracefully"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down gracefully"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
