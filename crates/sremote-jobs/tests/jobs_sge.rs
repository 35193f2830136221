//! Jobs through a real sshd into a real single-node Grid Engine (Debian's gridengine,
//! started by the testkit from `scripts/sge-up.sh`): a result, a cancel through `qdel`,
//! and an `h_rt` kill reported as a walltime failure from `qacct`.
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sremote_core::RemoteClient;
use sremote_jobs::{FailureClass, JobError, JobState, JobStore, JobsExt, Resources, Scheduler};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;
use sremote_testkit::slurm::Sge;

struct Env {
    _sge: std::sync::Arc<Sge>,
    _sshd: Sshd,
    store: JobStore,
    client: RemoteClient<SshConnector>,
    _db: tempfile::TempDir,
}

async fn env() -> Option<Env> {
    let sge = match Sge::start() {
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
    let ssh = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap();
    Some(Env {
        _sge: sge,
        _sshd: sshd,
        store,
        client: RemoteClient::new(ssh),
        _db: db,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sge_result_and_cancel() {
    let Some(e) = env().await else { return };
    let t0 = Instant::now();
    let job = e
        .client
        .submit(e.client.call::<Value>("os", "getcwd"))
        .scheduler(Scheduler::Sge)
        .name("it's $(sge)")
        .store(e.store.clone())
        .await
        .unwrap();
    let cwd: String = job.result().await.unwrap().value;
    assert!(cwd.ends_with(&format!("/jobs/{}/work", job.id())), "{cwd}");
    eprintln!("sge: submit to result {:?}", t0.elapsed());

    let job = e
        .client
        .submit(
            e.client
                .call::<Value>("job", "run")
                .arg(json!(["sleep", "62"])),
        )
        .scheduler(Scheduler::Sge)
        .store(e.store.clone())
        .await
        .unwrap();
    while job.status().await.unwrap().state != JobState::Running {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = job.cancel_with_grace(Duration::from_secs(2)).await.unwrap();
    assert_eq!(st.state, JobState::Cancelled, "{st:?}");
    assert!(matches!(
        job.result::<Value>().await,
        Err(JobError::Cancelled { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sge_h_rt_is_a_walltime_failure() {
    let Some(e) = env().await else { return };
    let job = e
        .client
        .submit(
            e.client
                .call::<Value>("job", "run")
                .arg(json!(["sleep", "63"])),
        )
        .scheduler(Scheduler::Sge)
        .resources(Resources {
            time: Some(Duration::from_secs(3)),
            ..Default::default()
        })
        .store(e.store.clone())
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(90), job.result::<Value>())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.failure_class(), Some(FailureClass::Walltime), "{err}");
    assert!(err.to_string().contains("SGE"), "{err}");
}
