//! `POST /command/<machine>`: split the command line like a POSIX shell, run the argv
//! without a shell, in the gateway user's home, with a timeout and output limits.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use base64::Engine;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// The form of `POST /command/<machine>`.
#[derive(Debug, Deserialize)]
pub struct CommandForm {
    /// The command line, split like a POSIX shell splits words (quotes, backslashes).
    executable: String,
    /// NEWT's "run in a login environment"; accepted and ignored (no shell is ever run).
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "parsed so that NEWT clients sending it are accepted"
    )]
    loginenv: Option<String>,
    /// Extension: seconds after which the command and its process group are killed.
    #[serde(default)]
    timeout: Option<String>,
}

/// How a finished command ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit code; `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Why a command gave no [`Finished`].
#[derive(Debug)]
pub enum RunError {
    /// It ran longer than this; its process group was killed.
    Timeout(Duration),
    /// This stream (`stdout`/`stderr`) passed this many bytes; it was killed.
    OutputLimit(&'static str, usize),
    /// Starting or waiting for it failed.
    Io(std::io::Error),
}

/// Kills the process group when dropped (timeout, output limit, client gone).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pid) = self.0 {
            // SAFETY: plain syscall on the process group created for this command.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn read_capped(
    pipe: Option<impl AsyncRead + Unpin>,
    max: usize,
    name: &'static str,
) -> Result<Vec<u8>, RunError> {
    let Some(pipe) = pipe else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let n = pipe
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .await
        .map_err(RunError::Io)?;
    if n > max {
        return Err(RunError::OutputLimit(name, max));
    }
    Ok(out)
}

/// Run `argv` (no shell) in `cwd`. A program that cannot be started gives exit code 127
/// (not found) or 126 (not executable) with the reason on stderr, like a shell.
pub async fn run(
    argv: &[String],
    cwd: &Path,
    timeout: Duration,
    max_output: usize,
) -> Result<Finished, RunError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(RunError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        )));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                std::io::ErrorKind::PermissionDenied => 126,
                _ if e.raw_os_error() == Some(libc::ENOEXEC) => 126,
                _ => return Err(RunError::Io(e)),
            };
            let stderr = format!("sremote-gateway: {program}: {e}\n").into_bytes();
            return Ok(Finished {
                exit_code: Some(code),
                signal: None,
                stdout: Vec::new(),
                stderr,
            });
        }
    };
    let guard = GroupGuard(child.id().and_then(|p| i32::try_from(p).ok()));
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let wait = async {
        let status = child.wait().await.map_err(RunError::Io)?;
        // Background children of the command die with it, so the pipes close.
        guard.kill();
        Ok::<_, RunError>(status)
    };
    let work = async {
        tokio::try_join!(
            wait,
            read_capped(out, max_output, "stdout"),
            read_capped(err, max_output, "stderr")
        )
    };
    let (status, stdout, stderr) = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r?,
        Err(_) => return Err(RunError::Timeout(timeout)),
    };
    drop(guard);
    Ok(Finished {
        exit_code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
    })
}

fn text_field(body: &mut serde_json::Value, name: &str, bytes: Vec<u8>) {
    match String::from_utf8(bytes) {
        Ok(s) => body[name] = s.into(),
        Err(e) => {
            let bytes = e.into_bytes();
            body[name] = String::from_utf8_lossy(&bytes).into_owned().into();
            body[format!("{name}_b64")] = base64::engine::general_purpose::STANDARD
                .encode(&bytes)
                .into();
        }
    }
}

