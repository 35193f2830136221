//! `--needs KEY=VALUE,…` on `run`, `call`, `exec`, `submit` and `probe`: run where it
//! fits. The hosts named (a group, a list) are probed at once and the best that fits is
//! chosen ([`sremote_hosts::place`]); the choice and why go to stderr (with `--json`, one
//! line `{"placement": …}` there, so stdout keeps the command's own shape).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sremote_core::Error;
use sremote_hosts::needs::Needs;
use sremote_hosts::place::{self, DEFAULT_CACHE, DEFAULT_DEADLINE, NoFit, Placement};

use crate::hosts::{HostOptions, Targets, connect_spec};
use crate::output::{self, Style, paint};

/// Parse `--needs` (flags may repeat; each holds `KEY=VALUE,…`).
pub fn parse(flags: &[String]) -> Result<Option<Needs>, Error> {
    if flags.is_empty() {
        return Ok(None);
    }
    Ok(Some(Needs::parse(&flags.join(","))?))
}

/// Seconds from `$name`, else `default`.
fn env_secs(name: &str, default: Duration) -> Result<Duration, Error> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| {
                Error::usage(
                    format!("{name}={v:?} is not a number of seconds"),
                    "e.g. 30, or 0",
                )
            }),
        _ => Ok(default),
    }
}

/// Probe every target and keep the one that fits best (see [`sremote_hosts::place`]);
/// the inner error: no host fits.
pub async fn probe_all(
    targets: &Targets,
    needs: &Needs,
    opts: &HostOptions,
) -> Result<Result<Placement, NoFit>, Error> {
    let opts = Arc::new(opts.clone());
    let deadline = env_secs("SREMOTE_PROBE_TIMEOUT", DEFAULT_DEADLINE)?;
    let cache = env_secs("SREMOTE_PROBE_CACHE", DEFAULT_CACHE)?;
    let hosts: Vec<(String, Vec<String>)> = targets
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.labels.clone()))
        .collect();
    let specs = Arc::new(targets.hosts.clone());
    let needs_owned = Arc::new(needs.clone());
    Ok(place::place(&hosts, needs, deadline, cache, |name| {
        let (specs, opts, needs) = (specs.clone(), opts.clone(), needs_owned.clone());
        async move {
            let spec = specs
                .iter()
                .find(|s| s.name == name)
                .cloned()
                .ok_or_else(|| Error::Usage(format!("{name}: not a candidate")))?;
            let client = connect_spec(&spec, &opts).await?.client();
            place::probe_host(&client, &needs, &spec.labels).await
        }
    })
    .await)
}

/// Say that no host fits (exit 1): the error and each host's lacks on stderr, or with
/// `--json` an error object on stdout.
pub fn report_no_fit(e: &NoFit, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({"ok": false, "error": {"kind": "NoHostFits", "message": e.message,
                "hint": e.hint, "exit_code": 1}, "candidates": e.candidates})
        );
    } else {
        // The lines of the table stay lines (a one-line error would fold them).
        let c = output::colour_stderr();
        eprintln!("{} {}", paint("error:", Style::Error, c), e.message);
        eprintln!("  {} {}", paint("hint:", Style::Hint, c), e.hint);
    }
    ExitCode::from(1)
}

/// With needs: choose one of `targets` and return it alone (saying which and why on
/// stderr); without: `targets` unchanged. No host fits: said, and the exit code (1).
pub async fn apply(
    targets: Targets,
    needs: Option<&Needs>,
    opts: &HostOptions,
) -> Result<Result<Targets, ExitCode>, Error> {
    let Some(needs) = needs else {
        return Ok(Ok(targets));
    };
    let p = match probe_all(&targets, needs, opts).await? {
        Ok(p) => p,
        Err(e) => return Ok(Err(report_no_fit(&e, opts.json))),
    };
    if opts.json {
        eprintln!("{}", p.to_json());
    } else {
        eprintln!(
            "{} {} — {}",
            paint("sremote: chose", Style::Hint, output::colour_stderr()),
            p.chosen,
            p.reason
        );
    }
    let chosen = targets
        .hosts
        .into_iter()
        .find(|h| h.name == p.chosen)
        .ok_or_else(|| Error::Usage(format!("the chosen host {} is not a target", p.chosen)))?;
    Ok(Ok(Targets {
        fanout: false,
        hosts: vec![chosen],
    }))
}

/// What `--needs` asks of a batch system: cores, memory (bytes) and GPUs.
pub type BatchRequest = (Option<u32>, Option<u64>, Option<u32>);

/// `submit --needs` to one host with a batch system: the needs become the resource
/// request (cpus → cores, mem, gpu → GPUs), nothing is probed. Needs a batch system
/// cannot be asked for are refused, naming them.
pub fn as_batch_request(needs: &Needs, host: &str) -> Result<BatchRequest, Error> {
    let mut other = Vec::new();
    if needs.disk.is_some() {
        other.push("disk");
    }
    if needs.gpu_mem.is_some() {
        other.push("gpu-mem");
    }
    if needs.load.is_some() {
        other.push("load");
    }
    if needs.python.is_some() {
        other.push("python");
    }
    if !needs.modules.is_empty() {
        other.push("module");
    }
    if !needs.labels.is_empty() {
        other.push("label");
    }
    if !other.is_empty() {
        return Err(Error::usage(
            format!(
                "{host} runs jobs through a batch system, which is asked for cpus, mem and \
                 gpu; {} cannot be asked of it",
                other.join(", ")
            ),
            "drop them, or say it with --header (e.g. '#SBATCH --constraint=a100') or \
             --partition",
        ));
    }
    let small = |n: u64, what: &str| {
        u32::try_from(n).map_err(|_| Error::Usage(format!("{what}={n} is too large")))
    };
    Ok((
        needs.cpus.map(|n| small(n, "cpus")).transpose()?,
        needs.mem,
        needs.gpu.map(|n| small(n, "gpu")).transpose()?,
    ))
}
