//! Files stay inside the roots even while the tree changes under the requests, a FIFO
//! cannot hang the gateway, and no file written or pulled through it keeps setuid/setgid.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Gateway, Opts};
use sremote_core::{Connector, Dest};

fn url(path: &Path) -> String {
    format!("/newt/file/testhost{}", path.display())
}

/// A thread swaps a directory and a symlink to outside the root with
/// `renameat2(RENAME_EXCHANGE)` while GETs, listings and PUTs go through that name: not one
/// byte from outside comes back and not one file lands outside.
#[test]
fn swapping_a_directory_and_a_symlink_never_leaks() {
    let gw = Arc::new(Gateway::start(Opts::default()));
    let sid = gw.raw_login();
    let (home, outside) = (gw.home.clone(), gw.outside.clone());
    std::fs::create_dir(home.join("d")).unwrap();
    std::fs::write(home.join("d/f"), "inside").unwrap();
    std::fs::write(outside.join("f"), "SECRET").unwrap();
    std::fs::write(outside.join("only-outside"), "").unwrap();
    std::os::unix::fs::symlink(&outside, home.join("l")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, home) = (stop.clone(), home.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    home.join("d"),
                    rustix::fs::CWD,
                    home.join("l"),
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("renameat2(RENAME_EXCHANGE)");
                swaps += 1;
            }
            swaps
        })
    };
    let cookie = format!("newt_sessionid={sid}");
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (gw, cookie, home) = (gw.clone(), cookie.clone(), home.clone());
            std::thread::spawn(move || {
                let c = [("Cookie", cookie.as_str())];
                let (mut leaks, mut served) = (Vec::new(), 0);
                for i in 0..200 {
                    let (status, body) = match (w, i % 3) {
                        (0 | 1, _) | (_, 0) => {
                            let u = format!("{}?view=read", url(&home.join("d/f")));
                            gw.raw("GET", &u, &c, b"")
                        }
                        (_, 1) => gw.raw("GET", &url(&home.join("d")), &c, b""),
                        _ => {
                            let u = url(&home.join(format!("d/put-{w}-{i}")));
                            gw.raw("PUT", &u, &c, b"uploaded")
                        }
                    };
                    if body.contains("SECRET") || body.contains("only-outside") {
                        leaks.push(body.clone());
                    }
                    served += usize::from(status == 200);
                }
                (leaks, served)
            })
        })
        .collect();
    let mut leaks = Vec::new();
    let mut served = 0;
    for w in workers {
        let (l, s) = w.join().unwrap();
        leaks.extend(l);
        served += s;
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    let landed_outside: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("put-") || n.starts_with(".sremote-part"))
        .collect();
    eprintln!("{swaps} swaps, {served} of 1200 requests served");
    assert!(swaps > 100, "the race did not run: {swaps} swaps");
    assert!(served > 50, "nothing got through at all: {served}");
    assert!(
        leaks.is_empty(),
        "{} leaks: {:?}",
        leaks.len(),
        &leaks[..leaks.len().min(3)]
    );
    assert!(
        landed_outside.is_empty(),
        "written outside the root: {landed_outside:?}"
    );
}

/// `GET ?view=read` of a FIFO is refused at once (never waits for a writer); many of them
/// leave logins and files working.
#[test]
fn a_fifo_is_refused_at_once_and_hangs_nothing() {
    let gw = Arc::new(Gateway::start(Opts::default()));
    let sid = gw.raw_login();
    let fifo = gw.home.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let cookie = format!("newt_sessionid={sid}");
    let start = Instant::now();
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let (gw, cookie, u) = (
                gw.clone(),
                cookie.clone(),
                format!("{}?view=read", url(&fifo)),
            );
            std::thread::spawn(move || {
                gw.raw_full(
                    "GET",
                    &u,
                    &[("Cookie", &cookie)],
                    b"",
                    Duration::from_secs(5),
                )
            })
        })
        .collect();
    for t in threads {
        let (status, _, body) = t.join().unwrap();
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("not a regular file"), "{body}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    gw.raw_login();
    let (status, body) = gw.raw("GET", &url(&gw.home), &[("Cookie", &cookie)], b"");
    assert!(status == 200 && body.contains("\"fifo\""), "{body}");
}

/// `PUT ?mode=7777` makes a 0777 file; a setuid/setgid file is pulled without those bits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setuid_and_setgid_bits_are_masked_on_put_and_pull() {
    let gw = Gateway::start(Opts::default());
    let sid = gw.raw_login();
    let cookie = format!("newt_sessionid={sid}");
    let target = gw.home.join("put-7777");
    let (status, body) = gw.raw(
        "PUT",
        &format!("{}?mode=7777", url(&target)),
        &[("Cookie", &cookie)],
        b"#!/bin/sh\n",
    );
    assert_eq!(status, 200, "{body}");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o777, "{mode:o}");
    let suid = gw.home.join("suid");
    std::fs::write(&suid, "x").unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let (_, head, _) = gw.raw_full(
        "GET",
        &format!("{}?view=read", url(&suid)),
        &[("Cookie", &cookie)],
        b"",
        Duration::from_secs(10),
    );
    assert!(head.contains("x-sremote-mode: 755\r\n"), "{head}");
    let local = tempfile::tempdir().unwrap();
    let copy = local.path().join("copy");
    gw.login()
        .await
        .pull(&suid.display().to_string(), Dest::file(&copy))
        .await
        .unwrap();
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "{mode:o}");
}
