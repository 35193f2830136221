//! Wire protocol v1: the call request a client sends and the response an endpoint returns.
//!
//! Both are JSON objects (see `PROTOCOL.md` for the normative description and examples).
//! This module is shared by the client and the endpoint and depends only on serde, so the
//! endpoint can link it without pulling in any client code.
//!
//! Binary data travels as [`Blob`]: inline as `{"$bytes": "<base64>"}` in plain JSON, or as
//! `{"$blob": N}` referring to the N-th raw attachment when a framed transport carries
//! attachments beside the JSON body (so large payloads are never base64-inflated on the wire).

use std::cell::RefCell;
use std::collections::BTreeMap;

pub mod job;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The protocol version spoken by this crate. A request or response that carries another
/// version is refused with a clear [`ErrorKind::ProtocolVersion`] error, never misread.
pub const PROTOCOL_VERSION: u32 = 1;

/// Version of the sremote crates (client and endpoint are released together).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A name that becomes one file name under the sremote dir on the host (a plugin module,
/// a git clone, a project venv): `[A-Za-z0-9_.-]`, 1 to 255 bytes, not starting with `.`
/// or `-` — so it can never be `..`, a path or an option.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A call request: run `module.function(*args, **kwargs)` on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Protocol version; must equal [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Caller-chosen id, echoed in the response (matches responses to requests).
    pub id: String,
    /// The module: built-in, plugin, Python (dotted), or `py:NAME` for Python only.
    pub module: String,
    /// The function in the module (dotted for attributes of a Python module).
    pub function: String,
    /// Positional arguments.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments, matched to parameter names.
    #[serde(default)]
    pub kwargs: BTreeMap<String, Value>,
    /// Environment variables set before the call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Environment variables set only when the host does not define them already.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_if_unset: BTreeMap<String, String>,
    /// Directories prepended to `PATH` (and `PYTHONPATH`) for the call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// Modules that must be available; if any is missing the call is not run and the
    /// response carries [`ErrorKind::ModulesMissing`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_modules: Vec<String>,
    /// Wall-clock limit for the call in milliseconds, enforced by the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Python modules shipped with the call (functions the host does not have): each is
    /// loaded from the host's code cache before `module` is imported, in this order
    /// (dependencies first). See PROTOCOL.md, "Shipped code".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<ShippedModule>,
}

/// One Python module travelling by source with a call: a local `.py` file the host does
/// not have, or the synthetic module holding a function defined in `__main__` or a
/// notebook. The host keeps it in its code cache under its SHA-256, so a client sends
/// `source` once per content and afterwards only the hash; a host that lacks it answers
/// [`ErrorKind::CodeMissing`] and the client sends it again with the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippedModule {
    /// The Python module name it is imported as (dotted identifiers).
    pub name: String,
    /// Lower-case hex SHA-256 of `source` (UTF-8); the host checks it.
    pub sha256: String,
    /// The module's source; `None` when the host is expected to have it cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[cfg(feature = "client")]
impl ShippedModule {
    /// A module carrying its `source`, with the hash computed here.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> ShippedModule {
        use sha2::Digest;
        let source = source.into();
        let sha256 = hex(&sha2::Sha256::digest(source.as_bytes()));
        ShippedModule {
            name: name.into(),
            sha256,
            source: Some(source),
        }
    }
}

