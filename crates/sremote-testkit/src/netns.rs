//! A second "host": sshd in its own network namespace, logged into as an unprivileged user.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::{Error, SSHD_COMMON, failed, keygen, proc, read, run, write};

/// An OpenSSH server in the network namespace `name`, listening on `10.200.<idx-1>.2:22`,
/// reached over a veth pair (`v-<name>`, `10.200.<idx-1>.1` on this side), with a fresh
/// unprivileged user `srt<idx>` (new, empty home) whose key is in `~/.ssh/authorized_keys`.
/// Sessions see `hostname` = `name` where `unshare` is available.
///
/// Starting it again with the same name or index (after a crash, or from another test
/// binary) is safe: a file lock per name and per index makes concurrent users wait, and
/// leftovers are removed first. Everything is removed on drop (namespace, link, user,
/// processes, files).
#[derive(Debug)]
pub struct NetnsHost {
    /// Namespace name, also the ssh alias and the hostname seen in sessions.
    pub name: String,
    /// The host's address.
    pub address: String,
    /// The unprivileged login user.
    pub user: String,
    /// That user's home directory (fresh).
    pub home: PathBuf,
    /// Client private key accepted for [`user`](NetnsHost::user).
    pub client_key: PathBuf,
    /// ssh_config with [`name`](NetnsHost::name) as an alias (user, key, strict known_hosts).
    pub ssh_config: PathBuf,
    /// known_hosts holding the host key.
    pub known_hosts: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
    _locks: [File; 2],
}

fn lock(path: &str) -> Result<File, Error> {
    use std::os::unix::io::AsRawFd;
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| failed(format!("lock {path}: {e}")))?;
    // SAFETY: flock on a file descriptor we own; blocks until the other holder is done.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(failed(format!(
            "flock {path}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(f)
}

