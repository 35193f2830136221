//! Every `sremote jobs …` command reaches every job, whoever submitted it and however the
//! host was reached: a job submitted from Rust through an ssh-config alias with a port and
//! a user (a config file the CLI is never told about), and jobs submitted by the CLI with
//! `--ssh-config FILE` or `--config FILE`, are shown and collected by later commands
//! without those flags. Against a real sshd.
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sremote_core::RemoteClient;
use sremote_jobs::{JobStore, JobsExt};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `sremote ARGS` with a throwaway HOME (no ~/.ssh/config, no hosts config) and store.
fn sremote(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sremote"))
        .args(args)
        .env("HOME", home)
        .env("SREMOTE_JOBS_DB", home.join("jobs.sqlite3"))
        .env_remove("SREMOTE_CONFIG")
        .env_remove("SREMOTE_ENDPOINT")
        .env_remove("SREMOTE_SSH_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run sremote")
}

/// `jobs show` and `jobs result` of `id` with no flags: reached, and the value is `want`.
fn reachable_without_flags(home: &Path, id: &str, want: &str) {
    let show = sremote(home, &["--json", "jobs", "show", id]);
    assert!(
        show.status.success(),
        "jobs show {id}: {}{}",
        text(&show.stdout),
        text(&show.stderr)
    );
    let v: Value = serde_json::from_slice(&show.stdout).expect("jobs show --json");
    assert_eq!(v["id"], id);
    let result = sremote(home, &["jobs", "result", id]);
    assert!(
        result.status.success(),
        "jobs result {id}: {}",
        text(&result.stderr)
    );
    assert_eq!(
        text(&result.stdout).trim(),
        want,
        "{}",
        text(&result.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_submitted_from_rust_through_an_alias_port_and_user_is_reachable() {
    let sshd = Sshd::shared().unwrap();
    let home = tempfile::tempdir().unwrap();
    // The library: the alias lives in a config file of its own, user and port given apart.
    let ssh = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .user(&sshd.user)
        .port(sshd.port)
        .connect(&sshd.alias)
        .await
        .unwrap();
    let client = RemoteClient::new(ssh);
    client.set_sremote_dir(sshd.unique_dir(".srreach"));
    let store = JobStore::open(home.path().join("jobs.sqlite3")).unwrap();
    let call = client
        .call::<()>("os", "getenv")
        .arg("SREMOTE_REACH_TEST")
        .env("SREMOTE_REACH_TEST", "from rust");
    let job = client.submit(call).store(store.clone()).await.unwrap();
    let rec = store.get(&job.id()).unwrap();
    assert_eq!(
        rec.host,
        format!("{}@{}:{}", sshd.user, sshd.alias, sshd.port)
    );
    let reach = rec.reach.expect("the reach spec is recorded");
    assert_eq!(
        (
            reach.destination.as_str(),
            reach.port,
            reach.user.as_deref()
        ),
        (
            sshd.alias.as_str(),
            Some(sshd.port),
            Some(sshd.user.as_str())
        )
    );
    drop(client);
    reachable_without_flags(home.path(), &job.id(), "from rust");
}

#[test]
fn jobs_submitted_with_ssh_config_or_config_are_reachable_without_the_flag() {
    let sshd = Sshd::shared().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let cfg = sshd.ssh_config.display().to_string();
    let dir = sshd.unique_dir(".srreach");

    // --ssh-config FILE, an alias from it, and a detached program.
    let out = sremote(
        h,
        &[
            "--ssh-config",
            &cfg,
            "submit",
            &sshd.alias,
            "os",
            "getenv",
            "HOME",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let result = sremote(h, &["--json", "jobs", "result", &id]);
    assert!(result.status.success(), "{}", text(&result.stderr));

    // --config FILE naming the host (and its ssh config and sremote dir).
    let hosts = h.join("elsewhere.toml");
    std::fs::write(
        &hosts,
        format!(
            "[hosts.bench]\ndestination = \"{}\"\nssh_config = \"{cfg}\"\nendpoint_dir = \"{dir}\"\n",
            sshd.alias
        ),
    )
    .unwrap();
    let out = sremote(
        h,
        &[
            "--config",
            hosts.to_str().unwrap(),
            "submit",
            "bench",
            "job",
            "run",
            r#"["sh","-c","echo configured"]"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let configured = text(&out.stdout).trim().to_string();
    reachable_without_flags(h, &configured, "0");
    let log = sremote(h, &["jobs", "log", &configured]);
    assert_eq!(text(&log.stdout), "configured\n", "{}", text(&log.stderr));

    // run --detach with --ssh-config: its log, later, without the flag.
    let out = sremote(
        h,
        &[
            "--ssh-config",
            &cfg,
            "run",
            &sshd.alias,
            "--detach",
            "--",
            "sh",
            "-c",
            "echo detached",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let detached = text(&out.stdout).trim().to_string();
    let ls = sremote(h, &["--json", "jobs", "ls", "--refresh"]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let lines: Vec<Value> = text(&ls.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3, "{}", text(&ls.stdout));
    let d = lines.iter().find(|v| v["id"] == detached.as_str()).unwrap();
    assert_eq!(d["argv"], serde_json::json!(["sh", "-c", "echo detached"]));
    reachable_without_flags(h, &detached, "0");
}
