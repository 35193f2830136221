//! What `NewtConnector` puts on the wire, checked against a scripted loopback server.
//!
//! The scripted server answers on a thread and waits for the client to close the
//! connection; the tests join it while blocking, so they run on the multi-thread runtime,
//! where the client's connection task can close the socket meanwhile (on a current-thread
//! runtime that task could not run, and the join waited forever).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use sremote_core::{Connector, ConnectorErrorKind, Source};
use sremote_rest::NewtConnector;

/// Accept one connection, return its request head and answer `status` with `body`.
fn serve_once(
    listener: TcpListener,
    status: &'static str,
    body: &'static str,
) -> std::thread::JoinHandle<String> {
    serve_once_with(
        listener,
        status,
        "Content-Type: application/json\r\n".into(),
        body,
    )
}

/// [`serve_once`] with more response header lines (each ending in CRLF).
fn serve_once_with(
    listener: TcpListener,
    status: &'static str,
    headers: String,
    body: &'static str,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (s, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(s.try_clone().expect("clone"));
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read") == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body_in = vec![0u8; len];
        reader.read_exact(&mut body_in).expect("body");
        head.push_str("\r\n");
        head.push_str(&String::from_utf8_lossy(&body_in));
        let mut s = s;
        write!(
            s,
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("answer");
        let _ = reader.read(&mut [0u8; 1]);
        head
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_sends_content_length_encoded_path_and_cookie() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_once(
        listener,
        "413 Payload Too Large",
        r#"{"status":"ERROR","error":"too big","code":"too_large"}"#,
    );
    let c = NewtConnector::with_session(&format!("http://127.0.0.1:{port}/newt/"), "m 1", "SID")
        .expect("connector");
    let err = c
        .push(Source::bytes(b"hello").mode(0o750), "/data/a b/'q\"/%2e/x")
        .await
        .expect_err("413");
    assert_eq!(err.kind, ConnectorErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("max_upload_bytes"), "{err}");
    let head = server.join().expect("server").to_ascii_lowercase();
    assert!(
        head.starts_with("put /newt/file/m%201/data/a%20b/%27q%22/%252e/x?mode=750 http/1.1"),
        "{head}"
    );
    assert!(
        head.contains("content-length: 5\r\n") && !head.contains("transfer-encoding"),
        "{head}"
    );
    assert!(head.contains("cookie: newt_sessionid=sid"), "{head}");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("SID"), "{dbg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sends_one_quoted_command_line() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_once(
        listener,
        "200 OK",
        r#"{"output":"ok","error":"","status":"OK"}"#,
    );
    let c = NewtConnector::with_session(&format!("http://127.0.0.1:{port}"), "m", "SID")
        .expect("connector");
    let cmd = sremote_core::RemoteCommand::new("echo")
        .arg("a b")
        .timeout(std::time::Duration::from_secs(2));
    let out = c.exec(&cmd).await.expect("exec");
    assert_eq!(
        (out.exit_code, out.stdout.as_slice()),
        (Some(0), &b"ok"[..]),
        "no exit_code: derived from status"
    );
    let head = server.join().expect("server").to_ascii_lowercase();
    assert!(head.starts_with("post /command/m http/1.1"), "{head}");
    assert!(
        head.contains("content-type: application/x-www-form-urlencoded"),
        "{head}"
    );
    assert!(
        head.ends_with("\r\n\r\nexecutable=echo+%27a+b%27&timeout=2.000"),
        "{head}"
    );
}

/// Nothing connected to `listener` (checked without blocking).
fn untouched(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).expect("nonblocking");
    matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A login answered with a 307 to another port: the form (with the password) is not sent
/// there, and the error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_login_never_sends_the_password_elsewhere() {
    let elsewhere = TcpListener::bind("127.0.0.1:0").expect("bind");
    let other = elsewhere.local_addr().expect("addr").port();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_once_with(
        listener,
        "307 Temporary Redirect",
        format!("Location: http://127.0.0.1:{other}/newt/auth\r\n"),
        "",
    );
    let err = NewtConnector::login(
        &format!("http://127.0.0.1:{port}/newt"),
        "m",
        "alice",
        "hunter2-the-password",
    )
    .await
    .expect_err("a redirected login fails");
    let head = server.join().expect("server");
    assert!(
        head.contains("hunter2"),
        "the first server got the form: {head}"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        untouched(&elsewhere),
        "the password was sent to the redirect target"
    );
    assert!(err.to_string().contains("redirect"), "{err}");
}

/// A file request redirected to another origin is not followed either (the session id
/// stays home).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_redirect_to_another_origin() {
    let elsewhere = TcpListener::bind("127.0.0.1:0").expect("bind");
    let other = elsewhere.local_addr().expect("addr").port();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_once_with(
        listener,
        "302 Found",
        format!("Location: http://127.0.0.1:{other}/x\r\n"),
        "",
    );
    let c = NewtConnector::with_session(&format!("http://127.0.0.1:{port}"), "m", "SID")
        .expect("connector");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = c
        .pull("/data/f", sremote_core::Dest::file(&dir.path().join("f")))
        .await
        .expect_err("not followed");
    server.join().expect("server");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(untouched(&elsewhere), "followed to another origin");
    assert!(err.to_string().contains("not followed"), "{err}");
}

/// `http://` to a host that is not loopback is refused before anything is sent, unless the
/// user allows it explicitly. (0.0.0.0 is not a loopback address, yet connecting to it
/// reaches this machine, so the allowed case stays on this host.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_to_loopback_unless_allowed() {
    for base in ["http://gw.example.org/newt", "http://0.0.0.0:1/newt"] {
        let err = NewtConnector::login(base, "m", "alice", "pw")
            .await
            .expect_err("refused");
        assert_eq!(err.kind, ConnectorErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("SREMOTE_NEWT_ALLOW_HTTP"), "{err}");
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_once(
        listener,
        "200 OK",
        r#"{"auth":true,"username":"alice","newt_sessionid":"S","home":"/h"}"#,
    );
    NewtConnector::builder(&format!("http://0.0.0.0:{port}/newt"), "m")
        .allow_plain_http(true)
        .login("alice", "pw")
        .await
        .expect("allowed explicitly");
    server.join().expect("server");
    NewtConnector::with_session("https://gw.example.org/newt", "m", "S").expect("https is fine");
}

/// A pulled file never keeps setuid/setgid/sticky bits, whatever the server says; a push
/// does not ask for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_lose_setuid_setgid_and_sticky_both_ways() {
    use std::os::unix::fs::PermissionsExt;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_once_with(
        listener,
        "200 OK",
        "X-Sremote-Mode: 7755\r\n".into(),
        "data",
    );
    let c = NewtConnector::with_session(&format!("http://127.0.0.1:{port}"), "m", "SID")
        .expect("connector");
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("f");
    c.pull("/data/f", sremote_core::Dest::file(&local))
        .await
        .expect("pull");
    server.join().expect("server");
    let mode = std::fs::metadata(&local)
        .expect("meta")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o755, "{mode:o}");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_once(listener, "200 OK", r#"{"status":"OK","error":""}"#);
    let c = NewtConnector::with_session(&format!("http://127.0.0.1:{port}"), "m", "SID")
        .expect("connector");
    c.push(Source::bytes(b"x").mode(0o6755), "/data/g")
        .await
        .expect("push");
    let head = server.join().expect("server");
    assert!(head.starts_with("PUT /file/m/data/g?mode=755 "), "{head}");
}
