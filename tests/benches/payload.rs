//! 64 MiB as a call argument and return value (session mode, raw attachments) against the
//! floor: the same 64 MiB piped through `cat` and back over the same kind of ssh channel,
//! on a throwaway loopback sshd. Prints medians and the ratio (target ≤ 1.3).
//!
//! Run: `cargo bench -p sremote-tests --bench payload` (`SREMOTE_BENCH_MIB`, `SREMOTE_BENCH_ROUNDS`).
use std::time::{Duration, Instant};

use sremote_core::{Blob, CallMode, CallOutput, Connector, RemoteClient, RemoteCommand};
use sremote_ssh::SshConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn cat_round_trip(ssh: &SshConnector, data: &[u8]) -> Duration {
    let mut p = ssh.spawn(&RemoteCommand::new("cat")).await.unwrap();
    let started = Instant::now();
    let mut stdin = p.stdin;
    let input = data.to_vec();
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.unwrap();
        stdin.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    p.stdout.read_to_end(&mut back).await.unwrap();
    let took = started.elapsed();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    took
}

fn main() {
    let mib: usize = std::env::var("SREMOTE_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let rounds: usize = std::env::var("SREMOTE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sshd = sremote_testkit::Sshd::start().expect("start sshd");
        let ssh = SshConnector::builder()
            .config_file(&sshd.ssh_config)
            .connect(&sshd.alias)
            .await
            .unwrap();
        let client = RemoteClient::new(ssh.clone());
        client.set_call_mode(CallMode::Session);
        let data = sremote_core::testsuite::pseudo_random(mib << 20, 9);
        let _: CallOutput<Blob> = client
            .call("sys", "echo")
            .arg(Blob(vec![1, 2, 3]))
            .await
            .unwrap();
        let (mut floor, mut call) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            floor.push(cat_round_trip(&ssh, &data).await);
            let started = Instant::now();
            let out: CallOutput<Blob> = client
                .call("sys", "echo")
                .arg_bytes(data.clone())
                .await
                .unwrap();
            call.push(started.elapsed());
            assert!(out.value.0.len() == data.len());
        }
        let (f, c) = (median(floor), median(call));
        let mb = (2 * (mib << 20)) as f64 / 1e6;
        println!("payload {mib} MiB each way, median of {rounds}:");
        println!(
            "  floor  (ssh cat, same channel kind): {:>8.1} ms  {:>7.0} MB/s",
            f.as_secs_f64() * 1e3,
            mb / f.as_secs_f64()
        );
        println!(
            "  sremote session sys.echo(Blob):      {:>8.1} ms  {:>7.0} MB/s",
            c.as_secs_f64() * 1e3,
            mb / c.as_secs_f64()
        );
        println!(
            "  ratio: {:.2} (target <= 1.3)",
            c.as_secs_f64() / f.as_secs_f64()
        );
        // The same call on this machine (no ssh): the cost of sremote's own stack.
        let home = tempfile::tempdir().unwrap();
        let local = RemoteClient::new(sremote_core::LocalConnector::with_home(home.path()));
        local.set_call_mode(CallMode::Session);
        let _: CallOutput<Blob> = local.call("sys", "echo").arg(Blob(vec![1])).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let _: CallOutput<Blob> = local
                .call("sys", "echo")
                .arg_bytes(data.clone())
                .await
                .unwrap();
            times.push(started.elapsed());
        }
        println!(
            "  (same call on LocalConnector: {:.1} ms)",
            median(times).as_secs_f64() * 1e3
        );
    });
}
