//! The four operations: every one runs a `script` line over the master connection.

use std::os::unix::fs::PermissionsExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use openssh::{ChildStderr, Session};
use sremote_core::connector::{Progress, SourceData};
use sremote_core::{
    ConnectorError, ConnectorErrorKind as Kind, Dest, ExecOutput, RemoteCommand, RemoteProcess,
    Source,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::task::JoinHandle;

use crate::SshConnector;
use crate::error::{disconnected, invalid, ssh_error};
use crate::script::{self, Marker};

const CHUNK: usize = 1 << 20;

/// A task that is aborted when its handle is dropped.
struct Task<T>(JoinHandle<T>);

impl<T> Task<T> {
    fn spawn(f: impl Future<Output = T> + Send + 'static) -> Self
    where
        T: Send + 'static,
    {
        Task(tokio::spawn(f))
    }
    async fn join(mut self) -> Option<T> {
        (&mut self.0).await.ok()
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Collect stderr, publishing the remote pid as soon as the marker line arrives.
fn read_stderr(mut err: ChildStderr, nonce: String, pid: Arc<AtomicU32>) -> Task<Vec<u8>> {
    Task::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        while let Ok(n @ 1..) = err.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
            if pid.load(Ordering::Relaxed) == 0
                && buf.len() < (64 << 10)
                && let Some(m) = script::find_marker(&buf, &nonce)
            {
                pid.store(m.pid, Ordering::Relaxed);
            }
        }
        buf
    })
}

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
            let mut cmd = Session::to_raw_command(session.clone(), script::kill_line(pid));
            let null = openssh::Stdio::null;
            match cmd
                .stdin(null())
                .stdout(null())
                .stderr(null())
                .status()
                .await
            {
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
    c: &SshConnector,
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
            Err(_) => Err(disconnected(c.host_name(), action)),
        },
        Err(e) => Err(ssh_error(c.host_name(), action, e)),
    }
}

fn timeout_error(
    c: &SshConnector,
    action: &str,
    limit: Duration,
    pid: Option<u32>,
) -> ConnectorError {
    let killed = match pid {
        Some(pid) => format!("its process group {pid} on the host was killed"),
        None => "it had not reported its pid, so it could not be killed".to_string(),
    };
    ConnectorError::new(Kind::Timeout, c.host_name(), action)
        .detail(format!("still running after {limit:?}; {killed}"))
        .hint("raise the timeout or make the work smaller")
}

/// What the collected stderr of a script says.
enum Stderr {
    /// The login shell never ran the script: everything it printed.
    NotStarted(Vec<u8>),
    /// The script ran: its pid marker (once printed) and the stderr after it (or, without
    /// a pid marker, the script's own error messages).
    Ran(Option<Marker>, Vec<u8>),
}

/// Split the collected stderr into login-script noise, the marker and the program's own
/// stderr.
fn split_stderr(buf: Vec<u8>, nonce: &str) -> Stderr {
    let mut buf = match script::strip_login_noise(buf, nonce, "stderr") {
        Ok(buf) => buf,
        Err(noise) => return Stderr::NotStarted(noise),
    };
    match script::find_marker(&buf, nonce) {
        Some(m) => {
            buf.drain(..m.body_start);
            Stderr::Ran(Some(m), buf)
        }
        None => Stderr::Ran(None, buf),
    }
}

/// The login shell did not run `/bin/sh` with the script (no begin marker on stderr).
fn not_started(c: &SshConnector, action: &str, code: Option<i32>, output: &[u8]) -> ConnectorError {
    let text = String::from_utf8_lossy(output).trim().to_string();
    let code = code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
    let said = if text.is_empty() {
        "nothing".to_string()
    } else {
        format!("{text:?}")
    };
    ConnectorError::new(Kind::Other, c.host_name(), action)
        .detail(format!(
            "the login shell did not run the command with /bin/sh ({code}; it printed {said})"
        ))
        .hint(
            "the host needs a working POSIX /bin/sh, and the account a login shell that runs \
             commands (`ssh HOST /bin/sh -c true` must work)",
        )
}

impl SshConnector {
    fn host_name(&self) -> &str {
        sremote_core::Connector::host(self)
    }
}

