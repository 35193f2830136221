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
