//! Plugin executables: `<sremote>/modules/<module>`, any language.
//!
//! The endpoint runs the plugin (no shell, no arguments) with the whole request JSON on
//! its stdin. The plugin writes ONE JSON object to its stdout:
//! `{"ok": <value>}` or `{"error": {"kind": "...", "message": "...", "traceback": "..."}}`,
//! optionally with `"stdout"` and `"stderr"` strings (output of the function it ran).
//! What the plugin writes to its own stderr is added to the response's `stderr`.
//!
//! An `error.kind` that is one of the protocol's kinds is kept; any other kind (e.g. a
//! Python exception name) becomes `Raised` with the kind in front of the message. Output
//! that is not such an object is reported as kind `Protocol` with a message starting
//! `plugin <path> answered with invalid JSON` that quotes what it printed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sremote_core::protocol::{ErrorKind, Request};

use crate::context::CallOutput;
use crate::error::CallError;

const QUOTE_LIMIT: usize = 2000;

fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= QUOTE_LIMIT {
        return text.into_owned();
    }
    let mut end = QUOTE_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], bytes.len())
}

/// Run the plugin at `path` for `req`.
pub(crate) fn call(path: &Path, req: &Request) -> CallOutput {
    let input = match serde_json::to_vec(req) {
        Ok(bytes) => bytes,
        Err(e) => {
            return CallOutput::error(CallError::raised(format!("cannot encode the request: {e}")));
        }
    };
    let timeout = req.timeout_ms.map(Duration::from_millis);
    let finished = match crate::process::run(Command::new(path), Some(input), timeout) {
        Ok(f) => f,
        Err(e) => {
            return CallOutput::error(CallError::raised(format!(
                "plugin {}: cannot run it: {e}",
                path.display()
            )));
        }
    };
    let mut out = CallOutput {
        result: Ok(Value::Null),
        stdout: String::new(),
        stderr: quote_all(&finished.stderr),
    };
    if finished.timed_out {
        out.result = Err(CallError::new(
            ErrorKind::Timeout,
            format!(
                "plugin {} did not answer within {} ms and was killed",
                path.display(),
                req.timeout_ms.unwrap_or(0)
            ),
        ));
        return out;
    }
    let invalid = |why: String| {
        CallError::new(
            ErrorKind::Protocol,
            format!(
            "plugin {} answered with invalid JSON ({why}); it must print one object \
             {{\"ok\": value}} or {{\"error\": {{\"kind\", \"message\"}}}}; exit status {}; it printed: {}",
            path.display(),
            finished.returncode(),
            quote(&finished.stdout)
            ),
        )
        .with_data(serde_json::json!({
            "plugin": path.display().to_string(),
            "status": finished.returncode(),
            "output": quote(&finished.stdout),
        }))
    };
    match decode_answer(&finished.stdout) {
        Ok(answer) => {
            if let Some(s) = answer.stdout {
                out.stdout = s;
            }
            if let Some(s) = answer.stderr {
                out.stderr = format!("{s}{}", out.stderr);
            }
            out.result = answer.result;
        }
        Err(why) => out.result = Err(invalid(why)),
    }
    out
}

/// What a plugin printed, decoded.
#[derive(Debug)]
pub(crate) struct PluginAnswer {
    pub result: Result<Value, CallError>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

/// Decode a plugin's stdout: one object with exactly one of `ok` and `error` (an object),
/// and optional `stdout`/`stderr` strings. `Err` says why it is not such an object.
pub(crate) fn decode_answer(stdout: &[u8]) -> Result<PluginAnswer, String> {
    let answer = match serde_json::from_slice(stdout) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("not an object".into()),
        Err(e) => return Err(e.to_string()),
    };
    let text = |key: &str| answer.get(key).and_then(Value::as_str).map(str::to_string);
    let result = match (answer.get("ok"), answer.get("error")) {
        (Some(v), None) => Ok(v.clone()),
        (None, Some(Value::Object(e))) => Err(plugin_error(e)),
        _ => return Err("expected exactly one of `ok` and `error` (an object)".into()),
    };
    Ok(PluginAnswer {
        result,
        stdout: text("stdout"),
        stderr: text("stderr"),
    })
}

fn quote_all(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn plugin_error(e: &serde_json::Map<String, Value>) -> CallError {
    let message = match e.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(the plugin gave no message)".to_string(),
    };
    let kind_text = e.get("kind").and_then(Value::as_str);
    let known = kind_text
        .and_then(|k| serde_json::from_value::<ErrorKind>(Value::String(k.to_string())).ok())
        .filter(|k| *k != ErrorKind::Unknown);
    let mut err = match (known, kind_text) {
        (Some(kind), _) => CallError::new(kind, message),
        (None, Some(other)) => CallError::raised(format!("{other}: {message}"))
            .with_data(serde_json::json!({ "plugin_kind": other })),
        (None, None) => CallError::raised(message),
    };
    if let Some(tb) = e.get("traceback").and_then(Value::as_str) {
        err = err.with_traceback(tb);
    }
    if let Some(data) = e.get("data").filter(|d| !d.is_null()) {
        err = err.with_data(data.clone());
    }
    err
}
