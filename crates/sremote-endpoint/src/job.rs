//! Detached jobs: `sremote-endpoint job …` (see PROTOCOL.md, "Jobs").
//!
//! A job is a directory `<sremote>/jobs/<id>/` (mode 0700, files 0600); its formats and
//! file names are `sremote_core::protocol::job`, shared with the client:
//!
//! | file | written by | what |
//! |---|---|---|
//! | `request.json` | `job create` | the call request |
//! | `status.json` | everyone, atomically (temp file + rename) | `{"state": queued\|running\|succeeded\|failed\|cancelled\|died, …}` |
//! | `log` | the worker (the call's fd 1 and fd 2, `job/tee.rs`), appended live | what the call prints |
//! | `response.json` | the worker, atomically | the call's response |
//! | `cancel` | `job cancel` | cancellation was asked for (grace period) |
//! | `submitted.json` | `job submit`, atomically | the batch system's answer to the one submission |
//! | `work/` | the client (input files) | the call's working directory |
//!
//! `job run DIR` is the *runner*: it marks the job running, starts the *worker*
//! (`job worker DIR`, in its own session, output appended to `log`), waits for it,
//! forwards SIGTERM (SIGKILL after the grace period) to every process of the worker's
//! session, and writes the final state. `job start DIR` detaches a runner (double fork,
//! `setsid`) so the job survives the connection and the client; a batch script runs
//! `job run DIR` in the foreground.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sremote_core::protocol::job::{
    CANCEL_FILE, CancelRequest, Created, DiedReason, JOBS_DIR, LOG_FILE, REQUEST_FILE,
    RESPONSE_FILE, STATUS_FILE, Started, State, Status, StatusReport, WORK_DIR, to_line,
};
use sremote_core::protocol::{Request, Response};

use crate::endpoint::Endpoint;
use crate::response::hostname;

mod runner;
mod submit;
mod tee;
#[cfg(test)]
use runner::start_time;
use runner::{alive, detach, final_state, run_job, signal_session, worker};

/// Usage of the `job` commands (part of the endpoint's usage text).
pub(crate) const USAGE: &str = "\
  sremote-endpoint job create DIR REQ [--start]  make job dir DIR (0700) with request REQ (`-`: stdin)
  sremote-endpoint job start DIR                 run the job detached (survives the connection)
  sremote-endpoint job run DIR                   run the job in the foreground (batch scripts)
  sremote-endpoint job submit DIR -- PROG ARGS…  run PROG (sbatch, qsub) in DIR with the script on
                                                 stdin, at most once per DIR (a repeat prints the
                                                 recorded answer); prints {code, stdout, stderr, again}
  sremote-endpoint job status DIR                the job's state as JSON
  sremote-endpoint job log DIR [--from N] [--max M]    log bytes from offset N
  sremote-endpoint job poll DIR [--from N] [--max M]   status JSON line, then log bytes from N
  sremote-endpoint job follow DIR [--from N]     stream the log from N until the job ends
  sremote-endpoint job cancel DIR [--grace SECS] [--mark] [--linger SECS]
                                                 SIGTERM the job, SIGKILL after the grace period
                                                 (--mark: only record the request; --linger: the
                                                 runner then waits up to SECS for the batch
                                                 system's own cancel, so it records the job as
                                                 cancelled)
  sremote-endpoint job result DIR                print the response (exit 4 while there is none)
  sremote-endpoint job rm DIR                    delete a finished job's directory (exit 7 while
                                                 it runs here: cancel it first)
  sremote-endpoint job active JOBS               print the ids of the jobs in JOBS (<sremote>/jobs)
                                                 that are queued or running (or unreadable); exit 0
                                                 if there are any, 1 if none";

const EXIT_OK: i32 = 0;
const EXIT_FAILED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_IO: i32 = 3;
const EXIT_NOT_YET: i32 = 4;
const EXIT_DIED: i32 = 5;
const EXIT_CANCELLED: i32 = 6;
/// `job rm` of a job that is still running (cancel it first).
const EXIT_BUSY: i32 = 7;

