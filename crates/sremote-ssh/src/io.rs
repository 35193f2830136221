//! The four operations: every one runs one of core's [`script`]s over the master
//! connection, as a line every login shell passes on (see `script.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use openssh::{Child, Session};
use sremote_core::connector::BoxFuture;
use sremote_core::connector::script::{self, Task};
use sremote_core::connector::support::{
    OpenSource, PartFile, pull_action, push_action, timeout_error, watch_process, with_progress,
};
use sremote_core::{
    ConnectorError, ConnectorErrorKind as Kind, Dest, ExecOutput, RemoteCommand, RemoteProcess,
    Source,
};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

use crate::SshConnector;
use crate::error::{disconnected, invalid, ssh_error};

const CHUNK: usize = 1 << 20;

/// What the host needs when a script never reached `/bin/sh`.
const NEEDS: &str = "the host needs a working POSIX /bin/sh, and the account a login shell \
                     that runs commands (`ssh HOST /bin/sh -c true` must work)";

/// Kills the remote process group if dropped while armed (the caller gave up on the call).
struct KillGuard {
    session: Arc<Session>,
    pid: Arc<AtomicU32>,
    armed: bool,
}

impl KillGuard {
    fn new(session: Arc<Session>) -> Self {
        KillGuard {
            session,
            pid: Arc::new(AtomicU32::new(0)),
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
        if pid != 0 {
            kill(self.session.clone(), pid).await;
        }
        (pid != 0).then_some(pid)
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        let pid = self.pid.load(Ordering::Relaxed);
        if self.armed
            && pid != 0
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(kill(self.session.clone(), pid));
        }
    }
}

