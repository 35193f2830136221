//! A call: its arguments, builder, output and asynchronous handle.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::client::{CallMode, RemoteClient, lock};
use crate::connector::Connector;
use crate::error::{Error, RemoteExecError};
use crate::protocol::{ErrorKind, Request, with_attachments};
use crate::session::Canceller;

/// Call arguments; build with [`args!`](crate::args) or from a `Vec<Value>`.
#[derive(Debug, Clone)]
pub struct CallArgs(pub Result<Vec<Value>, String>);

impl From<Vec<Value>> for CallArgs {
    fn from(v: Vec<Value>) -> Self {
        CallArgs(Ok(v))
    }
}

/// Facts about a finished call.
#[derive(Debug, Clone)]
pub struct CallMeta {
    /// The request id (unique per call).
    pub id: String,
    /// Host name reported by the endpoint.
    pub host: String,
    /// Version of the endpoint that ran the call.
    pub endpoint_version: String,
    /// Process id of the endpoint that ran the call.
    pub pid: u32,
    /// When the call started on the host and how long it ran there.
    pub timing: crate::protocol::Timing,
    /// The path the call took.
    pub mode: CallMode,
    /// Wall time seen by the client, connector operations included.
    pub round_trip: Duration,
}

/// A call's value with the output it printed and where it ran.
#[derive(Debug, Clone)]
pub struct CallOutput<T> {
    /// The function's return value.
    pub value: T,
    /// What the call printed on stdout.
    pub stdout: String,
    /// What the call printed on stderr.
    pub stderr: String,
    /// Where and how it ran.
    pub meta: CallMeta,
}

/// A call being built; `.await` runs it. Made by [`RemoteClient::call`].
#[must_use = "a call does nothing until it is awaited"]
pub struct CallBuilder<'a, C, T> {
    pub(crate) client: &'a RemoteClient<C>,
    pub(crate) request: Request,
    pub(crate) args_error: Option<String>,
    /// Raw bytes of `Blob` arguments, referenced as `{"$blob": N}`.
    pub(crate) attachments: Vec<Vec<u8>>,
    pub(crate) check_modules: Vec<String>,
    pub(crate) mode: Option<CallMode>,
    /// Set for a call started with [`spawn`](CallBuilder::spawn): lets it be cancelled.
    pub(crate) control: Option<Arc<CallControl>>,
    pub(crate) _t: PhantomData<fn() -> T>,
}

impl<C: Connector, T> std::fmt::Debug for CallBuilder<'_, C, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallBuilder")
            .field("request", &self.request)
            .finish()
    }
}

impl<C, T> CallBuilder<'_, C, T> {
    fn push_value(&mut self, v: impl Serialize) -> Option<Value> {
        let (value, table) = with_attachments(std::mem::take(&mut self.attachments), || {
            serde_json::to_value(v)
        });
        self.attachments = table;
        match value {
            Ok(v) => Some(v),
            Err(e) => {
                self.args_error.get_or_insert(e.to_string());
                None
            }
        }
    }

    /// Add a positional argument.
    pub fn arg(mut self, v: impl Serialize) -> Self {
        if let Some(v) = self.push_value(v) {
            self.request.args.push(v);
        }
        self
    }

    /// Add a positional argument of raw bytes, moved into the call: the same as
    /// `arg(Blob(bytes))` on the wire (a raw attachment in session mode, base64 in the
    /// JSON otherwise), without the copy that serialising a `Blob` makes — for large
    /// payloads.
    pub fn arg_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.attachments.push(bytes.into());
        let index = self.attachments.len() - 1;
        self.request
            .args
            .push(serde_json::json!({ "$blob": index }));
        self
    }

    /// Add positional arguments.
    pub fn args<I: IntoIterator<Item = V>, V: Serialize>(mut self, vs: I) -> Self {
        for v in vs {
            self = self.arg(v);
        }
        self
    }

    /// Add a keyword argument.
    pub fn kwarg(mut self, name: impl Into<String>, v: impl Serialize) -> Self {
        if let Some(v) = self.push_value(v) {
            self.request.kwargs.insert(name.into(), v);
        }
        self
    }

    /// Stop the call on the host after `t`.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.request.timeout_ms = Some(t.as_millis().try_into().unwrap_or(u64::MAX));
        self
    }

    /// Set an environment variable for this call only.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.env.insert(name.into(), value.into());
        self
    }

    /// Ship Python modules with the call (functions the host does not have): each is
    /// loaded on the host from its code cache, dependencies first, before `module` is
    /// imported. The host caches them by SHA-256; this client then sends only the hash.
    pub fn code(
        mut self,
        modules: impl IntoIterator<Item = crate::protocol::ShippedModule>,
    ) -> Self {
        self.request.code.extend(modules);
        self
    }

    /// Force the call path for this call.
    pub fn mode(mut self, mode: CallMode) -> Self {
        self.mode = Some(mode);
        self
    }
}

