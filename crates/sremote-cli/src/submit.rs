//! `sremote submit`: detached jobs and batch systems (the other job commands are in
//! `jobs.rs`).
//!
//! `submit` takes HOST like every other command (a config name, a destination, `a,b,c` or
//! `@group`: one job per host). The scheduler is `--slurm/--sge/--pbs/--direct`, else the
//! host's `scheduler` in the hosts config; the partition is `--partition`, else the
//! smallest of the host's configured `partitions` that fits, else (Slurm) the smallest
//! from `sinfo`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use sremote_core::{Connector, Error};
use sremote_jobs::units::{parse_duration, parse_size};
use sremote_jobs::{HostConfig, Job, JobError, JobsExt, Partition, Resources, Scheduler};

use crate::config::{HostSpec, PartitionSpec, SchedulerKind};
use crate::fanout::{self, Outcome};
use crate::hosts::{self, HostOptions, Targets};
use crate::jobs::{json_or_string, print_value, store, value_text};
use crate::output::{self, say};

const SUBMIT_EXAMPLES: &str = r#"Examples:
  sremote submit local job run '["sh","-c","sleep 60; echo done"]'   # prints the job id
  sremote submit lab --time 2h --cores 8 mymod fit '{"alpha": 0.1}'  # scheduler, partitions from the config
  sremote submit login.hpc --slurm --partition debug --time 30m --mem 4G mymod fit 0.1
  sremote submit lab --direct os getpid              # detached on the host, whatever the config says
  sremote submit lab1,lab2 os getpid                 # one job per host: `lab1 | ID`, `lab2 | ID`
  sremote submit @cluster --json os getpid           # {"host":…,"id":…,…} per line
  sremote submit local --wait os getcwd              # the id, then the value
  sremote submit lab --setup 'module load python/3.11' mymod fit 0.1  # after the host's `setup`

Scheduler: --slurm, --sge, --pbs or --direct; else the host's `scheduler` in the hosts
config; else direct (a detached process on the host).
Partition: --partition; else the smallest of the host's `partitions` in the hosts config
that fits --cores, --time, --mem and --gpus; else (Slurm) the smallest from `sinfo`; else
the batch system's default.
Environment: the host's `setup` lines and `login_shell` from the hosts config, then every
--setup CMD, run on the host before the job (batch script or detached start).
The same call submitted again prints the first job's id (--force runs it again)."#;

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
    /// Shell line run on the host before the job starts, after the host's configured
    /// `setup` (e.g. `--setup 'module load python/3.11'`); repeatable. Your own shell code.
    #[arg(long = "setup", value_name = "CMD")]
    pub setup: Vec<String>,
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
    /// Work in the project venv `<sremote dir>/venvs/NAME` on the host (made by
    /// `sremote install --venv NAME …`): Python runs its interpreter.
    #[arg(long, value_name = "NAME")]
    pub venv: Option<String>,
    /// Run on the best of the hosts named (a group, a list) that has what the work
    /// needs: KEY=VALUE,… of cpus, mem, disk, gpu, gpu-mem, load, python, module, label.
    /// To one host with a batch system: the resource request (cpus, mem, gpu).
    #[arg(long, value_name = "KEY=VALUE,…")]
    pub needs: Vec<String>,
    /// The module on the host, or PATH.py:FUNCTION (a local Python file, shipped with
    /// the job).
    pub module: String,
    /// The function (absent after PATH.py:FUNCTION: then this is the first argument).
    pub function: Option<String>,
    /// Positional arguments: JSON if they parse, else strings.
    pub args: Vec<String>,
}

/// `--needs`: to one host with a batch system, the resource request (flags given too
/// must agree); else the pick among the hosts named.
async fn with_needs(
    a: &mut SubmitArgs,
    targets: Targets,
    opts: &HostOptions,
) -> Result<Result<Targets, ExitCode>, Error> {
    let Some(needs) = crate::placement::parse(&a.needs)? else {
        return Ok(Ok(targets));
    };
    let batch = match targets.hosts.as_slice() {
        [one] => scheduler_for(a, one) != Scheduler::Direct,
        _ => false,
    };
    if !batch {
        return crate::placement::apply(targets, Some(&needs), opts).await;
    }
    let (cores, mem, gpus) = crate::placement::as_batch_request(&needs, &targets.hosts[0].name)?;
    fn merge<T: PartialEq + Copy + std::fmt::Debug>(
        flag: &mut Option<T>,
        need: Option<T>,
        what: &str,
    ) -> Result<(), Error> {
        match (*flag, need) {
            (Some(f), Some(n)) if f != n => Err(Error::usage(
                format!("--{what} {f:?} and --needs {what}={n:?} disagree"),
                "give one",
            )),
            (None, Some(n)) => {
                *flag = Some(n);
                Ok(())
            }
            _ => Ok(()),
        }
    }
    merge(&mut a.cores, cores, "cores")?;
    merge(&mut a.mem, mem, "mem")?;
    merge(&mut a.gpus, gpus, "gpus")?;
    Ok(Ok(targets))
}

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

