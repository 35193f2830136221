//! Session mode's Python workers on this machine (the local connector spawns a real
//! `sremote-endpoint serve`): a pool of workers runs a session's Python calls in parallel;
//! a timeout or a cancel kills only its call's worker; a pool of one serialises; the
//! namespace worker (`execute`, `run_source`) keeps one Python namespace in sync with the
//! session's value store, apart from the pool.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sremote_core::protocol::ErrorKind;
use sremote_core::{CallMode, Error, LocalConnector, Ref, RemoteClient};
use sremote_tests::{alive, wait_dead};

const HELPERS: &str = r#"
import os, time

def nap(seconds, pidfile=None):
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()

def identity(x):
    return x
"#;

struct Host {
    client: RemoteClient<LocalConnector>,
    home: tempfile::TempDir,
}

impl Host {
    fn pidfile(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
}

fn host() -> Host {
    let home = tempfile::Builder::new()
        .prefix("sremote-pypool-home-")
        .tempdir()
        .unwrap();
    let dir = home.path().join("pyhelpers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pool_helpers.py"), HELPERS).unwrap();
    let client = RemoteClient::new(LocalConnector::with_home(home.path()));
    client.set_call_mode(CallMode::Session);
    client.add_remote_path(dir.to_str().unwrap());
    Host { client, home }
}

fn remote(err: &Error) -> &sremote_core::RemoteExecError {
    match err {
        Error::RemoteExec(e) => e,
        other => panic!("expected a remote error, got {other}"),
    }
}

/// The pid a call wrote to `path` (waits for it).
async fn pid_in(path: &Path) -> u32 {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no pid in {}", path.display());
}

async fn naps(
    client: &RemoteClient<LocalConnector>,
    n: usize,
    seconds: f64,
) -> (Duration, Vec<u32>) {
    let started = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|_| client.call_async::<u32>("pool_helpers", "nap", sremote_core::args![seconds]))
        .collect();
    let mut pids = Vec::new();
    for mut c in calls {
        pids.push(c.get(Some(Duration::from_secs(60))).await.unwrap().value);
    }
    (started.elapsed(), pids)
}