pub(crate) async fn exec(
    c: &SshConnector,
    cmd: &RemoteCommand,
) -> Result<ExecOutput, ConnectorError> {
    let action = format!("exec {}", cmd.program);
    cmd.validate(c.host_name())?;
    let nonce = script::nonce();
    let (mut child, session, _permit) = c
        .start(&script::exec_line(cmd, &nonce), &action, || {
            let stdin = if cmd.stdin.is_some() {
                piped()
            } else {
                openssh::Stdio::null()
            };
            Ok((stdin, piped()))
        })
        .await?;
    let mut guard = KillGuard::new(session.clone());
    if let (Some(mut pipe), Some(data)) = (child.stdin().take(), cmd.stdin.clone()) {
        // Written concurrently with reading the output; a program may exit without reading it all.
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    let (Some(mut out), Some(err)) = (child.stdout().take(), child.stderr().take()) else {
        return Err(
            ConnectorError::new(Kind::Other, c.host_name(), action).detail("no output pipes")
        );
    };
    let stdout = Task::spawn(async move {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf).await;
        buf
    });
    let stderr = read_stderr(err, nonce.clone(), guard.pid.clone());
    // Output first: the mux session must not be closed (by `wait`) before it is drained.
    let body = async {
        let stdout = stdout.join().await.unwrap_or_default();
        let stderr = stderr.join().await.unwrap_or_default();
        (stdout, stderr, child.wait().await)
    };
    let (stdout, stderr, status) = match cmd.timeout {
        None => body.await,
        Some(limit) => match tokio::time::timeout(limit, body).await {
            Ok(done) => done,
            Err(_) => {
                let pid = guard.kill_now().await;
                return Err(timeout_error(c, &action, limit, pid));
            }
        },
    };
    guard.disarm();
    let exit_code = exit_code(c, &session, &action, status).await?;
    let (marker, stderr) = match split_stderr(stderr, &nonce) {
        Stderr::Ran(marker, stderr) => (marker, stderr),
        Stderr::NotStarted(text) => return Err(not_started(c, &action, exit_code, &text)),
    };
    let Ok(stdout) = script::strip_login_noise(stdout, &nonce, "stdout") else {
        return Err(ConnectorError::new(Kind::Other, c.host_name(), action)
            .detail("the command's stdout was lost before it started (its marker is missing)")
            .hint("check the login scripts on the host: one may close or redirect stdout"));
    };
    if marker.is_some_and(|m| m.fields == "nocwd") {
        return Err(ConnectorError::new(Kind::NotFound, c.host_name(), action)
            .detail(format!(
                "the working directory {:?} does not exist",
                cmd.cwd.as_deref().unwrap_or("")
            ))
            .hint("create the directory or pass another cwd"));
    }
    Ok(ExecOutput {
        exit_code,
        stdout,
        stderr,
    })
}

fn remote_failure(
    c: &SshConnector,
    action: &str,
    code: Option<i32>,
    stderr: &[u8],
) -> ConnectorError {
    let text = String::from_utf8_lossy(stderr).trim().to_string();
    let (kind, hint) = match code {
        Some(script::EXIT_NOT_FOUND) => (
            Kind::NotFound,
            "check the path (relative paths start in the home directory)",
        ),
        Some(script::EXIT_DENIED) => (
            Kind::PermissionDenied,
            "check the permissions of the path and its directory",
        ),
        Some(script::EXIT_BAD_TARGET) => (Kind::InvalidInput, "name a regular file"),
        Some(script::EXIT_SHORT) => (Kind::Other, "the data was cut short; try again"),
        _ => (Kind::Other, "see the detail for the host's error message"),
    };
    let detail = match (text.is_empty(), code) {
        (false, _) => text,
        (true, Some(script::EXIT_NOT_FOUND)) => "no such file on the host".to_string(),
        (true, Some(script::EXIT_DENIED)) => "permission denied on the host".to_string(),
        (true, Some(script::EXIT_BAD_TARGET)) => "not a regular file".to_string(),
        (true, code) => format!("the transfer script on the host failed (exit {code:?})"),
    };
    ConnectorError::new(kind, c.host_name(), action)
        .detail(detail)
        .hint(hint)
}

