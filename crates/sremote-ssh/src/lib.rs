//! # sremote-ssh
//!
//! [`SshConnector`]: the sremote [`Connector`] over the system OpenSSH client, through the
//! [`openssh`] crate with native multiplexing. `~/.ssh/config`, the agent, `ProxyJump`,
//! certificates and GSSAPI work as users set them up; one authenticated master connection
//! carries every exec, push and pull (a few milliseconds per operation).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sremote_core::ConnectorError> {
//! use sremote_core::{Connector, RemoteCommand};
//! use sremote_ssh::SshConnector;
//! let ssh = SshConnector::connect("alice@login.cluster.org").await?;
//! let out = ssh.exec(&RemoteCommand::new("uname").arg("-a")).await?;
//! println!("{}", String::from_utf8_lossy(&out.stdout));
//! # Ok(()) }
//! ```
//!
//! The host needs a POSIX `/bin/sh`; the login shell may be any of sh, bash, dash, ksh,
//! zsh, tcsh/csh or fish, and login scripts may print what they like. Every command is
//! one line that all of those shells pass on to `/bin/sh` untouched, with the real script
//! and its arguments encoded inside it; no user data is interpreted by any shell, and
//! whatever login scripts print before the command starts is discarded (see `script.rs`).
//!
//! Every open session holds [`FDS_PER_SESSION`] descriptors in this process, so the first
//! connection raises the soft open-files limit towards the hard one
//! ([`raise_open_files_limit`]): one process can hold thousands of sessions, not ~250.
#![warn(missing_docs)]

mod error;
mod io;
mod limits;
mod master;
mod persist;
mod script;

pub use limits::{FDS_PER_SESSION, OPEN_FILES_WANTED, raise_open_files_limit};
pub use master::{Prompt, PromptFn};
pub use persist::{MasterInfo, connections, control_root, disconnect};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openssh::{Session, SessionBuilder};
use sremote_core::connector::scripted;
use sremote_core::{
    Connector, ConnectorError, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{connect_error, invalid};

/// What to do with the host's key (`StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KnownHostsPolicy {
    /// Accept and remember an unknown host; refuse a host whose key changed (default).
    #[default]
    AcceptNew,
    /// Refuse unknown hosts and changed keys.
    Strict,
    /// Accept any key (only for throwaway test hosts).
    AcceptAny,
}

/// Options for an [`SshConnector`]; see [`SshConnector::builder`].
///
/// Options left unset come from `ssh_config` (`~/.ssh/config`, or the file given with
/// [`config_file`](Self::config_file)); options set here win over it.
#[derive(Debug, Clone)]
pub struct SshConnectorBuilder {
    user: Option<String>,
    port: Option<u16>,
    keyfile: Option<PathBuf>,
    config_file: Option<PathBuf>,
    known_hosts: KnownHostsPolicy,
    known_hosts_file: Option<PathBuf>,
    connect_timeout: Duration,
    jump_hosts: Vec<String>,
    control_dir: Option<PathBuf>,
    keepalive: Duration,
    idle_persist: Duration,
    max_sessions: usize,
    persist: Option<Duration>,
    prompt: Option<Prompt>,
    terminal_prompts: bool,
}

impl Default for SshConnectorBuilder {
    fn default() -> Self {
        SshConnectorBuilder {
            user: None,
            port: None,
            keyfile: None,
            config_file: None,
            known_hosts: KnownHostsPolicy::AcceptNew,
            known_hosts_file: None,
            connect_timeout: Duration::from_secs(15),
            jump_hosts: Vec::new(),
            control_dir: None,
            keepalive: Duration::from_secs(5),
            idle_persist: Duration::from_secs(600),
            max_sessions: 10,
            persist: None,
            prompt: None,
            terminal_prompts: true,
        }
    }
}