/// Regression test of issue 12: 8 calls of a 1 s Python function in one session took
/// 8 s (one worker per session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_one_second_calls_run_in_parallel() {
    let h = host();
    assert_eq!(h.client.set_python_workers(8).await.unwrap(), 8);
    // Start the 8 workers first: 8 interpreters starting at once cost ≈ 1 s of CPU, up to
    // 2 s on a loaded 2-core VM, which is not what this test measures.
    let (cold, _) = naps(&h.client, 8, 0.5).await;
    eprintln!("8 × 0.5 s calls on a cold pool: {cold:?}");
    let (elapsed, pids) = naps(&h.client, 8, 1.0).await;
    eprintln!("8 × 1 s calls on a warm pool: {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(4),
        "8 × 1 s Python calls took {elapsed:?}: not in parallel"
    );
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "8 workers: {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_one_serialises_and_keeps_its_worker() {
    let h = host();
    assert_eq!(h.client.set_python_workers(1).await.unwrap(), 1);
    let (elapsed, pids) = naps(&h.client, 3, 0.5).await;
    assert!(
        elapsed >= Duration::from_millis(1400),
        "3 × 0.5 s calls on one worker took {elapsed:?}"
    );
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "one worker: {pids:?}"
    );
    // The default is the CPU count; asking without a size returns it.
    let size: usize = h
        .client
        .call("session", "python_workers")
        .await
        .unwrap()
        .value;
    assert_eq!(size, 1);
    let err = h.client.set_python_workers(0).await.unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::BadArguments, "{err}");
    assert!(err.to_string().contains("between 1 and"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_only_its_worker() {
    let h = host();
    h.client.set_python_workers(4).await.unwrap();
    naps(&h.client, 2, 0.3).await; // two workers started: the calls below take them
    let (slow_pid, other_pid) = (h.pidfile("slow.pid"), h.pidfile("other.pid"));
    let mut other = h.client.call_async::<u32>(
        "pool_helpers",
        "nap",
        sremote_core::args![2.0, other_pid.to_str().unwrap()],
    );
    let slow = h
        .client
        .call::<u32>("pool_helpers", "nap")
        .arg(30)
        .arg(slow_pid.to_str().unwrap())
        .timeout(Duration::from_secs(1))
        .await;
    let err = slow.unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::Timeout, "{err}");
    let (slow_pid, other_pid) = (pid_in(&slow_pid).await, pid_in(&other_pid).await);
    assert_ne!(slow_pid, other_pid);
    wait_dead(slow_pid, "the timed-out call's worker").await;
    assert!(alive(other_pid), "the other call's worker was killed");
    let out = other.get(Some(Duration::from_secs(30))).await.unwrap();
    assert_eq!(
        out.value, other_pid,
        "the other call completed in its worker"
    );
    // The pool goes on: the next calls start a fresh worker where needed.
    let (_, pids) = naps(&h.client, 2, 0.1).await;
    assert!(!pids.contains(&slow_pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_kills_only_its_worker() {
    let h = host();
    h.client.set_python_workers(4).await.unwrap();
    naps(&h.client, 2, 0.3).await; // two workers started: the calls below take them
    let (slow_pid, other_pid) = (h.pidfile("slow.pid"), h.pidfile("other.pid"));
    let mut other = h.client.call_async::<u32>(
        "pool_helpers",
        "nap",
        sremote_core::args![2.0, other_pid.to_str().unwrap()],
    );
    let mut slow = h.client.call_async::<u32>(
        "pool_helpers",
        "nap",
        sremote_core::args![30, slow_pid.to_str().unwrap()],
    );
    let (slow_pid, other_pid) = (pid_in(&slow_pid).await, pid_in(&other_pid).await);
    slow.cancel().await.unwrap();
    let err = slow.get(Some(Duration::from_secs(10))).await.unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::Cancelled, "{err}");
    wait_dead(slow_pid, "the cancelled call's worker").await;
    let out = other.get(Some(Duration::from_secs(30))).await.unwrap();
    assert_eq!(out.value, other_pid);
    assert!(alive(other_pid), "the other worker stays in the pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_can_be_cancelled_and_times_out_in_line() {
    let h = host();
    h.client.set_python_workers(1).await.unwrap();
    let busy_pid = h.pidfile("busy.pid");
    let mut busy = h.client.call_async::<u32>(
        "pool_helpers",
        "nap",
        sremote_core::args![3.0, busy_pid.to_str().unwrap()],
    );
    let busy_pid = pid_in(&busy_pid).await;
    let mut waiting = h
        .client
        .call_async::<u32>("pool_helpers", "nap", sremote_core::args![0]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    waiting.cancel().await.unwrap();
    let err = waiting.get(Some(Duration::from_secs(5))).await.unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::Cancelled, "{err}");
    let err = h
        .client
        .call::<u32>("pool_helpers", "nap")
        .arg(0)
        .timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::Timeout, "{err}");
    assert!(alive(busy_pid), "waiting calls kill no worker");
    assert_eq!(
        busy.get(Some(Duration::from_secs(10))).await.unwrap().value,
        busy_pid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_and_the_store_see_the_same_names() {
    let h = host();
    let c = &h.client;
    let out = c.execute("a = 5\nprint('a is', a)").await.unwrap();
    assert_eq!(out.stdout, "a is 5\n");
    assert_eq!(out.value["changed"], json!(["a"]));
    assert_eq!(c.pull_value::<i64>("a").await.unwrap(), 5);
    // Pushed values are names in the namespace.
    c.push_value("p", vec![1, 2, 3]).await.unwrap();
    c.execute("q = sum(p)").await.unwrap();
    assert_eq!(c.pull_value::<i64>("q").await.unwrap(), 6);
    // Changed in place: found by its JSON form.
    c.execute("lst = [1]").await.unwrap();
    c.execute("lst.append(2)").await.unwrap();
    assert_eq!(c.pull_value::<Vec<i64>>("lst").await.unwrap(), vec![1, 2]);
    // A pushed value replaces the namespace's.
    c.push_value("a", 7).await.unwrap();
    let out = c.execute("print(a * 2)").await.unwrap();
    assert_eq!(out.stdout, "14\n");
    // Deleted in the namespace: gone from the store; deleted in the store: gone there.
    c.execute("del q").await.unwrap();
    let err = c.pull_value::<Value>("q").await.unwrap_err();
    assert!(
        err.to_string().contains("no stored value named \"q\""),
        "{err}"
    );
    c.call::<bool>("session", "delete")
        .arg("lst")
        .await
        .unwrap();
    let out = c.execute("print('lst' in globals())").await.unwrap();
    assert_eq!(out.stdout, "False\n");
    // A stored value that cannot become a Python value is named, and can be removed.
    c.push_value("bad", json!({"$int": "twelve"}))
        .await
        .unwrap();
    let err = c.execute("pass").await.unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::BadArguments, "{err}");
    assert!(err.to_string().contains("'bad'"), "{err}");
    c.call::<bool>("session", "delete")
        .arg("bad")
        .await
        .unwrap();
    let out = c.execute("print(a)").await.unwrap();
    assert_eq!(out.stdout, "7\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_namespace_values_work_beside_other_calls() {
    let h = host();
    let c = &h.client;
    c.set_python_workers(3).await.unwrap();
    naps(c, 3, 0.3).await; // three workers started: the timings below leave out starts
    c.execute("a = 5").await.unwrap();
    // Two of three workers busy for 3 s: a call passing `a` by reference runs beside them.
    let mut slow: Vec<_> = (0..2)
        .map(|_| c.call_async::<u32>("pool_helpers", "nap", sremote_core::args![3.0]))
        .collect();
    let t = Instant::now();
    let mut by_ref = c
        .call::<i64>("pool_helpers", "identity")
        .arg(Ref("a".into()))
        .spawn();
    assert_eq!(
        by_ref
            .get(Some(Duration::from_secs(30)))
            .await
            .unwrap()
            .value,
        5
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the call waited: {:?}",
        t.elapsed()
    );
    // All three busy: execute does not wait for the pool.
    slow.push(c.call_async::<u32>("pool_helpers", "nap", sremote_core::args![3.0]));
    let t = Instant::now();
    let out = c.execute("b = a + 1").await.unwrap();
    assert_eq!(out.value["changed"], json!(["b"]));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "execute waited for the pool's calls: {:?}",
        t.elapsed()
    );
    for mut s in slow {
        s.get(Some(Duration::from_secs(30))).await.unwrap();
    }
    // A long execute: calls do not wait for it.
    let mut long = c
        .call::<Value>("session", "execute")
        .arg("import time; time.sleep(3)")
        .spawn();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let b: i64 = c
        .call("pool_helpers", "identity")
        .arg(Ref("b".into()))
        .await
        .unwrap()
        .value;
    assert_eq!(b, 6);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a call waited for execute"
    );
    long.get(Some(Duration::from_secs(30))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_only_values_say_so_and_exceptions_have_the_users_lines() {
    let h = host();
    let c = &h.client;
    let out = c
        .execute("import threading; l = threading.Lock()")
        .await
        .unwrap();
    assert_eq!(out.value["python_only"], json!(["l", "threading"]));
    let err = c.pull_value::<Value>("l").await.unwrap_err();
    let text = err.to_string();
    for part in [
        "_thread.lock",
        "Python namespace",
        "no JSON form",
        "repr(l)",
    ] {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
    let err = c
        .call::<Value>("pool_helpers", "identity")
        .arg(Ref("l".into()))
        .await
        .unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::BadArguments, "{err}");
    // It still lives in the namespace.
    let out = c.execute("print(l.locked())").await.unwrap();
    assert_eq!(out.stdout, "False\n");
    // An exception: the user's line numbers; names bound before it are kept.
    let err = c
        .execute("x = 1\ny = 2\nraise ValueError('boom')")
        .await
        .unwrap_err();
    let e = remote(&err);
    assert_eq!(e.kind, ErrorKind::Raised, "{err}");
    assert!(e.message.contains("ValueError: boom"), "{err}");
    let tb = e.traceback.as_deref().unwrap_or_default();
    assert!(tb.contains("File \"<sremote-execute>\", line 3"), "{tb}");
    assert!(!tb.contains("sremote-python-bridge"), "{tb}");
    assert_eq!(c.pull_value::<i64>("x").await.unwrap(), 1);
    let err = c.execute("def f(:\n  pass").await.unwrap_err();
    assert!(remote(&err).message.contains("SyntaxError"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_source_runs_a_script_as_main() {
    let h = host();
    let c = &h.client;
    let script = "import sys\nr = 42\nif __name__ == '__main__':\n    print('main', __file__)\n";
    let out = c.run_source(script, "myscript.py").await.unwrap();
    assert_eq!(out.stdout, "main myscript.py\n");
    assert_eq!(c.pull_value::<i64>("r").await.unwrap(), 42);
    let err = c
        .run_source("r = 1\n\nraise KeyError('k')\n", "other.py")
        .await
        .unwrap_err();
    let tb = remote(&err).traceback.clone().unwrap_or_default();
    assert!(tb.contains("File \"other.py\", line 3"), "{tb}");
    c.run_source("import sys\nsys.exit(0)", "quits.py")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_or_cancel_of_execute_loses_only_python_only_values() {
    let h = host();
    let c = &h.client;
    c.execute("import threading; l = threading.Lock(); a = 5")
        .await
        .unwrap();
    let err = c
        .call::<Value>("session", "execute")
        .arg("import time; time.sleep(30)")
        .timeout(Duration::from_millis(700))
        .await
        .unwrap_err();
    let e = remote(&err);
    assert_eq!(e.kind, ErrorKind::Timeout, "{err}");
    assert!(e.message.contains("l, threading"), "{err}");
    assert!(e.message.contains("are lost"), "{err}");
    // The JSON values remain, in the store and in the next namespace worker.
    assert_eq!(c.pull_value::<i64>("a").await.unwrap(), 5);
    let err = c.pull_value::<Value>("l").await.unwrap_err();
    assert!(err.to_string().contains("no stored value"), "{err}");
    let out = c.execute("print(a, 'l' in globals())").await.unwrap();
    assert_eq!(out.stdout, "5 False\n");
    // Cancel.
    let pidfile = h.pidfile("ns.pid");
    let code = format!(
        "import os, time\nopen({:?}, 'w').write(str(os.getpid()))\ntime.sleep(30)",
        pidfile.to_str().unwrap()
    );
    let mut long = c.call::<Value>("session", "execute").arg(code).spawn();
    let pid = pid_in(&pidfile).await;
    long.cancel().await.unwrap();
    let err = long.get(Some(Duration::from_secs(10))).await.unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::Cancelled, "{err}");
    wait_dead(pid, "the cancelled execute's namespace worker").await;
    assert_eq!(c.pull_value::<i64>("a").await.unwrap(), 5);
    let out = c.execute("print(a + 1)").await.unwrap();
    assert_eq!(out.stdout, "6\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_interpreter_replaces_the_namespace_worker() {
    let h = host();
    let c = &h.client;
    c.execute("import threading; l = threading.Lock(); a = 1")
        .await
        .unwrap();
    // A venv appears (as `install_python_packages` makes one): its python3 is used now.
    let real = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap();
    let bin = h.home.path().join(".sremote/venv/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(real.trim(), bin.join("python3")).unwrap();
    let out = c.execute("print(a, 'l' in globals())").await.unwrap();
    assert_eq!(out.stdout, "1 False\n");
    assert!(out.stderr.contains("Python is now"), "{}", out.stderr);
    let err = c.pull_value::<Value>("l").await.unwrap_err();
    assert!(err.to_string().contains("no stored value"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executes_take_turns_and_one_that_waits_too_long_kills_nothing() {
    let h = host();
    let c = &h.client;
    let started = h.pidfile("long.pid");
    let code = format!(
        "import os, time\nopen({:?}, 'w').write(str(os.getpid()))\ntime.sleep(1.5)\nslept = True",
        started.to_str().unwrap()
    );
    let mut long = c.call::<Value>("session", "execute").arg(code).spawn();
    let namespace_worker = pid_in(&started).await;
    let err = c
        .call::<Value>("session", "execute")
        .arg("never = 1")
        .timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(remote(&err).kind, ErrorKind::Timeout, "{err}");
    assert!(
        err.to_string().contains("busy with an earlier execute"),
        "{err}"
    );
    assert!(alive(namespace_worker));
    long.get(Some(Duration::from_secs(30))).await.unwrap();
    assert!(c.pull_value::<bool>("slept").await.unwrap());
    let err = c.pull_value::<Value>("never").await.unwrap_err();
    assert!(err.to_string().contains("no stored value"), "{err}");
}
