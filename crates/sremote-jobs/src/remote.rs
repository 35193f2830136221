//! Talking to the endpoint's `job` commands and to the batch system's commands.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use serde::de::DeserializeOwned;
use sremote_core::protocol::job::{DiedReason, Status, StatusReport};
use sremote_core::{Connector, ConnectorErrorKind, Error, ExecOutput, RemoteClient, RemoteCommand};

use crate::error::{FailureClass, JobError};
use crate::sacct;
use crate::scheduler::{
    Scheduler, SchedulerState, parse_pbs_qstat, parse_scontrol, parse_sge_qacct, parse_sge_qstat,
};

/// What `sremote-endpoint job status` (and `job poll`'s first line) prints.
pub(crate) type DirStatus = StatusReport;

/// The failure class the runner recorded for a `died` job, and its words.
pub(crate) fn died(s: &Status) -> (FailureClass, String) {
    let class = match s.died_reason() {
        Some(DiedReason::Signal | DiedReason::Killed) => FailureClass::Killed,
        Some(DiedReason::Vanished) => FailureClass::Vanished,
        Some(DiedReason::Crashed) => FailureClass::Crashed,
        None => FailureClass::Other,
    };
    (
        class,
        s.message
            .clone()
            .unwrap_or_else(|| "the job ended without a result".into()),
    )
}

/// Run the endpoint with `args` (and `stdin`); bootstrap once if it is missing. A nonzero
/// exit other than those in `ok_codes` is an error naming `action`.
pub(crate) async fn endpoint<C: Connector>(
    client: &RemoteClient<C>,
    args: &[&str],
    stdin: Option<&[u8]>,
    ok_codes: &[i32],
    action: &str,
) -> Result<ExecOutput, JobError> {
    let run = || {
        let mut cmd = RemoteCommand::new(client.endpoint_path()).args(args.iter().copied());
        if let Some(bytes) = stdin {
            cmd = cmd.stdin(bytes.to_vec());
        }
        // A direct job inherits the environment of the command that starts it: that one
        // runs after the host's setup lines, like the endpoint of calls.
        let starts = matches!(args, ["job", "start", ..])
            || (matches!(args, ["job", "create", ..]) && args.contains(&"--start"));
        if starts {
            cmd = client.with_setup(cmd);
        }
        cmd.timeout(Duration::from_secs(120))
    };
    client.verify_endpoint_dir().await?;
    let mut out = client
        .connector()
        .exec(&run())
        .await
        .map_err(Error::Transport)?;
    if matches!(out.exit_code, Some(126 | 127)) {
        tracing::info!(
            host = client.host(),
            "endpoint missing for a job command; bootstrapping"
        );
        client.do_bootstrap_install().await?;
        out = client
            .connector()
            .exec(&run())
            .await
            .map_err(Error::Transport)?;
    }
    if let Some(e) = client.setup_error(action, out.exit_code, &out.stderr) {
        return Err(e.into());
    }
    match out.exit_code {
        Some(0) => Ok(out),
        Some(c) if ok_codes.contains(&c) => Ok(out),
        code => Err(JobError::remote(
            client.host(),
            action,
            format!("the endpoint exited with {code:?}: {}", out.stderr_text()),
            match code {
                Some(2) => {
                    "the endpoint on the host may be older than this client: run `sremote bootstrap HOST`"
                }
                _ => "check the job directory on the host (permissions, free space)",
            },
        )),
    }
}

/// Run a batch-system command (an argv, in `cwd`, script on stdin).
pub(crate) async fn command<C: Connector>(
    client: &RemoteClient<C>,
    argv: &[String],
    cwd: Option<&str>,
    stdin: Option<&[u8]>,
) -> Result<ExecOutput, JobError> {
    let mut cmd = RemoteCommand::new(&argv[0])
        .args(&argv[1..])
        .timeout(Duration::from_secs(120));
    cmd.cwd = cwd.map(str::to_owned);
    if let Some(s) = stdin {
        cmd = cmd.stdin(s.to_vec());
    }
    let out = client
        .connector()
        .exec(&cmd)
        .await
        .map_err(Error::Transport)?;
    if out.exit_code == Some(127) {
        return Err(JobError::remote(
            client.host(),
            format!("run `{}`", argv[0]),
            format!(
                "`{}` is not installed on the host (or not in PATH)",
                argv[0]
            ),
            "submit to the batch system the host has, or use Scheduler::Direct",
        ));
    }
    Ok(out)
}

