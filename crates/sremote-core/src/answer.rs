//! Turning a response into a call's result: the decoded value, or the typed error.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{CallMeta, CallMode, CallOutput, RemoteClient};
use crate::connector::Connector;
use crate::error::{DecodeError, Error, ModulesMissingError, ProtocolError, RemoteExecError};
use crate::protocol::{ErrorBody, ErrorKind, Outcome, Request, Response, with_attachments};
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

    /// A call's answer as its result: the value decoded into `T` (with the response's
    /// attachments for `Blob`s), or the typed error the response carries.
    pub(crate) fn finish<T: DeserializeOwned>(
        &self,
        (response, attachments): Answer,
        request: &Request,
        mode: CallMode,
        round_trip: Duration,
        action: &str,
    ) -> Result<CallOutput<T>, Error> {
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
            Outcome::Ok(value) => Ok(CallOutput {
                value: self.decode(&value, attachments, action)?,
                stdout: response.stdout,
                stderr: response.stderr,
                meta,
            }),
            Outcome::Error(e) => {
                Err(self.remote_error(e, request, action, response.stdout, response.stderr))
            }
        }
    }

    /// `value` as a `T`, or a `Decode` error showing the start of the value.
    fn decode<T: DeserializeOwned>(
        &self,
        value: &Value,
        attachments: Vec<Vec<u8>>,
        action: &str,
    ) -> Result<T, Error> {
        let (decoded, _) = with_attachments(attachments, || T::deserialize(value));
        decoded.map_err(|e| {
            let s = value.to_string();
            let shown = if s.len() > 200 {
                format!("{}…", &s[..s.floor_char_boundary(200)])
            } else {
                s
            };
            Error::Decode(Box::new(DecodeError {
                host: self.host().to_string(),
                action: action.to_string(),
                type_name: std::any::type_name::<T>(),
                detail: e.to_string(),
                value: shown,
            }))
        })
    }

    /// The error an error response stands for: modules missing, the host's side of the
    /// protocol broken (a plugin's answer), or the function's own failure with the output
    /// it printed.
    fn remote_error(
        &self,
        e: ErrorBody,
        request: &Request,
        action: &str,
        stdout: String,
        stderr: String,
    ) -> Error {
        let host = self.host().to_string();
        match e.kind {
            ErrorKind::ModulesMissing => {
                let field = |key: &str| e.data.get(key).cloned().unwrap_or_default();
                Error::ModulesMissing(Box::new(ModulesMissingError {
                    host,
                    action: action.to_string(),
                    missing: serde_json::from_value(field("missing"))
                        .unwrap_or_else(|_| request.check_modules.clone()),
                    present: serde_json::from_value(field("present")).unwrap_or_default(),
                }))
            }
            ErrorKind::Protocol => {
                let quoted = |key: &str| e.data.get(key).and_then(Value::as_str).map(str::to_owned);
                Error::Protocol(Box::new(ProtocolError {
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
                }))
            }
            _ => Error::RemoteExec(Box::new(RemoteExecError {
                host,
                module: e.module.unwrap_or_else(|| request.module.clone()),
                function: e.function.unwrap_or_else(|| request.function.clone()),
                kind: e.kind,
                message: e.message,
                traceback: e.traceback,
                stdout,
                stderr,
            })),
        }
    }
}
