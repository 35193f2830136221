//! Turning a HOST argument into a connector.

use std::sync::Arc;

use sremote_core::{Connector, Error, LocalConnector};
use sremote_ssh::SshConnector;

/// Options that shape how hosts are reached.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// An ssh config file (`ssh -F`).
    pub ssh_config: Option<std::path::PathBuf>,
}

/// Connect to `host`: `local` (this machine, no ssh), or an ssh destination —
/// `[ssh://][user@]host[:port]` or an alias from the ssh config.
pub async fn connect(host: &str, opts: &HostOptions) -> Result<Arc<dyn Connector>, Error> {
    if host == "local" {
        return Ok(Arc::new(LocalConnector::new()));
    }
    if host.is_empty() || host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
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
