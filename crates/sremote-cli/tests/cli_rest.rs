//! `sremote` against a real `sremote-gateway` on loopback: bootstrap and calls through
//! the NEWT REST API (file mode), credentials from the environment only.
mod common;

use std::process::{Command, Output, Stdio};

use common::gateway::{PASSWORD, USER, gateway};

fn sremote(home: &std::path::Path, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sremote"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("SREMOTE_NEWT_TOKEN")
        .stdin(Stdio::null());
    match password {
        Some(p) => cmd.env("SREMOTE_NEWT_PASSWORD", p),
        None => cmd.env_remove("SREMOTE_NEWT_PASSWORD"),
    };
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn bootstrap_and_call_over_rest() {
    let gw = gateway();
    let local_home = tempfile::tempdir().unwrap();
    let host = format!(
        "newt+{}/cluster",
        gw.url.replacen("://", &format!("://{USER}@"), 1)
    );
    let out = sremote(local_home.path(), &["bootstrap", &host], Some(PASSWORD));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("installed"),
        "{}",
        text(&out.stdout)
    );
    let out = sremote(
        local_home.path(),
        &["call", &host, "os", "getenv", "HOME", "--json"],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["ok"],
        gw.home.path().to_str().unwrap(),
        "ran in the gateway user's home"
    );
    assert_eq!(v["mode"], "file", "NEWT has no stdin: file mode");
    // Wrong password: a typed auth failure, exit code 3, and the password is not echoed.
    let out = sremote(
        local_home.path(),
        &["call", &host, "os", "getpid"],
        Some("wrong"),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Auth"), "{}", text(&out.stderr));
    // No password and no terminal: a usage error that says what to set.
    let out = sremote(local_home.path(), &["call", &host, "os", "getpid"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SREMOTE_NEWT_PASSWORD"),
        "{}",
        text(&out.stderr)
    );
}
