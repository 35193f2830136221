//! A whole connector on one primitive: *start `/bin/sh -c SCRIPT sh ARG…` on the host with
//! piped stdio* ([`ScriptHost::start`]). [`exec`], [`push`], [`pull`] and [`spawn`] run
//! the scripts of [`super::script`] through it and keep the contract: markers separate
//! the program's output from login noise and tell the pid, push and pull exit codes become
//! typed errors, timeouts and dropped futures kill the process group. The SSH connector
//! and [`CommandTransport`](super::CommandTransport) are both built this way.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::script::{self, Task};
use super::support::{
    OpenSource, PartFile, missing_cwd, pull_action, push_action, timeout_error, watch_process,
    with_progress,
};
use super::{BoxFuture, Dest, ExecOutput, RemoteCommand, RemoteProcess, Source};
use crate::error::{ConnectorError, ConnectorErrorKind as Kind};

/// Kills the host-side process group of a pid (what [`KILL`](script::KILL) does).
pub type Killer = Arc<dyn Fn(u32) -> BoxFuture<()> + Send + Sync>;

/// A script's stdout: read as a stream, or handed over as a descriptor (a pull splices
/// from it into the file).
pub trait ScriptOutput: AsyncRead + Send + Unpin {
    /// The pipe's descriptor.
    fn into_fd(self: Box<Self>) -> std::io::Result<OwnedFd>;
}

impl ScriptOutput for tokio::process::ChildStdout {
    fn into_fd(self: Box<Self>) -> std::io::Result<OwnedFd> {
        (*self).into_owned_fd()
    }
}

/// What the script's stdin is.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// End-of-file at once.
    Null,
    /// A pipe, given back as [`Started::stdin`].
    Piped,
    /// This local file, read by the transport itself.
    File(&'a std::fs::File),
}

/// A started script.
pub struct Started {
    /// Its stdin, for [`Input::Piped`].
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Its stdout.
    pub stdout: Box<dyn ScriptOutput>,
    /// Its stderr.
    pub stderr: Box<dyn AsyncRead + Send + Unpin>,
    /// Resolves with the exit code (`None`: a signal) once the script ended; dropping it
    /// before kills what the transport kills locally (e.g. a local process group).
    pub wait: BoxFuture<Result<Option<i32>, ConnectorError>>,
    /// Kills the script's process group on the host by the pid its marker reports, on
    /// timeout and drop; `None` when dropping `wait` is enough.
    pub kill: Option<Killer>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Started { .. }")
    }
}

/// A host reached by starting `/bin/sh -c SCRIPT sh ARG…` there.
#[async_trait]
pub trait ScriptHost: Send + Sync {
    /// The host's name for messages.
    fn host(&self) -> &str;
    /// The hint when a script never reached `/bin/sh` (what the host needs).
    fn needs(&self) -> &str;
    /// Start `script` with positional parameters `args`; stderr and stdout piped.
    async fn start(
        &self,
        script: &str,
        args: Vec<String>,
        stdin: Input<'_>,
        action: &str,
    ) -> Result<Started, ConnectorError>;
}

/// Kills the host-side process group if dropped while armed (the caller gave up).
struct KillGuard {
    kill: Option<Killer>,
    pid: Arc<AtomicU32>,
    armed: bool,
}

impl KillGuard {
    fn new(kill: Option<Killer>) -> Self {
        let pid = Arc::new(AtomicU32::new(0));
        KillGuard {
            kill,
            pid,
            armed: true,
        }
    }
    fn disarm(&mut self) {
        self.armed = false;
    }
    /// Kill now, waiting up to 3 s for the pid to be known.
    async fn kill_now(&mut self) -> Option<u32> {
        self.disarm();
        for _ in 0..150 {
            if self.pid.load(Ordering::Relaxed) != 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pid = self.pid.load(Ordering::Relaxed);
        if let (Some(kill), 1..) = (&self.kill, pid) {
            kill(pid).await;
        }
        (pid != 0).then_some(pid)
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        let pid = self.pid.load(Ordering::Relaxed);
        if let (true, 1.., Some(kill)) = (self.armed, pid, &self.kill)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(kill(pid));
        }
    }
}

/// What was killed when a program timed out.
fn killed(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("its process group {pid} on the host was killed"),
        None => "it had not reported its pid, so it could not be killed".to_string(),
    }
}

/// `Err` when a pipe is missing.
fn pipe<T>(p: Option<T>, host: &str, action: &str) -> Result<T, ConnectorError> {
    p.ok_or_else(|| ConnectorError::new(Kind::Other, host, action).detail("no pipes"))
}

/// A remote path must be non-empty and free of NUL bytes.
fn check_path(host: &str, path: &str, action: &str) -> Result<(), ConnectorError> {
    if path.contains('\0') || path.is_empty() {
        return Err(ConnectorError::new(Kind::InvalidInput, host, action)
            .detail("the remote path is empty or contains a NUL byte"));
    }
    Ok(())
}