const DEFAULT_GRACE: Duration = Duration::from_secs(10);
const LOG_MAX: u64 = 4 << 20;

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
    let bytes = std::fs::read(dir.join(STATUS_FILE))?;
    decode_status(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}/{STATUS_FILE}: {e}", dir.display()),
        )
    })
}

fn decode_status(bytes: &[u8]) -> serde_json::Result<Status> {
    serde_json::from_slice(bytes)
}

/// Whether `bytes` decode as a `status.json` (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn status_decodes(bytes: &[u8]) -> bool {
    decode_status(bytes).is_ok()
}

fn write_status(dir: &Path, status: &Status) -> io::Result<()> {
    let bytes = serde_json::to_vec(status).map_err(io::Error::other)?;
    write_atomic(&dir.join(STATUS_FILE), &bytes)
}

fn read_response(dir: &Path) -> Option<Response> {
    let bytes = std::fs::read(dir.join(RESPONSE_FILE)).ok()?;
    Response::parse(&bytes).ok()
}

/// The grace period asked for by `job cancel`, if cancellation was asked for.
fn cancel_requested(dir: &Path) -> Option<Duration> {
    cancel_request(dir).map(|(grace, _)| grace)
}

/// The cancel request's grace period and linger time (see `job cancel --linger`).
fn cancel_request(dir: &Path) -> Option<(Duration, Duration)> {
    let bytes = std::fs::read(dir.join(CANCEL_FILE)).ok()?;
    let req: CancelRequest = serde_json::from_slice(&bytes).unwrap_or_default();
    Some((
        req.grace_ms.map_or(DEFAULT_GRACE, Duration::from_millis),
        req.linger_ms.map_or(Duration::ZERO, Duration::from_millis),
    ))
}

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

struct Opts {
    dir: PathBuf,
    rest: Vec<String>,
    /// Everything after `--` (`job submit`).
    command: Vec<String>,
    from: u64,
    max: u64,
    grace: Option<Duration>,
    linger: Duration,
    start: bool,
    mark_only: bool,
}

