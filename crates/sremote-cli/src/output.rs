//! Terminal output: colour only on a TTY, one-line errors with a hint, tables, sizes.

use std::io::IsTerminal;
use std::sync::OnceLock;

use std::process::ExitCode;

use sremote_core::Error;
use sremote_jobs::JobError;

/// Whether stderr is a terminal (progress bars, colour on stderr).
pub fn stderr_tty() -> bool {
    static TTY: OnceLock<bool> = OnceLock::new();
    *TTY.get_or_init(|| std::io::stderr().is_terminal())
}

/// Whether stdout is a terminal (colour on stdout).
pub fn stdout_tty() -> bool {
    static TTY: OnceLock<bool> = OnceLock::new();
    *TTY.get_or_init(|| std::io::stdout().is_terminal())
}

fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Colour for text written to stderr.
pub fn colour_stderr() -> bool {
    stderr_tty() && colour_allowed()
}

/// Colour for text written to stdout.
pub fn colour_stdout() -> bool {
    stdout_tty() && colour_allowed()
}

/// ANSI styles used by the CLI.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    Error,
    Warn,
    Hint,
    Host,
    Ok,
    Dim,
}

/// `text` in `style` when `on`, else unchanged.
pub fn paint(text: &str, style: Style, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match style {
        Style::Error => "1;31",
        Style::Warn => "1;33",
        Style::Hint => "36",
        Style::Host => "1;34",
        Style::Ok => "32",
        Style::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// An error as the CLI reports it, its parts as data: the core's [`Error`] and the jobs'
/// [`JobError`]. Every command reports through [`report`] (or, in a fan-out, the same
/// parts per host), so the text, the JSON object and the exit code agree everywhere.
pub trait Failure {
    /// What went wrong (without the hint).
    fn message(&self) -> String;
    /// What to do next.
    fn hint(&self) -> Option<String>;
    /// A short class for summaries and JSON (`Connect`, `ModuleNotFound`, `Died`, …).
    fn kind(&self) -> &'static str;
    /// The CLI's exit code (the table in `--help` and the README).
    fn exit_code(&self) -> u8;
    /// The call's own error inside, for its traceback, output and JSON details.
    fn call(&self) -> Option<&Error>;
    /// Why a job died, for JSON (`walltime`, `memory`, …).
    fn failure_class(&self) -> Option<&'static str> {
        None
    }
}

/// 3 when the host cannot be reached or talked to, 2 usage, 1 anything else — including
/// transport errors about what was asked on a host that answered (a missing file, no
/// permission, a value that cannot be passed, an operation the connector lacks).
impl Failure for Error {
    fn message(&self) -> String {
        Error::message(self)
    }
    fn hint(&self) -> Option<String> {
        Error::hint(self)
    }
    fn kind(&self) -> &'static str {
        Error::kind(self)
    }
    fn exit_code(&self) -> u8 {
        use sremote_core::ConnectorErrorKind as K;
        match self {
            Error::Transport(t) => match t.kind {
                K::NotFound | K::PermissionDenied | K::InvalidInput | K::Unsupported => 1,
                _ => 3,
            },
            e if e.is_usage() => 2,
            _ => 1,
        }
    }
    fn call(&self) -> Option<&Error> {
        Some(self)
    }
}

/// A job error: the call's own errors keep their kind and exit code; a bad request is 2,
/// a wait that ran out [`NOT_FINISHED_EXIT`](crate::jobs::NOT_FINISHED_EXIT), the rest 1.
impl Failure for JobError {
    fn message(&self) -> String {
        JobError::message(self)
    }
    fn hint(&self) -> Option<String> {
        JobError::hint(self)
    }
    fn kind(&self) -> &'static str {
        JobError::kind(self)
    }
    fn exit_code(&self) -> u8 {
        match self {
            JobError::Call(c) => c.exit_code(),
            JobError::Usage(_) => 2,
            // Waited as long as asked: not a failure of the job.
            JobError::NotFinished { .. } => crate::jobs::NOT_FINISHED_EXIT,
            _ => 1,
        }
    }
    fn call(&self) -> Option<&Error> {
        match self {
            JobError::Call(c) => Some(c),
            _ => None,
        }
    }
    fn failure_class(&self) -> Option<&'static str> {
        JobError::failure_class(self).map(|c| c.as_str())
    }
}

/// The one-line error plus its hint, as printed (without the `error:` word).
pub fn error_lines(e: &(impl Failure + ?Sized)) -> (String, Option<String>) {
    (e.message().replace('\n', " "), e.hint())
}

/// Print `e` on stderr: `error: …` on one line, `hint: …` on the next, then a remote
/// traceback and the output the call produced, if any.
pub fn print_error(e: &(impl Failure + ?Sized)) {
    let c = colour_stderr();
    let (msg, hint) = error_lines(e);
    eprintln!("{} {msg}", paint("error:", Style::Error, c));
    if let Some(h) = hint {
        eprintln!("  {} {h}", paint("hint:", Style::Hint, c));
    }
    if let Some(Error::RemoteExec(r)) = e.call() {
        if let Some(tb) = &r.traceback {
            eprintln!("remote traceback:\n{tb}");
        }
        if !r.stdout.is_empty() {
            eprintln!("remote stdout:\n{}", r.stdout);
        }
        if !r.stderr.is_empty() {
            eprintln!("remote stderr:\n{}", r.stderr);
        }
    }
}

/// Print a warning on stderr.
pub fn warn(msg: &str) {
    eprintln!("{} {msg}", paint("warning:", Style::Warn, colour_stderr()));
}

