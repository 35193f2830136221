//! Pools of persistent Python workers in session mode.
//!
//! A session has **one namespace worker plus a pool for stateless calls**:
//!
//! - [`STATELESS`]: up to `size` workers (default: the host's CPU count,
//!   `session.python_workers(n)` sets it) serve Python calls (`module.function(...)`),
//!   so the calls of a session run in parallel. Workers start lazily: a call takes an
//!   idle worker (the one used last, so a sequence of calls keeps its module state
//!   warm), starts a new one while fewer than `size` exist, else waits in line (FIFO,
//!   cancellable, until its deadline).
//! - [`NAMESPACE`]: one worker, never used by calls, that holds the session's Python
//!   namespace for `session.execute` and `session.run` (see `namespace.rs`).
//!
//! A timeout or a cancel kills only the worker of that call (its process group); it
//! leaves the pool and the next call starts a fresh one. A worker whose interpreter is
//! not the one to use now (a venv was created) is replaced when it is taken. Each worker
//! keeps the environment it was last sent and gets the changes with the next request.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use sremote_core::protocol::ErrorKind;

use super::worker::{Failure, Worker, kill_group};
use super::{Msg, Op, Reply, ReplyError, what};
use crate::context::CallOutput;
use crate::error::CallError;

/// Largest pool size `session.python_workers(n)` accepts.
pub(crate) const MAX_WORKERS: usize = 256;

/// The pool for Python calls.
pub(crate) static STATELESS: Pool = Pool::new(
    0,
    "a free Python worker of the session (all busy with other calls); give it a longer \
     timeout or the session more workers (session.python_workers(n), \
     RemoteClient::set_python_workers)",
);
/// The namespace worker (a pool of one).
pub(crate) static NAMESPACE: Pool = Pool::new(
    1,
    "the session's namespace worker, busy with an earlier execute or run (they run one at \
     a time); give it a longer timeout",
);

pub(crate) struct Pool {
    state: Mutex<State>,
    freed: Condvar,
    /// What a call that waited in vain waited for, and what to do.
    waited_for: &'static str,
}

struct State {
    /// Most workers at once; 0: the default ([`default_size`]).
    size: usize,
    /// Idle workers, the one used last at the end.
    idle: Vec<Worker>,
    /// Workers that exist: idle, in use, or starting.
    live: usize,
    /// Calls holding a worker: id → its process group (0 while it starts).
    busy: BTreeMap<String, i32>,
    /// Calls waiting for a worker, in arrival order.
    queue: VecDeque<String>,
    /// Calls cancelled while waiting or running.
    cancelled: BTreeSet<String>,
}

impl State {
    fn size(&self) -> usize {
        if self.size == 0 {
            default_size()
        } else {
            self.size
        }
    }
}

