//! `sremote submit` and `sremote jobs …`: detached jobs and batch systems.
//!
//! `submit` takes HOST like every other command (a config name, a destination, `a,b,c` or
//! `@group`: one job per host). The scheduler is `--slurm/--sge/--pbs/--direct`, else the
//! host's `scheduler` in the hosts config; the partition is `--partition`, else the
//! smallest of the host's configured `partitions` that fits, else (Slurm) the smallest
//! from `sinfo`. Errors go out like every command's: one line plus a hint on stderr, and a
//! JSON error object on stdout under `--json`.

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
    HostConfig, Job, JobError, JobFilter, JobRecord, JobState, JobStore, JobsExt, Partition,
    Resources, Scheduler,
};

use crate::config::{HostSpec, PartitionSpec, SchedulerKind};
use crate::fanout::{self, Outcome};
use crate::hosts::{self, HostOptions};
use crate::output::{self, Style, paint};

/// `println!` that ignores a closed stdout (`sremote jobs ls | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

const SUBMIT_EXAMPLES: &str = r#"Examples:
  sremote submit local job run '["sh","-c","sleep 60; echo done"]'   # prints the job id
  sremote submit lab --time 2h --cores 8 mymod fit '{"alpha": 0.1}'  # scheduler, partitions from the config
  sremote submit login.hpc --slurm --partition debug --time 30m --mem 4G mymod fit 0.1
  sremote submit lab --direct os getpid              # detached on the host, whatever the config says
  sremote submit lab1,lab2 os getpid                 # one job per host: `lab1 | ID`, `lab2 | ID`
  sremote submit @cluster --json os getpid           # {"host":…,"id":…,…} per line
  sremote submit local --wait os getcwd              # the id, then the value

Scheduler: --slurm, --sge, --pbs or --direct; else the host's `scheduler` in the hosts
config; else direct (a detached process on the host).
Partition: --partition; else the smallest of the host's `partitions` in the hosts config
that fits --cores, --time, --mem and --gpus; else (Slurm) the smallest from `sinfo`; else
the batch system's default.
The same call submitted again prints the first job's id (--force runs it again)."#;

const LS_EXAMPLES: &str = "Examples:
  sremote jobs ls
  sremote jobs ls --status running --host lab
  sremote jobs ls --host @cluster            # lists and groups too
  sremote jobs ls --json                     # a JSON array of the records";

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
  sremote jobs cancel ID --json        # {\"id\":…,\"host\":…,\"state\":\"cancelled\"}";

const RESULT_EXAMPLES: &str = "Examples:
  sremote jobs result ID           # waits, prints the value; exit 1 with the typed error
  sremote jobs result ID --json    # {\"ok\": VALUE, \"id\":…, \"host\":…, \"timing\":…}";

const RM_EXAMPLES: &str = "Examples:
  sremote jobs rm ID1 ID2          # prints `removed ID` for each
  sremote jobs rm --processed      # every job whose result was collected
  sremote jobs rm --processed --json   # {\"removed\": ID} per line";

/// `sremote submit HOST [scheduler] [resources] MODULE FUNCTION [ARG…]`.
#[derive(Args, Debug)]
#[command(after_help = SUBMIT_EXAMPLES)]
pub struct SubmitArgs {
    /// Host, config name, a,b,c or @group (one job per host).
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
    /// Run detached on the host itself, even if the hosts config names a scheduler.
    #[arg(long, group = "sched")]
    pub direct: bool,
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
    /// Partition / queue (default: the smallest that fits, from the hosts config, else from `sinfo` for Slurm).
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

/// `sremote jobs …` (`--json`: one JSON object per line, or per record).
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List the jobs in the local store.
    #[command(after_help = LS_EXAMPLES)]
    Ls {
        /// Only jobs on this host (a config name or destination; a,b,c or @group for several).
        #[arg(long)]
        host: Option<String>,
        /// Only jobs in this state (submitting, queued, running, succeeded, failed, cancelled, died).
        #[arg(long, value_parser = parse_state)]
        status: Option<JobState>,
    },
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
        /// The job id.
        id: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10.0)]
        grace: f64,
    },
    /// Wait for a job and print its value.
    #[command(after_help = RESULT_EXAMPLES)]
    Result {
        /// The job id.
        id: String,
    },
    /// Remove jobs: their directories on the hosts and their records.
    #[command(after_help = RM_EXAMPLES)]
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

