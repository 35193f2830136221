//! The shared connector test-suite: the [`Connector`] contract as executable checks.
//!
//! Every connector crate runs all of it against a real host, the way object_store's
//! `integration` module is run by every backend:
//!
//! ```ignore
//! async fn fixture() -> sremote_core::testsuite::Fixture<MyConnector> { /* start a server */ }
//! sremote_core::connector_tests!(fixture);
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case (the calling crate needs `tokio` with
//! the `macros` and `rt-multi-thread` features as a dev-dependency). Each case is also a
//! public function, to run by hand. Cases need `sh`, `printf`, `cat`, `mkdir`, `stat`,
//! `sleep`, `ps`, `touch`, `ls`, `ln`, `chmod` and `kill` on the host (any POSIX host has
//! them; `stat` is tried as GNU `stat -c` and BSD `stat -f`).
//!
//! Connectors without [`spawn`](Connector::spawn) pass the spawn cases by answering
//! `Unsupported`; connectors without stdin pass `stdin_16_mib` by refusing it.

use std::time::{Duration, Instant};

use crate::connector::{Connector, Dest, RemoteCommand, Source};
use crate::error::ConnectorErrorKind;

#[cfg(test)]
mod broken;
mod process;
pub use process::*;

/// What a case needs: the connector, and places on the host.
#[derive(Debug)]
pub struct Fixture<C> {
    /// The connector under test, reaching a real host.
    pub connector: C,
    /// A writable directory on the host, unique to this test (created if missing).
    pub scratch: String,
    /// A directory on the host the connector's user cannot write into, if there is one.
    pub unwritable: Option<String>,
}

/// Expand to one test per case of the suite. `$make` is an `async fn() -> Fixture<C>`.
///
/// `connector_tests!(optional make)` takes an `async fn() -> Option<Fixture<C>>` instead:
/// `None` skips every case (the fixture says why, e.g. "needs root").
#[macro_export]
macro_rules! connector_tests {
    ($make:path) => {
        $crate::connector_tests!(@all cases $make);
    };
    (optional $make:path) => {
        $crate::connector_tests!(@all optional $make);
    };
    (@all $mode:ident $make:path) => {
        $crate::connector_tests!(@$mode $make;
            hostile_arguments, hostile_program_path, env_and_cwd, missing_cwd_is_not_found,
            stdin_16_mib, exit_codes_and_stderr, timeout_kills_children, push_pull_small_files,
            push_pull_64_mib, push_keeps_mode_and_replaces_atomically,
            pull_keeps_mode_and_modification_time, pull_missing_is_not_found,
            push_unwritable_is_permission_denied, refuses_nul_bytes,
            env_names_are_identifiers_and_program_paths_data, transfers_drop_setuid_bits,
            pull_of_a_symlink_keeps_the_targets_mode_and_time,
            transfers_replace_files_whole_never_in_place, push_keeps_the_local_files_mode,
            spawn_pipes_stdio_and_reports_the_exit_code, spawn_passes_arguments_env_and_cwd,
            spawn_timeout_kills, dropped_spawn_kills_the_process_group,
            dropped_exec_kills_the_process_group, refused_stdin_runs_nothing);
    };
    (@cases $make:path; $($case:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            $crate::testsuite::$case($make().await).await
        }
    )+};
    (@optional $make:path; $($case:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            if let Some(fixture) = $make().await {
                $crate::testsuite::$case(fixture).await
            }
        }
    )+};
}

