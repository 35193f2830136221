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
