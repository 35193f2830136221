//! The dispatcher: a [`Request`] checked, its environment entered, its module resolved
//! (registered, plugin or Python), run under its timeout with panics caught, and answered
//! with a [`Response`].

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use sremote_core::protocol::{ErrorBody, ErrorKind, Outcome, Request, Response, VERSION};

use crate::context::{CallContext, CallOutput};
use crate::endpoint::Endpoint;
use crate::error::CallError;
use crate::location::Location;
use crate::module::{Args, valid_name};
use crate::panic::{panic_message, run_guarded};
use crate::response::{error_response, now_unix_ms, response};

/// How [`Endpoint::dispatch`] ended, for call mode.
pub(crate) struct Handled {
    pub response: Response,
    /// The call's worker thread is still running (its timeout expired).
    pub abandoned: bool,
}

/// What session mode hands to a dispatch.
pub(crate) struct SessionCall<'a> {
    pub env: &'a crate::env::SessionEnv,
    pub attachments: Vec<Vec<u8>>,
}

/// Which implementation serves a module.
enum Target {
    Registered,
    Plugin(PathBuf),
    Python(crate::python::Target),
}

/// A request that passed the checks, ready to run.
struct Prepared<'s> {
    target: Target,
    /// Borrowed from a session's endpoint (its location is fixed): no copy per call.
    location: std::borrow::Cow<'s, Location>,
    /// Session mode: the frame's raw attachments.
    attachments: Option<Vec<Vec<u8>>>,
    /// Session mode: holds the session's environment as the request wants it until the
    /// call ends.
    env: Option<std::sync::RwLockReadGuard<'s, ()>>,
}

/// A call's output and, in session mode, the raw attachments of its result.
type JobOutput = (CallOutput, Vec<Vec<u8>>);

impl Endpoint {
    /// Run one request and build its response. Never panics: a panic in the function
    /// becomes a `Panicked` error, and so would one in the dispatcher itself.
    ///
    /// Before the call, the request's `env`, `env_if_unset` and `path` are applied to this
    /// process's environment (right for call and pipe mode, one call per process).
    pub fn handle(&self, req: Request) -> Response {
        self.dispatch(req).response
    }

    /// Parse `bytes` as a request and run it; a malformed request gets an error response.
    pub fn handle_bytes(&self, bytes: &[u8]) -> Response {
        match Request::parse(bytes) {
            Ok(req) => self.handle(req),
            Err((id, body)) => error_response(id.unwrap_or_default(), body),
        }
    }

    pub(crate) fn dispatch(&self, req: Request) -> Handled {
        self.dispatch_with(req, None).0
    }

    /// Run one request; in session mode (`session` given) with the session's environment
    /// handling and raw attachments for `Blob`s (returned beside the response).
    pub(crate) fn dispatch_with(
        &self,
        req: Request,
        session: Option<SessionCall<'_>>,
    ) -> (Handled, Vec<Vec<u8>>) {
        let id = req.id.clone();
        match catch_unwind(AssertUnwindSafe(|| self.dispatch_inner(req, session))) {
            Ok(handled) => handled,
            Err(payload) => (
                Handled {
                    response: error_response(
                        id,
                        ErrorBody::new(
                            ErrorKind::Panicked,
                            format!(
                                "the endpoint itself panicked: {}",
                                panic_message(payload.as_ref())
                            ),
                        ),
                    ),
                    abandoned: false,
                },
                Vec::new(),
            ),
        }
    }

    /// Check and prepare the request, run it (on a thread of its own when it has a
    /// timeout) and build the response.
    fn dispatch_inner(
        &self,
        req: Request,
        session: Option<SessionCall<'_>>,
    ) -> (Handled, Vec<Vec<u8>>) {
        let started_unix_ms = now_unix_ms();
        let in_session = session.is_some();
        let (module, function) = (req.module.clone(), req.function.clone());
        let Prepared {
            target,
            location,
            attachments,
            env: _env,
        } = match self.prepare(&req, session) {
            Ok(prepared) => prepared,
            Err(e) => {
                let outcome = Outcome::Error(e.into_body(&module, &function));
                let empty = || String::new();
                let response = response(&req.id, outcome, empty(), empty(), started_unix_ms, 0);
                let handled = Handled {
                    response,
                    abandoned: false,
                };
                return (handled, Vec::new());
            }
        };
        let timeout = req.timeout_ms.map(Duration::from_millis);
        let id = req.id.clone();
        let t0 = Instant::now();
        let ((output, out_attachments), abandoned) = match timeout {
            None => (
                self.run_call(req, &target, &location, attachments, in_session),
                false,
            ),
            Some(limit) => {
                // On a thread of its own, which owns what it uses.
                let (endpoint, location) = (self.clone(), location.into_owned());
                let job =
                    move || endpoint.run_call(req, &target, &location, attachments, in_session);
                run_with_timeout(job, limit, &module, &function)
            }
        };
        let elapsed_us = t0.elapsed().as_micros() as u64;
        let outcome = match output.result {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Error(e.into_body(&module, &function)),
        };
        let response = response(
            &id,
            outcome,
            output.stdout,
            output.stderr,
            started_unix_ms,
            elapsed_us,
        );
        (
            Handled {
                response,
                abandoned,
            },
            out_attachments,
        )
    }

