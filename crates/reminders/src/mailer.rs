//! Sending email: SMTP (pooled; TLS unless the URL says otherwise), `.eml` files (the
//! embedded default, under `$CLINIC_DATA_DIR/outbox/`), or memory (tests).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lettre::message::header::{ContentDisposition, ContentType, Header, HeaderName, HeaderValue};
/// An address with an optional display name (re-exported so callers need not name lettre).
pub use lettre::message::Mailbox;
use lettre::message::{MultiPart, SinglePart};
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
    /// `smtps://`: lettre's pooled transport, TLS from the first byte.
    Smtps(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
    Memory(Arc<Mutex<Vec<Delivered>>>),
}

/// `CLINIC_SMTP_URL` to a lettre URL: `smtps://` is TLS from the start; `smtp://` requires
/// STARTTLS unless the URL says `tls=opportunistic` or `tls=none` (plain, for a local relay
/// such as Mailpit).
pub fn smtp_url_for_lettre(url: &str) -> Result<String, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if base.starts_with("smtps://") {
        // TLS from the first byte: a tls= or any other parameter would be ignored, so refuse it.
        if !query.is_empty() {
            return Err(format!(
                "smtps:// takes no parameters (got '{query}'); TLS is always on"
            ));
        }
        return Ok(url.to_owned());
    }
    if !base.starts_with("smtp://") {
        return Err("must start with smtp:// or smtps://".into());
    }
    let params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let tls = params.iter().find_map(|p| p.strip_prefix("tls="));
    let others: Vec<&str> = params.iter().copied().filter(|p| !p.starts_with("tls=")).collect();
    let tls_param = match tls {
        None | Some("required") => Some("tls=required"),
        Some("opportunistic") => Some("tls=opportunistic"),
        Some("none") => None,
        Some(other) => return Err(format!("tls={other}: expected required, opportunistic or none")),
    };
    let all: Vec<&str> = others.into_iter().chain(tls_param).collect();
    Ok(if all.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", all.join("&"))
    })
}

impl Mailer {
    /// SMTP from a `CLINIC_SMTP_URL`, keeping up to `connections` connections open.
    pub fn smtp(url: &str) -> Result<Self, String> {
        Self::smtp_with(url, 8)
    }

    pub fn smtp_with(url: &str, connections: usize) -> Result<Self, String> {
        // Validates the URL and the tls= parameter for both kinds.
        let lettre_url = smtp_url_for_lettre(url)?;
        if url.starts_with("smtps://") {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&lettre_url)
                .map_err(|e| e.to_string())?
                .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(connections as u32))
                .build();
            return Ok(Mailer::Smtps(transport));
        }
        let settings = crate::smtp::SmtpSettings::parse(url)?;
        Ok(Mailer::Smtp(Arc::new(crate::smtp::SmtpClient::new(
            settings,
            connections,
        ))))
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
            Mailer::Smtps(_) => "SMTP over TLS (smtps://)".into(),
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
            Mailer::Smtps(t) => t
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

    #[test]
    fn tls_is_required_unless_the_url_says_otherwise() {
        assert_eq!(
            smtp_url_for_lettre("smtp://relay.example:587").expect("ok"),
            "smtp://relay.example:587?tls=required"
        );
        assert_eq!(
            smtp_url_for_lettre("smtp://u:p@relay.example:587?tls=required").expect("ok"),
            "smtp://u:p@relay.example:587?tls=required"
        );
        assert_eq!(
            smtp_url_for_lettre("smtp://mailpit:1025?tls=none").expect("ok"),
            "smtp://mailpit:1025"
        );
        assert_eq!(
            smtp_url_for_lettre("smtps://relay.example").expect("ok"),
            "smtps://relay.example"
        );
        assert!(smtp_url_for_lettre("smtp://x?tls=maybe").is_err());
        assert!(smtp_url_for_lettre("smtps://relay.example?tls=none").is_err());
        assert!(smtp_url_for_lettre("http://x").is_err());
    }
}
