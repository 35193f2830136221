//! `sremote run HOST -- CMD…`: live stdout/stderr, the remote exit code, and Ctrl-C that
//! stops the program on the host (SIGINT to its process group, SIGKILL if it lingers).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use sremote_core::connector::BoxFuture;
use sremote_core::{ConnectorError, ConnectorErrorKind, Error, RemoteCommand};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use crate::commands::env_pair;
use crate::config::HostSpec;
use crate::fanout;
use crate::hosts::{Connected, HostOptions, connect_spec, connect_transport};
use crate::output;

/// How long a program may take to stop after SIGINT before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

/// Run a program on HOST with live output; Ctrl-C stops it on the host.
#[derive(Args, Debug)]
#[command(
    after_help = "The program's stdout and stderr arrive as it writes them and its exit code is
sremote's. Ctrl-C (or SIGTERM) sends SIGINT to the program and its children on the
host, SIGKILL after 3 s or a second Ctrl-C; sremote then exits with 130. Local stdin
is passed to the program (not with -n, nor with several hosts). With --json each
line is an object {host, stream, line}, and each host ends with {host, exit_code}.

Examples:
  sremote run gpu1 -- nvidia-smi
  sremote run gpu1 --cwd proj --env CUDA_VISIBLE_DEVICES=0 -- python train.py --epochs 3
  sremote run lab1,lab2 -- make -j8      # lines prefixed by host"
)]
pub struct RunArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    /// Working directory on the host (relative: to the home directory).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Do not pass stdin to the program (it reads end-of-file).
    #[arg(short = 'n', long)]
    pub no_stdin: bool,
    /// Run it as a detached job that survives sremote and the connection; prints the job
    /// id (follow it with `sremote jobs log -f ID`).
    #[arg(long)]
    pub detach: bool,
    /// Run in the project venv `<sremote dir>/venvs/NAME` on the host (its `python3` and
    /// scripts first in PATH, `VIRTUAL_ENV` set); see `sremote install --venv`.
    #[arg(long, value_name = "NAME")]
    pub venv: Option<String>,
    /// Run on the best of the hosts named (a group, a list) that has what the work
    /// needs: KEY=VALUE,… of cpus, mem, disk, gpu, gpu-mem, load, python, module, label.
    #[arg(long, value_name = "KEY=VALUE,…")]
    pub needs: Vec<String>,
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

