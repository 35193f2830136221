//! `RemoteClient`: calls functions on a host through any [`Connector`].

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bootstrap::EndpointSource;
pub use crate::call::{
    AsyncCall, CallArgs, CallBuilder, CallCanceller, CallMeta, CallOutput, CallWait, Ref,
};
use crate::connector::{Connector, RemoteCommand};
use crate::error::{Error, NotSetupError, ProtocolError};
use crate::protocol::{ErrorBody, ErrorKind, Outcome, Request, Response, inline_attachments};
use crate::session::{Answer, Session, SessionError};

/// How a call reaches the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallMode {
    /// The fastest the connector supports: session when it can spawn, else pipe when it
    /// can feed stdin, else file.
    #[default]
    Auto,
    /// One long-lived endpoint per client (`sremote-endpoint serve` over
    /// [`Connector::spawn`]); many calls in flight, sub-millisecond.
    Session,
    /// One `exec` with the request on stdin and the response on stdout.
    Pipe,
    /// Push the request as a file, then one `exec` that answers on stdout (for connectors
    /// without stdin, e.g. REST).
    File,
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) env_if_unset: BTreeMap<String, String>,
    pub(crate) path: Vec<String>,
    pub(crate) required_modules: Vec<String>,
    pub(crate) sremote_dir: Option<String>,
    pub(crate) tmp_dir: Option<String>,
    pub(crate) mode: CallMode,
    pub(crate) auto_bootstrap: bool,
    pub(crate) endpoint: EndpointSource,
    pub(crate) setup: crate::setup::Setup,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Install name of the endpoint in use (set by bootstrap of a custom endpoint).
    pub(crate) install_name: Option<String>,
    /// sremote dir learned from the host's `.location`.
    pub(crate) discovered_dir: Option<String>,
    /// tmp dir learned from the host's `.location` (absolute, or relative to the home).
    pub(crate) discovered_tmp: Option<String>,
    /// Bumped by every finished bootstrap (lets concurrent calls share one).
    pub(crate) generation: u64,
    /// The sremote dir last found safe to run the endpoint from (`trust.rs`).
    pub(crate) trusted_dir: Option<String>,
    /// What a session start that found no endpoint probed (`trust::guarded`): the
    /// sremote dir and install name it looked at, and the facts; taken by the bootstrap
    /// that follows instead of probing again.
    pub(crate) probed: Option<(String, String, crate::bootstrap::HostFacts)>,
}

pub(crate) struct Inner<C> {
    pub(crate) connector: C,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) state: Mutex<State>,
    pub(crate) bootstrap_lock: tokio::sync::Mutex<()>,
    pub(crate) session: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// Set once the connector said it cannot spawn: Auto then uses pipe/file.
    pub(crate) no_session: std::sync::atomic::AtomicBool,
    pub(crate) next_id: AtomicU64,
    pub(crate) id_prefix: String,
    /// SHA-256 of shipped modules the host has answered a call with (so it keeps them in
    /// its code cache): later calls send only the hash.
    pub(crate) shipped: Mutex<std::collections::HashSet<String>>,
}

/// Calls functions on one host. Cheap to clone (shared state).
///
/// ```no_run
/// # async fn demo() -> Result<(), sremote_core::Error> {
/// use sremote_core::{args, CallOutput, LocalConnector, RemoteClient};
/// let client = RemoteClient::new(LocalConnector::new());
/// client.register_remote_env_variable("myVar", "myValue");
/// let out: CallOutput<String> = client.do_remote_call("os", "getenv", args!["myVar"]).await?;
/// assert_eq!(out.value, "myValue");
/// let n: CallOutput<u64> = client.call("os", "cpu_count").timeout(std::time::Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
pub struct RemoteClient<C> {
    pub(crate) inner: Arc<Inner<C>>,
}

