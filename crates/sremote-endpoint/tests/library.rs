//! The library API in-process: custom modules dispatched through `Endpoint::handle`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sremote_endpoint::{
    Args, Blob, CallContext, CallError, Endpoint, ErrorKind, Request, Response, protocol::Outcome,
};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Point {
    x: f64,
    y: f64,
}

fn norm(p: Point) -> f64 {
    (p.x * p.x + p.y * p.y).sqrt()
}

fn mirror(p: Point) -> Point {
    Point { x: -p.x, y: -p.y }
}

fn greet(name: String, greeting: Option<String>) -> String {
    format!("{}, {name}!", greeting.unwrap_or_else(|| "Hello".into()))
}

fn six(a: u8, b: u16, c: u32, d: i64, e: String, f: Vec<bool>) -> String {
    format!("{a} {b} {c} {d} {e} {f:?}")
}

fn parse_int(s: String) -> Result<i64, std::num::ParseIntError> {
    s.parse()
}

fn boxed(fail: bool) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    if fail {
        Err("boxed failure".into())
    } else {
        Ok(1)
    }
}

fn bytes_len(data: Blob) -> usize {
    data.len()
}

fn endpoint() -> Endpoint {
    Endpoint::with_builtins()
        .module("geo", |m| {
            m.function("norm", norm).params(&["p"]);
            m.function("mirror", mirror).params(&["p"]).returns("Point")
        })
        .module("misc", |m| {
            m.function("greet", greet)
                .params(&["name", "greeting"])
                .function("six", six)
                .function("nothing", || ())
                .function("parse_int", parse_int)
                .function("boxed", boxed)
                .function("bytes_len", bytes_len)
                .function("scaled", |x: f64, factor: f64| x * factor)
                .params(&["x", "factor"])
                .default("factor", 2.0)
                .function("panics", |v: Vec<i64>| v[10])
                .function("sleep_ms", |ms: u64| std::thread::sleep(Duration::from_millis(ms)))
                .function("chatty", |n: u32| {
                    for i in 0..n {
                        sremote_endpoint::println!("line {i}");
                    }
                    sremote_endpoint::eprint!("done");
                    n
                })
                .raw("context", "(*args, **kwargs) -> dict", |ctx: &CallContext<'_>, args: Args| {
                    Ok(json!({
                        "module": ctx.module(), "function": ctx.function(), "id": ctx.request_id(),
                        "args": args.args, "kwargs": args.kwargs,
                    }))
                })
        })
        // Extending a built-in module.
        .module("os", |m| m.function("answer", || 42))
}

fn request(module: &str, function: &str, args: Value) -> Request {
    let mut r = Request::new("lib", module, function);
    r.args = serde_json::from_value(args).unwrap();
    r
}

fn ok(resp: Response) -> Value {
    match resp.outcome {
        Outcome::Ok(v) => v,
        Outcome::Error(e) => panic!("call failed: {e:?}"),
    }
}

fn err(resp: Response) -> sremote_endpoint::protocol::ErrorBody {
    match resp.outcome {
        Outcome::Error(e) => e,
        Outcome::Ok(v) => panic!("call did not fail: {v}"),
    }
}

#[test]
fn typed_functions_round_trip_serde_types() {
    let ep = endpoint();
    assert_eq!(
        ok(ep.handle(request("geo", "norm", json!([{"x": 3.0, "y": 4.0}])))),
        json!(5.0)
    );
    assert_eq!(
        ok(ep.handle(request("geo", "mirror", json!([{"x": 1.0, "y": 2.0}])))),
        json!({"x": -1.0, "y": -2.0})
    );
    assert_eq!(
        ok(ep.handle(request("misc", "greet", json!(["Ada"])))),
        "Hello, Ada!"
    );
    assert_eq!(
        ok(ep.handle(request("misc", "greet", json!(["Ada", "Hi"])))),
        "Hi, Ada!"
    );
    let mut r = request("misc", "greet", json!([]));
    r.kwargs = BTreeMap::from([
        ("name".into(), json!("Bob")),
        ("greeting".into(), json!(null)),
    ]);
    assert_eq!(ok(ep.handle(r)), "Hello, Bob!");
    assert_eq!(
        ok(ep.handle(request("misc", "six", json!([1, 2, 3, -4, "e", [true]])))),
        "1 2 3 -4 e [true]"
    );
    assert_eq!(
        ok(ep.handle(request("misc", "nothing", json!([])))),
        Value::Null
    );
    assert_eq!(
        ok(ep.handle(request("misc", "scaled", json!([1.5])))),
        json!(3.0)
    );
    assert_eq!(
        ok(ep.handle(request("misc", "scaled", json!([1.5, 3.0])))),
        json!(4.5)
    );
    assert_eq!(
        ok(ep.handle(request("misc", "bytes_len", json!([{"$bytes": "AAEC"}])))),
        3
    );
    assert_eq!(ok(ep.handle(request("os", "answer", json!([])))), 42);
    assert_eq!(
        ok(ep.handle(request("os", "getenv", json!(["SR_NOPE", "still there"])))),
        "still there"
    );
    let ctx = ok(ep.handle(request("misc", "context", json!([1, "two"]))));
    assert_eq!(
        ctx,
        json!({"module": "misc", "function": "context", "id": "lib", "args": [1, "two"], "kwargs": {}})
    );
}

