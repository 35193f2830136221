//! `sremote submit` and `sremote jobs …`: detached jobs and batch systems.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sremote_core::{Connector, Error};
use sremote_jobs::units::{parse_duration, parse_size};
use sremote_jobs::{
    Job, JobError, JobFilter, JobRecord, JobState, JobStore, JobsExt, Resources, Scheduler,
};

use crate::hosts::{self, HostOptions};

/// `println!` that ignores a closed stdout (`sremote jobs ls | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `sremote submit HOST [scheduler] [resources] MODULE FUNCTION [ARG…]`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The host (`local`, user@host, an ssh alias).
    pub host: String,
    /// Submit through Slurm (`sbatch`).
    #[arg(long, group = "sched")]
    pub slurm: bool,
    /// Submit through Grid Engine (`qsub`).
    #[arg(long, group = "sched")]
    pub sge: bool,
    /// Submit through PBS (`qsub`).
    #[arg(long, group = "sched")]
    pub pbs: bool,
    /// Wall-time limit: 90s, 30m, 1h30m, 2d, 1:30:00, 2-12:00:00.
    #[arg(long, value_parser = parse_duration)]
    pub time: Option<Duration>,
    /// Number of nodes.
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Cores per node.
    #[arg(long)]
    pub cores: Option<u32>,
    /// Memory per node: 512M, 4G, …
    #[arg(long, value_parser = parse_size)]
    pub mem: Option<u64>,
    /// GPUs per node.
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Partition / queue (default: the smallest that fits, from `sinfo` for Slurm).
    #[arg(long)]
    pub partition: Option<String>,
    /// Extra batch-script header line, verbatim (e.g. `#SBATCH --account=abc`); repeatable.
    #[arg(long = "header", value_name = "LINE")]
    pub header: Vec<String>,
    /// A name for the job.
    #[arg(long)]
    pub name: Option<String>,
    /// Submit even if the same call was submitted before (default: print that job's id).
    #[arg(long)]
    pub force: bool,
    /// Keyword argument KEY=VALUE (VALUE is JSON if it parses, else a string).
    #[arg(long = "kw", value_name = "KEY=VALUE")]
    pub kwargs: Vec<String>,
    /// Wait for the job and print its value (like `sremote call`).
    #[arg(long)]
    pub wait: bool,
    /// The module.
    pub module: String,
    /// The function.
    pub function: String,
    /// Positional arguments: JSON if they parse, else strings.
    pub args: Vec<String>,
}

