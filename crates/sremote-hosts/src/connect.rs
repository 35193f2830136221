//! Connecting one resolved host ([`HostSpec`]): the connector for its kind (local, ssh,
//! NEWT) and a client with the host's configured env, path and endpoint dir applied.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sremote_core::{Connector, Error, LocalConnector, Reach, RemoteClient};
use sremote_rest::{NewtConnector, NewtTarget};
use sremote_ssh::SshConnector;

use crate::config::{Config, ConnectorKind, HostSpec};

/// A client over any connector (what every front end holds).
pub type Client = RemoteClient<Arc<dyn Connector>>;

/// A connected host: its spec, its connector, and the ssh connector itself for ssh hosts
/// (tunnels use its control socket).
#[derive(Debug, Clone)]
pub struct Connection {
    pub spec: HostSpec,
    pub connector: Arc<dyn Connector>,
    pub ssh: Option<SshConnector>,
}

impl Connection {
    /// A client with the host's configured env, path and endpoint dir, nothing installed.
    pub fn client(&self) -> Client {
        configured_client(&self.spec, self.connector.clone())
    }

    /// How to reach this host again from any front end, later: see [`reach_of`].
    pub fn reach(&self, hosts_config: Option<&Path>) -> Reach {
        reach_of(&self.spec, self.connector.as_ref(), hosts_config)
    }
}

/// How to reach the host `spec` (connected through `connector`) again later, without the
/// options it was reached with this time: what the connector reports (ssh: destination,
/// user, port, config file), the connector kind, the NEWT URL, the hosts-config entry and
/// `hosts_config` (the file it was read from) when the host is configured, and its
/// sremote dir. Recorded with every job.
pub fn reach_of(spec: &HostSpec, connector: &dyn Connector, hosts_config: Option<&Path>) -> Reach {
    let mut reach = connector.reach().unwrap_or_default();
    reach.connector = spec.connector.name().to_string();
    match spec.connector {
        ConnectorKind::Local => reach.destination.clear(),
        ConnectorKind::Newt => reach.destination = spec.destination.clone(),
        ConnectorKind::Ssh => {
            if reach.destination.is_empty() {
                reach.destination = spec.destination.clone();
            }
            if reach.ssh_config.is_none() {
                reach.ssh_config = spec.ssh_config.as_deref().map(Reach::absolute);
            }
        }
    }
    if spec.configured {
        reach.host = Some(spec.name.clone());
        reach.hosts_config = hosts_config
            .map(Path::to_path_buf)
            .or_else(crate::config::default_path)
            .map(|p| Reach::absolute(&p));
    }
    if reach.endpoint_dir.is_none() {
        reach.endpoint_dir = spec.endpoint_dir.clone();
    }
    reach
}

/// The host a recorded [`Reach`] names: its entry in the hosts config when it came from
/// one and the entry is still there (`config` when the user named a config file now, else
/// the recorded file), else the recorded connection itself (kind, destination with user
/// and port, ssh config file, sremote dir).
pub fn spec_for_reach(reach: &Reach, config: Option<&Config>) -> HostSpec {
    if let Some(name) = &reach.host {
        let loaded;
        let config = match config {
            Some(c) => Some(c),
            None => {
                loaded = Config::load(reach.hosts_config.as_deref()).ok();
                loaded.as_ref()
            }
        };
        if let Some(spec) = config.and_then(|c| c.hosts.get(name)) {
            return spec.clone();
        }
    }
    let connector = match reach.connector.as_str() {
        "local" => ConnectorKind::Local,
        "newt" => ConnectorKind::Newt,
        _ => ConnectorKind::Ssh,
    };
    let destination = match connector {
        ConnectorKind::Ssh if reach.user.is_some() || reach.port.is_some() => {
            let host = if reach.destination.contains(':') {
                format!("[{}]", reach.destination)
            } else {
                reach.destination.clone()
            };
            let user = reach
                .user
                .as_ref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default();
            let port = reach.port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("ssh://{user}{host}{port}")
        }
        _ => reach.destination.clone(),
    };
    let name = match (&reach.host, connector) {
        (Some(n), _) => n.clone(),
        (None, ConnectorKind::Local) => "local".into(),
        (None, _) => destination.clone(),
    };
    HostSpec {
        name,
        connector,
        destination,
        ssh_config: reach.ssh_config.clone(),
        endpoint_dir: reach.endpoint_dir.clone(),
        ..HostSpec::default()
    }
}

