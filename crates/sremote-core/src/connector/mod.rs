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

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::error::{ConnectorError, ConnectorErrorKind};

pub mod command;
pub mod script;
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
    pub fn new(program: impl Into<String>) -> Self {
        RemoteCommand {
            program: program.into(),
            ..Default::default()
        }
    }
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
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
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
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
    pub data: SourceData<'a>,
    /// Permission bits for the file on the host; `None` keeps the local file's mode
    /// (for files) or uses 0o644 (for bytes).
    pub mode: Option<u32>,
    pub progress: Option<Progress<'a>>,
    /// A short-lived file (a request in file mode, an installer): the connector may skip
    /// making it durable (e.g. fsync) when that costs time.
    pub scratch: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum SourceData<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

impl<'a> Source<'a> {
    pub fn file(path: &'a Path) -> Self {
        Source {
            data: SourceData::File(path),
            mode: None,
            progress: None,
            scratch: false,
        }
    }
    pub fn bytes(bytes: &'a [u8]) -> Self {
        Source {
            data: SourceData::Bytes(bytes),
            mode: None,
            progress: None,
            scratch: false,
        }
    }
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }
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
    pub path: &'a Path,
    pub progress: Option<Progress<'a>>,
}

impl<'a> Dest<'a> {
    pub fn file(path: &'a Path) -> Self {
        Dest {
            path,
            progress: None,
        }
    }
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
/// Closing `stdin` is how the program learns to stop; dropping `wait` kills it (on the
/// host, where the transport allows).
pub struct RemoteProcess {
    pub stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    pub stdout: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
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
