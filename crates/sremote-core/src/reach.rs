//! [`Reach`]: what is needed to connect to a host again later — from another process,
//! another front end (CLI, library, Python) — without the options it was first reached
//! with. The job store records it with every job.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How to reach a host again: the connector kind and its destination, and everything
/// given besides the destination (user, port, ssh config file, the hosts-config entry
/// and file, the sremote dir). Serialized as JSON in the job store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reach {
    /// `local`, `ssh` or `newt`.
    pub connector: String,
    /// The ssh destination (host name or ssh config alias, without user and port) or the
    /// `newt+https://…` URL; empty for `local`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub destination: String,
    /// The login user, when given apart from the ssh config (`ssh -l`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The port, when given apart from the ssh config (`ssh -p`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The ssh config file (`ssh -F`), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_config: Option<PathBuf>,
    /// The host's name in the hosts config, when it came from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The hosts config file that named [`host`](Self::host), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_config: Option<PathBuf>,
    /// The sremote dir on the host, when not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_dir: Option<String>,
}

impl Reach {
    /// This machine.
    pub fn local() -> Reach {
        Reach {
            connector: "local".into(),
            ..Default::default()
        }
    }

    /// An ssh destination (host name or alias) with no other option.
    pub fn ssh(destination: impl Into<String>) -> Reach {
        Reach {
            connector: "ssh".into(),
            destination: destination.into(),
            ..Default::default()
        }
    }

    /// A NEWT REST API URL (`newt+https://USER@GATEWAY/BASE/MACHINE`).
    pub fn newt(url: impl Into<String>) -> Reach {
        Reach {
            connector: "newt".into(),
            destination: url.into(),
            ..Default::default()
        }
    }

    /// The JSON text the job store keeps.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Parse [`to_json`](Self::to_json)'s text.
    pub fn from_json(text: &str) -> Result<Reach, String> {
        serde_json::from_str(text).map_err(|e| format!("unreadable reach spec {text:?}: {e}"))
    }

    /// A path made absolute against the current directory (a file named relative to where
    /// the submitting program ran must still be found from elsewhere).
    pub fn absolute(path: &std::path::Path) -> PathBuf {
        std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
    }
}
