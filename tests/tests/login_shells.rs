//! RemoteClient under any login shell: bootstrap and calls in every mode for users whose
//! login shell is tcsh, fish or bash and whose login scripts print banners on stdout and
//! stderr (issue 17: tcsh users could do nothing, fish users could not `call`, and a
//! banner broke session mode).
use sremote_core::{CallMode, CallOutput, RemoteClient};
use sremote_testkit::Sshd;
use sremote_tests::connect;

async fn every_mode_works_as(shell: &str) {
    let sshd = match Sshd::start_as(shell) {
        Ok(s) => s,
        Err(sremote_testkit::Error::Skip(why)) => return eprintln!("skipped: {why}"),
        Err(e) => panic!("{e}"),
    };
    let client: RemoteClient<_> = connect(&sshd).await;
    let report = client.do_bootstrap_install().await.unwrap();
    assert!(report.installed, "{report:?}");
    client.register_remote_env_variable("myVar", "v 'q' $(id) !x");
    for mode in [CallMode::Session, CallMode::Pipe, CallMode::File] {
        let out: CallOutput<String> = client
            .call("os", "getenv")
            .arg("myVar")
            .mode(mode)
            .await
            .unwrap_or_else(|e| panic!("{shell}, {mode:?}: {e}"));
        assert_eq!(out.value, "v 'q' $(id) !x", "{shell}, {mode:?}");
        assert_eq!(
            out.stdout, "",
            "{shell}, {mode:?}: banner in the call's output"
        );
        let home: CallOutput<String> = client
            .call("os", "getenv")
            .arg("HOME")
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(home.value, sshd.home.to_str().unwrap(), "{shell}, {mode:?}");
    }
    let again = connect(&sshd).await.do_bootstrap_install().await.unwrap();
    assert!(!again.installed, "{shell}: {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcsh_login_shell() {
    every_mode_works_as("tcsh").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fish_login_shell() {
    every_mode_works_as("fish").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_with_banners_in_bashrc() {
    every_mode_works_as("bash").await;
}
