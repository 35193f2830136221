//! The stock `sremote-endpoint` binary, run as a child process with a temporary HOME.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Host, write_script};
use serde_json::{Value, json};

fn host() -> Host {
    Host::new(env!("CARGO_BIN_EXE_sremote-endpoint"))
}

fn kind(err: &Value) -> &str {
    err["kind"].as_str().unwrap_or_default()
}

fn msg(err: &Value) -> &str {
    err["message"].as_str().unwrap_or_default()
}

#[test]
fn pipe_mode_returns_the_value_and_metadata() {
    let h = host();
    let resp = h.call("os", "getenv", json!(["HOME"]));
    assert_eq!(resp["ok"], json!(h.home().display().to_string()));
    assert_eq!(resp["id"], "t1");
    assert_eq!(resp["protocol"], 1);
    assert_eq!(resp["endpoint_version"], env!("CARGO_PKG_VERSION"));
    assert!(resp["pid"].as_u64().unwrap() > 0);
    assert!(!resp["host"].as_str().unwrap().is_empty());
    assert!(resp["timing"]["started_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    // `call -` and `call - -` are the same.
    let req = br#"{"protocol":1,"id":"x","module":"os","function":"getpid"}"#;
    let out = h.run(&["call", "-", "-"], req);
    let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(resp["ok"].as_u64().is_some());
}

#[test]
fn request_env_env_if_unset_and_path_are_applied() {
    let h = host();
    let extra = json!({
        "env": {"SR_SET": "one"},
        "env_if_unset": {"HOME": "/not/used", "SR_NEW": "two"},
        "path": ["/opt/a", "/opt/b"],
    });
    let env = h.call_with("os", "environ", json!([]), extra)["ok"].clone();
    assert_eq!(env["SR_SET"], "one");
    assert_eq!(env["SR_NEW"], "two");
    assert_eq!(env["HOME"], json!(h.home().display().to_string()));
    assert!(
        env["PATH"].as_str().unwrap().starts_with("/opt/a:/opt/b:"),
        "{}",
        env["PATH"]
    );
    assert!(
        env["PYTHONPATH"]
            .as_str()
            .unwrap()
            .starts_with("/opt/a:/opt/b")
    );
    let bad = h.call_with("os", "getpid", json!([]), json!({"env": {"A=B": "x"}}));
    assert_eq!(kind(&bad["error"]), "BadRequest");
}

#[test]
fn file_mode_writes_the_response_atomically_and_consume_removes_the_request() {
    let h = host();
    let req = h.home().join("req.json");
    let resp = h.home().join("resp.json");
    std::fs::write(
        &req,
        br#"{"protocol":1,"id":"f1","module":"os","function":"getenv","args":["HOME"]}"#,
    )
    .unwrap();
    let out = h.run(
        &["call", req.to_str().unwrap(), resp.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty(),
        "file mode printed: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&resp).unwrap()).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["ok"].as_str()),
        (Some("f1"), h.home().to_str())
    );
    assert_eq!(
        std::fs::metadata(&resp).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(req.exists(), "without --consume the request stays");

    // The client's file mode: --consume, response on stdout.
    let out = h.run(&["call", "--consume", req.to_str().unwrap(), "-"], b"");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "f1");
    assert!(!req.exists(), "--consume removes the request");
    // A missing request file is an error response, not a silent death.
    let out = h.run(&["call", req.to_str().unwrap(), "-"], b"");
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kind(&v["error"]), "BadRequest");
    assert!(msg(&v["error"]).contains("cannot read the request file"));
    // Only the response file appears (no temp files left behind).
    let names: Vec<_> = std::fs::read_dir(h.home())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("resp.json")]);
}

