//! The `Connector` trait: the only thing a new transport implements.
//!
//! # Contract
//!
//! A connector reaches one host and offers three operations: [`exec`](Connector::exec) a
//! program, [`push`](Connector::push) a file to the host and [`pull`](Connector::pull) one
//! back. [`spawn`](Connector::spawn) (a long-lived process with piped stdio) is optional.
//! Everything else in sremote (bootstrap, calls, jobs) is built on these.
//!
//! Every implementation must keep these promises; `sremote_core::testsuite` checks them and
//! every connector crate runs it:
//!
//! 1. **Arguments are data.** `program`, each argument, env names and values and `cwd`
//!    arrive on the host byte-identical. No shell on either side may interpret them: pass
//!    an argv, or quote every word for the host's shell. A string that cannot be passed
//!    (a NUL byte, an env name that is not an identifier such as `X-Y`) is refused with
//!    [`ConnectorErrorKind::InvalidInput`] ([`RemoteCommand::validate`]).
//! 2. **Home-relative.** A relative `cwd`, a relative program path containing a `/`, and a
//!    relative [`RemotePath`] are relative to the user's home directory on the host. Without
//!    `cwd` the program runs in the home directory.
//! 3. **Exit status.** A program that cannot be started reports exit code 127 (not found)
//!    or 126 (not executable), like a POSIX shell, with the reason on stderr; it is not a
//!    connector error. A program killed by a signal has `exit_code == None`.
//! 4. **Timeouts kill.** When `timeout` elapses the program *and its children* are killed
//!    on the host and the call returns [`ConnectorErrorKind::Timeout`].
//! 5. **Transfers are atomic.** `push` writes to a temporary name in the destination
//!    directory, then renames; parent directories are created. Readers never see half a
//!    file. Missing sources give `NotFound`; unwritable destinations `PermissionDenied`.
//!    `push` sets the mode (the local file's, or [`Source::mode`]); `pull` keeps the
//!    host file's mode and modification time (whole seconds).
//! 6. **Errors are typed** ([`ConnectorError`]) and name the host and the operation.
//!
//! The rest of the contract, in the order a caller meets it:
//!
//! # Environment
//!
//! A program gets the environment the *host* gives a program of that user, plus
//! [`RemoteCommand::env`] on top: for [`LocalConnector`](crate::LocalConnector) that is
//! this process's environment (with `HOME` replaced under
//! [`with_home`](crate::LocalConnector::with_home)), for SSH the non-interactive login
//! environment sshd sets up, for a command transport whatever its prefix passes on (the
//! example `runuser` connector starts from an empty one, as a login does). Never rely on a
//! variable the caller did not set in `env` except `HOME` and `PATH`. `stdin` is empty
//! (end-of-file at once) unless [`RemoteCommand::stdin`] gives bytes.
//!
//! # Dropping and cancelling
//!
//! [`exec`](Connector::exec) returns a future; **dropping it before it finished kills the
//! program and every process of its process group on the host** (a `select!`, a timeout
//! around the call, a caller that went away). The same holds for a spawned
//! [`RemoteProcess`] dropped before its `wait` resolved. Killing is best effort over a
//! broken connection, but a connector never lets a dropped program run on knowingly.
//!
//! Children a program leaves running after it exited normally are not promised to survive
//! it: local and command transports kill the process group when the program exits, SSH
//! leaves them to sshd (which closes their output channel), the gateway kills its process
//! group. Work that must outlive the call belongs in a job (`sremote submit`).
//!
//! # Concurrency
//!
//! A connector is `Send + Sync` and its operations take `&self`: any number of them may run
//! at once from many tasks (the suite runs an `exec` while another one is pending), and
//! their programs run independently. A connector may queue operations beyond a limit of
//! its transport (SSH: `max_sessions` channels) but must not fail them for being
//! concurrent. Clones (where a connector is `Clone`) share the connection.
//!
//! # Stdin
//!
//! When [`supports_stdin`](Connector::supports_stdin) is `false`, `exec` of a command
//! whose [`stdin`](RemoteCommand::stdin) holds bytes fails with
//! [`ConnectorErrorKind::Unsupported`] **before anything runs on the host**; an empty
//! `Some(vec![])` is accepted like `None`. Callers then pass input in a pushed file (the
//! client's file mode).
//!
//! # Spawn
//!
//! [`spawn`](Connector::spawn) starts the program and returns once it runs, with piped
//! stdin, stdout and stderr; its arguments, `env` and `cwd` follow promises 1 and 2, and a
//! missing `cwd` is a `NotFound` error from `spawn` itself. A program that cannot start is
//! a process that exits 127/126. Closing `stdin` is how the program learns to stop. Its
//! [`wait`](RemoteProcess::wait) resolves with the exit code once the program ended *and*
//! both output streams were read to their end or dropped (SSH drains the channel first):
//! read or drop them before awaiting `wait`. [`RemoteCommand::timeout`] counts from the
//! start, whether or not anyone polls `wait`: the program and its group are killed and
//! `wait` gives `Timeout`. Dropping `wait` (or the whole process) kills it. The default
//! implementation answers `Unsupported`; callers then fall back to `exec`.
//!
//! # Transfers
//!
//! `push` gives the host file the mode of [`Source::mode`], else the local file's, else
//! 0o644, always without setuid, setgid and sticky bits; it does **not** set the
//! modification time (the host stamps it; `sremote push` and `sync` set it afterwards with
//! `touch`). `pull` keeps the host file's mode (masked the same way) and its modification
//! time. Both replace the destination by renaming a complete file over it, never by
//! writing into it (a hard link to the old file keeps the old bytes).
//!
//! # Building one
//!
//! [`support`] has the pieces every connector needs (progress, the atomic local half of a
//! pull, a process-group guard, the 127/126 mapping, home-relative paths), [`script`] the
//! POSIX `sh` scripts that keep the contract through nothing but "run `/bin/sh -c` on the
//! host", [`scripted`] exec, push, pull and spawn on those scripts for any transport that
//! can start `/bin/sh -c SCRIPT sh ARG…` there (the SSH connector is one), and [`command`]
//! a whole connector for anything that runs an argv behind a prefix (`runuser -u U --`,
//! `podman exec -i C`, `srun --jobid J --overlap`). A connector for such a transport is a
//! name check and a prefix:
//!
//! ```
//! use async_trait::async_trait;
//! use sremote_core::connector::{CommandTransport, Connector, ConnectorError, Dest,
//!     ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source};
//!
//! /// A container, through `podman exec -i CONTAINER`.
//! #[derive(Debug)]
//! struct Podman(CommandTransport);
//!
//! impl Podman {
//!     fn new(container: &str) -> Podman {
//!         let prefix = ["podman", "exec", "-i", container];
//!         // The program runs inside the container, not in our process group.
//!         Podman(CommandTransport::new(format!("podman:{container}"), prefix).remote_kill(true))
//!     }
//! }
//!
//! #[async_trait]
//! impl Connector for Podman {
//!     fn host(&self) -> &str { self.0.host() }
//!     async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
//!         self.0.exec(cmd).await
//!     }
//!     async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
//!         self.0.push(from, to).await
//!     }
//!     async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
//!         self.0.pull(from, to).await
//!     }
//!     async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
//!         self.0.spawn(cmd).await
//!     }
//! }
//! # let _ = Podman::new("c1");
//! ```
//!
//! Then run the suite against a real host: `sremote_core::connector_tests!(fixture);`
//! (module `sremote_core::testsuite`, feature `testsuite`). `docs/CONNECTORS.md` walks
//! through it, and `examples/runuser-connector` is a complete crate.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::error::{ConnectorError, ConnectorErrorKind};