/// [`Connector::exec`](super::Connector::exec) through [`script::EXEC`].
pub async fn exec<H: ScriptHost + ?Sized>(
    h: &H,
    cmd: &RemoteCommand,
) -> Result<ExecOutput, ConnectorError> {
    let (host, action) = (h.host(), format!("exec {}", cmd.program));
    cmd.validate(host)?;
    let nonce = script::nonce();
    let input = match cmd.stdin {
        Some(_) => Input::Piped,
        None => Input::Null,
    };
    let args = script::exec_args(cmd, &nonce);
    let s = h.start(script::EXEC, args, input, &action).await?;
    let mut guard = KillGuard::new(s.kill);
    if let (Some(mut pipe), Some(data)) = (s.stdin, cmd.stdin.clone()) {
        // Fed while the output is read; a program may exit without reading it all.
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    let mut out = s.stdout;
    let stdout = Task::spawn(async move {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf).await;
        buf
    });
    let stderr = script::read_stderr(s.stderr, nonce.clone(), guard.pid.clone());
    // `wait` (which may hold the transport's channel) outlives a timeout until the kill.
    let mut wait = s.wait;
    // Output first: a transport may close the channel (in `wait`) before it is drained.
    let body = async {
        let stdout = stdout.join().await.unwrap_or_default();
        let stderr = stderr.join().await.unwrap_or_default();
        (stdout, stderr, (&mut wait).await)
    };
    let (stdout, stderr, code) = match cmd.timeout {
        None => body.await,
        Some(limit) => match tokio::time::timeout(limit, body).await {
            Ok(done) => done,
            Err(_) => {
                let pid = guard.kill_now().await;
                return Err(timeout_error(host, &action, limit, &killed(pid)));
            }
        },
    };
    guard.disarm();
    script::exec_result(host, cmd, &nonce, code?, (stdout, stderr), h.needs())
}

/// Wait for a finished push or pull script: its pid marker when it exited 0, else the
/// typed error.
async fn transfer_outcome<H: ScriptHost + ?Sized>(
    h: &H,
    wait: BoxFuture<Result<Option<i32>, ConnectorError>>,
    action: &str,
    nonce: &str,
    stderr: Vec<u8>,
) -> Result<Option<script::Marker>, ConnectorError> {
    let code = wait.await?;
    match script::split_stderr(stderr, nonce) {
        script::Stderr::NotStarted(text) => Err(script::not_started(
            h.host(),
            action,
            code,
            &text,
            h.needs(),
        )),
        script::Stderr::Ran(marker, _) if code == Some(0) => Ok(marker),
        script::Stderr::Ran(_, text) => Err(script::transfer_error(h.host(), action, code, &text)),
    }
}

/// [`Connector::push`](super::Connector::push) through [`script::PUSH`]: a file is
/// handed to the transport as stdin, bytes go through a pipe.
pub async fn push<H: ScriptHost + ?Sized>(
    h: &H,
    from: Source<'_>,
    to: &str,
) -> Result<(), ConnectorError> {
    let (host, action) = (h.host(), push_action(&from, to));
    check_path(host, to, &action)?;
    let src = OpenSource::open(&from, host, &action)?;
    let nonce = script::nonce();
    let args = script::push_args(&nonce, to, src.mode, src.size);
    let input = src.file.as_ref().map_or(Input::Piped, Input::File);
    let s = h.start(script::PUSH, args, input, &action).await?;
    let mut guard = KillGuard::new(s.kill);
    let stderr = script::read_stderr(s.stderr, nonce.clone(), guard.pid.clone());
    let writer = async {
        let Some(mut pipe) = s.stdin.filter(|_| src.file.is_none()) else {
            return Ok(());
        };
        let mut done = 0u64;
        for part in src.bytes.chunks(1 << 20) {
            pipe.write_all(part).await?;
            done += part.len() as u64;
            from.progress.inspect(|p| p(done));
        }
        pipe.shutdown().await
    };
    let mut out = s.stdout;
    let drain = async {
        let _ = out.read_to_end(&mut Vec::new()).await;
    };
    let body = async { tokio::join!(writer, drain, stderr.join()) };
    let offset = || {
        let f = src.file.as_ref();
        f.and_then(|mut f| std::io::Seek::stream_position(&mut f).ok())
            .unwrap_or(0)
    };
    let progress = from.progress.filter(|_| src.file.is_some());
    let (written, (), stderr) = with_progress(body, progress, offset).await;
    let outcome = transfer_outcome(h, s.wait, &action, &nonce, stderr.unwrap_or_default()).await;
    guard.disarm(); // the script has exited; nothing to kill
    match outcome {
        Ok(_) => {
            from.progress.inspect(|p| p(src.size));
            Ok(())
        }
        Err(mut e) => {
            if let (Err(w), Kind::Other) = (written, e.kind) {
                e.detail = format!("{}; sending failed: {w}", e.detail);
            }
            Err(e)
        }
    }
}

