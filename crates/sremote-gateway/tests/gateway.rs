//! `sremote-gateway` and `NewtConnector` end to end: authentication, sessions, confinement,
//! limits, TLS, concurrency and the log. Every test starts the real binary on loopback.
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Gateway, MACHINE, Opts, PASSWORD, USER};
use sremote_core::{Connector, ConnectorErrorKind as Kind, Dest, RemoteCommand, Source};
use sremote_rest::NewtConnector;

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

async fn pull_text(c: &impl Connector, path: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    c.pull(path, Dest::file(&local)).await.unwrap();
    std::fs::read_to_string(local).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_fast_and_refuses_plain_http_off_loopback() {
    let gw = Gateway::start(Opts::default());
    assert!(
        gw.startup < Duration::from_secs(1),
        "startup took {:?}",
        gw.startup
    );
    eprintln!("gateway startup: {:?}", gw.startup);
    assert!(
        gw.log().contains("WARNING") && gw.log().contains("PLAIN HTTP"),
        "loud warning:\n{}",
        gw.log()
    );
    let cfg = gw.dir.path().join("public.toml");
    std::fs::write(
        &cfg,
        "listen = \"0.0.0.0:0\"\nusers_file = \"users\"\nroots = [\"/tmp\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sremote-gateway"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_is_401_and_typed_auth() {
    let gw = Gateway::start(Opts::default());
    for (user, pw) in [(USER, "wrong password"), ("mallory", PASSWORD), (USER, "")] {
        let err = NewtConnector::login(&gw.url, MACHINE, user, pw)
            .await
            .expect_err("must fail");
        assert_eq!(err.kind, Kind::Auth, "{err}");
    }
    let (status, body) = gw.raw(
        "POST",
        "/newt/auth",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"username=alice&password=nope",
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"auth\":false"), "{body}");
    let (status, _) = gw.raw("POST", "/newt/command/testhost", &[], b"executable=id");
    assert_eq!(status, 401, "no session, no command");
    let forged = NewtConnector::with_session(&gw.url, MACHINE, "forged-session-id").unwrap();
    let err = forged
        .exec(&RemoteCommand::new("true"))
        .await
        .expect_err("forged session");
    assert_eq!(err.kind, Kind::Auth, "{err}");
    assert!(err.hint.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_is_renewed_once_transparently() {
    let gw = Gateway::start(Opts {
        session_secs: 1,
        ..Opts::default()
    });
    let c = gw.login().await;
    assert!(c.exec(&RemoteCommand::new("true")).await.unwrap().success());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let out = c
        .exec(&RemoteCommand::new("echo").arg("after expiry"))
        .await
        .expect("renewed transparently");
    assert_eq!(out.stdout, b"after expiry\n");
    assert_eq!(count(&gw.log(), "POST /newt/auth 200"), 2, "{}", gw.log());
    // Many requests hitting the expired session at once renew it once.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let c = std::sync::Arc::new(c);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(
                async move { c.exec(&RemoteCommand::new("echo").arg(i.to_string())).await },
            )
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().success());
    }
    assert_eq!(count(&gw.log(), "POST /newt/auth 200"), 3, "{}", gw.log());
    // Without a password an expired session is a typed Auth error.
    let sid = gw.raw_login();
    let s = NewtConnector::with_session(&gw.url, MACHINE, &sid).unwrap();
    assert!(s.exec(&RemoteCommand::new("true")).await.unwrap().success());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let err = s
        .exec(&RemoteCommand::new("true"))
        .await
        .expect_err("expired");
    assert_eq!(err.kind, Kind::Auth, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_logout() {
    let gw = Gateway::start(Opts {
        token: true,
        ..Opts::default()
    });
    let token = gw.token.clone().unwrap();
    let c = NewtConnector::with_session(&gw.url, MACHINE, &token).unwrap();
    let out = c
        .exec(&RemoteCommand::new("echo").arg("by token"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"by token\n");
    let bearer = format!("Bearer {token}");
    let (status, body) = gw.raw("GET", "/newt/auth", &[("Authorization", &bearer)], b"");
    assert_eq!(status, 200);
    assert!(
        body.contains("\"auth\":true") && body.contains(USER),
        "{body}"
    );
    let (status, _) = gw.raw(
        "GET",
        "/newt/auth",
        &[("Authorization", "Bearer wrong")],
        b"",
    );
    assert_eq!(status, 200, "GET /auth reports, it does not refuse");
    let (status, _) = gw.raw(
        "POST",
        "/newt/command/testhost",
        &[("Authorization", "Bearer wrong")],
        b"executable=id",
    );
    assert_eq!(status, 401);
    // Logging out ends the session on the server.
    let sid = gw.raw_login();
    let s = NewtConnector::with_session(&gw.url, MACHINE, &sid).unwrap();
    s.logout().await.unwrap();
    assert_eq!(
        s.exec(&RemoteCommand::new("true"))
            .await
            .expect_err("logged out")
            .kind,
        Kind::Auth
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_attempts_are_refused() {
    let gw = Gateway::start(Opts::default());
    let secret = gw.outside.join("secret");
    std::fs::write(&secret, "top secret").unwrap();
    std::os::unix::fs::symlink(&gw.outside, gw.home.join("link")).unwrap();
    let sid = gw.raw_login();
    let cookie = format!("newt_sessionid={sid}");
    let home = gw.home.display().to_string();
    let outside = gw.outside.display().to_string();
    let attempts = [
        format!("{home}/../outside/secret"),
        format!("{home}/%2e%2e/outside/secret"),
        format!("{home}/%2E%2E/outside/secret"),
        format!("{home}/..%2foutside/secret"),
        format!("{home}/sub/../../outside/secret"),
        format!("{home}/link/secret"),
        format!("{outside}/secret"),
        format!("{home}/a%00b"),
        "/etc/passwd".to_string(),
    ];
    for path in &attempts {
        let url = format!("/newt/file/{MACHINE}{path}");
        for (method, query, body) in [
            ("GET", "?view=read", &b""[..]),
            ("GET", "", b""),
            ("PUT", "", b"overwritten"),
            ("DELETE", "", b""),
        ] {
            let (status, text) = gw.raw(
                method,
                &format!("{url}{query}"),
                &[("Cookie", &cookie)],
                body,
            );
            assert_eq!(status, 403, "{method} {url}{query}: {text}");
            assert!(!text.contains("top secret"));
        }
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "top secret");
    assert_eq!(
        std::fs::read_dir(&gw.outside).unwrap().count(),
        1,
        "nothing created outside"
    );
    // Through the connector: typed errors.
    let c = gw.login().await;
    let err = c
        .push(Source::bytes(b"x"), &format!("{home}/link/new"))
        .await
        .expect_err("symlink out");
    assert_eq!(err.kind, Kind::PermissionDenied, "{err}");
    let err = c
        .pull(
            &format!("{home}/link/secret"),
            Dest::file(&gw.dir.path().join("p")),
        )
        .await
        .expect_err("out");
    assert_eq!(err.kind, Kind::PermissionDenied, "{err}");
    let err = c
        .push(Source::bytes(b"x"), &format!("{home}/../outside/x"))
        .await
        .expect_err("dotdot");
    assert_eq!(err.kind, Kind::InvalidInput, "{err}");
    assert_eq!(
        std::fs::read_dir(&gw.outside).unwrap().count(),
        1,
        "nothing created outside"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_paths_listing_delete_and_unknown_machine() {
    let gw = Gateway::start(Opts::default());
    let c = gw.login().await;
    c.push(Source::bytes(b"rel"), "rel dir/a.txt")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(gw.home.join("rel dir/a.txt")).unwrap(),
        b"rel"
    );
    assert_eq!(pull_text(&c, "rel dir/a.txt").await, "rel");
    let out = c
        .exec(&RemoteCommand::new("cat").arg("a.txt").cwd("rel dir"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"rel", "relative cwd is in the home");
    let out = c.exec(&RemoteCommand::new("pwd")).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        gw.home.display().to_string()
    );
    let sid = gw.raw_login();
    let cookie = format!("newt_sessionid={sid}");
    let dir_url = format!("/newt/file/{MACHINE}{}/rel%20dir", gw.home.display());
    let (status, body) = gw.raw("GET", &dir_url, &[("Cookie", &cookie)], b"");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["name"], "a.txt");
    assert_eq!(
        (list[0]["type"].as_str(), list[0]["size"].as_u64()),
        (Some("file"), Some(3))
    );
    assert_eq!(list[0]["perms"], "-rw-r--r--");
    let (status, _) = gw.raw(
        "DELETE",
        &format!("{dir_url}/a.txt"),
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(status, 200);
    assert!(!gw.home.join("rel dir/a.txt").exists());
    let (status, _) = gw.raw(
        "DELETE",
        &format!("{dir_url}/a.txt"),
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(status, 404);
    let (status, _) = gw.raw("DELETE", &dir_url, &[("Cookie", &cookie)], b"");
    assert_eq!(status, 200, "empty directories can be removed");
    let other = NewtConnector::login(&gw.url, "no-such-machine", USER, PASSWORD)
        .await
        .unwrap();
    let err = other
        .exec(&RemoteCommand::new("true"))
        .await
        .expect_err("unknown machine");
    assert_eq!(err.kind, Kind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_limit_and_binary_output() {
    let gw = Gateway::start(Opts {
        max_output: 1 << 20,
        ..Opts::default()
    });
    let c = gw.login().await;
    let err = c
        .exec(&RemoteCommand::new("head").args(["-c", "2000000", "/dev/zero"]))
        .await
        .expect_err("too much");
    assert_eq!(err.kind, Kind::Other, "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
    let out = c
        .exec(&RemoteCommand::new("printf").arg("\\377\\000\\001"))
        .await
        .unwrap();
    assert_eq!(
        out.stdout,
        [0xff, 0, 1],
        "non-UTF-8 output arrives byte-identical"
    );
}

/// A 1 GiB upload is refused with 413 (by Content-Length, and mid-stream for a body of
/// unknown length) while the gateway's memory stays far below the upload size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_is_413_without_buffering() {
    let limit: u64 = 256 << 20;
    let gw = Gateway::start(Opts {
        max_upload: limit,
        ..Opts::default()
    });
    let c = gw.login().await;
    // A sparse 1 GiB local file: the connector sends Content-Length, the gateway refuses early.
    let big = gw.dir.path().join("sparse-1gib");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let started = Instant::now();
    let err = c
        .push(Source::file(&big), &format!("{}/big", gw.home.display()))
        .await
        .expect_err("413");
    assert_eq!(err.kind, Kind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("413") && err.to_string().contains("max_upload_bytes"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused early, took {:?}",
        started.elapsed()
    );
    // A streamed body of unknown length: the gateway writes up to the limit, then stops.
    let sid = gw.raw_login();
    let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let stream = futures_stream(chunk, 1024);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = format!("{}/file/{MACHINE}{}/streamed", gw.url, gw.home.display());
    let res = http
        .put(&url)
        .header("Cookie", format!("newt_sessionid={sid}"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(resp) = &res {
        assert_eq!(resp.status().as_u16(), 413);
    } // else: the gateway closed the connection after answering 413 mid-upload
    eprintln!("streamed upload: {:?}", res.as_ref().map(|r| r.status()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log();
    assert_eq!(count(&log, "access PUT"), 2, "{log}");
    assert_eq!(count(&log, " 413 "), 2, "{log}");
    let hwm = gw.proc_kb("VmHWM");
    eprintln!(
        "gateway VmHWM after 2 refused 1 GiB uploads: {} MiB (limit {} MiB)",
        hwm / 1024,
        limit >> 20
    );
    assert!(hwm < 64 * 1024, "gateway memory peaked at {hwm} kB");
    let left: Vec<_> = std::fs::read_dir(&gw.home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

/// `n` clones of `chunk` as a body stream (no large allocation).
fn futures_stream(
    chunk: bytes::Bytes,
    n: usize,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::iter((0..n).map(move |_| Ok(chunk.clone())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_clients() {
    let gw = std::sync::Arc::new(Gateway::start(Opts::default()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let gw = gw.clone();
            tokio::spawn(async move {
                let c = gw.login().await;
                let out = c
                    .exec(&RemoteCommand::new("echo").arg(format!("client {i}")))
                    .await
                    .unwrap();
                assert_eq!(out.stdout, format!("client {i}\n").as_bytes());
                let data = sremote_core::testsuite::pseudo_random(256 << 10, i);
                let remote = format!("clients/{i}/data.bin");
                c.push(Source::bytes(&data), &remote).await.unwrap();
                let dir = tempfile::tempdir().unwrap();
                c.pull(&remote, Dest::file(&dir.path().join("back")))
                    .await
                    .unwrap();
                assert!(std::fs::read(dir.path().join("back")).unwrap() == data);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    eprintln!(
        "50 concurrent clients (login, exec, push, pull): {:?}",
        started.elapsed()
    );
    assert_eq!(count(&gw.log(), "POST /newt/auth 200"), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_log_or_debug_output() {
    let gw = Gateway::start(Opts {
        token: true,
        ..Opts::default()
    });
    let token = gw.token.clone().unwrap();
    let c = gw.login().await;
    c.push(Source::bytes(b"x"), "f").await.unwrap();
    c.exec(&RemoteCommand::new("true")).await.unwrap();
    let _ = NewtConnector::login(&gw.url, MACHINE, USER, "a-wrong-password-123").await;
    let sid = gw.raw_login();
    let s = NewtConnector::with_session(&gw.url, MACHINE, &sid).unwrap();
    s.exec(&RemoteCommand::new("true")).await.unwrap();
    let t = NewtConnector::with_session(&gw.url, MACHINE, &token).unwrap();
    t.exec(&RemoteCommand::new("true")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = gw.log();
    assert!(count(&log, "access ") >= 7, "{log}");
    assert_eq!(count(&log, "POST /newt/auth 200"), 2, "{log}");
    assert!(log.contains("user=alice"), "{log}");
    for secret in [PASSWORD, "a-wrong-password-123", &sid, &token] {
        assert!(!log.contains(secret), "secret in the log:\n{log}");
    }
    for debug in [format!("{c:?}"), format!("{s:?}"), format!("{t:?}")] {
        for secret in [PASSWORD, &sid, &token] {
            assert!(!debug.contains(secret), "secret in Debug: {debug}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_self_signed_certificate() {
    let gw = Gateway::start(Opts {
        tls: true,
        ..Opts::default()
    });
    assert!(gw.url.starts_with("https://"), "{}", gw.url);
    assert!(!gw.log().contains("PLAIN HTTP"));
    let c = gw.login().await;
    assert!(
        c.host().starts_with("newt+https://alice@127.0.0.1:"),
        "{}",
        c.host()
    );
    let out = c
        .exec(&RemoteCommand::new("echo").arg("over tls"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"over tls\n");
    c.push(Source::bytes(b"tls bytes"), "t.bin").await.unwrap();
    assert_eq!(pull_text(&c, "t.bin").await, "tls bytes");
    // An untrusted certificate is a connect error, not a silent downgrade.
    let err = NewtConnector::login(&gw.url, MACHINE, USER, PASSWORD)
        .await
        .expect_err("untrusted");
    assert_eq!(err.kind, Kind::Connect, "{err}");
    let plain = gw.url.replace("https://", "http://");
    let err = NewtConnector::login(&plain, MACHINE, USER, PASSWORD)
        .await
        .expect_err("plain to tls");
    assert!(
        matches!(err.kind, Kind::Disconnected | Kind::Connect | Kind::Other),
        "{err}"
    );
}

#[test]
fn adduser_reads_the_password_from_stdin() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sremote-gateway"))
        .args(["adduser", "--users"])
        .arg(&users)
        .arg("bob")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"bob's password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(
        text.starts_with("bob:$argon2id$") && !text.contains("password"),
        "{text}"
    );
    let parsed = sremote_gateway::users::Users::load(Path::new(&users)).unwrap();
    assert!(parsed.verify_password("bob", "bob's password"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sremote-gateway"))
        .args(["adduser", "--users"])
        .arg(&users)
        .arg("bad:name")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

fn alive(pid: &str) -> bool {
    pid.parse().is_ok_and(sremote_testkit::alive)
}

/// A client that goes away mid-command takes the command's process group with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_kills_the_command() {
    use std::io::Write;
    let gw = Gateway::start(Opts::default());
    let sid = gw.raw_login();
    let line = "sh -c 'sleep 300 & echo $! > sleep.pid; wait'";
    let form = format!(
        "executable={}",
        percent_encoding::utf8_percent_encode(line, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    write!(
        s,
        "POST /newt/command/{MACHINE} HTTP/1.1\r\nHost: x\r\nCookie: newt_sessionid={sid}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let pidfile = gw.home.join("sleep.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Ok(p) = std::fs::read_to_string(&pidfile)
            && !p.trim().is_empty()
        {
            break p.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the command did not start:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(alive(&pid));
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(&pid) {
        assert!(Instant::now() < deadline, "sleep {pid} survived the client");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_forms_are_413() {
    let gw = Gateway::start(Opts::default());
    let sid = gw.raw_login();
    let body = format!("executable=echo+{}", "x".repeat(5 << 20));
    let cookie = format!("newt_sessionid={sid}");
    let (status, text) = gw.raw(
        "POST",
        "/newt/command/testhost",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The answer can be lost when the gateway closes the connection on the unread body.
    assert!(
        status == 413 || (status == 0 && gw.log().contains("/newt/command/testhost 413")),
        "{status} {text}"
    );
    let (status, text) = gw.raw(
        "POST",
        "/newt/command/testhost",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"executable=echo+%27unterminated",
    );
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("bad_command"), "{text}");
}

/// Connection failures: typed `Connect`; file requests are retried, commands are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_typed_and_only_idempotent_requests_retry() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/newt");
    let err = NewtConnector::login(&url, MACHINE, USER, PASSWORD)
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind, Kind::Connect, "{err}");
    let c = NewtConnector::with_session(&url, MACHINE, "sid").unwrap();
    let t = Instant::now();
    let err = c
        .exec(&RemoteCommand::new("true"))
        .await
        .expect_err("no server");
    assert_eq!(err.kind, Kind::Connect, "{err}");
    let exec_time = t.elapsed();
    let t = Instant::now();
    let err = c
        .push(Source::bytes(b"x"), "/tmp/x")
        .await
        .expect_err("no server");
    assert_eq!(err.kind, Kind::Connect, "{err}");
    let push_time = t.elapsed();
    assert!(
        exec_time < Duration::from_millis(300),
        "exec is not retried: {exec_time:?}"
    );
    assert!(
        push_time > Duration::from_millis(2500),
        "push is retried with backoff: {push_time:?}"
    );
    let err = NewtConnector::with_session("ftp://x", MACHINE, "t").expect_err("bad url");
    assert_eq!(err.kind, Kind::InvalidInput, "{err}");
}
