//! A single-node Slurm (slurmctld, slurmd, munged) for tests: [`Slurm`].
//!
//! Slurm's ports (6817/6818) and `/etc/slurm/slurm.conf` belong to the whole machine, so
//! there is one instance per machine, shared by every test process: a machine-wide lock
//! file serialises starting and stopping, and every user holds a shared lock on a second
//! file for as long as it uses Slurm. The last user stops Slurm — only if this harness
//! started it (a Slurm that was up before is left alone). Starting and stopping run the
//! project's own `scripts/slurm-up.sh` and `scripts/slurm-down.sh` (which install the
//! Debian packages when missing, need root, and kill only the PIDs they recorded).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::{Error, failed};

const LOCK: &str = "/tmp/sremote-slurm.lock";
const USERS: &str = "/tmp/sremote-slurm.users";
const STATE_DIR: &str = "/tmp/sremote-slurm";
const MARKER: &str = "/tmp/sremote-slurm.started-by-testkit";

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

fn flock(file: &File, op: i32) -> std::io::Result<()> {
    // SAFETY: flock on a descriptor we own; the lock is released when it is closed.
    loop {
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn open_lock(path: &str) -> Result<File, Error> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| failed(format!("open {path}: {e}")))
}

/// A running single-node Slurm, shared by all tests on this machine; see the module docs.
/// `sbatch`, `squeue`, `scontrol` and `scancel` work for every user and ssh session.
#[derive(Debug)]
pub struct Slurm {
    /// Slurm's state and log directory.
    pub dir: PathBuf,
    /// The node's (and the controller's) host name.
    pub node: String,
    users: File,
}

impl Slurm {
    /// Start Slurm (about 1.5 s; installing the packages first if they are missing), or
    /// join the instance that runs. Needs root: otherwise [`Error::Skip`].
    pub fn start() -> Result<Arc<Slurm>, Error> {
        static SHARED: Mutex<Weak<Slurm>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return Ok(s);
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::Skip(
                "single-node Slurm needs root (daemons, /etc/slurm)".into(),
            ));
        }
        let lock = open_lock(LOCK)?;
        flock(&lock, libc::LOCK_EX).map_err(|e| failed(format!("lock {LOCK}: {e}")))?;
        let users = open_lock(USERS)?;
        flock(&users, libc::LOCK_SH).map_err(|e| failed(format!("lock {USERS}: {e}")))?;
        let was_up = crate::run(Command::new("scontrol").arg("ping"))
            .is_ok_and(|o| o.contains("is UP"))
            && crate::run(Command::new("sinfo").args(["-h", "-o", "%T"])).is_ok_and(|o| {
                o.lines()
                    .any(|l| ["idle", "mixed", "allocated"].contains(&l.trim_end_matches('*')))
            });
        if !was_up {
            let mut last = String::new();
            let mut up = false;
            // Another test binary may hold the dpkg lock while installing: retry.
            for _ in 0..5 {
                match crate::run(
                    Command::new("bash")
                        .arg(scripts().join("slurm-up.sh"))
                        .env("SLURM_TEST_DIR", STATE_DIR)
                        .env("SLURM_INSTALL", "1"),
                ) {
                    Ok(_) => {
                        up = true;
                        break;
                    }
                    Err(e) => last = e.to_string(),
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            if !up {
                return Err(failed(format!("slurm-up.sh failed: {last}")));
            }
            std::fs::write(MARKER, std::process::id().to_string())
                .map_err(|e| failed(format!("write {MARKER}: {e}")))?;
        }
        let node = crate::run(Command::new("hostname").arg("-s"))?
            .trim()
            .to_string();
        let slurm = Arc::new(Slurm {
            dir: PathBuf::from(STATE_DIR),
            node,
            users,
        });
        *slot = Arc::downgrade(&slurm);
        drop(lock);
        Ok(slurm)
    }

    /// `scontrol show job -o ID` (one line of `Key=Value`).
    pub fn show_job(&self, id: &str) -> String {
        crate::run(Command::new("scontrol").args(["show", "job", "-o", id])).unwrap_or_default()
    }

    /// The value of `key` in `scontrol show job -o ID` (e.g. `JobState`).
    pub fn job_field(&self, id: &str, key: &str) -> Option<String> {
        let line = self.show_job(id);
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
    }

    /// Move the end of running job `id` to `after` from now: Slurm then stops it for
    /// exceeding its time limit at its next limit check (every 30 s), instead of after
    /// the smallest `--time` it accepts (one minute) plus that check.
    pub fn end_job_in(&self, id: &str, after: Duration) -> Result<(), Error> {
        let when = crate::run(Command::new("date").args([
            "-d",
            &format!("+{} sec", after.as_secs().max(1)),
            "+%Y-%m-%dT%H:%M:%S",
        ]))?;
        crate::run(Command::new("scontrol").args([
            "update",
            &format!("JobId={id}"),
            &format!("EndTime={}", when.trim()),
        ]))
        .map(drop)
    }

    /// The end of the controller's and the node daemon's logs, for failure messages.
    pub fn logs(&self) -> String {
        let tail = |name: &str| {
            let text = std::fs::read_to_string(self.dir.join("log").join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        format!(
            "--- slurmctld.log\n{}\n--- slurmd.log\n{}",
            tail("slurmctld.log"),
            tail("slurmd.log")
        )
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let Ok(lock) = open_lock(LOCK) else { return };
        if flock(&lock, libc::LOCK_EX).is_err() {
            return;
        }
        // The last user (no one else holds the shared lock) stops what this harness started.
        if flock(&self.users, libc::LOCK_EX | libc::LOCK_NB).is_ok() && Path::new(MARKER).exists() {
            let _ = crate::run(
                Command::new("bash")
                    .arg(scripts().join("slurm-down.sh"))
                    .env("SLURM_TEST_DIR", STATE_DIR),
            );
            let _ = std::fs::remove_file(MARKER);
        }
    }
}
