//! `sremote jobs ls` and `jobs watch` on the local host: a table with the program's argv
//! and relative times, JSON Lines, the newest N, `--refresh` (with a host that cannot be
//! reached: reported, the rest listed) and `watch` without a terminal (changes only, ends
//! when every job is over).
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sremote_jobs::{JobRecord, JobState, JobStore, Resources, Scheduler};

fn sremote(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sremote"))
        .args(args)
        .env("HOME", home)
        .env("SREMOTE_JOBS_DB", home.join("jobs.sqlite3"))
        .env_remove("SREMOTE_CONFIG")
        .env_remove("SREMOTE_ENDPOINT")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("run sremote")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn detach(home: &Path, script: &str) -> String {
    let out = sremote(
        home,
        &["run", "local", "--detach", "--", "sh", "-c", script],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
fn ls_shows_argv_relative_times_json_lines_and_the_newest_n() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let ids: Vec<String> = (0..3).map(|i| detach(h, &format!("echo {i}"))).collect();
    let call = sremote(h, &["submit", "local", "os", "getenv", "HOME"]);
    assert!(call.status.success(), "{}", text(&call.stderr));
    let call_id = text(&call.stdout).trim().to_string();

    let ls = sremote(h, &["jobs", "ls"]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let out = text(&ls.stdout);
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[0].starts_with("ID") && rows[0].contains("STATE") && rows[0].contains("WHAT"),
        "{out}"
    );
    assert_eq!(rows.len(), 5, "{out}");
    assert!(
        rows[1].contains(&ids[0]) && rows[1].contains("sh -c 'echo 0'"),
        "{out}"
    );
    assert!(!out.contains("job.run"), "the program, not job.run: {out}");
    assert!(
        rows[4].contains(&call_id) && rows[4].contains("os.getenv"),
        "{out}"
    );
    assert!(rows[1].contains(" s ago"), "relative time: {out}");
    assert!(
        !out.split(|c: char| !c.is_ascii_digit())
            .any(|w| w.len() >= 10),
        "no Unix timestamps: {out}"
    );

    let json = sremote(h, &["--json", "jobs", "ls"]);
    let records = lines(&json);
    assert_eq!(
        records.len(),
        4,
        "one object per line: {}",
        text(&json.stdout)
    );
    assert_eq!(
        records[0]["argv"],
        serde_json::json!(["sh", "-c", "echo 0"])
    );
    assert_eq!(records[3]["argv"], Value::Null);
    assert_eq!(records[3]["function"], "getenv");
    assert!(records[0]["submitted"].as_str().unwrap().contains('T'));

    let newest = lines(&sremote(h, &["--json", "jobs", "ls", "--limit", "2"]));
    let got: Vec<&str> = newest.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        got,
        [ids[2].as_str(), call_id.as_str()],
        "the newest 2, oldest first"
    );
    assert_eq!(
        lines(&sremote(h, &["--json", "jobs", "ls", "--all"])).len(),
        4
    );
    let two = sremote(h, &["jobs", "ls", "--limit", "2"]);
    assert_eq!(
        text(&two.stdout).lines().count(),
        3,
        "{}",
        text(&two.stdout)
    );
    assert!(
        text(&two.stderr).contains("the newest 2 shown"),
        "{}",
        text(&two.stderr)
    );
    let four = sremote(h, &["jobs", "ls", "--limit", "4"]);
    assert!(four.stderr.is_empty(), "{}", text(&four.stderr));
}

fn unreachable_job(store: &JobStore) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let rec = JobRecord {
        id: sremote_jobs::new_job_id(),
        host: "nobody@nosuch-host.invalid:22".into(),
        destination: Some("nosuch-host.invalid".into()),
        call_hash: "x".into(),
        request: sremote_core::protocol::Request::new("r", "os", "getpid"),
        scheduler: Scheduler::Direct,
        resources: Resources::default(),
        name: "os.getpid".into(),
        remote_dir: Some("/nowhere".into()),
        scheduler_id: None,
        state: JobState::Running,
        failure_class: None,
        failure: None,
        processed: false,
        batch: None,
        submitted_ms: now,
        updated_ms: now,
        finished_ms: None,
        reach: Some(sremote_core::Reach::ssh("nosuch-host.invalid")),
    };
    store.insert(&rec).unwrap();
    rec.id
}

#[test]
fn refresh_updates_unfinished_jobs_and_reports_a_host_it_cannot_reach() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let id = detach(h, "sleep 0.3");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let state = |ls: &Output| -> String {
        lines(ls)
            .iter()
            .find(|r| r["id"] == id.as_str())
            .map(|r| r["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    let before = sremote(h, &["--json", "jobs", "ls"]);
    assert_eq!(state(&before), "running", "as last seen");
    let store = JobStore::open(h.join("jobs.sqlite3")).unwrap();
    let gone = unreachable_job(&store);
    let after = sremote(h, &["--json", "jobs", "ls", "--refresh"]);
    assert_eq!(after.status.code(), Some(3), "{}", text(&after.stderr));
    let records = lines(&after);
    let listed: Vec<&Value> = records.iter().filter(|r| r["id"].is_string()).collect();
    assert_eq!(listed.len(), 2, "{}", text(&after.stdout));
    assert_eq!(state(&after), "succeeded");
    let err = records
        .iter()
        .find(|r| r["refreshed"] == false)
        .expect("the host's error, as a JSON line");
    assert_eq!(err["host"], "nosuch-host.invalid");
    assert!(
        listed
            .iter()
            .any(|r| r["id"] == gone.as_str() && r["state"] == "running")
    );

    let text_out = sremote(h, &["jobs", "ls", "--refresh"]);
    assert!(
        text(&text_out.stderr).contains("nosuch-host.invalid"),
        "{}",
        text(&text_out.stderr)
    );
    assert!(text(&text_out.stdout).contains(&id), "the rest listed");
}

#[test]
fn watch_without_a_terminal_prints_changes_until_every_job_is_over() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let id = detach(h, "sleep 2");
    let out = sremote(h, &["--json", "jobs", "watch", "--interval", "0.3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seen: Vec<String> = lines(&out)
        .iter()
        .filter(|r| r["id"] == id.as_str())
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["running", "succeeded"], "each change once");
    let plain = sremote(h, &["jobs", "watch"]);
    assert!(plain.status.success());
    let t = text(&plain.stdout);
    assert!(t.starts_with("ID") && t.contains("succeeded"), "{t}");
}
