//! Golden tests of Slurm's accounting (`sacct -j ID -n -P -o JobIDRaw,State,ExitCode,
//! Elapsed,Timelimit`): what became of a job after the controller forgot it. Fixtures
//! under `tests/golden/sacct_*.txt` (most captured from Slurm 22.05 with slurmdbd; the
//! out-of-memory, node-failure and preemption ones written in the same format). Every
//! fixture's parse is in `sacct_parsed.txt`; `SREMOTE_UPDATE_GOLDEN=1` rewrites it.
use std::path::{Path, PathBuf};

use sremote_jobs::FailureClass;
use sremote_jobs::sacct::{FIELDS, Unavailable, argv, parse_sacct, unavailable};
use sremote_jobs::scheduler::SchedulerState;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The fixture's job id: the first field of its first line.
fn id_of(text: &str) -> &str {
    text.split('|').next().unwrap()
}

fn class(name: &str) -> Option<FailureClass> {
    let text = fixture(name);
    match parse_sacct(&text, id_of(&text)) {
        Some(SchedulerState::Finished(Some((class, _)))) => Some(class),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn every_fixture_parses_as_recorded() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sacct_") && n != "sacct_parsed.txt")
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    let mut out = String::new();
    for name in &names {
        let text = fixture(name);
        let parsed = parse_sacct(&text, id_of(&text));
        out.push_str(&format!("===== {name}\n{parsed:#?}\n"));
    }
    let path = dir().join("sacct_parsed.txt");
    if std::env::var_os("SREMOTE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &out).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (SREMOTE_UPDATE_GOLDEN=1 creates it)",
            path.display()
        )
    });
    assert_eq!(
        out, want,
        "sacct_parsed.txt differs (SREMOTE_UPDATE_GOLDEN=1 rewrites it)"
    );
}

#[test]
fn the_causes_a_client_resubmits_on() {
    assert_eq!(class("sacct_timeout.txt"), Some(FailureClass::Walltime));
    assert_eq!(class("sacct_oom.txt"), Some(FailureClass::Memory));
    // The allocation says FAILED; its batch step ran out of memory.
    assert_eq!(class("sacct_oom_step.txt"), Some(FailureClass::Memory));
    assert_eq!(
        class("sacct_node_fail.txt"),
        Some(FailureClass::NodeFailure)
    );
    assert_eq!(class("sacct_preempted.txt"), Some(FailureClass::Preempted));
    assert_eq!(class("sacct_cancelled.txt"), Some(FailureClass::Cancelled));
    assert_eq!(class("sacct_failed_signal.txt"), Some(FailureClass::Killed));
    assert_eq!(class("sacct_failed_exit.txt"), Some(FailureClass::Other));
}

#[test]
fn messages_carry_slurms_words() {
    let text = fixture("sacct_timeout.txt");
    let Some(SchedulerState::Finished(Some((_, why)))) = parse_sacct(&text, "8") else {
        panic!()
    };
    assert_eq!(
        why,
        "Slurm accounting (sacct): State=TIMEOUT ExitCode=0:0 Elapsed=00:00:05 \
         Timelimit=00:01:00 (time limit reached)"
    );
    let text = fixture("sacct_failed_exit.txt");
    let Some(SchedulerState::Finished(Some((_, why)))) = parse_sacct(&text, "5") else {
        panic!()
    };
    assert!(why.contains("exited with 3"), "{why}");
}

#[test]
fn live_states_and_no_record() {
    let text = fixture("sacct_completed.txt");
    assert_eq!(
        parse_sacct(&text, "4"),
        Some(SchedulerState::Finished(None))
    );
    let text = fixture("sacct_running.txt");
    assert_eq!(parse_sacct(&text, "8"), Some(SchedulerState::Running));
    let text = fixture("sacct_pending.txt");
    assert!(matches!(
        parse_sacct(&text, "9"),
        Some(SchedulerState::Pending(_))
    ));
    // No record (not written yet, or another job's lines only).
    assert_eq!(parse_sacct("", "8"), None);
    assert_eq!(parse_sacct(&fixture("sacct_timeout.txt"), "80"), None);
}

#[test]
fn the_command_and_when_to_stop_asking() {
    assert_eq!(
        argv("17"),
        ["sacct", "-j", "17", "-n", "-P", "-o", FIELDS].map(String::from)
    );
    // What sacct says on a cluster without slurmdbd (AccountingStorageType=none).
    assert_eq!(
        unavailable(Some(1), "Slurm accounting storage is disabled\n"),
        Unavailable::Never
    );
    assert_eq!(
        unavailable(
            Some(1),
            "sacct: error: Problem talking to the database: Connection refused\n"
        ),
        Unavailable::Now
    );
}
