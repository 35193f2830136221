//! Job errors: every message says what was tried, on which host, and what to do next.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::JobState;

/// Why a job ended without a result (`died`), from the job's directory and the batch
/// system: match on it to decide whether to resubmit with more resources. A `failed` job
/// has a class too: [`Exited`](FailureClass::Exited) for a program, else
/// [`Raised`](FailureClass::Raised).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureClass {
    /// The batch system stopped the job at its time limit (`--time`, `h_rt`, `walltime`).
    Walltime,
    /// Out of memory (the batch system's limit or the kernel's OOM killer).
    Memory,
    /// The node running the job failed, or could not boot.
    NodeFailure,
    /// A higher-priority job took the resources.
    Preempted,
    /// The batch system or an administrator cancelled the job (not this client).
    Cancelled,
    /// The call was killed by a signal that no one here sent.
    Killed,
    /// The call's process ended without writing a result.
    Crashed,
    /// The job's runner disappeared (killed, or the host restarted).
    Vanished,
    /// The batch system no longer knows the job and it left nothing behind.
    Lost,
    /// The batch system said the job failed, for a reason not classified above.
    Other,
    /// A program job (`sremote run --detach`, `job.run`) exited with a non-zero code: the
    /// job `failed`; the code is in the failure text.
    Exited,
    /// The call returned its own error (an exception, a missing function, …): the job
    /// `failed`; `Job::result` gives the typed error.
    Raised,
}

impl FailureClass {
    /// The class's name as stored and printed (`walltime`, `memory`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Walltime => "walltime",
            FailureClass::Memory => "memory",
            FailureClass::NodeFailure => "node_failure",
            FailureClass::Preempted => "preempted",
            FailureClass::Cancelled => "cancelled",
            FailureClass::Killed => "killed",
            FailureClass::Crashed => "crashed",
            FailureClass::Vanished => "vanished",
            FailureClass::Lost => "lost",
            FailureClass::Other => "other",
            FailureClass::Exited => "exited",
            FailureClass::Raised => "raised",
        }
    }

    /// Parse [`as_str`](Self::as_str)'s names.
    pub fn parse(s: &str) -> Option<FailureClass> {
        Some(match s {
            "walltime" => FailureClass::Walltime,
            "memory" => FailureClass::Memory,
            "node_failure" => FailureClass::NodeFailure,
            "preempted" => FailureClass::Preempted,
            "cancelled" => FailureClass::Cancelled,
            "killed" => FailureClass::Killed,
            "crashed" => FailureClass::Crashed,
            "vanished" => FailureClass::Vanished,
            "lost" => FailureClass::Lost,
            "other" => FailureClass::Other,
            "exited" => FailureClass::Exited,
            "raised" => FailureClass::Raised,
            _ => return None,
        })
    }

    fn hint(self) -> &'static str {
        match self {
            FailureClass::Walltime => {
                "ask for more time (Resources::time, `--time`) or make the work smaller"
            }
            FailureClass::Memory => {
                "ask for more memory (Resources::memory, `--mem`) or make the work smaller"
            }
            FailureClass::NodeFailure | FailureClass::Preempted => "submit it again (force)",
            FailureClass::Cancelled => {
                "it was cancelled outside this client; submit it again (force) to rerun it"
            }
            FailureClass::Killed | FailureClass::Crashed => {
                "read its log (`sremote jobs log ID`), then submit it again (force)"
            }
            FailureClass::Vanished => "the host may have restarted; submit it again (force)",
            FailureClass::Lost => "submit it again (force)",
            FailureClass::Other => {
                "read its log and the batch system's output (scheduler.out in the job dir)"
            }
            FailureClass::Exited | FailureClass::Raised => {
                "read its output (`sremote jobs result ID`, `sremote jobs log ID`), fix it, then \
                 submit it again (force)"
            }
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every job operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Reaching the host failed, or the call ran and failed (its typed error: the remote
    /// error kind, traceback, …), or its value did not fit the requested type.
    #[error(transparent)]
    Call(#[from] sremote_core::Error),

    /// The job ended without a result.
    #[error("job {id} on {host} died ({class}): {reason} — {}", .class.hint())]
    Died {
        /// The job id.
        id: String,
        /// The host.
        host: String,
        /// Why, as a class to match on.
        class: FailureClass,
        /// The batch system's or the runner's own words.
        reason: String,
    },

    /// The job was cancelled by this client (or another one using the same store).
    #[error("job {id} on {host} was cancelled — submit it again with force to rerun it")]
    Cancelled {
        /// The job id.
        id: String,
        /// The host.
        host: String,
    },

    /// [`Job::wait`](crate::Job::wait) ran out of time; the job goes on.
    #[error(
        "job {id} on {host} is still {state} after {waited}: it goes on — wait again, or cancel it"
    )]
    NotFinished {
        /// The job id.
        id: String,
        /// The host.
        host: String,
        /// Its state when the wait ended.
        state: JobState,
        /// How long was waited.
        waited: String,
    },

    /// The job is not over (queued or running), so it cannot be removed: cancel it first.
    #[error(
        "job {id} on {host} is still {state}, so it was not removed — cancel it first: `sremote jobs cancel {id}` (or `sremote jobs rm --cancel {id}`)"
    )]
    Unfinished {
        /// The job id.
        id: String,
        /// The host.
        host: String,
        /// Its state.
        state: JobState,
    },

    /// The local job store could not be used.
    #[error("job store {path}: {action} failed: {detail} — {hint}")]
    Store {
        /// The SQLite file.
        path: String,
        /// What was tried.
        action: String,
        /// What went wrong.
        detail: String,
        /// What to do.
        hint: String,
    },

    /// No job of that id in the store.
    #[error("no job {id} in the job store {path} — list the jobs with `sremote jobs ls`")]
    NotFound {
        /// The id asked for.
        id: String,
        /// The SQLite file.
        path: String,
    },

    /// The batch system or the endpoint's job command refused or failed.
    #[error("{action} on {host} failed: {detail} — {hint}")]
    Remote {
        /// The host.
        host: String,
        /// What was tried (e.g. `sbatch` of job ID).
        action: String,
        /// What it said.
        detail: String,
        /// What to do.
        hint: String,
    },

    /// What the caller asked for cannot be done (bad resources, no fitting partition, …).
    #[error("{0}")]
    Usage(String),
}

impl JobError {
    /// The failure class, when the job died.
    pub fn failure_class(&self) -> Option<FailureClass> {
        match self {
            JobError::Died { class, .. } => Some(*class),
            _ => None,
        }
    }

    pub(crate) fn remote(
        host: &str,
        action: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        JobError::Remote {
            host: host.to_string(),
            action: action.into(),
            detail: detail.into(),
            hint: hint.into(),
        }
    }
}
