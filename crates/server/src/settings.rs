//! Configuration: environment variables, over an optional TOML file, over defaults.
//! Every invalid value stops the program with a message naming the variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clinic_domain::contact::{Phone, PhoneRegion};
use clinic_domain::time::ClinicZone;
use clinic_store::DatabaseUrl;

/// Each setting: its environment variable and its key in the optional file.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("CLINIC_DATA_DIR", "data_dir", "./data"),
    ("DATABASE_URL", "database_url", "sqlite://$CLINIC_DATA_DIR/clinic.db"),
    ("CLINIC_BIND", "bind", "127.0.0.1:8080"),
    ("CLINIC_TIME_ZONE", "time_zone", "America/Chicago"),
    ("CLINIC_NAME", "name", "Lakeside Pain Clinic"),
    ("CLINIC_PHONE", "phone", "+1 312 555 0100 (placeholder)"),
    ("CLINIC_PHONE_REGION", "phone_region", "US"),
    (
        "CLINIC_ADDRESS",
        "address",
        "(none: calendar invitations show the clinic name)",
    ),
    (
        "CLINIC_SMTP_URL",
        "smtp_url",
        "(none: emails are written as .eml files under $CLINIC_DATA_DIR/outbox/)",
    ),
    (
        "CLINIC_SMTP_CA_FILE",
        "smtp_ca_file",
        "(none: the relay's certificate must chain to a Mozilla root)",
    ),
    (
        "CLINIC_MAIL_FROM",
        "mail_from",
        "\"$CLINIC_NAME\" <reminders@localhost>",
    ),
    ("CLINIC_MAIL_REPLY_TO", "mail_reply_to", "(none)"),
    ("CLINIC_PUBLIC_URL", "public_url", "http://$CLINIC_BIND"),
    (
        "CLINIC_TEMPLATE_DIR",
        "template_dir",
        "(none: the embedded email templates)",
    ),
    ("CLINIC_DB_POOL_SIZE", "db_pool_size", "10"),
    ("CLINIC_MAX_BODY_BYTES", "max_body_bytes", "65536"),
    ("CLINIC_TOKEN_MAX_DAYS", "token_max_days", "365"),
    ("CLINIC_REMINDER_LEASE_SECONDS", "reminder_lease_seconds", "300"),
    ("CLINIC_SELF_SERVICE_ADDRESS_LIMIT", "self_service_address_limit", "300"),
    ("CLINIC_SELF_SERVICE_LINK_LIMIT", "self_service_link_limit", "30"),
    ("CLINIC_METRICS_TOKEN", "metrics_token", "(none: /metrics is open)"),
    ("CLINIC_LOG_FORMAT", "log_format", "text"),
    ("CLINIC_SEED_ON_FIRST_START", "seed_on_first_start", "true"),
];

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct SettingsError {
    pub variable: String,
    pub message: String,
}

fn err(variable: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        variable: variable.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    /// Set when DATABASE_URL reaches another host with TLS deliberately off; startup warns.
    pub database_tls_warning: Option<String>,
    pub bind: SocketAddr,
    pub time_zone: ClinicZone,
    pub clinic_name: String,
    pub clinic_phone: String,
    /// False while CLINIC_PHONE is the placeholder default; startup warns.
    pub clinic_phone_configured: bool,
    pub phone_region: PhoneRegion,
    /// Street address for calendar invitations.
    pub clinic_address: Option<String>,
    pub smtp_url: Option<String>,
    /// CA certificates the SMTP client trusts besides the Mozilla roots (a private relay).
    pub smtp_ca: Option<clinic_reminders::smtp::CaCertificates>,
    /// The From of every email.
    pub mail_from: clinic_reminders::mailer::Mailbox,
    /// Where replies go, when not to `mail_from`.
    pub mail_reply_to: Option<clinic_reminders::mailer::Mailbox>,
    /// The address patients reach this service at (links in emails), without a trailing slash.
    pub public_url: String,
    /// Email templates that replace the embedded ones, file by file.
    pub template_dir: Option<PathBuf>,
    pub db_pool_size: u32,
    pub max_body_bytes: usize,
    /// The longest life of a token made through the API (the CLI is not limited).
    pub token_max_days: i64,
    /// How long a dispatcher owns the emails it claimed; after a crash they go out again
    /// once it expires. Longer than the slowest SMTP exchange of a whole batch.
    pub reminder_lease_seconds: i64,
    /// Requests a minute one client address may make to the patients' `/my/…` pages.
    pub self_service_address_limit: u32,
    /// Requests a minute on one self-service link.
    pub self_service_link_limit: u32,
    /// The bearer value `/metrics` requires, when set (at least 32 characters).
    pub metrics_token: Option<String>,
    pub log_format: LogFormat,
    /// Load the seed content (conditions, criteria, articles) when the database has none.
    pub seed_on_first_start: bool,
}

