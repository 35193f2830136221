//! Mapping HTTP answers and transport failures to [`ConnectorError`] kinds, and decoding
//! the command answer.

use std::error::Error as _;

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Response;
use sremote_core::{ConnectorError, ConnectorErrorKind as Kind, ExecOutput};

/// Everything but unreserved URL characters is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encode one path segment.
pub fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text
}

/// A request that got no answer.
pub fn network_error(host: &str, action: &str, e: &reqwest::Error) -> ConnectorError {
    let (kind, hint) = if e.is_timeout() {
        (
            Kind::Timeout,
            "raise the timeout; the gateway kills the command's process group on its own timeout",
        )
    } else if e.is_connect() {
        (
            Kind::Connect,
            "check the base URL, that the gateway runs, and its TLS certificate",
        )
    } else if e.is_body() || e.is_request() {
        (Kind::Disconnected, "the connection broke; try again")
    } else {
        (
            Kind::Other,
            "try again; if it persists, check the gateway's log",
        )
    };
    ConnectorError::new(kind, host, action)
        .detail(chain(e))
        .hint(hint)
}

/// An answer whose body could not be read or decoded.
pub fn read_error(host: &str, action: &str, e: &reqwest::Error) -> ConnectorError {
    if e.is_decode() {
        return ConnectorError::new(Kind::Other, host, action)
            .detail(format!("unexpected answer: {}", chain(e)))
            .hint("is the base URL a NEWT API?");
    }
    network_error(host, action, e)
}

/// A non-2xx answer as a typed error, with the server's JSON `error` message.
pub async fn status_error(host: &str, action: &str, resp: Response) -> ConnectorError {
    let status = resp.status();
    let resp_location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let code = json["code"].as_str().unwrap_or("");
    let message = json["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(300).collect());
    if status.is_redirection() {
        let to = resp_location.unwrap_or_default();
        return ConnectorError::new(Kind::Other, host, action)
            .detail(format!("HTTP {status}: redirected to {to:?}, not followed"))
            .hint(
                "sremote follows no redirect for a login and none to another host or port: \
                 use the URL the gateway redirects to as the base URL",
            );
    }
    let (kind, hint) = match (status.as_u16(), code) {
        (401, _) => (Kind::Auth, "log in again; check the user name and password"),
        (429, _) => (
            Kind::Auth,
            "too many failed logins for this user: wait as the message says, and check the password",
        ),
        (403, _) => (
            Kind::PermissionDenied,
            "the path is outside the gateway's roots or not writable",
        ),
        (404, _) => (Kind::NotFound, "check the path and the machine name"),
        (413, _) => (
            Kind::InvalidInput,
            "the file is larger than the gateway's max_upload_bytes; raise the limit or send less",
        ),
        (504, _) | (_, "timeout") => (Kind::Timeout, "raise the timeout or make the work smaller"),
        (422, "output_limit") => (
            Kind::Other,
            "write large output to a file on the host and pull it",
        ),
        (400 | 422, _) => (Kind::InvalidInput, "the request was refused as malformed"),
        (502 | 503, _) => (
            Kind::Disconnected,
            "the gateway is unavailable; try again later",
        ),
        _ => (Kind::Other, "check the gateway's log"),
    };
    let detail = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    };
    ConnectorError::new(kind, host, action)
        .detail(detail)
        .hint(hint)
}

fn stream(body: &serde_json::Value, name: &str) -> Option<Vec<u8>> {
    if let Some(b64) = body[format!("{name}_b64")].as_str()
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64)
    {
        return Some(bytes);
    }
    match &body[name] {
        serde_json::Value::String(s) => Some(s.clone().into_bytes()),
        serde_json::Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// Decode `{"output", "error", "status", "exit_code"?}`.
pub fn exec_output(body: &serde_json::Value) -> Option<ExecOutput> {
    if body.get("output").is_none() && body.get("error").is_none() {
        return None;
    }
    let exit_code = match body.get("exit_code") {
        Some(v) => v.as_i64().and_then(|c| i32::try_from(c).ok()),
        None => Some(if body["status"].as_str() == Some("OK") {
            0
        } else {
            1
        }),
    };
    Some(ExecOutput {
        exit_code,
        stdout: stream(body, "output")?,
        stderr: stream(body, "error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_exec_answers() {
        let ours =
            serde_json::json!({"output": "hi\n", "error": "", "status": "OK", "exit_code": 3});
        assert_eq!(exec_output(&ours).expect("ok").exit_code, Some(3));
        let killed =
            serde_json::json!({"output": "", "error": "", "status": "ERROR", "exit_code": null});
        assert_eq!(exec_output(&killed).expect("ok").exit_code, None);
        let newt = serde_json::json!({"output": "x", "error": "", "status": "ERROR"});
        assert_eq!(exec_output(&newt).expect("ok").exit_code, Some(1));
        let bin = serde_json::json!({"output": "\u{fffd}", "output_b64": "/w==", "error": ""});
        assert_eq!(exec_output(&bin).expect("ok").stdout, vec![0xff]);
        assert!(exec_output(&serde_json::json!({"foo": 1})).is_none());
        assert_eq!(encode("a b/%.."), "a%20b%2F%25..");
    }
}