/// The CLI's exit code for an error ([`Failure::exit_code`]).
pub fn exit_code(e: &(impl Failure + ?Sized)) -> u8 {
    e.exit_code()
}

/// A short class of the error for summaries and JSON (`Connect`, `ModuleNotFound`, …).
pub fn error_kind(e: &(impl Failure + ?Sized)) -> String {
    e.kind().to_string()
}

/// `{kind, message, hint, exit_code}` for JSON output; a remote error adds the function,
/// the remote message, `traceback`, and the `stdout`/`stderr` the call produced; modules
/// missing add `missing` and `present`; a garbled answer adds `received` (and `module`);
/// a job that died adds `failure_class`.
pub fn error_json(e: &(impl Failure + ?Sized)) -> serde_json::Value {
    let (msg, hint) = error_lines(e);
    let mut v = serde_json::json!({"kind": e.kind(), "message": msg, "hint": hint, "exit_code": e.exit_code()});
    match e.call() {
        Some(Error::RemoteExec(r)) => {
            v["module"] = r.module.clone().into();
            v["function"] = r.function.clone().into();
            v["remote_message"] = r.message.clone().into();
            v["traceback"] = r.traceback.clone().into();
            v["stdout"] = r.stdout.clone().into();
            v["stderr"] = r.stderr.clone().into();
        }
        Some(Error::ModulesMissing(m)) => {
            v["missing"] = serde_json::json!(m.missing);
            v["present"] = serde_json::json!(m.present);
        }
        Some(Error::Protocol(p)) => {
            v["received"] = p.received.clone().into();
            v["module"] = p.module.clone().into();
        }
        _ => {}
    }
    if let Some(class) = e.failure_class() {
        v["failure_class"] = class.into();
    }
    v
}

/// A failed host (or command, `host` `None`) under `--json`:
/// `{"host": …, "ok": false, "error": {kind, message, hint, exit_code}}`.
pub fn error_object(host: Option<&str>, e: &(impl Failure + ?Sized)) -> serde_json::Value {
    match host {
        Some(h) => failure_object(serde_json::json!({ "host": h }), e),
        None => failure_object(serde_json::json!({}), e),
    }
}

/// `context` (an object: the job id, the host, …) plus `"ok": false` and the `error`.
fn failure_object(context: serde_json::Value, e: &(impl Failure + ?Sized)) -> serde_json::Value {
    let mut v = match context {
        serde_json::Value::Object(m) => serde_json::Value::Object(m),
        _ => serde_json::json!({}),
    };
    v["ok"] = false.into();
    v["error"] = error_json(e);
    v
}

/// Report a failure, the one way every command does: with `--json` `context` (an object:
/// the host, the job id, …) plus `"ok": false` and the [`error_json`] object, one line on
/// stdout (as a fan-out prints it); else the text of [`print_error`] on stderr. Returns
/// the exit code, the same either way.
pub fn report(e: &(impl Failure + ?Sized), json: bool, context: serde_json::Value) -> ExitCode {
    if json {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", failure_object(context, e));
        let _ = out.flush();
    } else {
        print_error(e);
    }
    ExitCode::from(e.exit_code())
}

/// `1.5 GiB`, `312 KiB`, `17 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A duration for people: `820 µs`, `12.3 ms`, `1.52 s`.
pub fn duration(d: std::time::Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// Characters that show on a terminal (ANSI colour sequences left out).
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Left-aligned columns separated by two spaces; the header dimmed on a TTY.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(n) {
            width[i] = width[i].max(visible_len(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(width[i] - visible_len(cell) + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = paint(&line(header.to_vec()), Style::Dim, colour_stdout());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// `println!` that ignores a closed stdout (`sremote jobs ls | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = std::io::Write::write_fmt(
            &mut std::io::stdout(),
            format_args!("{}\n", format_args!($($t)*)),
        );
    }};
}
pub(crate) use say;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_tables() {
        assert_eq!(bytes(17), "17 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 << 30), "300 GiB");
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
        assert_eq!(visible_len(&paint("ok", Style::Ok, true)), 2);
    }

    #[test]
    fn exit_codes_follow_the_table() {
        use sremote_core::{ConnectorError, ConnectorErrorKind as K};
        let t = |kind| exit_code(&Error::Transport(ConnectorError::new(kind, "h", "pull x")));
        for kind in [
            K::Connect,
            K::Auth,
            K::HostKey,
            K::Disconnected,
            K::Timeout,
            K::Other,
        ] {
            assert_eq!(
                t(kind),
                3,
                "{kind}: the host cannot be reached or talked to"
            );
        }
        for kind in [
            K::NotFound,
            K::PermissionDenied,
            K::InvalidInput,
            K::Unsupported,
        ] {
            assert_eq!(
                t(kind),
                1,
                "{kind}: the host answered, the operation failed"
            );
        }
        assert_eq!(exit_code(&Error::Usage("x".into())), 2);
        assert_eq!(exit_code(&Error::usage("x", "y")), 2);
        // A job error is 1 whether it comes from `submit` or `run --detach`.
        let store = JobError::Store {
            path: "/s".into(),
            action: "open".into(),
            detail: "no".into(),
            hint: "fix it".into(),
        };
        assert_eq!(exit_code(&store), 1);
        assert_eq!(exit_code(&JobError::Usage("x".into())), 2);
        assert_eq!(exit_code(&JobError::usage("x", "y")), 2);
    }
}
