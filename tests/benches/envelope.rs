//! The session frames' JSON messages against a bincode envelope (issue 14, target 6): the
//! cost per call of encoding and decoding one request and one response — what the client
//! and the endpoint do for every call — for `os.getenv("HOME")`.
//!
//! - `envelope/json/*`: today's messages, `serde_json` both ways (`Request::parse`,
//!   `Response::parse`, as the endpoint and the client read them).
//! - `envelope/bincode/*`: the same fields in a bincode (1.x) envelope. The user-visible
//!   JSON values (`args`, `kwargs`, `ok`, an error's body) stay JSON bytes inside it:
//!   plugins, the Python bridge and users see JSON, and `serde_json::Value` cannot be
//!   decoded by bincode (it needs `deserialize_any`).
//!
//! Run: `cargo bench -p sremote-tests --bench envelope`. The measurement and the decision
//! are in PROTOCOL.md ("Session mode", "Why JSON and not bincode").
use std::collections::BTreeMap;

use criterion::{Criterion, black_box, criterion_group};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sremote_core::protocol::{Outcome, Request, Response, Timing};

/// A request as the client sends it for `os.getenv("HOME")`.
fn request() -> Request {
    let mut r = Request::new("1f2e3-4a5b6c-17", "os", "getenv");
    r.args.push(Value::from("HOME"));
    r
}

/// The endpoint's answer to it.
fn response() -> Response {
    Response {
        protocol: 1,
        id: "1f2e3-4a5b6c-17".into(),
        endpoint_version: "0.1.0".into(),
        outcome: Outcome::Ok(Value::from("/home/alice")),
        stdout: String::new(),
        stderr: String::new(),
        timing: Timing {
            started_unix_ms: 1_795_300_000_000,
            elapsed_us: 3,
        },
        host: "login01".into(),
        pid: 48121,
    }
}

/// The request's fields in bincode, as written (borrowed, like `serde_json::to_vec` of a
/// `Request`); the JSON values as JSON text.
#[derive(Serialize)]
struct BinRequestOut<'a> {
    protocol: u32,
    id: &'a str,
    module: &'a str,
    function: &'a str,
    args: String,
    kwargs: String,
    env: &'a BTreeMap<String, String>,
    env_if_unset: &'a BTreeMap<String, String>,
    path: &'a [String],
    check_modules: &'a [String],
    timeout_ms: Option<u64>,
    code: &'a [sremote_core::protocol::ShippedModule],
}

/// The same, as read.
#[derive(Deserialize)]
struct BinRequest {
    protocol: u32,
    id: String,
    module: String,
    function: String,
    args: String,
    kwargs: String,
    env: BTreeMap<String, String>,
    env_if_unset: BTreeMap<String, String>,
    path: Vec<String>,
    check_modules: Vec<String>,
    timeout_ms: Option<u64>,
    code: Vec<sremote_core::protocol::ShippedModule>,
}

/// The response's fields in bincode, as written; the value (or the error, whose `data`
/// is JSON) as JSON text.
#[derive(Serialize)]
struct BinResponseOut<'a> {
    protocol: u32,
    id: &'a str,
    endpoint_version: &'a str,
    ok: Option<String>,
    error: Option<String>,
    stdout: &'a str,
    stderr: &'a str,
    started_unix_ms: u64,
    elapsed_us: u64,
    host: &'a str,
    pid: u32,
}

/// The same, as read.
#[derive(Deserialize)]
struct BinResponse {
    protocol: u32,
    id: String,
    endpoint_version: String,
    ok: Option<String>,
    error: Option<String>,
    stdout: String,
    stderr: String,
    started_unix_ms: u64,
    elapsed_us: u64,
    host: String,
    pid: u32,
}

fn bin_request(r: &Request) -> Vec<u8> {
    let env = BinRequestOut {
        protocol: r.protocol,
        id: &r.id,
        module: &r.module,
        function: &r.function,
        args: serde_json::to_string(&r.args).unwrap(),
        kwargs: serde_json::to_string(&r.kwargs).unwrap(),
        env: &r.env,
        env_if_unset: &r.env_if_unset,
        path: &r.path,
        check_modules: &r.check_modules,
        timeout_ms: r.timeout_ms,
        code: &r.code,
    };
    bincode::serialize(&env).unwrap()
}

fn from_bin_request(bytes: &[u8]) -> Request {
    let b: BinRequest = bincode::deserialize(bytes).unwrap();
    let mut r = Request::new(b.id, b.module, b.function);
    r.protocol = b.protocol;
    r.args = serde_json::from_str(&b.args).unwrap();
    r.kwargs = serde_json::from_str(&b.kwargs).unwrap();
    r.env = b.env;
    r.env_if_unset = b.env_if_unset;
    r.path = b.path;
    r.check_modules = b.check_modules;
    r.timeout_ms = b.timeout_ms;
    r.code = b.code;
    r
}

