//! `sremote exec` streams: 200 MB of output pass through in bounded client memory (it held
//! all of it, twice, before), on the local connector and over a real sshd; a reader that
//! goes away stops it quietly; several hosts get whole prefixed lines; `--json` still
//! collects.
mod common;

use std::process::{Command, Stdio};

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

/// Run `cmd` to the end with stdout drained; its exit code and peak RSS in MiB.
fn peak_rss(mut cmd: Command) -> (i32, u64, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let counter =
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()).unwrap());
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain syscalls on our own child; rusage is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    // Reaped by wait4 above; this only lets std know.
    let _ = child.try_wait();
    let bytes = counter.join().unwrap();
    (
        libc::WEXITSTATUS(status),
        usage.ru_maxrss as u64 / 1024,
        bytes,
    )
}

#[test]
fn two_hundred_mb_of_output_in_bounded_memory() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let size = 200_000_000u64;
    for host in ["local", "alpha"] {
        let cmd = client.command(&[
            "exec",
            host,
            "--",
            "head",
            "-c",
            &size.to_string(),
            "/dev/zero",
        ]);
        let (code, rss_mib, bytes) = peak_rss(cmd);
        assert_eq!((code, bytes), (0, size), "{host}");
        assert!(
            rss_mib < 64,
            "{host}: peak RSS {rss_mib} MiB for 200 MB of output"
        );
    }
}

#[test]
fn a_reader_that_goes_away_stops_it_quietly() {
    let client = Client::new("");
    let marker = format!("sremote-exec-yes-{}", std::process::id());
    let mut child = client
        .command(&["exec", "local", "--", "yes", &marker])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 4];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out); // like `| head -2`
    let status = child.wait().unwrap();
    let err = text(
        &std::io::Read::bytes(child.stderr.take().unwrap())
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
    );
    assert_eq!(status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "quietly: {err}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        sremote_testkit::processes_with(&marker).is_empty(),
        "the program on the host is gone"
    );
}

#[test]
fn several_hosts_get_whole_prefixed_lines_and_json_collects() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let script = "for i in 1 2 3; do printf 'line %s\\n' $i; sleep 0.05; done; printf 'no newline'; echo oops >&2; exit 4";
    let out = client.run(&["exec", "alpha,local", "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(1));
    let so = text(&out.stdout);
    for host in ["alpha", "local"] {
        for i in 1..=3 {
            assert!(so.contains(&format!("{host} | line {i}\n")), "{so}");
        }
        assert!(so.contains(&format!("{host} | no newline\n")), "{so}");
    }
    assert!(
        text(&out.stderr).contains("alpha | oops"),
        "{}",
        text(&out.stderr)
    );

    let out = client.run(&["--json", "exec", "alpha", "--", "sh", "-c", script]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 4);
    assert_eq!(v["stdout"], "line 1\nline 2\nline 3\nno newline");
    assert_eq!(v["stderr"], "oops\n");
    assert_eq!(out.status.code(), Some(4));
}
