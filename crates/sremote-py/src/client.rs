//! `sremote.Client`: one host, the calls on it, and its settings. Transfers, programs,
//! installs and the session namespace are in `ops.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use sremote_core::{CallMode, Connector, Error};
use sremote_hosts::config::{Config, HostSpec};
use sremote_hosts::connect::{self, NewtAuth};

use crate::asyncres::{self, AsyncResult, CallOutput};
use crate::connectors::PyConnector;
use crate::errors::to_py;
use crate::runtime;
use crate::values::{Arg, Returned, to_arg};

pub type CoreClient = sremote_hosts::connect::Client;

/// A name kept in the client's session on the host (`client.push({...})`); pass
/// `Reference("a")` as an argument and the host substitutes the value.
#[pyclass(module = "sremote._sremote", name = "Reference", frozen)]
pub struct Reference {
    #[pyo3(get)]
    pub name: String,
}

#[pymethods]
impl Reference {
    #[new]
    fn new(name: String) -> Reference {
        Reference { name }
    }

    fn __repr__(&self) -> String {
        format!("Reference({:?})", self.name)
    }
}

/// A call's converted arguments (made while the GIL is held).
pub struct Prepared {
    pub module: String,
    pub function: String,
    pub args: Vec<Arg>,
    pub kwargs: Vec<(String, Arg)>,
    pub timeout: Option<Duration>,
    /// Python modules shipped with the call (`(name, source)` from `sremote._ship`).
    pub code: Vec<sremote_core::protocol::ShippedModule>,
}

/// The client of one host; see the Python docstring in `sremote/__init__.pyi`.
#[pyclass(module = "sremote._sremote", name = "Client", subclass, frozen)]
pub struct Client {
    pub(crate) client: CoreClient,
    pub(crate) spec: HostSpec,
    timeout: Mutex<Option<Duration>>,
    closed: AtomicBool,
    /// How the host was chosen from a pool (`needs=`), as JSON.
    placement: Mutex<Option<String>>,
    /// The ssh connection this client opened itself (by host name, not from a connector
    /// object the caller holds): `close()` ends it unless it is persisted for later programs.
    own_ssh: Option<sremote_ssh::SshConnector>,
}

fn mode_of(name: &str) -> PyResult<CallMode> {
    Ok(match name {
        "auto" => CallMode::Auto,
        "session" => CallMode::Session,
        "pipe" => CallMode::Pipe,
        "file" => CallMode::File,
        other => {
            return Err(PyTypeError::new_err(format!(
                "mode={other:?}: use 'auto', 'session', 'pipe' or 'file'"
            )));
        }
    })
}

/// Resolve a host name as the CLI does: a name from the hosts config, else `local`, an
/// ssh destination or a `newt+https://` URL.
fn resolve(py: Python<'_>, host: &str, config: Option<&str>) -> PyResult<HostSpec> {
    Ok(load_config(py, config)?.host(host))
}

/// The hosts config: `config=`, else `$SREMOTE_CONFIG`, else the default path; its
/// warnings become Python warnings.
fn load_config(py: Python<'_>, config: Option<&str>) -> PyResult<Config> {
    // `config=`, else `$SREMOTE_CONFIG` (as the CLI's --config), else the default path.
    let explicit = config.map(std::path::PathBuf::from).or_else(|| {
        std::env::var_os("SREMOTE_CONFIG")
            .filter(|v| !v.is_empty())
            .map(Into::into)
    });
    let cfg = Config::load(explicit.as_deref()).map_err(to_py)?;
    if !cfg.warnings.is_empty() {
        let warnings = py.import("warnings")?;
        for w in &cfg.warnings {
            warnings.call_method1("warn", (w.as_str(),))?;
        }
    }
    Ok(cfg)
}