// ---- errors -------------------------------------------------------------------------

/// A job error as the CLI prints it: kind, message, hint, exit code.
struct Described {
    kind: String,
    message: String,
    hint: Option<String>,
    code: u8,
}

/// Describe `e` like `output` describes a call's errors: the call's own errors keep their
/// kind and exit code (3 transport, 2 usage, 1 remote); a bad request is 2; the rest 1.
fn describe(e: &JobError) -> Described {
    if let JobError::Call(c) = e {
        let (message, hint) = output::error_lines(c);
        return Described {
            kind: output::error_kind(c),
            message,
            hint,
            code: output::exit_code(c),
        };
    }
    let text = e.to_string().replace('\n', " ");
    let (message, hint) = output::split_hint(&text);
    let kind = match e {
        JobError::Died { .. } => "Died",
        JobError::Cancelled { .. } => "Cancelled",
        JobError::NotFinished { .. } => "NotFinished",
        JobError::Store { .. } => "Store",
        JobError::NotFound { .. } => "NotFound",
        JobError::Remote { .. } => "Remote",
        JobError::Usage(_) => "Usage",
        _ => "Job",
    };
    Described {
        kind: kind.into(),
        message: message.to_string(),
        hint: hint.map(str::to_string),
        code: if matches!(e, JobError::Usage(_)) {
            2
        } else {
            1
        },
    }
}

/// `{kind, message, hint, exit_code}` (and `failure_class` for a job that died).
fn error_json(e: &JobError) -> Value {
    if let JobError::Call(c) = e {
        return output::error_json(c);
    }
    let d = describe(e);
    let mut v = json!({"kind": d.kind, "message": d.message, "hint": d.hint, "exit_code": d.code});
    if let Some(class) = e.failure_class() {
        v["failure_class"] = json!(class.as_str());
    }
    v
}

/// Report `e` the way every command reports failures (`output::report`): with `--json`
/// `context` plus `"ok": false` and the `error` object, one line on stdout; else
/// `error: …` and `  hint: …` on stderr (a call's traceback and output too). Returns the
/// exit code, the same either way.
fn fail(e: &JobError, json: bool, context: Value) -> ExitCode {
    if json {
        let mut v = match context {
            Value::Object(m) => Value::Object(m),
            _ => json!({}),
        };
        v["ok"] = json!(false);
        v["error"] = error_json(e);
        say!("{v}");
        let _ = std::io::stdout().flush();
    } else if let JobError::Call(c) = e {
        output::print_error(c);
    } else {
        let d = describe(e);
        let c = output::colour_stderr();
        eprintln!("{} {}", paint("error:", Style::Error, c), d.message);
        if let Some(h) = d.hint {
            eprintln!("  {} {h}", paint("hint:", Style::Hint, c));
        }
    }
    ExitCode::from(describe(e).code)
}

fn store() -> Result<JobStore, JobError> {
    JobStore::open_default()
}

// ---- submit -------------------------------------------------------------------------

/// The scheduler for `spec`: a flag wins, else the host's configured one, else direct.
fn scheduler_for(a: &SubmitArgs, spec: &HostSpec) -> Scheduler {
    if a.slurm {
        return Scheduler::Slurm;
    }
    if a.sge {
        return Scheduler::Sge;
    }
    if a.pbs {
        return Scheduler::Pbs;
    }
    if a.direct {
        return Scheduler::Direct;
    }
    match spec.scheduler {
        Some(SchedulerKind::Slurm) => Scheduler::Slurm,
        Some(SchedulerKind::Sge) => Scheduler::Sge,
        Some(SchedulerKind::Pbs) => Scheduler::Pbs,
        Some(SchedulerKind::Direct) | None => Scheduler::Direct,
    }
}

