//! Typed errors. Every message says what was tried, on which host, and what to do next.
//!
//! [`ConnectorError`] is what a transport reports; [`Error`] is the one public error of a
//! call, matched by variant the way a user recovers (reconnect, bootstrap, fix the call).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

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

/// A transport failure: kind, host, the operation that was tried, the detail, a hint, and
/// the underlying error when there is one ([`std::error::Error::source`], as
/// object_store keeps it).
#[derive(Debug, Clone)]
pub struct ConnectorError {
    /// The class of the failure, to match on.
    pub kind: ConnectorErrorKind,
    /// The host as the connector names it.
    pub host: String,
    /// What was tried, e.g. `push ./a.bin -> data/a.bin`.
    pub action: String,
    /// What went wrong.
    pub detail: String,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// The error that caused it (an I/O error, the transport library's error), if any.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Equal when kind, host, action, detail and hint are (the cause is not compared).
impl PartialEq for ConnectorError {
    fn eq(&self, other: &Self) -> bool {
        (
            self.kind,
            &self.host,
            &self.action,
            &self.detail,
            &self.hint,
        ) == (
            other.kind,
            &other.host,
            &other.action,
            &other.detail,
            &other.hint,
        )
    }
}

impl Eq for ConnectorError {}

impl ConnectorError {
    /// A failure of `action` on `host`, of class `kind` (add [`detail`](Self::detail),
    /// [`hint`](Self::hint), [`with_source`](Self::with_source)).
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
            source: None,
        }
    }
    /// What went wrong (the text of `detail`).
    pub fn detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = detail.to_string();
        self
    }
    /// What the user can do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// Keep `cause` as this error's [`source`](std::error::Error::source).
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(cause));
        self
    }
    /// What was tried, on which host, and what went wrong — the text without the hint.
    pub fn message(&self) -> String {
        let mut s = format!("{} on {} failed ({})", self.action, self.host, self.kind);
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
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
    /// Map a local I/O error, keeping `NotFound`/`PermissionDenied`/`Timeout` apart; a
    /// copy of `err` (its OS error code, or its kind and text) is the source.
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
        let cause = match err.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(err.kind(), err.to_string()),
        };
        let e = ConnectorError::new(kind, host, action)
            .detail(err)
            .with_source(cause);
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
        with_hint(f, &self.message(), self.hint.as_deref())
    }
}

impl std::error::Error for ConnectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `message — hint`, the one text form of an error with its hint.
fn with_hint(f: &mut fmt::Formatter<'_>, message: &str, hint: Option<&str>) -> fmt::Result {
    f.write_str(message)?;
    match hint {
        Some(h) => write!(f, " — {h}"),
        None => Ok(()),
    }
}

/// A call's failure on the host: the function could not be found, rejected its
/// arguments, or failed while running.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteExecError {
    /// The host the call ran on.
    pub host: String,
    /// The called module.
    pub module: String,
    /// The called function.
    pub function: String,
    /// What went wrong, to match on.
    pub kind: ErrorKind,
    /// The host's message.
    pub message: String,
    /// The host's traceback, when the module gives one (Python).
    pub traceback: Option<String>,
    /// Output the call produced before it failed.
    pub stdout: String,
    /// Its stderr before it failed.
    pub stderr: String,
}

/// The endpoint on the host is missing, broken or of another version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSetupError {
    /// The host.
    pub host: String,
    /// What was tried (e.g. the call `os.getenv`).
    pub action: String,
    /// What is wrong with the endpoint there.
    pub reason: String,
}

/// Something answered with what is not a valid answer: the endpoint itself (its response
/// or session stream), or a module behind it (a plugin executable, the Python bridge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// The host.
    pub host: String,
    /// What was tried.
    pub action: String,
    /// What is wrong with the answer.
    pub detail: String,
    /// The start of what was received, for diagnosis.
    pub received: String,
    /// The module whose answer was garbled, e.g. the plugin's path on the host; `None`
    /// when it was the endpoint's own answer.
    pub module: Option<String>,
}

impl ProtocolError {
    fn hint(&self) -> String {
        match &self.module {
            None => format!(
                "the endpoint may be broken or of another version: run `sremote bootstrap {}`",
                self.host
            ),
            Some(_) => "fix the module so that it prints one JSON answer (see PROTOCOL.md, \
                        \"Plugin executables\")"
                .into(),
        }
    }
}

/// The value came back but did not fit the requested Rust type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The host.
    pub host: String,
    /// What was tried.
    pub action: String,
    /// The Rust type asked for.
    pub type_name: &'static str,
    /// Why the value does not fit it.
    pub detail: String,
    /// The value as it came (JSON, shortened).
    pub value: String,
}

/// Modules the call needs are not available on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulesMissingError {
    /// The host.
    pub host: String,
    /// What was tried (e.g. the call `os.getenv`).
    pub action: String,
    /// The modules that are not there.
    pub missing: Vec<String>,
    /// Modules that were found, with their version when known.
    pub present: BTreeMap<String, String>,
}

