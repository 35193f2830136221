//! Deploying the endpoint onto a host: `RemoteClient::do_bootstrap_install`.
//!
//! Two connector operations at most: one `exec` learns the host's OS, arch, home and
//! the SHA-256 of the installed endpoint (skipped when a session start that found no
//! endpoint already printed it: `crate::trust::guarded`); if it is missing or different,
//! one `exec` receives the binary on stdin into a temporary name, verifies its SHA-256 on
//! the host, makes the private directories (0700) and renames it into place (a connector
//! that cannot feed stdin: a `push` to the temporary name first). Two clients
//! bootstrapping the same host at once each send their own temporary file; the renames
//! are atomic.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::{RemoteClient, lock};
use crate::connector::{Connector, RemoteCommand, Source};
use crate::error::{Error, NotSetupError, ProtocolError};

mod offer;
mod scripts;

pub(crate) use offer::{Decision, read_offer, send as send_offered};

#[cfg(test)]
pub(crate) use scripts::FAKE_ENDPOINT;
pub use scripts::HostFacts;
pub(crate) use scripts::{
    FINISH_SCRIPT, INSTALL_SCRIPT, LOCATION_SCRIPT, NEED, PROBE_END, PROBE_SCRIPT, TMP_SCRIPT,
    install_fns, parse_offered_probe, parse_probe, probe_fn,
};

/// An endpoint binary for one target (`linux-x86_64`, `linux-aarch64`, …).
#[derive(Clone)]
pub struct EndpointArtifact {
    /// `<os>-<arch>` as `uname -s`/`uname -m` print them, lower-cased OS.
    pub target: String,
    /// Name of the file under `<sremote dir>/bin/`.
    pub install_name: String,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// Where the bytes came from, for messages and `sremote endpoint info`.
    pub origin: String,
    bytes: Arc<Cow<'static, [u8]>>,
}

impl std::fmt::Debug for EndpointArtifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointArtifact")
            .field("target", &self.target)
            .field("install_name", &self.install_name)
            .field("sha256", &self.sha256)
            .field("origin", &self.origin)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `<os>-<arch>` of an ELF or Mach-O binary, read from its header.
pub fn binary_target(bytes: &[u8]) -> Option<String> {
    if bytes.len() >= 20 && bytes[..4] == *b"\x7fELF" {
        let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
        let arch = match machine {
            62 => "x86_64",
            183 => "aarch64",
            3 => "i686",
            40 => "armv7l",
            243 => "riscv64",
            21 => "ppc64le",
            22 => "s390x",
            _ => return None,
        };
        return Some(format!("linux-{arch}"));
    }
    if bytes.len() >= 8 && bytes[..4] == [0xcf, 0xfa, 0xed, 0xfe] {
        let cpu = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let arch = match cpu {
            0x0100_0007 => "x86_64",
            0x0100_000c => "arm64",
            _ => return None,
        };
        return Some(format!("darwin-{arch}"));
    }
    None
}

impl EndpointArtifact {
    /// The stock endpoint from bytes (its target is read from the binary's header).
    pub fn from_bytes(
        bytes: impl Into<Cow<'static, [u8]>>,
        origin: impl Into<String>,
    ) -> Result<Self, Error> {
        let bytes = bytes.into();
        let origin = origin.into();
        let target = binary_target(&bytes).ok_or_else(|| {
            Error::Usage(format!(
                "{origin} is not an ELF or Mach-O executable of a known architecture"
            ))
        })?;
        Ok(EndpointArtifact {
            target,
            install_name: format!("sremote-endpoint-{}", crate::protocol::VERSION),
            sha256: sha256_hex(&bytes),
            origin,
            bytes: Arc::new(bytes),
        })
    }

