//! `sremote run` (live output, exit codes, Ctrl-C stops the remote program) and
//! `sremote tunnel` against real sshd hosts.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Client, alive, ssh_host, text};
use sremote_testkit::{NetnsHost, Sshd, processes_with};

fn sigint(child: &Child) {
    // SAFETY: signalling a child process we started and have not waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("sremote did not exit within {limit:?}");
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line
}

#[test]
fn run_streams_output_live_and_passes_the_exit_code() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let started = Instant::now();
    let mut child = client
        .command(&[
            "run",
            "alpha",
            "--cwd",
            "/tmp",
            "--env",
            "X=$(id) 'q'",
            "--",
            "sh",
            "-c",
            "echo \"$X\" $(pwd); sleep 2; echo late >&2; exit 3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let first = read_line(&mut out);
    assert_eq!(first, "$(id) 'q' /tmp\n");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the first line came only at the end"
    );
    let code = wait_exit(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(3));
    assert_eq!(err, "late\n", "the pid marker must not leak into stderr");

    // stdin is passed through.
    let mut child = client
        .command(&["run", "alpha", "--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "SHOUT\n");
    assert!(out.status.success());
}

#[test]
fn ctrl_c_stops_the_remote_program_and_its_children() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let token = format!("sremote-sigint-{}", std::process::id());
    // A background child ignores SIGINT (as in any non-interactive shell): the CLI must
    // escalate to SIGKILL for the whole process group.
    let mut child = client
        .command(&[
            "run",
            "alpha",
            "--",
            "sh",
            "-c",
            "sleep 3141 & echo ready $!; wait",
            &token,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let line = read_line(&mut out);
    let sleep_pid: u32 = line.trim().strip_prefix("ready ").unwrap().parse().unwrap();
    assert!(alive(sleep_pid));
    assert!(!processes_with(&token).is_empty(), "the remote shell runs");
    sigint(&child);
    let code = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(code, Some(130));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("interrupted"), "{err}");
    for _ in 0..100 {
        if !alive(sleep_pid) && processes_with(&token).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "left on the host: sleep {sleep_pid} alive={}, shell {:?}",
        alive(sleep_pid),
        processes_with(&token)
    );
}

#[test]
fn a_plain_foreground_program_stops_on_the_first_ctrl_c() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let token = format!("sremote-fg-{}", std::process::id());
    let mut child = client
        .command(&[
            "run",
            "alpha",
            "--",
            "sh",
            "-c",
            "echo ready; sleep 2718; echo survived",
            &token,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "ready\n");
    let t = Instant::now();
    sigint(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(130));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "SIGINT alone should stop it: {:?}",
        t.elapsed()
    );
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(!rest.contains("survived"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(processes_with(&token).is_empty());
}

#[test]
fn tunnel_carries_an_http_request_to_a_server_on_the_host() {
    // A host in a network namespace: its 127.0.0.1 is not ours, so only the tunnel reaches it.
    let netns = NetnsHost::start_or_skip("srt-cli-tun", 72);
    let sshd;
    let (cfg, port) = match &netns {
        Some(n) => (ssh_host("web", &n.name, &n.ssh_config), 8765u16),
        None => {
            sshd = Sshd::start().unwrap();
            let free = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            (ssh_host("web", &sshd.alias, &sshd.ssh_config), free)
        }
    };
    let client = Client::new(&cfg);
    let page = client.home.path().join("hello.txt");
    std::fs::write(&page, "hello through the tunnel\n").unwrap();
    let www = format!("www-{}", std::process::id());
    let out = client.run(&[
        "push",
        "web",
        page.to_str().unwrap(),
        &format!("{www}/hello.txt"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut server = client
        .command(&[
            "run",
            "web",
            "--cwd",
            &www,
            "--",
            "python3",
            "-u",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server_out = BufReader::new(server.stdout.take().unwrap());
    let ready = read_line(&mut server_out);
    assert!(ready.contains("Serving HTTP"), "{ready}");

    let mut tunnel = client
        .command(&["tunnel", "web", &port.to_string(), "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tunnel_out = BufReader::new(tunnel.stdout.take().unwrap());
    let line = read_line(&mut tunnel_out);
    let local = line
        .strip_prefix("forwarding ")
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    for i in 0..2 {
        let mut conn = std::net::TcpStream::connect(&local).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut resp = String::new();
        conn.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.0 200"), "request {i}: {resp}");
        assert!(resp.ends_with("hello through the tunnel\n"), "{resp}");
    }
    sigint(&tunnel);
    assert_eq!(wait_exit(&mut tunnel, Duration::from_secs(10)), Some(0));
    assert!(
        std::net::TcpStream::connect(&local).is_err(),
        "the local port is closed"
    );
    sigint(&server);
    assert_eq!(wait_exit(&mut server, Duration::from_secs(15)), Some(130));
}

#[test]
fn detach_makes_a_job_that_outlives_the_cli() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    std::fs::create_dir(a.home.join("wd")).unwrap();
    let out = client.run(&[
        "run",
        "alpha",
        "--detach",
        "--cwd",
        "wd",
        "--env",
        "X=$(x) y",
        "--",
        "sh",
        "-c",
        "echo \"$X\" in $(pwd); exit 3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(!id.is_empty());
    // Exit code 3 is the job's failure (issue 16: it was the value 3, and `succeeded`).
    let out = client.run(&["jobs", "result", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("exited with code 3"),
        "{}",
        text(&out.stderr)
    );
    let out = client.run(&["jobs", "log", &id]);
    assert_eq!(
        text(&out.stdout),
        format!("$(x) y in {}\n", a.home.join("wd").display())
    );
}

/// An `--env` name that is not an identifier is a usage error, for `run` as for
/// `exec` and `call` (before, `run` dropped it silently and SSH `exec` could run the
/// program's first argument instead of the program).
#[test]
fn env_names_that_are_not_identifiers_are_refused() {
    let client = Client::new("");
    for cmd in [
        &["run", "local", "--env", "X-Y=1", "--", "true"][..],
        &["exec", "local", "--env", "X-Y=1", "--", "true"][..],
        &["call", "local", "os", "getpid", "--env", "1X=1"][..],
    ] {
        let out = client.run(cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {out:?}");
        let err = text(&out.stderr);
        assert!(err.contains("environment variable name"), "{cmd:?}: {err}");
    }
}
