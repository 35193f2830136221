//! The building block for **command transports**: anything that runs an argv behind a
//! prefix on this machine — `runuser -u USER --`, `sudo -u USER --`, `podman exec -i C`,
//! `kubectl exec -i POD --`, `srun --jobid J --overlap`. [`CommandTransport`] is a whole
//! [`Connector`]: exec, push, pull and spawn all run `PREFIX… /bin/sh -c SCRIPT sh ARG…`
//! with the scripts of [`super::script`], so push and pull go through exec too and every
//! value stays an argument (no shell interprets it).
//!
//! The local prefix program runs in a process group of its own, killed on timeout, when
//! the caller drops an `exec` future or a spawned process, and when the program exits (its
//! leftover children). Where the program does not run under that group (a container, a
//! Slurm step), [`remote_kill`](CommandTransport::remote_kill) also kills the host-side
//! process group through the prefix, by the pid the script reported.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sremote_core::ConnectorError> {
//! use sremote_core::connector::command::CommandTransport;
//! use sremote_core::{Connector, RemoteCommand};
//! let alice = CommandTransport::new("runuser:alice", ["runuser", "-u", "alice", "--"]);
//! let out = alice.exec(&RemoteCommand::new("id").arg("-un")).await?;
//! assert_eq!(out.stdout, b"alice\n");
//! # Ok(()) }
//! ```

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use super::script::{self, Task};
use super::support::{
    OpenSource, PartFile, ProcessGroup, pull_action, push_action, timeout_error, watch_process,
    with_progress,
};
use super::{Connector, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source};
use crate::error::{ConnectorError, ConnectorErrorKind as Kind};

/// What the host needs when a script never ran.
const NEEDS: &str = "the prefix must run its arguments as a program on the host, which needs \
                     a POSIX /bin/sh (try `PREFIX /bin/sh -c true`)";

/// A [`Connector`] that runs everything as `PREFIX… /bin/sh -c SCRIPT sh ARG…` on this
/// machine (see the [module documentation](self)).
#[derive(Debug, Clone)]
pub struct CommandTransport {
    host: String,
    prefix: Vec<String>,
    remote_kill: bool,
}

impl CommandTransport {
    /// A transport named `host` (for messages) that puts `prefix` before every argv.
    pub fn new<I, S>(host: impl Into<String>, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandTransport {
            host: host.into(),
            prefix: prefix.into_iter().map(Into::into).collect(),
            remote_kill: false,
        }
    }

    /// Also kill the host-side process group (through the prefix, by the pid the script
    /// reported) on timeout and drop: for prefixes whose program does not live in the
    /// local process group (`podman exec`, `kubectl exec`, `srun`). Default: off.
    pub fn remote_kill(mut self, yes: bool) -> Self {
        self.remote_kill = yes;
        self
    }

    /// The prefix put before every argv.
    pub fn prefix(&self) -> &[String] {
        &self.prefix
    }

    /// Start `PREFIX /bin/sh -c script sh args…` with these stdin and stdout, stderr piped,
    /// in a new local process group.
    fn start(
        &self,
        script: &str,
        args: Vec<String>,
        (stdin, stdout): (Stdio, Stdio),
        action: &str,
    ) -> Result<Running, ConnectorError> {
        let mut argv = self
            .prefix
            .iter()
            .map(String::as_str)
            .chain(["/bin/sh", "-c", script, "sh"])
            .chain(args.iter().map(String::as_str));
        let program = argv.next().unwrap_or("/bin/sh");
        let child = tokio::process::Command::new(program)
            .args(argv)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ConnectorError::io(&self.host, action, &e).hint(format!(
                    "cannot start `{program}` here: install it or fix the prefix"
                ))
            })?;
        let pid = Arc::new(AtomicU32::new(0));
        let remote = self.remote_kill.then(|| (self.clone(), pid.clone()));
        Ok(Running {
            guard: Guard {
                _group: ProcessGroup::new(child.id()),
                remote,
            },
            pid,
            child,
        })
    }

    /// Kill the host-side process group of `pid` through the prefix (not waited for).
    fn kill_remote(&self, pid: u32) {
        if let Ok(r) = self.start(script::KILL, vec![pid.to_string()], null2(), "kill") {
            tokio::spawn(async move { r.child.wait_with_output().await });
        }
    }

    /// Wait for a push or pull script; `Ok` when it exited 0, else its typed error.
    fn transfer_outcome(
        &self,
        action: &str,
        nonce: &str,
        code: Option<i32>,
        stderr: Vec<u8>,
    ) -> Result<Option<script::Marker>, ConnectorError> {
        match script::split_stderr(stderr, nonce) {
            script::Stderr::NotStarted(text) => {
                Err(script::not_started(&self.host, action, code, &text, NEEDS))
            }
            script::Stderr::Ran(marker, _) if code == Some(0) => Ok(marker),
            script::Stderr::Ran(_, text) => {
                Err(script::transfer_error(&self.host, action, code, &text))
            }
        }
    }
}