#[test]
fn exit_codes() {
    let h = host();
    let req = br#"{"protocol":1,"id":"x","module":"os","function":"getpid"}"#;
    let out = h.run(&["call", "-", "/nonexistent-dir/resp.json"], req);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write the response"));
    for args in [
        &["call"][..],
        &["frobnicate"],
        &["call", "a", "b", "c"],
        &["modules", "--xml"],
        &[],
    ] {
        let out = h.run(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
        assert!(out.stdout.is_empty());
    }
    // serve greets, then exits at once when stdin closes.
    let out = h.run(&["serve"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.starts_with(sremote_core::frame::MAGIC));
    // garbage on its stdin: a clear message and exit 3, no panic.
    let out = h.run(&["serve"], b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad frame"),
        "{out:?}"
    );
}

#[test]
fn version_json_and_sha256() {
    use sha2::Digest;
    let h = host();
    let out = h.run(&["version", "--json", "--sha256"], b"");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["protocol"], 1);
    assert_eq!(
        v["target"],
        format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
    );
    let exe = v["exe"].as_str().unwrap();
    let digest = sha2::Sha256::digest(std::fs::read(exe).unwrap());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v["sha256"], hex);
    let text = String::from_utf8(h.run(&["version"], b"").stdout).unwrap();
    assert!(text.starts_with(&format!("sremote-endpoint {}", env!("CARGO_PKG_VERSION"))));
    assert!(
        h.run(&["version", "--json"], b"")
            .stdout
            .windows(6)
            .all(|w| w != b"sha256")
    );
}

#[test]
fn modules_lists_signatures() {
    let h = host();
    write_script(
        &h.home().join(".sremote/modules/myplug"),
        "echo '{\"ok\": 1}'\n",
    );
    let text = String::from_utf8(h.run(&["modules"], b"").stdout).unwrap();
    for line in [
        "os.getenv(key: str, default: str | None = None) -> str | None",
        "os.listdir(path: str = \".\") -> list[str]",
        "os.makedirs(path: str, exist_ok: bool = False) -> None",
        "fs.write_bytes(path: str, data: bytes) -> int",
        "subprocess.run(argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None, \
         input: str | None = None, timeout: float | None = None) -> dict",
        "sys.probe() -> dict",
        "myplug (plugin: ",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let v: Value = serde_json::from_slice(&h.run(&["modules", "--json"], b"").stdout).unwrap();
    let names: Vec<&str> = v["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fs", "os", "subprocess", "sys", "myplug"]);
    assert_eq!(h.ok("sys", "modules", json!([])), v);
}

#[test]
fn builtin_os() {
    let h = host();
    let home = h.home().display().to_string();
    let d = format!("{home}/x/y");
    assert_eq!(h.ok("os", "getenv", json!(["SR_NOPE", "dflt"])), "dflt");
    assert_eq!(h.ok("os", "getenv", json!(["SR_NOPE"])), Value::Null);
    assert_eq!(h.ok("os", "environ", json!([]))["HOME"], json!(home));
    assert_eq!(h.ok("os", "getcwd", json!([])), json!(home));
    assert_eq!(h.ok("os", "makedirs", json!([d])), Value::Null);
    assert_eq!(kind(&h.err("os", "makedirs", json!([d]))), "Raised");
    let resp = h.call_with(
        "os",
        "makedirs",
        json!([d]),
        json!({"kwargs": {"exist_ok": true}}),
    );
    assert_eq!(resp["ok"], Value::Null);
    std::fs::write(format!("{d}/b"), "12345").unwrap();
    std::fs::write(format!("{d}/a"), "").unwrap();
    assert_eq!(h.ok("os", "listdir", json!([d])), json!(["a", "b"]));
    assert_eq!(
        h.ok("os", "listdir", json!([])),
        json!(["x"]),
        "default path is the cwd"
    );
    let st = h.ok("os", "stat", json!([format!("{d}/b")]));
    assert_eq!(
        (
            st["size"].as_u64(),
            st["is_file"].as_bool(),
            st["is_dir"].as_bool()
        ),
        (Some(5), Some(true), Some(false))
    );
    assert!(
        st["mtime"].as_f64().unwrap() > 1.6e9
            && st["mode"].as_u64().is_some()
            && st["uid"].as_u64().is_some()
    );
    std::os::unix::fs::symlink(format!("{d}/b"), format!("{d}/link")).unwrap();
    let st = h.ok("os", "stat", json!([format!("{d}/link")]));
    assert_eq!(
        (st["is_symlink"].as_bool(), st["size"].as_u64()),
        (Some(true), Some(5))
    );
    assert_eq!(h.ok("os", "path_exists", json!([format!("{d}/b")])), true);
    assert_eq!(
        h.ok("os", "rename", json!([format!("{d}/b"), format!("{d}/c")])),
        Value::Null
    );
    assert_eq!(h.ok("os", "path_exists", json!([format!("{d}/b")])), false);
    for f in ["a", "c", "link"] {
        assert_eq!(
            h.ok("os", "remove", json!([format!("{d}/{f}")])),
            Value::Null
        );
    }
    assert_eq!(h.ok("os", "rmdir", json!([d])), Value::Null);
    let e = h.err("os", "remove", json!(["/nonexistent/x"]));
    assert_eq!(
        (kind(&e), msg(&e)),
        (
            "Raised",
            "os.remove(\"/nonexistent/x\"): No such file or directory (os error 2)"
        )
    );
    assert_eq!(
        (e["module"].as_str(), e["function"].as_str()),
        (Some("os"), Some("remove"))
    );
    assert!(h.ok("os", "cpu_count", json!([])).as_u64().unwrap() >= 1);
    let resp = h.call("os", "getpid", json!([]));
    assert_eq!(resp["ok"], resp["pid"]);
    let u = h.ok("os", "uname", json!([]));
    assert_eq!(u["sysname"], "Linux");
    for k in ["nodename", "release", "version", "machine"] {
        assert!(u[k].is_string(), "{k}");
    }
}

