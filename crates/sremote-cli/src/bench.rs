//! `sremote bench`: call latency and throughput against a host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sremote_core::{CallMode, CallOutput, Connector, Error, RemoteClient};

/// What one benchmark run measured.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub mode: CallMode,
    pub calls: usize,
    pub concurrency: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
    pub wall: Duration,
}

impl BenchResult {
    pub fn calls_per_s(&self) -> f64 {
        self.calls as f64 / self.wall.as_secs_f64()
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "mode": crate::mode_name(self.mode),
            "calls": self.calls,
            "concurrency": self.concurrency,
            "p50_us": self.p50.as_secs_f64() * 1e6,
            "p99_us": self.p99.as_secs_f64() * 1e6,
            "mean_us": self.mean.as_secs_f64() * 1e6,
            "calls_per_s": self.calls_per_s(),
            "wall_s": self.wall.as_secs_f64(),
        })
    }
}

/// Call `os.getenv("HOME")` `calls` times with `concurrency` calls in flight, after
/// `warmup` untimed calls (at least one: it bootstraps and opens the session).
pub async fn run(
    client: RemoteClient<Arc<dyn Connector>>,
    mode: CallMode,
    calls: usize,
    concurrency: usize,
    warmup: usize,
) -> Result<BenchResult, Error> {
    let concurrency = concurrency.clamp(1, calls.max(1));
    client.set_call_mode(mode);
    let mut used = mode;
    for _ in 0..warmup.max(1) {
        let out: CallOutput<Option<String>> = client.call("os", "getenv").arg("HOME").await?;
        used = out.meta.mode;
    }
    let started = Instant::now();
    let per_worker = calls / concurrency;
    let extra = calls % concurrency;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let client = client.clone();
        let n = per_worker + usize::from(w < extra);
        workers.spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let _: CallOutput<Option<String>> = client.call("os", "getenv").arg("HOME").await?;
                lat.push(t.elapsed());
            }
            Ok::<_, Error>(lat)
        });
    }
    let mut lat = Vec::with_capacity(calls);
    while let Some(r) = workers.join_next().await {
        lat.extend(r.map_err(|e| Error::Usage(format!("benchmark worker failed: {e}")))??);
    }
    let wall = started.elapsed();
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let mean = lat.iter().sum::<Duration>() / lat.len().max(1) as u32;
    Ok(BenchResult {
        mode: used,
        calls: lat.len(),
        concurrency,
        p50: pick(0.5),
        p99: pick(0.99),
        mean,
        wall,
    })
}
