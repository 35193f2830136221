//! The gateway's TOML configuration.
//!
//! ```toml
//! # Address to listen on. Plain HTTP (no [tls]) is only allowed on a loopback address.
//! listen = "0.0.0.0:8443"
//! # Prefix of every route, so the base URL is https://HOST:8443/newt (default: none).
//! base_path = "/newt"
//! # Machine names accepted in /command/<machine> and /file/<machine>/... (default: ["localhost"]).
//! machines = ["cluster"]
//! # Users and their argon2 password hashes / token hashes (`sremote-gateway adduser`).
//! # Relative paths are relative to this file's directory.
//! users_file = "users"
//! # Directories files may be read from and written to. `~` is the gateway user's home,
//! # which holds `~/.sremote` (where clients install the endpoint).
//! roots = ["~", "/scratch"]
//!
//! [tls]                        # omit for plain HTTP on loopback (a loud warning is printed)
//! cert = "cert.pem"            # PEM certificate chain
//! key = "key.pem"              # PEM private key
//!
//! [sessions]
//! lifetime_secs = 43200        # a session id expires this long after login
//!
//! [limits]
//! max_upload_bytes = 17179869184   # PUT bodies larger than this get 413 (streamed, never buffered)
//! max_form_bytes = 4194304         # POST /command bodies
//! max_auth_bytes = 8192            # POST /auth (login) bodies: forms are tiny; beyond: 413
//! max_connections = 512            # open connections; beyond, silent ones are closed first
//! header_read_timeout_secs = 20    # a request head must arrive within this, after connecting
//!                                  # or after the previous answer (so idle connections close)
//! max_output_bytes = 67108864      # per stream (stdout, stderr) of a command; beyond: killed, 422
//! command_timeout_secs = 3600      # used when the request names no timeout
//! max_command_timeout_secs = 86400 # a larger requested timeout is lowered to this
//! max_concurrent_commands = 64     # more wait in a queue
//! max_concurrent_logins = 4        # argon2 verifications at once (each needs ~19 MiB)
//! max_sessions = 100000
//! free_failed_logins = 5           # failed logins in a row per user before delays start
//! max_login_delay_secs = 60        # delays double from 1 s up to this (answered 429)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::GatewayError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: String,
    #[serde(default)]
    base_path: String,
    #[serde(default = "default_machines")]
    machines: Vec<String>,
    users_file: PathBuf,
    roots: Vec<String>,
    tls: Option<TlsFile>,
    #[serde(default)]
    sessions: SessionsFile,
    #[serde(default)]
    limits: Limits,
}

fn default_machines() -> Vec<String> {
    vec!["localhost".to_string()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SessionsFile {
    lifetime_secs: u64,
}

impl Default for SessionsFile {
    fn default() -> Self {
        SessionsFile {
            lifetime_secs: 12 * 3600,
        }
    }
}

/// Size, time and concurrency limits (section `[limits]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted PUT body, in bytes.
    pub max_upload_bytes: u64,
    /// Largest accepted form body of `POST /command`, in bytes.
    pub max_form_bytes: usize,
    /// Largest accepted login body (`POST /auth`), in bytes.
    pub max_auth_bytes: usize,
    /// Connections open at once (lowered to fit the open-files limit); beyond, the oldest
    /// connection that has sent nothing is closed, else the new one is.
    pub max_connections: usize,
    /// Time a connection has to send a complete request head, after connecting or after
    /// its previous answer (the keep-alive idle timeout), in seconds.
    pub header_read_timeout_secs: f64,
    /// Largest stdout (and, separately, stderr) a command may produce, in bytes.
    pub max_output_bytes: usize,
    /// Timeout of a command whose request names none, in seconds.
    pub command_timeout_secs: f64,
    /// Upper bound of a requested command timeout, in seconds.
    pub max_command_timeout_secs: f64,
    /// Commands running at once; more wait.
    pub max_concurrent_commands: usize,
    /// Password verifications running at once; more wait.
    pub max_concurrent_logins: usize,
    /// Live sessions kept at most; the oldest are dropped beyond.
    pub max_sessions: usize,
    /// Failed logins in a row for one user name before delays start.
    pub free_failed_logins: u32,
    /// Longest delay imposed between login attempts of one user name, in seconds.
    pub max_login_delay_secs: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 16 << 30,
            max_form_bytes: 4 << 20,
            max_auth_bytes: 8 << 10,
            max_connections: 512,
            header_read_timeout_secs: 20.0,
            max_output_bytes: 64 << 20,
            command_timeout_secs: 3600.0,
            max_command_timeout_secs: 86400.0,
            max_concurrent_commands: 64,
            max_concurrent_logins: 4,
            max_sessions: 100_000,
            free_failed_logins: 5,
            max_login_delay_secs: 60.0,
        }
    }
}

/// TLS certificate chain and key, both PEM files.
#[derive(Debug, Clone)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Route prefix, empty or starting with `/` and not ending with one.
    pub base_path: String,
    /// Machine names served.
    pub machines: Vec<String>,
    /// The users file.
    pub users_file: PathBuf,
    /// Roots as configured (absolute, `~` expanded), not yet canonical.
    pub roots: Vec<PathBuf>,
    /// TLS material; `None`: plain HTTP (loopback only).
    pub tls: Option<Tls>,
    /// How long a session lives after login.
    pub session_lifetime: Duration,
    /// Size, time and concurrency limits.
    pub limits: Limits,
    /// The gateway user's home directory: commands run there, `~` means it.
    pub home: PathBuf,
}

