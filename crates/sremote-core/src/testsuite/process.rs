//! The suite's process cases: spawn, dropping an exec or a spawned process, refused stdin.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Fixture, assert_dies, assert_same_strings, hostile_strings, mkdir, split_nul};
use crate::connector::{Connector, RemoteCommand, RemoteProcess};
use crate::error::ConnectorErrorKind;

/// `spawn`, or `None` (and a note) when the connector does not offer it.
async fn spawn_or_skip<C: Connector>(c: &C, cmd: &RemoteCommand) -> Option<RemoteProcess> {
    match c.spawn(cmd).await {
        Err(e) if e.kind == ConnectorErrorKind::Unsupported => {
            eprintln!("skipped: {} does not offer spawn ({e})", c.host());
            None
        }
        r => Some(r.unwrap_or_else(|e| panic!("spawn {}: {e}", cmd.program))),
    }
}

/// A spawned program reads its piped stdin, writes stdout and stderr (nothing else: no
/// markers or login noise), and `wait` gives its exit code.
pub async fn spawn_pipes_stdio_and_reports_the_exit_code<C: Connector>(f: Fixture<C>) {
    let script = r#"read x; echo "got $x"; echo err >&2; read y; echo "then $y"; exit 4"#;
    let cmd = RemoteCommand::new("sh").args(["-c", script]);
    let Some(mut p) = spawn_or_skip(&f.connector, &cmd).await else {
        return;
    };
    p.stdin.write_all(b"one\n").await.unwrap();
    let mut first = vec![0u8; 8];
    p.stdout
        .read_exact(&mut first)
        .await
        .expect("the first line");
    assert_eq!(first, b"got one\n", "answers while it runs");
    p.stdin.write_all(b"two\n").await.unwrap();
    p.stdin.shutdown().await.unwrap();
    drop(p.stdin);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    p.stdout.read_to_end(&mut out).await.unwrap();
    p.stderr.read_to_end(&mut err).await.unwrap();
    assert_eq!(
        (out.as_slice(), err.as_slice()),
        (&b"then two\n"[..], &b"err\n"[..])
    );
    assert_eq!(p.wait.await.expect("wait"), Some(4));
    let missing = RemoteCommand::new("sremote-no-such-program-x");
    let mut p = spawn_or_skip(&f.connector, &missing).await.expect("spawn");
    let mut sink = Vec::new();
    let _ = p.stdout.read_to_end(&mut sink).await;
    // `wait` may wait for both output streams to be read or dropped (the contract).
    drop((p.stdout, p.stderr));
    assert_eq!(p.wait.await.expect("wait"), Some(127), "a missing program");
}

/// Spawn keeps promises 1 and 2 like exec: hostile arguments, env and cwd arrive as data;
/// a missing cwd is `NotFound` from `spawn` itself.
pub async fn spawn_passes_arguments_env_and_cwd<C: Connector>(f: Fixture<C>) {
    let cwd = format!("{}/spawn cwd 'q' $(x)", f.scratch);
    mkdir(&f.connector, &cwd).await;
    let strings = hostile_strings();
    let cmd = RemoteCommand::new("sh")
        .args(["-c", r#"printf '%s\0' "$SREMOTE_T" "$(pwd)" "$@""#, "sh"])
        .args(strings.clone())
        .env("SREMOTE_T", "$(id) 'v'")
        .cwd(&cwd);
    let Some(mut p) = spawn_or_skip(&f.connector, &cmd).await else {
        return;
    };
    drop(p.stdin);
    let mut out = Vec::new();
    p.stdout.read_to_end(&mut out).await.unwrap();
    drop(p.stderr);
    assert_eq!(p.wait.await.expect("wait"), Some(0));
    let got = split_nul(&out);
    assert_eq!(got[0], "$(id) 'v'");
    assert!(
        got[1].ends_with("/spawn cwd 'q' $(x)"),
        "cwd was {:?}",
        got[1]
    );
    assert_same_strings(&got[2..], &strings);
    let missing = RemoteCommand::new("true").cwd(format!("{}/no such dir", f.scratch));
    let err = f.connector.spawn(&missing).await.expect_err("missing cwd");
    assert_eq!(err.kind, ConnectorErrorKind::NotFound, "{err}");
}

/// A spawned program's timeout holds whether or not anyone polls `wait`: it is killed,
/// with its children, and `wait` says `Timeout`.
pub async fn spawn_timeout_kills<C: Connector>(f: Fixture<C>) {
    let cmd = RemoteCommand::new("sh")
        .args(["-c", "sleep 300 & echo $!; wait"])
        .timeout(Duration::from_secs(1));
    let Some(mut p) = spawn_or_skip(&f.connector, &cmd).await else {
        return;
    };
    let pid = first_line(&mut p).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let err = p.wait.await.expect_err("must time out");
    assert_eq!(err.kind, ConnectorErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "wait hung");
    assert_dies(&f.connector, &pid, "after the spawn timeout").await;
}

async fn first_line(p: &mut RemoteProcess) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while p.stdout.read_exact(&mut b).await.is_ok() && b[0] != b'\n' {
        line.push(b[0]);
    }
    let line = String::from_utf8(line).unwrap();
    assert!(
        !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()),
        "a pid: {line:?}"
    );
    line
}

