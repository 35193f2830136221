//! Detached jobs: `sremote-endpoint job …` (see PROTOCOL.md, "Jobs").
//!
//! A job is a directory `<sremote>/jobs/<id>/` (mode 0700, files 0600):
//!
//! | file | written by | what |
//! |---|---|---|
//! | `request.json` | `job create` | the call request |
//! | `status.json` | everyone, atomically (temp file + rename) | `{"state": queued\|running\|succeeded\|failed\|cancelled\|died, …}` |
//! | `log` | the call (its fd 1 and fd 2), appended live | what the call prints |
//! | `response.json` | the worker, atomically | the call's response |
//! | `cancel` | `job cancel` | cancellation was asked for (grace period) |
//! | `work/` | the client (input files) | the call's working directory |
//!
//! `job run DIR` is the *runner*: it marks the job running, starts the *worker*
//! (`job worker DIR`, in its own session, output appended to `log`), waits for it,
//! forwards SIGTERM (SIGKILL after the grace period) to every process of the worker's
//! session, and writes the final state. `job start DIR` detaches a runner (double fork,
//! `setsid`) so the job survives the connection and the client; a batch script runs
//! `job run DIR` in the foreground.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sremote_core::protocol::{ErrorKind, Outcome, Request, Response};

use crate::endpoint::{Endpoint, hostname};
use crate::error::CallError;

/// Usage of the `job` commands (part of the endpoint's usage text).
pub(crate) const USAGE: &str = "\
  sremote-endpoint job create DIR REQ [--start]  make job dir DIR (0700) with request REQ (`-`: stdin)
  sremote-endpoint job start DIR                 run the job detached (survives the connection)
  sremote-endpoint job run DIR                   run the job in the foreground (batch scripts)
  sremote-endpoint job status DIR                the job's state as JSON
  sremote-endpoint job log DIR [--from N] [--max M]    log bytes from offset N
  sremote-endpoint job poll DIR [--from N] [--max M]   status JSON line, then log bytes from N
  sremote-endpoint job follow DIR [--from N]     stream the log from N until the job ends
  sremote-endpoint job cancel DIR [--grace SECS] [--mark]  SIGTERM the job, SIGKILL after the
                                                 grace period (--mark: only record the request)
  sremote-endpoint job result DIR                print the response (exit 4 while there is none)
  sremote-endpoint job rm DIR                    delete a finished job's directory";

const EXIT_OK: i32 = 0;
const EXIT_FAILED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_IO: i32 = 3;
const EXIT_NOT_YET: i32 = 4;
const EXIT_DIED: i32 = 5;
const EXIT_CANCELLED: i32 = 6;

const DEFAULT_GRACE: Duration = Duration::from_secs(10);
const LOG_MAX: u64 = 4 << 20;

/// The state of a job as its directory records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Died,
}

impl State {
    fn terminal(self) -> bool {
        !matches!(self, State::Queued | State::Running)
    }
}

/// `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Status {
    state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// The runner's pid and its start time (clock ticks since boot, from /proc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid_start: Option<u64>,
    /// The worker's pid (= its session id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    worker_pid: Option<u32>,
    queued_unix_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_unix_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_unix_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
    /// Failed: the error kind. Died: a class (`signal`, `killed`, `crashed`, `vanished`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl Status {
    fn queued() -> Status {
        Status {
            state: State::Queued,
            host: None,
            pid: None,
            pid_start: None,
            worker_pid: None,
            queued_unix_ms: now_ms(),
            started_unix_ms: None,
            finished_unix_ms: None,
            exit_code: None,
            signal: None,
            reason: None,
            message: None,
        }
    }

    fn finish(&mut self, state: State, reason: Option<&str>, message: Option<String>) {
        self.state = state;
        self.finished_unix_ms = Some(now_ms());
        self.reason = reason.map(str::to_owned);
        self.message = message;
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

/// Write `bytes` to `path` atomically: a private temp file in the same dir, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), now_ms()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_status(dir: &Path) -> io::Result<Status> {
    let bytes = std::fs::read(dir.join("status.json"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}/status.json: {e}", dir.display()),
        )
    })
}