/// 200 argument strings that a shell would mangle. Every one must arrive byte-identical.
pub fn hostile_strings() -> Vec<String> {
    let base: Vec<String> = [
        "",
        " ",
        "  two  spaces  ",
        "a b",
        "'",
        "''",
        "\"",
        "\"\"",
        "'\"'\"'",
        "\\",
        "\\\\",
        "\\'",
        "\\\"",
        "$HOME",
        "${HOME}",
        "$(id)",
        "`id`",
        "$((1+1))",
        "$'\\n'",
        ";",
        "; rm -rf /tmp/never",
        "&&",
        "||",
        "|",
        "| cat /etc/passwd",
        ">",
        ">>",
        "<",
        "2>&1",
        "&",
        "*",
        "?",
        "[a-z]",
        "{a,b}",
        "~",
        "~root",
        "#",
        "# c",
        "!",
        "!!",
        "!$",
        "%s",
        "%n",
        "\n",
        "\r\n",
        "line1\nline2",
        "\t",
        "tab\there",
        "-",
        "--",
        "-n",
        "-e",
        "--help",
        "-rf",
        "=",
        "a=b",
        "x\u{7f}y",
        "\u{1b}[31mred",
        "é",
        "日本語",
        "🦀",
        "ق",
        "\u{200b}",
        "\u{feff}",
        "Ω≈ç√",
        "' ; echo pwned ; '",
        "\"; echo pwned; \"",
        "$(echo pwned)",
        "`echo pwned`",
        "a'b\"c`d$e\\f",
        "\\n",
        "\x01\x02\x03",
        "end\\",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut out = base.clone();
    out.push("x".repeat(10_000));
    out.push("'".repeat(1000));
    out.push("$(id)`id`'\"\\ ;|&\n".repeat(200));
    let mut i = 0;
    while out.len() < 200 {
        let (a, b) = (&base[i % base.len()], &base[(i * 7 + 3) % base.len()]);
        out.push(format!("{a}{b}{i}"));
        i += 1;
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

async fn mkdir<C: Connector>(c: &C, dir: &str) {
    let out = c
        .exec(&RemoteCommand::new("mkdir").args(["-p", "--", dir]))
        .await
        .expect("mkdir");
    assert!(
        out.success(),
        "mkdir -p {dir} failed: {}",
        out.stderr_text()
    );
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    let mut parts: Vec<String> = bytes
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    parts.pop(); // after the last NUL
    parts
}

async fn pull_bytes<C: Connector>(c: &C, path: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("pulled");
    c.pull(path, Dest::file(&local))
        .await
        .unwrap_or_else(|e| panic!("pull {path}: {e}"));
    std::fs::read(&local).unwrap()
}

fn assert_same_strings(got: &[String], want: &[String]) {
    assert_eq!(got.len(), want.len(), "argument count differs");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "argument {i} arrived changed");
    }
}

/// 200 hostile strings as arguments arrive byte-identical.
pub async fn hostile_arguments<C: Connector>(f: Fixture<C>) {
    let strings = hostile_strings();
    let cmd = RemoteCommand::new("printf")
        .arg("%s\\0")
        .args(strings.clone());
    let out = f.connector.exec(&cmd).await.expect("exec printf");
    assert!(out.success(), "printf failed: {}", out.stderr_text());
    assert_same_strings(&split_nul(&out.stdout), &strings);
}

/// A program at a path with spaces and quotes runs, relative to home as well.
pub async fn hostile_program_path<C: Connector>(f: Fixture<C>) {
    let dir = format!("{}/bin dir 'q' \"d\" $(x)", f.scratch);
    let script = format!("{dir}/my prog;echo");
    f.connector
        .push(
            Source::bytes(b"#!/bin/sh\nprintf '%s\\0' \"$@\"\n").mode(0o755),
            &script,
        )
        .await
        .expect("push script");
    let out = f
        .connector
        .exec(&RemoteCommand::new(&script).args(["a b", "$(id)"]))
        .await
        .expect("exec");
    assert!(out.success(), "script failed: {:?}", out);
    assert_same_strings(&split_nul(&out.stdout), &["a b".into(), "$(id)".into()]);
}

/// Environment values and the working directory arrive as data.
pub async fn env_and_cwd<C: Connector>(f: Fixture<C>) {
    let cwd = format!("{}/cwd dir 'q' $(x)", f.scratch);
    mkdir(&f.connector, &cwd).await;
    let v1 = "$(id) `id` 'quoted' \"dq\" \\ ; | &".to_string();
    let v2 = "line1\nline2\ttab 日本".to_string();
    let cmd = RemoteCommand::new("sh")
        .args([
            "-c",
            "printf '%s\\0' \"$SREMOTE_T1\" \"$SREMOTE_T2\" \"$(pwd)\"",
        ])
        .env("SREMOTE_T1", &v1)
        .env("SREMOTE_T2", &v2)
        .cwd(&cwd);
    let out = f.connector.exec(&cmd).await.expect("exec with env and cwd");
    assert!(out.success(), "{:?}", out);
    let got = split_nul(&out.stdout);
    assert_eq!(got.len(), 3);
    assert_eq!((&got[0], &got[1]), (&v1, &v2));
    assert!(
        got[2].ends_with("/cwd dir 'q' $(x)"),
        "cwd was {:?}",
        got[2]
    );
}

/// A working directory that does not exist is a typed `NotFound`.
pub async fn missing_cwd_is_not_found<C: Connector>(f: Fixture<C>) {
    let cmd = RemoteCommand::new("true").cwd(format!("{}/no such dir", f.scratch));
    let err = f
        .connector
        .exec(&cmd)
        .await
        .expect_err("missing cwd must fail");
    assert_eq!(err.kind, ConnectorErrorKind::NotFound, "{err}");
}

/// 16 MiB through stdin and back through stdout (a connector without stdin must refuse
/// stdin with `Unsupported` instead).
pub async fn stdin_16_mib<C: Connector>(f: Fixture<C>) {
    if !f.connector.supports_stdin() {
        let err = f
            .connector
            .exec(&RemoteCommand::new("cat").stdin(b"x".to_vec()))
            .await
            .expect_err("stdin refused");
        assert_eq!(
            err.kind,
            ConnectorErrorKind::Unsupported,
            "a connector without stdin must say so: {err}"
        );
        return;
    }
    let data = pseudo_random(16 << 20, 16);
    let out = f
        .connector
        .exec(&RemoteCommand::new("cat").stdin(data.clone()))
        .await
        .expect("exec cat");
    assert!(out.success(), "{}", out.stderr_text());
    assert!(
        out.stdout == data,
        "16 MiB came back changed ({} bytes)",
        out.stdout.len()
    );
}

/// Exit codes, signals, stderr, and missing programs (127).
pub async fn exit_codes_and_stderr<C: Connector>(f: Fixture<C>) {
    let c = &f.connector;
    let out = c
        .exec(&RemoteCommand::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, &out.stdout[..], &out.stderr[..]),
        (Some(3), &b"out\n"[..], &b"err\n"[..])
    );
    let out = c
        .exec(&RemoteCommand::new("sh").args(["-c", "exit 255"]))
        .await
        .unwrap();
    assert_eq!(
        out.exit_code,
        Some(255),
        "a real remote 255 is an exit code, not a transport error"
    );
    let out = c
        .exec(&RemoteCommand::new("sh").args(["-c", "kill -9 $$"]))
        .await
        .unwrap();
    assert_eq!(out.exit_code, None, "killed by a signal");
    let out = c
        .exec(&RemoteCommand::new("sremote-no-such-program-x"))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(127), "missing program: {:?}", out);
}

