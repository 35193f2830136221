//! The job runner and worker, detaching, and the processes of a job (Linux: `/proc`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sremote_core::protocol::{ErrorBody, ErrorKind, Outcome, Request};

use sremote_core::protocol::job::{
    DiedReason, EXITED, LOG_FILE, REQUEST_FILE, RESPONSE_FILE, RUNNER_LOG_FILE, WORK_DIR,
};

use super::tee::{OUTPUT_FDS_VAR, Tee};
use super::{
    DEFAULT_GRACE, EXIT_CANCELLED, EXIT_DIED, EXIT_FAILED, EXIT_IO, EXIT_OK, State, Status,
    cancel_request, cancel_requested, invalid, now_ms, read_response, read_status, write_atomic,
    write_status,
};
use crate::endpoint::Endpoint;
use crate::error::CallError;
use crate::response::hostname;

// ---------------------------------------------------------------------------------------
// Processes (Linux: /proc; elsewhere: kill(pid, 0))
// ---------------------------------------------------------------------------------------

/// `(state, session id, start time)` of `pid`.
pub(super) fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = after.split(' ').collect();
    // after ")": state(3) ppid(4) pgrp(5) session(6) … starttime(22)
    Some((
        f.first()?.chars().next()?,
        f.get(3)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
    ))
}

pub(super) fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, _, start)| start)
}

/// Whether the process `pid` started at `start` still runs (not a zombie, not reused).
pub(super) fn alive(pid: u32, start: Option<u64>) -> bool {
    if Path::new("/proc/self/stat").exists() {
        return match proc_stat(pid) {
            Some((state, _, st)) => state != 'Z' && state != 'X' && start.is_none_or(|s| s == st),
            None => false,
        };
    }
    // SAFETY: signal 0 only checks that the process exists.
    i32::try_from(pid).is_ok_and(|p| unsafe { libc::kill(p, 0) } == 0)
}

/// Signal every live process of session `sid` (the worker and all it started, whatever
/// process groups they made). Returns how many were signalled.
pub(super) fn signal_session(sid: u32, sig: i32) -> usize {
    let mut n = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: the worker's process group is the best we can reach.
        // SAFETY: killpg only sends a signal to the group the worker leads.
        return usize::from(unsafe { libc::killpg(sid as i32, sig) } == 0);
    };
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        if pid == std::process::id() {
            continue;
        }
        if let Some((state, s, _)) = proc_stat(pid)
            && s == sid
            && state != 'Z'
        {
            // SAFETY: kill only sends a signal to a process of the job's own session.
            unsafe { libc::kill(pid as i32, sig) };
            n += 1;
        }
    }
    n
}

static SIGNALLED: AtomicI32 = AtomicI32::new(0);
/// The worker exits with this plus the signal's number when it was signalled during the
/// call (it still wrote the response).
const WORKER_SIGNALLED_BASE: i32 = 64;
/// How often a running job's runner looks for a cancel request in the job directory.
const CANCEL_POLL: Duration = Duration::from_millis(200);
/// How many signals arrived (a lingering runner leaves at the next one).
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Double fork: the grandchild, in its own session with stdio on `/dev/null` and
/// `runner.log`, becomes `job run DIR`. Returns its pid once its `exec` succeeded.
pub(super) fn detach(dir: &Path) -> io::Result<u32> {
    let status = read_status(dir)?;
    if status.state != State::Queued {
        return Err(invalid(format!(
            "the job is {:?}, not queued: it was started before",
            status.state
        )));
    }
    let (path, argv_owned) = runner_command(dir)?;
    let argv: Vec<*const libc::c_char> = argv_owned
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let devnull = File::open("/dev/null")?;
    let runner_log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join(RUNNER_LOG_FILE))?;
    // A close-on-exec pipe: EOF means the exec worked; 4 bytes of errno mean it did not.
    // A second one carries the grandchild's pid (4 bytes).
    let (fds, pidfds) = (cloexec_pipe()?, cloexec_pipe()?);
    use std::os::fd::AsRawFd;
    let (null_fd, log_fd) = (devnull.as_raw_fd(), runner_log.as_raw_fd());
    // SAFETY: this process is single-threaded here (the endpoint's `job` commands start no
    // threads); between fork and exec/_exit only async-signal-safe calls are made.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        unsafe {
            libc::close(fds[0]);
            libc::close(pidfds[0]);
            libc::setsid();
            let grandchild = libc::fork();
            if grandchild != 0 {
                if grandchild > 0 {
                    let pid = grandchild as u32;
                    libc::write(pidfds[1], (&pid as *const u32).cast(), 4);
                }
                libc::_exit(if grandchild < 0 { 1 } else { 0 });
            }
            libc::dup2(null_fd, 0);
            libc::dup2(log_fd, 1);
            libc::dup2(log_fd, 2);
            libc::execv(path.as_ptr(), argv.as_ptr());
            let err = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            libc::write(fds[1], (&err as *const i32).cast(), 4);
            libc::_exit(127);
        }
    }
    reap_and_read(child, fds, pidfds)
}