/// Wraps the program: tells its pid (the process group) on stderr's first line, puts the
/// configured path first in PATH, activates a project venv, then becomes the program.
/// `$1` nonce, `$2` path prefix, `$3` venv dir (relative: to the home directory; empty:
/// none).
const WRAPPER: &str = r#"n=$1 p=$2 v=$3; shift 3
if [ -n "$p" ]; then PATH=$p:$PATH; export PATH; fi
if [ -n "$v" ]; then
  case $v in /*) ;; *) v=$HOME/$v ;; esac
  [ -x "$v/bin/python3" ] || { echo "sremote: there is no venv $v on this host: create it with sremote install HOST --venv NAME PACKAGE" >&2; exit 127; }
  VIRTUAL_ENV=$v PATH=$v/bin:$PATH; export VIRTUAL_ENV PATH
fi
printf 'sremote-run-%s %s\n' "$n" "$$" >&2
exec "$@""#;

/// `$1` signal, `$2` pid: the process group, else the process.
const KILL: &str =
    r#"kill -s "$1" -- "-$2" 2>/dev/null || kill -s "$1" -- "$2" 2>/dev/null; exit 0"#;

pub async fn run(a: RunArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let needs = crate::placement::parse(&a.needs)?;
    let targets = opts.resolve(&[&a.host])?;
    let env: Vec<(String, String)> = a
        .env
        .iter()
        .map(|e| env_pair(e))
        .collect::<Result<_, _>>()?;
    let targets = match crate::placement::apply(targets, needs.as_ref(), &opts).await? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    check_venv(&a)?;
    if a.detach {
        return detach(targets, a.argv, a.cwd, env, opts).await;
    }
    let (cancel_tx, cancel) = watch::channel(0u32);
    tokio::spawn(watch_signals(cancel_tx));
    let fan = targets.fanout;
    let stdin = !a.no_stdin && !fan;
    let job = Arc::new(Job {
        venv: a.venv,
        argv: a.argv,
        cwd: a.cwd,
        env,
        fan,
        mode: match (opts.json, fan) {
            (true, _) => Mode::Json,
            (false, true) => Mode::Prefixed,
            (false, false) => Mode::Raw,
        },
        stdin,
    });
    let results = fanout::map(&targets.hosts, opts.parallel, |spec| {
        let (job, opts, cancel) = (job.clone(), opts.clone(), cancel.clone());
        async move { job.run_on(spec, &opts, cancel).await }
    })
    .await;
    let interrupted = *cancel.borrow() > 0;
    if opts.json {
        for (spec, r) in targets.hosts.iter().zip(&results) {
            let v = match r {
                Ok(End::Exited(code)) => serde_json::json!({"host": spec.name, "exit_code": code}),
                Ok(End::Signalled) => {
                    serde_json::json!({"host": spec.name, "exit_code": null, "signalled": true})
                }
                Err(e) => output::error_object(Some(&spec.name), e),
            };
            println!("{v}");
        }
    }
    if !fan {
        let r = results
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(Error::Usage("no host".into())));
        if interrupted {
            return Ok(ExitCode::from(130));
        }
        return match r {
            Ok(End::Exited(code)) => Ok(ExitCode::from(code)),
            Ok(End::Signalled) => {
                eprintln!(
                    "sremote: {} on {} was killed by a signal",
                    job.argv[0], a.host
                );
                Ok(ExitCode::from(1))
            }
            // Already printed as JSON above.
            Err(e) if opts.json => Ok(ExitCode::from(output::exit_code(&e))),
            Err(e) => Err(e),
        };
    }
    Ok(fan_summary(&targets.hosts, results, interrupted))
}

/// Several hosts: each error said (`host | error: …`), then (unless interrupted: 130) the
/// summary naming the hosts that failed, and the fan-out's exit code.
fn fan_summary(
    hosts: &[HostSpec],
    results: Vec<Result<End, Error>>,
    interrupted: bool,
) -> ExitCode {
    let mut failed = Vec::new();
    for (spec, r) in hosts.iter().zip(results) {
        let name = spec.name.clone();
        match r {
            Ok(End::Exited(0)) => {}
            Ok(End::Exited(code)) => failed.push((name, format!("exit code {code}"), 1)),
            Ok(End::Signalled) => failed.push((name, "killed by a signal".into(), 1)),
            Err(e) => {
                fanout::report_error(&spec.name, &e);
                failed.push((name, output::error_kind(&e), output::exit_code(&e)));
            }
        }
    }
    if interrupted {
        return ExitCode::from(130);
    }
    fanout::summary(hosts.len(), &failed)
}

/// `--venv NAME`: a venv name, and not with `--detach` (yet).
fn check_venv(a: &RunArgs) -> Result<(), Error> {
    let Some(name) = &a.venv else {
        return Ok(());
    };
    if !sremote_core::valid_venv_name(name) {
        return Err(Error::usage(
            format!("--venv {name:?} is not a venv name"),
            "use letters, digits, `_`, `.` and `-`",
        ));
    }
    if a.detach {
        return Err(Error::usage(
            "--venv with --detach is not supported yet",
            format!(
                "name the venv's interpreter instead: sremote run HOST --detach -- \
                 .sremote/venvs/{name}/bin/python3 …"
            ),
        ));
    }
    Ok(())
}

/// `--detach`: submit `job.run(argv)` on every host as a detached job (a new one each time)
/// and print its id. The program starts in the home directory (or `--cwd`, relative to it)
/// with the host's configured path first in PATH.
async fn detach(
    targets: crate::hosts::Targets,
    argv: Vec<String>,
    cwd: Option<String>,
    env: Vec<(String, String)>,
    opts: Arc<HostOptions>,
) -> Result<ExitCode, Error> {
    use sremote_jobs::JobsExt;
    let job = Arc::new((argv, cwd, env));
    let o = opts.clone();
    Ok(fanout::each_with(targets, &opts, move |spec| {
        let (job, opts) = (job.clone(), o.clone());
        async move {
            let (argv, cwd, env) = &*job;
            let client = connect_spec(&spec, &opts).await?.client();
            let home: Option<String> = client.call("os", "getenv").arg("HOME").await?.value;
            let dir = match (cwd, home) {
                (Some(d), _) if d.starts_with('/') => d.clone(),
                (Some(d), Some(h)) => format!("{h}/{d}"),
                (None, Some(h)) => h,
                (Some(d), None) => d.clone(),
                (None, None) => ".".into(),
            };
            let mut wrapped = vec!["/bin/sh".to_string()];
            wrapped.extend(crate::hosts::with_path(&spec.path, argv));
            let vars: std::collections::BTreeMap<&String, &String> = spec
                .env
                .iter()
                .chain(env.iter().map(|(k, v)| (k, v)))
                .collect();
            let call = client
                .call::<serde_json::Value>("job", "run")
                .arg(wrapped)
                .kwarg("cwd", dir)
                .kwarg("env", vars);
            let store = sremote_jobs::JobStore::open_default()?;
            let submitted = client
                .submit(call)
                .force(true)
                .store(store)
                .destination(&spec.name)
                .reach(crate::jobs_reach::reach(&spec, &client, &opts))
                .name(argv.join(" "))
                .await?;
            let id = submitted.id().to_string();
            Ok::<_, sremote_jobs::JobError>(fanout::Outcome::text(
                id.clone(),
                serde_json::json!({"job": id}),
            ))
        }
    })
    .await)
}

/// Count SIGINT, SIGTERM and SIGHUP.
async fn watch_signals(tx: watch::Sender<u32>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        tx.send_modify(|n| *n += 1);
    }
}

enum End {
    Exited(u8),
    Signalled,
}

struct Job {
    /// The project venv's name, if any.
    venv: Option<String>,
    argv: Vec<String>,
    cwd: Option<String>,
    env: Vec<(String, String)>,
    fan: bool,
    mode: Mode,
    stdin: bool,
}

fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}{:x}",
        std::process::id(),
        t.as_nanos() & 0xffff_ffff_ffff
    )
}

impl Job {
    async fn run_on(
        &self,
        spec: HostSpec,
        opts: &HostOptions,
        mut cancel: watch::Receiver<u32>,
    ) -> Result<End, Error> {
        let c = tokio::select! {
            c = connect_transport(&spec, opts) => c?,
            _ = cancel.changed() => return Err(Error::Usage("interrupted".into())),
        };
        let nonce = nonce();
        let proc = match c.connector.spawn(&self.command(&spec, &nonce)).await {
            Ok(p) => p,
            Err(e) if e.kind == ConnectorErrorKind::Unsupported => {
                return self.without_spawn(&c).await;
            }
            Err(e) => return Err(e.into()),
        };
        let out = tokio::spawn(forward(
            proc.stdout,
            Sink::new(&spec.name, self.mode, false),
            None,
        ));
        let (pid_tx, pid_rx) = oneshot::channel();
        let marker = format!("sremote-run-{nonce} ");
        let err = tokio::spawn(forward(
            proc.stderr,
            Sink::new(&spec.name, self.mode, true),
            Some((marker, pid_tx)),
        ));
        let feeder = if self.stdin {
            let mut remote_in = proc.stdin;
            Some(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut remote_in).await;
                let _ = remote_in.shutdown().await;
            }))
        } else {
            drop(proc.stdin);
            None
        };
        let ended = self.supervise(&c, proc.wait, pid_rx, cancel).await;
        if let Ok(Some(_)) = ended {
            // Drain what is left of the output.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                let _ = out.await;
                let _ = err.await;
            })
            .await;
        }
        if let Some(f) = feeder {
            f.abort();
        }
        Ok(match ended? {
            Some(Some(c)) => End::Exited((c & 0xff) as u8),
            Some(None) | None => End::Signalled,
        })
    }

    /// The program behind the wrapper (which reports its pid on stderr after `nonce`),
    /// with the host's PATH additions, venv, cwd and env.
    fn command(&self, spec: &HostSpec, nonce: &str) -> RemoteCommand {
        let path = spec.path.join(":");
        let venv = match &self.venv {
            Some(name) => format!(
                "{}/venvs/{name}",
                spec.endpoint_dir.as_deref().unwrap_or(".sremote")
            ),
            None => String::new(),
        };
        let mut cmd = RemoteCommand::new("/bin/sh")
            .args(["-c", WRAPPER, "sremote-run", nonce, &path, &venv])
            .args(&self.argv);
        cmd.cwd = self.cwd.clone();
        for (k, v) in spec.env.iter().chain(self.env.iter().map(|(k, v)| (k, v))) {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// Wait for the program's end (its exit code; `None`: a signal), passing Ctrl-C on as
    /// SIGINT (then SIGKILL, also after [`GRACE`] without an end); `None` when it still
    /// does not end after that (given up: dropping `wait` kills what is left).
    async fn supervise(
        &self,
        c: &Connected,
        mut wait: BoxFuture<Result<Option<i32>, ConnectorError>>,
        pid_rx: oneshot::Receiver<u32>,
        mut cancel: watch::Receiver<u32>,
    ) -> Result<Option<Option<i32>>, Error> {
        let mut pid_rx = Some(pid_rx);
        let mut pid: Option<u32> = None;
        let mut signals_sent = 0u32;
        let mut deadline: Option<tokio::time::Instant> = None;
        let code = loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut wait => break r?,
                p = async { pid_rx.as_mut().expect("checked").await }, if pid_rx.is_some() => {
                    pid_rx = None;
                    pid = p.ok();
                }
                ch = cancel.changed(), if signals_sent < 2 => {
                    if ch.is_err() { continue; }
                    let count = *cancel.borrow();
                    let sig = if count >= 2 || signals_sent == 1 { "KILL" } else { "INT" };
                    signals_sent = if sig == "KILL" { 2 } else { 1 };
                    self.signal(c, pid, sig).await;
                    deadline = Some(tokio::time::Instant::now() + GRACE);
                }
                () = sleep => {
                    if signals_sent < 2 {
                        signals_sent = 2;
                        self.signal(c, pid, "KILL").await;
                        deadline = Some(tokio::time::Instant::now() + GRACE);
                    } else {
                        // Still no end: give up on it.
                        return Ok(None);
                    }
                }
            }
        };
        Ok(Some(code))
    }

    /// Send `sig` to the program's process group on the host.
    async fn signal(&self, c: &Connected, pid: Option<u32>, sig: &str) {
        let Some(pid) = pid else { return };
        if !self.fan {
            let note = if sig == "INT" {
                "stopping it (Ctrl-C again to kill)"
            } else {
                "killing it"
            };
            eprintln!("sremote: interrupted: {note} on {}", c.spec.name);
        }
        let cmd = RemoteCommand::new("/bin/sh")
            .args(["-c", KILL, "sremote-kill", sig, &pid.to_string()])
            .timeout(Duration::from_secs(10));
        if let Err(e) = c.connector.exec(&cmd).await {
            output::warn(&format!(
                "could not signal the program on {}: {e}",
                c.spec.name
            ));
        }
    }

    /// Connectors without `spawn` (REST): run to the end, then print.
    async fn without_spawn(&self, c: &Connected) -> Result<End, Error> {
        tracing::info!(
            "{} cannot stream; output comes when the program ends",
            c.spec.name
        );
        let mut cmd = c.command(&self.argv);
        cmd.cwd = self.cwd.clone();
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        let out = c.connector.exec(&cmd).await?;
        Sink::new(&c.spec.name, self.mode, false).write(&out.stdout, true);
        Sink::new(&c.spec.name, self.mode, true).write(&out.stderr, true);
        Ok(match out.exit_code {
            Some(code) => End::Exited((code & 0xff) as u8),
            None => End::Signalled,
        })
    }
}

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Unchanged (one host).
    Raw,
    /// Line by line after `host |`.
    Prefixed,
    /// One JSON object per line: `{"host", "stream", "line"}`.
    Json,
}

/// Where a stream goes.
struct Sink {
    host: String,
    mode: Mode,
    stderr: bool,
}

impl Sink {
    fn new(host: &str, mode: Mode, stderr: bool) -> Sink {
        Sink {
            host: host.to_string(),
            mode,
            stderr,
        }
    }

    /// Write `buf`; line modes write only complete lines (the rest stays for later) unless
    /// `last`. Returns how much was written.
    fn write(&self, buf: &[u8], last: bool) -> usize {
        if self.mode == Mode::Raw {
            if self.stderr {
                let _ = std::io::stderr().write_all(buf);
            } else {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(buf);
                let _ = o.flush();
            }
            return buf.len();
        }
        let upto = if last {
            buf.len()
        } else {
            buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        if self.mode == Mode::Prefixed {
            fanout::print_prefixed(&self.host, &buf[..upto], self.stderr);
            return upto;
        }
        let text = String::from_utf8_lossy(&buf[..upto]);
        let stream = if self.stderr { "stderr" } else { "stdout" };
        let mut o = std::io::stdout().lock();
        for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
            if upto > 0 {
                let v = serde_json::json!({"host": self.host, "stream": stream, "line": line});
                let _ = writeln!(o, "{v}");
            }
        }
        let _ = o.flush();
        upto
    }
}

/// Copy `from` to `sink`; with a marker, the first line must be `<marker><pid>`: it is
/// taken out and the pid sent.
async fn forward(
    mut from: Box<dyn AsyncRead + Send + Unpin>,
    sink: Sink,
    mut marker: Option<(String, oneshot::Sender<u32>)>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 32 << 10];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some((m, _)) = &marker {
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                if buf.len() < 256 {
                    continue;
                }
                marker = None;
                continue;
            };
            let line = String::from_utf8_lossy(&buf[..nl]).into_owned();
            if let Some(pid) = line
                .strip_prefix(m.as_str())
                .and_then(|p| p.trim().parse().ok())
                && let Some((_, tx)) = marker.take()
            {
                let _ = tx.send(pid);
                buf.drain(..=nl);
            } else {
                marker = None;
            }
        }
        let used = sink.write(&buf, false);
        buf.drain(..used);
    }
    if !buf.is_empty() {
        sink.write(&buf, true);
    }
}
