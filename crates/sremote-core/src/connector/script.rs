//! The POSIX `sh` scripts a connector can run on a host to keep the contract with nothing
//! but a way to start `/bin/sh -c SCRIPT sh ARG…`: [`EXEC`] (cwd, env, program, the pid
//! marker), [`PUSH`] (a temporary file, size check, chmod, rename), [`PULL`] (mode and
//! modification time in the marker, then the bytes) and [`KILL`]. The SSH connector and
//! the [command transports](super::command) run them; values only ever travel as the
//! positional parameters, so no shell interprets them.
//!
//! Every script first prints a *begin* marker `sremote-<nonce>:` on stdout and on stderr;
//! what came before it (login scripts' banners) is not the program's
//! ([`strip_login_noise`]). Before it runs anything of the caller's it prints the *pid*
//! marker `sremote-<nonce> <pid> <fields>` on stderr ([`find_marker`]): the process id
//! (to kill its group) and facts such as `nocwd` (the working directory is missing), over
//! a channel the program cannot spoof. Push and pull exit with [`EXIT_NOT_FOUND`] …
//! [`EXIT_SHORT`] when they fail; [`transfer_error`] turns those into typed errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::support::missing_cwd;
use super::{ExecOutput, RemoteCommand};
use crate::error::{ConnectorError, ConnectorErrorKind as Kind};

/// Push/pull exit code: the source does not exist.
pub const EXIT_NOT_FOUND: i32 = 80;
/// Push/pull exit code: permission denied.
pub const EXIT_DENIED: i32 = 81;
/// Push/pull exit code: the path names a directory or is otherwise no regular file.
pub const EXIT_BAD_TARGET: i32 = 82;
/// Push exit code: fewer bytes arrived than announced.
pub const EXIT_SHORT: i32 = 85;

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
/// (names are identifiers: [`RemoteCommand::validate`] refuses others), then the
/// arguments. Positional parameters from [`exec_args`].
pub const EXEC: &str = concat!(
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

/// `$1` nonce, `$2` destination, `$3` octal mode, `$4` expected size; the data on stdin.
/// Positional parameters from [`push_args`].
pub const PUSH: &str = concat!(
    begin!(),
    r#"export LC_ALL=C; d=$2 m=$3 s=$4
cd 2>/dev/null
case $d in /*) ;; *) d=./$d;; esac
r=${d%/*} b=${d##*/}; [ -n "$r" ] || r=/
[ -n "$b" ] || { echo "the destination names a directory" >&2; exit 82; }
e=$(mkdir -p -- "$r" 2>&1) || { case $e in *ermission*|*Read-only*) echo "$e" >&2; exit 81;; esac; echo "$e" >&2; exit 82; }
[ -d "$d" ] && { echo "the destination is a directory" >&2; exit 82; }
t=$r/.$b.sremote-$$
trap 'rm -f -- "$t"' EXIT; trap 'exit 83' HUP INT TERM PIPE
(umask 077; : > "$t") 2>/dev/null || { echo "cannot write into the directory $r" >&2; exit 81; }
printf '\nsremote-%s %s ok\n' "$n" "$$" >&2
(umask 077; exec cat > "$t") || exit 84
g=$(wc -c < "$t"); [ "$g" -eq "$s" ] || { echo "received $g of $s bytes" >&2; exit 85; }
chmod "$m" "$t" && mv -f -- "$t" "$d" || exit 84"#
);