#[cfg(feature = "client")]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Request {
    /// A request with no arguments; fill the public fields to add more.
    pub fn new(
        id: impl Into<String>,
        module: impl Into<String>,
        function: impl Into<String>,
    ) -> Self {
        Request {
            protocol: PROTOCOL_VERSION,
            id: id.into(),
            module: module.into(),
            function: function.into(),
            args: Vec::new(),
            kwargs: BTreeMap::new(),
            env: BTreeMap::new(),
            env_if_unset: BTreeMap::new(),
            path: Vec::new(),
            check_modules: Vec::new(),
            timeout_ms: None,
            code: Vec::new(),
        }
    }

    /// Parse a request. Never panics: any defect (not JSON, wrong shape, other protocol
    /// version) is returned as an [`ErrorBody`] ready to be sent back to the caller, with
    /// the request id when it could be read.
    #[expect(
        clippy::result_large_err,
        reason = "the error is the cold path and is sent back as is"
    )]
    pub fn parse(bytes: &[u8]) -> Result<Request, (Option<String>, ErrorBody)> {
        // Fast path: one pass into the struct, the UTF-8 checked once for the whole text
        // (read from bytes, serde_json checks every string on its own). Anything wrong is
        // diagnosed below.
        if let Ok(text) = std::str::from_utf8(bytes)
            && let Ok(req) = serde_json::from_str::<Request>(text)
            && req.protocol == PROTOCOL_VERSION
        {
            return Ok(req);
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            (
                None,
                ErrorBody::new(
                    ErrorKind::BadRequest,
                    format!("request is not valid JSON: {e}"),
                ),
            )
        })?;
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        match value.get("protocol").and_then(Value::as_u64) {
            Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
            Some(v) => {
                return Err((
                    id,
                    ErrorBody::new(
                        ErrorKind::ProtocolVersion,
                        format!(
                            "request speaks protocol {v}, this endpoint (sremote {VERSION}) speaks \
                             protocol {PROTOCOL_VERSION}; install the matching endpoint with \
                             `sremote bootstrap HOST`"
                        ),
                    ),
                ));
            }
            None => {
                return Err((
                    id,
                    ErrorBody::new(
                        ErrorKind::BadRequest,
                        "request has no numeric `protocol` field",
                    ),
                ));
            }
        }
        serde_json::from_value(value).map_err(|e| {
            (
                id,
                ErrorBody::new(ErrorKind::BadRequest, format!("malformed request: {e}")),
            )
        })
    }
}

/// What went wrong on the host, as a kind a client can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request could not be read (not JSON, missing fields, wrong types).
    BadRequest,
    /// The request speaks another protocol version than the endpoint.
    ProtocolVersion,
    /// No module of that name (built-in, plugin, or Python).
    ModuleNotFound,
    /// The module exists but has no such function.
    FunctionNotFound,
    /// Wrong number or types of arguments; the message names the expected signature.
    BadArguments,
    /// The function ran and failed (returned an error or raised an exception).
    Raised,
    /// The function panicked; the endpoint caught it and kept running.
    Panicked,
    /// Modules named in `check_modules` are not available.
    ModulesMissing,
    /// The call ran past its `timeout_ms` and was stopped.
    Timeout,
    /// The call was cancelled by the client.
    Cancelled,
    /// A module behind the endpoint (a plugin executable, the Python bridge) answered the
    /// endpoint with output that is not a valid answer. The message names the module;
    /// `data.plugin` (or `data.module`) and `data.output` quote it. Clients report it as
    /// their protocol error (`Error::Protocol` in Rust).
    Protocol,
    /// The call names shipped code by hash only ([`ShippedModule`] without `source`) and
    /// the host's code cache does not have it; the client sends it again with the source.
    CodeMissing,
    /// A kind this client version does not know (sent by a newer endpoint).
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// The kind's name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "BadRequest",
            ErrorKind::ProtocolVersion => "ProtocolVersion",
            ErrorKind::ModuleNotFound => "ModuleNotFound",
            ErrorKind::FunctionNotFound => "FunctionNotFound",
            ErrorKind::BadArguments => "BadArguments",
            ErrorKind::Raised => "Raised",
            ErrorKind::Panicked => "Panicked",
            ErrorKind::ModulesMissing => "ModulesMissing",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Protocol => "Protocol",
            ErrorKind::CodeMissing => "CodeMissing",
            ErrorKind::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` member of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, as a kind to match on.
    pub kind: ErrorKind,
    /// The module the call named, when the error is about a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The function the call named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// What went wrong, in words (for `Raised`: `Type: text` of the exception).
    pub message: String,
    /// Remote traceback (Python) or panic location, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    /// Extra machine-readable detail (e.g. the missing modules for `ModulesMissing`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl ErrorBody {
    /// An error of `kind` saying `message`, without module, traceback or data.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorBody {
            kind,
            module: None,
            function: None,
            message: message.into(),
            traceback: None,
            data: Value::Null,
        }
    }
}

/// Either the function's return value or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The function's return value (`"ok"`).
    Ok(Value),
    /// Why there is none (`"error"`).
    Error(ErrorBody),
}

/// Where and when the call ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Start of the call, milliseconds since the Unix epoch (host clock).
    pub started_unix_ms: u64,
    /// Time spent in the function itself, microseconds.
    pub elapsed_us: u64,
}

/// A call response.
///
/// On the wire `outcome` is one member, `"ok"` or `"error"`, among the others. It is
/// written and read by hand, not with `#[serde(flatten)]`, which buffers every field of
/// the object before it can read any: one pass each way on the per-call path.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Protocol version; [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The request's id (empty when the request was too broken to read one).
    pub id: String,
    /// Version of the endpoint that answered.
    pub endpoint_version: String,
    /// `"ok": value` or `"error": {...}`; exactly one is present.
    pub outcome: Outcome,
    /// Output the call wrote to stdout/stderr (captured, never mixed into the response stream).
    pub stdout: String,
    /// What the call wrote to stderr.
    pub stderr: String,
    /// When the call started and how long it ran.
    pub timing: Timing,
    /// Host name of the machine that ran the call.
    pub host: String,
    /// Process id of the endpoint that ran the call.
    pub pid: u32,
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Response", 9)?;
        m.serialize_field("protocol", &self.protocol)?;
        m.serialize_field("id", &self.id)?;
        m.serialize_field("endpoint_version", &self.endpoint_version)?;
        match &self.outcome {
            Outcome::Ok(v) => m.serialize_field("ok", v)?,
            Outcome::Error(e) => m.serialize_field("error", e)?,
        }
        m.serialize_field("stdout", &self.stdout)?;
        m.serialize_field("stderr", &self.stderr)?;
        m.serialize_field("timing", &self.timing)?;
        m.serialize_field("host", &self.host)?;
        m.serialize_field("pid", &self.pid)?;
        m.end()
    }
}

