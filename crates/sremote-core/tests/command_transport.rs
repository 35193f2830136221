//! The shared connector test-suite against `CommandTransport` with the prefix
//! `env HOME=<throwaway dir>`: the command-transport block (exec, push, pull and spawn
//! through `/bin/sh` scripts behind a prefix) on this machine, without root.
use sremote_core::connector::CommandTransport;
use sremote_core::testsuite::Fixture;

async fn fixture() -> Fixture<CommandTransport> {
    let home = tempfile::Builder::new()
        .prefix("sremote-cmd-home-")
        .tempdir()
        .unwrap()
        .keep();
    let home_env = format!("HOME={}", home.display());
    Fixture {
        connector: CommandTransport::new("env-home", ["env", home_env.as_str()]),
        scratch: "scratch dir".to_string(),
        // Even root may not create files here.
        unwritable: Some("/sys/kernel".to_string()),
    }
}

sremote_core::connector_tests!(fixture);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_that_cannot_start_is_a_clear_error() {
    use sremote_core::{Connector, RemoteCommand};
    let c = CommandTransport::new("nowhere", ["sremote-no-such-prefix-x", "--"]);
    let err = c.exec(&RemoteCommand::new("true")).await.unwrap_err();
    assert!(
        err.to_string().contains("sremote-no-such-prefix-x"),
        "{err}"
    );
    let c = CommandTransport::new("false", ["false"]);
    let err = c.exec(&RemoteCommand::new("true")).await.unwrap_err();
    assert!(err.to_string().contains("did not run the command"), "{err}");
}
