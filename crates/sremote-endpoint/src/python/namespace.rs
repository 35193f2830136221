//! The session's namespace worker: `session.execute(code)` and `session.run(source,
//! filename)` run Python code in one persistent namespace (a dict used as globals, the
//! `__main__` of that interpreter, like an IPython engine's user namespace).
//!
//! The namespace worker is a pool of one ([`NAMESPACE`]), apart from the pool that serves
//! calls: a call never waits for it and an `execute` never waits for calls. The session's
//! value store (`session.push`/`pull`, `{"$ref": name}`) and the namespace are kept in
//! sync around each `execute`:
//!
//! - before: the worker gets the stored values it does not have yet (each value has a
//!   version; the worker remembers the version it holds) and loses the names deleted
//!   from the store since;
//! - after: names the code bound, rebound or changed in place are written back — their
//!   JSON form, or, for a value without one, a marker saying what it is (a pull then
//!   explains that it lives only in the host's Python namespace); names the code deleted
//!   are removed from the store.
//!
//! A timeout or a cancel kills the namespace worker: the values that live only in Python
//! are lost (their markers leave the store), the JSON values stay in the store and reach
//! the next namespace worker.

use std::path::Path;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use super::pool::NAMESPACE;
use super::worker::{Failure, Worker};
use super::{Reply, ReplyError};
use crate::context::CallOutput;
use crate::serve::store::Store;

/// Code for the namespace: `source` compiled as file `filename`; `run` sets `__file__`
/// while it runs (a script run with `session.run`).
pub(crate) struct Code<'a> {
    pub source: &'a str,
    pub filename: &'a str,
    pub run: bool,
}

/// What the bridge answers to `execute`: the namespace changes and the exception the
/// code raised, if any.
#[derive(Deserialize, Default)]
struct Executed {
    #[serde(default)]
    sync: Changes,
    #[serde(default)]
    raised: Option<ReplyError>,
}

/// Names the code bound with a JSON form (`set`), bound without one (`python_only`:
/// name → what it is), and deleted.
#[derive(Deserialize, Default)]
pub(crate) struct Changes {
    #[serde(default)]
    pub set: serde_json::Map<String, Value>,
    #[serde(default)]
    pub python_only: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub deleted: Vec<String>,
}

/// Run `code` in the session's namespace worker as call `id`.
pub(crate) fn execute(
    python: &Path,
    store: &Store,
    code: &Code<'_>,
    id: &str,
    deadline: Option<Instant>,
    timeout_ms: Option<u64>,
) -> CallOutput {
    let what = if code.run {
        format!("session.run of {}", code.filename)
    } else {
        "session.execute".to_string()
    };
    let ran = NAMESPACE.run(python, id, deadline, |w| {
        exchange(w, python, store, code, deadline)
    });
    if ran.killed_after {
        store.forget_python();
    }
    let mut out = match ran.result {
        Ok(out) => out,
        Err(lost) => {
            let forgotten = store.forget_python();
            CallOutput::error(lost.into_error(&what, timeout_ms, python, &lost_values(&forgotten)))
        }
    };
    out.stderr.insert_str(0, &ran.notes);
    out
}

fn lost_values(forgotten: &[String]) -> String {
    let which = if forgotten.is_empty() {
        "none were bound".to_string()
    } else {
        forgotten.join(", ")
    };
    format!(
        "the session's namespace worker was killed, so the values that lived only in its \
         Python namespace (no JSON form: {which}) are lost; the JSON values stay in the \
         session's store and reach a new namespace worker with the next execute"
    )
}

/// Send the code with the store's changes and the environment's, read the reply, write
/// the namespace's changes back to the store.
fn exchange(
    w: &mut Worker,
    python: &Path,
    store: &Store,
    code: &Code<'_>,
    deadline: Option<Instant>,
) -> Result<CallOutput, Failure> {
    if w.synced.is_empty() {
        // A new worker (the previous one was replaced: another interpreter): markers of
        // Python-only values are those of a namespace that is gone.
        store.forget_python();
    }
    let pending = store.changes_for(&w.synced);
    let (diff, env) = w.env_changes();
    let msg = json!({
        "op": "execute",
        "code": code.source,
        "filename": code.filename,
        "run": code.run,
        "sync": { "set": pending.set, "delete": pending.delete },
        "env": diff.map(|d| json!({ "set": d.set, "unset": d.unset })),
    });
    let mut line = msg.to_string().into_bytes();
    line.push(b'\n');
    let answer = w.exchange(&line, deadline)?;
    w.commit_env(env);
    let reply = match Reply::parse(&answer, python) {
        Ok(r) => r,
        Err(e) => return Ok(CallOutput::error(e)),
    };
    if reply.error.is_some() {
        // The bridge itself failed (a bad message): what was sent may be half applied, so
        // it counts as not sent (sending it again is harmless).
        return Ok(reply.into_output());
    }
    w.synced.extend(pending.versions);
    for name in &pending.delete {
        w.synced.remove(name);
    }
    let executed: Executed = serde_json::from_value(reply.ok).unwrap_or_default();
    let summary = json!({
        "changed": executed.sync.set.keys().collect::<Vec<_>>(),
        "python_only": executed.sync.python_only.keys().collect::<Vec<_>>(),
        "deleted": executed.sync.deleted,
    });
    for name in &executed.sync.deleted {
        w.synced.remove(name);
    }
    w.synced.extend(store.write_back(executed.sync));
    let out = Reply {
        ok: summary,
        error: executed.raised,
        stdout: reply.stdout,
        stderr: reply.stderr,
    };
    Ok(out.into_output())
}