/// A response as it is read: `ok` and `error` as optional members (`"ok": null` is a
/// value, hence the `present` wrapper), the rest defaulted as before. Unknown members are
/// ignored (a newer endpoint may add some).
#[derive(Deserialize)]
struct ResponseWire {
    protocol: u32,
    id: String,
    endpoint_version: String,
    #[serde(default, deserialize_with = "present")]
    ok: Option<Value>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
    #[serde(default)]
    timing: Timing,
    #[serde(default)]
    host: String,
    #[serde(default)]
    pid: u32,
}

/// A member that is there, even as `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = ResponseWire::deserialize(d)?;
        let outcome = match (w.ok, w.error) {
            (Some(v), None) => Outcome::Ok(v),
            (None, Some(e)) => Outcome::Error(e),
            (Some(_), Some(_)) => return Err(D::Error::custom("both `ok` and `error` present")),
            (None, None) => return Err(D::Error::custom("neither `ok` nor `error` present")),
        };
        Ok(Response {
            protocol: w.protocol,
            id: w.id,
            endpoint_version: w.endpoint_version,
            outcome,
            stdout: w.stdout,
            stderr: w.stderr,
            timing: w.timing,
            host: w.host,
            pid: w.pid,
        })
    }
}

impl Response {
    /// A response carrying only an error (for requests that could not be run at all).
    pub fn error(id: impl Into<String>, body: ErrorBody) -> Self {
        Response {
            protocol: PROTOCOL_VERSION,
            id: id.into(),
            endpoint_version: VERSION.to_string(),
            outcome: Outcome::Error(body),
            stdout: String::new(),
            stderr: String::new(),
            timing: Timing::default(),
            host: String::new(),
            pid: std::process::id(),
        }
    }

