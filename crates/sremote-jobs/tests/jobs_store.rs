//! The job store under several processes at once: 8 processes each record, claim and
//! update jobs in a tight loop; none sees "database is locked", nothing is lost, and two
//! processes claiming the same call get one job.
use std::process::{Command, Stdio};
use std::time::Instant;

use sremote_core::protocol::Request;
use sremote_jobs::{
    Claim, JobFilter, JobRecord, JobState, JobStore, Resources, Scheduler, new_job_id,
};

const WRITERS: usize = 8;
const JOBS_PER_WRITER: usize = 40;

fn record(host: &str, hash: &str) -> JobRecord {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    JobRecord {
        id: new_job_id(),
        host: host.into(),
        destination: None,
        call_hash: hash.into(),
        request: Request::new("r", "os", "getpid"),
        scheduler: Scheduler::Direct,
        resources: Resources::default(),
        name: "os.getpid".into(),
        remote_dir: None,
        scheduler_id: None,
        state: JobState::Submitting,
        failure_class: None,
        failure: None,
        processed: false,
        batch: None,
        submitted_ms: now,
        updated_ms: now,
        finished_ms: None,
        reach: None,
    }
}

/// The body of one writer process (run by `eight_processes_write_at_once`).
#[test]
#[ignore = "run as a child process by eight_processes_write_at_once"]
fn writer_child() {
    let Ok(path) = std::env::var("SRJ_STORE") else {
        return;
    };
    let me = std::env::var("SRJ_WRITER").unwrap();
    let store = JobStore::open(&path).unwrap();
    for i in 0..JOBS_PER_WRITER {
        // A call of its own...
        let claim = store
            .claim(record("h", &format!("{me}-{i}")), false)
            .unwrap();
        let Claim::New(rec) = claim else {
            panic!("{me}-{i} was claimed before")
        };
        store
            .set_submitted(&rec.id, "/d", Some("7"), JobState::Queued)
            .unwrap();
        store.set_state(&rec.id, JobState::Running, None).unwrap();
        store.set_state(&rec.id, JobState::Succeeded, None).unwrap();
        // ...and one call every writer submits: exactly one job for it.
        let shared = store
            .claim(record("h", &format!("shared-{i}")), false)
            .unwrap();
        if let Claim::New(rec) = shared {
            println!("CLAIMED {}", rec.id);
        }
        store
            .list(&JobFilter {
                host: Some("h".into()),
                ..Default::default()
            })
            .unwrap();
    }
}

