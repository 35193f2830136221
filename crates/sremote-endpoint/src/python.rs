//! The Python bridge: a module that is neither registered nor a plugin is imported in
//! Python, when a `python3` is on the host.
//!
//! The interpreter is `<sremote>/venv/bin/python3` when that venv exists, else `python3` on
//! `PATH`. It runs the bridge script (`python_bridge.py`, passed with `-c`), which speaks
//! line JSON on private copies of its stdin/stdout and captures fd 1 and fd 2 while a call
//! runs. `py:NAME` always means the Python module NAME (e.g. `py:os`, which the built-in
//! `os` module would otherwise shadow).
//!
//! - **Call and pipe/file mode**: one interpreter per call ([`call_once`]), run like a
//!   plugin: the request line on stdin, the reply line on stdout.
//! - **Session mode**: one persistent worker per session ([`call_session`]); module state
//!   (imports, globals, caches) persists between calls, like an IPython engine. Python calls
//!   of one session run one at a time. Each call sends the environment changes since the
//!   previous one (`env` of the request, registered variables, `path` → `PYTHONPATH`). A
//!   timeout or a cancel kills the worker (its state is lost); the next call starts a new
//!   one. The worker is also replaced when the interpreter to use changes (e.g. a venv was
//!   created by `install_python_packages`).
//!
//! Values: see PROTOCOL.md ("Python bridge") for the conversions; integers beyond 64 bits
//! come back as decimal strings, bytes as `{"$bytes": base64}`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sremote_core::protocol::ErrorKind;

use crate::endpoint::CallOutput;
use crate::error::CallError;
use crate::location::Location;

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

/// The interpreter to use: the venv's, else `python3` on `PATH`; else why there is none.
pub(crate) fn find(location: &Location) -> Result<PathBuf, String> {
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
            env: None,
        };
        match *op {
            Op::Call {
                module,
                function,
                args,
                kwargs,
            } => {
                m.module = Some(module);
                m.function = Some(function);
                m.args = Some(args);
                m.kwargs = Some(kwargs);
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
            CallError::raised(format!(
                "the Python bridge ({}) answered with invalid JSON ({e}): {}",
                python.display(),
                String::from_utf8_lossy(&line[..line.len().min(500)])
            ))
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

// ---------------------------------------------------------------------------------------
// The persistent worker (session mode)
// ---------------------------------------------------------------------------------------

struct Worker {
    python: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: LineReader,
    /// The environment the worker has now (as last sent).
    env: BTreeMap<String, String>,
}

impl Worker {
    fn start(python: &Path) -> Result<Worker, CallError> {
        let mut cmd = bridge_command(python);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            CallError::raised(format!(
                "cannot start the Python worker {}: {e}",
                python.display()
            ))
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_group(child.id() as i32);
            let _ = child.wait();
            return Err(CallError::raised("the Python worker has no pipes"));
        };
        Ok(Worker {
            python: python.to_path_buf(),
            child,
            stdin,
            stdout: LineReader {
                pipe: stdout,
                buf: Vec::new(),
                scanned: 0,
            },
            env: utf8_env(),
        })
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kill the worker's process group and reap it; its exit status for messages.
    fn kill(mut self) -> String {
        kill_group(self.pgid());
        match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => format!("status unknown: {e}"),
        }
    }

    fn exchange(&mut self, line: &[u8], deadline: Option<Instant>) -> Result<Vec<u8>, Failure> {
        self.stdin.write_all(line).map_err(|_| Failure::Died)?;
        self.stdin.flush().map_err(|_| Failure::Died)?;
        self.stdout.read_line(deadline)
    }
}

enum Failure {
    Died,
    TimedOut,
}

struct LineReader {
    pipe: ChildStdout,
    buf: Vec<u8>,
    /// Bytes of `buf` known to hold no newline.
    scanned: usize,
}

impl LineReader {
    fn read_line(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + pos;
                let line = self.buf[..end].to_vec();
                self.buf.drain(..=end);
                self.scanned = 0;
                return Ok(line);
            }
            self.scanned = self.buf.len();
            if let Some(deadline) = deadline {
                wait_readable(self.pipe.as_raw_fd(), deadline)?;
            }
            let mut chunk = [0u8; 64 << 10];
            match self.pipe.read(&mut chunk) {
                Ok(0) => return Err(Failure::Died),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Failure::Died),
            }
        }
    }
}

fn wait_readable(fd: i32, deadline: Instant) -> Result<(), Failure> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::TimedOut);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, `fd` is our open pipe.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(Failure::Died);
        }
    }
}

fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: killpg only sends a signal to the group the worker leads.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
}

/// The process environment as UTF-8 pairs (others cannot travel in JSON).
fn utf8_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn env_diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Option<EnvDiff> {
    let mut diff = EnvDiff::default();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            diff.set.insert(k.clone(), v.clone());
        }
    }
    diff.unset = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    (!diff.set.is_empty() || !diff.unset.is_empty()).then_some(diff)
}

/// The session's worker and who uses it.
struct Slot {
    worker: Option<Worker>,
    /// Id of the call using the worker now.
    busy: Option<String>,
    /// Process group of the running worker (0: none), for cancel and shutdown.
    pgid: i32,
    waiting: BTreeSet<String>,
    cancelled: BTreeSet<String>,
}

static SLOT: Mutex<Slot> = Mutex::new(Slot {
    worker: None,
    busy: None,
    pgid: 0,
    waiting: BTreeSet::new(),
    cancelled: BTreeSet::new(),
});
static FREED: Condvar = Condvar::new();