/// Where values come from: the environment wins over the file.
struct Source<'a> {
    env: &'a HashMap<String, String>,
    file: HashMap<String, String>,
    file_name: Option<PathBuf>,
}

impl Source<'_> {
    /// The raw value and the name to blame when it is invalid.
    fn get(&self, variable: &str) -> Option<(String, String)> {
        if let Some(v) = self.env.get(variable).filter(|v| !v.trim().is_empty()) {
            return Some((v.trim().to_owned(), variable.to_owned()));
        }
        let key = VARIABLES
            .iter()
            .find(|(var, _, _)| *var == variable)
            .map(|(_, key, _)| *key)?;
        let file = self.file_name.as_ref()?;
        self.file.get(key).map(|v| {
            (
                v.trim().to_owned(),
                format!("{variable} (key '{key}' in {})", file.display()),
            )
        })
    }
}

impl Settings {
    /// Loads from the process environment and the file named by `config` or `CLINIC_CONFIG`.
    pub fn from_env(config: Option<&Path>) -> Result<Self, SettingsError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load(&env, config)
    }

    pub fn load(env: &HashMap<String, String>, config: Option<&Path>) -> Result<Self, SettingsError> {
        let file_name = config
            .map(Path::to_path_buf)
            .or_else(|| env.get("CLINIC_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
        let file = match &file_name {
            Some(path) => read_file(path)?,
            None => HashMap::new(),
        };
        let src = Source { env, file, file_name };

        let data_dir = src
            .get("CLINIC_DATA_DIR")
            .map(|(v, _)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from("./data"));
        let (database_url, database_tls_warning) = match src.get("DATABASE_URL") {
            Some((v, name)) => {
                let url = DatabaseUrl::parse(&v).map_err(|e| err(&name, e.to_string()))?;
                let warning = postgres_tls_policy(&url).map_err(|e| err(&name, e))?;
                (url, warning)
            }
            None => (DatabaseUrl::sqlite_file(&data_dir.join("clinic.db")), None),
        };
        let bind = match src.get("CLINIC_BIND") {
            Some((v, name)) => v
                .parse()
                .map_err(|_| err(&name, format!("'{v}' is not an address:port such as 127.0.0.1:8080")))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let time_zone = match src.get("CLINIC_TIME_ZONE") {
            Some((v, name)) => ClinicZone::parse(&v).map_err(|e| err(&name, e.message))?,
            None => ClinicZone::default(),
        };
        let phone_region = match src.get("CLINIC_PHONE_REGION") {
            Some((v, name)) => PhoneRegion::parse(&v).map_err(|e| err(&name, e.message))?,
            None => PhoneRegion::default(),
        };
        let clinic_name = match src.get("CLINIC_NAME") {
            Some((v, name)) if v.chars().count() > 120 => return Err(err(&name, "longer than 120 characters")),
            Some((v, _)) => v,
            None => "Lakeside Pain Clinic".to_owned(),
        };
        let (clinic_phone, clinic_phone_configured) = match src.get("CLINIC_PHONE") {
            Some((v, name)) => (
                Phone::parse(&v, phone_region)
                    .map_err(|_| err(&name, format!("'{v}' is not a valid phone number")))?
                    .to_string(),
                true,
            ),
            None => ("+13125550100".to_owned(), false),
        };
        let clinic_address = match src.get("CLINIC_ADDRESS") {
            Some((v, name)) if v.chars().count() > 200 => return Err(err(&name, "longer than 200 characters")),
            other => other.map(|(v, _)| v),
        };
        let smtp_url = match src.get("CLINIC_SMTP_URL") {
            Some((v, name)) => {
                if !(v.starts_with("smtp://") || v.starts_with("smtps://")) {
                    return Err(err(&name, "must start with smtp:// or smtps://"));
                }
                Some(v)
            }
            None => None,
        };
        // Read now, so that a wrong file stops the start rather than every send.
        let smtp_ca = match src.get("CLINIC_SMTP_CA_FILE") {
            Some((_, name)) if smtp_url.is_none() => {
                // Most likely CLINIC_SMTP_URL is missing or misspelt: emails would quietly
                // become .eml files.
                return Err(err(&name, "is set but CLINIC_SMTP_URL is not; it applies only to SMTP"));
            }
            Some((v, name)) => {
                Some(clinic_reminders::smtp::CaCertificates::read(Path::new(&v)).map_err(|e| err(&name, e))?)
            }
            None => None,
        };
        let mailbox = |v: &str, name: &str| {
            v.parse::<clinic_reminders::mailer::Mailbox>().map_err(|_| {
                err(
                    name,
                    format!("'{v}' is not an address such as \"Clinic\" <reminders@clinic.example>"),
                )
            })
        };
        let mail_from = match src.get("CLINIC_MAIL_FROM") {
            Some((v, name)) => mailbox(&v, &name)?,
            None => clinic_reminders::mailer::Mailbox::new(
                Some(clinic_name.clone()),
                "reminders@localhost"
                    .parse()
                    .map_err(|_| err("CLINIC_MAIL_FROM", "the default address is invalid"))?,
            ),
        };
        let mail_reply_to = match src.get("CLINIC_MAIL_REPLY_TO") {
            Some((v, name)) => Some(mailbox(&v, &name)?),
            None => None,
        };
        let public_url = match src.get("CLINIC_PUBLIC_URL") {
            Some((v, name)) => {
                if !(v.starts_with("http://") || v.starts_with("https://")) || v.contains(['?', '#', ' ']) {
                    return Err(err(
                        &name,
                        format!("'{v}' is not a base URL such as https://clinic.example"),
                    ));
                }
                v.trim_end_matches('/').to_owned()
            }
            None => format!("http://{bind}"),
        };
        let template_dir = match src.get("CLINIC_TEMPLATE_DIR") {
            Some((v, name)) => {
                let dir = PathBuf::from(&v);
                if !dir.is_dir() {
                    return Err(err(&name, format!("'{v}' is not a folder")));
                }
                Some(dir)
            }
            None => None,
        };
        // What reaches every email must not say what the emails may not (intrathecal.md §5).
        let shown: [(&str, String); 4] = [
            ("CLINIC_NAME", clinic_name.clone()),
            ("CLINIC_ADDRESS", clinic_address.clone().unwrap_or_default()),
            ("CLINIC_MAIL_FROM", mail_from.to_string()),
            (
                "CLINIC_MAIL_REPLY_TO",
                mail_reply_to.as_ref().map(ToString::to_string).unwrap_or_default(),
            ),
        ];
        for (variable, value) in shown {
            if let Some(word) = clinic_reminders::templates::clinical_words(&value).first() {
                let name = src.get(variable).map_or_else(|| variable.to_owned(), |(_, n)| n);
                return Err(err(
                    &name,
                    format!(
                        "'{value}' says '{word}'; emails to patients must not name drugs, devices, doses or conditions"
                    ),
                ));
            }
        }
        let db_pool_size = parse_number(&src, "CLINIC_DB_POOL_SIZE", 10u32, 1..=256)?;
        let max_body_bytes = parse_number(&src, "CLINIC_MAX_BODY_BYTES", 65_536usize, 1024..=16 * 1024 * 1024)?;
        let token_max_days = parse_number(&src, "CLINIC_TOKEN_MAX_DAYS", 365i64, 1..=3650)?;
        let reminder_lease_seconds = parse_number(&src, "CLINIC_REMINDER_LEASE_SECONDS", 300i64, 30..=3600)?;
        let self_service_address_limit =
            parse_number(&src, "CLINIC_SELF_SERVICE_ADDRESS_LIMIT", 300u32, 1..=1_000_000)?;
        let self_service_link_limit = parse_number(&src, "CLINIC_SELF_SERVICE_LINK_LIMIT", 30u32, 1..=1_000_000)?;
        let metrics_token = match src.get("CLINIC_METRICS_TOKEN") {
            // A scraper's secret: long enough not to be guessed, and one header value.
            Some((v, name)) if v.len() < 32 || !v.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(err(
                    &name,
                    "must be at least 32 printable characters with no spaces (e.g. `openssl rand -hex 32`)",
                ))
            }
            Some((v, _)) => Some(v),
            None => None,
        };
        let log_format = match src.get("CLINIC_LOG_FORMAT") {
            Some((v, _)) if v == "text" => LogFormat::Text,
            Some((v, _)) if v == "json" => LogFormat::Json,
            Some((v, name)) => return Err(err(&name, format!("'{v}' is neither 'text' nor 'json'"))),
            None => LogFormat::Text,
        };
        let seed_on_first_start = match src.get("CLINIC_SEED_ON_FIRST_START") {
            Some((v, _)) if v == "true" => true,
            Some((v, _)) if v == "false" => false,
            Some((v, name)) => return Err(err(&name, format!("'{v}' is neither 'true' nor 'false'"))),
            None => true,
        };
        Ok(Self {
            seed_on_first_start,
            data_dir,
            database_url,
            database_tls_warning,
            bind,
            time_zone,
            clinic_name,
            clinic_phone,
            clinic_phone_configured,
            phone_region,
            clinic_address,
            smtp_url,
            smtp_ca,
            mail_from,
            mail_reply_to,
            public_url,
            template_dir,
            db_pool_size,
            max_body_bytes,
            token_max_days,
            reminder_lease_seconds,
            self_service_address_limit,
            self_service_link_limit,
            metrics_token,
            log_format,
        })
    }
}

fn parse_number<T>(
    src: &Source<'_>,
    variable: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, SettingsError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match src.get(variable) {
        None => Ok(default),
        Some((v, name)) => match v.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(err(
                &name,
                format!("'{v}' is not a whole number from {} to {}", range.start(), range.end()),
            )),
        },
    }
}

