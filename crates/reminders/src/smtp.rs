//! SMTP for `smtp://` URLs (plain, or upgraded with STARTTLS), on lettre's connection API
//! with our own sockets and a small pool of open connections.
//!
//! Why not lettre's `AsyncSmtpTransport` here: it writes a message body and the closing
//! `\r\n.\r\n` in two writes on a socket without `TCP_NODELAY`, so Nagle's algorithm holds
//! the terminator until the server acknowledges the body, and servers delay that
//! acknowledgement (40 ms on Linux). Every email then costs ~40 ms per connection: 25 emails
//! a second each (measured in docs/performance.md). Setting `TCP_NODELAY` on our own socket
//! removes the stall. `smtps://` (TLS from the first byte) still uses lettre's transport.
//!
//! Both check the relay's certificate against the Mozilla roots (`webpki-roots`) plus, when
//! `CLINIC_SMTP_CA_FILE` is set, the CA certificates it holds ([`CaCertificates`]).

use std::path::Path;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::mailer::MailError;

/// How `smtp://` uses TLS (`?tls=` in `CLINIC_SMTP_URL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// STARTTLS or no sending (the default).
    Required,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// Plain SMTP, for a relay on the same host or network (Mailpit).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: StartTls,
    pub credentials: Option<(String, String)>,
}

impl SmtpSettings {
    /// Parses `smtp://[user:password@]host[:port][?tls=required|opportunistic|none]`
    /// (port 587 by default; user and password percent-decoded).
    pub fn parse(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if parsed.scheme() != "smtp" {
            return Err("this client handles smtp:// URLs".into());
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no host")?;
        let mut tls = StartTls::Required;
        for (k, v) in parsed.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "required") => tls = StartTls::Required,
                ("tls", "opportunistic") => tls = StartTls::Opportunistic,
                ("tls", "none") => tls = StartTls::None,
                ("tls", other) => return Err(format!("tls={other} is not required, opportunistic or none")),
                (other, _) => return Err(format!("unknown URL parameter '{other}'")),
            }
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "the user or password is not UTF-8".to_owned())
        };
        let credentials = if parsed.username().is_empty() {
            None
        } else {
            Some((decode(parsed.username())?, decode(parsed.password().unwrap_or(""))?))
        };
        if credentials.is_some() && tls != StartTls::Required {
            return Err("a password is only sent over TLS: use tls=required (the default) or smtps://".into());
        }
        Ok(Self {
            host: host.trim_matches(['[', ']']).to_owned(),
            port: parsed.port().unwrap_or(587),
            tls,
            credentials,
        })
    }
}

/// CA certificates trusted for the relay in addition to the Mozilla roots: a private CA
/// (`CLINIC_SMTP_CA_FILE`). Lettre adds them to its root store
/// (`TlsParametersBuilder::add_root_certificate`); the Mozilla roots stay trusted.
#[derive(Clone)]
pub struct CaCertificates {
    der: Vec<Vec<u8>>,
}

impl CaCertificates {
    /// Reads a PEM file holding one or more certificates.
    pub fn read(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every `CERTIFICATE` section of a PEM text (other sections, such as keys, are skipped).
    /// None at all, or one that is not a certificate usable as a root, is an error, so a
    /// wrong file stops the start instead of failing every send.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let der = CertificateDer::pem_slice_iter(pem)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not a PEM file: {e}"))?;
        if der.is_empty() {
            return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        let certificates = Self { der };
        // The same checks lettre makes when it connects, made now.
        certificates
            .tls_parameters("localhost")
            .map_err(|e| format!("a certificate cannot be used as a root: {e}"))?;
        Ok(certificates)
    }

    /// How many certificates the file held.
    pub fn len(&self) -> usize {
        self.der.len()
    }

    pub fn is_empty(&self) -> bool {
        self.der.is_empty()
    }

    /// Certificate and hostname checks for `host`, trusting these roots too.
    fn tls_parameters(&self, host: &str) -> Result<TlsParameters, Error> {
        self.der
            .iter()
            .try_fold(TlsParameters::builder(host.to_owned()), |b, der| {
                Ok(b.add_root_certificate(Certificate::from_der(der.clone())?))
            })?
            .build()
    }
}

impl std::fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaCertificates({})", self.der.len())
    }
}

/// TLS parameters for `host`: the Mozilla roots, plus `ca` when given.
pub(crate) fn tls_parameters(host: &str, ca: Option<&CaCertificates>) -> Result<TlsParameters, String> {
    match ca {
        Some(ca) => ca.tls_parameters(host),
        None => TlsParameters::new(host.to_owned()),
    }
    .map_err(|e| e.to_string())
}

/// What the startup log says about extra roots.
pub(crate) fn describe_ca(ca: Option<&CaCertificates>) -> String {
    match ca.map(CaCertificates::len) {
        None => String::new(),
        Some(1) => "; trusting 1 extra CA certificate".into(),
        Some(n) => format!("; trusting {n} extra CA certificates"),
    }
}

