//! Sending email: SMTP (pooled; TLS unless the URL says otherwise), `.eml` files (the
//! embedded default, under `$CLINIC_DATA_DIR/outbox/`), or memory (tests).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lettre::message::header::{ContentDisposition, ContentType, Header, HeaderName, HeaderValue};
/// An address with an optional display name (re-exported so callers need not name lettre).
pub use lettre::message::Mailbox;
use lettre::message::{MultiPart, SinglePart};
use lettre::transport::smtp::client::Tls;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use crate::templates::RenderedEmail;

/// Where emails come from.
#[derive(Debug, Clone)]
pub struct Sender {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
}

/// One email to send. `message_id` is stable per outbox row, so a resend after a crash is
/// recognisable as the same message.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub to: Mailbox,
    pub message_id: String,
    pub content: RenderedEmail,
    /// An iCalendar attachment (`text/calendar`), with its METHOD.
    pub calendar: Option<(String, &'static str)>,
    /// The "stop emailing me" URL, also offered to mail clients as RFC 8058 one-click
    /// `List-Unsubscribe`.
    pub unsubscribe_url: Option<String>,
}

/// `List-Unsubscribe: <url>` (RFC 2369).
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim_matches(['<', '>']).to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct MailError {
    /// A permanent refusal (bad address, rejected): retrying will not help.
    pub permanent: bool,
    pub message: String,
}

/// An email as the memory mailer keeps it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: String,
    pub message_id: String,
    pub raw: String,
}

#[derive(Clone)]
pub enum Mailer {
    /// `smtp://`: our client with TCP_NODELAY (see [`crate::smtp`]).
    Smtp(Arc<crate::smtp::SmtpClient>),
    /// `smtps://`: lettre's pooled transport, TLS from the first byte; and what the startup
    /// log adds about extra CA certificates.
    Smtps(AsyncSmtpTransport<Tokio1Executor>, String),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
    Memory(Arc<Mutex<Vec<Delivered>>>),
}

impl Mailer {
    /// SMTP from a `CLINIC_SMTP_URL`, keeping up to 8 connections open.
    pub fn smtp(url: &str) -> Result<Self, String> {
        Self::smtp_with(url, 8, None)
    }

    /// SMTP that also trusts the CA certificates of `CLINIC_SMTP_CA_FILE`, on both `smtp://`
    /// (STARTTLS) and `smtps://`.
    pub fn smtp_trusting(url: &str, ca: &crate::smtp::CaCertificates) -> Result<Self, String> {
        Self::smtp_with(url, 8, Some(ca))
    }