/// The program and `argv` of `job run DIR` for this binary.
fn runner_command(dir: &Path) -> io::Result<(std::ffi::CString, [std::ffi::CString; 4])> {
    use std::os::unix::ffi::OsStrExt;
    let exe = self_exe()?;
    let cstr = |b: &[u8]| {
        std::ffi::CString::new(b).map_err(|_| invalid("a path contains a NUL byte".into()))
    };
    let argv = [
        cstr(exe.1.as_os_str().as_bytes())?,
        cstr(b"job")?,
        cstr(b"run")?,
        cstr(dir.as_os_str().as_bytes())?,
    ];
    Ok((cstr(exe.0.as_os_str().as_bytes())?, argv))
}

/// A pipe whose both ends are close-on-exec.
fn cloexec_pipe() -> io::Result<[i32; 2]> {
    let mut pair = [0; 2];
    // SAFETY: pipe fills the array with two fresh descriptors; fcntl marks them
    // close-on-exec (this process starts no threads that could exec in between).
    unsafe {
        if libc::pipe(pair.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::fcntl(pair[0], libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(pair[1], libc::F_SETFD, libc::FD_CLOEXEC);
    }
    Ok(pair)
}

/// After the fork: reap the intermediate child, then read the grandchild's pid and
/// whether its `exec` failed from the two pipes (both closed here).
fn reap_and_read(child: libc::pid_t, fds: [i32; 2], pidfds: [i32; 2]) -> io::Result<u32> {
    // SAFETY: closing our copies of the write ends; reaping our own child.
    unsafe {
        libc::close(fds[1]);
        libc::close(pidfds[1]);
        let mut st = 0;
        libc::waitpid(child, &mut st, 0);
    }
    let read4 = |fd: i32| -> Option<[u8; 4]> {
        let mut buf = [0u8; 4];
        // SAFETY: reading at most 4 bytes into a 4-byte buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 4) };
        (n == 4).then_some(buf)
    };
    let pid = read4(pidfds[0]).map(u32::from_ne_bytes);
    let exec_error = read4(fds[0]).map(i32::from_ne_bytes);
    // SAFETY: closing the read ends we own.
    unsafe {
        libc::close(fds[0]);
        libc::close(pidfds[0]);
    }
    match (exec_error, pid) {
        (Some(errno), _) => Err(io::Error::from_raw_os_error(errno)),
        (None, Some(pid)) => Ok(pid),
        (None, None) => Err(io::Error::other(
            "the detached runner could not be started (fork failed)",
        )),
    }
}

/// What to execute to run this binary again, and the name to show as `argv[0]`. On Linux
/// `/proc/self/exe`: it works even when the file was replaced meanwhile (another client
/// installing the same endpoint renames a new copy over it), where the path would not.
fn self_exe() -> io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let shown = std::env::current_exe()?;
    let proc_exe = Path::new("/proc/self/exe");
    if cfg!(target_os = "linux") && proc_exe.exists() {
        let shown = shown
            .to_str()
            .and_then(|s| s.strip_suffix(" (deleted)"))
            .map_or(shown.clone(), std::path::PathBuf::from);
        return Ok((proc_exe.to_path_buf(), shown));
    }
    Ok((shown.clone(), shown))
}

/// `job run DIR`: the runner (foreground).
pub(super) fn run_job(dir: &Path) -> i32 {
    match supervise(dir) {
        Ok(state) => match state {
            State::Succeeded => EXIT_OK,
            State::Failed => EXIT_FAILED,
            State::Cancelled => EXIT_CANCELLED,
            _ => EXIT_DIED,
        },
        Err(e) => {
            eprintln!("sremote-endpoint: job run {}: {e}", dir.display());
            let mut s = read_status(dir).unwrap_or_else(|_| Status::queued(now_ms()));
            if !s.state.is_terminal() {
                s.finish(
                    State::Died,
                    Some(DiedReason::Crashed.as_str()),
                    Some(format!("the job runner failed: {e}")),
                    now_ms(),
                );
                let _ = write_status(dir, &s);
            }
            EXIT_IO
        }
    }
}

fn supervise(dir: &Path) -> io::Result<State> {
    install_signal_handlers();
    let mut status = read_status(dir)?;
    if status.state != State::Queued {
        return Err(invalid(format!(
            "the job is {:?}, not queued: it ran before",
            status.state
        )));
    }
    if cancel_requested(dir).is_some() {
        status.finish(
            State::Cancelled,
            None,
            Some("cancelled before it started".into()),
            now_ms(),
        );
        write_status(dir, &status)?;
        linger(dir);
        return Ok(State::Cancelled);
    }
    let me = std::process::id();
    status.state = State::Running;
    status.host = Some(hostname());
    status.pid = Some(me);
    status.pid_start = start_time(me);
    status.started_unix_ms = Some(now_ms());
    let mut child = spawn_worker(dir)?;
    let worker = child.id();
    status.worker_pid = Some(worker);
    write_status(dir, &status)?;
    let (exit, term_sent) = watch_worker(dir, &mut child)?;
    // Whatever the call left running in its session ends with the job.
    signal_session(worker, libc::SIGKILL);
    status.exit_code = exit.code();
    status.signal = exit.signal();
    // Signals reach every process of a batch job at once: the worker may have ended (with
    // a response) before this loop saw its own signal; it says so in its exit code.
    let signalled = match (SIGNALLED.load(Ordering::SeqCst), exit.code()) {
        (0, Some(c)) if c > WORKER_SIGNALLED_BASE && c < WORKER_SIGNALLED_BASE + 65 => {
            c - WORKER_SIGNALLED_BASE
        }
        (own, _) => own,
    };
    let stopped = term_sent || signalled != 0;
    let (state, reason, message) = final_state(dir, exit.code(), exit.signal(), signalled, stopped);
    // A program job: its exit code and signal are the job's (not the worker's).
    if let Some(Outcome::Error(e)) = read_response(dir).map(|r| r.outcome)
        && let Some((code, sig)) = program_end(&e)
    {
        status.exit_code = code;
        status.signal = sig;
    }
    status.finish(state, reason.as_deref(), message, now_ms());
    write_status(dir, &status)?;
    if state == State::Cancelled {
        linger(dir);
    }
    Ok(state)
}

/// Start `job worker DIR` in the job's work dir, leading a new session, its output
/// appended to the job's log.
fn spawn_worker(dir: &Path) -> io::Result<std::process::Child> {
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join(LOG_FILE))?;
    let exe = self_exe()?;
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = Command::new(&exe.0);
    cmd.arg0(&exe.1)
        .args(["job", "worker"])
        .arg(dir)
        .current_dir(dir.join(WORK_DIR))
        .env("SREMOTE_JOB_DIR", dir)
        .env("SREMOTE_JOB_ID", &id)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the worker leads a new session so that every
    // process it starts can be found (and signalled) by its session id.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Wait for the worker to end, passing a signal to this runner or a cancel request on
/// to the worker's session as SIGTERM, then SIGKILL after the grace time. Returns how it
/// ended and whether it was asked to stop.
fn watch_worker(
    dir: &Path,
    child: &mut std::process::Child,
) -> io::Result<(std::process::ExitStatus, bool)> {
    let worker = child.id();
    let mut term_sent: Option<(Instant, Duration)> = None;
    let mut killed = false;
    let mut last_look = Instant::now();
    let mut cancel_seen = false;
    let exit = loop {
        if let Some(exit) = child.try_wait()? {
            break exit;
        }
        // A cancel request written while the job runs (on any node: the client may reach
        // only a login node sharing this file system) counts like a signal.
        if !cancel_seen && last_look.elapsed() >= CANCEL_POLL {
            last_look = Instant::now();
            cancel_seen = cancel_requested(dir).is_some();
        }
        let sig = SIGNALLED.load(Ordering::SeqCst);
        if (sig != 0 || cancel_seen) && term_sent.is_none() {
            let grace = cancel_requested(dir).unwrap_or(DEFAULT_GRACE);
            signal_session(worker, libc::SIGTERM);
            term_sent = Some((Instant::now(), grace));
        }
        if let Some((at, grace)) = term_sent
            && !killed
            && at.elapsed() >= grace
        {
            signal_session(worker, libc::SIGKILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((exit, term_sent.is_some()))
}

/// A batch job cancelled by the client: the batch system's own cancel follows (the client
/// sends it once it sees the job cancelled). Wait for it — up to the request's linger
/// time — so that the batch system records the job as cancelled, not as ended by itself.
fn linger(dir: &Path) {
    let Some((_, linger)) = cancel_request(dir) else {
        return;
    };
    let seen = SIGNALS.load(Ordering::SeqCst);
    let t0 = Instant::now();
    while t0.elapsed() < linger && SIGNALS.load(Ordering::SeqCst) == seen {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The final state from the response (if any), a cancel request, and how the worker ended.
/// `stopped`: the runner signalled the job (a cancel or a signal from outside), so a
/// response the job still wrote in its grace period (e.g. `job.run`'s `-15`) is not its
/// result.
pub(super) fn final_state(
    dir: &Path,
    code: Option<i32>,
    signal: Option<i32>,
    runner_signal: i32,
    stopped: bool,
) -> (State, Option<String>, Option<String>) {
    if stopped && cancel_requested(dir).is_some() {
        return (State::Cancelled, None, Some("cancelled on request".into()));
    }
    if let Some(resp) = read_response(dir).filter(|_| !stopped || runner_signal == 0) {
        return match resp.outcome {
            Outcome::Ok(_) => (State::Succeeded, None, None),
            Outcome::Error(e) => match program_end(&e) {
                // `job.run`'s program ended badly: failed with its exit code, or died.
                Some((_, Some(sig))) => (
                    State::Died,
                    Some(signal_class(sig).as_str().into()),
                    Some(with_stderr_tail(e.message, &resp.stderr)),
                ),
                Some((_, None)) => (
                    State::Failed,
                    Some(EXITED.into()),
                    Some(with_stderr_tail(e.message, &resp.stderr)),
                ),
                None => (State::Failed, Some(e.kind.to_string()), Some(e.message)),
            },
        };
    }
    if cancel_requested(dir).is_some() {
        return (State::Cancelled, None, Some("cancelled on request".into()));
    }
    if runner_signal != 0 {
        return (
            State::Died,
            Some(DiedReason::Signal.as_str().into()),
            Some(format!(
                "the job was stopped by {} (from the batch system — time limit, memory, cancel — or an administrator)",
                signal_name(runner_signal)
            )),
        );
    }
    match (code, signal) {
        (_, Some(sig)) if sig == libc::SIGKILL => (
            State::Died,
            Some(DiedReason::Killed.as_str().into()),
            Some(
                "the call was killed (SIGKILL) without a result — often the out-of-memory killer"
                    .into(),
            ),
        ),
        (_, Some(sig)) => (
            State::Died,
            Some(signal_class(sig).as_str().into()),
            Some(format!(
                "the call was killed by {} without a result",
                signal_name(sig)
            )),
        ),
        (code, None) => (
            State::Died,
            Some(DiedReason::Crashed.as_str().into()),
            Some(format!(
                "the call exited with code {} without writing a result",
                code.unwrap_or(-1)
            )),
        ),
    }
}

/// `(exit code, signal)` of `job.run`'s program, from its error (`None`: not a program's end).
pub(super) fn program_end(e: &ErrorBody) -> Option<(Option<i32>, Option<i32>)> {
    if e.module.as_deref() != Some("job") || e.function.as_deref() != Some("run") {
        return None;
    }
    let get = |k: &str| {
        e.data
            .get(k)
            .and_then(serde_json::Value::as_i64)
            .map(|v| v as i32)
    };
    match (get("exit_code"), get("signal")) {
        (None, None) => None,
        end => Some(end),
    }
}

/// The failure class of a program killed by `sig`: `crashed` for the signals of a
/// program's own fault (SIGSEGV, SIGABRT, …), `killed` for those sent to it.
pub(super) fn signal_class(sig: i32) -> DiedReason {
    match sig {
        libc::SIGSEGV
        | libc::SIGABRT
        | libc::SIGBUS
        | libc::SIGFPE
        | libc::SIGILL
        | libc::SIGSYS
        | libc::SIGTRAP => DiedReason::Crashed,
        _ => DiedReason::Killed,
    }
}

/// `message` and the last lines of `stderr` (at most 5 lines, 600 bytes).
fn with_stderr_tail(message: String, stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut tail = lines[lines.len().saturating_sub(5)..].join("\n");
    if tail.len() > 600 {
        let mut cut = tail.len() - 600;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    if tail.is_empty() {
        message
    } else {
        format!("{message}; the end of its stderr:\n{tail}")
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        n => format!("signal {n}"),
    }
}

/// `job worker DIR` (started by the runner): run the request with fd 1 and 2 on the log.
pub(super) fn worker(endpoint: &Endpoint, dir: &Path) -> i32 {
    // SIGTERM goes to the job's whole session: the programs the call runs get it and have
    // their grace period; the worker itself waits for them (and gets SIGKILL at the end of
    // the grace period like everything else). A handler, not SIG_IGN, which programs
    // started from here would inherit.
    install_signal_handlers();
    crate::output::set_live();
    // What the call prints goes live to the log and into the response (`tee.rs`).
    let tee = match Tee::start() {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("sremote-endpoint: the job's output goes to its log only: {e}");
            None
        }
    };
    let mut response = match std::fs::read(dir.join(REQUEST_FILE)) {
        Err(e) => crate::response::error_response(
            String::new(),
            sremote_core::protocol::ErrorBody::new(
                ErrorKind::BadRequest,
                format!("cannot read the job's request: {e}"),
            ),
        ),
        Ok(bytes) => match Request::parse(&bytes) {
            Err((id, body)) => crate::response::error_response(id.unwrap_or_default(), body),
            Ok(req) => {
                let ep = endpoint.clone().module("job", |m| {
                    m.doc("Only in jobs: run programs whose output goes live to the job's log.");
                    m.function("run", job_run)
                        .params(&["argv", "cwd", "env"])
                        .returns("int")
                        .doc("Run argv (no shell) with stdout and stderr on the job's log; returns the exit code (-N: killed by signal N).");
                });
                ep.dispatch(req).response
            }
        },
    };
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    if let Some(tee) = tee {
        // Output the call did not print live (e.g. the Python interpreter's own stderr)
        // reaches the log too, after what was printed live.
        let late = format!("{}{}", response.stdout, response.stderr);
        let _ = io::stdout().write_all(late.as_bytes());
        let (out, err) = tee.finish(Duration::from_secs(2));
        response.stdout = out + &response.stdout;
        response.stderr = err + &response.stderr;
    }
    let bytes = match serde_json::to_vec(&response) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("sremote-endpoint: cannot encode the job's response: {e}");
            return EXIT_IO;
        }
    };
    match write_atomic(&dir.join(RESPONSE_FILE), &bytes) {
        // Signalled while the call ran: tell the runner, which may not have seen the
        // signal yet (a batch system signals every process of the job at once).
        Ok(()) => match SIGNALLED.load(Ordering::SeqCst) {
            0 => EXIT_OK,
            sig => WORKER_SIGNALLED_BASE + sig,
        },
        Err(e) => {
            eprintln!(
                "sremote-endpoint: cannot write {}/response.json: {e}",
                dir.display()
            );
            EXIT_IO
        }
    }
}

/// `job.run(argv, cwd, env)`: a program with inherited stdout/stderr (the job's output).
/// Exit code 0 is the value `0`; any other end is the job's failure: an error naming the
/// program with `data.exit_code` (the job is `failed`) or `data.signal` (the job `died`).
fn job_run(
    argv: Vec<String>,
    cwd: Option<String>,
    env: Option<BTreeMap<String, String>>,
) -> Result<i32, CallError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(CallError::bad_arguments(
            "job.run(): argv must name a program (it is empty)",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove(OUTPUT_FDS_VAR);
    if let Some(d) = &cwd {
        cmd.current_dir(d);
    }
    for (k, v) in env.iter().flatten() {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(CallError::bad_arguments(format!(
                "job.run(): invalid environment variable {k:?}"
            )));
        }
        cmd.env(k, v);
    }
    let _ = io::stdout().flush();
    let shown = shown_command(&argv);
    let status = cmd.status().map_err(|e| {
        CallError::raised(format!("cannot run `{shown}`: {e}"))
            .with_data(serde_json::json!({ "exit_code": 127 }))
    })?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(0),
        (Some(code), _) => Err(
            CallError::raised(format!("`{shown}` exited with code {code}"))
                .with_data(serde_json::json!({ "exit_code": code })),
        ),
        (None, sig) => {
            let sig = sig.unwrap_or(0);
            Err(
                CallError::raised(format!("`{shown}` was killed by {}", signal_name(sig)))
                    .with_data(serde_json::json!({ "signal": sig })),
            )
        }
    }
}

/// The program as a person typed it: words quoted where a shell would need it, without
/// the path wrapper `sremote run --detach` puts in front (`sh -c SCRIPT sremote-path P`).
pub(super) fn shown_command(argv: &[String]) -> String {
    let words = match argv {
        [_, c, _, tag, _, rest @ ..] if c == "-c" && tag == "sremote-path" && !rest.is_empty() => {
            rest
        }
        _ => argv,
    };
    let quote = |w: &String| {
        let plain = !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
        if plain {
            w.clone()
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    words.iter().map(quote).collect::<Vec<_>>().join(" ")
}
