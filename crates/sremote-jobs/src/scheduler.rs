//! Batch systems: resources, partition choice, the batch script and submit command of
//! each scheduler, and the parsers of what their status commands print.
//!
//! Everything variable (job name, paths, resources) goes to `sbatch`/`qsub` as separate
//! argv words — never through a shell or a `#SBATCH` line — and the script itself holds
//! only single-quoted paths, so no name or path can inject a directive or a command.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sremote_core::protocol::job::{LOG_FILE, SCHEDULER_OUT_FILE};
use sremote_core::{Setup, UsageError};

use crate::error::{FailureClass, JobError};
use crate::units::{hms, mebibytes, slurm_time};

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// Detached on the host itself (no batch system).
    #[default]
    Direct,
    /// Slurm (`sbatch`, `scontrol`, `scancel`).
    Slurm,
    /// Sun/Son of/Univa Grid Engine (`qsub`, `qstat`, `qacct`, `qdel`).
    Sge,
    /// PBS Pro / OpenPBS (`qsub`, `qstat -x`, `qdel`).
    Pbs,
}

impl Scheduler {
    /// `direct`, `slurm`, `sge` or `pbs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Direct => "direct",
            Scheduler::Slurm => "slurm",
            Scheduler::Sge => "sge",
            Scheduler::Pbs => "pbs",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheduler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "direct" | "none" => Ok(Scheduler::Direct),
            "slurm" => Ok(Scheduler::Slurm),
            "sge" | "gridengine" => Ok(Scheduler::Sge),
            "pbs" | "pbspro" | "openpbs" => Ok(Scheduler::Pbs),
            _ => Err(format!("unknown scheduler {s:?} (direct, slurm, sge, pbs)")),
        }
    }
}

/// What a batch job asks for. Unset fields are left to the batch system's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Number of nodes.
    pub nodes: Option<u32>,
    /// Cores on each node.
    pub cores_per_node: Option<u32>,
    /// Wall-time limit.
    pub time: Option<Duration>,
    /// Memory per node, bytes.
    pub memory: Option<u64>,
    /// Partition (Slurm) or queue (SGE, PBS); chosen from [`HostConfig`] when unset.
    pub partition: Option<String>,
    /// GPUs on each node.
    pub gpus: Option<u32>,
    /// Extra header lines, verbatim (each must start with `#`, e.g. `#SBATCH --account=abc`).
    pub extra_header: Vec<String>,
}

/// A partition (queue) of a cluster and the largest job it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Its name.
    pub name: String,
    /// Cores per node.
    pub cores: u32,
    /// Longest wall time (`None`: unlimited).
    pub max_time: Option<Duration>,
    /// Memory per node, bytes (`None`: not known / unlimited).
    pub max_memory: Option<u64>,
    /// GPUs per node.
    #[serde(default)]
    pub gpus: u32,
}

/// What sremote knows about a host's batch system: its partitions (to choose the smallest
/// that fits when a job names none), and for SGE the parallel environment for cores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostConfig {
    /// The partitions (queues).
    pub partitions: Vec<Partition>,
    /// SGE parallel environment used for more than one core (default `smp`).
    pub sge_pe: Option<String>,
}

/// The partition for `r`: the one it names, else the smallest of `partitions` that fits
/// (fewest GPUs, then fewest cores, then shortest time, then least memory), else `None` (the batch
/// system's default) when no partitions are known.
pub fn choose_partition(
    r: &Resources,
    partitions: &[Partition],
) -> Result<Option<String>, UsageError> {
    if let Some(p) = &r.partition {
        return Ok(Some(p.clone()));
    }
    if partitions.is_empty() {
        return Ok(None);
    }
    let fits = |p: &&Partition| {
        r.cores_per_node.is_none_or(|c| c <= p.cores)
            && r.gpus.is_none_or(|g| g <= p.gpus)
            && r.time.is_none_or(|t| p.max_time.is_none_or(|m| t <= m))
            && r.memory
                .is_none_or(|m| p.max_memory.is_none_or(|pm| m <= pm))
    };
    partitions
        .iter()
        .filter(fits)
        .min_by_key(|p| {
            (
                p.gpus,
                p.cores,
                p.max_time.unwrap_or(Duration::MAX),
                p.max_memory.unwrap_or(u64::MAX),
            )
        })
        .map(|p| Some(p.name.clone()))
        .ok_or_else(|| {
            let known: Vec<String> = partitions
                .iter()
                .map(|p| {
                    format!(
                        "{} ({} cores, {}, {})",
                        p.name,
                        p.cores,
                        p.max_time
                            .map_or("no time limit".into(), crate::units::format_duration),
                        p.max_memory
                            .map_or("memory not limited".into(), |m| format!(
                                "{} MiB",
                                mebibytes(m)
                            ))
                    )
                })
                .collect();
            UsageError {
                message: format!("no partition fits {}", describe(r)),
                hint: format!(
                    "the partitions are: {}; ask for less, or name a partition",
                    known.join(", ")
                ),
            }
        })
}

