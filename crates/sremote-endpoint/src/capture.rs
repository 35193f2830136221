//! Call mode plumbing: the private response channel and the capture of fd 1 and fd 2.
//!
//! In pipe mode nothing but the response may reach the real stdout. So, before the
//! call, the real stdout is duplicated to a private close-on-exec descriptor used only
//! for the response ([`Sink`]); then fd 1 and fd 2 are pointed at capture files (memfd,
//! or an unlinked temp file) and fd 0 at `/dev/null` ([`Capture`]). Whatever the function,
//! Rust's `println!`, or a child process inheriting the descriptors writes lands in the
//! capture files and goes into the response's `stdout` and `stderr`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// At most this much of each captured stream goes into the response.
const CAPTURE_LIMIT: u64 = 32 << 20;

pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only creates a new descriptor; on success we own it.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

pub(crate) fn redirect(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 replaces descriptor `to` (0, 1 or 2) by a copy of the open `from`.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An anonymous read/write file: a memfd on Linux, else an unlinked temp file.
fn capture_file(name: &std::ffi::CStr) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `name` is a valid C string; on success the descriptor is ours.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: fresh descriptor, owned by the File from here on.
            return Ok(unsafe { File::from_raw_fd(fd) });
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        ".sremote-capture-{}-{}-{nanos}",
        std::process::id(),
        name.to_string_lossy()
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

fn read_captured(file: &File) -> String {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let take = len.min(CAPTURE_LIMIT);
    let mut buf = vec![0u8; take as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    buf.truncate(filled);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if len > take {
        text.push_str(&format!(
            "\n[sremote: output truncated, {} of {len} bytes kept]\n",
            take
        ));
    }
    text
}

/// fd 0, 1 and 2 redirected for the duration of a call.
pub(crate) struct Capture {
    out: File,
    err: File,
    saved_stdout: OwnedFd,
    saved_stderr: OwnedFd,
}

impl Capture {
    /// Point fd 1 and fd 2 at fresh capture files and fd 0 at `/dev/null`.
    pub fn start() -> io::Result<Capture> {
        let _ = io::stdout().flush();
        let out = capture_file(c"sremote-stdout")?;
        let err = capture_file(c"sremote-stderr")?;
        let saved_stdout = dup_cloexec(1)?;
        let saved_stderr = dup_cloexec(2)?;
        let null = File::open("/dev/null")?;
        redirect(null.as_raw_fd(), 0)?;
        redirect(out.as_raw_fd(), 1)?;
        if let Err(e) = redirect(err.as_raw_fd(), 2) {
            let _ = redirect(saved_stdout.as_raw_fd(), 1);
            return Err(e);
        }
        Ok(Capture {
            out,
            err,
            saved_stdout,
            saved_stderr,
        })
    }

    /// Restore fd 2 and return what was captured. fd 1 is restored only when
    /// `restore_stdout` (file mode); in pipe mode it is pointed at `/dev/null`, so that a
    /// call still running (timed out) can never write into the response stream.
    /// `flush` flushes Rust's stdout buffer first (skipped when a call may still hold it).
    pub fn finish(self, flush: bool, restore_stdout: bool) -> (String, String) {
        if flush {
            let _ = io::stdout().flush();
        }
        if restore_stdout {
            let _ = redirect(self.saved_stdout.as_raw_fd(), 1);
        } else if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
            let _ = redirect(null.as_raw_fd(), 1);
        }
        let _ = redirect(self.saved_stderr.as_raw_fd(), 2);
        (read_captured(&self.out), read_captured(&self.err))
    }
}

/// Set once the call has finished: a hang-up after that is the client leaving after
/// reading the response, not a dropped connection.
static CALL_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Pipe and file mode: the call must not outlive its connection. Session mode notices a
/// dropped connection by its stdin ending; a call in `call` mode has read its stdin to
/// the end already, so a thread waits for a hang-up on the descriptors the endpoint was
/// started with (fd 1 and fd 2, when they are pipes or sockets: the ssh channel). When
/// the other end is gone (sshd closed the channel, the client died), it kills the
/// call's process groups and ends the endpoint with [`crate::exit::EXIT_NO_RESPONSE`]:
/// nobody is left to read the response. Call before [`Capture::start`].
pub(crate) fn watch_for_hangup() {
    let fds: Vec<OwnedFd> = [1, 2]
        .into_iter()
        .filter_map(|fd| dup_cloexec(fd).ok())
        .filter(|fd| is_pipe_or_socket(fd.as_raw_fd()))
        .collect();
    if fds.is_empty() {
        return;
    }
    let watcher = move || {
        let mut polls: Vec<libc::pollfd> = fds
            .iter()
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: 0,
                revents: 0,
            })
            .collect();
        loop {
            // SAFETY: `polls` is a valid array of pollfd over descriptors `fds` keeps open.
            let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, -1) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if polls.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
                return;
            }
            if polls
                .iter()
                .any(|p| p.revents & (libc::POLLHUP | libc::POLLERR) != 0)
            {
                break;
            }
        }
        if CALL_DONE.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        crate::process::kill_running_children();
        // SAFETY: _exit ends the process at once; nothing is left to clean up that the
        // kernel does not (the capture files are memfds or unlinked).
        unsafe { libc::_exit(crate::exit::EXIT_NO_RESPONSE) };
    };
    let _ = std::thread::Builder::new()
        .name("sremote-hangup".into())
        .spawn(watcher);
}

/// The call has finished: from now on a hang-up no longer ends the endpoint.
pub(crate) fn call_finished() {
    CALL_DONE.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn is_pipe_or_socket(fd: RawFd) -> bool {
    // SAFETY: fstat writes into a zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
}

/// Where the response goes.
pub(crate) enum Sink {
    /// A private duplicate of the real stdout (pipe mode).
    Stdout(File),
    /// A file, written atomically (temp file, then rename).
    Path(PathBuf),
}

impl Sink {
    /// `-` is stdout; anything else a file path.
    pub fn open(target: &str) -> io::Result<Sink> {
        if target == "-" {
            Ok(Sink::Stdout(File::from(dup_cloexec(1)?)))
        } else {
            Ok(Sink::Path(PathBuf::from(target)))
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self, Sink::Path(_))
    }

    /// Write the whole response.
    pub fn write(self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(mut f) => {
                f.write_all(bytes)?;
                f.flush()
            }
            Sink::Path(path) => write_atomic(&path, bytes),
        }
    }
}

/// Write `bytes` to `path` through a private (0600) temp file in the same directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "response".into());
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.flush()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resp.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomic(&dir.path().join("missing/resp.json"), b"x").is_err());
    }

    #[test]
    fn capture_files_read_back_from_the_start() {
        let mut f = capture_file(c"t").unwrap();
        f.write_all("héllo".as_bytes()).unwrap();
        assert_eq!(read_captured(&f), "héllo");
    }
}