/// Dropping a spawned process (its `wait` not awaited) kills it and every process of its
/// group on the host.
pub async fn dropped_spawn_kills_the_process_group<C: Connector>(f: Fixture<C>) {
    let cmd = RemoteCommand::new("sh").args(["-c", "sleep 300 & echo $!; wait"]);
    let Some(mut p) = spawn_or_skip(&f.connector, &cmd).await else {
        return;
    };
    let pid = first_line(&mut p).await;
    drop(p);
    assert_dies(&f.connector, &pid, "after the spawned process was dropped").await;
}

/// Dropping an `exec` future before it finished kills the program and every process of
/// its group on the host (the caller gave up: a `select!`, a timeout around the call).
/// Also checks concurrent use: another exec runs while this one does.
pub async fn dropped_exec_kills_the_process_group<C: Connector>(f: Fixture<C>) {
    let c = &f.connector;
    mkdir(c, &f.scratch).await;
    let pidfile = format!("{}/dropped.pid", f.scratch);
    let script = "sleep 300 & echo $! > \"$1.part\"; mv \"$1.part\" \"$1\"; wait";
    let cmd = RemoteCommand::new("sh").args(["-c", script, "sh", &pidfile]);
    let poll = async {
        loop {
            let out = c
                .exec(&RemoteCommand::new("cat").args(["--", &pidfile]))
                .await
                .expect("cat");
            if out.success() {
                return String::from_utf8(out.stdout).unwrap().trim().to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let pid = tokio::select! {
        r = c.exec(&cmd) => panic!("the exec ended by itself: {r:?}"),
        pid = poll => pid,
        () = tokio::time::sleep(Duration::from_secs(30)) => panic!("no pid file after 30 s"),
    };
    assert_dies(c, &pid, "after the exec future was dropped").await;
}

/// A connector without stdin refuses a command with stdin before anything runs, and
/// accepts an empty stdin. (Connectors with stdin: nothing to check here.)
pub async fn refused_stdin_runs_nothing<C: Connector>(f: Fixture<C>) {
    let c = &f.connector;
    if c.supports_stdin() {
        let out = c
            .exec(&RemoteCommand::new("cat").stdin(Vec::new()))
            .await
            .expect("an empty stdin");
        assert_eq!(out.stdout, b"");
        return;
    }
    mkdir(c, &f.scratch).await;
    let mark = format!("{}/ran", f.scratch);
    let cmd = RemoteCommand::new("touch").args(["--", &mark]);
    let err = c
        .exec(&cmd.clone().stdin(b"x".to_vec()))
        .await
        .expect_err("stdin must be refused");
    assert_eq!(err.kind, ConnectorErrorKind::Unsupported, "{err}");
    let ls = c.exec(&RemoteCommand::new("ls").args(["--", &mark])).await;
    assert!(!ls.expect("ls").success(), "the refused command ran");
    let out = c.exec(&cmd.stdin(Vec::new())).await.expect("empty stdin");
    assert!(out.success(), "{out:?}");
}
