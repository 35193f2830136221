//! The session's value store and the built-in `session` module.
//!
//! The store keeps named JSON values for the life of a session (`session.push`/`pull`,
//! `{"$ref": name}` arguments). Every write gets a new version, so the namespace worker
//! (`python/namespace.rs`) is sent only what it has not seen. A name the namespace bound
//! to a value without a JSON form is kept as a marker saying what it is: pulling it, or
//! passing it by reference, explains that it lives only in the host's Python namespace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sremote_core::protocol::{Request, Stored};

use crate::context::CallContext;
use crate::endpoint::Endpoint;
use crate::error::CallError;
use crate::module::Args;
use crate::python::namespace::{Changes, Code};

/// What the store holds under a name.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    Json(Value),
    /// A value of the Python namespace without a JSON form; what it is ("a _thread.lock").
    PythonOnly(String),
}

#[derive(Debug)]
struct Entry {
    held: Held,
    version: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// The last version given out.
    version: u64,
}

impl Inner {
    fn set(&mut self, name: String, held: Held) -> u64 {
        self.version += 1;
        let version = self.version;
        self.entries.insert(name, Entry { held, version });
        version
    }
}

/// Values a namespace lacks, computed by [`Store::changes_for`].
pub(crate) struct Pending {
    pub set: serde_json::Map<String, Value>,
    pub delete: Vec<String>,
    /// The versions of the values in `set`.
    pub versions: Vec<(String, u64)>,
}

/// Named values of one session.
#[derive(Default)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
}

fn python_only_error(name: &str, what: &str, action: &str) -> CallError {
    CallError::raised(format!(
        "session value {name:?} is {what} that lives only in the host's Python namespace \
         (bound by session.execute or session.run) and has no JSON form, so it cannot be \
         {action}; bind a JSON value made from it in the namespace and use that instead, \
         e.g. execute(\"{name}_text = repr({name})\") and pull {name}_text"
    ))
    .with_data(json!({ "name": name, "python_type": what, "python_only": true }))
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, name: String, value: Value) {
        self.lock().set(name, Held::Json(value));
    }

    pub(crate) fn pull(&self, name: &str) -> Result<Value, CallError> {
        match self.lock().entries.get(name).map(|e| &e.held) {
            Some(Held::Json(v)) => Ok(v.clone()),
            Some(Held::PythonOnly(what)) => Err(python_only_error(name, what, "pulled")),
            None => Err(CallError::raised(format!(
                "no stored value named {name:?} in this session: push it first, or bind it \
                 with session.execute (session.names() lists the names there are)"
            ))),
        }
    }

    pub(crate) fn delete(&self, name: &str) -> bool {
        self.lock().entries.remove(name).is_some()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().entries.keys().cloned().collect();
        v.sort();
        v
    }

    /// Replace every `{"$ref": name}` argument of `req` by the stored value of that name.
    pub(crate) fn resolve_refs(&self, req: &mut Request) -> Result<(), CallError> {
        fn walk(v: &mut Value, entries: &HashMap<String, Entry>) -> Result<(), CallError> {
            match v {
                Value::Object(map) if map.len() == 1 && map.contains_key("$ref") => {
                    let name = map["$ref"].as_str().unwrap_or_default().to_string();
                    *v = match entries.get(&name).map(|e| &e.held) {
                        Some(Held::Json(value)) => value.clone(),
                        Some(Held::PythonOnly(what)) => {
                            let mut e = python_only_error(&name, what, "passed as an argument");
                            e.kind = sremote_core::protocol::ErrorKind::BadArguments;
                            return Err(e);
                        }
                        None => {
                            return Err(CallError::bad_arguments(format!(
                                "no stored value named {name:?} in this session (push it first)"
                            )));
                        }
                    };
                    Ok(())
                }
                Value::Object(map) => map.values_mut().try_for_each(|v| walk(v, entries)),
                Value::Array(items) => items.iter_mut().try_for_each(|v| walk(v, entries)),
                _ => Ok(()),
            }
        }
        // Walked even when nothing was pushed yet: a reference to a name never pushed is
        // an error naming it, never a plain dict passed on.
        let inner = self.lock();
        req.args
            .iter_mut()
            .chain(req.kwargs.values_mut())
            .try_for_each(|v| walk(v, &inner.entries))
    }

    /// What a namespace holding the values `synced` (name → version) lacks: the JSON
    /// values it does not have in their current version, and the names gone from here.
    pub(crate) fn changes_for(&self, synced: &HashMap<String, u64>) -> Pending {
        let inner = self.lock();
        let mut pending = Pending {
            set: serde_json::Map::new(),
            delete: Vec::new(),
            versions: Vec::new(),
        };
        for (name, entry) in &inner.entries {
            if let Held::Json(v) = &entry.held
                && synced.get(name) != Some(&entry.version)
            {
                pending.set.insert(name.clone(), v.clone());
                pending.versions.push((name.clone(), entry.version));
            }
        }
        pending.delete = synced
            .keys()
            .filter(|name| !inner.entries.contains_key(*name))
            .cloned()
            .collect();
        pending
    }

    /// Write the namespace's changes back; returns the new versions of the names set.
    pub(crate) fn write_back(&self, changes: Changes) -> Vec<(String, u64)> {
        let mut inner = self.lock();
        for name in &changes.deleted {
            inner.entries.remove(name);
        }
        let json = changes.set.into_iter().map(|(n, v)| (n, Held::Json(v)));
        let python = changes
            .python_only
            .into_iter()
            .map(|(n, what)| (n, Held::PythonOnly(what)));
        json.chain(python)
            .map(|(name, held)| {
                let version = inner.set(name.clone(), held);
                (name, version)
            })
            .collect()
    }

    /// The namespace worker is gone: drop the markers of its Python-only values; returns
    /// their names.
    pub(crate) fn forget_python(&self) -> Vec<String> {
        let mut inner = self.lock();
        let mut gone: Vec<String> = inner
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.held, Held::PythonOnly(_)))
            .map(|(n, _)| n.clone())
            .collect();
        for name in &gone {
            inner.entries.remove(name);
        }
        gone.sort();
        gone
    }
}

