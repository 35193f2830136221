//! Connectors made explicitly (`LocalConnector()`, `SshConnector(...)`,
//! `NewtConnector(...)`), to pass to `Client(connector)` instead of a host name.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use sremote_core::{Connector, LocalConnector};
use sremote_rest::NewtConnector;
use sremote_ssh::{KnownHostsPolicy, SshConnector};

use crate::errors::to_py;
use crate::runtime;

/// A connected transport (the base class of the three connectors).
#[pyclass(module = "sremote._sremote", name = "Connector", subclass, frozen)]
pub struct PyConnector {
    pub connector: Arc<dyn Connector>,
}

#[pymethods]
impl PyConnector {
    /// The host as the connector names it.
    #[getter]
    fn host(&self) -> String {
        self.connector.host().to_string()
    }

    fn __repr__(&self) -> String {
        format!("<sremote connector {}>", self.connector.host())
    }
}

fn connector(c: impl Connector + 'static) -> PyClassInitializer<PyConnector> {
    PyClassInitializer::from(PyConnector {
        connector: Arc::new(c),
    })
}

/// This machine, no ssh. `home`: the directory relative remote paths start from
/// (default: `$HOME`).
#[pyclass(module = "sremote._sremote", name = "LocalConnector", extends = PyConnector, frozen)]
pub struct PyLocalConnector;

#[pymethods]
impl PyLocalConnector {
    #[new]
    #[pyo3(signature = (home=None))]
    fn new(home: Option<std::path::PathBuf>) -> (PyLocalConnector, PyConnector) {
        let c = match home {
            Some(h) => LocalConnector::with_home(h),
            None => LocalConnector::new(),
        };
        (
            PyLocalConnector,
            PyConnector {
                connector: Arc::new(c),
            },
        )
    }
}

/// An ssh host through the system `ssh` (your config, agent, ProxyJump apply); one
/// authenticated connection for every call and transfer. `persist="4h"` (or seconds, or
/// True for 10 minutes) keeps the login for later programs; `prompt=f` answers password
/// or one-time-code prompts (`f(prompt_text) -> answer or None`); without it ssh asks on
/// the terminal, if there is one.
#[pyclass(module = "sremote._sremote", name = "SshConnector", extends = PyConnector, frozen)]
pub struct PySshConnector;

#[pymethods]
impl PySshConnector {
    #[new]
    #[pyo3(signature = (destination, *, ssh_config=None, port=None, user=None, keyfile=None,
                        known_hosts=None, strict_host_keys=None, connect_timeout=None,
                        persist=None, prompt=None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the Python keyword arguments one to one"
    )]
    fn new(
        py: Python<'_>,
        destination: String,
        ssh_config: Option<std::path::PathBuf>,
        port: Option<u16>,
        user: Option<String>,
        keyfile: Option<std::path::PathBuf>,
        known_hosts: Option<std::path::PathBuf>,
        strict_host_keys: Option<bool>,
        connect_timeout: Option<f64>,
        persist: Option<&Bound<'_, PyAny>>,
        prompt: Option<Py<PyAny>>,
    ) -> PyResult<PyClassInitializer<PySshConnector>> {
        sremote_hosts::connect::check_destination(&destination).map_err(to_py)?;
        let mut b = SshConnector::builder();
        if let Some(c) = ssh_config {
            b = b.config_file(c);
        }
        if let Some(p) = port {
            b = b.port(p);
        }
        if let Some(u) = user {
            b = b.user(u);
        }
        if let Some(k) = keyfile {
            b = b.keyfile(k);
        }
        if let Some(k) = known_hosts {
            b = b.known_hosts_file(k);
        }
        if let Some(strict) = strict_host_keys {
            b = b.known_hosts(if strict {
                KnownHostsPolicy::Strict
            } else {
                KnownHostsPolicy::AcceptNew
            });
        }
        if let Some(t) = crate::asyncres::seconds(connect_timeout)? {
            b = b.connect_timeout(t);
        }
        if let Some(p) = persist {
            b = b.persist(Some(persist_of(p)?));
        }
        if let Some(f) = prompt {
            b = b.prompt(prompt_of(f));
        }
        let ssh = runtime::wait_all(py, b.connect(&destination))?.map_err(|e| to_py(e.into()))?;
        Ok(connector(ssh).add_subclass(PySshConnector))
    }
}

