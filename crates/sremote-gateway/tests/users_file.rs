//! The users file decides who can run commands as the gateway's OS user: one that others
//! can write (or in a directory others can write) is refused at start and on reload.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gateway, MACHINE, Opts};
use sremote_rest::NewtConnector;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Start the gateway on `cfg`; it must exit (non-zero) within 10 s. Returns its stderr.
fn start_must_fail(cfg: &Path, home: &Path) -> String {
    let mut child = Command::new(common::gateway_bin())
        .arg("--config")
        .arg(cfg)
        .env("HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            // Only the process this test started, by its handle.
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the gateway started anyway:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_users_file_writable_by_others_is_refused_at_start_with_the_fix() {
    let gw = Gateway::start(Opts::default());
    let cfg = gw.dir.path().join("gateway.toml");
    let users = gw.dir.path().join("users");
    for mode in [0o620, 0o602, 0o666] {
        chmod(&users, mode);
        let err = start_must_fail(&cfg, &gw.home);
        assert!(
            err.contains("writable by group or others") && err.contains("chmod go-w"),
            "{mode:o}: {err}"
        );
    }
    chmod(&users, 0o600);
    chmod(gw.dir.path(), 0o777);
    let err = start_must_fail(&cfg, &gw.home);
    assert!(
        err.contains("directory") && err.contains("chmod go-w"),
        "{err}"
    );
    chmod(gw.dir.path(), 0o700);
    // World-readable: a warning (the hashes can be attacked offline), but it starts.
    chmod(&users, 0o644);
    let out = Command::new(common::gateway_bin())
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .env("HOME", &gw.home)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("readable by others") && err.contains("chmod o-r"),
        "{err}"
    );
}

/// Another local user makes the file writable and appends a user: the running gateway
/// refuses the changed file and keeps the previous users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_file_made_writable_is_refused_on_reload() {
    let gw = Gateway::start(Opts::default());
    let users = gw.dir.path().join("users");
    let line = format!(
        "mallory:{}\n",
        sremote_gateway::users::hash_password("mallory's password").unwrap()
    );
    chmod(&users, 0o666);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&users)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let err = NewtConnector::login(&gw.url, MACHINE, "mallory", "mallory's password")
        .await
        .expect_err("the appended user is not accepted");
    assert_eq!(err.kind, sremote_core::ConnectorErrorKind::Auth, "{err}");
    gw.login().await; // the previous users stay
    let log = gw.log();
    assert!(
        log.contains("writable by group or others") && log.contains("keeping the previous users"),
        "{log}"
    );
}