/// A timeout kills the program and the children it started, and says so.
pub async fn timeout_kills_children<C: Connector>(f: Fixture<C>) {
    let c = &f.connector;
    mkdir(c, &f.scratch).await;
    let pidfile = format!("{}/child.pid", f.scratch);
    let script = "sleep 300 & echo $! > \"$1\"; wait";
    let started = Instant::now();
    let cmd = RemoteCommand::new("sh")
        .args(["-c", script, "sh", &pidfile])
        .timeout(Duration::from_secs(1));
    let err = c.exec(&cmd).await.expect_err("must time out");
    assert_eq!(err.kind, ConnectorErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "timeout took {:?}",
        started.elapsed()
    );
    let pid = String::from_utf8(pull_bytes(c, &pidfile).await).unwrap();
    let pid = pid.trim();
    assert!(
        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
        "pid file: {pid:?}"
    );
    assert_dies(c, pid, "after the timeout").await;
}

/// Wait (up to 5 s) until process `pid` on the host is gone; panic naming `when` if not.
async fn assert_dies<C: Connector>(c: &C, pid: &str, when: &str) {
    // Dead processes may linger as zombies here (PID 1 reaps lazily): alive = exists and not Z.
    let alive = "st=$(ps -o stat= -p \"$1\") || exit 1; case \"$st\" in Z*) exit 1;; esac; exit 0";
    for _ in 0..50 {
        let out = c
            .exec(&RemoteCommand::new("sh").args(["-c", alive, "sh", pid]))
            .await
            .unwrap();
        if !out.success() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("child process {pid} still runs {when}");
}

async fn round_trip<C: Connector>(c: &C, data: &[u8], remote: &str) {
    c.push(Source::bytes(data), remote)
        .await
        .unwrap_or_else(|e| panic!("push {remote}: {e}"));
    assert!(
        pull_bytes(c, remote).await == data,
        "{remote}: pulled bytes differ"
    );
    // and from a local file
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("src");
    std::fs::write(&local, data).unwrap();
    let remote2 = format!("{remote}.fromfile");
    let moved = std::sync::atomic::AtomicU64::new(0);
    let progress = |n: u64| moved.store(n, std::sync::atomic::Ordering::Relaxed);
    c.push(Source::file(&local).progress(&progress), &remote2)
        .await
        .unwrap();
    assert_eq!(
        moved.load(std::sync::atomic::Ordering::Relaxed),
        data.len() as u64,
        "progress did not reach the end"
    );
    assert!(
        pull_bytes(c, &remote2).await == data,
        "{remote2}: pulled bytes differ"
    );
}

/// Empty and binary files, paths with spaces and quotes, missing parents.
pub async fn push_pull_small_files<C: Connector>(f: Fixture<C>) {
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    round_trip(&f.connector, b"", &format!("{}/empty", f.scratch)).await;
    round_trip(
        &f.connector,
        &all_bytes,
        &format!("{}/new/parents/bin ary 'q' \"dq\" $(x)", f.scratch),
    )
    .await;
}

/// A 64 MiB file both ways, byte-identical.
pub async fn push_pull_64_mib<C: Connector>(f: Fixture<C>) {
    round_trip(
        &f.connector,
        &pseudo_random(64 << 20, 64),
        &format!("{}/big.bin", f.scratch),
    )
    .await;
}

/// Pushing keeps or sets the mode, and replaces an existing file whole.
pub async fn push_keeps_mode_and_replaces_atomically<C: Connector>(f: Fixture<C>) {
    let c = &f.connector;
    let remote = format!("{}/tool.sh", f.scratch);
    c.push(Source::bytes(b"#!/bin/sh\necho one\n").mode(0o755), &remote)
        .await
        .unwrap();
    let out = c.exec(&RemoteCommand::new(&remote)).await.unwrap();
    assert_eq!(
        out.stdout, b"one\n",
        "pushed script with mode 0755 must run: {:?}",
        out
    );
    c.push(Source::bytes(b"#!/bin/sh\necho two\n").mode(0o700), &remote)
        .await
        .unwrap();
    let out = c
        .exec(&RemoteCommand::new("stat").args(["-c", "%a", "--", &remote]))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "700");
    let out = c.exec(&RemoteCommand::new(&remote)).await.unwrap();
    assert_eq!(out.stdout, b"two\n");
    // No temporary file is left beside it.
    let out = c
        .exec(&RemoteCommand::new("ls").args(["-A", "--", &f.scratch]))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "tool.sh",
        "leftovers in the directory"
    );
}

