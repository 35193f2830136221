//! `sremote exec HOST -- CMD…`: a program's stdout, stderr and exit code pass through,
//! streamed in bounded memory (`sremote_core::exec_to`); `--json` collects them into one
//! object per host.

use std::io::Write;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use clap::Args;
use serde_json::json;
use sremote_core::{Error, RemoteCommand};
use tokio::io::AsyncWrite;

use crate::commands::{env_pair, seconds};
use crate::fanout::{self, Outcome};
use crate::hosts::{HostOptions, connect_transport};

/// Run a program on HOST; its stdout, stderr and exit code pass through.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  sremote exec local -- uname -a
  sremote exec lab1,lab2 --cwd work -- make -j4     # output prefixed by host
  sremote exec @cluster --json -- hostname          # one JSON object per host
  sremote exec gpu1 -- cat big.log | grep ERROR     # streams: memory stays small

The output streams as the program writes it, however much it is (--json collects it into
one object per host). The program reads end-of-file on stdin; `sremote run` passes stdin
on and stops the program on Ctrl-C.")]
pub struct ExecArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    /// Working directory on the host (relative: to the home directory).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Kill the program after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Run on the best of the hosts named (a group, a list) that has what the work
    /// needs: KEY=VALUE,… of cpus, mem, disk, gpu, gpu-mem, load, python, module, label.
    #[arg(long, value_name = "KEY=VALUE,…")]
    pub needs: Vec<String>,
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

pub async fn exec(a: ExecArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let needs = crate::placement::parse(&a.needs)?;
    let targets = opts.resolve(&[&a.host])?;
    let timeout = seconds(a.timeout)?;
    let env: Vec<_> = a
        .env
        .iter()
        .map(|e| env_pair(e))
        .collect::<Result<_, _>>()?;
    let targets = match crate::placement::apply(targets, needs.as_ref(), &opts).await? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let fan = targets.fanout;
    let a = Arc::new((a, env, timeout));
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let (a, opts) = (a.clone(), o.clone());
        async move {
            let (a, env, timeout) = &*a;
            let c = connect_transport(&spec, &opts).await?;
            let mut cmd = c.command(&a.argv);
            cmd.cwd = a.cwd.clone();
            cmd.timeout = *timeout;
            for (k, v) in env {
                cmd = cmd.env(k, v);
            }
            let host = c.connector.host().to_string();
            if opts.json {
                return collected(&*c.connector, &cmd, &a.argv[0]).await;
            }
            let closed = Arc::new(AtomicBool::new(false));
            let (mut out, mut err) = match fan {
                true => (
                    Sink::prefixed(&spec.name, false),
                    Sink::prefixed(&spec.name, true),
                ),
                false => (Sink::raw(false, &closed), Sink::raw(true, &closed)),
            };
            let r = sremote_core::exec_to(&*c.connector, &cmd, &mut out, &mut err).await;
            out.finish();
            err.finish();
            let code = match r {
                Ok(code) => code,
                // Whoever read our output went away (`… | head`): stop quietly, as a
                // program killed by SIGPIPE would.
                Err(_) if closed.load(Ordering::Relaxed) => {
                    return Ok(Outcome {
                        code: 141,
                        ..Default::default()
                    });
                }
                Err(e) => return Err(e.into()),
            };
            Ok(ended(code, &a.argv[0], &host, json!({"exit_code": code})))
        }
    })
    .await)
}

/// `--json`: run to the end, output collected into the host's object.
async fn collected(
    connector: &dyn sremote_core::Connector,
    cmd: &RemoteCommand,
    program: &str,
) -> Result<Outcome, Error> {
    let out = connector.exec(cmd).await?;
    let json = json!({
        "exit_code": out.exit_code,
        "stdout": String::from_utf8_lossy(&out.stdout),
        "stderr": String::from_utf8_lossy(&out.stderr),
    });
    Ok(ended(out.exit_code, program, connector.host(), json))
}

/// The outcome of a program that ended with `code` (`None`: killed by a signal).
fn ended(code: Option<i32>, program: &str, host: &str, json: serde_json::Value) -> Outcome {
    let (code, failure) = match code {
        Some(code) => (u8::try_from(code).unwrap_or(1), None),
        None => (
            1,
            Some(format!("{program} on {host} was killed by a signal")),
        ),
    };
    Outcome {
        json,
        code,
        failure,
        ..Default::default()
    }
}

/// Where a host's output goes: straight to our stdout/stderr (one host), or line by line
/// prefixed with the host's name (several; a line is never split between hosts).
enum Sink {
    Raw {
        stderr: bool,
        closed: Arc<AtomicBool>,
    },
    Prefixed {
        host: String,
        stderr: bool,
        partial: Vec<u8>,
    },
}

/// A line longer than this is printed in pieces (memory stays bounded).
const MAX_LINE: usize = 64 << 10;

impl Sink {
    fn raw(stderr: bool, closed: &Arc<AtomicBool>) -> Sink {
        Sink::Raw {
            stderr,
            closed: closed.clone(),
        }
    }

    fn prefixed(host: &str, stderr: bool) -> Sink {
        Sink::Prefixed {
            host: host.to_string(),
            stderr,
            partial: Vec::new(),
        }
    }

    /// Print what is left of a last line without a newline.
    fn finish(&mut self) {
        if let Sink::Prefixed {
            host,
            stderr,
            partial,
        } = self
            && !partial.is_empty()
        {
            fanout::print_prefixed(host, partial, *stderr);
            partial.clear();
        }
    }
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Terminal and pipe writes are short; blocking on them here is what `print!`
        // does, and keeps the lines of several hosts whole.
        match self.get_mut() {
            Sink::Raw { stderr, closed } => {
                let r = match stderr {
                    true => std::io::stderr().lock().write_all(buf),
                    false => {
                        let mut so = std::io::stdout().lock();
                        so.write_all(buf).and_then(|()| so.flush())
                    }
                };
                if let Err(e) = &r
                    && e.kind() == std::io::ErrorKind::BrokenPipe
                {
                    closed.store(true, Ordering::Relaxed);
                }
                Poll::Ready(r.map(|()| buf.len()))
            }
            Sink::Prefixed {
                host,
                stderr,
                partial,
            } => {
                partial.extend_from_slice(buf);
                let cut = match partial.iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None if partial.len() >= MAX_LINE => partial.len(),
                    None => 0,
                };
                if cut > 0 {
                    let rest = partial.split_off(cut);
                    fanout::print_prefixed(host, partial, *stderr);
                    *partial = rest;
                }
                Poll::Ready(Ok(buf.len()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
