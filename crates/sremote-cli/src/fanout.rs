//! Running one command on many hosts: bounded concurrency, output prefixed by host (or one
//! JSON object per host), a summary naming the hosts that failed.

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};
use sremote_core::Error;
use tokio::sync::Semaphore;

use crate::config::HostSpec;
use crate::hosts::{HostOptions, Targets};
use crate::output::{self, Failure, Style, paint};

/// What a command produced on one host.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Text for stdout (bytes as they came: a single host gets them unchanged).
    pub stdout: Vec<u8>,
    /// Text for stderr.
    pub stderr: Vec<u8>,
    /// The result for `--json`.
    pub json: Value,
    /// Exit code for this host (0: success).
    pub code: u8,
    /// Why it counts as failed when `code != 0` (e.g. `exit code 7`).
    pub failure: Option<String>,
    /// Print `stderr` before `stdout` (a call's own output before its value).
    pub stderr_first: bool,
}

impl Outcome {
    /// A success printing `text` (plus a newline unless empty) and `json`.
    pub fn text(text: impl Into<String>, json: Value) -> Outcome {
        let mut t: String = text.into();
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
        Outcome {
            stdout: t.into_bytes(),
            json,
            ..Default::default()
        }
    }
}

/// Run `f` on every host, at most `parallel` at once; results in input order.
pub async fn map<T, F, Fut>(hosts: &[HostSpec], parallel: usize, f: F) -> Vec<Result<T, Error>>
where
    F: Fn(HostSpec) -> Fut,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let mut results: Vec<Option<Result<T, Error>>> = hosts.iter().map(|_| None).collect();
    let mut rx = spawn_all(hosts, parallel, f);
    while let Some((i, r)) = rx.recv().await {
        results[i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Usage("the task for this host died".into()))))
        .collect()
}

/// Start `f` for every host (bounded); results arrive on the channel as they finish.
fn spawn_all<T, E, F, Fut>(
    hosts: &[HostSpec],
    parallel: usize,
    f: F,
) -> tokio::sync::mpsc::UnboundedReceiver<(usize, Result<T, E>)>
where
    F: Fn(HostSpec) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let limit = Arc::new(Semaphore::new(parallel.max(1)));
    for (i, spec) in hosts.iter().enumerate() {
        let fut = f(spec.clone());
        let (tx, limit) = (tx.clone(), limit.clone());
        tokio::spawn(async move {
            let Ok(_permit) = limit.acquire_owned().await else {
                return;
            };
            // A panic in one host's task must not lose the others: report it as an error.
            // The host's connection is closed before the permit goes to the next host.
            let r = tokio::spawn(crate::hosts::closing(fut))
                .await
                .unwrap_or_else(|e| {
                    Err(E::from(Error::Usage(format!(
                        "internal error while working on this host: {e}"
                    ))))
                });
            let _ = tx.send((i, r));
        });
    }
    rx
}

/// Run `f` on every target and print as results come in: unchanged for a single host,
/// prefixed by host (`host | line`) for several, or one JSON object per host with
/// `--json`. Returns the exit code: a single host's own; for several, 0 when all
/// succeeded, else 3 if any host could not be reached, else 1 — after a summary line
/// naming the hosts that failed.
pub async fn each<F, Fut>(targets: Targets, opts: &HostOptions, f: F) -> ExitCode
where
    F: Fn(HostSpec) -> Fut,
    Fut: Future<Output = Result<Outcome, Error>> + Send + 'static,
{
    each_with(targets, opts, f).await
}

/// [`each`] for work that fails with another error than the core's (a job's
/// [`JobError`](sremote_jobs::JobError)): reported with its own kind and exit code.
pub async fn each_with<E, F, Fut>(targets: Targets, opts: &HostOptions, f: F) -> ExitCode
where
    F: Fn(HostSpec) -> Fut,
    Fut: Future<Output = Result<Outcome, E>> + Send + 'static,
    E: Failure + From<Error> + Send + 'static,
{
    let mut rx = spawn_all(&targets.hosts, opts.parallel, f);
    let mut failed: Vec<(String, String, u8)> = Vec::new();
    while let Some((i, r)) = rx.recv().await {
        let host = &targets.hosts[i].name;
        if !targets.fanout {
            return single(r, opts.json, host);
        }
        match r {
            Ok(o) => {
                if opts.json {
                    print_json(host, &o);
                } else if o.stderr_first {
                    print_prefixed(host, &o.stderr, true);
                    print_prefixed(host, &o.stdout, false);
                } else {
                    print_prefixed(host, &o.stdout, false);
                    print_prefixed(host, &o.stderr, true);
                }
                if o.code != 0 {
                    let why = o.failure.unwrap_or_else(|| format!("exit code {}", o.code));
                    if !opts.json {
                        host_error(host, &why);
                    }
                    failed.push((host.clone(), why, 1));
                }
            }
            Err(e) => {
                if opts.json {
                    println!("{}", output::error_object(Some(host), &e));
                } else {
                    report_error(host, &e);
                }
                failed.push((host.clone(), e.kind().to_string(), e.exit_code()));
            }
        }
    }
    summary(targets.hosts.len(), &failed)
}