/// A client over `connector` with `spec`'s env, path, endpoint dir and setup applied.
pub fn configured_client(spec: &HostSpec, connector: Arc<dyn Connector>) -> Client {
    let client = RemoteClient::new(connector);
    for (k, v) in &spec.env {
        client.register_remote_env_variable(k, v);
    }
    for p in &spec.path {
        client.add_remote_path(p);
    }
    if let Some(d) = &spec.endpoint_dir {
        client.set_sremote_dir(d);
    }
    if spec.venv.is_some() {
        // Checked when the config was read.
        let _ = client.set_venv(spec.venv.as_deref());
    }
    if !spec.setup.is_empty() || spec.login_shell {
        client.set_setup(spec.setup.iter().cloned());
        client.set_login_shell(spec.login_shell);
    }
    client
}

/// How a NEWT login gets its credentials. Never from a command line.
pub struct NewtAuth {
    /// A session id or bearer token (`SREMOTE_NEWT_TOKEN`); wins over the password.
    pub token: Option<String>,
    /// The password (`SREMOTE_NEWT_PASSWORD`).
    pub password: Option<String>,
    /// PEM file of extra trusted certificates (`SREMOTE_NEWT_CA`).
    pub ca: Option<std::path::PathBuf>,
    /// Asked for the password when there is neither token nor password (a terminal
    /// prompt in the CLI); `Err` says why there is none.
    #[expect(
        clippy::type_complexity,
        reason = "a one-off callback type, clearer written out than named"
    )]
    pub prompt: Option<Box<dyn Fn(&str, &str) -> Result<String, String> + Send + Sync>>,
}

impl std::fmt::Debug for NewtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewtAuth")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("ca", &self.ca)
            .finish()
    }
}

impl NewtAuth {
    /// Credentials from `SREMOTE_NEWT_TOKEN`, `SREMOTE_NEWT_PASSWORD`, `SREMOTE_NEWT_CA`;
    /// no prompt.
    pub fn from_env() -> NewtAuth {
        NewtAuth {
            token: std::env::var("SREMOTE_NEWT_TOKEN").ok(),
            password: std::env::var("SREMOTE_NEWT_PASSWORD").ok(),
            ca: std::env::var_os("SREMOTE_NEWT_CA").map(Into::into),
            prompt: None,
        }
    }
}

/// Whether `host` can be an ssh destination at all (not empty, no option, no blanks).
pub fn check_destination(host: &str) -> Result<(), Error> {
    if host.is_empty()
        || host.starts_with('-')
        || host.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Usage(format!(
            "{host:?} is not a host: give `local`, user@host, ssh://user@host:port, an ssh config alias, \
             a name from the hosts config or @group"
        )));
    }
    Ok(())
}

/// How long the CLI keeps an ssh login for later commands by default (10 min).
pub const DEFAULT_PERSIST: Duration = Duration::from_secs(600);

/// Parse a `persist` value: `0` (or `no`, `off`: no persisted connection), a number of
/// seconds, or a number with a unit `s`, `m`, `h`, `d` (`90s`, `10m`, `4h`, `1h30m`).
pub fn parse_persist(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "persist = {text:?} is not a duration: write e.g. \"10m\", \"4h\", \"90s\", or \"0\" for none"
        )
    };
    if matches!(t, "0" | "no" | "off" | "false") {
        return Ok(Duration::ZERO);
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let (mut total, mut number) = (0u64, String::new());
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || t.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Options of [`connect_with`] beyond the host spec.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Keep ssh logins for later programs this long when the host's config says nothing
    /// (`None`: a connection of this program's own, closed when it ends).
    pub default_persist: Option<Duration>,
    /// Never persist, whatever the config says (`--no-persist`).
    pub no_persist: bool,
    /// Answers ssh's login prompts (password, one-time code); without it, ssh asks on the
    /// terminal when there is one.
    pub prompt: Option<sremote_ssh::Prompt>,
}

/// Connect to a resolved host: nothing is installed. `ssh_config` is used for ssh hosts
/// whose config entry names none. The ssh login is persisted only when the host's config
/// says `persist` (see [`connect_with`]).
pub async fn connect(
    spec: &HostSpec,
    ssh_config: Option<&Path>,
    newt: &NewtAuth,
) -> Result<Connection, Error> {
    connect_with(spec, ssh_config, newt, &ConnectOptions::default()).await
}

