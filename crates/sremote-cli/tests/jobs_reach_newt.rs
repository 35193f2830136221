//! A job submitted from Rust through a NEWT REST gateway (the library's `NewtConnector`)
//! is reached again by `sremote jobs …` from its recorded reach spec (the
//! `newt+http://USER@GATEWAY/BASE/MACHINE` URL), credentials from the environment.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use sremote_core::RemoteClient;
use sremote_jobs::{JobStore, JobsExt};
use sremote_rest::NewtConnector;

const USER: &str = "alice";
const PASSWORD: &str = "pw with spaces 'and' $(quotes)";

/// A binary of this workspace beside the test executable (built by `cargo nextest
/// --workspace`), else built now.
fn workspace_binary(name: &str, package: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", package, "--bin", name])
            .status()
            .unwrap();
        assert!(status.success(), "building {name}");
    }
    path
}

struct Gateway {
    child: Child,
    url: String,
    home: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    sremote_gateway::users::add_user(&users, USER, PASSWORD).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nbase_path = \"/newt\"\nmachines = [\"cluster\"]\nusers_file = \"{}\"\nroots = [\"~\"]\n",
            users.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(workspace_binary("sremote-gateway", "sremote-gateway"))
        .arg("--config")
        .arg(&config)
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = None;
    for stream in [
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        if let Ok(u) = rx.recv_timeout(std::time::Duration::from_millis(if url.is_none() {
            5000
        } else {
            10
        })) {
            url.get_or_insert(u);
        }
    }
    let url = url.expect("the gateway announced where it listens");
    Gateway {
        child,
        url,
        home,
        _dir: dir,
    }
}

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
