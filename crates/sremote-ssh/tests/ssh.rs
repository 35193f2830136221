//! SSH-specific behaviour: destinations, typed connection errors, reconnects, spawn,
//! and a second host in a network namespace logged into as an unprivileged user.
mod common;

use std::time::{Duration, Instant};

use sremote_core::{Connector, ConnectorErrorKind, Dest, RemoteCommand, Source};
use sremote_ssh::{KnownHostsPolicy, SshConnector};
use sremote_testkit::Sshd;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// Connect by address with explicit options (no ssh_config).
async fn direct(
    sshd: &Sshd,
    policy: KnownHostsPolicy,
) -> Result<SshConnector, sremote_core::ConnectorError> {
    SshConnector::builder()
        .port(sshd.port)
        .keyfile(&sshd.client_key)
        .known_hosts_file(&sshd.known_hosts)
        .known_hosts(policy)
        .connect(&sshd.destination())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_alias_user_at_host_and_url() {
    let sshd = Sshd::shared().unwrap();
    let user = &sshd.user;
    let c = direct(&sshd, KnownHostsPolicy::Strict).await.unwrap();
    assert_eq!(c.host(), format!("{user}@127.0.0.1:{}", sshd.port));
    let c = SshConnector::builder()
        .keyfile(&sshd.client_key)
        .known_hosts_file(&sshd.known_hosts)
        .connect(&sshd.url())
        .await
        .unwrap();
    assert_eq!(c.host(), format!("{user}@127.0.0.1:{}", sshd.port));
    let out = c
        .exec(&RemoteCommand::new("sh").args(["-c", "echo $HOME"]))
        .await
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        sshd.home.display().to_string(),
        "sessions see the clean HOME"
    );
    let c = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap();
    assert_eq!(c.host(), format!("{user}@{}:{}", sshd.alias, sshd.port));
    // one master connection serves many operations, also concurrently
    let runs = (0..20).map(|i| {
        let c = c.clone();
        async move {
            c.exec(&RemoteCommand::new("echo").arg(i.to_string()))
                .await
                .unwrap()
        }
    });
    for (i, out) in futures_join(runs).await.into_iter().enumerate() {
        assert_eq!(text(&out.stdout), i.to_string());
    }
}

async fn futures_join<F: std::future::Future + Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn bad_destinations_are_refused_before_running_ssh() {
    for dest in [
        "",
        "-oProxyCommand=touch /tmp/sremote-pwned",
        "a b",
        "host\nx",
        "ssh://",
        "ssh://-oProxyCommand=touch${IFS}/tmp/sremote-pwned",
        "ssh://u@-oProxyCommand=touch${IFS}/tmp/sremote-pwned:22",
    ] {
        let err = SshConnector::connect(dest).await.expect_err(dest);
        assert_eq!(
            err.kind,
            ConnectorErrorKind::InvalidInput,
            "{dest:?}: {err}"
        );
    }
    let err = SshConnector::builder()
        .user("-oX=y")
        .connect("localhost")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ConnectorErrorKind::InvalidInput);
    assert!(!std::path::Path::new("/tmp/sremote-pwned").exists());
}

#[tokio::test]
async fn auth_failure_names_user_and_host() {
    let sshd = Sshd::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("stranger");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(ok.success());
    let err = SshConnector::builder()
        .port(sshd.port)
        .keyfile(&stranger)
        .known_hosts_file(&sshd.known_hosts)
        .connect(&sshd.destination())
        .await
        .expect_err("an unknown key must be refused");
    assert_eq!(err.kind, ConnectorErrorKind::Auth, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&sshd.user) && msg.contains("127.0.0.1"),
        "must name user and host: {msg}"
    );
    assert!(msg.contains("Permission denied"), "{msg}");
    assert!(err.hint.is_some());
}

