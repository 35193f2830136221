//! The job store at scale, driven by `bench/jobs_store.py` (see BENCHMARKS.md, "Job store
//! at 1 M jobs"):
//!
//! ```text
//! store_bench build PATH N     # a store of N jobs like years of use: 5 hosts, sweeps
//!                              # (batches of 1000), 100 running, 50 queued, the rest over
//! store_bench lookups PATH N   # jobs show ID (get by id) and a resubmission (the newest
//!                              # job of a call hash: read, and the claim transaction)
//! store_bench map PATH N G     # a map of N items recorded as a batch does: claims and
//!                              # submissions group-committed G at a time
//! ```
//! Every figure is printed as one JSON object on stdout.

use std::time::{Duration, Instant};

use serde_json::json;
use sremote_core::Reach;
use sremote_core::protocol::Request;
use sremote_jobs::{
    Claim, FailureClass, JobRecord, JobState, JobStore, Resources, Scheduler, Submitted,
};

const HOSTS: [&str; 5] = [
    "alice@perlmutter:22",
    "alice@lab-gpu:22",
    "local",
    "alice@frontier:2222",
    "alice@bench:2301",
];
const START_MS: u64 = 1_700_000_000_000;
const SPAN_MS: u64 = 3 * 365 * 86_400_000;

fn record(i: u64, n: u64) -> JobRecord {
    let host = HOSTS[(i % 5) as usize];
    let mut request = Request::new(format!("r{i}"), "job", "run");
    request.args = vec![json!([
        "python3",
        "train.py",
        "--seed",
        i.to_string(),
        "--out",
        format!("runs/{i}")
    ])];
    request
        .env
        .insert("OMP_NUM_THREADS".into(), json!("8").to_string());
    let state = match n - i {
        1..=100 => JobState::Running,
        101..=150 => JobState::Queued,
        _ => match i % 20 {
            0 => JobState::Failed,
            1 => JobState::Died,
            2 => JobState::Cancelled,
            _ => JobState::Succeeded,
        },
    };
    let submitted = START_MS + SPAN_MS * i / n;
    let batch = (i % 10 < 8).then(|| (format!("b{:016x}", i / 1000), i % 1000));
    JobRecord {
        id: format!("{:010x}-{:08x}", submitted, i),
        host: host.into(),
        destination: Some(host.split(['@', ':']).nth(1).unwrap_or(host).into()),
        call_hash: format!("{:064x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        request,
        scheduler: if i.is_multiple_of(3) {
            Scheduler::Direct
        } else {
            Scheduler::Slurm
        },
        resources: Resources {
            cores_per_node: Some(4),
            time: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
        name: format!("python3 train.py --seed {i}"),
        remote_dir: Some(format!("/home/alice/.sremote/jobs/{i:010}")),
        scheduler_id: (!i.is_multiple_of(3)).then(|| (1_000_000 + i).to_string()),
        state,
        failure_class: (state == JobState::Died).then_some(FailureClass::Memory),
        failure: (state == JobState::Died).then(|| "slurm: OUT_OF_MEMORY".into()),
        processed: state.is_terminal() && i.is_multiple_of(2),
        batch,
        submitted_ms: submitted,
        updated_ms: submitted + 60_000,
        finished_ms: state.is_terminal().then_some(submitted + 3_600_000),
        reach: Some(Reach {
            user: Some("alice".into()),
            ..Reach::ssh(host.split(['@', ':']).nth(1).unwrap_or(host))
        }),
    }
}

fn build(path: &str, n: u64) {
    let store = JobStore::open(path).unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let chunk: Vec<JobRecord> = (i..(i + 10_000).min(n)).map(|k| record(k, n)).collect();
        store.insert_many(&chunk).unwrap();
        i += chunk.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}",
        json!({"build": n, "seconds": secs, "jobs_per_s": n as f64 / secs, "file_mb": bytes as f64 / 1e6})
    );
}

fn stats(mut us: Vec<f64>) -> serde_json::Value {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize];
    json!({"n": us.len(), "p50_us": at(0.5), "p99_us": at(0.99), "max_us": at(1.0)})
}

fn time_each(n: u64, mut f: impl FnMut(u64)) -> serde_json::Value {
    let mut us = Vec::new();
    for k in 0..n {
        let t = Instant::now();
        f(k);
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    stats(us)
}

fn lookups(path: &str, total: u64) {
    let store = JobStore::open(path).unwrap();
    let pick = |k: u64| (k * 7919 * 104_729) % total;
    let by_id = time_each(2000, |k| {
        let r = record(pick(k), total);
        assert_eq!(store.get(&r.id).unwrap().id, r.id);
    });
    let by_hash = time_each(2000, |k| {
        let r = record(pick(k), total);
        let found = store.find_call(&r.host, &r.call_hash).unwrap().unwrap();
        assert_eq!(found.id, r.id);
    });
    let claim = time_each(2000, |k| {
        let r = record(pick(k), total);
        let mut fresh = r.clone();
        fresh.id = format!("fresh-{k}");
        match store.claim(fresh, false).unwrap() {
            Claim::Existing(found) => assert_eq!(found.id, r.id),
            Claim::New(_) => panic!("a resubmission must reattach"),
        }
    });
    println!(
        "{}",
        json!({"jobs": total, "get_by_id": by_id, "find_by_call_hash": by_hash, "resubmit_claim": claim})
    );
}

fn map(path: &str, n: u64, group: usize) {
    let store = JobStore::open(path).unwrap();
    let tag = format!("map-{}-{group}", std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let fresh: Vec<(JobRecord, bool)> = (0..n)
        .map(|i| {
            let mut r = record(i, n);
            r.id = format!("{tag}-{i}");
            r.call_hash = format!("{tag}-{i}");
            r.state = JobState::Submitting;
            r.batch = Some((tag.clone(), i));
            // New jobs are the newest: they go at the end of the time-ordered indexes.
            (r.submitted_ms, r.updated_ms, r.finished_ms) = (now + i, now + i, None);
            (r, false)
        })
        .collect();
    let t = Instant::now();
    for chunk in fresh.chunks(group) {
        let claims = store.claim_many(chunk).unwrap();
        let subs: Vec<Submitted> = claims
            .iter()
            .map(|c| {
                let (Claim::New(r) | Claim::Existing(r)) = c;
                Submitted {
                    id: r.id.clone(),
                    remote_dir: format!("/home/alice/.sremote/jobs/{}", r.id),
                    scheduler_id: Some("1".into()),
                    state: JobState::Queued,
                }
            })
            .collect();
        store.set_submitted_many(&subs).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"map": n, "group": group, "seconds": secs, "jobs_per_s": n as f64 / secs})
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| args.get(i).and_then(|s| s.parse().ok());
    match args.first().map(String::as_str) {
        Some("build") => build(&args[1], num(2).unwrap_or(1_000_000)),
        Some("lookups") => lookups(&args[1], num(2).unwrap_or(1_000_000)),
        Some("map") => map(
            &args[1],
            num(2).unwrap_or(100_000),
            num(3).unwrap_or(64) as usize,
        ),
        _ => {
            eprintln!("usage: store_bench build PATH N | lookups PATH N | map PATH N GROUP");
            std::process::exit(2);
        }
    }
}
