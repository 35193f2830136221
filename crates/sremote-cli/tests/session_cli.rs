//! The endpoint a client started goes away with the client process — on this machine
//! and on a host over a real sshd.
mod common;

use std::time::Duration;

use common::{Client, ssh_host, wait_dead};
use sremote_testkit::{Sshd, processes_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_exits_when_the_client_process_dies() {
    let home = tempfile::tempdir().unwrap();
    let sremote = env!("CARGO_BIN_EXE_sremote");
    let mut cli = std::process::Command::new(sremote)
        .args([
            "bench",
            "local",
            "--mode",
            "session",
            "--calls",
            "100000000",
        ])
        .env("HOME", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Find the endpoint it started: a child `sremote-endpoint-* serve` of the CLI.
    let mut endpoint = None;
    for _ in 0..200 {
        endpoint = children_of(cli.id())
            .into_iter()
            .find(|(_, cmd)| cmd.contains("serve"))
            .map(|(p, _)| p);
        if endpoint.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoint = endpoint.expect("the CLI started a session endpoint");
    cli.kill().unwrap();
    cli.wait().unwrap();
    wait_dead(endpoint, "sremote-endpoint serve after its client died").await;
}

/// Over SSH the endpoint is a process of the host's sshd session, not a child of the CLI:
/// killing the CLI (SIGKILL, no goodbye) closes its channel, and the endpoint must see its
/// stdin end and exit — no `sremote-endpoint … serve` may stay behind on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_on_an_ssh_host_exits_when_the_client_process_dies() {
    let sshd = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("box", &sshd.alias, &sshd.ssh_config));
    let mut cli = client
        .command(&["bench", "box", "--mode", "session", "--calls", "100000000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The host's endpoint lives under the sshd user's home: `…/.sremote/bin/… serve`.
    let needle = sshd.home.join(".sremote").display().to_string();
    let mut endpoint = None;
    for _ in 0..600 {
        endpoint = processes_with(&needle).into_iter().find(|&p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("serve"))
        });
        if endpoint.is_some() {
            break;
        }
        assert!(
            cli.try_wait().unwrap().is_none(),
            "the CLI ended before a session opened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoint = endpoint.expect("the CLI opened a session on the host");
    cli.kill().unwrap();
    cli.wait().unwrap();
    wait_dead(
        endpoint,
        "sremote-endpoint serve on the ssh host after its client died",
    )
    .await;
    assert!(
        processes_with(&needle).is_empty(),
        "nothing of sremote may stay on the host: {:?}",
        processes_with(&needle)
    );
}

fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            out.push((pid, cmd));
        }
    }
    out
}
