//! RemoteClient over a real OpenSSH sshd: bootstrap on a fresh host, calls in every
//! mode, replacement of broken endpoints, typed errors. Each test starts its own sshd
//! (a fresh HOME is a fresh host).
use std::time::{Duration, Instant};

use serde_json::Value;
use sremote_core::{CallMode, CallOutput, ConnectorErrorKind, Error, RemoteClient, args};
use sremote_ssh::SshConnector;
use sremote_testkit::{NetnsHost, Sshd};
use sremote_tests::connect;

fn endpoint_on(sshd: &Sshd) -> std::path::PathBuf {
    sshd.home.join(format!(
        ".sremote/bin/sremote-endpoint-{}",
        sremote_core::protocol::VERSION
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_a_fresh_host_then_nothing_to_do() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    let first = client.do_bootstrap_install().await.unwrap();
    assert!(first.installed && first.bytes_pushed > 0, "{first:?}");
    assert!(endpoint_on(&sshd).is_file());
    use std::os::unix::fs::PermissionsExt;
    for dir in ["", "/bin", "/tmp", "/jobs", "/modules"] {
        let mode = std::fs::metadata(sshd.home.join(format!(".sremote{dir}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, ".sremote{dir} must be private");
    }
    // A second client (a new program) finds it current and pushes nothing.
    let again = connect(&sshd).await.do_bootstrap_install().await.unwrap();
    assert!(!again.installed && again.bytes_pushed == 0, "{again:?}");
}

/// A fresh host's first call is one remote program after the login: the session start
/// finds no endpoint, offers to install it, receives, verifies and installs it, and runs
/// it (it took five: a failed start, a probe, a push, the finish, the session). A client
/// that does not bootstrap by itself declines the offer: nothing is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_hosts_first_call_is_one_remote_program() {
    let sshd = Sshd::start_configured("LogLevel VERBOSE\n").unwrap();
    let declines = connect(&sshd).await;
    declines.set_auto_bootstrap(false);
    let err = declines
        .call::<String>("os", "getenv")
        .arg("HOME")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotSetup(_)), "{err}");
    assert!(!endpoint_on(&sshd).exists());
    let programs = || sshd.log().matches("Starting session: command").count();
    let before = programs();
    assert_eq!(
        before,
        1,
        "the declined start ends by itself: {}",
        sshd.log()
    );
    let client = connect(&sshd).await;
    let home: CallOutput<String> = client.call("os", "getenv").arg("HOME").await.unwrap();
    assert_eq!(home.value, sshd.home.to_str().unwrap());
    assert_eq!(home.meta.mode, CallMode::Session);
    assert!(endpoint_on(&sshd).is_file());
    assert_eq!(programs() - before, 1, "{}", sshd.log());
    // The endpoint it installed is the one a bootstrap would: nothing more to do.
    let again = client.do_bootstrap_install().await.unwrap();
    assert!(!again.installed, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_variable_in_every_mode() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    client.register_remote_env_variable("myVar", "myValue $(id) 'q'");
    for mode in [CallMode::Session, CallMode::Pipe, CallMode::File] {
        let out: CallOutput<String> = client
            .call("os", "getenv")
            .arg("myVar")
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(out.value, "myValue $(id) 'q'", "{mode:?}");
        assert_eq!(out.meta.mode, mode);
        let home: CallOutput<String> = client
            .call("os", "getenv")
            .arg("HOME")
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(home.value, sshd.home.to_str().unwrap());
    }
    // Hostile strings as call arguments arrive intact in every mode.
    for (i, s) in sremote_core::testsuite::hostile_strings()
        .iter()
        .enumerate()
        .step_by(11)
    {
        for mode in [CallMode::Session, CallMode::Pipe, CallMode::File] {
            let path = format!("h{i}");
            client
                .call::<Value>("fs", "write_text")
                .arg(&path)
                .arg(s)
                .mode(mode)
                .await
                .unwrap();
            let back: CallOutput<String> = client
                .call("fs", "read_text")
                .arg(&path)
                .mode(mode)
                .await
                .unwrap();
            assert_eq!(&back.value, s, "string {i} in {mode:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_old_endpoints_are_replaced() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    client.do_bootstrap_install().await.unwrap();
    let installed = endpoint_on(&sshd);
    std::fs::remove_file(&installed).unwrap();
    std::fs::write(&installed, b"\x7fELF truncated").unwrap();
    let report = client.do_bootstrap_install().await.unwrap();
    assert!(report.installed, "a corrupt endpoint must be replaced");
    std::fs::remove_file(&installed).unwrap();
    std::fs::write(&installed, b"#!/bin/sh\necho 'sremote-endpoint 0.0.1'\n").unwrap();
    // A call that meets the wrong endpoint bootstraps once by itself.
    let fresh = connect(&sshd).await;
    let pid: CallOutput<u32> = fresh
        .call("os", "getpid")
        .mode(CallMode::Pipe)
        .await
        .unwrap();
    assert!(pid.value > 0);
    let sha = sremote_core::bootstrap::sha256_hex(&std::fs::read(&installed).unwrap());
    assert_eq!(sha, report.sha256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_setup_when_rebootstrap_is_off() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    client.set_auto_bootstrap(false);
    for mode in [CallMode::Session, CallMode::Pipe, CallMode::File] {
        let err = client
            .call::<Value>("os", "getpid")
            .mode(mode)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotSetup(_)), "{mode:?}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("sremote bootstrap") && text.contains(client.host()),
            "{text}"
        );
    }
    assert!(!endpoint_on(&sshd).exists(), "nothing may be installed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_killed_mid_call_is_disconnected_without_hanging() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    let _: CallOutput<u32> = client.call("os", "getpid").await.unwrap();
    let mut slow = client.call_async::<Value>("subprocess", "run", args![["sleep", "60"]]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    sshd.kill_sessions();
    sshd.kill();
    let started = Instant::now();
    let err = slow.get(Some(Duration::from_secs(30))).await.unwrap_err();
    assert_eq!(
        err.transport_kind(),
        Some(ConnectorErrorKind::Disconnected),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_user_on_a_second_host() {
    let Some(host) = NetnsHost::start_or_skip("srt-client", 41) else {
        return;
    };
    let ssh = SshConnector::builder()
        .config_file(&host.ssh_config)
        .connect(&host.name)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n--- sshd log:\n{}", host.log()));
    let client = RemoteClient::new(ssh);
    client.register_remote_env_variable("myVar", "myValue");
    let v: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["myVar"])
        .await
        .unwrap();
    assert_eq!(v.value, "myValue");
    let uname: CallOutput<Value> = client.call("os", "uname").await.unwrap();
    assert_eq!(
        uname.value["nodename"],
        host.name.as_str(),
        "ran on the namespace host"
    );
    let user: CallOutput<String> = client
        .call("os", "getenv")
        .arg("USER")
        .mode(CallMode::Pipe)
        .await
        .unwrap();
    assert_eq!(user.value, host.user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_by_hand_then_bootstrap_has_nothing_to_do() {
    let sshd = Sshd::start().unwrap();
    let artifact = sremote_core::EndpointArtifact::bundled().expect("bundled endpoint");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("sremote-endpoint");
    std::fs::write(&bin, artifact.bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/deploy-endpoint.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("-F")
        .arg(&sshd.ssh_config)
        .arg(&sshd.alias)
        .arg(&bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = connect(&sshd).await.do_bootstrap_install().await.unwrap();
    assert!(
        !report.installed,
        "the hand-deployed endpoint is the right one: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_bootstrap_a_fresh_host_at_once() {
    let sshd = Sshd::start().unwrap();
    // Two programs: separate ssh connections, nothing shared on the client side.
    let (a, b) = tokio::join!(connect(&sshd), connect(&sshd));
    let (ra, rb) = tokio::join!(a.do_bootstrap_install(), b.do_bootstrap_install());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.installed || rb.installed, "{ra:?} {rb:?}");
    assert_eq!(ra.sha256, rb.sha256);
    let bin: Vec<String> = std::fs::read_dir(sshd.home.join(".sremote/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        bin,
        [format!(
            "sremote-endpoint-{}",
            sremote_core::protocol::VERSION
        )],
        "one binary, no temporary files left"
    );
    let sha = sremote_core::bootstrap::sha256_hex(&std::fs::read(endpoint_on(&sshd)).unwrap());
    assert_eq!(sha, ra.sha256);
    // And two clients whose first calls bootstrap by themselves, at once.
    std::fs::remove_dir_all(sshd.home.join(".sremote")).unwrap();
    let (c, d) = tokio::join!(connect(&sshd), connect(&sshd));
    let (x, y) = tokio::join!(
        c.call::<u32>("os", "getpid").mode(CallMode::Session),
        d.call::<u32>("os", "getpid").mode(CallMode::Pipe)
    );
    assert!(x.unwrap().value > 0 && y.unwrap().value > 0);
    for client in [&a, &b, &c, &d] {
        let home: CallOutput<String> = client.call("os", "getenv").arg("HOME").await.unwrap();
        assert_eq!(home.value, sshd.home.to_str().unwrap());
    }
}
