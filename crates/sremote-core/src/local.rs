//! `LocalConnector`: the connector contract on this machine, with no shell and no setup.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use crate::connector::support::{
    OpenSource, PartFile, ProcessGroup, atomic_write, blocking, copy_with_progress, missing_cwd,
    not_startable, pull_action, push_action, resolve, resolve_program, timeout_error,
    watch_process,
};
use crate::connector::{
    BoxFuture, Connector, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source,
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

    fn command(
        &self,
        cmd: &RemoteCommand,
    ) -> Result<(tokio::process::Command, PathBuf), ConnectorError> {
        cmd.validate("local")?;
        let cwd = match cmd.cwd.as_deref() {
            Some(c) => resolve(&self.home, c),
            None => self.home.clone(),
        };
        if !cwd.is_dir() {
            let action = format!("exec {}", cmd.program);
            return Err(missing_cwd("local", &action, cwd.display()));
        }
        // The contract: a relative program path is relative to the home directory.
        let program = resolve_program(&self.home, &cmd.program);
        let mut c = tokio::process::Command::new(&program);
        c.args(&cmd.args)
            .current_dir(&cwd)
            .kill_on_drop(true)
            .process_group(0);
        if self.set_home_env {
            c.env("HOME", &self.home);
        }
        c.envs(&cmd.env);
        Ok((c, program))
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
        let action = format!("exec {}", cmd.program);
        let (mut c, program) = self.command(cmd)?;
        let stdin = match cmd.stdin {
            Some(_) => Stdio::piped(),
            None => Stdio::null(),
        };
        c.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match c.spawn() {
            Ok(child) => child,
            Err(e) => {
                return not_startable(&program, &e)
                    .ok_or_else(|| ConnectorError::io("local", &action, &e));
            }
        };
        // Dropping this (the future dropped, a timeout, the program done) kills the
        // program's process group: its children never outlive the call.
        let _group = ProcessGroup::new(child.id());
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
            Some(limit) => tokio::time::timeout(limit, waiting).await.map_err(|_| {
                timeout_error("local", &action, limit, "it and its children were killed")
            })?,
            None => waiting.await,
        };
        let out = out.map_err(|e| ConnectorError::io("local", &action, &e))?;
        Ok(ExecOutput {
            exit_code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        let dest = resolve(&self.home, to);
        let action = push_action(&from, to);
        let src = OpenSource::open(&from, "local", &action)?;
        let progress = from.progress;
        // Blocking file I/O is fastest with std; run it off the async threads.
        blocking(|| {
            atomic_write(&dest, src.mode, |out| match &src.file {
                Some(file) => copy_with_progress(&mut &*file, out, progress),
                None => {
                    out.write_all(src.bytes)?;
                    progress.inspect(|p| p(src.size));
                    Ok(())
                }
            })
        })
        .map_err(|e| ConnectorError::io("local", &action, &e))
    }

    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        let src = resolve(&self.home, from);
        let action = pull_action(from, &to);
        let err = |e: std::io::Error| ConnectorError::io("local", &action, &e);
        blocking(|| {
            let mut file = std::fs::File::open(&src).map_err(err)?;
            use std::os::unix::fs::PermissionsExt;
            let meta = file.metadata().map_err(err)?;
            if meta.is_dir() {
                return Err(ConnectorError::new(
                    ConnectorErrorKind::InvalidInput,
                    "local",
                    &action,
                )
                .detail(format!("{} is a directory", src.display())));
            }
            let part = PartFile::create(to.path).map_err(err)?;
            let mut out = part.file().try_clone().map_err(err)?;
            copy_with_progress(&mut file, &mut out, to.progress).map_err(err)?;
            // Pulls keep the mode and the modification time.
            let mode = meta.permissions().mode();
            part.finish(Some(mode), meta.modified().ok()).map_err(err)
        })
    }

    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        let action = format!("spawn {}", cmd.program);
        let (mut c, program) = self.command(cmd)?;
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match c.spawn() {
            Ok(child) => child,
            // Like a shell: a program that cannot start is a process that exits 127/126.
            Err(e) => {
                let out = not_startable(&program, &e)
                    .ok_or_else(|| ConnectorError::io("local", &action, &e))?;
                return Ok(RemoteProcess {
                    stdin: Box::new(tokio::io::sink()),
                    stdout: Box::new(std::io::Cursor::new(out.stdout)),
                    stderr: Box::new(std::io::Cursor::new(out.stderr)),
                    wait: Box::pin(std::future::ready(Ok(out.exit_code))),
                });
            }
        };
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            return Err(
                ConnectorError::new(ConnectorErrorKind::Other, "local", action)
                    .detail("stdio pipes were not created"),
            );
        };
        // The timeout kills the program and its children, and so does dropping `wait`
        // before the program ended, or the program ending (its leftover children).
        let group = ProcessGroup::new(child.id());
        let wait_action = format!("wait {}", cmd.program);
        let exit = async move {
            let status = child.wait().await;
            drop(group);
            let err = |e| ConnectorError::io("local", wait_action, &e);
            status.map(|s| s.code()).map_err(err)
        };
        let timed_out = move |limit| -> BoxFuture<ConnectorError> {
            let e = timeout_error("local", &action, limit, "it and its children were killed");
            Box::pin(std::future::ready(e))
        };
        Ok(RemoteProcess {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            wait: watch_process("local", exit, cmd.timeout, timed_out),
        })
    }
}