    /// `smtps://` is TLS from the first byte (lettre's transport); `smtp://` requires STARTTLS
    /// unless the URL says `tls=opportunistic` or `tls=none` ([`crate::smtp`]). Certificates
    /// are checked against the Mozilla roots and `ca`.
    pub fn smtp_with(url: &str, connections: usize, ca: Option<&crate::smtp::CaCertificates>) -> Result<Self, String> {
        if url.starts_with("smtps://") {
            // TLS is always on: a tls= or any other parameter would be ignored, so refuse it.
            if let Some((_, query)) = url.split_once('?') {
                return Err(format!(
                    "smtps:// takes no parameters (got '{query}'); TLS is always on"
                ));
            }
            let host = url::Url::parse(url)
                .map_err(|e| format!("not a URL: {e}"))?
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or("the URL names no host")?
                .trim_matches(['[', ']'])
                .to_owned();
            // from_url sets port, credentials and hello name; the TLS parameters are ours, so
            // that the extra roots apply here as on smtp://.
            let tls = crate::smtp::tls_parameters(&host, ca)?;
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| e.to_string())?
                .tls(Tls::Wrapper(tls))
                .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(connections as u32))
                .build();
            return Ok(Mailer::Smtps(transport, crate::smtp::describe_ca(ca)));
        }
        if !url.starts_with("smtp://") {
            return Err("must start with smtp:// or smtps://".into());
        }
        let settings = crate::smtp::SmtpSettings::parse(url)?;
        Ok(Mailer::Smtp(Arc::new(crate::smtp::SmtpClient::trusting(
            settings,
            connections,
            ca.cloned(),
        )?)))
    }

    /// `.eml` files in `dir` (created when missing).
    pub fn files(dir: PathBuf) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Mailer::Files(AsyncFileTransport::new(&dir), dir))
    }

    pub fn memory() -> (Self, Arc<Mutex<Vec<Delivered>>>) {
        let store = Arc::new(Mutex::new(Vec::new()));
        (Mailer::Memory(store.clone()), store)
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp(client) => client.describe(),
            Mailer::Smtps(_, ca) if ca.is_empty() => "SMTP over TLS (smtps://)".into(),
            Mailer::Smtps(_, ca) => format!("SMTP over TLS (smtps://{ca})"),
            Mailer::Files(_, dir) => format!(".eml files in {}", dir.display()),
            Mailer::Memory(_) => "memory".into(),
        }
    }

    /// Sends one email; on acceptance returns what the server said about it (an SMTP
    /// server's reply, usually naming its queue id; the `.eml` file's name).
    pub async fn send(&self, sender: &Sender, email: &OutgoingEmail) -> Result<Option<String>, MailError> {
        let message = build(sender, email)?;
        match self {
            Mailer::Smtp(client) => {
                let raw = message.formatted();
                client
                    .send(message.envelope(), &raw)
                    .await
                    .map(|r| Some(r.message().collect::<Vec<_>>().join(" ").chars().take(200).collect()))
            }
            Mailer::Smtps(t, _) => t
                .send(message)
                .await
                .map(|r| Some(r.message().collect::<Vec<_>>().join(" ").chars().take(200).collect()))
                .map_err(|e| MailError {
                    permanent: e.is_permanent(),
                    message: e.to_string(),
                }),
            Mailer::Files(t, _) => t
                .send(message)
                .await
                .map(|id| Some(format!("{id}.eml")))
                .map_err(|e| MailError {
                    permanent: false,
                    message: e.to_string(),
                }),
            Mailer::Memory(store) => {
                let raw = String::from_utf8_lossy(&message.formatted()).into_owned();
                store
                    .lock()
                    .map_err(|_| MailError {
                        permanent: false,
                        message: "memory mailer poisoned".into(),
                    })?
                    .push(Delivered {
                        to: email.to.email.to_string(),
                        message_id: email.message_id.clone(),
                        raw,
                    });
                Ok(None)
            }
        }
    }
}

fn build(sender: &Sender, email: &OutgoingEmail) -> Result<Message, MailError> {
    let bad = |e: lettre::error::Error| MailError {
        permanent: true,
        message: e.to_string(),
    };
    let mut builder = Message::builder()
        .from(sender.from.clone())
        .to(email.to.clone())
        .subject(email.content.subject.clone())
        .message_id(Some(email.message_id.clone()));
    if let Some(r) = &sender.reply_to {
        builder = builder.reply_to(r.clone());
    }
    if let Some(url) = &email.unsubscribe_url {
        builder = builder.header(ListUnsubscribe(url.clone())).header(ListUnsubscribePost);
    }
    let alternative = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(email.content.text.clone()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(email.content.html.clone()),
        );
    let body =
        match &email.calendar {
            None => alternative,
            Some((ics, method)) => {
                let calendar_type = ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                    .map_err(|e| MailError {
                        permanent: true,
                        message: e.to_string(),
                    })?;
                let part = SinglePart::builder()
                    .header(calendar_type)
                    .header(ContentDisposition::attachment("appointment.ics"))
                    .body(ics.clone());
                MultiPart::mixed().multipart(alternative).singlepart(part)
            }
        };
    builder.multipart(body).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A tokio runtime: lettre's smtps:// pool lives on one.
    #[tokio::test]
    async fn tls_is_required_unless_the_url_says_otherwise() {
        let mode = |url: &str| Mailer::smtp(url).expect("mailer").describe();
        assert!(mode("smtp://relay.example:587").ends_with("(STARTTLS required)"));
        assert!(mode("smtp://u:p@relay.example:587?tls=required").ends_with("(STARTTLS required)"));
        assert!(mode("smtp://relay.example?tls=opportunistic").ends_with("(STARTTLS when offered)"));
        assert!(mode("smtp://mailpit:1025?tls=none").ends_with("(plain, no TLS)"));
        assert_eq!(mode("smtps://relay.example"), "SMTP over TLS (smtps://)");
        assert!(Mailer::smtp("smtp://x?tls=maybe").is_err());
        assert!(Mailer::smtp("smtps://relay.example?tls=none").is_err());
        assert!(Mailer::smtp("http://x").is_err());
    }
}