/// A host behind a NEWT-style REST API (e.g. `sremote-gateway`): `url` is the base URL
/// (`https://gateway:8443/newt`), `machine` the machine name. Give `password` or `token`
/// (a session id or bearer token); `ca`: a PEM file to trust (a self-signed gateway).
#[pyclass(module = "sremote._sremote", name = "NewtConnector", extends = PyConnector, frozen)]
pub struct PyNewtConnector;

#[pymethods]
impl PyNewtConnector {
    #[new]
    #[pyo3(signature = (url, machine, user=None, password=None, token=None, ca=None, connect_timeout=None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the Python keyword arguments one to one"
    )]
    fn new(
        py: Python<'_>,
        url: String,
        machine: String,
        user: Option<String>,
        password: Option<String>,
        token: Option<String>,
        ca: Option<std::path::PathBuf>,
        connect_timeout: Option<f64>,
    ) -> PyResult<PyClassInitializer<PyNewtConnector>> {
        let mut b = NewtConnector::builder(&url, &machine);
        if let Some(ca) = ca {
            let pem = std::fs::read(&ca).map_err(|e| {
                to_py(sremote_core::Error::Usage(format!(
                    "NewtConnector: cannot read ca={}: {e}",
                    ca.display()
                )))
            })?;
            b = b.root_certificates_pem(&pem);
        }
        if let Some(t) = crate::asyncres::seconds(connect_timeout)? {
            b = b.connect_timeout(t.max(Duration::from_millis(1)));
        }
        let c = match (token, user, password) {
            (Some(t), _, _) => b.with_session(&t).map_err(|e| to_py(e.into()))?,
            (None, Some(u), Some(p)) => {
                runtime::wait_all(py, b.login(&u, &p))?.map_err(|e| to_py(e.into()))?
            }
            _ => {
                return Err(to_py(sremote_core::Error::Usage(format!(
                    "NewtConnector({url:?}, {machine:?}): give user= and password=, or token="
                ))));
            }
        };
        Ok(connector(c).add_subclass(PyNewtConnector))
    }
}

/// `persist=`: seconds, a duration text ("10m", "4h", "0"), or True (10 minutes) / False.
pub(crate) fn persist_of(v: &Bound<'_, PyAny>) -> PyResult<std::time::Duration> {
    use sremote_hosts::connect;
    let bad = |what: String| pyo3::exceptions::PyValueError::new_err(what);
    if let Ok(b) = v.extract::<bool>() {
        return Ok(if b {
            connect::DEFAULT_PERSIST
        } else {
            std::time::Duration::ZERO
        });
    }
    if let Ok(text) = v.extract::<String>() {
        return connect::parse_persist(&text).map_err(bad);
    }
    let secs = v.extract::<f64>().map_err(|_| {
        bad("persist=: give seconds, a duration such as '4h', or True/False".into())
    })?;
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|_| bad(format!("persist={secs}: not a duration")))
}

/// `prompt=`: a callable given the prompt text (a password, a one-time code) that returns
/// the answer, or None to give up. Called from another thread, with the GIL.
pub(crate) fn prompt_of(f: Py<PyAny>) -> sremote_ssh::Prompt {
    sremote_ssh::Prompt::new(move |text| {
        Python::attach(|py| {
            let answer = f.call1(py, (text,)).ok()?;
            answer.bind(py).extract::<Option<String>>().ok().flatten()
        })
    })
}
