//! The Tokio runtime every client shares, and waiting on it from Python: the GIL is
//! released while waiting, and Python signal handlers (Ctrl-C) run every
//! [`SIGNAL_CHECK`] so that a wait can be interrupted.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How often a wait wakes up to let Python handle signals (Ctrl-C).
pub const SIGNAL_CHECK: Duration = Duration::from_millis(50);

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The shared multi-thread runtime (two workers: the session readers and transfers run
/// there; the calling thread drives its own call).
pub fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("sremote")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the sremote runtime: {e}")))
}

/// The outcome of a wait that may be cut short.
pub enum Waited<T> {
    Done(T),
    /// The deadline passed first.
    TimedOut,
}

/// Run `fut` to completion on the runtime without the GIL, handling Python signals every
/// [`SIGNAL_CHECK`]. `deadline`: give up (the future is dropped) after this long. A
/// signal handler that raises (KeyboardInterrupt) makes this return its error; the
/// future is then dropped, unless `fut` is a `Pin<&mut _>` the caller keeps (to cancel
/// the call first, as `Client.run` does).
pub fn wait<F>(py: Python<'_>, fut: F, deadline: Option<Duration>) -> PyResult<Waited<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    let started = Instant::now();
    let mut fut = std::pin::pin!(fut);
    loop {
        let slice = match deadline {
            Some(d) => match d.checked_sub(started.elapsed()) {
                Some(left) => left.min(SIGNAL_CHECK),
                None => return Ok(Waited::TimedOut),
            },
            None => SIGNAL_CHECK,
        };
        let step = py
            .detach(|| rt.block_on(async { tokio::time::timeout(slice, fut.as_mut()).await.ok() }));
        if let Some(out) = step {
            return Ok(Waited::Done(out));
        }
        py.check_signals()?;
    }
}

/// [`wait`] without a deadline.
pub fn wait_all<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    match wait(py, fut, None)? {
        Waited::Done(v) => Ok(v),
        Waited::TimedOut => Err(PyRuntimeError::new_err("a wait without deadline timed out")),
    }
}

/// Run `fut` on the runtime without the GIL or signal checks (short operations).
pub fn block<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    Ok(py.detach(|| rt.block_on(fut)))
}