/// The handler. Answers `{"output", "error", "status": "OK"|"ERROR", "exit_code", "signal"}`
/// (`output_b64`/`error_b64` too when the output is not UTF-8); a timeout answers 504.
pub async fn handler(
    State(state): State<Arc<AppState>>,
    _user: AuthUser,
    UrlPath(machine): UrlPath<String>,
    form: Result<Form<CommandForm>, FormRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.knows_machine(&machine) {
        return Err(ApiError::not_found(format!("unknown machine {machine:?}")));
    }
    let Form(form) = form.map_err(|e| crate::error::form_error("command", &e))?;
    let limits = &state.config.limits;
    let timeout = match form
        .timeout
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => limits.command_timeout_secs,
        Some(t) => match t.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 => s.min(limits.max_command_timeout_secs),
            _ => {
                return Err(ApiError::unprocessable(
                    "bad_timeout",
                    format!("timeout {t:?} is not a positive number"),
                ));
            }
        },
    };
    let argv = shell_words::split(&form.executable).map_err(|e| {
        ApiError::unprocessable("bad_command", format!("cannot split the command line: {e}"))
    })?;
    if argv.is_empty() {
        return Err(ApiError::unprocessable(
            "bad_command",
            "the command line is empty",
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::unprocessable(
            "bad_command",
            "an argument contains a NUL byte",
        ));
    }
    let _slot = state
        .cmd_slots
        .acquire()
        .await
        .map_err(|_| ApiError::internal("shutting down"))?;
    let timeout = Duration::from_secs_f64(timeout);
    match run(&argv, &state.config.home, timeout, limits.max_output_bytes).await {
        Ok(f) => {
            let mut body = serde_json::json!({
                "status": if f.exit_code == Some(0) { "OK" } else { "ERROR" },
                "exit_code": f.exit_code,
                "signal": f.signal,
            });
            text_field(&mut body, "output", f.stdout);
            text_field(&mut body, "error", f.stderr);
            Ok(Json(body))
        }
        Err(RunError::Timeout(t)) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the command ran longer than {t:?}; it and its process group were killed"),
        )),
        Err(RunError::OutputLimit(which, max)) => Err(ApiError::unprocessable(
            "output_limit",
            format!(
                "the command's {which} exceeded this gateway's limit of {max} bytes; it was killed"
            ),
        )),
        Err(RunError::Io(e)) => Err(ApiError::internal(format!("cannot run {}: {e}", argv[0]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn runs_without_shell_with_limits() {
        let tmp = std::env::temp_dir();
        let t = Duration::from_secs(10);
        let f = run(&argv(&["echo", "$(id)", "a b"]), &tmp, t, 1000)
            .await
            .expect("run");
        assert_eq!(
            (f.exit_code, f.stdout.as_slice()),
            (Some(0), &b"$(id) a b\n"[..])
        );
        let f = run(&argv(&["no-such-program-xyz"]), &tmp, t, 1000)
            .await
            .expect("run");
        assert_eq!(f.exit_code, Some(127));
        let f = run(&argv(&["sh", "-c", "kill -9 $$"]), &tmp, t, 1000)
            .await
            .expect("run");
        assert_eq!((f.exit_code, f.signal), (None, Some(9)));
        let e = run(&argv(&["head", "-c", "5000", "/dev/zero"]), &tmp, t, 1000)
            .await
            .expect_err("limit");
        assert!(matches!(e, RunError::OutputLimit("stdout", 1000)));
        let start = std::time::Instant::now();
        let e = run(
            &argv(&["sleep", "30"]),
            &tmp,
            Duration::from_millis(200),
            1000,
        )
        .await
        .expect_err("timeout");
        assert!(matches!(e, RunError::Timeout(_)) && start.elapsed() < Duration::from_secs(5));
        // A background child holding stdout open does not keep the call waiting.
        let start = std::time::Instant::now();
        let f = run(&argv(&["sh", "-c", "sleep 30 & echo hi"]), &tmp, t, 1000)
            .await
            .expect("run");
        assert_eq!(f.stdout, b"hi\n");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn splitting_matches_posix_quoting() {
        let cases: &[(&str, &[&str])] = &[
            ("a 'b c' \"d e\" f\\ g", &["a", "b c", "d e", "f g"]),
            ("'it'\\''s' ''", &["it's", ""]),
            (
                "'line\nbreak' '$(x) `y` ; | &'",
                &["line\nbreak", "$(x) `y` ; | &"],
            ),
            ("'\\' \"\\\"\"", &["\\", "\""]),
        ];
        for (line, want) in cases {
            assert_eq!(
                shell_words::split(line).expect("split"),
                argv(want),
                "{line:?}"
            );
        }
        assert!(shell_words::split("'unterminated").is_err());
    }
}
