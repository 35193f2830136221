//! The command lines sent to the host: tiny POSIX `sh` scripts with every value quoted.
//!
//! The login shell on the host reads one line, `exec /bin/sh -c '<script>' sremote '<arg>'…`,
//! in which every word is single-quoted (`'` becomes `'\''`), so no byte of user data is
//! interpreted by either shell. The script then prints a marker line
//! `sremote-<nonce> <pid> <fields>` on stderr before it runs anything of the user's: the
//! connector strips it from the output and learns the remote process id (which is also the
//! process group id, because sshd starts every session in a new session) and facts such as
//! "the working directory is missing", over a channel the program cannot spoof.

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

fn line<'a>(script: &str, args: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = format!("exec /bin/sh -c {} sremote", quote(script));
    for a in args {
        out.push(' ');
        out.push_str(&quote(a));
    }
    out
}

/// `$1` nonce, `$2` cwd (empty: home), `$3` program, then `N` exported `K=V`, then `M`
/// `K=V` for names `export` refuses (passed through `env`), then the arguments.
const EXEC: &str = r#"n=$1 c=$2 p=$3; shift 3
cd 2>/dev/null; h=$PWD
if [ -n "$c" ]; then
  case $c in /*) ;; *) c=./$c;; esac
  cd -- "$c" 2>/dev/null || { printf '\nsremote-%s %s nocwd\n' "$n" "$$" >&2; exit 1; }
fi
printf '\nsremote-%s %s ok\n' "$n" "$$" >&2
case $p in /*) ;; */*) p=$h/$p;; esac
i=$1; shift; while [ "$i" -gt 0 ]; do export "$1"; shift; i=$((i-1)); done
i=$1; shift; [ "$i" -eq 0 ] && exec "$p" "$@"
a=$(($# - i)); j=0; while [ "$j" -lt "$i" ]; do set -- "$@" "$1"; shift; j=$((j+1)); done
set -- "$@" "$p"; j=0; while [ "$j" -lt "$a" ]; do set -- "$@" "$1"; shift; j=$((j+1)); done
exec env -- "$@""#;

/// `$1` nonce, `$2` destination, `$3` octal mode, `$4` expected size.
const PUSH: &str = r#"export LC_ALL=C; n=$1 d=$2 m=$3 s=$4
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
chmod "$m" "$t" && mv -f -- "$t" "$d" || exit 84"#;

/// `$1` nonce, `$2` source. The marker carries the file's mode and modification time.
const PULL: &str = r#"export LC_ALL=C; n=$1 p=$2
cd 2>/dev/null
case $p in /*) ;; *) p=./$p;; esac
[ -e "$p" ] || exit 80
[ -d "$p" ] && { echo "it is a directory" >&2; exit 82; }
[ -r "$p" ] || exit 81
m=$(stat -c %a -- "$p" 2>/dev/null || stat -f %Lp -- "$p" 2>/dev/null)
t=$(stat -c %Y -- "$p" 2>/dev/null || stat -f %m -- "$p" 2>/dev/null)
printf '\nsremote-%s %s %s %s\n' "$n" "$$" "$m" "$t" >&2
exec cat -- "$p""#;

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The line that runs `cmd` (stdin, timeout are handled by the caller).
pub(crate) fn exec_line(cmd: &RemoteCommand, nonce: &str) -> String {
    let (exported, other): (Vec<_>, Vec<_>) = cmd.env.iter().partition(|(k, _)| is_identifier(k));
    let kv = |v: Vec<(&String, &String)>| {
        v.into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
    };
    let (exported, other) = (kv(exported), kv(other));
    let (ne, no) = (exported.len().to_string(), other.len().to_string());
    let head = [
        nonce,
        cmd.cwd.as_deref().unwrap_or(""),
        cmd.program.as_str(),
        ne.as_str(),
    ];
    let words = head
        .into_iter()
        .chain(exported.iter().map(String::as_str))
        .chain(std::iter::once(no.as_str()))
        .chain(other.iter().map(String::as_str))
        .chain(cmd.args.iter().map(String::as_str));
    line(EXEC, words)
}

pub(crate) fn push_line(nonce: &str, dest: &str, mode: u32, size: u64) -> String {
    line(
        PUSH,
        [
            nonce,
            dest,
            &format!("{:o}", mode & 0o7777),
            &size.to_string(),
        ],
    )
}

pub(crate) fn pull_line(nonce: &str, src: &str) -> String {
    line(PULL, [nonce, src])
}

/// Kill a remote process group (and the process itself if it is no group leader).
pub(crate) fn kill_line(pid: u32) -> String {
    format!("kill -KILL -{pid} 2>/dev/null || kill -KILL {pid} 2>/dev/null; exit 0")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("PATH") && is_identifier("_x1"));
        assert!(!is_identifier("1x") && !is_identifier("a-b") && !is_identifier(""));
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