fn null2() -> (Stdio, Stdio) {
    (Stdio::null(), Stdio::null())
}

/// A started script: the child, the pid its marker reports, and what kills it on drop.
struct Running {
    child: Child,
    pid: Arc<AtomicU32>,
    guard: Guard,
}

/// Kills the local process group, and with `remote` the host-side one, when dropped.
struct Guard {
    _group: ProcessGroup,
    remote: Option<(CommandTransport, Arc<AtomicU32>)>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some((t, pid)) = &self.remote
            && let pid @ 1.. = pid.load(Ordering::Relaxed)
            && tokio::runtime::Handle::try_current().is_ok()
        {
            t.kill_remote(pid);
        }
    }
}

#[async_trait]
impl Connector for CommandTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        let action = format!("exec {}", cmd.program);
        cmd.validate(&self.host)?;
        let nonce = script::nonce();
        let stdin = match cmd.stdin {
            Some(_) => Stdio::piped(),
            None => Stdio::null(),
        };
        let args = script::exec_args(cmd, &nonce);
        let mut r = self.start(script::EXEC, args, (stdin, Stdio::piped()), &action)?;
        if let (Some(mut pipe), Some(data)) = (r.child.stdin.take(), cmd.stdin.clone()) {
            // Fed while the output is read; a program may exit without reading it all.
            tokio::spawn(async move {
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            });
        }
        let mut out = r.child.stdout.take().expect("piped");
        let stdout = Task::spawn(async move {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf).await;
            buf
        });
        let err = r.child.stderr.take().expect("piped");
        let stderr = script::read_stderr(err, nonce.clone(), r.pid.clone());
        let body = async {
            let (out, err) = (stdout.join().await, stderr.join().await);
            let status = r.child.wait().await;
            (out.unwrap_or_default(), err.unwrap_or_default(), status)
        };
        let (out, err, status) = match cmd.timeout {
            None => body.await,
            Some(limit) => tokio::time::timeout(limit, body).await.map_err(|_| {
                timeout_error(&self.host, &action, limit, "its process group was killed")
            })?,
        };
        let code = status
            .map_err(|e| ConnectorError::io(&self.host, &action, &e))?
            .code();
        drop(r.guard); // the program's leftover children die with it
        script::exec_result(&self.host, cmd, &nonce, code, (out, err), NEEDS)
    }

    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        let action = push_action(&from, to);
        let src = OpenSource::open(&from, &self.host, &action)?;
        let local = |e: std::io::Error| ConnectorError::io(&self.host, &action, &e);
        let stdin = match &src.file {
            Some(f) => Stdio::from(f.try_clone().map_err(local)?),
            None => Stdio::piped(),
        };
        let nonce = script::nonce();
        let args = script::push_args(&nonce, to, src.mode, src.size);
        let mut r = self.start(script::PUSH, args, (stdin, Stdio::null()), &action)?;
        let err = r.child.stderr.take().expect("piped");
        let stderr = script::read_stderr(err, nonce.clone(), r.pid.clone());
        let (pipe, bytes) = (r.child.stdin.take(), src.bytes);
        let writer = async {
            if let Some(mut pipe) = pipe {
                let mut done = 0;
                for part in bytes.chunks(1 << 20) {
                    pipe.write_all(part).await?;
                    done += part.len() as u64;
                    from.progress.inspect(|p| p(done));
                }
                pipe.shutdown().await?;
            }
            std::io::Result::Ok(())
        };
        let offset = || {
            let f = src.file.as_ref();
            f.and_then(|mut f| std::io::Seek::stream_position(&mut f).ok())
                .unwrap_or(0)
        };
        let progress = from.progress.filter(|_| src.file.is_some());
        let body = async { tokio::join!(writer, stderr.join(), r.child.wait()) };
        let (_, stderr, status) = with_progress(body, progress, offset).await;
        let code = status.map_err(local)?.code();
        self.transfer_outcome(&action, &nonce, code, stderr.unwrap_or_default())?;
        from.progress.inspect(|p| p(src.size));
        Ok(())
    }

    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        let action = pull_action(from, &to);
        let local = |e: std::io::Error| ConnectorError::io(&self.host, &action, &e);
        let part = PartFile::create(to.path).map_err(local)?;
        let nonce = script::nonce();
        let args = script::pull_args(&nonce, from);
        let mut r = self.start(script::PULL, args, (Stdio::null(), Stdio::piped()), &action)?;
        let out = r.child.stdout.take().expect("piped").into_owned_fd();
        let (out, file) = (out.map_err(local)?, part.file().try_clone().map_err(local)?);
        let copy_nonce = nonce.clone();
        let copy =
            tokio::task::spawn_blocking(move || script::copy_after_begin(out, file, &copy_nonce));
        let err = r.child.stderr.take().expect("piped");
        let stderr = script::read_stderr(err, nonce.clone(), r.pid.clone());
        let body = async { tokio::join!(copy, stderr.join(), r.child.wait()) };
        let (copied, stderr, status) = with_progress(body, to.progress, || part.len()).await;
        let code = status.map_err(local)?.code();
        let marker = self.transfer_outcome(&action, &nonce, code, stderr.unwrap_or_default())?;
        match copied.map_err(|e| local(std::io::Error::other(e)))? {
            Ok(true) => {}
            Ok(false) => return Err(script::lost_stdout(&self.host, &action)),
            Err(e) => return Err(local(e)),
        }
        to.progress.inspect(|p| p(part.len()));
        let (mode, mtime) = marker.map(|m| m.mode_and_mtime()).unwrap_or_default();
        part.finish(mode, mtime).map_err(local)
    }

    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        let action = format!("spawn {}", cmd.program);
        cmd.validate(&self.host)?;
        let nonce = script::nonce();
        let args = script::exec_args(cmd, &nonce);
        let piped = (Stdio::piped(), Stdio::piped());
        let mut r = self.start(script::EXEC, args, piped, &action)?;
        let (Some(stdin), Some(mut stdout), Some(mut stderr)) = (
            r.child.stdin.take(),
            r.child.stdout.take(),
            r.child.stderr.take(),
        ) else {
            return Err(ConnectorError::new(Kind::Other, &self.host, action).detail("no pipes"));
        };
        let head = script::read_head(&mut stdout, &mut stderr, &nonce);
        let limit = cmd.timeout.unwrap_or(std::time::Duration::from_secs(60));
        let head = match tokio::time::timeout(limit, head).await {
            Ok(Ok(head)) => head,
            Ok(Err(failed)) => {
                let code = r.child.wait().await.ok().and_then(|s| s.code());
                let host = &self.host;
                return Err(script::head_error(
                    host, &action, &nonce, code, failed, NEEDS,
                ));
            }
            Err(_) => return Err(timeout_error(&self.host, &action, limit, "it was killed")),
        };
        if head.marker.fields == "nocwd" {
            let cwd = format!("{:?}", cmd.cwd.as_deref().unwrap_or(""));
            return Err(super::support::missing_cwd(&self.host, &action, cwd));
        }
        r.pid.store(head.marker.pid, Ordering::Relaxed);
        let (mut child, guard) = (r.child, r.guard);
        let (host, act) = (self.host.clone(), action.clone());
        let exit = async move {
            let status = child.wait().await;
            drop(guard); // leftover children die with the program
            status
                .map(|s| s.code())
                .map_err(|e| ConnectorError::io(&host, act, &e))
        };
        let host = self.host.clone();
        let timed_out = move |l| -> super::BoxFuture<ConnectorError> {
            Box::pin(
                async move { timeout_error(&host, &action, l, "its process group was killed") },
            )
        };
        Ok(RemoteProcess {
            stdin: Box::new(stdin),
            stdout: Box::new(std::io::Cursor::new(head.stdout).chain(stdout)),
            stderr: Box::new(std::io::Cursor::new(head.stderr).chain(stderr)),
            wait: watch_process(&self.host, exit, cmd.timeout, timed_out),
        })
    }
}
