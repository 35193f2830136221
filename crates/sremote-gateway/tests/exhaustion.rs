//! Unauthenticated resource exhaustion: idle sockets, slow request heads and big login
//! bodies must neither keep a login out nor grow the gateway's memory.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Gateway, Opts, PASSWORD, USER};

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn login_form() -> String {
    format!("username={USER}&password={}", PASSWORD.replace(' ', "+"))
}

/// More idle sockets than the open-files limit allows: today's accept loop would stall on
/// EMFILE with the login queued behind them. The cap closes the oldest silent connection
/// instead, so the login is answered at once (the header timeout is long here on purpose).
#[test]
fn idle_sockets_beyond_the_open_files_limit_do_not_block_a_login() {
    let gw = Gateway::start(Opts {
        nofile: Some(128),
        extra_limits: "header_read_timeout_secs = 120\n".into(),
        ..Opts::default()
    });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], gw.port));
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    assert!(idle.len() >= 150, "only {} idle sockets", idle.len());
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let form = login_form();
    let (status, _, body) = gw.raw_full(
        "POST",
        "/newt/auth",
        &[FORM],
        form.as_bytes(),
        Duration::from_secs(10),
    );
    assert_eq!(
        status,
        200,
        "login behind idle sockets: {body}\n{}",
        gw.log()
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        gw.log().contains("max_connections = 512 lowered to 64"),
        "{}",
        gw.log()
    );
    drop(idle);
}

/// A connection that sends nothing, or only part of a request head, is closed after the
/// header-read timeout.
#[test]
fn silent_and_slow_connections_are_closed_after_the_header_timeout() {
    let gw = Gateway::start(Opts {
        extra_limits: "header_read_timeout_secs = 1\n".into(),
        ..Opts::default()
    });
    let mut silent = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let mut slow = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    slow.write_all(b"POST /newt/auth HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    for s in [&mut silent, &mut slow] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let start = Instant::now();
        let mut buf = Vec::new();
        let res = s.read_to_end(&mut buf);
        assert!(
            res.is_ok()
                || res
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "not closed by the gateway: {res:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
    }
    // A kept-alive connection idle after its answer is closed the same way.
    let mut kept = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    kept.write_all(b"GET /newt/auth HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = kept.read_to_end(&mut buf);
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

/// 100 concurrent login bodies of almost 4 MiB (under the general form limit): each is
/// refused with 413 before it is buffered, and the gateway's memory stays small.
#[test]
fn big_login_bodies_are_413_and_memory_stays_bounded() {
    let gw = std::sync::Arc::new(Gateway::start(Opts::default()));
    let before = gw.proc_kb("VmRSS");
    let body = std::sync::Arc::new(format!(
        "username={USER}&password={}",
        "p".repeat((4 << 20) - 1024)
    ));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (gw, body) = (gw.clone(), body.clone());
            std::thread::spawn(move || gw.raw("POST", "/newt/auth", &[FORM], body.as_bytes()).0)
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let log = gw.log();
    let refused = log
        .lines()
        .filter(|l| l.contains("POST /newt/auth 413"))
        .count();
    // An answer can be lost when the gateway closes on the unread body: count the log.
    assert_eq!(refused, 100, "{statuses:?}\n{log}");
    assert!(
        statuses.iter().all(|s| *s == 413 || *s == 0),
        "{statuses:?}"
    );
    let peak = gw.proc_kb("VmHWM");
    assert!(
        peak < before + 100 * 1024,
        "memory grew from {before} kB to a peak of {peak} kB"
    );
    // And the gateway still logs people in.
    let form = login_form();
    assert_eq!(
        gw.raw("POST", "/newt/auth", &[FORM], form.as_bytes()).0,
        200
    );
}

/// An upload refused by its `Content-Length` is still read (and discarded) for a moment
/// after the 413, so a client that keeps writing its body is not cut off by a reset and can
/// read the answer. Before, the gateway closed with the body unread: the client's writes
/// failed with "broken pipe" and `push` reported a broken connection ("try again") instead
/// of the 413 (seen in CI).
#[test]
fn a_refused_upload_is_read_on_so_the_client_sees_the_413() {
    let gw = Gateway::start(Opts {
        max_upload: 1 << 20,
        ..Opts::default()
    });
    let sid = gw.raw_login();
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "PUT /newt/file/{}{}/big HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: newt_sessionid={sid}\r\n\
         Content-Length: {}\r\n\r\n",
        common::MACHINE,
        gw.home.display(),
        1u64 << 30
    );
    s.write_all(head.as_bytes()).expect("head");
    // Far more than the socket buffers hold: without the lingering read the gateway's
    // close resets the connection while this is being written.
    let chunk = vec![0u8; 64 << 10];
    let mut sent = 0usize;
    while sent < 24 << 20 {
        if let Err(e) = s.write_all(&chunk) {
            panic!("writing the body failed after {sent} bytes: {e}");
        }
        sent += chunk.len();
    }
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&resp).contains("\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the answer failed: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(!gw.home.join("big").exists());
}
