//! `sremote connections` and `sremote disconnect`: the persisted ssh logins (master
//! connections that later commands reuse) and closing them.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use sremote_core::Error;
use sremote_ssh::MasterInfo;

use crate::hosts::HostOptions;
use crate::output;

/// Arguments of `sremote connections`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  sremote connections                # destination, age, idle time, how long it stays unused
  sremote connections --json
  sremote disconnect gpu1            # log out of gpu1 now
  sremote disconnect --all

The first command for an ssh host logs in and leaves the login (an ssh master connection)
running in the background; later commands for that host reuse it (no new login, no new
password or one-time code) until it has been unused for 10 minutes. Change that with
`persist = \"4h\"` (or \"0\") in the host's config entry, or `--no-persist`.")]
pub struct ConnectionsArgs {}

/// Arguments of `sremote disconnect`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  sremote disconnect gpu1
  sremote disconnect alice@login.cluster.org
  sremote disconnect --all")]
pub struct DisconnectArgs {
    /// The host whose persisted login to close (a config name or an ssh destination).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    host: Option<String>,
    /// Close every persisted login.
    #[arg(long)]
    all: bool,
}

async fn masters() -> Result<Vec<MasterInfo>, Error> {
    sremote_ssh::connections()
        .await
        .map_err(|e| Error::Usage(format!("cannot list the persisted connections: {e}")))
}

fn ago(t: SystemTime) -> Duration {
    SystemTime::now().duration_since(t).unwrap_or_default()
}

/// `45s`, `3m12s`, `4h05m`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// `sremote connections`.
pub async fn connections(_args: ConnectionsArgs, opts: &HostOptions) -> Result<ExitCode, Error> {
    let list = masters().await?;
    if opts.json {
        let items: Vec<_> = list
            .iter()
            .map(|m| {
                serde_json::json!({
                    "destination": m.destination,
                    "host": m.name,
                    "socket": m.socket,
                    "age_s": ago(m.started).as_secs(),
                    "idle_s": ago(m.last_used).as_secs(),
                    "persist_s": m.persist.as_secs(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        eprintln!("no persisted connections");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            vec![
                m.destination.clone(),
                m.name.clone(),
                human(ago(m.started)),
                human(ago(m.last_used)),
                human(m.persist),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["DESTINATION", "HOST", "AGE", "IDLE", "PERSIST"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

/// `sremote disconnect HOST|--all`.
pub async fn disconnect(args: DisconnectArgs, opts: &HostOptions) -> Result<ExitCode, Error> {
    let list = masters().await?;
    let chosen: Vec<&MasterInfo> = match &args.host {
        None => list.iter().collect(),
        Some(host) => {
            let destination = opts
                .resolve_one(host, "disconnect")
                .map(|s| s.destination)
                .unwrap_or_else(|_| host.clone());
            list.iter()
                .filter(|m| {
                    m.destination == destination || &m.destination == host || &m.name == host
                })
                .collect()
        }
    };
    if chosen.is_empty() {
        if let Some(host) = &args.host {
            eprintln!("no persisted connection to {host} (see `sremote connections`)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for m in chosen {
        match sremote_ssh::disconnect(m).await {
            Ok(()) if !opts.json => eprintln!("disconnected {} ({})", m.destination, m.name),
            Ok(()) => println!(
                "{}",
                serde_json::json!({"destination": m.destination, "host": m.name, "ok": true})
            ),
            Err(e) => {
                failed = true;
                output::warn(&format!("cannot disconnect {}: {e}", m.destination));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
