//! SMTP for `smtp://` URLs (plain, or upgraded with STARTTLS), on lettre's connection API
//! with our own sockets and a small pool of open connections.
//!
//! Why not lettre's `AsyncSmtpTransport` here: it writes a message body and the closing
//! `\r\n.\r\n` in two writes on a socket without `TCP_NODELAY`, so Nagle's algorithm holds
//! the terminator until the server acknowledges the body, and servers delay that
//! acknowledgement (40 ms on Linux). Every email then costs ~40 ms per connection: 25 emails
//! a second each (measured in docs/performance.md). Setting `TCP_NODELAY` on our own socket
//! removes the stall. `smtps://` (TLS from the first byte) still uses lettre's transport.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error;

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

/// Connections to one SMTP server, reused while they work.
pub struct SmtpClient {
    settings: SmtpSettings,
    timeout: Duration,
    hello: ClientId,
    idle: tokio::sync::Mutex<Vec<AsyncSmtpConnection>>,
    max_idle: usize,
}

impl SmtpClient {
    pub fn new(settings: SmtpSettings, max_idle: usize) -> Self {
        Self {
            settings,
            timeout: Duration::from_secs(60),
            hello: ClientId::default(),
            idle: tokio::sync::Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// How this client uses TLS, for the startup log.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        match s.tls {
            StartTls::Required => format!("SMTP to {}:{} (STARTTLS required)", s.host, s.port),
            StartTls::Opportunistic => format!("SMTP to {}:{} (STARTTLS when offered)", s.host, s.port),
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
            let params = TlsParameters::new(s.host.clone()).map_err(from_lettre)?;
            // A TLS failure is transient: the server or its certificate may be fixed.
            conn.starttls(params, &self.hello).await.map_err(transient)?;
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
}
