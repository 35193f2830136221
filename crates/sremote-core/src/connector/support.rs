//! Pieces every connector needs, so that a new one does not copy them: progress while a
//! transfer runs, opening a [`Source`], the atomic local half of a pull ([`PartFile`]), a
//! process-group guard that kills on drop, the 127/126 mapping of programs that cannot
//! start, home-relative paths, and the errors the contract names.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{BoxFuture, Dest, ExecOutput, Progress, Source, SourceData};
use crate::error::{ConnectorError, ConnectorErrorKind};

/// Permission bits a transferred file may carry: never setuid, setgid or sticky.
pub const FILE_MODE_MASK: u32 = 0o777;

/// Await `body`, reporting `position()` to `progress` every 100 ms while it runs (when it
/// changed). Without `progress` it is just `body.await`.
pub async fn with_progress<T>(
    body: impl Future<Output = T>,
    progress: Option<Progress<'_>>,
    position: impl Fn() -> u64,
) -> T {
    let Some(report) = progress else {
        return body.await;
    };
    let mut body = std::pin::pin!(body);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last = 0;
    loop {
        tokio::select! {
            done = &mut body => return done,
            _ = tick.tick() => {
                let now = position();
                if now != last {
                    last = now;
                    report(now);
                }
            }
        }
    }
}

/// What a push names in its errors: `push FILE -> DEST` or `push N bytes -> DEST`.
pub fn push_action(from: &Source<'_>, to: &str) -> String {
    match from.data {
        SourceData::File(p) => format!("push {} -> {to}", p.display()),
        SourceData::Bytes(b) => format!("push {} bytes -> {to}", b.len()),
    }
}

/// What a pull names in its errors: `pull SRC -> LOCAL`.
pub fn pull_action(from: &str, to: &Dest<'_>) -> String {
    format!("pull {from} -> {}", to.path.display())
}

/// A [`Source`] opened for sending: the file (if it is one), its size, and the mode the
/// host file gets (the explicit one, else the local file's, else 0o644; masked to
/// [`FILE_MODE_MASK`]).
#[derive(Debug)]
pub struct OpenSource<'a> {
    /// The open local file; `None` for bytes in memory.
    pub file: Option<std::fs::File>,
    /// The bytes in memory; empty for a file.
    pub bytes: &'a [u8],
    /// How many bytes will be sent.
    pub size: u64,
    /// Permission bits for the host file, already masked.
    pub mode: u32,
}

impl<'a> OpenSource<'a> {
    /// Open `from`; a missing or unreadable file or a directory is an error naming `host`
    /// and `action`.
    pub fn open(from: &Source<'a>, host: &str, action: &str) -> Result<Self, ConnectorError> {
        use std::os::unix::fs::PermissionsExt;
        let path = match from.data {
            SourceData::File(path) => path,
            SourceData::Bytes(bytes) => {
                return Ok(OpenSource {
                    file: None,
                    bytes,
                    size: bytes.len() as u64,
                    mode: from.mode.unwrap_or(0o644) & FILE_MODE_MASK,
                });
            }
        };
        let local =
            |e: std::io::Error| ConnectorError::io(host, action, &e).hint("check the local file");
        let file = std::fs::File::open(path).map_err(local)?;
        let meta = file.metadata().map_err(local)?;
        if !meta.is_file() {
            return Err(
                ConnectorError::new(ConnectorErrorKind::InvalidInput, host, action)
                    .detail(format!("{} is not a regular file", path.display()))
                    .hint("push the files inside a directory one by one, or use `sremote push`"),
            );
        }
        Ok(OpenSource {
            file: Some(file),
            bytes: &[],
            size: meta.len(),
            mode: from.mode.unwrap_or(meta.permissions().mode()) & FILE_MODE_MASK,
        })
    }
}

/// The local half of a pull, atomic: the data goes into a temporary file beside the
/// destination (parents created), which [`finish`](PartFile::finish) gives its mode and
/// modification time and renames over the destination. Dropped unfinished, it is removed:
/// readers see the old file or the whole new one, never half of it.
#[derive(Debug)]
pub struct PartFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl PartFile {
    /// Create the temporary file for `dest` (and `dest`'s missing parent directories).
    pub fn create(dest: &Path) -> std::io::Result<PartFile> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".sremote-part-")
            .tempfile_in(&dir)?;
        Ok(PartFile {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The temporary file, to write the data into.
    pub fn file(&self) -> &std::fs::File {
        self.tmp.as_file()
    }

    /// How many bytes it holds so far.
    pub fn len(&self) -> u64 {
        self.file().metadata().map_or(0, |m| m.len())
    }

    /// Whether it is still empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set the mode (masked to [`FILE_MODE_MASK`]) and the modification time, then rename
    /// the file over the destination.
    pub fn finish(self, mode: Option<u32>, mtime: Option<SystemTime>) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(mode) = mode {
            let perms = std::fs::Permissions::from_mode(mode & FILE_MODE_MASK);
            self.file().set_permissions(perms)?;
        }
        if let Some(t) = mtime {
            self.file().set_modified(t)?;
        }
        self.tmp.persist(&self.dest).map(drop).map_err(|e| e.error)
    }
}

/// Write `dest` atomically through a [`PartFile`] filled by `fill`, with `mode`.
pub fn atomic_write(
    dest: &Path,
    mode: u32,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let part = PartFile::create(dest)?;
    fill(&mut part.file().try_clone()?)?;
    part.finish(Some(mode), None)
}