#[test]
fn eight_processes_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    let exe = std::env::current_exe().unwrap();
    let t0 = Instant::now();
    let children: Vec<_> = (0..WRITERS)
        .map(|w| {
            Command::new(&exe)
                .args([
                    "writer_child",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SRJ_STORE", &path)
                .env("SRJ_WRITER", w.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut claimed = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "writer failed: {text}\n{err}");
        assert!(
            !text.contains("locked") && !err.contains("locked"),
            "{text}\n{err}"
        );
        assert!(text.contains("1 passed"), "the writer ran: {text}");
        claimed += text.matches("CLAIMED ").count();
    }
    let elapsed = t0.elapsed();
    let store = JobStore::open(&path).unwrap();
    let all = store.list(&JobFilter::default()).unwrap();
    assert_eq!(
        all.len(),
        WRITERS * JOBS_PER_WRITER + JOBS_PER_WRITER,
        "every job recorded once"
    );
    assert_eq!(
        claimed, JOBS_PER_WRITER,
        "each shared call claimed by exactly one writer"
    );
    let done = store
        .list(&JobFilter {
            state: Some(JobState::Succeeded),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.len(), WRITERS * JOBS_PER_WRITER);
    eprintln!("{WRITERS} writers x {JOBS_PER_WRITER} jobs: {elapsed:?}");
}

#[test]
fn store_round_trip_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::open(dir.path().join("sub/dir/jobs.sqlite3")).unwrap();
    let mut r = record("alice@hpc", "abc");
    r.batch = Some(("b1".into(), 3));
    r.reach = Some(sremote_core::Reach {
        user: Some("alice".into()),
        port: Some(2222),
        ssh_config: Some("/etc/ssh/other".into()),
        ..sremote_core::Reach::ssh("hpc")
    });
    r.resources.time = Some(std::time::Duration::from_secs(60));
    store.insert(&r).unwrap();
    let back = store.get(&r.id).unwrap();
    assert_eq!(back, r);
    store
        .set_state(
            &r.id,
            JobState::Died,
            Some((sremote_jobs::FailureClass::Walltime, "Slurm: TIMEOUT")),
        )
        .unwrap();
    let back = store.get(&r.id).unwrap();
    assert_eq!(
        (back.state, back.failure_class),
        (JobState::Died, Some(sremote_jobs::FailureClass::Walltime))
    );
    assert!(back.finished_ms.is_some());
    let f = |host: &str, state| JobFilter {
        host: Some(host.into()),
        state,
        ..Default::default()
    };
    assert_eq!(
        store
            .list(&f("alice@hpc", Some(JobState::Died)))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list(&f("alice@hpc", Some(JobState::Queued)))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(store.list(&f("bob@hpc", None)).unwrap().len(), 0);
    store.mark_processed(&r.id).unwrap();
    assert_eq!(
        store
            .list(&JobFilter {
                processed: Some(true),
                ..Default::default()
            })
            .unwrap()
            .len(),
        1
    );
    store.remove(&r.id).unwrap();
    assert!(store.get(&r.id).is_err());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the store is private");
}

/// Today's schema before the reach spec and the indexes (version 1), as it was created.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    destination TEXT,
    call_hash TEXT NOT NULL,
    module TEXT NOT NULL,
    function TEXT NOT NULL,
    request TEXT NOT NULL,
    scheduler TEXT NOT NULL,
    resources TEXT NOT NULL,
    name TEXT NOT NULL,
    remote_dir TEXT,
    scheduler_id TEXT,
    state TEXT NOT NULL,
    failure_class TEXT,
    failure TEXT,
    processed INTEGER NOT NULL DEFAULT 0,
    batch TEXT,
    batch_index INTEGER,
    submitted_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_call ON jobs (host, call_hash, submitted_ms);
CREATE INDEX IF NOT EXISTS jobs_by_batch ON jobs (batch, batch_index);
PRAGMA user_version = 1;
";

#[test]
fn a_version_1_store_is_migrated_keeping_every_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        let mut request = Request::new("r", "job", "run");
        request.args = vec![serde_json::json!(["sleep", "1"])];
        let request = serde_json::to_string(&request).unwrap();
        for i in 0..300i64 {
            let state = ["running", "succeeded", "died"][i as usize % 3];
            c.execute(
                "INSERT INTO jobs (id, host, destination, call_hash, module, function, request, \
                 scheduler, resources, name, remote_dir, scheduler_id, state, failure_class, failure, \
                 processed, batch, batch_index, submitted_ms, updated_ms, finished_ms) VALUES \
                 (?1, 'root@bench:2301', ?2, ?3, 'job', 'run', ?4, 'slurm', ?13, 'sleep 1', '/h/.sremote/jobs/x', \
                 '77', ?5, ?6, ?7, ?8, 'b1', ?9, ?10, ?11, ?12)",
                rusqlite::params![
                    format!("job-{i:04}"),
                    (i % 2 == 0).then_some("bench"),
                    format!("hash-{i}"),
                    request,
                    state,
                    (state == "died").then_some("memory"),
                    (state == "died").then_some("out of memory"),
                    i % 5 == 0,
                    i,
                    1_700_000_000_000 + i,
                    1_700_000_000_500 + i,
                    (state != "running").then_some(1_700_000_001_000 + i),
                    serde_json::to_string(&Resources::default()).unwrap(),
                ],
            )
            .unwrap();
        }
    }
    let store = JobStore::open(&path).unwrap();
    let all = store.list(&JobFilter::default()).unwrap();
    assert_eq!(all.len(), 300, "every job is still there");
    for (i, r) in all.iter().enumerate() {
        let i = i as u64;
        let state = ["running", "succeeded", "died"][i as usize % 3];
        assert_eq!(r.id, format!("job-{i:04}"));
        assert_eq!(r.host, "root@bench:2301");
        assert_eq!(
            r.destination.as_deref(),
            i.is_multiple_of(2).then_some("bench")
        );
        assert_eq!(r.call_hash, format!("hash-{i}"));
        assert_eq!(r.request.module, "job");
        assert_eq!(r.request.args, vec![serde_json::json!(["sleep", "1"])]);
        assert_eq!(r.scheduler, Scheduler::Slurm);
        assert_eq!(r.name, "sleep 1");
        assert_eq!(r.remote_dir.as_deref(), Some("/h/.sremote/jobs/x"));
        assert_eq!(r.scheduler_id.as_deref(), Some("77"));
        assert_eq!(r.state.as_str(), state);
        assert_eq!(
            r.failure_class,
            (state == "died").then_some(sremote_jobs::FailureClass::Memory)
        );
        assert_eq!(
            r.failure.as_deref(),
            (state == "died").then_some("out of memory")
        );
        assert_eq!(r.processed, i.is_multiple_of(5));
        assert_eq!(r.batch, Some(("b1".to_string(), i)));
        assert_eq!(r.submitted_ms, 1_700_000_000_000 + i);
        assert_eq!(r.updated_ms, 1_700_000_000_500 + i);
        assert_eq!(
            r.finished_ms,
            (state != "running").then_some(1_700_000_001_000 + i)
        );
        assert_eq!(r.reach, None);
    }
    // The old reattach still works, and the store takes new records with a reach spec.
    let found = store
        .find_call("root@bench:2301", "hash-7")
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "job-0007");
    let mut r = record("root@bench:2301", "new");
    r.reach = Some(sremote_core::Reach::ssh("bench"));
    store.insert(&r).unwrap();
    assert_eq!(store.get(&r.id).unwrap(), r);
    drop(store);
    let c = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let plan: String = c
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE state = 'running' ORDER BY submitted_ms DESC LIMIT 50",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("jobs_by_state"), "{plan}");
    // Opened again (version 2 already): nothing to do, nothing lost.
    assert_eq!(
        JobStore::open(&path)
            .unwrap()
            .list(&JobFilter::default())
            .unwrap()
            .len(),
        301
    );
}