fn unlimited(s: &str) -> bool {
    ["unlimited", "infinite", "none"]
        .iter()
        .any(|u| s.trim().eq_ignore_ascii_case(u))
}

/// The host's `partitions` and `sge_pe` from the hosts config (`config_file` names the file
/// in messages) as the jobs crate wants them. A partition without `cores` fits any core
/// count (and is the last choice); without `max_time`/`max_memory` it has no such limit;
/// without `gpus` it has none.
pub(crate) fn host_config(spec: &HostSpec, config_file: &str) -> Result<HostConfig, Error> {
    let bad = |p: &PartitionSpec, key: &str, value: &str, expected: &str| {
        Error::Usage(format!(
            "{config_file}: host {}: partition {:?}: {key} = {value:?} is not {expected} — fix [hosts.{}] in the config file",
            spec.name, p.name, spec.name
        ))
    };
    let mut partitions = Vec::new();
    for p in &spec.partitions {
        if p.name.trim().is_empty() {
            return Err(Error::Usage(format!(
                "{config_file}: host {}: a partition has an empty name — give each partition its name (`name = \"debug\"`)",
                spec.name
            )));
        }
        if p.cores == Some(0) {
            return Err(bad(
                p,
                "cores",
                "0",
                "a number of cores (give the cores per node, at least 1)",
            ));
        }
        let max_time = match p.max_time.as_deref() {
            None => None,
            Some(t) if unlimited(t) => None,
            Some(t) => Some(parse_duration(t).map_err(|_| {
                bad(
                    p,
                    "max_time",
                    t,
                    "a duration (write e.g. 30m, 12h, 1h30m, 2d, 1:30:00, 2-12:00:00 or \"unlimited\")",
                )
            })?),
        };
        let max_memory = match p.max_memory.as_deref() {
            None => None,
            Some(m) if unlimited(m) => None,
            Some(m) => Some(parse_size(m).map_err(|_| {
                bad(
                    p,
                    "max_memory",
                    m,
                    "a size (write e.g. 512M, 64G, 1.5T or \"unlimited\")",
                )
            })?),
        };
        partitions.push(Partition {
            name: p.name.clone(),
            cores: p.cores.unwrap_or(u32::MAX),
            max_time,
            max_memory,
            gpus: p.gpus.unwrap_or(0),
        });
    }
    Ok(HostConfig {
        partitions,
        sge_pe: spec.sge_pe.clone(),
    })
}

/// What `submit` sends, prepared once for every host.
struct SubmitPlan {
    a: SubmitArgs,
    args: Vec<Value>,
    kwargs: Vec<(String, Value)>,
    opts: HostOptions,
    config_file: String,
}