fn parse(args: &[String]) -> Result<(String, Opts), String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("`job` needs a command (create, start, submit, run, status, log, poll, follow, cancel, result, rm, active)".into());
    };
    let mut opts = Opts {
        dir: PathBuf::new(),
        rest: Vec::new(),
        command: Vec::new(),
        from: 0,
        max: LOG_MAX,
        grace: None,
        linger: Duration::ZERO,
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
            "--linger" => opts.linger = Duration::from_secs_f64(number(a, it.next())?.min(3600.0)),
            "--start" => opts.start = true,
            "--mark" => opts.mark_only = true,
            "--" if cmd == "submit" => {
                opts.command = it.by_ref().cloned().collect();
            }
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
        "submit" => submit::submit(&dir, &opts.command),
        "run" => return run_job(&dir),
        "worker" => return worker(endpoint, &dir),
        "status" => status(&dir).map(|s| println!("{}", to_line(&s))),
        "log" => log(&dir, opts.from, opts.max),
        "poll" => poll(&dir, opts.from, opts.max),
        "follow" => follow(&dir, opts.from),
        "cancel" => cancel(
            &dir,
            opts.grace.unwrap_or(DEFAULT_GRACE),
            opts.linger,
            opts.mark_only,
        ),
        "result" => match std::fs::read(dir.join(RESPONSE_FILE)) {
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
        "active" => match active(&dir) {
            Ok(ids) if ids.is_empty() => return EXIT_FAILED,
            Ok(ids) => {
                for id in ids {
                    println!("{id}");
                }
                Ok(())
            }
            Err(e) => Err(e),
        },
        "rm" => match remove(&dir) {
            Err(e) if e.kind() == io::ErrorKind::ResourceBusy => {
                eprintln!("sremote-endpoint: job rm {}: {e}", dir.display());
                return EXIT_BUSY;
            }
            other => other,
        },
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
            if std::fs::read(dir.join(REQUEST_FILE)).ok().as_deref() != Some(&bytes[..]) {
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
        .create(dir.join(WORK_DIR))?;
    if !dir.join(REQUEST_FILE).exists() {
        write_atomic(&dir.join(REQUEST_FILE), &bytes)?;
    }
    if !dir.join(STATUS_FILE).exists() {
        write_status(dir, &Status::queued(now_ms()))?;
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut out = Created {
        dir: dir.display().to_string(),
        exe,
        host: hostname(),
        pid: None,
        started_before: None,
    };
    if start_now {
        // Started before (a client retrying after a lost answer): say so, start nothing.
        match read_status(dir)?.state {
            State::Queued => out.pid = Some(detach(dir)?),
            state => out.started_before = Some(state),
        }
    }
    println!("{}", to_line(&out));
    Ok(())
}

/// `job start DIR`.
fn start(dir: &Path) -> io::Result<()> {
    let pid = detach(dir)?;
    let started = Started {
        dir: dir.display().to_string(),
        pid,
    };
    println!("{}", to_line(&started));
    Ok(())
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
                Some(_) => final_state(dir, Some(0), None, 0, false),
                None if cancel_requested(dir).is_some() => (State::Cancelled, None, Some("cancelled on request".into())),
                None => (
                    State::Died,
                    Some(DiedReason::Vanished.as_str().into()),
                    Some("the job runner disappeared without a result (killed, or the host restarted)".into()),
                ),
            };
            if let Some(w) = s.worker_pid {
                signal_session(w, libc::SIGKILL);
            }
            s.finish(state, reason.as_deref(), message, now_ms());
            write_status(dir, &s)?;
        } else {
            s = again;
        }
    }
    Ok(s)
}

/// Status JSON plus what a client needs: log size, response and cancel flags.
fn status(dir: &Path) -> io::Result<StatusReport> {
    let status = current_status(dir)?;
    Ok(StatusReport {
        status,
        log_bytes: std::fs::metadata(dir.join(LOG_FILE)).map_or(0, |m| m.len()),
        response: dir.join(RESPONSE_FILE).exists(),
        cancel_requested: dir.join(CANCEL_FILE).exists(),
        log_from: None,
        log_sent: None,
        signalled: None,
    })
}