pub mod command;
pub mod script;
pub mod scripted;
pub mod support;
pub use command::CommandTransport;

/// A program to run on the host: an argv, never a shell command line.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RemoteCommand {
    /// Program name (looked up in the host's `PATH`) or path.
    pub program: String,
    /// Arguments, passed as data.
    pub args: Vec<String>,
    /// Bytes written to the program's stdin; `None` gives it an empty stdin.
    pub stdin: Option<Vec<u8>>,
    /// Environment variables added to the program's environment.
    pub env: BTreeMap<String, String>,
    /// Working directory (relative: to the home directory).
    pub cwd: Option<String>,
    /// Kill the program (and its children) after this long.
    pub timeout: Option<Duration>,
}

impl RemoteCommand {
    /// Run `program` (a name looked up in `PATH`, or a path) with no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        RemoteCommand {
            program: program.into(),
            ..Default::default()
        }
    }
    /// Add one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
    /// Add arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    /// Feed these bytes to the program's stdin (then end-of-file).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }
    /// Set an environment variable (the name must be an identifier).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
    /// Run in this directory (relative: to the home directory); it must exist.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    /// Kill the program and its children after `t` (the call fails with `Timeout`).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Check what every connector must refuse: NUL bytes anywhere, an env name that is not
    /// an identifier ([`shell::is_env_name`](crate::shell::is_env_name)).
    pub fn validate(&self, host: &str) -> Result<(), ConnectorError> {
        let bad = |what: &str| {
            Err(ConnectorError::new(
                ConnectorErrorKind::InvalidInput,
                host,
                format!("exec {}", self.program),
            )
            .detail(format!("{what} cannot be passed to a program"))
            .hint(
                "remove the NUL byte; environment variable names are letters, digits and `_` \
                 and do not start with a digit",
            ))
        };
        if self.program.is_empty() {
            return bad("an empty program name");
        }
        let strings = std::iter::once(&self.program)
            .chain(&self.args)
            .chain(self.cwd.iter());
        if strings.clone().any(|s| s.contains('\0')) {
            return bad("an argument containing a NUL byte");
        }
        for (k, v) in &self.env {
            if !crate::shell::is_env_name(k) || v.contains('\0') {
                return bad(&format!("the environment variable {k:?}"));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for RemoteCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("stdin", &self.stdin.as_ref().map(Vec::len))
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a finished program left behind.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; `None` when the program was killed by a signal.
    pub exit_code: Option<i32>,
    /// Everything the program wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the program wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Whether the program exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
    /// stderr as text, trimmed, for error messages.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

impl fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecOutput")
            .field("exit_code", &self.exit_code)
            .field(
                "stdout",
                &String::from_utf8_lossy(&self.stdout[..self.stdout.len().min(200)]),
            )
            .field(
                "stderr",
                &String::from_utf8_lossy(&self.stderr[..self.stderr.len().min(200)]),
            )
            .finish()
    }
}

/// A path on the host. Relative paths are relative to the user's home directory.
pub type RemotePath = str;

/// Progress of a transfer: called with the number of bytes moved so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// What to push: a local file or bytes in memory.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The bytes to send: a file or memory.
    pub data: SourceData<'a>,
    /// Permission bits for the file on the host; `None` keeps the local file's mode
    /// (for files) or uses 0o644 (for bytes).
    pub mode: Option<u32>,
    /// Called with the bytes sent so far.
    pub progress: Option<Progress<'a>>,
    /// A short-lived file (a request in file mode, an installer): the connector may skip
    /// making it durable (e.g. fsync) when that costs time.
    pub scratch: bool,
}

