//! The real `clinic` binary's `user` commands: create (a one-time set-password link, or a
//! password from stdin), list, disable, reset-password; the first-start banner's advice; and
//! the printed link opening the set-password page of a running server.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use clinic_store::testing::TestDatabase;
use common::{clinic, Server};

fn run(db: &TestDatabase, data: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = clinic(db, data)
        .env("CLINIC_PUBLIC_URL", "https://clinic.example")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clinic");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("clinic ran")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn user_commands_make_list_disable_and_reset_accounts() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");

    let created = run(
        &db,
        data.path(),
        &[
            "user",
            "create",
            "--email",
            "Ada@Clinic.Example",
            "--name",
            "Ada Byron",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let link = text(&created.stdout);
    assert_eq!(link.lines().count(), 1, "only the link on stdout: {link}");
    assert!(
        link.trim().starts_with("https://clinic.example/console/set-password/"),
        "{link}"
    );
    assert!(text(&created.stderr).contains("works once, for 24 hours"));

    // The address is unique whatever its case; nothing else is made.
    let twice = run(
        &db,
        data.path(),
        &[
            "user",
            "create",
            "--email",
            "ada@clinic.example",
            "--name",
            "Ada",
            "--role",
            "viewer",
        ],
        None,
    );
    assert!(!twice.status.success());
    assert!(
        text(&twice.stderr).contains("a user with this email exists"),
        "{}",
        text(&twice.stderr)
    );

    // With --password-stdin: the rules apply, and a refused password makes no user.
    let weak = run(
        &db,
        data.path(),
        &[
            "user",
            "create",
            "--email",
            "bo@clinic.example",
            "--name",
            "Bo Lee",
            "--role",
            "scheduler",
            "--password-stdin",
        ],
        Some("password1234\n"),
    );
    assert!(!weak.status.success());
    assert!(
        text(&weak.stderr).contains("password: choose a less common password"),
        "{}",
        text(&weak.stderr)
    );
    let bad_role = run(
        &db,
        data.path(),
        &[
            "user",
            "create",
            "--email",
            "cy@clinic.example",
            "--name",
            "Cy",
            "--role",
            "root",
        ],
        None,
    );
    assert!(text(&bad_role.stderr).contains("unknown role 'root'"));
    let made = run(
        &db,
        data.path(),
        &[
            "user",
            "create",
            "--email",
            "bo@clinic.example",
            "--name",
            "Bo Lee",
            "--role",
            "scheduler",
            "--password-stdin",
        ],
        Some("gravel lantern orbit tulip\n"),
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    assert!(made.stdout.is_empty(), "no link when the password was given");

    let list = text(&run(&db, data.path(), &["user", "list"], None).stdout);
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows[0].contains("admin") && rows[0].contains("not set") && rows[0].ends_with("Ada@clinic.example"),
        "{list}"
    );
    assert!(
        rows[1].contains("scheduler") && rows[1].contains(" set ") && rows[1].contains("active"),
        "{list}"
    );
    assert!(!list.contains("argon2"), "no hashes listed");

    let disabled = run(
        &db,
        data.path(),
        &["user", "disable", "--email", "BO@clinic.example"],
        None,
    );
    assert!(disabled.status.success(), "{}", text(&disabled.stderr));
    let list = text(&run(&db, data.path(), &["user", "list"], None).stdout);
    assert!(
        list.lines()
            .any(|l| l.contains("bo@clinic.example") && l.contains("disabled")),
        "{list}"
    );
    // A disabled account gets no set-password link.
    let refused = run(
        &db,
        data.path(),
        &["user", "reset-password", "--email", "bo@clinic.example"],
        None,
    );
    assert!(!refused.status.success());
    let unknown = run(
        &db,
        data.path(),
        &["user", "reset-password", "--email", "nobody@clinic.example"],
        None,
    );
    assert!(text(&unknown.stderr).contains("no user has the email nobody@clinic.example"));

    let reset = run(
        &db,
        data.path(),
        &["user", "reset-password", "--email", "ada@clinic.example"],
        None,
    );
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    let fresh = text(&reset.stdout);
    assert!(fresh.trim().starts_with("https://clinic.example/console/set-password/"));

    // The link works on the running server (the banner no longer asks for a first user).
    let mut server = Server::start(clinic(&db, data.path()).env("CLINIC_PUBLIC_URL", "https://clinic.example"));
    assert!(
        !server.banner.iter().any(|l| l.contains("No staff accounts yet")),
        "{:?}",
        server.banner
    );
    let path = fresh.trim().trim_start_matches("https://clinic.example");
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let mut page = agent.get(format!("{}{path}", server.base)).call().expect("page");
    assert_eq!(page.status(), 200);
    assert!(page
        .body_mut()
        .read_to_string()
        .expect("html")
        .contains("Ada@clinic.example"));
    assert!(server.terminate().success());
}

#[test]
fn the_first_start_says_how_to_make_the_first_admin() {
    let db = TestDatabase::new();
    let data = tempfile::tempdir().expect("data dir");
    let mut server = Server::start(clinic(&db, data.path()).env("CLINIC_PUBLIC_URL", "https://clinic.example"));
    let banner = server.banner.join("\n");
    assert!(banner.contains("No staff accounts yet"), "{banner}");
    assert!(
        banner.contains("clinic user create --email EMAIL --name \"NAME\" --role admin"),
        "{banner}"
    );
    assert!(banner.contains("https://clinic.example/console/"), "{banner}");
    assert!(server.terminate().success());
}
