//! Turning a HOST argument into connectors: config names, groups (`@gpu`), comma lists,
//! `local`, `newt+https://…` URLs and ssh destinations.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use sremote_core::{Connector, EndpointArtifact, Error, RemoteCommand};
use sremote_hosts::connect::{self, NewtAuth};
use sremote_ssh::SshConnector;

use crate::config::{Config, HostSpec};

/// Options that shape how hosts are reached.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// An ssh config file (`ssh -F`) for hosts whose config entry names none.
    pub ssh_config: Option<PathBuf>,
    /// The hosts config file (`--config`, `$SREMOTE_CONFIG`); `None`: the default path.
    pub config_path: Option<PathBuf>,
    /// Hosts worked on at once in a fan-out.
    pub parallel: usize,
    /// One JSON object per result instead of text.
    pub json: bool,
    /// A custom endpoint binary for every host (`--endpoint`, `$SREMOTE_CUSTOM_ENDPOINT`);
    /// it wins over a host's `endpoint` in the config.
    pub endpoint: Option<PathBuf>,
    /// Do not keep ssh logins for later commands (`--no-persist`).
    pub no_persist: bool,
    config: OnceLock<Arc<Config>>,
}

impl HostOptions {
    pub fn new(
        ssh_config: Option<PathBuf>,
        config_path: Option<PathBuf>,
        parallel: usize,
        json: bool,
        endpoint: Option<PathBuf>,
    ) -> Self {
        HostOptions {
            ssh_config,
            config_path,
            parallel: parallel.max(1),
            json,
            endpoint,
            no_persist: false,
            config: OnceLock::new(),
        }
    }

    /// The hosts config, read (and its warnings printed) on first use.
    pub fn config(&self) -> Result<Arc<Config>, Error> {
        if let Some(c) = self.config.get() {
            return Ok(c.clone());
        }
        let cfg = Arc::new(Config::load(self.config_path.as_deref())?);
        for w in &cfg.warnings {
            crate::output::warn(w);
        }
        Ok(self.config.get_or_init(|| cfg).clone())
    }

    /// Resolve HOST arguments: each may be a config name, a destination, a group (`@gpu`)
    /// or a comma list of those. `fanout` is set when the syntax names several hosts
    /// (even if they turn out to be one), so output is prefixed by host.
    pub fn resolve<S: AsRef<str>>(&self, args: &[S]) -> Result<Targets, Error> {
        let cfg = self.config()?;
        let mut hosts: Vec<HostSpec> = Vec::new();
        let mut fanout = args.len() > 1;
        for arg in args {
            let arg = arg.as_ref();
            if arg.contains(',') {
                fanout = true;
            }
            for part in arg.split(',').map(str::trim) {
                if part.is_empty() {
                    return Err(Error::usage(
                        format!("{arg:?}: an empty host in the list"),
                        "give HOST, a,b,c or @group",
                    ));
                }
                let names = match part.strip_prefix('@') {
                    Some(group) => {
                        fanout = true;
                        cfg.group_members(group)?
                    }
                    None => vec![part.to_string()],
                };
                for name in names {
                    if !hosts.iter().any(|h| h.name == name) {
                        hosts.push(cfg.host(&name));
                    }
                }
            }
        }
        if hosts.is_empty() {
            return Err(Error::usage("no host given", "name a HOST"));
        }
        Ok(Targets { fanout, hosts })
    }

    /// Resolve arguments that must name exactly one host.
    pub fn resolve_one(&self, arg: &str, command: &str) -> Result<HostSpec, Error> {
        let mut t = self.resolve(&[arg])?;
        if t.fanout || t.hosts.len() != 1 {
            return Err(Error::usage(
                format!(
                    "{command} works on one host only (no a,b,c lists or @groups), and {arg:?} \
                     is a list or a group"
                ),
                "name one host",
            ));
        }
        Ok(t.hosts.remove(0))
    }
}

/// The hosts a command runs on.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Several hosts were asked for (list or group): prefix output by host.
    pub fanout: bool,
    pub hosts: Vec<HostSpec>,
}

