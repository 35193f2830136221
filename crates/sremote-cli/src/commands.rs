//! `call`, `exec`, `bootstrap`, `bench`, `endpoint info`: the basic commands, each on one
//! host or fanned out over several.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use sremote_core::{CallMode, CallOutput, EndpointArtifact, Error};

use crate::fanout::{self, Outcome};
use crate::hosts::{HostOptions, connect_spec, connect_transport};

pub const CALL_EXAMPLES: &str = "Examples:
  sremote call local os getenv HOME
  sremote call local os listdir '\"/tmp\"'          # each ARG is JSON if it parses, else a string
  sremote call local subprocess run '[\"uname\",\"-a\"]' --kw timeout=5
  sremote call bench ./calc.py:multiply 10 7         # a local file's function, shipped with the call
  sremote call @gpu sys probe --json                  # every host of a group, one JSON line each
  sremote call --endpoint ./my-endpoint HOST calc add 2 3   # a custom endpoint";

/// Call MODULE.FUNCTION(ARG…) on HOST and print the value.
#[derive(Args, Debug)]
#[command(after_help = CALL_EXAMPLES)]
pub struct CallArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    /// A module on the host, or PATH.py:FUNCTION — a local Python file, shipped with the
    /// call (with the files next to it that it imports).
    pub module: String,
    /// The function (absent after PATH.py:FUNCTION: then this is the first argument).
    pub function: Option<String>,
    /// Positional arguments: JSON if they parse as JSON, else strings (see --str).
    pub args: Vec<String>,
    /// Keyword argument KEY=VALUE (VALUE is JSON if it parses, else a string).
    #[arg(long = "kw", value_name = "KEY=VALUE")]
    pub kwargs: Vec<String>,
    /// Pass every ARG and --kw VALUE as a string, never as JSON (`42` stays "42").
    #[arg(short = 's', long = "str")]
    pub strings: bool,
    /// Where the call's own stdout and stderr go: `stderr` (default; stdout then carries
    /// the value alone, for `x=$(sremote call …)`), `inline` (stdout and stderr, before
    /// the value), `none`. `--json` has them all.
    #[arg(long, value_name = "WHERE", default_value = "stderr", value_parser = parse_output)]
    pub output: CallOutputTo,
    /// Work in the project venv `<sremote dir>/venvs/NAME` on the host (made by
    /// `sremote install --venv NAME …`): the call runs its Python.
    #[arg(long, value_name = "NAME")]
    pub venv: Option<String>,
    /// Run on the best of the hosts named (a group, a list) that has what the work
    /// needs: KEY=VALUE,… of cpus, mem, disk, gpu, gpu-mem, load, python, module, label.
    #[arg(long, value_name = "KEY=VALUE,…")]
    pub needs: Vec<String>,
    /// Stop the call on the host after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Call path: auto, session, pipe or file.
    #[arg(long, default_value = "auto", value_parser = parse_mode)]
    pub mode: CallMode,
    /// Set an environment variable for the call (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

/// Install the endpoint on HOST (a no-op when the right one is there).
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  sremote bootstrap alice@login.cluster.org
  sremote bootstrap @all --parallel 16
  sremote bootstrap HOST --endpoint ./target/release/my-endpoint")]
pub struct BootstrapArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
}

/// Measure call latency and throughput: `os.getenv("HOME")` N times.
#[derive(Args, Debug)]
#[command(
    after_help = "The first calls (up to 20) warm up — bootstrap, session — and are not counted.
Several hosts are measured at the same time; --parallel 1 measures one after another.

Examples:
  sremote bench local
  sremote bench gpu1 --mode pipe --calls 200        # one endpoint process per call
  sremote bench gpu1 --concurrency 16               # throughput with 16 calls in flight
  sremote bench @cluster --parallel 1 --json        # every host of a group, one by one"
)]
pub struct BenchArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    /// Call path: auto, session, pipe or file.
    #[arg(long, default_value = "auto", value_parser = parse_mode)]
    pub mode: CallMode,
    /// Number of calls.
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Untimed calls first (the session opened, caches and the allocator warm).
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
}

/// Where `call` puts the call's own stdout and stderr (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutputTo {
    /// Both on sremote's stderr (stdout then holds the value alone).
    Stderr,
    /// stdout on stdout (before the value), stderr on stderr.
    Inline,
    /// Dropped.
    None,
}

pub fn parse_output(s: &str) -> Result<CallOutputTo, String> {
    match s {
        "stderr" => Ok(CallOutputTo::Stderr),
        "inline" => Ok(CallOutputTo::Inline),
        "none" => Ok(CallOutputTo::None),
        _ => Err(format!("{s:?}: use stderr, inline or none")),
    }
}