impl<C: Connector, T> CallBuilder<'_, C, T> {
    /// The request this call would send — the client's registered environment, path and
    /// required modules applied, `Blob` arguments inlined as base64 — to run it another
    /// way (e.g. as a detached job). Fails with [`Error::Usage`] if an argument could not
    /// be serialized.
    pub fn into_request(self) -> Result<Request, Error> {
        let client = self.client;
        client.request_of(self)
    }
}

impl<'a, C: Connector, T: DeserializeOwned + 'a> IntoFuture for CallBuilder<'a, C, T> {
    type Output = Result<CallOutput<T>, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        let client = self.client;
        Box::pin(client.run_call(self))
    }
}

impl<'a, C: Connector + 'static, T: DeserializeOwned + Send + 'static> CallBuilder<'a, C, T> {
    /// Start the call in the background and return a handle to it (IPython's
    /// `AsyncResult`): [`ready`](AsyncCall::ready), [`get`](AsyncCall::get),
    /// [`metadata`](AsyncCall::metadata), [`cancel`](AsyncCall::cancel).
    /// Needs a Tokio runtime.
    pub fn spawn(mut self) -> AsyncCall<C, T> {
        let client = self.client.clone();
        self.request.id = client.next_id();
        let id = self.request.id.clone();
        let control = Arc::new(CallControl::default());
        let parts = self.into_parts();
        let runner = client.clone();
        let (ctl, call_id) = (control.clone(), id.clone());
        let task = tokio::spawn(async move {
            let (module, function) = (parts.request.module.clone(), parts.request.function.clone());
            let mut call = parts.rebuild(&runner);
            call.control = Some(ctl.clone());
            tokio::select! {
                biased;
                r = runner.run_call(call) => r,
                // Only while the request has not gone out in a session (see
                // `CallControl`): stops a call still opening its session or bootstrapping,
                // and a pipe or file mode call together with its remote command.
                () = ctl.aborted() => Err(cancelled_here(runner.host(), &module, &function, &call_id)),
            }
        });
        AsyncCall {
            client,
            id,
            task: Some(task),
            meta: None,
            control,
        }
    }

    /// Run the call on the task that awaits the returned future (no task is spawned: one
    /// wake-up less per call than [`spawn`](Self::spawn)), with a [`CallCanceller`] that
    /// cancels it as [`AsyncCall::cancel`] does. Keep polling the future after a cancel to
    /// receive the `Cancelled` answer; dropping it instead stops the call on the client
    /// side only.
    pub fn cancellable(
        mut self,
    ) -> (
        impl Future<Output = Result<CallOutput<T>, Error>> + Send + 'a,
        CallCanceller,
    ) {
        let client = self.client;
        self.request.id = client.next_id();
        let id = self.request.id.clone();
        let control = Arc::new(CallControl::default());
        self.control = Some(control.clone());
        let (module, function) = (self.request.module.clone(), self.request.function.clone());
        let (ctl, call_id) = (control.clone(), id.clone());
        let run = async move {
            tokio::select! {
                biased;
                r = client.run_call(self) => r,
                () = ctl.aborted() => Err(cancelled_here(client.host(), &module, &function, &call_id)),
            }
        };
        (run, CallCanceller { id, control })
    }

