//! The Python bridge over a real sshd: any module python3 can import is callable; values,
//! output, exceptions and big integers cross intact in every call mode; a session keeps one
//! Python worker whose state persists; `check_modules` asks Python; a host without python3
//! says so. Each test starts its own sshd (a fresh HOME is a fresh host).
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sremote_core::protocol::ErrorKind;
use sremote_core::{Blob, CallMode, CallOutput, Error, RemoteClient};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;
use sremote_tests::{MODES, alive, connect};

/// A Python module of our own on the host, in `~/pyhelpers` (put on the path by the client).
const HELPERS: &str = r#"
import os, sys

counter = 0

def bump():
    global counter
    counter += 1
    return counter

def shout_and_fail(word):
    print("about to fail on", word)
    print("a warning", file=sys.stderr)
    return _inner(word)

def _inner(word):
    raise ValueError("bad word: " + word)

def identity(x):
    return x

def reverse_bytes(b):
    return bytes(reversed(b))

class Opaque:
    pass

def opaque():
    return Opaque()

def converted():
    import array, datetime, pathlib
    return {"arr": array.array("i", [1, 2]), "when": datetime.date(2024, 5, 17),
            "path": pathlib.Path("/x/y"), "nan": float("nan"), "set": {3, 1, 2},
            "tuple": (1, "a"), "neg": -2**70, "max": 2**64 - 1}

def pid():
    return os.getpid()

def sleep(s):
    import time
    time.sleep(s)
    return s
"#;

