//! `sremote_core::Error` as Python exceptions: one class per variant under
//! `sremote.SremoteError`, with the fields as attributes (and `.hint`, from
//! `Error::hint`) and the remote traceback in the message (so it shows in the Python
//! traceback text).

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use sremote_core::{ConnectorErrorKind, Error};

pyo3::create_exception!(
    sremote,
    SremoteError,
    PyException,
    "Base class of every sremote error (its message names what was tried, on which host, and what to do next)."
);
pyo3::create_exception!(
    sremote,
    TransportError,
    SremoteError,
    "Reaching or talking to the host failed. `.kind`: connect, auth, host_key, disconnected, timeout, not_found, permission_denied, invalid_input, unsupported, other."
);
pyo3::create_exception!(
    sremote,
    NotSetupError,
    SremoteError,
    "The endpoint on the host is missing, broken or of another version: `client.bootstrap()`."
);
pyo3::create_exception!(
    sremote,
    RemoteError,
    SremoteError,
    "The call failed on the host. `.kind` (Raised, ModuleNotFound, FunctionNotFound, BadArguments, Timeout, Cancelled, …), `.remote_type` (e.g. 'KeyError'), `.message`, `.traceback`, `.stdout`, `.stderr`, `.module`, `.function`, `.host`."
);
pyo3::create_exception!(
    sremote,
    ModulesMissingError,
    SremoteError,
    "Modules the call needs are absent on the host: `.missing` (list), `.present` (dict name -> version)."
);
pyo3::create_exception!(
    sremote,
    ProtocolError,
    SremoteError,
    "The endpoint, or a module behind it, answered with what is not a valid answer."
);
pyo3::create_exception!(
    sremote,
    DecodeError,
    SremoteError,
    "The value came back but could not be decoded."
);
pyo3::create_exception!(
    sremote,
    SetupError,
    SremoteError,
    "A setup line of the host (hosts config `setup`, `Client(setup=...)`) failed before the endpoint or a job started: `.line` (from 1), `.text`, `.status`, `.output`, `.host`."
);
pyo3::create_exception!(
    sremote,
    UsageError,
    SremoteError,
    "A local problem with what was asked (a bad host name, an unreadable file, a result already taken…)."
);

/// Register the exception classes in the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SremoteError", py.get_type::<SremoteError>())?;
    m.add("TransportError", py.get_type::<TransportError>())?;
    m.add("NotSetupError", py.get_type::<NotSetupError>())?;
    m.add("RemoteError", py.get_type::<RemoteError>())?;
    m.add("ModulesMissingError", py.get_type::<ModulesMissingError>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    m.add("SetupError", py.get_type::<SetupError>())?;
    Ok(())
}

/// The Python name of a transport kind: `connect`, `host_key`, …
pub fn kind_name(kind: ConnectorErrorKind) -> String {
    let mut out = String::new();
    for (i, c) in format!("{kind:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `"KeyError: 'x'"` → `"KeyError"` (the class of a raised Python exception).
fn remote_type(message: &str) -> Option<String> {
    let (head, _) = message.split_once(':')?;
    let ok = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    ok.then(|| head.to_string())
}

fn set(err: &PyErr, py: Python<'_>, fields: &[(&str, Bound<'_, PyAny>)]) {
    let value = err.value(py);
    for (k, v) in fields {
        let _ = value.setattr(*k, v);
    }
}

/// Convert a client error into the matching Python exception.
pub fn to_py(e: Error) -> PyErr {
    Python::attach(|py| convert(py, e))
}

fn s<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyAny> {
    pyo3::types::PyString::new(py, text).into_any()
}

fn convert(py: Python<'_>, e: Error) -> PyErr {
    let text = e.to_string();
    // Every exception has `.hint` (what to do next, or None); a transport error's is a
    // string ("" when there is none), as it always was.
    let hint = match &e {
        Error::Transport(t) => Some(t.hint.clone().unwrap_or_default()),
        other => other.hint(),
    };
    let err = by_variant(py, e, text);
    set(
        &err,
        py,
        &[(
            "hint",
            hint.as_deref()
                .map_or_else(|| py.None().into_bound(py), |h| s(py, h)),
        )],
    );
    err
}

fn by_variant(py: Python<'_>, e: Error, text: String) -> PyErr {
    match e {
        Error::Transport(t) => {
            let err = TransportError::new_err(text);
            let kind = kind_name(t.kind);
            set(
                &err,
                py,
                &[
                    ("kind", s(py, &kind)),
                    ("host", s(py, &t.host)),
                    ("action", s(py, &t.action)),
                    ("detail", s(py, &t.detail)),
                ],
            );
            err
        }
        Error::NotSetup(n) => {
            let err = NotSetupError::new_err(text);
            set(
                &err,
                py,
                &[("host", s(py, &n.host)), ("reason", s(py, &n.reason))],
            );
            err
        }
        Error::RemoteExec(r) => remote(py, text, &r),
        Error::ModulesMissing(m) => {
            let err = ModulesMissingError::new_err(text);
            let present = PyDict::new(py);
            for (k, v) in &m.present {
                let _ = present.set_item(k, v);
            }
            let missing = pyo3::types::PyList::new(py, &m.missing)
                .map(Bound::into_any)
                .unwrap_or_else(|_| py.None().into_bound(py));
            set(
                &err,
                py,
                &[
                    ("host", s(py, &m.host)),
                    ("missing", missing),
                    ("present", present.into_any()),
                ],
            );
            err
        }
        Error::Protocol(p) => {
            let err = ProtocolError::new_err(text);
            set(
                &err,
                py,
                &[("host", s(py, &p.host)), ("received", s(py, &p.received))],
            );
            err
        }
        Error::Decode(d) => {
            let err = DecodeError::new_err(text);
            set(&err, py, &[("host", s(py, &d.host))]);
            err
        }
        Error::Usage(_) | Error::Invalid(_) => UsageError::new_err(text),
        Error::Setup(f) => {
            let err = SetupError::new_err(text);
            let Ok(line) = f.line.into_pyobject(py);
            let Ok(status) = f.status.into_pyobject(py);
            set(
                &err,
                py,
                &[
                    ("host", s(py, &f.host)),
                    ("line", line.into_any()),
                    ("text", s(py, &f.text)),
                    ("status", status.into_any()),
                    ("output", s(py, &f.output)),
                ],
            );
            err
        }
        _ => SremoteError::new_err(text),
    }
}

fn remote(py: Python<'_>, text: String, r: &sremote_core::RemoteExecError) -> PyErr {
    let mut message = text;
    if let Some(tb) = r.traceback.as_deref().filter(|t| !t.trim().is_empty()) {
        message.push_str("\n\nRemote traceback (on ");
        message.push_str(&r.host);
        message.push_str("):\n");
        message.push_str(tb.trim_end());
    }
    let err = RemoteError::new_err(message);
    let kind = r.kind.as_str();
    let rtype = if kind == "Raised" {
        remote_type(&r.message)
    } else {
        None
    };
    let none = || py.None().into_bound(py);
    set(
        &err,
        py,
        &[
            ("kind", s(py, kind)),
            ("host", s(py, &r.host)),
            ("module", s(py, &r.module)),
            ("function", s(py, &r.function)),
            ("message", s(py, &r.message)),
            (
                "remote_type",
                rtype.as_deref().map_or_else(none, |t| s(py, t)),
            ),
            (
                "traceback",
                r.traceback.as_deref().map_or_else(none, |t| s(py, t)),
            ),
            ("stdout", s(py, &r.stdout)),
            ("stderr", s(py, &r.stderr)),
        ],
    );
    err
}