fn write_status(dir: &Path, status: &Status) -> io::Result<()> {
    let bytes = serde_json::to_vec(status).map_err(io::Error::other)?;
    write_atomic(&dir.join("status.json"), &bytes)
}

fn read_response(dir: &Path) -> Option<Response> {
    let bytes = std::fs::read(dir.join("response.json")).ok()?;
    Response::parse(&bytes).ok()
}

/// The grace period asked for by `job cancel`, if cancellation was asked for.
fn cancel_requested(dir: &Path) -> Option<Duration> {
    let bytes = std::fs::read(dir.join("cancel")).ok()?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Some(
        v.get("grace_ms")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_GRACE, Duration::from_millis),
    )
}

// ---------------------------------------------------------------------------------------
// Processes (Linux: /proc; elsewhere: kill(pid, 0))
// ---------------------------------------------------------------------------------------

/// `(state, session id, start time)` of `pid`.
fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
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

fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, _, start)| start)
}

/// Whether the process `pid` started at `start` still runs (not a zombie, not reused).
fn alive(pid: u32, start: Option<u64>) -> bool {
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
fn signal_session(sid: u32, sig: i32) -> usize {
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

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
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

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

struct Opts {
    dir: PathBuf,
    rest: Vec<String>,
    from: u64,
    max: u64,
    grace: Option<Duration>,
    start: bool,
    mark_only: bool,
}

fn parse(args: &[String]) -> Result<(String, Opts), String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("`job` needs a command (create, start, run, status, log, poll, follow, cancel, result, rm)".into());
    };
    let mut opts = Opts {
        dir: PathBuf::new(),
        rest: Vec::new(),
        from: 0,
        max: LOG_MAX,
        grace: None,
        start: false,
        mark_only: false,
    };
    let mut positional = Vec::new();
    let mut it = rest.iter();
    let number = |flag: &str, v: Option<&String>| -> Result<f64, String> {
        v.and_then(|s| s.parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| format!("`{flag}` needs a non-negative number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--from" => opts.from = number(a, it.next())? as u64,
            "--max" => opts.max = number(a, it.next())? as u64,
            "--grace" => opts.grace = Some(Duration::from_secs_f64(number(a, it.next())?.min(1e6))),
            "--start" => opts.start = true,
            "--mark" => opts.mark_only = true,
            s if s.starts_with("--") => return Err(format!("`job {cmd}` does not take `{s}`")),
            _ => positional.push(a.clone()),
        }
    }
    let Some((dir, more)) = positional.split_first() else {
        return Err(format!("`job {cmd}` needs the job directory"));
    };
    opts.dir = PathBuf::from(dir);
    opts.rest = more.to_vec();
    let max_positional = usize::from(cmd == "create");
    if opts.rest.len() > max_positional {
        return Err(format!(
            "`job {cmd}` takes {} argument(s) after DIR",
            max_positional
        ));
    }
    Ok((cmd.clone(), opts))
}

/// Run `job …` (`args` without `job`); returns the exit code.
pub(crate) fn run(endpoint: &Endpoint, args: &[String]) -> i32 {
    let (cmd, opts) = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sremote-endpoint: {e}\nusage:\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let dir = std::path::absolute(&opts.dir).unwrap_or_else(|_| opts.dir.clone());
    let result = match cmd.as_str() {
        "create" => create(
            &dir,
            opts.rest.first().map_or("-", String::as_str),
            opts.start,
        ),
        "start" => start(&dir),
        "run" => return run_job(&dir),
        "worker" => return worker(endpoint, &dir),
        "status" => status(&dir).map(|s| println!("{s}")),
        "log" => log(&dir, opts.from, opts.max),
        "poll" => poll(&dir, opts.from, opts.max),
        "follow" => follow(&dir, opts.from),
        "cancel" => cancel(&dir, opts.grace.unwrap_or(DEFAULT_GRACE), opts.mark_only),
        "result" => match std::fs::read(dir.join("response.json")) {
            Ok(bytes) => io::stdout()
                .write_all(&bytes)
                .and_then(|()| io::stdout().flush()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                eprintln!(
                    "sremote-endpoint: job {} has no response yet",
                    dir.display()
                );
                return EXIT_NOT_YET;
            }
            Err(e) => Err(e),
        },
        "rm" => remove(&dir),
        other => {
            eprintln!("sremote-endpoint: unknown job command `{other}`\nusage:\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && cmd == "follow" => EXIT_OK,
        Err(e) => {
            eprintln!("sremote-endpoint: job {cmd} {}: {e}", dir.display());
            if e.kind() == io::ErrorKind::InvalidInput {
                EXIT_USAGE
            } else {
                EXIT_IO
            }
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `job create DIR REQ [--start]`: the private dir, the request, status `queued`.
fn create(dir: &Path, request: &str, start_now: bool) -> io::Result<()> {
    let bytes = if request == "-" {
        let mut buf = Vec::new();
        io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(request)?
    };
    if let Err((_, body)) = Request::parse(&bytes) {
        return Err(invalid(format!(
            "the request is not valid: {}",
            body.message
        )));
    }
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Idempotent for the same request (a client retrying after a lost answer).
            if std::fs::read(dir.join("request.json")).ok().as_deref() != Some(&bytes[..]) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a different job already uses this directory; pick another job id",
                ));
            }
        }
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("work"))?;
    if !dir.join("request.json").exists() {
        write_atomic(&dir.join("request.json"), &bytes)?;
    }
    if !dir.join("status.json").exists() {
        write_status(dir, &Status::queued())?;
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut out = json!({ "dir": dir.display().to_string(), "exe": exe, "host": hostname() });
    if start_now {
        out["pid"] = json!(detach(dir)?);
    }
    println!("{out}");
    Ok(())
}

/// `job start DIR`.
fn start(dir: &Path) -> io::Result<()> {
    let pid = detach(dir)?;
    println!(
        "{}",
        json!({ "dir": dir.display().to_string(), "pid": pid })
    );
    Ok(())
}

/// Double fork: the grandchild, in its own session with stdio on `/dev/null` and
/// `runner.log`, becomes `job run DIR`. Returns its pid once its `exec` succeeded.
fn detach(dir: &Path) -> io::Result<u32> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let status = read_status(dir)?;
    if status.state != State::Queued {
        return Err(invalid(format!(
            "the job is {:?}, not queued: it was started before",
            status.state
        )));
    }
    let exe = std::env::current_exe()?;
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| invalid("a path contains a NUL byte".into()));
    let argv_owned = [
        cstr(exe.as_os_str().as_bytes())?,
        cstr(b"job")?,
        cstr(b"run")?,
        cstr(dir.as_os_str().as_bytes())?,
    ];
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
        .open(dir.join("runner.log"))?;
    // A close-on-exec pipe: EOF means the exec worked; 4 bytes of errno mean it did not;
    // then 4 bytes carry the grandchild's pid.
    let mut fds = [0; 2];
    let mut pidfds = [0; 2];
    for pair in [&mut fds, &mut pidfds] {
        // SAFETY: pipe fills the array with two fresh descriptors; fcntl marks them
        // close-on-exec (this process starts no threads that could exec in between).
        unsafe {
            if libc::pipe(pair.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            libc::fcntl(pair[0], libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(pair[1], libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
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
            libc::execv(argv[0], argv.as_ptr());
            let err = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            libc::write(fds[1], (&err as *const i32).cast(), 4);
            libc::_exit(127);
        }
    }
    // SAFETY: closing our copies of the write ends; reading from our read ends.
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

/// `job run DIR`: the runner (foreground).
fn run_job(dir: &Path) -> i32 {
    match supervise(dir) {
        Ok(state) => match state {
            State::Succeeded => EXIT_OK,
            State::Failed => EXIT_FAILED,
            State::Cancelled => EXIT_CANCELLED,
            _ => EXIT_DIED,
        },
        Err(e) => {
            eprintln!("sremote-endpoint: job run {}: {e}", dir.display());
            let mut s = read_status(dir).unwrap_or_else(|_| Status::queued());
            if !s.state.terminal() {
                s.finish(
                    State::Died,
                    Some("crashed"),
                    Some(format!("the job runner failed: {e}")),
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
        );
        write_status(dir, &status)?;
        return Ok(State::Cancelled);
    }
    let me = std::process::id();
    status.state = State::Running;
    status.host = Some(hostname());
    status.pid = Some(me);
    status.pid_start = start_time(me);
    status.started_unix_ms = Some(now_ms());
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join("log"))?;
    let exe = std::env::current_exe()?;
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = Command::new(exe);
    cmd.args(["job", "worker"])
        .arg(dir)
        .current_dir(dir.join("work"))
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
    let mut child = cmd.spawn()?;
    let worker = child.id();
    status.worker_pid = Some(worker);
    write_status(dir, &status)?;
    let mut term_sent: Option<(Instant, Duration)> = None;
    let mut killed = false;
    let exit = loop {
        if let Some(exit) = child.try_wait()? {
            break exit;
        }
        let sig = SIGNALLED.load(Ordering::SeqCst);
        if sig != 0 && term_sent.is_none() {
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
    // Whatever the call left running in its session ends with the job.
    signal_session(worker, libc::SIGKILL);
    status.exit_code = exit.code();
    status.signal = exit.signal();
    let signalled = SIGNALLED.load(Ordering::SeqCst);
    let (state, reason, message) = final_state(dir, exit.code(), exit.signal(), signalled);
    status.finish(state, reason.as_deref(), message);
    write_status(dir, &status)?;
    Ok(state)
}

/// The final state from the response (if any), a cancel request, and how the worker ended.
fn final_state(
    dir: &Path,
    code: Option<i32>,
    signal: Option<i32>,
    runner_signal: i32,
) -> (State, Option<String>, Option<String>) {
    if let Some(resp) = read_response(dir) {
        return match resp.outcome {
            Outcome::Ok(_) => (State::Succeeded, None, None),
            Outcome::Error(e) => (State::Failed, Some(e.kind.to_string()), Some(e.message)),
        };
    }
    if cancel_requested(dir).is_some() {
        return (State::Cancelled, None, Some("cancelled on request".into()));
    }
    if runner_signal != 0 {
        return (
            State::Died,
            Some("signal".into()),
            Some(format!(
                "the job was stopped by {} (from the batch system — time limit, memory, cancel — or an administrator)",
                signal_name(runner_signal)
            )),
        );
    }
    match (code, signal) {
        (_, Some(sig)) if sig == libc::SIGKILL => (
            State::Died,
            Some("killed".into()),
            Some(
                "the call was killed (SIGKILL) without a result — often the out-of-memory killer"
                    .into(),
            ),
        ),
        (_, Some(sig)) => (
            State::Died,
            Some("killed".into()),
            Some(format!(
                "the call was killed by {} without a result",
                signal_name(sig)
            )),
        ),
        (code, None) => (
            State::Died,
            Some("crashed".into()),
            Some(format!(
                "the call exited with code {} without writing a result",
                code.unwrap_or(-1)
            )),
        ),
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
        n => format!("signal {n}"),
    }
}

/// `job worker DIR` (started by the runner): run the request with fd 1 and 2 on the log.
fn worker(endpoint: &Endpoint, dir: &Path) -> i32 {
    let response = match std::fs::read(dir.join("request.json")) {
        Err(e) => crate::endpoint::error_response(
            String::new(),
            sremote_core::protocol::ErrorBody::new(
                ErrorKind::BadRequest,
                format!("cannot read the job's request: {e}"),
            ),
        ),
        Ok(bytes) => match Request::parse(&bytes) {
            Err((id, body)) => crate::endpoint::error_response(id.unwrap_or_default(), body),
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
    let bytes = match serde_json::to_vec(&response) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("sremote-endpoint: cannot encode the job's response: {e}");
            return EXIT_IO;
        }
    };
    match write_atomic(&dir.join("response.json"), &bytes) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!(
                "sremote-endpoint: cannot write {}/response.json: {e}",
                dir.display()
            );
            EXIT_IO
        }
    }
}

/// `job.run(argv, cwd, env)`: a program with inherited stdout/stderr (the job's log).
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
    cmd.args(args).stdin(Stdio::null());
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
    let status = cmd.status().map_err(|e| {
        CallError::raised(format!(
            "job.run({}): {e}",
            serde_json::to_string(&argv).unwrap_or_default()
        ))
    })?;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| -s))
        .unwrap_or(-1))
}

/// The status, repaired when the runner is gone without saying so (host crash, SIGKILL).
fn current_status(dir: &Path) -> io::Result<Status> {
    let mut s = read_status(dir)?;
    if s.state == State::Running
        && s.host.as_deref() == Some(hostname().as_str())
        && let Some(pid) = s.pid
        && !alive(pid, s.pid_start)
    {
        // The runner cannot write any more: settle the state from what it left.
        let again = read_status(dir)?;
        if again.state == State::Running {
            s = again;
            let (state, reason, message) = match read_response(dir) {
                Some(_) => final_state(dir, Some(0), None, 0),
                None if cancel_requested(dir).is_some() => (State::Cancelled, None, Some("cancelled on request".into())),
                None => (
                    State::Died,
                    Some("vanished".into()),
                    Some("the job runner disappeared without a result (killed, or the host restarted)".into()),
                ),
            };
            if let Some(w) = s.worker_pid {
                signal_session(w, libc::SIGKILL);
            }
            s.finish(state, reason.as_deref(), message);
            write_status(dir, &s)?;
        } else {
            s = again;
        }
    }
    Ok(s)
}

/// Status JSON plus what a client needs: log size, response and cancel flags.
fn status(dir: &Path) -> io::Result<Value> {
    let s = current_status(dir)?;
    let mut v = serde_json::to_value(&s).map_err(io::Error::other)?;
    v["log_bytes"] = json!(
        std::fs::metadata(dir.join("log"))
            .map(|m| m.len())
            .unwrap_or(0)
    );
    v["response"] = json!(dir.join("response.json").exists());
    v["cancel_requested"] = json!(dir.join("cancel").exists());
    Ok(v)
}

fn read_log(dir: &Path, from: u64, max: u64) -> io::Result<Vec<u8>> {
    let mut f = match File::open(dir.join("log")) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            dir.join("status.json").metadata()?; // not a job dir at all: say so
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

fn log(dir: &Path, from: u64, max: u64) -> io::Result<()> {
    let bytes = read_log(dir, from, max)?;
    let mut out = io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()
}

/// One JSON line (status, with `log_from` and `log_sent`), then the log bytes.
fn poll(dir: &Path, from: u64, max: u64) -> io::Result<()> {
    // Status first: bytes written before a terminal state was read are all in the log.
    let mut v = status(dir)?;
    let bytes = read_log(dir, from, max)?;
    v["log_from"] = json!(from);
    v["log_sent"] = json!(bytes.len());
    let mut out = io::stdout().lock();
    writeln!(out, "{v}")?;
    out.write_all(&bytes)?;
    out.flush()
}

/// Stream the log from `from` until the job is over and every byte is sent.
fn follow(dir: &Path, mut from: u64) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let mut idle = Duration::from_millis(20);
    loop {
        let done = current_status(dir)?.state.terminal();
        let bytes = read_log(dir, from, LOG_MAX)?;
        if !bytes.is_empty() {
            out.write_all(&bytes)?;
            out.flush()?;
            from += bytes.len() as u64;
            idle = Duration::from_millis(20);
            continue;
        }
        if done {
            return Ok(());
        }
        std::thread::sleep(idle);
        idle = (idle * 2).min(Duration::from_millis(250));
    }
}

/// `job cancel DIR`: record the request, then stop what runs on this host.
fn cancel(dir: &Path, grace: Duration, mark_only: bool) -> io::Result<()> {
    let s = current_status(dir)?;
    if !s.state.terminal() {
        let marker = json!({ "grace_ms": grace.as_millis() as u64, "requested_unix_ms": now_ms() });
        write_atomic(&dir.join("cancel"), marker.to_string().as_bytes())?;
    }
    if mark_only {
        // A batch job: the batch system's cancel delivers the signal (and ends the job
        // as cancelled in its own accounting).
        println!("{}", status(dir)?);
        return Ok(());
    }
    let here = s.host.as_deref() == Some(hostname().as_str());
    match s.state {
        State::Queued => {
            // A batch job not started yet: its runner will see the marker; a direct job
            // that never started is settled now.
            let mut again = read_status(dir)?;
            if again.state == State::Queued {
                again.finish(
                    State::Cancelled,
                    None,
                    Some("cancelled before it started".into()),
                );
                write_status(dir, &again)?;
            }
        }
        State::Running if here => {
            let runner = s.pid.filter(|&p| alive(p, s.pid_start));
            match runner {
                // SAFETY: kill sends SIGTERM to the job's own runner process.
                Some(pid) => unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                },
                None => {
                    // No runner: stop the worker's session ourselves.
                    if let Some(w) = s.worker_pid {
                        signal_session(w, libc::SIGTERM);
                        let t0 = Instant::now();
                        while t0.elapsed() < grace && alive(w, None) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        signal_session(w, libc::SIGKILL);
                    }
                }
            }
        }
        _ => {}
    }
    println!("{}", status(dir)?);
    Ok(())
}

