//! Fan-out over real hosts: an sshd on loopback, an sshd in a network namespace (another
//! address, an unprivileged user) and a host that is down.
mod common;

use common::{Client, ssh_host, text};
use std::time::Duration;

use sremote_testkit::{DelayProxy, NetnsHost, Sshd};

/// A stopped sshd: its port refuses connections at once.
fn down_host() -> Sshd {
    let s = Sshd::start().unwrap();
    s.kill();
    s
}

#[test]
fn fan_out_gives_partial_results_and_names_the_host_that_failed() {
    let a = Sshd::start().unwrap();
    let down = down_host();
    let netns = NetnsHost::start_or_skip("srt-cli-fan", 71);
    let mut cfg = ssh_host("alpha", &a.alias, &a.ssh_config);
    cfg += &ssh_host("down", &down.alias, &down.ssh_config);
    let mut members = vec!["alpha", "down"];
    if let Some(n) = &netns {
        cfg += &ssh_host("beta", &n.name, &n.ssh_config);
        members.insert(1, "beta");
    }
    cfg +=
        &format!("[hosts.alpha.env]\nGREETING = \"hi from alpha\"\n[groups]\nall = {members:?}\n");
    let client = Client::new(&cfg);

    // exec on the group: every reachable host answers, prefixed; the down one is named.
    let out = client.run(&[
        "exec",
        "@all",
        "--",
        "sh",
        "-c",
        "echo \"${GREETING:-none}\" $(id -un)",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let me = std::env::var("USER").unwrap_or_else(|_| "root".into());
    assert!(
        stdout.contains(&format!("alpha | hi from alpha {me}")),
        "{stdout}"
    );
    if let Some(n) = &netns {
        assert!(
            stdout.contains(&format!("beta | none {}", n.user)),
            "{stdout}"
        );
    }
    assert!(stderr.contains("down | error:"), "{stderr}");
    let total = members.len();
    assert!(
        // Connect, or HostKey if another test's sshd took the freed port meanwhile.
        stderr.contains(&format!("error: 1 of {total} hosts failed: down (")),
        "{stderr}"
    );

    // The same as JSON lines: one object per host, the failure with its kind.
    let out = client.run(&["--json", "call", "alpha,down", "os", "getenv", "GREETING"]);
    assert_eq!(out.status.code(), Some(3));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", text(&out.stdout));
    let alpha = lines.iter().find(|v| v["host"] == "alpha").unwrap();
    assert_eq!(alpha["ok"], "hi from alpha");
    let failed = lines.iter().find(|v| v["host"] == "down").unwrap();
    assert!(failed["error"]["kind"].is_string() && failed["error"]["message"].is_string());
    assert_eq!(failed["error"]["exit_code"], 3);

    // A failing program on one host is exit 1, naming the host and its code.
    let out = client.run(&["exec", "alpha", "--", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "one host: its own exit code");
    if netns.is_some() {
        let out = client.run(&[
            "exec",
            "alpha,beta",
            "--",
            "sh",
            "-c",
            "[ \"$GREETING\" ] || exit 5",
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("1 of 2 hosts failed: beta (exit code 5)"),
            "{}",
            text(&out.stderr)
        );
    }

    // hosts check: reachability, endpoint, latency.
    let out = client.run(&["hosts", "check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    let row = |h: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(h))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("alpha ").contains(" ok ") && row("alpha ").contains("0.1.0"),
        "{stdout}"
    );
    assert!(row("down ").contains("unreachable"), "{stdout}");
}

#[test]
fn probe_reports_a_real_host() {
    let a = Sshd::start().unwrap();
    let down = down_host();
    let mut cfg = ssh_host("alpha", &a.alias, &a.ssh_config);
    cfg += &ssh_host("down", &down.alias, &down.ssh_config);
    let client = Client::new(&cfg);
    let out = client.run(&["probe", "alpha", "local", "--sort", "free-mem"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let header = stdout.lines().next().unwrap();
    for col in [
        "HOST",
        "CPUS",
        "LOAD",
        "FREE MEM",
        "FREE DISK",
        "GPUS",
        "ENDPOINT",
        "RTT",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let alpha = stdout.lines().find(|l| l.starts_with("alpha")).unwrap();
    let cpus = std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string();
    let cells: Vec<&str> = alpha.split_whitespace().collect();
    assert_eq!(cells[1], cpus, "{alpha}");
    assert!(alpha.contains("GiB") && alpha.contains("0.1.0"), "{alpha}");

    let out = client.run(&["probe", "alpha", "down", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let alpha = &lines[0];
    assert_eq!(alpha["host"], "alpha");
    assert!(alpha["probe"]["mem_available"].as_u64().unwrap() > 0);
    assert!(alpha["probe"]["disk_free_home"].as_u64().unwrap() > 0);
    assert!(alpha["rtt_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[1]["host"], "down");
    assert_eq!(lines[1]["ok"], false);
    assert!(text(&out.stderr).contains("1 of 2 hosts failed: down"));
}

/// `--parallel N` bounds the connections, not only the work: a finished host's ssh
/// connection is closed before the next host's login starts. Before the fix the master
/// of a finished host outlived it by a round trip (it waited for its channel to close),
/// so through a slow link `--parallel 1` held two connections at once.
#[test]
fn parallel_bounds_the_connections_open_at_once() {
    let hosts: Vec<Sshd> = (0..3).map(|_| Sshd::start().unwrap()).collect();
    let ports: Vec<u16> = hosts.iter().map(|s| s.port).collect();
    let proxy = DelayProxy::start(&ports, Duration::from_millis(60)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::new();
    for (i, sshd) in hosts.iter().enumerate() {
        let path = dir.path().join(format!("ssh_config{i}"));
        proxy.ssh_config(i, sshd, "slow", &path).unwrap();
        cfg += &ssh_host(&format!("h{i}"), "slow", &path);
    }
    let client = Client::new(&cfg);
    let out = client.run(&[
        "--no-persist",
        "--parallel",
        "1",
        "--json",
        "call",
        "h0,h1,h2",
        "os",
        "getenv",
        "HOME",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(proxy.accepted() >= 3, "{} connections", proxy.accepted());
    assert_eq!(
        proxy.peak_open(),
        1,
        "--parallel 1 held {} connections at once",
        proxy.peak_open()
    );
    // Nothing left open once the command has ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while proxy.open_now() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(proxy.open_now(), 0, "a connection outlived the command");
}