/// A setup line (the host's configured `setup`, see [`crate::setup`]) failed before the
/// endpoint or the job could start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// The host.
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

/// A local problem with what the caller asked for, with what to do about it (made by
/// [`Error::usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// What is wrong with the request.
    pub message: String,
    /// What to do instead.
    pub hint: String,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        with_hint(f, &self.message, Some(&self.hint))
    }
}

/// The error of every sremote client operation.
///
/// Its text is [`message`](Error::message), then ` — ` and the [`hint`](Error::hint) when
/// there is one; [`kind`](Error::kind) names its class. Front ends print these parts
/// rather than cutting the text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reaching or talking to the host failed; see [`ConnectorError::kind`].
    #[error(transparent)]
    Transport(#[from] ConnectorError),

    /// The endpoint on the host is missing, broken or of another version.
    #[error("{}", Hinted(self))]
    NotSetup(Box<NotSetupError>),

    /// The call failed on the host (by [`ErrorKind`]).
    #[error("{}", Hinted(self))]
    RemoteExec(Box<RemoteExecError>),

    /// Modules the call needs are not on the host.
    #[error("{}", Hinted(self))]
    ModulesMissing(Box<ModulesMissingError>),

    /// The endpoint, or a module behind it, answered with what is not a valid answer.
    #[error("{}", Hinted(self))]
    Protocol(Box<ProtocolError>),

    /// The value came back but does not fit the requested type.
    #[error("{}", Hinted(self))]
    Decode(Box<DecodeError>),

    /// A setup line of the host failed.
    #[error("{}", Hinted(self))]
    Setup(Box<SetupError>),

    /// A local problem with what the caller asked for (e.g. an argument that cannot be
    /// serialized, an unreadable local file). No hint: [`Error::usage`] makes one with a
    /// hint ([`Error::Invalid`]).
    #[error("{0}")]
    Usage(String),

    /// A local problem with what the caller asked for, and what to do instead: the same
    /// class as [`Error::Usage`] (its [`kind`](Error::kind) is `Usage`).
    #[error("{}", Hinted(self))]
    Invalid(Box<UsageError>),
}

/// Displays an [`Error`] as `message — hint`.
struct Hinted<'a>(&'a Error);

impl fmt::Display for Hinted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        with_hint(f, &self.0.message(), self.0.hint().as_deref())
    }
}

fn remote_hint(kind: ErrorKind) -> Option<&'static str> {
    Some(match kind {
        ErrorKind::ModuleNotFound => {
            "list the host's modules with `sremote call HOST sys modules`; install a Python \
             package there with `sremote install HOST PACKAGE`; a module of your own travels with \
             the call as `sremote call HOST ./file.py:FUNCTION …` (from Python: pass the function \
             itself, `client.apply(f, …)`)"
        }
        ErrorKind::FunctionNotFound => {
            "list the module's functions with `sremote call HOST sys modules`"
        }
        ErrorKind::BadArguments => "fix the arguments to match the signature",
        ErrorKind::Timeout => "raise the call's timeout or make the work smaller",
        ErrorKind::ProtocolVersion => {
            "run `sremote bootstrap HOST` to install the matching endpoint"
        }
        _ => return None,
    })
}

