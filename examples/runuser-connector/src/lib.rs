//! # runuser-connector
//!
//! An example sremote connector, written as `docs/CONNECTORS.md` describes: this machine
//! as another local user, through `runuser -u USER --` (util-linux; needs root).
//!
//! Everything the contract asks (arguments as data, home-relative paths, 127/126, timeouts
//! that kill the process group, atomic transfers that keep modes and times, spawn) comes
//! from [`CommandTransport`], core's building block for anything that runs an argv behind
//! a prefix. What is left to write is what is particular to `runuser`:
//!
//! - the user name must not read as an option;
//! - the environment: `runuser -u` passes the caller's on (only `HOME`, `SHELL`, `USER`
//!   and `LOGNAME` become the user's), so the prefix starts it from an empty one, as a
//!   login would: [`PATH`] plus those four, plus the command's `env`;
//! - `runuser` waits for the program in a process of its own, and reports a program
//!   killed by signal N as exit code 128+N with the signal's name as the last line of
//!   stderr; [`exec`](Connector::exec) turns that back into `exit_code: None`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sremote_core::ConnectorError> {
//! use runuser_connector::RunuserConnector;
//! use sremote_core::{Connector, RemoteCommand};
//! let alice = RunuserConnector::new("alice")?;
//! let out = alice.exec(&RemoteCommand::new("id").arg("-un")).await?;
//! assert_eq!(out.stdout, b"alice\n");
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use sremote_core::connector::CommandTransport;
use sremote_core::{
    Connector, ConnectorError, ConnectorErrorKind, Dest, ExecOutput, RemoteCommand, RemotePath,
    RemoteProcess, Source,
};

/// The `PATH` programs get.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// This machine as the local user `user`, through `runuser -u USER --`.
#[derive(Debug, Clone)]
pub struct RunuserConnector {
    user: String,
    transport: CommandTransport,
}

impl RunuserConnector {
    /// Reach this machine as `user` (a name or a numeric id `runuser` accepts). A name
    /// that `runuser` could read as an option, or that is empty, is refused.
    pub fn new(user: &str) -> Result<Self, ConnectorError> {
        let host = format!("runuser:{user}");
        let bad = user.is_empty()
            || user.starts_with('-')
            || user
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ':');
        if bad {
            return Err(
                ConnectorError::new(ConnectorErrorKind::InvalidInput, host, "connect")
                    .detail(format!("{user:?} is not a user name"))
                    .hint("name an existing local user, e.g. `alice`"),
            );
        }
        let path = format!("PATH={PATH}");
        let prefix = ["env", "-i", &path, "runuser", "-u", user, "--"];
        Ok(RunuserConnector {
            user: user.to_string(),
            transport: CommandTransport::new(host, prefix),
        })
    }

    /// The user programs run as.
    pub fn user(&self) -> &str {
        &self.user
    }
}

#[async_trait]
impl Connector for RunuserConnector {
    fn host(&self) -> &str {
        self.transport.host()
    }

    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        let mut out = self.transport.exec(cmd).await?;
        // runuser's report of a signal: exit 128+N and strsignal(N) (C locale) last.
        if let Some(n @ 129..=192) = out.exit_code {
            // SAFETY: strsignal returns a valid C string (or null), read at once.
            let name = unsafe { libc::strsignal(n - 128) };
            // SAFETY: checked for null; the string lives until the next strsignal call.
            let name = (!name.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(name) });
            let line = name.map(|s| format!("{}\n", s.to_string_lossy()));
            if let Some(rest) = line.and_then(|l| out.stderr.strip_suffix(l.as_bytes())) {
                out.stderr.truncate(rest.len());
                out.exit_code = None;
            }
        }
        Ok(out)
    }

    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        self.transport.push(from, to).await
    }

    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        self.transport.pull(from, to).await
    }

    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        self.transport.spawn(cmd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_runuser_would_misread_are_refused() {
        for bad in ["", "-c", "--", "a b", "a\nb", "a:b"] {
            let err = RunuserConnector::new(bad).unwrap_err();
            assert_eq!(err.kind, ConnectorErrorKind::InvalidInput, "{bad:?}");
        }
        let ok = RunuserConnector::new("alice").unwrap();
        assert_eq!((ok.host(), ok.user()), ("runuser:alice", "alice"));
    }
}
