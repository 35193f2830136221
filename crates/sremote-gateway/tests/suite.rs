//! The shared connector test-suite through a real `sremote-gateway` on loopback.
//!
//! Every case but `stdin_16_mib`: the NEWT API has no stdin, so `NewtConnector` reports
//! `supports_stdin() == false` and refuses stdin with `Unsupported` (checked below).
mod common;

sremote_core::connector_tests!(@cases common::fixture;
    hostile_arguments, hostile_program_path, env_and_cwd, missing_cwd_is_not_found,
    exit_codes_and_stderr, timeout_kills_children, push_pull_small_files,
    push_pull_64_mib, push_keeps_mode_and_replaces_atomically,
    pull_keeps_mode_and_modification_time, pull_missing_is_not_found,
    push_unwritable_is_permission_denied, refuses_nul_bytes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_unsupported_and_said_so() {
    use sremote_core::{Connector, ConnectorErrorKind, RemoteCommand};
    let f = common::fixture().await;
    assert!(!f.connector.supports_stdin());
    let err = f
        .connector
        .exec(&RemoteCommand::new("cat").stdin(b"x".to_vec()))
        .await
        .expect_err("no stdin");
    assert_eq!(err.kind, ConnectorErrorKind::Unsupported, "{err}");
    let out = f
        .connector
        .exec(&RemoteCommand::new("cat").stdin(Vec::new()))
        .await
        .expect("empty stdin is fine");
    assert_eq!(out.stdout, b"");
}