    /// The stock endpoint from a file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read endpoint binary {}: {e}",
                path.display()
            ))
        })?;
        Self::from_bytes(bytes, path.display().to_string())
    }

    /// A custom endpoint (built with the `sremote-endpoint` library): installed beside the
    /// stock one under a name that includes its hash, so both can live on one host.
    pub fn custom(path: &Path) -> Result<Self, Error> {
        let mut a = Self::from_file(path)?;
        a.install_name = format!(
            "sremote-endpoint-{}-{}",
            crate::protocol::VERSION,
            &a.sha256[..12]
        );
        Ok(a)
    }

    /// The endpoint embedded in this program at build time, if any.
    pub fn bundled() -> Option<Self> {
        #[cfg(feature = "bundled-endpoint")]
        {
            Self::from_bytes(
                sremote_endpoint_bin::ENDPOINT,
                format!("bundled ({})", sremote_endpoint_bin::TARGET),
            )
            .ok()
        }
        #[cfg(not(feature = "bundled-endpoint"))]
        {
            None
        }
    }

    /// The binary.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Where the client finds endpoint binaries for bootstrap.
#[derive(Debug, Clone, Default)]
pub enum EndpointSource {
    /// `$SREMOTE_ENDPOINT` (one binary), then `$SREMOTE_ENDPOINT_DIR` (builds named
    /// `sremote-endpoint-<os>-<arch>`), then the bundled binary.
    #[default]
    Auto,
    /// This binary for every host (a custom endpoint, say); its target must match.
    Artifact(EndpointArtifact),
    /// A directory of builds named `sremote-endpoint-<os>-<arch>`.
    Dir(PathBuf),
}

impl EndpointSource {
    /// The artifact for `target` (`linux-x86_64`), or an error naming what is missing.
    pub fn resolve(&self, target: &str, host: &str) -> Result<EndpointArtifact, Error> {
        let mut looked = Vec::new();
        let found = match self {
            EndpointSource::Artifact(a) => Some(a.clone()),
            EndpointSource::Dir(dir) => from_dir(dir, target, &mut looked)?,
            EndpointSource::Auto => {
                let mut found = None;
                if let Some(file) = std::env::var_os("SREMOTE_ENDPOINT") {
                    looked.push(format!(
                        "$SREMOTE_ENDPOINT={}",
                        PathBuf::from(&file).display()
                    ));
                    found = Some(EndpointArtifact::from_file(Path::new(&file))?);
                }
                if let (None, Some(dir)) = (&found, std::env::var_os("SREMOTE_ENDPOINT_DIR")) {
                    found = from_dir(Path::new(&dir), target, &mut looked)?;
                }
                if found.is_none() {
                    looked.push("the bundled endpoint".into());
                    found = EndpointArtifact::bundled().filter(|a| a.target == target);
                }
                found
            }
        };
        match found {
            Some(a) if a.target == target => Ok(a),
            Some(a) => Err(Error::usage(
                format!(
                    "bootstrap on {host}: the host is {target} but the endpoint {} is built for {}",
                    a.origin, a.target
                ),
                format!(
                    "build one for {target} (deploy/build-endpoint.sh on such a machine) and \
                     point $SREMOTE_ENDPOINT_DIR at it"
                ),
            )),
            None => Err(Error::usage(
                format!(
                    "bootstrap on {host}: no sremote endpoint build for {target} (looked in: {})",
                    looked.join(", ")
                ),
                format!(
                    "build one with deploy/build-endpoint.sh on a {target} machine and put it \
                     at $SREMOTE_ENDPOINT_DIR/sremote-endpoint-{target}"
                ),
            )),
        }
    }
}