/// [`Connector::pull`](super::Connector::pull) through [`script::PULL`], into a
/// [`PartFile`] (the bytes spliced from the pipe after the begin marker).
pub async fn pull<H: ScriptHost + ?Sized>(
    h: &H,
    from: &str,
    to: Dest<'_>,
) -> Result<(), ConnectorError> {
    let (host, action) = (h.host(), pull_action(from, &to));
    check_path(host, from, &action)?;
    let local =
        |e: std::io::Error| ConnectorError::io(host, &action, &e).hint("check the local path");
    let part = PartFile::create(to.path).map_err(local)?;
    let nonce = script::nonce();
    let args = script::pull_args(&nonce, from);
    let s = h.start(script::PULL, args, Input::Null, &action).await?;
    let mut guard = KillGuard::new(s.kill);
    let (out, file) = (
        s.stdout.into_fd().map_err(local)?,
        part.file().try_clone().map_err(local)?,
    );
    let copy_nonce = nonce.clone();
    let copy =
        tokio::task::spawn_blocking(move || script::copy_after_begin(out, file, &copy_nonce));
    let stderr = script::read_stderr(s.stderr, nonce.clone(), guard.pid.clone()).join();
    let body = async { tokio::join!(copy, stderr) };
    let (copied, stderr) = with_progress(body, to.progress, || part.len()).await;
    let marker = transfer_outcome(h, s.wait, &action, &nonce, stderr.unwrap_or_default()).await;
    guard.disarm();
    let marker = marker?;
    match copied {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Err(script::lost_stdout(host, &action)),
        Ok(Err(e)) => return Err(local(e)),
        Err(e) => return Err(local(std::io::Error::other(e))),
    }
    to.progress.inspect(|p| p(part.len()));
    let (mode, mtime) = marker.map(|m| m.mode_and_mtime()).unwrap_or_default();
    part.finish(mode, mtime).map_err(local)
}

/// [`Connector::spawn`](super::Connector::spawn) through [`script::EXEC`]: returns once the
/// pid marker arrived (a missing cwd is `NotFound` here); `wait` resolves once the program
/// ended and both output streams were read to their end or dropped.
pub async fn spawn<H: ScriptHost + ?Sized>(
    h: &H,
    cmd: &RemoteCommand,
) -> Result<RemoteProcess, ConnectorError> {
    let (host, action) = (h.host(), format!("spawn {}", cmd.program));
    cmd.validate(host)?;
    let nonce = script::nonce();
    let args = script::exec_args(cmd, &nonce);
    let s = h.start(script::EXEC, args, Input::Piped, &action).await?;
    let stdin = pipe(s.stdin, host, &action)?;
    let (mut stdout, mut stderr) = (s.stdout, s.stderr);
    let limit = cmd.timeout.unwrap_or(Duration::from_secs(60));
    let head = script::read_head(&mut stdout, &mut stderr, &nonce);
    let head = match tokio::time::timeout(limit, head).await {
        Ok(Ok(head)) => head,
        Ok(Err(failed)) => {
            let code = s.wait.await?;
            let needs = h.needs();
            return Err(script::head_error(
                host, &action, &nonce, code, failed, needs,
            ));
        }
        Err(_) => return Err(timeout_error(host, &action, limit, &killed(None))),
    };
    if head.marker.fields == "nocwd" {
        let cwd = format!("{:?}", cmd.cwd.as_deref().unwrap_or(""));
        return Err(missing_cwd(host, &action, cwd));
    }
    let pid = head.marker.pid;
    let mut guard = KillGuard::new(s.kill);
    guard.pid.store(pid, Ordering::Relaxed);
    let (stdout, out_done) = watched(std::io::Cursor::new(head.stdout).chain(stdout));
    let (stderr, err_done) = watched(std::io::Cursor::new(head.stderr).chain(stderr));
    let (mut wait, limit) = (s.wait, cmd.timeout);
    let (name, act) = (host.to_string(), action);
    // The timeout is the watcher's: `wait` (which may hold the transport's channel) is
    // kept until the kill is done. A dropped `wait` drops `exit`: the armed guard kills.
    let exit = async move {
        let run = async {
            let _ = out_done.await;
            let _ = err_done.await;
            (&mut wait).await
        };
        let code = match limit {
            None => run.await,
            Some(l) => match tokio::time::timeout(l, run).await {
                Ok(code) => code,
                Err(_) => {
                    let pid = guard.kill_now().await;
                    return Err(timeout_error(&name, &act, l, &killed(pid)));
                }
            },
        };
        guard.disarm();
        code
    };
    let never = |_| -> BoxFuture<ConnectorError> { unreachable!("no limit given") };
    Ok(RemoteProcess {
        stdin,
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        wait: watch_process(host, exit, None, never),
    })
}

/// A reader that reports (by dropping `done`) when it reached EOF or was dropped.
struct Watched<R> {
    inner: R,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Watched<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(r) = &res
            && (r.is_err() || buf.filled().len() == before)
        {
            self.done.take();
        }
        res
    }
}

fn watched<R>(inner: R) -> (Watched<R>, tokio::sync::oneshot::Receiver<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let w = Watched {
        inner,
        done: Some(tx),
    };
    (w, rx)
}