/// Submit on one host; the job handle.
async fn submit_on(
    spec: &HostSpec,
    plan: &SubmitPlan,
) -> Result<Job<Arc<dyn Connector>>, JobError> {
    let a = &plan.a;
    let scheduler = scheduler_for(a, spec);
    let mut config = match scheduler {
        Scheduler::Direct => HostConfig::default(),
        _ => host_config(spec, &plan.config_file)?,
    };
    // By name: the same host again (config entry, group member or destination).
    let client = hosts::client(&spec.name, &plan.opts).await?;
    if scheduler == Scheduler::Slurm && a.partition.is_none() && config.partitions.is_empty() {
        // No partitions configured: the smallest that fits from sinfo; Slurm's default if
        // sinfo says nothing.
        if let Ok(found) = client.discover_host_config(scheduler).await {
            config.partitions = found.partitions;
        }
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
    let mut call = client.call::<Value>(&a.module, &a.function);
    for arg in &plan.args {
        call = call.arg(arg.clone());
    }
    for (k, v) in &plan.kwargs {
        call = call.kwarg(k, v.clone());
    }
    let mut submit = client
        .submit(call)
        .scheduler(scheduler)
        .resources(resources)
        .host_config(config)
        .force(a.force)
        .store(store()?)
        .destination(&spec.name);
    if let Some(n) = &a.name {
        submit = submit.name(n);
    }
    submit.await.map_err(|e| match e {
        // "no partition fits …": say which configured host's partitions were meant.
        JobError::Usage(m) if !m.contains(spec.name.as_str()) => {
            JobError::Usage(format!("host {}: {m}", spec.name))
        }
        e => e,
    })
}

fn reattached_note(id: &str) -> String {
    format!("sremote: the same call was submitted before as job {id} (use --force to run it again)")
}

/// `sremote submit`: one job per host; prints its id (`host | id` for several hosts, one
/// JSON object per line under `--json`).
pub async fn submit(a: SubmitArgs, opts: &HostOptions) -> Result<ExitCode, Error> {
    let json = opts.json;
    let mut kwargs = Vec::new();
    for kw in &a.kwargs {
        let Some((k, v)) = kw.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            let e = JobError::Usage(format!(
                "--kw {kw:?} is not KEY=VALUE — write e.g. --kw retries=3"
            ));
            return Ok(fail(&e, json, json!({})));
        };
        kwargs.push((k.to_string(), json_or_string(v)));
    }
    let prepared = opts
        .resolve(&[a.host.as_str()])
        .and_then(|t| Ok((t, opts.config()?.path_text())));
    let (targets, config_file) = match prepared {
        Ok(p) => p,
        Err(e) => return Ok(fail(&JobError::Call(e), json, json!({"host": a.host}))),
    };
    let plan = Arc::new(SubmitPlan {
        args: a.args.iter().map(|s| json_or_string(s)).collect(),
        kwargs,
        opts: opts.clone(),
        config_file,
        a,
    });
    if !targets.fanout {
        let spec = &targets.hosts[0];
        return Ok(submit_single(spec, &plan).await);
    }
    Ok(fanout::each(targets, opts, move |spec| {
        let plan = plan.clone();
        async move { submit_outcome(&spec, &plan).await }
    })
    .await)
}

/// One host: the id as soon as it is known, then (`--wait`) the value.
async fn submit_single(spec: &HostSpec, plan: &SubmitPlan) -> ExitCode {
    let json = plan.opts.json;
    let job = match submit_on(spec, plan).await {
        Ok(j) => j,
        Err(e) => return fail(&e, json, json!({"host": spec.name})),
    };
    let id = job.id();
    if job.reattached() {
        eprintln!("{}", reattached_note(&id));
    }
    let mut v = json!({"host": spec.name, "id": id, "reattached": job.reattached()});
    if !json {
        say!("{id}");
        let _ = std::io::stdout().flush();
    }
    if plan.a.wait {
        match job.result::<Value>().await {
            Ok(out) if json => v["value"] = out.value,
            Ok(out) => print_value(&out.value),
            Err(e) => return fail(&e, json, v),
        }
    }
    if json {
        v["ok"] = json!(true);
        say!("{v}");
    }
    ExitCode::SUCCESS
}

/// One of several hosts, for the fan-out: its id (and value), or its failure.
async fn submit_outcome(spec: &HostSpec, plan: &SubmitPlan) -> Result<Outcome, Error> {
    let job = match submit_on(spec, plan).await {
        Ok(j) => j,
        Err(JobError::Call(e)) => return Err(e),
        Err(e) => return Ok(failed_outcome(&e, json!({}), String::new())),
    };
    let id = job.id();
    let mut v = json!({"id": id, "reattached": job.reattached()});
    let mut text = format!("{id}\n");
    if plan.a.wait {
        match job.result::<Value>().await {
            Ok(out) => {
                text.push_str(&value_text(&out.value));
                v["value"] = out.value;
            }
            Err(e) => return Ok(failed_outcome(&e, v, text)),
        }
    }
    let mut o = Outcome::text(text, v);
    if job.reattached() {
        o.stderr = format!("{}\n", reattached_note(&id)).into_bytes();
    }
    Ok(o)
}

