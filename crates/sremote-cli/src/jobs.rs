//! `sremote jobs …`: list, show, follow, cancel, collect and remove detached jobs (errors
//! reported by `output::report`, as every command does).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sremote_core::Error;
use sremote_jobs::{JobError, JobFilter, JobRecord, JobState, JobStore};

use crate::hosts::HostOptions;
use crate::output::{self, say};

mod finish;

const LS_EXAMPLES: &str = "Examples:
  sremote jobs ls
  sremote jobs ls --status running --host lab
  sremote jobs ls --host @cluster            # lists and groups too
  sremote jobs ls --refresh                  # ask the hosts of unfinished jobs first
  sremote jobs ls --all --json               # every job, one JSON object per line";

const WATCH_EXAMPLES: &str = "Examples:
  sremote jobs watch                          # the newest 50, until all are over
  sremote jobs watch --host lab --interval 10";

const SHOW_EXAMPLES: &str = "Examples:
  sremote jobs show mi8x3k2a-9f3c1b7e   # state, batch id, why it died
  sremote jobs show ID --json";

const LOG_EXAMPLES: &str = "Examples:
  sremote jobs log ID              # the log so far
  sremote jobs log ID -f           # follow until the job ends; resumes after a dropped connection
  sremote jobs log ID --from 4096  # from byte 4096 on
  sremote jobs log ID -f --json    # {\"id\":…,\"next\":BYTE,\"data\":TEXT} per chunk";

const CANCEL_EXAMPLES: &str = "Examples:
  sremote jobs cancel ID               # prints `ID cancelled`
  sremote jobs cancel ID --grace 60    # 60 s between SIGTERM and SIGKILL
  sremote jobs cancel ID --json        # {\"id\":…,\"host\":…,\"state\":\"cancelled\"}
  sremote jobs cancel --all            # every queued or running job, 8 at a time; a line each
  sremote jobs cancel --all --host lab --status queued   # exit 1 if any could not be cancelled";

const RESULT_EXAMPLES: &str = "Examples:
  sremote jobs result ID           # waits; the value on stdout, what the job printed on stderr
  sremote jobs result ID --timeout 5m   # gives up after 5 minutes: exit 124, the job goes on
  sremote jobs result ID --json    # {\"ok\": VALUE, \"stdout\", \"stderr\", \"id\":…, \"host\":…, \"timing\":…}

A job that failed exits 1 with its error: a program's exit code (or the signal that
killed it) and the end of its stderr; a function's exception and traceback.";

const RM_EXAMPLES: &str = "Examples:
  sremote jobs rm ID1 ID2          # prints `removed ID` for each; refuses a job not over yet
  sremote jobs rm --cancel ID      # cancels it first (SIGTERM, SIGKILL, scancel/qdel)
  sremote jobs rm --processed      # every job whose result was collected
  sremote jobs rm --processed --json   # {\"removed\": ID} per line";

/// `sremote jobs …` (`--json`: one JSON object per line, or per record).
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List the jobs in the local store (the newest 50; --all, --limit N).
    #[command(after_help = LS_EXAMPLES)]
    Ls(crate::jobs_ls::LsArgs),
    /// List jobs and follow them until they are all over (redrawn on a terminal, else the
    /// changes only).
    #[command(after_help = WATCH_EXAMPLES)]
    Watch(crate::jobs_ls::WatchArgs),
    /// Ask the host where a job is, and show it.
    #[command(after_help = SHOW_EXAMPLES)]
    Show {
        /// The job id.
        id: String,
    },
    /// Print a job's log (`-f`: follow it until the job ends; resumes after a reconnect).
    #[command(after_help = LOG_EXAMPLES)]
    Log {
        /// The job id.
        id: String,
        /// Follow until the job is over.
        #[arg(short, long)]
        follow: bool,
        /// Start at this byte of the log.
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
    /// Cancel a job (SIGTERM, SIGKILL after the grace period, and the batch system's cancel).
    #[command(after_help = CANCEL_EXAMPLES)]
    Cancel {
        /// The job id (or --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10.0)]
        grace: f64,
        /// Cancel every job not over yet (submitting, queued, running).
        #[arg(long)]
        all: bool,
        /// With --all: only jobs on this host (a config name or destination; a,b,c or @group).
        #[arg(long, requires = "all")]
        host: Option<String>,
        /// With --all: only jobs in this state (submitting, queued, running).
        #[arg(long, requires = "all", value_parser = parse_state)]
        status: Option<JobState>,
    },
    /// Wait for a job; print its value (stdout) and what it printed (stderr).
    #[command(after_help = RESULT_EXAMPLES)]
    Result {
        /// The job id.
        id: String,
        /// Wait at most this long (90s, 30m, 1h30m): then exit 124; the job goes on.
        #[arg(long, value_parser = sremote_jobs::units::parse_duration)]
        timeout: Option<Duration>,
    },
    /// Remove jobs: their directories on the hosts and their records.
    #[command(after_help = RM_EXAMPLES)]
    Rm {
        /// Also remove every job marked processed (`sremote jobs result` marks what it printed).
        #[arg(long)]
        processed: bool,
        /// Cancel a job not over yet first (else it is refused).
        #[arg(long)]
        cancel: bool,
        /// The job ids.
        ids: Vec<String>,
    },
}

