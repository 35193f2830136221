//! The open-files limit. Every open session holds descriptors in this process (its stdin,
//! stdout and stderr pipes and its socket to the master), so one process holding hundreds
//! of hosts needs more than the soft limit most systems start programs with (1,024).

use std::sync::Once;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use sremote_core::{ConnectorError, ConnectorErrorKind};

/// Descriptors one open session (a spawned remote process) holds in this process.
pub const FDS_PER_SESSION: u64 = 4;

/// The soft limit [`raise_open_files_limit`] goes up to (when the hard limit allows):
/// 16,384 sessions. Not the hard limit itself, which may be a million or more: children
/// inherit the soft limit, and some still close every descriptor up to it.
pub const OPEN_FILES_WANTED: u64 = 65_536;

/// Raise this process's soft open-files limit towards its hard limit, up to
/// [`OPEN_FILES_WANTED`] (never lowering it), as many servers and the Go runtime do at
/// start. Returns the soft limit now in force (`None`: unlimited). [`SshConnector`]
/// calls it once, before its first connection; call it yourself to do it earlier.
///
/// [`SshConnector`]: crate::SshConnector
pub fn raise_open_files_limit() -> Option<u64> {
    let lim = getrlimit(Resource::Nofile);
    let current = lim.current?;
    let target = lim
        .maximum
        .map_or(OPEN_FILES_WANTED, |max| max.min(OPEN_FILES_WANTED))
        .max(current);
    if target > current {
        let raised = Rlimit {
            current: Some(target),
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Some(target);
        }
    }
    Some(current)
}

/// [`raise_open_files_limit`], once per process.
pub(crate) fn raise_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        raise_open_files_limit();
    });
}

/// Whether an error's text says this process (or the system) ran out of descriptors
/// (EMFILE, ENFILE).
pub(crate) fn out_of_files_text(text: &str) -> bool {
    text.contains("Too many open files")
}

/// Whether `e` is EMFILE or ENFILE.
pub(crate) fn out_of_files_io(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(c) if c == rustix::io::Errno::MFILE.raw_os_error() || c == rustix::io::Errno::NFILE.raw_os_error()
    )
}

/// The error for an operation that failed because no descriptor was left: what the limit
/// is and what to do, instead of a broken connection or a missing `ssh`.
pub(crate) fn out_of_files(
    host: &str,
    action: &str,
    detail: impl std::fmt::Display,
) -> ConnectorError {
    let limit = match getrlimit(Resource::Nofile).current {
        Some(n) => format!("{n}"),
        None => "unlimited".into(),
    };
    ConnectorError::new(ConnectorErrorKind::Other, host, action)
        .detail(format!(
            "this process has no file descriptor left ({detail})"
        ))
        .hint(format!(
            "its open-files limit is {limit} and every open session holds {FDS_PER_SESSION}: \
             hold fewer sessions at once (sremote: a lower --parallel), or raise the limit \
             (`ulimit -n`; the hard limit: `ulimit -Hn`, /etc/security/limits.conf)"
        ))
}
