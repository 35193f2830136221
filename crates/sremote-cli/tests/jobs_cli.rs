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
    let list = ls_records(&ls);
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
    assert_eq!(ls_records(&ls).len(), 4, "{}", text(&ls.stdout));
    let ls = sremote_cfg(h, config, &["--json", "jobs", "ls", "--host", "b"]);
    assert_eq!(ls_records(&ls).len(), 2, "{}", text(&ls.stdout));

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

/// The job records of `jobs ls --json` (a JSON array, or one object per line).
fn ls_records(out: &Output) -> Vec<serde_json::Value> {
    let s = text(&out.stdout);
    match serde_json::from_str::<serde_json::Value>(&s) {
        Ok(serde_json::Value::Array(a)) => a,
        _ => s
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    }
}

fn ids_with_state(h: &std::path::Path, state: &str) -> Vec<String> {
    let ls = sremote(h, &["--json", "jobs", "ls", "--status", state]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    ls_records(&ls)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn show(h: &std::path::Path, id: &str) -> serde_json::Value {
    let out = sremote(h, &["--json", "jobs", "show", id]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// Issue 16, 1: a detached program that exits non-zero is `failed` with its exit code and
/// the end of its stderr (it was `succeeded` with the value 1); one killed by a signal
/// `died` — `crashed` for SIGSEGV, `killed` for SIGKILL; `jobs result` exits 1 saying so.
#[test]
fn a_detached_program_that_fails_is_failed_or_died_not_succeeded() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let run = |argv: &[&str]| {
        let mut args = vec!["run", "local", "--detach", "--"];
        args.extend_from_slice(argv);
        let out = sremote(h, &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let crash = run(&["python3", "-c", "import nosuchthing"]);
    let res = sremote(h, &["jobs", "result", &crash]);
    assert_eq!(res.status.code(), Some(1), "{}", text(&res.stdout));
    assert_eq!(text(&res.stdout), "", "no value on stdout");
    let err = text(&res.stderr);
    for part in [
        "`python3 -c 'import nosuchthing'` exited with code 1",
        "ModuleNotFoundError: No module named 'nosuchthing'",
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    let rec = show(h, &crash);
    assert_eq!(rec["state"], "failed", "{rec}");
    assert_eq!(rec["failure_class"], "exited", "{rec}");
    let failure = rec["failure"].as_str().unwrap();
    assert!(failure.contains("exited with code 1"), "{failure}");
    assert!(
        failure.contains("No module named 'nosuchthing'"),
        "{failure}"
    );
    assert!(!ids_with_state(h, "succeeded").contains(&crash));
    assert!(ids_with_state(h, "failed").contains(&crash));
    let json = sremote(h, &["--json", "jobs", "result", &crash]);
    assert_eq!(json.status.code(), Some(1));
    let v = &json_lines(&json)[0];
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]["stderr"]
            .as_str()
            .unwrap()
            .contains("nosuchthing"),
        "{v}"
    );

    let segv = run(&["sh", "-c", "echo dying >&2; kill -SEGV $$"]);
    let res = sremote(h, &["jobs", "result", &segv]);
    assert_eq!(res.status.code(), Some(1));
    let err = text(&res.stderr);
    assert!(err.contains("died (crashed)"), "{err}");
    assert!(err.contains("was killed by SIGSEGV"), "{err}");
    assert!(err.contains("dying"), "the end of its stderr: {err}");
    let rec = show(h, &segv);
    assert_eq!(
        (rec["state"].as_str(), rec["failure_class"].as_str()),
        (Some("died"), Some("crashed")),
        "{rec}"
    );

    let killed = run(&["sh", "-c", "kill -KILL $$"]);
    let res = sremote(h, &["jobs", "result", &killed]);
    assert_eq!(res.status.code(), Some(1));
    assert!(
        text(&res.stderr).contains("died (killed)"),
        "{}",
        text(&res.stderr)
    );
    assert_eq!(show(h, &killed)["failure_class"], "killed");

    // A program that succeeds is still `succeeded` with the value 0 (and its output).
    let ok = run(&["sh", "-c", "echo fine; echo note >&2"]);
    let res = sremote(h, &["jobs", "result", &ok]);
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert_eq!(text(&res.stdout), "0\n");
    assert!(
        text(&res.stderr).contains("fine\nnote\n"),
        "{}",
        text(&res.stderr)
    );
}

/// Issue 16, 2: what a function job prints is in its log while it runs (`jobs log`,
/// `jobs log -f`), and `jobs result` gives it on stderr (`stdout`/`stderr` under --json)
/// with the value alone on stdout. Before, the log stayed empty and the output was only
/// in response.json on the host.
#[test]
fn a_function_jobs_output_is_live_in_its_log_and_comes_with_its_result() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let go = h.join("go");
    let file = h.join("printer.py");
    std::fs::write(
        &file,
        format!(
            "import os, sys, time\n\
             def work(n):\n    print('start', n)\n    print('warn', file=sys.stderr)\n    \
             t = time.time()\n    while not os.path.exists({go:?}) and time.time() - t < 60:\n        \
             time.sleep(0.05)\n    print('end')\n    return n * 2\n",
            go = go.display().to_string()
        ),
    )
    .unwrap();
    let target = format!("{}:work", file.display());
    let out = sremote(h, &["submit", "local", &target, "21"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    // Live: the first lines are in the log while the job still waits for `go`.
    let t0 = std::time::Instant::now();
    let mut log = String::new();
    while t0.elapsed() < std::time::Duration::from_secs(30) {
        log = text(&sremote(h, &["jobs", "log", &id]).stdout);
        if log.contains("warn") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(log, "start 21\nwarn\n", "the log while the job runs");
    assert_eq!(show(h, &id)["state"], "running");
    let follower = Command::new(env!("CARGO_BIN_EXE_sremote"))
        .args(["jobs", "log", "-f", &id])
        .env("HOME", h)
        .env("SREMOTE_JOBS_DB", h.join("jobs.sqlite3"))
        .env_remove("SREMOTE_ENDPOINT")
        .env_remove("SREMOTE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(&go, "").unwrap();
    let followed = follower.wait_with_output().unwrap();
    assert_eq!(text(&followed.stdout), "start 21\nwarn\nend\n");
    let res = sremote(h, &["jobs", "result", &id]);
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert_eq!(text(&res.stdout), "42\n", "the value alone on stdout");
    assert_eq!(text(&res.stderr), "start 21\nend\nwarn\n");
    let json = sremote(h, &["--json", "jobs", "result", &id]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], 42);
    assert_eq!(v["stdout"], "start 21\nend\n");
    assert_eq!(v["stderr"], "warn\n");

    // Issue 16, 5: the same shipped code and arguments reattach (and the CLI says so);
    // changed code is a new job.
    let again = sremote(h, &["submit", "local", &target, "21"]);
    assert_eq!(text(&again.stdout).trim(), id);
    assert!(
        text(&again.stderr).contains("submitted before as job"),
        "{}",
        text(&again.stderr)
    );
    let src = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, src.replace("n * 2", "n * 3")).unwrap();
    let changed = sremote(h, &["submit", "local", "--wait", &target, "21"]);
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    let lines: Vec<String> = text(&changed.stdout).lines().map(String::from).collect();
    assert_ne!(lines[0], id, "changed code is a new job");
    assert_eq!(lines[1], "63");
    assert!(!text(&changed.stderr).contains("submitted before"));
}

/// Issue 16, 4 (direct jobs): `jobs rm` of a running job refuses with the fix — not the
/// "endpoint may be older" hint it gave — and leaves the job running; `--cancel`
/// cancels it first, then removes it.
#[test]
fn rm_of_a_running_job_refuses_with_the_right_hint_and_cancel_removes_it() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = sremote(h, &["run", "local", "--detach", "--", "sleep", "60"]);
    let id = text(&out.stdout).trim().to_string();
    let t0 = std::time::Instant::now();
    while show(h, &id)["state"] != "running" && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let rm = sremote(h, &["jobs", "rm", &id]);
    assert_eq!(rm.status.code(), Some(1));
    let err = text(&rm.stderr);
    assert!(
        err.contains("is still running, so it was not removed"),
        "{err}"
    );
    assert!(
        err.contains(&format!("sremote jobs rm --cancel {id}")),
        "{err}"
    );
    assert!(!err.contains("older than this client"), "{err}");
    assert!(!text(&rm.stdout).contains("removed"));
    assert_eq!(show(h, &id)["state"], "running");
    assert!(h.join(".sremote/jobs").join(&id).exists());
    let rm = sremote(h, &["--json", "jobs", "rm", "--cancel", &id]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    assert_eq!(json_lines(&rm), [serde_json::json!({"removed": id})]);
    assert!(!h.join(".sremote/jobs").join(&id).exists());
}

/// `jobs cancel --all [--host] [--status]`, `jobs result --timeout` (exit 124, the job goes
/// on) and `submit --wait` marking the job processed.
#[test]
fn cancel_all_result_timeout_and_wait_marks_processed() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = sremote(h, &["run", "local", "--detach", "--", "sleep", "60"]);
        ids.push(text(&out.stdout).trim().to_string());
    }
    let res = sremote(h, &["jobs", "result", &ids[0], "--timeout", "1s"]);
    assert_eq!(res.status.code(), Some(124), "{}", text(&res.stderr));
    assert!(
        text(&res.stderr).contains("still running after"),
        "{}",
        text(&res.stderr)
    );
    let json = sremote(h, &["--json", "jobs", "result", &ids[0], "--timeout", "1s"]);
    assert_eq!(json.status.code(), Some(124));
    assert_eq!(json_lines(&json)[0]["error"]["kind"], "NotFinished");
    // Only queued jobs: none of these.
    let none = sremote(h, &["jobs", "cancel", "--all", "--status", "queued"]);
    assert!(none.status.success(), "{}", text(&none.stderr));
    assert_eq!(text(&none.stdout), "");
    let other_host = sremote(h, &["jobs", "cancel", "--all", "--host", "elsewhere"]);
    assert!(other_host.status.success());
    assert_eq!(text(&other_host.stdout), "");
    let all = sremote(
        h,
        &[
            "--json", "jobs", "cancel", "--all", "--host", "local", "--grace", "1",
        ],
    );
    assert!(all.status.success(), "{}", text(&all.stderr));
    let mut got: Vec<String> = json_lines(&all)
        .iter()
        .map(|v| {
            assert_eq!(v["state"], "cancelled", "{v}");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    let usage = sremote(h, &["jobs", "cancel"]);
    assert_eq!(usage.status.code(), Some(2));

    let out = sremote(h, &["submit", "local", "--wait", "os", "getenv", "HOME"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).lines().next().unwrap().to_string();
    assert_eq!(
        show(h, &id)["processed"],
        true,
        "submit --wait collected it"
    );
}

/// Issue 18: a job error is reported the same way, with the same exit code (1), by
/// `submit` and by `run --detach` (which used to turn it into a usage error: exit 2), its
/// hint on its own line.
#[test]
fn a_job_error_exits_1_from_submit_and_from_run_detach() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // The store's directory cannot be made: a file stands where it should be.
    std::fs::write(h.join("not-a-dir"), b"").unwrap();
    let db = h.join("not-a-dir/jobs.sqlite3");
    let with_store = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sremote"))
            .args(args)
            .env("HOME", h)
            .env("SREMOTE_JOBS_DB", &db)
            .env_remove("SREMOTE_ENDPOINT")
            .env_remove("SREMOTE_CONFIG")
            .output()
            .expect("run sremote")
    };
    for args in [
        &["submit", "local", "os", "getenv", "HOME"][..],
        &["run", "local", "--detach", "--", "true"][..],
    ] {
        let out = with_store(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("error: job store") && err.contains("\n  hint: "),
            "{args:?}: {err}"
        );
        let json = with_store(&[&["--json"][..], args].concat());
        assert_eq!(json.status.code(), Some(1), "{args:?} --json");
        let v: serde_json::Value = serde_json::from_str(text(&json.stdout).trim())
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&json.stdout)));
        assert_eq!(
            (
                v["ok"].as_bool(),
                v["error"]["kind"].as_str(),
                v["error"]["exit_code"].as_u64()
            ),
            (Some(false), Some("Store"), Some(1)),
            "{v}"
        );
        assert!(v["error"]["hint"].is_string(), "{v}");
    }
}
