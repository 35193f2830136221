//! The `sremote` binary on the local connector, with a throwaway HOME.
use std::process::{Command, Output};

fn sremote(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sremote"))
        .args(args)
        .env("HOME", home)
        .env_remove("SREMOTE_ENDPOINT")
        .output()
        .expect("run sremote")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn call_getenv_prints_the_value() {
    let home = tempfile::tempdir().unwrap();
    let out = sremote(home.path(), &["call", "local", "os", "getenv", "HOME"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim_end(), home.path().to_str().unwrap());
}

#[test]
fn args_are_json_when_they_parse_else_strings() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("sub dir")).unwrap();
    let dir = home.path().display().to_string();
    let out = sremote(
        home.path(),
        &["call", "local", "os", "listdir", &format!("\"{dir}\"")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sub dir"));
    // `[1` is not JSON: it is sent as the string "[1".
    let out = sremote(
        home.path(),
        &[
            "call",
            "local",
            "os",
            "getenv",
            "[1",
            "--kw",
            "default=\"d\"",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "d");
}

#[test]
fn json_output_is_the_whole_response() {
    let home = tempfile::tempdir().unwrap();
    let out = sremote(home.path(), &["call", "local", "os", "getpid", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["ok"].as_u64().unwrap() > 0);
    assert!(
        v["timing"]["elapsed_us"].is_u64()
            && v["host"].is_string()
            && v["endpoint_version"].is_string()
            && v["id"].is_string()
            && v["pid"].is_u64()
            && v["stdout"].is_string()
            && v["stderr"].is_string()
    );
    assert_eq!(v["protocol"], 1);
}

/// A remote exception under `--json`: its traceback and the call's output are in the
/// error object, not lost.
#[test]
fn json_remote_error_keeps_the_traceback_and_output() {
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("skipped: no python3");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let out = sremote(
        home.path(),
        &["--json", "call", "local", "py:json", "loads", "{not json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["error"];
    assert_eq!(e["kind"], "Raised", "{v}");
    assert_eq!(
        (&e["module"], &e["function"]),
        (&"py:json".into(), &"loads".into()),
        "{v}"
    );
    assert!(
        e["traceback"]
            .as_str()
            .is_some_and(|t| t.contains("Traceback")),
        "{v}"
    );
    assert!(
        e["remote_message"]
            .as_str()
            .unwrap()
            .contains("JSONDecodeError"),
        "{v}"
    );
    assert!(e["stdout"].is_string() && e["stderr"].is_string(), "{v}");
}

#[test]
fn bench_takes_lists_and_tunnel_says_it_does_not() {
    let home = tempfile::tempdir().unwrap();
    let out = sremote(home.path(), &["bench", "local,local", "--calls", "30"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("local | 30 calls, 1 in flight"),
        "{}",
        text(&out.stdout)
    );
    let out = sremote(home.path(), &["bench", "local,", "--calls", "30"]);
    assert_eq!(out.status.code(), Some(2));
    let out = sremote(home.path(), &["--json", "bench", "local", "--calls", "30"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["calls"], 30, "{v}");
    let out = sremote(home.path(), &["tunnel", "local,other", "8888"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`sremote tunnel` works on one host only"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn json_failures_are_the_fanout_error_object() {
    let home = tempfile::tempdir().unwrap();
    let json_line = |out: &Output| -> serde_json::Value {
        let stdout = text(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    // One host, as with several: {"host", "ok": false, "error": {kind, message, hint, exit_code}}.
    let out = sremote(
        home.path(),
        &["--json", "call", "local", "nosuchmodule", "f"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json_line(&out);
    assert_eq!((&v["host"], &v["ok"]), (&"local".into(), &false.into()));
    assert_eq!(v["error"]["kind"], "ModuleNotFound");
    assert_eq!(v["error"]["exit_code"], 1);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nosuchmodule")
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let out = sremote(
        home.path(),
        &["pull", "local", "no/such/file", "x", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json_line(&out);
    assert_eq!(v["error"]["kind"], "NotFound");
    assert!(v["error"]["hint"].is_string(), "{v}");
    let out = sremote(
        home.path(),
        &["--json", "run", "local", "--", "no-such-program-x"],
    );
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    // Failures before any host is reached: the same object without a host.
    let out = sremote(home.path(), &["--json", "exec", "@nogroup", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json_line(&out);
    assert_eq!(v["error"]["kind"], "Usage");
    assert!(v.get("host").is_none(), "{v}");
}

#[test]
fn exit_codes_tell_remote_usage_and_transport_failures_apart() {
    let home = tempfile::tempdir().unwrap();
    let out = sremote(home.path(), &["call", "local", "nosuchmodule", "f"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ModuleNotFound"),
        "{}",
        text(&out.stderr)
    );
    let out = sremote(home.path(), &["call", "local"]);
    assert_eq!(out.status.code(), Some(2));
    let out = sremote(home.path(), &["call", "bad host", "os", "getpid"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = sremote(
        home.path(),
        &[
            "call",
            "nobody@sremote-no-such-host.invalid",
            "os",
            "getpid",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // A missing file is the host's answer, not a failure to reach it: 1, like a failed call.
    let out = sremote(home.path(), &["pull", "local", "no/such/file", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("NotFound"));
}

#[test]
fn exec_passes_output_and_exit_code_through() {
    let home = tempfile::tempdir().unwrap();
    let out = sremote(
        home.path(),
        &[
            "exec",
            "local",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
            "$(id)",
        ],
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    let out = sremote(
        home.path(),
        &[
            "exec", "local", "--", "printf", "%s|", "a b", "$(id)", "'q'",
        ],
    );
    assert_eq!(text(&out.stdout), "a b|$(id)|'q'|");
}

#[test]
fn push_pull_round_trip_and_endpoint_info() {
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("src.bin");
    std::fs::write(&src, (0..=255u8).collect::<Vec<_>>()).unwrap();
    let out = sremote(
        home.path(),
        &["push", "local", src.to_str().unwrap(), "data/copy 'q'.bin"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let back = home.path().join("back.bin");
    let out = sremote(
        home.path(),
        &["pull", "local", "data/copy 'q'.bin", back.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&src).unwrap());
    let out = sremote(home.path(), &["endpoint", "info", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    assert!(
        v["size"].as_u64().unwrap() <= 3_000_000,
        "static endpoint must stay under 3 MB"
    );
}
