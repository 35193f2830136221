//! RemoteClient end to end on this machine: the real endpoint, bootstrapped into a
//! throwaway home by the client itself.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sremote_core::protocol::ErrorKind;
use sremote_core::{Blob, CallMode, CallOutput, Error, LocalConnector, RemoteClient, args};

fn client() -> (RemoteClient<LocalConnector>, tempfile::TempDir) {
    let home = tempfile::Builder::new()
        .prefix("sremote-client-home-")
        .tempdir()
        .unwrap();
    (
        RemoteClient::new(LocalConnector::with_home(home.path())),
        home,
    )
}

#[tokio::test]
async fn first_call_bootstraps_then_getenv() {
    let (client, home) = client();
    let out: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["HOME"])
        .await
        .unwrap();
    assert_eq!(out.value, home.path().to_str().unwrap());
    assert_eq!(
        out.meta.mode,
        CallMode::Session,
        "LocalConnector can spawn: session mode"
    );
    assert!(
        home.path()
            .join(".sremote/bin")
            .join(format!(
                "sremote-endpoint-{}",
                sremote_core::protocol::VERSION
            ))
            .is_file()
    );
    let report = client.do_bootstrap_install().await.unwrap();
    assert!(
        !report.installed,
        "second bootstrap must push nothing: {report:?}"
    );
    assert_eq!(report.bytes_pushed, 0);
}

#[tokio::test]
async fn registered_env_and_paths_apply_to_every_call() {
    let (client, _home) = client();
    client.register_remote_env_variable("myVar", "myValue");
    client.register_conditional_env_variable("HOME", "/never/used");
    client.register_conditional_env_variable("SREMOTE_UNSET_VAR", "fallback");
    client.add_remote_path("/opt/sremote-test/bin");
    let v: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["myVar"])
        .await
        .unwrap();
    assert_eq!(v.value, "myValue");
    let v: CallOutput<String> = client.call("os", "getenv").arg("HOME").await.unwrap();
    assert_ne!(v.value, "/never/used", "set-if-unset must not override");
    let v: CallOutput<String> = client
        .call("os", "getenv")
        .arg("SREMOTE_UNSET_VAR")
        .await
        .unwrap();
    assert_eq!(v.value, "fallback");
    let v: CallOutput<String> = client.call("os", "getenv").arg("PATH").await.unwrap();
    assert!(
        v.value.starts_with("/opt/sremote-test/bin:"),
        "PATH = {}",
        v.value
    );
    let v: CallOutput<Option<String>> = client
        .call("os", "getenv")
        .arg("SREMOTE_NOT_SET_ANYWHERE")
        .await
        .unwrap();
    assert_eq!(v.value, None);
    let v: CallOutput<String> = client
        .call("os", "getenv")
        .arg("SREMOTE_NOT_SET_ANYWHERE")
        .kwarg("default", "dflt")
        .await
        .unwrap();
    assert_eq!(v.value, "dflt");
}

