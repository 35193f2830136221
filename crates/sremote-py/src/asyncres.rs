//! Results of calls: [`CallOutput`] (value, output, metadata), [`AsyncResult`] (a call
//! running in the background, IPython's `AsyncResult`), and the waiting they share, which
//! cancels the remote call when Ctrl-C interrupts it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use sremote_core::{AsyncCall, CallMeta, CallWait, Connector, Error};

use crate::runtime::{self, Waited};
use crate::values::Returned;

pub type Call = AsyncCall<Arc<dyn Connector>, Returned>;
pub type Output = sremote_core::CallOutput<Returned>;

/// How long a call interrupted by Ctrl-C waits for the host to confirm the cancel.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Wait for `call` (at most `timeout`), the GIL released. `None`: not ready in time.
/// Ctrl-C (any exception raised by a signal handler) cancels the call on the host, waits
/// a moment for the cancel to be confirmed, and is returned as the error.
pub fn wait_call(
    py: Python<'_>,
    call: &tokio::sync::Mutex<Call>,
    timeout: Option<Duration>,
) -> PyResult<Option<Result<Output, Error>>> {
    let waited = runtime::wait(
        py,
        async {
            let mut c = call.lock().await;
            loop {
                // Wake up regularly so a deadline or a signal can end the wait.
                match c.wait_for(Some(runtime::SIGNAL_CHECK)).await {
                    CallWait::Ready(r) => return r,
                    CallWait::NotReady => {}
                }
            }
        },
        timeout,
    );
    match waited {
        Ok(Waited::Done(r)) => Ok(Some(r)),
        Ok(Waited::TimedOut) => Ok(None),
        Err(interrupted) => {
            let _ = runtime::block(py, async {
                let mut c = call.lock().await;
                if c.cancel().await.is_ok() {
                    let _ = c.wait_for(Some(CANCEL_GRACE)).await;
                }
            });
            Err(interrupted)
        }
    }
}

fn datetime<'py>(py: Python<'py>, t: SystemTime) -> PyResult<Bound<'py, PyAny>> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    py.import("datetime")?
        .getattr("datetime")?
        .call_method1("fromtimestamp", (secs,))
}

/// Call metadata as a dict (IPython's names where they exist).
pub fn meta_dict<'py>(
    py: Python<'py>,
    meta: Option<&CallMeta>,
    output: (&str, &str),
    status: &str,
    times: (Option<SystemTime>, Option<SystemTime>),
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("status", status)?;
    d.set_item("stdout", output.0)?;
    d.set_item("stderr", output.1)?;
    let (submitted, received) = times;
    d.set_item("submitted", submitted.map(|t| datetime(py, t)).transpose()?)?;
    d.set_item("received", received.map(|t| datetime(py, t)).transpose()?)?;
    let (mut started, mut completed) = (None, None);
    if let Some(m) = meta {
        d.set_item("msg_id", &m.id)?;
        d.set_item("host", &m.host)?;
        d.set_item("pid", m.pid)?;
        d.set_item("endpoint_version", &m.endpoint_version)?;
        d.set_item("mode", format!("{:?}", m.mode).to_lowercase())?;
        d.set_item("round_trip", m.round_trip.as_secs_f64())?;
        d.set_item("elapsed", m.timing.elapsed_us as f64 / 1e6)?;
        let start = SystemTime::UNIX_EPOCH + Duration::from_millis(m.timing.started_unix_ms);
        if m.timing.started_unix_ms > 0 {
            started = Some(datetime(py, start)?);
            completed = Some(datetime(
                py,
                start + Duration::from_micros(m.timing.elapsed_us),
            )?);
        }
    }
    d.set_item("started", started)?;
    d.set_item("completed", completed)?;
    Ok(d)
}

/// A finished call: `.value`, `.stdout`, `.stderr`, `.meta` (a dict: host, pid, msg_id,
/// started, completed, elapsed, round_trip, mode, endpoint_version).
#[pyclass(module = "sremote._sremote", name = "CallOutput", frozen)]
pub struct CallOutput {
    #[pyo3(get)]
    value: Py<PyAny>,
    #[pyo3(get)]
    stdout: String,
    #[pyo3(get)]
    stderr: String,
    #[pyo3(get)]
    meta: Py<PyDict>,
}

impl CallOutput {
    pub fn new(py: Python<'_>, out: Output, submitted: SystemTime) -> PyResult<CallOutput> {
        let meta = meta_dict(
            py,
            Some(&out.meta),
            (&out.stdout, &out.stderr),
            "ok",
            (Some(submitted), Some(SystemTime::now())),
        )?;
        Ok(CallOutput {
            value: out.value.into_python(py)?,
            stdout: out.stdout,
            stderr: out.stderr,
            meta: meta.unbind(),
        })
    }
}

#[pymethods]
impl CallOutput {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "CallOutput(value={}, stdout={:?}, stderr={:?})",
            self.value.bind(py).repr()?,
            self.stdout,
            self.stderr
        ))
    }
}

/// What a finished call left: its value or error, and its metadata.
struct Done {
    value: Result<Py<PyAny>, PyErr>,
    meta: Py<PyDict>,
}