    fn into_parts(self) -> CallParts {
        CallParts {
            request: self.request,
            args_error: self.args_error,
            attachments: self.attachments,
            check_modules: self.check_modules,
            mode: self.mode,
        }
    }
}

/// A call's contents without the borrowed client (to move into a task).
struct CallParts {
    request: Request,
    args_error: Option<String>,
    attachments: Vec<Vec<u8>>,
    check_modules: Vec<String>,
    mode: Option<CallMode>,
}

impl CallParts {
    fn rebuild<C, T>(self, client: &RemoteClient<C>) -> CallBuilder<'_, C, T> {
        CallBuilder {
            client,
            request: self.request,
            args_error: self.args_error,
            attachments: self.attachments,
            check_modules: self.check_modules,
            mode: self.mode,
            control: None,
            _t: PhantomData,
        }
    }
}

/// Cancellation of a spawned call. The request goes out in a session only through
/// [`start_sending`](CallControl::start_sending), called under the session's writer lock;
/// a cancel before that stops the call on the client side (its request is never written,
/// its pipe or file mode command is dropped with its connection), a cancel after it sends
/// a Cancel frame, which can then only follow the request on the stream.
#[derive(Default)]
pub(crate) struct CallControl {
    state: Mutex<ControlState>,
    abort: tokio::sync::Notify,
}

#[derive(Default)]
struct ControlState {
    requested: bool,
    /// The session the request was written to.
    sent: Option<Canceller>,
}

impl CallControl {
    /// The request is about to be written to a session: `false` if the call was
    /// cancelled (then it must not be written).
    pub(crate) fn start_sending(&self, session: Canceller) -> bool {
        let mut s = lock(&self.state);
        if s.requested {
            return false;
        }
        s.sent = Some(session);
        true
    }

    /// Cancel: the session to send the Cancel frame to, or `None` when the call is
    /// stopped here (the running task is told to drop it).
    fn request(&self) -> Option<Canceller> {
        let mut s = lock(&self.state);
        s.requested = true;
        let sent = s.sent.clone();
        if sent.is_none() {
            self.abort.notify_one();
        }
        sent
    }

    /// Cancel call `id`: send the Cancel frame to the session its request went to, or
    /// tell the running future to stop here.
    async fn cancel(&self, id: &str) -> Result<(), Error> {
        match self.request() {
            Some(session) => session
                .cancel(id, &format!("cancel call {id}"))
                .await
                .map_err(Error::Transport),
            None => Ok(()),
        }
    }

    /// Resolves once the call is to be dropped on the client side.
    async fn aborted(&self) {
        self.abort.notified().await
    }
}

/// The error of a call cancelled before its request reached a session's endpoint.
pub(crate) fn cancelled_here(host: &str, module: &str, function: &str, id: &str) -> Error {
    Error::RemoteExec(Box::new(RemoteExecError {
        host: host.to_string(),
        module: module.to_string(),
        function: function.to_string(),
        kind: ErrorKind::Cancelled,
        message: format!(
            "call {id} was cancelled by the client before the endpoint answered; it was \
             stopped on the client side (a pipe or file mode command is stopped with its \
             connection)"
        ),
        traceback: None,
        stdout: String::new(),
        stderr: String::new(),
    }))
}

/// What [`AsyncCall::wait_for`] found: the call's result, or that it is still running.
#[derive(Debug)]
pub enum CallWait<T> {
    /// The call finished: its value, or why it failed.
    Ready(Result<CallOutput<T>, Error>),
    /// The call has not finished within the time given; it goes on.
    NotReady,
}

/// A call running in the background; made by [`CallBuilder::spawn`] or
/// [`RemoteClient::call_async`].
pub struct AsyncCall<C, T> {
    client: RemoteClient<C>,
    id: String,
    task: Option<tokio::task::JoinHandle<Result<CallOutput<T>, Error>>>,
    meta: Option<CallMeta>,
    control: Arc<CallControl>,
}