/// [`connect`] with options: how long to keep the ssh login for later programs, and how to
/// answer login prompts.
pub async fn connect_with(
    spec: &HostSpec,
    ssh_config: Option<&Path>,
    newt: &NewtAuth,
    opts: &ConnectOptions,
) -> Result<Connection, Error> {
    let done = |connector: Arc<dyn Connector>, ssh| Connection {
        spec: spec.clone(),
        connector,
        ssh,
    };
    match spec.connector {
        ConnectorKind::Local => Ok(done(Arc::new(LocalConnector::new()), None)),
        ConnectorKind::Newt => Ok(done(
            Arc::new(connect_newt(&spec.destination, newt).await?),
            None,
        )),
        ConnectorKind::Ssh => {
            let host = spec.destination.as_str();
            check_destination(host)?;
            let mut builder = SshConnector::builder();
            if let Some(cfg) = spec.ssh_config.as_deref().or(ssh_config) {
                builder = builder.config_file(cfg);
            }
            let persist = spec.persist.or(opts.default_persist);
            if !opts.no_persist {
                builder = builder.persist(persist);
            }
            if let Some(p) = &opts.prompt {
                builder = builder.prompt(p.clone());
            }
            let ssh = builder.connect(host).await?;
            Ok(done(Arc::new(ssh.clone()), Some(ssh)))
        }
    }
}

/// Log in to a NEWT REST API at `host` (`newt+https://USER@GATEWAY/BASE/MACHINE`) with
/// the token, else the password, else the prompt of `auth`. `newt+http://` is refused
/// beyond loopback unless `SREMOTE_NEWT_ALLOW_HTTP=1`.
pub async fn connect_newt(host: &str, auth: &NewtAuth) -> Result<NewtConnector, Error> {
    let target = NewtTarget::parse(host)?;
    let mut builder = NewtConnector::builder(&target.base_url, &target.machine);
    if let Some(ca) = &auth.ca {
        let pem = std::fs::read(ca).map_err(|e| {
            Error::Usage(format!(
                "cannot read the CA file {} (SREMOTE_NEWT_CA): {e}",
                ca.display()
            ))
        })?;
        builder = builder.root_certificates_pem(&pem);
    }
    // Plain http:// beyond loopback only when the user insists (SREMOTE_NEWT_ALLOW_HTTP=1).
    if std::env::var_os("SREMOTE_NEWT_ALLOW_HTTP").is_some_and(|v| v == "1") {
        builder = builder.allow_plain_http(true);
    }
    if let Some(token) = &auth.token {
        return Ok(builder.with_session(token)?);
    }
    let Some(user) = target.user.clone().or_else(|| std::env::var("USER").ok()) else {
        return Err(Error::Usage(format!(
            "{host}: name the user, as newt+https://USER@HOST/BASE/MACHINE"
        )));
    };
    let password = match (&auth.password, &auth.prompt) {
        (Some(p), _) => p.clone(),
        (None, Some(prompt)) => prompt(&user, &target.base_url)
            .map_err(|e| Error::Usage(format!("{host}: no password: {e}")))?,
        (None, None) => {
            return Err(Error::Usage(format!(
                "{host}: no password: set SREMOTE_NEWT_PASSWORD or SREMOTE_NEWT_TOKEN (or pass \
                 password=/token=)"
            )));
        }
    };
    Ok(builder.login(&user, &password).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_values() {
        assert_eq!(parse_persist("0"), Ok(Duration::ZERO));
        assert_eq!(parse_persist("off"), Ok(Duration::ZERO));
        assert_eq!(parse_persist("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_persist("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_persist("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_persist("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "soon", "4x", "m", "10m5"] {
            assert!(parse_persist(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn persist_in_the_hosts_config() {
        let path =
            std::env::temp_dir().join(format!("sremote-persist-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[hosts.a]\npersist = \"4h\"\n[hosts.b]\npersist = \"0\"\n[hosts.c]\n",
        )
        .unwrap();
        let cfg = Config::load(Some(&path)).unwrap();
        assert_eq!(cfg.hosts["a"].persist, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(cfg.hosts["b"].persist, Some(Duration::ZERO));
        assert_eq!(cfg.hosts["c"].persist, None);
        std::fs::write(&path, "[hosts.a]\npersist = \"soon\"\n").unwrap();
        let e = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("not a duration"), "{e}");
        let _ = std::fs::remove_file(&path);
    }
}