/// A call running in the background (IPython's `AsyncResult`): `get(timeout)`,
/// `ready()`, `wait(timeout)`, `successful()`, `cancel()`, `metadata`.
///
/// ```python
/// ar = c.call_async("time", "sleep", 3)
/// ar.ready()            # False
/// ar.get(timeout=1)     # raises TimeoutError: the call goes on
/// ar.get()              # None, after 3 s
/// ar.metadata["host"]
/// ```
#[pyclass(module = "sremote._sremote", name = "AsyncResult", frozen)]
pub struct AsyncResult {
    call: tokio::sync::Mutex<Call>,
    done: Mutex<Option<Done>>,
    submitted: SystemTime,
    what: String,
}

impl AsyncResult {
    pub fn new(call: Call, what: String) -> AsyncResult {
        AsyncResult {
            call: tokio::sync::Mutex::new(call),
            done: Mutex::new(None),
            submitted: SystemTime::now(),
            what,
        }
    }

    fn lock_done(&self) -> std::sync::MutexGuard<'_, Option<Done>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settle(&self, py: Python<'_>, r: Result<Output, Error>) -> PyResult<()> {
        let received = Some(SystemTime::now());
        let done = match r {
            Ok(out) => {
                let meta = meta_dict(
                    py,
                    Some(&out.meta),
                    (&out.stdout, &out.stderr),
                    "ok",
                    (Some(self.submitted), received),
                )?;
                Done {
                    value: out.value.into_python(py),
                    meta: meta.unbind(),
                }
            }
            Err(e) => {
                let (stdout, stderr) = match &e {
                    Error::RemoteExec(r) => (r.stdout.clone(), r.stderr.clone()),
                    _ => Default::default(),
                };
                let meta = meta_dict(
                    py,
                    None,
                    (&stdout, &stderr),
                    "error",
                    (Some(self.submitted), received),
                )?;
                Done {
                    value: Err(crate::errors::to_py(e)),
                    meta: meta.unbind(),
                }
            }
        };
        *self.lock_done() = Some(done);
        Ok(())
    }

    /// Wait up to `timeout` and record the outcome; whether the call is finished.
    fn wait_done(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<bool> {
        if self.lock_done().is_some() {
            return Ok(true);
        }
        match wait_call(py, &self.call, timeout)? {
            Some(r) => {
                if self.lock_done().is_none() {
                    self.settle(py, r)?;
                }
                Ok(true)
            }
            None => Ok(self.lock_done().is_some()),
        }
    }
}

/// Seconds (None, or negative: no limit) as a Duration.
pub fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t < 0.0 => Ok(None),
        Some(t) => Duration::try_from_secs_f64(t)
            .map(Some)
            .map_err(|e| PyValueError::new_err(format!("timeout={t}: {e}"))),
    }
}

#[pymethods]
impl AsyncResult {
    /// The value, waiting at most `timeout` seconds (None: as long as it takes). Raises the
    /// builtin `TimeoutError` when the call is not finished by then (it goes on; call
    /// `get` again or `cancel()`), or the call's own error. Ctrl-C while waiting cancels
    /// the call on the host and raises `KeyboardInterrupt`.
    #[pyo3(signature = (timeout=None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        if !self.wait_done(py, seconds(timeout)?)? {
            return Err(PyTimeoutError::new_err(format!(
                "{} is not finished after {}s; it goes on: call get() again, or cancel()",
                self.what,
                timeout.unwrap_or(0.0)
            )));
        }
        match &self.lock_done().as_ref().map(|d| &d.value) {
            Some(Ok(v)) => Ok(v.clone_ref(py)),
            Some(Err(e)) => Err(e.clone_ref(py)),
            None => Err(PyTimeoutError::new_err("not finished")),
        }
    }

    /// Whether the call has finished (successfully or not).
    fn ready(&self) -> bool {
        if self.lock_done().is_some() {
            return true;
        }
        self.call.try_lock().is_ok_and(|c| c.ready())
    }

    /// Wait at most `timeout` seconds (None: until done); whether the call finished.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.wait_done(py, seconds(timeout)?)
    }

    /// Whether the call finished without error (`ValueError` while it still runs).
    fn successful(&self, py: Python<'_>) -> PyResult<bool> {
        if !self.wait_done(py, Some(Duration::ZERO))? {
            return Err(PyValueError::new_err(format!(
                "{} is not finished yet",
                self.what
            )));
        }
        Ok(self.lock_done().as_ref().is_some_and(|d| d.value.is_ok()))
    }

    /// Cancel the call: its subprocesses on the host are killed and `get()` raises a
    /// `RemoteError` of kind `Cancelled` (or returns the value, when it finished first).
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        if self.lock_done().is_some() {
            return Ok(());
        }
        runtime::block(py, async {
            let mut c = self.call.lock().await;
            c.cancel().await
        })?
        .map_err(crate::errors::to_py)
    }

    /// The call's id (as in the endpoint's logs).
    #[getter]
    fn msg_id(&self, py: Python<'_>) -> PyResult<String> {
        runtime::block(py, async { self.call.lock().await.id().to_string() })
    }

    /// A dict: status (pending, ok, error), submitted, started, completed, received
    /// (datetimes), stdout, stderr, host, pid, msg_id, elapsed, round_trip.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Some(d) = self.lock_done().as_ref() {
            return Ok(d.meta.bind(py).clone());
        }
        meta_dict(py, None, ("", ""), "pending", (Some(self.submitted), None))
    }

    fn __repr__(&self) -> String {
        let state = if self.ready() { "finished" } else { "pending" };
        format!("<AsyncResult: {} ({state})>", self.what)
    }
}
