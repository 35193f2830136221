//! What `NewtConnector` puts on the wire, checked against a scripted loopback server.

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
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("answer");
        let _ = reader.read(&mut [0u8; 1]);
        head
    })
}

#[tokio::test]
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

#[tokio::test]
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
