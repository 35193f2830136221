//! `Client` operations besides calls: programs, files, bootstrap, installs, probe and
//! the session namespace.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use sremote_core::{Dest, Error, RemoteCommand, Source};

use crate::client::Client;
use crate::errors::to_py;
use crate::runtime;
use crate::values::{Returned, to_arg};

/// What a program run with `Client.exec` did: `.returncode` (None: killed by a signal),
/// `.stdout`/`.stderr` (text, undecodable bytes replaced), `.stdout_bytes`/`.stderr_bytes`.
#[pyclass(module = "sremote._sremote", name = "ExecResult", frozen)]
pub struct ExecResult {
    #[pyo3(get)]
    returncode: Option<i32>,
    out: Vec<u8>,
    err: Vec<u8>,
    #[pyo3(get)]
    args: Vec<String>,
}

#[pymethods]
impl ExecResult {
    #[getter]
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    #[getter]
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err).into_owned()
    }

    #[getter]
    fn stdout_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.out)
    }

    #[getter]
    fn stderr_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.err)
    }

    fn __repr__(&self) -> String {
        format!(
            "ExecResult(args={:?}, returncode={:?}, stdout={} bytes, stderr={} bytes)",
            self.args,
            self.returncode,
            self.out.len(),
            self.err.len()
        )
    }
}

/// A progress callback called with the bytes moved so far (from a runtime thread; its
/// exceptions are printed, not raised).
fn progress_fn(cb: Option<Py<PyAny>>) -> impl Fn(u64) + Send + Sync {
    move |n: u64| {
        if let Some(cb) = &cb {
            Python::attach(|py| {
                if let Err(e) = cb.call1(py, (n,)) {
                    e.print(py);
                }
            });
        }
    }
}

fn report_dict<'py>(
    py: Python<'py>,
    items: &[(&str, Bound<'py, PyAny>)],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in items {
        d.set_item(*k, v)?;
    }
    Ok(d)
}