/// Run a command that may hit /etc/passwd's lock while another test edits users.
pub(crate) fn run_retry(mut make: impl FnMut() -> Command) -> Result<String, Error> {
    let mut last = failed("not run");
    for _ in 0..50 {
        match run(&mut make()) {
            Ok(out) => return Ok(out),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

pub(crate) fn uid_of(user: &str) -> Option<u32> {
    run(Command::new("id").args(["-u", user]))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(crate) fn remove_user(user: &str) {
    let Some(uid) = uid_of(user) else { return };
    if uid < 1000 {
        return; // never a system user
    }
    for pid in proc::owned_by(uid) {
        proc::kill(pid);
    }
    let _ = run_retry(|| {
        let mut c = Command::new("userdel");
        c.args(["-r", user]);
        c
    });
}

fn remove_namespace(name: &str) {
    if run(Command::new("ip").args(["netns", "pids", name])).is_ok_and(|pids| {
        pids.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .for_each(proc::kill);
        true
    }) {
        let _ = run(Command::new("ip").args(["netns", "del", name]));
    }
    let _ = run(Command::new("ip").args(["link", "del", &format!("v-{name}")]));
}

impl NetnsHost {
    /// Start the host `name` (at most 13 characters: `[a-z0-9-]`) with index `idx` (1–255).
    /// Returns [`Error::Skip`] when this machine cannot do it (not root, no `ip netns`).
    pub fn start(name: &str, idx: u8) -> Result<NetnsHost, Error> {
        if name.is_empty()
            || name.len() > 13
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(failed(format!(
                "bad namespace name {name:?}: 1-13 of [a-z0-9-]"
            )));
        }
        if idx == 0 {
            return Err(failed("idx starts at 1"));
        }
        // SAFETY: a plain getter.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::Skip("network-namespace hosts need root".into()));
        }
        if run(Command::new("ip").args(["netns", "list"])).is_err() {
            return Err(Error::Skip(
                "`ip netns` is not available (install iproute2)".into(),
            ));
        }
        crate::ensure_openssh()?;
        let locks = [
            lock(&format!("/tmp/sremote-netns-idx{idx}.lock"))?,
            lock(&format!("/tmp/sremote-netns-{name}.lock"))?,
        ];
        let net = format!("10.200.{}", idx - 1);
        let user = format!("srt{idx}");
        remove_namespace(name);
        remove_user(&user);
        if let Err(e) = run(Command::new("ip").args(["netns", "add", name])) {
            return Err(Error::Skip(format!(
                "cannot create a network namespace: {e}"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("srn-")
            .tempdir_in("/tmp")
            .map_err(failed)?;
        let mut host = NetnsHost {
            name: name.to_string(),
            address: format!("{net}.2"),
            user: user.clone(),
            home: PathBuf::new(),
            client_key: dir.path().join("id_ed25519"),
            ssh_config: dir.path().join("ssh_config"),
            known_hosts: dir.path().join("known_hosts"),
            child: None,
            dir,
            _locks: locks,
        };
        // From here on, Drop cleans up whatever was made.
        host.setup(&net)?;
        Ok(host)
    }

    /// [`start`](Self::start), or `None` after printing why the test is skipped. Panics on
    /// real failures.
    pub fn start_or_skip(name: &str, idx: u8) -> Option<NetnsHost> {
        match Self::start(name, idx) {
            Ok(h) => Some(h),
            Err(Error::Skip(why)) => {
                eprintln!("skipped: {why}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn setup(&mut self, net: &str) -> Result<(), Error> {
        self.link(net)?;
        self.add_user()?;
        self.start_server()?;
        self.write_client_files()
    }

    /// A veth pair between this namespace (`{net}.2`, default route) and the host (`{net}.1`).
    fn link(&self, net: &str) -> Result<(), Error> {
        let (name, veth) = (self.name.as_str(), format!("v-{}", self.name));
        let ip = |args: &[&str]| run(Command::new("ip").args(args)).map(drop);
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", name,
        ])?;
        ip(&["addr", "replace", &format!("{net}.1/24"), "dev", &veth])?;
        ip(&["link", "set", &veth, "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            name,
            "addr",
            "replace",
            &format!("{net}.2/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", name, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            name,
            "route",
            "replace",
            "default",
            "via",
            &format!("{net}.1"),
        ])?;
        Ok(())
    }

    /// The user (fresh home, key login) and the host and client keys.
    fn add_user(&mut self) -> Result<(), Error> {
        let name = self.name.as_str();
        // the user: fresh home, not locked ('*': no password, key login allowed)
        let shell = if Path::new("/bin/bash").exists() {
            "/bin/bash"
        } else {
            "/bin/sh"
        };
        run_retry(|| {
            let mut c = Command::new("useradd");
            c.args(["-m", "-s", shell, &self.user]);
            c
        })?;
        run_retry(|| {
            let mut c = Command::new("usermod");
            c.args(["-p", "*", &self.user]);
            c
        })?;
        let home = run(Command::new("getent").args(["passwd", &self.user]))?;
        self.home = PathBuf::from(home.trim().split(':').nth(5).unwrap_or_default());
        let d = self.dir.path().to_path_buf();
        keygen(&d.join("host_ed25519"), &format!("hostkey-{name}"))?;
        keygen(&self.client_key, &format!("client-{name}"))?;
        let ssh_dir = self.home.join(".ssh");
        std::fs::create_dir_all(&ssh_dir).map_err(failed)?;
        write(
            &ssh_dir.join("authorized_keys"),
            &read(&d.join("id_ed25519.pub"))?,
            0o600,
        )?;
        run(Command::new("chown")
            .args(["-R", &format!("{0}:{0}", self.user)])
            .arg(&ssh_dir))?;
        run(Command::new("chmod").arg("700").arg(&ssh_dir))?;
        Ok(())
    }

    /// sshd inside the namespace (in its own UTS namespace where `unshare` exists).
    fn start_server(&mut self) -> Result<(), Error> {
        let (name, d) = (self.name.as_str(), self.dir.path().to_path_buf());
        let addr = &self.address;
        let config = format!(
            "ListenAddress {addr}:22\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile .ssh/authorized_keys\n{SSHD_COMMON}",
            d = d.display()
        );
        write(&d.join("sshd_config"), &config, 0o644)?;
        let sshd = format!(
            "exec /usr/sbin/sshd -D -f '{0}/sshd_config' -E '{0}/sshd.log'",
            d.display()
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", name]);
        if Path::new("/usr/bin/unshare").exists() {
            // own UTS namespace: `hostname` in sessions says `name`
            cmd.args([
                "unshare",
                "--uts",
                "/bin/sh",
                "-c",
                &format!("hostname '{name}' && {sshd}"),
            ]);
        } else {
            cmd.args(["/bin/sh", "-c", &sshd]);
        }
        let listening = format!("Server listening on {addr} port 22.");
        self.child = crate::start_sshd(cmd, &d.join("sshd.log"), &listening)?;
        if self.child.is_none() {
            return Err(failed(format!(
                "{addr}:22 is taken inside the fresh namespace {name}"
            )));
        }
        Ok(())
    }

    /// known_hosts with the host key, and an ssh_config naming the host.
    fn write_client_files(&self) -> Result<(), Error> {
        let (name, addr, d) = (&self.name, &self.address, self.dir.path());
        let pubkey = read(&d.join("host_ed25519.pub"))?;
        let key: Vec<&str> = pubkey.split_whitespace().take(2).collect();
        write(
            &self.known_hosts,
            &format!("{addr} {}\n", key.join(" ")),
            0o644,
        )?;
        let client = format!(
            "Host {name}\n  HostName {addr}\n  Port 22\n  User {user}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n  LogLevel ERROR\n",
            user = self.user,
            key = self.client_key.display(),
            kh = self.known_hosts.display(),
        );
        write(&self.ssh_config, &client, 0o644)
    }

    /// One host per `(name, idx)` shared by every caller in this process while any holds it.
    pub fn shared(name: &str, idx: u8) -> Result<std::sync::Arc<NetnsHost>, Error> {
        use std::sync::{Arc, Mutex, Weak};
        static SHARED: Mutex<Vec<(String, u8, Weak<NetnsHost>)>> = Mutex::new(Vec::new());
        let mut all = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(_, _, w)| w.strong_count() > 0);
        if let Some(h) = all
            .iter()
            .find(|(n, i, _)| n == name && *i == idx)
            .and_then(|(_, _, w)| w.upgrade())
        {
            return Ok(h);
        }
        let h = Arc::new(NetnsHost::start(name, idx)?);
        all.push((name.to_string(), idx, Arc::downgrade(&h)));
        Ok(h)
    }

    /// `user@address`.
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.address)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for NetnsHost {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            proc::kill_tree(child.id());
            let _ = child.wait();
        }
        remove_namespace(&self.name);
        remove_user(&self.user);
    }
}
