//! Pipe and file mode: a call dies with its connection. The endpoint of a `call -` or
//! `call --consume` exec notices that its ssh channel is gone and kills what the call
//! started — no program of a dropped call may stay on the host (session mode is tested
//! in session_cli.rs).
mod common;

use std::time::Duration;

use common::{Client, ssh_host};
use sremote_testkit::{Sshd, processes_with};

/// Live processes whose argv is exactly `argv`.
fn with_argv(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    processes_with(argv[0])
        .into_iter()
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

async fn dropped_call_leaves_nothing(sshd: &Sshd, client: &Client, mode: &str, secs: &str) {
    let argv = ["sleep", secs];
    let mut cli = client
        .command(&[
            "call",
            "box",
            "subprocess",
            "run",
            &serde_json::to_string(&argv).unwrap(),
            "--mode",
            mode,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut started = Vec::new();
    for _ in 0..600 {
        started = with_argv(&argv);
        if !started.is_empty() {
            break;
        }
        assert!(
            cli.try_wait().unwrap().is_none(),
            "the CLI ended before the program started ({mode} mode)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !started.is_empty(),
        "`sleep {secs}` never started ({mode} mode)"
    );
    // Drop the connection: the CLI (and with it its ssh mux client) dies without a word.
    cli.kill().unwrap();
    cli.wait().unwrap();
    let needle = sshd.home.join(".sremote").display().to_string();
    for _ in 0..100 {
        if with_argv(&argv).is_empty() && processes_with(&needle).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{mode} mode: 5 s after the connection dropped, `sleep {secs}` ({:?}) or the endpoint \
         ({:?}) still runs on the host",
        with_argv(&argv),
        processes_with(&needle)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_and_file_mode_calls_die_with_their_connection() {
    let sshd = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("box", &sshd.alias, &sshd.ssh_config));
    // Install the endpoint first, so that the calls below start at once.
    let out = client.run(&["bootstrap", "box"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dropped_call_leaves_nothing(&sshd, &client, "pipe", "3171").await;
    dropped_call_leaves_nothing(&sshd, &client, "file", "3172").await;
}
