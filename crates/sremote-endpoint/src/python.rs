//! The Python bridge: a module that is neither registered nor a plugin is imported in
//! Python, when a `python3` is on the host.
//!
//! The interpreter is `<sremote>/venvs/NAME/bin/python3` when the call names a project
//! venv (`$SREMOTE_VENV`, set by a client's `set_venv`), else `<sremote>/venv/bin/python3`
//! when that venv exists, else `python3` on `PATH`. It runs the bridge script (`python_bridge.py`, passed with `-c`), which speaks
//! line JSON on private copies of its stdin/stdout and captures fd 1 and fd 2 while a call
//! runs. `py:NAME` always means the Python module NAME (e.g. `py:os`, which the built-in
//! `os` module would otherwise shadow).
//!
//! - **Call and pipe/file mode**: one interpreter per call ([`call_once`]), run like a
//!   plugin: the request line on stdin, the reply line on stdout.
//! - **Session mode**: one namespace worker plus a pool for stateless calls (`python/pool.rs`).
//!   Python calls ([`call_session`]) run in parallel on a pool of persistent workers
//!   (default size: the host's CPU count; `session.python_workers(n)` sets it); module state
//!   (imports, caches) persists in each worker. Each call sends its worker the environment
//!   changes since that worker's previous call (`env` of the request, registered variables,
//!   `path` → `PYTHONPATH`). A timeout or a cancel kills only that call's worker (its state
//!   is lost); the next call starts a new one. A worker is also replaced when the
//!   interpreter to use changes (e.g. a venv was created by `install_python_packages`).
//!   `session.execute`/`session.run` run code in the separate namespace worker
//!   (`python/namespace.rs`), whose globals persist like an IPython engine's user
//!   namespace and are kept in sync with the session's value store.
//!
//! Values: see PROTOCOL.md ("Python bridge") for the conversions; integers beyond 64 bits
//! come back as decimal strings, bytes as `{"$bytes": base64}`.

pub(crate) mod namespace;
pub(crate) mod pool;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sremote_core::protocol::{ErrorKind, Request, ShippedModule};

use crate::context::CallOutput;
use crate::error::CallError;
use crate::location::Location;

pub(crate) use pool::{call_session, cancel, shutdown};

/// The bridge script run by every Python interpreter the endpoint starts.
const BRIDGE: &str = include_str!("python_bridge.py");

/// Module names with this prefix always go to Python: `py:os`, `py:json`.
pub(crate) const PREFIX: &str = "py:";

/// Whether `name` can be a Python module path: dotted identifiers (`a.b_c.d`).
pub(crate) fn python_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut bytes = part.bytes();
            bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The endpoint's venv interpreter: `<sremote>/venv/bin/python3`.
pub(crate) fn venv_python(location: &Location) -> PathBuf {
    location.sremote.join("venv").join("bin").join("python3")
}

/// Set per call by a client that works in a project's venv (`RemoteClient::set_venv`):
/// the interpreter is then `<sremote>/venvs/NAME/bin/python3`, and nothing else.
pub(crate) const PROJECT_VENV_ENV: &str = "SREMOTE_VENV";

