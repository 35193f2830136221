//! One login for many commands: the CLI leaves a persisted ssh master that later
//! commands (one after another, or 40 at once) reuse; `connections`, `disconnect`,
//! `--no-persist`, `persist = "…"`; against real sshds, counting logins in the sshd log.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, ssh_host, text};
use sremote_testkit::{Sshd, processes_with};

fn accepted(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted publickey").count()
}

fn client(sshd: &Sshd, extra: &str) -> Client {
    Client::new(&format!(
        "{}{extra}",
        ssh_host("h", &sshd.alias, &sshd.ssh_config)
    ))
}

fn ok(c: &Client, args: &[&str]) -> String {
    let out = c.run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn connections(c: &Client) -> Vec<serde_json::Value> {
    let out = ok(c, &["connections", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The client's control directory (inside its HOME).
fn control_dir(c: &Client) -> String {
    c.home
        .path()
        .join(".sremote-client/ctl")
        .display()
        .to_string()
}

#[test]
fn twenty_calls_make_one_login_and_disconnect_ends_it() {
    let sshd = Sshd::start().unwrap();
    let c = client(&sshd, "");
    let home = sshd.home.display().to_string();
    for _ in 0..20 {
        assert_eq!(ok(&c, &["call", "h", "os", "getenv", "HOME"]).trim(), home);
    }
    assert_eq!(accepted(&sshd), 1, "{}", sshd.log());
    let list = connections(&c);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["destination"], sshd.alias);
    assert_eq!(list[0]["persist_s"], 600);
    // The control directory is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(control_dir(&c))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    ok(&c, &["disconnect", "h"]);
    assert!(connections(&c).is_empty());
    assert!(
        processes_with(&control_dir(&c)).is_empty(),
        "the master is gone"
    );
    ok(&c, &["call", "h", "os", "getenv", "HOME"]);
    assert_eq!(accepted(&sshd), 2, "a new login after disconnect");
    ok(&c, &["disconnect", "--all"]);
    assert!(connections(&c).is_empty());
}

#[test]
fn no_persist_logs_in_every_time_and_leaves_nothing() {
    let sshd = Sshd::start().unwrap();
    let c = client(&sshd, "");
    for _ in 0..2 {
        ok(&c, &["--no-persist", "call", "h", "os", "getenv", "HOME"]);
    }
    assert_eq!(accepted(&sshd), 2);
    assert!(connections(&c).is_empty());
    // persist = "0" in the config does the same.
    let c = client(&sshd, "persist = \"0\"\n");
    ok(&c, &["exec", "h", "--", "true"]);
    assert_eq!(accepted(&sshd), 3);
    assert!(connections(&c).is_empty());
}

#[test]
fn master_exits_after_its_idle_time() {
    let sshd = Sshd::start().unwrap();
    let c = client(&sshd, "persist = \"2s\"\n");
    ok(&c, &["exec", "h", "--", "true"]);
    let list = connections(&c);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["persist_s"], 2);
    let started = Instant::now();
    while !processes_with(&control_dir(&c)).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the master outlived its idle time"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(connections(&c).is_empty());
    ok(&c, &["exec", "h", "--", "true"]);
    assert_eq!(accepted(&sshd), 2, "a new login after the idle time");
}

#[test]
fn sigkill_of_the_cli_leaves_only_the_master_which_is_reused() {
    let sshd = Sshd::start().unwrap();
    let c = client(&sshd, "");
    let mut child = c
        .command(&["exec", "h", "--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !sshd.log().contains("Accepted publickey") || connections(&c).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let left = processes_with(&control_dir(&c));
    assert_eq!(left.len(), 1, "only the master is left: {left:?}");
    ok(&c, &["exec", "h", "--", "true"]);
    assert_eq!(accepted(&sshd), 1, "reused: {}", sshd.log());
    assert_eq!(processes_with(&control_dir(&c)), left);
    ok(&c, &["disconnect", "--all"]);
}

#[test]
fn forty_concurrent_calls_against_a_stock_sshd_log_in_once() {
    // sshd's default MaxStartups: beyond 10 unauthenticated connections it drops some.
    let sshd = Sshd::start_configured("MaxStartups 10:30:100\n").unwrap();
    let c = client(&sshd, "");
    let home = sshd.home.display().to_string();
    let children: Vec<_> = (0..40)
        .map(|_| {
            c.command(&["call", "h", "os", "getenv", "HOME"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failed = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        if !out.status.success() || text(&out.stdout).trim() != home {
            failed.push(format!("{}{}", text(&out.stdout), text(&out.stderr)));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 40 failed: {failed:?}",
        failed.len()
    );
    assert_eq!(accepted(&sshd), 1, "{}", sshd.log());
    ok(&c, &["disconnect", "--all"]);
}

/// `ssh -S <socket> -O check` agrees the persisted master is a plain OpenSSH master
/// (what BENCHMARKS.md compares against).
#[test]
fn the_persisted_master_answers_ssh_o_check() {
    let sshd = Sshd::start().unwrap();
    let c = client(&sshd, "");
    ok(&c, &["exec", "h", "--", "true"]);
    let socket = connections(&c)[0]["socket"].as_str().unwrap().to_string();
    let out = Command::new("ssh")
        .args(["-S", &socket, "-O", "check", "x"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    ok(&c, &["disconnect", "--all"]);
}

#[test]
fn a_master_whose_host_went_away_is_replaced() {
    let sshd = Sshd::start().unwrap();
    let c = client(&sshd, "");
    ok(&c, &["exec", "h", "--", "true"]);
    sshd.kill_sessions(); // the host side of the master's connection dies
    let started = Instant::now();
    ok(&c, &["exec", "h", "--", "true"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(accepted(&sshd), 2, "{}", sshd.log());
    assert_eq!(connections(&c).len(), 1);
    ok(&c, &["disconnect", "--all"]);
}

#[test]
fn a_control_directory_others_can_enter_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let sshd = Sshd::start().unwrap();
    let c = client(&sshd, "");
    let dir = control_dir(&c);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = c.run(&["exec", "h", "--", "true"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing the control socket directory") && err.contains("755"),
        "{err}"
    );
    assert_eq!(accepted(&sshd), 0);
    // --no-persist needs no control directory.
    ok(&c, &["--no-persist", "exec", "h", "--", "true"]);
}

/// A host that vanishes from the network (its link goes down: no reset, no answer, as
/// when a laptop leaves the VPN) under a persisted master: the next command does not
/// hang on the dead master — it ends within the keepalive window with an error naming
/// the host — and once the host is back, a command works again. In a network namespace.
#[test]
fn a_host_that_drops_off_the_network_is_an_error_not_a_hang() {
    let Some(host) = sremote_testkit::NetnsHost::start_or_skip("srt-cli-drop", 74) else {
        return;
    };
    let c = Client::new(&ssh_host("far", &host.name, &host.ssh_config));
    let home = host.home.display().to_string();
    assert_eq!(
        ok(&c, &["call", "far", "os", "getenv", "HOME"]).trim(),
        home
    );
    let link = format!("v-{}", host.name);
    let ip = |state: &str| {
        let st = Command::new("ip")
            .args(["link", "set", &link, state])
            .status()
            .unwrap();
        assert!(st.success(), "ip link set {link} {state}");
    };
    ip("down");
    let started = Instant::now();
    let out = c.run(&["call", "far", "os", "getenv", "HOME"]);
    let took = started.elapsed();
    ip("up");
    let err = text(&out.stderr);
    eprintln!("a vanished host, after {took:?}: {err}");
    assert!(
        !out.status.success(),
        "a call to a vanished host succeeded: {err}"
    );
    assert!(took < Duration::from_secs(45), "took {took:?}: {err}");
    assert!(err.contains("far") || err.contains(&host.name), "{err}");
    // Back on the network: the next command works (the dead master replaced).
    let mut last = String::new();
    for _ in 0..20 {
        let out = c.run(&["call", "far", "os", "getenv", "HOME"]);
        if out.status.success() {
            assert_eq!(text(&out.stdout).trim(), home);
            ok(&c, &["disconnect", "--all"]);
            return;
        }
        last = text(&out.stderr);
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the host came back but calls still fail: {last}");
}