/// Refuse limits that make no sense (zero, negative, not finite).
fn check_limits(l: &Limits) -> Result<(), GatewayError> {
    let bad = |m: &str| Err(GatewayError::Config(m.to_string()));
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(l.max_login_delay_secs) {
        return bad("limits.max_login_delay_secs must be a positive number");
    }
    if !positive(l.command_timeout_secs)
        || !positive(l.max_command_timeout_secs)
        || !positive(l.header_read_timeout_secs)
    {
        return bad("limits.*timeout_secs must be positive numbers");
    }
    if l.max_concurrent_commands == 0
        || l.max_concurrent_logins == 0
        || l.max_sessions == 0
        || l.max_connections == 0
    {
        return bad("limits.max_concurrent_*, max_sessions and max_connections must be positive");
    }
    if l.max_auth_bytes < 256 {
        return bad("limits.max_auth_bytes must be at least 256");
    }
    Ok(())
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, GatewayError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GatewayError::Config(format!("cannot read {}: {e}", path.display())))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &dir).map_err(|e| match e {
            GatewayError::Config(m) => GatewayError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parse configuration text; relative file paths are resolved against `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Config, GatewayError> {
        let f: ConfigFile =
            toml::from_str(text).map_err(|e| GatewayError::Config(e.to_string()))?;
        let bad = |m: String| Err(GatewayError::Config(m));
        let listen: SocketAddr = match f.listen.parse() {
            Ok(a) => a,
            Err(_) => return bad(format!("listen = {:?} is not an IP:PORT address", f.listen)),
        };
        if f.tls.is_none() && !listen.ip().is_loopback() {
            return bad(format!(
                "listen = {listen} is not a loopback address and there is no [tls] section: \
                 plain HTTP is only allowed on loopback; add [tls] cert/key"
            ));
        }
        let base_path = f.base_path.trim_end_matches('/').to_string();
        if !base_path.is_empty()
            && (!base_path.starts_with('/') || base_path.contains(['?', '#', '{', '}']))
        {
            return bad(format!("base_path = {:?} must start with `/`", f.base_path));
        }
        if f.machines.is_empty() || f.machines.iter().any(|m| m.is_empty() || m.contains('/')) {
            return bad("machines must list at least one name without `/`".into());
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let Some(home) = home.filter(|h| h.is_absolute()) else {
            return bad("HOME is not set to an absolute path for the gateway user".into());
        };
        if f.roots.is_empty() {
            return bad("roots must list at least one directory".into());
        }
        let mut roots = Vec::new();
        for r in &f.roots {
            let p = match r.strip_prefix('~') {
                Some("") => home.clone(),
                Some(rest) if rest.starts_with('/') => home.join(rest.trim_start_matches('/')),
                _ => PathBuf::from(r),
            };
            if !p.is_absolute() {
                return bad(format!("root {r:?} must be absolute or start with `~`"));
            }
            roots.push(p);
        }
        if f.sessions.lifetime_secs == 0 {
            return bad("sessions.lifetime_secs must be positive".into());
        }
        check_limits(&f.limits)?;
        let rel = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
        Ok(Config {
            listen,
            base_path,
            machines: f.machines,
            users_file: rel(f.users_file),
            roots,
            tls: f.tls.map(|t| Tls {
                cert: rel(t.cert),
                key: rel(t.key),
            }),
            session_lifetime: Duration::from_secs(f.sessions.lifetime_secs),
            limits: f.limits,
            home,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start().to_string() + "\n")
            .collect();
        let c = Config::parse(&example, Path::new("/etc/gw")).expect("documented example parses");
        assert_eq!(c.base_path, "/newt");
        assert_eq!(c.users_file, Path::new("/etc/gw/users"));
        assert_eq!(c.tls.expect("tls").key, Path::new("/etc/gw/key.pem"));
        assert_eq!(c.roots[1], Path::new("/scratch"));
        assert_eq!(c.limits.max_output_bytes, 64 << 20);
    }

    #[test]
    fn parses_the_example_file() {
        let c = Config::parse(
            include_str!("../gateway.example.toml"),
            Path::new("/etc/gw"),
        )
        .expect("example");
        assert_eq!(c.machines, ["cluster"]);
        assert_eq!(c.limits.max_upload_bytes, 16 << 30);
        assert!(c.tls.is_some());
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let base = "users_file = \"u\"\nroots = [\"/tmp\"]\n";
        let err =
            Config::parse(&format!("listen = \"0.0.0.0:1\"\n{base}"), Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        Config::parse(&format!("listen = \"127.0.0.1:0\"\n{base}"), Path::new("/"))
            .expect("loopback ok");
        Config::parse(&format!("listen = \"[::1]:0\"\n{base}"), Path::new("/"))
            .expect("v6 loopback ok");
        let err = Config::parse(
            &format!("listen = \"127.0.0.1:0\"\nbogus = 1\n{base}"),
            Path::new("/"),
        );
        assert!(err.is_err(), "unknown keys are refused");
    }
}
