//! The open-files limit: a test binary of its own, since it changes the process's limits
//! (nextest runs every test in a process of its own; `cargo test` runs this file's one
//! test alone in its binary).

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use sremote_core::{Connector, RemoteCommand};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;

/// Each open session holds 4 descriptors here. Under the usual soft limit (1,024) a process
/// could hold ~250; with 40 it held 6 before the connector raised the soft limit, and the
/// 7th failed as "the SSH connection broke" or "install the OpenSSH client". Now the soft
/// limit goes up to the hard one, and running out of descriptors says so.
#[tokio::test(flavor = "current_thread")]
async fn sessions_beyond_a_low_soft_limit_then_a_clear_error_at_the_hard_one() {
    let sshd = Sshd::start_configured("MaxSessions 64\n").unwrap();
    let hard = getrlimit(Resource::Nofile).maximum;
    assert!(
        hard.is_none_or(|h| h >= 256),
        "this test needs a hard limit of 256 at least"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(40),
            maximum: hard,
        },
    )
    .unwrap();
    let c = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .max_sessions(64)
        .connect(&sshd.alias)
        .await
        .unwrap();
    let mut held = Vec::new();
    for i in 0..20 {
        let p = c.spawn(&RemoteCommand::new("cat")).await;
        held.push(p.unwrap_or_else(|e| panic!("session {i} under a soft limit of 40: {e}")));
    }
    drop(held);

    // A hard limit the connector cannot raise: the sessions run out, and the error names
    // the limit and what to do, not a broken connection.
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(48),
            maximum: Some(48),
        },
    )
    .unwrap();
    let mut held = Vec::new();
    let err = loop {
        match c.spawn(&RemoteCommand::new("cat")).await {
            Ok(p) => held.push(p),
            Err(e) => break e,
        }
        assert!(held.len() < 20, "48 descriptors cannot hold 20 sessions");
    };
    let text = err.to_string();
    assert!(text.contains("no file descriptor left"), "{text}");
    assert!(text.contains("open-files limit is 48"), "{text}");
    assert_ne!(
        err.kind,
        sremote_core::ConnectorErrorKind::Disconnected,
        "{text}"
    );
}