fn from_dir(
    dir: &Path,
    target: &str,
    looked: &mut Vec<String>,
) -> Result<Option<EndpointArtifact>, Error> {
    let path = dir.join(format!("sremote-endpoint-{target}"));
    looked.push(path.display().to_string());
    if path.is_file() {
        EndpointArtifact::from_file(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// Endpoints in `binaries` (names in `<sremote dir>/bin`) of versions older than this
/// client's: `sremote-endpoint-<version>` and custom builds `…-<version>-<12 hex>`. Newer
/// ones stay (a newer client on the same host still uses them, and would only push
/// them again), as do custom builds of this version (they live beside the stock one on
/// purpose) and names that do not parse.
pub fn older_endpoints(binaries: &[String]) -> Vec<String> {
    let Some(current) = numeric_version(crate::protocol::VERSION) else {
        return Vec::new();
    };
    binaries
        .iter()
        .filter(|name| {
            let Some(rest) = name.strip_prefix("sremote-endpoint-") else {
                return false;
            };
            let version = match rest.rsplit_once('-') {
                Some((v, hash))
                    if hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    v
                }
                _ => rest,
            };
            numeric_version(version).is_some_and(|v| v < current)
        })
        .cloned()
        .collect()
}

/// `(major, minor, patch)` of `1.2.3` or `1.2.3-pre` (a pre-release counts as its
/// release: never older than its own version).
fn numeric_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split_once('-').map_or(v, |(c, _)| c);
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The outcome of `do_bootstrap_install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapReport {
    /// The host as the connector names it.
    pub host: String,
    /// The endpoint build it got (`<os>-<arch>`).
    pub target: String,
    /// Path of the endpoint on the host (relative: to the home directory).
    pub endpoint_path: String,
    /// Whether a binary was pushed (false: the right one was already there).
    pub installed: bool,
    /// Bytes pushed (0 when nothing was installed).
    pub bytes_pushed: u64,
    /// SHA-256 of the endpoint on the host.
    pub sha256: String,
    /// Endpoints of older versions removed from `<sremote dir>/bin` by this install.
    pub removed: Vec<String>,
}

impl<C: Connector> RemoteClient<C> {
    /// Install the endpoint on the host unless the right one is there already.
    pub async fn do_bootstrap_install(&self) -> Result<BootstrapReport, Error> {
        let source = lock(&self.inner.settings).endpoint.clone();
        self.bootstrap_with(source).await
    }

    /// Install this endpoint binary (e.g. a custom endpoint built with the
    /// `sremote-endpoint` library) and use it for every call of this client.
    pub async fn do_bootstrap_install_with(
        &self,
        binary: &std::path::Path,
    ) -> Result<BootstrapReport, Error> {
        let artifact = EndpointArtifact::custom(binary)?;
        self.set_endpoint_source(EndpointSource::Artifact(artifact.clone()));
        self.bootstrap_with(EndpointSource::Artifact(artifact))
            .await
    }

    /// Learn the host's OS, arch, home and installed endpoint in one `exec`; fails when
    /// the sremote dir cannot be trusted (another user could change it).
    pub async fn probe_host(&self, install_name: &str) -> Result<HostFacts, Error> {
        let dir = self.sremote_dir();
        let cmd = RemoteCommand::new("sh").args(["-c", PROBE_SCRIPT, "sh", &dir, install_name]);
        let out = self
            .inner
            .connector
            .exec(&cmd.timeout(Duration::from_secs(60)))
            .await?;
        let facts = parse_probe(&out.stdout);
        if !out.success() || facts.os.is_empty() || facts.arch.is_empty() {
            return Err(Error::Protocol(Box::new(ProtocolError {
                host: self.host().to_string(),
                action: "probe host for bootstrap".into(),
                detail: format!(
                    "the probe script failed (exit {:?}): {}",
                    out.exit_code,
                    out.stderr_text()
                ),
                received: String::from_utf8_lossy(&out.stdout)
                    .chars()
                    .take(300)
                    .collect(),
                module: None,
            })));
        }
        if let Some(line) = &facts.untrusted {
            let action = format!("bootstrap (probe of the sremote directory {dir})");
            return Err(crate::trust::untrusted_error(self.host(), &action, line));
        }
        lock(&self.inner.state).trusted_dir = Some(dir);
        Ok(facts)
    }

    async fn bootstrap_with(&self, source: EndpointSource) -> Result<BootstrapReport, Error> {
        let _one_at_a_time = self.inner.bootstrap_lock.lock().await;
        lock(&self.inner.state).probed = None; // an explicit bootstrap probes afresh
        self.bootstrap_locked(source, None).await
    }

    /// Bootstrap after a call found no endpoint, unless another task did so meanwhile.
    /// When the failed session start probed the host (`trust::guarded`), its facts stand
    /// in for the probe.
    pub(crate) async fn bootstrap_after_failure(&self, seen_generation: u64) -> Result<(), Error> {
        let _one_at_a_time = self.inner.bootstrap_lock.lock().await;
        let probed = {
            let mut state = lock(&self.inner.state);
            let probed = state.probed.take();
            if state.generation != seen_generation {
                return Ok(());
            }
            probed
        };
        let source = lock(&self.inner.settings).endpoint.clone();
        self.bootstrap_locked(source, probed).await.map(drop)
    }

    /// Bootstrap with `probed`: what a session start that found no endpoint learned (the
    /// sremote dir and install name it probed, the facts), used instead of the first
    /// probe when it is about the same dir and endpoint.
    async fn bootstrap_locked(
        &self,
        source: EndpointSource,
        probed: Option<(String, String, HostFacts)>,
    ) -> Result<BootstrapReport, Error> {
        let host = self.host().to_string();
        let explicit_dir = lock(&self.inner.settings).sremote_dir.is_some();
        // The probe needs an install name before it knows the target; the stock name does
        // not depend on the target, a custom one is fixed by its artifact.
        let provisional = match &source {
            EndpointSource::Artifact(a) => a.install_name.clone(),
            _ => format!("sremote-endpoint-{}", crate::protocol::VERSION),
        };
        let probed = probed
            .filter(|(dir, name, _)| *dir == self.sremote_dir() && *name == provisional)
            .map(|(_, _, facts)| facts);
        let facts = self
            .probe_following_location(&provisional, explicit_dir, probed)
            .await?;
        let artifact = source.resolve(&facts.target(), &host)?;
        let dir = self.sremote_dir();
        let endpoint_path = format!("{dir}/bin/{}", artifact.install_name);
        let mut report = BootstrapReport {
            host: host.clone(),
            target: artifact.target.clone(),
            endpoint_path,
            installed: false,
            bytes_pushed: 0,
            sha256: artifact.sha256.clone(),
            removed: Vec::new(),
        };
        let (location, custom_tmp) = self.location_json(explicit_dir, &facts.home)?;
        let recorded = facts.location.as_deref().and_then(LocationFile::parse);
        // The tmp dir to make sure of: the one asked for, else the one `.location` names
        // (written by hand, or by deploy-endpoint.sh) — the endpoint does not create it.
        let make_tmp = match custom_tmp.is_empty() {
            true => lock(&self.inner.state)
                .discovered_tmp
                .clone()
                .unwrap_or_default(),
            false => custom_tmp.clone(),
        };
        if facts.installed_sha256.as_deref() != Some(artifact.sha256.as_str()) {
            let old = older_endpoints(&facts.binaries);
            let out = self
                .install(&artifact, &dir, [location.as_str(), &make_tmp], old)
                .await?;
            report.installed = true;
            report.bytes_pushed = artifact.bytes().len() as u64;
            report.removed = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("removed="))
                .map(str::to_owned)
                .collect();
        } else if !location.is_empty() && LocationFile::parse(&location) != recorded {
            // The endpoint is current, but `.location` names other directories.
            let cmd = RemoteCommand::new("sh")
                .args(["-c", LOCATION_SCRIPT, "sh", &location, &custom_tmp])
                .timeout(Duration::from_secs(60));
            let action = "record the custom directories in ~/.sremote/.location".to_string();
            self.setup_step(cmd, action, "the step failed", "").await?;
        } else if !make_tmp.is_empty() {
            let cmd = RemoteCommand::new("sh")
                .args(["-c", TMP_SCRIPT, "sh", &make_tmp])
                .timeout(Duration::from_secs(60));
            let action = format!("create the tmp dir {make_tmp} named by ~/.sremote/.location");
            let fix = " — fix the path in .location or create it";
            self.setup_step(cmd, action, "mkdir failed", fix).await?;
        }
        let mut state = lock(&self.inner.state);
        state.install_name = Some(artifact.install_name.clone());
        state.generation += 1;
        Ok(report)
    }

    /// Probe the host (or take `probed`, facts already learned); when its `.location`
    /// names another sremote dir (and none was set here), remember that dir and its tmp
    /// dir, and probe there again.
    async fn probe_following_location(
        &self,
        install_name: &str,
        explicit_dir: bool,
        probed: Option<HostFacts>,
    ) -> Result<HostFacts, Error> {
        let facts = match probed {
            Some(facts) => facts,
            None => self.probe_host(install_name).await?,
        };
        let loc = match facts.location.as_deref().and_then(LocationFile::parse) {
            Some(loc) if !explicit_dir => loc,
            _ => return Ok(facts),
        };
        let moved = loc
            .sremote
            .as_ref()
            .is_some_and(|d| *d != self.sremote_dir());
        if let Some(dir) = loc.sremote {
            lock(&self.inner.state).discovered_dir = Some(dir);
        }
        let tmp = match (loc.absolute_tmp, loc.relative_tmp) {
            (Some(abs), _) => Some(abs),
            (None, Some(rel)) => Some(format!("{}/{rel}", self.sremote_dir())),
            (None, None) => None,
        };
        lock(&self.inner.state).discovered_tmp = tmp;
        if moved {
            return self.probe_host(install_name).await;
        }
        Ok(facts)
    }

    /// Put `artifact` into `<dir>/bin` ([`INSTALL_SCRIPT`], or a push and
    /// [`FINISH_SCRIPT`] where the connector cannot feed stdin); `extra` is the scripts'
    /// `.location` JSON and tmp dir to make, `old` the older endpoints to remove. The
    /// install's output (its `removed=` lines).
    async fn install(
        &self,
        artifact: &EndpointArtifact,
        dir: &str,
        extra: [&str; 2],
        old: Vec<String>,
    ) -> Result<crate::ExecOutput, Error> {
        let id = self.next_id();
        let tmp = format!("{dir}/bin/.{}.{id}.part", artifact.install_name);
        // One remote program receives, verifies and installs where the connector feeds
        // stdin; else a push, then the finish.
        let one_exec = self.inner.connector.supports_stdin();
        if !one_exec {
            self.inner
                .connector
                .push(Source::bytes(artifact.bytes()).mode(0o700).scratch(), &tmp)
                .await?;
        }
        let script = if one_exec {
            INSTALL_SCRIPT
        } else {
            FINISH_SCRIPT
        };
        let mut cmd = RemoteCommand::new("sh")
            .args(["-c", script, "sh", dir, &tmp])
            .args([artifact.install_name.as_str(), &artifact.sha256])
            .args(extra)
            .args(old)
            .timeout(Duration::from_secs(120));
        if one_exec {
            cmd = cmd.stdin(artifact.bytes());
        }
        let action = format!("install {} into {dir}/bin", artifact.origin);
        self.setup_step(cmd, action, "the install step failed", "")
            .await
    }

    /// Run one step of the install; a failure is `NotSetup` naming `action`, with `failed`,
    /// the exit code and what the host printed (then `fix`) as its reason.
    async fn setup_step(
        &self,
        cmd: RemoteCommand,
        action: String,
        failed: &str,
        fix: &str,
    ) -> Result<crate::ExecOutput, Error> {
        let out = self.inner.connector.exec(&cmd).await?;
        if out.success() {
            return Ok(out);
        }
        Err(Error::NotSetup(Box::new(NotSetupError {
            host: self.host().to_string(),
            action,
            reason: format!(
                "{failed} (exit {:?}): {}{fix}",
                out.exit_code,
                out.stderr_text()
            ),
        })))
    }

    /// `.location` JSON to write when the user chose custom directories (empty: none),
    /// and the custom tmp dir to create (empty: none). A tmp dir inside the sremote dir
    /// is recorded as `relative_tmp` (relative to the sremote dir), any other as
    /// `absolute_tmp`: a path the client was given relative to the home is made absolute
    /// with the host's `home`.
    fn location_json(&self, explicit_dir: bool, home: &str) -> Result<(String, String), Error> {
        let tmp = lock(&self.inner.settings).tmp_dir.clone();
        if !explicit_dir && tmp.is_none() {
            return Ok((String::new(), String::new()));
        }
        let dir = self.sremote_dir();
        let mut loc = serde_json::Map::new();
        loc.insert("sremote".into(), Value::from(dir.as_str()));
        if let Some(t) = &tmp {
            let t = t.trim_end_matches('/');
            let (key, value) = if let Some(rel) = t.strip_prefix(&format!("{dir}/")) {
                ("relative_tmp", rel.to_string())
            } else if t.starts_with('/') {
                ("absolute_tmp", t.to_string())
            } else if home.starts_with('/') {
                (
                    "absolute_tmp",
                    format!("{}/{t}", home.trim_end_matches('/')),
                )
            } else {
                return Err(Error::usage(
                    format!(
                        "bootstrap on {}: the tmp dir {t:?} is relative to the home directory, \
                         but the host reported no home ({home:?})",
                        self.host()
                    ),
                    "set an absolute tmp dir",
                ));
            };
            loc.insert(key.into(), Value::from(value));
        }
        Ok((Value::Object(loc).to_string(), tmp.unwrap_or_default()))
    }
}

/// The fields of a `.location` JSON document (PROTOCOL.md, "Self-discovery").
#[derive(serde::Deserialize, Default, PartialEq, Eq)]
struct LocationFile {
    sremote: Option<String>,
    absolute_tmp: Option<String>,
    relative_tmp: Option<String>,
}

impl LocationFile {
    /// Parse `.location`; empty strings count as absent. `None` when it is not valid.
    fn parse(json: &str) -> Option<LocationFile> {
        let f: LocationFile = serde_json::from_str(json.trim()).ok()?;
        let keep = |s: Option<String>| s.filter(|s| !s.is_empty());
        Some(LocationFile {
            sremote: keep(f.sremote),
            absolute_tmp: keep(f.absolute_tmp),
            relative_tmp: keep(f.relative_tmp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_older_versions_are_removed() {
        let v = crate::protocol::VERSION;
        let names: Vec<String> = [
            "sremote-endpoint-0.0.1",
            "sremote-endpoint-0.0.1-0123456789ab",
            "sremote-endpoint-0.0.1-rc.1",
            &format!("sremote-endpoint-{v}"),
            &format!("sremote-endpoint-{v}-0123456789ab"),
            "sremote-endpoint-999.0.0",
            "sremote-endpoint-999.0.0-0123456789ab",
            "sremote-endpoint-latest",
            "sremote-endpoint-0.0",
            "other-0.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            older_endpoints(&names),
            [
                "sremote-endpoint-0.0.1",
                "sremote-endpoint-0.0.1-0123456789ab",
                "sremote-endpoint-0.0.1-rc.1"
            ]
        );
    }

    #[test]
    fn targets_are_read_from_headers() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[18] = 62;
        assert_eq!(binary_target(&elf).as_deref(), Some("linux-x86_64"));
        elf[18] = 183;
        assert_eq!(binary_target(&elf).as_deref(), Some("linux-aarch64"));
        assert_eq!(binary_target(b"#!/bin/sh\n"), None);
        assert!(EndpointArtifact::from_bytes(&b"#!/bin/sh\necho hi\n"[..], "script").is_err());
    }
}