    /// Everything before the call runs: names checked, the request's environment entered,
    /// required modules checked, the module resolved.
    fn prepare<'s>(
        &'s self,
        req: &Request,
        session: Option<SessionCall<'s>>,
    ) -> Result<Prepared<'s>, CallError> {
        check_names(&req.module, &req.function)?;
        let in_session = session.is_some();
        let (env, attachments) = match session {
            None => {
                crate::env::apply_request_env(req)?;
                (None, None)
            }
            Some(SessionCall { env, attachments }) => (Some(env.enter(req)?), Some(attachments)),
        };
        let location = match &self.inner.fixed_location {
            Some(fixed) => std::borrow::Cow::Borrowed(fixed),
            None => std::borrow::Cow::Owned(self.location()),
        };
        let session_id = in_session.then_some(req.id.as_str());
        self.check_modules(&req.check_modules, &location, session_id)?;
        let shipped = req.code.iter().any(|m| m.name == req.module);
        let target = self.resolve(&req.module, &req.function, &location, shipped)?;
        Ok(Prepared {
            target,
            location,
            attachments,
            env,
        })
    }

    /// Run the prepared call: arguments bound (a session's `{"$blob": N}` from, and
    /// returned `Blob`s to, the frame's raw attachments; inline base64 for plugins and
    /// Python, which read plain JSON), output scoped to the call, panics caught.
    fn run_call(
        &self,
        mut request: Request,
        target: &Target,
        location: &Location,
        attachments: Option<Vec<Vec<u8>>>,
        in_session: bool,
    ) -> JobOutput {
        if let (Target::Plugin(_) | Target::Python(_), Some(table)) = (target, &attachments) {
            for v in request.args.iter_mut().chain(request.kwargs.values_mut()) {
                let _ = sremote_core::protocol::inline_attachments(v, table);
            }
        }
        let args = match target {
            Target::Registered => Args {
                args: std::mem::take(&mut request.args),
                kwargs: std::mem::take(&mut request.kwargs),
            },
            Target::Plugin(_) | Target::Python(_) => Args::default(),
        };
        let ctx = CallContext {
            endpoint: self,
            module: &request.module,
            function: &request.function,
            id: &request.id,
            location,
        };
        let run = || run_guarded(|| self.invoke(target, &ctx, args, &request, in_session));
        crate::process::with_call_id(&request.id, || match attachments {
            Some(table) => sremote_core::protocol::with_attachments(table, run),
            None => (run(), Vec::new()),
        })
    }

    /// Call the function on its implementation.
    fn invoke(
        &self,
        target: &Target,
        ctx: &CallContext<'_>,
        args: Args,
        request: &Request,
        in_session: bool,
    ) -> CallOutput {
        match target {
            Target::Registered => {
                let def = &self.inner.modules[ctx.module].functions[ctx.function];
                let (result, stdout, stderr) = crate::output::scoped(|| def.invoke(ctx, args));
                CallOutput {
                    result,
                    stdout,
                    stderr,
                }
            }
            Target::Plugin(path) => crate::plugin::call(path, request),
            Target::Python(py) => py.call(request, in_session),
        }
    }

    fn resolve(
        &self,
        module: &str,
        function: &str,
        location: &Location,
        shipped: bool,
    ) -> Result<Target, CallError> {
        if shipped {
            // The module travels with the call: always Python's, whatever else is here.
            return crate::python::Target::forced(module, location).map(Target::Python);
        }
        if let Some(m) = self.inner.modules.get(module) {
            if m.functions.contains_key(function) {
                return Ok(Target::Registered);
            }
            let names: Vec<&str> = m.functions.keys().map(String::as_str).collect();
            return Err(CallError::new(
                ErrorKind::FunctionNotFound,
                format!(
                    "module `{module}` has no function `{function}`; its functions: {}",
                    names.join(", ")
                ),
            )
            .with_data(json!({ "functions": names })));
        }
        if let Some(name) = module.strip_prefix(crate::python::PREFIX) {
            return crate::python::Target::forced(name, location).map(Target::Python);
        }
        if let Some(path) = location.plugin(module) {
            return Ok(Target::Plugin(path));
        }
        let mut available = self.module_names();
        available.extend(location.plugins());
        let hint = format!(
            "not built in or registered (endpoint modules: {}), and no plugin executable at {}",
            available.join(", "),
            location.modules.join(module).display()
        );
        crate::python::Target::fallback(module, location, hint, available).map(Target::Python)
    }

    /// The version of `module` if it is built in, registered or a plugin.
    fn module_version(&self, module: &str, location: &Location) -> Option<String> {
        if let Some(m) = self.inner.modules.get(module) {
            return Some(m.version.clone().unwrap_or_else(|| VERSION.to_string()));
        }
        if valid_name(module) && location.plugin(module).is_some() {
            return Some("plugin".to_string());
        }
        None
    }

    /// Check that every module in `wanted` is available: built in, registered, a plugin,
    /// or importable by the host's Python (asked once for all of them; through the
    /// session's worker when `session_call` is the id of a session-mode call).
    fn check_modules(
        &self,
        wanted: &[String],
        location: &Location,
        session_call: Option<&str>,
    ) -> Result<(), CallError> {
        let mut missing = Vec::new();
        let mut present = BTreeMap::new();
        let mut ask_python = Vec::new();
        for name in wanted {
            let python_name = name.strip_prefix(crate::python::PREFIX);
            match python_name.map_or_else(|| self.module_version(name, location), |_| None) {
                Some(v) => {
                    present.insert(name.clone(), v);
                }
                None if crate::python::python_name(python_name.unwrap_or(name)) => {
                    ask_python.push(name.clone());
                }
                None => missing.push(name.clone()),
            }
        }
        let note = crate::python::check(
            ask_python,
            location,
            session_call,
            &mut present,
            &mut missing,
        )?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(CallError::new(
            ErrorKind::ModulesMissing,
            format!(
                "modules missing on this host: {}{note}; the call was not run",
                missing.join(", ")
            ),
        )
        .with_data(json!({ "missing": missing, "present": present })))
    }
}