/// Copy in 1 MiB chunks, reporting the bytes copied so far to `progress`.
pub fn copy_with_progress(
    from: &mut impl Read,
    to: &mut impl Write,
    progress: Option<Progress<'_>>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        done += n as u64;
        if let Some(p) = progress {
            p(done);
        }
    }
}

/// A program that could not be started, as a POSIX shell reports it: exit code 127 (not
/// found) or 126 (not executable), the reason on stderr. `None` for other errors (those
/// are connector errors).
pub fn not_startable(program: &Path, err: &std::io::Error) -> Option<ExecOutput> {
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        std::io::ErrorKind::PermissionDenied => 126,
        _ if err.raw_os_error() == Some(libc::ENOEXEC) => 126,
        _ => return None,
    };
    Some(ExecOutput {
        exit_code: Some(code),
        stdout: Vec::new(),
        stderr: format!("sremote: {}: {err}\n", program.display()).into_bytes(),
    })
}

/// `path` on the host: absolute as given, relative under `home`.
pub fn resolve(home: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        home.join(p)
    }
}

/// The program to start: a name without `/` is looked up in `PATH` (as given); a relative
/// path with a `/` is under `home`.
pub fn resolve_program(home: &Path, program: &str) -> PathBuf {
    if program.contains('/') {
        resolve(home, program)
    } else {
        PathBuf::from(program)
    }
}

/// The contract's error for a working directory that does not exist (`NotFound`).
pub fn missing_cwd(host: &str, action: &str, cwd: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(ConnectorErrorKind::NotFound, host, action)
        .detail(format!("the working directory {cwd} does not exist"))
        .hint("create the directory or pass another cwd")
}

/// The contract's error for a program that ran past its timeout; `killed` says what was
/// killed (e.g. "it and its children were killed").
pub fn timeout_error(host: &str, action: &str, limit: Duration, killed: &str) -> ConnectorError {
    ConnectorError::new(ConnectorErrorKind::Timeout, host, action)
        .detail(format!("still running after {limit:?}; {killed}"))
        .hint("raise the timeout or make the work smaller")
}

/// A local process group (a child started with `process_group(0)`), killed with SIGKILL
/// when the guard is dropped: a dropped `exec` future, a dropped spawned process or a
/// finished program leave none of the group's processes behind.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: Option<i32>,
}

impl ProcessGroup {
    /// Guard the group led by `pid` (the child's id; `None` guards nothing).
    pub fn new(pid: Option<u32>) -> Self {
        ProcessGroup {
            pgid: pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1),
        }
    }

    /// Kill every process of the group now (a no-op when it is gone).
    pub fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: a plain syscall on a group this guard's child leads (pgid > 1, so
            // never "every process" nor init's group).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run blocking file I/O without stalling other tasks where the runtime allows it
/// (`block_in_place` needs the multi-threaded runtime; on the current-thread one it runs
/// inline).
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The `wait` of a spawned process: a task watches `exit` (the process ending, with its
/// exit code) and the timer `limit`. When the timer fires first, `timed_out` kills and
/// gives the error; when the caller drops the returned future before either, `exit` is
/// dropped, so its guard (e.g. a [`ProcessGroup`]) kills the program. The task runs
/// whether or not the caller polls the returned future, so the timeout always holds.
pub fn watch_process<F, T>(
    host: &str,
    exit: F,
    limit: Option<Duration>,
    timed_out: T,
) -> BoxFuture<Result<Option<i32>, ConnectorError>>
where
    F: Future<Output = Result<Option<i32>, ConnectorError>> + Send + 'static,
    T: FnOnce(Duration) -> BoxFuture<ConnectorError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = tx;
        let timer = async {
            match limit {
                Some(l) => tokio::time::sleep(l).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            r = exit => r,
            () = timer => Err(timed_out(limit.unwrap_or_default()).await),
            () = tx.closed() => return,
        };
        let _ = tx.send(result);
    });
    let host = host.to_string();
    Box::pin(async move {
        rx.await.unwrap_or_else(|_| {
            Err(ConnectorError::new(
                ConnectorErrorKind::Other,
                host,
                "wait for a spawned program",
            )
            .detail("its watcher ended without an answer"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_files_are_atomic_and_keep_mode_and_time() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("new/dir/f");
        let part = PartFile::create(&dest).unwrap();
        (&mut part.file()).write_all(b"abc").unwrap();
        assert!(!dest.exists(), "nothing at the destination before finish");
        assert_eq!(part.len(), 3);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        part.finish(Some(0o4750), Some(t)).unwrap();
        let meta = std::fs::metadata(&dest).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
        assert_eq!(meta.modified().unwrap(), t);
        let dropped = PartFile::create(&dest).unwrap();
        drop(dropped);
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn programs_that_cannot_start() {
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        let p = Path::new("x");
        assert_eq!(not_startable(p, &nf).unwrap().exit_code, Some(127));
        let pd = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(not_startable(p, &pd).unwrap().exit_code, Some(126));
        assert!(not_startable(p, &std::io::Error::other("x")).is_none());
        let home = Path::new("/h");
        assert_eq!(resolve_program(home, "ls"), Path::new("ls"));
        assert_eq!(resolve_program(home, "bin/x"), Path::new("/h/bin/x"));
        assert_eq!(resolve(home, "/abs"), Path::new("/abs"));
    }
}
