//! `sremote hosts` (list the configured hosts and groups) and `sremote hosts check`
//! (reachability, endpoint version, latency).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::HostSpec;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sremote_core::{Error, RemoteCommand};

use crate::fanout;
use crate::hosts::{Client, Connected, CustomEndpoint, HostOptions, connect_transport};
use crate::output;

pub const CONFIG_HELP: &str =
    "The hosts config is ~/.config/sremote/config.toml ($XDG_CONFIG_HOME, or --config /
SREMOTE_CONFIG):

  [hosts.perlmutter]
  connector = \"ssh\"                          # ssh (default) | newt | local
  destination = \"alice@perlmutter.nersc.gov\" # default: the name itself (an ssh alias)
  ssh_config = \"~/.ssh/config.nersc\"         # like ssh -F
  endpoint_dir = \"scratch/.sremote\"          # the endpoint's directory on the host
  endpoint = \"~/build/my-endpoint\"          # a custom endpoint binary (local path) to use
  env = { OMP_NUM_THREADS = \"8\" }            # set for every call, exec and run
  path = [\"/opt/tools/bin\"]                  # first in PATH for every call, exec and run
  scheduler = \"slurm\"                        # direct | slurm | pbs | sge (jobs)
  partitions = [\"debug\", { name = \"gpu\", cores = 64, max_time = \"12h\", gpus = 4 }]
  setup = [\"module load python/3.11\"]        # shell lines run before calls and jobs start
  login_shell = true                         # run setup and the endpoint in bash -l

  [hosts.me]
  connector = \"local\"

  [groups]
  gpu = [\"perlmutter\", \"bob@lab-gpu\"]        # use as @gpu; groups may name @groups

A malformed file is an error naming its line and column; unknown keys are warned about.

Examples:
  sremote hosts
  sremote hosts check
  sremote hosts check @gpu --json";

/// List the configured hosts, or check that they are reachable.
#[derive(Args, Debug)]
#[command(after_help = CONFIG_HELP)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub what: Option<HostsCommand>,
}

#[derive(Subcommand, Debug)]
pub enum HostsCommand {
    /// List the configured hosts and groups (the default).
    #[command(after_help = "Examples:
  sremote hosts list
  sremote hosts list --json                     # one object per host, with its settings
  sremote hosts --config ./lab.toml             # another config file")]
    List,
    /// Connect to hosts (default: all configured) and report reachability, endpoint
    /// version and latency.
    #[command(
        after_help = "Installs nothing: a host without the endpoint (or without the custom endpoint
its config names) is reported as `no endpoint`.

Examples:
  sremote hosts check                           # every configured host
  sremote hosts check gpu1,lab @cluster
  sremote hosts check @gpu --json               # one object per host"
    )]
    Check {
        /// Config names, destinations, a,b,c or @group.
        names: Vec<String>,
    },
}

pub async fn hosts(a: HostsArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    match a.what.unwrap_or(HostsCommand::List) {
        HostsCommand::List => list(&opts),
        HostsCommand::Check { names } => check(names, opts).await,
    }
}

fn list(opts: &HostOptions) -> Result<ExitCode, Error> {
    let cfg = opts.config()?;
    let groups_of = |name: &str| -> Vec<String> {
        cfg.groups
            .keys()
            .filter(|g| {
                cfg.group_members(g)
                    .is_ok_and(|m| m.iter().any(|h| h == name))
            })
            .map(|g| format!("@{g}"))
            .collect()
    };
    if opts.json {
        for (name, h) in &cfg.hosts {
            let parts: Vec<Value> = h
                .partitions
                .iter()
                .map(|p| json!({"name": p.name, "cores": p.cores, "max_time": p.max_time, "max_memory": p.max_memory, "gpus": p.gpus}))
                .collect();
            println!(
                "{}",
                json!({"host": name, "connector": h.connector.name(), "destination": h.destination,
                       "ssh_config": h.ssh_config, "endpoint_dir": h.endpoint_dir, "endpoint": h.endpoint, "env": h.env, "path": h.path,
                       "scheduler": h.scheduler.map(|s| s.name()), "partitions": parts,
                       "setup": h.setup, "login_shell": h.login_shell, "groups": groups_of(name)})
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if cfg.hosts.is_empty() {
        println!(
            "no hosts configured ({}); any ssh destination works without config — see `sremote hosts --help`",
            cfg.path.as_ref().map_or_else(
                || crate::config::default_path()
                    .map_or_else(String::new, |p| p.display().to_string()),
                |p| p.display().to_string()
            )
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = cfg
        .hosts
        .iter()
        .map(|(name, h)| {
            vec![
                name.clone(),
                h.connector.name().into(),
                if h.destination.is_empty() {
                    "-".into()
                } else {
                    h.destination.clone()
                },
                h.scheduler.map_or("-".into(), |s| s.name().to_string()),
                groups_of(name).join(" "),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["HOST", "CONNECTOR", "DESTINATION", "SCHEDULER", "GROUPS"],
            &rows
        )
    );
    println!("({})", cfg.path_text());
    Ok(ExitCode::SUCCESS)
}

/// The endpoint's version, or why there is no usable endpoint (nothing is installed).
async fn version(client: &Client) -> Result<Result<String, String>, Error> {
    match client.call::<Value>("sys", "version").await {
        Ok(out) => Ok(Ok(out.meta.endpoint_version)),
        Err(Error::NotSetup(e)) => Ok(Err(e.reason.clone())),
        Err(e) => Err(e),
    }
}

/// Whether the host has this very custom endpoint (by SHA-256); when it has, `client`
/// calls it from now on. Installs nothing.
async fn custom_installed(
    c: &Connected,
    client: &Client,
    custom: &CustomEndpoint,
) -> Result<bool, Error> {
    let artifact = c.artifact(custom)?;
    let mut facts = client.probe_host(&artifact.install_name).await?;
    // A host whose endpoint lives elsewhere says so in `~/.sremote/.location`.
    let moved = facts
        .location
        .as_deref()
        .and_then(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .and_then(|v| v.get("sremote")?.as_str().map(str::to_owned))
        .filter(|d| c.spec.endpoint_dir.is_none() && !d.is_empty() && *d != client.sremote_dir());
    if let Some(dir) = moved {
        client.set_sremote_dir(dir);
        facts = client.probe_host(&artifact.install_name).await?;
    }
    if facts.installed_sha256.as_deref() != Some(artifact.sha256.as_str()) {
        return Ok(false);
    }
    // Current: this "install" is one probe and points the client at it.
    client.do_bootstrap_install_with(&custom.path).await?;
    Ok(true)
}

/// What `hosts check` found on a reachable host.
struct Check {
    connect: Duration,
    /// `Ok(version)`, or why there is no usable endpoint.
    endpoint: Result<String, String>,
    latency: Duration,
    destination: String,
}

/// The table's columns.
const CHECK_HEADER: [&str; 6] = [
    "HOST",
    "STATUS",
    "ENDPOINT",
    "LATENCY",
    "CONNECT",
    "DESTINATION",
];

async fn check(names: Vec<String>, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let names = if names.is_empty() {
        configured_hosts(&opts, "hosts check")?
    } else {
        names
    };
    let targets = opts.resolve(&names)?;
    let o = opts.clone();
    let results = fanout::map(&targets.hosts, opts.parallel, |spec| {
        check_host(spec, o.clone())
    })
    .await;
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (spec, r) in targets.hosts.iter().zip(results) {
        let name = &spec.name;
        match r {
            Ok(ch) => {
                if opts.json {
                    println!("{}", check_json(name, &ch));
                }
                rows.push(check_row(name, ch));
            }
            Err(e) => {
                if opts.json {
                    println!(
                        "{}",
                        json!({"host": name, "ok": false, "reachable": false, "error": output::error_json(&e)})
                    );
                }
                let dash = || "-".to_string();
                let (status, destination) = ("unreachable".into(), spec.destination.clone());
                rows.push(vec![
                    name.clone(),
                    status,
                    dash(),
                    dash(),
                    dash(),
                    destination,
                ]);
                failed.push((name.clone(), e));
            }
        }
    }
    if !opts.json {
        print!("{}", output::table(&CHECK_HEADER, &rows));
    }
    Ok(finish_hosts(targets.hosts.len(), &failed, opts.json))
}

/// The end of a command that asked `total` hosts: each failure on stderr (unless
/// `--json`, whose lines carry them), then the summary line; the exit code.
pub(crate) fn finish_hosts(total: usize, failed: &[(String, Error)], json: bool) -> ExitCode {
    if !json {
        for (host, e) in failed {
            fanout::report_error(host, e);
        }
    }
    let failed: Vec<_> = failed
        .iter()
        .map(|(h, e)| (h.clone(), output::error_kind(e), output::exit_code(e)))
        .collect();
    fanout::summary(total, &failed)
}

/// The hosts a command without host names works on: every configured one (`command`,
/// e.g. `hosts check`, names the command in the error when there are none).
pub(crate) fn configured_hosts(opts: &HostOptions, command: &str) -> Result<Vec<String>, Error> {
    let cfg = opts.config()?;
    if cfg.hosts.is_empty() {
        return Err(Error::usage(
            format!(
                "no hosts given and none configured in {}",
                crate::config::default_path().map_or_else(
                    || "~/.config/sremote/config.toml".into(),
                    |p| p.display().to_string()
                )
            ),
            format!("name hosts (`sremote {command} HOST…`) or add [hosts.NAME] to the config"),
        ));
    }
    Ok(cfg.hosts.keys().cloned().collect())
}

/// Connect to one host, see whether its endpoint (the stock one, or the host's custom
/// one) is installed, and measure the best of three round trips: a call when there is an
/// endpoint, else an `exec` of `true`. Installs nothing.
async fn check_host(spec: HostSpec, opts: Arc<HostOptions>) -> Result<Check, Error> {
    let t = Instant::now();
    let c = connect_transport(&spec, &opts).await?;
    let connect = t.elapsed();
    let client = c.base_client();
    client.set_auto_bootstrap(false);
    let endpoint = match &c.endpoint {
        None => version(&client).await?,
        Some(custom) if custom_installed(&c, &client, custom).await? => version(&client).await?,
        Some(custom) => Err(format!(
            "the custom endpoint {} is not installed, or another build is",
            custom.path.display()
        )),
    };
    let mut latency = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        if endpoint.is_ok() {
            client.call::<Value>("sys", "version").await?;
        } else {
            c.connector.exec(&RemoteCommand::new("true")).await?;
        }
        latency = latency.min(t.elapsed());
    }
    Ok(Check {
        connect,
        endpoint,
        latency,
        destination: c.connector.host().to_string(),
    })
}

/// A reachable host's line under `--json`.
fn check_json(name: &str, ch: &Check) -> Value {
    json!({"host": name, "ok": true, "reachable": true, "destination": ch.destination,
           "endpoint_version": ch.endpoint.as_ref().ok(), "endpoint_problem": ch.endpoint.as_ref().err(),
           "connect_ms": ch.connect.as_secs_f64() * 1e3, "latency_ms": ch.latency.as_secs_f64() * 1e3})
}

/// A reachable host's table row.
fn check_row(name: &str, ch: Check) -> Vec<String> {
    let (status, version) = match ch.endpoint {
        Ok(v) => (
            output::paint("ok", output::Style::Ok, output::colour_stdout()),
            v,
        ),
        Err(_) => (
            "no endpoint".to_string(),
            format!("- (sremote bootstrap {name})"),
        ),
    };
    vec![
        name.to_string(),
        status,
        version,
        output::duration(ch.latency),
        output::duration(ch.connect),
        ch.destination,
    ]
}
