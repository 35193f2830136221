//! The persistent Python worker of a session: one interpreter per session, started on the
//! first Python call; calls take turns; each sends the environment changes since the
//! previous one. A timeout or a cancel kills it (the next call starts a new one).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sremote_core::protocol::ErrorKind;

use super::{EnvDiff, Msg, Op, Reply, ReplyError, bridge_command, what};
use crate::endpoint::CallOutput;
use crate::error::CallError;

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
        if s.cancelled.remove(id) || crate::process::call_cancelled(id) {
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
        // A cancel raced the reply: the worker was killed after it answered, so it must
        // not serve the next call (which would see it die).
        Ok(reply) if was_cancelled => {
            s.pgid = 0;
            if let Some(w) = worker {
                w.kill();
            }
            Ok(reply)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