/// The client type of the CLI.
pub type Client = connect::Client;

/// A custom endpoint binary and where it was named (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomEndpoint {
    pub path: PathBuf,
    /// `--endpoint` (or its variable), or the host's config entry.
    pub origin: String,
}

/// A connected host.
#[derive(Debug, Clone)]
pub struct Connected {
    pub spec: HostSpec,
    pub connector: Arc<dyn Connector>,
    /// The ssh connector itself, for ssh hosts (tunnels use its control socket).
    pub ssh: Option<SshConnector>,
    /// The custom endpoint calls on this host go to, if any.
    pub endpoint: Option<CustomEndpoint>,
    /// The client, made (and a custom endpoint installed) once per connection.
    client: Arc<tokio::sync::OnceCell<Client>>,
}

impl Connected {
    /// The client for calls on this host: the host's configured env, path and endpoint
    /// dir applied, and the custom endpoint, when one is named (`--endpoint`,
    /// `$SREMOTE_CUSTOM_ENDPOINT` or the host's `endpoint` key), already installed by
    /// [`connect_spec`] and used for every call. Clones share it.
    ///
    /// After [`connect_transport`] (which leaves the endpoint alone) use
    /// [`Connected::endpoint_client`].
    pub fn client(&self) -> Client {
        if let Some(c) = self.client.get() {
            return c.clone();
        }
        if self.endpoint.is_some() {
            tracing::warn!(
                host = %self.spec.name,
                "client() before the custom endpoint was installed: calls go to the stock endpoint"
            );
        }
        let c = self.base_client();
        let _ = self.client.set(c.clone());
        self.client.get().cloned().unwrap_or(c)
    }

    /// [`Connected::client`], installing the custom endpoint first if that has not been
    /// done on this connection yet (one probe `exec` when it is current).
    pub async fn endpoint_client(&self) -> Result<Client, Error> {
        self.client
            .get_or_try_init(|| async {
                let client = self.base_client();
                if let Some(custom) = &self.endpoint {
                    self.artifact(custom)?;
                    client.do_bootstrap_install_with(&custom.path).await?;
                }
                Ok(client)
            })
            .await
            .cloned()
    }

    /// The custom endpoint as an artifact, or an error naming where it was configured.
    pub fn artifact(&self, custom: &CustomEndpoint) -> Result<EndpointArtifact, Error> {
        EndpointArtifact::custom(&custom.path).map_err(|e| {
            Error::usage(
                format!(
                    "cannot use the custom endpoint {} for {} (named by {}): {}",
                    custom.path.display(),
                    self.spec.name,
                    custom.origin,
                    e.message()
                ),
                "build it (see examples/custom-endpoint), or fix the path",
            )
        })
    }

    /// A client with the host's configured env, path and endpoint dir, and nothing
    /// installed (`hosts check` looks before it installs anything).
    pub fn base_client(&self) -> Client {
        connect::configured_client(&self.spec, self.connector.clone())
    }

    /// `program args…` with the host's configured env and path additions (the path
    /// through [`PATH_WRAPPER`]: the program and its arguments stay argv words).
    pub fn command(&self, argv: &[String]) -> RemoteCommand {
        let mut cmd = if self.spec.path.is_empty() {
            RemoteCommand::new(argv.first().cloned().unwrap_or_default()).args(argv.iter().skip(1))
        } else {
            RemoteCommand::new("/bin/sh").args(with_path(&self.spec.path, argv))
        };
        for (k, v) in &self.spec.env {
            cmd = cmd.env(k, v);
        }
        cmd
    }
}

/// Puts `$1` (the configured path, `:`-joined; empty: none) first in PATH, then becomes
/// the program `$2…`. Variable data reaches it only as positional arguments.
pub const PATH_WRAPPER: &str =
    r#"p=$1; shift; if [ -n "$p" ]; then PATH=$p:$PATH; export PATH; fi; exec "$@""#;

/// The arguments of `/bin/sh` that run `argv` with `path` first in PATH.
pub fn with_path(path: &[String], argv: &[String]) -> Vec<String> {
    let mut out = vec![
        "-c".to_string(),
        PATH_WRAPPER.to_string(),
        "sremote-path".to_string(),
        path.join(":"),
    ];
    out.extend(argv.iter().cloned());
    out
}