impl<C: Connector, T> std::fmt::Debug for AsyncCall<C, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ready = self.task.as_ref().is_none_or(|t| t.is_finished());
        f.debug_struct("AsyncCall")
            .field("id", &self.id)
            .field("ready", &ready)
            .finish()
    }
}

impl<C: Connector + 'static, T: Send + 'static> AsyncCall<C, T> {
    /// The request id (as it appears in the endpoint's logs and responses).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the call has finished (successfully or not).
    pub fn ready(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Wait for the result, at most `timeout` (`None`: as long as it takes):
    /// [`CallWait::NotReady`] when the time ran out first — the call goes on, and
    /// `wait_for`/`get` can be called again — else [`CallWait::Ready`] with the result,
    /// which can be taken once (a second take is an [`Error::Usage`]).
    pub async fn wait_for(&mut self, timeout: Option<Duration>) -> CallWait<T> {
        let Some(task) = self.task.as_mut() else {
            return CallWait::Ready(Err(Error::Usage(format!(
                "the result of call {} was already taken",
                self.id
            ))));
        };
        let joined = match timeout {
            None => task.await,
            Some(t) => match tokio::time::timeout(t, task).await {
                Ok(j) => j,
                Err(_) => return CallWait::NotReady,
            },
        };
        self.task = None;
        let out = match joined {
            Ok(r) => r,
            Err(e) => Err(Error::Usage(format!("call {} was aborted: {e}", self.id))),
        };
        if let Ok(o) = &out {
            self.meta = Some(o.meta.clone());
        }
        CallWait::Ready(out)
    }

    /// Wait for the result, at most `timeout` (`None`: as long as it takes). When the
    /// time runs out the call goes on and `get` can be called again; the error is then a
    /// transport `Timeout` that says so — use [`wait_for`](AsyncCall::wait_for) to tell
    /// "not ready yet" apart from a call that failed. The result can be taken once.
    pub async fn get(&mut self, timeout: Option<Duration>) -> Result<CallOutput<T>, Error> {
        match self.wait_for(timeout).await {
            CallWait::Ready(r) => r,
            CallWait::NotReady => Err(Error::Transport(
                crate::ConnectorError::new(
                    crate::ConnectorErrorKind::Timeout,
                    self.client.host(),
                    format!("wait for call {}", self.id),
                )
                .detail(format!(
                    "not finished after {:?}; it is still running",
                    timeout.unwrap_or_default()
                ))
                .hint("call get() again, or cancel()"),
            )),
        }
    }

    /// Where and how long the call ran, once it has finished and its result was taken.
    pub fn metadata(&self) -> Option<&CallMeta> {
        self.meta.as_ref()
    }

    /// Cancel the call; `get` then returns a `Cancelled` error (or the value, when the
    /// call finished first). Once the request went out in a session the endpoint kills
    /// the call's subprocesses and answers `Cancelled`; before that (still opening the
    /// session or bootstrapping), and in pipe and file mode, the call is stopped on the
    /// client side and the remote command with its connection.
    pub async fn cancel(&mut self) -> Result<(), Error> {
        if self.ready() {
            return Ok(());
        }
        self.control.cancel(&self.id).await
    }
}

/// Cancels a call made with [`CallBuilder::cancellable`].
pub struct CallCanceller {
    id: String,
    control: Arc<CallControl>,
}

impl std::fmt::Debug for CallCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCanceller")
            .field("id", &self.id)
            .finish()
    }
}

impl CallCanceller {
    /// The request id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Cancel the call (see [`AsyncCall::cancel`]): once its request went out in a
    /// session the endpoint kills its subprocesses and answers `Cancelled`; before that,
    /// and in pipe and file mode, the call's future ends with `Cancelled` here.
    pub async fn cancel(&self) -> Result<(), Error> {
        self.control.cancel(&self.id).await
    }
}

/// A reference to a value stored in the session with [`RemoteClient::push_value`]; pass
/// it as an argument and the endpoint substitutes the value (`{"$ref": name}` on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref(pub String);

impl Serialize for Ref {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("$ref", &self.0)?;
        m.end()
    }
}