/// Pulling keeps the file's mode and its modification time (whole seconds).
pub async fn pull_keeps_mode_and_modification_time<C: Connector>(f: Fixture<C>) {
    let c = &f.connector;
    let remote = format!("{}/dated.sh", f.scratch);
    c.push(
        Source::bytes(
            b"#!/bin/sh
",
        )
        .mode(0o750),
        &remote,
    )
    .await
    .unwrap();
    // 2020-01-02 03:04 in the host's time zone; POSIX `touch -t`.
    let out = c
        .exec(&RemoteCommand::new("touch").args(["-t", "202001020304", "--", &remote]))
        .await
        .unwrap();
    assert!(out.success(), "touch -t: {out:?}");
    let out = c
        .exec(&RemoteCommand::new("stat").args(["-c", "%Y", "--", &remote]))
        .await
        .unwrap();
    let secs: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("dated.sh");
    c.pull(&remote, Dest::file(&local)).await.unwrap();
    let meta = std::fs::metadata(&local).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
    let got = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(got, secs, "modification time kept");
}

/// Pulling a path that does not exist is a typed `NotFound`, and writes nothing locally.
pub async fn pull_missing_is_not_found<C: Connector>(f: Fixture<C>) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("never");
    let err = f
        .connector
        .pull(&format!("{}/does not exist", f.scratch), Dest::file(&local))
        .await
        .expect_err("pull of a missing file must fail");
    assert_eq!(err.kind, ConnectorErrorKind::NotFound, "{err}");
    assert!(!local.exists());
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "partial file left locally"
    );
}

/// Pushing into a directory the user cannot write is a typed `PermissionDenied`.
pub async fn push_unwritable_is_permission_denied<C: Connector>(f: Fixture<C>) {
    let Some(dir) = f.unwritable else {
        eprintln!("skipped: the fixture has no unwritable directory");
        return;
    };
    let err = f
        .connector
        .push(Source::bytes(b"x"), &format!("{dir}/sremote-test"))
        .await
        .expect_err("must fail");
    assert_eq!(err.kind, ConnectorErrorKind::PermissionDenied, "{err}");
}

