//! The real `clinic` binary for end-to-end tests: a command on a fresh database and data
//! folder, and a running server that is killed and reaped when dropped (also when an
//! assertion fails).
#![allow(dead_code)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clinic_store::testing::TestDatabase;

pub const BIN: &str = env!("CARGO_BIN_EXE_clinic");

/// `clinic` with a clean environment pointed at `db`, on a free port.
pub fn clinic(db: &TestDatabase, data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url_string())
        .env("CLINIC_DATA_DIR", data_dir)
        .env("CLINIC_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    cmd
}

/// A running `clinic serve`.
pub struct Server {
    pub child: Child,
    /// Every banner line up to `Listening on`.
    pub banner: Vec<String>,
    /// The admin token printed on the first start of an empty database.
    pub token: Option<String>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Server {
    /// Runs `cmd serve` and reads its banner until the `Listening on` line.
    pub fn start(cmd: &mut Command) -> Self {
        Self::start_with(cmd, &[])
    }

    /// Runs `cmd serve ARGS…` and reads its banner until the `Listening on` line.
    pub fn start_with(cmd: &mut Command, args: &[&str]) -> Self {
        Self::start_logging(cmd, args, Stdio::inherit())
    }

    /// Like [`start_with`](Self::start_with), with the server's logs (stderr) going to `logs`.
    pub fn start_logging(cmd: &mut Command, args: &[&str], logs: Stdio) -> Self {
        let child = cmd
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(logs)
            .spawn()
            .expect("spawn clinic");
        let mut server = Server {
            child,
            banner: Vec::new(),
            token: None,
            base: String::new(),
        };
        let stdout = server.child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while server.base.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("clinic serve printed its address");
            let trimmed = line.trim();
            if trimmed.starts_with("clinic_") {
                server.token = Some(trimmed.to_owned());
            }
            if let Some(addr) = trimmed.strip_prefix("Listening on ") {
                server.base = addr.to_owned();
            }
            server.banner.push(line);
        }
        server
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait for clinic")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