/// `sremote jobs …` (`--json`: machine-readable `ls`, `show`, `result`).
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List the jobs in the local store.
    Ls {
        /// Only jobs on this host.
        #[arg(long)]
        host: Option<String>,
        /// Only jobs in this state (submitting, queued, running, succeeded, failed, cancelled, died).
        #[arg(long, value_parser = parse_state)]
        status: Option<JobState>,
    },
    /// Ask the host where a job is, and show it.
    Show {
        /// The job id.
        id: String,
    },
    /// Print a job's log (`-f`: follow it until the job ends; resumes after a reconnect).
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
    Cancel {
        /// The job id.
        id: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10.0)]
        grace: f64,
    },
    /// Wait for a job and print its value.
    Result {
        /// The job id.
        id: String,
    },
    /// Remove jobs: their directories on the hosts and their records.
    Rm {
        /// Also remove every job marked processed (`sremote jobs result` marks what it printed).
        #[arg(long)]
        processed: bool,
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

fn json_or_string(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// A job error as the CLI reports it: the call's own errors go back to `main` (which
/// prints them and picks the exit code); the others are printed here.
fn report(e: JobError) -> Result<ExitCode, Error> {
    match e {
        JobError::Call(e) => Err(e),
        JobError::Usage(m) => Err(Error::Usage(m)),
        other => {
            eprintln!("error: {other}");
            Ok(ExitCode::from(1))
        }
    }
}

fn store() -> Result<JobStore, JobError> {
    JobStore::open_default()
}

/// `sremote submit`.
pub async fn submit(a: SubmitArgs, opts: &HostOptions) -> Result<ExitCode, Error> {
    let scheduler = match (a.slurm, a.sge, a.pbs) {
        (true, _, _) => Scheduler::Slurm,
        (_, true, _) => Scheduler::Sge,
        (_, _, true) => Scheduler::Pbs,
        _ => Scheduler::Direct,
    };
    let client = hosts::client(&a.host, opts).await?;
    let mut call = client.call::<Value>(&a.module, &a.function);
    for arg in &a.args {
        call = call.arg(json_or_string(arg));
    }
    for kw in &a.kwargs {
        let Some((k, v)) = kw.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::Usage(format!("--kw {kw:?} is not KEY=VALUE")));
        };
        call = call.kwarg(k, json_or_string(v));
    }
    let resources = Resources {
        nodes: a.nodes,
        cores_per_node: a.cores,
        time: a.time,
        memory: a.mem,
        partition: a.partition.clone(),
        gpus: a.gpus,
        extra_header: a.header.clone(),
    };
    let run = async {
        let mut submit = client
            .submit(call)
            .scheduler(scheduler)
            .resources(resources)
            .force(a.force)
            .store(store()?);
        submit = submit.destination(&a.host);
        if let Some(n) = &a.name {
            submit = submit.name(n);
        }
        if scheduler == Scheduler::Slurm && a.partition.is_none() {
            // The smallest partition that fits; Slurm's default if sinfo says nothing.
            if let Ok(config) = client.discover_host_config(scheduler).await {
                submit = submit.host_config(config);
            }
        }
        let job = submit.await?;
        if job.reattached() {
            eprintln!(
                "sremote: the same call was submitted before as job {} (use --force to run it again)",
                job.id()
            );
        }
        say!("{}", job.id());
        if a.wait {
            let out = job.result::<Value>().await?;
            print_value(&out.value);
        }
        Ok::<_, JobError>(ExitCode::SUCCESS)
    };
    run.await.or_else(report)
}

