//! The worker's output: live in the job's log and kept for the response.
//!
//! The runner starts the worker with fd 1 and fd 2 on the job's `log`. [`Tee::start`]
//! points them at two pipes instead; one thread copies whatever arrives to the log at
//! once (so `job log`/`job follow` show it live, in the order it arrived) and keeps it,
//! per stream, for the response's `stdout` and `stderr` (the first [`HEAD`] bytes and the
//! last [`TAIL`] bytes; what lies between is only in the log). Everything the call runs
//! inherits the pipes: Rust functions printing, `job.run`'s programs, plugins. The Python
//! bridge gets inheritable copies named by `SREMOTE_JOB_OUTPUT_FDS` (`PID:OUT,ERR`, PID
//! the worker's) and writes to them instead of capturing its own output (see
//! `python_bridge.py`).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::capture::{dup_cloexec, redirect};

/// The environment variable naming the descriptors the Python bridge writes to.
pub(super) const OUTPUT_FDS_VAR: &str = "SREMOTE_JOB_OUTPUT_FDS";
/// Kept from the start of each stream for the response.
const HEAD: usize = 8 << 20;
/// Kept from the end of each stream for the response.
const TAIL: usize = 1 << 20;

/// One stream as kept for the response: its head, its tail, and how much lies between.
#[derive(Default)]
struct Kept {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    left_out: u64,
}

impl Kept {
    fn push(&mut self, mut data: &[u8]) {
        let room = HEAD.saturating_sub(self.head.len()).min(data.len());
        self.head.extend_from_slice(&data[..room]);
        data = &data[room..];
        self.tail.extend(data);
        let over = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..over);
        self.left_out += over as u64;
    }

    fn text(&self) -> String {
        let mut bytes = self.head.clone();
        if self.left_out > 0 {
            bytes.extend_from_slice(
                format!(
                    "\n[sremote: {} bytes left out here; the whole output is in the job's log]\n",
                    self.left_out
                )
                .as_bytes(),
            );
        }
        bytes.extend(self.tail.iter());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// fd 1 and fd 2 of this process on pipes, copied to the log by a thread.
pub(super) struct Tee {
    log: OwnedFd,
    kept: Arc<Mutex<[Kept; 2]>>,
    /// The bridge's copies of the pipes' write ends (kept open for the whole call).
    inherited: Vec<OwnedFd>,
    ended: mpsc::Receiver<()>,
    _thread: JoinHandle<()>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two fresh close-on-exec descriptors we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A copy of `fd` that programs started from here inherit (no close-on-exec), at 3 or up.
fn dup_inheritable(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD only creates a new descriptor; on success we own it.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

impl Tee {
    /// Point fd 1 and fd 2 at pipes copied to the log (fd 1 now). Sets
    /// [`OUTPUT_FDS_VAR`]: call it before this process starts any other thread.
    pub(super) fn start() -> io::Result<Tee> {
        let log = dup_cloexec(1)?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let inherited = vec![
            dup_inheritable(out_w.as_raw_fd())?,
            dup_inheritable(err_w.as_raw_fd())?,
        ];
        // `PID:OUT,ERR`: only a child of this worker uses them (not a nested endpoint's
        // bridge that inherited the variable through a program the call started).
        let names = format!(
            "{}:{},{}",
            std::process::id(),
            inherited[0].as_raw_fd(),
            inherited[1].as_raw_fd()
        );
        // SAFETY: the worker is single-threaded here (the copier starts below), so no
        // other thread reads the environment while it changes.
        unsafe { std::env::set_var(OUTPUT_FDS_VAR, names) };
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        redirect(out_w.as_raw_fd(), 1)?;
        redirect(err_w.as_raw_fd(), 2)?;
        drop((out_w, err_w));
        let kept = Arc::new(Mutex::new([Kept::default(), Kept::default()]));
        let (done, ended) = mpsc::channel();
        let sink = File::from(log.try_clone()?);
        let k = kept.clone();
        let thread = std::thread::Builder::new()
            .name("job-output".into())
            .spawn(move || {
                copy(sink, [out_r, err_r], &k);
                let _ = done.send(());
            })?;
        Ok(Tee {
            log,
            kept,
            inherited,
            ended,
            _thread: thread,
        })
    }

    /// Put fd 1 and fd 2 back on the log and return what was kept of (stdout, stderr).
    /// Waits up to `linger` for output still in the pipes (a program the call left
    /// running may hold them open: what it writes later reaches the log only).
    pub(super) fn finish(self, linger: Duration) -> (String, String) {
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        let _ = redirect(self.log.as_raw_fd(), 1);
        let _ = redirect(self.log.as_raw_fd(), 2);
        drop(self.inherited);
        let _ = self.ended.recv_timeout(linger);
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        (kept[0].text(), kept[1].text())
    }
}

/// Copy both pipes to `log` as data arrives, keeping it in `kept`, until both are closed.
fn copy(mut log: File, pipes: [OwnedFd; 2], kept: &Mutex<[Kept; 2]>) {
    let mut open = [true, true];
    let mut buf = vec![0u8; 64 << 10];
    while open.iter().any(|&o| o) {
        let mut fds: Vec<libc::pollfd> = (0..2)
            .map(|i| libc::pollfd {
                fd: if open[i] { pipes[i].as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll reads and writes only the two pollfd entries.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        for i in 0..2 {
            if !open[i] || fds[i].revents == 0 {
                continue;
            }
            // SAFETY: reading into our own buffer from a descriptor we own.
            let got =
                unsafe { libc::read(pipes[i].as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match got {
                0 => open[i] = false,
                n if n > 0 => {
                    let data = &buf[..n as usize];
                    let _ = log.write_all(data);
                    kept.lock().unwrap_or_else(|p| p.into_inner())[i].push(data);
                }
                _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                _ => open[i] = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_has_head_and_tail_and_says_what_was_left_out() {
        let mut k = Kept::default();
        k.push(b"abc");
        assert_eq!(k.text(), "abc");
        let big = vec![b'x'; HEAD + TAIL + 10];
        k.push(&big);
        k.push(b"end");
        let t = k.text();
        assert!(t.starts_with("abcxxx"));
        assert!(t.ends_with("xxend"));
        assert!(
            t.contains("\n[sremote: 16 bytes left out here"),
            "{}",
            &t[HEAD..HEAD + 120]
        );
    }
}