pub fn parse_mode(s: &str) -> Result<CallMode, String> {
    match s {
        "auto" => Ok(CallMode::Auto),
        "session" => Ok(CallMode::Session),
        "pipe" => Ok(CallMode::Pipe),
        "file" => Ok(CallMode::File),
        _ => Err(format!("unknown mode {s:?} (auto, session, pipe, file)")),
    }
}

/// The name of a call mode as the CLI spells it.
pub fn mode_name(mode: CallMode) -> &'static str {
    match mode {
        CallMode::Auto => "auto",
        CallMode::Session => "session",
        CallMode::Pipe => "pipe",
        CallMode::File => "file",
    }
}

/// A CLI argument: JSON if it parses, else the string itself.
pub fn json_or_string(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

pub fn key_value(s: &str, what: &str) -> Result<(String, String), Error> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::usage(
            format!("{what} {s:?} is not KEY=VALUE"),
            format!("write it as {what} NAME=value"),
        )),
    }
}

/// `--env NAME=VALUE`: NAME must be an identifier (every connector refuses others, and a
/// shell could not export them).
pub fn env_pair(s: &str) -> Result<(String, String), Error> {
    let (k, v) = key_value(s, "--env")?;
    if !sremote_core::shell::is_env_name(&k) {
        return Err(Error::usage(
            format!(
                "--env {k:?}: an environment variable name is letters, digits and `_`, not \
                 starting with a digit"
            ),
            "rename the variable",
        ));
    }
    Ok((k, v))
}

pub fn seconds(s: Option<f64>) -> Result<Option<Duration>, Error> {
    s.map(|s| {
        Duration::try_from_secs_f64(s)
            .map_err(|_| Error::usage(format!("bad timeout {s}"), "give seconds >= 0"))
    })
    .transpose()
}

pub async fn call(a: CallArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let needs = crate::placement::parse(&a.needs)?;
    let targets = opts.resolve(&[&a.host])?;
    let parse = |s: &str| match a.strings {
        true => Value::String(s.to_string()),
        false => json_or_string(s),
    };
    let mut kwargs = Vec::new();
    for kw in &a.kwargs {
        let (k, v) = key_value(kw, "--kw")?;
        kwargs.push((k, parse(&v)));
    }
    let env: Vec<_> = a
        .env
        .iter()
        .map(|e| env_pair(e))
        .collect::<Result<_, _>>()?;
    let timeout = seconds(a.timeout)?;
    let target = Target::parse(&a.module, a.function.as_deref(), &a.args)?;
    let targets = match crate::placement::apply(targets, needs.as_ref(), &opts).await? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let args: Vec<Value> = target.args.iter().map(|s| parse(s)).collect();
    let read_as_json = read_as_json(&target.args, &args, &kwargs);
    let a = Arc::new((a, kwargs, env, timeout, args, target, read_as_json));
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let (a, opts) = (a.clone(), o.clone());
        async move {
            let (a, kwargs, env, timeout, args, target, read_as_json) = &*a;
            let client = connect_spec(&spec, &opts).await?.client();
            if a.venv.is_some() {
                client.set_venv(a.venv.as_deref())?;
            }
            let mut call = client
                .call::<Value>(&target.module, &target.function)
                .mode(a.mode)
                .code(target.code.iter().cloned());
            for v in args {
                call = call.arg(v.clone());
            }
            for (k, v) in kwargs {
                call = call.kwarg(k.clone(), v.clone());
            }
            for (k, v) in env {
                call = call.env(k.clone(), v.clone());
            }
            if let Some(t) = timeout {
                call = call.timeout(*t);
            }
            let out = call
                .await
                .map_err(|e| bad_arguments_hint(e, read_as_json))?;
            Ok(call_outcome(&out, a.output))
        }
    })
    .await)
}