fn with_helpers(sshd: &Sshd, client: &RemoteClient<SshConnector>) {
    let dir = sshd.home.join("pyhelpers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("helpers.py"), HELPERS).unwrap();
    client.add_remote_path(dir.to_str().unwrap());
}

fn remote(err: &Error) -> &sremote_core::RemoteExecError {
    match err {
        Error::RemoteExec(e) => e,
        other => panic!("expected a remote error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdlib_functions_values_and_big_integers_in_every_mode() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    client.register_remote_env_variable("myVar", "myValue $(id) 'q' `x`");
    let factorial_50 = "30414093201713378043612608166064768844377641568960512000000000000";
    for mode in MODES {
        // `os` is a built-in module of the endpoint: `py:os` is Python's.
        let v: CallOutput<String> = client
            .call("py:os", "getenv")
            .arg("myVar")
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(v.value, "myValue $(id) 'q' `x`", "{mode:?}");
        assert_eq!(v.meta.mode, mode);
        let dumped: CallOutput<String> = client
            .call("json", "dumps")
            .arg(json!({"b": [1, 2.5, null], "a": "é"}))
            .kwarg("sort_keys", true)
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(
            dumped.value, r#"{"a": "\u00e9", "b": [1, 2.5, null]}"#,
            "{mode:?}"
        );
        // Integers beyond 64 bits come back as decimal strings, exactly.
        let big: CallOutput<String> = client
            .call("math", "factorial")
            .arg(50)
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(big.value, factorial_50, "{mode:?}");
        let small: CallOutput<u64> = client
            .call("math", "factorial")
            .arg(20)
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(small.value, 2_432_902_008_176_640_000);
        let joined: CallOutput<String> = client
            .call("os.path", "join")
            .args(["/a", "b c", "$(d)"])
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(joined.value, "/a/b c/$(d)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_exceptions_and_conversions() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    with_helpers(&sshd, &client);
    for mode in MODES {
        let err = client
            .call::<Value>("helpers", "shout_and_fail")
            .arg("xyzzy")
            .mode(mode)
            .await
            .unwrap_err();
        let e = remote(&err);
        assert_eq!(e.kind, ErrorKind::Raised, "{mode:?}: {err}");
        assert_eq!(e.message, "ValueError: bad word: xyzzy");
        let tb = e.traceback.as_deref().unwrap_or_default();
        assert!(
            tb.contains("helpers.py")
                && tb.contains("in _inner")
                && tb.contains("raise ValueError"),
            "{tb}"
        );
        assert!(
            !tb.contains("sremote-python-bridge"),
            "the bridge's frames are left out: {tb}"
        );
        assert_eq!(e.stdout, "about to fail on xyzzy\n", "{mode:?}");
        assert_eq!(e.stderr, "a warning\n", "{mode:?}");

        let err = client
            .call::<Value>("helpers", "opaque")
            .mode(mode)
            .await
            .unwrap_err();
        let e = remote(&err);
        assert_eq!(e.kind, ErrorKind::Raised);
        assert!(
            e.message.contains("helpers.Opaque") && e.message.contains("no JSON form"),
            "{}",
            e.message
        );

        let v: CallOutput<Value> = client
            .call("helpers", "converted")
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(
            v.value,
            json!({"arr": [1, 2], "when": "2024-05-17", "path": "/x/y", "nan": null, "set": [1, 2, 3],
                   "tuple": [1, "a"], "neg": "-1180591620717411303424", "max": u64::MAX})
        );

        let bytes: Vec<u8> = (0..=255).collect();
        let back: CallOutput<Blob> = client
            .call("helpers", "reverse_bytes")
            .arg(Blob(bytes.clone()))
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(
            back.value.0,
            bytes.iter().rev().copied().collect::<Vec<u8>>(),
            "{mode:?}"
        );

        let err = client
            .call::<Value>("helpers", "identity")
            .mode(mode)
            .await
            .unwrap_err();
        let e = remote(&err);
        assert_eq!(e.kind, ErrorKind::BadArguments, "{err}");
        assert!(e.message.contains("helpers.identity(x)"), "{}", e.message);

        let err = client
            .call::<Value>("helpers", "nope")
            .mode(mode)
            .await
            .unwrap_err();
        assert_eq!(remote(&err).kind, ErrorKind::FunctionNotFound, "{err}");
        let err = client
            .call::<Value>("no_such_module_xyz", "f")
            .mode(mode)
            .await
            .unwrap_err();
        let e = remote(&err);
        assert_eq!(e.kind, ErrorKind::ModuleNotFound, "{err}");
        assert!(
            e.message.contains("cannot import `no_such_module_xyz`"),
            "{}",
            e.message
        );
    }
    // Hostile strings are data, in and out.
    for (i, s) in sremote_core::testsuite::hostile_strings()
        .iter()
        .enumerate()
    {
        let mode = MODES[i % 3];
        let back: CallOutput<String> = client
            .call("helpers", "identity")
            .arg(s)
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(&back.value, s, "string {i} in {mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_worker_keeps_module_state_and_env_follows_calls() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    with_helpers(&sshd, &client);
    // One worker, so that module state is that of one interpreter (the pool's behaviour
    // with more workers is tested in python_pool.rs).
    assert_eq!(client.set_python_workers(1).await.unwrap(), 1);
    let mut pids = Vec::new();
    for expected in 1..=3 {
        let n: CallOutput<u32> = client
            .call("helpers", "bump")
            .mode(CallMode::Session)
            .await
            .unwrap();
        assert_eq!(
            n.value, expected,
            "module state persists in the session's worker"
        );
        pids.push(
            client
                .call::<u32>("helpers", "pid")
                .mode(CallMode::Session)
                .await
                .unwrap()
                .value,
        );
    }
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "one worker per session: {pids:?}"
    );
    // Pipe mode: a fresh interpreter per call.
    for _ in 0..2 {
        let n: CallOutput<u32> = client
            .call("helpers", "bump")
            .mode(CallMode::Pipe)
            .await
            .unwrap();
        assert_eq!(n.value, 1);
    }
    // Per-call environment reaches the worker, and is gone again on the next call.
    let v: CallOutput<Option<String>> = client
        .call("py:os", "getenv")
        .arg("ONLY_NOW")
        .env("ONLY_NOW", "yes")
        .mode(CallMode::Session)
        .await
        .unwrap();
    assert_eq!(v.value.as_deref(), Some("yes"));
    let v: CallOutput<Option<String>> = client
        .call("py:os", "getenv")
        .arg("ONLY_NOW")
        .mode(CallMode::Session)
        .await
        .unwrap();
    assert_eq!(v.value, None);
    // A timeout kills the worker (state lost); the next call gets a new one.
    let err = client
        .call::<Value>("helpers", "sleep")
        .arg(30)
        .timeout(Duration::from_millis(500))
        .mode(CallMode::Session)
        .await
        .unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::Timeout, "{err}");
    let started = Instant::now();
    let n: CallOutput<u32> = client
        .call("helpers", "bump")
        .mode(CallMode::Session)
        .await
        .unwrap();
    assert_eq!(n.value, 1, "a new worker after the timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid: u32 = client
        .call("helpers", "pid")
        .mode(CallMode::Session)
        .await
        .unwrap()
        .value;
    assert_ne!(pid, pids[0]);
    // Concurrent Python calls of one session all complete, one at a time in the one worker.
    let calls: Vec<_> = (0..20)
        .map(|i| client.call_async::<i64>("helpers", "identity", sremote_core::args![i]))
        .collect();
    for (i, mut c) in calls.into_iter().enumerate() {
        assert_eq!(
            c.get(Some(Duration::from_secs(30))).await.unwrap().value,
            i as i64
        );
    }
    // Cancelling a running Python call kills the worker; the next call gets a new one.
    let worker: u32 = client.call("helpers", "pid").await.unwrap().value;
    let mut slow = client.call_async::<Value>("helpers", "sleep", sremote_core::args![30]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    slow.cancel().await.unwrap();
    let err = slow.get(Some(Duration::from_secs(10))).await.unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::Cancelled, "{err}");
    let n: CallOutput<u32> = client.call("helpers", "bump").await.unwrap();
    assert_eq!(n.value, 1, "a new worker after the cancel");
    assert!(
        !alive(worker),
        "the cancelled call's worker {worker} is gone"
    );
    // Closing the session ends its worker too: nothing is left on the host.
    let worker: u32 = client.call("helpers", "pid").await.unwrap().value;
    assert!(alive(worker));
    client.close_session().await;
    let started = Instant::now();
    while alive(worker) && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(worker), "worker {worker} outlived its session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_modules_asks_python_for_versions() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    for mode in [CallMode::Session, CallMode::Pipe] {
        client.set_call_mode(mode);
        client
            .check_modules(["json", "os", "py:os", "email.mime"])
            .await
            .unwrap();
        let err = client
            .check_modules(["json", "numpy_surely_absent_xyz", "os"])
            .await
            .unwrap_err();
        match &err {
            Error::ModulesMissing(m) => {
                assert_eq!(m.missing, ["numpy_surely_absent_xyz"], "{mode:?}");
                assert!(
                    m.present["json"].starts_with("stdlib (Python 3."),
                    "{:?}",
                    m.present
                );
                assert!(m.present.contains_key("os"));
            }
            other => panic!("{mode:?}: expected ModulesMissing, got {other}"),
        }
        assert!(err.to_string().contains("numpy_surely_absent_xyz"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_python3_says_so() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    client.do_bootstrap_install().await.unwrap();
    // The calls see a PATH without python3 (and the fresh host has no venv).
    let empty = tempfile::tempdir().unwrap();
    client.register_remote_env_variable("PATH", empty.path().to_str().unwrap());
    for mode in MODES {
        let err = client
            .call::<Value>("json", "dumps")
            .arg(1)
            .mode(mode)
            .await
            .unwrap_err();
        let e = remote(&err);
        assert_eq!(e.kind, ErrorKind::ModuleNotFound, "{mode:?}: {err}");
        assert!(e.message.contains("python3 is missing"), "{}", e.message);
        assert!(
            e.message.contains(".sremote/venv/bin/python3"),
            "{}",
            e.message
        );
        let err = client.check_modules(["json"]).await.unwrap_err();
        assert!(
            matches!(&err, Error::ModulesMissing(m) if m.missing == ["json"]),
            "{err}"
        );
        // Built-in modules work all the same.
        let v: CallOutput<Option<String>> = client
            .call("os", "getenv")
            .arg("PATH")
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(v.value.as_deref(), empty.path().to_str());
    }
}

/// Latency of a Python-bridge call next to a built-in call over the loopback sshd
/// (sequential calls, medians). Not a timed test: run it by hand and read the output:
/// `cargo nextest run -p sremote-tests --test python_bridge --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn latency_of_python_calls_next_to_builtin_calls() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    async fn median(
        client: &RemoteClient<SshConnector>,
        module: &str,
        mode: CallMode,
        n: usize,
    ) -> Duration {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let _: CallOutput<Option<String>> = client
                .call(module, "getenv")
                .arg("HOME")
                .mode(mode)
                .await
                .unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        times[n / 2]
    }
    for (mode, n) in [(CallMode::Session, 2000), (CallMode::Pipe, 100)] {
        median(&client, "os", mode, 20).await;
        median(&client, "py:os", mode, 20).await;
        let mut rows = Vec::new();
        for _ in 0..3 {
            let builtin = median(&client, "os", mode, n).await;
            let python = median(&client, "py:os", mode, n).await;
            rows.push((builtin, python));
        }
        rows.sort_by(|a, b| {
            (a.1.as_secs_f64() / a.0.as_secs_f64())
                .total_cmp(&(b.1.as_secs_f64() / b.0.as_secs_f64()))
        });
        let (builtin, python) = rows[1];
        println!(
            "{mode:?}: os.getenv built-in p50 {:.1} µs, py:os.getenv p50 {:.1} µs, ratio {:.2} (median of 3 runs of {n})",
            builtin.as_secs_f64() * 1e6,
            python.as_secs_f64() * 1e6,
            python.as_secs_f64() / builtin.as_secs_f64()
        );
    }
}