/// The interpreter to use: the project venv's when the call names one
/// (`$SREMOTE_VENV`), else the endpoint's venv's, else `python3` on `PATH`; else why there
/// is none.
pub(crate) fn find(location: &Location) -> Result<PathBuf, String> {
    if let Some(name) = std::env::var(PROJECT_VENV_ENV)
        .ok()
        .filter(|v| !v.is_empty())
    {
        if !sremote_core::protocol::is_plain_name(&name) {
            return Err(format!(
                "{PROJECT_VENV_ENV}={name:?} is not a venv name (use [A-Za-z0-9_.-], not starting with . or -)"
            ));
        }
        let py = location
            .sremote
            .join("venvs")
            .join(&name)
            .join("bin")
            .join("python3");
        if is_executable(&py) {
            return Ok(py);
        }
        return Err(format!(
            "the venv {name} does not exist on this host (no {}); create it with \
             `sremote install HOST --venv {name} PACKAGE…` (or `client.install_python_packages` \
             after `set_venv`)",
            py.display()
        ));
    }
    let venv = venv_python(location);
    if is_executable(&venv) {
        return Ok(venv);
    }
    if let Some(p) = crate::process::which("python3") {
        return Ok(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    Err(format!(
        "python3 is missing on this host (no {} and no python3 on PATH={path:?}), so Python \
         modules cannot be imported; install python3 there (or create the venv with \
         `client.install_python_packages`)",
        venv.display()
    ))
}

/// A module served by the Python bridge: which interpreter, which Python module, and (when
/// it was not asked for as `py:NAME`) where else it was looked for.
pub(crate) struct Target {
    python: PathBuf,
    module: String,
    hint: Option<String>,
    /// Where shipped modules are kept by SHA-256: `<sremote>/cache/python`.
    cache: PathBuf,
}

/// The host's cache of shipped Python modules: `<sremote>/cache/python/<sha256>/<name>.py`.
pub(crate) fn code_cache(location: &Location) -> PathBuf {
    location.sremote.join("cache").join("python")
}

impl Target {
    /// `py:NAME`: the Python module NAME, whatever the endpoint's own modules are.
    pub(crate) fn forced(name: &str, location: &Location) -> Result<Target, CallError> {
        if !python_name(name) {
            return Err(CallError::new(
                ErrorKind::ModuleNotFound,
                format!(
                    "invalid Python module name {name:?} after `py:`: use dotted identifiers such as `os.path`"
                ),
            ));
        }
        match find(location) {
            Ok(python) => Ok(Target {
                python,
                module: name.to_string(),
                hint: None,
                cache: code_cache(location),
            }),
            Err(why) => Err(CallError::new(
                ErrorKind::ModuleNotFound,
                format!("cannot call the Python module `{name}`: {why}"),
            )
            .with_data(json!({ "python3": null }))),
        }
    }

    /// `module`, found neither among the endpoint's modules nor as a plugin (`hint` says
    /// so, `available` lists the endpoint's modules): the last place to look is Python.
    pub(crate) fn fallback(
        module: &str,
        location: &Location,
        hint: String,
        available: Vec<String>,
    ) -> Result<Target, CallError> {
        let not_found = |why: String, python3: Value| {
            CallError::new(
                ErrorKind::ModuleNotFound,
                format!("no module `{module}` on this endpoint: {hint}; {why}"),
            )
            .with_data(json!({ "available": available, "python3": python3 }))
        };
        match find(location) {
            Ok(python) if python_name(module) => Ok(Target {
                python,
                module: module.to_string(),
                hint: Some(hint.clone()),
                cache: code_cache(location),
            }),
            Ok(python) => Err(not_found(
                "it is no Python module name either".into(),
                json!(python),
            )),
            Err(why) => Err(not_found(format!("and {why}"), Value::Null)),
        }
    }

    /// Call `req.function` of the module: in the session's worker when `in_session`, else in
    /// a fresh interpreter. `req`'s arguments must be plain JSON (bytes inline).
    pub(crate) fn call(&self, req: &Request, in_session: bool) -> CallOutput {
        let op = Op::Call {
            module: &self.module,
            function: &req.function,
            args: &req.args,
            kwargs: &req.kwargs,
            code: &req.code,
            cache: &self.cache,
        };
        let mut out = if in_session {
            call_session(&self.python, &op, &req.id, req.timeout_ms)
        } else {
            call_once(&self.python, &op, req.timeout_ms)
        };
        if let (Err(e), Some(hint)) = (&mut out.result, &self.hint)
            && e.kind == ErrorKind::ModuleNotFound
        {
            e.message = format!(
                "no module `{}` on this endpoint: {hint}, and {}",
                self.module, e.message
            );
        }
        out
    }
}

/// The `python` member of the module listing: `{"interpreter", "doc"}`.
pub(crate) fn listing(location: &Location) -> Value {
    match find(location) {
        Ok(p) => json!({
            "interpreter": p,
            "doc": format!(
                "any module {} can import is callable when no module above has its name; \
                 `py:NAME` always means the Python module NAME",
                p.display()
            ),
        }),
        Err(why) => json!({ "interpreter": null, "doc": why }),
    }
}

/// `check_modules` for names that are not the endpoint's own (`py:NAME` or plain): asks
/// Python once for all of them and sorts them into `present` (with versions) and
/// `missing`. Returns a note for the error message (why Python could not be asked).
pub(crate) fn check(
    asked: Vec<String>,
    location: &Location,
    session_call: Option<&str>,
    present: &mut BTreeMap<String, String>,
    missing: &mut Vec<String>,
) -> Result<String, CallError> {
    if asked.is_empty() {
        return Ok(String::new());
    }
    let python = match find(location) {
        Ok(p) => p,
        Err(why) => {
            missing.extend(asked);
            return Ok(format!(" ({why})"));
        }
    };
    let names: Vec<String> = asked
        .iter()
        .map(|n| n.strip_prefix(PREFIX).unwrap_or(n).to_string())
        .collect();
    let found = versions(&python, &names, session_call)?;
    for (asked, name) in asked.into_iter().zip(names) {
        match found.get(&name).cloned().flatten() {
            Some(v) => {
                present.insert(asked, v);
            }
            None => missing.push(asked),
        }
    }
    Ok(String::new())
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// What the bridge is asked to do.
pub(crate) enum Op<'a> {
    /// Call `module.function(*args, **kwargs)`.
    Call {
        module: &'a str,
        function: &'a str,
        args: &'a [Value],
        kwargs: &'a BTreeMap<String, Value>,
        /// Shipped modules to load first (see [`sremote_core::protocol::ShippedModule`]).
        code: &'a [ShippedModule],
        /// The host's code cache ([`code_cache`]).
        cache: &'a Path,
    },
    /// Which of `names` can be imported, and their versions.
    Versions(&'a [String]),
}

#[derive(Serialize)]
struct Msg<'a> {
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    module: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a [Value]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kwargs: Option<&'a BTreeMap<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    names: Option<&'a [String]>,
    #[serde(skip_serializing_if = "<[ShippedModule]>::is_empty")]
    code: &'a [ShippedModule],
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<EnvDiff>,
}

#[derive(Serialize, Default)]
struct EnvDiff {
    set: BTreeMap<String, String>,
    unset: Vec<String>,
}

impl<'a> Msg<'a> {
    fn new(op: &Op<'a>) -> Self {
        let mut m = Msg {
            op: "call",
            module: None,
            function: None,
            args: None,
            kwargs: None,
            names: None,
            code: &[],
            cache: None,
            env: None,
        };
        match *op {
            Op::Call {
                module,
                function,
                args,
                kwargs,
                code,
                cache,
            } => {
                m.module = Some(module);
                m.function = Some(function);
                m.args = Some(args);
                m.kwargs = Some(kwargs);
                if !code.is_empty() {
                    m.code = code;
                    m.cache = Some(cache);
                }
            }
            Op::Versions(names) => {
                m.op = "versions";
                m.names = Some(names);
            }
        }
        m
    }

    fn line(&self) -> Result<Vec<u8>, CallError> {
        let mut bytes = serde_json::to_vec(self)
            .map_err(|e| CallError::raised(format!("cannot encode the call for Python: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    ok: Value,
    #[serde(default)]
    error: Option<ReplyError>,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
}

#[derive(Deserialize)]
struct ReplyError {
    kind: String,
    message: String,
    #[serde(default)]
    traceback: Option<String>,
    #[serde(default)]
    data: Value,
}

impl Reply {
    fn parse(line: &[u8], python: &Path) -> Result<Reply, CallError> {
        serde_json::from_slice(line).map_err(|e| {
            let output = String::from_utf8_lossy(&line[..line.len().min(500)]).into_owned();
            CallError::new(
                ErrorKind::Protocol,
                format!(
                    "the Python bridge ({}) answered with invalid JSON ({e}): {output}",
                    python.display(),
                ),
            )
            .with_data(serde_json::json!({
                "module": format!("Python bridge ({})", python.display()),
                "output": output,
            }))
        })
    }

    fn into_output(self) -> CallOutput {
        let result = match self.error {
            None => Ok(self.ok),
            Some(e) => {
                let kind = serde_json::from_value::<ErrorKind>(Value::String(e.kind.clone()))
                    .ok()
                    .filter(|k| *k != ErrorKind::Unknown)
                    .unwrap_or(ErrorKind::Raised);
                let mut err = CallError::new(kind, e.message).with_data(e.data);
                if let Some(tb) = e.traceback {
                    err = err.with_traceback(tb);
                }
                Err(err)
            }
        };
        CallOutput {
            result,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }
}

/// Compiles the bridge (its argv[1]) under its own file name, so that tracebacks can
/// leave out its frames; `sys.argv` is `["-c"]` for the code it runs.
const LAUNCHER: &str =
    "import sys; exec(compile(sys.argv.pop(1), '<sremote-python-bridge>', 'exec'))";

fn bridge_command(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(LAUNCHER).arg(BRIDGE);
    cmd
}

// ---------------------------------------------------------------------------------------
// One interpreter per call (call and pipe/file mode)
// ---------------------------------------------------------------------------------------

/// Run `op` in a fresh interpreter that exits afterwards.
pub(crate) fn call_once(python: &Path, op: &Op<'_>, timeout_ms: Option<u64>) -> CallOutput {
    let line = match Msg::new(op).line() {
        Ok(l) => l,
        Err(e) => return CallOutput::error(e),
    };
    let timeout = timeout_ms.map(Duration::from_millis);
    let finished = match crate::process::run(bridge_command(python), Some(line), timeout) {
        Ok(f) => f,
        Err(e) => {
            return CallOutput::error(CallError::raised(format!(
                "cannot start {}: {e}",
                python.display()
            )));
        }
    };
    let stderr = String::from_utf8_lossy(&finished.stderr).into_owned();
    if finished.timed_out {
        let mut out = CallOutput::error(CallError::new(
            ErrorKind::Timeout,
            format!(
                "{} did not answer within {} ms and was killed",
                what(op),
                timeout_ms.unwrap_or(0)
            ),
        ));
        out.stderr = stderr;
        return out;
    }
    let line = finished.stdout.split(|&b| b == b'\n').next().unwrap_or(&[]);
    if line.is_empty() {
        let mut out = CallOutput::error(CallError::raised(format!(
            "{} ({}) exited with status {} without an answer; its stderr: {}",
            what(op),
            python.display(),
            finished.returncode(),
            stderr.trim()
        )));
        out.stderr = stderr;
        return out;
    }
    match Reply::parse(line, python) {
        Ok(reply) => {
            let mut out = reply.into_output();
            out.stderr.push_str(&stderr);
            out
        }
        Err(e) => CallOutput {
            result: Err(e),
            stdout: String::new(),
            stderr,
        },
    }
}

fn what(op: &Op<'_>) -> String {
    match op {
        Op::Call {
            module, function, ..
        } => format!("the Python call {module}.{function}"),
        Op::Versions(_) => "the Python module check".to_string(),
    }
}

/// Versions of the importable modules among `names` (`None`: not importable).
fn versions(
    python: &Path,
    names: &[String],
    session_call: Option<&str>,
) -> Result<BTreeMap<String, Option<String>>, CallError> {
    let op = Op::Versions(names);
    let out = match session_call {
        Some(id) => call_session(python, &op, id, Some(120_000)),
        None => call_once(python, &op, Some(120_000)),
    };
    let value = out.result?;
    serde_json::from_value(value).map_err(|e| {
        CallError::raised(format!(
            "the Python module check ({}) answered with an unexpected value: {e}",
            python.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_names() {
        for good in ["os", "os.path", "_x1", "numpy.linalg", "A.b_c"] {
            assert!(python_name(good), "{good}");
        }
        for bad in ["", "1x", "a..b", "a.", ".a", "a-b", "py:os", "a b", "é"] {
            assert!(!python_name(bad), "{bad}");
        }
    }
}
