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
//! - The script first prints a *begin* marker `sremote-<nonce>:` on stdout and on stderr;
//!   everything a login script printed before it is discarded (shown at debug level).
//!   Then, before it runs anything of the user's, it prints the *pid* marker
//!   `sremote-<nonce> <pid> <fields>` on stderr: the connector learns the remote process id
//!   (also the process group id, because sshd starts every session in a new session) and
//!   facts such as "the working directory is missing", over a channel the program cannot
//!   spoof. A command whose stderr has no begin marker never reached `/bin/sh`.

use sremote_core::RemoteCommand;

/// Exit codes of the push/pull scripts (only meaningful before the marker is printed).
pub(crate) const EXIT_NOT_FOUND: i32 = 80;
pub(crate) const EXIT_DENIED: i32 = 81;
pub(crate) const EXIT_BAD_TARGET: i32 = 82;
pub(crate) const EXIT_SHORT: i32 = 85;

/// Quote one word for a POSIX shell (see [`sremote_core::shell::quote`]).
pub(crate) fn quote(word: &str) -> String {
    sremote_core::shell::quote(word).into_owned()
}

/// Bytes that pass through the login shell (inside single quotes) and `sh` (inside double
/// quotes, as a `printf` format) unchanged; every other byte is written as `\ooo`.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" ,.:/_+=@-;|&()<>[]{}*?#~^".contains(&b)
}

/// The longest command line sent: sshd passes it to the login shell as one argument, and
/// Linux refuses a single argument longer than 128 KiB (`MAX_ARG_STRLEN`).
pub(crate) const MAX_LINE: usize = 128 * 1024 - 1;

/// The line for `script` with positional parameters `args` (see the module docs).
fn line<'a>(script: &str, args: impl IntoIterator<Item = &'a str>) -> String {
    let mut inner = String::from("set --");
    for a in args {
        inner.push(' ');
        inner.push_str(&quote(a));
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

/// The first lines of every script: `$1` is the nonce. The begin markers go out before
/// anything else the script may print.
macro_rules! begin {
    () => {
        r#"n=$1; unset CDPATH
printf '\nsremote-%s:\n' "$n"; printf '\nsremote-%s:\n' "$n" >&2
"#
    };
}

/// `$1` nonce, `$2` cwd (empty: home), `$3` program, then `N` and `N` exported `K=V`
/// (names are identifiers: [`RemoteCommand::validate`] refuses others), then the arguments.
const EXEC: &str = concat!(
    begin!(),
    r#"c=$2 p=$3; shift 3
cd 2>/dev/null; h=$PWD
if [ -n "$c" ]; then
  case $c in /*) ;; *) c=./$c;; esac
  cd -- "$c" 2>/dev/null || { printf '\nsremote-%s %s nocwd\n' "$n" "$$" >&2; exit 1; }
fi
printf '\nsremote-%s %s ok\n' "$n" "$$" >&2
case $p in /*) ;; */*) p=$h/$p;; esac
i=$1; shift; while [ "$i" -gt 0 ]; do export "$1"; shift; i=$((i-1)); done
exec "$p" "$@""#
);

/// `$1` nonce, `$2` destination, `$3` octal mode, `$4` expected size.
const PUSH: &str = concat!(
    begin!(),
    r#"export LC_ALL=C; d=$2 m=$3 s=$4
cd 2>/dev/null
case $d in /*) ;; *) d=./$d;; esac
r=${d%/*} b=${d##*/}; [ -n "$r" ] || r=/
[ -n "$b" ] || { echo "the destination names a directory" >&2; exit 82; }
e=$(mkdir -p -- "$r" 2>&1) || { case $e in *ermission*|*Read-only*) echo "$e" >&2; exit 81;; esac; echo "$e" >&2; exit 82; }
[ -w "$r" ] || { echo "cannot write into the directory $r" >&2; exit 81; }
[ -d "$d" ] && { echo "the destination is a directory" >&2; exit 82; }
t=$r/.$b.sremote-$$
trap 'rm -f -- "$t"' EXIT; trap 'exit 83' HUP INT TERM PIPE
printf '\nsremote-%s %s ok\n' "$n" "$$" >&2
(umask 077; exec cat > "$t") || exit 84
g=$(wc -c < "$t"); [ "$g" -eq "$s" ] || { echo "received $g of $s bytes" >&2; exit 85; }
chmod "$m" "$t" && mv -f -- "$t" "$d" || exit 84"#
);

