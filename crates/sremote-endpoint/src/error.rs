//! [`CallError`]: how a module function reports failure.

use std::fmt;

use serde_json::Value;
use sremote_core::protocol::{ErrorBody, ErrorKind};

/// A failed call, as a function (or the dispatcher) reports it.
///
/// It becomes the response's `error` member: `kind` is what the client matches on,
/// `message` is shown to the user, `traceback` and `data` carry optional detail.
///
/// `CallError` deliberately does not implement [`std::error::Error`]: that keeps
/// `Result<T, CallError>` distinct from `Result<T, E: Error>` when a function is
/// registered (see [`crate::IntoCallResult`]). Convert other errors with
/// [`CallError::raised`] or the `From` impls.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// The kind the client matches on.
    pub kind: ErrorKind,
    /// One human-readable line (or a few): what failed and why.
    pub message: String,
    /// A traceback or panic location, when there is one.
    pub traceback: Option<String>,
    /// Machine-readable detail (`null` when there is none).
    pub data: Value,
}

impl CallError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CallError {
            kind,
            message: message.into(),
            traceback: None,
            data: Value::Null,
        }
    }

    /// The function ran and failed: kind [`ErrorKind::Raised`].
    pub fn raised(message: impl Into<String>) -> Self {
        CallError::new(ErrorKind::Raised, message)
    }

    /// The arguments did not fit the signature: kind [`ErrorKind::BadArguments`].
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        CallError::new(ErrorKind::BadArguments, message)
    }

    /// An OS error from `function` acting on `path`, e.g.
    /// `os.remove("/x"): No such file or directory (os error 2)`.
    pub fn os(function: &str, path: &str, err: &std::io::Error) -> Self {
        CallError::raised(format!("{function}({path:?}): {err}"))
    }

    /// Attach a traceback.
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> Self {
        self.traceback = Some(traceback.into());
        self
    }

    /// Attach machine-readable detail.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// The wire form, naming the module and function that failed.
    pub fn into_body(self, module: &str, function: &str) -> ErrorBody {
        ErrorBody {
            kind: self.kind,
            module: Some(module.to_string()),
            function: Some(function.to_string()),
            message: self.message,
            traceback: self.traceback,
            data: self.data,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl From<std::io::Error> for CallError {
    fn from(e: std::io::Error) -> Self {
        CallError::raised(e.to_string())
    }
}

impl From<serde_json::Error> for CallError {
    fn from(e: serde_json::Error) -> Self {
        CallError::raised(format!("JSON error: {e}"))
    }
}

impl From<String> for CallError {
    fn from(message: String) -> Self {
        CallError::raised(message)
    }
}

impl From<&str> for CallError {
    fn from(message: &str) -> Self {
        CallError::raised(message)
    }
}