/// Module and function names as the protocol allows them (a `py:` module aside).
fn check_names(module: &str, function: &str) -> Result<(), CallError> {
    if !module.starts_with(crate::python::PREFIX) && !valid_name(module) {
        return Err(CallError::new(
            ErrorKind::ModuleNotFound,
            format!(
                "invalid module name {module:?}: names use [A-Za-z0-9_.-] and do not start with '.'"
            ),
        ));
    }
    if !valid_name(function) {
        return Err(CallError::new(
            ErrorKind::FunctionNotFound,
            format!(
                "invalid function name {function:?}: names use [A-Za-z0-9_.-] and do not start with '.'"
            ),
        ));
    }
    Ok(())
}

/// Run `job` on a thread of its own and wait at most `limit` for it; `true` beside a
/// `Timeout` error when the thread was abandoned still running.
fn run_with_timeout(
    job: impl FnOnce() -> JobOutput + Send + 'static,
    limit: Duration,
    module: &str,
    function: &str,
) -> (JobOutput, bool) {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("sremote-call {module}.{function}"))
        .spawn(move || {
            let _ = tx.send(job());
        });
    if let Err(e) = spawned {
        return (
            (
                CallOutput::error(CallError::raised(format!(
                    "cannot start the call thread: {e}"
                ))),
                Vec::new(),
            ),
            false,
        );
    }
    match rx.recv_timeout(limit) {
        Ok(output) => (output, false),
        Err(mpsc::RecvTimeoutError::Timeout) => (
            (CallOutput::error(
                CallError::new(
                    ErrorKind::Timeout,
                    format!("{module}.{function} did not finish within {} ms (timeout_ms) and was abandoned", limit.as_millis()),
                )
                .with_data(json!({ "timeout_ms": limit.as_millis() as u64 })),
            ), Vec::new()),
            true,
        ),
        Err(mpsc::RecvTimeoutError::Disconnected) => (
            (
                CallOutput::error(CallError::raised("the call thread ended without a result")),
                Vec::new(),
            ),
            false,
        ),
    }
}