#[test]
fn signatures_are_derived_from_the_types() {
    let ep = endpoint();
    assert_eq!(
        ep.signature("geo", "norm").unwrap(),
        "geo.norm(p: Point) -> float"
    );
    assert_eq!(
        ep.signature("geo", "mirror").unwrap(),
        "geo.mirror(p: Point) -> Point"
    );
    assert_eq!(
        ep.signature("misc", "greet").unwrap(),
        "misc.greet(name: str, greeting: str | None = None) -> str"
    );
    assert_eq!(
        ep.signature("misc", "six").unwrap(),
        "misc.six(arg0: int, arg1: int, arg2: int, arg3: int, arg4: str, arg5: list[bool]) -> str"
    );
    assert_eq!(
        ep.signature("misc", "scaled").unwrap(),
        "misc.scaled(x: float, factor: float = 2.0) -> float"
    );
    assert_eq!(
        ep.signature("misc", "parse_int").unwrap(),
        "misc.parse_int(arg0: str) -> int"
    );
    assert_eq!(
        ep.signature("misc", "bytes_len").unwrap(),
        "misc.bytes_len(arg0: bytes) -> int"
    );
    assert_eq!(
        ep.signature("misc", "nothing").unwrap(),
        "misc.nothing() -> None"
    );
    assert_eq!(
        ep.signature("misc", "context").unwrap(),
        "misc.context(*args, **kwargs) -> dict"
    );
    assert!(ep.signature("misc", "nope").is_none());
    let listing = ep.modules_json();
    let names: Vec<&str> = listing["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"geo") && names.contains(&"misc") && names.contains(&"os"));
}

#[test]
fn bad_arguments_name_the_signature_and_the_argument() {
    let ep = endpoint();
    let e = err(ep.handle(request("geo", "norm", json!([{"x": 1}]))));
    assert_eq!(e.kind, ErrorKind::BadArguments);
    assert!(
        e.message.contains("argument `p` does not fit type Point"),
        "{}",
        e.message
    );
    assert!(e.message.contains("geo.norm(p: Point) -> float"));
    assert_eq!(
        (e.module.as_deref(), e.function.as_deref()),
        (Some("geo"), Some("norm"))
    );
    let e = err(ep.handle(request("misc", "six", json!([256, 2, 3, 4, "e", []]))));
    assert!(e.message.contains("argument `arg0`"), "{}", e.message);
    let e = err(ep.handle(request("misc", "greet", json!([]))));
    assert!(e.message.contains("missing required argument `name`"));
    let e = err(ep.handle(request("misc", "nothing", json!([1]))));
    assert!(
        e.message
            .contains("takes 0 positional argument(s) but 1 were given")
    );
}

#[test]
fn errors_from_functions_keep_their_message_and_kind() {
    let ep = endpoint();
    let e = err(ep.handle(request("misc", "parse_int", json!(["x1"]))));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Raised, "invalid digit found in string")
    );
    assert_eq!(
        ok(ep.handle(request("misc", "parse_int", json!(["12"])))),
        12
    );
    let e = err(ep.handle(request("misc", "boxed", json!([true]))));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Raised, "boxed failure")
    );
    let e = err(ep.handle(request("nomod", "f", json!([]))));
    assert_eq!(e.kind, ErrorKind::ModuleNotFound);
    assert!(
        e.message.contains("geo") && e.message.contains("misc"),
        "{}",
        e.message
    );
    let e = err(ep.handle(request("geo", "area", json!([]))));
    assert_eq!(e.kind, ErrorKind::FunctionNotFound);
    assert!(e.message.contains("mirror, norm"), "{}", e.message);
}

