//! Pipe and file mode calls: one endpoint program per call (`sremote-endpoint call -`,
//! the request on stdin, or `call --consume FILE -` with the request pushed first), for
//! connectors without `spawn` or when asked for; session mode is `session.rs`.

use std::time::Duration;

use crate::client::{CallMode, RemoteClient};
use crate::connector::{Connector, ExecOutput, RemoteCommand, Source};
use crate::error::{Error, ProtocolError};
use crate::protocol::{Request, Response};

impl<C: Connector> RemoteClient<C> {
    /// A call in pipe or file `mode`: one endpoint program per call.
    pub(crate) async fn send_exec(
        &self,
        request: &Request,
        body: &[u8],
        mode: CallMode,
        action: &str,
    ) -> Result<Response, Error> {
        let (cmd, request_file) = self.exec_command(request, body, mode).await?;
        let result = self.inner.connector.exec(&cmd).await;
        let setup_failed = match &result {
            Ok(out) => crate::setup::failure(out.exit_code, &out.stderr),
            Err(_) => None,
        };
        // The endpoint consumes the request file; when it never ran, remove it ourselves
        // (best effort: the connection may be gone).
        let consumed = setup_failed.is_none()
            && matches!(&result, Ok(out) if !matches!(out.exit_code, Some(126 | 127)));
        if let (false, Some(path)) = (consumed, request_file) {
            let rm = RemoteCommand::new("rm")
                .args(["-f", "--", &path])
                .timeout(Duration::from_secs(10));
            let _ = self.inner.connector.exec(&rm).await;
        }
        let out = result?;
        if let Some(f) = setup_failed {
            return Err(self.setup_failed(action, f));
        }
        self.exec_response(request, &out, action)
    }

    /// The endpoint's command for a pipe or file call (in file mode the request is pushed
    /// first; its path is returned), after the setup.
    async fn exec_command(
        &self,
        request: &Request,
        body: &[u8],
        mode: CallMode,
    ) -> Result<(RemoteCommand, Option<String>), Error> {
        let endpoint = self.endpoint_path();
        let mut request_file = None;
        let mut cmd = match mode {
            CallMode::File => {
                let req_path = format!("{}/req-{}.json", self.tmp_dir(), request.id);
                self.inner
                    .connector
                    .push(Source::bytes(body).mode(0o600).scratch(), &req_path)
                    .await?;
                request_file = Some(req_path.clone());
                RemoteCommand::new(&endpoint).args(["call", "--consume", &req_path, "-"])
            }
            _ => RemoteCommand::new(&endpoint)
                .args(["call", "-"])
                .stdin(body.to_vec()),
        };
        cmd.timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms) + Duration::from_secs(30));
        Ok((self.with_setup(cmd), request_file))
    }

    /// The response in a pipe or file call's output: a missing endpoint is `NotSetup`,
    /// anything but our response for `request` a protocol error.
    fn exec_response(
        &self,
        request: &Request,
        out: &ExecOutput,
        action: &str,
    ) -> Result<Response, Error> {
        let endpoint = self.endpoint_path();
        match out.exit_code {
            Some(127) => return Err(self.not_setup(action, format!("no endpoint at {endpoint}"))),
            Some(126) => {
                return Err(self.not_setup(
                    action,
                    format!("{endpoint} cannot be executed: {}", out.stderr_text()),
                ));
            }
            _ => {}
        }
        let protocol_error = |detail: String| {
            let received = if out.stdout.is_empty() {
                out.stderr_text()
            } else {
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            Error::Protocol(Box::new(ProtocolError {
                host: self.host().to_string(),
                action: action.to_string(),
                detail,
                received: received.chars().take(300).collect(),
                module: None,
            }))
        };
        let response = Response::parse(&out.stdout).map_err(|e| match out.exit_code {
            Some(0) => protocol_error(e),
            code => protocol_error(format!("endpoint exited with {code:?}: {e}")),
        })?;
        self.check_protocol(&response, action)?;
        if response.id != request.id {
            return Err(protocol_error(format!(
                "response id {:?} does not match request id {:?}",
                response.id, request.id
            )));
        }
        Ok(response)
    }
}
