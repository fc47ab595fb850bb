//! An in-process SMTP server for tests (feature `testing`): plain SMTP on a free local
//! port, keeping every message it accepts, optionally refusing some recipients for good.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use mailin_embedded::{response, Handler, Response, Server};

#[derive(Clone, Default)]
struct Inbox {
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
    current: Vec<u8>,
    /// Recipients refused with 550 (a permanent failure).
    refuse: Arc<Vec<String>>,
}

impl Handler for Inbox {
    fn rcpt(&mut self, to: &str) -> Response {
        if self.refuse.iter().any(|r| to.contains(r.as_str())) {
            response::NO_MAILBOX
        } else {
            response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, _to: &[String]) -> Response {
        self.current.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Ok(mut m) = self.messages.lock() {
            m.push(std::mem::take(&mut self.current));
        }
        response::OK
    }
}

/// A running SMTP server (it lives until the test process ends).
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl SmtpSink {
    pub fn start() -> std::io::Result<Self> {
        Self::refusing(&[])
    }

    /// A server on a given address (benchmarks).
    pub fn bind(addr: &str) -> std::io::Result<Self> {
        Self::serve(TcpListener::bind(addr)?, &[])
    }

    /// A server that answers 550 to recipients containing any of `refuse`.
    pub fn refusing(refuse: &[&str]) -> std::io::Result<Self> {
        Self::serve(TcpListener::bind("127.0.0.1:0")?, refuse)
    }

    fn serve(listener: TcpListener, refuse: &[&str]) -> std::io::Result<Self> {
        let port = listener.local_addr()?.port();
        let inbox = Inbox {
            refuse: Arc::new(refuse.iter().map(|s| (*s).to_owned()).collect()),
            ..Inbox::default()
        };
        let messages = inbox.messages.clone();
        let mut server = Server::new(inbox);
        // One thread per connection: pooled clients keep several open (the default is 4).
        server
            .with_name("test.local")
            .with_num_threads(64)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Ok(Self { port, messages })
    }

    /// `CLINIC_SMTP_URL` for this server (plain SMTP, as a local relay).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<String> {
        self.messages
            .lock()
            .map(|m| m.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect())
            .unwrap_or_default()
    }
}