#[test]
fn newest_first_limit_streams_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::open(dir.path().join("jobs.sqlite3")).unwrap();
    let mut recs = Vec::new();
    for i in 0..120u64 {
        let mut r = record("h", &format!("c{i}"));
        r.submitted_ms = 1_000 + i;
        r.state = if i.is_multiple_of(2) {
            JobState::Running
        } else {
            JobState::Succeeded
        };
        recs.push(r);
    }
    store.insert_many(&recs).unwrap();
    let newest = store
        .list(&JobFilter {
            limit: Some(50),
            ..Default::default()
        })
        .unwrap();
    let ms: Vec<u64> = newest.iter().map(|r| r.submitted_ms).collect();
    assert_eq!(ms, (1_070..1_120).collect::<Vec<_>>());
    let running = store
        .list(&JobFilter {
            state: Some(JobState::Running),
            limit: Some(3),
            ..Default::default()
        })
        .unwrap();
    let ms: Vec<u64> = running.iter().map(|r| r.submitted_ms).collect();
    assert_eq!(ms, vec![1_114, 1_116, 1_118]);
    // A host matches by connector name or by destination, newest first either way.
    let mut by_alias = record("u@alias:22", "d");
    by_alias.destination = Some("h".into());
    by_alias.submitted_ms = 999;
    store.insert(&by_alias).unwrap();
    let on_h = store
        .list(&JobFilter {
            host: Some("h".into()),
            limit: Some(4),
            ..Default::default()
        })
        .unwrap();
    let ms: Vec<u64> = on_h.iter().map(|r| r.submitted_ms).collect();
    assert_eq!(ms, vec![1_116, 1_117, 1_118, 1_119]);
    let all_h = store
        .list(&JobFilter {
            host: Some("h".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all_h.len(), 121);
    assert_eq!(all_h[0].id, by_alias.id, "in time order among the others");
    let mut seen = 0;
    store
        .for_each(&JobFilter::default(), |_| {
            seen += 1;
            seen < 10
        })
        .unwrap();
    assert_eq!(seen, 10, "for_each stops when asked");
    // A batch's writes in one transaction each: claims (the second of a call reattaches)
    // and submissions.
    let a = record("h", "same");
    let b = record("h", "same");
    let claims = store.claim_many(&[(a.clone(), false), (b, false)]).unwrap();
    assert!(matches!(&claims[0], Claim::New(r) if r.id == a.id));
    assert!(matches!(&claims[1], Claim::Existing(r) if r.id == a.id));
    store
        .set_submitted_many(&[sremote_jobs::Submitted {
            id: a.id.clone(),
            remote_dir: "/d".into(),
            scheduler_id: Some("9".into()),
            state: JobState::Queued,
        }])
        .unwrap();
    let back = store.get(&a.id).unwrap();
    assert_eq!(
        (back.state, back.scheduler_id.as_deref()),
        (JobState::Queued, Some("9"))
    );
}