impl SshConnectorBuilder {
    /// Log in as `user` (`ssh -l`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
    /// Connect to `port` (`ssh -p`).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Authenticate with this private key only (`ssh -i … -o IdentitiesOnly=yes`).
    pub fn keyfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.keyfile = Some(path.into());
        self
    }
    /// Read this ssh_config instead of `~/.ssh/config` (`ssh -F`).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }
    /// How to treat unknown and changed host keys (default: accept new, refuse changed).
    pub fn known_hosts(mut self, policy: KnownHostsPolicy) -> Self {
        self.known_hosts = policy;
        self
    }
    /// Use this known_hosts file (`UserKnownHostsFile`).
    pub fn known_hosts_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_hosts_file = Some(path.into());
        self
    }
    /// Give up connecting after this long (default 15 s; whole seconds, at least 1).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Reach the host through these jump hosts, in order (`ssh -J a,b`).
    pub fn jump_hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.jump_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }
    /// Put the control socket in this directory (at most 60 bytes long: a socket path has
    /// room for 108). Default: `$XDG_RUNTIME_DIR`, `$XDG_STATE_HOME`, `~/.local/state` or
    /// the temp dir, the first that is short enough.
    pub fn control_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.control_dir = Some(dir.into());
        self
    }
    /// Probe a silent connection this often (`ServerAliveInterval`, default 5 s); after
    /// three missed probes it counts as broken.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }
    /// Let the master connection exit after being idle this long (default 10 min), so that
    /// it never outlives a crashed program for long; the next operation reconnects.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_persist = idle;
        self
    }

    /// Open at most this many channels at once over the connection (default 10, sshd's
    /// default `MaxSessions`); more operations wait for a free one. One is kept for
    /// killing timed-out programs.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// Share the master connection with other programs and keep it up after this one
    /// ends, until it has been unused for `idle` (ssh ControlPersist): the first program
    /// to connect to a destination logs in, later ones (and many at once) reuse it. The
    /// control socket lives in [`control_root`] (private, 0700). `None` (the default):
    /// a master of this connector's own, closed when the last clone is dropped.
    pub fn persist(mut self, idle: Option<Duration>) -> Self {
        self.persist = idle.filter(|d| !d.is_zero());
        self
    }

    /// Answer ssh's login prompts (password, one-time code) with this callback
    /// (`SSH_ASKPASS`), whether or not there is a terminal.
    pub fn prompt(mut self, prompt: Prompt) -> Self {
        self.prompt = Some(prompt);
        self
    }

    /// Let ssh ask for a password or a code on the controlling terminal, when there is
    /// one and no [`prompt`](Self::prompt) callback (default: yes). Without either, logins
    /// that need typing fail with an `Auth` error that says how to log in instead.
    pub fn terminal_prompts(mut self, yes: bool) -> Self {
        self.terminal_prompts = yes;
        self
    }

    /// Connect to `destination`: `host`, `user@host`, `ssh://user@host:port` or an alias
    /// from ssh_config. Opens the master connection (and authenticates) now.
    pub async fn connect(self, destination: &str) -> Result<SshConnector, ConnectorError> {
        let fail = |what: String| Err(invalid(destination, "connect", what));
        for word in std::iter::once(destination)
            .chain(self.user.as_deref())
            .chain(self.jump_hosts.iter().map(|s| s.as_str()))
        {
            if word.is_empty()
                || word.starts_with('-')
                || word.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return fail(format!(
                    "{word:?} is not a valid ssh destination, user or jump host"
                ));
            }
        }
        let mut b = SessionBuilder::default();
        if let Some(u) = &self.user {
            b.user(u.clone());
        }
        if let Some(p) = self.port {
            b.port(p);
        }
        let (resolved, host) = b.resolve(destination);
        // `ssh://-oOption=…` resolves to a host that ssh would read as an option.
        if host.is_empty() || host.starts_with('-') {
            return fail(format!(
                "{host:?} (from {destination:?}) is not a valid ssh host name"
            ));
        }
        let target = Target {
            destination: destination.to_string(),
            host: host.to_string(),
            user: resolved.get_user().map(str::to_string),
            port: resolved.get_port().map(str::to_string),
        };
        let limit = self.connect_timeout.max(Duration::from_secs(1)) * 2 + Duration::from_secs(5);
        limits::raise_once();
        let opened = open(&self, &target, limit).await?;
        let reach = sremote_core::Reach {
            user: target.user.clone(),
            port: target.port.as_deref().and_then(|p| p.parse().ok()),
            ssh_config: self
                .config_file
                .as_deref()
                .map(sremote_core::Reach::absolute),
            ..sremote_core::Reach::ssh(&target.host)
        };
        Ok(SshConnector {
            inner: Arc::new(Inner {
                sessions: Arc::new(Semaphore::new(self.max_sessions.max(2) - 1)),
                name: opened.name,
                own: AtomicBool::new(opened.own),
                reach,
                opts: self,
                target,
                limit,
                session: Mutex::new(Arc::new(opened.session)),
                reconnecting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// What makes two connections the same master (the persisted socket's name).
    fn identity(&self, t: &Target) -> Vec<String> {
        let path = |p: &Option<PathBuf>| {
            p.as_deref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        vec![
            "sremote-master-v1".into(),
            t.host.clone(),
            t.user.clone().unwrap_or_default(),
            t.port.clone().unwrap_or_default(),
            path(&self.config_file),
            path(&self.keyfile),
            path(&self.known_hosts_file),
            format!("{:?}", self.known_hosts),
            self.jump_hosts.join(","),
        ]
    }

    fn launch_spec<'a>(
        &'a self,
        t: &'a Target,
        name: &'a str,
        socket: &'a Path,
        log: &'a Path,
        persist: Duration,
    ) -> master::Launch<'a> {
        master::Launch {
            host: &t.host,
            name,
            user: t.user.as_deref(),
            port: t.port.as_deref(),
            keyfile: self.keyfile.as_deref(),
            config_file: self.config_file.as_deref(),
            known_hosts: self.known_hosts,
            known_hosts_file: self.known_hosts_file.as_deref(),
            jump_hosts: &self.jump_hosts,
            connect_timeout: self.connect_timeout,
            keepalive: self.keepalive,
            persist,
            socket,
            log,
        }
    }
}

/// Where to connect: the destination as given, and host, user and port as parsed from it
/// (user and port: explicit options win).
#[derive(Debug, Clone)]
struct Target {
    destination: String,
    host: String,
    user: Option<String>,
    port: Option<String>,
}

/// A master connection [`open`] found or started.
struct Opened {
    session: Session,
    /// The host's name for messages.
    name: String,
    /// Started for this connector alone (not persisted, not the user's): it may be ended.
    own: bool,
}

impl Opened {
    fn shared(session: Session, name: String) -> Opened {
        Opened {
            session,
            name,
            own: false,
        }
    }
}

/// Open (or reuse) the master for `t`: a persisted one shared with other programs, the
/// user's own (ControlPath in ssh_config), or one of this connector's own.
async fn open(
    opts: &SshConnectorBuilder,
    t: &Target,
    limit: Duration,
) -> Result<Opened, ConnectorError> {
    let asking = master::Asking::choose(opts.prompt.as_ref(), opts.terminal_prompts);
    let Some(persist) = opts.persist else {
        let g = resolve_config(opts, t).await?;
        if let Some(s) = user_master(&g).await {
            return Ok(Opened::shared(s, g.name));
        }
        let dir = control_dir(opts.control_dir.as_deref())
            .and_then(|d| {
                tempfile::Builder::new()
                    .prefix(".ssh-connection")
                    .tempdir_in(&d)
                    .map_err(|e| format!("cannot create a directory in {}: {e}", d.display()))
            })
            .map_err(|e| invalid(&t.destination, "connect", e))?;
        let (socket, log) = (dir.path().join("master"), dir.path().join("log"));
        let spec = opts.launch_spec(t, &g.name, &socket, &log, opts.idle_persist);
        master::launch(&spec, &asking, limit).await?;
        return Ok(Opened {
            session: Session::new_native_mux(dir),
            name: g.name,
            own: true,
        });
    };
    let root = persist::control_root().map_err(|e| invalid(&t.destination, "connect", e))?;
    let identity = opts.identity(t);
    let paths = persist::Paths::new(
        &root,
        &identity.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    if let Some(s) = paths.resume().await
        && let Some(name) = paths.name()
    {
        return Ok(Opened::shared(s, name));
    }
    let g = resolve_config(opts, t).await?;
    if let Some(s) = user_master(&g).await {
        return Ok(Opened::shared(s, g.name));
    }
    let _lock = paths.lock().await.map_err(|e| {
        invalid(
            &g.name,
            "connect",
            format!("cannot lock {}: {e}", paths.lock.display()),
        )
    })?;
    // Another program may have logged in while this one waited for the lock.
    if let Some(s) = paths.resume().await {
        return Ok(Opened::shared(s, g.name));
    }
    paths.remove();
    let spec = opts.launch_spec(t, &g.name, &paths.socket, &paths.log, persist);
    master::launch(&spec, &asking, limit).await?;
    paths.write_info(&t.destination, &g.name, persist);
    let session = Session::resume_mux(paths.socket.clone().into_boxed_path(), None);
    Ok(Opened::shared(session, g.name))
}

/// A master the user runs already (ControlPath in ssh_config, socket answering).
async fn user_master(g: &Resolved) -> Option<Session> {
    let path = g.control_path.as_ref()?;
    if !path.exists() {
        return None;
    }
    let s = Session::resume_mux(path.clone().into_boxed_path(), None);
    match tokio::time::timeout(Duration::from_secs(3), s.check()).await {
        Ok(Ok(())) => Some(s),
        _ => None,
    }
}

/// Pick a control directory whose socket paths fit in `sun_path`.
fn control_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    const MAX: usize = 60;
    if let Some(dir) = explicit {
        if dir.as_os_str().len() > MAX {
            return Err(format!(
                "control directory {} is longer than {MAX} bytes",
                dir.display()
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        return Ok(dir.to_path_buf());
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let candidates = [
        env("XDG_RUNTIME_DIR"),
        env("XDG_STATE_HOME"),
        env("HOME").map(|h| h.join(".local/state")),
    ];
    for dir in candidates.into_iter().flatten() {
        if dir.is_absolute()
            && dir.as_os_str().len() <= MAX
            && std::fs::create_dir_all(&dir).is_ok()
        {
            return Ok(dir);
        }
    }
    Ok(std::env::temp_dir())
}

/// What `ssh -G` says about a destination (no connection is made).
struct Resolved {
    /// `user@host:port`, with user and port as ssh will use them.
    name: String,
    /// The user's own ControlPath, when ssh_config sets one.
    control_path: Option<PathBuf>,
}

async fn resolve_config(
    opts: &SshConnectorBuilder,
    t: &Target,
) -> Result<Resolved, ConnectorError> {
    let host = t.host.as_str();
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.arg("-G");
    if let Some(f) = &opts.config_file {
        cmd.arg("-F").arg(f);
    }
    if let Some(p) = &t.port {
        cmd.args(["-p", p]);
    }
    if let Some(u) = &t.user {
        cmd.args(["-l", u]);
    }
    let out = cmd
        .arg("--")
        .arg(host)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| master::cannot_run_ssh(host, &e))?;
    if !out.status.success() {
        return Err(connect_error(host, &String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(str::to_string)
    };
    let user = get("user").unwrap_or_default();
    let port = get("port").unwrap_or_else(|| "22".into());
    let control_path = get("controlpath")
        .filter(|p| p != "none" && !p.is_empty())
        .map(PathBuf::from);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    Ok(Resolved {
        name: format!("{user}@{host}:{port}"),
        control_path,
    })
}

/// A [`Connector`] to one host over SSH. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct SshConnector {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// How to connect again: destination, explicit user and port, config file.
    reach: sremote_core::Reach,
    opts: SshConnectorBuilder,
    target: Target,
    limit: Duration,
    session: Mutex<Arc<Session>>,
    /// Whether `session` is this connector's own master ([`Opened::own`]).
    own: AtomicBool,
    reconnecting: tokio::sync::Mutex<()>,
    sessions: Arc<Semaphore>,
}

impl std::fmt::Debug for SshConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnector")
            .field("host", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl SshConnector {
    /// Connect with default options; see [`SshConnectorBuilder::connect`] for `destination`.
    pub async fn connect(destination: &str) -> Result<SshConnector, ConnectorError> {
        Self::builder().connect(destination).await
    }

    /// Options: user, port, key, ssh_config file, known-hosts policy, timeouts, jump hosts.
    pub fn builder() -> SshConnectorBuilder {
        SshConnectorBuilder::default()
    }

    /// Whether the master connection is shared with other programs and outlives this one
    /// ([`SshConnectorBuilder::persist`]).
    pub fn persisted(&self) -> bool {
        self.inner.opts.persist.is_some()
    }

    /// The master connection's control socket (for `ssh -S <socket> host …`).
    pub fn control_socket(&self) -> PathBuf {
        self.session().control_socket().to_path_buf()
    }

    /// Check that the master connection is alive (reconnecting if it is not).
    pub async fn check(&self) -> Result<(), ConnectorError> {
        let session = self.session();
        if session.check().await.is_ok() {
            return Ok(());
        }
        self.reconnect(&session).await.map(drop)
    }

    /// End this connector's own master connection now and wait until its ssh process has
    /// exited, so its TCP connection is closed when this returns (a fan-out bounded to N
    /// hosts then never holds more than N connections). Sessions and programs still
    /// running on it are cut off. A shared master — persisted for other programs
    /// ([`SshConnectorBuilder::persist`]) or the user's own ControlMaster — is left
    /// alone: nothing happens. A call after `close` connects again.
    ///
    /// Dropping the connector only asks the master to stop listening; it then exits
    /// when its last channel has closed, a round trip later.
    pub async fn close(&self) -> Result<(), ConnectorError> {
        if !self.inner.own.load(Ordering::Relaxed) {
            return Ok(());
        }
        master::stop(&self.control_socket(), &self.inner.name).await
    }

    fn session(&self) -> Arc<Session> {
        self.inner
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replace the master connection `old` (once, however many callers saw it fail).
    async fn reconnect(&self, old: &Arc<Session>) -> Result<Arc<Session>, ConnectorError> {
        let _one_at_a_time = self.inner.reconnecting.lock().await;
        let current = self.session();
        if !Arc::ptr_eq(&current, old) {
            return Ok(current);
        }
        let i = &self.inner;
        let opened = open(&i.opts, &i.target, i.limit).await?;
        let fresh = Arc::new(opened.session);
        *i.session.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        i.own.store(opened.own, Ordering::Relaxed);
        Ok(fresh)
    }

    /// Start `line` on the host with `stdio()` as its stdin and stdout (stderr is piped).
    /// The permit (one of `max_sessions - 1`; the last channel is kept for kills) must be
    /// held until the remote process has ended. Retried where nothing can have started on
    /// the host: a dead master (e.g. idle-expired) is replaced once, and a channel the
    /// server refused (its `MaxSessions`) is asked for again for a few seconds.
    async fn start_line(
        &self,
        line: &str,
        action: &str,
        stdio: impl Fn() -> std::io::Result<(openssh::Stdio, openssh::Stdio)>,
    ) -> Result<
        (
            openssh::Child<Arc<Session>>,
            Arc<Session>,
            OwnedSemaphorePermit,
        ),
        ConnectorError,
    > {
        let name = &self.inner.name;
        if line.len() > script::MAX_LINE {
            return Err(invalid(
                name,
                action,
                format!(
                    "the command line is {} bytes once quoted for the host's shells; sshd \
                     accepts at most {} (128 KiB): pass large data on stdin or in a pushed file",
                    line.len(),
                    script::MAX_LINE
                ),
            ));
        }
        let permit = self
            .inner
            .sessions
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| error::disconnected(name, action))?;
        let mut session = self.session();
        let (mut reconnected, mut refused) = (false, 0u32);
        loop {
            let (stdin, stdout) = stdio().map_err(|e| {
                if limits::out_of_files_io(&e) {
                    limits::out_of_files(name, action, &e)
                } else {
                    ConnectorError::io(name, action, &e)
                }
            })?;
            let spawned = Session::to_raw_command(session.clone(), line)
                .stdin(stdin)
                .stdout(stdout)
                .stderr(openssh::Stdio::piped())
                .spawn()
                .await;
            match spawned {
                Ok(child) => return Ok((child, session, permit)),
                Err(openssh::Error::Disconnected) if !reconnected => {
                    reconnected = true;
                    session = self.reconnect(&session).await?;
                }
                Err(e) if error::is_refused(&e) && refused < 50 => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(u64::from(refused) * 10)).await;
                }
                Err(e) if error::is_refused(&e) => {
                    return Err(error::ssh_error(name, action, e).hint(
                        "the host allows fewer channels per connection (sshd MaxSessions) than \
                         SshConnectorBuilder::max_sessions: lower it",
                    ));
                }
                Err(e) => return Err(error::ssh_error(name, action, e)),
            }
        }
    }
}

#[async_trait]
impl Connector for SshConnector {
    fn host(&self) -> &str {
        &self.inner.name
    }

    fn reach(&self) -> Option<sremote_core::Reach> {
        Some(self.inner.reach.clone())
    }

    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        scripted::exec(self, cmd).await
    }

    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        scripted::push(self, from, to).await
    }

    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        scripted::pull(self, from, to).await
    }

    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        scripted::spawn(self, cmd).await
    }
}