impl Client {
    fn connect_host(py: Python<'_>, host: &str, opts: &ConnectOpts) -> PyResult<Client> {
        let mut spec = resolve(py, host, opts.config.as_deref())?;
        if let Some(user) = &opts.user {
            spec.destination = with_user(&spec.destination, user);
        }
        if opts.persist.is_some() {
            spec.persist = opts.persist;
        }
        let newt = NewtAuth {
            token: opts
                .token
                .clone()
                .or_else(|| std::env::var("SREMOTE_NEWT_TOKEN").ok()),
            password: opts
                .password
                .clone()
                .or_else(|| std::env::var("SREMOTE_NEWT_PASSWORD").ok()),
            ca: opts
                .ca
                .clone()
                .map(Into::into)
                .or_else(|| std::env::var_os("SREMOTE_NEWT_CA").map(Into::into)),
            prompt: None,
        };
        let ssh_config = opts.ssh_config.clone().map(std::path::PathBuf::from);
        let options = connect::ConnectOptions {
            prompt: opts.prompt.clone(),
            ..Default::default()
        };
        let conn = runtime::wait_all(
            py,
            connect::connect_with(&spec, ssh_config.as_deref(), &newt, &options),
        )?
        .map_err(to_py)?;
        let client = conn.client();
        if let Some(custom) = spec.endpoint.clone() {
            runtime::wait_all(py, client.do_bootstrap_install_with(&custom))?.map_err(to_py)?;
        }
        let mut made = Client::from_core(client, spec);
        made.own_ssh = conn.ssh.clone();
        Ok(made)
    }

    pub(crate) fn from_core(client: CoreClient, spec: HostSpec) -> Client {
        Client {
            client,
            spec,
            timeout: Mutex::new(None),
            closed: AtomicBool::new(false),
            placement: Mutex::new(None),
            own_ssh: None,
        }
    }

    /// The client, or `UsageError` after `close()`.
    pub(crate) fn live(&self) -> PyResult<&CoreClient> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(to_py(Error::Usage(format!(
                "the client of {} is closed; make a new sremote.Client",
                self.client.host()
            ))));
        }
        Ok(&self.client)
    }

    pub(crate) fn default_timeout(&self) -> Option<Duration> {
        *self.timeout.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Convert a call's arguments.
    pub fn prepare(
        &self,
        module: &str,
        function: &str,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Prepared> {
        let mut p = Prepared {
            module: module.to_string(),
            function: function.to_string(),
            args: Vec::with_capacity(args.len()),
            kwargs: Vec::new(),
            timeout: self.default_timeout(),
            code: Vec::new(),
        };
        for (i, a) in args.iter().enumerate() {
            p.args.push(to_arg(&a, &format!("argument {}", i + 1))?);
        }
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                let name: String = k.extract()?;
                let arg = to_arg(&v, &format!("keyword argument {name:?}"))?;
                p.kwargs.push((name, arg));
            }
        }
        Ok(p)
    }

    /// The core call for a prepared one.
    fn builder<'c>(
        client: &'c CoreClient,
        p: Prepared,
    ) -> sremote_core::CallBuilder<'c, Arc<dyn sremote_core::Connector>, Returned> {
        let mut call = client.call::<Returned>(&p.module, &p.function);
        for a in p.args {
            call = match a {
                Arg::Bytes(b) => call.arg_bytes(b),
                other => call.arg(other),
            };
        }
        for (k, v) in p.kwargs {
            call = call.kwarg(k, v);
        }
        if let Some(t) = p.timeout {
            call = call.timeout(t);
        }
        if !p.code.is_empty() {
            call = call.code(p.code);
        }
        call
    }

    /// [`prepare`](Self::prepare) for a function that travels with its code.
    fn prepare_shipped(
        &self,
        module: &str,
        function: &str,
        code: Vec<(String, String)>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Prepared> {
        let mut p = self.prepare(module, function, args, kwargs)?;
        p.code = code
            .into_iter()
            .map(|(name, source)| sremote_core::protocol::ShippedModule::new(name, source))
            .collect();
        Ok(p)
    }

    /// Start a prepared call in the background (needs the runtime's context).
    pub fn spawn(&self, p: Prepared) -> PyResult<asyncres::Call> {
        let client = self.live()?;
        let rt = runtime::runtime()?;
        let _guard = rt.enter();
        Ok(Self::builder(client, p).spawn())
    }

    /// Run a prepared call to the end on this thread, without the GIL (no task is
    /// spawned: the fastest path). Ctrl-C cancels it on the host, waits for the
    /// `Cancelled` answer (a few seconds at most) and raises `KeyboardInterrupt`.
    pub fn run(&self, py: Python<'_>, p: Prepared) -> PyResult<asyncres::Output> {
        let (call, canceller) = Self::builder(self.live()?, p).cancellable();
        let mut call = std::pin::pin!(call);
        match runtime::wait(py, call.as_mut(), None) {
            Ok(runtime::Waited::Done(r)) => r.map_err(to_py),
            Ok(runtime::Waited::TimedOut) => Err(to_py(Error::Usage(
                "the call ended without a result".into(),
            ))),
            Err(interrupted) => {
                let _ = runtime::block(py, async {
                    if canceller.cancel().await.is_ok() {
                        let _ = tokio::time::timeout(asyncres::CANCEL_GRACE, call.as_mut()).await;
                    }
                });
                Err(interrupted)
            }
        }
    }
}