impl Error {
    /// A [`Usage`](Error::Usage) error with what to do instead ([`Error::Invalid`]).
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Invalid(Box::new(UsageError {
            message: message.into(),
            hint: hint.into(),
        }))
    }

    /// What was tried, on which host, and what went wrong: the text without the hint.
    pub fn message(&self) -> String {
        match self {
            Error::Transport(t) => t.message(),
            Error::NotSetup(n) => format!(
                "{} on {}: the sremote endpoint is not set up ({})",
                n.action, n.host, n.reason
            ),
            Error::RemoteExec(r) => format!(
                "{}.{} on {} failed: {}: {}",
                r.module, r.function, r.host, r.kind, r.message
            ),
            Error::ModulesMissing(m) => format!(
                "{} on {}: modules missing: {}",
                m.action,
                m.host,
                m.missing.join(", ")
            ),
            Error::Protocol(p) => format!(
                "{} on {}: garbled answer from {}: {} (received: {:?})",
                p.action,
                p.host,
                p.module.as_deref().unwrap_or("the endpoint"),
                p.detail,
                p.received
            ),
            Error::Decode(d) => format!(
                "{} on {}: the returned value does not fit `{}`: {} (value: {})",
                d.action, d.host, d.type_name, d.detail, d.value
            ),
            Error::Setup(s) => format!(
                "{} on {}: setup line {} `{}` failed with exit status {}{}",
                s.action,
                s.host,
                s.line,
                s.text,
                s.status,
                s.output_text()
            ),
            Error::Usage(m) => m.clone(),
            Error::Invalid(u) => u.message.clone(),
        }
    }

    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Transport(t) => t.hint.clone(),
            Error::NotSetup(n) => Some(format!(
                "run `sremote bootstrap {}` (or `RemoteClient::do_bootstrap_install`)",
                n.host
            )),
            Error::RemoteExec(r) => remote_hint(r.kind).map(str::to_string),
            Error::ModulesMissing(_) => {
                Some("install them on the host (e.g. `client.install_python_packages`)".into())
            }
            Error::Protocol(p) => Some(p.hint()),
            Error::Decode(_) => Some("request another type or check the remote function".into()),
            Error::Setup(_) => Some(
                "fix or remove it in the host's `setup` (hosts config, --setup, `set_setup`); \
                 try it by hand with `ssh HOST` (in `bash -l` when `login_shell = true`)"
                    .into(),
            ),
            Error::Usage(_) => None,
            Error::Invalid(u) => Some(u.hint.clone()),
        }
    }

    /// The error's class: the transport kind (`Connect`, `NotFound`, …), the remote kind
    /// (`ModuleNotFound`, `Raised`, …), or the variant (`NotSetup`, `ModulesMissing`,
    /// `Protocol`, `Decode`, `Setup`, `Usage`).
    pub fn kind(&self) -> &'static str {
        use ConnectorErrorKind as K;
        match self {
            Error::Transport(t) => match t.kind {
                K::Connect => "Connect",
                K::Auth => "Auth",
                K::HostKey => "HostKey",
                K::Disconnected => "Disconnected",
                K::Timeout => "Timeout",
                K::NotFound => "NotFound",
                K::PermissionDenied => "PermissionDenied",
                K::InvalidInput => "InvalidInput",
                K::Unsupported => "Unsupported",
                K::Other => "Other",
            },
            Error::RemoteExec(r) => r.kind.as_str(),
            Error::NotSetup(_) => "NotSetup",
            Error::ModulesMissing(_) => "ModulesMissing",
            Error::Protocol(_) => "Protocol",
            Error::Decode(_) => "Decode",
            Error::Setup(_) => "Setup",
            Error::Usage(_) | Error::Invalid(_) => "Usage",
        }
    }

    /// Whether this is a local problem with what was asked ([`Error::Usage`] or
    /// [`Error::Invalid`]).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_) | Error::Invalid(_))
    }

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

    /// Every variant: the text is `message — hint` exactly as the hint-in-text errors
    /// used to print, and the parts are data.
    #[test]
    fn text_is_message_then_hint() {
        let remote = |kind| {
            Error::RemoteExec(Box::new(RemoteExecError {
                host: "h".into(),
                module: "m".into(),
                function: "f".into(),
                kind,
                message: "boom".into(),
                traceback: None,
                stdout: String::new(),
                stderr: String::new(),
            }))
        };
        let cases = [
            (
                remote(ErrorKind::BadArguments),
                "m.f on h failed: BadArguments: boom",
                Some("fix the arguments to match the signature"),
                "BadArguments",
            ),
            (
                remote(ErrorKind::Raised),
                "m.f on h failed: Raised: boom",
                None,
                "Raised",
            ),
            (
                Error::Decode(Box::new(DecodeError {
                    host: "h".into(),
                    action: "call m.f".into(),
                    type_name: "u8",
                    detail: "too big".into(),
                    value: "300".into(),
                })),
                "call m.f on h: the returned value does not fit `u8`: too big (value: 300)",
                Some("request another type or check the remote function"),
                "Decode",
            ),
            (
                Error::Protocol(Box::new(ProtocolError {
                    host: "h".into(),
                    action: "call m.f".into(),
                    detail: "not JSON".into(),
                    received: "x".into(),
                    module: None,
                })),
                "call m.f on h: garbled answer from the endpoint: not JSON (received: \"x\")",
                Some("the endpoint may be broken or of another version: run `sremote bootstrap h`"),
                "Protocol",
            ),
            (Error::Usage("bad".into()), "bad", None, "Usage"),
            (
                Error::usage("bad", "do better"),
                "bad",
                Some("do better"),
                "Usage",
            ),
        ];
        for (e, message, hint, kind) in cases {
            assert_eq!(e.message(), message);
            assert_eq!(e.hint().as_deref(), hint);
            assert_eq!(e.kind(), kind);
            let text = match hint {
                Some(h) => format!("{message} — {h}"),
                None => message.to_string(),
            };
            assert_eq!(e.to_string(), text);
        }
        let t = Error::Transport(
            ConnectorError::new(ConnectorErrorKind::Timeout, "h", "exec x").hint("wait"),
        );
        assert_eq!(
            (t.message(), t.hint(), t.kind()),
            (
                "exec x on h failed (Timeout)".into(),
                Some("wait".into()),
                "Timeout"
            )
        );
    }

    #[test]
    fn a_connector_error_keeps_its_cause() {
        use std::error::Error as _;
        let io = std::io::Error::from_raw_os_error(2);
        let e = ConnectorError::io("h", "pull x", &io);
        assert_eq!(e.kind, ConnectorErrorKind::NotFound);
        let cause = e.source().expect("the I/O error is the source");
        let cause = cause
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(cause.raw_os_error(), Some(2));
        // Through Error::Transport too (transparent).
        let outer = Error::Transport(e.clone());
        assert!(outer.source().is_some());
        assert_eq!(e, e.clone().with_source(std::fmt::Error));
    }
}
