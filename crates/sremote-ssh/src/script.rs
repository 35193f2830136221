//! The command lines sent to the host: tiny POSIX `sh` scripts with every value quoted,
//! in a form that every login shell passes on untouched.
//!
//! sshd hands the command line to the user's *login shell*, which may be sh, bash, dash,
//! ksh, zsh, tcsh/csh or fish, and which may run login scripts that print to stdout and
//! stderr (banners, quota notices) before it runs the command. So:
//!
//! - The line is always `exec /bin/sh -c 'eval "$(printf "<script>")"'`: one line whose
//!   only specials sit inside single quotes, where every one of those shells keeps them.
//!   `<script>` is the real sh script (`set -- '<word>'…` and then the fixed script, every
//!   word single-quoted), with every byte outside `[A-Za-z0-9]` and a few harmless
//!   punctuation characters written as a `printf` octal escape (`\ooo`): no `'`, `\\`, `!`,
//!   `$`, `%` or newline reaches the login shell.
//! - The scripts are core's ([`sremote_core::connector::script`]): they first print a
//!   *begin* marker on stdout and on stderr, so everything a login script printed before
//!   it is discarded, then the *pid* marker on stderr: the remote process id is also the
//!   process group id here, because sshd starts every session in a new session. A command
//!   whose stderr has no begin marker never reached `/bin/sh`.

use sremote_core::connector::script;

/// Bytes that pass through the login shell (inside single quotes) and `sh` (inside double
/// quotes, as a `printf` format) unchanged; every other byte is written as `\ooo`.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" ,.:/_+=@-;|&()<>[]{}*?#~^".contains(&b)
}

/// The longest command line sent: sshd passes it to the login shell as one argument, and
/// Linux refuses a single argument longer than 128 KiB (`MAX_ARG_STRLEN`).
pub(crate) const MAX_LINE: usize = 128 * 1024 - 1;

/// The line for `script` with positional parameters `args` (see the module docs).
pub(crate) fn line<S: AsRef<str>>(script: &str, args: impl IntoIterator<Item = S>) -> String {
    let mut inner = String::from("set --");
    for a in args {
        inner.push(' ');
        inner.push_str(&sremote_core::shell::quote(a.as_ref()));
    }
    inner.push('\n');
    inner.push_str(script);
    let mut out = String::with_capacity(inner.len() * 2 + 40);
    out.push_str("exec /bin/sh -c 'eval \"$(printf \"");
    for &b in inner.as_bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out.push_str("\")\"'");
    out
}

/// Kill a remote process group (and the process itself if it is no group leader).
pub(crate) fn kill_line(pid: u32) -> String {
    line(script::KILL, [pid.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every login shell that is installed here runs the line with the same meaning.
    #[test]
    fn the_line_means_the_same_under_every_login_shell() {
        let mut words = sremote_core::testsuite::hostile_strings();
        words.push("x".repeat(10_000));
        let script = r#"printf '%s\0' "$@""#;
        let line = line(script, &words);
        assert!(!line.contains('\n') && !line.contains('!') && !line.contains('%'));
        let mut ran = 0;
        for shell in ["sh", "bash", "dash", "ksh", "zsh", "tcsh", "csh", "fish"] {
            let Ok(out) = std::process::Command::new(shell)
                .arg("-c")
                .arg(&line)
                .output()
            else {
                eprintln!("{shell} is not installed here");
                continue;
            };
            ran += 1;
            let got: Vec<String> = out
                .stdout
                .split(|b| *b == 0)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            assert_eq!(&got[..got.len() - 1], &words[..], "under {shell}: {out:?}");
        }
        assert!(ran >= 2, "no shell ran the line");
    }
}