/// `dest` logged into as `user` (an ssh destination without a user, or an ssh:// URL).
fn with_user(dest: &str, user: &str) -> String {
    match dest.strip_prefix("ssh://") {
        Some(rest) if !rest.contains('@') => format!("ssh://{user}@{rest}"),
        None if !dest.contains('@') && !dest.contains("://") && !dest.is_empty() => {
            format!("{user}@{dest}")
        }
        _ => dest.to_string(),
    }
}

/// Options of `Client(...)` for connecting.
#[derive(Default)]
struct ConnectOpts {
    user: Option<String>,
    ssh_config: Option<String>,
    config: Option<String>,
    password: Option<String>,
    token: Option<String>,
    ca: Option<String>,
    /// `persist=`: keep the ssh login this long for later programs (zero: not at all),
    /// over the hosts config's `persist`.
    persist: Option<std::time::Duration>,
    /// `prompt=`: answers ssh's login prompts.
    prompt: Option<sremote_ssh::Prompt>,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (host=None, *, ssh_config=None, config=None, timeout=None,
                        auto_bootstrap=true, mode=None, user=None, password=None, token=None, ca=None,
                        setup=None, login_shell=None, venv=None, needs=None, persist=None,
                        prompt=None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the Python keyword arguments one to one"
    )]
    fn new(
        py: Python<'_>,
        host: Option<&Bound<'_, PyAny>>,
        ssh_config: Option<String>,
        config: Option<String>,
        timeout: Option<f64>,
        auto_bootstrap: bool,
        mode: Option<String>,
        user: Option<String>,
        password: Option<String>,
        token: Option<String>,
        ca: Option<String>,
        setup: Option<Vec<String>>,
        login_shell: Option<bool>,
        venv: Option<String>,
        needs: Option<Bound<'_, pyo3::types::PyDict>>,
        persist: Option<&Bound<'_, PyAny>>,
        prompt: Option<Py<PyAny>>,
    ) -> PyResult<Client> {
        let local = pyo3::types::PyString::new(py, "local").into_any();
        let host = host.unwrap_or(&local);
        let client = if let Ok(c) = host.cast::<PyConnector>() {
            let c = c.get();
            let spec = HostSpec::adhoc(c.connector.host());
            Client::from_core(
                CoreClient::new(c.connector.clone() as Arc<dyn Connector>),
                spec,
            )
        } else if let Ok(mut name) = host.extract::<String>() {
            let mut placement = None;
            if let Some(needs) = &needs {
                let needs = crate::placement::parse(needs)?;
                let cfg = load_config(py, config.as_deref())?;
                let p = crate::placement::choose(py, &name, &needs, &cfg, ssh_config.as_deref())?;
                name = p.chosen.clone();
                placement = Some(p.to_json()["placement"].to_string());
            }
            let opts = ConnectOpts {
                user,
                ssh_config,
                config,
                password,
                token,
                ca,
                persist: persist.map(crate::connectors::persist_of).transpose()?,
                prompt: prompt.map(crate::connectors::prompt_of),
            };
            let client = Client::connect_host(py, &name, &opts)?;
            *client.placement.lock().unwrap_or_else(|p| p.into_inner()) = placement;
            client
        } else {
            return Err(PyTypeError::new_err(
                "Client(host): give a host name ('local', 'user@host', 'newt+https://…', a \
                 configured name) or a connector (LocalConnector, SshConnector, NewtConnector)",
            ));
        };
        *client.timeout.lock().unwrap_or_else(|p| p.into_inner()) = asyncres::seconds(timeout)?;
        client.client.set_auto_bootstrap(auto_bootstrap);
        if let Some(m) = mode {
            client.client.set_call_mode(mode_of(&m)?);
        }
        if venv.is_some() {
            client.client.set_venv(venv.as_deref()).map_err(to_py)?;
        }
        // After the hosts config's `setup` lines (configured_client applied those).
        for line in setup.unwrap_or_default() {
            if line.contains('\0') {
                return Err(to_py(Error::usage(
                    format!("setup line {line:?} contains a NUL byte"),
                    "shell code cannot",
                )));
            }
            client.client.add_setup(line);
        }
        if let Some(on) = login_shell {
            client.client.set_login_shell(on);
        }
        Ok(client)
    }

    /// The shell lines run on the host before the endpoint and jobs start (the hosts
    /// config's `setup`, then `setup=`).
    #[getter]
    fn setup(&self) -> Vec<String> {
        self.client.setup().lines
    }

    /// How the host was chosen from a pool with `needs=` (`chosen`, `reason`, every
    /// candidate's figures and what it lacks), else `None`.
    #[getter]
    fn placement<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let text = self
            .placement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        text.map(|t| py.import("json")?.call_method1("loads", (t,)))
            .transpose()
    }

    /// The project venv (`<sremote dir>/venvs/NAME`) Python calls, jobs and installs use;
    /// `None`: the endpoint's own.
    #[getter]
    fn venv(&self) -> Option<String> {
        self.client.venv()
    }

    /// Whether the setup and the endpoint run in a login shell (`bash -l`).
    #[getter]
    fn login_shell(&self) -> bool {
        self.client.setup().login_shell
    }

    /// The host as its connector names it (`local`, `user@host:port`, …).
    #[getter]
    fn host(&self) -> String {
        self.client.host().to_string()
    }

    /// The name this client was made with (a configured name, a destination, `local`).
    #[getter]
    fn name(&self) -> String {
        self.spec.name.clone()
    }

    /// Default time limit of each call on the host, in seconds (None: none).
    #[getter]
    fn get_timeout(&self) -> Option<f64> {
        self.default_timeout().map(|d| d.as_secs_f64())
    }

    #[setter]
    fn set_timeout(&self, timeout: Option<f64>) -> PyResult<()> {
        *self.timeout.lock().unwrap_or_else(|p| p.into_inner()) = asyncres::seconds(timeout)?;
        Ok(())
    }

    /// `module.function(*args, **kwargs)` on the host; returns its value. Every keyword
    /// argument goes to the function (the client's `timeout` applies).
    ///
    /// >>> c.call("os", "getenv", "HOME")
    /// '/home/alice'
    #[pyo3(signature = (module, function, *args, **kwargs))]
    fn call(
        &self,
        py: Python<'_>,
        module: &str,
        function: &str,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let p = self.prepare(module, function, args, kwargs)?;
        self.run(py, p)?.value.into_python(py)
    }

    /// Like `call`, with the output and metadata: `.value`, `.stdout`, `.stderr`, `.meta`.
    #[pyo3(signature = (module, function, *args, **kwargs))]
    fn call_output(
        &self,
        py: Python<'_>,
        module: &str,
        function: &str,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<CallOutput> {
        let submitted = SystemTime::now();
        let p = self.prepare(module, function, args, kwargs)?;
        CallOutput::new(py, self.run(py, p)?, submitted)
    }

    /// Start the call in the background; returns an `AsyncResult`.
    #[pyo3(signature = (module, function, *args, **kwargs))]
    fn call_async(
        &self,
        module: &str,
        function: &str,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<AsyncResult> {
        let p = self.prepare(module, function, args, kwargs)?;
        let what = format!("call {module}.{function} on {}", self.client.host());
        Ok(AsyncResult::new(self.spawn(p)?, what))
    }

    /// `call_output` of a function shipped with its code: `code` is the list of
    /// `(module name, source)` that `sremote._ship.describe` made (dependencies first).
    /// Used by `apply`; not for direct use.
    #[pyo3(signature = (module, function, code, args, kwargs=None))]
    fn _call_shipped(
        &self,
        py: Python<'_>,
        module: &str,
        function: &str,
        code: Vec<(String, String)>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<CallOutput> {
        let submitted = SystemTime::now();
        let p = self.prepare_shipped(module, function, code, args, kwargs)?;
        CallOutput::new(py, self.run(py, p)?, submitted)
    }

    /// `call_async` of a function shipped with its code (see `_call_shipped`).
    #[pyo3(signature = (module, function, code, args, kwargs=None))]
    fn _call_shipped_async(
        &self,
        module: &str,
        function: &str,
        code: Vec<(String, String)>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<AsyncResult> {
        let p = self.prepare_shipped(module, function, code, args, kwargs)?;
        let what = format!("call {module}.{function} on {}", self.client.host());
        Ok(AsyncResult::new(self.spawn(p)?, what))
    }

    /// Set `name=value` in the environment of every later call.
    fn register_env(&self, name: &str, value: &str) {
        self.client.register_remote_env_variable(name, value);
    }

    /// Set `name=value` for later calls, unless the host defines `name` already.
    fn register_env_if_unset(&self, name: &str, value: &str) {
        self.client.register_conditional_env_variable(name, value);
    }

    /// Put `directory` first in PATH (and PYTHONPATH) of every later call.
    fn add_path(&self, directory: &str) {
        self.client.add_remote_path(directory);
    }

    /// Use `directory` (relative: to the home directory) instead of `~/.sremote`.
    fn set_sremote_dir(&self, directory: &str) {
        self.client.set_sremote_dir(directory);
    }

    /// Use `directory` for request files and temporary data on the host.
    fn set_tmp_dir(&self, directory: &str) {
        self.client.set_tmp_dir(directory);
    }

    /// Raise `ModulesMissingError` (`.missing`, `.present`) unless every module can be
    /// imported on the host.
    #[pyo3(signature = (*modules))]
    fn check_modules(&self, py: Python<'_>, modules: Vec<String>) -> PyResult<()> {
        let client = self.live()?.clone();
        runtime::wait_all(py, async move { client.check_modules(modules).await })?.map_err(to_py)
    }

    /// Close the session (the endpoint on the host exits) and, when this client logged in
    /// itself with `persist=0` (or `False`), its ssh connection, waiting until both are
    /// gone; a persisted login stays for later programs until its time runs out. Later
    /// calls raise `UsageError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let client = self.client.clone();
        let ssh = self.own_ssh.clone();
        let ended = runtime::block(py, async move {
            client.close_session().await;
            match ssh {
                Some(ssh) => ssh.close().await,
                None => Ok(()),
            }
        })?;
        if let Err(e) = ended {
            // The session is closed; only the login could not be ended: say so, not fail.
            let warnings = py.import("warnings")?;
            warnings.call_method1("warn", (e.to_string(),))?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<sremote.Client {}>", self.client.host())
    }
}
