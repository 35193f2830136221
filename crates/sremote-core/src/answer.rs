//! Turning a response into a call's result: the decoded value, or the typed error.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{CallMeta, CallMode, CallOutput, RemoteClient};
use crate::connector::Connector;
use crate::error::{DecodeError, Error, ModulesMissingError, ProtocolError, RemoteExecError};
use crate::protocol::{ErrorKind, Outcome, Request, Response, with_attachments};
use crate::session::Answer;

impl<C: Connector> RemoteClient<C> {
    /// Decode `response`, the answer to `request` obtained another way (e.g. read back
    /// from a detached job), exactly as a call's answer: `T`, or the typed error.
    pub fn decode_response<T: DeserializeOwned>(
        &self,
        response: Response,
        request: &Request,
        round_trip: Duration,
    ) -> Result<CallOutput<T>, Error> {
        let action = format!("call {}.{}", request.module, request.function);
        self.finish(
            (response, Vec::new()),
            request,
            CallMode::File,
            round_trip,
            &action,
        )
    }

    pub(crate) fn finish<T: DeserializeOwned>(
        &self,
        (response, attachments): Answer,
        request: &Request,
        mode: CallMode,
        round_trip: Duration,
        action: &str,
    ) -> Result<CallOutput<T>, Error> {
        let host = self.host().to_string();
        let meta = CallMeta {
            id: response.id,
            host: response.host,
            endpoint_version: response.endpoint_version,
            pid: response.pid,
            timing: response.timing,
            mode,
            round_trip,
        };
        match response.outcome {
            Outcome::Ok(value) => {
                let shown = || {
                    let s = value.to_string();
                    if s.len() > 200 {
                        format!("{}…", &s[..s.floor_char_boundary(200)])
                    } else {
                        s
                    }
                };
                let (decoded, _) = with_attachments(attachments, || T::deserialize(&value));
                let value = decoded.map_err(|e| {
                    Error::Decode(Box::new(DecodeError {
                        host: host.clone(),
                        action: action.to_string(),
                        type_name: std::any::type_name::<T>(),
                        detail: e.to_string(),
                        value: shown(),
                    }))
                })?;
                Ok(CallOutput {
                    value,
                    stdout: response.stdout,
                    stderr: response.stderr,
                    meta,
                })
            }
            Outcome::Error(e) if e.kind == ErrorKind::ModulesMissing => {
                let missing = e
                    .data
                    .get("missing")
                    .and_then(|m| serde_json::from_value(m.clone()).ok());
                let present = e
                    .data
                    .get("present")
                    .and_then(|m| serde_json::from_value(m.clone()).ok());
                Err(Error::ModulesMissing(Box::new(ModulesMissingError {
                    host,
                    action: action.to_string(),
                    missing: missing.unwrap_or_else(|| request.check_modules.clone()),
                    present: present.unwrap_or_default(),
                })))
            }
            Outcome::Error(e) if e.kind == ErrorKind::Protocol => {
                let quoted = |key: &str| e.data.get(key).and_then(Value::as_str).map(str::to_owned);
                Err(Error::Protocol(Box::new(ProtocolError {
                    host,
                    action: action.to_string(),
                    module: quoted("plugin")
                        .or_else(|| quoted("module"))
                        .or(Some(format!(
                            "module {}",
                            e.module.as_deref().unwrap_or(&request.module)
                        ))),
                    received: quoted("output").unwrap_or_default(),
                    detail: e.message,
                })))
            }
            Outcome::Error(e) => Err(Error::RemoteExec(Box::new(RemoteExecError {
                host,
                module: e.module.unwrap_or_else(|| request.module.clone()),
                function: e.function.unwrap_or_else(|| request.function.clone()),
                kind: e.kind,
                message: e.message,
                traceback: e.traceback,
                stdout: response.stdout,
                stderr: response.stderr,
            }))),
        }
    }
}
