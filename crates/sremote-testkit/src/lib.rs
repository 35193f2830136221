//! # sremote-testkit
//!
//! Real SSH hosts for tests, with nothing set up by hand:
//!
//! - [`Sshd`]: an OpenSSH `sshd` on a free loopback port, with throwaway host and client
//!   keys, its own config, and a clean, empty HOME for the logged-in user (so the "host" is
//!   fresh, like a first bootstrap sees it). Stopped (by pid) on drop.
//! - [`NetnsHost`]: an `sshd` in its own network namespace with its own address
//!   (`10.200.<idx-1>.2`), logged in as an unprivileged user with a fresh home: a second,
//!   separate "host". Needs root; [`NetnsHost::start_or_skip`] skips cleanly without it.
//! - [`DelayProxy`]: loopback TCP forwarders adding a fixed delay each way (a WAN), counting
//!   the connections open at once.
//!
//! Both install `openssh-server`/`openssh-client` with `apt-get` when they are missing.
//! Ports, directories, namespaces and users never clash between tests running in parallel
//! (in one binary or in many).
//!
//! ```no_run
//! let sshd = sremote_testkit::Sshd::start().unwrap();
//! // ssh -F <sshd.ssh_config> <sshd.alias> true
//! println!("{} on port {}, config {}", sshd.destination(), sshd.port, sshd.ssh_config.display());
//! ```
#![warn(missing_docs)]

mod login;
mod netns;
mod proc;
mod proxy;
pub mod slurm;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub use login::{LoginUser, STDERR_BANNER, STDOUT_BANNER, ensure_shell};
pub use netns::NetnsHost;
pub use proc::{alive, processes_with};
pub use proxy::DelayProxy;

/// Why a test host could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// This machine cannot provide the host (not root, no network namespaces): skip the test.
    Skip(String),
    /// Something that should have worked failed.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Skip(m) => write!(f, "skipped: {m}"),
            Error::Failed(m) => write!(f, "test host failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn failed(what: impl std::fmt::Display) -> Error {
    Error::Failed(what.to_string())
}

/// Run a command, returning its stdout, or an error that shows its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(failed(format!(
            "{cmd:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Install the OpenSSH server and client with apt-get when `sshd`, `ssh` or `ssh-keygen`
/// is missing (non-interactive; `apt-get update` first if the plain install fails).
pub fn ensure_openssh() -> Result<(), Error> {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut done = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    let have = |p: &str| Path::new(p).exists();
    if *done || (have("/usr/sbin/sshd") && have("/usr/bin/ssh") && have("/usr/bin/ssh-keygen")) {
        *done = true;
        return Ok(());
    }
    let install = || {
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "openssh-server", "openssh-client"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    // Another test binary may hold the dpkg lock: retry for a while.
    let mut last = None;
    for attempt in 0..10 {
        if attempt == 1 {
            let _ = run(Command::new("apt-get").args(["update", "-q"]));
        }
        match install() {
            Ok(_) if have("/usr/sbin/sshd") => {
                *done = true;
                return Ok(());
            }
            Ok(_) => {
                last = Some(failed(
                    "apt-get installed openssh-server but /usr/sbin/sshd is missing",
                ))
            }
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    Err(last.unwrap_or_else(|| failed("cannot install openssh-server")))
}

pub(crate) fn keygen(path: &Path, comment: &str) -> Result<(), Error> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))
    .map(drop)
}

pub(crate) fn write(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| failed(format!("write {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| failed(format!("write {}: {e}", path.display())))
}

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| failed(format!("read {}: {e}", path.display())))
}

/// The sshd_config lines every test sshd shares.
pub(crate) const SSHD_COMMON: &str = "\
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
# key files live under /tmp (mode 1777), which StrictModes would reject
StrictModes no
UsePAM no
UseDNS no
X11Forwarding no
PrintMotd no
# sshd's default, as on real hosts: at most 10 channels per connection
MaxSessions 10
MaxStartups 100:30:200
LogLevel INFO
Subsystem sftp internal-sftp
";

