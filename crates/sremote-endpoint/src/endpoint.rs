//! [`Endpoint`]: the module registry and the dispatcher that turns a [`Request`] into a
//! [`Response`].

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Once, OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sremote_core::protocol::{
    ErrorBody, ErrorKind, Outcome, PROTOCOL_VERSION, Request, Response, Timing, VERSION,
};

use crate::error::CallError;
use crate::location::Location;
use crate::module::{Args, Module, ModuleBuilder, ModuleKind, valid_name};

/// An endpoint: a set of modules, and the dispatcher that runs call requests on them.
///
/// Cheap to clone (the registry is shared) and `Send + Sync`: [`Endpoint::handle`] may be
/// called from several threads at once.
///
/// ```no_run
/// fn add(a: i64, b: i64) -> i64 { a + b }
/// fn main() {
///     sremote_endpoint::Endpoint::with_builtins()
///         .module("calc", |m| m.function("add", add).params(&["a", "b"]))
///         .run()
/// }
/// ```
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    modules: BTreeMap<String, Module>,
    sremote_dir: Option<PathBuf>,
    /// Discovered once for a long-lived endpoint (session mode): no file reads per call.
    fixed_location: Option<Location>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("modules", &self.inner.modules.keys().collect::<Vec<_>>())
            .field("sremote_dir", &self.inner.sremote_dir)
            .finish()
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::new()
    }
}

/// What the called function is running in; handed to [raw](ModuleBuilder::raw) functions.
#[derive(Debug)]
pub struct CallContext<'a> {
    endpoint: &'a Endpoint,
    module: &'a str,
    function: &'a str,
    id: &'a str,
    location: &'a Location,
}

impl<'a> CallContext<'a> {
    /// The endpoint serving the call (e.g. to list its modules).
    pub fn endpoint(&self) -> &'a Endpoint {
        self.endpoint
    }
    /// The called module's name.
    pub fn module(&self) -> &'a str {
        self.module
    }
    /// The called function's name.
    pub fn function(&self) -> &'a str {
        self.function
    }
    /// The request id.
    pub fn request_id(&self) -> &'a str {
        self.id
    }
    /// The endpoint's sremote dir, tmp dir and plugin dir.
    pub fn location(&self) -> &'a Location {
        self.location
    }
}

/// A function's result plus output it reported itself (plugins do).
pub(crate) struct CallOutput {
    pub result: Result<Value, CallError>,
    pub stdout: String,
    pub stderr: String,
}

