//! `job submit DIR -- PROGRAM ARGS…`: hand a job to the batch system at most once.
//!
//! The batch script comes on stdin; PROGRAM (`sbatch`, `qsub`) runs in DIR without a
//! shell. A submission that succeeded is recorded in `DIR/submitted.json` (atomically)
//! before it is printed, and a later `job submit` of the same DIR prints that record
//! instead of submitting again: a client whose connection broke before it read the
//! answer (or a process taking over a half-done submission) gets the batch job that
//! exists, never a second one. A lock on `DIR/submit.lock` (flock, released if this
//! process dies) keeps two submissions of one DIR from running at once.
//!
//! Prints `{"code", "stdout", "stderr", "again"}`: the program's exit code (127: it could
//! not be started), its output, and whether this is the recorded earlier submission.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sremote_core::protocol::job::{REQUEST_FILE, SUBMIT_LOCK_FILE, SUBMITTED_FILE, SubmitAnswer};

use super::{invalid, write_atomic};

const SUBMIT_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) fn submit(dir: &Path, argv: &[String]) -> io::Result<()> {
    let Some((program, args)) = argv.split_first() else {
        return Err(invalid(
            "`job submit DIR -- PROGRAM ARGS…` needs the program".into(),
        ));
    };
    if !dir.join(REQUEST_FILE).is_file() {
        return Err(invalid(format!(
            "{} is not a job directory (no request.json)",
            dir.display()
        )));
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(SUBMIT_LOCK_FILE))?;
    // SAFETY: flock on a descriptor we own; released when it is closed (or we die).
    while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let record = dir.join(SUBMITTED_FILE);
    if let Ok(bytes) = std::fs::read(&record)
        && let Ok(mut answer) = serde_json::from_slice::<SubmitAnswer>(&bytes)
    {
        answer.again = Some(true);
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(());
    }
    let mut script = Vec::new();
    io::stdin().read_to_end(&mut script)?;
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir);
    let (code, stdout, stderr) = match crate::process::run(cmd, Some(script), Some(SUBMIT_TIMEOUT))
    {
        Ok(f) if f.timed_out => (
            124,
            String::from_utf8_lossy(&f.stdout).into_owned(),
            format!(
                "`{program}` did not answer within {} s and was stopped",
                SUBMIT_TIMEOUT.as_secs()
            ),
        ),
        Ok(f) => (
            f.returncode(),
            String::from_utf8_lossy(&f.stdout).into_owned(),
            String::from_utf8_lossy(&f.stderr).into_owned(),
        ),
        Err(e) => (127, String::new(), format!("cannot run `{program}`: {e}")),
    };
    let mut answer = SubmitAnswer {
        again: None,
        code,
        stderr,
        stdout,
    };
    if code == 0 {
        write_atomic(&record, serde_json::to_string(&answer)?.as_bytes())?;
    }
    answer.again = Some(false);
    println!("{}", serde_json::to_string(&answer)?);
    Ok(())
}
