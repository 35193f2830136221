//! `sremote tunnel HOST REMOTE_PORT [LOCAL_PORT]`: a local port forwarded to a port on the
//! host, until Ctrl-C. Over ssh each connection is one `ssh -W` channel through the
//! already authenticated master connection; for `local` it is a plain TCP relay.

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;

use clap::Args;
use serde_json::json;
use sremote_core::{ConnectorError, ConnectorErrorKind, Error};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::config::ConnectorKind;
use crate::hosts::{Connected, HostOptions, connect_transport};

/// Forward a local port to a port on HOST, until Ctrl-C.
#[derive(Args, Debug)]
#[command(
    after_help = "LOCAL_PORT defaults to REMOTE_PORT; 0 picks a free port. The line
`forwarding 127.0.0.1:LOCAL -> …` (or a JSON object with --json) tells where to connect.

Examples:
  sremote tunnel gpu1 8888                 # jupyter on gpu1 at http://localhost:8888
  sremote tunnel gpu1 6006 16006           # tensorboard at localhost:16006
  sremote tunnel login1 5432 0 --remote-host db.internal"
)]
pub struct TunnelArgs {
    /// One host (config name or destination).
    pub host: String,
    /// The port on the host.
    pub remote_port: u16,
    /// The local port (default: REMOTE_PORT; 0: any free port).
    pub local_port: Option<u16>,
    /// Where the host connects to (an address as the host sees it).
    #[arg(long, default_value = "127.0.0.1")]
    pub remote_host: String,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
}

pub async fn tunnel(a: TunnelArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let spec = opts.resolve_one(&a.host, "`sremote tunnel`")?;
    if spec.connector == ConnectorKind::Newt {
        return Err(
            ConnectorError::unsupported(&spec.name, "tunnel", &a.remote_port.to_string())
                .hint("a REST API carries no TCP connections: reach the host over ssh for tunnels")
                .into(),
        );
    }
    if a.remote_host.is_empty()
        || a.remote_host.starts_with('-')
        || a.remote_host.contains(char::is_whitespace)
    {
        return Err(Error::Usage(format!(
            "--remote-host {:?} is not a host name or address",
            a.remote_host
        )));
    }
    let c = Arc::new(connect_transport(&spec, &opts).await?);
    let port = a.local_port.unwrap_or(a.remote_port);
    let listener = TcpListener::bind((a.bind.as_str(), port))
        .await
        .map_err(|e| {
            let hint = if a.local_port.is_none() {
                "give another LOCAL_PORT (0 picks a free one)"
            } else {
                "give another LOCAL_PORT, or stop what listens there"
            };
            Error::usage(format!("cannot listen on {}:{port}: {e}", a.bind), hint)
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Usage(format!("cannot read the listening address: {e}")))?;
    let target = format!("{}:{}", a.remote_host, a.remote_port);
    if opts.json {
        println!(
            "{}",
            json!({"host": spec.name, "local": local.to_string(), "remote": target})
        );
    } else {
        println!(
            "forwarding {local} -> {target} on {} (Ctrl-C to stop)",
            spec.name
        );
    }
    let _ = std::io::stdout().flush();
    let mut conns = JoinSet::new();
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((sock, peer)) = accepted else { continue };
                tracing::info!("connection from {peer}");
                let (c, host, port) = (c.clone(), a.remote_host.clone(), a.remote_port);
                conns.spawn(async move {
                    if let Err(e) = relay(&c, sock, &host, port).await {
                        crate::output::warn(&format!("a tunnel connection failed: {e}"));
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
    eprintln!("sremote: tunnel to {target} on {} closed", spec.name);
    Ok(ExitCode::SUCCESS)
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut i), Ok(mut t)) => {
            tokio::select! {
                _ = i.recv() => {}
                _ = t.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Carry one connection to `host:port` as the remote machine sees it.
async fn relay(c: &Connected, mut sock: TcpStream, host: &str, port: u16) -> Result<(), Error> {
    let name = c.spec.name.as_str();
    let action = format!("tunnel to {host}:{port}");
    let Some(ssh) = &c.ssh else {
        // This machine: connect directly.
        let mut remote = TcpStream::connect((host, port))
            .await
            .map_err(|e| ConnectorError::io(name, &action, &e))?;
        let _ = tokio::io::copy_bidirectional(&mut sock, &mut remote).await;
        return Ok(());
    };
    // Make sure the master connection is up (it may have gone idle), then open a channel
    // through it; `-W` carries stdio to host:port.
    ssh.check().await?;
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.arg("-S")
        .arg(ssh.control_socket())
        .args([
            "-o",
            "ControlMaster=no",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-W")
        .arg(format!("{host}:{port}"));
    if let Some(cfg) = &c.spec.ssh_config {
        cmd.arg("-F").arg(cfg);
    }
    cmd.arg("--")
        .arg(&c.spec.destination)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        ConnectorError::new(ConnectorErrorKind::Connect, name, &action)
            .detail(format!("cannot run the local `ssh` program: {e}"))
            .hint("install the OpenSSH client (`ssh`)")
    })?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(
            ConnectorError::new(ConnectorErrorKind::Other, name, &action)
                .detail("no pipes to ssh")
                .into(),
        );
    };
    let mut pipe = tokio::io::join(stdout, stdin);
    let _ = tokio::io::copy_bidirectional(&mut sock, &mut pipe).await;
    drop(pipe);
    let mut why = String::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        stderr.read_to_string(&mut why),
    )
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let why = why.trim();
    if !why.is_empty() {
        return Err(
            ConnectorError::new(ConnectorErrorKind::Connect, name, &action)
                .detail(why)
                .hint("check that something listens on that port on the host")
                .into(),
        );
    }
    Ok(())
}