#[tokio::test]
async fn file_mode_delivers_the_request_as_a_file_and_cleans_up() {
    let (client, home) = client();
    client.set_call_mode(CallMode::File);
    let out: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["HOME"])
        .await
        .unwrap();
    assert_eq!(out.meta.mode, CallMode::File);
    assert_eq!(out.value, home.path().to_str().unwrap());
    let left: Vec<_> = std::fs::read_dir(home.path().join(".sremote/tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "request files left behind: {left:?}");
}

#[tokio::test]
async fn hostile_strings_and_bytes_round_trip_as_data() {
    let (client, home) = client();
    for (i, s) in sremote_core::testsuite::hostile_strings()
        .iter()
        .enumerate()
        .step_by(7)
    {
        let path = format!("{}/f{i}", home.path().display());
        client
            .call::<Value>("fs", "write_text")
            .arg(&path)
            .arg(s)
            .await
            .unwrap();
        let back: CallOutput<String> = client.call("fs", "read_text").arg(&path).await.unwrap();
        assert_eq!(&back.value, s, "string {i}");
    }
    let data = sremote_core::testsuite::pseudo_random(1 << 20, 7);
    let path = format!("{}/blob.bin", home.path().display());
    client
        .call::<Value>("fs", "write_bytes")
        .arg(&path)
        .arg(Blob(data.clone()))
        .await
        .unwrap();
    let back: CallOutput<Blob> = client.call("fs", "read_bytes").arg(&path).await.unwrap();
    assert!(back.value.0 == data);
    assert_eq!(std::fs::read(&path).unwrap(), data);
    // `arg_bytes` moves the buffer in; the same bytes arrive in every mode.
    for mode in [CallMode::Session, CallMode::Pipe, CallMode::File] {
        let back: CallOutput<Blob> = client
            .call("sys", "echo")
            .arg_bytes(data.clone())
            .mode(mode)
            .await
            .unwrap();
        assert!(back.value.0 == data, "{mode:?}");
    }
}

#[tokio::test]
async fn remote_errors_are_typed() {
    let (client, _home) = client();
    let kind = |r: Result<CallOutput<Value>, Error>| r.unwrap_err().remote_kind();
    assert_eq!(
        kind(client.call("no_such_module", "f").await),
        Some(ErrorKind::ModuleNotFound)
    );
    assert_eq!(
        kind(client.call("os", "no_such_function").await),
        Some(ErrorKind::FunctionNotFound)
    );
    assert_eq!(
        kind(client.call("os", "getenv").await),
        Some(ErrorKind::BadArguments)
    );
    assert_eq!(
        kind(client.call("os", "getenv").arg(1).arg(2).arg(3).await),
        Some(ErrorKind::BadArguments)
    );
    assert_eq!(
        kind(
            client
                .call("os", "remove")
                .arg("/no/such/file/anywhere")
                .await
        ),
        Some(ErrorKind::Raised)
    );
    let err = client
        .call::<Value>("os", "remove")
        .arg("/no/such/file/anywhere")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("os.remove") && text.contains("local"),
        "{text}"
    );

    let err = client
        .call::<u32>("os", "getenv")
        .arg("HOME")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err}");
    assert!(err.to_string().contains("u32"), "{err}");

    let err = client
        .check_modules(["os", "sremote_no_such_module"])
        .await
        .unwrap_err();
    match err {
        Error::ModulesMissing(m) => {
            assert_eq!(m.missing, vec!["sremote_no_such_module".to_string()])
        }
        other => panic!("{other}"),
    }
    client.check_modules(["os", "fs"]).await.unwrap();
}

