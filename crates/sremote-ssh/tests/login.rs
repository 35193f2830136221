//! Logins that ask (a password or a one-time code through PAM keyboard-interactive) and
//! persisted master connections shared between connectors, against real sshds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sremote_core::{Connector, ConnectorErrorKind, RemoteCommand};
use sremote_ssh::{Prompt, SshConnector};
use sremote_testkit::{Error as KitError, Sshd};

const PASSWORD: &str = "correct horse 42";

fn password_sshd() -> Option<Sshd> {
    match Sshd::start_with_password(PASSWORD) {
        Ok(s) => Some(s),
        Err(KitError::Skip(why)) => {
            eprintln!("skipped: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn accepted(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted ").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_callback_answers_keyboard_interactive_once() {
    let Some(sshd) = password_sshd() else { return };
    let asked = Arc::new(AtomicUsize::new(0));
    let seen = asked.clone();
    let c = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .terminal_prompts(false)
        .prompt(Prompt::new(move |text| {
            seen.fetch_add(1, Ordering::SeqCst);
            assert!(text.to_lowercase().contains("password"), "prompt: {text:?}");
            Some(PASSWORD.to_string())
        }))
        .connect(&sshd.alias)
        .await
        .unwrap();
    for _ in 0..3 {
        let out = c.exec(&RemoteCommand::new("id").arg("-un")).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sshd.user);
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "one prompt for one login");
    assert_eq!(accepted(&sshd), 1, "{}", sshd.log());
    assert!(
        sshd.log().contains("keyboard-interactive"),
        "{}",
        sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_answer_is_auth_and_no_prompt_says_how_to_log_in() {
    let Some(sshd) = password_sshd() else { return };
    let e = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .terminal_prompts(false)
        .prompt(Prompt::new(|_| Some("wrong".into())))
        .connect(&sshd.alias)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ConnectorErrorKind::Auth, "{e}");
    // A callback that gives up is an Auth error too, at once.
    let e = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .terminal_prompts(false)
        .prompt(Prompt::new(|_| None))
        .connect(&sshd.alias)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ConnectorErrorKind::Auth, "{e}");
    // Nobody to ask: BatchMode, and the hint says how to log in instead.
    let e = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .terminal_prompts(false)
        .connect(&sshd.alias)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ConnectorErrorKind::Auth, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("no terminal to ask on") && text.contains("ControlMaster"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_master_is_shared_and_outlives_the_connector() {
    let sshd = Sshd::start().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("srp-")
        .tempdir_in("/tmp")
        .unwrap();
    // SAFETY: this test binary sets the variable before any connector reads it, and
    // nothing else in it reads SREMOTE_CONTROL_DIR.
    unsafe { std::env::set_var("SREMOTE_CONTROL_DIR", dir.path().join("ctl")) };
    let connect = || {
        SshConnector::builder()
            .config_file(&sshd.ssh_config)
            .persist(Some(Duration::from_secs(60)))
            .connect(&sshd.alias)
    };
    let a = connect().await.unwrap();
    assert!(a.persisted());
    a.exec(&RemoteCommand::new("true")).await.unwrap();
    let socket = a.control_socket();
    drop(a);
    let b = connect().await.unwrap();
    assert_eq!(b.control_socket(), socket);
    b.exec(&RemoteCommand::new("true")).await.unwrap();
    assert_eq!(accepted(&sshd), 1, "{}", sshd.log());
    let list = sremote_ssh::connections().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].destination, sshd.alias);
    // The control directory is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("ctl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // The master's host goes away: the next connector notices and logs in again.
    sshd.kill_sessions();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = connect().await.unwrap();
    c.exec(&RemoteCommand::new("true")).await.unwrap();
    assert_eq!(accepted(&sshd), 2, "{}", sshd.log());
    sremote_ssh::disconnect(&sremote_ssh::connections().await.unwrap()[0])
        .await
        .unwrap();
    assert!(sremote_ssh::connections().await.unwrap().is_empty());
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_the_user_runs_is_reused_and_left_running() {
    let sshd = Sshd::start().unwrap();
    let socket = sshd.dir.join("user-mux");
    let config = sshd.dir.join("ssh_config_mux");
    let base = std::fs::read_to_string(&sshd.ssh_config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{base}  ControlMaster auto\n  ControlPath {}\n",
            socket.display()
        ),
    )
    .unwrap();
    let ssh = |args: &[&str]| {
        std::process::Command::new("ssh")
            .arg("-F")
            .arg(&config)
            .args(args)
            .arg(&sshd.alias)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    assert!(ssh(&["-MNf"]).status.success());
    let c = SshConnector::builder()
        .config_file(&config)
        .connect(&sshd.alias)
        .await
        .unwrap();
    assert_eq!(c.control_socket(), socket);
    c.exec(&RemoteCommand::new("true")).await.unwrap();
    // Not ours to end: `close` leaves it running.
    c.close().await.unwrap();
    drop(c);
    assert_eq!(accepted(&sshd), 1, "{}", sshd.log());
    assert!(ssh(&["-O", "check"]).status.success(), "still running");
    assert!(ssh(&["-O", "exit"]).status.success());
}
