//! Typed errors. Every message says what was tried, on which host, and what to do next.
//!
//! [`ConnectorError`] is what a transport reports; [`Error`] is the one public error of a
//! call, matched by variant the way a user recovers (reconnect, bootstrap, fix the call).

use std::collections::BTreeMap;
use std::fmt;

use crate::protocol::ErrorKind;

/// The class of a transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectorErrorKind {
    /// The host could not be reached (DNS, refused, unreachable, connect timeout).
    Connect,
    /// The host refused our credentials.
    Auth,
    /// The host's key is unknown or changed and the policy forbids going on.
    HostKey,
    /// An established connection broke.
    Disconnected,
    /// The operation ran past its time limit (the remote program was killed).
    Timeout,
    /// A path on the host or locally does not exist.
    NotFound,
    /// The host or local system refused access to a path.
    PermissionDenied,
    /// A value cannot be passed (NUL byte, bad env name, …).
    InvalidInput,
    /// This connector does not offer the operation.
    Unsupported,
    /// Any other I/O or transport failure.
    Other,
}

impl fmt::Display for ConnectorErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A transport failure: kind, host, the operation that was tried, the detail, a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError {
    pub kind: ConnectorErrorKind,
    /// The host as the connector names it.
    pub host: String,
    /// What was tried, e.g. `push ./a.bin -> data/a.bin`.
    pub action: String,
    /// What went wrong.
    pub detail: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl ConnectorError {
    pub fn new(
        kind: ConnectorErrorKind,
        host: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        ConnectorError {
            kind,
            host: host.into(),
            action: action.into(),
            detail: String::new(),
            hint: None,
        }
    }
    pub fn detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = detail.to_string();
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// The operation is not offered by this connector.
    pub fn unsupported(host: &str, op: &str, what: &str) -> Self {
        ConnectorError::new(
            ConnectorErrorKind::Unsupported,
            host,
            format!("{op} {what}"),
        )
        .detail(format!("this connector does not support {op}"))
    }
    /// Map a local I/O error, keeping `NotFound`/`PermissionDenied`/`Timeout` apart.
    pub fn io(host: &str, action: impl Into<String>, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ConnectorErrorKind::NotFound,
            K::PermissionDenied | K::ReadOnlyFilesystem => ConnectorErrorKind::PermissionDenied,
            K::TimedOut => ConnectorErrorKind::Timeout,
            K::InvalidInput => ConnectorErrorKind::InvalidInput,
            _ if err.raw_os_error() == Some(libc_eperm()) => ConnectorErrorKind::PermissionDenied,
            _ => ConnectorErrorKind::Other,
        };
        let hint = match kind {
            ConnectorErrorKind::NotFound => Some("check the path"),
            ConnectorErrorKind::PermissionDenied => {
                Some("check the permissions of the path and its directory")
            }
            _ => None,
        };
        let e = ConnectorError::new(kind, host, action).detail(err);
        match hint {
            Some(h) => e.hint(h),
            None => e,
        }
    }
}

const fn libc_eperm() -> i32 {
    1 // EPERM on every Unix
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} failed ({})", self.action, self.host, self.kind)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if let Some(h) = &self.hint {
            write!(f, " — {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectorError {}

/// A call's failure on the host: the function could not be found, rejected its
/// arguments, or failed while running.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteExecError {
    pub host: String,
    pub module: String,
    pub function: String,
    pub kind: ErrorKind,
    pub message: String,
    pub traceback: Option<String>,
    /// Output the call produced before it failed.
    pub stdout: String,
    pub stderr: String,
}

/// The endpoint on the host is missing, broken or of another version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSetupError {
    pub host: String,
    /// What was tried (e.g. the call `os.getenv`).
    pub action: String,
    pub reason: String,
}

/// Something answered with what is not a valid answer: the endpoint itself (its response
/// or session stream), or a module behind it (a plugin executable, the Python bridge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub host: String,
    pub action: String,
    pub detail: String,
    /// The start of what was received, for diagnosis.
    pub received: String,
    /// The module whose answer was garbled, e.g. the plugin's path on the host; `None`
    /// when it was the endpoint's own answer.
    pub module: Option<String>,
}

impl ProtocolError {
    fn source_and_hint(&self) -> (String, String) {
        match &self.module {
            None => (
                "the endpoint".into(),
                format!(
                    "the endpoint may be broken or of another version: run `sremote bootstrap {}`",
                    self.host
                ),
            ),
            Some(m) => (
                m.clone(),
                "fix the module so that it prints one JSON answer (see PROTOCOL.md, \"Plugin \
                 executables\")"
                    .into(),
            ),
        }
    }
}

/// The value came back but did not fit the requested Rust type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub host: String,
    pub action: String,
    pub type_name: &'static str,
    pub detail: String,
    pub value: String,
}