/// Kill a process group on the host; retried while the server refuses another channel.
async fn kill(session: Arc<Session>, pid: u32) {
    let attempts = async {
        for _ in 0..100 {
            let mut cmd = Session::to_raw_command(session.clone(), crate::script::kill_line(pid));
            let null = openssh::Stdio::null;
            let status = cmd.stdin(null()).stdout(null()).stderr(null()).status();
            match status.await {
                Err(e) if crate::error::is_refused(&e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(15), attempts).await;
}

/// The exit code of a finished remote process; `None` when it was killed by a signal.
async fn exit_code(
    host: &str,
    session: &Session,
    action: &str,
    res: Result<std::process::ExitStatus, openssh::Error>,
) -> Result<Option<i32>, ConnectorError> {
    match res {
        Ok(status) => Ok(status.code()),
        // openssh reports a remote 127 as an error; it is a plain exit code here.
        Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(127)),
        // The mux protocol cannot tell "killed by a signal" from "connection lost": ask the master.
        Err(openssh::Error::RemoteProcessTerminated) => match session.check().await {
            Ok(()) => Ok(None),
            Err(_) => Err(disconnected(host, action)),
        },
        Err(e) => Err(ssh_error(host, action, e)),
    }
}

/// What was killed when a program timed out.
fn killed(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("its process group {pid} on the host was killed"),
        None => "it had not reported its pid, so it could not be killed".to_string(),
    }
}

impl SshConnector {
    fn host_name(&self) -> &str {
        sremote_core::Connector::host(self)
    }
}

/// A started script: the child, its session and channel permit, and the kill guard.
struct Started {
    child: Child<Arc<Session>>,
    session: Arc<Session>,
    permit: OwnedSemaphorePermit,
    guard: KillGuard,
}

/// Start `line` with these stdin and stdout (stderr piped).
async fn start(
    c: &SshConnector,
    line: &str,
    action: &str,
    stdio: impl Fn() -> std::io::Result<(openssh::Stdio, openssh::Stdio)>,
) -> Result<Started, ConnectorError> {
    let (child, session, permit) = c.start(line, action, stdio).await?;
    let guard = KillGuard::new(session.clone());
    Ok(Started {
        child,
        session,
        permit,
        guard,
    })
}

/// `Err` when a pipe that was asked for is missing.
fn pipe<T>(p: Option<T>, c: &SshConnector, action: &str) -> Result<T, ConnectorError> {
    p.ok_or_else(|| ConnectorError::new(Kind::Other, c.host_name(), action).detail("no pipes"))
}

pub(crate) async fn exec(
    c: &SshConnector,
    cmd: &RemoteCommand,
) -> Result<ExecOutput, ConnectorError> {
    let action = format!("exec {}", cmd.program);
    cmd.validate(c.host_name())?;
    let nonce = script::nonce();
    let line = crate::script::exec_line(cmd, &nonce);
    let mut s = start(c, &line, &action, || {
        let stdin = match cmd.stdin {
            Some(_) => piped(),
            None => openssh::Stdio::null(),
        };
        Ok((stdin, piped()))
    })
    .await?;
    if let (Some(mut pipe), Some(data)) = (s.child.stdin().take(), cmd.stdin.clone()) {
        // Written concurrently with reading the output; a program may exit without reading it all.
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    let mut out = pipe(s.child.stdout().take(), c, &action)?;
    let err = pipe(s.child.stderr().take(), c, &action)?;
    let stdout = Task::spawn(async move {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf).await;
        buf
    });
    let stderr = script::read_stderr(err, nonce.clone(), s.guard.pid.clone());
    // Output first: the mux session must not be closed (by `wait`) before it is drained.
    let body = async {
        let stdout = stdout.join().await.unwrap_or_default();
        let stderr = stderr.join().await.unwrap_or_default();
        (stdout, stderr, s.child.wait().await)
    };
    let (stdout, stderr, status) = match cmd.timeout {
        None => body.await,
        Some(limit) => match tokio::time::timeout(limit, body).await {
            Ok(done) => done,
            Err(_) => {
                let pid = s.guard.kill_now().await;
                return Err(timeout_error(c.host_name(), &action, limit, &killed(pid)));
            }
        },
    };
    s.guard.disarm();
    let code = exit_code(c.host_name(), &s.session, &action, status).await?;
    script::exec_result(c.host_name(), cmd, &nonce, code, (stdout, stderr), NEEDS)
}

/// Wait for a finished push or pull script: its pid marker when it exited 0, else the
/// typed error.
async fn transfer_outcome(
    c: &SshConnector,
    mut s: Started,
    action: &str,
    nonce: &str,
    stderr: Vec<u8>,
) -> Result<Option<script::Marker>, ConnectorError> {
    let status = s.child.wait().await;
    let code = exit_code(c.host_name(), &s.session, action, status).await?;
    s.guard.disarm(); // the script has exited; nothing to kill
    match script::split_stderr(stderr, nonce) {
        script::Stderr::NotStarted(text) => Err(script::not_started(
            c.host_name(),
            action,
            code,
            &text,
            NEEDS,
        )),
        script::Stderr::Ran(marker, _) if code == Some(0) => Ok(marker),
        script::Stderr::Ran(_, text) => {
            Err(script::transfer_error(c.host_name(), action, code, &text))
        }
    }
}

fn piped() -> openssh::Stdio {
    openssh::Stdio::piped()
}

/// A duplicate of `file`'s descriptor for the ssh master: it reads or writes the file
/// itself, so the bytes never pass through this process (as with `ssh host cat < file`).
fn fd_of(file: &std::fs::File) -> std::io::Result<openssh::Stdio> {
    Ok(openssh::Stdio::from(std::os::fd::OwnedFd::from(
        file.try_clone()?,
    )))
}

/// A remote path must be non-empty and free of NUL bytes.
fn check_path(c: &SshConnector, path: &str, action: &str) -> Result<(), ConnectorError> {
    if path.contains('\0') || path.is_empty() {
        let what = "the remote path is empty or contains a NUL byte";
        return Err(invalid(c.host_name(), action, what));
    }
    Ok(())
}

pub(crate) async fn push(
    c: &SshConnector,
    from: Source<'_>,
    to: &str,
) -> Result<(), ConnectorError> {
    let action = push_action(&from, to);
    check_path(c, to, &action)?;
    let src = OpenSource::open(&from, c.host_name(), &action)?;
    let nonce = script::nonce();
    let line = crate::script::push_line(&nonce, to, src.mode, src.size);
    let mut s = start(c, &line, &action, || match &src.file {
        Some(f) => Ok((fd_of(f)?, piped())),
        None => Ok((piped(), piped())),
    })
    .await?;
    let mut out = pipe(s.child.stdout().take(), c, &action)?;
    let err = pipe(s.child.stderr().take(), c, &action)?;
    let stderr = script::read_stderr(err, nonce.clone(), s.guard.pid.clone());
    let stdin = s.child.stdin().take();
    let writer = async {
        // bytes in memory go through a pipe; a file is read by the ssh master itself
        let Some(mut pipe) = stdin.filter(|_| src.file.is_none()) else {
            return Ok(());
        };
        let mut done = 0u64;
        for part in src.bytes.chunks(CHUNK) {
            pipe.write_all(part).await?;
            done += part.len() as u64;
            from.progress.inspect(|p| p(done));
        }
        pipe.shutdown().await
    };
    let drain = async {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink).await;
    };
    let body = async { tokio::join!(writer, drain, stderr.join()) };
    let offset = || {
        let f = src.file.as_ref();
        f.and_then(|mut f| std::io::Seek::stream_position(&mut f).ok())
            .unwrap_or(0)
    };
    let progress = from.progress.filter(|_| src.file.is_some());
    let (written, (), stderr) = with_progress(body, progress, offset).await;
    match transfer_outcome(c, s, &action, &nonce, stderr.unwrap_or_default()).await {
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

pub(crate) async fn pull(c: &SshConnector, from: &str, to: Dest<'_>) -> Result<(), ConnectorError> {
    let action = pull_action(from, &to);
    check_path(c, from, &action)?;
    let local_err = |e: std::io::Error| {
        ConnectorError::io(c.host_name(), &action, &e).hint("check the local path")
    };
    // The file arrives in a temporary file beside the destination, which is renamed over
    // it only when the whole file arrived (and removed otherwise).
    let part = PartFile::create(to.path).map_err(local_err)?;
    let nonce = script::nonce();
    let line = crate::script::pull_line(&nonce, from);
    let mut s = start(c, &line, &action, || Ok((openssh::Stdio::null(), piped()))).await?;
    let out = pipe(s.child.stdout().take(), c, &action)?;
    let err = pipe(s.child.stderr().take(), c, &action)?;
    let (out, file) = (
        out.into_owned_fd().map_err(local_err)?,
        part.file().try_clone().map_err(local_err)?,
    );
    let copy_nonce = nonce.clone();
    let copy =
        tokio::task::spawn_blocking(move || script::copy_after_begin(out, file, &copy_nonce));
    let stderr = script::read_stderr(err, nonce.clone(), s.guard.pid.clone()).join();
    let body = async { tokio::join!(copy, stderr) };
    let (copied, stderr) = with_progress(body, to.progress, || part.len()).await;
    let marker = transfer_outcome(c, s, &action, &nonce, stderr.unwrap_or_default()).await?;
    match copied {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Err(script::lost_stdout(c.host_name(), &action)),
        Ok(Err(e)) => return Err(local_err(e)),
        Err(e) => return Err(local_err(std::io::Error::other(e))),
    }
    to.progress.inspect(|p| p(part.len()));
    let (mode, mtime) = marker.map(|m| m.mode_and_mtime()).unwrap_or_default();
    part.finish(mode, mtime).map_err(local_err)
}

pub(crate) async fn spawn(
    c: &SshConnector,
    cmd: &RemoteCommand,
) -> Result<RemoteProcess, ConnectorError> {
    let action = format!("spawn {}", cmd.program);
    cmd.validate(c.host_name())?;
    let nonce = script::nonce();
    let line = crate::script::exec_line(cmd, &nonce);
    let mut s = start(c, &line, &action, || Ok((piped(), piped()))).await?;
    let stdin = pipe(s.child.stdin().take(), c, &action)?;
    let mut stdout = pipe(s.child.stdout().take(), c, &action)?;
    let mut stderr = pipe(s.child.stderr().take(), c, &action)?;
    // stderr up to the pid marker (the pid; whether the working directory exists), stdout
    // up to the begin marker (what login scripts printed before it is not the program's).
    let limit = cmd.timeout.unwrap_or(Duration::from_secs(60));
    let head = script::read_head(&mut stdout, &mut stderr, &nonce);
    let head = match tokio::time::timeout(limit, head).await {
        Ok(Ok(head)) => head,
        Ok(Err(failed)) => {
            let status = s.child.wait().await;
            let code = exit_code(c.host_name(), &s.session, &action, status).await?;
            let host = c.host_name();
            return Err(script::head_error(
                host, &action, &nonce, code, failed, NEEDS,
            ));
        }
        Err(_) => {
            return Err(timeout_error(c.host_name(), &action, limit, &killed(None)));
        }
    };
    if head.marker.fields == "nocwd" {
        let cwd = format!("{:?}", cmd.cwd.as_deref().unwrap_or(""));
        let missing = sremote_core::connector::support::missing_cwd;
        return Err(missing(c.host_name(), &action, cwd));
    }
    let pid = head.marker.pid;
    s.guard.pid.store(pid, Ordering::Relaxed);
    let (stdout, out_done) = watched(std::io::Cursor::new(head.stdout).chain(stdout));
    let (stderr, err_done) = watched(std::io::Cursor::new(head.stderr).chain(stderr));
    let host = c.host_name().to_string();
    let exit = async move {
        let _permit = s.permit; // the channel is in use until the process ends
        let _ = out_done.await;
        let _ = err_done.await;
        let status = s.child.wait().await;
        s.guard.disarm();
        exit_code(&host, &s.session, &action, status).await
    };
    // A timeout or a dropped `wait` drops `exit`, whose armed guard kills the group.
    let (host, act) = (c.host_name().to_string(), format!("spawn {}", cmd.program));
    let timed_out = move |l| -> BoxFuture<ConnectorError> {
        Box::pin(std::future::ready(timeout_error(
            &host,
            &act,
            l,
            &killed(Some(pid)),
        )))
    };
    Ok(RemoteProcess {
        stdin: Box::new(stdin) as Box<dyn AsyncWrite + Send + Unpin>,
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        wait: watch_process(c.host_name(), exit, cmd.timeout, timed_out),
    })
}

/// A reader that reports (by dropping `done`) when it reached EOF or was dropped.
struct Watched<R> {
    inner: R,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<R> {
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
