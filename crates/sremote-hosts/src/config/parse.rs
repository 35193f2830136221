//! Reading the config text into a [`Config`]: every value checked, every error naming its
//! place in the file (`file:line:col`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sremote_core::Error;
use toml::Spanned;
use toml::de::DeTable;

use super::{
    Config, ConnectorKind, HostSpec, PartitionSpec, RawConfig, RawHost, RawPartition, expand_home,
    line_col, unknown_keys, valid_name,
};

/// The config file being read: its text and where it came from, for error places.
struct Source<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Source<'_> {
    /// A usage error at `span` of the file (its start when `None`).
    fn at(&self, span: Option<Range<usize>>, msg: &str) -> Error {
        let (line, col) = line_col(self.text, span.map_or(0, |s| s.start));
        Error::usage(
            format!("{}:{line}:{col}: {}", self.path.display(), msg.trim()),
            "fix the config file (format: `sremote hosts --help`)",
        )
    }

    /// The `[hosts.NAME]` table as a [`HostSpec`].
    fn host(&self, name: &str, host: Spanned<RawHost>) -> Result<HostSpec, Error> {
        let span = host.span();
        let h = host.into_inner();
        if !valid_name(name) {
            return Err(self.at(
                Some(span.clone()),
                &format!("host name {name:?}: use letters, digits, `.`, `_` and `-`"),
            ));
        }
        let connector = h.connector.unwrap_or_else(|| match &h.destination {
            Some(d) if sremote_rest::NewtTarget::matches(d.get_ref()) => ConnectorKind::Newt,
            _ => ConnectorKind::Ssh,
        });
        let destination = self.destination(name, span, h.destination.as_ref(), connector)?;
        let endpoint = self.endpoint(h.endpoint)?;
        let venv = match h.venv {
            Some(v) if !sremote_core::valid_venv_name(v.get_ref()) => {
                return Err(self.at(
                    Some(v.span()),
                    "venv: use letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
                ));
            }
            v => v.map(Spanned::into_inner),
        };
        if let Some(bad) = h.setup.iter().find(|l| l.get_ref().contains('\0')) {
            return Err(self.at(Some(bad.span()), "a setup line cannot contain a NUL byte"));
        }
        let persist = match &h.persist {
            Some(p) => Some(
                crate::connect::parse_persist(p.get_ref())
                    .map_err(|e| self.at(Some(p.span()), &e))?,
            ),
            None => None,
        };
        Ok(HostSpec {
            name: name.to_string(),
            connector,
            destination,
            ssh_config: h.ssh_config.map(|p| expand_home(&p)),
            endpoint_dir: h.endpoint_dir,
            endpoint,
            persist,
            env: h.env,
            path: h.path,
            scheduler: h.scheduler,
            partitions: h.partitions.into_iter().map(PartitionSpec::from).collect(),
            sge_pe: h.sge_pe,
            setup: h.setup.into_iter().map(Spanned::into_inner).collect(),
            login_shell: h.login_shell,
            labels: h.labels,
            venv,
            configured: true,
        })
    }

    /// Host `name`'s destination as its connector needs it (`span`: the host's table):
    /// none for `local`, a `newt+https://` URL for newt, an ssh destination (default: the
    /// host's name) for ssh.
    fn destination(
        &self,
        name: &str,
        span: Range<usize>,
        destination: Option<&Spanned<String>>,
        connector: ConnectorKind,
    ) -> Result<String, Error> {
        match (destination, connector) {
            (Some(d), ConnectorKind::Local) => Err(self.at(
                Some(d.span()),
                "a `local` host has no destination: remove it",
            )),
            (None, ConnectorKind::Local) => Ok(String::new()),
            (Some(d), ConnectorKind::Newt) if !sremote_rest::NewtTarget::matches(d.get_ref()) => {
                Err(self.at(
                    Some(d.span()),
                    "a newt host's destination is newt+https://USER@HOST[:PORT]/BASE/MACHINE",
                ))
            }
            (None, ConnectorKind::Newt) => Err(self.at(
                Some(span),
                &format!(
                    "host {name}: a newt host needs destination = \"newt+https://USER@HOST/BASE/MACHINE\""
                ),
            )),
            (Some(d), _) => {
                let s = d.get_ref();
                if s.is_empty()
                    || s.starts_with('-')
                    || s.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(self.at(
                        Some(d.span()),
                        &format!(
                            "{s:?} is not an ssh destination (user@host, ssh://user@host:port or an alias)"
                        ),
                    ));
                }
                Ok(s.clone())
            }
            (None, _) => Ok(name.to_string()),
        }
    }

    /// A custom endpoint binary: `~/` is the home directory; a relative path is relative
    /// to the config file.
    fn endpoint(&self, endpoint: Option<Spanned<String>>) -> Result<Option<PathBuf>, Error> {
        let Some(e) = endpoint else {
            return Ok(None);
        };
        if e.get_ref().trim().is_empty() {
            return Err(self.at(
                Some(e.span()),
                "endpoint is empty: give the path of a custom endpoint binary, or remove the key",
            ));
        }
        let p = expand_home(e.get_ref());
        Ok(Some(match self.path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        }))
    }

    /// Group `name`'s members, checked: hosts (names or destinations) and `@GROUP`s that
    /// exist in `groups`.
    fn group(
        &self,
        name: &str,
        members: &Spanned<Vec<Spanned<String>>>,
        groups: &BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Vec<String>, Error> {
        if !valid_name(name) {
            return Err(self.at(
                Some(members.span()),
                &format!("group name {name:?}: use letters, digits, `.`, `_` and `-`"),
            ));
        }
        let mut list = Vec::new();
        for m in members.get_ref() {
            let s = m.get_ref();
            if let Some(g) = s.strip_prefix('@') {
                if !groups.contains_key(g) {
                    return Err(self.at(Some(m.span()), &format!("no group named {g:?}")));
                }
            } else if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == ',') {
                return Err(self.at(Some(m.span()), &format!("{s:?} is not a host")));
            }
            list.push(s.clone());
        }
        Ok(list)
    }
}

impl From<RawPartition> for PartitionSpec {
    fn from(p: RawPartition) -> PartitionSpec {
        match p {
            RawPartition::Name(name) => PartitionSpec {
                name,
                ..Default::default()
            },
            RawPartition::Full {
                name,
                cores,
                max_time,
                max_memory,
                gpus,
            } => PartitionSpec {
                name,
                cores,
                max_time,
                max_memory,
                gpus,
            },
        }
    }
}

impl Config {
    /// Parse config text; `path` names the file in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let src = Source { text, path };
        let doc = DeTable::parse(text).map_err(|e| src.at(e.span(), e.message()))?;
        let raw: RawConfig = toml::from_str(text).map_err(|e| src.at(e.span(), e.message()))?;
        let mut cfg = Config {
            path: Some(path.to_path_buf()),
            ..Default::default()
        };
        unknown_keys(doc.get_ref(), text, path, &mut cfg.warnings);
        for (name, host) in raw.hosts {
            let spec = src.host(&name, host)?;
            cfg.hosts.insert(name, spec);
        }
        for (name, members) in &raw.groups {
            let list = src.group(name, members, &raw.groups)?;
            cfg.groups.insert(name.clone(), list);
        }
        // Nested groups must not form a cycle.
        for name in cfg.groups.keys() {
            cfg.group_members(name)?;
        }
        Ok(cfg)
    }
}