/// Print the failure summary and give the fan-out exit code.
pub fn summary(total: usize, failed: &[(String, String, u8)]) -> ExitCode {
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    let list: Vec<String> = failed
        .iter()
        .map(|(h, why, _)| format!("{h} ({why})"))
        .collect();
    eprintln!(
        "{} {} of {total} hosts failed: {}",
        paint("error:", Style::Error, output::colour_stderr()),
        failed.len(),
        list.join(", ")
    );
    let code = if failed.iter().any(|(_, _, c)| *c == 3) {
        3
    } else {
        1
    };
    ExitCode::from(code)
}

fn single(r: Result<Outcome, impl Failure>, json: bool, host: &str) -> ExitCode {
    match r {
        Ok(o) => {
            if json {
                // The same object as one host of many gets (`host` is the name asked for).
                let v = host_json(host, &o);
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else if o.stderr_first {
                let _ = std::io::stderr().write_all(&o.stderr);
                let _ = std::io::stdout().write_all(&o.stdout);
            } else {
                let _ = std::io::stdout().write_all(&o.stdout);
                let _ = std::io::stderr().write_all(&o.stderr);
            }
            let _ = std::io::stdout().flush();
            if o.code != 0
                && let Some(why) = &o.failure
            {
                eprintln!("sremote: {why}");
            }
            ExitCode::from(o.code)
        }
        Err(e) => output::report(&e, json, json!({ "host": host })),
    }
}

/// Print `host | error: …` and `host |   hint: …` on stderr.
pub fn report_error(host: &str, e: &(impl Failure + ?Sized)) {
    let (msg, hint) = output::error_lines(e);
    host_error(host, &msg);
    if let Some(h) = hint {
        let c = output::colour_stderr();
        let prefix = paint(&format!("{host} |"), Style::Host, c);
        eprintln!("{prefix}   {} {h}", paint("hint:", Style::Hint, c));
    }
}

fn host_error(host: &str, msg: &str) {
    let c = output::colour_stderr();
    eprintln!(
        "{} {} {msg}",
        paint(&format!("{host} |"), Style::Host, c),
        paint("error:", Style::Error, c)
    );
}

fn print_json(host: &str, o: &Outcome) {
    println!("{}", host_json(host, o));
}

/// A host's `--json` object: the command's result with `host` (the name asked for),
/// `hostname` (the name the result carried, when different), `ok` and `exit_code`.
fn host_json(host: &str, o: &Outcome) -> Value {
    let mut v = match &o.json {
        Value::Object(m) => Value::Object(m.clone()),
        Value::Null => json!({}),
        other => json!({"value": other}),
    };
    // "host" is the name asked for; a different one the result carried is "hostname".
    if let Some(h) = v.get("host").cloned()
        && h != json!(host)
    {
        v["hostname"] = h;
    }
    v["host"] = json!(host);
    // `call` puts the value in "ok"; everything else gets a success flag there. A failed
    // host always has an "error" object.
    if v.get("ok").is_none() {
        v["ok"] = json!(o.code == 0);
    }
    if o.code != 0 {
        v["exit_code"] = json!(o.code);
    }
    v
}

/// Print `bytes` line by line as `host | line` (the last line completed if needed).
pub fn print_prefixed(host: &str, bytes: &[u8], stderr: bool) {
    if bytes.is_empty() {
        return;
    }
    let colour = if stderr {
        output::colour_stderr()
    } else {
        output::colour_stdout()
    };
    let prefix = paint(&format!("{host} |"), Style::Host, colour);
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
        out.push_str(&prefix);
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
        out.push('\n');
    }
    if stderr {
        let _ = std::io::stderr().write_all(out.as_bytes());
    } else {
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(out.as_bytes());
        let _ = so.flush();
    }
}