    /// Parse a response. Never panics; the error says what was wrong in one line.
    pub fn parse(bytes: &[u8]) -> Result<Response, String> {
        // As `Request::parse`: one pass, the UTF-8 checked once.
        if let Ok(text) = std::str::from_utf8(bytes)
            && let Ok(resp) = serde_json::from_str::<Response>(text)
            && resp.protocol == PROTOCOL_VERSION
        {
            return Ok(resp);
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("response is not valid JSON: {e}"))?;
        match value.get("protocol").and_then(Value::as_u64) {
            Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "endpoint answered with protocol {v}, this client speaks {PROTOCOL_VERSION}"
                ));
            }
            None => return Err("response has no numeric `protocol` field".into()),
        }
        serde_json::from_value(value).map_err(|e| format!("malformed response: {e}"))
    }
}

// ---------------------------------------------------------------------------------------
// Binary values
// ---------------------------------------------------------------------------------------

thread_local! {
    static ATTACHMENTS: RefCell<Option<Vec<Vec<u8>>>> = const { RefCell::new(None) };
}

/// Run `f` with an attachment table: every [`Blob`] serialized inside `f` is moved into the
/// table as a raw attachment (and written as `{"$blob": N}`), and every `{"$blob": N}`
/// deserialized inside `f` is taken from `attachments`. Returns `f`'s result and the table.
///
/// Framed transports use this to send binary data beside the JSON body without base64.
pub fn with_attachments<R>(attachments: Vec<Vec<u8>>, f: impl FnOnce() -> R) -> (R, Vec<Vec<u8>>) {
    let previous = ATTACHMENTS.with(|a| a.borrow_mut().replace(attachments));
    let result = f();
    let table = ATTACHMENTS
        .with(|a| std::mem::replace(&mut *a.borrow_mut(), previous))
        .unwrap_or_default();
    (result, table)
}

/// Replace every `{"$blob": N}` in `value` by the inline form `{"$bytes": "<base64>"}`
/// using `attachments` (for transports that carry plain JSON only).
pub fn inline_attachments(value: &mut Value, attachments: &[Vec<u8>]) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            if map.len() == 1
                && let Some(n) = map.get("$blob").and_then(Value::as_u64)
            {
                let data = attachments
                    .get(n as usize)
                    .ok_or_else(|| format!("reference to missing attachment {n}"))?;
                *value = serde_json::json!({ "$bytes": base64::engine::general_purpose::STANDARD.encode(data) });
                return Ok(());
            }
            map.values_mut()
                .try_for_each(|v| inline_attachments(v, attachments))
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|v| inline_attachments(v, attachments)),
        _ => Ok(()),
    }
}

/// Raw bytes as a call argument or return value.
///
/// In plain JSON a `Blob` is `{"$bytes": "<base64>"}`; a plugin or Python function sees
/// that object. See [`with_attachments`] for the framed form.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob(v)
    }
}

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let index = ATTACHMENTS.with(|a| {
            a.borrow_mut().as_mut().map(|table| {
                table.push(self.0.clone());
                table.len() - 1
            })
        });
        let mut map = s.serialize_map(Some(1))?;
        match index {
            Some(i) => map.serialize_entry("$blob", &i)?,
            None => map.serialize_entry(
                "$bytes",
                &base64::engine::general_purpose::STANDARD.encode(&self.0),
            )?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Repr {
            #[serde(rename = "$bytes")]
            bytes: Option<String>,
            #[serde(rename = "$blob")]
            blob: Option<usize>,
        }
        let repr = Repr::deserialize(d)?;
        match (repr.bytes, repr.blob) {
            (Some(b64), None) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map(Blob)
                .map_err(|e| D::Error::custom(format!("invalid base64 in $bytes: {e}"))),
            (None, Some(i)) => ATTACHMENTS
                .with(|a| {
                    a.borrow_mut()
                        .as_mut()
                        .and_then(|t| t.get_mut(i).map(std::mem::take))
                })
                .map(Blob)
                .ok_or_else(|| D::Error::custom(format!("$blob {i} refers to no attachment"))),
            _ => Err(D::Error::custom(
                "expected {\"$bytes\": base64} or {\"$blob\": index}",
            )),
        }
    }
}