#[tokio::test]
async fn timeouts_stop_the_call() {
    let (client, _home) = client();
    let started = std::time::Instant::now();
    let err = client
        .call::<Value>("subprocess", "run")
        .arg(["sleep", "30"])
        .timeout(Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Timeout), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn not_setup_when_bootstrap_is_disabled() {
    let (client, _home) = client();
    client.set_auto_bootstrap(false);
    let err = client.call::<Value>("os", "getpid").await.unwrap_err();
    assert!(matches!(err, Error::NotSetup(_)), "{err}");
    assert!(err.to_string().contains("sremote bootstrap"), "{err}");
}

#[tokio::test]
async fn corrupt_or_old_endpoint_is_replaced() {
    let (client, home) = client();
    client.do_bootstrap_install().await.unwrap();
    let installed = home.path().join(client.endpoint_path());
    std::fs::write(&installed, b"\x7fELF garbage").unwrap();
    // A call meets the broken endpoint, bootstraps once by itself, and succeeds.
    let pid: CallOutput<u32> = client.call("os", "getpid").await.unwrap();
    assert!(pid.value > 0);
    // (The running session keeps the file busy: replace it the way an upgrade would.)
    std::fs::remove_file(&installed).unwrap();
    std::fs::write(&installed, b"#!/bin/sh\necho old version\n").unwrap();
    let report = client.do_bootstrap_install().await.unwrap();
    assert!(report.installed, "a different file must be replaced");
    let again = client.do_bootstrap_install().await.unwrap();
    assert!(!again.installed);
}

#[tokio::test]
async fn custom_dirs_are_recorded_in_location_and_discovered() {
    let (client, home) = client();
    client.set_sremote_dir("custom/sr");
    client.set_tmp_dir("custom/tmp");
    client.set_call_mode(CallMode::File);
    let out: CallOutput<BTreeMap<String, String>> = client.call("sys", "location").await.unwrap();
    let custom_tmp = home.path().join("custom/tmp");
    assert_eq!(
        out.value["sremote"],
        home.path().join("custom/sr").to_str().unwrap(),
        "{:?}",
        out.value
    );
    // set_tmp_dir is relative to the home directory, for the client and the endpoint alike.
    assert_eq!(
        out.value["tmp"],
        custom_tmp.to_str().unwrap(),
        "{:?}",
        out.value
    );
    assert!(custom_tmp.is_dir(), "bootstrap creates the tmp dir");
    let loc = std::fs::read_to_string(home.path().join(".sremote/.location")).unwrap();
    assert!(
        loc.contains("custom/sr") && loc.contains("custom/tmp"),
        "{loc}"
    );
    // A fresh client with default settings finds the endpoint and the tmp dir through
    // .location, and puts its request files there.
    let other = RemoteClient::new(LocalConnector::with_home(home.path()));
    let report = other.do_bootstrap_install().await.unwrap();
    assert!(!report.installed, "{report:?}");
    assert!(
        report.endpoint_path.starts_with("custom/sr/bin/"),
        "{report:?}"
    );
    assert_eq!(
        home.path().join(other.tmp_dir()),
        custom_tmp,
        "tmp dir of the new client"
    );
    let out: CallOutput<BTreeMap<String, String>> = other
        .call("sys", "location")
        .mode(CallMode::File)
        .await
        .unwrap();
    assert_eq!(out.value["tmp"], custom_tmp.to_str().unwrap());
    assert!(!home.path().join(".sremote/tmp").exists());
    // A tmp dir inside the sremote dir is recorded relative to it and found the same way.
    let third = RemoteClient::new(LocalConnector::with_home(home.path()));
    third.set_sremote_dir("custom/sr");
    third.set_tmp_dir("custom/sr/scratch");
    let report = third.do_bootstrap_install().await.unwrap();
    assert!(!report.installed, "the endpoint is current: {report:?}");
    let loc = std::fs::read_to_string(home.path().join(".sremote/.location")).unwrap();
    assert!(loc.contains(r#""relative_tmp":"scratch""#), "{loc}");
    let fourth = RemoteClient::new(LocalConnector::with_home(home.path()));
    fourth.do_bootstrap_install().await.unwrap();
    assert_eq!(fourth.tmp_dir(), "custom/sr/scratch");
    let out: CallOutput<BTreeMap<String, String>> = fourth
        .call("sys", "location")
        .mode(CallMode::Pipe)
        .await
        .unwrap();
    assert_eq!(
        out.value["tmp"],
        home.path().join("custom/sr/scratch").to_str().unwrap()
    );
}

#[tokio::test]
async fn many_concurrent_calls_bootstrap_once() {
    let (client, _home) = client();
    let calls = (0..16).map(|i| {
        let c = client.clone();
        tokio::spawn(async move {
            let v: CallOutput<String> = c
                .call("os", "getenv")
                .arg("SREMOTE_I")
                .env("SREMOTE_I", i.to_string())
                .await
                .unwrap();
            assert_eq!(v.value, i.to_string());
        })
    });
    for c in calls {
        c.await.unwrap();
    }
}

#[tokio::test]
async fn file_mode_leaves_no_request_behind_when_the_endpoint_is_missing() {
    let (client, home) = client();
    client.set_auto_bootstrap(false);
    client.set_call_mode(CallMode::File);
    let err = client.call::<Value>("os", "getpid").await.unwrap_err();
    assert!(matches!(err, Error::NotSetup(_)), "{err}");
    let tmp = home.path().join(".sremote/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "request files left in {}: {left:?}",
        tmp.display()
    );
}

#[tokio::test]
async fn older_endpoint_versions_are_removed_by_an_install() {
    use std::os::unix::fs::PermissionsExt;
    let (client, home) = client();
    let bin = home.path().join(".sremote/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let artifact = sremote_core::EndpointArtifact::bundled().expect("bundled endpoint");
    let v = sremote_core::protocol::VERSION;
    let put = |name: &str| {
        let path = bin.join(name);
        std::fs::write(&path, artifact.bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let old = [
        "sremote-endpoint-0.0.1",
        "sremote-endpoint-0.0.1-0123456789ab",
    ];
    let kept = [
        "sremote-endpoint-999.0.0".to_string(),
        format!("sremote-endpoint-{v}-0123456789ab"),
        "sremote-endpoint-0.0.2".to_string(),
    ];
    for name in old.iter().copied().chain(kept.iter().map(String::as_str)) {
        put(name);
    }
    // An older endpoint that is running (a session of an older client) stays.
    let mut running = std::process::Command::new(bin.join("sremote-endpoint-0.0.2"))
        .arg("serve")
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // So do all while a job is queued (its batch script names its endpoint).
    let job = home.path().join(".sremote/jobs/j1");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(job.join("status.json"), r#"{"state":"queued"}"#).unwrap();
    let report = client.do_bootstrap_install().await.unwrap();
    assert!(report.installed && report.removed.is_empty(), "{report:?}");
    assert!(bin.join(old[0]).exists());

    std::fs::remove_dir_all(&job).unwrap();
    std::fs::remove_file(home.path().join(client.endpoint_path())).unwrap();
    let report = client.do_bootstrap_install().await.unwrap();
    assert!(report.installed, "{report:?}");
    assert_eq!(report.removed, old, "{report:?}");
    let mut left: Vec<String> = std::fs::read_dir(&bin)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut want: Vec<String> = kept.to_vec();
    want.push(format!("sremote-endpoint-{v}"));
    want.sort();
    assert_eq!(left, want);
    let pid: CallOutput<u32> = client.call("os", "getpid").await.unwrap();
    assert!(pid.value > 0);
    let _ = running.kill();
    let _ = running.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_bootstrap_one_home_at_once() {
    let home = tempfile::tempdir().unwrap();
    // Made back to back: their request ids (and bootstrap temp names) must still differ.
    let (a, b) = (
        RemoteClient::new(LocalConnector::with_home(home.path())),
        RemoteClient::new(LocalConnector::with_home(home.path())),
    );
    for _ in 0..50 {
        let (x, y) = (
            RemoteClient::new(LocalConnector::new()),
            RemoteClient::new(LocalConnector::new()),
        );
        let (x, y) = (
            x.call_async::<Value>("os", "getpid", args![]),
            y.call_async::<Value>("os", "getpid", args![]),
        );
        assert_ne!(x.id(), y.id());
    }
    for round in 0..5 {
        let _ = std::fs::remove_dir_all(home.path().join(".sremote"));
        let (ra, rb) = tokio::join!(a.do_bootstrap_install(), b.do_bootstrap_install());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.installed || rb.installed, "round {round}: {ra:?} {rb:?}");
        let bin: Vec<String> = std::fs::read_dir(home.path().join(".sremote/bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(bin.len(), 1, "round {round}: {bin:?}");
    }
    let (x, y) = tokio::join!(
        a.call::<u32>("os", "getpid"),
        b.call::<u32>("os", "getpid").mode(CallMode::Pipe)
    );
    assert!(x.unwrap().value > 0 && y.unwrap().value > 0);
}