/// Start `sshd -D` (as `program`), waiting until its log says it listens. `Ok(None)`: the
/// address was taken (pick another port).
pub(crate) fn start_sshd(
    mut cmd: Command,
    log: &Path,
    listening: &str,
) -> Result<Option<Child>, Error> {
    let _ = std::fs::remove_file(log);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("cannot start sshd: {e}")))?;
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(listening) {
            return Ok(Some(child));
        }
        if let Ok(Some(status)) = child.try_wait() {
            if text.contains("Address already in use") || text.contains("Cannot bind any address") {
                return Ok(None);
            }
            return Err(failed(format!(
                "sshd exited with {status}: {}",
                text.trim()
            )));
        }
        if started.elapsed() > Duration::from_secs(20) {
            proc::kill_tree(child.id());
            let _ = child.wait();
            return Err(failed(format!(
                "sshd did not start listening within 20 s: {}",
                text.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn current_user() -> Result<String, Error> {
    Ok(run(Command::new("id").arg("-un"))?.trim().to_string())
}

fn free_port() -> Result<u16, Error> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| failed(format!("bind 127.0.0.1:0: {e}")))?;
    Ok(l.local_addr().map_err(|e| failed(e.to_string()))?.port())
}

/// A throwaway OpenSSH server on `127.0.0.1:<port>`, logged into as the current user, whose
/// sessions see `HOME` = [`home`](Sshd::home), a fresh empty directory.
///
/// [`ssh_config`](Sshd::ssh_config) has the host as [`alias`](Sshd::alias) with the port,
/// user, client key and a known_hosts file that already holds the host key, so
/// `ssh -F <ssh_config> <alias>` works, with `StrictHostKeyChecking` on or off.
#[derive(Debug)]
pub struct Sshd {
    /// Loopback address the server listens on.
    pub host: String,
    /// The port it listens on.
    pub port: u16,
    /// The user to log in as (the user running the tests).
    pub user: String,
    /// The private key that the server accepts.
    pub client_key: PathBuf,
    /// An ssh_config with the [`alias`](Sshd::alias) for this server.
    pub ssh_config: PathBuf,
    /// known_hosts holding the server's (original) host key.
    pub known_hosts: PathBuf,
    /// The host alias in [`ssh_config`](Sshd::ssh_config).
    pub alias: String,
    /// The HOME that sessions see (empty at start).
    pub home: PathBuf,
    /// The directory holding keys, configs and the log.
    pub dir: PathBuf,
    /// The login password, for a server started with [`start_with_password`](Sshd::start_with_password).
    pub password: Option<String>,
    /// sshd_config lines that come before the shared ones (sshd keeps the first value).
    extra_config: String,
    child: Mutex<Option<Child>>,
    no_sh: Mutex<bool>,
    _tempdir: tempfile::TempDir,
    /// Dropped after the server is stopped (field order).
    _login: Option<LoginUser>,
}

impl Sshd {
    /// Start a new server (about 50 ms). Stop it by dropping it.
    pub fn start() -> Result<Sshd, Error> {
        Self::start_with(None)
    }

    /// Start a new server logged into as a new [`LoginUser`] whose login shell is `shell`
    /// (`bash`, `tcsh`, `fish`, …) and whose login scripts print banners on stdout and
    /// stderr. [`home`](Sshd::home) is that user's home. Needs root.
    pub fn start_as(shell: &str) -> Result<Sshd, Error> {
        Self::start_with(Some(LoginUser::create(shell)?))
    }

    /// Start a new server whose sessions have no usable `/bin/sh`: it runs in its own
    /// mount namespace, where `/bin/sh` is `/bin/false`. Needs root.
    pub fn start_without_usable_sh() -> Result<Sshd, Error> {
        // SAFETY: a plain getter.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::Skip("a private mount namespace needs root".into()));
        }
        let sshd = Self::start_with(None)?;
        *sshd.no_sh.lock().unwrap_or_else(|e| e.into_inner()) = true;
        sshd.restart()?;
        Ok(sshd)
    }

    /// Start a new server whose sshd_config begins with `extra` (sshd keeps the first
    /// value of a keyword, so these win over the testkit's), e.g. the stock
    /// `MaxStartups 10:30:100`.
    pub fn start_configured(extra: &str) -> Result<Sshd, Error> {
        Self::start_full(None, extra, None)
    }

    /// Start a new server that logs in only with keyboard-interactive authentication
    /// through PAM (as sites with passwords or one-time codes do), as a new
    /// [`LoginUser`] (bash) whose password is `password`. The client key is not accepted,
    /// and [`ssh_config`](Sshd::ssh_config) has no `BatchMode`, so ssh asks. Needs root.
    pub fn start_with_password(password: &str) -> Result<Sshd, Error> {
        let login = LoginUser::create("bash")?;
        let mut chpasswd = Command::new("chpasswd");
        chpasswd.stdin(Stdio::piped());
        let mut child = chpasswd.spawn().map_err(failed)?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{}:{password}", login.name).map_err(failed)?;
        }
        let status = child.wait().map_err(failed)?;
        if !status.success() {
            return Err(failed(format!("chpasswd exited with {status}")));
        }
        let extra = "UsePAM yes\nKbdInteractiveAuthentication yes\n\
                     AuthenticationMethods keyboard-interactive\n";
        Self::start_full(Some(login), extra, Some(password.to_string()))
    }

    fn start_with(login: Option<LoginUser>) -> Result<Sshd, Error> {
        Self::start_full(login, "", None)
    }

    fn start_full(
        login: Option<LoginUser>,
        extra: &str,
        password: Option<String>,
    ) -> Result<Sshd, Error> {
        ensure_openssh()?;
        let _ = std::fs::create_dir_all("/run/sshd"); // privilege separation dir (root only)
        let tempdir = tempfile::Builder::new()
            .prefix("srt-")
            .tempdir_in("/tmp")
            .map_err(failed)?;
        let dir = tempdir.path().to_path_buf();
        let user = match &login {
            Some(l) => l.name.clone(),
            None => current_user()?,
        };
        let (host_key, client_key) = (dir.join("host_ed25519"), dir.join("client_ed25519"));
        keygen(&host_key, "sremote-testkit-host")?;
        keygen(&client_key, "sremote-testkit-client")?;
        std::fs::copy(dir.join("client_ed25519.pub"), dir.join("authorized_keys"))
            .map_err(failed)?;
        let home = match &login {
            Some(l) => {
                // The login user reads authorized_keys here (the private keys stay 0600).
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(failed)?;
                l.home.clone()
            }
            None => {
                let home = dir.join("home");
                std::fs::create_dir(&home).map_err(failed)?;
                home
            }
        };
        let mut sshd = Sshd {
            host: "127.0.0.1".into(),
            port: 0,
            user,
            client_key,
            ssh_config: dir.join("ssh_config"),
            known_hosts: dir.join("known_hosts"),
            alias: "sremote-test".into(),
            home,
            dir,
            password,
            extra_config: extra.to_string(),
            child: Mutex::new(None),
            no_sh: Mutex::new(false),
            _tempdir: tempdir,
            _login: login,
        };
        for _ in 0..20 {
            sshd.port = free_port()?;
            if sshd.launch()? {
                sshd.write_client_files()?;
                return Ok(sshd);
            }
        }
        Err(failed("no free port after 20 tries"))
    }

    /// One server shared by every caller while any of them holds it (a new one after all
    /// have dropped theirs). Tests that kill or change the server must use [`start`](Self::start).
    pub fn shared() -> Result<Arc<Sshd>, Error> {
        static SHARED: Mutex<Weak<Sshd>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return Ok(s);
        }
        let s = Arc::new(Sshd::start()?);
        *slot = Arc::downgrade(&s);
        Ok(s)
    }

    fn launch(&self) -> Result<bool, Error> {
        let d = &self.dir;
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nSetEnv HOME={home}\n{extra}{SSHD_COMMON}",
            extra = self.extra_config,
            port = self.port,
            d = d.display(),
            home = self.home.display(),
        );
        write(&d.join("sshd_config"), &config, 0o644)?;
        let no_sh = *self.no_sh.lock().unwrap_or_else(|e| e.into_inner());
        let mut cmd = if no_sh {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
                .arg(r#"mount --bind /bin/false /bin/sh && exec "$0" "$@""#)
                .arg("/usr/sbin/sshd");
            c
        } else {
            Command::new("/usr/sbin/sshd")
        };
        cmd.arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"));
        let listening = format!("Server listening on 127.0.0.1 port {}.", self.port);
        match start_sshd(cmd, &d.join("sshd.log"), &listening)? {
            Some(child) => {
                *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn write_client_files(&self) -> Result<(), Error> {
        let pubkey = read(&self.dir.join("host_ed25519.pub"))?;
        let key: Vec<&str> = pubkey.split_whitespace().take(2).collect();
        write(
            &self.known_hosts,
            &format!("[127.0.0.1]:{} {}\n", self.port, key.join(" ")),
            0o644,
        )?;
        let config = format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking accept-new\n  {batch}\
             LogLevel ERROR\n",
            batch = if self.password.is_some() {
                ""
            } else {
                "BatchMode yes\n  "
            },
            alias = self.alias,
            port = self.port,
            user = self.user,
            key = self.client_key.display(),
            kh = self.known_hosts.display(),
        );
        write(&self.ssh_config, &config, 0o644)
    }

    /// `user@127.0.0.1` (give the port, key and known_hosts separately, or use the alias).
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// `ssh://user@127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("ssh://{}@{}:{}", self.user, self.host, self.port)
    }

    /// The listening sshd's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Child::id)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Kill (SIGKILL) the server and every session process it forked: established
    /// connections break at once, as if the host died. [`restart`](Self::restart) brings
    /// it back on the same port.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            proc::kill_tree(child.id());
            let _ = child.wait();
        }
    }

    /// Kill only the session processes (established connections break; new ones work).
    pub fn kill_sessions(&self) {
        if let Some(pid) = self.pid() {
            for p in proc::descendants(pid) {
                proc::kill(p);
            }
        }
    }

    /// Start the server again on the same port and keys (after [`kill`](Self::kill)).
    pub fn restart(&self) -> Result<(), Error> {
        self.kill();
        for _ in 0..50 {
            if self.launch()? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100)); // the old socket is still closing
        }
        Err(failed(format!("port {} stayed busy", self.port)))
    }

    /// Give the server a new host key (restarting it). The known_hosts file keeps the old
    /// key, so a client that checks it sees a changed host key.
    pub fn rotate_host_key(&self) -> Result<(), Error> {
        let key = self.dir.join("host_ed25519");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(self.dir.join("host_ed25519.pub"));
        keygen(&key, "sremote-testkit-host-rotated")?;
        self.restart()
    }

    /// A fresh relative directory name under the remote HOME, unique per call and process.
    pub fn unique_dir(&self, prefix: &str) -> String {
        unique_name(prefix)
    }
}

/// `prefix-<pid>-<n>`: unique within this machine's running processes.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}