/// The ARGs and --kw values typed as text that were sent as JSON other than a string
/// (`42`, `true`, `null`, `[1]`), described for the BadArguments message.
fn read_as_json(texts: &[String], args: &[Value], kwargs: &[(String, Value)]) -> Vec<String> {
    let positional = texts
        .iter()
        .zip(args)
        .enumerate()
        .filter(|(_, (_, v))| !v.is_string())
        .map(|(i, (t, v))| format!("ARG {} `{t}` was sent as JSON {}", i + 1, kind(v)));
    let named = kwargs
        .iter()
        .filter(|(_, v)| !v.is_string())
        .map(|(k, v)| format!("--kw {k}={v} was sent as JSON {}", kind(v)));
    positional.chain(named).collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A `BadArguments` failure of a call whose text arguments were read as JSON says so, and
/// how to send them as strings instead.
fn bad_arguments_hint(e: Error, read_as_json: &[String]) -> Error {
    match e {
        Error::RemoteExec(mut r)
            if r.kind == sremote_core::protocol::ErrorKind::BadArguments
                && !read_as_json.is_empty() =>
        {
            r.message = format!(
                "{} ({}; to send text as a string, add -s/--str or quote it as JSON, e.g. '\"42\"')",
                r.message,
                read_as_json.join(", ")
            );
            Error::RemoteExec(r)
        }
        e => e,
    }
}

/// What `call` and `submit` run: MODULE FUNCTION ARGS…, or PATH.py:FUNCTION ARGS… (the
/// file and its neighbours it imports ship with the call, see [`sremote_core::ship`]).
#[derive(Debug)]
pub struct Target {
    pub module: String,
    pub function: String,
    pub code: Vec<sremote_core::protocol::ShippedModule>,
    pub args: Vec<String>,
}

impl Target {
    pub fn parse(module: &str, function: Option<&str>, args: &[String]) -> Result<Target, Error> {
        if let Some((path, name)) = sremote_core::ship::file_target(module) {
            let (module, code) = sremote_core::ship::local_module(path)?;
            let args = function
                .map(str::to_string)
                .into_iter()
                .chain(args.iter().cloned());
            return Ok(Target {
                module,
                function: name.to_string(),
                code,
                args: args.collect(),
            });
        }
        let Some(function) = function else {
            return Err(Error::usage(
                format!("which function of `{module}`?"),
                "write MODULE FUNCTION [ARG…] (e.g. `os getenv HOME`), or PATH.py:FUNCTION \
                 [ARG…] for a function of a local Python file",
            ));
        };
        Ok(Target {
            module: module.to_string(),
            function: function.to_string(),
            code: Vec::new(),
            args: args.to_vec(),
        })
    }
}

fn call_outcome(out: &CallOutput<Value>, to: CallOutputTo) -> Outcome {
    let m = &out.meta;
    // The endpoint's response (every field of PROTOCOL.md's Response), plus how the
    // client ran it: `mode` and `round_trip_us`.
    let json = json!({
        "protocol": sremote_core::protocol::PROTOCOL_VERSION,
        "ok": out.value, "stdout": out.stdout, "stderr": out.stderr, "id": m.id, "host": m.host,
        "pid": m.pid, "endpoint_version": m.endpoint_version,
        "timing": {"started_unix_ms": m.timing.started_unix_ms, "elapsed_us": m.timing.elapsed_us},
        "mode": mode_name(m.mode), "round_trip_us": m.round_trip.as_micros() as u64,
    });
    // The call's own output first (in the order stdout, stderr), then the value.
    let (mut stdout, stderr) = match to {
        CallOutputTo::Stderr => (String::new(), format!("{}{}", out.stdout, out.stderr)),
        CallOutputTo::Inline => (out.stdout.clone(), out.stderr.clone()),
        CallOutputTo::None => (String::new(), String::new()),
    };
    match &out.value {
        // Text as it is (no quotes), so `x=$(sremote call …)` is the text itself.
        Value::String(s) => stdout.push_str(s),
        v => stdout.push_str(&serde_json::to_string_pretty(v).unwrap_or_default()),
    }
    stdout.push('\n');
    Outcome {
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
        json,
        stderr_first: true,
        ..Default::default()
    }
}

pub async fn bootstrap(a: BootstrapArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let targets = opts.resolve(&[&a.host])?;
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let opts = o.clone();
        async move {
            let c = connect_transport(&spec, &opts).await?;
            let client = c.base_client();
            let report = match &c.endpoint {
                Some(custom) => {
                    c.artifact(custom)?;
                    client.do_bootstrap_install_with(&custom.path).await?
                }
                None => client.do_bootstrap_install().await?,
            };
            let what = if report.installed {
                "installed"
            } else {
                "already up to date:"
            };
            let text = format!(
                "{} {what} {} ({}, sha256 {})",
                report.host,
                report.endpoint_path,
                report.target,
                &report.sha256[..16.min(report.sha256.len())]
            );
            let json = json!({"installed": report.installed, "endpoint": report.endpoint_path,
                "target": report.target, "sha256": report.sha256});
            Ok(Outcome::text(text, json))
        }
    })
    .await)
}

