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
    let out = client.run(&["exec", "me", "--", "printf", "[%s]\n", "$(echo no)", "a  b;"]);
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
        "run", "push", "sync", "probe", "tunnel", "hosts", "exec", "call",
    ] {
        let out = client.run(&[cmd, "--help"]);
        assert!(
            text(&out.stdout).contains("Examples:"),
            "{cmd} --help has no examples"
        );
    }
    let out = client.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
