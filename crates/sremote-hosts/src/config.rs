//! The hosts config: `~/.config/sremote/config.toml` (or `$SREMOTE_CONFIG`, `--config`).
//!
//! ```toml
//! [hosts.perlmutter]
//! connector = "ssh"                         # ssh (default) | newt | local
//! destination = "alice@perlmutter.nersc.gov" # default: the host's name (an ssh alias)
//! ssh_config = "~/.ssh/config.nersc"        # like `ssh -F`
//! endpoint_dir = "$SCRATCH/.sremote"        # the sremote dir on the host
//! endpoint = "~/build/my-endpoint"          # a custom endpoint binary (local path) to use
//! persist = "4h"                            # keep the ssh login this long unused ("0": off)
//! env = { OMP_NUM_THREADS = "8" }           # set for every call, exec and run
//! path = ["/global/common/software/bin"]    # prepended to PATH for every call, exec and run
//! scheduler = "slurm"                       # direct | slurm | pbs | sge (for jobs)
//! partitions = [{ name = "debug", cores = 128, max_time = "30m", gpus = 4 }]
//! setup = ["module load python/3.11", "source ~/envs/x/bin/activate"]
//! login_shell = true                        # run setup and the endpoint in `bash -l`
//! labels = ["a100", "bigmem"]               # for `--needs label=a100`
//! venv = "myproj"                           # <sremote>/venvs/myproj for Python calls, jobs, installs
//!
//! [groups]
//! gpu = ["perlmutter", "lab-gpu"]
//! ```
//!
//! `setup` is the site's environment: shell lines run on the host before the endpoint of
//! calls (session, pipe, file), a detached job, or a batch script starts, so calls and
//! jobs see the same `python3`; `login_shell = true` runs them (and the endpoint) in
//! `bash -l`, which reads `/etc/profile` and `~/.bash_profile` (where `module` comes from
//! on most clusters). They are your own shell code: a line that fails stops the start
//! with an error naming the line and the host (see `sremote_core::setup`).
//!
//! Errors name the file, line and column; unknown keys are warned about and ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sremote_core::Error;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

mod parse;

/// How a configured host is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    /// The system ssh client (the default).
    #[default]
    Ssh,
    /// A NEWT-style REST API (`newt+https://…`).
    Newt,
    /// This machine, no ssh.
    Local,
}

impl ConnectorKind {
    pub fn name(self) -> &'static str {
        match self {
            ConnectorKind::Ssh => "ssh",
            ConnectorKind::Newt => "newt",
            ConnectorKind::Local => "local",
        }
    }
}

/// The batch system of a host (used by jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Detached processes on the host itself.
    #[default]
    Direct,
    Slurm,
    Pbs,
    Sge,
}

impl SchedulerKind {
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Direct => "direct",
            SchedulerKind::Slurm => "slurm",
            SchedulerKind::Pbs => "pbs",
            SchedulerKind::Sge => "sge",
        }
    }
}

/// A partition (queue) of a host's batch system, as written in the config. Times and sizes
/// stay text (`"30m"`, `"512G"`) for the jobs code to interpret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionSpec {
    pub name: String,
    pub cores: Option<u32>,
    pub max_time: Option<String>,
    pub max_memory: Option<String>,
    pub gpus: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPartition {
    Name(String),
    Full {
        name: String,
        cores: Option<u32>,
        max_time: Option<String>,
        max_memory: Option<String>,
        gpus: Option<u32>,
    },
}

