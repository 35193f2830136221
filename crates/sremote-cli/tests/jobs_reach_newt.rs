//! A job submitted from Rust through a NEWT REST gateway (the library's `NewtConnector`)
//! is reached again by `sremote jobs …` from its recorded reach spec (the
//! `newt+http://USER@GATEWAY/BASE/MACHINE` URL), credentials from the environment.
mod common;

use std::process::{Command, Stdio};

use sremote_core::RemoteClient;
use sremote_jobs::{JobStore, JobsExt};
use sremote_rest::NewtConnector;

use common::gateway::{PASSWORD, USER, gateway};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_submitted_from_rust_over_newt_is_reachable_by_the_cli() {
    let gw = gateway();
    let home = tempfile::tempdir().unwrap();
    let newt = NewtConnector::builder(&gw.url, "cluster")
        .login(USER, PASSWORD)
        .await
        .unwrap();
    let client = RemoteClient::new(newt);
    let store = JobStore::open(home.path().join("jobs.sqlite3")).unwrap();
    let job = client
        .submit(client.call::<()>("os", "getenv").arg("HOME"))
        .store(store.clone())
        .await
        .unwrap();
    let reach = store.get(&job.id()).unwrap().reach.unwrap();
    assert_eq!(reach.connector, "newt");
    assert!(
        reach.destination.starts_with("newt+http://alice@"),
        "{reach:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sremote"))
        .args(["jobs", "result", &job.id()])
        .env("HOME", home.path())
        .env("SREMOTE_JOBS_DB", home.path().join("jobs.sqlite3"))
        .env("SREMOTE_NEWT_PASSWORD", PASSWORD)
        .env_remove("SREMOTE_NEWT_TOKEN")
        .env_remove("SREMOTE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        gw.home.path().display().to_string()
    );
}