fn parse_state(s: &str) -> Result<JobState, String> {
    JobState::parse(s).ok_or_else(|| {
        format!(
            "unknown state {s:?} (submitting, queued, running, succeeded, failed, cancelled, died)"
        )
    })
}

pub(crate) fn json_or_string(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

pub(crate) fn store() -> Result<JobStore, JobError> {
    JobStore::open_default()
}

pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s}\n"),
        Value::Null => String::new(),
        v => format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

pub(crate) fn print_value(v: &Value) {
    let _ = std::io::stdout().write_all(value_text(v).as_bytes());
}

// ---- jobs …  ------------------------------------------------------------------------

/// The exit code of `jobs result --timeout` when the job is not over in time.
pub(crate) const NOT_FINISHED_EXIT: u8 = 124;

use crate::jobs_reach::open;

fn record_json(r: &JobRecord) -> Value {
    json!({
        "id": r.id, "host": r.destination.as_deref().unwrap_or(&r.host), "state": r.state.as_str(),
        "module": r.request.module, "function": r.request.function, "name": r.name,
        "scheduler": r.scheduler.as_str(), "scheduler_id": r.scheduler_id, "remote_dir": r.remote_dir,
        "partition": r.resources.partition,
        "failure_class": r.failure_class.map(|c| c.as_str()), "failure": r.failure, "processed": r.processed,
        "batch": r.batch.as_ref().map(|b| json!({"id": b.0, "index": b.1})),
        "submitted_unix_ms": r.submitted_ms, "finished_unix_ms": r.finished_ms,
    })
}