/// Await `body`, reporting `position()` to `progress` every 100 ms while it runs.
async fn with_progress<T>(
    body: impl Future<Output = T>,
    progress: Option<Progress<'_>>,
    position: impl Fn() -> u64,
) -> T {
    let Some(report) = progress else {
        return body.await;
    };
    let mut body = std::pin::pin!(body);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last = 0;
    loop {
        tokio::select! {
            done = &mut body => return done,
            _ = tick.tick() => {
                let now = position();
                if now != last {
                    last = now;
                    report(now);
                }
            }
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

pub(crate) async fn push(
    c: &SshConnector,
    from: Source<'_>,
    to: &str,
) -> Result<(), ConnectorError> {
    let action = match from.data {
        SourceData::File(p) => format!("push {} -> {to}", p.display()),
        SourceData::Bytes(b) => format!("push {} bytes -> {to}", b.len()),
    };
    if to.contains('\0') || to.is_empty() {
        return Err(invalid(
            c.host_name(),
            &action,
            "the remote path is empty or contains a NUL byte",
        ));
    }
    let local_err = |e: std::io::Error| {
        ConnectorError::io(c.host_name(), &action, &e).hint("check the local file")
    };
    let (file, size, mode) = match from.data {
        SourceData::File(p) => {
            let file = std::fs::File::open(p).map_err(local_err)?;
            let meta = file.metadata().map_err(local_err)?;
            if !meta.is_file() {
                return Err(invalid(
                    c.host_name(),
                    &action,
                    format!("{} is not a regular file", p.display()),
                ));
            }
            (
                Some(file),
                meta.len(),
                from.mode.unwrap_or(meta.permissions().mode()),
            )
        }
        SourceData::Bytes(b) => (None, b.len() as u64, from.mode.unwrap_or(0o644)),
    };
    let nonce = script::nonce();
    let line = script::push_line(&nonce, to, mode, size);
    let (mut child, session, _permit) = c
        .start(&line, &action, || match &file {
            Some(f) => Ok((fd_of(f)?, piped())),
            None => Ok((piped(), piped())),
        })
        .await?;
    let (Some(mut out), Some(err)) = (child.stdout().take(), child.stderr().take()) else {
        return Err(
            ConnectorError::new(Kind::Other, c.host_name(), action).detail("no stdio pipes")
        );
    };
    let guard = KillGuard::new(session.clone());
    let stderr = read_stderr(err, nonce.clone(), guard.pid.clone());
    let stdin = child.stdin().take();
    let writer = async {
        // bytes in memory go through a pipe; a file is read by the ssh master itself
        let (Some(mut pipe), SourceData::Bytes(bytes)) = (stdin, from.data) else {
            return Ok(());
        };
        let mut done = 0u64;
        for part in bytes.chunks(CHUNK) {
            pipe.write_all(part).await?;
            done += part.len() as u64;
            if let Some(p) = from.progress {
                p(done);
            }
        }
        pipe.shutdown().await
    };
    let drain = async {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink).await;
    };
    let body = async { tokio::join!(writer, drain, stderr.join()) };
    let offset = || {
        file.as_ref()
            .and_then(|mut f| std::io::Seek::stream_position(&mut f).ok())
            .unwrap_or(0)
    };
    let progress = from.progress.filter(|_| file.is_some());
    let (written, (), stderr) = with_progress(body, progress, offset).await;
    let status = child.wait().await;
    let code = exit_code(c, &session, &action, status).await?;
    drop(guard); // the script has exited; nothing to kill
    if code == Some(0) {
        if let Some(p) = from.progress {
            p(size);
        }
        return Ok(());
    }
    let stderr = match split_stderr(stderr.unwrap_or_default(), &nonce) {
        Stderr::Ran(_, stderr) => stderr,
        Stderr::NotStarted(text) => return Err(not_started(c, &action, code, &text)),
    };
    let mut e = remote_failure(c, &action, code, &stderr);
    if let (Err(w), Some(script::EXIT_SHORT)) = (written, code) {
        e.detail = format!("{}; sending failed: {w}", e.detail);
    }
    Err(e)
}

/// Copy the pull's stdout (a blocking pipe) into `file`, dropping what login scripts
/// printed before the begin marker. `Ok(false)`: the marker never came (the script did
/// not run). After the marker, the kernel moves the bytes (`std::io::copy` splices from
/// a pipe), so they are not copied through this process.
fn copy_after_begin(
    pipe: std::os::fd::OwnedFd,
    mut file: std::fs::File,
    nonce: &str,
) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    // A bigger pipe means fewer wake-ups of the ssh master and of this copy (Linux allows
    // 1 MiB to unprivileged processes by default); the default 64 KiB also works.
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe, 1 << 20);
    let mut pipe = std::fs::File::from(pipe);
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if script::find_begin(&head, nonce).is_some() {
            break;
        }
        match pipe.read(&mut chunk)? {
            0 => return Ok(false),
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    let head = script::strip_login_noise(head, nonce, "stdout").unwrap_or_default();
    file.write_all(&head)?;
    std::io::copy(&mut pipe, &mut file)?;
    Ok(true)
}

pub(crate) async fn pull(c: &SshConnector, from: &str, to: Dest<'_>) -> Result<(), ConnectorError> {
    let action = format!("pull {from} -> {}", to.path.display());
    if from.contains('\0') || from.is_empty() {
        return Err(invalid(
            c.host_name(),
            &action,
            "the remote path is empty or contains a NUL byte",
        ));
    }
    let local_err = |e: std::io::Error| {
        ConnectorError::io(c.host_name(), &action, &e).hint("check the local path")
    };
    let dir = match to.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // The file arrives in a temporary file beside the destination, which is renamed over
    // it only when the whole file arrived (and removed otherwise).
    std::fs::create_dir_all(&dir).map_err(local_err)?;
    let tmp = tempfile::Builder::new()
        .prefix(".sremote-part-")
        .tempfile_in(&dir)
        .map_err(local_err)?;
    let nonce = script::nonce();
    let line = script::pull_line(&nonce, from);
    let (mut child, session, _permit) = c
        .start(&line, &action, || Ok((openssh::Stdio::null(), piped())))
        .await?;
    let (Some(out), Some(err)) = (child.stdout().take(), child.stderr().take()) else {
        return Err(
            ConnectorError::new(Kind::Other, c.host_name(), action).detail("no output pipes")
        );
    };
    let guard = KillGuard::new(session.clone());
    let (out, file) = (
        out.into_owned_fd().map_err(local_err)?,
        tmp.as_file().try_clone().map_err(local_err)?,
    );
    let copy_nonce = nonce.clone();
    let copy = tokio::task::spawn_blocking(move || copy_after_begin(out, file, &copy_nonce));
    let stderr = read_stderr(err, nonce.clone(), guard.pid.clone()).join();
    let size = || tmp.as_file().metadata().map_or(0, |m| m.len());
    let (copied, stderr) =
        with_progress(async { tokio::join!(copy, stderr) }, to.progress, size).await;
    let status = child.wait().await;
    let code = exit_code(c, &session, &action, status).await?;
    drop(guard);
    let (marker, stderr) = match split_stderr(stderr.unwrap_or_default(), &nonce) {
        Stderr::Ran(marker, stderr) => (marker, stderr),
        Stderr::NotStarted(text) => return Err(not_started(c, &action, code, &text)),
    };
    let Some(marker) = marker.filter(|_| code == Some(0)) else {
        return Err(remote_failure(c, &action, code, &stderr));
    };
    match copied {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return Err(ConnectorError::new(Kind::Other, c.host_name(), action)
                .detail("the file's data never started (its marker is missing from stdout)")
                .hint("check the login scripts on the host: one may close or redirect stdout"));
        }
        Ok(Err(e)) => return Err(local_err(e)),
        Err(e) => return Err(local_err(std::io::Error::other(e))),
    }
    if let Some(p) = to.progress {
        p(size());
    }
    let mut fields = marker.fields.split_whitespace();
    if let Some(Ok(mode)) = fields.next().map(|m| u32::from_str_radix(m, 8)) {
        // Never setuid, setgid or sticky on a pulled file.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(local_err)?;
    }
    if let Some(Ok(secs)) = fields.next().map(str::parse::<u64>) {
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        tmp.as_file().set_modified(mtime).map_err(local_err)?;
    }
    tmp.persist(to.path).map_err(|e| local_err(e.error))?;
    Ok(())
}

