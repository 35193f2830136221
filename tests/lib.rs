//! End-to-end tests of sremote live in `tests/tests/*.rs`: the client against the real
//! endpoint on this machine, and against a real sshd, the real `sremote-gateway` and a
//! real single-node Slurm that the test harness starts. This library holds what they share.
use std::time::Duration;

use sremote_core::{CallMode, RemoteClient};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;

/// Every call path, for tests that must hold in all of them.
pub const MODES: [CallMode; 3] = [CallMode::Session, CallMode::Pipe, CallMode::File];

/// A client for `sshd` through its ssh_config alias; panics with the sshd log on failure.
pub async fn connect(sshd: &Sshd) -> RemoteClient<SshConnector> {
    let ssh = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n--- sshd log:\n{}", sshd.log()));
    RemoteClient::new(ssh)
}

pub use sremote_testkit::alive;

/// Wait up to 5 s for `pid` to be gone; panics naming `what` if it is not.
pub async fn wait_dead(pid: u32, what: &str) {
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} (pid {pid}) is still running");
}