impl<C> Clone for RemoteClient<C> {
    fn clone(&self) -> Self {
        RemoteClient {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Connector> std::fmt::Debug for RemoteClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient")
            .field("host", &self.inner.connector.host())
            .finish()
    }
}

/// Clients made by this process so far (part of each client's id prefix).
static CLIENTS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<C: Connector> RemoteClient<C> {
    /// A client for the host `connector` reaches. Nothing is sent until the first call.
    pub fn new(connector: C) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        RemoteClient {
            inner: Arc::new(Inner {
                connector,
                settings: Mutex::new(Settings {
                    env: BTreeMap::new(),
                    env_if_unset: BTreeMap::new(),
                    path: Vec::new(),
                    required_modules: Vec::new(),
                    sremote_dir: None,
                    tmp_dir: None,
                    mode: CallMode::Auto,
                    auto_bootstrap: true,
                    endpoint: EndpointSource::Auto,
                    setup: crate::setup::Setup::default(),
                }),
                state: Mutex::new(State::default()),
                bootstrap_lock: tokio::sync::Mutex::new(()),
                session: tokio::sync::Mutex::new(None),
                no_session: std::sync::atomic::AtomicBool::new(false),
                next_id: AtomicU64::new(1),
                // Unique per client: two clients made in the same microsecond (two
                // programs' worth of bootstrap temp files on one host) must not collide.
                id_prefix: format!(
                    "{:x}-{:x}",
                    std::process::id(),
                    (nanos.as_micros() as u64 & 0xff_ffff)
                        + (CLIENTS.fetch_add(1, Ordering::Relaxed) << 24)
                ),
                shipped: Mutex::new(Default::default()),
            }),
        }
    }

    /// The connector this client uses.
    pub fn connector(&self) -> &C {
        &self.inner.connector
    }

    /// The host's name as the connector gives it.
    pub fn host(&self) -> &str {
        self.inner.connector.host()
    }

    /// Set `name=value` in the environment of every call.
    pub fn register_remote_env_variable(&self, name: impl Into<String>, value: impl Into<String>) {
        lock(&self.inner.settings)
            .env
            .insert(name.into(), value.into());
    }

    /// Set `name=value` for every call unless the host already defines `name`.
    pub fn register_conditional_env_variable(
        &self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) {
        lock(&self.inner.settings)
            .env_if_unset
            .insert(name.into(), value.into());
    }

    /// Prepend `dir` to `PATH` (and `PYTHONPATH`) for every call.
    pub fn add_remote_path(&self, dir: impl Into<String>) {
        lock(&self.inner.settings).path.push(dir.into());
    }

    /// Require `modules` for every call: calls fail with [`Error::ModulesMissing`] while
    /// any is absent.
    pub fn require_modules<I: IntoIterator<Item = S>, S: Into<String>>(&self, modules: I) {
        lock(&self.inner.settings)
            .required_modules
            .extend(modules.into_iter().map(Into::into));
    }

    /// Check now that `modules` are available on the host.
    pub async fn check_modules<I: IntoIterator<Item = S>, S: Into<String>>(
        &self,
        modules: I,
    ) -> Result<(), Error> {
        let mut call = self.call::<Value>("sys", "version");
        call.check_modules = modules.into_iter().map(Into::into).collect();
        call.await.map(drop)
    }

    /// Use `dir` (relative: to the home directory) instead of `~/.sremote` on the host.
    /// Bootstrap records it in `~/.sremote/.location` so the endpoint finds it.
    pub fn set_sremote_dir(&self, dir: impl Into<String>) {
        lock(&self.inner.settings).sremote_dir = Some(dir.into());
    }

    /// Use `dir` (relative: to the home directory, like [`set_sremote_dir`]) for request
    /// files and temporary data instead of `<sremote dir>/tmp`. Bootstrap records it in
    /// `~/.sremote/.location` (PROTOCOL.md, "Self-discovery"), so the endpoint and later
    /// clients use it too.
    ///
    /// [`set_sremote_dir`]: RemoteClient::set_sremote_dir
    pub fn set_tmp_dir(&self, dir: impl Into<String>) {
        lock(&self.inner.settings).tmp_dir = Some(dir.into());
    }

    /// Force a call path (default: [`CallMode::Auto`]).
    pub fn set_call_mode(&self, mode: CallMode) {
        lock(&self.inner.settings).mode = mode;
    }

    /// Whether a call that finds no (or a wrong) endpoint bootstraps once by itself
    /// (default: yes).
    pub fn set_auto_bootstrap(&self, on: bool) {
        lock(&self.inner.settings).auto_bootstrap = on;
    }

    /// Where bootstrap finds endpoint binaries (default: [`EndpointSource::Auto`]).
    pub fn set_endpoint_source(&self, source: EndpointSource) {
        lock(&self.inner.settings).endpoint = source;
    }