/// Modules the call needs are not available on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulesMissingError {
    pub host: String,
    /// What was tried (e.g. the call `os.getenv`).
    pub action: String,
    pub missing: Vec<String>,
    /// Modules that were found, with their version when known.
    pub present: BTreeMap<String, String>,
}

/// A setup line (the host's configured `setup`, see [`crate::setup`]) failed before the
/// endpoint or the job could start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    pub host: String,
    /// What was tried (e.g. the call `os.getenv`).
    pub action: String,
    /// The line's number, from 1 (0: the login shell itself).
    pub line: usize,
    /// The line's text.
    pub text: String,
    /// Its exit status.
    pub status: i32,
    /// What the host printed about it (the shell's or the command's complaint).
    pub output: String,
}

impl SetupError {
    fn output_text(&self) -> String {
        if self.output.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.output.replace('\n', "; "))
        }
    }
}

/// The error of every sremote client operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reaching or talking to the host failed; see [`ConnectorError::kind`].
    #[error(transparent)]
    Transport(#[from] ConnectorError),

    #[error(
        "{} on {}: the sremote endpoint is not set up ({}) — run `sremote bootstrap {}` \
         (or `RemoteClient::do_bootstrap_install`)",
        .0.action, .0.host, .0.reason, .0.host
    )]
    NotSetup(Box<NotSetupError>),

    #[error("{}.{} on {} failed: {}: {}{}", .0.module, .0.function, .0.host, .0.kind, .0.message, remote_hint(.0.kind))]
    RemoteExec(Box<RemoteExecError>),

    #[error(
        "{} on {}: modules missing: {} — install them on the host (e.g. \
         `client.install_python_packages`)",
        .0.action, .0.host, .0.missing.join(", ")
    )]
    ModulesMissing(Box<ModulesMissingError>),

    #[error(
        "{} on {}: garbled answer from {}: {} (received: {:?}) — {}",
        .0.action, .0.host, .0.source_and_hint().0, .0.detail, .0.received,
        .0.source_and_hint().1
    )]
    Protocol(Box<ProtocolError>),

    #[error(
        "{} on {}: the returned value does not fit `{}`: {} (value: {}) — request another type \
         or check the remote function",
        .0.action, .0.host, .0.type_name, .0.detail, .0.value
    )]
    Decode(Box<DecodeError>),

    #[error(
        "{} on {}: setup line {} `{}` failed with exit status {}{} — fix or remove it in the \
         host's `setup` (hosts config, --setup, `set_setup`); try it by hand with `ssh HOST` \
         (in `bash -l` when `login_shell = true`)",
        .0.action, .0.host, .0.line, .0.text, .0.status, .0.output_text()
    )]
    Setup(Box<SetupError>),

    /// A local problem with what the caller asked for (e.g. an argument that cannot be
    /// serialized, an unreadable local file).
    #[error("{0}")]
    Usage(String),
}

fn remote_hint(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ModuleNotFound => {
            " — list the host's modules with `sremote call HOST sys modules`; install a Python \
             package there with `sremote install HOST PACKAGE`; a module of your own travels with \
             the call as `sremote call HOST ./file.py:FUNCTION …` (from Python: pass the function \
             itself, `client.apply(f, …)`)"
        }
        ErrorKind::FunctionNotFound => {
            " — list the module's functions with `sremote call HOST sys modules`"
        }
        ErrorKind::BadArguments => " — fix the arguments to match the signature",
        ErrorKind::Timeout => " — raise the call's timeout or make the work smaller",
        ErrorKind::ProtocolVersion => {
            " — run `sremote bootstrap HOST` to install the matching endpoint"
        }
        _ => "",
    }
}

impl Error {
    /// The transport error kind, when this is a transport failure.
    pub fn transport_kind(&self) -> Option<ConnectorErrorKind> {
        match self {
            Error::Transport(e) => Some(e.kind),
            _ => None,
        }
    }
    /// The remote error kind, when the call failed on the host.
    pub fn remote_kind(&self) -> Option<ErrorKind> {
        match self {
            Error::RemoteExec(e) => Some(e.kind),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_action_host_and_next_step() {
        let e = ConnectorError::new(ConnectorErrorKind::NotFound, "alice@hpc", "pull data/x")
            .detail("no such file")
            .hint("check the path");
        assert_eq!(
            e.to_string(),
            "pull data/x on alice@hpc failed (NotFound): no such file — check the path"
        );
        let e = Error::NotSetup(Box::new(NotSetupError {
            host: "hpc".into(),
            action: "call os.getenv".into(),
            reason: "endpoint missing".into(),
        }));
        let text = e.to_string();
        assert!(
            text.contains("call os.getenv on hpc") && text.contains("sremote bootstrap hpc"),
            "{text}"
        );
        assert!(
            std::mem::size_of::<Result<(), Error>>() <= 128,
            "keep Error small: box big variants"
        );
    }
}