/// The session's store and the deadlines of its namespace calls (their `timeout_ms` is
/// taken from the request by the session, so the namespace worker enforces it itself).
#[derive(Default)]
pub(crate) struct Session {
    pub store: Store,
    deadlines: Mutex<HashMap<String, (Instant, u64)>>,
}

/// The `session` functions that run code in the namespace worker.
pub(crate) const NAMESPACE_FUNCTIONS: [&str; 2] = ["execute", "run"];

impl Session {
    /// Take the timeout of a `session.execute`/`session.run` request (before dispatch).
    pub(crate) fn take_timeout(&self, req: &mut Request) {
        if req.module == "session"
            && NAMESPACE_FUNCTIONS.contains(&req.function.as_str())
            && let Some(ms) = req.timeout_ms.take()
        {
            let deadline = Instant::now() + Duration::from_millis(ms);
            self.lock_deadlines().insert(req.id.clone(), (deadline, ms));
        }
    }

    /// Call `id` is over.
    pub(crate) fn forget(&self, id: &str) {
        self.lock_deadlines().remove(id);
    }

    fn lock_deadlines(&self) -> MutexGuard<'_, HashMap<String, (Instant, u64)>> {
        self.deadlines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn execute(&self, ctx: &CallContext<'_>, code: &Code<'_>) -> Result<Value, CallError> {
        let python = crate::python::find(ctx.location()).map_err(|why| {
            CallError::raised(format!(
                "session.{} runs Python code in the session's namespace, but {why}",
                ctx.function()
            ))
        })?;
        let id = ctx.request_id();
        let limit = self.lock_deadlines().get(id).copied();
        let out = crate::python::namespace::execute(
            &python,
            &self.store,
            code,
            id,
            limit.map(|l| l.0),
            limit.map(|l| l.1),
        );
        crate::print!("{}", out.stdout);
        crate::eprint!("{}", out.stderr);
        out.result
    }
}

/// A string argument by position or name.
fn string_arg(
    args: &Args,
    i: usize,
    name: &str,
    signature: &str,
) -> Result<Option<String>, CallError> {
    let value = args.kwargs.get(name).or(args.args.get(i));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CallError::bad_arguments(format!(
            "argument `{name}` must be a str, not {other}; expected {signature}"
        ))),
    }
}

/// Refuse arguments beyond `names`.
fn only_args(args: &Args, names: &[&str], signature: &str) -> Result<(), CallError> {
    let unknown = args.kwargs.keys().find(|k| !names.contains(&k.as_str()));
    if args.args.len() > names.len() || unknown.is_some() {
        return Err(CallError::bad_arguments(format!(
            "too many or unknown arguments; expected {signature}"
        )));
    }
    Ok(())
}

const EXECUTE: &str = "session.execute(code: str) -> dict";
const RUN: &str = "session.run(source: str, filename: str = \"<sremote-run>\") -> dict";

fn execute_fn(session: &Session, ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
    only_args(&args, &["code"], EXECUTE)?;
    let source = string_arg(&args, 0, "code", EXECUTE)?.ok_or_else(|| {
        CallError::bad_arguments(format!(
            "missing required argument `code`; expected {EXECUTE}"
        ))
    })?;
    let code = Code {
        source: &source,
        filename: "<sremote-execute>",
        run: false,
    };
    session.execute(ctx, &code)
}

fn run_fn(session: &Session, ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
    only_args(&args, &["source", "filename"], RUN)?;
    let source = string_arg(&args, 0, "source", RUN)?.ok_or_else(|| {
        CallError::bad_arguments(format!(
            "missing required argument `source` (the script's text, not its path: the \
             client reads the file); expected {RUN}"
        ))
    })?;
    let filename = string_arg(&args, 1, "filename", RUN)?.unwrap_or_else(|| "<sremote-run>".into());
    session.execute(
        ctx,
        &Code {
            source: &source,
            filename: &filename,
            run: true,
        },
    )
}

