//! Single-node batch systems for tests: [`Slurm`] (slurmctld, slurmd, munged, and
//! accounting: slurmdbd on a private MariaDB, so `sacct` answers) and [`Sge`] (Debian's
//! Grid Engine: sge_qmaster, sge_execd).
//!
//! Their ports (6817/6818) and `/etc/slurm/slurm.conf` belong to the whole machine, so
//! there is one instance of each per machine, shared by every test process: a machine-wide
//! lock file serialises starting and stopping, and every user holds a shared lock on a
//! second file for as long as it uses the system. The last user stops it — only if this
//! harness started it (one that was up before is left alone). Starting and stopping run the
//! project's own `scripts/{slurm,sge}-{up,down}.sh` (which install the Debian packages when
//! missing, need root, and kill only the PIDs they recorded).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::{Error, failed};

/// A machine-wide service started by a script: lock files, marker, scripts, probe.
struct Service {
    lock: &'static str,
    users: &'static str,
    marker: &'static str,
    up: &'static str,
    down: &'static str,
    env: &'static [(&'static str, &'static str)],
    is_up: fn() -> bool,
}

const STATE_DIR: &str = "/tmp/sremote-slurm";

const SLURM: Service = Service {
    lock: "/tmp/sremote-slurm.lock",
    users: "/tmp/sremote-slurm.users",
    marker: "/tmp/sremote-slurm.started-by-testkit",
    up: "slurm-up.sh",
    down: "slurm-down.sh",
    env: &[("SLURM_TEST_DIR", STATE_DIR), ("SLURM_INSTALL", "1")],
    // slurm-up.sh checks the details itself (daemons, node, and that the configuration it
    // writes is the one running: a Slurm started by an older script without accounting is
    // restarted when no one uses it) and says "already up".
    is_up: || false,
};

const SGE: Service = Service {
    lock: "/tmp/sremote-sge.lock",
    users: "/tmp/sremote-sge.users",
    marker: "/tmp/sremote-sge.started-by-testkit",
    up: "sge-up.sh",
    down: "sge-down.sh",
    env: &[],
    // sge-up.sh checks the details itself, quickly, and says "already up".
    is_up: || false,
};

