//! Persisted master connections: one ssh master per destination that outlives the
//! program (ControlPersist), shared by every later program through a control socket in a
//! private directory, created under a lock so that many programs started at once log in
//! once.
//!
//! For each master, in the control directory (0700, owned by the user):
//! `<key>` (the socket), `<key>.lock` (flock while a master is being started),
//! `<key>.log` (ssh's log), `<key>.info` (what it connects to, when it started),
//! `<key>.used` (touched by every program that uses it: its mtime is the last use).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use openssh::Session;
use sha2::{Digest, Sha256};

/// Longest control directory accepted: the socket path (`<dir>/<16 hex>`, and ssh's
/// temporary `.<16 random>` suffix while it binds) must fit in `sun_path` (108 bytes).
const MAX_DIR: usize = 60;

/// The private directory for persisted control sockets: `$SREMOTE_CONTROL_DIR`, else
/// `$XDG_RUNTIME_DIR/sremote`, else `~/.sremote-client/ctl`, else `/tmp/sremote-<uid>`
/// (the first that is short enough). Created 0700; refused unless it is a directory
/// owned by this user that nobody else can enter.
pub fn control_root() -> Result<PathBuf, String> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // SAFETY: a plain getter.
    let uid = unsafe { libc::geteuid() };
    let candidates = [
        env("SREMOTE_CONTROL_DIR"),
        env("XDG_RUNTIME_DIR").map(|d| d.join("sremote")),
        env("HOME").map(|h| h.join(".sremote-client/ctl")),
        Some(PathBuf::from(format!("/tmp/sremote-{uid}"))),
    ];
    let dir = candidates
        .into_iter()
        .flatten()
        .find(|d| d.is_absolute() && d.as_os_str().len() <= MAX_DIR)
        .ok_or("no control directory short enough for a socket path")?;
    if let Some(parent) = dir.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    check_private(&dir, uid)?;
    Ok(dir)
}

/// Refuse a control directory that is a symlink, not ours, or open to others.
fn check_private(dir: &Path, uid: u32) -> Result<(), String> {
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let refuse = |why: &str| {
        Err(format!(
            "refusing the control socket directory {}: {why} (it must be a directory owned by \
             you with mode 0700; remove it, or set SREMOTE_CONTROL_DIR)",
            dir.display()
        ))
    };
    if !m.is_dir() {
        return refuse("it is not a directory");
    }
    if m.uid() != uid {
        return refuse(&format!("it belongs to uid {}", m.uid()));
    }
    if m.permissions().mode() & 0o077 != 0 {
        return refuse(&format!("its mode is {:o}", m.permissions().mode() & 0o777));
    }
    Ok(())
}

/// The files of one persisted master.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
    pub info: PathBuf,
    pub used: PathBuf,
}

impl Paths {
    /// The master for `identity` (everything that makes a connection different) in `root`.
    pub fn new(root: &Path, identity: &[&str]) -> Paths {
        let mut h = Sha256::new();
        for part in identity {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let key: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Paths::of(root, &key)
    }

    fn of(root: &Path, key: &str) -> Paths {
        let f = |ext: &str| root.join(format!("{key}{ext}"));
        Paths {
            socket: f(""),
            lock: f(".lock"),
            log: f(".log"),
            info: f(".info"),
            used: f(".used"),
        }
    }

    /// A session on the live master, or `None` when there is none (or it does not answer).
    pub async fn resume(&self) -> Option<Session> {
        if !self.socket.exists() {
            return None;
        }
        let s = Session::resume_mux(self.socket.clone().into_boxed_path(), None);
        match tokio::time::timeout(Duration::from_secs(3), s.check()).await {
            Ok(Ok(())) => {
                self.touch();
                Some(s)
            }
            _ => None,
        }
    }

    /// Record a use (the `.used` file's mtime).
    pub fn touch(&self) {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.used);
        if let Ok(f) = f {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Hold the lock (flock) until the returned file is dropped; waits for another
    /// program that is starting this master (maybe asking for a password).
    pub async fn lock(&self) -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.lock)?;
        tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open file descriptor.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Write what `connections` shows (the socket is live from here on).
    pub fn write_info(&self, destination: &str, name: &str, persist: Duration) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let text = format!(
            "destination={}\nname={}\nstarted={now}\npersist={}\n",
            one_line(destination),
            one_line(name),
            persist.as_secs()
        );
        let _ = std::fs::remove_file(&self.info);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.info)
        {
            let _ = f.write_all(text.as_bytes());
        }
        self.touch();
    }

    /// The display name recorded for this master.
    pub fn name(&self) -> Option<String> {
        read_info(&self.info).map(|i| i.name)
    }

    /// Remove every file but the lock.
    pub fn remove(&self) {
        for p in [&self.socket, &self.info, &self.used, &self.log] {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

struct Info {
    destination: String,
    name: String,
    started: u64,
    persist: u64,
}

fn read_info(path: &Path) -> Option<Info> {
    let text = std::fs::read_to_string(path).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(Info {
        destination: get("destination")?,
        name: get("name")?,
        started: get("started")?.parse().ok()?,
        persist: get("persist").and_then(|p| p.parse().ok()).unwrap_or(0),
    })
}

/// A live persisted master connection (see [`connections`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MasterInfo {
    /// The destination it was opened for, as given (`host`, `user@host`, an alias…).
    pub destination: String,
    /// `user@host:port`, as ssh resolved it.
    pub name: String,
    /// Its control socket (`ssh -S SOCKET …`).
    pub socket: PathBuf,
    /// When it logged in.
    pub started: SystemTime,
    /// When a program last used it.
    pub last_used: SystemTime,
    /// How long it stays up unused (ControlPersist).
    pub persist: Duration,
}

/// The live persisted masters in the control directory. Files of masters that have
/// exited are removed.
pub async fn connections() -> Result<Vec<MasterInfo>, String> {
    let root = control_root()?;
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(key) = file.strip_suffix(".info") else {
            continue;
        };
        let paths = Paths::of(&root, key);
        let Some(info) = read_info(&paths.info) else {
            continue;
        };
        let socket = Session::resume_mux(paths.socket.clone().into_boxed_path(), None);
        let live = paths.socket.exists()
            && matches!(
                tokio::time::timeout(Duration::from_secs(2), socket.check()).await,
                Ok(Ok(()))
            );
        if !live {
            if let Ok(l) = try_lock(&paths.lock) {
                paths.remove();
                drop(l);
            }
            continue;
        }
        let last_used = std::fs::metadata(&paths.used)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        out.push(MasterInfo {
            destination: info.destination,
            name: info.name,
            socket: paths.socket.clone(),
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(info.started),
            last_used,
            persist: Duration::from_secs(info.persist),
        });
    }
    out.sort_by(|a, b| a.destination.cmp(&b.destination));
    Ok(out)
}

fn try_lock(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    // SAFETY: a valid open file descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// Close a persisted master (`ssh -O exit`) and remove its files.
pub async fn disconnect(master: &MasterInfo) -> Result<(), String> {
    let out = tokio::process::Command::new("ssh")
        .arg("-S")
        .arg(&master.socket)
        .args(["-O", "exit", "sremote-master"])
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .map_err(|_| format!("{}: `ssh -O exit` did not answer", master.name))?
        .map_err(|e| format!("cannot run the local `ssh` program: {e}"))?;
    let root = master.socket.parent().unwrap_or(Path::new("/"));
    let key = master
        .socket
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    Paths::of(root, &key).remove();
    if out.status.success() || !master.socket.exists() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            master.name,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