/// Strings that cannot be passed to a program are refused before anything runs.
pub async fn refuses_nul_bytes<C: Connector>(f: Fixture<C>) {
    for cmd in [
        RemoteCommand::new("echo").arg("a\0b"),
        RemoteCommand::new("echo").env("A", "x\0y"),
        RemoteCommand::new("echo").env("A=B", "x"),
    ] {
        let err = f.connector.exec(&cmd).await.expect_err("must be refused");
        assert_eq!(err.kind, ConnectorErrorKind::InvalidInput, "{err}");
    }
}

/// An env name that is not an identifier is refused (nothing runs), and a program whose
/// path contains `=` runs as itself, never as an assignment that would run its first
/// argument instead.
pub async fn env_names_are_identifiers_and_program_paths_data<C: Connector>(f: Fixture<C>) {
    let prog = format!("{}/a=b/prog", f.scratch);
    let trap = format!("{}/trap", f.scratch);
    let script = b"#!/bin/sh\nprintf '%s\\0' \"$SREMOTE_T\" \"$@\"\n";
    for (path, body) in [
        (&prog, &script[..]),
        (&trap, b"#!/bin/sh\ntouch \"$0.ran\"\n"),
    ] {
        let src = Source::bytes(body).mode(0o755);
        f.connector.push(src, path).await.expect("push script");
    }
    for name in ["X-Y", "1X", "A B", "", "a=b"] {
        let cmd = RemoteCommand::new(&prog).arg(&trap).env(name, "1");
        let err = f.connector.exec(&cmd).await.expect_err("must be refused");
        assert_eq!(
            err.kind,
            ConnectorErrorKind::InvalidInput,
            "{name:?}: {err}"
        );
    }
    let cmd = RemoteCommand::new(&prog)
        .args([trap.as_str(), "x=y"])
        .env("SREMOTE_T", "v=w");
    let out = f.connector.exec(&cmd).await.expect("exec a=b/prog");
    assert!(out.success(), "{out:?}");
    assert_same_strings(
        &split_nul(&out.stdout),
        &["v=w".into(), trap.clone(), "x=y".into()],
    );
    let ls = RemoteCommand::new("ls").arg(format!("{trap}.ran"));
    let ran = f.connector.exec(&ls).await.expect("ls");
    assert!(!ran.success(), "the first argument was run as the program");
}

/// The mode of `path` on the host, from `stat -c %a` (GNU) or `stat -f %Lp` (BSD).
async fn remote_mode<C: Connector>(c: &C, path: &str) -> u32 {
    let script = r#"stat -c %a -- "$1" 2>/dev/null || stat -f %Lp -- "$1""#;
    let cmd = RemoteCommand::new("sh").args(["-c", script, "sh", path]);
    let out = c.exec(&cmd).await.expect("stat");
    u32::from_str_radix(String::from_utf8_lossy(&out.stdout).trim(), 8).expect("a mode")
}

/// Neither a push nor a pull creates a setuid, setgid or sticky file: modes are masked to
/// `0o777`.
pub async fn transfers_drop_setuid_bits<C: Connector>(f: Fixture<C>) {
    use std::os::unix::fs::PermissionsExt;
    let c = &f.connector;
    let pushed = format!("{}/suid-pushed", f.scratch);
    c.push(Source::bytes(b"#!/bin/sh\n").mode(0o7777), &pushed)
        .await
        .expect("push");
    assert_eq!(remote_mode(c, &pushed).await, 0o777, "pushed with 7777");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("suid-local");
    std::fs::write(&local, b"x").unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let from_file = format!("{}/suid-from-file", f.scratch);
    c.push(Source::file(&local), &from_file)
        .await
        .expect("push file");
    assert_eq!(
        remote_mode(c, &from_file).await,
        0o755,
        "pushed a 6755 file"
    );
    let chmod = RemoteCommand::new("chmod").args(["6755", "--", &pushed]);
    let out = c.exec(&chmod).await.expect("chmod");
    if !out.success() || remote_mode(c, &pushed).await != 0o6755 {
        eprintln!("skipped the pull half: the host does not keep setuid bits here");
        return;
    }
    let back = dir.path().join("suid-back");
    c.pull(&pushed, Dest::file(&back)).await.expect("pull");
    let mode = std::fs::metadata(&back).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "pulled a 6755 file");
}