/// `job rm DIR`: only a job dir (it has `request.json`, its parent is `jobs`), not running.
fn remove(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(()); // removed before
    }
    if !dir.join("request.json").is_file()
        || dir.parent().and_then(Path::file_name) != Some("jobs".as_ref())
    {
        return Err(invalid(format!(
            "{} is not a job directory (<sremote>/jobs/<id>)",
            dir.display()
        )));
    }
    let s = current_status(dir)?;
    if s.state == State::Running && s.host.as_deref() == Some(hostname().as_str()) {
        return Err(invalid("the job is still running: cancel it first".into()));
    }
    std::fs::remove_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn command_line() {
        let (cmd, o) = parse(&args("log /x --from 10 --max 5")).unwrap();
        assert_eq!(
            (cmd.as_str(), o.dir.as_path(), o.from, o.max),
            ("log", Path::new("/x"), 10, 5)
        );
        let (_, o) = parse(&args("create /x - --start")).unwrap();
        assert!(o.start && o.rest == ["-"]);
        for bad in [
            "",
            "status",
            "status /x /y",
            "log /x --from",
            "log /x --from -1",
            "cancel /x --nope",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_round_trip_and_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Status::queued();
        write_status(dir.path(), &s).unwrap();
        assert_eq!(read_status(dir.path()).unwrap().state, State::Queued);
        s.finish(State::Died, Some("signal"), Some("m".into()));
        write_status(dir.path(), &s).unwrap();
        let back = read_status(dir.path()).unwrap();
        assert_eq!(
            (back.state, back.reason.as_deref()),
            (State::Died, Some("signal"))
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["status.json"], "no temp file left behind");
        let mode = std::fs::metadata(dir.path().join("status.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn liveness_sees_this_process_and_not_a_dead_one() {
        let me = std::process::id();
        assert!(alive(me, start_time(me)));
        assert!(
            !alive(me, start_time(me).map(|s| s + 1)),
            "a reused pid is not the runner"
        );
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid, None));
    }
}