#[test]
fn builtin_fs() {
    let h = host();
    let p = h.home().join("f.txt").display().to_string();
    assert_eq!(h.ok("fs", "write_text", json!([p, "héllo\n"])), 7);
    assert_eq!(h.ok("fs", "append_text", json!([p, "more"])), 4);
    assert_eq!(h.ok("fs", "read_text", json!([p])), "héllo\nmore");
    let blob = json!({"$bytes": "AAEC/w=="});
    assert_eq!(h.ok("fs", "write_bytes", json!([p, blob])), 4);
    assert_eq!(std::fs::read(&p).unwrap(), [0, 1, 2, 255]);
    assert_eq!(h.ok("fs", "read_bytes", json!([p])), blob);
    assert!(msg(&h.err("fs", "read_text", json!([p]))).contains("not valid UTF-8"));
    let e = h.err("fs", "write_bytes", json!([p, "not a blob"]));
    assert_eq!(kind(&e), "BadArguments");
    assert!(msg(&e).contains("argument `data`"), "{}", msg(&e));
}

#[test]
fn builtin_subprocess() {
    let h = host();
    let r = h.ok(
        "subprocess",
        "run",
        json!([["sh", "-c", "cat; echo \" $SR_V\" in $(pwd); echo oops >&2; exit 3"], "/", {"SR_V": "42"}, "input"]),
    );
    assert_eq!(
        r,
        json!({"returncode": 3, "stdout": "input 42 in /\n", "stderr": "oops\n"})
    );
    // Arguments are data, never shell-parsed.
    let hostile = "$(touch pwned); `id` | ; 'q\" \n";
    let r = h.ok("subprocess", "run", json!([["printf", "%s", hostile]]));
    assert_eq!(r["stdout"], hostile);
    assert!(!h.home().join("pwned").exists());
    // A child reading stdin gets /dev/null, not the request stream.
    assert_eq!(h.ok("subprocess", "run", json!([["cat"]]))["stdout"], "");
    let r = h.ok("subprocess", "run", json!([["sh", "-c", "kill -9 $$"]]));
    assert_eq!(r["returncode"], -9);
    let e = h.err("subprocess", "run", json!([["/no/such/program"]]));
    assert_eq!(kind(&e), "Raised");
    assert!(msg(&e).contains("No such file"), "{}", msg(&e));
    // Timeout: the process group is killed (also the grandchild holding the pipe).
    let t0 = Instant::now();
    let resp = h.call_with(
        "subprocess",
        "run",
        json!([["sh", "-c", "echo started; sleep 30 & wait"]]),
        json!({"kwargs": {"timeout": 0.3}}),
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    let e = &resp["error"];
    assert_eq!(kind(e), "Timeout");
    assert!(msg(e).contains("timed out after 0.3 s"), "{}", msg(e));
    assert_eq!(e["data"]["stdout"], "started\n");
}

#[test]
fn builtin_sys() {
    let h = host();
    let p = h.ok("sys", "probe", json!([]));
    assert_eq!(p["os"], std::env::consts::OS);
    assert_eq!(p["arch"], std::env::consts::ARCH);
    assert!(p["cpus"].as_u64().unwrap() >= 1);
    assert!(p["mem_total"].as_u64().unwrap() >= p["mem_available"].as_u64().unwrap());
    assert!(p["disk_total_home"].as_u64().unwrap() >= p["disk_free_home"].as_u64().unwrap());
    assert_eq!(p["loadavg"].as_array().unwrap().len(), 3);
    assert!(p["gpus"].is_array() && p["kernel"].is_string() && p["hostname"].is_string());
    assert!(p["python3"].is_string() || p["python3"].is_null());
    let v = h.ok("sys", "version", json!([]));
    assert_eq!(
        (v["version"].as_str(), v["protocol"].as_u64()),
        (Some(env!("CARGO_PKG_VERSION")), Some(1))
    );
    let home = h.home().display().to_string();
    assert_eq!(
        h.ok("sys", "location", json!([])),
        json!({"sremote": format!("{home}/.sremote"), "tmp": format!("{home}/.sremote/tmp"), "modules": format!("{home}/.sremote/modules")})
    );
    assert_eq!(kind(&h.err("sys", "version", json!([1]))), "BadArguments");
}

#[test]
fn location_file_and_sremote_dir_are_honoured() {
    let mut h = host();
    let home = h.home().display().to_string();
    std::fs::create_dir_all(h.home().join(".sremote")).unwrap();
    let loc = h.home().join(".sremote/.location");
    std::fs::write(
        &loc,
        r#"{"sremote": "custom/sr", "relative_tmp": "scratch"}"#,
    )
    .unwrap();
    assert_eq!(
        h.ok("sys", "location", json!([])),
        json!({"sremote": format!("{home}/custom/sr"), "tmp": format!("{home}/custom/sr/scratch"), "modules": format!("{home}/custom/sr/modules")})
    );
    std::fs::write(
        &loc,
        r#"{"sremote": "/srv/sremote", "absolute_tmp": "/scratch/me"}"#,
    )
    .unwrap();
    let l = h.ok("sys", "location", json!([]));
    assert_eq!(
        (l["sremote"].as_str(), l["tmp"].as_str()),
        (Some("/srv/sremote"), Some("/scratch/me"))
    );
    // A plugin is looked up under the discovered dir.
    write_script(
        &h.home().join("custom/sr/modules/where"),
        "cat >/dev/null; echo '{\"ok\": \"custom\"}'\n",
    );
    std::fs::write(&loc, r#"{"sremote": "custom/sr"}"#).unwrap();
    assert_eq!(h.ok("where", "anything", json!([])), "custom");
    // A broken .location is ignored.
    std::fs::write(&loc, "{not json").unwrap();
    assert_eq!(
        h.ok("sys", "location", json!([]))["sremote"],
        json!(format!("{home}/.sremote"))
    );
    // SREMOTE_DIR wins.
    h.env.push(("SREMOTE_DIR".into(), "/opt/sr".into()));
    assert_eq!(h.ok("sys", "location", json!([]))["tmp"], "/opt/sr/tmp");
}

#[test]
fn installed_layout_finds_its_dir_from_the_executable() {
    let h = host();
    let dir = h.home().join("somewhere/sr");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let exe = dir.join("bin/sremote-endpoint-0.1.0");
    std::fs::copy(env!("CARGO_BIN_EXE_sremote-endpoint"), &exe).unwrap();
    let installed = Host {
        exe,
        home: tempfile::tempdir().unwrap(),
        env: Vec::new(),
    };
    assert_eq!(
        installed.ok("sys", "location", json!([]))["sremote"],
        json!(dir.display().to_string())
    );
}

#[test]
fn plugin_executables() {
    let h = host();
    let modules = h.home().join(".sremote/modules");
    // Echoes the function name and the first argument it finds in the request.
    write_script(
        &modules.join("shellplug"),
        r#"req=$(cat)
fn=$(printf '%s' "$req" | sed -n 's/.*"function":"\([^"]*\)".*/\1/p')
echo "plugin stderr line" >&2
case "$fn" in
  hello) printf '{"ok": {"function": "%s", "saw_args": %s}, "stdout": "printed by plugin\\n"}' "$fn" "$(printf '%s' "$req" | grep -c '"args":\[1,2\]')" ;;
  fail) echo '{"error": {"kind": "ValueError", "message": "bad value", "traceback": "line 1"}}' ;;
  nofn) echo '{"error": {"kind": "FunctionNotFound", "message": "no nofn"}}' ;;
  *) echo "this is not json" ;;