#[test]
fn panics_are_caught_and_the_endpoint_keeps_working() {
    let ep = endpoint();
    let e = err(ep.handle(request("misc", "panics", json!([[1, 2]]))));
    assert_eq!(e.kind, ErrorKind::Panicked);
    assert!(e.message.contains("index out of bounds"), "{}", e.message);
    assert!(e.traceback.unwrap().contains("library.rs"));
    assert_eq!(
        ok(ep.handle(request("geo", "norm", json!([{"x": 0.0, "y": 1.0}])))),
        json!(1.0)
    );
}

#[test]
fn timeout_is_enforced_on_a_worker_thread() {
    let ep = endpoint();
    let mut r = request("misc", "sleep_ms", json!([3000]));
    r.timeout_ms = Some(100);
    let t0 = Instant::now();
    let e = err(ep.handle(r));
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(e.kind, ErrorKind::Timeout);
    let mut r = request("misc", "sleep_ms", json!([1]));
    r.timeout_ms = Some(5000);
    assert_eq!(ok(ep.handle(r)), Value::Null);
}

#[test]
fn handle_from_many_threads() {
    let ep = Arc::new(endpoint());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let ep = Arc::clone(&ep);
            std::thread::spawn(move || {
                for j in 0..50 {
                    let resp = ep.handle(request(
                        "geo",
                        "norm",
                        json!([{"x": i as f64, "y": j as f64}]),
                    ));
                    let expected = ((i * i + j * j) as f64).sqrt();
                    assert_eq!(ok(resp), json!(expected));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn check_modules_and_plugins_with_a_fixed_sremote_dir() {
    let dir = tempfile::tempdir().unwrap();
    common::write_script(&dir.path().join("modules/echo"), "cat\n");
    let ep = endpoint().sremote_dir(dir.path());
    assert_eq!(ep.location().modules, dir.path().join("modules"));
    // The plugin echoes the request back: it is not `{"ok"}` / `{"error"}`.
    let e = err(ep.handle(request("echo", "f", json!([]))));
    assert_eq!(e.kind, ErrorKind::Protocol);
    assert!(
        e.message.contains("answered with invalid JSON"),
        "{}",
        e.message
    );
    let mut r = request("os", "getpid", json!([]));
    r.check_modules = vec!["echo".into(), "geo".into(), "numpy".into()];
    let e = err(ep.handle(r));
    assert_eq!(e.kind, ErrorKind::ModulesMissing);
    assert_eq!(e.data["missing"], json!(["numpy"]));
    assert_eq!(
        e.data["present"],
        json!({"echo": "plugin", "geo": env!("CARGO_PKG_VERSION")})
    );
}

#[test]
fn handle_bytes_never_panics_on_garbage() {
    let ep = endpoint();
    for garbage in [
        &b""[..],
        b"\0",
        b"{",
        b"null",
        b"{\"protocol\":1e9}",
        b"[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]",
    ] {
        let e = err(ep.handle_bytes(garbage));
        assert_eq!(e.kind, ErrorKind::BadRequest);
    }
    let resp = ep.handle_bytes(br#"{"protocol":1,"id":"ok","module":"os","function":"answer"}"#);
    assert_eq!(resp.id, "ok");
    assert_eq!(ok(resp), json!(42));
}

#[test]
fn call_errors_convert() {
    let e: CallError = std::io::Error::other("disk").into();
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Raised, "disk"));
    let body = CallError::bad_arguments("x")
        .with_traceback("tb")
        .into_body("m", "f");
    assert_eq!(
        (body.module.as_deref(), body.traceback.as_deref()),
        (Some("m"), Some("tb"))
    );
}

/// Output printed with the crate's macros belongs to its own call, also when calls run at
/// once on several threads (session mode): nothing mixes.
#[test]
fn macro_output_goes_to_its_own_call() {
    let ep = endpoint();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=8u32)
            .map(|n| {
                let ep = ep.clone();
                scope.spawn(move || {
                    let resp = ep.handle(request("misc", "chatty", json!([n * 50])));
                    let expected: String = (0..n * 50).map(|i| format!("line {i}\n")).collect();
                    assert_eq!(resp.stdout, expected, "call {n}");
                    assert_eq!(resp.stderr, "done", "call {n}");
                    assert_eq!(ok(resp), json!(n * 50));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}