/// A client for `host` as [`Connected::client`] makes it: configured env, path and
/// endpoint dir applied, a custom endpoint installed and used when one is named.
pub async fn client(host: &str, opts: &HostOptions) -> Result<Client, Error> {
    let spec = opts.resolve_one(host, "this command")?;
    Ok(connect_spec(&spec, opts).await?.client())
}

/// The custom endpoint for `spec`: `--endpoint`/`$SREMOTE_CUSTOM_ENDPOINT`, else the
/// host's `endpoint` key.
pub fn custom_endpoint(spec: &HostSpec, opts: &HostOptions) -> Option<CustomEndpoint> {
    if let Some(p) = &opts.endpoint {
        return Some(CustomEndpoint {
            path: p.clone(),
            origin: "--endpoint / SREMOTE_CUSTOM_ENDPOINT".into(),
        });
    }
    let p = spec.endpoint.as_ref()?;
    let file = opts
        .config()
        .ok()
        .map_or_else(|| "the config".to_string(), |c| c.path_text());
    Some(CustomEndpoint {
        path: p.clone(),
        origin: format!("`endpoint` of [hosts.{}] in {file}", spec.name),
    })
}

/// Connect to a resolved host for calls: when a custom endpoint is named for it, that
/// binary is installed now (when missing or changed) and [`Connected::client`] calls it.
pub async fn connect_spec(spec: &HostSpec, opts: &HostOptions) -> Result<Connected, Error> {
    let c = connect_transport(spec, opts).await?;
    if c.endpoint.is_some() {
        c.endpoint_client().await?;
    }
    Ok(c)
}

tokio::task_local! {
    /// The ssh connections one host's task of a fan-out opened ([`closing`]).
    static OPENED: Arc<std::sync::Mutex<Vec<SshConnector>>>;
}

/// Run `work` (one host's part of a fan-out), then close the ssh connections it opened
/// ([`SshConnector::close`]: its own masters; persisted ones stay for later commands) and
/// wait until they are gone. So with `--parallel N` at most N hosts' connections are open
/// at once: a finished host's connection is closed before the next host's login starts.
pub async fn closing<F: std::future::Future>(work: F) -> F::Output {
    let opened = Arc::<std::sync::Mutex<Vec<SshConnector>>>::default();
    let out = OPENED.scope(opened.clone(), work).await;
    let list = std::mem::take(&mut *opened.lock().unwrap_or_else(|e| e.into_inner()));
    for ssh in list {
        if let Err(e) = ssh.close().await {
            tracing::warn!("{e}");
        }
    }
    out
}

/// Connect to a resolved host for programs and files only: nothing is installed (a
/// custom endpoint waits for [`Connected::endpoint_client`]).
pub async fn connect_transport(spec: &HostSpec, opts: &HostOptions) -> Result<Connected, Error> {
    let newt = NewtAuth {
        prompt: Some(Box::new(|user: &str, base: &str| {
            rpassword::prompt_password(format!("password for {user} at {base}: ")).map_err(|e| {
                format!(
                    "set SREMOTE_NEWT_PASSWORD or SREMOTE_NEWT_TOKEN, or run on a terminal ({e})"
                )
            })
        })),
        ..NewtAuth::from_env()
    };
    let how = connect::ConnectOptions {
        default_persist: Some(connect::DEFAULT_PERSIST),
        no_persist: opts.no_persist,
        prompt: None,
    };
    let c = connect::connect_with(spec, opts.ssh_config.as_deref(), &newt, &how).await?;
    if let Some(ssh) = &c.ssh {
        // Outside a fan-out's `closing` nobody collects it: dropping it is the end.
        let _ = OPENED.try_with(|o| {
            o.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ssh.clone());
        });
    }
    Ok(Connected {
        spec: c.spec,
        connector: c.connector,
        ssh: c.ssh,
        endpoint: custom_endpoint(spec, opts),
        client: Arc::default(),
    })
}
