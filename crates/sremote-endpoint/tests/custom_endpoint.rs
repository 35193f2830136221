//! A custom endpoint built with the library API, run as a real child process.
//!
//! This test binary is its own endpoint (`harness = false`): started with
//! `SREMOTE_TEST_AS_ENDPOINT=1` it runs `Endpoint::run`; otherwise it runs the tests
//! below, which start itself as the endpoint and talk to it in pipe and file mode.

mod common;

use std::time::{Duration, Instant};

use common::Host;
use serde_json::{Value, json};
use sremote_endpoint::{CallError, Endpoint, ErrorKind};

const AS_ENDPOINT: &str = "SREMOTE_TEST_AS_ENDPOINT";

fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Writes to stdout and stderr in every way a function can.
fn noisy() -> &'static str {
    println!("println line");
    eprintln!("eprintln line");
    print!("no newline, still buffered");
    // SAFETY: writing a static buffer to fd 1.
    unsafe { libc::write(1, c"raw fd write\n".as_ptr().cast(), 13) };
    // A child inheriting fd 1 and fd 2.
    let _ = std::process::Command::new("sh")
        .args(["-c", "echo child stdout; echo child stderr >&2"])
        .status();
    "done"
}

fn slow(ms: u64) -> u64 {
    println!("starting to sleep");
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn boom(n: i64) -> i64 {
    if n > 0 {
        panic!("boom with {n}");
    }
    n
}

fn checked_div(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 {
        Err(format!("division of {a} by zero"))
    } else {
        Ok(a / b)
    }
}

fn endpoint() -> Endpoint {
    Endpoint::with_builtins()
        .module("calc", |m| {
            m.version("2.5.0").doc("Arithmetic.");
            m.function("add", add)
                .params(&["a", "b"])
                .function("div", checked_div)
                .params(&["a", "b"])
                .function("strict", |x: u8| -> Result<u8, CallError> {
                    if x == 0 {
                        Err(CallError::new(
                            ErrorKind::BadArguments,
                            "x must be positive",
                        ))
                    } else {
                        Ok(x)
                    }
                })
        })
        .module("t", |m| {
            m.function("noisy", noisy)
                .function("slow", slow)
                .params(&["ms"])
                .function("boom", boom)
        })
}

fn host() -> Host {
    let mut h = Host::new(std::env::current_exe().unwrap());
    h.env.push((AS_ENDPOINT.into(), "1".into()));
    h
}

fn stdout_and_stderr_are_captured_and_the_stream_stays_clean() {
    let h = host();
    let out = h.run(
        &["call", "-"],
        br#"{"protocol":1,"id":"n","module":"t","function":"noisy"}"#,
    );
    assert_eq!(out.status.code(), Some(0));
    // Nothing but one JSON response on stdout.
    let resp: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(resp["ok"], "done");
    let so = resp["stdout"].as_str().unwrap();
    let se = resp["stderr"].as_str().unwrap();
    for part in [
        "println line\n",
        "no newline, still buffered",
        "raw fd write\n",
        "child stdout\n",
    ] {
        assert!(so.contains(part), "{part:?} not in stdout {so:?}");
    }
    for part in ["eprintln line\n", "child stderr\n"] {
        assert!(se.contains(part), "{part:?} not in stderr {se:?}");
    }
    assert!(
        out.stderr.is_empty(),
        "leaked to stderr: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );

    // File mode captures too, and prints nothing.
    let req = h.home().join("req.json");
    let resp_path = h.home().join("resp.json");
    std::fs::write(
        &req,
        br#"{"protocol":1,"id":"n","module":"t","function":"noisy"}"#,
    )
    .unwrap();
    let out = h.run(
        &["call", req.to_str().unwrap(), resp_path.to_str().unwrap()],
        b"",
    );
    assert!(out.stdout.is_empty());
    let resp: Value = serde_json::from_slice(&std::fs::read(&resp_path).unwrap()).unwrap();
    assert!(resp["stdout"].as_str().unwrap().contains("child stdout"));
}

fn typed_functions_and_their_errors() {
    let h = host();
    assert_eq!(h.ok("calc", "add", json!([2, 3])), 5);
    let resp = h.call_with(
        "calc",
        "add",
        json!([]),
        json!({"kwargs": {"b": 1, "a": 2}}),
    );
    assert_eq!(resp["ok"], 3);
    let e = h.err("calc", "add", json!([1, "x"]));
    assert_eq!(e["kind"], "BadArguments");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("argument `b`") && m.contains("calc.add(a: int, b: int) -> int"),
        "{m}"
    );
    assert_eq!(h.ok("calc", "div", json!([7, 2])), 3);
    let e = h.err("calc", "div", json!([7, 0]));
    assert_eq!(
        (e["kind"].as_str(), e["message"].as_str()),
        (Some("Raised"), Some("division of 7 by zero"))
    );
    assert_eq!(h.err("calc", "strict", json!([0]))["kind"], "BadArguments");
    let e = h.err("calc", "strict", json!([300]));
    assert!(e["message"].as_str().unwrap().contains("arg0"), "{e}");
    let resp = h.call_with(
        "os",
        "getpid",
        json!([]),
        json!({"check_modules": ["calc", "t", "nope"]}),
    );
    assert_eq!(resp["error"]["data"]["present"]["calc"], "2.5.0");
    assert_eq!(resp["error"]["data"]["missing"], json!(["nope"]));
}

fn panics_are_reported_and_the_endpoint_survives() {
    let h = host();
    let out = h.run(
        &["call", "-"],
        br#"{"protocol":1,"id":"p","module":"t","function":"boom","args":[3]}"#,
    );
    assert_eq!(out.status.code(), Some(0));
    let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &resp["error"];
    assert_eq!(e["kind"], "Panicked");
    assert!(e["message"].as_str().unwrap().contains("boom with 3"));
    assert!(
        e["traceback"]
            .as_str()
            .unwrap()
            .contains("custom_endpoint.rs"),
        "{e}"
    );
    assert_eq!(h.ok("t", "boom", json!([0])), 0);
}

fn timeouts_answer_promptly() {
    let h = host();
    let t0 = Instant::now();
    let resp = h.call_with("t", "slow", json!([60_000]), json!({"timeout_ms": 300}));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(resp["error"]["kind"], "Timeout");
    assert!(
        resp["stdout"]
            .as_str()
            .unwrap()
            .contains("starting to sleep"),
        "{resp}"
    );
    assert_eq!(
        h.call_with("t", "slow", json!([1]), json!({"timeout_ms": 5000}))["ok"],
        1
    );
}

fn modules_listing_shows_custom_modules() {
    let h = host();
    let text = String::from_utf8(h.run(&["modules"], b"").stdout).unwrap();
    for line in [
        "calc (custom): Arithmetic.",
        "calc.add(a: int, b: int) -> int",
        "t.slow(ms: int) -> int",
        "os.getenv(",
    ] {
        assert!(text.contains(line), "{line:?} missing in\n{text}");
    }
}

fn main() {
    if std::env::var_os(AS_ENDPOINT).is_some() {
        endpoint().run();
    }
    let tests: [(&str, fn()); 5] = [
        (
            "stdout_and_stderr_are_captured_and_the_stream_stays_clean",
            stdout_and_stderr_are_captured_and_the_stream_stays_clean,
        ),
        (
            "typed_functions_and_their_errors",
            typed_functions_and_their_errors,
        ),
        (
            "panics_are_reported_and_the_endpoint_survives",
            panics_are_reported_and_the_endpoint_survives,
        ),
        ("timeouts_answer_promptly", timeouts_answer_promptly),
        (
            "modules_listing_shows_custom_modules",
            modules_listing_shows_custom_modules,
        ),
    ];
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // The libtest protocol nextest and cargo test use: `--list [--ignored]`, `--exact`.
    if argv.iter().any(|a| a == "--list") {
        if !argv.iter().any(|a| a == "--ignored") {
            for (name, _) in &tests {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = argv.iter().any(|a| a == "--exact");
    let filter: Vec<String> = argv.into_iter().filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        let selected = |f: &String| {
            if exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        if !filter.is_empty() && !filter.iter().any(selected) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 101 });
}
