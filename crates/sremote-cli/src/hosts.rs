//! Turning a HOST argument into a connector.

use std::sync::Arc;

use sremote_core::{Connector, Error, LocalConnector};
use sremote_rest::{NewtConnector, NewtTarget};
use sremote_ssh::SshConnector;

/// Options that shape how hosts are reached.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// An ssh config file (`ssh -F`).
    pub ssh_config: Option<std::path::PathBuf>,
}

/// Connect to `host`: `local` (this machine, no ssh), a REST gateway
/// (`newt+https://USER@HOST[:PORT]/BASE/MACHINE`), or an ssh destination —
/// `[ssh://][user@]host[:port]` or an alias from the ssh config.
pub async fn connect(host: &str, opts: &HostOptions) -> Result<Arc<dyn Connector>, Error> {
    if host == "local" {
        return Ok(Arc::new(LocalConnector::new()));
    }
    if NewtTarget::matches(host) {
        return Ok(Arc::new(connect_newt(host).await?));
    }
    if host.is_empty()
        || host.starts_with('-')
        || host.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Usage(format!(
            "{host:?} is not a host: give `local`, user@host, ssh://user@host:port or an ssh config alias"
        )));
    }
    let mut builder = SshConnector::builder();
    if let Some(cfg) = &opts.ssh_config {
        builder = builder.config_file(cfg);
    }
    Ok(Arc::new(builder.connect(host).await?))
}

/// Log in to a NEWT REST API. Credentials never come from the command line:
/// `SREMOTE_NEWT_TOKEN` (a session id or bearer token), else the password from
/// `SREMOTE_NEWT_PASSWORD`, else a prompt on the terminal. `SREMOTE_NEWT_CA` names a PEM
/// file of extra trusted certificates (a self-signed gateway).
async fn connect_newt(host: &str) -> Result<NewtConnector, Error> {
    let target = NewtTarget::parse(host)?;
    let mut builder = NewtConnector::builder(&target.base_url, &target.machine);
    if let Some(ca) = std::env::var_os("SREMOTE_NEWT_CA") {
        let pem = std::fs::read(&ca).map_err(|e| {
            Error::Usage(format!(
                "cannot read SREMOTE_NEWT_CA={}: {e}",
                std::path::Path::new(&ca).display()
            ))
        })?;
        builder = builder.root_certificates_pem(&pem);
    }
    if let Ok(token) = std::env::var("SREMOTE_NEWT_TOKEN") {
        return Ok(builder.with_session(&token)?);
    }
    let user = match target.user.clone().or_else(|| std::env::var("USER").ok()) {
        Some(u) => u,
        None => {
            return Err(Error::Usage(format!(
                "{host}: name the user, as newt+https://USER@HOST/BASE/MACHINE"
            )));
        }
    };
    let password = match std::env::var("SREMOTE_NEWT_PASSWORD") {
        Ok(p) => p,
        Err(_) => rpassword::prompt_password(format!("password for {user} at {}: ", target.base_url)).map_err(|e| {
            Error::Usage(format!(
                "{host}: no password: set SREMOTE_NEWT_PASSWORD or SREMOTE_NEWT_TOKEN, or run on a terminal ({e})"
            ))
        })?,
    };
    Ok(builder.login(&user, &password).await?)
}
