//! The operations: core's [`scripted`] flows over the master connection, each script sent
//! as one line every login shell passes on (`script.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openssh::Session;
use sremote_core::ConnectorError;
use sremote_core::connector::scripted::{self, Input, ScriptHost, ScriptOutput, Started};

use crate::SshConnector;
use crate::error::{disconnected, ssh_error};

/// Kill a process group on the host; retried while the server refuses another channel.
async fn kill(session: Arc<Session>, pid: u32) {
    let attempts = async {
        for _ in 0..100 {
            let mut cmd = Session::to_raw_command(session.clone(), crate::script::kill_line(pid));
            let null = openssh::Stdio::null;
            let status = cmd.stdin(null()).stdout(null()).stderr(null()).status();
            match status.await {
                Err(e) if crate::error::is_refused(&e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(15), attempts).await;
}

/// The exit code of a finished remote process; `None` when it was killed by a signal.
async fn exit_code(
    host: &str,
    session: &Session,
    action: &str,
    res: Result<std::process::ExitStatus, openssh::Error>,
) -> Result<Option<i32>, ConnectorError> {
    match res {
        Ok(status) => Ok(status.code()),
        // openssh reports a remote 127 as an error; it is a plain exit code here.
        Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(127)),
        // The mux protocol cannot tell "killed by a signal" from "connection lost": ask the master.
        Err(openssh::Error::RemoteProcessTerminated) => match session.check().await {
            Ok(()) => Ok(None),
            Err(_) => Err(disconnected(host, action)),
        },
        Err(e) => Err(ssh_error(host, action, e)),
    }
}

/// The remote program's stdout (a pipe from the ssh master).
struct Stdout(openssh::ChildStdout);

impl tokio::io::AsyncRead for Stdout {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl ScriptOutput for Stdout {
    fn into_fd(self: Box<Self>) -> std::io::Result<std::os::fd::OwnedFd> {
        self.0.into_owned_fd()
    }
}

/// A duplicate of `file`'s descriptor for the ssh master: it reads the file itself, so the
/// bytes never pass through this process (as with `ssh host cat < file`).
fn fd_of(file: &std::fs::File) -> std::io::Result<openssh::Stdio> {
    Ok(openssh::Stdio::from(std::os::fd::OwnedFd::from(
        file.try_clone()?,
    )))
}

#[async_trait]
impl ScriptHost for SshConnector {
    fn host(&self) -> &str {
        sremote_core::Connector::host(self)
    }

    fn needs(&self) -> &str {
        "the host needs a working POSIX /bin/sh, and the account a login shell that runs \
         commands (`ssh HOST /bin/sh -c true` must work)"
    }

    async fn start(
        &self,
        script: &str,
        args: Vec<String>,
        stdin: Input<'_>,
        action: &str,
    ) -> Result<Started, ConnectorError> {
        let line = crate::script::line(script, &args);
        let piped = openssh::Stdio::piped;
        let (mut child, session, permit) = self
            .start_line(&line, action, || match stdin {
                Input::Null => Ok((openssh::Stdio::null(), piped())),
                Input::Piped => Ok((piped(), piped())),
                Input::File(f) => Ok((fd_of(f)?, piped())),
            })
            .await?;
        let host = ScriptHost::host(self).to_string();
        let none = || ConnectorError::io(&host, action, &std::io::Error::other("no pipes"));
        let stdin = child.stdin().take().map(|i| Box::new(i) as _);
        let stdout = child.stdout().take().ok_or_else(none)?;
        let stderr = child.stderr().take().ok_or_else(none)?;
        let (s, action) = (session.clone(), action.to_string());
        let wait = Box::pin(async move {
            let _permit = permit; // the channel is in use until the process ends
            let status = child.wait().await;
            exit_code(&host, &s, &action, status).await
        });
        let kill: scripted::Killer = Arc::new(move |pid| Box::pin(kill(session.clone(), pid)));
        Ok(Started {
            stdin,
            stdout: Box::new(Stdout(stdout)),
            stderr: Box::new(stderr),
            wait,
            kill: Some(kill),
        })
    }
}
