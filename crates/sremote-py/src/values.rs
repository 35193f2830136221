//! Python values ↔ the wire (PROTOCOL.md, "Python bridge"; the rule is in
//! `python/sremote/__init__.py`'s docstring and ARCHITECTURE.md).
//!
//! To the host: `None`, `bool`, `int`, `float`, `str`, `list`/`tuple`, `dict` as JSON;
//! ints beyond 64 bits as `{"$int": "<decimal>"}` (the bridge makes them ints again);
//! `bytes`/`bytearray`/`memoryview` as raw attachments; `datetime`/`date`/`time` as ISO
//! 8601 text; `set`/`frozenset` as lists; `os.PathLike` as its path; `Reference(name)`
//! as `{"$ref": name}`; anything with a callable `.tolist()` (numpy arrays and scalars,
//! `array.array`) as what `.tolist()` returns. Anything else: `TypeError` naming the type.
//!
//! From the host: JSON as Python values; `{"$bytes"}`/`{"$blob"}` as `bytes`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyMemoryView, PySet,
    PyString, PyTuple,
};
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;
use sremote_core::Blob;

/// How deep a value may nest (a cycle would otherwise recurse forever).
const MAX_DEPTH: usize = 200;

/// A value on its way to the host, converted from Python while the GIL was held.
#[derive(Debug, Clone)]
pub enum Arg {
    Json(Value),
    BigInt(String),
    Bytes(Vec<u8>),
    List(Vec<Arg>),
    Map(Vec<(String, Arg)>),
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Arg::Json(v) => v.serialize(s),
            Arg::BigInt(digits) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("$int", digits)?;
                m.end()
            }
            // Inside a call's attachment table this becomes a raw attachment.
            Arg::Bytes(b) => Blob(b.clone()).serialize(s),
            Arg::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Arg::Map(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    let t = v.get_type();
    let name = t
        .qualname()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    match t.module().map(|m| m.to_string()) {
        Ok(m) if m != "builtins" => format!("{m}.{name}"),
        _ => name,
    }
}

fn cannot_send(v: &Bound<'_, PyAny>, where_: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{where_} has type {}, which cannot be sent to the host: send None, bool, int, float, str, \
         bytes, list, tuple, dict (str keys), set, datetime/date/time, os.PathLike, \
         sremote.Reference, or an object with .tolist() (numpy arrays)",
        type_name(v)
    ))
}

/// Convert one Python value (`where_` names it in errors, e.g. "argument 2").
pub fn to_arg(v: &Bound<'_, PyAny>, where_: &str) -> PyResult<Arg> {
    convert(v, where_, 0)
}

fn convert(v: &Bound<'_, PyAny>, where_: &str, depth: usize) -> PyResult<Arg> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "{where_} nests deeper than {MAX_DEPTH} levels (a cycle?)"
        )));
    }
    if v.is_none() {
        return Ok(Arg::Json(Value::Null));
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Arg::Json(Value::Bool(b.is_true())));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Arg::Json(Value::String(s.to_cow()?.into_owned())));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Arg::Json(Value::from(i)));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Arg::Json(Value::from(u)));
        }
        return Ok(Arg::BigInt(v.str()?.to_cow()?.into_owned()));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        // NaN and infinities have no JSON form: null, as the bridge does for return values.
        return Ok(Arg::Json(
            serde_json::Number::from_f64(f.value()).map_or(Value::Null, Value::Number),
        ));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Arg::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Ok(Arg::Bytes(b.to_vec()));
    }
    if v.is_instance_of::<PyMemoryView>() {
        let b = v.call_method0("tobytes")?;
        return Ok(Arg::Bytes(b.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return seq(l.iter(), where_, depth);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return seq(t.iter(), where_, depth);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, x) in d.iter() {
            out.push((key(&k, where_)?, convert(&x, where_, depth + 1)?));
        }
        return Ok(Arg::Map(out));
    }
    if v.is_instance_of::<PySet>() || v.is_instance_of::<PyFrozenSet>() {
        return seq(
            v.try_iter()?.collect::<PyResult<Vec<_>>>()?.into_iter(),
            where_,
            depth,
        );
    }
    special(v, where_, depth)
}

