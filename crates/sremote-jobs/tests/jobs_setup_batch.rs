//! The site's environment in a real Slurm (and Grid Engine) job (issue 16, item 6), through
//! a real sshd: the client's setup lines run in the batch script before the job, so the
//! job's function reads what they export; with `login_shell` the script is a login bash
//! (`~/.bash_profile` read; SGE through `-S /bin/bash` and a re-exec); a failing line ends
//! the job (`died`) with a message naming the line in its log, and the job's work never
//! starts.
use std::time::Duration;

use serde_json::Value;
use sremote_core::RemoteClient;
use sremote_jobs::{JobState, JobStore, JobsExt, Scheduler};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;
use sremote_testkit::slurm::{Sge, Slurm};

struct Env {
    sshd: Sshd,
    slurm: std::sync::Arc<Slurm>,
    store: JobStore,
    client: RemoteClient<SshConnector>,
    _db: tempfile::TempDir,
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
    let ssh = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap();
    Some(Env {
        sshd,
        slurm,
        store,
        client: RemoteClient::new(ssh),
        _db: db,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_job_reads_what_setup_exported() {
    let Some(e) = env().await else { return };
    std::fs::write(
        e.sshd.home.join("site-env.sh"),
        "export SREMOTE_BATCH_SOURCED=sourced\n",
    )
    .unwrap();
    e.client.set_setup([
        "export SREMOTE_BATCH='from setup: it'\\''s $HOME'",
        "source ~/site-env.sh",
    ]);
    let job = e
        .client
        .submit(e.client.call::<Value>("os", "getenv").arg("SREMOTE_BATCH"))
        .scheduler(Scheduler::Slurm)
        .store(e.store.clone())
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", e.slurm.logs()));
    let st = job.wait(Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(st.state, JobState::Succeeded, "{st:?}");
    let value: String = job.result().await.unwrap().value;
    assert_eq!(value, "from setup: it's $HOME");
    let job = e
        .client
        .submit(
            e.client
                .call::<Value>("os", "getenv")
                .arg("SREMOTE_BATCH_SOURCED"),
        )
        .scheduler(Scheduler::Slurm)
        .store(e.store.clone())
        .await
        .unwrap();
    job.wait(Some(Duration::from_secs(60))).await.unwrap();
    let value: String = job.result().await.unwrap().value;
    assert_eq!(value, "sourced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_job_with_a_failing_setup_line_dies_saying_which() {
    let Some(e) = env().await else { return };
    // Fails only inside the batch job (calls on the login node run the same setup).
    e.client.set_setup([
        "true",
        "test -z \"$SLURM_JOB_ID\" || sremote_no_such_module load python/3.11",
    ]);
    let job = e
        .client
        .submit(
            e.client
                .call::<Value>("job", "run")
                .arg(serde_json::json!(["touch", "work-ran"])),
        )
        .scheduler(Scheduler::Slurm)
        .store(e.store.clone())
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", e.slurm.logs()));
    let st = job.wait(Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(st.state, JobState::Died, "{st:?}");
    let log = job.logs(0).await.unwrap();
    let log = String::from_utf8_lossy(&log.data);
    assert!(
        log.contains(
            "sremote: setup line 2 failed (exit status 127): test -z \"$SLURM_JOB_ID\" || sremote_no_such_module load python/3.11"
        ),
        "{log}"
    );
    let work = e
        .sshd
        .home
        .join(format!(".sremote/jobs/{}/work/work-ran", job.id()));
    assert!(!work.exists(), "the job's work ran after a failed setup");
}

/// A job under `scheduler` with `login_shell` and a setup line saying whether it runs in a
/// login shell and what the login profile exported: its function reads the result.
async fn login_shell_job(
    client: &RemoteClient<SshConnector>,
    home: &std::path::Path,
    scheduler: Scheduler,
    store: &JobStore,
) {
    std::fs::write(
        home.join(".bash_profile"),
        "export SREMOTE_BATCH_PROFILE=login\n",
    )
    .unwrap();
    client.set_login_shell(true);
    client.set_setup([
        "export SREMOTE_BATCH_LOGIN=$(shopt -q login_shell && echo login)-$SREMOTE_BATCH_PROFILE",
    ]);
    let job = client
        .submit(
            client
                .call::<Value>("os", "getenv")
                .arg("SREMOTE_BATCH_LOGIN"),
        )
        .scheduler(scheduler)
        .store(store.clone())
        .await
        .unwrap();
    let st = job.wait(Some(Duration::from_secs(90))).await.unwrap();
    assert_eq!(st.state, JobState::Succeeded, "{scheduler}: {st:?}");
    let value: String = job.result().await.unwrap().value;
    // Grid Engine starts jobs with the passwd HOME (not the test sshd's): a login shell,
    // but another ~/.bash_profile.
    let want = match scheduler {
        Scheduler::Sge => "login-",
        _ => "login-login",
    };
    assert!(value.starts_with(want), "{scheduler}: {value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_login_shell_job_reads_the_profile() {
    let Some(e) = env().await else { return };
    login_shell_job(&e.client, &e.sshd.home, Scheduler::Slurm, &e.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sge_login_shell_job_reads_the_profile() {
    let _sge = match Sge::start() {
        Ok(s) => s,
        Err(sremote_testkit::Error::Skip(why)) => {
            eprintln!("skipped: {why}");
            return;
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
    let client = RemoteClient::new(ssh);
    login_shell_job(&client, &sshd.home, Scheduler::Sge, &store).await;
}