/// `$1` nonce, `$2` source. The marker carries the mode and modification time of the file
/// (of the file a symlink points to: `stat -L`, as `cat` reads that one). Positional
/// parameters from [`pull_args`].
pub const PULL: &str = concat!(
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

/// `$1` a pid: kill its process group (or the process itself if it leads none).
pub const KILL: &str = r#"kill -KILL -"$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null; exit 0"#;

/// The positional parameters of [`EXEC`] for `cmd` (stdin and timeout are the caller's).
/// `cmd` must have passed [`RemoteCommand::validate`].
pub fn exec_args(cmd: &RemoteCommand, nonce: &str) -> Vec<String> {
    let mut v = vec![
        nonce.to_string(),
        cmd.cwd.clone().unwrap_or_default(),
        cmd.program.clone(),
        cmd.env.len().to_string(),
    ];
    v.extend(cmd.env.iter().map(|(k, val)| format!("{k}={val}")));
    v.extend(cmd.args.iter().cloned());
    v
}

/// The positional parameters of [`PUSH`].
pub fn push_args(nonce: &str, dest: &str, mode: u32, size: u64) -> Vec<String> {
    let mode = format!("{:o}", mode & 0o777);
    vec![nonce.into(), dest.into(), mode, size.to_string()]
}

/// The positional parameters of [`PULL`].
pub fn pull_args(nonce: &str, src: &str) -> Vec<String> {
    vec![nonce.into(), src.into()]
}

/// A fresh marker nonce (not secret; it only has to be unlikely to appear in other output).
pub fn nonce() -> String {
    use std::sync::atomic::AtomicU64;
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

/// The pid marker line found in stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The script's process id on the host.
    pub pid: u32,
    /// The rest of the line: `ok`, `nocwd`, or a pull's `MODE MTIME`.
    pub fields: String,
    /// Where the program's own stderr starts, after the line.
    pub body_start: usize,
}

impl Marker {
    /// A pull's mode and modification time (`None` where `stat` gave nothing usable).
    pub fn mode_and_mtime(&self) -> (Option<u32>, Option<std::time::SystemTime>) {
        let mut f = self.fields.split_whitespace();
        let mode = f.next().and_then(|m| u32::from_str_radix(m, 8).ok());
        let secs = f.next().and_then(|t| t.parse::<u64>().ok());
        let mtime = secs.map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        (mode, mtime)
    }
}

/// Find `sremote-<nonce> <pid> <fields>\n` in `buf`.
pub fn find_marker(buf: &[u8], nonce: &str) -> Option<Marker> {
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
pub fn find_begin(buf: &[u8], nonce: &str) -> Option<usize> {
    let tag = format!("sremote-{nonce}:\n");
    let at = buf.windows(tag.len()).position(|w| w == tag.as_bytes())?;
    Some(at + tag.len())
}

/// Drop what login scripts printed before the begin marker (logged at debug level).
/// `Err(buf)` when there is no begin marker: the script never ran.
pub fn strip_login_noise(mut buf: Vec<u8>, nonce: &str, what: &str) -> Result<Vec<u8>, Vec<u8>> {
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

/// What the collected stderr of a script says.
#[derive(Debug)]
pub enum Stderr {
    /// The script never ran (no begin marker): everything that was printed.
    NotStarted(Vec<u8>),
    /// The script ran: its pid marker (once printed) and the stderr after it (or, without
    /// a pid marker, the script's own error messages).
    Ran(Option<Marker>, Vec<u8>),
}

/// Split collected stderr into login-script noise, the marker and the program's stderr.
pub fn split_stderr(buf: Vec<u8>, nonce: &str) -> Stderr {
    let mut buf = match strip_login_noise(buf, nonce, "stderr") {
        Ok(buf) => buf,
        Err(noise) => return Stderr::NotStarted(noise),
    };
    match find_marker(&buf, nonce) {
        Some(m) => {
            buf.drain(..m.body_start);
            Stderr::Ran(Some(m), buf)
        }
        None => Stderr::Ran(None, buf),
    }
}

/// The script did not run: `/bin/sh` was not started with it (`code` and what was printed).
pub fn not_started(
    host: &str,
    action: &str,
    code: Option<i32>,
    output: &[u8],
    hint: &str,
) -> ConnectorError {
    let text = String::from_utf8_lossy(output).trim().to_string();
    let code = code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
    let said = if text.is_empty() {
        "nothing".to_string()
    } else {
        format!("{text:?}")
    };
    ConnectorError::new(Kind::Other, host, action)
        .detail(format!(
            "the host did not run the command with /bin/sh ({code}; it printed {said})"
        ))
        .hint(hint)
}

/// The typed error of a failed push or pull script (exit `code`, its stderr).
pub fn transfer_error(
    host: &str,
    action: &str,
    code: Option<i32>,
    stderr: &[u8],
) -> ConnectorError {
    let text = String::from_utf8_lossy(stderr).trim().to_string();
    let (kind, hint, said) = match code {
        Some(EXIT_NOT_FOUND) => (
            Kind::NotFound,
            "check the path (relative paths start in the home directory)",
            "no such file on the host",
        ),
        Some(EXIT_DENIED) => (
            Kind::PermissionDenied,
            "check the permissions of the path and its directory",
            "permission denied on the host",
        ),
        Some(EXIT_BAD_TARGET) => (
            Kind::InvalidInput,
            "name a regular file",
            "not a regular file",
        ),
        Some(EXIT_SHORT) => (Kind::Other, "the data was cut short; try again", ""),
        _ => (
            Kind::Other,
            "see the detail for the host's error message",
            "",
        ),
    };
    let detail = match (text.is_empty(), said.is_empty()) {
        (false, _) => text,
        (true, false) => said.to_string(),
        (true, true) => format!("the transfer script on the host failed (exit {code:?})"),
    };
    ConnectorError::new(kind, host, action)
        .detail(detail)
        .hint(hint)
}

/// The error when a script's stdout lost its begin marker (a login script closed or
/// redirected it).
pub fn lost_stdout(host: &str, action: &str) -> ConnectorError {
    ConnectorError::new(Kind::Other, host, action)
        .detail("the command's stdout was lost before it started (its marker is missing)")
        .hint("check the login scripts on the host: one may close or redirect stdout")
}

/// The outcome of an [`EXEC`] script for `cmd` that ended with `exit_code` after printing
/// `stdout` and `stderr`: the program's own output, or the typed error (`not_started_hint`
/// says what the host needs when the script never ran).
pub fn exec_result(
    host: &str,
    cmd: &RemoteCommand,
    nonce: &str,
    exit_code: Option<i32>,
    (stdout, stderr): (Vec<u8>, Vec<u8>),
    not_started_hint: &str,
) -> Result<ExecOutput, ConnectorError> {
    let action = format!("exec {}", cmd.program);
    let (marker, stderr) = match split_stderr(stderr, nonce) {
        Stderr::Ran(marker, stderr) => (marker, stderr),
        Stderr::NotStarted(text) => {
            return Err(not_started(
                host,
                &action,
                exit_code,
                &text,
                not_started_hint,
            ));
        }
    };
    let Ok(stdout) = strip_login_noise(stdout, nonce, "stdout") else {
        return Err(lost_stdout(host, &action));
    };
    if marker.is_some_and(|m| m.fields == "nocwd") {
        return Err(nocwd(host, &action, cmd));
    }
    Ok(ExecOutput {
        exit_code,
        stdout,
        stderr,
    })
}

fn nocwd(host: &str, action: &str, cmd: &RemoteCommand) -> ConnectorError {
    missing_cwd(
        host,
        action,
        format!("{:?}", cmd.cwd.as_deref().unwrap_or("")),
    )
}

/// What a spawned [`EXEC`] script printed before the program started: its pid marker, and
/// the program's first stdout and stderr bytes read along with the markers.
#[derive(Debug)]
pub struct Head {
    /// The pid marker.
    pub marker: Marker,
    /// The program's stdout read so far.
    pub stdout: Vec<u8>,
    /// The program's stderr read so far.
    pub stderr: Vec<u8>,
}

/// Read a spawned [`EXEC`] script's stderr up to the pid marker and its stdout up to the
/// begin marker. `Err((marker_seen, stderr))` when a stream ended first: wait for the exit
/// code and give [`head_error`].
pub async fn read_head<O, E>(
    stdout: &mut O,
    stderr: &mut E,
    nonce: &str,
) -> Result<Head, (bool, Vec<u8>)>
where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let (mut err_head, mut out_head) = (Vec::new(), Vec::new());
    let read_marker = read_until(stderr, &mut err_head, |b| find_marker(b, nonce));
    let read_begin = read_until(stdout, &mut out_head, |b| find_begin(b, nonce));
    let (Some(marker), Some(_)) = tokio::join!(read_marker, read_begin) else {
        let seen = find_marker(&err_head, nonce).is_some();
        return Err((seen, err_head));
    };
    let out = strip_login_noise(out_head, nonce, "stdout").unwrap_or_default();
    let err = err_head.split_off(marker.body_start);
    Ok(Head {
        marker,
        stdout: out,
        stderr: err,
    })
}

/// The error of a spawn whose [`read_head`] failed, once the script ended with `code`.
pub fn head_error(
    host: &str,
    action: &str,
    nonce: &str,
    code: Option<i32>,
    (marker_seen, stderr): (bool, Vec<u8>),
    not_started_hint: &str,
) -> ConnectorError {
    match split_stderr(stderr, nonce) {
        Stderr::NotStarted(text) => not_started(host, action, code, &text, not_started_hint),
        Stderr::Ran(_, text) if !marker_seen => {
            let text = String::from_utf8_lossy(&text).trim().to_string();
            ConnectorError::new(Kind::Other, host, action)
                .detail(format!("the host did not start the program: {text}"))
                .hint("the host needs a POSIX /bin/sh")
        }
        Stderr::Ran(..) => lost_stdout(host, action),
    }
}

/// A task aborted when its handle is dropped.
#[derive(Debug)]
pub struct Task<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    /// Run `f` on the runtime.
    pub fn spawn(f: impl Future<Output = T> + Send + 'static) -> Self {
        Task(tokio::spawn(f))
    }
    /// Its result (`None` if it panicked).
    pub async fn join(mut self) -> Option<T> {
        (&mut self.0).await.ok()
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Collect a script's stderr, storing the pid into `pid` as soon as the marker arrives.
pub fn read_stderr<R>(mut err: R, nonce: String, pid: Arc<AtomicU32>) -> Task<Vec<u8>>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    Task::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        while let Ok(n @ 1..) = err.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
            if pid.load(Ordering::Relaxed) == 0
                && buf.len() < (64 << 10)
                && let Some(m) = find_marker(&buf, &nonce)
            {
                pid.store(m.pid, Ordering::Relaxed);
            }
        }
        buf
    })
}

