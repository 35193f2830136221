//! The hosts config through the binary: listing, bad files (line and column), unknown keys,
//! groups; completions and help.
mod common;

use common::{Client, text};

const GOOD: &str = r#"
[hosts.pm]
destination = "alice@perlmutter.example"
scheduler = "slurm"
partitions = ["debug", { name = "gpu", cores = 64, max_time = "12h", gpus = 4 }]
env = { OMP_NUM_THREADS = "8" }

[hosts.me]
connector = "local"
env = { FROM_CONFIG = "yes it is" }
path = ["/opt/sremote-test/bin"]

[groups]
all = ["pm", "@mine"]
mine = ["me"]
"#;

#[test]
fn hosts_lists_the_config_and_its_settings_apply_to_calls() {
    let client = Client::new(GOOD);
    let out = client.run(&["hosts"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("HOST  CONNECTOR  DESTINATION               SCHEDULER  GROUPS\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("me    local      -                         -          @all @mine"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pm    ssh        alice@perlmutter.example  slurm      @all"),
        "{stdout}"
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    let out = client.run(&["hosts", "--json"]);
    let pm: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().nth(1).unwrap()).unwrap();
    assert_eq!(pm["host"], "pm");
    assert_eq!(pm["partitions"][1]["gpus"], 4);
    assert_eq!(pm["scheduler"], "slurm");

    // env and path from the config reach calls, exec and run on that host.
    let out = client.run(&["call", "me", "os", "getenv", "FROM_CONFIG"]);
    assert_eq!(text(&out.stdout), "yes it is\n", "{}", text(&out.stderr));
    let out = client.run(&["exec", "me", "--", "sh", "-c", "echo \"$FROM_CONFIG\""]);
    assert_eq!(text(&out.stdout), "yes it is\n");
    let out = client.run(&["run", "me", "--", "sh", "-c", "echo \"${PATH%%:*}\""]);
    assert_eq!(text(&out.stdout), "/opt/sremote-test/bin\n");
    let out = client.run(&["exec", "me", "--", "sh", "-c", "echo \"${PATH%%:*}\""]);
    assert_eq!(
        text(&out.stdout),
        "/opt/sremote-test/bin\n",
        "exec gets the configured path first in PATH: {}",
        text(&out.stderr)
    );
    // Through that wrapper the arguments are still data, and a missing program is 127.
    let out = client.run(&[
        "exec",
        "me",
        "--",
        "printf",
        "[%s]\n",
        "$(echo no)",
        "a  b;",
    ]);
    assert_eq!(text(&out.stdout), "[$(echo no)]\n[a  b;]\n");
    let out = client.run(&["exec", "me", "--", "no-such-program-here"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    let out = client.run(&[
        "run",
        "me,local",
        "--json",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for host in ["me", "local"] {
        let mine: Vec<_> = lines.iter().filter(|v| v["host"] == host).collect();
        assert_eq!(mine.len(), 3, "{lines:?}");
        assert!(
            mine.iter()
                .any(|v| v["stream"] == "stdout" && v["line"] == "out")
        );
        assert!(
            mine.iter()
                .any(|v| v["stream"] == "stderr" && v["line"] == "err")
        );
        assert_eq!(mine[2]["exit_code"], 3);
    }
    // A group of one is still a fan-out: output prefixed.
    let out = client.run(&["exec", "@mine", "--", "echo", "x"]);
    assert_eq!(text(&out.stdout), "me | x\n");
    let out = client.run(&["exec", "@nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no group named @nope"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_config_names_file_line_and_column() {
    let client = Client::new("[hosts.a]\ndestination = \"x\"\nconnector = \"telnet\"\n");
    let out = client.run(&["call", "a", "os", "getpid"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let want = format!("error: {}:3:13: ", client.config.display());
    assert!(err.starts_with(&want), "{err}");
    assert!(
        err.contains("telnet") && err.contains("hint: fix the config file"),
        "{err}"
    );

    let client = Client::new("[hosts.a]\ndestination = \"x\"\n[hosts.a]\n");
    let err = text(&client.run(&["hosts"]).stderr);
    assert!(err.contains(":3:8: duplicate key"), "{err}");

    // Commands that need no host do not read the config.
    let out = client.run(&["completions", "bash"]);
    assert!(out.status.success());
}

#[test]
fn unknown_keys_are_warned_and_ignored() {
    let client = Client::new("[hosts.me]\nconnector = \"local\"\ncolour = \"blue\"\n");
    let out = client.run(&["call", "me", "os", "getpid"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let want = format!(
        "warning: {}:3:1: unknown key \"colour\" in [hosts.me], ignored",
        client.config.display()
    );
    assert!(err.starts_with(&want), "{err}");
}

#[test]
fn completions_and_help_with_examples() {
    let client = Client::new("");
    for (shell, marker) in [
        ("bash", "_sremote()"),
        ("zsh", "#compdef sremote"),
        ("fish", "complete -c sremote"),
    ] {
        let out = client.run(&["completions", shell]);
        assert!(out.status.success());
        assert!(text(&out.stdout).contains(marker), "{shell}");
        assert!(text(&out.stdout).contains("tunnel"), "{shell}");
    }
    let out = client.run(&["--help"]);
    let help = text(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("Exit codes:") && help.contains("130"),
        "{help}"
    );
    for cmd in [
        "run",
        "push",
        "pull",
        "sync",
        "probe",
        "tunnel",
        "hosts",
        "hosts list",
        "hosts check",
        "exec",
        "call",
        "bootstrap",
        "bench",
        "endpoint",
        "endpoint info",
        "completions",
    ] {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("--help");
        let out = client.run(&args);
        assert!(
            text(&out.stdout).contains("Examples:"),
            "{cmd} --help has no examples"
        );
    }
    let out = client.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The file names in the endpoint's `bin` directory under `home`.
fn installed(home: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(home.join(".sremote/bin"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_custom_endpoint_named_in_the_config_serves_every_command() {
    // A copy of the stock endpoint stands in for a custom one: it is installed under its
    // own name (sremote-endpoint-<version>-<sha12>), so the path the endpoint reports
    // tells which binary answered.
    let stock = Client::new("");
    let out = stock.run(&["bootstrap", "local"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stock_names = installed(stock.home.path());
    assert_eq!(stock_names.len(), 1, "{stock_names:?}");

    let client = Client::new(
        "[hosts.mine]\nconnector = \"local\"\nendpoint = \"ep/custom-endpoint\"\n\n\
         [hosts.broken]\nconnector = \"local\"\nendpoint = \"nope/missing\"\n",
    );
    let custom = client.home.path().join("ep/custom-endpoint");
    std::fs::create_dir_all(custom.parent().unwrap()).unwrap();
    std::fs::copy(
        stock.home.path().join(".sremote/bin").join(&stock_names[0]),
        &custom,
    )
    .unwrap();
    let out = client.run(&[
        "endpoint",
        "info",
        "--json",
        "--endpoint",
        custom.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = info["install_name"].as_str().unwrap().to_string();
    assert!(name.starts_with(&format!("{}-", stock_names[0])), "{name}");

    // probe, the first command on this host: it installs the custom endpoint, not the stock one.
    let out = client.run(&["probe", "mine", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(installed(client.home.path()), vec![name.clone()]);
    // call, bench, hosts check: all answered by it (the config names it; no flag).
    let out = client.run(&["call", "mine", "sys", "version", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let exe = v["ok"]["exe"].as_str().unwrap();
    assert!(exe.ends_with(&format!("/.sremote/bin/{name}")), "{exe}");
    let out = client.run(&["bench", "mine", "--calls", "3", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = client.run(&["hosts", "check", "mine", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["endpoint_version"].is_string(), "{v}");
    assert_eq!(installed(client.home.path()), vec![name.clone()]);

    // hosts check installs nothing: elsewhere it reports the custom endpoint missing.
    let other = Client::new(&format!(
        "[hosts.mine]\nconnector = \"local\"\nendpoint = \"{}\"\n",
        custom.display()
    ));
    let out = other.run(&["hosts", "check", "mine", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["endpoint_problem"]
            .as_str()
            .is_some_and(|p| p.contains("custom endpoint")),
        "{v}"
    );
    assert!(installed(other.home.path()).is_empty());
    // SREMOTE_CUSTOM_ENDPOINT (like --endpoint) applies to any host, config or not.
    let out = other
        .command(&["exec", "local", "--", "true"])
        .env("SREMOTE_CUSTOM_ENDPOINT", &custom)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        installed(other.home.path()).is_empty(),
        "exec needs no endpoint"
    );
    let out = other
        .command(&["call", "local", "os", "getpid"])
        .env("SREMOTE_CUSTOM_ENDPOINT", &custom)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(installed(other.home.path()), vec![name.clone()]);

    // A missing binary: a usage error naming the file, the host and where it was named.
    let out = client.run(&["call", "broken", "os", "getpid"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("nope/missing")
            && err.contains("[hosts.broken]")
            && err.contains(&client.config.display().to_string())
            && err.contains("hint:"),
        "{err}"
    );
    let out = client.run(&["call", "mine", "os", "getpid", "--endpoint", "/no/such/ep"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--endpoint"),
        "{}",
        text(&out.stderr)
    );
}
