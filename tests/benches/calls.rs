//! Criterion benchmarks of the call paths and their parts:
//! - `frame/*`: session framing and protocol parsing (no I/O);
//! - `dispatch/*`: the endpoint's dispatcher in-process (no process, no I/O);
//! - `local/*`: a whole call through the real endpoint on this machine, per call mode.
//!
//! Run: `cargo bench -p sremote-tests --bench calls`.
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use sremote_core::frame::{self, FrameKind};
use sremote_core::protocol::{Request, Response};
use sremote_core::{CallMode, CallOutput, LocalConnector, RemoteClient};

fn request() -> Request {
    let mut r = Request::new("bench-1", "os", "getenv");
    r.args.push(Value::from("HOME"));
    r.env.insert("myVar".into(), "myValue".into());
    r
}

fn framing(c: &mut Criterion) {
    let req = request();
    let json = serde_json::to_vec(&req).unwrap();
    c.bench_function("frame/encode_request", |b| {
        b.iter(|| {
            frame::encode_message(FrameKind::Request, &serde_json::to_vec(&req).unwrap(), &[])
                .unwrap()
        })
    });
    let encoded = frame::encode_message(FrameKind::Request, &json, &[]).unwrap();
    c.bench_function("frame/decode_request", |b| {
        b.iter(|| {
            let (_, body) = frame::read_frame(&mut &encoded[..]).unwrap().unwrap();
            let (json, _) = frame::decode_message(&body).unwrap();
            Request::parse(json).unwrap()
        })
    });
    let endpoint = sremote_endpoint::Endpoint::with_builtins();
    let response = serde_json::to_vec(&endpoint.handle(req.clone())).unwrap();
    c.bench_function("frame/parse_response", |b| {
        b.iter(|| Response::parse(&response).unwrap())
    });
    let big = vec![7u8; 64 << 20];
    c.bench_function("frame/encode_64MiB_attachment", |b| {
        b.iter(|| {
            frame::encode_message(FrameKind::Request, &json, std::slice::from_ref(&big)).unwrap()
        })
    });
}

fn dispatch(c: &mut Criterion) {
    let endpoint = sremote_endpoint::Endpoint::with_builtins();
    let mut req = request();
    req.env.clear();
    c.bench_function("dispatch/os.getenv", |b| {
        b.iter(|| endpoint.handle(req.clone()))
    });
}

fn local_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let client = RemoteClient::new(LocalConnector::with_home(home.path()));
    rt.block_on(client.do_bootstrap_install()).unwrap();
    let mut group = c.benchmark_group("local");
    group.measurement_time(Duration::from_secs(5));
    for (name, mode) in [
        ("session", CallMode::Session),
        ("pipe", CallMode::Pipe),
        ("file", CallMode::File),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let out: CallOutput<String> = client
                    .call("os", "getenv")
                    .arg("HOME")
                    .mode(mode)
                    .await
                    .unwrap();
                out.value
            })
        });
    }
    group.finish();
}

criterion_group!(benches, framing, dispatch, local_calls);
criterion_main!(benches);
