//! Running child processes (subprocess.run, plugins, probes): never through a shell,
//! each in its own process group so a timeout kills the whole tree, and registered so
//! call mode can kill what a timed-out call left running.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Process groups of children that are running now, with the id of the call that
/// started them (session mode cancels one call's children).
static RUNNING: Mutex<Vec<(Option<String>, i32)>> = Mutex::new(Vec::new());

/// Calls cancelled while they still run (session mode): a child such a call starts after
/// the cancel is killed at once. Session mode forgets a call once it has finished.
static CANCELLED: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// The id of the call this thread is running (session mode).
    static CURRENT_CALL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with children it starts registered under call `id`.
pub(crate) fn with_call_id<R>(id: &str, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_CALL.with(|c| c.replace(Some(id.to_string())));
    let result = f();
    CURRENT_CALL.with(|c| *c.borrow_mut() = previous);
    result
}

struct Registered(i32);

impl Registered {
    fn new(pgid: i32) -> Self {
        let call = CURRENT_CALL.with(|c| c.borrow().clone());
        let cancelled = call.as_deref().is_some_and(call_cancelled);
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((call, pgid));
        if cancelled {
            kill_group(pgid);
        }
        Registered(pgid)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, p)| *p != self.0);
    }
}

/// Kill (SIGKILL) the process groups started by call `id` (session-mode cancel), and any
/// it starts later, until [`forget_call`].
pub(crate) fn kill_call_children(id: &str) {
    {
        let mut cancelled = CANCELLED.lock().unwrap_or_else(|p| p.into_inner());
        if !cancelled.iter().any(|c| c == id) {
            cancelled.push(id.to_string());
        }
    }
    let groups: Vec<i32> = RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(call, _)| call.as_deref() == Some(id))
        .map(|(_, pgid)| *pgid)
        .collect();
    for pgid in groups {
        kill_group(pgid);
    }
}

/// Whether call `id` was cancelled while it runs (see [`kill_call_children`]).
pub(crate) fn call_cancelled(id: &str) -> bool {
    CANCELLED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|c| c == id)
}

/// Call `id` has finished: forget that it was cancelled.
pub(crate) fn forget_call(id: &str) {
    CANCELLED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|c| c != id);
}

/// Kill (SIGKILL) the process groups of all children still running. Call mode uses it
/// after a call timed out, just before the endpoint exits.
pub(crate) fn kill_running_children() {
    let groups: Vec<i32> = RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(_, pgid)| *pgid)
        .collect();
    for pgid in groups {
        kill_group(pgid);
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: killpg only sends a signal; pgid > 0 is the group this module created.
    if pgid > 0 {
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
}

/// What a finished child left behind.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The timeout expired and the process group was killed.
    pub timed_out: bool,
}

impl Finished {
    /// The exit code, or `-signal` when a signal ended the process (as Python reports it).
    pub fn returncode(&self) -> i32 {
        self.status
            .code()
            .or_else(|| self.status.signal().map(|s| -s))
            .unwrap_or(-1)
    }
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

/// Run `cmd` with `input` on its stdin (or `/dev/null`), capturing stdout and stderr.
/// With a timeout, the child's process group is killed when it expires (also when the
/// child exited but something it started keeps the output pipes open).
pub(crate) fn run(
    mut cmd: Command,
    input: Option<Vec<u8>>,
    timeout: Option<Duration>,
) -> io::Result<Finished> {
    let deadline = timeout.map(|t| Instant::now() + t);
    own_group_dying_with_us(&mut cmd, input.is_some());
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let _registered = Registered::new(pgid);
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // A child that does not read its input must not block us: write from a thread.
        thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let (status, mut timed_out) = wait_until(child, pgid, deadline)?;
    let mut collect = |rx: mpsc::Receiver<Vec<u8>>| -> Vec<u8> {
        if let Some(deadline) = deadline
            && !timed_out
        {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(buf) => return buf,
                Err(_) => {
                    timed_out = true;
                    kill_group(pgid);
                }
            }
        }
        rx.recv().unwrap_or_default()
    };
    let stdout = collect(out);
    let stderr = collect(err);
    Ok(Finished {
        status,
        stdout,
        stderr,
        timed_out,
    })
}

/// Set `cmd` up to run piped (stdin too when `piped_stdin`) as the leader of its own
/// process group, killed when the thread that starts it goes.
///
/// Its own group lets a timeout or cancel kill what it starts, and takes it out of the
/// reach of a signal to the endpoint's group: should the endpoint itself be killed (a
/// cancelled pipe or file mode call), the child goes with it through the parent-death
/// signal, which is tied to the spawning thread (that waits for the child).
fn own_group_dying_with_us(cmd: &mut Command, piped_stdin: bool) {
    cmd.stdin(if piped_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: prctl and getppid are async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::other(
                        "the endpoint ended while starting the program",
                    ));
                }
                Ok(())
            });
        }
    }
}

/// Wait for `child` (group `pgid`) until `deadline`, then kill the group and reap it;
/// `true` beside the status when the deadline passed.
fn wait_until(
    mut child: std::process::Child,
    pgid: i32,
    deadline: Option<Instant>,
) -> io::Result<(std::process::ExitStatus, bool)> {
    let Some(deadline) = deadline else {
        return Ok((child.wait()?, false));
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(status) => Ok((status?, false)),
        Err(_) => {
            kill_group(pgid);
            let status = rx
                .recv()
                .map_err(|_| io::Error::other("waiting for the child failed"))??;
            Ok((status, true))
        }
    }
}

/// Find `program` in `PATH` (for optional probes such as `nvidia-smi`).
pub(crate) fn which(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_without_shell_and_captures() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read x; echo \"out:$x\"; echo err >&2; exit 3"]);
        let f = run(cmd, Some(b"hi\n".to_vec()), None).unwrap();
        assert_eq!(
            (f.returncode(), f.stdout.as_slice(), f.stderr.as_slice()),
            (3, &b"out:hi\n"[..], &b"err\n"[..])
        );
        assert!(!f.timed_out);
    }

    #[test]
    fn timeout_kills_the_group_including_grandchildren() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo started; wait"]);
        let t0 = Instant::now();
        let f = run(cmd, None, Some(Duration::from_millis(300))).unwrap();
        assert!(f.timed_out);
        assert_eq!(f.stdout, b"started\n");
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(
            RUNNING
                .lock()
                .unwrap()
                .iter()
                .all(|(_, p)| *p != f.returncode())
        );
    }

    #[test]
    fn missing_program_is_an_error() {
        assert!(run(Command::new("/nonexistent/program"), None, None).is_err());
        assert!(which("sh").is_some());
        assert!(which("surely-not-a-program-xyz").is_none());
    }
}
