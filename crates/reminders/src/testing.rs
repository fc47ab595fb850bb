//! An in-process SMTP server for tests (feature `testing`): plain SMTP on a free local
//! port, keeping every message it accepts, optionally refusing some recipients for good.
//!
//! With TLS ([`SmtpSink::tls`]) a front on the advertised port speaks TLS (STARTTLS, or TLS
//! from the first byte) with a certificate for `127.0.0.1` and `localhost`, signed by a CA made
//! for that sink, and relays the decrypted dialogue to a plain sink on a port nobody is told
//! about. Every message such a sink keeps therefore came over TLS.

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mailin_embedded::{response, Handler, Response, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// How a [`SmtpSink`] uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Offers STARTTLS and refuses mail before it (`smtp://`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// A running SMTP server (it lives until the test process ends).
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
    tls: Option<TlsFront>,
}

/// What a TLS sink knows beyond the plain one.
struct TlsFront {
    mode: SinkTls,
    ca_pem: String,
    handshakes: Arc<AtomicUsize>,
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
        Ok(Self {
            port,
            messages,
            tls: None,
        })
    }

    /// A server that speaks TLS as `mode` says, with a certificate signed by a CA made now
    /// ([`SmtpSink::ca_pem`]): a client trusts it only when told to.
    pub fn tls(mode: SinkTls) -> io::Result<Self> {
        let backend = Self::start()?;
        let (ca_pem, config) = certificates().map_err(io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let front = TcpListener::bind("127.0.0.1:0")?;
        front.set_nonblocking(true)?;
        let port = front.local_addr()?.port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counter = handshakes.clone();
        let backend_port = backend.port;
        // A runtime of its own: the sink outlives any one test's runtime.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(front) = tokio::net::TcpListener::from_std(front) else {
                    return;
                };
                while let Ok((client, _)) = front.accept().await {
                    let (acceptor, counter) = (acceptor.clone(), counter.clone());
                    tokio::spawn(async move {
                        // A failed handshake (an untrusted certificate) just ends the connection.
                        let _ = relay(client, mode, acceptor, counter, backend_port).await;
                    });
                }
            });
        });
        Ok(Self {
            port,
            messages: backend.messages,
            tls: Some(TlsFront {
                mode,
                ca_pem,
                handshakes,
            }),
        })
    }

    /// `CLINIC_SMTP_URL` for this server: plain SMTP as a local relay, `smtp://` with
    /// STARTTLS required (the default), or `smtps://`.
    pub fn url(&self) -> String {
        match self.tls.as_ref().map(|t| t.mode) {
            None => format!("smtp://127.0.0.1:{}?tls=none", self.port),
            Some(SinkTls::StartTls) => format!("smtp://127.0.0.1:{}", self.port),
            Some(SinkTls::Implicit) => format!("smtps://127.0.0.1:{}", self.port),
        }
    }

    /// The CA certificate (PEM) that signed a TLS sink's certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// TLS handshakes completed so far (0 for a plain sink).
    pub fn tls_handshakes(&self) -> usize {
        self.tls.as_ref().map_or(0, |t| t.handshakes.load(Ordering::SeqCst))
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<String> {
        self.messages
            .lock()
            .map(|m| m.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect())
            .unwrap_or_default()
    }
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` signed by it: the CA in PEM
/// and a rustls server configuration. ring, as lettre uses: with both rustls providers built
/// in, rustls cannot pick a default.
fn certificates() -> Result<(String, rustls::ServerConfig), String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let e = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "clinic test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = ca.self_signed(&ca_key).map_err(e)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(e)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(e)?;
    leaf.distinguished_name.push(DnType::CommonName, "test.local");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).map_err(e)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .map_err(|e| e.to_string())?;
    Ok((ca_pem, config))
}

/// One client connection of a TLS sink: the plain part of STARTTLS, the handshake, then the
/// decrypted bytes to and from the plain sink.
async fn relay(
    mut client: tokio::net::TcpStream,
    mode: SinkTls,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: Arc<AtomicUsize>,
    backend_port: u16,
) -> io::Result<()> {
    if mode == SinkTls::StartTls && !before_starttls(&mut client).await? {
        return Ok(());
    }
    let mut tls = acceptor.accept(client).await?;
    handshakes.fetch_add(1, Ordering::SeqCst);
    let mut backend = tokio::net::TcpStream::connect(("127.0.0.1", backend_port)).await?;
    if mode == SinkTls::StartTls {
        // The client had its greeting before STARTTLS and now sends EHLO: drop the plain
        // sink's greeting.
        read_line(&mut backend).await?;
    }
    tokio::io::copy_bidirectional(&mut tls, &mut backend).await?;
    Ok(())
}

/// The dialogue before STARTTLS: EHLO offers it, mail is refused until it. True when the
/// client asked for TLS, false when it quit.
async fn before_starttls(client: &mut tokio::net::TcpStream) -> io::Result<bool> {
    client.write_all(b"220 test.local ESMTP\r\n").await?;
    loop {
        let Some(line) = read_line(client).await? else {
            return Ok(false);
        };
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-test.local\r\n250 STARTTLS\r\n",
            "HELO" => b"250 test.local\r\n",
            "NOOP" | "RSET" => b"250 2.0.0 OK\r\n",
            "STARTTLS" => {
                client.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
                return Ok(true);
            }
            "QUIT" => {
                client.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(false);
            }
            _ => b"530 5.7.0 Must issue a STARTTLS command first\r\n",
        };
        client.write_all(answer).await?;
    }
}

/// One line, read a byte at a time so that nothing after it (a TLS handshake) is consumed;
/// None at the end of the stream.
async fn read_line(stream: &mut tokio::net::TcpStream) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        match stream.read_u8().await {
            Ok(b'\n') => return Ok(Some(String::from_utf8_lossy(&line).trim_end().to_owned())),
            Ok(b) if line.len() < 1000 => line.push(b),
            Ok(_) => return Err(io::Error::other("line longer than 1000 bytes")),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && line.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}