/// What an endpoint's `job` command printed, read as its type in
/// [`protocol::job`](sremote_core::protocol::job).
pub(crate) fn parse_answer<T: DeserializeOwned>(
    out: &[u8],
    host: &str,
    action: &str,
) -> Result<T, JobError> {
    serde_json::from_slice(out).map_err(|e| {
        JobError::remote(
            host,
            action,
            format!(
                "unreadable answer ({e}): {}",
                String::from_utf8_lossy(&out[..out.len().min(300)])
            ),
            "the endpoint on the host may be of another version: run `sremote bootstrap HOST`",
        )
    })
}

/// Ask the batch system about job `sid`.
pub(crate) async fn scheduler_state<C: Connector>(
    client: &RemoteClient<C>,
    scheduler: Scheduler,
    sid: &str,
) -> Result<SchedulerState, JobError> {
    let run = |argv: &[&str]| {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        async move { command(client, &argv, None, None).await }
    };
    match scheduler {
        Scheduler::Direct => Ok(SchedulerState::Unknown),
        Scheduler::Slurm => {
            let out = run(&["scontrol", "show", "job", "-o", sid]).await?;
            let live = if out.success() {
                parse_scontrol(&String::from_utf8_lossy(&out.stdout))
            } else if out.stderr_text().contains("Invalid job id") {
                SchedulerState::Unknown
            } else {
                // scontrol unavailable: squeue still lists live jobs.
                let q = run(&["squeue", "-h", "-j", sid, "-o", "%T %r"]).await?;
                let line = String::from_utf8_lossy(&q.stdout).trim().to_string();
                match line.split_whitespace().next() {
                    None => SchedulerState::Unknown,
                    Some(state) => parse_scontrol(&format!("JobState={state}")),
                }
            };
            if live != SchedulerState::Unknown {
                return Ok(live);
            }
            // The controller forgot the job (MinJobAge after its end): accounting keeps it.
            Ok(slurm_accounting(client, sid)
                .await?
                .unwrap_or(SchedulerState::Unknown))
        }
        Scheduler::Sge => {
            let out = run(&["qstat", "-u", "*"]).await?;
            if let Some(s) = parse_sge_qstat(&String::from_utf8_lossy(&out.stdout), sid) {
                return Ok(s);
            }
            // Gone from qstat: its accounting record may take a moment to be written.
            for _ in 0..8 {
                let acct = run(&["qacct", "-j", sid]).await?;
                let state = parse_sge_qacct(&String::from_utf8_lossy(&acct.stdout));
                if state != SchedulerState::Unknown {
                    return Ok(state);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(SchedulerState::Unknown)
        }
        Scheduler::Pbs => {
            let out = run(&["qstat", "-x", "-f", sid]).await?;
            Ok(parse_pbs_qstat(&String::from_utf8_lossy(&out.stdout)))
        }
    }
}

/// Hosts whose `sacct` can never answer (no accounting, not installed), so that a job the
/// controller forgot costs them no second round trip per status. Keyed by host name.
static NO_ACCOUNTING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// What Slurm's accounting says about job `sid` (`sacct`), `None` when it has no record
/// or the host keeps none.
async fn slurm_accounting<C: Connector>(
    client: &RemoteClient<C>,
    sid: &str,
) -> Result<Option<SchedulerState>, JobError> {
    let host = client.host().to_string();
    let known_without =
        |set: &Option<HashSet<String>>| set.as_ref().is_some_and(|s| s.contains(&host));
    if known_without(&NO_ACCOUNTING.lock().unwrap_or_else(|p| p.into_inner())) {
        return Ok(None);
    }
    let argv = sacct::argv(sid);
    let cmd = RemoteCommand::new(&argv[0])
        .args(&argv[1..])
        .timeout(Duration::from_secs(120));
    let out = client
        .connector()
        .exec(&cmd)
        .await
        .map_err(Error::Transport)?;
    if out.success() {
        return Ok(sacct::parse_sacct(
            &String::from_utf8_lossy(&out.stdout),
            sid,
        ));
    }
    let err = out.stderr_text();
    match sacct::unavailable(out.exit_code, &err) {
        sacct::Unavailable::Never => {
            tracing::debug!(host = %host, "no Slurm accounting (sacct): {}", err.trim());
            NO_ACCOUNTING
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(HashSet::new)
                .insert(host);
        }
        sacct::Unavailable::Now => {
            tracing::info!(host = %host, "Slurm accounting (sacct) did not answer: {}", err.trim());
        }
    }
    Ok(None)
}

/// Whether a transport failure may heal by itself (reconnect and try again).
pub(crate) fn transient(e: &JobError) -> bool {
    matches!(
        e,
        JobError::Call(Error::Transport(t))
            if matches!(
                t.kind,
                ConnectorErrorKind::Disconnected | ConnectorErrorKind::Connect | ConnectorErrorKind::Timeout | ConnectorErrorKind::Other
            )
    )
}
