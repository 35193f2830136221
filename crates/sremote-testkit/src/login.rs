//! Login users with a chosen login shell whose login scripts print banners, as on many
//! clusters: the host side of "any login shell, any login script".

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::netns::{remove_user, run_retry, uid_of};
use crate::{Error, failed, write};

/// What the login scripts of a [`LoginUser`] print on stdout before anything else runs.
pub const STDOUT_BANNER: &str = "Welcome to the cluster! Your quota: 10 GB";
/// What they print on stderr.
pub const STDERR_BANNER: &str = "Notice: /scratch is purged after 30 days";

/// A throwaway local user whose login shell is `shell` and whose every login script
/// (`.bashrc` before its interactive check, `.zshenv`, `.cshrc`, fish's `config.fish`,
/// `.profile`) prints [`STDOUT_BANNER`] on stdout and [`STDERR_BANNER`] on stderr.
/// Removed, with its processes and home, on drop.
#[derive(Debug)]
pub struct LoginUser {
    /// The user name.
    pub name: String,
    /// Its home directory (fresh, owned by it).
    pub home: PathBuf,
    /// Its login shell's path.
    pub shell: PathBuf,
    _dir: tempfile::TempDir,
}

/// The path of `shell` (`tcsh`, `fish`, …), installing its Debian package when missing.
pub fn ensure_shell(shell: &str) -> Result<PathBuf, Error> {
    let find = || {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(shell))
            .find(|p| p.exists())
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    let install = || {
        crate::run(
            Command::new("apt-get")
                .args(["install", "-y", "-q", shell])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        let _ = crate::run(Command::new("apt-get").args(["update", "-q"]));
        install()?;
    }
    find().ok_or_else(|| {
        failed(format!(
            "apt-get installed {shell} but it is not in /usr/bin"
        ))
    })
}

const SH_BANNER: &str = "echo \"$SREMOTE_OUT\"\necho \"$SREMOTE_ERR\" >&2\n";

impl LoginUser {
    /// Create the user with `shell` (a name such as `tcsh`, installed when missing).
    /// Needs root.
    pub fn create(shell: &str) -> Result<LoginUser, Error> {
        // SAFETY: a plain getter.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::Skip("login users need root".into()));
        }
        let shell = ensure_shell(shell)?;
        let dir = tempfile::Builder::new()
            .prefix("srl-")
            .tempdir_in("/tmp")
            .map_err(failed)?;
        let name = crate::unique_name("srl").replace('-', "x");
        let home = dir.path().join("home");
        remove_user(&name);
        run_retry(|| {
            let mut c = Command::new("useradd");
            c.args(["-M", "-d"])
                .arg(&home)
                .arg("-s")
                .arg(&shell)
                .arg(&name);
            c
        })?;
        let user = LoginUser {
            name,
            home,
            shell,
            _dir: dir,
        };
        // From here on, Drop removes the user.
        user.setup()?;
        Ok(user)
    }

    fn setup(&self) -> Result<(), Error> {
        // `useradd` leaves the password locked ('!'), which sshd refuses without PAM.
        run_retry(|| {
            let mut c = Command::new("usermod");
            c.args(["-p", "*", &self.name]);
            c
        })?;
        let h = &self.home;
        std::fs::create_dir_all(h.join(".config/fish")).map_err(failed)?;
        let vars = format!("SREMOTE_OUT='{STDOUT_BANNER}'\nSREMOTE_ERR='{STDERR_BANNER}'\n");
        let sh = format!("{vars}{SH_BANNER}");
        let bashrc = format!("{sh}case $- in *i*) ;; *) return;; esac\n");
        write(&h.join(".bashrc"), &bashrc, 0o644)?;
        write(&h.join(".profile"), &sh, 0o644)?;
        write(&h.join(".zshenv"), &sh, 0o644)?;
        let csh = format!("echo '{STDOUT_BANNER}'\necho '{STDERR_BANNER}' > /dev/stderr\n");
        write(&h.join(".cshrc"), &csh, 0o644)?;
        let fish = format!("echo '{STDOUT_BANNER}'\necho '{STDERR_BANNER}' >&2\n");
        write(&h.join(".config/fish/config.fish"), &fish, 0o644)?;
        let chown = crate::run(Command::new("chown").args(["-R", &self.name]).arg(h));
        chown.map(drop)?;
        // The parent (the temp dir) must let the user reach its home.
        use std::os::unix::fs::PermissionsExt;
        let parent = h.parent().unwrap_or(h);
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).map_err(failed)
    }

    /// The user's uid.
    pub fn uid(&self) -> Option<u32> {
        uid_of(&self.name)
    }
}

impl Drop for LoginUser {
    fn drop(&mut self) {
        remove_user(&self.name);
    }
}
