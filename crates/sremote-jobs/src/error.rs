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
///
/// Its text is [`message`](JobError::message), then ` — ` and the
/// [`hint`](JobError::hint); [`kind`](JobError::kind) names its class.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Reaching the host failed, or the call ran and failed (its typed error: the remote
    /// error kind, traceback, …), or its value did not fit the requested type.
    #[error(transparent)]
    Call(#[from] sremote_core::Error),

    /// The job ended without a result.
    #[error("{}", Hinted(self))]
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
    #[error("{}", Hinted(self))]
    Cancelled {
        /// The job id.
        id: String,
        /// The host.
        host: String,
    },

    /// [`Job::wait`](crate::Job::wait) ran out of time; the job goes on.
    #[error("{}", Hinted(self))]
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
    #[error("{}", Hinted(self))]
    Unfinished {
        /// The job id.
        id: String,
        /// The host.
        host: String,
        /// Its state.
        state: JobState,
    },

    /// The local job store could not be used.
    #[error("{}", Hinted(self))]
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
    #[error("{}", Hinted(self))]
    NotFound {
        /// The id asked for.
        id: String,
        /// The SQLite file.
        path: String,
    },

    /// The batch system or the endpoint's job command refused or failed.
    #[error("{}", Hinted(self))]
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

    /// What the caller asked for cannot be done (bad resources, no fitting partition, …);
    /// no hint ([`JobError::usage`] gives one).
    #[error("{0}")]
    Usage(String),
}

/// Displays a [`JobError`] as `message — hint`.
struct Hinted<'a>(&'a JobError);

impl fmt::Display for Hinted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message())?;
        match self.0.hint() {
            Some(h) => write!(f, " — {h}"),
            None => Ok(()),
        }
    }
}

impl JobError {
    /// The failure class, when the job died.
    pub fn failure_class(&self) -> Option<FailureClass> {
        match self {
            JobError::Died { class, .. } => Some(*class),
            _ => None,
        }
    }

    /// A usage error with what to do instead (the core's [`Error::usage`](sremote_core::Error::usage),
    /// so it is reported like every other usage error).
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        JobError::Call(sremote_core::Error::usage(message, hint))
    }

    /// What was tried, on which host, and what went wrong: the text without the hint.
    pub fn message(&self) -> String {
        match self {
            JobError::Call(e) => e.message(),
            JobError::Died {
                id,
                host,
                class,
                reason,
            } => format!("job {id} on {host} died ({class}): {reason}"),
            JobError::Cancelled { id, host } => format!("job {id} on {host} was cancelled"),
            JobError::NotFinished {
                id,
                host,
                state,
                waited,
            } => format!("job {id} on {host} is still {state} after {waited}: it goes on"),
            JobError::Unfinished { id, host, state } => {
                format!("job {id} on {host} is still {state}, so it was not removed")
            }
            JobError::Store {
                path,
                action,
                detail,
                ..
            } => format!("job store {path}: {action} failed: {detail}"),
            JobError::NotFound { id, path } => format!("no job {id} in the job store {path}"),
            JobError::Remote {
                host,
                action,
                detail,
                ..
            } => format!("{action} on {host} failed: {detail}"),
            JobError::Usage(m) => m.clone(),
        }
    }

    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            JobError::Call(e) => return e.hint(),
            JobError::Died { class, .. } => class.hint().into(),
            JobError::Cancelled { .. } => "submit it again with force to rerun it".into(),
            JobError::NotFinished { .. } => "wait again, or cancel it".into(),
            JobError::Unfinished { id, .. } => format!(
                "cancel it first: `sremote jobs cancel {id}` (or `sremote jobs rm --cancel {id}`)"
            ),
            JobError::Store { hint, .. } | JobError::Remote { hint, .. } => hint.clone(),
            JobError::NotFound { .. } => "list the jobs with `sremote jobs ls`".into(),
            JobError::Usage(_) => return None,
        })
    }

    /// The error's class: the call's own [`kind`](sremote_core::Error::kind), or `Died`,
    /// `Cancelled`, `NotFinished`, `Unfinished`, `Store`, `NotFound`, `Remote`, `Usage`.
    pub fn kind(&self) -> &'static str {
        match self {
            JobError::Call(e) => e.kind(),
            JobError::Died { .. } => "Died",
            JobError::Cancelled { .. } => "Cancelled",
            JobError::NotFinished { .. } => "NotFinished",
            JobError::Unfinished { .. } => "Unfinished",
            JobError::Store { .. } => "Store",
            JobError::NotFound { .. } => "NotFound",
            JobError::Remote { .. } => "Remote",
            JobError::Usage(_) => "Usage",
        }
    }

    /// Whether this is a problem with what was asked (a usage error, here or in the call).
    pub fn is_usage(&self) -> bool {
        match self {
            JobError::Call(e) => e.is_usage(),
            JobError::Usage(_) => true,
            _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The text is the message and the hint, exactly as it was when the hint was part of
    /// the format string.
    #[test]
    fn text_is_message_then_hint() {
        let e = JobError::Unfinished {
            id: "j1".into(),
            host: "h".into(),
            state: JobState::Running,
        };
        assert_eq!(
            e.to_string(),
            "job j1 on h is still running, so it was not removed — cancel it first: \
             `sremote jobs cancel j1` (or `sremote jobs rm --cancel j1`)"
        );
        assert_eq!(e.kind(), "Unfinished");
        let e = JobError::NotFound {
            id: "j1".into(),
            path: "/s".into(),
        };
        assert_eq!(
            e.to_string(),
            "no job j1 in the job store /s — list the jobs with `sremote jobs ls`"
        );
        assert_eq!(
            e.hint().as_deref(),
            Some("list the jobs with `sremote jobs ls`")
        );
        let e = JobError::usage("bad", "do better");
        assert_eq!(
            (e.message(), e.hint(), e.kind()),
            ("bad".into(), Some("do better".into()), "Usage")
        );
        assert!(e.is_usage() && JobError::Usage("x".into()).hint().is_none());
    }
}
