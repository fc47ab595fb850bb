//! The public article pages as a reader's browser shows them: the real `clinic` binary on a
//! fresh database (with its seed content), rendered by headless Chromium (`--dump-dom`).
//!
//! Chromium is found as `$CHROMIUM`, or `chromium` / `chromium-browser` on `PATH`. Without it
//! the test says it was skipped and passes, unless `CLINIC_REQUIRE_CHROMIUM` is set (CI sets
//! it), in which case it fails.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clinic_store::testing::TestDatabase;
use common::browser::find_chromium;
use common::{clinic, Server};

const CLINIC_NAME: &str = "Lakeside Pain Clinic";
const CLINIC_PHONE: &str = "+13125550100";
/// How the pages show `CLINIC_PHONE`.
const PHONE_DISPLAY: &str = "+1 312-555-0100";
const ARTICLE_SLUG: &str = "intrathecal-pump-therapy";
const ARTICLE_TITLE: &str = "Intrathecal pump therapy: what it is and what to expect";

/// The DOM after Chromium loaded and rendered `url`, serialised as HTML.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let scratch = tempfile::tempdir().expect("chromium scratch dir");
    let profile = scratch.path().join("profile");
    let out_path = scratch.path().join("dom.html");
    let err_path = scratch.path().join("stderr.txt");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("dom file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within 90 s on {url}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = std::fs::read_to_string(&out_path).expect("read dom");
    assert!(
        status.success() && dom.contains("<html"),
        "chromium --dump-dom {url} failed ({status}); stderr:\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    dom
}

/// Text with tags removed, common entities decoded and whitespace collapsed.
fn text_of(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every `<tag …>…</tag>` element (not nested in itself) as (opening tag, inner HTML).
fn elements<'a>(html: &'a str, tag: &str) -> Vec<(&'a str, &'a str)> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&open).map(|i| i + from) {
        let after = i + open.len();
        let boundary = lower[after..].chars().next();
        if !matches!(boundary, Some(' ' | '>' | '/' | '\n' | '\t')) {
            from = after;
            continue;
        }
        let Some(start) = lower[after..].find('>').map(|j| after + j + 1) else {
            break;
        };
        let Some(end) = lower[start..].find(&close).map(|j| start + j) else {
            break;
        };
        found.push((&html[i..start], &html[start..end]));
        from = end + close.len();
    }
    found
}

/// The value of `attr` in an opening tag such as `<a href="/x">`.
fn attribute<'a>(open_tag: &'a str, attr: &str) -> Option<&'a str> {
    let key = format!(" {attr}=\"");
    let i = open_tag.find(&key)? + key.len();
    let len = open_tag[i..].find('"')?;
    Some(&open_tag[i..i + len])
}

/// (href, text) of every link.
fn links(html: &str) -> Vec<(String, String)> {
    elements(html, "a")
        .into_iter()
        .filter_map(|(open, inner)| attribute(open, "href").map(|href| (href.replace("&amp;", "&"), text_of(inner))))
        .collect()
}

/// The `<body>` of a document.
fn body(dom: &str) -> &str {
    elements(dom, "body")
        .first()
        .map(|(_, inner)| *inner)
        .expect("a <body>")
}

#[test]
fn article_pages_render_for_a_reader_in_a_real_browser() {
    let Some(chromium) = find_chromium() else {
        assert!(
            std::env::var_os("CLINIC_REQUIRE_CHROMIUM").is_none(),
            "CLINIC_REQUIRE_CHROMIUM is set but chromium is not installed (set CHROMIUM or put chromium on PATH)"
        );
        eprintln!(
            "pages_browser: browser check skipped because chromium is absent \
             (install chromium or set CHROMIUM=/path/to/chromium)"
        );
        return;
    };
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let server = Server::start(
        clinic(&db, data.path())
            .env("CLINIC_NAME", CLINIC_NAME)
            .env("CLINIC_PHONE", CLINIC_PHONE),
    );
    let base = &server.base;

    // The seeded article, as a reader sees it.
    let dom = dump_dom(&chromium, &format!("{base}/articles/{ARTICLE_SLUG}"));
    let html_tag = elements(&dom, "html")
        .first()
        .map(|(open, _)| *open)
        .expect("an <html> element");
    assert_eq!(attribute(html_tag, "lang"), Some("en"), "{html_tag}");
    assert!(
        !dom.to_ascii_lowercase().contains("<script"),
        "the page has a <script>:\n{dom}"
    );
    let page = body(&dom);
    let h1: Vec<String> = elements(page, "h1")
        .into_iter()
        .map(|(_, inner)| text_of(inner))
        .collect();
    assert_eq!(h1, [ARTICLE_TITLE], "exactly one <h1>, the article's title");
    let h2 = elements(page, "h2");
    assert!(h2.len() >= 3, "at least three <h2> sections, got {}", h2.len());
    let text = text_of(page);
    assert!(text.contains(CLINIC_NAME), "the clinic's name is shown:\n{text}");
    assert!(text.contains(PHONE_DISPLAY), "the clinic's number is shown:\n{text}");
    let page_links = links(page);
    let tel = format!("tel:{CLINIC_PHONE}");
    assert!(
        page_links
            .iter()
            .any(|(href, label)| *href == tel && label.contains(PHONE_DISPLAY)),
        "a tel: link to {CLINIC_PHONE} showing {PHONE_DISPLAY}: {page_links:?}"
    );

    // The list of articles links to it.
    let index = dump_dom(&chromium, &format!("{base}/articles"));
    let index_links = links(body(&index));
    let article_path = format!("/articles/{ARTICLE_SLUG}");
    assert!(
        index_links
            .iter()
            .any(|(href, label)| *href == article_path && label == ARTICLE_TITLE),
        "/articles links to the article: {index_links:?}"
    );

    // An unknown slug is a readable 404 page.
    let missing_url = format!("{base}/articles/this-does-not-exist");
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let status = agent
        .get(missing_url.as_str())
        .call()
        .expect("GET the missing page")
        .status();
    assert_eq!(status, 404);
    let missing = dump_dom(&chromium, &missing_url);
    let missing_text = text_of(body(&missing));
    assert!(missing_text.contains("Page not found"), "{missing_text}");
    assert!(missing_text.contains(CLINIC_NAME), "{missing_text}");
    assert!(!missing.to_ascii_lowercase().contains("<script"));
}
