//! Responses as the endpoint writes them: the outcome with the host's metadata.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sremote_core::protocol::{ErrorBody, Outcome, PROTOCOL_VERSION, Response, Timing, VERSION};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The response to call `id`: its outcome and output, when it started and how long it
/// ran, and this endpoint's version, host and pid.
pub(crate) fn response(
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
        pid: pid(),
    }
}

/// This process's id, asked once: glibc no longer caches it, so every
/// `std::process::id()` is a system call — one per response. (The endpoint never runs
/// Rust code in a forked child that has not exec'd.)
pub(crate) fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// Append `r` as JSON to `out`: the same text as `serde_json::to_writer(out, r)`, with the
/// member names written as the constants they are (serde escapes each one, per call).
pub(crate) fn write_json(r: &Response, out: &mut Vec<u8>) -> serde_json::Result<()> {
    fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> serde_json::Result<()> {
        serde_json::to_writer(out, v)
    }
    out.extend_from_slice(b"{\"protocol\":");
    put(out, &r.protocol)?;
    out.extend_from_slice(b",\"id\":");
    put(out, &r.id)?;
    out.extend_from_slice(b",\"endpoint_version\":");
    put(out, &r.endpoint_version)?;
    match &r.outcome {
        Outcome::Ok(v) => {
            out.extend_from_slice(b",\"ok\":");
            put(out, v)?;
        }
        Outcome::Error(e) => {
            out.extend_from_slice(b",\"error\":");
            put(out, e)?;
        }
    }
    out.extend_from_slice(b",\"stdout\":");
    put(out, &r.stdout)?;
    out.extend_from_slice(b",\"stderr\":");
    put(out, &r.stderr)?;
    out.extend_from_slice(b",\"timing\":{\"started_unix_ms\":");
    put(out, &r.timing.started_unix_ms)?;
    out.extend_from_slice(b",\"elapsed_us\":");
    put(out, &r.timing.elapsed_us)?;
    out.extend_from_slice(b"},\"host\":");
    put(out, &r.host)?;
    out.extend_from_slice(b",\"pid\":");
    put(out, &r.pid)?;
    out.push(b'}');
    Ok(())
}

/// An error response with the host metadata filled in.
pub(crate) fn error_response(id: String, body: ErrorBody) -> Response {
    response(
        &id,
        Outcome::Error(body),
        String::new(),
        String::new(),
        now_unix_ms(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use sremote_core::protocol::ErrorKind;

    #[test]
    fn hostname_is_known() {
        assert!(!super::hostname().is_empty());
    }

    #[test]
    fn written_json_is_serde_json() {
        let mut error = ErrorBody::new(ErrorKind::Raised, "a \"quoted\"\nline ✓");
        error.data = serde_json::json!({"missing": ["x"], "n": 1.5});
        error.traceback = Some("tb".into());
        let outcomes = [
            Outcome::Ok(serde_json::json!(null)),
            Outcome::Ok(serde_json::json!({"b": [1, "\u{1}", {"$blob": 0}], "a": -3})),
            Outcome::Error(error),
        ];
        for outcome in outcomes {
            let r = response("id-\"1\"", outcome, "out\t".into(), "é\r".into(), 17, 42);
            let mut ours = b"prefix".to_vec();
            write_json(&r, &mut ours).unwrap();
            assert_eq!(&ours[6..], serde_json::to_vec(&r).unwrap());
            assert_eq!(Response::parse(&ours[6..]).unwrap(), r);
        }
    }
}