fn read_log(dir: &Path, from: u64, max: u64) -> io::Result<Vec<u8>> {
    let mut f = match File::open(dir.join(LOG_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            dir.join(STATUS_FILE).metadata()?; // not a job dir at all: say so
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
    v.log_from = Some(from);
    v.log_sent = Some(bytes.len() as u64);
    let mut out = io::stdout().lock();
    writeln!(out, "{}", to_line(&v))?;
    out.write_all(&bytes)?;
    out.flush()
}

/// Stream the log from `from` until the job is over and every byte is sent.
fn follow(dir: &Path, mut from: u64) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let mut idle = Duration::from_millis(20);
    loop {
        let done = current_status(dir)?.state.is_terminal();
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

/// `job cancel DIR`: record the request, then stop what runs on this host. Prints the
/// status with `"signalled": true` when it signalled the job here (a batch job running on
/// another node must be signalled through the batch system).
fn cancel(dir: &Path, grace: Duration, linger: Duration, mark_only: bool) -> io::Result<()> {
    let s = current_status(dir)?;
    if !s.state.is_terminal() {
        let marker = CancelRequest {
            grace_ms: Some(grace.as_millis() as u64),
            linger_ms: Some(linger.as_millis() as u64),
            requested_unix_ms: Some(now_ms()),
        };
        write_atomic(&dir.join(CANCEL_FILE), to_line(&marker).as_bytes())?;
    }
    let printed = |signalled: bool| -> io::Result<()> {
        let mut v = status(dir)?;
        v.signalled = Some(signalled);
        println!("{}", to_line(&v));
        Ok(())
    };
    if mark_only {
        return printed(false);
    }
    let here = s.host.as_deref() == Some(hostname().as_str());
    let mut signalled = false;
    match s.state {
        // A batch job not started yet (`--linger`: the batch system's cancel follows): its
        // runner, should it start, sees the marker. A direct job that never started is
        // settled now.
        State::Queued if linger.is_zero() => {
            let mut again = read_status(dir)?;
            if again.state == State::Queued {
                again.finish(
                    State::Cancelled,
                    None,
                    Some("cancelled before it started".into()),
                    now_ms(),
                );
                write_status(dir, &again)?;
            }
        }
        State::Running if here => {
            let runner = s.pid.filter(|&p| alive(p, s.pid_start));
            match runner {
                Some(pid) => {
                    // SAFETY: kill sends SIGTERM to the job's own runner process.
                    signalled = unsafe { libc::kill(pid as i32, libc::SIGTERM) } == 0;
                }
                None => {
                    signalled = true;
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
    printed(signalled)
}

/// `job active JOBS`: the jobs in the jobs dir `JOBS` that are queued or running, or whose
/// status cannot be read (so a caller deciding whether anything may still need an
/// endpoint errs on the safe side); none when `JOBS` does not exist.
fn active(jobs: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(jobs) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry?;
        let bytes = match std::fs::read(entry.path().join(STATUS_FILE)) {
            Ok(b) => b,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(_) => Vec::new(),
        };
        let busy = decode_status(&bytes).map_or(true, |s| !s.state.is_terminal());
        if busy {
            ids.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// `job rm DIR`: only a job dir (it has `request.json`, its parent is `jobs`), not running.
fn remove(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(()); // removed before
    }
    if !dir.join(REQUEST_FILE).is_file()
        || dir.parent().and_then(Path::file_name) != Some(JOBS_DIR.as_ref())
    {
        return Err(invalid(format!(
            "{} is not a job directory (<sremote>/jobs/<id>)",
            dir.display()
        )));
    }
    let s = current_status(dir)?;
    if s.state == State::Running && s.host.as_deref() == Some(hostname().as_str()) {
        return Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "the job is still running: cancel it first",
        ));
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
        let mut s = Status::queued(now_ms());
        write_status(dir.path(), &s).unwrap();
        assert_eq!(read_status(dir.path()).unwrap().state, State::Queued);
        s.finish(State::Died, Some("signal"), Some("m".into()), now_ms());
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
        assert_eq!(names, [STATUS_FILE], "no temp file left behind");
        let mode = std::fs::metadata(dir.path().join(STATUS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn active_jobs_are_queued_running_or_unreadable() {
        let jobs = tempfile::tempdir().unwrap();
        assert!(active(&jobs.path().join("none")).unwrap().is_empty());
        let put = |id: &str, status: Option<&str>| {
            let d = jobs.path().join(id);
            std::fs::create_dir(&d).unwrap();
            if let Some(s) = status {
                std::fs::write(d.join(STATUS_FILE), s).unwrap();
            }
        };
        put("a", Some(r#"{"state":"succeeded","queued_unix_ms":1}"#));
        put("b", None);
        assert!(active(jobs.path()).unwrap().is_empty());
        put("c", Some(r#"{"state":"running","queued_unix_ms":1}"#));
        put("d", Some(r#"{"state":"queued"}"#));
        std::fs::write(jobs.path().join("stray-file"), b"x").unwrap();
        assert_eq!(active(jobs.path()).unwrap(), ["c", "d"]);
    }

    #[test]
    fn liveness_sees_this_process_and_not_a_dead_one() {
        let me = std::process::id();
        assert!(alive(me, start_time(me)));
        assert!(
            !alive(me, start_time(me).map(|s| s + 1)),
            "a reused pid is not the runner"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid, None));
    }
}