/// One host: what the CLI needs to reach it and to set up its calls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSpec {
    /// The name the user gave (config name or the destination itself).
    pub name: String,
    pub connector: ConnectorKind,
    /// ssh destination or `newt+https://…` URL (empty for `local`).
    pub destination: String,
    pub ssh_config: Option<PathBuf>,
    pub endpoint_dir: Option<String>,
    /// A custom endpoint binary (a local file, built with the `sremote-endpoint` library)
    /// to install and call instead of the stock endpoint.
    pub endpoint: Option<PathBuf>,
    /// Keep the ssh master connection up this long unused, for later commands
    /// (`persist = "4h"`; zero: `persist = "0"`, no persisted connection; `None`: the
    /// front end's default).
    pub persist: Option<std::time::Duration>,
    pub env: BTreeMap<String, String>,
    pub path: Vec<String>,
    pub scheduler: Option<SchedulerKind>,
    pub partitions: Vec<PartitionSpec>,
    pub sge_pe: Option<String>,
    /// Shell lines run on the host before the endpoint or a job starts (`setup`).
    pub setup: Vec<String>,
    /// Run the setup and the endpoint in a login shell, `bash -l` (`login_shell`).
    pub login_shell: bool,
    /// Labels for `--needs label=NAME` (`labels = ["a100", "bigmem"]`).
    pub labels: Vec<String>,
    /// The project venv calls, jobs and installs use (`venv = "myproj"`).
    pub venv: Option<String>,
    /// Whether it comes from the config file.
    pub configured: bool,
}

impl HostSpec {
    /// A host named on the command line without config: `local`, a `newt+https://` URL or
    /// an ssh destination.
    pub fn adhoc(name: &str) -> HostSpec {
        let connector = if name == "local" {
            ConnectorKind::Local
        } else if sremote_rest::NewtTarget::matches(name) {
            ConnectorKind::Newt
        } else {
            ConnectorKind::Ssh
        };
        HostSpec {
            name: name.to_string(),
            connector,
            destination: if connector == ConnectorKind::Local {
                String::new()
            } else {
                name.to_string()
            },
            ..Default::default()
        }
    }
}

#[derive(Deserialize)]
struct RawHost {
    connector: Option<ConnectorKind>,
    destination: Option<Spanned<String>>,
    ssh_config: Option<String>,
    endpoint_dir: Option<String>,
    endpoint: Option<Spanned<String>>,
    persist: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    path: Vec<String>,
    scheduler: Option<SchedulerKind>,
    #[serde(default)]
    partitions: Vec<RawPartition>,
    sge_pe: Option<String>,
    #[serde(default)]
    setup: Vec<Spanned<String>>,
    #[serde(default)]
    login_shell: bool,
    #[serde(default)]
    labels: Vec<String>,
    venv: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
struct RawConfig {
    #[serde(default)]
    hosts: BTreeMap<String, Spanned<RawHost>>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
}

const TOP_KEYS: &[&str] = &["hosts", "groups"];
const HOST_KEYS: &[&str] = &[
    "connector",
    "destination",
    "ssh_config",
    "endpoint_dir",
    "endpoint",
    "persist",
    "env",
    "path",
    "scheduler",
    "partitions",
    "sge_pe",
    "setup",
    "login_shell",
    "labels",
    "venv",
];
const PARTITION_KEYS: &[&str] = &["name", "cores", "max_time", "max_memory", "gpus"];

/// The parsed config: hosts by name, groups by name (members resolved to host names or
/// destinations), and the warnings found while reading it.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it came from (`None`: no file, empty config).
    pub path: Option<PathBuf>,
    pub hosts: BTreeMap<String, HostSpec>,
    pub groups: BTreeMap<String, Vec<String>>,
    /// `file:line:col: unknown key …` lines.
    pub warnings: Vec<String>,
}

/// Where the config is read from: `explicit` (`--config`/`$SREMOTE_CONFIG`), else
/// `$XDG_CONFIG_HOME/sremote/config.toml`, else `~/.config/sremote/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .map(|p| p.join("sremote/config.toml"))
        .or_else(|| env("HOME").map(|h| h.join(".config/sremote/config.toml")))
}

impl Config {
    /// Read the config: `explicit` must exist; the default path may be missing (empty config).
    pub fn load(explicit: Option<&Path>) -> Result<Config, Error> {
        let (path, must_exist) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => match default_path() {
                Some(p) => (p, false),
                None => return Ok(Config::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(Error::usage(
                    format!("cannot read the config file {}: {e}", path.display()),
                    "fix the path in --config or SREMOTE_CONFIG",
                ));
            }
        };
        Config::parse(&text, &path)
    }

