//! `LocalConnector`: the connector contract on this machine, with no shell and no setup.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use crate::connector::{
    Connector, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source, SourceData,
};
use crate::error::{ConnectorError, ConnectorErrorKind};

/// Runs programs and copies files on this machine (`tokio::process`, never a shell).
///
/// The "remote" home directory is `$HOME`, or the directory given to
/// [`with_home`](LocalConnector::with_home) — then programs also see it as `HOME`, which
/// makes a throwaway host for tests.
#[derive(Debug, Clone)]
pub struct LocalConnector {
    home: PathBuf,
    set_home_env: bool,
}

impl Default for LocalConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalConnector {
    /// This machine, as the current user, home directory `$HOME`.
    pub fn new() -> Self {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        LocalConnector {
            home: home.unwrap_or_else(|| PathBuf::from("/")),
            set_home_env: false,
        }
    }

    /// This machine with `home` standing in for the home directory (programs get `HOME=home`).
    pub fn with_home(home: impl Into<PathBuf>) -> Self {
        LocalConnector {
            home: home.into(),
            set_home_env: true,
        }
    }

    /// The directory relative paths are resolved against.
    pub fn home(&self) -> &Path {
        &self.home
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.home.join(p)
        }
    }

    fn command(
        &self,
        cmd: &RemoteCommand,
    ) -> Result<(tokio::process::Command, PathBuf), ConnectorError> {
        cmd.validate("local")?;
        let cwd = cmd
            .cwd
            .as_deref()
            .map(|c| self.resolve(c))
            .unwrap_or_else(|| self.home.clone());
        if !cwd.is_dir() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                "local",
                format!("exec {}", cmd.program),
            )
            .detail(format!(
                "working directory {} does not exist",
                cwd.display()
            ))
            .hint("create the directory or pass another cwd"));
        }
        // The contract: a relative program path is relative to the home directory.
        let program = if cmd.program.contains('/') {
            self.resolve(&cmd.program)
        } else {
            PathBuf::from(&cmd.program)
        };
        let mut c = tokio::process::Command::new(&program);
        c.args(&cmd.args).current_dir(&cwd).kill_on_drop(true);
        if self.set_home_env {
            c.env("HOME", &self.home);
        }
        c.envs(&cmd.env);
        Ok((c, program))
    }
}