/// `$1` nonce, `$2` source. The marker carries the mode and modification time of the file
/// (of the file a symlink points to: `stat -L`, as `cat` reads that one).
const PULL: &str = concat!(
    begin!(),
    r#"export LC_ALL=C; p=$2
cd 2>/dev/null
case $p in /*) ;; *) p=./$p;; esac
[ -e "$p" ] || exit 80
[ -d "$p" ] && { echo "it is a directory" >&2; exit 82; }
[ -r "$p" ] || exit 81
m=$(stat -L -c %a -- "$p" 2>/dev/null || stat -L -f %Lp -- "$p" 2>/dev/null)
t=$(stat -L -c %Y -- "$p" 2>/dev/null || stat -L -f %m -- "$p" 2>/dev/null)
printf '\nsremote-%s %s %s %s\n' "$n" "$$" "$m" "$t" >&2
exec cat -- "$p""#
);

/// The line that runs `cmd` (stdin, timeout are handled by the caller). `cmd` must have
/// passed [`RemoteCommand::validate`] (env names are identifiers).
pub(crate) fn exec_line(cmd: &RemoteCommand, nonce: &str) -> String {
    let env: Vec<String> = cmd.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let count = env.len().to_string();
    let head = [
        nonce,
        cmd.cwd.as_deref().unwrap_or(""),
        cmd.program.as_str(),
        count.as_str(),
    ];
    let words = head
        .into_iter()
        .chain(env.iter().map(String::as_str))
        .chain(cmd.args.iter().map(String::as_str));
    line(EXEC, words)
}

pub(crate) fn push_line(nonce: &str, dest: &str, mode: u32, size: u64) -> String {
    line(
        PUSH,
        [
            nonce,
            dest,
            &format!("{:o}", mode & 0o777),
            &size.to_string(),
        ],
    )
}

pub(crate) fn pull_line(nonce: &str, src: &str) -> String {
    line(PULL, [nonce, src])
}

/// Kill a remote process group (and the process itself if it is no group leader).
pub(crate) fn kill_line(pid: u32) -> String {
    const KILL: &str = r#"kill -KILL -"$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null; exit 0"#;
    line(KILL, [pid.to_string().as_str()])
}

/// A fresh marker nonce (not secret; it only has to be unlikely to appear in other output).
pub(crate) fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = t
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:016x}", x ^ (x >> 31))
}

/// The marker line found in stderr: pid, the remaining fields, and where the program's own
/// stderr starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub pid: u32,
    pub fields: String,
    pub body_start: usize,
}

/// Find `sremote-<nonce> <pid> <fields>\n` in `buf`.
pub(crate) fn find_marker(buf: &[u8], nonce: &str) -> Option<Marker> {
    let tag = format!("sremote-{nonce} ");
    let at = buf.windows(tag.len()).position(|w| w == tag.as_bytes())?;
    let rest = &buf[at + tag.len()..];
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let text = std::str::from_utf8(&rest[..nl]).ok()?;
    let (pid, fields) = text.split_once(' ').unwrap_or((text, ""));
    Some(Marker {
        pid: pid.parse().ok()?,
        fields: fields.to_string(),
        body_start: at + tag.len() + nl + 1,
    })
}

/// Where the output after the begin marker `sremote-<nonce>:\n` starts in `buf`, or `None`
/// while the marker has not arrived. What comes before it was printed by login scripts.
pub(crate) fn find_begin(buf: &[u8], nonce: &str) -> Option<usize> {
    let tag = format!("sremote-{nonce}:\n");
    let at = buf.windows(tag.len()).position(|w| w == tag.as_bytes())?;
    Some(at + tag.len())
}

/// Drop what login scripts printed before the begin marker (logged at debug level).
/// `Err(buf)` when there is no begin marker: the script never ran.
pub(crate) fn strip_login_noise(
    mut buf: Vec<u8>,
    nonce: &str,
    what: &str,
) -> Result<Vec<u8>, Vec<u8>> {
    let Some(start) = find_begin(&buf, nonce) else {
        return Err(buf);
    };
    // The marker starts with a newline of its own, for noise that did not end with one.
    let noise = &buf[..start - nonce.len() - "sremote-:\n".len()];
    let noise = noise.strip_suffix(b"\n").unwrap_or(noise);
    if !noise.is_empty() {
        tracing::debug!(
            "login scripts printed {} bytes on {what} before the command ran: {:?}",
            noise.len(),
            String::from_utf8_lossy(&noise[..noise.len().min(512)])
        );
    }
    buf.drain(..start);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    /// Every login shell that is installed here runs the line with the same meaning.
    #[test]
    fn the_line_means_the_same_under_every_login_shell() {
        let mut words = sremote_core::testsuite::hostile_strings();
        words.push("x".repeat(10_000));
        let script = r#"printf '%s\0' "$@""#;
        let line = line(script, words.iter().map(String::as_str));
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

    #[test]
    fn login_noise_is_dropped() {
        let buf = b"Welcome!\nquota\nsremote-abc:\nthe file".to_vec();
        assert_eq!(
            strip_login_noise(buf, "abc", "stdout").unwrap(),
            b"the file"
        );
        let buf = b"no newline\nsremote-abc:\n".to_vec();
        assert_eq!(strip_login_noise(buf, "abc", "stdout").unwrap(), b"");
        assert!(strip_login_noise(b"sremote-abd:\nx".to_vec(), "abc", "stdout").is_err());
    }

    #[test]
    fn markers() {
        let buf = b"noise\nsremote-abc 42 ok\nreal stderr";
        let m = find_marker(buf, "abc").unwrap();
        assert_eq!(
            (m.pid, m.fields.as_str(), &buf[m.body_start..]),
            (42, "ok", &b"real stderr"[..])
        );
        assert!(
            find_marker(b"sremote-abc 42 ok", "abc").is_none(),
            "needs the newline"
        );
        assert!(find_marker(b"sremote-abd 42 ok\n", "abc").is_none());
        assert_ne!(nonce(), nonce());
    }
}