fn describe(r: &Resources) -> String {
    let mut parts = Vec::new();
    if let Some(c) = r.cores_per_node {
        parts.push(format!("{c} cores"));
    }
    if let Some(t) = r.time {
        parts.push(crate::units::format_duration(t));
    }
    if let Some(m) = r.memory {
        parts.push(format!("{} MiB", mebibytes(m)));
    }
    if let Some(g) = r.gpus {
        parts.push(format!("{g} GPUs"));
    }
    if parts.is_empty() {
        "the job".into()
    } else {
        parts.join(", ")
    }
}

/// A batch submission: the script (given to the submit command on stdin) and the submit
/// command's argv (run in the job directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSubmission {
    /// The batch script.
    pub script: String,
    /// `sbatch …` / `qsub …`, one word per element.
    pub argv: Vec<String>,
}

/// Quote `s` for a POSIX shell: `'…'` with `'` written as `'\''`
/// ([`sremote_core::shell::quote_always`]).
pub fn shell_quote(s: &str) -> String {
    sremote_core::shell::quote_always(s)
}

/// A job name every batch system accepts: `[A-Za-z0-9_.-]`, starting with a letter, at
/// most `max` characters (others become `_`).
pub fn safe_name(name: &str, max: usize) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 's');
        out.truncate(max);
    }
    out
}

/// What a batch script is made from.
#[derive(Debug, Clone, Copy)]
pub struct JobScript<'a> {
    /// The batch system.
    pub scheduler: Scheduler,
    /// The job id.
    pub id: &'a str,
    /// The job name (made safe for the batch system).
    pub name: &'a str,
    /// The job directory on the host, absolute.
    pub dir: &'a str,
    /// The endpoint binary on the host, absolute.
    pub exe: &'a str,
    /// The resources; `partition` is used as given (see [`choose_partition`]).
    pub resources: &'a Resources,
    /// Host settings (SGE parallel environment).
    pub config: &'a HostConfig,
    /// Shell lines run before the job, and the login shell
    /// ([`RemoteClient::setup`](sremote_core::RemoteClient::setup)).
    pub setup: &'a Setup,
}

/// The batch script: header lines, the setup (each line checked: the first that fails
/// ends the job with a message in its log and on stderr), then the endpoint's runner.
fn script_text(job: &JobScript<'_>) -> String {
    let (id, dir, setup) = (job.id, job.dir, job.setup);
    // Setup lines are bash (`source`, `module`), as in the endpoint's starts.
    let shell = if setup.login_shell {
        "#!/bin/bash -l"
    } else if setup.lines.is_empty() {
        "#!/bin/sh"
    } else {
        "#!/bin/bash"
    };
    let mut script = format!("{shell}\n# sremote job {id}\n");
    for line in &job.resources.extra_header {
        script.push_str(line);
        script.push('\n');
    }
    if setup.login_shell && job.scheduler == Scheduler::Sge {
        // Grid Engine starts the script with `-S /bin/bash`, not as a login shell.
        script.push_str("shopt -q login_shell 2>/dev/null || exec /bin/bash -l \"$0\"\n");
    }
    if !setup.lines.is_empty() {
        let log = shell_quote(&format!("{dir}/{LOG_FILE}"));
        script.push_str(&format!(
            "# setup: a line that fails ends the job\n\
             sremote_setup_failed() {{ printf '{}' \"$1\" \"$2\" \"$3\" | tee -a {log} >&2; exit {}; }}\n",
            Setup::failure_format(),
            sremote_core::setup::SETUP_FAILED_EXIT,
        ));
        script.push_str(&setup.checked_lines("sremote_setup_failed", false));
    }
    script.push_str(&format!(
        "exec {} job run {}\n",
        shell_quote(job.exe),
        shell_quote(dir)
    ));
    script
}