/// How many bytes at the end of `b` start a UTF-8 character that is not complete yet.
fn incomplete_tail(b: &[u8]) -> usize {
    let n = b.len();
    for back in 1..=n.min(3) {
        let byte = b[n - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let need = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if need > back { back } else { 0 };
    }
    0
}

/// `--json` log output: one `{"id", "next", "data"}` per chunk, `data` as text (a
/// character split between chunks is kept for the next one; `next` is where to resume).
struct JsonLog {
    id: String,
    carry: Vec<u8>,
}

impl JsonLog {
    fn chunk(&mut self, data: &[u8], next: u64, last: bool) {
        self.carry.extend_from_slice(data);
        let keep = if last {
            0
        } else {
            incomplete_tail(&self.carry)
        };
        let rest = self.carry.split_off(self.carry.len() - keep);
        let bytes = std::mem::replace(&mut self.carry, rest);
        if bytes.is_empty() {
            return;
        }
        let v = json!({"id": self.id, "next": next - keep as u64, "data": String::from_utf8_lossy(&bytes)});
        say!("{v}");
    }
}

/// `sremote jobs …`.
pub async fn run(cmd: JobsCommand, opts: &HostOptions) -> Result<ExitCode, Error> {
    match cmd {
        JobsCommand::Ls(a) => crate::jobs_ls::ls(a, opts).await,
        JobsCommand::Watch(a) => crate::jobs_ls::watch(a, opts).await,
        JobsCommand::Show { id } => Ok(show(&id, opts).await),
        JobsCommand::Log { id, follow, from } => Ok(log(&id, follow, from, opts).await),
        JobsCommand::Cancel {
            id,
            grace,
            all,
            host,
            status,
        } => Ok(finish::cancel(id, grace, all.then_some((host, status)), opts).await),
        JobsCommand::Result { id, timeout } => Ok(finish::result(&id, timeout, opts).await),
        JobsCommand::Rm {
            processed,
            cancel,
            ids,
        } => Ok(rm(processed, cancel, ids, opts).await),
    }
}

/// `jobs show ID`: the record and what the host says, as `key: value` lines (keys
/// right-aligned) or one JSON object.
async fn show(id: &str, opts: &HostOptions) -> ExitCode {
    let shown = async {
        let job = open(id, opts).await?;
        let st = job.status().await?;
        Ok::<_, JobError>((job.record(), st))
    };
    let (rec, st) = match shown.await {
        Ok(x) => x,
        Err(e) => return output::report(&e, opts.json, json!({"id": id})),
    };
    let mut v = record_json(&rec);
    v["log_bytes"] = json!(st.log_bytes);
    v["ran_on"] = json!(st.ran_on);
    v["scheduler_says"] = json!(st.scheduler);
    if opts.json {
        say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    for (k, val) in v.as_object().into_iter().flatten() {
        match val {
            Value::Null => {}
            Value::String(s) => say!("{k:>18}: {s}"),
            other => say!("{k:>18}: {other}"),
        }
    }
    ExitCode::SUCCESS
}

/// `jobs log ID [-f] [--from N]`: the log's bytes (or `--json` chunks) from byte `from`;
/// `-f` follows until the job is over, resuming after a dropped connection.
async fn log(id: &str, follow: bool, from: u64, opts: &HostOptions) -> ExitCode {
    let json = opts.json;
    let job = match open(id, opts).await {
        Ok(j) => j,
        Err(e) => return output::report(&e, json, json!({"id": id})),
    };
    let mut out = std::io::stdout();
    let mut as_json = json.then(|| JsonLog {
        id: id.to_string(),
        carry: Vec::new(),
    });
    let mut emit = |data: &[u8], next: u64, last: bool| match as_json.as_mut() {
        Some(j) => j.chunk(data, next, last),
        None => {
            let _ = out.write_all(data);
            let _ = out.flush();
        }
    };
    let mut next = from;
    if !follow {
        loop {
            match job.logs(next).await {
                Ok(chunk) if chunk.data.is_empty() => break,
                Ok(chunk) => {
                    emit(&chunk.data, chunk.next, false);
                    next = chunk.next;
                }
                Err(e) => return output::report(&e, json, json!({"id": id, "next": next})),
            }
        }
    } else {
        let mut stream = Box::pin(job.logs_follow(from));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    emit(&c.data, c.next, false);
                    next = c.next;
                }
                Err(e) => return output::report(&e, json, json!({"id": id, "next": next})),
            }
        }
    }
    emit(&[], next, true);
    ExitCode::SUCCESS
}

/// `jobs rm [--cancel] IDS… [--processed]`: the ids given, and with `--processed` every
/// job whose result was collected.
async fn rm(processed: bool, cancel: bool, mut ids: Vec<String>, opts: &HostOptions) -> ExitCode {
    let json = opts.json;
    if !processed && ids.is_empty() {
        let e = JobError::usage(
            "`sremote jobs rm` needs job ids or --processed",
            "list them with `sremote jobs ls`",
        );
        return output::report(&e, json, json!({}));
    }
    if processed {
        let list = store().and_then(|s| {
            s.list(&JobFilter {
                processed: Some(true),
                ..Default::default()
            })
        });
        match list {
            Ok(list) => ids.extend(list.into_iter().map(|r| r.id)),
            Err(e) => return output::report(&e, json, json!({})),
        }
    }
    finish::rm(ids, cancel, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_between_chunks_is_kept() {
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail("é".as_bytes()), 0);
        assert_eq!(incomplete_tail(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_tail(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_tail(&"😀".as_bytes()[..3]), 3);
    }
}