#[tokio::test]
async fn refused_port_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = SshConnector::builder()
        .port(port)
        .connect("127.0.0.1")
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind, ConnectorErrorKind::Connect, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_host_key_is_refused_and_nothing_runs() {
    let sshd = Sshd::start().unwrap();
    let c = direct(&sshd, KnownHostsPolicy::Strict)
        .await
        .expect("the original key is known");
    c.exec(&RemoteCommand::new("true")).await.unwrap();
    drop(c);
    sshd.rotate_host_key().unwrap();
    for policy in [KnownHostsPolicy::Strict, KnownHostsPolicy::AcceptNew] {
        let err = direct(&sshd, policy)
            .await
            .expect_err("a changed host key must be refused");
        assert_eq!(err.kind, ConnectorErrorKind::HostKey, "{policy:?}: {err}");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
    }
    // The refused client never authenticated, so no command can have run.
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_its_own_master_at_once_and_the_next_call_reconnects() {
    let sshd = Sshd::shared().unwrap();
    let c = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap();
    let out = c
        .exec(&RemoteCommand::new("echo").arg("one"))
        .await
        .unwrap();
    assert_eq!(text(&out.stdout), "one");
    let socket = c.control_socket().display().to_string();
    assert_eq!(
        sremote_testkit::processes_with(&socket).len(),
        1,
        "the master for {socket}"
    );
    // A program still running on the connection is cut off, not waited for.
    let running = {
        let c = c.clone();
        tokio::spawn(async move { c.exec(&RemoteCommand::new("sleep").arg("30")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    c.close().await.expect("closed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Gone when close returns: no grace period to wait out.
    assert_eq!(sremote_testkit::processes_with(&socket), Vec::<u32>::new());
    let r = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the cut-off program's call ends")
        .unwrap();
    assert!(r.as_ref().map_or(true, |o| o.exit_code != Some(0)), "{r:?}");
    // Closing again is nothing to do; a later call connects again.
    c.close().await.expect("closed twice");
    let out = c
        .exec(&RemoteCommand::new("echo").arg("two"))
        .await
        .unwrap();
    assert_eq!(text(&out.stdout), "two");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_killed_mid_call_is_disconnected_then_reconnects() {
    let sshd = Sshd::start().unwrap();
    let c = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap();
    let call = {
        let c = c.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = c
                .exec(
                    &RemoteCommand::new("sleep")
                        .arg("60")
                        .timeout(Duration::from_secs(30)),
                )
                .await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    sshd.kill();
    let (r, took) = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("no hang")
        .unwrap();
    let err = r.expect_err("the call cannot succeed");
    assert_eq!(err.kind, ConnectorErrorKind::Disconnected, "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // While the host is down: a typed error, quickly.
    let err = c
        .exec(&RemoteCommand::new("true"))
        .await
        .expect_err("host is down");
    assert!(
        matches!(
            err.kind,
            ConnectorErrorKind::Connect | ConnectorErrorKind::Disconnected
        ),
        "{err}"
    );
    // Once it is back, the next operation reconnects by itself.
    sshd.restart().unwrap();
    let out = c
        .exec(&RemoteCommand::new("echo").arg("back"))
        .await
        .expect("reconnected");
    assert_eq!(text(&out.stdout), "back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_names_the_shell_cannot_export_and_home_relative_programs() {
    let c = common::loopback().await;
    // Names a shell cannot export are refused (issue 17: `env` read a program path with
    // `=` after them as an assignment); plain names carry any value.
    let cmd = RemoteCommand::new("printenv")
        .args(["odd-name.x", "PLAIN"])
        .env("odd-name.x", "v 1")
        .env("PLAIN", "p\nq");
    let err = c.exec(&cmd).await.unwrap_err();
    assert_eq!(err.kind, ConnectorErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("odd-name.x"), "{err}");
    let cmd = RemoteCommand::new("printenv")
        .arg("PLAIN")
        .env("PLAIN", "p\nq");
    let out = c.exec(&cmd).await.unwrap();
    assert_eq!(
        (out.exit_code, String::from_utf8_lossy(&out.stdout)),
        (Some(0), "p\nq\n".into()),
        "{out:?}"
    );

    let dir = sremote_testkit::unique_name("bin");
    c.push(
        Source::bytes(b"#!/bin/sh\npwd\n").mode(0o755),
        &format!("{dir}/where"),
    )
    .await
    .unwrap();
    let out = c
        .exec(&RemoteCommand::new(format!("{dir}/where")).cwd("/tmp"))
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, text(&out.stdout)),
        (Some(0), "/tmp".to_string()),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_reports_progress_and_keeps_mode() {
    use std::os::unix::fs::PermissionsExt;
    let c = common::loopback().await;
    let remote = format!("{}/tool", sremote_testkit::unique_name("modes"));
    let data = sremote_core::testsuite::pseudo_random(3 << 20, 7);
    c.push(Source::bytes(&data).mode(0o750), &remote)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("sub/tool");
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |n: u64| seen.lock().unwrap().push(n);
    c.pull(&remote, Dest::file(&local).progress(&progress))
        .await
        .unwrap();
    assert!(std::fs::read(&local).unwrap() == data);
    assert_eq!(
        std::fs::metadata(&local).unwrap().permissions().mode() & 0o777,
        0o750
    );
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]) && seen.last() == Some(&(data.len() as u64)),
        "{seen:?}"
    );
    let err = c
        .pull(&format!("{remote}/.."), Dest::file(&local))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ConnectorErrorKind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_streams_and_reports_exit() {
    let c = common::loopback().await;
    let script = "echo ready >&2; while read l; do echo \"got $l\"; done; exit 7";
    let mut p = c
        .spawn(&RemoteCommand::new("sh").args(["-c", script]))
        .await
        .unwrap();
    let mut err = tokio::io::BufReader::new(p.stderr);
    let mut line = String::new();
    err.read_line(&mut line).await.unwrap();
    assert_eq!(line, "ready\n");
    let mut out = tokio::io::BufReader::new(p.stdout);
    for i in 0..100 {
        p.stdin
            .write_all(format!("{i}\n").as_bytes())
            .await
            .unwrap();
        p.stdin.flush().await.unwrap();
        line.clear();
        out.read_line(&mut line).await.unwrap();
        assert_eq!(line, format!("got {i}\n"));
    }
    drop(p.stdin);
    drop((out, err));
    assert_eq!(p.wait.await.unwrap(), Some(7));

    let err = c
        .spawn(&RemoteCommand::new("true").cwd("no/such/dir"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ConnectorErrorKind::NotFound, "{err}");

    let p = c
        .spawn(
            &RemoteCommand::new("sleep")
                .arg("60")
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    let err = p.wait.await.unwrap_err();
    assert_eq!(err.kind, ConnectorErrorKind::Timeout, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_host_as_unprivileged_user() {
    let Some(c) = common::netns().await else {
        return;
    };
    let out = c
        .exec(&RemoteCommand::new("sh").args(["-c", "id -un; hostname; echo $HOME; pwd"]))
        .await
        .unwrap();
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let home = c.host.home.display().to_string();
    assert_eq!(
        lines,
        [c.host.user.clone(), c.host.name.clone(), home.clone(), home],
        "{out:?}"
    );
    assert_eq!(c.host(), format!("{}@{}:22", c.host.user, c.host.name));
    let data = sremote_core::testsuite::pseudo_random(1 << 20, 42);
    c.push(Source::bytes(&data), "data/x.bin").await.unwrap();
    assert_eq!(
        std::fs::read(c.host.home.join("data/x.bin")).unwrap(),
        data,
        "relative = the user's home"
    );
    let err = c
        .push(Source::bytes(b"x"), "/root/sremote-test")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ConnectorErrorKind::PermissionDenied, "{err}");
    let err = c
        .pull(
            "/root/.bashrc",
            Dest::file(&std::env::temp_dir().join("never")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind,
            ConnectorErrorKind::PermissionDenied | ConnectorErrorKind::NotFound
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_operations_than_the_hosts_max_sessions() {
    // The test sshd keeps sshd's default MaxSessions 10, like real hosts.
    let c = common::loopback().await;
    // a duration no other test on this machine uses, to find our own leftovers
    let secs = format!("30.{}", std::process::id());
    let started = Instant::now();
    let runs = (0..40).map(|i| {
        let (c, secs) = (c.clone(), secs.clone());
        async move {
            if i % 4 == 0 {
                let cmd = RemoteCommand::new("sleep")
                    .arg(secs)
                    .timeout(Duration::from_millis(300));
                let err = c.exec(&cmd).await.expect_err("must time out");
                assert_eq!(err.kind, ConnectorErrorKind::Timeout, "{err}");
            } else {
                let out = c
                    .exec(&RemoteCommand::new("echo").arg(i.to_string()))
                    .await
                    .unwrap();
                assert_eq!(text(&out.stdout), i.to_string());
            }
        }
    });
    futures_join(runs).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let count = "ps -eo stat=,args= | grep -v '^Z' | grep -c \"sleep $1\\$\"";
    let out = c
        .exec(&RemoteCommand::new("sh").args(["-c", count, "sh", &secs]))
        .await
        .unwrap();
    assert_eq!(text(&out.stdout), "0", "timed-out programs must be gone");
}
