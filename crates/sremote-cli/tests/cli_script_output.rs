//! Output made for scripts: `x=$(sremote call …)` captures the value alone (the call's own
//! prints go to stderr, `--output` chooses), `null` prints `null`, `-s/--str` forces
//! strings and a BadArguments error says how, and `--json` has one shape for one host and
//! for many. Local connector (no setup) and a shipped Python file.
mod common;

use common::{Client, text};

const NOISY: &str = "import sys\n\ndef noisy(a, b):\n    print('multiplying', a, 'by', b)\n    print('to stderr', file=sys.stderr)\n    return a * b\n\ndef kind(x):\n    return type(x).__name__\n";

fn client() -> (Client, String) {
    let c = Client::new("[hosts.here]\nconnector = \"local\"\n");
    let file = c.home.path().join("noisy.py");
    std::fs::write(&file, NOISY).unwrap();
    let path = file.to_str().unwrap().to_string();
    (c, path)
}

#[test]
fn stdout_holds_the_value_alone_and_the_prints_go_to_stderr() {
    let (c, file) = client();
    let f = format!("{file}:noisy");
    let out = c.run(&["call", "here", &f, "10", "7"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "70\n");
    let err = text(&out.stderr);
    let (p, e) = (
        err.find("multiplying 10 by 7").unwrap(),
        err.find("to stderr").unwrap(),
    );
    assert!(p < e, "stdout's prints first: {err}");

    let out = c.run(&["call", "here", &f, "10", "7", "--output", "inline"]);
    assert_eq!(text(&out.stdout), "multiplying 10 by 7\n70\n");
    assert!(text(&out.stderr).contains("to stderr"));

    let out = c.run(&["call", "here", &f, "10", "7", "--output", "none"]);
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("70\n".into(), "".into())
    );

    let out = c.run(&["--json", "call", "here", &f, "10", "7", "--output", "none"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], 70);
    assert_eq!(v["stdout"], "multiplying 10 by 7\n");
    assert_eq!(v["stderr"], "to stderr\n");

    let out = c.run(&["call", "here", &f, "1", "2", "--output", "sideways"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("stderr, inline or none"));
}

#[test]
fn null_prints_null() {
    let (c, _) = client();
    let out = c.run(&[
        "call",
        "here",
        "os",
        "getenv",
        "SREMOTE_TEST_SURELY_UNSET_9f2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "null\n");
    // An empty string is an empty line, told apart from null.
    let out = c
        .command(&["call", "here", "os", "getenv", "SREMOTE_TEST_EMPTY"])
        .env("SREMOTE_TEST_EMPTY", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\n");
}

#[test]
fn str_forces_strings_and_bad_arguments_say_how() {
    let (c, file) = client();
    let f = format!("{file}:kind");
    let kind = |extra: &[&str]| {
        let mut args = vec!["call", "here", &f];
        args.extend_from_slice(extra);
        let out = c.run(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(kind(&["42"]), "int\n");
    assert_eq!(kind(&["-s", "42"]), "str\n");
    assert_eq!(kind(&["--str", "[1, 2]"]), "str\n");
    assert_eq!(kind(&["true"]), "bool\n");
    assert_eq!(kind(&["hello"]), "str\n");
    assert_eq!(kind(&["--kw", "x=42"]), "int\n");
    assert_eq!(kind(&["-s", "--kw", "x=42"]), "str\n");

    // os.getenv takes a string name: 42 read as JSON is refused, and the error says how
    // to send it as a string.
    let out = c.run(&["call", "here", "os", "getenv", "42"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("BadArguments"), "{err}");
    assert!(
        err.contains("ARG 1 `42` was sent as JSON a number"),
        "{err}"
    );
    assert!(err.contains("-s/--str"), "{err}");
    let out = c.run(&["call", "here", "os", "getenv", "-s", "42"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn json_has_one_shape_for_one_host_and_for_many() {
    let (c, _) = client();
    let one = c.run(&["--json", "call", "here", "os", "getpid"]);
    assert!(one.status.success(), "{}", text(&one.stderr));
    let one: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    let many = c.run(&["--json", "call", "here,local", "os", "getpid"]);
    assert!(many.status.success(), "{}", text(&many.stderr));
    let lines: Vec<serde_json::Value> = text(&many.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let here = lines.iter().find(|v| v["host"] == "here").unwrap();
    assert_eq!(one["host"], "here", "the name given: {one}");
    assert!(one["hostname"].is_string(), "{one}");
    assert_eq!(one["hostname"], here["hostname"]);
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&one), keys(here));
}
