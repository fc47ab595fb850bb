//! Real browsers for end-to-end tests: finding Chromium and ChromeDriver, and a small W3C
//! WebDriver client over HTTP (ureq) that ends its session and ChromeDriver when dropped,
//! also when an assertion fails.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// An executable file at `path`, or a file of that name in a `PATH` folder.
pub fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `$VARIABLE` (which must then name a program), else the first of `programs` on `PATH`.
fn find(variable: &str, programs: &[&str]) -> Option<PathBuf> {
    match std::env::var(variable) {
        Ok(named) if !named.trim().is_empty() => {
            let found = resolve(named.trim());
            assert!(
                found.is_some(),
                "{variable}={named} is neither a file nor a program on PATH"
            );
            found
        }
        _ => programs.iter().copied().find_map(resolve),
    }
}

/// `$CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    find("CHROMIUM", &["chromium", "chromium-browser"])
}

/// `$CHROMEDRIVER`, else `chromedriver` on `PATH` (Debian's `chromium-driver` package).
pub fn find_chromedriver() -> Option<PathBuf> {
    find("CHROMEDRIVER", &["chromedriver"])
}

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running ChromeDriver with one headless Chromium session. Dropping it deletes the
/// session and kills ChromeDriver.
pub struct WebDriver {
    child: Child,
    base: String,
    session: Option<String>,
    agent: ureq::Agent,
    log: PathBuf,
    _scratch: tempfile::TempDir,
}

impl WebDriver {
    /// Starts `chromedriver` on a free port and opens a session of `chromium` emulating a
    /// phone `width`×`height` CSS pixels at `pixel_ratio`.
    pub fn phone(chromedriver: &Path, chromium: &Path, width: u32, height: u32, pixel_ratio: f64) -> Self {
        let scratch = tempfile::tempdir().expect("chromedriver scratch dir");
        let log = scratch.path().join("chromedriver.log");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("chromedriver log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(120)))
                .build(),
        );
        let profile = scratch.path().join("profile");
        let mut driver = WebDriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            agent,
            log,
            _scratch: scratch,
        };
        driver.wait_until_ready();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "mobileEmulation": {"deviceMetrics": {
                    "width": width, "height": height, "pixelRatio": pixel_ratio, "mobile": true, "touch": true,
                }},
            },
        }}});
        let created = driver.request("POST", "/session", Some(capabilities));
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a session id in {created}"))
            .to_owned();
        driver.session = Some(id);
        driver
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for chromedriver") {
                panic!("chromedriver exited ({status}):\n{}", self.log_text());
            }
            let ready = self
                .agent
                .get(format!("{}/status", self.base))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true));
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within 30 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One WebDriver command; its `value`. A WebDriver error fails the test with its message.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self.agent.post(&url).send_json(body.unwrap_or_else(|| json!({}))),
        };
        let mut res = result.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = res.status();
        let answer: Value = res
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: not JSON ({e})"));
        assert!(
            status.is_success(),
            "WebDriver {method} {path} answered {status}: {}",
            answer["value"]
        );
        answer["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        let id = self.session.as_deref().expect("an open WebDriver session");
        format!("/session/{id}{rest}")
    }

    fn command(&self, method: &str, rest: &str, body: Option<Value>) -> Value {
        self.request(method, &self.session_path(rest), body)
    }

    /// Loads `url` and waits for the page to load.
    pub fn navigate(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.command("GET", "/url", None)
            .as_str()
            .expect("the URL is a string")
            .to_owned()
    }

    /// The first element matching a CSS selector (fails when there is none).
    pub fn find(&self, css: &str) -> String {
        let found = self.command("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("an element reference for {css}: {found}"))
            .to_owned()
    }

    /// How many elements match a CSS selector.
    pub fn count(&self, css: &str) -> usize {
        let found = self.command(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found.as_array().map_or(0, Vec::len)
    }

    pub fn click(&self, element: &str) {
        self.command("POST", &format!("/element/{element}/click"), Some(json!({})));
    }

    pub fn is_selected(&self, element: &str) -> bool {
        self.command("GET", &format!("/element/{element}/selected"), None) == json!(true)
    }

    pub fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.command("GET", &format!("/element/{element}/attribute/{name}"), None)
            .as_str()
            .map(str::to_owned)
    }

    /// The rendered text of an element, as a reader sees it.
    pub fn text(&self, element: &str) -> String {
        self.command("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .expect("element text is a string")
            .to_owned()
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.command("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 screenshot"))
            .expect("the screenshot is base64")
    }

    /// Polls until `done` holds for the current URL, for at most `limit`.
    pub fn wait_for_url(&self, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let url = self.current_url();
            if done(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "still on {url} after {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            let _ = self.agent.delete(format!("{}/session/{id}", self.base)).call();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (width, height) of a PNG, read from its header.
pub fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG ({} bytes)",
        png.len()
    );
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (be(16), be(20))
}