/// The bytes of a [`Source`].
#[derive(Debug, Clone, Copy)]
pub enum SourceData<'a> {
    /// A local file, read when the push runs.
    File(&'a Path),
    /// Bytes in memory.
    Bytes(&'a [u8]),
}

impl<'a> Source<'a> {
    /// Push the local file at `path` (its mode unless [`mode`](Source::mode) says otherwise).
    pub fn file(path: &'a Path) -> Self {
        Source {
            data: SourceData::File(path),
            mode: None,
            progress: None,
            scratch: false,
        }
    }
    /// Push these bytes (mode 0o644 unless [`mode`](Source::mode) says otherwise).
    pub fn bytes(bytes: &'a [u8]) -> Self {
        Source {
            data: SourceData::Bytes(bytes),
            mode: None,
            progress: None,
            scratch: false,
        }
    }
    /// Give the host file these permission bits (setuid, setgid and sticky are dropped).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }
    /// Report the bytes sent so far to `p`.
    pub fn progress(mut self, p: Progress<'a>) -> Self {
        self.progress = Some(p);
        self
    }
    /// Mark the file short-lived (see [`Source::scratch`](Source#structfield.scratch)).
    pub fn scratch(mut self) -> Self {
        self.scratch = true;
        self
    }
}

impl fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.data {
            SourceData::File(p) => write!(f, "Source::file({})", p.display()),
            SourceData::Bytes(b) => write!(f, "Source::bytes({} bytes)", b.len()),
        }
    }
}