/// A program that could not be started reports 127/126 like a shell would.
fn spawn_failure(program: &Path, err: &std::io::Error) -> Option<ExecOutput> {
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        std::io::ErrorKind::PermissionDenied => 126,
        _ if err.raw_os_error() == Some(libc::ENOEXEC) => 126,
        _ => return None,
    };
    Some(ExecOutput {
        exit_code: Some(code),
        stdout: Vec::new(),
        stderr: format!("sremote: {}: {err}\n", program.display()).into_bytes(),
    })
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: plain syscall; the group was created for this child (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[async_trait]
impl Connector for LocalConnector {
    fn host(&self) -> &str {
        "local"
    }

    fn reach(&self) -> Option<crate::Reach> {
        Some(crate::Reach::local())
    }

    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        let (mut c, program) = self.command(cmd)?;
        c.process_group(0)
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match c.spawn() {
            Ok(child) => child,
            Err(e) => {
                return spawn_failure(&program, &e).ok_or_else(|| {
                    ConnectorError::io("local", format!("exec {}", cmd.program), &e)
                });
            }
        };
        let pid = child.id();
        if let (Some(mut pipe), Some(data)) = (child.stdin.take(), cmd.stdin.clone()) {
            // Feed stdin concurrently with reading the output (no pipe deadlock). A program
            // that exits without reading all of it is not an error.
            tokio::spawn(async move {
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            });
        }
        let waiting = child.wait_with_output();
        let out = match cmd.timeout {
            Some(limit) => match tokio::time::timeout(limit, waiting).await {
                Ok(out) => out,
                Err(_) => {
                    kill_group(pid);
                    return Err(ConnectorError::new(
                        ConnectorErrorKind::Timeout,
                        "local",
                        format!("exec {}", cmd.program),
                    )
                    .detail(format!(
                        "still running after {limit:?}; it and its children were killed"
                    ))
                    .hint("raise the timeout"));
                }
            },
            None => waiting.await,
        };
        let out =
            out.map_err(|e| ConnectorError::io("local", format!("exec {}", cmd.program), &e))?;
        kill_group(pid); // children left in the background die with the command
        Ok(ExecOutput {
            exit_code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        let dest = self.resolve(to);
        let action = match from.data {
            SourceData::File(p) => format!("push {} -> {to}", p.display()),
            SourceData::Bytes(b) => format!("push {} bytes -> {to}", b.len()),
        };
        let progress = from.progress;
        let (data, mode) = (from.data, from.mode);
        // Blocking file I/O is fastest with std; run it off the async threads.
        blocking(|| match data {
            SourceData::File(src) => {
                let mut file = std::fs::File::open(src).map_err(|e| {
                    ConnectorError::io("local", &action, &e).hint("check the local path")
                })?;
                let meta = file
                    .metadata()
                    .map_err(|e| ConnectorError::io("local", &action, &e))?;
                if meta.is_dir() {
                    return Err(ConnectorError::new(
                        ConnectorErrorKind::InvalidInput,
                        "local",
                        &action,
                    )
                    .detail(format!("{} is a directory", src.display()))
                    .hint(
                        "push the files inside it one by one, or use `sremote push` (recursive)",
                    ));
                }
                use std::os::unix::fs::PermissionsExt;
                let mode = mode.unwrap_or(meta.permissions().mode() & 0o7777);
                atomic_write(&dest, mode, &action, |out| {
                    copy_with_progress(&mut file, out, progress)
                })
            }
            SourceData::Bytes(bytes) => {
                atomic_write(&dest, mode.unwrap_or(0o644), &action, |out| {
                    out.write_all(bytes)?;
                    if let Some(p) = progress {
                        p(bytes.len() as u64);
                    }
                    Ok(())
                })
            }
        })
    }

    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        let src = self.resolve(from);
        let action = format!("pull {from} -> {}", to.path.display());
        blocking(|| {
            let mut file =
                std::fs::File::open(&src).map_err(|e| ConnectorError::io("local", &action, &e))?;
            use std::os::unix::fs::PermissionsExt;
            let meta = file
                .metadata()
                .map_err(|e| ConnectorError::io("local", &action, &e))?;
            if meta.is_dir() {
                return Err(ConnectorError::new(
                    ConnectorErrorKind::InvalidInput,
                    "local",
                    &action,
                )
                .detail(format!("{} is a directory", src.display())));
            }
            atomic_write(
                to.path,
                meta.permissions().mode() & 0o7777,
                &action,
                |out| {
                    copy_with_progress(&mut file, out, to.progress)?;
                    // Pulls keep the modification time, as they keep the mode.
                    match meta.modified() {
                        Ok(t) => out.set_modified(t),
                        Err(_) => Ok(()),
                    }
                },
            )
        })
    }

    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        let (mut c, program) = self.command(cmd)?;
        c.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match c.spawn() {
            Ok(child) => child,
            // Like a shell: a program that cannot start is a process that exits 127/126.
            Err(e) => match spawn_failure(&program, &e) {
                Some(out) => {
                    return Ok(RemoteProcess {
                        stdin: Box::new(tokio::io::sink()),
                        stdout: Box::new(std::io::Cursor::new(out.stdout)),
                        stderr: Box::new(std::io::Cursor::new(out.stderr)),
                        wait: Box::pin(std::future::ready(Ok(out.exit_code))),
                    });
                }
                None => {
                    return Err(ConnectorError::io(
                        "local",
                        format!("spawn {}", cmd.program),
                        &e,
                    ));
                }
            },
        };
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            return Err(ConnectorError::new(
                ConnectorErrorKind::Other,
                "local",
                format!("spawn {}", cmd.program),
            )
            .detail("stdio pipes were not created"));
        };
        // Like the ssh connector: the timeout kills the program and its children, and so
        // does dropping `wait` before the program ended.
        let (program, limit, pid) = (cmd.program.clone(), cmd.timeout, child.id());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut tx = tx;
            let timer = async {
                match limit {
                    Some(l) => tokio::time::sleep(l).await,
                    None => std::future::pending().await,
                }
            };
            let result = tokio::select! {
                r = child.wait() => r
                    .map(|status| status.code())
                    .map_err(|e| ConnectorError::io("local", format!("wait {program}"), &e)),
                () = timer => {
                    kill_group(pid);
                    let _ = child.wait().await;
                    Err(ConnectorError::new(
                        ConnectorErrorKind::Timeout,
                        "local",
                        format!("spawn {program}"),
                    )
                    .detail(format!(
                        "still running after {:?}; it and its children were killed",
                        limit.unwrap_or_default()
                    ))
                    .hint("raise the timeout"))
                }
                () = tx.closed() => {
                    kill_group(pid);
                    let _ = child.wait().await;
                    return;
                }
            };
            let _ = tx.send(result);
        });
        Ok(RemoteProcess {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            wait: Box::pin(async move {
                rx.await.unwrap_or_else(|_| {
                    Err(ConnectorError::new(
                        ConnectorErrorKind::Other,
                        "local",
                        "wait for a spawned program",
                    )
                    .detail("its watcher ended without an answer"))
                })
            }),
        })
    }
}

/// Copy in 1 MiB chunks, reporting progress.
pub(crate) fn copy_with_progress(
    from: &mut impl Read,
    to: &mut impl Write,
    progress: Option<crate::connector::Progress<'_>>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        done += n as u64;
        if let Some(p) = progress {
            p(done);
        }
    }
}

/// Write `dest` through a temporary file in the same directory, then rename: readers see
/// the old file or the whole new one. Creates missing parent directories. The mode is
/// masked to `0o777`: a transfer never creates a setuid, setgid or sticky file.
pub(crate) fn atomic_write(
    dest: &Path,
    mode: u32,
    action: &str,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), ConnectorError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |e: std::io::Error| ConnectorError::io("local", action, &e);
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".sremote-part-")
        .tempfile_in(&dir)
        .map_err(err)?;
    fill(tmp.as_file_mut()).map_err(err)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
        .map_err(err)?;
    tmp.persist(dest).map_err(|e| err(e.error))?;
    Ok(())
}

/// Run blocking file I/O without stalling other tasks where the runtime allows it
/// (`block_in_place` needs the multi-threaded runtime; on the current-thread one it runs inline).
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