/// The host's `partitions` and `sge_pe` from the hosts config (`config_file` names the file
/// in messages) as the jobs crate wants them. A partition without `cores` fits any core
/// count (and is the last choice); without `max_time`/`max_memory` it has no such limit;
/// without `gpus` it has none.
pub(crate) fn host_config(spec: &HostSpec, config_file: &str) -> Result<HostConfig, Error> {
    let bad = |p: &PartitionSpec, key: &str, value: &str, expected: &str| {
        Error::usage(
            format!(
                "{config_file}: host {}: partition {:?}: {key} = {value:?} is not {expected}",
                spec.name, p.name
            ),
            format!("fix [hosts.{}] in the config file", spec.name),
        )
    };
    let mut partitions = Vec::new();
    for p in &spec.partitions {
        if p.name.trim().is_empty() {
            return Err(Error::usage(
                format!(
                    "{config_file}: host {}: a partition has an empty name",
                    spec.name
                ),
                "give each partition its name (`name = \"debug\"`)",
            ));
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
            Some(t) if sremote_jobs::units::is_unlimited(t) => None,
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
            Some(m) if sremote_jobs::units::is_unlimited(m) => None,
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
    target: crate::commands::Target,
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
    if plan.a.venv.is_some() {
        client.set_venv(plan.a.venv.as_deref())?;
    }
    for line in &a.setup {
        client.add_setup(line);
    }
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
    let t = &plan.target;
    let mut call = client
        .call::<Value>(&t.module, &t.function)
        .code(t.code.iter().cloned());
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
        .destination(&spec.name)
        .reach(crate::jobs_reach::reach(spec, &client, &plan.opts));
    if let Some(n) = &a.name {
        submit = submit.name(n);
    }
    submit.await.map_err(|e| match e {
        // "no partition fits …": say which configured host's partitions were meant.
        JobError::Usage(m) if !m.contains(spec.name.as_str()) => {
            JobError::Usage(format!("host {}: {m}", spec.name))
        }
        JobError::Call(Error::Invalid(u)) if !u.message.contains(spec.name.as_str()) => {
            JobError::usage(format!("host {}: {}", spec.name, u.message), u.hint)
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
            let e = JobError::usage(
                format!("--kw {kw:?} is not KEY=VALUE"),
                "write e.g. --kw retries=3",
            );
            return Ok(output::report(&e, json, json!({})));
        };
        kwargs.push((k.to_string(), json_or_string(v)));
    }
    let prepared = opts
        .resolve(&[a.host.as_str()])
        .and_then(|t| Ok((t, opts.config()?.path_text())));
    let (targets, config_file) = match prepared {
        Ok(p) => p,
        Err(e) => {
            return Ok(output::report(
                &JobError::Call(e),
                json,
                json!({"host": a.host}),
            ));
        }
    };
    let mut a = a;
    let targets = match with_needs(&mut a, targets, opts).await {
        Ok(Ok(t)) => t,
        Ok(Err(code)) => return Ok(code),
        Err(e) => {
            return Ok(output::report(
                &JobError::Call(e),
                json,
                json!({"host": a.host}),
            ));
        }
    };
    let target = match crate::commands::Target::parse(&a.module, a.function.as_deref(), &a.args) {
        Ok(t) => t,
        Err(e) => {
            return Ok(output::report(
                &JobError::Call(e),
                json,
                json!({"host": a.host}),
            ));
        }
    };
    let plan = Arc::new(SubmitPlan {
        args: target.args.iter().map(|s| json_or_string(s)).collect(),
        target,
        kwargs,
        opts: opts.clone(),
        config_file,
        a,
    });
    if !targets.fanout {
        let spec = &targets.hosts[0];
        return Ok(submit_single(spec, &plan).await);
    }
    Ok(fanout::each_with(targets, opts, move |spec| {
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
        Err(e) => return output::report(&e, json, json!({"host": spec.name})),
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
            Ok(out) => {
                // Collected, like `jobs result`: `jobs rm --processed` removes it.
                let _ = job.mark_processed();
                if json {
                    v["value"] = out.value
                } else {
                    print_value(&out.value)
                }
            }
            Err(e) => return output::report(&e, json, v),
        }
    }
    if json {
        v["ok"] = json!(true);
        say!("{v}");
    }
    ExitCode::SUCCESS
}

/// One of several hosts, for the fan-out: its id (and value), or its failure.
async fn submit_outcome(spec: &HostSpec, plan: &SubmitPlan) -> Result<Outcome, JobError> {
    let job = submit_on(spec, plan).await?;
    let id = job.id();
    let mut v = json!({"id": id, "reattached": job.reattached()});
    let mut text = format!("{id}\n");
    if plan.a.wait {
        match job.result::<Value>().await {
            Ok(out) => {
                let _ = job.mark_processed();
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

/// A host whose job was submitted but could not be collected (`--wait`): its id is
/// printed, and the fan-out prints `host | error: …` (or the JSON object with `error`) and
/// counts it failed.
fn failed_outcome(e: &JobError, mut v: Value, stdout: String) -> Outcome {
    let (message, hint) = output::error_lines(e);
    v["error"] = output::error_json(e);
    Outcome {
        stdout: stdout.into_bytes(),
        stderr: Vec::new(),
        json: v,
        code: output::exit_code(e).max(1),
        failure: Some(match hint {
            Some(h) => format!("{message} — {h}"),
            None => message,
        }),
        stderr_first: false,
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
}
