//! The suite catches what it claims to: each new case fails against a connector broken in
//! exactly the way the case is about (a [`LocalConnector`] with one flaw).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;

use super::Fixture;
use crate::LocalConnector;
use crate::connector::support::resolve;
use crate::connector::{
    Connector, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source, SourceData,
};
use crate::error::ConnectorError;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    /// push writes into the existing file.
    PushInPlace,
    /// pull writes into the existing local file.
    PullInPlace,
    /// push gives a local file's copy 0o644 whatever its mode.
    PushIgnoresMode,
    /// a dropped exec kills the program but not its children (LocalConnector before the fix).
    ExecLeavesGroup,
    /// a dropped spawned process leaves its children.
    SpawnLeavesGroup,
    /// spawn forgets the timeout.
    SpawnIgnoresTimeout,
    /// spawn forgets env and cwd.
    SpawnIgnoresEnv,
    /// spawn's wait always says 0.
    SpawnLosesExitCode,
    /// no stdin, but a command with stdin runs anyway (without it).
    StdinRunsAnyway,
}

#[derive(Debug)]
struct Broken {
    local: LocalConnector,
    home: PathBuf,
    flaw: Flaw,
}

fn io(e: std::io::Error) -> ConnectorError {
    ConnectorError::io("broken", "a broken operation", &e)
}

/// `cmd` as a plain `tokio::process::Command`: no process group, killed alone on drop.
fn plain(b: &Broken, cmd: &RemoteCommand) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(&cmd.program);
    let cwd = cmd
        .cwd
        .as_deref()
        .map_or(b.home.clone(), |d| resolve(&b.home, d));
    c.args(&cmd.args)
        .envs(&cmd.env)
        .current_dir(cwd)
        .env("HOME", &b.home);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.kill_on_drop(true);
    c
}

#[async_trait]
impl Connector for Broken {
    fn host(&self) -> &str {
        "broken"
    }

    fn supports_stdin(&self) -> bool {
        self.flaw != Flaw::StdinRunsAnyway
    }

    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        match self.flaw {
            Flaw::ExecLeavesGroup if cmd.program == "sh" => {
                let out = plain(self, cmd).stdin(Stdio::null()).output().await;
                let out = out.map_err(io)?;
                let (stdout, stderr) = (out.stdout, out.stderr);
                let exit_code = out.status.code();
                Ok(ExecOutput {
                    exit_code,
                    stdout,
                    stderr,
                })
            }
            Flaw::StdinRunsAnyway => {
                let mut cmd = cmd.clone();
                cmd.stdin = None;
                self.local.exec(&cmd).await
            }
            _ => self.local.exec(cmd).await,
        }
    }

    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        match (self.flaw, from.data) {
            (Flaw::PushInPlace, SourceData::Bytes(b)) => {
                std::fs::write(resolve(&self.home, to), b).map_err(io)
            }
            (Flaw::PushInPlace, SourceData::File(p)) => std::fs::copy(p, resolve(&self.home, to))
                .map(drop)
                .map_err(io),
            (Flaw::PushIgnoresMode, SourceData::File(_)) => {
                self.local.push(from.mode(0o644), to).await
            }
            _ => self.local.push(from, to).await,
        }
    }

    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        if self.flaw == Flaw::PullInPlace {
            return std::fs::copy(resolve(&self.home, from), to.path)
                .map(drop)
                .map_err(io);
        }
        self.local.pull(from, to).await
    }

    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        let mut cmd = cmd.clone();
        match self.flaw {
            Flaw::SpawnLeavesGroup => {
                let mut child = plain(self, &cmd).spawn().map_err(io)?;
                let (i, o, e) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
                return Ok(RemoteProcess {
                    stdin: Box::new(i.expect("piped")),
                    stdout: Box::new(o.expect("piped")),
                    stderr: Box::new(e.expect("piped")),
                    wait: Box::pin(async move { Ok(child.wait().await.map_err(io)?.code()) }),
                });
            }
            Flaw::SpawnIgnoresTimeout => cmd.timeout = None,
            Flaw::SpawnIgnoresEnv => (cmd.env.clear(), cmd.cwd = None).1,
            _ => {}
        }
        let mut p = self.local.spawn(&cmd).await?;
        if self.flaw == Flaw::SpawnLosesExitCode {
            let wait = p.wait;
            p.wait = Box::pin(async move { wait.await.map(|_| Some(0)) });
        }
        Ok(p)
    }
}

/// Run `case` against a connector with `flaw`: `true` when it failed (or hung).
async fn fails<F>(flaw: Flaw, case: fn(Fixture<Broken>) -> F) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    let home = tempfile::tempdir().unwrap().keep();
    let fixture = Fixture {
        connector: Broken {
            local: LocalConnector::with_home(&home),
            home,
            flaw,
        },
        scratch: "scratch".into(),
        unwritable: None,
    };
    let run = tokio::spawn(case(fixture));
    match tokio::time::timeout(Duration::from_secs(20), run).await {
        Ok(Ok(())) => false,
        Ok(Err(e)) => e.is_panic(),
        Err(_) => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_case_fails_on_the_flaw_it_is_about() {
    use super::*;
    use Flaw::*;
    // All at once: a case the flaw makes hang counts as failed after 20 s.
    let got = tokio::join!(
        fails(PushInPlace, transfers_replace_files_whole_never_in_place),
        fails(PullInPlace, transfers_replace_files_whole_never_in_place),
        fails(PushIgnoresMode, push_keeps_the_local_files_mode),
        fails(ExecLeavesGroup, dropped_exec_kills_the_process_group),
        fails(SpawnLeavesGroup, dropped_spawn_kills_the_process_group),
        fails(SpawnIgnoresTimeout, spawn_timeout_kills),
        fails(SpawnIgnoresEnv, spawn_passes_arguments_env_and_cwd),
        fails(
            SpawnLosesExitCode,
            spawn_pipes_stdio_and_reports_the_exit_code
        ),
        fails(StdinRunsAnyway, refused_stdin_runs_nothing),
    );
    let checks = [
        (PushInPlace, got.0),
        (PullInPlace, got.1),
        (PushIgnoresMode, got.2),
        (ExecLeavesGroup, got.3),
        (SpawnLeavesGroup, got.4),
        (SpawnIgnoresTimeout, got.5),
        (SpawnIgnoresEnv, got.6),
        (SpawnLosesExitCode, got.7),
        (StdinRunsAnyway, got.8),
    ];
    let missed: Vec<Flaw> = checks
        .iter()
        .filter(|(_, f)| !f)
        .map(|(fl, _)| *fl)
        .collect();
    assert!(missed.is_empty(), "the suite did not catch: {missed:?}");
}