/// Any JSON value, with `{"$blob": N}` references replaced by inline `{"$bytes": ...}`
/// taken from the current attachment table: a value that can outlive its frame (e.g. one
/// kept in a session's store).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored(pub Value);

impl<'de> Deserialize<'de> for Stored {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn walk(v: &mut Value) {
            match v {
                Value::Object(map)
                    if map.len() == 1 && map.get("$blob").is_some_and(Value::is_u64) =>
                {
                    let i = map["$blob"].as_u64().unwrap_or(0) as usize;
                    let data = ATTACHMENTS.with(|a| {
                        a.borrow_mut()
                            .as_mut()
                            .and_then(|t| t.get_mut(i).map(std::mem::take))
                    });
                    if let Some(data) = data {
                        *v = serde_json::json!({ "$bytes": base64::engine::general_purpose::STANDARD.encode(data) });
                    }
                }
                Value::Object(map) => map.values_mut().for_each(walk),
                Value::Array(items) => items.iter_mut().for_each(walk),
                _ => {}
            }
        }
        let mut v = Value::deserialize(d)?;
        walk(&mut v);
        Ok(Stored(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_defaults() {
        let mut r = Request::new("1", "os", "getenv");
        r.args.push(Value::from("HOME"));
        let text = serde_json::to_vec(&r).unwrap();
        assert_eq!(Request::parse(&text).unwrap(), r);
        let minimal = br#"{"protocol":1,"id":"x","module":"m","function":"f"}"#;
        assert!(Request::parse(minimal).unwrap().args.is_empty());
    }

    #[test]
    fn request_defects_are_errors_not_panics() {
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"protocol":"1"}"#,
            br#"{"protocol":1,"id":"a"}"#,
        ] {
            let (_, err) = Request::parse(bad).unwrap_err();
            assert_eq!(
                err.kind,
                ErrorKind::BadRequest,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let (id, err) = Request::parse(br#"{"protocol":2,"id":"q"}"#).unwrap_err();
        assert_eq!(
            (id.as_deref(), err.kind),
            (Some("q"), ErrorKind::ProtocolVersion)
        );
        assert!(err.message.contains("protocol 2"));
    }

    #[test]
    fn response_shape_is_ok_or_error() {
        let mut r = Response::error("7", ErrorBody::new(ErrorKind::Raised, "boom"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["error"]["kind"], "Raised");
        assert!(v.get("ok").is_none());
        r.outcome = Outcome::Ok(Value::from(3));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["ok"], 3);
        assert_eq!(
            Response::parse(&serde_json::to_vec(&r).unwrap()).unwrap(),
            r
        );
        let future = br#"{"protocol":1,"id":"","endpoint_version":"9","error":{"kind":"Novel","message":"m"}}"#;
        match Response::parse(future).unwrap().outcome {
            Outcome::Error(e) => assert_eq!(e.kind, ErrorKind::Unknown),
            other => panic!("{other:?}"),
        }
        assert!(
            Response::parse(br#"{"protocol":3}"#)
                .unwrap_err()
                .contains("protocol 3")
        );
    }

    #[test]
    fn blob_inline_and_attached() {
        let blob = Blob(vec![0, 1, 2, 255]);
        let inline = serde_json::to_value(&blob).unwrap();
        assert_eq!(inline, serde_json::json!({"$bytes": "AAEC/w=="}));
        assert_eq!(
            serde_json::from_value::<Blob>(inline.clone()).unwrap(),
            blob
        );

        let (framed, table) = with_attachments(Vec::new(), || serde_json::to_value(&blob).unwrap());
        assert_eq!(framed, serde_json::json!({"$blob": 0}));
        assert_eq!(table, vec![blob.0.clone()]);
        let mut copy = serde_json::json!([framed.clone()]);
        inline_attachments(&mut copy, &table).unwrap();
        assert_eq!(copy, serde_json::json!([inline]));
        let (back, _) = with_attachments(table, || serde_json::from_value::<Blob>(framed).unwrap());
        assert_eq!(back, blob);
        assert!(serde_json::from_value::<Blob>(serde_json::json!({"$blob": 0})).is_err());
    }
}
