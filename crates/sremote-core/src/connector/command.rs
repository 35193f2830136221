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

use async_trait::async_trait;

use super::script;
use super::scripted::{self, Input, ScriptHost, Started};
use super::support::ProcessGroup;
use super::{Connector, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source};
use crate::error::ConnectorError;

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

    /// `PREFIX /bin/sh -c script sh args…` in a new local process group, stderr piped.
    fn command(&self, script: &str, args: &[String]) -> (tokio::process::Command, String) {
        let mut argv = self
            .prefix
            .iter()
            .map(String::as_str)
            .chain(["/bin/sh", "-c", script, "sh"])
            .chain(args.iter().map(String::as_str));
        let program = argv.next().unwrap_or("/bin/sh").to_string();
        let mut c = tokio::process::Command::new(&program);
        c.args(argv)
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        (c, program)
    }
}

#[async_trait]
impl ScriptHost for CommandTransport {
    fn host(&self) -> &str {
        &self.host
    }

    fn needs(&self) -> &str {
        "the prefix must run its arguments as a program on the host, which needs a POSIX \
         /bin/sh (try `PREFIX /bin/sh -c true`)"
    }

    async fn start(
        &self,
        script: &str,
        args: Vec<String>,
        stdin: Input<'_>,
        action: &str,
    ) -> Result<Started, ConnectorError> {
        let (mut c, program) = self.command(script, &args);
        let host = self.host.clone();
        let local = |e: std::io::Error| ConnectorError::io(&host, action, &e);
        c.stdout(Stdio::piped()).stdin(match stdin {
            Input::Null => Stdio::null(),
            Input::Piped => Stdio::piped(),
            Input::File(f) => Stdio::from(f.try_clone().map_err(local)?),
        });
        let mut child = c.spawn().map_err(|e| {
            local(e).hint(format!(
                "cannot start `{program}` here: install it or fix the prefix"
            ))
        })?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(local(std::io::Error::other("no pipes")));
        };
        let stdin = child.stdin.take().map(|i| Box::new(i) as _);
        // Dropping `wait` early, or the program ending, kills the local process group.
        let group = ProcessGroup::new(child.id());
        let action = action.to_string();
        let wait = Box::pin(async move {
            let status = child.wait().await;
            drop(group);
            status
                .map(|s| s.code())
                .map_err(|e| ConnectorError::io(&host, action, &e))
        });
        let this = self.clone();
        let kill = self.remote_kill.then(|| {
            Arc::new(move |pid: u32| {
                let (mut c, _) = this.command(script::KILL, &[pid.to_string()]);
                c.stdin(Stdio::null()).stdout(Stdio::null());
                Box::pin(async move {
                    if let Ok(out) = c.output().await {
                        drop(out);
                    }
                }) as super::BoxFuture<()>
            }) as scripted::Killer
        });
        Ok(Started {
            stdin,
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            wait,
            kill,
        })
    }
}

#[async_trait]
impl Connector for CommandTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        scripted::exec(self, cmd).await
    }

    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        scripted::push(self, from, to).await
    }

    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        scripted::pull(self, from, to).await
    }

    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        scripted::spawn(self, cmd).await
    }
}