/// A host whose job could not be submitted or collected: the fan-out prints
/// `host | error: …` (or the JSON object with `error`) and counts it failed.
fn failed_outcome(e: &JobError, mut v: Value, stdout: String) -> Outcome {
    let d = describe(e);
    v["error"] = error_json(e);
    Outcome {
        stdout: stdout.into_bytes(),
        stderr: Vec::new(),
        json: v,
        code: d.code.max(1),
        failure: Some(match d.hint {
            Some(h) => format!("{} — {h}", d.message),
            None => d.message,
        }),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s}\n"),
        Value::Null => String::new(),
        v => format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

fn print_value(v: &Value) {
    let _ = std::io::stdout().write_all(value_text(v).as_bytes());
}

// ---- jobs …  ------------------------------------------------------------------------

/// Reach the host of a recorded job.
async fn open(id: &str, opts: &HostOptions) -> Result<Job<Arc<dyn Connector>>, JobError> {
    let store = store()?;
    let rec = store.get(id)?;
    let target = rec.destination.clone().unwrap_or_else(|| rec.host.clone());
    let client = hosts::client(&target, opts).await?;
    client.job(id, Some(&store))
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
        "partition": r.resources.partition,
        "failure_class": r.failure_class.map(|c| c.as_str()), "failure": r.failure, "processed": r.processed,
        "batch": r.batch.as_ref().map(|b| json!({"id": b.0, "index": b.1})),
        "submitted_unix_ms": r.submitted_ms, "finished_unix_ms": r.finished_ms,
    })
}