fn bin_response(r: &Response) -> Vec<u8> {
    let (ok, error) = match &r.outcome {
        Outcome::Ok(v) => (Some(serde_json::to_string(v).unwrap()), None),
        Outcome::Error(e) => (None, Some(serde_json::to_string(e).unwrap())),
    };
    let env = BinResponseOut {
        protocol: r.protocol,
        id: &r.id,
        endpoint_version: &r.endpoint_version,
        ok,
        error,
        stdout: &r.stdout,
        stderr: &r.stderr,
        started_unix_ms: r.timing.started_unix_ms,
        elapsed_us: r.timing.elapsed_us,
        host: &r.host,
        pid: r.pid,
    };
    bincode::serialize(&env).unwrap()
}

fn from_bin_response(bytes: &[u8]) -> Response {
    let b: BinResponse = bincode::deserialize(bytes).unwrap();
    let outcome = match (b.ok, b.error) {
        (Some(v), None) => Outcome::Ok(serde_json::from_str(&v).unwrap()),
        (None, Some(e)) => Outcome::Error(serde_json::from_str(&e).unwrap()),
        _ => unreachable!("exactly one of ok and error"),
    };
    Response {
        protocol: b.protocol,
        id: b.id,
        endpoint_version: b.endpoint_version,
        outcome,
        stdout: b.stdout,
        stderr: b.stderr,
        timing: Timing {
            started_unix_ms: b.started_unix_ms,
            elapsed_us: b.elapsed_us,
        },
        host: b.host,
        pid: b.pid,
    }
}

fn envelopes(c: &mut Criterion) {
    let (req, resp) = (request(), response());
    // The round trip must be lossless both ways before it is worth timing.
    assert_eq!(from_bin_request(&bin_request(&req)), req);
    assert_eq!(from_bin_response(&bin_response(&resp)), resp);
    let json_req = serde_json::to_vec(&req).unwrap();
    let json_resp = serde_json::to_vec(&resp).unwrap();
    let (bin_req, bin_resp) = (bin_request(&req), bin_response(&resp));
    println!(
        "sizes: request json {} B, bincode {} B; response json {} B, bincode {} B",
        json_req.len(),
        bin_req.len(),
        json_resp.len(),
        bin_resp.len()
    );
    let mut g = c.benchmark_group("envelope");
    g.bench_function("json/request_encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&req)).unwrap())
    });
    g.bench_function("json/request_decode", |b| {
        b.iter(|| Request::parse(black_box(&json_req)).unwrap())
    });
    g.bench_function("json/response_encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&resp)).unwrap())
    });
    g.bench_function("json/response_decode", |b| {
        b.iter(|| Response::parse(black_box(&json_resp)).unwrap())
    });
    g.bench_function("json/per_call", |b| {
        b.iter(|| {
            let r = Request::parse(&serde_json::to_vec(black_box(&req)).unwrap()).unwrap();
            Response::parse(&serde_json::to_vec(black_box(&resp)).unwrap()).unwrap();
            r
        })
    });
    g.bench_function("bincode/request_encode", |b| {
        b.iter(|| bin_request(black_box(&req)))
    });
    g.bench_function("bincode/request_decode", |b| {
        b.iter(|| from_bin_request(black_box(&bin_req)))
    });
    g.bench_function("bincode/response_encode", |b| {
        b.iter(|| bin_response(black_box(&resp)))
    });
    g.bench_function("bincode/response_decode", |b| {
        b.iter(|| from_bin_response(black_box(&bin_resp)))
    });
    g.bench_function("bincode/per_call", |b| {
        b.iter(|| {
            let r = from_bin_request(&bin_request(black_box(&req)));
            from_bin_response(&bin_response(black_box(&resp)));
            r
        })
    });
    g.finish();
}

/// `SREMOTE_ENVELOPE_ITERS=N SREMOTE_ENVELOPE=json|bincode`: run one call's encodes and
/// decodes N times in a plain loop and exit, for an instruction count (`valgrind
/// --tool=callgrind`, N and 2N: the difference over N is one call's), which a loaded
/// machine does not disturb as it does wall-clock time.
fn count_only() -> bool {
    let Some(n) = std::env::var("SREMOTE_ENVELOPE_ITERS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return false;
    };
    let (req, resp) = (request(), response());
    let bincode = std::env::var("SREMOTE_ENVELOPE").is_ok_and(|v| v == "bincode");
    for _ in 0..n {
        if bincode {
            black_box(from_bin_request(&bin_request(black_box(&req))));
            black_box(from_bin_response(&bin_response(black_box(&resp))));
        } else {
            black_box(Request::parse(&serde_json::to_vec(black_box(&req)).unwrap()).unwrap());
            black_box(Response::parse(&serde_json::to_vec(black_box(&resp)).unwrap()).unwrap());
        }
    }
    true
}

criterion_group!(benches, envelopes);

fn main() {
    if !count_only() {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
