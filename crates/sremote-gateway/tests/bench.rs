//! Numbers, by hand: `cargo test --release -p sremote-gateway --test bench -- --ignored --nocapture`.
//! Per-exec latency through the gateway, and push/pull throughput on loopback.
mod common;

use std::time::{Duration, Instant};

use common::{Gateway, Opts};
use sremote_core::{Connector, Dest, RemoteCommand, Source};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(tls: bool) {
    let gw = Gateway::start(Opts {
        tls,
        ..Opts::default()
    });
    let c = gw.login().await;
    let label = if tls { "https" } else { "http" };
    for _ in 0..10 {
        c.exec(&RemoteCommand::new("true")).await.unwrap();
    }
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        assert!(c.exec(&RemoteCommand::new("true")).await.unwrap().success());
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "[{label}] exec `true`: p50 {:?}, p99 {:?} (200 calls)",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    let client = sremote_core::RemoteClient::new(gw.login().await);
    client.do_bootstrap_install().await.unwrap();
    let mut calls: Vec<Duration> = Vec::new();
    for i in 0..110 {
        let t = Instant::now();
        let _: sremote_core::CallOutput<String> = client
            .do_remote_call("os", "getenv", sremote_core::args!["HOME"])
            .await
            .unwrap();
        if i >= 10 {
            calls.push(t.elapsed());
        }
    }
    calls.sort();
    eprintln!(
        "[{label}] do_remote_call os.getenv (file mode): p50 {:?}, p99 {:?} (100 calls)",
        percentile(&calls, 0.5),
        percentile(&calls, 0.99)
    );
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("src.bin");
    let size = 256usize << 20;
    std::fs::write(&local, sremote_core::testsuite::pseudo_random(size, 5)).unwrap();
    let mb = size as f64 / (1 << 20) as f64;
    for round in 0..2 {
        let t = Instant::now();
        c.push(Source::file(&local), "bench/big.bin").await.unwrap();
        let push = t.elapsed();
        let t = Instant::now();
        c.pull("bench/big.bin", Dest::file(&dir.path().join("back.bin")))
            .await
            .unwrap();
        let pull = t.elapsed();
        eprintln!(
            "[{label}] round {round}: push 256 MiB {:.0} MiB/s, pull {:.0} MiB/s",
            mb / push.as_secs_f64(),
            mb / pull.as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run by hand with --release"]
async fn latency_and_throughput() {
    measure(false).await;
    measure(true).await;
}