/// Render the batch script and the submit command of a job.
pub fn render(job: &JobScript<'_>) -> Result<BatchSubmission, JobError> {
    check(job)?;
    let script = script_text(job);
    let argv = match job.scheduler {
        Scheduler::Direct => {
            return Err(JobError::Usage("a direct job has no batch script".into()));
        }
        Scheduler::Slurm => slurm_argv(job),
        Scheduler::Sge => sge_argv(job),
        Scheduler::Pbs => pbs_argv(job),
    };
    if let Some(bad) = argv.iter().find(|a| a.contains(['\n', '\0'])) {
        return Err(JobError::Usage(format!(
            "{bad:?}: a partition or path cannot contain a newline"
        )));
    }
    Ok(BatchSubmission { script, argv })
}

/// What a batch script cannot be made of: header lines that are not one `#` line,
/// relative paths, setup lines that do not check.
fn check(job: &JobScript<'_>) -> Result<(), JobError> {
    let (dir, exe) = (job.dir, job.exe);
    for line in &job.resources.extra_header {
        if !line.starts_with('#') || line.contains(['\n', '\r', '\0']) {
            return Err(JobError::Usage(format!(
                "extra header line {line:?} must be one line starting with `#` (e.g. `#SBATCH --account=abc`)"
            )));
        }
    }
    if [dir, exe]
        .iter()
        .any(|s| s.contains('\0') || !s.starts_with('/'))
    {
        return Err(JobError::Usage(format!(
            "job dir {dir:?} and endpoint {exe:?} must be absolute paths"
        )));
    }
    job.setup
        .check()
        .map_err(|e| JobError::Usage(format!("job {}: {e}", job.id)))
}

/// `sbatch --parsable …` (script on stdin).
fn slurm_argv(job: &JobScript<'_>) -> Vec<String> {
    let r = job.resources;
    let mut argv: Vec<String> = ["sbatch", "--parsable"].map(String::from).into();
    argv.push(format!("--job-name={}", safe_name(job.name, 64)));
    argv.push(format!("--chdir={}", job.dir));
    argv.push(format!("--output={SCHEDULER_OUT_FILE}"));
    argv.push(format!("--nodes={}", r.nodes.unwrap_or(1).max(1)));
    if let Some(c) = r.cores_per_node {
        argv.push("--ntasks-per-node=1".into());
        argv.push(format!("--cpus-per-task={c}"));
    }
    if let Some(t) = r.time {
        argv.push(format!("--time={}", slurm_time(t)));
    }
    if let Some(m) = r.memory {
        argv.push(format!("--mem={}M", mebibytes(m)));
    }
    if let Some(g) = r.gpus {
        argv.push(format!("--gpus-per-node={g}"));
    }
    if let Some(p) = &r.partition {
        argv.push(format!("--partition={p}"));
    }
    argv
}

/// Grid Engine's `qsub -terse …`: slots through the parallel environment, memory per slot.
fn sge_argv(job: &JobScript<'_>) -> Vec<String> {
    let r = job.resources;
    let shell = if job.setup.is_empty() {
        "/bin/sh"
    } else {
        "/bin/bash"
    };
    let mut argv: Vec<String> = ["qsub", "-terse", "-S", shell, "-j", "y", "-o"]
        .map(String::from)
        .into();
    argv.push(SCHEDULER_OUT_FILE.into());
    argv.extend([
        "-N".into(),
        safe_name(job.name, 64),
        "-wd".into(),
        job.dir.to_string(),
    ]);
    let slots = r.nodes.unwrap_or(1).max(1) * r.cores_per_node.unwrap_or(1);
    if slots > 1 {
        let pe = job.config.sge_pe.clone().unwrap_or_else(|| "smp".into());
        argv.extend(["-pe".into(), pe, slots.to_string()]);
    }
    if let Some(t) = r.time {
        argv.extend(["-l".into(), format!("h_rt={}", hms(t))]);
    }
    if let Some(m) = r.memory {
        // h_vmem is per slot.
        let per_slot = mebibytes(m).div_ceil(u64::from(r.cores_per_node.unwrap_or(1).max(1)));
        argv.extend(["-l".into(), format!("h_vmem={per_slot}M")]);
    }
    if let Some(g) = r.gpus {
        argv.extend(["-l".into(), format!("gpu={g}")]);
    }
    if let Some(p) = &r.partition {
        argv.extend(["-q".into(), p.clone()]);
    }
    argv
}

