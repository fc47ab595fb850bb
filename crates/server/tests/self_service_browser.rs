//! Patient self-service as a patient's phone shows it: the real `clinic` binary (no
//! scheduler, no SMTP, so emails are `.eml` files) writes a refill reminder; headless Chromium,
//! driven through ChromeDriver (W3C WebDriver) at 390×844, opens the link from that file, books
//! the first offered time, and lands on the visit's page; the API then shows the `refill`
//! appointment and `clinic reminders run-once` writes its confirmation. Screenshots of both
//! pages go to `$CLINIC_SCREENSHOT_DIR`, else `target/screenshots/self-service/` (under
//! `$CARGO_TARGET_DIR` when that is set).
//!
//! Chromium is found as `$CHROMIUM`, or `chromium` / `chromium-browser` on `PATH`, and
//! ChromeDriver as `$CHROMEDRIVER` or `chromedriver` on `PATH` (Debian: `chromium-driver`).
//! Without either the test says it was skipped and passes, unless `CLINIC_REQUIRE_CHROMIUM` is
//! set (CI sets it), in which case it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Duration as Days, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::America::Chicago;
use clinic_store::testing::TestDatabase;
use common::browser::{find_chromedriver, find_chromium, png_size, WebDriver};
use common::{clinic, Server};
use serde_json::{json, Value};

const ZONE: &str = "America/Chicago";
const CLINIC_NAME: &str = "Lakeside Pain Clinic";
const CLINIC_PHONE: &str = "+13125550100";
const NURSE: &str = "Nurse Kim Lo";
const PATIENT_EMAIL: &str = "ivy.jones@example.org";
/// An iPhone 12–15's viewport in CSS pixels, and the device pixel ratio of the screenshots.
const PHONE: (u32, u32) = (390, 844);
const PIXEL_RATIO: u32 = 2;

/// The clinic's settings shared by the server and every `clinic` command of the test.
fn configured(cmd: &mut Command) -> &mut Command {
    cmd.env("CLINIC_NAME", CLINIC_NAME)
        .env("CLINIC_PHONE", CLINIC_PHONE)
        .env("CLINIC_TIME_ZONE", ZONE)
}

/// JSON calls to the running server with the admin token.
struct Api {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(server: &Server) -> Self {
        Api {
            base: server.base.clone(),
            token: server.token.clone().expect("the admin token in the banner"),
            agent: ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build()),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>, expect: u16) -> Value {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => self.agent.put(&url).header("Authorization", &auth).send_json(b),
            (_, b) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(b.unwrap_or_else(|| json!({}))),
        };
        let mut res = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status().as_u16();
        let json: Value = res
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e})"));
        assert_eq!(status, expect, "{method} {path}: {json}");
        json
    }

    fn get(&self, path: &str) -> Value {
        self.call("GET", path, None, 200)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call("POST", path, Some(body), 201)
    }
}