/// A reader that reports (by dropping `done`) when it reached EOF or was dropped.
struct Watched<R> {
    inner: R,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Watched<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(r) = &res
            && (r.is_err() || buf.filled().len() == before)
        {
            self.done.take();
        }
        res
    }
}

fn watched<R>(inner: R) -> (Watched<R>, tokio::sync::oneshot::Receiver<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (
        Watched {
            inner,
            done: Some(tx),
        },
        rx,
    )
}

/// Read `r` into `buf` until `found` finds what it looks for in it; `None` at the end of
/// the stream (or a read error) before that.
async fn read_until<R: AsyncRead + Unpin, T>(
    r: &mut R,
    buf: &mut Vec<u8>,
    found: impl Fn(&[u8]) -> Option<T>,
) -> Option<T> {
    let mut chunk = vec![0u8; 8192];
    loop {
        if let Some(t) = found(buf) {
            return Some(t);
        }
        match r.read(&mut chunk).await {
            Ok(n @ 1..) => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

pub(crate) async fn spawn(
    c: &SshConnector,
    cmd: &RemoteCommand,
) -> Result<RemoteProcess, ConnectorError> {
    let action = format!("spawn {}", cmd.program);
    cmd.validate(c.host_name())?;
    let nonce = script::nonce();
    let (mut child, session, permit) = c
        .start(&script::exec_line(cmd, &nonce), &action, || {
            Ok((piped(), piped()))
        })
        .await?;
    let (Some(stdin), Some(stdout), Some(mut err)) = (
        child.stdin().take(),
        child.stdout().take(),
        child.stderr().take(),
    ) else {
        return Err(
            ConnectorError::new(Kind::Other, c.host_name(), action).detail("no stdio pipes")
        );
    };
    // Read stderr up to the pid marker (it tells the pid and whether the working
    // directory exists) and stdout up to the begin marker (what login scripts printed
    // before it is not the program's).
    let (mut head, mut out_head) = (Vec::new(), Vec::new());
    let mut stdout = stdout;
    let read_marker = read_until(&mut err, &mut head, |b| script::find_marker(b, &nonce));
    let read_begin = read_until(&mut stdout, &mut out_head, |b| {
        script::find_begin(b, &nonce)
    });
    let limit = cmd.timeout.unwrap_or(Duration::from_secs(60));
    let both = async { tokio::join!(read_marker, read_begin) };
    let marker = match tokio::time::timeout(limit, both).await {
        Ok((Some(m), Some(_))) => m,
        Ok((marker, _)) => {
            let status = child.wait().await;
            let code = exit_code(c, &session, &action, status).await?;
            return Err(match split_stderr(head, &nonce) {
                Stderr::NotStarted(text) => not_started(c, &action, code, &text),
                Stderr::Ran(_, text) if marker.is_none() => {
                    let text = String::from_utf8_lossy(&text).trim().to_string();
                    ConnectorError::new(Kind::Other, c.host_name(), action)
                        .detail(format!("the host did not start the program: {text}"))
                        .hint("the host needs a POSIX /bin/sh")
                }
                Stderr::Ran(..) => ConnectorError::new(Kind::Other, c.host_name(), action)
                    .detail(
                        "the program's stdout was lost before it started (its marker is missing)",
                    )
                    .hint("check the login scripts on the host: one may close or redirect stdout"),
            });
        }
        Err(_) => return Err(timeout_error(c, &action, limit, None)),
    };
    if marker.fields == "nocwd" {
        return Err(ConnectorError::new(Kind::NotFound, c.host_name(), action)
            .detail(format!(
                "the working directory {:?} does not exist",
                cmd.cwd.as_deref().unwrap_or("")
            ))
            .hint("create the directory or pass another cwd"));
    }
    let out_rest = script::strip_login_noise(out_head, &nonce, "stdout").unwrap_or_default();
    let rest = head.split_off(marker.body_start);
    let (stdout, out_done) = watched(std::io::Cursor::new(out_rest).chain(stdout));
    let (stderr, err_done) = watched(std::io::Cursor::new(rest).chain(err));
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<Option<i32>, ConnectorError>>();
    let mut guard = KillGuard::new(session.clone());
    guard.pid.store(marker.pid, Ordering::Relaxed);
    let (conn, limit) = (c.clone(), cmd.timeout);
    let mut tx = Some(tx);
    tokio::spawn(async move {
        let _permit = permit; // the channel is in use until the process ends
        enum End {
            Exited(Result<std::process::ExitStatus, openssh::Error>),
            Dropped,
            TimedOut(Duration),
        }
        let end = {
            let run = async {
                let _ = out_done.await;
                let _ = err_done.await;
                child.wait().await
            };
            let timer = async {
                match limit {
                    Some(l) => tokio::time::sleep(l).await,
                    None => std::future::pending().await,
                }
            };
            let closed = async {
                if let Some(tx) = tx.as_mut() {
                    tx.closed().await
                }
            };
            tokio::select! {
                r = run => End::Exited(r),
                () = closed => End::Dropped,
                () = timer => End::TimedOut(limit.unwrap_or_default()),
            }
        };
        let result = match end {
            End::Exited(r) => {
                guard.disarm();
                exit_code(&conn, &session, &action, r).await
            }
            End::Dropped => return, // the guard kills it
            End::TimedOut(l) => {
                let pid = guard.kill_now().await;
                Err(timeout_error(&conn, &action, l, pid))
            }
        };
        if let Some(tx) = tx.take() {
            let _ = tx.send(result);
        }
    });
    let host = c.host_name().to_string();
    Ok(RemoteProcess {
        stdin: Box::new(stdin) as Box<dyn AsyncWrite + Send + Unpin>,
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        wait: Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(disconnected(&host, "wait")))
        }),
    })
}
