//! The formats of a detached job (PROTOCOL.md, "Jobs"): the files of its directory
//! `<sremote>/jobs/<id>/` and what the endpoint's `job` commands print. The endpoint
//! (`sremote-endpoint job …`) writes them and `sremote-jobs` reads them, both through
//! these types, so the two sides cannot drift apart.
//!
//! Objects the endpoint prints are written through [`to_line`], so their keys come in
//! sorted order (what every endpoint has printed); `status.json` is written in field order.

use serde::{Deserialize, Serialize};

/// The directory under the sremote dir that holds the jobs (`<sremote>/jobs/<id>/`).
pub const JOBS_DIR: &str = "jobs";
/// The call request (`job create`).
pub const REQUEST_FILE: &str = "request.json";
/// The job's [`Status`], always replaced whole (temp file + rename).
pub const STATUS_FILE: &str = "status.json";
/// What the call writes on fds 1 and 2, appended as it arrives.
pub const LOG_FILE: &str = "log";
/// The call's response (the worker, temp file + rename).
pub const RESPONSE_FILE: &str = "response.json";
/// The batch system's answer to the job's one successful submission ([`SubmitAnswer`]).
pub const SUBMITTED_FILE: &str = "submitted.json";
/// Held (flock) while `job submit` runs.
pub const SUBMIT_LOCK_FILE: &str = "submit.lock";
/// Cancellation was asked for ([`CancelRequest`]).
pub const CANCEL_FILE: &str = "cancel";
/// The call's working directory (input files).
pub const WORK_DIR: &str = "work";
/// The detached runner's own diagnostics.
pub const RUNNER_LOG_FILE: &str = "runner.log";
/// The batch system's output file for the job.
pub const SCHEDULER_OUT_FILE: &str = "scheduler.out";

/// The state of a job as its directory records it (`status.json` `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Created, not started yet.
    Queued,
    /// Its runner started it.
    Running,
    /// The call returned a value.
    Succeeded,
    /// The call returned an error (or `job.run`'s program exited non-zero).
    Failed,
    /// Cancelled on request.
    Cancelled,
    /// It ended without a response ([`DiedReason`] says how).
    Died,
}

impl State {
    /// Every state, in the order a job goes through them.
    pub const ALL: [State; 6] = [
        State::Queued,
        State::Running,
        State::Succeeded,
        State::Failed,
        State::Cancelled,
        State::Died,
    ];

    /// Over: succeeded, failed, cancelled or died.
    pub fn is_terminal(self) -> bool {
        !matches!(self, State::Queued | State::Running)
    }

    /// The state's name as written (`queued`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Died => "died",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job `died` (`status.json` `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiedReason {
    /// The runner got SIGTERM without a cancel request (a batch limit, an administrator).
    Signal,
    /// The call (or `job.run`'s program) died of a signal sent to it (`signal` is its number).
    Killed,
    /// It exited without a response, or died of its own fault (SIGSEGV, SIGABRT, …).
    Crashed,
    /// The runner is gone (`job status` noticed on the runner's host).
    Vanished,
}

impl DiedReason {
    /// The reason as written.
    pub fn as_str(self) -> &'static str {
        match self {
            DiedReason::Signal => "signal",
            DiedReason::Killed => "killed",
            DiedReason::Crashed => "crashed",
            DiedReason::Vanished => "vanished",
        }
    }

    /// Read [`as_str`](Self::as_str)'s names.
    pub fn parse(s: &str) -> Option<DiedReason> {
        Some(match s {
            "signal" => DiedReason::Signal,
            "killed" => DiedReason::Killed,
            "crashed" => DiedReason::Crashed,
            "vanished" => DiedReason::Vanished,
            _ => return None,
        })
    }
}

/// `reason` of a `failed` job whose program (`job.run`) exited non-zero; any other failed
/// job's `reason` is the call's error kind.
pub const EXITED: &str = "exited";

