//! Applying a request's environment (`env`, `env_if_unset`, `path`) to this process.
//!
//! This is the ONE place that mutates the process environment. Call and pipe mode run
//! one request per process, so changing the process environment is exactly right there.
//! Session mode serves many calls from one process: [`SessionEnv`] computes each call's
//! environment from the environment the session started with, and changes the process
//! environment only while no call runs (calls hold a read lock; a change takes the write
//! lock). Calls that share an environment — the common case: the client's registered
//! variables — run concurrently; a call that needs another one waits for them.

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

/// Check every name and value of the request's environment settings.
fn check_request(req: &Request) -> Result<(), CallError> {
    for (k, v) in &req.env {
        check("env", k, v)?;
    }
    for (k, v) in &req.env_if_unset {
        check("env_if_unset", k, v)?;
    }
    for p in &req.path {
        check("path", "PATH", p)?;
    }
    Ok(())
}

/// The process environment of a session: its starting point and what is applied now.
#[derive(Debug)]
pub(crate) struct SessionEnv {
    base: std::collections::BTreeMap<String, String>,
    /// Variables changed from `base`: name → value (`None`: removed).
    applied: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    lock: std::sync::RwLock<()>,
}

impl SessionEnv {
    /// Snapshot the environment at session start (single-threaded at that point).
    pub(crate) fn new() -> Self {
        SessionEnv {
            base: std::env::vars().collect(),
            applied: Default::default(),
            lock: std::sync::RwLock::new(()),
        }
    }

    /// The variables a request sets, relative to the session's starting environment.
    fn wanted(&self, req: &Request) -> std::collections::BTreeMap<String, String> {
        let mut want = std::collections::BTreeMap::new();
        for (k, v) in &req.env_if_unset {
            if !self.base.contains_key(k) {
                want.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &req.env {
            want.insert(k.clone(), v.clone());
        }
        if !req.path.is_empty() {
            let prefix = req.path.join(":");
            for var in ["PATH", "PYTHONPATH"] {
                let old = want
                    .get(var)
                    .or(self.base.get(var))
                    .cloned()
                    .unwrap_or_default();
                let value = if old.is_empty() {
                    prefix.clone()
                } else {
                    format!("{prefix}:{old}")
                };
                want.insert(var.to_string(), value);
            }
        }
        want
    }

    /// Make the process environment the request's, and hold it until the guard drops.
    pub(crate) fn enter(
        &self,
        req: &Request,
    ) -> Result<std::sync::RwLockReadGuard<'_, ()>, CallError> {
        check_request(req)?;
        let want = self.wanted(req);
        loop {
            let guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
            if *self.applied.lock().unwrap_or_else(|p| p.into_inner()) == want {
                return Ok(guard);
            }
            drop(guard);
            let _exclusive = self.lock.write().unwrap_or_else(|p| p.into_inner());
            let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            for k in applied.keys() {
                match self.base.get(k) {
                    Some(v) => set(k, v),
                    // SAFETY: as in `set`: no call runs while the write lock is held.
                    None => unsafe { std::env::remove_var(k) },
                }
            }
            for (k, v) in &want {
                set(k, v);
            }
            *applied = want.clone();
        }
    }
}

/// Set the request's `env`, its `env_if_unset` where the variable is not defined, and
/// prepend its `path` entries to `PATH` and `PYTHONPATH`. Everything is checked before
/// anything is changed; an invalid name or value is a `BadRequest` error.
pub(crate) fn apply_request_env(req: &Request) -> Result<(), CallError> {
    check_request(req)?;
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
    // call starts, while the endpoint's only other threads are idle; in session mode
    // only under `SessionEnv`'s write lock, while no call runs; the endpoint itself
    // reads the environment only through `std::env`, which takes std's environment lock.
    // Key and value were checked above (no '=', no NUL), so `set_var` cannot panic.
    unsafe { std::env::set_var(key, value) };
}