/// The host's CPU count (at least 1).
pub(crate) fn default_size() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Why a call got no reply from a worker.
pub(crate) enum Lost {
    /// The client cancelled the call (its worker, if it had one, was killed).
    Cancelled,
    /// The deadline passed while the call waited for a worker (none was killed): what
    /// it waited for.
    Waited(&'static str),
    /// The deadline passed while the worker ran the call; the worker was killed.
    TimedOut,
    /// The worker exited during the call (its exit status).
    Died(String),
    /// No worker could be started.
    Start(CallError),
}

impl Lost {
    /// The call's error; `what` names the call, `lost` says what a killed worker took with it.
    pub(crate) fn into_error(
        self,
        what: &str,
        timeout_ms: Option<u64>,
        python: &Path,
        lost: &str,
    ) -> CallError {
        let ms = timeout_ms.unwrap_or(0);
        match self {
            Lost::Cancelled => CallError::new(
                ErrorKind::Cancelled,
                format!("{what} was cancelled by the client; {lost}"),
            ),
            Lost::Waited(waited_for) => CallError::new(
                ErrorKind::Timeout,
                format!(
                    "{what} did not finish within {ms} ms: it waited all that time for {waited_for}"
                ),
            ),
            Lost::TimedOut => CallError::new(
                ErrorKind::Timeout,
                format!("{what} did not finish within {ms} ms and was stopped; {lost}"),
            ),
            Lost::Died(status) => CallError::raised(format!(
                "the Python worker ({}) exited during {what} ({status}); {lost}",
                python.display()
            )),
            Lost::Start(e) => e,
        }
    }
}

/// How [`Pool::run`] went.
pub(crate) struct Ran<T> {
    pub result: Result<T, Lost>,
    /// For the call's stderr: the worker was replaced (another interpreter).
    pub notes: String,
    /// The worker answered, but a cancel that raced the answer killed it.
    pub killed_after: bool,
}

enum Gate {
    Cancelled,
    Waited,
}

impl Pool {
    const fn new(size: usize, waited_for: &'static str) -> Pool {
        Pool {
            state: Mutex::new(State {
                size,
                idle: Vec::new(),
                live: 0,
                busy: BTreeMap::new(),
                queue: VecDeque::new(),
                cancelled: BTreeSet::new(),
            }),
            freed: Condvar::new(),
            waited_for,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool's size now.
    pub(crate) fn size(&self) -> usize {
        self.lock().size()
    }

    /// Set the pool's size; idle workers beyond it stop now, busy ones when their call
    /// ends. Returns the size.
    pub(crate) fn resize(&self, n: usize) -> usize {
        let retired = {
            let mut s = self.lock();
            s.size = n.max(1);
            let extra = s.live.saturating_sub(s.size).min(s.idle.len());
            s.live -= extra;
            s.idle.drain(..extra).collect::<Vec<_>>()
        };
        self.freed.notify_all();
        for w in retired {
            w.kill();
        }
        n.max(1)
    }

    /// Cancel call `id` if it waits for or holds a worker of this pool: a running call's
    /// worker is killed. Returns whether the call was found.
    pub(crate) fn cancel(&self, id: &str) -> bool {
        let mut s = self.lock();
        if let Some(&pgid) = s.busy.get(id) {
            kill_group(pgid);
            s.cancelled.insert(id.to_string());
            return true;
        }
        if s.queue.iter().any(|q| q == id) {
            s.cancelled.insert(id.to_string());
            drop(s);
            self.freed.notify_all();
            return true;
        }
        false
    }

    /// Kill every worker of the pool (the session is ending).
    pub(crate) fn shutdown(&self) {
        let s = self.lock();
        for w in &s.idle {
            kill_group(w.pgid());
        }
        for &pgid in s.busy.values() {
            kill_group(pgid);
        }
    }

    /// Wait in line for a worker: an idle one, or `None` when a new one may be started.
    fn acquire(&self, id: &str, deadline: Option<Instant>) -> Result<Option<Worker>, Gate> {
        let mut s = self.lock();
        s.queue.push_back(id.to_string());
        let taken = loop {
            if s.cancelled.remove(id) || crate::process::call_cancelled(id) {
                break Err(Gate::Cancelled);
            }
            if s.queue.front().is_some_and(|q| q == id) {
                if let Some(w) = s.idle.pop() {
                    break Ok(Some(w));
                }
                if s.live < s.size() {
                    s.live += 1;
                    break Ok(None);
                }
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            s = match left {
                None => self.freed.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(left) if left.is_zero() => break Err(Gate::Waited),
                Some(left) => {
                    self.freed
                        .wait_timeout(s, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        };
        s.queue.retain(|q| q != id);
        if taken.is_ok() {
            s.busy.insert(id.to_string(), 0);
        }
        drop(s);
        // The next call in line may go on (or see that it cannot).
        self.freed.notify_all();
        taken
    }

    /// Record the process group of call `id`'s worker; a cancel that came first kills it.
    fn started(&self, id: &str, pgid: i32) {
        let mut s = self.lock();
        s.busy.insert(id.to_string(), pgid);
        if s.cancelled.contains(id) {
            kill_group(pgid);
        }
    }

    /// Call `id` is done with its worker: back to the idle ones when `healthy` (and not
    /// cancelled, and the pool not too big), else killed. Returns whether the call was
    /// cancelled, and the killed worker's exit status.
    fn release(&self, id: &str, worker: Option<Worker>, healthy: bool) -> (bool, Option<String>) {
        let retired = {
            let mut s = self.lock();
            s.busy.remove(id);
            let cancelled = s.cancelled.remove(id);
            let keep = healthy && !cancelled && s.live <= s.size();
            match worker {
                Some(w) if keep => {
                    s.idle.push(w);
                    (cancelled, None)
                }
                w => {
                    s.live -= 1;
                    (cancelled, w)
                }
            }
        };
        self.freed.notify_all();
        (retired.0, retired.1.map(Worker::kill))
    }

    /// Run `f` on a worker of this pool (taken or started for call `id`, replaced when its
    /// interpreter is not `python`), until `deadline`.
    pub(crate) fn run<T>(
        &self,
        python: &Path,
        id: &str,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Worker) -> Result<T, Failure>,
    ) -> Ran<T> {
        let mut ran = Ran {
            result: Err(Lost::Cancelled),
            notes: String::new(),
            killed_after: false,
        };
        let mut worker = match self.acquire(id, deadline) {
            Ok(w) => w,
            Err(Gate::Cancelled) => return ran,
            Err(Gate::Waited) => {
                ran.result = Err(Lost::Waited(self.waited_for));
                return ran;
            }
        };
        if let Some(w) = worker.take_if(|w| w.python != python) {
            ran.notes = format!(
                "[sremote: Python is now {} (was {}); a new worker was started and the previous \
                 worker's state is gone]\n",
                python.display(),
                w.python.display()
            );
            w.kill();
        }
        let mut worker = match worker.map_or_else(|| Worker::start(python), Ok) {
            Ok(w) => w,
            Err(e) => {
                self.release(id, None, false);
                ran.result = Err(Lost::Start(e));
                return ran;
            }
        };
        self.started(id, worker.pgid());
        let result = f(&mut worker);
        let (cancelled, status) = self.release(id, Some(worker), result.is_ok());
        ran.result = match result {
            Ok(v) => {
                ran.killed_after = cancelled;
                Ok(v)
            }
            Err(_) if cancelled => Err(Lost::Cancelled),
            Err(Failure::TimedOut) => Err(Lost::TimedOut),
            Err(Failure::Died) => Err(Lost::Died(status.unwrap_or_default())),
        };
        ran
    }
}

/// Cancel call `id` if it runs in (or waits for) a Python worker of the session: a running
/// call's worker is killed. Returns whether the call was found.
pub(crate) fn cancel(id: &str) -> bool {
    STATELESS.cancel(id) || NAMESPACE.cancel(id)
}

/// Kill every Python worker of the session (the session is ending).
pub(crate) fn shutdown() {
    STATELESS.shutdown();
    NAMESPACE.shutdown();
}

/// Run `op` in a worker of the session's pool, as call `id`.
pub(crate) fn call_session(
    python: &Path,
    op: &Op<'_>,
    id: &str,
    timeout_ms: Option<u64>,
) -> CallOutput {
    let deadline = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let ran = STATELESS.run(python, id, deadline, |w| exchange(w, python, op, deadline));
    let mut out = match ran.result {
        Ok(reply) => reply.into_output(),
        Err(lost) => CallOutput::error(lost.into_error(
            &what(op),
            timeout_ms,
            python,
            "its Python worker was killed (that worker's module state is lost; the next call \
             starts a new one, the session's other workers go on)",
        )),
    };
    out.stderr.insert_str(0, &ran.notes);
    out
}

/// Send `op` with the environment changes, read the reply.
fn exchange(
    w: &mut Worker,
    python: &Path,
    op: &Op<'_>,
    deadline: Option<Instant>,
) -> Result<Reply, Failure> {
    let mut msg = Msg::new(op);
    let (diff, env) = w.env_changes();
    msg.env = diff;
    let line = match msg.line() {
        Ok(l) => l,
        Err(e) => return Ok(Reply::failed(e.message)),
    };
    let answer = w.exchange(&line, deadline)?;
    w.commit_env(env);
    Ok(Reply::parse(&answer, python).unwrap_or_else(|e| Reply::failed(e.message)))
}

impl Reply {
    /// A reply that reports `message` as a `Raised` error.
    pub(crate) fn failed(message: String) -> Reply {
        Reply {
            ok: serde_json::Value::Null,
            error: Some(ReplyError {
                kind: "Raised".into(),
                message,
                traceback: None,
                data: serde_json::Value::Null,
            }),
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}
