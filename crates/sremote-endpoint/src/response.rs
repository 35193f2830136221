//! Responses as the endpoint writes them: the outcome with the host's metadata.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sremote_core::protocol::{ErrorBody, Outcome, PROTOCOL_VERSION, Response, Timing, VERSION};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The response to call `id`: its outcome and output, when it started and how long it
/// ran, and this endpoint's version, host and pid.
pub(crate) fn response(
    id: &str,
    outcome: Outcome,
    stdout: String,
    stderr: String,
    started_unix_ms: u64,
    elapsed_us: u64,
) -> Response {
    Response {
        protocol: PROTOCOL_VERSION,
        id: id.to_string(),
        endpoint_version: VERSION.to_string(),
        outcome,
        stdout,
        stderr,
        timing: Timing {
            started_unix_ms,
            elapsed_us,
        },
        host: hostname(),
        pid: pid(),
    }
}

/// This process's id, asked once: glibc no longer caches it, so every
/// `std::process::id()` is a system call — one per response. (The endpoint never runs
/// Rust code in a forked child that has not exec'd.)
pub(crate) fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// An error response with the host metadata filled in.
pub(crate) fn error_response(id: String, body: ErrorBody) -> Response {
    response(
        &id,
        Outcome::Error(body),
        String::new(),
        String::new(),
        now_unix_ms(),
        0,
    )
}

/// This host's name (`gethostname`), cached.
pub(crate) fn hostname() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for buf.len() bytes; the last byte stays 0.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
        if rc != 0 {
            return String::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    })
    .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostname_is_known() {
        assert!(!super::hostname().is_empty());
    }
}