impl CallOutput {
    pub fn error(e: CallError) -> Self {
        CallOutput {
            result: Err(e),
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}

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

impl Endpoint {
    /// An endpoint with no modules.
    pub fn new() -> Self {
        Endpoint {
            inner: Arc::new(Inner::default()),
        }
    }

    /// An endpoint with the built-in modules `os`, `fs`, `subprocess` and `sys`.
    pub fn with_builtins() -> Self {
        crate::modules::register(Endpoint::new())
    }

    /// Add functions to module `name` (creating it). Calling it again for the same name,
    /// or for a built-in module, adds to that module; a function of the same name is
    /// replaced.
    ///
    /// # Panics
    /// If `name` is not a valid module name (`[A-Za-z0-9_.-]`, not starting with `.`).
    pub fn module<R>(self, name: &str, build: impl FnOnce(&mut ModuleBuilder) -> R) -> Self {
        self.add_module(name, ModuleKind::Custom, build)
    }

    pub(crate) fn add_module<R>(
        mut self,
        name: &str,
        kind: ModuleKind,
        build: impl FnOnce(&mut ModuleBuilder) -> R,
    ) -> Self {
        assert!(
            valid_name(name),
            "invalid module name {name:?}: use [A-Za-z0-9_.-], not starting with '.'"
        );
        let inner = Arc::make_mut(&mut self.inner);
        let existing = inner.modules.get(name);
        let kind = existing.map_or(kind, |m| m.kind);
        let mut builder = ModuleBuilder::from_module(existing);
        drop(build(&mut builder));
        inner.modules.insert(name.to_string(), builder.finish(kind));
        self
    }

    /// Use `dir` as the sremote dir (plugins in `dir/modules`, tmp in `dir/tmp`) instead
    /// of discovering it on each call (see [`Location::discover`]).
    pub fn sremote_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        Arc::make_mut(&mut self.inner).sremote_dir = Some(dir.into());
        self
    }

    /// Discover the location now and keep it for every later call (session mode).
    pub(crate) fn fix_location(mut self) -> Self {
        let loc = self.location();
        Arc::make_mut(&mut self.inner).fixed_location = Some(loc);
        self
    }

    /// Where this endpoint's files are.
    pub fn location(&self) -> Location {
        if let Some(loc) = &self.inner.fixed_location {
            return loc.clone();
        }
        match &self.inner.sremote_dir {
            Some(dir) => Location::for_dir(dir),
            None => Location::discover(),
        }
    }

    /// Names of the built-in and registered modules.
    pub fn module_names(&self) -> Vec<String> {
        self.inner.modules.keys().cloned().collect()
    }

    /// `module.function(a: int) -> int`, if the function is registered.
    pub fn signature(&self, module: &str, function: &str) -> Option<String> {
        let f = self.inner.modules.get(module)?.functions.get(function)?;
        Some(format!("{module}.{function}{}", f.signature()))
    }

    /// The module listing as JSON: `{"modules": [{"name", "kind", "version", "doc",
    /// "functions": [{"name", "signature", "doc"}]}]}`; plugins are listed with kind
    /// `"plugin"` and no functions (a plugin dispatches by itself). `"python": {"interpreter",
    /// "doc"}` describes the Python bridge (`interpreter` is `null` when the host has none).
    pub fn modules_json(&self) -> Value {
        let mut list: Vec<Value> = self
            .inner
            .modules
            .iter()
            .map(|(name, m)| {
                let functions: Vec<Value> = m
                    .functions
                    .iter()
                    .map(|(fname, f)| {
                        json!({ "name": fname, "signature": format!("{name}.{fname}{}", f.signature()), "doc": f.doc })
                    })
                    .collect();
                json!({
                    "name": name,
                    "kind": m.kind.as_str(),
                    "version": m.version.clone().unwrap_or_else(|| VERSION.to_string()),
                    "doc": m.doc,
                    "functions": functions,
                })
            })
            .collect();
        let location = self.location();
        for plugin in location.plugins() {
            if !self.inner.modules.contains_key(&plugin) {
                let path = location.modules.join(&plugin);
                list.push(
                    json!({ "name": plugin, "kind": "plugin", "path": path, "functions": [] }),
                );
            }
        }
        json!({ "modules": list, "python": crate::python::listing(&location) })
    }

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

    fn dispatch_inner(
        &self,
        req: Request,
        session: Option<SessionCall<'_>>,
    ) -> (Handled, Vec<Vec<u8>>) {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let (module, function) = (req.module.clone(), req.function.clone());
        let fail = |e: CallError| {
            let handled = Handled {
                response: finish(
                    &req.id,
                    Outcome::Error(e.into_body(&module, &function)),
                    String::new(),
                    String::new(),
                    started_unix_ms,
                    0,
                ),
                abandoned: false,
            };
            (handled, Vec::new())
        };
        if !module.starts_with(crate::python::PREFIX) && !valid_name(&module) {
            return fail(CallError::new(
                ErrorKind::ModuleNotFound,
                format!(
                    "invalid module name {module:?}: names use [A-Za-z0-9_.-] and do not start with '.'"
                ),
            ));
        }
        if !valid_name(&function) {
            return fail(CallError::new(
                ErrorKind::FunctionNotFound,
                format!(
                    "invalid function name {function:?}: names use [A-Za-z0-9_.-] and do not start with '.'"
                ),
            ));
        }
        let in_session = session.is_some();
        let (_env_guard, attachments) = match session {
            None => match crate::env::apply_request_env(&req) {
                Ok(()) => (None, None),
                Err(e) => return fail(e),
            },
            Some(SessionCall { env, attachments }) => match env.enter(&req) {
                Ok(guard) => (Some(guard), Some(attachments)),
                Err(e) => return fail(e),
            },
        };
        let location = self.location();
        let session_id = in_session.then_some(req.id.as_str());
        if let Err(e) = self.check_modules(&req.check_modules, &location, session_id) {
            return fail(e);
        }
        let shipped = req.code.iter().any(|m| m.name == module);
        let target = match self.resolve(&module, &function, &location, shipped) {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        let timeout = req.timeout_ms.map(Duration::from_millis);
        let id = req.id.clone();
        let endpoint = self.clone();
        let job = move || {
            let mut request = req;
            if let (Target::Plugin(_) | Target::Python(_), Some(table)) = (&target, &attachments) {
                // Plugins and Python read plain JSON: bytes go inline as base64.
                for v in request.args.iter_mut().chain(request.kwargs.values_mut()) {
                    let _ = sremote_core::protocol::inline_attachments(v, table);
                }
            }
            let args = match &target {
                Target::Registered => Args {
                    args: std::mem::take(&mut request.args),
                    kwargs: std::mem::take(&mut request.kwargs),
                },
                Target::Plugin(_) | Target::Python(_) => Args::default(),
            };
            let ctx = CallContext {
                endpoint: &endpoint,
                module: &request.module,
                function: &request.function,
                id: &request.id,
                location: &location,
            };
            let run = || {
                run_guarded(|| match &target {
                    Target::Registered => {
                        let def = &endpoint.inner.modules[ctx.module].functions[ctx.function];
                        let (result, stdout, stderr) =
                            crate::output::scoped(|| def.invoke(&ctx, args));
                        CallOutput {
                            result,
                            stdout,
                            stderr,
                        }
                    }
                    Target::Plugin(path) => crate::plugin::call(path, &request),
                    Target::Python(py) => py.call(&request, in_session),
                })
            };
            crate::process::with_call_id(&request.id, || match attachments {
                // Session mode: `{"$blob": N}` arguments come from, and returned `Blob`s
                // go to, the frame's raw attachments.
                Some(table) => sremote_core::protocol::with_attachments(table, run),
                None => (run(), Vec::new()),
            })
        };
        let t0 = Instant::now();
        let ((output, out_attachments), abandoned) = match timeout {
            None => (job(), false),
            Some(limit) => run_with_timeout(job, limit, &module, &function),
        };
        let elapsed_us = t0.elapsed().as_micros() as u64;
        let outcome = match output.result {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Error(e.into_body(&module, &function)),
        };
        let handled = Handled {
            response: finish(
                &id,
                outcome,
                output.stdout,
                output.stderr,
                started_unix_ms,
                elapsed_us,
            ),
            abandoned,
        };
        (handled, out_attachments)
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

    /// Parse `args` (without the program name) as the `sremote-endpoint` command line and
    /// run it; returns the process exit code. See the crate docs for the commands.
    pub fn run_with_args(&self, args: Vec<String>) -> i32 {
        crate::cli::run(self, args)
    }

    /// Run the `sremote-endpoint` command line of this process and exit with its code.
    pub fn run(self) -> ! {
        let code = self.run_with_args(std::env::args().skip(1).collect());
        std::process::exit(code)
    }
}

type JobOutput = (CallOutput, Vec<Vec<u8>>);

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

fn finish(
    id: &str,
    outcome: Outcome,
    stdout: String,
    stderr: String,
    started_unix_ms: u64,
    elapsed_us: u64,
) -> Response {
    Response {
        protocol: PROTOCOL_VERSION,
        id: id.to_string(),
        endpoint_version: VERSION.to_string(),
        outcome,
        stdout,
        stderr,
        timing: Timing {
            started_unix_ms,
            elapsed_us,
        },
        host: hostname(),
        pid: std::process::id(),
    }
}

/// An error response with the host metadata filled in.
pub(crate) fn error_response(id: String, body: ErrorBody) -> Response {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    finish(
        &id,
        Outcome::Error(body),
        String::new(),
        String::new(),
        started,
        0,
    )
}

/// This host's name (`gethostname`), cached.
pub(crate) fn hostname() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for buf.len() bytes; the last byte stays 0.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
        if rc != 0 {
            return String::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    })
    .clone()
}

// ---------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------

thread_local! {
    /// This thread is running a module function (panics are reported, not printed).
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    /// Location and backtrace of the last panic on this thread during a call.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CALL.with(Cell::get) {
                let mut trace = match info.location() {
                    Some(l) => format!("panicked at {}:{}:{}", l.file(), l.line(), l.column()),
                    None => "panicked at an unknown location".to_string(),
                };
                let backtrace = std::backtrace::Backtrace::capture();
                if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                    trace.push_str(&format!("\n{backtrace}"));
                }
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(trace));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Run `f`, turning a panic into a `Panicked` error with its location as traceback.
fn run_guarded(f: impl FnOnce() -> CallOutput) -> CallOutput {
    install_panic_hook();
    let was = IN_CALL.with(|c| c.replace(true));
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_CALL.with(|c| c.set(was));
    match result {
        Ok(output) => output,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let mut err = CallError::new(
                ErrorKind::Panicked,
                format!("the function panicked: {message}"),
            );
            if let Some(trace) = LAST_PANIC.with(|p| p.borrow_mut().take()) {
                err = err.with_traceback(trace);
            }
            CallOutput::error(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn endpoint_is_send_sync_and_cheap_to_clone() {
        assert_send_sync::<Endpoint>();
        let e = Endpoint::new().module("m", |m| m.function("f", || 1));
        let copy = e.clone();
        assert!(Arc::ptr_eq(&e.inner, &copy.inner));
    }

    #[test]
    fn panics_are_caught_with_location() {
        let out = run_guarded(|| panic!("boom {}", 7));
        let err = out.result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panicked);
        assert!(err.message.contains("boom 7"), "{}", err.message);
        assert!(err.traceback.unwrap().contains("endpoint.rs"));
    }

    #[test]
    fn hostname_is_known() {
        assert!(!hostname().is_empty());
    }
}