esac
"#,
    );
    let resp = h.call("shellplug", "hello", json!([1, 2]));
    assert_eq!(
        resp["ok"],
        json!({"function": "hello", "saw_args": 1}),
        "{resp}"
    );
    assert_eq!(resp["stdout"], "printed by plugin\n");
    assert!(
        resp["stderr"]
            .as_str()
            .unwrap()
            .contains("plugin stderr line")
    );
    let e = h.err("shellplug", "fail", json!([]));
    assert_eq!(
        (kind(&e), msg(&e), e["traceback"].as_str()),
        ("Raised", "ValueError: bad value", Some("line 1"))
    );
    assert_eq!(
        kind(&h.err("shellplug", "nofn", json!([]))),
        "FunctionNotFound"
    );
    let e = h.err("shellplug", "garbage", json!([]));
    assert_eq!(kind(&e), "Protocol");
    assert_eq!(e["data"]["output"], "this is not json\n");
    assert!(
        msg(&e).starts_with("plugin ") && msg(&e).contains("answered with invalid JSON"),
        "{}",
        msg(&e)
    );
    assert!(msg(&e).contains("this is not json"));
    // A non-executable file is not a plugin; a built-in cannot be shadowed.
    std::fs::write(modules.join("plain"), "echo '{\"ok\": 1}'").unwrap();
    assert_eq!(kind(&h.err("plain", "f", json!([]))), "ModuleNotFound");
    write_script(&modules.join("os"), "echo '{\"ok\": \"shadowed\"}'\n");
    assert_eq!(
        h.ok("os", "getenv", json!(["SR_NOPE", "builtin"])),
        "builtin"
    );
    // Plugins are available for check_modules.
    let resp = h.call_with(
        "os",
        "getpid",
        json!([]),
        json!({"check_modules": ["shellplug", "os"]}),
    );
    assert!(resp["ok"].is_u64(), "{resp}");
    // A plugin that hangs is killed at the request's timeout.
    write_script(&modules.join("hang"), "sleep 30\n");
    let t0 = Instant::now();
    let resp = h.call_with("hang", "f", json!([]), json!({"timeout_ms": 300}));
    assert_eq!(kind(&resp["error"]), "Timeout");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn dispatch_errors() {
    let h = host();
    let e = h.err("nomod", "f", json!([]));
    assert_eq!(kind(&e), "ModuleNotFound");
    assert!(msg(&e).contains("fs, os, subprocess, sys"), "{}", msg(&e));
    let e = h.err("../etc", "f", json!([]));
    assert_eq!(kind(&e), "ModuleNotFound");
    assert!(msg(&e).contains("invalid module name"));
    let e = h.err("os", "nofn", json!([]));
    assert_eq!(kind(&e), "FunctionNotFound");
    assert!(
        msg(&e).contains("getenv") && msg(&e).contains("uname"),
        "{}",
        msg(&e)
    );

    let sig = "os.getenv(key: str, default: str | None = None) -> str | None";
    let e = h.err("os", "getenv", json!(["a", "b", "c"]));
    assert_eq!(kind(&e), "BadArguments");
    assert!(
        msg(&e).contains("takes 2 positional argument(s) but 3 were given")
            && msg(&e).contains(sig),
        "{}",
        msg(&e)
    );
    let e = h.err("os", "getenv", json!([]));
    assert!(
        msg(&e).contains("missing required argument `key`"),
        "{}",
        msg(&e)
    );
    let e = h.err("os", "getenv", json!([42]));
    assert!(
        msg(&e).contains("argument `key` does not fit type str") && msg(&e).contains(sig),
        "{}",
        msg(&e)
    );
    assert_eq!(e["data"]["argument"], "key");
    let resp = h.call_with(
        "os",
        "getenv",
        json!(["HOME"]),
        json!({"kwargs": {"nope": 1}}),
    );
    assert!(msg(&resp["error"]).contains("unexpected keyword argument `nope`"));
    let resp = h.call_with(
        "os",
        "getenv",
        json!(["SR_NOPE"]),
        json!({"kwargs": {"default": "kw"}}),
    );
    assert_eq!(resp["ok"], "kw");

    let resp = h.call_with(
        "os",
        "getpid",
        json!([]),
        json!({"check_modules": ["os", "numpy", "sys", "nope"]}),
    );
    let e = &resp["error"];
    assert_eq!(kind(e), "ModulesMissing");
    assert_eq!(e["data"]["missing"], json!(["numpy", "nope"]));
    assert_eq!(
        e["data"]["present"],
        json!({"os": env!("CARGO_PKG_VERSION"), "sys": env!("CARGO_PKG_VERSION")})
    );
}

