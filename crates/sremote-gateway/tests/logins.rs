//! Logins over time on a running `sremote-gateway`: password guessing slowed per user name,
//! and a users file that changes while the gateway runs.
mod common;

use std::time::Duration;

use common::{Gateway, MACHINE, Opts, PASSWORD, USER};
use sremote_core::{Connector, ConnectorErrorKind as Kind, RemoteCommand};
use sremote_rest::NewtConnector;

/// Password guessing is slowed down per user name: after the free failures each attempt
/// waits (429 with Retry-After, the password not even checked), other users are not
/// affected, and after the wait the right password works and clears the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_delayed_per_user_then_let_through() {
    let gw = Gateway::start(Opts {
        login_throttle: (2, 2.0),
        ..Opts::default()
    });
    let attempt = |pw: &str| {
        let form = format!("username={USER}&password={}", pw.replace(' ', "+"));
        gw.raw(
            "POST",
            "/newt/auth",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
    };
    // Two free failures; the third imposes 1 s, and after it the fourth 2 s (the most
    // this gateway allows): a window wide enough for the checks below on a busy machine.
    for _ in 0..3 {
        assert_eq!(attempt("wrong").0, 401);
    }
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(attempt("wrong").0, 401);
    // Now even the right password waits: 429, and the password is not checked.
    let (status, body) = attempt(PASSWORD);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("try again in 2 s"), "{body}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let form = format!("username={USER}&password=x");
    std::io::Write::write_fmt(
        &mut s,
        format_args!(
            "POST /newt/auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
    .unwrap();
    let mut head = String::new();
    std::io::Read::read_to_string(&mut s, &mut head).unwrap();
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("\r\nretry-after: 2\r\n") || head.contains("\r\nretry-after: 1\r\n"),
        "{head}"
    );
    // The typed client error says what happened.
    let err = NewtConnector::login(&gw.url, MACHINE, USER, PASSWORD)
        .await
        .expect_err("still delayed");
    assert_eq!(err.kind, Kind::Auth, "{err}");
    assert!(err.to_string().contains("too many failed logins"), "{err}");
    // Another user name is not delayed (it just does not exist: 401).
    let (status, _) = gw.raw(
        "POST",
        "/newt/auth",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"username=mallory&password=x",
    );
    assert_eq!(status, 401);
    // After the wait the right password works, and the count starts again.
    std::thread::sleep(Duration::from_millis(2100));
    NewtConnector::login(&gw.url, MACHINE, USER, PASSWORD)
        .await
        .expect("let through after the delay");
    assert_eq!(attempt("wrong").0, 401, "count cleared by the success");
    assert!(
        gw.log_with("too many failed logins")
            .contains("too many failed logins")
    );
    assert!(!gw.log().contains(PASSWORD), "no password in the log");
}

/// The users file is re-read while the gateway runs: a new user can log in, a broken file
/// keeps the previous users (and says so in the log), a removed user loses their session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_file_changes_apply_without_a_restart() {
    let gw = Gateway::start(Opts::default());
    let users = gw.dir.path().join("users");
    let alice = NewtConnector::login(&gw.url, MACHINE, USER, PASSWORD)
        .await
        .unwrap();
    assert!(
        alice
            .exec(&RemoteCommand::new("true"))
            .await
            .unwrap()
            .success()
    );
    sremote_gateway::users::add_user(&users, "bob", "bob's password").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    NewtConnector::login(&gw.url, MACHINE, "bob", "bob's password")
        .await
        .expect("a user added while running can log in");
    // A broken file: the previous users stay.
    let good = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, format!("{good}this line is broken\n")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(
        alice
            .exec(&RemoteCommand::new("true"))
            .await
            .unwrap()
            .success()
    );
    assert!(
        gw.log_with("cannot be used").contains("cannot be used"),
        "{}",
        gw.log()
    );
    // Alice removed: her session stops working, and so does her password.
    let without: String = good
        .lines()
        .filter(|l| !l.starts_with(&format!("{USER}:")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&users, without).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let err = alice
        .exec(&RemoteCommand::new("true"))
        .await
        .expect_err("removed user");
    assert_eq!(err.kind, Kind::Auth, "{err}");
    assert!(
        NewtConnector::login(&gw.url, MACHINE, USER, PASSWORD)
            .await
            .is_err()
    );
    NewtConnector::login(&gw.url, MACHINE, "bob", "bob's password")
        .await
        .expect("bob stays");
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// 200 concurrent wrong guesses for one user: each attempt is counted before its password
/// is checked, so only the free attempts (and the one that starts the delay) are checked;
/// every other guess is answered 429 without an argon2 verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_guesses_are_throttled_like_sequential_ones() {
    let gw = std::sync::Arc::new(Gateway::start(Opts::default()));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let gw = gw.clone();
            std::thread::spawn(move || {
                let form = format!("username={USER}&password=guess{i}");
                gw.raw("POST", "/newt/auth", &[FORM], form.as_bytes()).0
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, 200, "{statuses:?}");
    assert!(
        checked <= 6,
        "{checked} guesses were checked (5 free + 1 allowed): {statuses:?}"
    );
    let form = format!("username={USER}&password={}", PASSWORD.replace(' ', "+"));
    let (status, _) = gw.raw("POST", "/newt/auth", &[FORM], form.as_bytes());
    assert_eq!(status, 429, "the right password waits too");
}

/// A changed password ends the sessions opened with the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_users_sessions() {
    let gw = Gateway::start(Opts::default());
    let sid = gw.raw_login();
    let cookie = format!("newt_sessionid={sid}");
    let (status, body) = gw.raw("GET", "/newt/auth", &[("Cookie", &cookie)], b"");
    assert!(status == 200 && body.contains("\"auth\":true"), "{body}");
    let users = gw.dir.path().join("users");
    sremote_gateway::users::add_user(&users, USER, "a brand new password").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (_, body) = gw.raw("GET", "/newt/auth", &[("Cookie", &cookie)], b"");
    assert!(body.contains("\"auth\":false"), "{body}");
    let (status, _) = gw.raw(
        "POST",
        "/newt/command/testhost",
        &[("Cookie", &cookie), FORM],
        b"executable=true",
    );
    assert_eq!(status, 401, "the old session is over");
    NewtConnector::login(&gw.url, MACHINE, USER, "a brand new password")
        .await
        .expect("the new password works");
}

/// A password typed into the user-name field is not written to the log; known user names
/// still are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_user_name_field_is_never_logged() {
    let gw = Gateway::start(Opts::default());
    let typed = "Tr0ub4dor-and-3-typed-in-the-wrong-field";
    let form = format!("username={typed}&password=x");
    assert_eq!(
        gw.raw("POST", "/newt/auth", &[FORM], form.as_bytes()).0,
        401
    );
    let form = format!("username={USER}&password=x");
    assert_eq!(
        gw.raw("POST", "/newt/auth", &[FORM], form.as_bytes()).0,
        401
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = gw.log();
    assert!(!log.contains(typed), "{log}");
    assert!(log.contains("unknown user name"), "{log}");
    assert!(
        log.contains(&format!("login refused for user \"{USER}\"")),
        "{log}"
    );
}

/// The logout cookie removes the login cookie: same name and the same `Path`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_cookie_uses_the_login_cookies_path() {
    let gw = Gateway::start(Opts::default());
    let form = format!("username={USER}&password={}", PASSWORD.replace(' ', "+"));
    let t = Duration::from_secs(30);
    let (status, head, body) = gw.raw_full("POST", "/newt/auth", &[FORM], form.as_bytes(), t);
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("set-cookie: newt_sessionid="), "{head}");
    assert!(head.contains("; path=/newt;"), "{head}");
    let sid: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cookie = format!("newt_sessionid={}", sid["newt_sessionid"].as_str().unwrap());
    let (status, head, _) = gw.raw_full("DELETE", "/newt/auth", &[("Cookie", &cookie)], b"", t);
    assert_eq!(status, 200);
    assert!(
        head.contains("set-cookie: newt_sessionid=; path=/newt;") && head.contains("max-age=0"),
        "{head}"
    );
}
