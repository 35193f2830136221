//! One persistent Python worker process: the bridge interpreter, its pipes, and what it
//! was last sent (environment, namespace values). The pools that own workers are in
//! `pool.rs`; the namespace worker's protocol is in `namespace.rs`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::Instant;

use super::{EnvDiff, bridge_command};
use crate::error::CallError;

pub(crate) struct Worker {
    pub(super) python: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: LineReader,
    /// The environment the worker has now (as last sent).
    env: BTreeMap<String, String>,
    /// Namespace worker: the store version of each value its namespace holds.
    pub(super) synced: HashMap<String, u64>,
}

impl Worker {
    pub(super) fn start(python: &Path) -> Result<Worker, CallError> {
        let mut cmd = bridge_command(python);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            CallError::raised(format!(
                "cannot start the Python worker {}: {e}",
                python.display()
            ))
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_group(child.id() as i32);
            let _ = child.wait();
            return Err(CallError::raised("the Python worker has no pipes"));
        };
        Ok(Worker {
            python: python.to_path_buf(),
            child,
            stdin,
            stdout: LineReader {
                pipe: stdout,
                buf: Vec::new(),
                scanned: 0,
            },
            env: utf8_env(),
            synced: HashMap::new(),
        })
    }

    pub(super) fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kill the worker's process group and reap it; its exit status for messages.
    pub(super) fn kill(mut self) -> String {
        kill_group(self.pgid());
        match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => format!("status unknown: {e}"),
        }
    }

    /// The environment changes since the last message, and the environment they lead to
    /// (to [`commit_env`](Self::commit_env) once the worker has answered).
    pub(super) fn env_changes(&self) -> (Option<EnvDiff>, BTreeMap<String, String>) {
        let env = utf8_env();
        (env_diff(&self.env, &env), env)
    }

    pub(super) fn commit_env(&mut self, env: BTreeMap<String, String>) {
        self.env = env;
    }

    /// Send one request line, read one reply line (until `deadline`).
    pub(super) fn exchange(
        &mut self,
        line: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, Failure> {
        self.stdin.write_all(line).map_err(|_| Failure::Died)?;
        self.stdin.flush().map_err(|_| Failure::Died)?;
        self.stdout.read_line(deadline)
    }
}

/// Why an exchange with a worker did not give a reply.
pub(crate) enum Failure {
    Died,
    TimedOut,
}

struct LineReader {
    pipe: ChildStdout,
    buf: Vec<u8>,
    /// Bytes of `buf` known to hold no newline.
    scanned: usize,
}

impl LineReader {
    fn read_line(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + pos;
                let line = self.buf[..end].to_vec();
                self.buf.drain(..=end);
                self.scanned = 0;
                return Ok(line);
            }
            self.scanned = self.buf.len();
            if let Some(deadline) = deadline {
                wait_readable(self.pipe.as_raw_fd(), deadline)?;
            }
            let mut chunk = [0u8; 64 << 10];
            match self.pipe.read(&mut chunk) {
                Ok(0) => return Err(Failure::Died),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Failure::Died),
            }
        }
    }
}

fn wait_readable(fd: i32, deadline: Instant) -> Result<(), Failure> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::TimedOut);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, `fd` is our open pipe.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(Failure::Died);
        }
    }
}

pub(super) fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: killpg only sends a signal to the group a worker leads.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
}

/// The process environment as UTF-8 pairs (others cannot travel in JSON).
fn utf8_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn env_diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Option<EnvDiff> {
    let mut diff = EnvDiff::default();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            diff.set.insert(k.clone(), v.clone());
        }
    }
    diff.unset = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    (!diff.set.is_empty() || !diff.unset.is_empty()).then_some(diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_diffs() {
        let old: BTreeMap<String, String> = [("A", "1"), ("B", "2")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let new: BTreeMap<String, String> = [("A", "1"), ("C", "3")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let d = env_diff(&old, &new).unwrap();
        assert_eq!(d.set.len(), 1);
        assert_eq!(d.unset, vec!["B".to_string()]);
        assert!(env_diff(&new, &new).is_none());
    }
}