fn print_value(v: &Value) {
    match v {
        Value::String(s) => say!("{s}"),
        Value::Null => {}
        v => say!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

/// Reach the host of a recorded job.
async fn open(
    id: &str,
    opts: &HostOptions,
) -> Result<Result<Job<Arc<dyn Connector>>, JobError>, Error> {
    let store = match store() {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let rec = match store.get(id) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let target = rec.destination.clone().unwrap_or_else(|| rec.host.clone());
    let client = hosts::client(&target, opts).await?;
    Ok(client.job(id, Some(&store)))
}

fn ms_text(ms: Option<u64>) -> String {
    ms.map(|m| format!("{}.{:03}", m / 1000, m % 1000))
        .unwrap_or_else(|| "-".into())
}

fn record_json(r: &JobRecord) -> Value {
    json!({
        "id": r.id, "host": r.destination.as_deref().unwrap_or(&r.host), "state": r.state.as_str(),
        "module": r.request.module, "function": r.request.function, "name": r.name,
        "scheduler": r.scheduler.as_str(), "scheduler_id": r.scheduler_id, "remote_dir": r.remote_dir,
        "failure_class": r.failure_class.map(|c| c.as_str()), "failure": r.failure, "processed": r.processed,
        "batch": r.batch.as_ref().map(|b| json!({"id": b.0, "index": b.1})),
        "submitted_unix_ms": r.submitted_ms, "finished_unix_ms": r.finished_ms,
    })
}

/// `sremote jobs …`.
pub async fn run(cmd: JobsCommand, opts: &HostOptions) -> Result<ExitCode, Error> {
    match cmd {
        JobsCommand::Ls { host, status } => {
            let json = opts.json;
            let list = store().and_then(|s| {
                s.list(&JobFilter {
                    host,
                    state: status,
                    ..Default::default()
                })
            });
            let list = match list {
                Ok(l) => l,
                Err(e) => return report(e),
            };
            if json {
                let all: Vec<Value> = list.iter().map(record_json).collect();
                say!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
            say!(
                "{:<18} {:<10} {:<10} {:<20} {:<24} SUBMITTED",
                "ID",
                "STATE",
                "SCHEDULER",
                "HOST",
                "CALL"
            );
            for r in &list {
                let host = r.destination.as_deref().unwrap_or(&r.host);
                let sched = match &r.scheduler_id {
                    Some(sid) => format!("{}:{sid}", r.scheduler),
                    None => r.scheduler.to_string(),
                };
                let state = match r.failure_class {
                    Some(c) if r.state == JobState::Died => format!("died:{c}"),
                    _ => r.state.to_string(),
                };
                let call = format!("{}.{}", r.request.module, r.request.function);
                say!(
                    "{:<18} {:<10} {:<10} {:<20} {:<24} {}",
                    r.id,
                    state,
                    sched,
                    host,
                    call,
                    ms_text(Some(r.submitted_ms))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id } => {
            let json = opts.json;
            let job = match open(&id, opts).await? {
                Ok(j) => j,
                Err(e) => return report(e),
            };
            let st = match job.status().await {
                Ok(s) => s,
                Err(e) => return report(e),
            };
            let mut v = record_json(&job.record());
            v["log_bytes"] = json!(st.log_bytes);
            v["ran_on"] = json!(st.ran_on);
            v["scheduler_says"] = json!(st.scheduler);
            if json {
                say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for (k, val) in v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| !v.is_null())
                {
                    say!(
                        "{k:>18}: {}",
                        val.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| val.to_string())
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Log { id, follow, from } => {
            let job = match open(&id, opts).await? {
                Ok(j) => j,
                Err(e) => return report(e),
            };
            let mut out = std::io::stdout();
            if !follow {
                let mut next = from;
                loop {
                    match job.logs(next).await {
                        Ok(chunk) if chunk.data.is_empty() => return Ok(ExitCode::SUCCESS),
                        Ok(chunk) => {
                            let _ = out.write_all(&chunk.data);
                            next = chunk.next;
                        }
                        Err(e) => return report(e),
                    }
                }
            }
            let mut stream = Box::pin(job.logs_follow(from));
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        let _ = out.write_all(&c.data);
                        let _ = out.flush();
                    }
                    Err(e) => return report(e),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id, grace } => {
            let job = match open(&id, opts).await? {
                Ok(j) => j,
                Err(e) => return report(e),
            };
            let grace = Duration::try_from_secs_f64(grace)
                .map_err(|_| Error::Usage(format!("--grace {grace}: give seconds >= 0")))?;
            match job.cancel_with_grace(grace).await {
                Ok(st) => {
                    say!("{} {}", job.id(), st.state);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(e),
            }
        }
        JobsCommand::Result { id } => {
            let json = opts.json;
            let job = match open(&id, opts).await? {
                Ok(j) => j,
                Err(e) => return report(e),
            };
            match job.result::<Value>().await {
                Ok(out) if json => {
                    let m = &out.meta;
                    let whole = json!({"ok": out.value, "id": job.id(), "host": m.host, "pid": m.pid,
                        "timing": {"started_unix_ms": m.timing.started_unix_ms, "elapsed_us": m.timing.elapsed_us}});
                    say!(
                        "{}",
                        serde_json::to_string_pretty(&whole).unwrap_or_default()
                    );
                    let _ = job.mark_processed();
                    Ok(ExitCode::SUCCESS)
                }
                Ok(out) => {
                    print_value(&out.value);
                    let _ = job.mark_processed();
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(e),
            }
        }
        JobsCommand::Rm { processed, ids } => {
            if !processed && ids.is_empty() {
                return Err(Error::Usage(
                    "`sremote jobs rm` needs job ids or --processed".into(),
                ));
            }
            let mut ids = ids;
            if processed {
                match store().and_then(|s| {
                    s.list(&JobFilter {
                        processed: Some(true),
                        ..Default::default()
                    })
                }) {
                    Ok(list) => ids.extend(list.into_iter().map(|r| r.id)),
                    Err(e) => return report(e),
                }
            }
            let mut code = ExitCode::SUCCESS;
            for id in ids {
                let removed = match open(&id, opts).await {
                    Ok(Ok(job)) => job.clean().await,
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(JobError::Call(e)),
                };
                match removed {
                    Ok(()) => say!("removed {id}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = ExitCode::from(1);
                    }
                }
            }
            Ok(code)
        }
    }
}
