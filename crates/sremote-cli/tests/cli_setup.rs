//! The hosts config's `setup` and `login_shell` over a real sshd (issue 16, item 6): calls
//! in every mode and a detached direct job see what the setup exported (the endpoint is
//! bootstrapped with setup configured, into an endpoint dir whose name needs quoting); a
//! login shell reads `~/.bash_profile`; `submit --setup` adds lines; a failing line is an
//! error naming the line, its status and the host, and nothing else runs.
mod common;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

/// A hostile endpoint dir: it reaches the setup wrapper as an argv word (data).
const DIR: &str = "sr dir $(touch pwned) 'q'";

fn client(sshd: &Sshd, extra: &str) -> Client {
    let host = ssh_host("site", &sshd.alias, &sshd.ssh_config);
    let config = format!(
        "{host}endpoint_dir = \"{DIR}\"\n{extra}\n{}",
        ssh_host("broken", &sshd.alias, &sshd.ssh_config)
            + &format!(
                "endpoint_dir = \"{DIR}\"\n\
                 setup = [\"export SREMOTE_SITE=1\", \"sremote_no_such_module load python/3.11\", \"touch never-ran\"]\n"
            )
    );
    let mut c = Client::new(&config);
    let db = c.home.path().join("jobs.sqlite3");
    c.env
        .push(("SREMOTE_JOBS_DB".into(), db.display().to_string()));
    c
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn calls_and_direct_jobs_see_the_setup() {
    let sshd = Sshd::start().unwrap();
    std::fs::write(
        sshd.home.join("site-env.sh"),
        "export SREMOTE_SOURCED=sourced\n",
    )
    .unwrap();
    let c = client(
        &sshd,
        r#"setup = ["export SREMOTE_SITE=from-setup", "echo a greeting the protocol never sees", "source ~/site-env.sh", "cd /tmp"]"#,
    );
    // The first call bootstraps (the endpoint is missing: 127 through the wrapper).
    for mode in ["session", "pipe", "file"] {
        let out = c.run(&[
            "call",
            "site",
            "--mode",
            mode,
            "os",
            "getenv",
            "SREMOTE_SITE",
        ]);
        assert_eq!(ok(&out), "from-setup\n", "mode {mode}");
    }
    let out = c.run(&["call", "site", "os", "getenv", "SREMOTE_SOURCED"]);
    assert_eq!(ok(&out), "sourced\n");
    // The endpoint starts in the home directory, whatever the setup `cd`s to.
    let out = c.run(&["call", "site", "os", "getcwd"]);
    assert_eq!(ok(&out).trim(), sshd.home.display().to_string());
    // A detached job: started after the setup, its function reads the variable.
    let out = c.run(&[
        "submit",
        "site",
        "--direct",
        "--wait",
        "os",
        "getenv",
        "SREMOTE_SITE",
    ]);
    assert!(ok(&out).ends_with("from-setup\n"), "{}", text(&out.stdout));
    // `--setup` adds a line after the host's.
    let out = c.run(&[
        "submit",
        "site",
        "--direct",
        "--wait",
        "--setup",
        "export SREMOTE_EXTRA=\"$SREMOTE_SITE and more\"",
        "os",
        "getenv",
        "SREMOTE_EXTRA",
    ]);
    assert!(
        ok(&out).ends_with("from-setup and more\n"),
        "{}",
        text(&out.stdout)
    );
    // `run --detach` is a direct job too: its program sees the setup.
    let out = c.run(&[
        "run",
        "site",
        "--detach",
        "--",
        "sh",
        "-c",
        "echo \"program saw $SREMOTE_SITE\"",
    ]);
    let id = ok(&out).trim().to_string();
    let _ = c.run(&["jobs", "result", &id]);
    let log = c.run(&["jobs", "log", &id]);
    assert!(
        ok(&log).contains("program saw from-setup"),
        "{}",
        text(&log.stdout)
    );
    assert!(!sshd.home.join("pwned").exists(), "the dir name ran");
    assert!(!std::path::Path::new("pwned").exists());
}

#[test]
fn login_shell_reads_the_profile() {
    let sshd = Sshd::start().unwrap();
    std::fs::write(
        sshd.home.join(".bash_profile"),
        "export SREMOTE_PROFILE=login\necho profile greeting\n",
    )
    .unwrap();
    let c = client(
        &sshd,
        "login_shell = true\nsetup = [\"export SREMOTE_SITE=$SREMOTE_PROFILE-then-setup\"]",
    );
    let out = c.run(&["call", "site", "os", "getenv", "SREMOTE_SITE"]);
    assert_eq!(ok(&out), "login-then-setup\n");
    // `hosts --json` shows both keys.
    let hosts = ok(&c.run(&["--json", "hosts"]));
    let site: serde_json::Value = hosts
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["host"] == "site")
        .unwrap_or_else(|| panic!("{hosts}"));
    assert_eq!(site["login_shell"], true, "{site}");
    assert_eq!(
        site["setup"],
        serde_json::json!(["export SREMOTE_SITE=$SREMOTE_PROFILE-then-setup"])
    );
    let out = c.run(&[
        "submit",
        "site",
        "--direct",
        "--wait",
        "os",
        "getenv",
        "SREMOTE_PROFILE",
    ]);
    assert!(ok(&out).ends_with("login\n"), "{}", text(&out.stdout));
}

#[test]
fn a_failing_setup_line_is_named_with_its_host() {
    let sshd = Sshd::start().unwrap();
    let c = client(&sshd, "");
    for mode in ["session", "pipe"] {
        let out = c.run(&["call", "broken", "--mode", mode, "os", "getpid"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        for part in [
            "setup line 2 `sremote_no_such_module load python/3.11` failed with exit status 127",
            "not found",
            &sshd.alias,
            "fix or remove it in the host's `setup`",
        ] {
            assert!(err.contains(part), "mode {mode}: {part:?} not in {err}");
        }
        assert!(!err.contains("bootstrap"), "{err}");
        eprintln!("{mode}: {err}");
    }
    assert!(!sshd.home.join("never-ran").exists());
    // A submission says the same (and records no job that cannot start).
    let out = c.run(&["--json", "call", "broken", "os", "getpid"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .or_else(|_| serde_json::from_slice(&out.stderr))
        .unwrap_or_default();
    assert_eq!(v["error"]["kind"], "Setup", "{v}");
    let out = c.run(&["submit", "broken", "--direct", "os", "getpid"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("setup line 2"));
    // A bad --setup line on a sound host, in a direct job's start.
    let out = c.run(&[
        "submit",
        "site",
        "--direct",
        "--setup",
        "exit_3() { return 3; }; exit_3",
        "os",
        "getpid",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("setup line 1 `exit_3() { return 3; }; exit_3` failed with exit status 3"),
        "{err}"
    );
}