/// The optional file: flat TOML, keys as in [`VARIABLES`], strings or numbers.
fn read_file(path: &Path) -> Result<HashMap<String, String>, SettingsError> {
    let name = format!("CLINIC_CONFIG ({})", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| err(&name, format!("cannot read: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e| err(&name, format!("not valid TOML: {e}")))?;
    let mut values = HashMap::new();
    for (key, value) in table {
        if !VARIABLES.iter().any(|(_, k, _)| *k == key) {
            return Err(err(&name, format!("unknown key '{key}'")));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(err(
                    &name,
                    format!("key '{key}' must be a string or a number, not {}", other.type_str()),
                ))
            }
        };
        values.insert(key, text);
    }
    Ok(values)
}

/// What `DATABASE_URL` does about TLS to PostgreSQL (security review F2). Local hosts and
/// sockets need nothing. Another host needs `sslmode=verify-full` (or `verify-ca`): anything
/// weaker either sends patient data in clear or accepts an impostor, so it is refused, except
/// an explicit `sslmode=disable`, the operator's deliberate choice for a private network
/// (Docker Compose), which is allowed with a warning (`Ok(Some(warning))`).
pub fn postgres_tls_policy(url: &DatabaseUrl) -> Result<Option<String>, String> {
    let Some(host) = url.postgres_host() else {
        return Ok(None);
    };
    let local = url.is_local();
    match (local, url.query_param("sslmode")) {
        (true, _) | (false, Some("verify-full" | "verify-ca")) => Ok(None),
        (false, Some("disable")) => Ok(Some(format!(
            "DATABASE_URL reaches {host} with sslmode=disable: patient data travels unencrypted; \
             acceptable only on a private network (docs/security.md, TLS for PostgreSQL)"
        ))),
        (false, mode) => Err(format!(
            "{host} is not the local host, and sslmode={} neither encrypts nor verifies the server for sure: \
             use sslmode=verify-full with sslrootcert=/path/to/ca.pem (a binary built with --features \
             postgres-tls), or sslmode=disable to choose an unencrypted private network deliberately",
            mode.unwrap_or("(unset, libpq's 'prefer')")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_give_sqlite_in_the_data_dir() {
        let s = Settings::load(&env(&[]), None).expect("defaults");
        assert_eq!(s.database_url, DatabaseUrl::sqlite_file(Path::new("./data/clinic.db")));
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.time_zone.name(), "America/Chicago");
        assert!(!s.clinic_phone_configured);
        assert_eq!(s.database_tls_warning, None);
        let s = Settings::load(&env(&[("CLINIC_DATA_DIR", "/srv/clinic")]), None).expect("data dir");
        assert_eq!(
            s.database_url,
            DatabaseUrl::sqlite_file(Path::new("/srv/clinic/clinic.db"))
        );
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (var, value) in [
            ("CLINIC_TIME_ZONE", "Mars/Base"),
            ("CLINIC_BIND", "localhost"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_URL", "postgres://clinic@db.internal/clinic?sslmode=require"),
            ("CLINIC_PHONE", "12"),
            ("CLINIC_SMTP_URL", "http://mail"),
            ("CLINIC_DB_POOL_SIZE", "0"),
            ("CLINIC_TOKEN_MAX_DAYS", "0"),
            ("CLINIC_TOKEN_MAX_DAYS", "3651"),
            ("CLINIC_LOG_FORMAT", "xml"),
            ("CLINIC_METRICS_TOKEN", "too-short"),
            ("CLINIC_METRICS_TOKEN", "0123456789abcdef 0123456789abcdef"),
            ("CLINIC_PHONE_REGION", "ZZ"),
            ("CLINIC_SEED_ON_FIRST_START", "yes"),
            ("CLINIC_MAIL_FROM", "not an address"),
            ("CLINIC_PUBLIC_URL", "clinic.example"),
            // Shown in every email, so no device, drug or condition words.
            ("CLINIC_NAME", "Northside Pump Clinic"),
            ("CLINIC_ADDRESS", "Baclofen Wing, 1 Main St"),
            ("CLINIC_MAIL_FROM", "\"Intrathecal Team\" <team@clinic.example>"),
            ("CLINIC_MAIL_REPLY_TO", "refills@clinic.example"),
        ] {
            let e = Settings::load(&env(&[(var, value)]), None).expect_err(var);
            assert_eq!(e.variable, var, "{e}");
        }

        // CLINIC_SMTP_CA_FILE: unreadable, holding no certificate, or with no SMTP to apply to.
        let dir = tempfile::tempdir().expect("tempdir");
        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        let missing = dir.path().join("missing.pem");
        for (smtp_url, path, why) in [
            ("smtp://relay.example", &missing, "cannot read"),
            ("smtps://relay.example", &key_only, "no PEM certificate"),
            ("", &key_only, "CLINIC_SMTP_URL is not"),
        ] {
            let vars = env(&[
                ("CLINIC_SMTP_URL", smtp_url),
                ("CLINIC_SMTP_CA_FILE", &path.display().to_string()),
            ]);
            let e = Settings::load(&vars, None).expect_err(why);
            assert_eq!(e.variable, "CLINIC_SMTP_CA_FILE", "{e}");
            assert!(e.message.contains(why), "{e}");
        }
    }

    #[test]
    fn the_smtp_ca_file_is_read_at_start() {
        let sink =
            clinic_reminders::testing::SmtpSink::tls(clinic_reminders::testing::SinkTls::StartTls).expect("sink");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        // Two certificates (the same one twice is enough) and a comment line around them.
        let pem = sink.ca_pem().expect("ca");
        std::fs::write(&path, format!("# relay CA\n{pem}{pem}")).expect("write");
        let vars = env(&[
            ("CLINIC_SMTP_URL", &sink.url()),
            ("CLINIC_SMTP_CA_FILE", &path.display().to_string()),
        ]);
        let s = Settings::load(&vars, None).expect("settings");
        assert_eq!(s.smtp_ca.as_ref().map(|c| c.len()), Some(2));
        assert!(Settings::load(&env(&[]), None).expect("defaults").smtp_ca.is_none());
    }

    #[test]
    fn file_values_apply_and_env_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clinic.toml");
        std::fs::write(
            &path,
            "time_zone = \"Australia/Sydney\"\nname = \"North Clinic\"\ndb_pool_size = 4\n",
        )
        .expect("write");
        let s = Settings::load(&env(&[("CLINIC_NAME", "South Clinic")]), Some(&path)).expect("file");
        assert_eq!(s.time_zone.name(), "Australia/Sydney");
        assert_eq!(s.clinic_name, "South Clinic");
        assert_eq!(s.db_pool_size, 4);

        std::fs::write(&path, "time_zone = \"Nowhere/City\"\n").expect("write");
        let e = Settings::load(&env(&[]), Some(&path)).expect_err("bad zone in file");
        assert!(e.variable.starts_with("CLINIC_TIME_ZONE (key 'time_zone'"), "{e}");
        std::fs::write(&path, "colour = \"blue\"\n").expect("write");
        assert!(Settings::load(&env(&[]), Some(&path))
            .expect_err("unknown key")
            .message
            .contains("colour"));
    }

    #[test]
    fn remote_postgres_needs_verified_tls_or_an_explicit_disable() {
        let policy = |u: &str| postgres_tls_policy(&DatabaseUrl::parse(u).expect("url"));
        for refused in [
            "postgres://clinic:pw@db.internal:5432/clinic",
            "postgres://clinic@db.internal/clinic?sslmode=require",
            "postgres://clinic@db.internal/clinic?sslmode=prefer",
            "postgres://clinic@db.internal/clinic?application_name=verify-full",
            "postgres://clinic@localhost/clinic?host=db.internal&sslmode=require",
        ] {
            assert!(policy(refused).is_err(), "{refused}");
        }
        for quiet in [
            "postgres://clinic@db.internal/clinic?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            "postgres://clinic@db.internal/clinic?sslmode=verify-ca",
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://u:p@localhost/x",
            "postgres://u@[::1]:5432/x",
            "postgres:///clinic?host=/var/run/postgresql",
        ] {
            assert_eq!(policy(quiet), Ok(None), "{quiet}");
        }
        let warned = policy("postgres://clinic:pw@postgres:5432/clinic?sslmode=disable").expect("allowed");
        assert!(warned.is_some_and(|w| w.contains("unencrypted")));
        // Loading the settings keeps the warning for startup to log.
        let s = Settings::load(
            &env(&[(
                "DATABASE_URL",
                "postgres://clinic:pw@postgres:5432/clinic?sslmode=disable",
            )]),
            None,
        )
        .expect("allowed with a warning");
        assert!(s
            .database_tls_warning
            .is_some_and(|w| w.contains("unencrypted") && !w.contains("pw")));
        let message = policy("postgres://clinic:secret@db.internal/clinic").expect_err("refused");
        assert!(!message.contains("secret"), "{message}");
    }
}
