//! Slurm's accounting (`sacct`): what became of a job after the controller forgot it.
//!
//! `scontrol show job` answers only while slurmctld keeps the job, `MinJobAge` (300 s by
//! default) after its end; a client that comes back the next morning to a job killed for
//! memory or walltime then learns nothing from it. Clusters that run accounting (slurmdbd)
//! keep every job: `sacct` still says `TIMEOUT` or `OUT_OF_MEMORY`. sremote asks `sacct`
//! once `scontrol` no longer knows the job (the controller is the fresher source while it
//! does: accounting records arrive asynchronously), and remembers per host when `sacct`
//! cannot answer at all (accounting disabled, `sacct` not installed).

use crate::error::FailureClass;
use crate::scheduler::SchedulerState;

/// The fields asked for, in order (`-o`). All exist in every Slurm since 2.x; no `-X`, so
/// the job's steps come too: an out-of-memory step marks a job whose allocation says only
/// `FAILED` or `CANCELLED` on some versions.
pub const FIELDS: &str = "JobIDRaw,State,ExitCode,Elapsed,Timelimit";

/// `sacct -j ID -n -P -o FIELDS`: the job and its steps, no header, `|`-separated.
pub fn argv(id: &str) -> Vec<String> {
    ["sacct", "-j", id, "-n", "-P", "-o", FIELDS]
        .map(String::from)
        .to_vec()
}

/// What `sacct`'s failure (nonzero exit, its stderr) says about the host's accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The cluster keeps no accounting (`AccountingStorageType=accounting_storage/none`),
    /// or `sacct` is not installed: no use asking this host again.
    Never,
    /// The accounting daemon did not answer now (slurmdbd down, a time-out): ask later.
    Now,
}

/// Classify a failed `sacct` (exit code and stderr).
pub fn unavailable(exit_code: Option<i32>, stderr: &str) -> Unavailable {
    let err = stderr.to_ascii_lowercase();
    if exit_code == Some(127)
        || err.contains("accounting storage is disabled")
        || err.contains("command not found")
    {
        Unavailable::Never
    } else {
        Unavailable::Now
    }
}

/// One line of `sacct -P -o FIELDS`.
#[derive(Debug)]
struct Row<'a> {
    id: &'a str,
    state: &'a str,
    /// `CANCELLED by 1000`: who.
    by: Option<&'a str>,
    exit: &'a str,
    elapsed: &'a str,
    limit: &'a str,
}

fn row(line: &str) -> Option<Row<'_>> {
    let mut f = line.split('|');
    let id = f.next()?.trim();
    let state_word = f.next()?.trim();
    let (state, by) = match state_word.split_once(" by ") {
        Some((s, who)) => (s.trim(), Some(who.trim())),
        None => (state_word, None),
    };
    Some(Row {
        id,
        state,
        by,
        exit: f.next().unwrap_or("").trim(),
        elapsed: f.next().unwrap_or("").trim(),
        limit: f.next().unwrap_or("").trim(),
    })
}

/// Parse `sacct -j ID -n -P -o` [`FIELDS`] for job `id`: `None` when accounting has no
/// record of it (not yet written, or never). The states map as `scontrol`'s do
/// ([`crate::scheduler::parse_scontrol`]); a `FAILED` job says its exit code or signal.
pub fn parse_sacct(text: &str, id: &str) -> Option<SchedulerState> {
    let rows: Vec<Row<'_>> = text.lines().filter_map(row).collect();
    // The allocation's own line; with several (`-D`, ids reused) the last is the newest.
    let job = rows.iter().rfind(|r| r.id == id)?;
    let steps = rows
        .iter()
        .filter(|r| r.id.strip_prefix(id).is_some_and(|s| s.starts_with('.')));
    let oom_step = steps.clone().any(|r| r.state == "OUT_OF_MEMORY");
    let why = |what: &str| {
        let mut s = format!("Slurm accounting (sacct): State={}", job.state);
        if let Some(who) = job.by {
            s.push_str(&format!(" by uid {who}"));
        }
        if !job.exit.is_empty() {
            s.push_str(&format!(" ExitCode={}", job.exit));
        }
        if !job.elapsed.is_empty() {
            s.push_str(&format!(" Elapsed={}", job.elapsed));
        }
        if !job.limit.is_empty() && job.limit != "Partition_Limit" {
            s.push_str(&format!(" Timelimit={}", job.limit));
        }
        if !what.is_empty() {
            s.push_str(&format!(" ({what})"));
        }
        s
    };
    let finished = |class, what: &str| SchedulerState::Finished(Some((class, why(what))));
    Some(match job.state {
        "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD"
        | "CONFIGURING" => SchedulerState::Pending(job.state.to_string()),
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "RESIZING" | "STAGE_OUT" | "SIGNALING"
        | "STOPPED" => SchedulerState::Running,
        "COMPLETED" => SchedulerState::Finished(None),
        "OUT_OF_MEMORY" => finished(FailureClass::Memory, "out of memory"),
        "FAILED" | "CANCELLED" if oom_step => {
            finished(FailureClass::Memory, "a step ran out of memory")
        }
        "TIMEOUT" | "DEADLINE" => finished(FailureClass::Walltime, "time limit reached"),
        "NODE_FAIL" | "BOOT_FAIL" => finished(FailureClass::NodeFailure, "node failure"),
        "PREEMPTED" => finished(FailureClass::Preempted, "preempted"),
        "CANCELLED" => finished(FailureClass::Cancelled, "cancelled"),
        "FAILED" => {
            let (code, signal) = exit_code(job.exit);
            match signal {
                Some(sig) if sig != 0 => {
                    finished(FailureClass::Killed, &format!("killed by signal {sig}"))
                }
                _ => finished(
                    FailureClass::Other,
                    &format!("the batch script exited with {}", code.unwrap_or(-1)),
                ),
            }
        }
        _ => finished(FailureClass::Other, ""),
    })
}

/// `ExitCode=CODE:SIGNAL`.
fn exit_code(text: &str) -> (Option<i64>, Option<i64>) {
    let (code, signal) = text.split_once(':').unwrap_or((text, ""));
    (code.parse().ok(), signal.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_by_and_missing_fields() {
        let st = parse_sacct("12|CANCELLED by 1000|0:0\n", "12").unwrap();
        let SchedulerState::Finished(Some((FailureClass::Cancelled, why))) = st else {
            panic!("{st:?}")
        };
        assert_eq!(
            why,
            "Slurm accounting (sacct): State=CANCELLED by uid 1000 ExitCode=0:0 (cancelled)"
        );
        assert_eq!(parse_sacct("", "12"), None);
        // Another job's steps are not this job's.
        assert_eq!(parse_sacct("123|COMPLETED|0:0||\n", "12"), None);
        assert_eq!(
            parse_sacct("12|FAILED|1:0||\n123.batch|OUT_OF_MEMORY|0:125||\n", "12")
                .map(|s| matches!(s, SchedulerState::Finished(Some((FailureClass::Other, _))))),
            Some(true)
        );
    }

    #[test]
    fn unavailable_kinds() {
        assert_eq!(
            unavailable(Some(1), "Slurm accounting storage is disabled\n"),
            Unavailable::Never
        );
        assert_eq!(unavailable(Some(127), ""), Unavailable::Never);
        assert_eq!(
            unavailable(
                Some(1),
                "sacct: error: Problem talking to the database: Connection refused"
            ),
            Unavailable::Now
        );
    }
}