#[test]
fn timeout_of_a_builtin_call() {
    let h = host();
    let t0 = Instant::now();
    let resp = h.call_with(
        "subprocess",
        "run",
        json!([["sleep", "30"]]),
        json!({"timeout_ms": 300}),
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    let e = &resp["error"];
    assert_eq!(kind(e), "Timeout");
    assert!(
        msg(e).contains("subprocess.run did not finish within 300 ms"),
        "{}",
        msg(e)
    );
}

#[test]
fn malformed_requests_get_error_responses() {
    let h = host();
    for garbage in [
        &b""[..],
        b"garbage",
        b"[]",
        b"{}",
        b"\xff\xfe",
        br#"{"protocol":1,"id":"g"}"#,
        b"{\"protocol\":1,",
    ] {
        let resp = h.call_raw(garbage);
        assert_eq!(
            kind(&resp["error"]),
            "BadRequest",
            "{:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    let resp =
        h.call_raw(br#"{"protocol":1,"id":"g","module":"os","function":"getpid","args":{}}"#);
    assert_eq!(
        (resp["id"].as_str(), kind(&resp["error"])),
        (Some("g"), "BadRequest")
    );
    let resp = h.call_raw(br#"{"protocol":2,"id":"v2","module":"os","function":"getpid"}"#);
    assert_eq!(
        (resp["id"].as_str(), kind(&resp["error"])),
        (Some("v2"), "ProtocolVersion")
    );
    assert!(msg(&resp["error"]).contains("protocol 2"));
}

/// `job submit` hands a job to the batch system at most once: a repeat (a lost answer, a
/// takeover) prints the recorded answer; a failed submission is not recorded; a missing
/// program is code 127; the script arrives on the program's stdin.
#[test]
fn job_submit_runs_the_batch_command_at_most_once() {
    let h = host();
    let dir = h.home().join("jobs").join("j1");
    let req = br#"{"protocol":1,"id":"j1","module":"os","function":"getpid"}"#;
    let out = h.run(&["job", "create", dir.to_str().unwrap(), "-"], req);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fake_sbatch = "cat > script.seen; echo run >> runs; echo \"Submitted batch job 42\"";
    let submit = |script: &[u8], prog: &[&str]| -> Value {
        let mut args = vec!["job", "submit", dir.to_str().unwrap(), "--"];
        args.extend_from_slice(prog);
        let out = h.run(&args, script);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // A failing submission is reported and not recorded.
    let failed = submit(b"", &["sh", "-c", "echo no partition >&2; exit 1"]);
    assert_eq!(
        (&failed["code"], &failed["again"]),
        (&json!(1), &json!(false))
    );
    assert_eq!(failed["stderr"], "no partition\n");
    let missing = submit(b"", &["no-such-sbatch-x"]);
    assert_eq!(missing["code"], 127, "{missing}");
    let first = submit(b"#!/bin/sh\necho hi\n", &["sh", "-c", fake_sbatch]);
    assert_eq!(
        (&first["code"], &first["again"]),
        (&json!(0), &json!(false))
    );
    assert_eq!(first["stdout"], "Submitted batch job 42\n");
    let again = submit(b"#!/bin/sh\necho hi\n", &["sh", "-c", fake_sbatch]);
    assert_eq!(again["again"], true);
    assert_eq!(again["stdout"], first["stdout"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("runs")).unwrap(),
        "run\n",
        "ran once"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("script.seen")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    // Not a job dir: refused.
    let out = h.run(
        &["job", "submit", h.home().to_str().unwrap(), "--", "true"],
        b"",
    );
    assert!(!out.status.success());
}

/// Golden: what the job commands write and print is `sremote_core::protocol::job`'s types,
/// byte for byte — each file and line parses into its type and serialises back to the same
/// bytes (so a reader of the shared type, and one of the older `state` string / raw JSON
/// kind, read the same thing).
#[test]
fn job_files_and_answers_are_the_shared_types() {
    use sremote_core::protocol::job::{
        self, CancelRequest, Created, State, Status, StatusReport, SubmitAnswer, to_line,
    };
    let h = host();
    let jobs = h.home().join(job::JOBS_DIR);
    let dir = jobs.join("g1");
    let d = dir.to_str().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_string();
    let req = br#"{"protocol":1,"id":"g1","module":"os","function":"getpid"}"#;
    let out = h.run(&["job", "create", d, "-"], req);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: Created = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(to_line(&created), text(&out.stdout));
    assert_eq!(created.dir, d);

    let file = std::fs::read(dir.join(job::STATUS_FILE)).unwrap();
    let status: Status = serde_json::from_slice(&file).unwrap();
    assert_eq!(status.state, State::Queued);
    assert_eq!(serde_json::to_vec(&status).unwrap(), file);
    let raw: Value = serde_json::from_slice(&file).unwrap();
    assert_eq!(
        raw["state"], "queued",
        "older readers match the state string"
    );

    for args in [
        &["job", "status", d][..],
        &["job", "poll", d][..],
        &["job", "cancel", d, "--mark", "--grace", "3"][..],
    ] {
        let out = h.run(args, b"");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let line = text(&out.stdout);
        let line = line.lines().next().unwrap();
        let report: StatusReport = serde_json::from_str(line).unwrap();
        assert_eq!(to_line(&report), line, "{args:?}");
        assert_eq!(report.status.state, State::Queued);
    }
    let cancel = std::fs::read(dir.join(job::CANCEL_FILE)).unwrap();
    let req: CancelRequest = serde_json::from_slice(&cancel).unwrap();
    assert_eq!(req.grace_ms, Some(3000));
    assert_eq!(serde_json::to_vec(&req).unwrap(), cancel);

    let out = h.run(&["job", "submit", d, "--", "sh", "-c", "echo 42"], b"");
    let answer: SubmitAnswer = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(serde_json::to_string(&answer).unwrap(), text(&out.stdout));
    assert_eq!((answer.code, answer.is_again()), (0, false));
    let raw: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        raw["code"].as_i64(),
        Some(0),
        "older readers index the code"
    );
    let record = std::fs::read(dir.join(job::SUBMITTED_FILE)).unwrap();
    let recorded: SubmitAnswer = serde_json::from_slice(&record).unwrap();
    assert_eq!(recorded.again, None);
    assert_eq!(serde_json::to_vec(&recorded).unwrap(), record);

    // A queued job keeps older endpoints: `job active` names it (exit 0); none: exit 1.
    let out = h.run(&["job", "active", jobs.to_str().unwrap()], b"");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "g1".into())
    );
    let out = h.run(&["job", "rm", d], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = h.run(&["job", "active", jobs.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
}