/// `status.json`: where the job is, who runs it, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The state.
    pub state: State,
    /// The host name of the machine whose runner owns the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The runner's pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The runner's start time (clock ticks since boot, from /proc), so a reused pid is
    /// not taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// The worker's pid (= its session id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pid: Option<u32>,
    /// When the job was created (ms since the epoch).
    pub queued_unix_ms: u64,
    /// When its runner started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_ms: Option<u64>,
    /// When it was settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_unix_ms: Option<u64>,
    /// `job.run`'s program's exit code (a `failed` job, reason [`EXITED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed the call or its program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Failed: the error kind, or [`EXITED`]. Died: a [`DiedReason`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Status {
    /// A job just created at `queued_unix_ms`.
    pub fn queued(queued_unix_ms: u64) -> Status {
        Status {
            state: State::Queued,
            host: None,
            pid: None,
            pid_start: None,
            worker_pid: None,
            queued_unix_ms,
            started_unix_ms: None,
            finished_unix_ms: None,
            exit_code: None,
            signal: None,
            reason: None,
            message: None,
        }
    }

    /// Settle the job in `state` at `finished_unix_ms`, with its reason and message.
    pub fn finish(
        &mut self,
        state: State,
        reason: Option<&str>,
        message: Option<String>,
        finished_unix_ms: u64,
    ) {
        self.state = state;
        self.finished_unix_ms = Some(finished_unix_ms);
        self.reason = reason.map(str::to_owned);
        self.message = message;
    }

    /// Why a `died` job died, when its reason is one of [`DiedReason`].
    pub fn died_reason(&self) -> Option<DiedReason> {
        self.reason.as_deref().and_then(DiedReason::parse)
    }
}

/// What `job status DIR` prints: the [`Status`] plus what a client needs; `job poll`
/// adds `log_from` and `log_sent`, `job cancel` adds `signalled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// `status.json`.
    #[serde(flatten)]
    pub status: Status,
    /// The size of `log`.
    #[serde(default)]
    pub log_bytes: u64,
    /// Whether `response.json` exists.
    #[serde(default)]
    pub response: bool,
    /// Whether `cancel` exists.
    #[serde(default)]
    pub cancel_requested: bool,
    /// `job poll`: where the log bytes that follow the line start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_from: Option<u64>,
    /// `job poll`: how many log bytes follow the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_sent: Option<u64>,
    /// `job cancel`: whether it signalled the job's runner on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signalled: Option<bool>,
}

/// What `job submit` prints, and (without `again`) the record `submitted.json`: the batch
/// system's answer. Fields in sorted order: the bytes every endpoint has written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitAnswer {
    /// Printed only: whether this is the recorded earlier submission (nothing was
    /// submitted now). Not in the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub again: Option<bool>,
    /// The program's exit code: 0 submitted, 127 the program could not be started, 124
    /// it did not answer in time.
    pub code: i32,
    /// What it printed on stderr (or why it could not run).
    #[serde(default)]
    pub stderr: String,
    /// What it printed on stdout (the batch job's id).
    #[serde(default)]
    pub stdout: String,
}

impl SubmitAnswer {
    /// Whether this is a submission recorded earlier.
    pub fn is_again(&self) -> bool {
        self.again == Some(true)
    }
}

/// What `job create` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The job dir, absolute.
    #[serde(default)]
    pub dir: String,
    /// The endpoint that made it, absolute (batch scripts `exec` it).
    #[serde(default)]
    pub exe: String,
    /// The host name.
    #[serde(default)]
    pub host: String,
    /// `--start`: the runner's pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `--start` of a job started before (a retry after a lost answer): its state then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_before: Option<State>,
}

/// What `job start` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The job dir, absolute.
    pub dir: String,
    /// The runner's pid.
    pub pid: u32,
}

/// The `cancel` file: cancellation was asked for. A file that does not parse still asks
/// for it, with the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Milliseconds between SIGTERM and SIGKILL (absent: the endpoint's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
    /// Batch jobs: how long the runner waits for the batch system's own cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger_ms: Option<u64>,
    /// When it was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_unix_ms: Option<u64>,
}

