//! Jobs through a real sshd into a real single-node Slurm (started by the testkit from
//! `scripts/slurm-up.sh`): results and latencies, cancel through Slurm, a walltime kill
//! reported as a typed failure, a killed client whose job a new process collects, and a
//! log follow that survives a cut connection without losing or repeating a byte.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sremote_core::RemoteClient;
use sremote_jobs::{FailureClass, JobError, JobState, JobStore, JobsExt, Resources, Scheduler};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;
use sremote_testkit::slurm::Slurm;

struct Env {
    sshd: Sshd,
    slurm: Arc<Slurm>,
    store: JobStore,
    client: RemoteClient<SshConnector>,
    _db: tempfile::TempDir,
}

async fn connect(config: &std::path::Path, alias: &str) -> RemoteClient<SshConnector> {
    let ssh = SshConnector::builder()
        .config_file(config)
        .connect(alias)
        .await
        .unwrap();
    RemoteClient::new(ssh)
}

async fn env() -> Option<Env> {
    let slurm = match Slurm::start() {
        Ok(s) => s,
        Err(sremote_testkit::Error::Skip(why)) => {
            eprintln!("skipped: {why}");
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    let sshd = Sshd::start().unwrap();
    let db = tempfile::tempdir().unwrap();
    let store = JobStore::open(db.path().join("jobs.sqlite3")).unwrap();
    let client = connect(&sshd.ssh_config, &sshd.alias).await;
    Some(Env {
        sshd,
        slurm,
        store,
        client,
        _db: db,
    })
}

fn sh(script: &str) -> Value {
    json!(["sh", "-c", script])
}

async fn wait_running<C: sremote_core::Connector + 'static>(job: &sremote_jobs::Job<C>) -> Instant {
    let t0 = Instant::now();
    loop {
        let st = job.status().await.unwrap();
        if st.state == JobState::Running {
            return Instant::now();
        }
        assert!(!st.state.is_terminal(), "{st:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not running after 60 s: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_result_quoting_and_latencies() {
    let Some(e) = env().await else { return };
    // A sremote dir whose path needs quoting everywhere (sbatch --chdir, the script).
    e.client.set_sremote_dir("sr dir it's $(id)");
    let t0 = Instant::now();
    let job = e
        .client
        .submit(e.client.call::<Value>("os", "getcwd"))
        .scheduler(Scheduler::Slurm)
        .name("it's \"a\" $(job)\n#SBATCH --uid=0")
        .resources(Resources {
            cores_per_node: Some(1),
            time: Some(Duration::from_secs(600)),
            ..Default::default()
        })
        .store(e.store.clone())
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", e.slurm.logs()));
    let submitted = t0.elapsed();
    let rec = job.record();
    let sid = rec.scheduler_id.clone().unwrap();
    assert!(
        e.slurm
            .show_job(&sid)
            .contains("JobName=it_s__a____job___SBATCH_--uid_0"),
        "{}",
        e.slurm.show_job(&sid)
    );
    let started = Instant::now();
    let st = job.wait(Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(st.state, JobState::Succeeded, "{st:?}");
    let cwd: String = job.result().await.unwrap().value;
    let collected = started.elapsed();
    assert_eq!(
        cwd,
        format!(
            "{}/sr dir it's $(id)/jobs/{}/work",
            e.sshd.home.display(),
            job.id()
        )
    );
    assert_eq!(
        e.slurm
            .final_state(&sid, Duration::from_secs(10))
            .as_deref(),
        Some("COMPLETED")
    );
    eprintln!("slurm: submit {submitted:?}, submit-to-result {collected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_latencies() {
    let Some(e) = env().await else { return };
    let mut to_running = Vec::new();
    let mut to_collected = Vec::new();
    for i in 0..3 {
        let job = e
            .client
            .submit(
                e.client
                    .call::<Value>("job", "run")
                    .arg(sh(&format!("sleep 1; echo {i}"))),
            )
            .scheduler(Scheduler::Slurm)
            .store(e.store.clone())
            .await
            .unwrap();
        let t0 = Instant::now();
        to_running.push(wait_running(&job).await - t0);
        // Finished (the runner's own clock, same machine) to collected.
        let out = job.result::<i32>().await.unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let done_ms = out.meta.timing.started_unix_ms + out.meta.timing.elapsed_us / 1000;
        to_collected.push(Duration::from_millis(now_ms.saturating_sub(done_ms)));
    }
    to_running.sort();
    to_collected.sort();
    eprintln!(
        "LATENCY slurm submit->running: {to_running:?}; finished->collected: {to_collected:?}"
    );
    assert!(to_running[1] < Duration::from_secs(10), "{to_running:?}");
}

/// Submit `argv` to Slurm, cancel it once running with a 2 s grace period; returns how
/// long the cancel took. Checks that Slurm's accounting says CANCELLED, that the result
/// is `Cancelled` and that no process matching `pattern` is left.
async fn cancel_through_slurm(e: &Env, argv: Value, pattern: &str) -> Duration {
    let job = e
        .client
        .submit(e.client.call::<Value>("job", "run").arg(argv))
        .scheduler(Scheduler::Slurm)
        .store(e.store.clone())
        .await
        .unwrap();
    wait_running(&job).await;
    // Slurm may say RUNNING before the runner started the command: wait for the command.
    let t0 = Instant::now();
    while Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap()
        .stdout
        .is_empty()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{pattern} never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sid = job.record().scheduler_id.unwrap();
    let t0 = Instant::now();
    let st = job.cancel_with_grace(Duration::from_secs(2)).await.unwrap();
    let took = t0.elapsed();
    assert_eq!(st.state, JobState::Cancelled, "{st:?}");
    // Our state comes from the job dir at once; Slurm may still be COMPLETING the job.
    let state = e.slurm.final_state(&sid, Duration::from_secs(10));
    if state.as_deref() != Some("CANCELLED") {
        let dir = job.record().remote_dir.clone().unwrap_or_default();
        let out = std::fs::read_to_string(format!("{dir}/scheduler.out")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("{dir}/status.json")).unwrap_or_default();
        panic!(
            "Slurm says {state:?}, not CANCELLED; scheduler.out: {out}\nstatus: {status}\n{}",
            e.slurm.logs()
        );
    }
    assert!(matches!(
        job.result::<Value>().await,
        Err(JobError::Cancelled { .. })
    ));
    let left = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "{pattern} still running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_cancel_a_sleeping_job() {
    let Some(e) = env().await else { return };
    let took = cancel_through_slurm(&e, json!(["sleep", "61"]), "^sleep 61$").await;
    // SIGTERM ends `sleep` at once: no waiting for the grace period.
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// The order the user asked for: SIGTERM, SIGKILL after the grace period, then the batch
/// system's cancel — a job that ignores SIGTERM gets exactly its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_cancel_gives_a_job_that_ignores_sigterm_its_grace_period() {
    let Some(e) = env().await else { return };
    let took = cancel_through_slurm(&e, sh("trap '' TERM; exec sleep 62"), "^sleep 62$").await;
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_walltime_is_a_typed_failure() {
    let Some(e) = env().await else { return };
    let job = e
        .client
        .submit(
            e.client
                .call::<Value>("job", "run")
                .arg(json!(["sleep", "300"])),
        )
        .scheduler(Scheduler::Slurm)
        .resources(Resources {
            time: Some(Duration::from_secs(60)),
            ..Default::default()
        })
        .store(e.store.clone())
        .await
        .unwrap();
    wait_running(&job).await;
    let sid = job.record().scheduler_id.unwrap();
    assert_eq!(
        e.slurm.job_field(&sid, "TimeLimit").as_deref(),
        Some("00:01:00")
    );
    // Slurm's smallest limit is a minute, checked every 30 s: move the job's end closer
    // so Slurm's own time-limit enforcement kills it within seconds, not 90.
    e.slurm.end_job_in(&sid, Duration::from_secs(1)).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(90), job.result::<Value>())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.failure_class(), Some(FailureClass::Walltime), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("TIMEOUT") && text.contains("more time"),
        "{text}"
    );
    let rec = e.store.get(&job.id()).unwrap();
    assert_eq!(
        (rec.state, rec.failure_class),
        (JobState::Died, Some(FailureClass::Walltime))
    );
}

/// The client process of `killed_client_new_process_collects`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by killed_client_new_process_collects"]
async fn client_child() {
    let Ok(config) = std::env::var("SRJ_SSH_CONFIG") else {
        return;
    };
    let client = connect(config.as_ref(), &std::env::var("SRJ_ALIAS").unwrap()).await;
    let store = JobStore::open(std::env::var("SRJ_STORE").unwrap()).unwrap();
    let job = client
        .submit(
            client
                .call::<Value>("job", "run")
                .arg(sh("sleep 2; echo collected")),
        )
        .scheduler(Scheduler::Slurm)
        .store(store)
        .await
        .unwrap();
    println!("\nJOB {}", job.id());
    tokio::time::sleep(Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_client_new_process_collects() {
    let Some(e) = env().await else { return };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["client_child", "--exact", "--ignored", "--nocapture"])
        .env("SRJ_SSH_CONFIG", &e.sshd.ssh_config)
        .env("SRJ_ALIAS", &e.sshd.alias)
        .env("SRJ_STORE", e.store.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut id = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(rest) = line.unwrap().strip_prefix("JOB ") {
            id = Some(rest.trim().to_string());
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL: no cleanup of any kind
    child.wait().unwrap();
    let id = id.expect("the child submitted a job");
    // This process submits the same call: it reattaches (nothing is resubmitted) and collects.
    let job = e
        .client
        .submit(
            e.client
                .call::<Value>("job", "run")
                .arg(sh("sleep 2; echo collected")),
        )
        .scheduler(Scheduler::Slurm)
        .store(e.store.clone())
        .await
        .unwrap();
    assert!(job.reattached());
    assert_eq!(job.id(), id);
    assert_eq!(job.result::<i32>().await.unwrap().value, 0);
    assert_eq!(job.logs(0).await.unwrap().data, b"collected\n");
    assert_eq!(
        e.store.list(&Default::default()).unwrap().len(),
        1,
        "one job, not two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_survives_a_cut_connection() {
    let Some(e) = env().await else { return };
    let script = "i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo \"line $i $(printf %0100d 0)\"; sleep 0.05; done";
    let job = e
        .client
        .submit(e.client.call::<Value>("job", "run").arg(sh(script)))
        .scheduler(Scheduler::Slurm)
        .store(e.store.clone())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut cuts = 0;
    let mut follow = Box::pin(job.logs_follow(0));
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(90), follow.next())
        .await
        .unwrap()
    {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.offset as usize, got.len());
        got.extend_from_slice(&chunk.data);
        if cuts < 2 && got.len() > 1500 * (cuts + 1) {
            e.sshd.kill_sessions(); // the master connection breaks mid-follow
            cuts += 1;
        }
    }
    assert_eq!(cuts, 2, "the connection was cut while following");
    let want: String = (1..=60).map(|i| format!("line {i} {:0100}\n", 0)).collect();
    assert_eq!(
        String::from_utf8_lossy(&got),
        want,
        "every byte exactly once"
    );
    assert_eq!(job.result::<i32>().await.unwrap().value, 0);
}

/// `sbatch` ran but its answer never reached the store (a lost connection, a killed
/// submitter): submitting the same call again takes the record over and gets the batch
/// job that exists — the endpoint recorded sbatch's answer in the job dir — never a
/// second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sbatch_answer_never_submits_twice() {
    let Some(e) = env().await else { return };
    let marker = e.sshd.home.join("lost-answer-runs");
    let call = || {
        e.client
            .call::<Value>("job", "run")
            .arg(sh(&format!("echo x >> '{}'", marker.display())))
    };
    let job = e
        .client
        .submit(call())
        .scheduler(Scheduler::Slurm)
        .store(e.store.clone())
        .await
        .unwrap();
    let sid = job.record().scheduler_id.clone().unwrap();
    // As if the submitter died after sbatch, before it stored the answer.
    let mut rec = e.store.get(&job.id()).unwrap();
    e.store.remove(&rec.id).unwrap();
    rec.state = JobState::Submitting;
    rec.scheduler_id = None;
    rec.updated_ms -= 200_000;
    rec.submitted_ms -= 200_000;
    e.store.insert(&rec).unwrap();
    let again = e
        .client
        .submit(call())
        .scheduler(Scheduler::Slurm)
        .store(e.store.clone())
        .await
        .unwrap();
    assert_eq!(again.id(), job.id(), "taken over under the same id");
    assert_eq!(again.record().scheduler_id.as_deref(), Some(sid.as_str()));
    assert_eq!(again.result::<i32>().await.unwrap().value, 0);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "x\n",
        "one batch job, run once"
    );
}

/// Item 7 of issue 16: hours later Slurm has forgotten the job. `scontrol` keeps a finished
/// job only `MinJobAge` (300 s by default; a few seconds in the test Slurm); a client that
/// comes back after that to a job Slurm killed at its time limit must still hear
/// `walltime` — from Slurm's accounting (`sacct`, slurmdbd on MariaDB) — not
/// `vanished`/`lost`/`killed`. The client stays away (no status asked) from the moment the
/// job runs until the controller has forgotten it, then a new process (a fresh connection,
/// the store reopened) asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walltime_kill_is_still_walltime_after_slurm_forgot_the_job() {
    let Some(e) = env().await else { return };
    let config = Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&config.stdout).into_owned();
    let setting = |key: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix('='))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let min_job_age: u64 = setting("MinJobAge")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    assert!(
        setting("AccountingStorageType").contains("slurmdbd") && min_job_age <= 30,
        "the test Slurm must run accounting with a short MinJobAge (scripts/slurm-up.sh \
         does; restart it when no test uses it): AccountingStorageType={} MinJobAge={min_job_age}",
        setting("AccountingStorageType")
    );
    let job = e
        .client
        .submit(
            e.client
                .call::<Value>("job", "run")
                .arg(json!(["sleep", "301"])),
        )
        .scheduler(Scheduler::Slurm)
        .resources(Resources {
            time: Some(Duration::from_secs(60)),
            ..Default::default()
        })
        .store(e.store.clone())
        .await
        .unwrap();
    wait_running(&job).await;
    let sid = job.record().scheduler_id.unwrap();
    let id = job.id();
    drop(job);
    e.slurm.end_job_in(&sid, Duration::from_secs(1)).unwrap();
    // Slurm's limit check (every 30 s) kills it; slurmctld purges finished jobs older than
    // MinJobAge every 60 s.
    let t0 = Instant::now();
    while !e.slurm.forgotten(&sid) {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "Slurm still knows job {sid}: {}\n{}",
            e.slurm.show_job(&sid),
            e.slurm.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "Slurm forgot job {sid} {:?} after its end was set",
        t0.elapsed()
    );
    assert_eq!(e.slurm.sacct(&sid, "State").as_deref(), Some("TIMEOUT"));
    // The next morning: another process, a new connection, the same store.
    let client = connect(&e.sshd.ssh_config, &e.sshd.alias).await;
    let store = JobStore::open(e.store.path()).unwrap();
    let job = client.job(&id, Some(&store)).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(90), job.result::<Value>())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.failure_class(), Some(FailureClass::Walltime), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("TIMEOUT") && text.contains("sacct") && text.contains("more time"),
        "{text}"
    );
    let rec = store.get(&id).unwrap();
    assert_eq!(
        (rec.state, rec.failure_class),
        (JobState::Died, Some(FailureClass::Walltime))
    );
}
