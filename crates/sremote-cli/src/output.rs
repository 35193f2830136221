//! Terminal output: colour only on a TTY, one-line errors with a hint, tables, sizes.

use std::io::IsTerminal;
use std::sync::OnceLock;

use sremote_core::Error;

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

/// Split a message into the error and its hint (after the last ` — `).
pub fn split_hint(msg: &str) -> (&str, Option<&str>) {
    match msg.rsplit_once(" — ") {
        Some((e, h)) if !h.is_empty() => (e, Some(h)),
        _ => (msg, None),
    }
}

/// The one-line error plus its hint, as printed (without the `error:` word).
pub fn error_lines(e: &Error) -> (String, Option<String>) {
    let text = e.to_string().replace('\n', " ");
    let (msg, hint) = split_hint(&text);
    (msg.to_string(), hint.map(str::to_string))
}

/// Print `e` on stderr: `error: …` on one line, `hint: …` on the next, then a remote
/// traceback and the output the call produced, if any.
pub fn print_error(e: &Error) {
    let c = colour_stderr();
    let (msg, hint) = error_lines(e);
    eprintln!("{} {msg}", paint("error:", Style::Error, c));
    if let Some(h) = hint {
        eprintln!("  {} {h}", paint("hint:", Style::Hint, c));
    }
    if let Error::RemoteExec(r) = e {
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

/// The CLI's exit code for an error (the table in `--help` and the README): 3 when the
/// host cannot be reached or talked to, 2 usage, 1 anything else — including transport
/// errors about what was asked on a host that answered (a missing file, no permission, a
/// value that cannot be passed, an operation the connector lacks).
pub fn exit_code(e: &Error) -> u8 {
    use sremote_core::ConnectorErrorKind as K;
    match e {
        Error::Transport(t) => match t.kind {
            K::NotFound | K::PermissionDenied | K::InvalidInput | K::Unsupported => 1,
            _ => 3,
        },
        Error::Usage(_) => 2,
        _ => 1,
    }
}

/// A short class of the error for summaries and JSON (`Connect`, `ModuleNotFound`, …).
pub fn error_kind(e: &Error) -> String {
    match e {
        Error::Transport(t) => t.kind.to_string(),
        Error::NotSetup(_) => "NotSetup".into(),
        Error::RemoteExec(r) => format!("{:?}", r.kind),
        Error::ModulesMissing(_) => "ModulesMissing".into(),
        Error::Protocol(_) => "Protocol".into(),
        Error::Decode(_) => "Decode".into(),
        Error::Usage(_) => "Usage".into(),
        Error::Setup(_) => "Setup".into(),
        _ => "Error".into(),
    }
}

/// `{kind, message, hint, exit_code}` for JSON output; a remote error adds the function,
/// the remote message, `traceback`, and the `stdout`/`stderr` the call produced; modules
/// missing add `missing` and `present`; a garbled answer adds `received` (and `module`).
pub fn error_json(e: &Error) -> serde_json::Value {
    let (msg, hint) = error_lines(e);
    let mut v = serde_json::json!({"kind": error_kind(e), "message": msg, "hint": hint, "exit_code": exit_code(e)});
    match e {
        Error::RemoteExec(r) => {
            v["module"] = r.module.clone().into();
            v["function"] = r.function.clone().into();
            v["remote_message"] = r.message.clone().into();
            v["traceback"] = r.traceback.clone().into();
            v["stdout"] = r.stdout.clone().into();
            v["stderr"] = r.stderr.clone().into();
        }
        Error::ModulesMissing(m) => {
            v["missing"] = serde_json::json!(m.missing);
            v["present"] = serde_json::json!(m.present);
        }
        Error::Protocol(p) => {
            v["received"] = p.received.clone().into();
            v["module"] = p.module.clone().into();
        }
        _ => {}
    }
    v
}

/// A failed host (or command, `host` `None`) under `--json`:
/// `{"host": …, "ok": false, "error": {kind, message, hint, exit_code}}`.
pub fn error_object(host: Option<&str>, e: &Error) -> serde_json::Value {
    let mut v = serde_json::json!({"ok": false, "error": error_json(e)});
    if let Some(h) = host {
        v["host"] = serde_json::json!(h);
    }
    v
}

/// Report a failure: with `--json` the [`error_object`] on stdout (one line, as a fan-out
/// prints it), else the text of [`print_error`] on stderr.
pub fn report(e: &Error, json: bool, host: Option<&str>) {
    if json {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", error_object(host, e));
        let _ = out.flush();
    } else {
        print_error(e);
    }
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
    fn sizes_and_hints() {
        assert_eq!(bytes(17), "17 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 << 30), "300 GiB");
        assert_eq!(split_hint("a — b — c"), ("a — b", Some("c")));
        assert_eq!(split_hint("plain"), ("plain", None));
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
    }
}
