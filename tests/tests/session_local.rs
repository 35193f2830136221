//! Session mode end to end on this machine: one `sremote-endpoint serve` per client.
use std::time::{Duration, Instant};

use serde_json::Value;
use sremote_core::protocol::ErrorKind;
use sremote_core::{
    Blob, CallMode, CallOutput, ConnectorErrorKind, Error, LocalConnector, Ref, RemoteClient, args,
};
use sremote_tests::wait_dead;

fn client() -> (RemoteClient<LocalConnector>, tempfile::TempDir) {
    let home = tempfile::Builder::new()
        .prefix("sremote-session-home-")
        .tempdir()
        .unwrap();
    let c = RemoteClient::new(LocalConnector::with_home(home.path()));
    c.set_call_mode(CallMode::Session);
    (c, home)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_complete_out_of_order() {
    let (client, _home) = client();
    let slow = client.call_async::<Value>("subprocess", "run", args![["sleep", "1"]]);
    let started = Instant::now();
    let fast: CallOutput<u32> = client.call("os", "getpid").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "the fast call waited for the slow one"
    );
    assert_eq!(fast.meta.mode, CallMode::Session);
    let mut slow = slow;
    assert!(!slow.ready());
    let out = slow.get(Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!(out.value["returncode"], 0);
    assert_eq!(
        slow.metadata().unwrap().pid,
        fast.value,
        "both ran in the same endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_timeout_then_cancel_kills_the_subprocess() {
    let (client, home) = client();
    let pidfile = home.path().join("child.pid");
    let script = "sleep 300 & echo $! > \"$1\"; wait";
    let mut call = client.call_async::<Value>(
        "subprocess",
        "run",
        args![["sh", "-c", script, "sh", pidfile.to_str().unwrap()]],
    );
    let err = call
        .get(Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert_eq!(
        err.transport_kind(),
        Some(ConnectorErrorKind::Timeout),
        "{err}"
    );
    while !pidfile.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let child: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    call.cancel().await.unwrap();
    let err = call.get(Some(Duration::from_secs(5))).await.unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{err}");
    wait_dead(child, "the cancelled call's subprocess").await;
    // The session goes on.
    let _: CallOutput<u32> = client.call("os", "getpid").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_get_their_own_results() {
    let (client, _home) = client();
    let mut calls = Vec::new();
    for i in 0..1000u32 {
        // Every call with its own environment: the endpoint must never mix them up.
        let call = client
            .call::<String>("os", "getenv")
            .arg("SREMOTE_N")
            .env("SREMOTE_N", i.to_string());
        calls.push(call.spawn());
    }
    for (i, mut c) in calls.into_iter().enumerate() {
        assert_eq!(c.get(None).await.unwrap().value, i.to_string());
    }
    // And a thousand with the same environment, all in flight at once.
    let calls: Vec<_> = (0..1000)
        .map(|_| client.call_async::<u32>("os", "getpid", args![]))
        .collect();
    for mut c in calls {
        assert!(c.get(None).await.unwrap().value > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_endpoint_fails_calls_in_flight_then_a_new_session_opens() {
    let (client, _home) = client();
    let first: u32 = client.call::<u32>("os", "getpid").await.unwrap().value;
    let mut slow = client.call_async::<Value>("subprocess", "run", args![["sleep", "30"]]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill9(first);
    let started = Instant::now();
    let err = slow.get(Some(Duration::from_secs(10))).await.unwrap_err();
    assert_eq!(
        err.transport_kind(),
        Some(ConnectorErrorKind::Disconnected),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = err.to_string();
    assert!(
        text.contains("call subprocess.run") && text.contains(client.host()),
        "the error must name the call and the host: {text}"
    );
    let second: u32 = client.call::<u32>("os", "getpid").await.unwrap().value;
    assert_ne!(first, second, "a fresh endpoint serves the next call");
}

fn kill9(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

/// Install `script` as the endpoint (a fake one) and turn bootstrap off.
fn fake_endpoint(client: &RemoteClient<LocalConnector>, home: &std::path::Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = home.join(client.endpoint_path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    client.set_auto_bootstrap(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_stream_is_a_protocol_error() {
    let (client, home) = client();
    // A valid greeting, then bytes that are no frame.
    fake_endpoint(
        &client,
        home.path(),
        &format!(
            "#!/bin/sh\n{}\nprintf 'this is not a frame at all'\ncat >/dev/null\n",
            printf_hello(r#"{"protocol":1}"#)
        ),
    );
    let err = client.call::<Value>("os", "getpid").await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    // Noise before the greeting (a chatty login script).
    fake_endpoint(
        &client,
        home.path(),
        "#!/bin/sh\necho 'Welcome to the cluster!'\ncat >/dev/null\n",
    );
    client.close_session().await;
    let err = client.call::<Value>("os", "getpid").await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    assert!(err.to_string().contains("login scripts"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_values_and_references() {
    let (client, _home) = client();
    client
        .push_value("weights", vec![1.5, 2.25, -3.0])
        .await
        .unwrap();
    let back: Vec<f64> = client.pull_value("weights").await.unwrap();
    assert_eq!(back, vec![1.5, 2.25, -3.0]);
    client.push_value("name", "HOME").await.unwrap();
    let home: CallOutput<String> = client
        .call("os", "getenv")
        .arg(Ref("name".into()))
        .await
        .unwrap();
    assert!(!home.value.is_empty());
    let err = client
        .call::<Value>("os", "getenv")
        .arg(Ref("never-pushed".into()))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::BadArguments), "{err}");
    client
        .push_value("blob", Blob(vec![0, 1, 2, 255]))
        .await
        .unwrap();
    let b: Blob = client.pull_value("blob").await.unwrap();
    assert_eq!(b.0, vec![0, 1, 2, 255]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_both_ways_as_raw_attachments() {
    let (client, home) = client();
    let data = sremote_core::testsuite::pseudo_random(64 << 20, 3);
    let path = home.path().join("big.bin");
    let n: CallOutput<u64> = client
        .call("fs", "write_bytes")
        .arg(path.to_str().unwrap())
        .arg(Blob(data.clone()))
        .await
        .unwrap();
    assert_eq!(n.value, 64 << 20);
    let back: CallOutput<Blob> = client
        .call("fs", "read_bytes")
        .arg(path.to_str().unwrap())
        .await
        .unwrap();
    assert!(back.value.0 == data, "64 MiB came back changed");
}

/// `get` of a cancelled call: `Cancelled`, or the value when the call won the race.
async fn cancelled_or_value(call: &mut sremote_core::AsyncCall<LocalConnector, Value>, what: &str) {
    match call.get(Some(Duration::from_secs(20))).await {
        Ok(_) => {}
        Err(e) if e.remote_kind() == Some(ErrorKind::Cancelled) => {}
        Err(e) => panic!("{what}: get after cancel: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_right_after_start_never_hangs() {
    let (client, _home) = client();
    let _: CallOutput<u32> = client.call("os", "getpid").await.unwrap();
    // The session is open: the cancel must never overtake the request on the stream.
    for i in 0..200 {
        let mut call = if i % 2 == 0 {
            client.call_async::<Value>("os", "getpid", args![])
        } else {
            client.call_async::<Value>("subprocess", "run", args![["sleep", "30"]])
        };
        if i % 10 == 9 {
            tokio::task::yield_now().await;
        }
        call.cancel().await.unwrap();
        let started = Instant::now();
        cancelled_or_value(&mut call, &format!("session call {i}")).await;
        assert!(started.elapsed() < Duration::from_secs(10), "call {i}");
    }
    // Pipe and file mode calls while a session is open: stopped on the client side.
    for mode in [CallMode::Pipe, CallMode::File] {
        for i in 0..4 {
            let mut call = client
                .call::<Value>("subprocess", "run")
                .arg(["sleep", "8"])
                .mode(mode)
                .spawn();
            if i % 2 == 1 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let started = Instant::now();
            call.cancel().await.unwrap();
            let err = call
                .get(Some(Duration::from_secs(20)))
                .await
                .expect_err("sleep 8 cannot finish first");
            assert_eq!(
                err.remote_kind(),
                Some(ErrorKind::Cancelled),
                "{mode:?}: {err}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "{mode:?} call {i} was not stopped: {:?}",
                started.elapsed()
            );
        }
    }
    let _: CallOutput<u32> = client.call("os", "getpid").await.unwrap();
}

fn running(pattern: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

/// Cancelling a pipe or file mode call kills its endpoint process, and the program the
/// call started (in its own process group) goes with it: nothing is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_pipe_and_file_mode_leaves_no_process() {
    let (client, _home) = client();
    for (mode, secs) in [(CallMode::Pipe, "4711"), (CallMode::File, "4712")] {
        let pattern = format!("^sleep {secs}$");
        let mut call = client
            .call::<Value>("subprocess", "run")
            .arg(["sleep", secs])
            .mode(mode)
            .spawn();
        let t0 = Instant::now();
        while !running(&pattern) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{mode:?}: sleep never ran"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        call.cancel().await.unwrap();
        let _ = call.get(Some(Duration::from_secs(20))).await;
        let t0 = Instant::now();
        while running(&pattern) && t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if running(&pattern) {
            let _ = std::process::Command::new("pkill")
                .args(["-f", &pattern])
                .status();
            panic!("{mode:?}: the cancelled call's `sleep {secs}` was left running");
        }
    }
}

/// A shell `printf` command writing the session greeting with Hello body `json`.
fn printf_hello(json: &str) -> String {
    let mut bytes = sremote_core::frame::MAGIC.to_vec();
    bytes.extend(
        sremote_core::frame::encode(sremote_core::frame::FrameKind::Hello, json.as_bytes())
            .unwrap(),
    );
    let escaped: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
    format!("printf '{escaped}'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_another_protocol_version_is_not_set_up() {
    let (client, home) = client();
    let hello = r#"{"protocol":2,"version":"9.0.0","pid":1,"capabilities":[]}"#;
    fake_endpoint(
        &client,
        home.path(),
        &format!("#!/bin/sh\n{}\ncat >/dev/null\n", printf_hello(hello)),
    );
    let err = client.call::<Value>("os", "getpid").await.unwrap_err();
    assert!(matches!(err, Error::NotSetup(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("protocol 2") && text.contains("sremote bootstrap"),
        "{text}"
    );
    // With bootstrap on, the call replaces the endpoint and runs.
    client.set_auto_bootstrap(true);
    let pid: CallOutput<u32> = client.call("os", "getpid").await.unwrap();
    assert!(pid.value > 1);
    assert_eq!(pid.meta.mode, CallMode::Session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_dies_in_the_handshake_names_the_call() {
    let (client, home) = client();
    fake_endpoint(
        &client,
        home.path(),
        "#!/bin/sh\necho 'out of memory' >&2\nexit 5\n",
    );
    let err = client.call::<Value>("os", "uname").await.unwrap_err();
    assert_eq!(
        err.transport_kind(),
        Some(ConnectorErrorKind::Disconnected),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("call os.uname") && text.contains("out of memory"),
        "{text}"
    );
}

/// A request whose write fails after the session's reader recorded why the endpoint went
/// away gets that reason (this deadlocked: the reason was looked up twice under one lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_after_the_endpoint_left_names_the_reason() {
    let (client, home) = client();
    // Greets, reads nothing (the client's write of a large request blocks), closes its
    // stdout (the reader records the end), then exits: the write fails only after that.
    fake_endpoint(
        &client,
        home.path(),
        &format!(
            "#!/bin/sh\n{}\nsleep 0.5\nexec >&-\nsleep 0.5\nexit 0\n",
            printf_hello(r#"{"protocol":1,"pid":1,"capabilities":[]}"#)
        ),
    );
    let call = client
        .call::<Value>("fs", "write_bytes")
        .arg("big.bin")
        .arg(Blob(vec![7u8; 8 << 20]));
    let err = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the call hung after a failed write")
        .unwrap_err();
    assert_eq!(
        err.transport_kind(),
        Some(ConnectorErrorKind::Disconnected),
        "{err}"
    );
    assert!(
        err.to_string().contains("the endpoint closed the session"),
        "{err}"
    );
}
