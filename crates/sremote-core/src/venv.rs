//! Per-project Python environments on the host: `<sremote dir>/venvs/NAME`.
//!
//! [`RemoteClient::set_venv`] makes a client work in one: its Python calls and jobs run
//! that venv's interpreter (the endpoint reads `$SREMOTE_VENV`, which every call carries),
//! and its installs ([`install_python_packages`](RemoteClient::install_python_packages),
//! git modules) go into it, creating it with `python3 -m venv` when missing. Without one,
//! the endpoint's own venv `<sremote dir>/venv` is used, as before.

use serde::{Deserialize, Serialize};

use crate::client::{RemoteClient, lock};
use crate::connector::{Connector, RemoteCommand};
use crate::error::Error;

/// The variable every call of a client with a venv carries.
pub const VENV_ENV: &str = "SREMOTE_VENV";

/// One project venv on a host and its Python packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenvInfo {
    /// Its name (a directory under the venvs root).
    pub name: String,
    /// Its interpreter (absolute).
    pub python: String,
    /// The interpreter's version (`3.11.2`).
    pub version: String,
    /// `(name, version)` of every installed distribution, by name.
    pub packages: Vec<(String, String)>,
}

/// A venv name: `[A-Za-z0-9_.-]`, not starting with `.` or `-`
/// ([`is_plain_name`](crate::protocol::is_plain_name)).
pub fn valid_venv_name(name: &str) -> bool {
    crate::protocol::is_plain_name(name)
}

/// `$1` sremote dir: one JSON line per venv (name, python, version, packages).
const LIST_SCRIPT: &str = r#"d=$1
case $d in /*) ;; *) d=$HOME/$d ;; esac
[ -d "$d/venvs" ] || exit 0
for v in "$d"/venvs/*/; do
  py=${v}bin/python3
  [ -x "$py" ] || continue
  "$py" -c '
import importlib.metadata as m, json, os, sys
found = {}
for d in m.distributions():
    n = d.metadata["Name"]
    if n and n not in found:
        found[n] = d.version
print(json.dumps({"name": os.path.basename(os.path.dirname(sys.prefix + "/")), "python": sys.executable,
    "version": sys.version.split()[0], "packages": sorted(found.items(), key=lambda kv: kv[0].lower())}))
' || exit 1
done
"#;

/// `$1` sremote dir, `$2` name: remove that venv (refused when it does not exist).
const REMOVE_SCRIPT: &str = r#"d=$1
case $d in /*) ;; *) d=$HOME/$d ;; esac
[ -d "$d/venvs/$2" ] || { echo "sremote: there is no venv $2 in $d/venvs" >&2; exit 66; }
rm -rf -- "$d/venvs/$2"
"#;

impl<C: Connector> RemoteClient<C> {
    /// Work in the project venv `<sremote dir>/venvs/NAME` (`None`: the endpoint's own,
    /// the default). Python calls and jobs from now on run its interpreter; installs go
    /// into it. A name must be `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
    pub fn set_venv(&self, name: Option<&str>) -> Result<(), Error> {
        let mut settings = lock(&self.inner.settings);
        match name {
            None => {
                settings.env.remove(VENV_ENV);
            }
            Some(n) if valid_venv_name(n) => {
                settings.env.insert(VENV_ENV.into(), n.into());
            }
            Some(n) => {
                return Err(Error::usage(
                    format!("venv {n:?} on {}: not a venv name", self.host()),
                    "use letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
                ));
            }
        }
        Ok(())
    }

    /// The project venv this client works in, if any.
    pub fn venv(&self) -> Option<String> {
        lock(&self.inner.settings).env.get(VENV_ENV).cloned()
    }

    /// The project venvs on the host with their packages, by name.
    pub async fn list_venvs(&self) -> Result<Vec<VenvInfo>, Error> {
        let dir = self.endpoint_sremote_dir().await?;
        let cmd = RemoteCommand::new("sh").args(["-c", LIST_SCRIPT, "sh", &dir]);
        let out = self.connector().exec(&cmd).await?;
        if !out.success() {
            return Err(Error::usage(
                format!(
                    "list the venvs in {dir}/venvs on {}: {}",
                    self.host(),
                    out.stderr_text().trim()
                ),
                "check that the venvs' python3 runs",
            ));
        }
        let mut venvs: Vec<VenvInfo> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        venvs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(venvs)
    }

    /// Delete the project venv NAME on the host.
    pub async fn remove_venv(&self, name: &str) -> Result<(), Error> {
        if !valid_venv_name(name) {
            return Err(Error::Usage(format!(
                "remove venv {name:?} on {}: not a venv name",
                self.host()
            )));
        }
        let dir = self.endpoint_sremote_dir().await?;
        let cmd = RemoteCommand::new("sh").args(["-c", REMOVE_SCRIPT, "sh", &dir, name]);
        let out = self.connector().exec(&cmd).await?;
        if !out.success() {
            return Err(Error::usage(
                format!(
                    "remove venv {name} on {}: {}",
                    self.host(),
                    out.stderr_text().trim().trim_start_matches("sremote: ")
                ),
                format!("`sremote venvs {}` lists them", self.host()),
            ));
        }
        Ok(())
    }
}
