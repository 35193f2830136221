//! Detached jobs on this machine (LocalConnector, a throwaway home, the real endpoint):
//! results, reattach, typed failures, live logs, cancel, batches, cleaning.
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use sremote_core::protocol::ErrorKind;
use sremote_core::{LocalConnector, RemoteClient, args};
use sremote_jobs::{FailureClass, JobError, JobState, JobStore, JobsExt};

struct Host {
    client: RemoteClient<LocalConnector>,
    store: JobStore,
    home: tempfile::TempDir,
    _db: tempfile::TempDir,
}

fn host() -> Host {
    let home = tempfile::Builder::new()
        .prefix("srj-home-")
        .tempdir()
        .unwrap();
    let db = tempfile::Builder::new()
        .prefix("srj-db-")
        .tempdir()
        .unwrap();
    let store = JobStore::open(db.path().join("jobs.sqlite3")).unwrap();
    Host {
        client: RemoteClient::new(LocalConnector::with_home(home.path())),
        store,
        home,
        _db: db,
    }
}

fn sh(script: &str) -> Value {
    serde_json::json!(["sh", "-c", script])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_reattach_and_force() {
    let h = host();
    let call = || h.client.call::<Value>("os", "getenv").arg("HOME");
    let job = h
        .client
        .submit(call())
        .store(h.store.clone())
        .await
        .unwrap();
    assert!(!job.reattached());
    let out = job.result::<String>().await.unwrap();
    assert_eq!(out.value, h.home.path().to_str().unwrap());
    let dir = h.home.path().join(".sremote/jobs").join(job.id());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in ["request.json", "status.json", "response.json", "log"] {
        assert_eq!(
            std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777,
            0o600,
            "{f}"
        );
    }
    // The same call again: the same job, nothing runs again.
    let again = h
        .client
        .submit(call())
        .store(h.store.clone())
        .await
        .unwrap();
    assert!(again.reattached());
    assert_eq!(again.id(), job.id());
    assert_eq!(again.status().await.unwrap().state, JobState::Succeeded);
    // Other arguments: another job. Force: another job too.
    let other = h
        .client
        .submit(h.client.call::<Value>("os", "getenv").arg("PATH"))
        .store(h.store.clone())
        .await
        .unwrap();
    assert_ne!(other.id(), job.id());
    let forced = h
        .client
        .submit(call())
        .store(h.store.clone())
        .force(true)
        .await
        .unwrap();
    assert!(!forced.reattached());
    assert_ne!(forced.id(), job.id());
    forced.wait(Some(Duration::from_secs(30))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed() {
    let h = host();
    // The call itself fails: its own typed error.
    let job = h
        .client
        .submit(h.client.call::<Value>("os", "no_such_function"))
        .store(h.store.clone())
        .await
        .unwrap();
    let err = job.result::<Value>().await.unwrap_err();
    match &err {
        JobError::Call(e) => {
            assert_eq!(e.remote_kind(), Some(ErrorKind::FunctionNotFound), "{err}")
        }
        other => panic!("{other}"),
    }
    assert_eq!(job.status().await.unwrap().state, JobState::Failed);
    // The call's process is killed (SIGKILL, as the OOM killer does): died, killed.
    let job = h
        .client
        .submit(
            h.client
                .call::<Value>("job", "run")
                .arg(sh("kill -9 $PPID")),
        )
        .store(h.store.clone())
        .await
        .unwrap();
    let err = job.result::<Value>().await.unwrap_err();
    assert_eq!(err.failure_class(), Some(FailureClass::Killed), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&job.id()) && text.contains("SIGKILL") && text.contains("log"),
        "{text}"
    );
    // A value that does not fit the type: a decode error, the job itself succeeded.
    let job = h
        .client
        .submit(h.client.call::<Value>("os", "getenv").arg("HOME"))
        .store(h.store.clone())
        .await
        .unwrap();
    let err = job.result::<u64>().await.unwrap_err();
    assert!(
        matches!(&err, JobError::Call(sremote_core::Error::Decode(_))),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_log_follow_and_offsets() {
    let h = host();
    let script = "for i in $(seq 1 20); do echo \"line $i\"; sleep 0.05; done; echo done >&2";
    let job = h
        .client
        .submit(h.client.call::<Value>("job", "run").arg(sh(script)))
        .store(h.store.clone())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut next = 0;
    let mut chunks = 0;
    let mut follow = Box::pin(job.logs_follow(0));
    while let Some(chunk) = follow.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.offset, next, "chunks are contiguous");
        next = chunk.next;
        got.extend_from_slice(&chunk.data);
        chunks += 1;
    }
    let want: String = (1..=20).map(|i| format!("line {i}\n")).collect::<String>() + "done\n";
    assert_eq!(String::from_utf8(got).unwrap(), want);
    assert!(
        chunks > 1,
        "the log arrived while the job ran ({chunks} chunk)"
    );
    let tail = job.logs(7).await.unwrap();
    assert_eq!(tail.offset, 7);
    assert_eq!(tail.data, &want.as_bytes()[7..]);
    assert_eq!(job.result::<i32>().await.unwrap().value, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_everything_the_job_started() {
    let h = host();
    let marker = h.home.path().join("still-running");
    let script = format!(
        "trap '' TERM; (sleep 30; touch '{}') & sleep 30",
        marker.display()
    );
    let job = h
        .client
        .submit(h.client.call::<Value>("job", "run").arg(sh(&script)))
        .store(h.store.clone())
        .await
        .unwrap();
    while job.status().await.unwrap().state != JobState::Running {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    let st = job
        .cancel_with_grace(Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(st.state, JobState::Cancelled);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(matches!(
        job.result::<Value>().await,
        Err(JobError::Cancelled { .. })
    ));
    let pids = std::process::Command::new("pgrep")
        .args(["-f", "sleep 30"])
        .output()
        .unwrap();
    let dir = h.home.path().join(".sremote/jobs").join(job.id());
    let status = std::fs::read_to_string(dir.join("status.json")).unwrap();
    assert!(status.contains("\"cancelled\""), "{status}");
    // The SIGTERM-ignoring shell and its background child are gone (SIGKILL after grace).
    let worker: Value = serde_json::from_str(&status).unwrap();
    let sid = worker["worker_pid"].as_u64().unwrap();
    let survivors: Vec<String> = String::from_utf8_lossy(&pids.stdout)
        .lines()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(4)?
                        .parse::<u64>()
                        .ok()
                })
                == Some(sid)
        })
        .map(str::to_owned)
        .collect();
    assert!(survivors.is_empty(), "left running: {survivors:?}");
}

fn counted_items(counter: &std::path::Path) -> Vec<sremote_core::CallArgs> {
    // Item i appends to its run counter, prints i, exits with i % 3 (job.run: 0 is the
    // value, others the item's failure).
    (0..6)
        .map(|i| {
            args![sh(&format!(
                "echo x >> '{}/{i}'; echo {i}; exit {}",
                counter.display(),
                i % 3
            ))]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_in_order_all_errors_and_skip_succeeded() {
    let h = host();
    let counter = h.home.path().join("runs");
    std::fs::create_dir(&counter).unwrap();
    let mut batch = h
        .client
        .map("job", "run", counted_items(&counter))
        .concurrency(3)
        .store(h.store.clone());
    let first = batch.run::<i32>().await.unwrap();
    // A non-zero exit is the item's failure, naming the program's exit code (issue 16).
    let codes: Vec<i32> = first
        .results
        .iter()
        .map(|r| match r {
            Ok(out) => out.value,
            Err(e) => {
                let text = e.to_string();
                let code = text.split("exited with code ").nth(1).unwrap_or("");
                let digits: String = code.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap_or_else(|_| panic!("{text}"))
            }
        })
        .collect();
    assert_eq!(codes, [0, 1, 2, 0, 1, 2], "input order");
    let jobs = first.jobs.clone();
    for (i, id) in jobs.iter().enumerate() {
        let rec = h.store.get(id.as_deref().unwrap()).unwrap();
        assert_eq!(rec.batch, Some((batch.id().to_string(), i as u64)));
    }

    // Per-item errors, all of them, in input order.
    let items = ["/", "", "/tmp", ""].map(|k| args![k]);
    let mut failing = h
        .client
        .map("os", "listdir", items)
        .concurrency(2)
        .store(h.store.clone());
    let out = failing.run::<Value>().await.unwrap();
    assert_eq!(
        out.errors().iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [1, 3]
    );
    let err = out.into_values().unwrap_err();
    assert_eq!((err.failures.len(), err.total), (2, 4));
    assert!(
        err.to_string().contains("item 1") && err.to_string().contains("item 3"),
        "{err}"
    );

    // The same batch again (a restarted program): reattached, nothing runs again.
    let mut again = h
        .client
        .map("job", "run", counted_items(&counter))
        .concurrency(3)
        .store(h.store.clone());
    assert_eq!(again.id(), batch.id());
    let second = again.run::<i32>().await.unwrap();
    assert_eq!(second.jobs, jobs);
    for i in 0..6 {
        let runs = std::fs::read_to_string(counter.join(i.to_string())).unwrap();
        assert_eq!(runs.lines().count(), 1, "item {i} ran once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_resubmits_only_failures() {
    let h = host();
    let flag = h.home.path().join("flag");
    let items: Vec<_> = ["HOME", "missing-dir-1", "PATH"]
        .iter()
        .map(|k| {
            if k.starts_with("missing") {
                args![flag.join(k).display().to_string()]
            } else {
                args![std::env::temp_dir().display().to_string()]
            }
        })
        .collect();
    let mut batch = h
        .client
        .map("os", "listdir", items)
        .concurrency(2)
        .store(h.store.clone());
    let first = batch.run::<Value>().await.unwrap();
    assert_eq!(
        first.errors().iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [1]
    );
    let first_ids = first.jobs.clone();
    std::fs::create_dir_all(flag.join("missing-dir-1")).unwrap();
    let second = batch.retry_failed::<Value>().await.unwrap();
    assert_eq!(second.succeeded(), 3, "{:?}", second.errors());
    assert_eq!(
        second.jobs[0], first_ids[0],
        "succeeded items are not run again"
    );
    assert_eq!(second.jobs[2], first_ids[2]);
    assert_ne!(second.jobs[1], first_ids[1], "the failed item ran again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_arguments_and_names_and_clean() {
    let h = host();
    for (i, s) in sremote_core::testsuite::hostile_strings()
        .iter()
        .enumerate()
        .step_by(7)
    {
        let job = h
            .client
            .submit(
                h.client
                    .call::<Value>("job", "run")
                    .arg(serde_json::json!(["printf", "%s", s])),
            )
            .name(format!("{s}\n#SBATCH --evil"))
            .store(h.store.clone())
            .await
            .unwrap();
        assert_eq!(job.result::<i32>().await.unwrap().value, 0, "string {i}");
        assert_eq!(job.logs(0).await.unwrap().data, s.as_bytes(), "string {i}");
    }
    let job = h
        .client
        .submit(h.client.call::<Value>("os", "getpid"))
        .store(h.store.clone())
        .await
        .unwrap();
    job.wait(None).await.unwrap();
    let dir = h.home.path().join(".sremote/jobs").join(job.id());
    assert!(dir.is_dir());
    job.mark_processed().unwrap();
    assert!(h.store.get(&job.id()).unwrap().processed);
    job.clean().await.unwrap();
    assert!(!dir.exists());
    assert!(matches!(
        h.store.get(&job.id()),
        Err(JobError::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_that_died_half_way_is_taken_over_without_running_twice() {
    let h = host();
    let counter = h.home.path().join("runs");
    let call = || {
        h.client
            .call::<Value>("job", "run")
            .arg(sh(&format!("echo x >> '{}'", counter.display())))
    };
    let job = h
        .client
        .submit(call())
        .store(h.store.clone())
        .await
        .unwrap();
    job.wait(None).await.unwrap();
    // Make the record look like its submitter died after the host started the job but
    // before the store heard back: `submitting`, two minutes old.
    let mut rec = h.store.get(&job.id()).unwrap();
    h.store.remove(&rec.id).unwrap();
    rec.state = JobState::Submitting;
    rec.updated_ms -= 200_000;
    rec.submitted_ms -= 200_000;
    h.store.insert(&rec).unwrap();
    let again = h
        .client
        .submit(call())
        .store(h.store.clone())
        .await
        .unwrap();
    assert_eq!(again.id(), job.id(), "taken over under the same id");
    assert_eq!(again.result::<i32>().await.unwrap().value, 0);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "x\n",
        "it ran once"
    );
}