/// Read `r` into `buf` until `found` finds what it looks for in it; `None` at the end of
/// the stream (or a read error) before that.
pub async fn read_until<R: AsyncRead + Unpin, T>(
    r: &mut R,
    buf: &mut Vec<u8>,
    found: impl Fn(&[u8]) -> Option<T>,
) -> Option<T> {
    let mut chunk = vec![0u8; 8192];
    loop {
        if let Some(t) = found(buf) {
            return Some(t);
        }
        match r.read(&mut chunk).await {
            Ok(n @ 1..) => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Copy a pull's stdout (a pipe, read blocking) into `file`, dropping what came before the
/// begin marker. `Ok(false)`: the marker never came (the script did not run). After the
/// marker the kernel moves the bytes (`std::io::copy` splices from a pipe).
pub fn copy_after_begin(
    pipe: std::os::fd::OwnedFd,
    mut file: std::fs::File,
    nonce: &str,
) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    // A bigger pipe means fewer wake-ups of the writer and of this copy (Linux allows 1 MiB
    // to unprivileged processes by default); the default 64 KiB also works.
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a descriptor this function owns; failure is harmless.
    unsafe {
        libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
    let mut pipe = std::fs::File::from(pipe);
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    while find_begin(&head, nonce).is_none() {
        match pipe.read(&mut chunk)? {
            0 => return Ok(false),
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    let head = strip_login_noise(head, nonce, "stdout").unwrap_or_default();
    file.write_all(&head)?;
    std::io::copy(&mut pipe, &mut file)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let m = find_marker(b"sremote-abc 1 750 1600000000\n", "abc").unwrap();
        let (mode, t) = m.mode_and_mtime();
        assert_eq!(mode, Some(0o750));
        assert_eq!(
            t,
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000))
        );
    }

    #[test]
    fn transfer_errors_are_typed() {
        let e = transfer_error("h", "pull x", Some(EXIT_NOT_FOUND), b"");
        assert_eq!(
            (e.kind, e.detail.as_str()),
            (Kind::NotFound, "no such file on the host")
        );
        let e = transfer_error("h", "push x", Some(EXIT_DENIED), b"cannot write");
        assert_eq!(
            (e.kind, e.detail.as_str()),
            (Kind::PermissionDenied, "cannot write")
        );
        assert_eq!(transfer_error("h", "p", Some(1), b"").kind, Kind::Other);
    }
}
