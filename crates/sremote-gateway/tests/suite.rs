//! The shared connector test-suite through a real `sremote-gateway` on loopback.
//!
//! Every case but `stdin_16_mib`: the NEWT API has no stdin, so `NewtConnector` reports
//! `supports_stdin() == false` and refuses stdin with `Unsupported` (checked below and by
//! `refused_stdin_runs_nothing`). The spawn cases pass by answering `Unsupported`. Not
//! `env_names_are_identifiers_and_program_paths_data` either: with env vars a command goes
//! through `env`, so a program path containing `=` is refused (`InvalidInput`) over NEWT.
mod common;

sremote_core::connector_tests!(@cases common::fixture;
    hostile_arguments, hostile_program_path, env_and_cwd, missing_cwd_is_not_found,
    exit_codes_and_stderr, timeout_kills_children, push_pull_small_files,
    push_pull_64_mib, push_keeps_mode_and_replaces_atomically,
    pull_keeps_mode_and_modification_time, pull_missing_is_not_found,
    push_unwritable_is_permission_denied, refuses_nul_bytes,
    transfers_drop_setuid_bits,
    pull_of_a_symlink_keeps_the_targets_mode_and_time,
    transfers_replace_files_whole_never_in_place, push_keeps_the_local_files_mode,
    spawn_pipes_stdio_and_reports_the_exit_code, spawn_passes_arguments_env_and_cwd,
    spawn_timeout_kills, dropped_spawn_kills_the_process_group,
    dropped_exec_kills_the_process_group, refused_stdin_runs_nothing);

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
