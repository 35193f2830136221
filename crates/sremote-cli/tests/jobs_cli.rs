//! `sremote submit` and `sremote jobs …` on the local host, with a throwaway HOME and
//! job store.
use std::process::{Command, Output};

fn sremote(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sremote"))
        .args(args)
        .env("HOME", home)
        .env("SREMOTE_JOBS_DB", home.join("jobs.sqlite3"))
        .env_remove("SREMOTE_ENDPOINT")
        .env_remove("SREMOTE_CONFIG")
        .output()
        .expect("run sremote")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn submit_log_result_ls_rm() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = sremote(
        h,
        &[
            "submit",
            "local",
            "job",
            "run",
            r#"["sh","-c","printf '%s\\n' \"$0\"; echo err >&2","it's $(x)"]"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{id:?}"
    );
    let log = sremote(h, &["jobs", "log", &id, "-f"]);
    assert_eq!(
        text(&log.stdout),
        "it's $(x)\nerr\n",
        "{}",
        text(&log.stderr)
    );
    let res = sremote(h, &["jobs", "result", &id]);
    assert_eq!(text(&res.stdout).trim(), "0", "{}", text(&res.stderr));
    // The same call again: the same job.
    let again = sremote(
        h,
        &[
            "submit",
            "local",
            "job",
            "run",
            r#"["sh","-c","printf '%s\\n' \"$0\"; echo err >&2","it's $(x)"]"#,
        ],
    );
    assert_eq!(text(&again.stdout).trim(), id);
    assert!(
        text(&again.stderr).contains("submitted before"),
        "{}",
        text(&again.stderr)
    );
    let ls = sremote(h, &["--json", "jobs", "ls", "--status", "succeeded"]);
    let list: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(
        list[0]["processed"], true,
        "jobs result marks the job processed"
    );
    let show = sremote(h, &["jobs", "show", &id]);
    assert!(
        text(&show.stdout).contains("succeeded"),
        "{}",
        text(&show.stdout)
    );
    let rm = sremote(h, &["jobs", "rm", "--processed"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    assert!(!h.join(".sremote/jobs").join(&id).exists());
    let ls = sremote(h, &["jobs", "ls"]);
    assert!(!text(&ls.stdout).contains(&id));
}

#[test]
fn cancel_and_failures_have_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = sremote(h, &["submit", "local", "job", "run", r#"["sleep","30"]"#]);
    let id = text(&out.stdout).trim().to_string();
    let cancel = sremote(h, &["jobs", "cancel", &id, "--grace", "1"]);
    assert!(
        text(&cancel.stdout).contains("cancelled"),
        "{}{}",
        text(&cancel.stdout),
        text(&cancel.stderr)
    );
    let res = sremote(h, &["jobs", "result", &id]);
    assert_eq!(res.status.code(), Some(1));
    assert!(
        text(&res.stderr).contains("was cancelled"),
        "{}",
        text(&res.stderr)
    );
    let bad = sremote(h, &["submit", "local", "os", "nosuch", "--wait"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("FunctionNotFound"),
        "{}",
        text(&bad.stderr)
    );
    let missing = sremote(h, &["jobs", "show", "no-such-job"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("sremote jobs ls"),
        "{}",
        text(&missing.stderr)
    );
    let usage = sremote(h, &["submit", "local", "--time", "soon", "os", "getpid"]);
    assert_eq!(usage.status.code(), Some(2));
}

/// `sremote` with a hosts config `config` (written into `home`).
fn sremote_cfg(home: &std::path::Path, config: &str, args: &[&str]) -> Output {
    let path = home.join("config.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_sremote"))
        .args(args)
        .env("HOME", home)
        .env("SREMOTE_JOBS_DB", home.join("jobs.sqlite3"))
        .env("SREMOTE_CONFIG", &path)
        .env_remove("SREMOTE_ENDPOINT")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("run sremote")
}

/// Every line of stdout as a JSON object.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line: {l:?}: {e}"))
        })
        .collect()
}

#[test]
fn json_outputs_of_submit_cancel_rm_and_errors() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = sremote(
        h,
        &[
            "--json",
            "submit",
            "local",
            "job",
            "run",
            r#"["sleep","30"]"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{}", text(&out.stdout));
    let id = lines[0]["id"].as_str().expect("an id").to_string();
    assert_eq!(lines[0]["host"], "local");
    assert_eq!(lines[0]["reattached"], false);
    assert_eq!(lines[0]["ok"], true);

    let cancel = sremote(h, &["--json", "jobs", "cancel", &id, "--grace", "1"]);
    assert!(cancel.status.success(), "{}", text(&cancel.stderr));
    let lines = json_lines(&cancel);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], id.as_str());
    assert_eq!(lines[0]["state"], "cancelled");

    let rm = sremote(h, &["--json", "jobs", "rm", &id]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    assert_eq!(json_lines(&rm), [serde_json::json!({"removed": id})]);
    assert!(!h.join(".sremote/jobs").join(&id).exists());

    // A job error: a JSON error object on stdout instead of text, the same exit code as
    // without --json.
    let missing = sremote(h, &["--json", "jobs", "show", "no-such-job"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = &json_lines(&missing)[0];
    assert_eq!(err["id"], "no-such-job");
    assert_eq!(err["ok"], false);
    assert_eq!(err["error"]["kind"], "NotFound");
    assert_eq!(err["error"]["exit_code"], 1);
    assert!(
        err["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("sremote jobs ls"),
        "{err}"
    );
    assert_eq!(text(&missing.stderr), "");
    let missing = sremote(h, &["jobs", "show", "no-such-job"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = text(&missing.stderr);
    assert!(stderr.starts_with("error: no job no-such-job"), "{stderr}");
    assert!(
        stderr.contains("\n  hint: list the jobs with `sremote jobs ls`"),
        "{stderr}"
    );

    // rm of an unknown id: an error per id, exit 1; text without --json.
    let rm = sremote(h, &["jobs", "rm", "no-such-job"]);
    assert_eq!(rm.status.code(), Some(1));
    assert!(text(&rm.stderr).contains("hint:"), "{}", text(&rm.stderr));
    let rm = sremote(h, &["--json", "jobs", "rm"]);
    assert_eq!(rm.status.code(), Some(2));
    assert_eq!(json_lines(&rm)[0]["error"]["kind"], "Usage");

    // --wait under --json: one object with the value.
    let out = sremote(
        h,
        &[
            "--json", "submit", "local", "--wait", "os", "getenv", "HOME",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{}", text(&out.stdout));
    assert_eq!(lines[0]["value"], h.to_str().unwrap());
    // The log under --json: {"id", "next", "data"} objects whose data add up to the log.
    let out = sremote(
        h,
        &[
            "--json",
            "submit",
            "local",
            "--wait",
            "job",
            "run",
            r#"["printf","h\u00e9llo\n"]"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = json_lines(&out)[0]["id"].as_str().unwrap().to_string();
    let log = sremote(h, &["--json", "jobs", "log", &id]);
    let lines = json_lines(&log);
    let data: String = lines.iter().map(|v| v["data"].as_str().unwrap()).collect();
    assert_eq!(data, "h\u{e9}llo\n");
    assert_eq!(lines.last().unwrap()["next"], 7);
    // A failing call under --wait: its own kind and exit code.
    let bad = sremote(h, &["--json", "submit", "local", "--wait", "os", "nosuch"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = &json_lines(&bad)[0];
    assert_eq!(err["error"]["kind"], "FunctionNotFound", "{err}");
    assert!(err["id"].is_string(), "{err}");
}

#[test]
fn submit_fans_out_one_job_per_host() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Two local hosts with different env. Both are the connector host "local", which is
    // what a call's identity hashes, so --force keeps b from reattaching to a's job.
    let config = r#"
[hosts.a]
connector = "local"
env = { WHO = "a" }
[hosts.b]
connector = "local"
env = { WHO = "b" }
[groups]
both = ["a", "b"]
"#;
    // Both share this HOME: install the endpoint once first (two concurrent first installs
    // into one directory race: a job started by the replaced binary cannot re-exec it).
    let boot = sremote_cfg(h, config, &["bootstrap", "a"]);
    assert!(boot.status.success(), "{}", text(&boot.stderr));
    let out = sremote_cfg(
        h,
        config,
        &["submit", "a,b", "--force", "--wait", "os", "getenv", "WHO"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut ids = Vec::new();
    for host in ["a", "b"] {
        let mine: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{host} | ")))
            .collect();
        assert_eq!(mine.len(), 2, "{stdout}");
        assert_eq!(mine[1], host, "the job ran with the host's env: {stdout}");
        ids.push(mine[0].to_string());
    }
    assert_ne!(ids[0], ids[1]);

    let out = sremote_cfg(
        h,
        config,
        &["--json", "submit", "@both", "--force", "os", "getpid"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines = json_lines(&out);
    lines.sort_by_key(|v| v["host"].as_str().unwrap().to_string());
    assert_eq!(lines.len(), 2, "{}", text(&out.stdout));
    assert_eq!(lines[0]["host"], "a");
    assert_eq!(lines[1]["host"], "b");
    assert!(lines.iter().all(|v| v["id"].is_string() && v["ok"] == true));

    // `jobs ls --host` takes lists and groups too.
    let ls = sremote_cfg(h, config, &["--json", "jobs", "ls", "--host", "@both"]);
    let list: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");
    let ls = sremote_cfg(h, config, &["--json", "jobs", "ls", "--host", "b"]);
    let list: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // One host that cannot be used: the others still get their job; exit non-zero.
    let out = sremote_cfg(
        h,
        config,
        &["submit", "a,nosuch-host.invalid", "--force", "os", "getpid"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("a | "),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("nosuch-host.invalid |"),
        "{}",
        text(&out.stderr)
    );
}