/// Pulling a symlink gives the file it points to, with that file's mode and modification
/// time (not the link's 0777 and its own time).
pub async fn pull_of_a_symlink_keeps_the_targets_mode_and_time<C: Connector>(f: Fixture<C>) {
    use std::os::unix::fs::PermissionsExt;
    let c = &f.connector;
    let target = format!("{}/secret", f.scratch);
    let link = format!("{}/link", f.scratch);
    c.push(Source::bytes(b"secret").mode(0o600), &target)
        .await
        .expect("push");
    let touch = RemoteCommand::new("touch").args(["-t", "202001020304", "--", &target]);
    assert!(c.exec(&touch).await.expect("touch").success());
    let ln = RemoteCommand::new("ln").args(["-s", "secret", &link]);
    assert!(c.exec(&ln).await.expect("ln -s").success());
    let dir = tempfile::tempdir().unwrap();
    let (via_link, direct) = (dir.path().join("via-link"), dir.path().join("direct"));
    c.pull(&link, Dest::file(&via_link))
        .await
        .expect("pull link");
    c.pull(&target, Dest::file(&direct))
        .await
        .expect("pull file");
    assert_eq!(std::fs::read(&via_link).unwrap(), b"secret");
    let (l, d) = (
        std::fs::metadata(&via_link).unwrap(),
        std::fs::metadata(&direct).unwrap(),
    );
    assert_eq!(
        l.permissions().mode() & 0o7777,
        0o600,
        "a link to a 0600 file"
    );
    assert_eq!(
        l.modified().unwrap(),
        d.modified().unwrap(),
        "the target's time"
    );
}

/// Read `path` on the host through `cat` (not through pull: the case checks pull).
async fn cat<C: Connector>(c: &C, path: &str) -> Vec<u8> {
    let out = c
        .exec(&RemoteCommand::new("cat").args(["--", path]))
        .await
        .expect("cat");
    assert!(out.success(), "cat {path}: {}", out.stderr_text());
    out.stdout
}

/// Push and pull replace the destination by renaming a new file over it, never by writing
/// into the existing one: a hard link to the old file keeps the old bytes (an in-place
/// write would change them too, and a reader could see half a file).
pub async fn transfers_replace_files_whole_never_in_place<C: Connector>(f: Fixture<C>) {
    let c = &f.connector;
    let (remote, link) = (
        format!("{}/whole", f.scratch),
        format!("{}/whole.link", f.scratch),
    );
    c.push(Source::bytes(b"old"), &remote).await.expect("push");
    let ln = RemoteCommand::new("ln").args(["--", &remote, &link]);
    assert!(c.exec(&ln).await.expect("ln").success(), "ln");
    c.push(Source::bytes(b"new bytes"), &remote)
        .await
        .expect("push again");
    assert_eq!(cat(c, &remote).await, b"new bytes");
    assert_eq!(
        cat(c, &link).await,
        b"old",
        "push wrote into the existing file"
    );
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    std::fs::write(&local, b"new from a file").unwrap();
    c.push(Source::file(&local), &remote)
        .await
        .expect("push a file");
    assert_eq!(cat(c, &link).await, b"old", "push of a file wrote in place");
    let (pulled, pulled_link) = (dir.path().join("pulled"), dir.path().join("pulled.link"));
    std::fs::write(&pulled, b"local old").unwrap();
    std::fs::hard_link(&pulled, &pulled_link).unwrap();
    c.pull(&remote, Dest::file(&pulled)).await.expect("pull");
    assert_eq!(std::fs::read(&pulled).unwrap(), b"new from a file");
    assert_eq!(
        std::fs::read(&pulled_link).unwrap(),
        b"local old",
        "pull wrote into the existing local file"
    );
}

/// Pushing a local file without an explicit mode gives the host file the local file's
/// mode (setuid/setgid/sticky dropped).
pub async fn push_keeps_the_local_files_mode<C: Connector>(f: Fixture<C>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o751, 0o600, 0o640] {
        let local = dir.path().join(format!("m{mode:o}"));
        std::fs::write(&local, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(mode)).unwrap();
        let remote = format!("{}/mode-{mode:o}", f.scratch);
        f.connector
            .push(Source::file(&local), &remote)
            .await
            .expect("push");
        assert_eq!(
            remote_mode(&f.connector, &remote).await,
            mode,
            "the local file's mode {mode:o}"
        );
    }
}