/// The types recognised by duck typing or by class: Reference, datetime, PathLike, `.tolist()`.
fn special(v: &Bound<'_, PyAny>, where_: &str, depth: usize) -> PyResult<Arg> {
    let py = v.py();
    if let Ok(r) = v.cast::<crate::client::Reference>() {
        return Ok(Arg::Json(serde_json::json!({ "$ref": r.borrow().name })));
    }
    let datetime = py.import("datetime")?;
    for cls in ["datetime", "date", "time"] {
        if v.is_instance(&datetime.getattr(cls)?)? {
            let iso = v.call_method0("isoformat")?;
            return Ok(Arg::Json(Value::String(iso.extract()?)));
        }
    }
    if v.is_instance(&py.import("os")?.getattr("PathLike")?)? {
        let p = py.import("os")?.call_method1("fspath", (v,))?;
        return convert(&p, where_, depth + 1);
    }
    if let Ok(tolist) = v.getattr("tolist")
        && tolist.is_callable()
    {
        return convert(&tolist.call0()?, where_, depth + 1);
    }
    Err(cannot_send(v, where_))
}

fn seq<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    where_: &str,
    depth: usize,
) -> PyResult<Arg> {
    items
        .map(|x| convert(&x, where_, depth + 1))
        .collect::<PyResult<Vec<_>>>()
        .map(Arg::List)
}

fn key(k: &Bound<'_, PyAny>, where_: &str) -> PyResult<String> {
    if let Ok(s) = k.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if k.is_none() {
        return Ok("null".into());
    }
    if let Ok(b) = k.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.into());
    }
    if k.is_instance_of::<PyInt>() || k.is_instance_of::<PyFloat>() {
        return Ok(k.str()?.to_cow()?.into_owned());
    }
    Err(PyTypeError::new_err(format!(
        "{where_} has a dict key of type {}; keys must be str (int, float, bool and None \
         become their text)",
        type_name(k)
    )))
}

/// A value from the host: JSON with the bytes of `{"$blob": N}` attachments taken out of
/// the response's attachment table (while it is being decoded).
#[derive(Debug, Clone, Default)]
pub struct Returned {
    pub value: Value,
    /// Bytes referred to by `{"$blob": i}` in `value` (renumbered).
    pub blobs: Vec<Vec<u8>>,
}

impl<'de> Deserialize<'de> for Returned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Returned {
            value: Value::deserialize(d)?,
            blobs: Vec::new(),
        };
        take_blobs(&mut out.value, &mut out.blobs).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

fn is_tag(map: &serde_json::Map<String, Value>, tag: &str) -> bool {
    map.len() == 1 && map.contains_key(tag)
}

fn take_blobs(v: &mut Value, blobs: &mut Vec<Vec<u8>>) -> Result<(), String> {
    match v {
        Value::Object(map) if is_tag(map, "$blob") || is_tag(map, "$bytes") => {
            let blob = Blob::deserialize(&*v).map_err(|e| e.to_string())?;
            blobs.push(blob.0);
            *v = serde_json::json!({ "$blob": blobs.len() - 1 });
            Ok(())
        }
        Value::Object(map) => map.values_mut().try_for_each(|x| take_blobs(x, blobs)),
        Value::Array(items) => items.iter_mut().try_for_each(|x| take_blobs(x, blobs)),
        _ => Ok(()),
    }
}

/// A JSON value (bytes from `blobs`) as a Python object.
pub fn to_py<'py>(py: Python<'py>, v: &Value, blobs: &[Vec<u8>]) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for i in items {
                list.append(to_py(py, i, blobs)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            if is_tag(map, "$blob")
                && let Some(b) = map["$blob"].as_u64().and_then(|i| blobs.get(i as usize))
            {
                return Ok(PyBytes::new(py, b).into_any());
            }
            let dict = PyDict::new(py);
            for (k, x) in map {
                dict.set_item(k, to_py(py, x, blobs)?)?;
            }
            dict.into_any()
        }
    })
}

impl Returned {
    pub fn into_python(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(to_py(py, &self.value, &self.blobs)?.unbind())
    }
}