/// PBS's `qsub …` with one `select` resource string.
fn pbs_argv(job: &JobScript<'_>) -> Vec<String> {
    let r = job.resources;
    let mut argv: Vec<String> = ["qsub", "-j", "oe", "-o"].map(String::from).into();
    argv.push(SCHEDULER_OUT_FILE.into());
    argv.extend(["-N".into(), safe_name(job.name, 15)]);
    let nodes = r.nodes.unwrap_or(1).max(1);
    let mut select = format!("select={nodes}:ncpus={}", r.cores_per_node.unwrap_or(1));
    if let Some(m) = r.memory {
        select.push_str(&format!(":mem={}mb", mebibytes(m)));
    }
    if let Some(g) = r.gpus {
        select.push_str(&format!(":ngpus={g}"));
    }
    argv.extend(["-l".into(), select]);
    if let Some(t) = r.time {
        argv.extend(["-l".into(), format!("walltime={}", hms(t))]);
    }
    if let Some(p) = &r.partition {
        argv.extend(["-q".into(), p.clone()]);
    }
    argv
}

/// The batch system's id from what the submit command printed.
pub fn parse_submit_output(scheduler: Scheduler, stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = match scheduler {
        // `--parsable`: "<id>" or "<id>;<cluster>"
        Scheduler::Slurm => line.split(';').next()?,
        // `-terse`: "<id>" (array jobs: "<id>.1-10:1")
        Scheduler::Sge => line.split('.').next()?,
        // "<id>.<server>"
        Scheduler::Pbs => line,
        Scheduler::Direct => return None,
    };
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_string())
}

/// What the batch system says about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulerState {
    /// Waiting to start (or held).
    Pending(String),
    /// Running (or finishing).
    Running,
    /// Over: `None` for a normal end, else why it failed.
    Finished(Option<(FailureClass, String)>),
    /// The batch system does not know the job (any more).
    Unknown,
}

/// Parse `scontrol show job -o ID` (one line of `Key=Value` words).
pub fn parse_scontrol(text: &str) -> SchedulerState {
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .unwrap_or("")
    };
    let state = field("JobState");
    let reason = field("Reason");
    let exit = field("ExitCode");
    let why = |what: &str| {
        let mut s = format!("Slurm: JobState={state}");
        if !reason.is_empty() && reason != "None" {
            s.push_str(&format!(" Reason={reason}"));
        }
        if !exit.is_empty() {
            s.push_str(&format!(" ExitCode={exit}"));
        }
        if !what.is_empty() {
            s.push_str(&format!(" ({what})"));
        }
        s
    };
    let finished = |class, what: &str| SchedulerState::Finished(Some((class, why(what))));
    match state {
        "" => SchedulerState::Unknown,
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" => SchedulerState::Pending(reason.to_string()),
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "STAGE_OUT" | "SIGNALING" | "RESIZING"
        | "STOPPED" => SchedulerState::Running,
        "COMPLETED" => SchedulerState::Finished(None),
        "TIMEOUT" | "DEADLINE" => finished(FailureClass::Walltime, "time limit reached"),
        "OUT_OF_MEMORY" => finished(FailureClass::Memory, "out of memory"),
        "NODE_FAIL" | "BOOT_FAIL" => finished(FailureClass::NodeFailure, "node failure"),
        "PREEMPTED" => finished(FailureClass::Preempted, "preempted"),
        "CANCELLED" => finished(FailureClass::Cancelled, "cancelled"),
        "FAILED" if reason.contains("OutOfMemory") => {
            finished(FailureClass::Memory, "out of memory")
        }
        "FAILED" if reason.contains("NodeFail") => {
            finished(FailureClass::NodeFailure, "node failure")
        }
        "FAILED" if reason.contains("TimeLimit") => {
            finished(FailureClass::Walltime, "time limit reached")
        }
        _ => finished(FailureClass::Other, ""),
    }
}