/// Where a pulled file goes: a local path (written atomically), with optional progress.
#[derive(Clone, Copy)]
pub struct Dest<'a> {
    /// The local file to (re)place.
    pub path: &'a Path,
    /// Called with the bytes received so far.
    pub progress: Option<Progress<'a>>,
}

impl<'a> Dest<'a> {
    /// Pull into the local file at `path`.
    pub fn file(path: &'a Path) -> Self {
        Dest {
            path,
            progress: None,
        }
    }
    /// Report the bytes received so far to `p`.
    pub fn progress(mut self, p: Progress<'a>) -> Self {
        self.progress = Some(p);
        self
    }
}

impl fmt::Debug for Dest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dest::file({})", self.path.display())
    }
}

impl<'a> From<&'a Path> for Dest<'a> {
    fn from(path: &'a Path) -> Self {
        Dest::file(path)
    }
}

/// A boxed, sendable future (avoids a dependency on the `futures` crate).
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A program started with [`Connector::spawn`], with piped stdio.
///
/// Closing `stdin` is how the program learns to stop; dropping `wait` (or the whole
/// process) kills it and its process group on the host. `wait` resolves once the program
/// ended and `stdout` and `stderr` were read to their end or dropped (see the module
/// documentation, *Spawn*).
pub struct RemoteProcess {
    /// The program's stdin; closing it is how the program learns to stop.
    pub stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    /// The program's stdout (only its own bytes).
    pub stdout: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    /// The program's stderr (only its own bytes).
    pub stderr: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    /// Resolves with the exit code (`None`: killed by a signal) when the program ends.
    pub wait: BoxFuture<Result<Option<i32>, ConnectorError>>,
}

impl fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteProcess { .. }")
    }
}

/// A transport to one host. See the [module documentation](self) for the contract.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// A short name of the host for messages and logs (`local`, `user@host:port`, …).
    fn host(&self) -> &str;

    /// Run a program on the host and collect its exit status and output.
    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError>;

    /// Copy a local file or in-memory bytes to `to` on the host, atomically.
    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError>;

    /// Copy `from` on the host to a local file, atomically.
    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError>;

    /// Start a long-lived program with piped stdin/stdout/stderr (enables session mode).
    /// Optional: the default says it is unsupported.
    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        Err(ConnectorError::unsupported(
            self.host(),
            "spawn",
            &cmd.program,
        ))
    }

    /// Whether [`exec`](Connector::exec) can feed stdin (pipe mode). Connectors whose
    /// transport has no stdin (some REST APIs) return `false` and get file mode.
    fn supports_stdin(&self) -> bool {
        true
    }

    /// How to connect to this host again later, from another process (recorded with
    /// jobs). `None` (the default): only by what [`host`](Connector::host) says.
    fn reach(&self) -> Option<crate::Reach> {
        None
    }
}

macro_rules! forward_connector {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<C: Connector + ?Sized> Connector for $ty {
            fn host(&self) -> &str { (**self).host() }
            async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
                (**self).exec(cmd).await
            }
            async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
                (**self).push(from, to).await
            }
            async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
                (**self).pull(from, to).await
            }
            async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
                (**self).spawn(cmd).await
            }
            fn supports_stdin(&self) -> bool { (**self).supports_stdin() }
            fn reach(&self) -> Option<crate::Reach> { (**self).reach() }
        }
    )*};
}
forward_connector!(Box<C>, std::sync::Arc<C>);
