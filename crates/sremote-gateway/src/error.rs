//! Errors: [`GatewayError`] at startup and in the admin commands, [`ApiError`] as HTTP answers.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failure to start the gateway or to run an admin command.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration file is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The users file is missing or invalid, or cannot be written.
    #[error("users file: {0}")]
    Users(String),
    /// Binding the address, loading TLS material or serving failed.
    #[error("{0}")]
    Serve(String),
}

/// An HTTP error answer: a status, a short machine-readable code and a message, sent as
/// JSON `{"status": "ERROR", "error": message, "code": code}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short machine-readable code (`auth`, `forbidden`, `too_large`, `timeout`, …).
    pub code: &'static str,
    /// What happened, for people.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    /// 401: no, unknown or expired credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "auth", message)
    }
    /// 403: the path is not allowed (outside every root, `..`, NUL) or not writable.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404: no such file or machine.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 413: the request body is larger than the configured limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than this gateway's limit of {limit} bytes"),
        )
    }
    /// 422: the request is well-formed HTTP but cannot be carried out as asked.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// 500: something failed on the host.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    /// Map a file-system error on `what`.
    pub fn io(what: &str, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match err.kind() {
            K::NotFound => Self::not_found(format!("{what}: no such file or directory")),
            K::PermissionDenied | K::ReadOnlyFilesystem => {
                Self::forbidden(format!("{what}: permission denied"))
            }
            K::IsADirectory | K::DirectoryNotEmpty => {
                Self::unprocessable("is_directory", format!("{what}: {err}"))
            }
            K::NotADirectory => Self::not_found(format!("{what}: {err}")),
            K::AlreadyExists => Self::unprocessable("exists", format!("{what}: {err}")),
            K::StorageFull | K::QuotaExceeded => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage",
                format!("{what}: {err}"),
            ),
            _ if err.raw_os_error() == Some(libc::EPERM) => {
                Self::forbidden(format!("{what}: {err}"))
            }
            _ if err.raw_os_error() == Some(libc::EISDIR) => {
                Self::unprocessable("is_directory", format!("{what}: {err}"))
            }
            _ => Self::internal(format!("{what}: {err}")),
        }
    }
}

/// A rejected form body: 413 when it is over the size limit, else 422.
pub fn form_error(what: &str, e: &axum::extract::rejection::FormRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the {what} form is over this gateway's max_form_bytes"),
        );
    }
    ApiError::unprocessable("bad_form", format!("bad {what} form: {e}"))
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "status": "ERROR", "error": self.message, "code": self.code });
        (self.status, Json(body)).into_response()
    }
}
