//! `sremote jobs result`, `jobs cancel` (one job or `--all`) and `jobs rm`: how a job ends
//! and is collected or removed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sremote_jobs::{JobError, JobFilter, JobState};

use super::{open, print_value, store};
use crate::hosts::HostOptions;
use crate::output::{self, say};

/// How many jobs `jobs cancel --all` cancels at once.
const CANCEL_CONCURRENCY: usize = 8;

/// `jobs result ID [--timeout D]`: the value on stdout, everything the job printed on
/// stderr (under `--json`: one object with `ok`, `stdout`, `stderr`). Marks it processed.
pub(super) async fn result(id: &str, timeout: Option<Duration>, opts: &HostOptions) -> ExitCode {
    let json = opts.json;
    let job = match open(id, opts).await {
        Ok(j) => j,
        Err(e) => return output::report(&e, json, json!({"id": id})),
    };
    let out = match job.result_within::<Value>(timeout).await {
        Ok(out) => out,
        Err(e) => return output::report(&e, json, json!({"id": id})),
    };
    if json {
        let m = &out.meta;
        let whole = json!({"ok": out.value, "id": job.id(), "host": m.host, "pid": m.pid,
            "stdout": out.stdout, "stderr": out.stderr,
            "timing": {"started_unix_ms": m.timing.started_unix_ms, "elapsed_us": m.timing.elapsed_us}});
        say!(
            "{}",
            serde_json::to_string_pretty(&whole).unwrap_or_default()
        );
    } else {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.stdout.as_bytes());
        let _ = err.write_all(out.stderr.as_bytes());
        let _ = err.flush();
        print_value(&out.value);
    }
    let _ = job.mark_processed();
    ExitCode::SUCCESS
}

/// One job cancelled: `ID STATE`, or `{"id", "host", "state"}`; an error as every job
/// command reports it. Returns the exit code.
async fn cancel_one(id: &str, grace: Duration, opts: &HostOptions) -> u8 {
    let cancelled = async {
        let job = open(id, opts).await?;
        let st = job.cancel_with_grace(grace).await?;
        Ok::<_, JobError>((job.record(), st))
    };
    match cancelled.await {
        Ok((rec, st)) if opts.json => {
            let host = rec.destination.as_deref().unwrap_or(&rec.host);
            say!(
                "{}",
                json!({"id": rec.id, "host": host, "state": st.state.as_str()})
            );
            0
        }
        Ok((rec, st)) => {
            say!("{} {}", rec.id, st.state);
            0
        }
        Err(e) => {
            let _ = output::report(&e, opts.json, json!({"id": id}));
            output::exit_code(&e)
        }
    }
}

/// Which jobs `jobs cancel --all` cancels: the unfinished ones (or those in `state`),
/// on `host` (one name, a,b,c or @group) when given, oldest first.
fn unfinished(
    host: Option<&str>,
    state: Option<JobState>,
    opts: &HostOptions,
) -> Result<Vec<String>, JobError> {
    let store = store()?;
    let states = match state {
        Some(s) => vec![s],
        None => vec![JobState::Submitting, JobState::Queued, JobState::Running],
    };
    let names: Option<Vec<String>> = match host {
        None => None,
        Some(h) if !h.contains(',') && !h.starts_with('@') => Some(vec![h.to_string()]),
        Some(h) => Some(
            opts.resolve(&[h])?
                .hosts
                .into_iter()
                .map(|s| s.name)
                .collect(),
        ),
    };
    let mut found = Vec::new();
    for s in states {
        let filter = JobFilter {
            state: Some(s),
            ..Default::default()
        };
        found.extend(store.list(&filter)?.into_iter().filter(|r| {
            names.as_ref().is_none_or(|n| {
                n.iter()
                    .any(|n| r.destination.as_deref() == Some(n.as_str()) || r.host == *n)
            })
        }));
    }
    found.sort_by(|a, b| (a.submitted_ms, &a.id).cmp(&(b.submitted_ms, &b.id)));
    Ok(found.into_iter().map(|r| r.id).collect())
}

/// `jobs cancel ID` or `jobs cancel --all [--host H] [--status S]` (at most
/// [`CANCEL_CONCURRENCY`] at once; one line per job; exit 1 if any failed).
pub(super) async fn cancel(
    id: Option<String>,
    grace: f64,
    all: Option<(Option<String>, Option<JobState>)>,
    opts: &HostOptions,
) -> ExitCode {
    let json = opts.json;
    let Ok(grace) = Duration::try_from_secs_f64(grace) else {
        let e = JobError::usage(
            format!("--grace {grace}: not a number of seconds"),
            "give seconds >= 0, e.g. --grace 30",
        );
        return output::report(&e, json, json!({"id": id}));
    };
    let ids = match (id, all) {
        (Some(id), _) => return ExitCode::from(cancel_one(&id, grace, opts).await),
        (None, None) => {
            let e = JobError::usage(
                "`sremote jobs cancel` needs a job id or --all",
                "list them with `sremote jobs ls`",
            );
            return output::report(&e, json, json!({}));
        }
        (None, Some((host, state))) => match unfinished(host.as_deref(), state, opts) {
            Ok(ids) => ids,
            Err(e) => return output::report(&e, json, json!({})),
        },
    };
    if ids.is_empty() {
        if !json {
            eprintln!("sremote: no unfinished job to cancel");
        }
        return ExitCode::SUCCESS;
    }
    let codes: Vec<u8> = futures_util::stream::iter(ids)
        .map(|id| async move { cancel_one(&id, grace, opts).await })
        .buffer_unordered(CANCEL_CONCURRENCY)
        .collect()
        .await;
    let failed = codes.iter().filter(|&&c| c != 0).count();
    if failed > 0 && !json {
        eprintln!(
            "sremote: {failed} of {} jobs could not be cancelled",
            codes.len()
        );
    }
    ExitCode::from(if failed > 0 { 1 } else { 0 })
}

/// `jobs rm [--cancel] IDS… [--processed]`: remove each job (here and on its host); a job
/// not over yet is refused unless `--cancel`, which cancels it first.
pub(super) async fn rm(ids: Vec<String>, cancel_first: bool, opts: &HostOptions) -> ExitCode {
    let json = opts.json;
    let mut code = 0u8;
    for id in ids {
        let removed = async {
            let job = open(&id, opts).await?;
            if cancel_first {
                job.cancel_and_clean().await
            } else {
                job.clean().await
            }
        };
        match removed.await {
            Ok(()) if json => say!("{}", json!({"removed": id})),
            Ok(()) => say!("removed {id}"),
            Err(e) => {
                let _ = output::report(&e, json, json!({"id": id}));
                code = code.max(output::exit_code(&e));
            }
        }
    }
    ExitCode::from(code)
}