fn slot() -> MutexGuard<'static, Slot> {
    SLOT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cancel call `id` if it runs in (or waits for) the Python worker: a running call's
/// worker is killed. Returns whether the call was found.
pub(crate) fn cancel(id: &str) -> bool {
    let mut s = slot();
    if s.busy.as_deref() == Some(id) {
        kill_group(s.pgid);
        s.cancelled.insert(id.to_string());
        return true;
    }
    if s.waiting.contains(id) {
        s.cancelled.insert(id.to_string());
        FREED.notify_all();
        return true;
    }
    false
}

/// Kill the worker, if any (the session is ending).
pub(crate) fn shutdown() {
    let s = slot();
    kill_group(s.pgid);
}

/// Run `op` in this session's worker (started on first use), as call `id`.
pub(crate) fn call_session(
    python: &Path,
    op: &Op<'_>,
    id: &str,
    timeout_ms: Option<u64>,
) -> CallOutput {
    let deadline = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let timeout_error = |extra: &str| {
        CallError::new(
            ErrorKind::Timeout,
            format!(
                "{} did not finish within {} ms{extra}",
                what(op),
                timeout_ms.unwrap_or(0)
            ),
        )
    };
    let cancelled = || {
        CallError::new(
            ErrorKind::Cancelled,
            format!("{} was cancelled by the client", what(op)),
        )
    };
    // Wait for the worker.
    let mut s = slot();
    s.waiting.insert(id.to_string());
    let acquired = loop {
        if s.cancelled.remove(id) {
            break Err(cancelled());
        }
        if s.busy.is_none() {
            break Ok(());
        }
        match deadline {
            None => s = FREED.wait(s).unwrap_or_else(|p| p.into_inner()),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Err(timeout_error(
                        " (it waited for the session's Python worker, busy with another call)",
                    ));
                }
                s = FREED
                    .wait_timeout(s, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    };
    s.waiting.remove(id);
    if let Err(e) = acquired {
        return CallOutput::error(e);
    }
    s.busy = Some(id.to_string());
    let mut worker = s.worker.take();
    drop(s);

    let mut notes = String::new();
    if let Some(w) = worker.take_if(|w| w.python != python) {
        notes.push_str(&format!(
            "[sremote: Python is now {} (was {}); a new worker was started and the previous \
             worker's state is gone]\n",
            python.display(),
            w.python.display()
        ));
        w.kill();
    }
    let result = run_in_worker(&mut worker, python, op, deadline);

    let mut s = slot();
    let was_cancelled = s.cancelled.remove(id);
    let outcome = match result {
        Ok(reply) => {
            s.pgid = worker.as_ref().map_or(0, Worker::pgid);
            s.worker = worker;
            Ok(reply)
        }
        Err(failure) => {
            s.pgid = 0;
            let status = worker.map(Worker::kill).unwrap_or_default();
            Err((failure, status))
        }
    };
    s.busy = None;
    FREED.notify_all();
    drop(s);

    let mut out = match outcome {
        Ok(reply) => reply.into_output(),
        Err(_) if was_cancelled => CallOutput::error(cancelled()),
        Err((Failure::TimedOut, _)) => CallOutput::error(timeout_error(
            "; the session's Python worker was killed (its module state is lost, the next call starts a new one)",
        )),
        Err((Failure::Died, status)) => CallOutput::error(CallError::raised(format!(
            "the Python worker ({}) exited during {} ({status}); the session's Python state is \
             lost and the next call starts a new worker",
            python.display(),
            what(op)
        ))),
    };
    out.stderr.insert_str(0, &notes);
    out
}

/// Start the worker if needed, send the request with the environment changes, read the reply.
fn run_in_worker(
    worker: &mut Option<Worker>,
    python: &Path,
    op: &Op<'_>,
    deadline: Option<Instant>,
) -> Result<Reply, Failure> {
    let mut msg = Msg::new(op);
    if worker.is_none() {
        match Worker::start(python) {
            Ok(w) => {
                slot().pgid = w.pgid();
                *worker = Some(w);
            }
            Err(e) => {
                return Ok(Reply {
                    ok: Value::Null,
                    error: Some(ReplyError {
                        kind: "Raised".into(),
                        message: e.message,
                        traceback: None,
                        data: json!(null),
                    }),
                    stdout: String::new(),
                    stderr: String::new(),
                });
            }
        }
    }
    let Some(w) = worker.as_mut() else {
        return Err(Failure::Died);
    };
    let env = utf8_env();
    msg.env = env_diff(&w.env, &env);
    let line = msg.line().map_err(|_| Failure::Died)?;
    let answer = w.exchange(&line, deadline)?;
    w.env = env;
    Reply::parse(&answer, python).or_else(|e| {
        Ok(Reply {
            ok: Value::Null,
            error: Some(ReplyError {
                kind: "Raised".into(),
                message: e.message,
                traceback: None,
                data: Value::Null,
            }),
            stdout: String::new(),
            stderr: String::new(),
        })
    })
}

/// Versions of the importable modules among `names` (`None`: not importable).
pub(crate) fn versions(
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

    #[test]
    fn env_diffs() {
        let old: BTreeMap<String, String> = [("A", "1"), ("B", "2")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let new: BTreeMap<String, String> = [("A", "1"), ("C", "3")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let d = env_diff(&old, &new).unwrap();
        assert_eq!(d.set.len(), 1);
        assert_eq!(d.unset, vec!["B".to_string()]);
        assert!(env_diff(&new, &new).is_none());
    }
}