fn python_workers(n: Option<i64>) -> Result<usize, CallError> {
    let pool = &crate::python::pool::STATELESS;
    let Some(n) = n else {
        return Ok(pool.size());
    };
    let max = crate::python::pool::MAX_WORKERS;
    if n < 1 || n as u64 > max as u64 {
        return Err(CallError::bad_arguments(format!(
            "session.python_workers(n): n must be between 1 and {max}, not {n}; this host \
             has {} CPUs (the default size); call it without n to see the size now",
            crate::python::pool::default_size()
        )));
    }
    Ok(pool.resize(n as usize))
}

/// The `session` module: named values that live as long as the session, the size of the
/// Python worker pool, and code run in the session's Python namespace.
pub(crate) fn with_session_module(endpoint: Endpoint, session: Arc<Session>) -> Endpoint {
    let (push, pull, delete, names) = (
        session.clone(),
        session.clone(),
        session.clone(),
        session.clone(),
    );
    let (execute, run) = (session.clone(), session);
    endpoint.module("session", move |m| {
        m.doc("values kept in the endpoint between calls of one session, and its Python namespace");
        m.function("push", move |name: String, value: Stored| {
            push.store.push(name, value.0);
        })
        .params(&["name", "value"])
        .doc("store `value` under `name`; pass {\"$ref\": name} as an argument to use it");
        m.function("pull", move |name: String| pull.store.pull(&name))
            .params(&["name"]);
        m.function("delete", move |name: String| delete.store.delete(&name))
            .params(&["name"]);
        m.function("names", move || names.store.names());
        m.function("python_workers", python_workers)
            .params(&["n"])
            .doc("set the number of Python workers that serve this session's calls (default: the CPU count); returns it");
        m.raw("execute", &EXECUTE["session.execute".len()..], move |ctx, args| {
            execute_fn(&execute, ctx, args)
        })
        .doc("run Python code in the session's namespace worker; names it binds with a JSON form are stored");
        m.raw("run", &RUN["session.run".len()..], move |ctx, args| run_fn(&run, ctx, args))
            .doc("run a script's source in the session's namespace worker, as file `filename`");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(set: Value, python_only: &[(&str, &str)], deleted: &[&str]) -> Changes {
        Changes {
            set: set.as_object().cloned().unwrap_or_default(),
            python_only: python_only
                .iter()
                .map(|(n, w)| (n.to_string(), w.to_string()))
                .collect(),
            deleted: deleted.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_namespace_gets_only_what_it_has_not_seen() {
        let store = Store::default();
        store.push("a".into(), json!(1));
        store.push("b".into(), json!([2]));
        let mut synced = HashMap::new();
        let first = store.changes_for(&synced);
        assert_eq!(first.set.len(), 2);
        synced.extend(first.versions);
        assert!(store.changes_for(&synced).set.is_empty());
        store.push("a".into(), json!(10));
        store.delete("b");
        let next = store.changes_for(&synced);
        assert_eq!(next.set, *json!({"a": 10}).as_object().unwrap());
        assert_eq!(next.delete, vec!["b".to_string()]);
        // Written back by the namespace: the worker holds those versions already.
        synced.extend(next.versions);
        synced.remove("b");
        let versions =
            store.write_back(changes(json!({"c": 3}), &[("l", "a _thread.lock")], &["a"]));
        synced.extend(versions);
        synced.remove("a");
        let after = store.changes_for(&synced);
        assert!(after.set.is_empty() && after.delete.is_empty());
        assert_eq!(store.names(), vec!["c".to_string(), "l".to_string()]);
    }

    #[test]
    fn python_only_values_explain_themselves_and_go_with_their_worker() {
        let store = Store::default();
        store.write_back(changes(json!({}), &[("l", "a _thread.lock")], &[]));
        let err = store.pull("l").unwrap_err();
        assert!(err.message.contains("a _thread.lock"), "{}", err.message);
        assert!(err.message.contains("Python namespace"), "{}", err.message);
        assert_eq!(err.data["python_only"], true);
        let mut req = Request::new("1", "m", "f");
        req.args = vec![json!({"$ref": "l"})];
        let err = store.resolve_refs(&mut req).unwrap_err();
        assert_eq!(err.kind, sremote_core::protocol::ErrorKind::BadArguments);
        assert_eq!(store.forget_python(), vec!["l".to_string()]);
        assert!(
            store
                .pull("l")
                .unwrap_err()
                .message
                .contains("no stored value")
        );
    }

    #[test]
    fn python_workers_refuses_bad_sizes() {
        for bad in [0, -1, MAX_TEST_SIZE] {
            let err = python_workers(Some(bad)).unwrap_err();
            assert!(err.message.contains("between 1 and"), "{}", err.message);
        }
    }

    const MAX_TEST_SIZE: i64 = crate::python::pool::MAX_WORKERS as i64 + 1;
}