    /// The sremote directory on the host (relative: to the home directory).
    pub fn sremote_dir(&self) -> String {
        let explicit = lock(&self.inner.settings).sremote_dir.clone();
        explicit
            .or_else(|| lock(&self.inner.state).discovered_dir.clone())
            .unwrap_or_else(|| ".sremote".to_string())
    }

    /// The tmp directory on the host (relative: to the home directory): the one set with
    /// [`set_tmp_dir`](RemoteClient::set_tmp_dir), else the one bootstrap found in
    /// `.location`, else `<sremote dir>/tmp`.
    pub fn tmp_dir(&self) -> String {
        let explicit = lock(&self.inner.settings).tmp_dir.clone();
        explicit
            .or_else(|| lock(&self.inner.state).discovered_tmp.clone())
            .unwrap_or_else(|| format!("{}/tmp", self.sremote_dir()))
    }

    /// Path of the endpoint binary on the host (relative: to the home directory).
    pub fn endpoint_path(&self) -> String {
        let name = lock(&self.inner.state).install_name.clone();
        let name = name.unwrap_or_else(|| format!("sremote-endpoint-{}", crate::protocol::VERSION));
        format!("{}/bin/{name}", self.sremote_dir())
    }

    /// Start building a call of `module.function`; `.await` it to run it.
    pub fn call<T: DeserializeOwned>(&self, module: &str, function: &str) -> CallBuilder<'_, C, T> {
        CallBuilder {
            client: self,
            request: Request::new("", module, function),
            args_error: None,
            attachments: Vec::new(),
            check_modules: Vec::new(),
            mode: None,
            control: None,
            _t: PhantomData,
        }
    }

    /// Call `module.function(*args)` and decode the value as `T`.
    pub async fn do_remote_call<T: DeserializeOwned>(
        &self,
        module: &str,
        function: &str,
        args: impl Into<CallArgs>,
    ) -> Result<CallOutput<T>, Error> {
        let mut call = self.call::<T>(module, function);
        match args.into().0 {
            Ok(v) => call.request.args = v,
            Err(e) => call.args_error = Some(e),
        }
        call.await
    }

    /// Start `module.function(*args)` in the background; see [`AsyncCall`].
    pub fn call_async<T: DeserializeOwned + Send + 'static>(
        &self,
        module: &str,
        function: &str,
        args: impl Into<CallArgs>,
    ) -> AsyncCall<C, T>
    where
        C: 'static,
    {
        let mut call = self.call::<T>(module, function);
        match args.into().0 {
            Ok(v) => call.request.args = v,
            Err(e) => call.args_error = Some(e),
        }
        call.spawn()
    }

    /// Keep `value` in the endpoint under `name` for later calls of this session (session
    /// mode only); pass [`Ref`]`(name)` as an argument to use it. Values live as long as
    /// the session: after a reconnect they must be pushed again.
    pub async fn push_value(&self, name: &str, value: impl serde::Serialize) -> Result<(), Error> {
        self.call::<Value>("session", "push")
            .arg(name)
            .arg(value)
            .mode(CallMode::Session)
            .await
            .map(drop)
    }

    /// Fetch the value stored under `name` in this session.
    pub async fn pull_value<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        self.call::<T>("session", "pull")
            .arg(name)
            .mode(CallMode::Session)
            .await
            .map(|o| o.value)
    }

    /// Set how many Python workers serve this session's calls in parallel (default: the
    /// host's CPU count); returns the size now. The size belongs to the session: after a
    /// reconnect, set it again.
    pub async fn set_python_workers(&self, n: usize) -> Result<usize, Error> {
        self.call::<usize>("session", "python_workers")
            .arg(n)
            .mode(CallMode::Session)
            .await
            .map(|o| o.value)
    }

    /// Run Python `code` in the session's namespace on the host (one persistent namespace,
    /// like an IPython engine's): names it binds that have a JSON form can then be pulled
    /// ([`pull_value`](Self::pull_value)) or passed as [`Ref`](crate::Ref)s, and pushed
    /// values are names there. The output's `stdout`/`stderr` hold what the code printed;
    /// its `value` lists the names `changed`, `python_only` (no JSON form) and `deleted`.
    /// An exception is a `Raised` error with the traceback (file `<sremote-execute>`).
    pub async fn execute(&self, code: &str) -> Result<CallOutput<Value>, Error> {
        self.call::<Value>("session", "execute")
            .arg(code)
            .mode(CallMode::Session)
            .await
    }

    /// [`execute`](Self::execute) a script's `source` (read by the caller) as the file
    /// `filename` (the name its tracebacks show, and its `__file__`).
    pub async fn run_source(
        &self,
        source: &str,
        filename: &str,
    ) -> Result<CallOutput<Value>, Error> {
        self.call::<Value>("session", "run")
            .arg(source)
            .arg(filename)
            .mode(CallMode::Session)
            .await
    }

    /// Close the session, if any (the endpoint on the host exits). The next call opens a new one.
    pub async fn close_session(&self) {
        self.inner.session.lock().await.take();
    }

    pub(crate) fn next_id(&self) -> String {
        use std::fmt::Write as _;
        let prefix = &self.inner.id_prefix;
        let mut id = String::with_capacity(prefix.len() + 21);
        id.push_str(prefix);
        id.push('-');
        let _ = write!(id, "{}", self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        id
    }

    pub(crate) async fn run_call<T: DeserializeOwned>(
        &self,
        call: CallBuilder<'_, C, T>,
    ) -> Result<CallOutput<T>, Error> {
        let CallBuilder {
            mut request,
            args_error,
            attachments,
            check_modules,
            mode,
            control,
            ..
        } = call;
        // `call module.function`, built without the formatting machinery (every call).
        let mut action = String::with_capacity(6 + request.module.len() + request.function.len());
        for part in ["call ", &request.module, ".", &request.function] {
            action.push_str(part);
        }
        let control = control.as_deref();
        if let Some(e) = args_error {
            return Err(Error::Usage(format!(
                "{action} on {}: an argument cannot be sent: {e}",
                self.host()
            )));
        }
        let (mode, auto_bootstrap) = self.apply_settings(&mut request, check_modules, mode);
        let started = Instant::now();
        let generation = lock(&self.inner.state).generation;
        let full_code = self.strip_cached_code(&mut request);
        let (mut mode, mut answer) = match self
            .send(&request, &attachments, mode, &action, control)
            .await
        {
            Err(Error::NotSetup(reason)) if auto_bootstrap => {
                tracing::info!(host = self.host(), reason = %reason.reason, "endpoint not set up; bootstrapping");
                // Boxed: the bootstrap's large future is not part of every call's.
                Box::pin(self.bootstrap_after_failure(generation)).await?;
                self.send(&request, &attachments, mode, &action, control)
                    .await?
            }
            other => other?,
        };
        if let Some(code) = full_code {
            if code_missing(&answer) {
                // The host's cache lost what we sent before (cleaned, another sremote
                // dir): send it again with the sources.
                tracing::debug!(
                    host = self.host(),
                    "shipped code not cached on the host; resending"
                );
                request.code = code;
                (mode, answer) = self
                    .send(&request, &attachments, mode, &action, control)
                    .await?;
            }
            if !code_missing(&answer) {
                let mut known = lock(&self.inner.shipped);
                known.extend(request.code.iter().map(|m| m.sha256.clone()));
            }
        }
        self.finish(answer, &request, mode, started.elapsed(), &action)
    }

    /// Drop the sources of shipped modules the host has already cached (the request then
    /// names them by hash). Returns the full list when the request ships code, to resend
    /// it if the host answers `CodeMissing`.
    fn strip_cached_code(
        &self,
        request: &mut Request,
    ) -> Option<Vec<crate::protocol::ShippedModule>> {
        if request.code.is_empty() {
            return None;
        }
        let known = lock(&self.inner.shipped);
        let sent = request
            .code
            .iter()
            .map(|m| crate::protocol::ShippedModule {
                name: m.name.clone(),
                sha256: m.sha256.clone(),
                source: if known.contains(&m.sha256) {
                    None
                } else {
                    m.source.clone()
                },
            })
            .collect();
        Some(std::mem::replace(&mut request.code, sent))
    }

    /// Fill a call's request with the client's settings (env, path, required modules, id).
    fn apply_settings(
        &self,
        request: &mut Request,
        check_modules: Vec<String>,
        mode: Option<CallMode>,
    ) -> (CallMode, bool) {
        let (mode, auto_bootstrap) = {
            let s = lock(&self.inner.settings);
            for (k, v) in &s.env {
                request.env.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &s.env_if_unset {
                request
                    .env_if_unset
                    .entry(k.clone())
                    .or_insert_with(|| v.clone());
            }
            request.path.splice(0..0, s.path.iter().cloned());
            request
                .check_modules
                .extend(s.required_modules.iter().cloned());
            (mode.unwrap_or(s.mode), s.auto_bootstrap)
        };
        request.check_modules.extend(check_modules);
        if request.id.is_empty() {
            request.id = self.next_id();
        }
        (mode, auto_bootstrap)
    }

    /// The request `call` would send, with the client's settings applied and `Blob`
    /// arguments inlined: to run the call another way (e.g. as a detached job).
    pub(crate) fn request_of<T>(&self, call: CallBuilder<'_, C, T>) -> Result<Request, Error> {
        let CallBuilder {
            mut request,
            args_error,
            attachments,
            check_modules,
            mode,
            ..
        } = call;
        if let Some(e) = args_error {
            return Err(Error::Usage(format!(
                "call {}.{} on {}: an argument cannot be sent: {e}",
                request.module,
                request.function,
                self.host()
            )));
        }
        self.apply_settings(&mut request, check_modules, mode);
        for v in request.args.iter_mut().chain(request.kwargs.values_mut()) {
            inline_attachments(v, &attachments).map_err(Error::Usage)?;
        }
        Ok(request)
    }

    /// The path a call in `mode` takes on this connector.
    fn resolve_mode(&self, mode: CallMode) -> CallMode {
        match mode {
            CallMode::Auto if !self.inner.no_session.load(Ordering::Relaxed) => CallMode::Session,
            CallMode::Auto | CallMode::Pipe if !self.inner.connector.supports_stdin() => {
                CallMode::File
            }
            CallMode::Auto => CallMode::Pipe,
            m => m,
        }
    }

    /// One attempt: deliver the request, read the response.
    async fn send(
        &self,
        request: &Request,
        attachments: &[Vec<u8>],
        mode: CallMode,
        action: &str,
        control: Option<&crate::call::CallControl>,
    ) -> Result<(CallMode, Answer), Error> {
        let resolved = self.resolve_mode(mode);
        // A session's start checks the sremote dir itself (`trust::guarded`).
        if resolved == CallMode::Session {
            match self
                .send_session(request, attachments, action, control)
                .await
            {
                Err(Error::Transport(e))
                    if e.kind == crate::ConnectorErrorKind::Unsupported
                        && mode == CallMode::Auto =>
                {
                    self.inner.no_session.store(true, Ordering::Relaxed);
                }
                other => return other.map(|a| (CallMode::Session, a)),
            }
        }
        let resolved = self.resolve_mode(if mode == CallMode::Session {
            CallMode::Auto
        } else {
            mode
        });
        Box::pin(self.verify_endpoint_dir()).await?;
        let body = if attachments.is_empty() {
            serde_json::to_vec(request)
        } else {
            // Plain-JSON paths carry bytes inline as base64.
            let mut inline = request.clone();
            for v in inline.args.iter_mut().chain(inline.kwargs.values_mut()) {
                inline_attachments(v, attachments)
                    .map_err(|e| Error::Usage(format!("{action}: {e}")))?;
            }
            serde_json::to_vec(&inline)
        }
        .map_err(|e| {
            Error::Usage(format!(
                "{action} on {}: request cannot be encoded: {e}",
                self.host()
            ))
        })?;
        Box::pin(self.send_exec(request, &body, resolved, action))
            .await
            .map(|r| (resolved, (r, Vec::new())))
    }

    /// An endpoint of another protocol version answers with `ProtocolVersion`: that is
    /// an endpoint to replace (`NotSetup`), not a failed call.
    pub(crate) fn check_protocol(&self, response: &Response, action: &str) -> Result<(), Error> {
        match &response.outcome {
            Outcome::Error(ErrorBody {
                kind: ErrorKind::ProtocolVersion,
                message,
                ..
            }) => Err(self.not_setup(
                action,
                format!("the endpoint speaks another protocol: {message}"),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn not_setup(&self, action: &str, reason: String) -> Error {
        Error::NotSetup(Box::new(NotSetupError {
            host: self.host().to_string(),
            action: action.to_string(),
            reason,
        }))
    }

    /// The live session, opened (or reopened) on demand.
    pub(crate) async fn session(&self, action: &str) -> Result<Arc<Session>, SessionError> {
        let mut slot = self.inner.session.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| s.is_alive()) {
            return Ok(s.clone());
        }
        *slot = None;
        let endpoint = self.endpoint_path();
        let dir = self.sremote_dir();
        let serve = crate::trust::guarded(&dir, RemoteCommand::new(&endpoint).arg("serve"));
        let serve = self.with_setup(serve);
        // A start that finds no endpoint offers to install it (`bootstrap::offer`).
        let decision = crate::bootstrap::Decision::default();
        let offer = |facts: &crate::bootstrap::HostFacts| self.offer(facts, &endpoint, &decision);
        let opened = Session::open(&self.inner.connector, &serve, &endpoint, action, &offer);
        let session = match opened.await {
            Ok(s) => {
                if decision.taken.load(Ordering::SeqCst) {
                    self.installed_by_offer();
                }
                Arc::new(s)
            }
            Err(SessionError::NoEndpoint { reason, facts }) => {
                // The start checked the dir (it printed no `untrusted=` line) and probed;
                // the bootstrap that follows takes the facts.
                let name = endpoint.rsplit('/').next().unwrap_or_default().to_string();
                let mut state = lock(&self.inner.state);
                state.trusted_dir = Some(dir.clone());
                state.probed = Some((dir, name, *facts));
                return Err(SessionError::NotSetup(reason));
            }
            Err(e) => return Err(e),
        };
        lock(&self.inner.state).trusted_dir = Some(dir);
        *slot = Some(session.clone());
        Ok(session)
    }

    async fn send_session(
        &self,
        request: &Request,
        attachments: &[Vec<u8>],
        action: &str,
        control: Option<&crate::call::CallControl>,
    ) -> Result<Answer, Error> {
        let map = |e: SessionError| match e {
            SessionError::Cancelled => crate::call::cancelled_here(
                self.host(),
                &request.module,
                &request.function,
                &request.id,
            ),
            SessionError::NotSetup(reason) | SessionError::NoEndpoint { reason, .. } => {
                self.not_setup(action, reason)
            }
            SessionError::Setup(f) => self.setup_failed(action, f),
            SessionError::Untrusted(line) => {
                crate::trust::untrusted_error(self.host(), action, &line)
            }
            SessionError::Protocol { detail, received } => {
                Error::Protocol(Box::new(ProtocolError {
                    host: self.host().to_string(),
                    action: action.to_string(),
                    detail,
                    received,
                    module: None,
                }))
            }
            SessionError::Transport(e) => Error::Transport(e),
        };
        // Boxed: opening a session (rare) keeps its large future out of every call's.
        let session = Box::pin(self.session(action)).await.map_err(map)?;
        // The frame's head with the request JSON written straight into it (one buffer,
        // one copy: the queue's).
        let mut head = Vec::with_capacity(256);
        crate::frame::append_message_head(
            &mut head,
            crate::frame::FrameKind::Request,
            attachments,
            |out| Ok(serde_json::to_writer(out, request)?),
        )
        .map_err(|e| {
            Error::Usage(format!(
                "{action} on {}: request cannot be encoded: {e}",
                self.host()
            ))
        })?;
        let call = session.call(&request.id, &head, attachments, action, control);
        let answer = match request.timeout_ms {
            Some(ms) => match tokio::time::timeout(
                Duration::from_millis(ms) + Duration::from_secs(30),
                call,
            )
            .await
            {
                Ok(a) => a,
                Err(_) => {
                    let _ = session.cancel(&request.id, action).await;
                    return Err(Error::Transport(
                        crate::ConnectorError::new(
                            crate::ConnectorErrorKind::Timeout,
                            self.host(),
                            action,
                        )
                        .detail(format!("no answer {} s after the call's own timeout", 30))
                        .hint("the host or the connection may be overloaded"),
                    ));
                }
            },
            None => call.await,
        };
        let (response, atts) = answer.map_err(map)?;
        self.check_protocol(&response, action)?;
        Ok((response, atts))
    }
}

/// Whether the host answered that shipped code named by hash is not in its cache.
fn code_missing((response, _): &crate::session::Answer) -> bool {
    matches!(&response.outcome, crate::protocol::Outcome::Error(e) if e.kind == crate::protocol::ErrorKind::CodeMissing)
}