pub async fn bench(a: BenchArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let targets = opts.resolve(&[&a.host])?;
    let fan = targets.fanout;
    let a = Arc::new(a);
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let (a, opts) = (a.clone(), o.clone());
        async move {
            let client = connect_spec(&spec, &opts).await?.client();
            let r = crate::bench::run(client, a.mode, a.calls, a.concurrency, a.warmup).await?;
            // Several hosts: the fan-out prefixes each line with its host.
            let host = if fan {
                String::new()
            } else {
                format!("{}: ", spec.name)
            };
            let text = format!(
                "{host}{} calls, {} in flight, mode {}: p50 {:.1} µs, p99 {:.1} µs, {:.0} calls/s",
                r.calls,
                r.concurrency,
                mode_name(r.mode),
                r.p50.as_secs_f64() * 1e6,
                r.p99.as_secs_f64() * 1e6,
                r.calls_per_s()
            );
            Ok(Outcome::text(text, r.to_json()))
        }
    })
    .await)
}

/// The endpoint binary this program deploys: `--endpoint`'s, `$SREMOTE_ENDPOINT`'s, or
/// the bundled one.
fn deployed_artifact(custom: Option<&std::path::Path>) -> Result<EndpointArtifact, Error> {
    let artifact = match (custom, std::env::var_os("SREMOTE_ENDPOINT")) {
        (Some(p), _) => Some(EndpointArtifact::custom(p)?),
        (None, Some(p)) => Some(EndpointArtifact::from_file(std::path::Path::new(&p))?),
        (None, None) => EndpointArtifact::bundled(),
    };
    let Some(a) = artifact else {
        return Err(Error::usage(
            "this sremote has no bundled endpoint",
            "set SREMOTE_ENDPOINT to one built by deploy/build-endpoint.sh",
        ));
    };
    Ok(a)
}

pub fn endpoint_info(json_out: bool, custom: Option<&std::path::Path>) -> Result<ExitCode, Error> {
    let a = deployed_artifact(custom)?;
    let info = json!({
        "version": sremote_core::protocol::VERSION,
        "protocol": sremote_core::protocol::PROTOCOL_VERSION,
        "target": a.target, "sha256": a.sha256, "size": a.bytes().len(),
        "origin": a.origin, "install_name": a.install_name,
    });
    if json_out {
        println!("{info}");
    } else {
        for (k, v) in info.as_object().into_iter().flatten() {
            println!(
                "{k:>13}: {}",
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `asked` (a Rust triple such as `x86_64-unknown-linux-gnu`, or sremote's own
/// `linux-x86_64`) names the target `have` (`linux-x86_64`).
fn same_target(asked: &str, have: &str) -> bool {
    let Some((os, arch)) = have.split_once('-') else {
        return asked == have;
    };
    asked == have || (asked.split('-').next() == Some(arch) && asked.split('-').any(|p| p == os))
}

/// `sremote endpoint extract [--target TRIPLE] PATH`: write the endpoint binary (mode
/// 0755, through a temp file and a rename) to PATH, or into PATH when it is a directory.
pub fn endpoint_extract(
    path: &std::path::Path,
    target: Option<&str>,
    custom: Option<&std::path::Path>,
    json_out: bool,
) -> Result<ExitCode, Error> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let a = deployed_artifact(custom)?;
    if let Some(t) = target
        && !same_target(t, &a.target)
    {
        return Err(Error::usage(
            format!(
                "the endpoint here ({}) is for {}, not {t}",
                a.origin, a.target
            ),
            format!(
                "build one for {t} with deploy/build-endpoint.sh and pass it as --endpoint or \
                 SREMOTE_ENDPOINT"
            ),
        ));
    }
    let dest = if path.is_dir() {
        path.join(&a.install_name)
    } else {
        path.to_path_buf()
    };
    let fail = |e: std::io::Error| {
        Error::usage(
            format!("cannot write the endpoint to {}: {e}", dest.display()),
            "check the directory and its permissions",
        )
    };
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(fail)?;
    tmp.write_all(a.bytes()).map_err(fail)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(&dest).map_err(|e| fail(e.error))?;
    let info = json!({"path": dest, "version": sremote_core::protocol::VERSION,
        "target": a.target, "sha256": a.sha256, "size": a.bytes().len()});
    if json_out {
        println!("{info}");
    } else {
        println!(
            "{} ({} {}, sha256 {})",
            dest.display(),
            a.target,
            sremote_core::protocol::VERSION,
            a.sha256
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::same_target;

    #[test]
    fn targets_by_triple_or_by_name() {
        assert!(same_target("x86_64-unknown-linux-gnu", "linux-x86_64"));
        assert!(same_target("x86_64-unknown-linux-musl", "linux-x86_64"));
        assert!(same_target("linux-x86_64", "linux-x86_64"));
        assert!(!same_target("aarch64-unknown-linux-gnu", "linux-x86_64"));
        assert!(!same_target("x86_64-apple-darwin", "linux-x86_64"));
    }
}
