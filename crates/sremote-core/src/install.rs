//! Installing your own code on the host: plugin executables
//! ([`RemoteClient::install_module`]) and Python packages in the endpoint's venv
//! ([`RemoteClient::do_install_git_module`], [`RemoteClient::install_python_packages`]).
//!
//! Everything the caller gives (names, URLs, branches, package specs) reaches the host as
//! positional arguments of fixed shell scripts, never as part of a shell command line.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::client::RemoteClient;
use crate::connector::{Connector, RemoteCommand, Source};
use crate::error::{Error, RemoteExecError};
use crate::protocol::ErrorKind;

/// How long a clone or a `pip install` may take on the host.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Names the endpoint itself owns: a plugin of that name would never be called.
const RESERVED: &[&str] = &["os", "fs", "subprocess", "sys", "session"];

/// What an install into the endpoint's venv did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The host as the connector names it.
    pub host: String,
    /// The venv's interpreter on the host (absolute).
    pub python: String,
    /// Whether the venv was created by this install.
    pub created_venv: bool,
    /// What git and pip printed.
    pub output: String,
}

/// Shared start of the install scripts: `$1` is the sremote dir, `$SREMOTE_VENV_DIR` the
/// venv below it (`venv`, or `venvs/NAME` for a project's). Makes `$py` the venv's python3
/// (creating the venv with `python3 -m venv` when missing) and defines `pip_install`.
const VENV_PRELUDE: &str = r#"set -u
umask 077
d=$1
case $d in /*) ;; *) d=$HOME/$d ;; esac
v=$d/${SREMOTE_VENV_DIR:-venv}
py=$v/bin/python3
created=0
if [ ! -x "$py" ]; then
  if ! command -v python3 >/dev/null 2>&1; then
    echo "sremote: python3 is missing on this host (PATH=$PATH): install python3 with venv support and retry" >&2
    exit 71
  fi
  mkdir -p -- "$d" "$(dirname -- "$v")" && chmod 700 -- "$d" || { echo "sremote: cannot create $d" >&2; exit 70; }
  echo "sremote: creating the venv $v with $(command -v python3)" >&2
  if ! python3 -m venv -- "$v" >&2; then
    rm -rf -- "$v"
    echo "sremote: 'python3 -m venv $v' failed (on Debian and Ubuntu, install python3-venv)" >&2
    exit 72
  fi
  created=1
fi
pip_install() {
  if "$py" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("setuptools") and (u.find_spec("wheel") or u.find_spec("setuptools.command.bdist_wheel")) else 1)' >/dev/null 2>&1; then
    "$py" -m pip install --no-input --disable-pip-version-check --no-build-isolation "$@" >&2 && return 0
    echo "sremote: retrying the install with build isolation (pip may download build tools)" >&2
  fi
  "$py" -m pip install --no-input --disable-pip-version-check "$@" >&2
}
"#;

/// `$2` URL, `$3` branch (empty: the default branch), `$4` name (directory under
/// `<sremote>/src`), `$5` Python module to import afterwards (empty: none).
const GIT_SCRIPT: &str = r#"if ! command -v git >/dev/null 2>&1; then
  echo "sremote: git is missing on this host (PATH=$PATH): install git and retry" >&2
  exit 73
fi
mkdir -p -- "$d/src" || { echo "sremote: cannot create $d/src" >&2; exit 70; }
src=$d/src/$4
new=$d/src/.$4.new.$$
rm -rf -- "$new"
if [ -n "$3" ]; then
  git -c protocol.ext.allow=never clone --quiet --depth 1 --branch "$3" -- "$2" "$new" >&2
else
  git -c protocol.ext.allow=never clone --quiet --depth 1 -- "$2" "$new" >&2
fi || { rm -rf -- "$new"; echo "sremote: git clone of $2 failed" >&2; exit 74; }
rm -rf -- "$src" && mv -- "$new" "$src" || { echo "sremote: cannot move the clone to $src" >&2; exit 70; }
pip_install -- "$src" || { echo "sremote: pip install of $src failed" >&2; exit 75; }
if [ -n "$5" ]; then
  "$py" -c 'import importlib, sys; importlib.import_module(sys.argv[1])' "$5" >&2 \
    || { echo "sremote: $src was installed, but 'import $5' fails in $py" >&2; exit 76; }
fi
printf 'sremote-install: created=%s python=%s\n' "$created" "$py"
"#;

/// `$2…`: package specs.
const PIP_SCRIPT: &str = r#"shift
pip_install -- "$@" || { echo "sremote: pip install failed" >&2; exit 75; }
printf 'sremote-install: created=%s python=%s\n' "$created" "$py"
"#;

/// A plugin name as the endpoint accepts it: `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
fn valid_plugin_name(name: &str) -> bool {
    crate::protocol::is_plain_name(name)
}

/// `name` as a Python import path, when it can be one (`my-pkg` → `my_pkg`).
fn import_name(name: &str) -> Option<String> {
    let name = name.replace('-', "_");
    let ok = name.split('.').all(|p| {
        p.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    ok.then_some(name)
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

impl<C: Connector> RemoteClient<C> {
    /// The sremote dir the endpoint on the host uses (absolute), asked from the endpoint
    /// itself (`sys.location`); this client's idea of it when the endpoint has no `sys`.
    pub(crate) async fn endpoint_sremote_dir(&self) -> Result<String, Error> {
        match self.call::<Value>("sys", "location").await {
            Ok(out) => Ok(out.value["sremote"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| self.sremote_dir())),
            Err(Error::RemoteExec(_)) => Ok(self.sremote_dir()),
            Err(e) => Err(e),
        }
    }

    /// Install `local_path` as the plugin executable of module `name`: pushed to
    /// `<sremote dir>/modules/<name>` with mode 0755 (atomically; the endpoint sees it on
    /// the next call). Returns the path on the host. See PROTOCOL.md, "Plugin executables",
    /// for what the program must read and print.
    ///
    /// `name` must be `[A-Za-z0-9_.-]`, not start with `.` or `-`, and not be a built-in
    /// module (`os`, `fs`, `subprocess`, `sys`, `session`), which would shadow it.
    pub async fn install_module(&self, name: &str, local_path: &Path) -> Result<String, Error> {
        let host = self.host().to_string();
        if !valid_plugin_name(name) {
            return Err(Error::Usage(format!(
                "install plugin {name:?} on {host}: invalid module name; use [A-Za-z0-9_.-], not starting with '.' or '-'"
            )));
        }
        if RESERVED.contains(&name) {
            return Err(Error::Usage(format!(
                "install plugin {name:?} on {host}: `{name}` is a built-in module of the endpoint and would \
                 shadow the plugin; choose another name"
            )));
        }
        match std::fs::metadata(local_path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "install plugin {name:?} on {host}: {} is not a regular file",
                    local_path.display()
                )));
            }
            Err(e) => {
                return Err(Error::Usage(format!(
                    "install plugin {name:?} on {host}: cannot read {}: {e}",
                    local_path.display()
                )));
            }
        }
        let dir = self.endpoint_sremote_dir().await?;
        let path = format!("{dir}/modules/{name}");
        self.connector()
            .push(Source::file(local_path).mode(0o755), &path)
            .await?;
        Ok(path)
    }

    /// Clone `url` (shallow; `branch`, or the default branch when empty) on the host into
    /// `<sremote dir>/src/<name>` and `pip install` it into the endpoint's venv
    /// `<sremote dir>/venv` (created with `python3 -m venv` when missing). When `name` can be
    /// a Python module name (`-` read as `_`), it is imported afterwards as a check.
    ///
    /// The Python bridge then finds the package (`client.call("name", "function")`); a
    /// session's Python worker picks up new modules at once, but keeps modules it had
    /// already imported: call [`close_session`](RemoteClient::close_session) after
    /// upgrading one. Failures are [`Error::RemoteExec`] with what git and pip printed.
    pub async fn do_install_git_module(
        &self,
        url: &str,
        branch: &str,
        name: &str,
    ) -> Result<InstallReport, Error> {
        self.install_git(url, branch, name, true).await
    }

    /// Like [`do_install_git_module`](Self::do_install_git_module), but `dir_name` only
    /// names the clone's directory (`<sremote dir>/src/<dir_name>`): no import is checked
    /// afterwards, for repositories whose package is named otherwise (`scikit-learn` →
    /// `sklearn`).
    pub async fn install_git_repo(
        &self,
        url: &str,
        branch: &str,
        dir_name: &str,
    ) -> Result<InstallReport, Error> {
        self.install_git(url, branch, dir_name, false).await
    }

    async fn install_git(
        &self,
        url: &str,
        branch: &str,
        name: &str,
        check_import: bool,
    ) -> Result<InstallReport, Error> {
        let host = self.host().to_string();
        if url.is_empty() {
            return Err(Error::Usage(format!(
                "install a git module on {host}: the URL is empty"
            )));
        }
        if !valid_plugin_name(name) {
            return Err(Error::Usage(format!(
                "install git module {url:?} as {name:?} on {host}: invalid name; use [A-Za-z0-9_.-], not \
                 starting with '.' or '-'"
            )));
        }
        let dir = self.endpoint_sremote_dir().await?;
        let check = match check_import {
            true => import_name(name).unwrap_or_default(),
            false => String::new(),
        };
        let script = format!("{VENV_PRELUDE}{GIT_SCRIPT}");
        let cmd = RemoteCommand::new("sh").args([
            "-c",
            script.as_str(),
            "sh",
            &dir,
            url,
            branch,
            name,
            &check,
        ]);
        self.run_install(
            cmd,
            "do_install_git_module",
            &format!("install {url} (branch {branch:?}) as {name}"),
        )
        .await
    }

    /// `pip install` the given requirement specs (`"numpy==1.26.4"`, `"requests>=2"`) into
    /// the endpoint's venv `<sremote dir>/venv`, creating it with `python3 -m venv` when
    /// missing. Failures are [`Error::RemoteExec`] with what pip printed.
    pub async fn install_python_packages<I, S>(&self, specs: I) -> Result<InstallReport, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let specs: Vec<String> = specs.into_iter().map(|s| s.as_ref().to_string()).collect();
        let host = self.host().to_string();
        if specs.is_empty() || specs.iter().any(String::is_empty) {
            return Err(Error::Usage(format!(
                "install Python packages on {host}: give at least one package spec, none empty (got {specs:?})"
            )));
        }
        let dir = self.endpoint_sremote_dir().await?;
        let script = format!("{VENV_PRELUDE}{PIP_SCRIPT}");
        let cmd = RemoteCommand::new("sh")
            .args(["-c", script.as_str(), "sh", dir.as_str()])
            .args(specs.iter());
        self.run_install(
            cmd,
            "install_python_packages",
            &format!("pip install {}", specs.join(" ")),
        )
        .await
    }

    async fn run_install(
        &self,
        cmd: RemoteCommand,
        function: &str,
        what: &str,
    ) -> Result<InstallReport, Error> {
        let host = self.host().to_string();
        let venv_dir = match self.venv() {
            Some(name) => format!("venvs/{name}"),
            None => "venv".to_string(),
        };
        let cmd = cmd
            .env("SREMOTE_VENV_DIR", venv_dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("PIP_NO_INPUT", "1")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .timeout(INSTALL_TIMEOUT);
        // After the host's setup: the venv is made with the `python3` calls and jobs see.
        let out = self.connector().exec(&self.with_setup(cmd)).await?;
        if let Some(e) =
            self.setup_error(&format!("{what} ({function})"), out.exit_code, &out.stderr)
        {
            return Err(e);
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = out.stderr_text();
        let marker = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("sremote-install: "));
        match (out.success(), marker) {
            (true, Some(facts)) => {
                let created_venv = facts.contains("created=1");
                let python = facts
                    .split_once("python=")
                    .map(|(_, p)| p.to_string())
                    .unwrap_or_default();
                Ok(InstallReport {
                    host,
                    python,
                    created_venv,
                    output: stderr,
                })
            }
            _ => {
                let reason = stderr
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("sremote: "))
                    .unwrap_or("the install script failed");
                Err(Error::RemoteExec(Box::new(RemoteExecError {
                    host: host.clone(),
                    module: "sremote".into(),
                    function: function.into(),
                    kind: ErrorKind::Raised,
                    message: format!(
                        "{what}: {reason} (exit {:?}); fix the cause shown below and retry; output:\n{}",
                        out.exit_code,
                        tail(&stderr, 4000)
                    ),
                    traceback: None,
                    stdout,
                    stderr,
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["calc", "my-tool", "a.b_c", "X9"] {
            assert!(valid_plugin_name(good), "{good}");
        }
        for bad in ["", ".hidden", "-rf", "a/b", "a b", "$(id)", "a;b", "é"] {
            assert!(!valid_plugin_name(bad), "{bad}");
        }
        assert_eq!(import_name("my-pkg").as_deref(), Some("my_pkg"));
        assert_eq!(import_name("1pkg"), None);
        assert_eq!(tail("héllo", 3), "llo");
    }
}