impl Service {
    fn script(&self, name: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(scripts().join(name));
        for (k, v) in self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Join (starting it if needed); returns the shared lock held while in use.
    fn join(&self, what: &str) -> Result<File, Error> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::Skip(format!(
                "single-node {what} needs root (daemons, configuration under /etc)"
            )));
        }
        let lock = open_lock(self.lock)?;
        flock(&lock, libc::LOCK_EX).map_err(|e| failed(format!("lock {}: {e}", self.lock)))?;
        let users = open_lock(self.users)?;
        // Another live process holds a shared lock: it started or joined the service and may
        // have jobs in it right now. Never restart it under that process (a node that is
        // momentarily `completing` must not look broken); join as it is.
        let in_use = flock(&users, libc::LOCK_EX | libc::LOCK_NB).is_err();
        flock(&users, libc::LOCK_SH).map_err(|e| failed(format!("lock {}: {e}", self.users)))?;
        if in_use || (self.is_up)() {
            return Ok(users);
        }
        let mut last = String::new();
        let mut already = None;
        // Another test binary may hold the dpkg lock while installing: retry.
        for _ in 0..5 {
            match self
                .script(self.up)
                .stdin(std::process::Stdio::null())
                .output()
            {
                Ok(out) if out.status.success() => {
                    already = Some(String::from_utf8_lossy(&out.stderr).contains("already up"));
                    break;
                }
                Ok(out) => last = String::from_utf8_lossy(&out.stderr).trim().to_string(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        let Some(already) = already else {
            return Err(failed(format!("{} failed: {last}", self.up)));
        };
        // A script that found everything up started nothing: then nothing is stopped later.
        if !already {
            std::fs::write(self.marker, std::process::id().to_string())
                .map_err(|e| failed(format!("write {}: {e}", self.marker)))?;
        }
        Ok(users)
    }

    /// Leave; the last user stops what this harness started.
    fn leave(&self, users: &File) {
        let Ok(lock) = open_lock(self.lock) else {
            return;
        };
        if flock(&lock, libc::LOCK_EX).is_err() {
            return;
        }
        if flock(users, libc::LOCK_EX | libc::LOCK_NB).is_ok() && Path::new(self.marker).exists() {
            let _ = crate::run(&mut self.script(self.down));
            let _ = std::fs::remove_file(self.marker);
        }
    }
}

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
/// `sbatch`, `squeue`, `scontrol`, `sacct` and `scancel` work for every user and ssh
/// session; `scontrol` forgets a finished job after 10 s (`MinJobAge`), `sacct` keeps it.
#[derive(Debug)]
pub struct Slurm {
    /// Slurm's state and log directory.
    pub dir: PathBuf,
    /// The node's (and the controller's) host name.
    pub node: String,
    users: File,
}

impl Slurm {
    /// Start Slurm with accounting (about 3 s; installing the packages first if they are
    /// missing), or join the instance that runs. Needs root: otherwise [`Error::Skip`].
    pub fn start() -> Result<Arc<Slurm>, Error> {
        static SHARED: Mutex<Weak<Slurm>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return Ok(s);
        }
        let users = SLURM.join("Slurm")?;
        let node = crate::run(Command::new("hostname").arg("-s"))?
            .trim()
            .to_string();
        let slurm = Arc::new(Slurm {
            dir: PathBuf::from(STATE_DIR),
            node,
            users,
        });
        *slot = Arc::downgrade(&slurm);
        Ok(slurm)
    }

    /// `scontrol show job -o ID` (one line of `Key=Value`).
    pub fn show_job(&self, id: &str) -> String {
        crate::run(Command::new("scontrol").args(["show", "job", "-o", id])).unwrap_or_default()
    }

    /// The value of `key` in `scontrol show job -o ID` (e.g. `JobState`). Once the
    /// controller forgot the finished job (`MinJobAge`, a few seconds here), the same field
    /// from Slurm's accounting (`sacct`), for `JobState`, `Partition`, `TimeLimit`,
    /// `JobName` and `ExitCode`.
    pub fn job_field(&self, id: &str, key: &str) -> Option<String> {
        let line = self.show_job(id);
        let live = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('=').map(str::to_owned));
        if live.is_some() || !self.forgotten(id) {
            return live;
        }
        let field = match key {
            "JobState" => "State",
            "TimeLimit" => "Timelimit",
            "Partition" | "JobName" | "ExitCode" => key,
            _ => return None,
        };
        let value = self.sacct(id, field)?;
        // `CANCELLED by 0`: the state is the first word.
        let value = match key {
            "JobState" => value.split_whitespace().next()?.to_string(),
            _ => value,
        };
        Some(value)
    }

    /// Job `id`'s `JobState` once it is over: waits (at most `timeout`) while Slurm still
    /// says `RUNNING` or `COMPLETING` — the job's result can be collected before the batch
    /// script's end reached the controller.
    pub fn final_state(&self, id: &str, timeout: Duration) -> Option<String> {
        let t0 = std::time::Instant::now();
        loop {
            let state = self.job_field(id, "JobState");
            let busy = matches!(state.as_deref(), Some("RUNNING" | "COMPLETING"));
            if !busy || t0.elapsed() > timeout {
                return state;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the controller no longer knows job `id` (`scontrol`: invalid job id).
    pub fn forgotten(&self, id: &str) -> bool {
        let out = Command::new("scontrol")
            .args(["show", "job", "-o", id])
            .output();
        out.is_ok_and(|o| {
            !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("Invalid job id")
        })
    }

    /// One field of job `id`'s allocation in Slurm's accounting (`sacct -X`), if recorded.
    pub fn sacct(&self, id: &str, field: &str) -> Option<String> {
        let out = crate::run(Command::new("sacct").args(["-j", id, "-X", "-n", "-P", "-o", field]))
            .ok()?;
        let line = out.lines().next()?.trim();
        (!line.is_empty()).then(|| line.to_string())
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
        SLURM.leave(&self.users);
    }
}

/// A running single-node Grid Engine (queue `all.q`), shared like [`Slurm`]; `qsub`,
/// `qstat`, `qacct` and `qdel` work for every user and ssh session.
#[derive(Debug)]
pub struct Sge {
    users: File,
}

impl Sge {
    /// Start Grid Engine (about 3 s; installing the packages first if they are missing), or
    /// join the instance that runs. Needs root: otherwise [`Error::Skip`].
    pub fn start() -> Result<Arc<Sge>, Error> {
        static SHARED: Mutex<Weak<Sge>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return Ok(s);
        }
        let sge = Arc::new(Sge {
            users: SGE.join("Grid Engine")?,
        });
        *slot = Arc::downgrade(&sge);
        Ok(sge)
    }

    /// `qacct -j ID` (the accounting record of a finished job).
    pub fn qacct(&self, id: &str) -> String {
        crate::run(Command::new("qacct").args(["-j", id])).unwrap_or_default()
    }
}

impl Drop for Sge {
    fn drop(&mut self) {
        SGE.leave(&self.users);
    }
}
