//! Turning a HOST argument into a connector.

use std::sync::Arc;

use sremote_core::{Connector, Error, LocalConnector};

/// Options that shape how hosts are reached.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// An ssh config file (`ssh -F`).
    pub ssh_config: Option<std::path::PathBuf>,
}

/// Connect to `host`: `local`, or (with the ssh connector) `[ssh://][user@]host[:port]`
/// or an alias from the ssh config.
pub async fn connect(host: &str, opts: &HostOptions) -> Result<Arc<dyn Connector>, Error> {
    let _ = opts;
    if host == "local" {
        return Ok(Arc::new(LocalConnector::new()));
    }
    Err(Error::Usage(format!(
        "unknown host {host:?}: this build knows `local` only — ssh destinations \
         (user@host, ssh://user@host:port, ~/.ssh/config aliases) come with the ssh connector"
    )))
}