/// Parse the `qstat` table (SGE) for job `id`; `None` if it is not listed.
pub fn parse_sge_qstat(text: &str, id: &str) -> Option<SchedulerState> {
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))?;
    let state = row.split_whitespace().nth(4)?;
    Some(if state.contains('E') {
        SchedulerState::Finished(Some((
            FailureClass::Other,
            format!("SGE: job in error state {state}"),
        )))
    } else if state.contains(['r', 't', 'R', 's', 'S', 'T', 'd']) {
        SchedulerState::Running
    } else {
        SchedulerState::Pending(state.to_string())
    })
}

/// Parse `qacct -j ID` (SGE accounting of a finished job).
pub fn parse_sge_qacct(text: &str) -> SchedulerState {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            (k == key).then(|| v.trim().to_string())
        })
    };
    let Some(failed) = field("failed") else {
        return SchedulerState::Unknown;
    };
    let exit: i64 = field("exit_status")
        .and_then(|e| e.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let code: i64 = failed
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if code == 0 && exit == 0 {
        return SchedulerState::Finished(None);
    }
    let seconds = |s: &str| {
        s.split_whitespace()
            .next()?
            .trim_end_matches('s')
            .parse::<f64>()
            .ok()
    };
    let wall = field("ru_wallclock").and_then(|w| seconds(&w));
    let category = field("category").unwrap_or_default();
    let h_rt = category
        .split(['-', ',', ' '])
        .find_map(|w| w.strip_prefix("h_rt="))
        .and_then(|v| {
            crate::units::parse_duration(v)
                .ok()
                .map(|d| d.as_secs_f64())
        });
    let why = format!("SGE: failed {failed}, exit_status {exit}");
    let class =
        if failed.contains("h_rt") && matches!((wall, h_rt), (Some(w), Some(l)) if w + 2.0 >= l) {
            FailureClass::Walltime
        } else if failed.contains("h_vmem") || failed.contains("memory") {
            FailureClass::Memory
        } else if code == 100 && exit == 137 {
            FailureClass::Killed
        } else {
            FailureClass::Other
        };
    SchedulerState::Finished(Some((class, why)))
}

/// Parse `qstat -x -f ID` (PBS Pro / OpenPBS).
pub fn parse_pbs_qstat(text: &str) -> SchedulerState {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let Some(state) = field("job_state") else {
        return SchedulerState::Unknown;
    };
    match state.as_str() {
        "Q" | "H" | "W" | "T" | "S" | "U" => {
            SchedulerState::Pending(field("comment").unwrap_or(state))
        }
        "R" | "E" | "B" => SchedulerState::Running,
        _ => {
            let exit: i64 = field("Exit_status")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            let why = format!("PBS: job_state={state} Exit_status={exit}");
            let class = match exit {
                0 => return SchedulerState::Finished(None),
                -29 => FailureClass::Walltime,
                -27 | -26 => FailureClass::Memory,
                -24 | -25 | -28 => FailureClass::Other,
                e if e > 256 && e - 256 == 9 => FailureClass::Killed,
                e if e > 256 => FailureClass::Cancelled,
                _ => FailureClass::Other,
            };
            SchedulerState::Finished(Some((class, why)))
        }
    }
}

/// Parse `sinfo -h -o '%P %c %l %m %G'` into partitions (Slurm).
pub fn parse_sinfo(text: &str) -> Vec<Partition> {
    let mut out: Vec<Partition> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [name, cpus, time, mem, gres, ..] = w.as_slice() else {
            continue;
        };
        let name = name.trim_end_matches('*').to_string();
        let cores = cpus.trim_end_matches('+').parse().unwrap_or(0);
        let max_time = match *time {
            "infinite" | "UNLIMITED" | "n/a" => None,
            t => crate::units::parse_duration(t).ok(),
        };
        let max_memory = mem
            .trim_end_matches('+')
            .parse::<u64>()
            .ok()
            .map(|mb| mb << 20);
        let gpus = gres
            .split(',')
            .filter_map(|g| g.strip_prefix("gpu:"))
            .filter_map(|g| g.split('(').next()?.rsplit(':').next()?.parse::<u32>().ok())
            .sum();
        if out.iter().all(|p| p.name != name) {
            out.push(Partition {
                name,
                cores,
                max_time,
                max_memory,
                gpus,
            });
        }
    }
    out
}
