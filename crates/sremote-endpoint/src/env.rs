//! Applying a request's environment (`env`, `env_if_unset`, `path`) to this process.
//!
//! This is the ONE place that mutates the process environment. Call and pipe mode run
//! one request per process, so changing the process environment is exactly right there.
//! Session mode (issue 4) serves many calls from one process and must replace this
//! with a per-call environment handed to children and plugins.

use sremote_core::protocol::{ErrorKind, Request};

use crate::error::CallError;

fn check(what: &str, key: &str, value: &str) -> Result<(), CallError> {
    if key.is_empty() || key.contains('=') || key.contains('\0') {
        return Err(CallError::new(
            ErrorKind::BadRequest,
            format!("invalid environment variable name {key:?} in {what}"),
        ));
    }
    if value.contains('\0') {
        return Err(CallError::new(
            ErrorKind::BadRequest,
            format!("value of {key} in {what} contains a NUL byte"),
        ));
    }
    Ok(())
}

/// Set the request's `env`, its `env_if_unset` where the variable is not defined, and
/// prepend its `path` entries to `PATH` and `PYTHONPATH`. Everything is checked before
/// anything is changed; an invalid name or value is a `BadRequest` error.
pub(crate) fn apply_request_env(req: &Request) -> Result<(), CallError> {
    for (k, v) in &req.env {
        check("env", k, v)?;
    }
    for (k, v) in &req.env_if_unset {
        check("env_if_unset", k, v)?;
    }
    for p in &req.path {
        check("path", "PATH", p)?;
    }
    for (k, v) in &req.env {
        set(k, v);
    }
    for (k, v) in &req.env_if_unset {
        if std::env::var_os(k).is_none() {
            set(k, v);
        }
    }
    if !req.path.is_empty() {
        let prefix = req.path.join(":");
        for var in ["PATH", "PYTHONPATH"] {
            let value = match std::env::var(var) {
                Ok(old) if !old.is_empty() => format!("{prefix}:{old}"),
                _ => prefix.clone(),
            };
            set(var, &value);
        }
    }
    Ok(())
}

fn set(key: &str, value: &str) {
    // SAFETY: `set_var` is unsafe because another thread might read the environment
    // through libc (getenv) at the same time. In call and pipe mode this runs before the
    // call starts, while the endpoint's only other threads are idle; the endpoint itself
    // reads the environment only through `std::env`, which takes std's environment lock.
    // Key and value were checked above (no '=', no NUL), so `set_var` cannot panic.
    unsafe { std::env::set_var(key, value) };
}