    /// The hosts of group `name` (nested groups expanded, duplicates removed, in order).
    pub fn group_members(&self, name: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        self.expand(name, &mut vec![name.to_string()], &mut out)?;
        Ok(out)
    }

    fn expand(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<(), Error> {
        let Some(members) = self.groups.get(name) else {
            let known: Vec<_> = self.groups.keys().map(|g| format!("@{g}")).collect();
            return Err(Error::usage(
                format!("no group named @{name} in {}", self.path_text()),
                format!(
                    "known groups: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        for m in members {
            if let Some(g) = m.strip_prefix('@') {
                if stack.iter().any(|s| s == g) {
                    return Err(Error::usage(
                        format!(
                            "the groups in {} form a cycle: @{} -> @{g}",
                            self.path_text(),
                            stack.join(" -> @")
                        ),
                        "remove one of the references",
                    ));
                }
                stack.push(g.to_string());
                self.expand(g, stack, out)?;
                stack.pop();
            } else if !out.contains(m) {
                out.push(m.clone());
            }
        }
        Ok(())
    }

    /// The config file for messages.
    pub fn path_text(&self) -> String {
        self.path.as_ref().map_or_else(
            || "the config (no file)".into(),
            |p| p.display().to_string(),
        )
    }

    /// The spec of `name`: configured, or an ad-hoc destination.
    pub fn host(&self, name: &str) -> HostSpec {
        self.hosts
            .get(name)
            .cloned()
            .unwrap_or_else(|| HostSpec::adhoc(name))
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `~/x` → `$HOME/x`.
fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

fn unknown_keys(doc: &DeTable<'_>, text: &str, path: &Path, out: &mut Vec<String>) {
    let mut warn = |key: &Spanned<std::borrow::Cow<'_, str>>, place: &str, known: &[&str]| {
        let (line, col) = line_col(text, key.span().start);
        out.push(format!(
            "{}:{line}:{col}: unknown key {:?} in {place}, ignored (known: {})",
            path.display(),
            key.get_ref(),
            known.join(", ")
        ));
    };
    for (key, value) in doc {
        if !TOP_KEYS.contains(&key.get_ref().as_ref()) {
            warn(key, "the config", TOP_KEYS);
            continue;
        }
        if key.get_ref() != "hosts" {
            continue;
        }
        let DeValue::Table(hosts) = value.get_ref() else {
            continue;
        };
        for (name, host) in hosts {
            let DeValue::Table(host) = host.get_ref() else {
                continue;
            };
            let place = format!("[hosts.{}]", name.get_ref());
            for (k, v) in host {
                if !HOST_KEYS.contains(&k.get_ref().as_ref()) {
                    warn(k, &place, HOST_KEYS);
                } else if k.get_ref() == "partitions"
                    && let DeValue::Array(parts) = v.get_ref()
                {
                    for p in parts {
                        if let DeValue::Table(p) = p.get_ref() {
                            for (pk, _) in p {
                                if !PARTITION_KEYS.contains(&pk.get_ref().as_ref()) {
                                    warn(pk, &format!("a partition of {place}"), PARTITION_KEYS);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("/cfg/config.toml"))
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
    }

    #[test]
    fn a_full_host_and_groups() {
        let cfg = parse(
            r#"
[hosts.pm]
destination = "alice@perlmutter"
ssh_config = "/etc/ssh_cfg"
endpoint_dir = "scratch/.sremote"
env = { A = "1", B = "two words" }
path = ["/opt/bin"]
scheduler = "slurm"
partitions = ["debug", { name = "gpu", cores = 64, max_time = "12h", gpus = 4 }]

[hosts.me]
connector = "local"
endpoint = "bin/my-endpoint"

[hosts.lab]
endpoint = "/opt/ep"

[groups]
all = ["pm", "@small"]
small = ["me", "lab", "bob@elsewhere"]
"#,
        )
        .unwrap();
        let pm = &cfg.hosts["pm"];
        assert_eq!(pm.destination, "alice@perlmutter");
        assert_eq!(pm.connector, ConnectorKind::Ssh);
        assert_eq!(pm.env["B"], "two words");
        assert_eq!(pm.scheduler, Some(SchedulerKind::Slurm));
        assert_eq!(pm.partitions.len(), 2);
        assert_eq!(pm.partitions[1].gpus, Some(4));
        assert_eq!(pm.partitions[1].max_time.as_deref(), Some("12h"));
        assert_eq!(cfg.hosts["me"].connector, ConnectorKind::Local);
        assert_eq!(
            cfg.hosts["me"].endpoint.as_deref(),
            Some(Path::new("/cfg/bin/my-endpoint")),
            "relative to the config file"
        );
        assert_eq!(
            cfg.hosts["lab"].endpoint.as_deref(),
            Some(Path::new("/opt/ep"))
        );
        assert_eq!(pm.endpoint, None);
        assert_eq!(cfg.hosts["lab"].destination, "lab");
        assert_eq!(
            cfg.group_members("all").unwrap(),
            ["pm", "me", "lab", "bob@elsewhere"]
        );
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("[hosts.a]\ndestination = \"x\"\nconnector = \"telnet\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/cfg/config.toml:3:13:"), "{e}");
        assert!(e.contains("telnet"), "{e}");
        let e = parse("[hosts.a]\ndestination = \n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/cfg/config.toml:2:"), "{e}");
        let e = parse("[hosts.a]\nenv = { A = 1 }\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/cfg/config.toml:2:"), "{e}");
        let e = parse("[groups]\ng = [\"@nope\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/cfg/config.toml:2:6:") && e.contains("nope"),
            "{e}"
        );
        let e = parse("[groups]\na = [\"@b\"]\nb = [\"@a\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cycle"), "{e}");
        let e = parse("[hosts.a]\nconnector = \"local\"\ndestination = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/cfg/config.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_keys_are_warned_with_their_place() {
        let cfg = parse("colour = true\n[hosts.a]\ndestnation = \"x\"\npartitions = [{ name = \"p\", nodes = 3 }]\n").unwrap();
        assert_eq!(cfg.warnings.len(), 3, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].starts_with("/cfg/config.toml:1:1: unknown key \"colour\""));
        assert!(
            cfg.warnings[1]
                .starts_with("/cfg/config.toml:3:1: unknown key \"destnation\" in [hosts.a]")
        );
        assert!(cfg.warnings[2].contains("\"nodes\""));
        // The misspelt key is ignored: the destination defaults to the name.
        assert_eq!(cfg.hosts["a"].destination, "a");
    }

    #[test]
    fn setup_and_login_shell() {
        let cfg = parse(
            "[hosts.c]\nsetup = [\"module load python/3.11\", \"source ~/envs/x/bin/activate\"]\nlogin_shell = true\n[hosts.d]\n",
        )
        .unwrap();
        assert_eq!(
            cfg.hosts["c"].setup,
            ["module load python/3.11", "source ~/envs/x/bin/activate"]
        );
        assert!(cfg.hosts["c"].login_shell);
        assert!(cfg.hosts["d"].setup.is_empty() && !cfg.hosts["d"].login_shell);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        let e = parse("[hosts.c]\nsetup = \"module load x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/cfg/config.toml:2:"), "{e}");
        let e = parse("[hosts.c]\nsetup = [\"a\\u0000b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/cfg/config.toml:2:") && e.contains("NUL"),
            "{e}"
        );
    }

    #[test]
    fn newt_hosts_are_recognised() {
        let cfg = parse("[hosts.n]\ndestination = \"newt+https://a@gw:8443/newt/m\"\n").unwrap();
        assert_eq!(cfg.hosts["n"].connector, ConnectorKind::Newt);
        let e = parse("[hosts.n]\nconnector = \"newt\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("newt host needs destination"), "{e}");
    }
}