/// The records for `jobs ls`: `host` may be one name or a list / group.
fn list_jobs(
    host: Option<String>,
    state: Option<JobState>,
    opts: &HostOptions,
) -> Result<Vec<JobRecord>, JobError> {
    let store = store()?;
    let filter = |host| JobFilter {
        host,
        state,
        ..Default::default()
    };
    let host = match host {
        None => return store.list(&filter(None)),
        Some(h) if !h.contains(',') && !h.starts_with('@') => return store.list(&filter(Some(h))),
        Some(h) => h,
    };
    let names: Vec<String> = opts
        .resolve(&[host])?
        .hosts
        .into_iter()
        .map(|h| h.name)
        .collect();
    let mut all: Vec<JobRecord> = Vec::new();
    for name in names {
        for r in store.list(&filter(Some(name)))? {
            if all.iter().all(|x| x.id != r.id) {
                all.push(r);
            }
        }
    }
    all.sort_by(|x, y| {
        (x.submitted_ms, x.batch.as_ref().map(|b| b.1), &x.id).cmp(&(
            y.submitted_ms,
            y.batch.as_ref().map(|b| b.1),
            &y.id,
        ))
    });
    Ok(all)
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
    let json = opts.json;
    match cmd {
        JobsCommand::Ls { host, status } => {
            let list = match list_jobs(host, status, opts) {
                Ok(l) => l,
                Err(e) => return Ok(fail(&e, json, json!({}))),
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
            let shown = async {
                let job = open(&id, opts).await?;
                let st = job.status().await?;
                Ok::<_, JobError>((job.record(), st))
            };
            let (rec, st) = match shown.await {
                Ok(x) => x,
                Err(e) => return Ok(fail(&e, json, json!({"id": id}))),
            };
            let mut v = record_json(&rec);
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
            let job = match open(&id, opts).await {
                Ok(j) => j,
                Err(e) => return Ok(fail(&e, json, json!({"id": id}))),
            };
            let mut out = std::io::stdout();
            let mut as_json = json.then(|| JsonLog {
                id: id.clone(),
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
                        Ok(chunk) if chunk.data.is_empty() => {
                            emit(&[], next, true);
                            return Ok(ExitCode::SUCCESS);
                        }
                        Ok(chunk) => {
                            emit(&chunk.data, chunk.next, false);
                            next = chunk.next;
                        }
                        Err(e) => return Ok(fail(&e, json, json!({"id": id, "next": next}))),
                    }
                }
            }
            let mut stream = Box::pin(job.logs_follow(from));
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        emit(&c.data, c.next, false);
                        next = c.next;
                    }
                    Err(e) => return Ok(fail(&e, json, json!({"id": id, "next": next}))),
                }
            }
            emit(&[], next, true);
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id, grace } => {
            let Ok(grace) = Duration::try_from_secs_f64(grace) else {
                let e = JobError::Usage(format!(
                    "--grace {grace}: not a number of seconds — give seconds >= 0, e.g. --grace 30"
                ));
                return Ok(fail(&e, json, json!({"id": id})));
            };
            let cancelled = async {
                let job = open(&id, opts).await?;
                let st = job.cancel_with_grace(grace).await?;
                Ok::<_, JobError>((job.record(), st))
            };
            match cancelled.await {
                Ok((rec, st)) if json => {
                    let host = rec.destination.as_deref().unwrap_or(&rec.host);
                    say!(
                        "{}",
                        json!({"id": rec.id, "host": host, "state": st.state.as_str()})
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok((rec, st)) => {
                    say!("{} {}", rec.id, st.state);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(fail(&e, json, json!({"id": id}))),
            }
        }
        JobsCommand::Result { id } => {
            let job = match open(&id, opts).await {
                Ok(j) => j,
                Err(e) => return Ok(fail(&e, json, json!({"id": id}))),
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
                Err(e) => Ok(fail(&e, json, json!({"id": id}))),
            }
        }
        JobsCommand::Rm { processed, ids } => {
            if !processed && ids.is_empty() {
                let e = JobError::Usage(
                    "`sremote jobs rm` needs job ids or --processed — list them with `sremote jobs ls`"
                        .into(),
                );
                return Ok(fail(&e, json, json!({})));
            }
            let mut ids = ids;
            if processed {
                let list = store().and_then(|s| {
                    s.list(&JobFilter {
                        processed: Some(true),
                        ..Default::default()
                    })
                });
                match list {
                    Ok(list) => ids.extend(list.into_iter().map(|r| r.id)),
                    Err(e) => return Ok(fail(&e, json, json!({}))),
                }
            }
            let mut code = 0u8;
            for id in ids {
                let removed = async {
                    let job = open(&id, opts).await?;
                    job.clean().await
                };
                match removed.await {
                    Ok(()) if json => say!("{}", json!({"removed": id})),
                    Ok(()) => say!("removed {id}"),
                    Err(e) => {
                        let _ = fail(&e, json, json!({"id": id}));
                        code = code.max(describe(&e).code);
                    }
                }
            }
            Ok(ExitCode::from(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn spec(toml: &str) -> HostSpec {
        let cfg = Config::parse(toml, Path::new("/c/config.toml")).unwrap();
        cfg.hosts.values().next().unwrap().clone()
    }

    #[test]
    fn config_partitions_convert() {
        let s = spec(
            r#"[hosts.hpc]
scheduler = "slurm"
sge_pe = "mpi"
partitions = [
  "any",
  { name = "short", cores = 4, max_time = "30m", max_memory = "8G" },
  { name = "long", cores = 64, max_time = "2-00:00:00", max_memory = "unlimited" },
  { name = "gpu", cores = 32, max_time = "12h", max_memory = "256G", gpus = 4 },
]
"#,
        );
        let c = host_config(&s, "/c/config.toml").unwrap();
        assert_eq!(c.sge_pe.as_deref(), Some("mpi"));
        assert_eq!(
            c.partitions,
            vec![
                Partition {
                    name: "any".into(),
                    cores: u32::MAX,
                    max_time: None,
                    max_memory: None,
                    gpus: 0
                },
                Partition {
                    name: "short".into(),
                    cores: 4,
                    max_time: Some(Duration::from_secs(1800)),
                    max_memory: Some(8 << 30),
                    gpus: 0
                },
                Partition {
                    name: "long".into(),
                    cores: 64,
                    max_time: Some(Duration::from_secs(2 * 86400)),
                    max_memory: None,
                    gpus: 0
                },
                Partition {
                    name: "gpu".into(),
                    cores: 32,
                    max_time: Some(Duration::from_secs(12 * 3600)),
                    max_memory: Some(256 << 30),
                    gpus: 4
                },
            ]
        );
        // The smallest that fits is chosen from them; the name-only one is the last resort.
        let want = |cores, secs, gpus| {
            let r = Resources {
                cores_per_node: Some(cores),
                time: Some(Duration::from_secs(secs)),
                gpus,
                ..Default::default()
            };
            sremote_jobs::choose_partition(&r, &c.partitions).unwrap()
        };
        assert_eq!(want(2, 600, None).as_deref(), Some("short"));
        assert_eq!(want(2, 7200, None).as_deref(), Some("long"));
        assert_eq!(want(8, 600, Some(1)).as_deref(), Some("gpu"));
        assert_eq!(want(128, 600, None).as_deref(), Some("any"));
    }

    #[test]
    fn bad_config_values_name_host_key_value_and_form() {
        for (key, value, form) in [
            ("max_time", "soon", "a duration"),
            ("max_memory", "lots", "a size"),
        ] {
            let s = spec(&format!(
                "[hosts.hpc]\npartitions = [{{ name = \"debug\", {key} = \"{value}\" }}]\n"
            ));
            let e = host_config(&s, "/c/config.toml").unwrap_err().to_string();
            for part in [
                "/c/config.toml",
                "host hpc",
                "\"debug\"",
                &format!("{key} = \"{value}\""),
                form,
                "fix [hosts.hpc]",
            ] {
                assert!(e.contains(part), "{part:?} not in {e}");
            }
        }
        let s = spec("[hosts.hpc]\npartitions = [{ name = \"debug\", cores = 0 }]\n");
        assert!(
            host_config(&s, "f")
                .unwrap_err()
                .to_string()
                .contains("cores = \"0\"")
        );
    }

    #[test]
    fn flag_wins_over_config_scheduler() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: SubmitArgs,
        }
        let args = |extra: &[&str]| {
            let mut v = vec!["t", "hpc"];
            v.extend_from_slice(extra);
            v.extend(["os", "getpid"]);
            T::parse_from(v).a
        };
        let slurm = spec("[hosts.hpc]\nscheduler = \"slurm\"\n");
        assert_eq!(scheduler_for(&args(&[]), &slurm), Scheduler::Slurm);
        assert_eq!(
            scheduler_for(&args(&["--direct"]), &slurm),
            Scheduler::Direct
        );
        assert_eq!(scheduler_for(&args(&["--pbs"]), &slurm), Scheduler::Pbs);
        let plain = spec("[hosts.hpc]\n");
        assert_eq!(scheduler_for(&args(&[]), &plain), Scheduler::Direct);
        assert_eq!(scheduler_for(&args(&["--sge"]), &plain), Scheduler::Sge);
    }

    #[test]
    fn utf8_split_between_chunks_is_kept() {
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail("é".as_bytes()), 0);
        assert_eq!(incomplete_tail(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_tail(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_tail(&"😀".as_bytes()[..3]), 3);
    }
}
