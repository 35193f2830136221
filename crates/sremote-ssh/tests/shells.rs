//! Any login shell, any login script: the shared connector test-suite over sshd logins
//! whose shells are tcsh, fish and bash, all with login scripts that print banners on
//! stdout and stderr (so every byte compared by the suite proves that nothing of them
//! leaked into output or pulled files), and the direct checks of issue 17.
mod common;

use sremote_core::{Connector, Dest, RemoteCommand, Source};
use sremote_testkit::{STDERR_BANNER, STDOUT_BANNER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

macro_rules! suite_under {
    ($($shell:ident),+) => {$(
        mod $shell {
            async fn fixture() -> sremote_core::testsuite::Fixture<Box<dyn sremote_core::Connector>> {
                super::common::login_shell_fixture(stringify!($shell)).await
            }
            sremote_core::connector_tests!(fixture);
        }
    )+};
}

suite_under!(tcsh, fish, bash);

const SHELLS: [&str; 6] = ["bash", "tcsh", "csh", "fish", "zsh", "ksh"];

/// `exec` gives exactly the program's stdout and stderr; `pull` exactly the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_banners_never_reach_output_or_files() {
    for shell in SHELLS {
        let Some(c) = common::login_shell(shell).await else {
            return;
        };
        // The banners really are printed for plain ssh commands under this shell.
        let plain = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&c.host.ssh_config)
            .args([&c.host.alias, "echo", "x"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&plain.stdout);
        // (ksh reads no login script for commands)
        if shell != "ksh" {
            assert!(
                text.contains(STDOUT_BANNER),
                "{shell}: no banner in {text:?}"
            );
        }

        let cmd = RemoteCommand::new("sh").args(["-c", "printf 'out'; printf 'err' >&2"]);
        let out = c.exec(&cmd).await.unwrap();
        assert_eq!(
            (&out.stdout[..], &out.stderr[..]),
            (&b"out"[..], &b"err"[..]),
            "{shell}"
        );

        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        c.push(Source::bytes(&data), "h.txt").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy");
        c.pull("h.txt", Dest::file(&copy)).await.unwrap();
        assert!(
            std::fs::read(&copy).unwrap() == data,
            "{shell}: the pulled file differs"
        );

        let mut p = c.spawn(&RemoteCommand::new("cat")).await.unwrap();
        p.stdin.write_all(b"ping\n").await.unwrap();
        drop(p.stdin);
        let mut echoed = Vec::new();
        p.stdout.read_to_end(&mut echoed).await.unwrap();
        let mut err = Vec::new();
        p.stderr.read_to_end(&mut err).await.unwrap();
        assert_eq!(
            (&echoed[..], &err[..]),
            (&b"ping\n"[..], &b""[..]),
            "{shell}"
        );
        assert_eq!(p.wait.await.unwrap(), Some(0));
    }
}

/// A failing push under a banner-printing login names the script's error, not the banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_no_banner() {
    let Some(c) = common::login_shell("tcsh").await else {
        return;
    };
    let err = c
        .push(Source::bytes(b"x"), "/root/nope/f")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains(STDERR_BANNER) && !text.contains(STDOUT_BANNER),
        "{text}"
    );
    let err = c
        .pull("missing", Dest::file(std::path::Path::new("/tmp/never-x")))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains(STDERR_BANNER), "{err}");
}

/// A host whose /bin/sh does not work gets an error that says exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_a_usable_bin_sh_is_told_so() {
    let sshd = match sremote_testkit::Sshd::start_without_usable_sh() {
        Ok(s) => s,
        Err(sremote_testkit::Error::Skip(why)) => return eprintln!("skipped: {why}"),
        Err(e) => panic!("{e}"),
    };
    let c = sremote_ssh::SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap();
    let err = c.exec(&RemoteCommand::new("true")).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/bin/sh"), "{text}");
    assert!(text.contains("did not run"), "{text}");
    let err = c.spawn(&RemoteCommand::new("cat")).await.unwrap_err();
    assert!(err.to_string().contains("POSIX /bin/sh"), "{err}");
}