fn install_report(py: Python<'_>, r: sremote_core::InstallReport) -> PyResult<Bound<'_, PyDict>> {
    report_dict(
        py,
        &[
            ("host", r.host.into_pyobject(py)?.into_any()),
            ("python", r.python.into_pyobject(py)?.into_any()),
            (
                "created_venv",
                r.created_venv.into_pyobject(py)?.to_owned().into_any(),
            ),
            ("output", r.output.into_pyobject(py)?.into_any()),
        ],
    )
}

#[pymethods]
impl Client {
    /// Run a program on the host (no shell: each list item is one argument). Returns an
    /// `ExecResult`; a failing program is not an exception (look at `.returncode`).
    ///
    /// >>> c.exec(["uname", "-a"]).stdout
    #[pyo3(signature = (argv, *, stdin=None, env=None, cwd=None, timeout=None))]
    fn exec(
        &self,
        py: Python<'_>,
        argv: Vec<String>,
        stdin: Option<Vec<u8>>,
        env: Option<BTreeMap<String, String>>,
        cwd: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<ExecResult> {
        let client = self.live()?.clone();
        let Some((program, rest)) = argv.split_first() else {
            return Err(to_py(Error::Usage("exec([]): name a program".into())));
        };
        let mut cmd = RemoteCommand::new(program.clone()).args(rest.iter().cloned());
        for (k, v) in self.spec.env.iter().chain(env.iter().flatten()) {
            cmd = cmd.env(k, v);
        }
        if let Some(s) = stdin {
            cmd = cmd.stdin(s);
        }
        if let Some(d) = cwd {
            cmd = cmd.cwd(d);
        }
        if let Some(t) = crate::asyncres::seconds(timeout)? {
            cmd = cmd.timeout(t);
        }
        let out = runtime::wait_all(py, async move { client.connector().exec(&cmd).await })?
            .map_err(|e| to_py(e.into()))?;
        Ok(ExecResult {
            returncode: out.exit_code,
            out: out.stdout,
            err: out.stderr,
            args: argv,
        })
    }

    /// Copy a local file to `remote` (relative: to the home directory), atomically, mode
    /// kept. `progress(bytes_so_far)` is called as it goes.
    #[pyo3(signature = (local, remote, progress=None))]
    fn push_file(
        &self,
        py: Python<'_>,
        local: PathBuf,
        remote: String,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let client = self.live()?.clone();
        let cb = progress_fn(progress);
        runtime::wait_all(py, async {
            let src = Source::file(&local).progress(&cb);
            client.connector().push(src, &remote).await
        })?
        .map_err(|e| to_py(e.into()))
    }

    /// Copy `remote` from the host to a local file, atomically, mode and mtime kept.
    #[pyo3(signature = (remote, local, progress=None))]
    fn pull_file(
        &self,
        py: Python<'_>,
        remote: String,
        local: PathBuf,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let client = self.live()?.clone();
        let cb = progress_fn(progress);
        runtime::wait_all(py, async {
            let dest = Dest::file(&local).progress(&cb);
            client.connector().pull(&remote, dest).await
        })?
        .map_err(|e| to_py(e.into()))
    }

    /// Install the endpoint on the host unless the right one is there (a no-op when
    /// current). Returns a dict: installed, endpoint_path, target, sha256, bytes_pushed.
    fn bootstrap<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let client = self.live()?.clone();
        let r = runtime::wait_all(py, async move { client.do_bootstrap_install().await })?
            .map_err(to_py)?;
        report_dict(
            py,
            &[
                ("host", r.host.into_pyobject(py)?.into_any()),
                (
                    "installed",
                    r.installed.into_pyobject(py)?.to_owned().into_any(),
                ),
                (
                    "endpoint_path",
                    r.endpoint_path.into_pyobject(py)?.into_any(),
                ),
                ("target", r.target.into_pyobject(py)?.into_any()),
                ("sha256", r.sha256.into_pyobject(py)?.into_any()),
                ("bytes_pushed", r.bytes_pushed.into_pyobject(py)?.into_any()),
                ("removed", r.removed.into_pyobject(py)?.into_any()),
            ],
        )
    }

    /// `pip install` packages into the endpoint's venv on the host (created when
    /// missing). Returns a dict: python, created_venv, output.
    fn install_packages<'py>(
        &self,
        py: Python<'py>,
        packages: Vec<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let client = self.live()?.clone();
        let r = runtime::wait_all(
            py,
            async move { client.install_python_packages(packages).await },
        )?
        .map_err(to_py)?;
        install_report(py, r)
    }

    /// Clone `url` at `branch` on the host and install it as `name` into the endpoint's
    /// venv (the original sremote's `do_install_git_module`). Returns a dict like
    /// `install_packages`.
    fn install_git_module<'py>(
        &self,
        py: Python<'py>,
        url: String,
        branch: String,
        name: String,
    ) -> PyResult<Bound<'py, PyDict>> {
        let client = self.live()?.clone();
        let r = runtime::wait_all(py, async move {
            client.do_install_git_module(&url, &branch, &name).await
        })?
        .map_err(to_py)?;
        install_report(py, r)
    }

    /// CPUs, load, memory, disk, GPUs and python3 of the host (a dict).
    fn probe(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let client = self.live()?.clone();
        let out = runtime::wait_all(
            py,
            async move { client.call::<Returned>("sys", "probe").await },
        )?
        .map_err(to_py)?;
        out.value.into_python(py)
    }

    /// Keep `value` under `name` in this client's session on the host.
    fn push_value(&self, py: Python<'_>, name: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let client = self.live()?.clone();
        let v = to_arg(value, &format!("the value of {name:?}"))?;
        runtime::wait_all(py, async move { client.push_value(&name, v).await })?.map_err(to_py)
    }

    /// The value kept under `name` in the session (`RemoteError` naming it when absent).
    fn pull_value(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let client = self.live()?.clone();
        runtime::wait_all(
            py,
            async move { client.pull_value::<Returned>(&name).await },
        )?
        .map_err(to_py)?
        .into_python(py)
    }
}