fn run_once(db: &TestDatabase, data: &Path, public_url: &str) -> String {
    let out = configured(&mut clinic(db, data))
        .env("CLINIC_PUBLIC_URL", public_url)
        .args(["reminders", "run-once"])
        .output()
        .expect("run clinic reminders run-once");
    assert!(
        out.status.success(),
        "run-once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `.eml` files in the outbox folder, by name.
fn eml_files(outbox: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(outbox) {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().expect("a file name").to_string_lossy().into_owned()
}

/// Headers (unfolded, names lowercased) and body of one MIME entity (LF line ends).
fn split_entity(entity: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = entity.split_once("\n\n").unwrap_or((entity, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A parameter of a header value, such as `boundary` of a Content-Type.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Quoted-printable (RFC 2045 §6.7): soft line breaks joined, `=XX` decoded.
fn decode_quoted_printable(body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_end_matches([' ', '\t']);
        let (line, soft) = match line.strip_suffix('=') {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(byte.unwrap_or_else(|| panic!("a bad quoted-printable escape in {line:?}")));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        if !soft && lines.peek().is_some() {
            out.push(b'\n');
        }
    }
    out
}

/// The decoded `text/plain` part of an email (the first one, in a multipart tree).
fn text_plain(entity: &str) -> Option<String> {
    let (headers, body) = split_entity(entity);
    let content_type = header(&headers, "content-type").unwrap_or("text/plain");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let boundary = parameter(content_type, "boundary").expect("a multipart boundary");
        let delimiter = format!("--{boundary}");
        return body
            .split(&delimiter)
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .find_map(|part| text_plain(part.strip_prefix('\n').unwrap_or(part)));
    }
    if mime != "text/plain" {
        return None;
    }
    let encoding = header(&headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("a base64 text part")
        }
        _ => body.as_bytes().to_vec(),
    };
    Some(String::from_utf8(bytes).expect("the text part is UTF-8"))
}

/// An email file's headers and its plain text.
fn read_email(path: &Path) -> (Vec<(String, String)>, String) {
    let raw = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .replace("\r\n", "\n");
    let text = text_plain(&raw).unwrap_or_else(|| panic!("no text/plain part in {}:\n{raw}", path.display()));
    (split_entity(&raw).0, text)
}

/// The first URL in `text` that starts with `prefix`.
fn link_in(text: &str, prefix: &str) -> Option<String> {
    let i = text.find(prefix)?;
    let end = text[i..]
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | ')'))
        .map_or(text.len(), |j| i + j);
    Some(text[i..end].trim_end_matches(['.', ',']).to_owned())
}

/// `$CLINIC_SCREENSHOT_DIR`, else `target/screenshots/self-service` (the workspace's target,
/// or `$CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    let non_empty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty()).map(PathBuf::from);
    non_empty("CLINIC_SCREENSHOT_DIR").unwrap_or_else(|| {
        non_empty("CARGO_TARGET_DIR")
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join("screenshots/self-service")
    })
}

fn save_screenshot(dir: &Path, name: &str, png: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Checks the viewport is the phone's and nothing scrolls sideways; returns the screenshot.
fn phone_screenshot(browser: &WebDriver, page: &str) -> Vec<u8> {
    let widths = browser.execute("return [window.innerWidth, document.documentElement.scrollWidth];");
    assert_eq!(
        widths,
        json!([PHONE.0, PHONE.0]),
        "{page}: [viewport width, page width] at phone width"
    );
    let png = browser.screenshot();
    assert_eq!(
        png_size(&png),
        (PHONE.0 * PIXEL_RATIO, PHONE.1 * PIXEL_RATIO),
        "{page}: the screenshot is the phone's viewport"
    );
    png
}

/// A refill due a few days from now: a 20 mL pump with 18 mL usable at 1.44 mL a day reaches
/// its alarm in 12.5 days; the 7-day margin puts the due date 5 or 6 days ahead.
fn pump_due_soon(api: &Api, patient: &str, now: DateTime<Utc>) -> (String, NaiveDate) {
    let implanted = now.with_timezone(&Chicago).date_naive() - Days::days(60);
    let pump = api.post(
        "/api/v1/pumps",
        json!({"patient_id": patient, "model": "synchromed-ii-20", "serial_number": "NGP246810H",
               "implanted_on": implanted.to_string()}),
    );
    let pump_id = pump["id"].as_str().expect("pump id").to_owned();
    let at = (now - Days::minutes(10)).to_rfc3339();
    api.post(
        &format!("/api/v1/pumps/{pump_id}/programs"),
        json!({"effective_at": at, "kind": "continuous", "daily_dose": "36"}),
    );
    let filled = api.post(
        &format!("/api/v1/pumps/{pump_id}/fills"),
        json!({"filled_at": at, "drug": "morphine", "concentration": "25", "concentration_unit": "mg/mL",
               "volume_ml": "20", "residual_ml": "0", "clinician": "R. Alvarez, RN"}),
    );
    let forecast = &filled["forecast"];
    assert_eq!(forecast["binding"], "volume", "{forecast}");
    let due: NaiveDate = forecast["due_date"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("a due date in {forecast}"));
    (pump_id, due)
}

#[test]
fn a_patient_books_the_refill_from_the_email_link_on_a_phone() {
    let (Some(chromium), Some(chromedriver)) = (find_chromium(), find_chromedriver()) else {
        assert!(
            std::env::var_os("CLINIC_REQUIRE_CHROMIUM").is_none(),
            "CLINIC_REQUIRE_CHROMIUM is set but chromium or chromedriver is not installed \
             (apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER)"
        );
        eprintln!(
            "self_service_browser: browser check skipped because chromium or chromedriver is absent \
             (install chromium and chromium-driver, or set CHROMIUM and CHROMEDRIVER)"
        );
        return;
    };
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let outbox = data.path().join("outbox");
    let mut server = Server::start_with(configured(&mut clinic(&db, data.path())), &["--no-scheduler"]);
    let base = server.base.clone();
    let api = Api::new(&server);
    let now = Utc::now();

    // A nurse who works every day, so the days before the due date have free times whatever
    // the weekday; a patient with email consent; her pump, due in five or six days.
    let hours: Vec<Value> = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .iter()
    .map(|d| json!({"weekday": d, "start": "07:00", "end": "19:00"}))
    .collect();
    let nurse = api.post(
        "/api/v1/providers",
        json!({"name": NURSE, "role": "pump nurse", "time_zone": ZONE, "hours": hours}),
    );
    let patient = api.post(
        "/api/v1/patients",
        json!({"given_name": "Ivy", "family_name": "Jones", "email": PATIENT_EMAIL,
               "email_consent": true, "time_zone": ZONE}),
    );
    let patient_id = patient["id"].as_str().expect("patient id").to_owned();
    let (pump_id, due) = pump_due_soon(&api, &patient_id, now);
    let today = now.with_timezone(&Chicago).date_naive();
    let days_ahead = (due - today).num_days();
    assert!((2..=14).contains(&days_ahead), "due {due}, today {today}");

    // The refill reminder goes out today: its only offset is the days left, sent from
    // midnight, and quiet hours are a single hour half a day away from now.
    let settings = api.get("/api/v1/reminders/settings");
    let quiet_from = (now.with_timezone(&Chicago).hour() + 12) % 24;
    let mut changed = settings.clone();
    changed["refill_offsets_days"] = json!([days_ahead]);
    changed["refill_send_at"] = json!("00:00");
    changed["quiet_hours_start"] = json!(format!("{quiet_from:02}:00"));
    changed["quiet_hours_end"] = json!(format!("{:02}:00", (quiet_from + 1) % 24));
    api.call("PUT", "/api/v1/reminders/settings", Some(changed), 200);

    // `clinic reminders run-once` plans the reminder and writes it as an `.eml` file, with
    // links to this server.
    assert!(eml_files(&outbox).is_empty(), "no email before run-once");
    let sent = run_once(&db, data.path(), &base);
    assert!(sent.contains("sent 1,"), "{sent}");
    let reminders = eml_files(&outbox);
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    let (headers, text) = read_email(&reminders[0]);
    assert!(
        header(&headers, "to").is_some_and(|to| to.contains(PATIENT_EMAIL)),
        "{headers:?}"
    );
    let book_prefix = format!("{base}/my/book/");
    let link = link_in(&text, &book_prefix).unwrap_or_else(|| panic!("a {book_prefix}… link in:\n{text}"));
    let outbox_rows = api.get(&format!(
        "/api/v1/reminders?patient_id={patient_id}&kind=refill_reminder"
    ));
    assert_eq!(
        outbox_rows["items"][0]["provider_message_id"],
        json!(file_name(&reminders[0])),
        "the file is the sent refill reminder: {outbox_rows}"
    );

    // The patient opens the link on a phone.
    let browser = WebDriver::phone(&chromedriver, &chromium, PHONE.0, PHONE.1, f64::from(PIXEL_RATIO));
    browser.navigate(&link);
    let body = browser.find("body");
    let page = browser.text(&body);
    assert!(page.contains("Book your next visit"), "{page}");
    let due_text = due.format("%A, %B %-d, %Y").to_string();
    assert!(page.contains(&due_text), "the page says to come by {due_text}:\n{page}");
    assert!(
        browser.count("input[type=radio][name=slot]") > 1,
        "several times are offered:\n{page}"
    );
    let shots = screenshot_dir();
    let book_png = save_screenshot(&shots, "phone-book.png", &phone_screenshot(&browser, "booking page"));

    // The first offered time, then the button.
    let first = browser.find("input[type=radio][name=slot]");
    let value = browser.attribute(&first, "value").expect("the radio has a value");
    let (slot_provider, slot_unix) = value
        .split_once('_')
        .unwrap_or_else(|| panic!("a slot value <provider>_<unix seconds>: {value}"));
    assert_eq!(slot_provider, nurse["id"].as_str().expect("nurse id"));
    let start = slot_unix
        .parse::<i64>()
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_else(|| panic!("unix seconds in {value}"));
    assert!(
        start > now && start.with_timezone(&Chicago).date_naive() <= due,
        "{start}"
    );
    browser.click(&first);
    assert!(browser.is_selected(&first), "the first time is chosen");
    let submit = browser.find("form button[type=submit]");
    assert_eq!(browser.text(&submit), "Book this time");
    browser.click(&submit);

    // The form posts, answers 303, and the browser shows the new visit.
    let visit_prefix = format!("{base}/my/appointments/");
    let landed = browser.wait_for_url(Duration::from_secs(30), |url| url.starts_with(&visit_prefix));
    assert!(landed.ends_with("?done=booked"), "{landed}");
    let body = browser.find("body");
    let page = browser.text(&body);
    assert!(
        page.contains("Your visit is booked. We have emailed you the details."),
        "{page}"
    );
    let when = start
        .with_timezone(&Chicago)
        .format("%A, %B %-d, %Y at %-I:%M %p %Z")
        .to_string();
    assert!(
        page.contains(&format!("{when} ({ZONE})")),
        "the visit's time {when}:\n{page}"
    );
    assert!(page.contains(NURSE), "the nurse's name:\n{page}");
    assert!(page.contains("Booked"), "the visit's status:\n{page}");
    let booked_png = save_screenshot(&shots, "phone-booked.png", &phone_screenshot(&browser, "visit page"));
    drop(browser);

    // Staff see the refill in the API.
    let appointments = api.get(&format!("/api/v1/appointments?patient_id={patient_id}"));
    let items = appointments["items"].as_array().expect("appointment items");
    assert_eq!(items.len(), 1, "{appointments}");
    let visit = &items[0];
    assert_eq!(visit["appointment_type"], "refill", "{visit}");
    assert_eq!(visit["status"], "booked", "{visit}");
    assert_eq!(visit["provider_id"], nurse["id"], "{visit}");
    let booked_start: DateTime<Utc> = visit["start"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a start in {visit}"));
    assert_eq!(booked_start, start, "the time chosen on the page");
    let worklist = api.get("/api/v1/worklists/refills?within_days=30");
    let entry = worklist["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["pump_id"] == json!(pump_id)))
        .unwrap_or_else(|| panic!("the pump on the worklist: {worklist}"));
    assert_eq!(entry["refill_appointment"]["id"], visit["id"], "{entry}");

    // The confirmation email the page promised: written by the next run-once.
    let sent = run_once(&db, data.path(), &base);
    assert!(sent.contains("sent 1,"), "{sent}");
    let after = eml_files(&outbox);
    let new: Vec<&PathBuf> = after.iter().filter(|p| !reminders.contains(p)).collect();
    assert_eq!(new.len(), 1, "one new email: {after:?}");
    let (headers, text) = read_email(new[0]);
    assert!(
        header(&headers, "to").is_some_and(|to| to.contains(PATIENT_EMAIL)),
        "{headers:?}"
    );
    assert!(text.contains(&when), "the confirmation names the time {when}:\n{text}");
    assert!(
        link_in(&text, &visit_prefix).is_some(),
        "the confirmation links to the visit's page:\n{text}"
    );
    let confirmations = api.get(&format!(
        "/api/v1/reminders?patient_id={patient_id}&kind=appointment_confirmation"
    ));
    let row = &confirmations["items"][0];
    assert_eq!(row["subject_id"], visit["id"], "{confirmations}");
    assert_eq!(row["state"], "sent", "{row}");
    assert_eq!(row["provider_message_id"], json!(file_name(new[0])), "{row}");

    assert!(server.terminate().success());
    println!(
        "self_service_browser: screenshots at {} and {}",
        book_png.display(),
        booked_png.display()
    );
}

#[test]
fn the_email_reader_decodes_a_wrapped_quoted_printable_link() {
    let raw = "To: Ivy <ivy@example.org>\nContent-Type: multipart/alternative;\n boundary=\"b0\"\n\n\
               --b0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
               Choose a time online: http://127.0.0.1:8080/my/book/AgGi=\nUyEy-w_Xz\n\
               Stop: http://127.0.0.1:8080/email/stop?t=3DMDFh=\nMjUz\nCaf=C3=A9\n\n\
               --b0\nContent-Type: text/html; charset=utf-8\n\n<p>html</p>\n--b0--\n";
    let text = text_plain(raw).expect("the text part");
    assert_eq!(
        link_in(&text, "http://127.0.0.1:8080/my/book/").as_deref(),
        Some("http://127.0.0.1:8080/my/book/AgGiUyEy-w_Xz")
    );
    assert!(text.contains("stop?t=MDFhMjUz\nCafé\n"), "{text:?}");
    let (headers, _) = split_entity(raw);
    assert_eq!(
        header(&headers, "content-type"),
        Some("multipart/alternative; boundary=\"b0\"")
    );
}