/// `value` as one line of JSON with its keys sorted (how the endpoint prints its answers).
pub fn to_line<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `status.json` exactly as the endpoint writes it (a `failed` program job, written
    /// in field order), parsed and written again byte for byte.
    const STATUS_JSON: &str = r#"{"state":"failed","host":"node1","pid":4242,"pid_start":987654,"worker_pid":4243,"queued_unix_ms":1700000000000,"started_unix_ms":1700000000100,"finished_unix_ms":1700000001000,"exit_code":3,"reason":"exited","message":"`sh` exited with 3: boom"}"#;

    #[test]
    fn status_file_round_trips_byte_for_byte() {
        let s: Status = serde_json::from_str(STATUS_JSON).unwrap();
        assert_eq!(
            (s.state, s.exit_code, s.reason.as_deref()),
            (State::Failed, Some(3), Some(EXITED))
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), STATUS_JSON);
        let queued = Status::queued(5);
        assert_eq!(
            serde_json::to_string(&queued).unwrap(),
            r#"{"state":"queued","queued_unix_ms":5}"#
        );
    }

    /// `job status` / `job poll` as printed (sorted keys), read into the report, and the
    /// report printed again as the same line.
    #[test]
    fn status_report_lines() {
        let poll = r#"{"cancel_requested":false,"finished_unix_ms":9,"host":"h","log_bytes":12,"log_from":0,"log_sent":12,"message":"the job runner disappeared without a result (killed, or the host restarted)","queued_unix_ms":1,"reason":"vanished","response":false,"state":"died"}"#;
        let r: StatusReport = serde_json::from_str(poll).unwrap();
        assert_eq!(r.status.state, State::Died);
        assert_eq!(r.status.died_reason(), Some(DiedReason::Vanished));
        assert_eq!((r.log_bytes, r.log_sent), (12, Some(12)));
        assert_eq!(to_line(&r), poll);
        // An older endpoint's `job status` (no poll fields) still reads.
        let old = r#"{"state":"running","queued_unix_ms":1,"log_bytes":3,"response":false,"cancel_requested":true}"#;
        let r: StatusReport = serde_json::from_str(old).unwrap();
        assert!(r.cancel_requested && r.log_sent.is_none() && !r.status.state.is_terminal());
    }

    /// `submitted.json` and `job submit`'s answer: the record has no `again`, the printed
    /// answer has it; both with the keys in the order the endpoint has always written.
    #[test]
    fn submit_record_and_answer() {
        let record = r#"{"code":0,"stderr":"","stdout":"4711\n"}"#;
        let mut a: SubmitAnswer = serde_json::from_str(record).unwrap();
        assert_eq!(
            (a.code, a.stdout.as_str(), a.is_again()),
            (0, "4711\n", false)
        );
        assert_eq!(serde_json::to_string(&a).unwrap(), record);
        a.again = Some(true);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"again":true,"code":0,"stderr":"","stdout":"4711\n"}"#
        );
        assert_eq!(to_line(&a), serde_json::to_string(&a).unwrap());
    }

    #[test]
    fn created_cancel_and_names() {
        let c = r#"{"dir":"/h/.sremote/jobs/x","exe":"/h/.sremote/bin/e","host":"n","pid":7}"#;
        let created: Created = serde_json::from_str(c).unwrap();
        assert_eq!(to_line(&created), c);
        let cancel = r#"{"grace_ms":10000,"linger_ms":0,"requested_unix_ms":3}"#;
        let req: CancelRequest = serde_json::from_str(cancel).unwrap();
        assert_eq!(req.grace_ms, Some(10000));
        assert_eq!(serde_json::to_string(&req).unwrap(), cancel);
        for s in State::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        for r in [
            DiedReason::Signal,
            DiedReason::Killed,
            DiedReason::Crashed,
            DiedReason::Vanished,
        ] {
            assert_eq!(DiedReason::parse(r.as_str()), Some(r));
        }
    }
}