/// Connections to one SMTP server, reused while they work.
pub struct SmtpClient {
    settings: SmtpSettings,
    /// Built once (also for `tls=none`, where it goes unused): a CA file that cannot be used
    /// fails at start, not at the first send.
    tls: TlsParameters,
    ca: Option<CaCertificates>,
    timeout: Duration,
    hello: ClientId,
    idle: tokio::sync::Mutex<Vec<AsyncSmtpConnection>>,
    max_idle: usize,
}

impl SmtpClient {
    pub fn new(settings: SmtpSettings, max_idle: usize) -> Result<Self, String> {
        Self::trusting(settings, max_idle, None)
    }

    /// A client that also trusts the CA certificates `ca` for STARTTLS.
    pub fn trusting(settings: SmtpSettings, max_idle: usize, ca: Option<CaCertificates>) -> Result<Self, String> {
        let tls = tls_parameters(&settings.host, ca.as_ref())?;
        Ok(Self {
            settings,
            tls,
            ca,
            timeout: Duration::from_secs(60),
            hello: ClientId::default(),
            idle: tokio::sync::Mutex::new(Vec::new()),
            max_idle,
        })
    }

    /// How this client uses TLS, for the startup log.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        let ca = describe_ca(self.ca.as_ref());
        match s.tls {
            StartTls::Required => format!("SMTP to {}:{} (STARTTLS required{ca})", s.host, s.port),
            StartTls::Opportunistic => format!("SMTP to {}:{} (STARTTLS when offered{ca})", s.host, s.port),
            // No TLS, so no certificate is checked: the CA file plays no part.
            StartTls::None => format!("SMTP to {}:{} (plain, no TLS)", s.host, s.port),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let s = &self.settings;
        let stream = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect((s.host.as_str(), s.port)))
            .await
            .map_err(|_| transient(format!("connecting to {}:{} timed out", s.host, s.port)))?
            .map_err(|e| transient(format!("cannot connect to {}:{}: {e}", s.host, s.port)))?;
        stream.set_nodelay(true).map_err(transient)?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
            .await
            .map_err(from_lettre)?;
        let upgrade = match s.tls {
            StartTls::Required => true,
            StartTls::Opportunistic => conn.can_starttls(),
            StartTls::None => false,
        };
        if upgrade {
            // A TLS failure is transient: the server or its certificate may be fixed.
            conn.starttls(self.tls.clone(), &self.hello).await.map_err(transient)?;
        }
        if let Some((user, password)) = &s.credentials {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), password.clone()),
            )
            .await
            .map_err(from_lettre)?;
        }
        Ok(conn)
    }

    /// Sends one message on an idle connection, or a new one.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, MailError> {
        let reused = self.idle.lock().await.pop().filter(|c| !c.has_broken());
        let mut conn = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        match conn.send(envelope, email).await {
            Ok(response) => {
                let mut idle = self.idle.lock().await;
                if idle.len() < self.max_idle {
                    idle.push(conn);
                } else {
                    drop(idle);
                    let _ = conn.quit().await;
                }
                Ok(response)
            }
            Err(e) => {
                conn.abort().await;
                Err(from_lettre(e))
            }
        }
    }
}

fn transient(message: impl std::fmt::Display) -> MailError {
    MailError {
        permanent: false,
        message: message.to_string(),
    }
}

fn from_lettre(e: Error) -> MailError {
    MailError {
        permanent: e.is_permanent(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_tls_and_credentials() {
        let s = SmtpSettings::parse("smtp://user%40x:p%3Ass@relay.example:2525").expect("ok");
        assert_eq!(s.host, "relay.example");
        assert_eq!(s.port, 2525);
        assert_eq!(s.tls, StartTls::Required);
        assert_eq!(s.credentials, Some(("user@x".into(), "p:ss".into())));
        let d = SmtpSettings::parse("smtp://mailpit").expect("ok");
        assert_eq!((d.port, d.tls, d.credentials), (587, StartTls::Required, None));
        assert!(SmtpSettings::parse("smtp://x?tls=maybe").is_err());
        assert!(SmtpSettings::parse("smtp://x?pool=3").is_err());
        assert!(SmtpSettings::parse("smtps://x").is_err());
        // A password never travels in clear.
        assert!(SmtpSettings::parse("smtp://u:p@relay.example?tls=none").is_err());
        assert!(SmtpSettings::parse("smtp://u:p@relay.example?tls=opportunistic").is_err());
    }

    #[test]
    fn a_ca_file_without_a_usable_certificate_is_refused() {
        let none = CaCertificates::from_pem(b"").expect_err("empty");
        assert!(none.contains("no PEM certificate"), "{none}");
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(
            CaCertificates::from_pem(key_only).is_err(),
            "a key is not a certificate"
        );
        let not_der = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bad = CaCertificates::from_pem(not_der).expect_err("not a certificate");
        assert!(bad.contains("cannot be used as a root"), "{bad}");
        let unterminated = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(CaCertificates::from_pem(unterminated).is_err());
        let missing = CaCertificates::read(Path::new("/nonexistent/ca.pem")).expect_err("missing");
        assert!(missing.contains("cannot read /nonexistent/ca.pem"), "{missing}");
    }
}
