//! The setup wrapper (`sremote_core::setup`) run for real by `/bin/sh` (and `bash -l`)
//! through `LocalConnector`: lines carry over to the program, the program's arguments stay
//! data, setup output stays off stdout, a failing line is reported by number, and the
//! program starts in the directory the command started in.
use sremote_core::setup::{SETUP_FAILED_EXIT, failure};
use sremote_core::{Connector, LocalConnector, RemoteCommand, Setup};

fn home() -> (tempfile::TempDir, LocalConnector) {
    let dir = tempfile::tempdir().unwrap();
    let c = LocalConnector::with_home(dir.path());
    (dir, c)
}

#[tokio::test]
async fn lines_carry_over_and_arguments_stay_data() {
    let (_d, c) = home();
    let setup = Setup::new(
        [
            "export SREMOTE_T=from-setup",
            "echo a greeting on stdout; echo on stderr >&2",
            "cd /tmp # a comment, and a cd the program does not see",
            "f() { :; }; if true; then\n  export SREMOTE_U=two-lines\nfi",
            "source ~/activate",
        ],
        false,
    );
    std::fs::write(c.home().join("activate"), "export SREMOTE_V=sourced\n").unwrap();
    let hostile = "$(touch pwned); `touch pwned2` ' \" ; exit 3";
    let cmd = setup.wrap(RemoteCommand::new("/bin/sh").args([
        "-c",
        r#"printf '%s|%s|%s|%s|%s' "$SREMOTE_T" "$SREMOTE_U" "$SREMOTE_V" "$PWD" "$1""#,
        "x",
        hostile,
    ]));
    let out = c.exec(&cmd).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "{}", out.stderr_text());
    let home = c.home().to_string_lossy().into_owned();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("from-setup|two-lines|sourced|{home}|{hostile}"),
        "setup output must not reach stdout; the argument is data"
    );
    let err = out.stderr_text();
    assert!(
        err.contains("a greeting on stdout") && err.contains("on stderr"),
        "{err}"
    );
    assert!(!c.home().join("pwned").exists() && !c.home().join("pwned2").exists());
}

#[tokio::test]
async fn a_failing_line_is_named() {
    let (_d, c) = home();
    let setup = Setup::new(
        [
            "export A=1",
            "sremote_no_such_command --version",
            "echo never >&2",
        ],
        false,
    );
    let out = c
        .exec(&setup.wrap(RemoteCommand::new("true")))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(SETUP_FAILED_EXIT));
    let f = failure(out.exit_code, &out.stderr).expect("a setup failure");
    assert_eq!((f.line, f.status), (2, 127), "{f:?}");
    assert_eq!(f.text, "sremote_no_such_command --version");
    assert!(f.output.contains("not found"), "{f:?}");
    assert!(!out.stderr_text().contains("never"));

    // A line that does not parse fails as a line too (no shell exit without a report).
    let out = c
        .exec(&Setup::new(["if true"], false).wrap(RemoteCommand::new("true")))
        .await
        .unwrap();
    let f = failure(out.exit_code, &out.stderr).expect("a setup failure");
    assert_eq!(f.line, 1, "{f:?}");

    // A missing program is still 127 (the client's "bootstrap the endpoint" signal).
    let out = c
        .exec(&Setup::new(["true"], false).wrap(RemoteCommand::new(".sremote/bin/nothing")))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(127), "{}", out.stderr_text());
}

#[tokio::test]
async fn login_shell_runs_bash_l() {
    let (_d, c) = home();
    // `bash -l` reads ~/.bash_profile: a greeting there stays off stdout.
    std::fs::write(
        c.home().join(".bash_profile"),
        "export SREMOTE_PROFILE=read\necho profile greeting\n",
    )
    .unwrap();
    let setup = Setup::new(["export SREMOTE_T=$SREMOTE_PROFILE-and-setup"], true);
    let cmd = setup.wrap(RemoteCommand::new("printenv").arg("SREMOTE_T"));
    let out = c.exec(&cmd).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "{}", out.stderr_text());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "read-and-setup\n");
    assert!(out.stderr_text().contains("profile greeting"));
}

#[test]
fn no_setup_no_wrapper() {
    let cmd = RemoteCommand::new("prog").arg("a");
    assert_eq!(Setup::default().wrap(cmd.clone()), cmd);
}

#[tokio::test]
async fn installs_make_the_venv_with_the_setup_python() {
    // The endpoint's venv must come from the `python3` the setup provides (a module's),
    // not the bare system one: a fake python3 first in PATH shows which ran.
    let (_d, c) = home();
    let bin = c.home().join("fakebin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("python3");
    std::fs::write(&fake, "#!/bin/sh\necho \"fake python3 $*\" >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let client = sremote_core::RemoteClient::new(c);
    client.set_setup(["export PATH=$HOME/fakebin:$PATH"]);
    let e = client
        .install_python_packages(["sremote-no-such-package"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fakebin/python3") && e.contains("fake python3 -m venv"),
        "{e}"
    );
}
