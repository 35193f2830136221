//! `/file/<machine>/<path>`: `GET ?view=read` streams a file, `GET` lists a directory (or
//! describes a file), `PUT` writes the raw body atomically, `DELETE` removes.
//!
//! Extensions: `PUT …?mode=755` sets the permission bits (default 644; setuid, setgid and
//! sticky bits are dropped); `GET ?view=read` answers the file's mode in `X-Sremote-Mode`
//! (without setuid/setgid/sticky) and its modification time in `X-Sremote-Mtime` (whole
//! seconds since the epoch; header names in [`sremote_core::newt`]), and only serves
//! regular files (a FIFO or device is
//! refused at once, never waited on); a path starting with `~` is in the home. Every path
//! is opened beneath its root's handle ([`crate::paths`]).

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::paths::os_error;
use crate::state::AppState;

/// Permission bits a file written or pulled through the gateway may carry: no setuid,
/// setgid or sticky bit.
pub const FILE_MODE_MASK: u32 = 0o777;

/// Query parameters of the file routes.
#[derive(Debug, Default, Deserialize)]
pub struct FileQuery {
    view: Option<String>,
    mode: Option<String>,
    /// `PUT ?fsync=0`: a scratch file, answered without waiting for the disk.
    fsync: Option<String>,
}

pub use sremote_core::newt::{MODE_HEADER, MTIME_HEADER};

/// The machine and the still-encoded path of a `/file/<machine>/<path>` URI.
fn split_uri(state: &AppState, uri: &OriginalUri) -> Result<String, ApiError> {
    let path = uri.path();
    let rest = path
        .strip_prefix(state.config.base_path.as_str())
        .and_then(|p| p.strip_prefix("/file/"))
        .ok_or_else(|| ApiError::not_found("not a /file/<machine>/<path> URL"))?;
    let (machine, file) = rest.split_once('/').unwrap_or((rest, ""));
    let machine = percent_encoding::percent_decode_str(machine).decode_utf8_lossy();
    if !state.knows_machine(&machine) {
        return Err(ApiError::not_found(format!("unknown machine {machine:?}")));
    }
    Ok(file.to_string())
}

/// Run blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

/// `GET`: the file's bytes with `view=read`, else a listing.
pub async fn get(
    State(state): State<Arc<AppState>>,
    _user: AuthUser,
    uri: OriginalUri,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    let raw = split_uri(&state, &uri)?;
    let path = state.roots.parse(&raw)?;
    match q.view.as_deref() {
        Some("read") => {
            let (file, meta) = blocking(move || open_regular(&state, &path)).await?;
            Ok(file_response(file, &meta))
        }
        Some(other) => Err(ApiError::unprocessable(
            "bad_view",
            format!("unknown view {other:?}; use view=read"),
        )),
        None => Ok(Json(blocking(move || listing(&state, &path)).await?).into_response()),
    }
}

/// Open a regular file for reading: non-blocking (a FIFO never waits for a writer), and
/// anything but a regular file refused.
fn open_regular(
    state: &AppState,
    path: &std::path::Path,
) -> Result<(std::fs::File, std::fs::Metadata), ApiError> {
    let what = path.display().to_string();
    let flags = OFlags::RDONLY | OFlags::NONBLOCK;
    let file = std::fs::File::from(state.roots.open(path, flags, Mode::empty())?);
    let meta = file.metadata().map_err(|e| ApiError::io(&what, &e))?;
    if meta.is_dir() {
        return Err(ApiError::unprocessable(
            "is_directory",
            format!("{what} is a directory"),
        ));
    }
    if !meta.is_file() {
        return Err(ApiError::unprocessable(
            "not_a_file",
            format!(
                "{what} is not a regular file (a FIFO, socket or device): only regular files are served"
            ),
        ));
    }
    // Regular files ignore O_NONBLOCK; clear it anyway for the streaming reader.
    rustix::fs::fcntl_setfl(&file, OFlags::empty()).map_err(|e| os_error(&what, e))?;
    Ok((file, meta))
}

/// Stream an open file with its length, mode and modification time.
fn file_response(file: std::fs::File, meta: &std::fs::Metadata) -> Response {
    use std::os::unix::fs::PermissionsExt;
    let file = tokio::fs::File::from_std(file);
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10);
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    let mode = meta.permissions().mode() & FILE_MODE_MASK;
    if let Ok(v) = HeaderValue::from_str(&format!("{mode:o}")) {
        h.insert(MODE_HEADER, v);
    }
    if let Some(secs) = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    {
        h.insert(MTIME_HEADER, HeaderValue::from(secs.as_secs()));
    }
    resp
}

/// A directory's entries, or a one-entry listing describing a file (a symlink as itself).
fn listing(state: &AppState, path: &std::path::Path) -> Result<Vec<serde_json::Value>, ApiError> {
    let what = path.display().to_string();
    let fd = state.roots.open(path, OFlags::PATH, Mode::empty())?;
    let st = rustix::fs::fstat(&fd).map_err(|e| os_error(&what, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        let (dir, name) = state.roots.parent(path, false)?;
        let st = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| os_error(&what, e))?;
        return Ok(vec![entry(&name, &st)]);
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = rustix::fs::openat(&fd, ".", flags, Mode::empty()).map_err(|e| os_error(&what, e))?;
    let mut entries = Vec::new();
    for e in rustix::fs::Dir::read_from(&dir).map_err(|e| os_error(&what, e))? {
        let e = e.map_err(|e| os_error(&what, e))?;
        let name = e.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        if let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            use std::os::unix::ffi::OsStrExt;
            entries.push(entry(OsStr::from_bytes(name.to_bytes()), &st));
        }
    }
    entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(entries)
}

/// One listing entry, NEWT-like (`name`, `perms`, `size`, `user`, `group`, `date`, …).
fn entry(name: &OsStr, m: &rustix::fs::Stat) -> serde_json::Value {
    let (kind, c) = match FileType::from_raw_mode(m.st_mode) {
        FileType::Directory => ("dir", 'd'),
        FileType::Symlink => ("symlink", 'l'),
        FileType::RegularFile => ("file", '-'),
        _ => ("other", '?'),
    };
    let mode = m.st_mode;
    let perms: String = std::iter::once(c)
        .chain((0..9).rev().map(|i| {
            if mode & (1 << i) != 0 {
                b"xwr"[i % 3] as char
            } else {
                '-'
            }
        }))
        .collect();
    serde_json::json!({
        "name": name.to_string_lossy(),
        "type": kind,
        "perms": perms,
        "mode": format!("{:o}", mode & 0o7777),
        "hardlinks": m.st_nlink,
        "user": m.st_uid,
        "group": m.st_gid,
        "size": m.st_size,
        "date": m.st_mtime,
    })
}

fn parse_mode(q: &FileQuery) -> Result<u32, ApiError> {
    match q.mode.as_deref() {
        None => Ok(0o644),
        Some(m) => match u32::from_str_radix(m, 8) {
            Ok(v) if v <= 0o7777 => Ok(v),
            _ => Err(ApiError::unprocessable(
                "bad_mode",
                format!("mode {m:?} is not octal permission bits"),
            )),
        },
    }
}

/// A temporary file in a directory handle, removed when dropped unless renamed.
struct PartFile {
    dir: Arc<OwnedFd>,
    name: OsString,
    armed: bool,
}

impl PartFile {
    /// Create `.sremote-part-<random>` (mode 0600, never through a symlink) in `dir`.
    fn create(dir: Arc<OwnedFd>) -> std::io::Result<(std::fs::File, PartFile)> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        loop {
            let mut rnd = [0u8; 8];
            getrandom::fill(&mut rnd).map_err(|e| std::io::Error::other(e.to_string()))?;
            let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
            let name = OsString::from(format!(".sremote-part-{hex}"));
            match rustix::fs::openat(&*dir, &name, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    let part = PartFile {
                        dir,
                        name,
                        armed: true,
                    };
                    return Ok((std::fs::File::from(fd), part));
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Rename over `name` in the same directory (replacing a symlink, never following it).
    fn persist(mut self, name: &OsStr) -> std::io::Result<()> {
        rustix::fs::renameat(&*self.dir, &self.name, &*self.dir, name)?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = rustix::fs::unlinkat(&*self.dir, &self.name, AtFlags::empty());
        }
    }
}

/// How long a refused upload's remaining body is still read (and discarded) after the 413.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The 413 for an upload over `max`, with the rest of its body read and thrown away for up
/// to [`LINGER`] in the background (a lingering close). Closing a socket with unread data
/// makes the kernel answer with a reset, and a client still writing its body then sees
/// "broken pipe" instead of the 413 it was sent; reading on for a moment lets it read the
/// answer and stop. Nothing is buffered; the connection limit and the header timeout still
/// bound what one client can hold.
fn refuse_and_linger(mut body: Body, max: u64) -> ApiError {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
    });
    ApiError::too_large(max)
}

/// `PUT`: stream the body into a temporary file next to the target, fsync it, then rename. Bodies
/// over the limit get 413 (from `Content-Length` before anything is read, or as soon as
/// the streamed bytes pass it) and leave nothing behind.
pub async fn put(
    State(state): State<Arc<AppState>>,
    _user: AuthUser,
    uri: OriginalUri,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = split_uri(&state, &uri)?;
    let path = state.roots.parse(&raw)?;
    let mode = parse_mode(&q)? & FILE_MODE_MASK;
    let max = state.config.limits.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(refuse_and_linger(body, max));
    }
    let what = path.display().to_string();
    let ioerr = |e: std::io::Error| ApiError::io(&what, &e);
    let (dir, name, file, part) = {
        let (st, path) = (state.clone(), path.clone());
        blocking(move || {
            let (dir, name) = st.roots.parent(&path, true)?;
            let dir = Arc::new(dir);
            let (file, part) = PartFile::create(dir.clone())
                .map_err(|e| ApiError::io(&path.display().to_string(), &e))?;
            Ok((dir, name, file, part))
        })
        .await?
    };
    let mut file = tokio::fs::File::from_std(file);
    let mut body = body;
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::unprocessable("body", format!("reading the body failed: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > max {
            return Err(refuse_and_linger(body, max)); // the part file is removed on drop
        }
        buf.extend_from_slice(&data);
        if buf.len() >= 1 << 20 {
            file.write_all(&buf).await.map_err(ioerr)?;
            buf.clear();
        }
    }
    file.write_all(&buf).await.map_err(ioerr)?;
    file.flush().await.map_err(ioerr)?;
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .await
            .map_err(ioerr)?;
    }
    // On disk before the rename and the 200: an answered upload survives a crash of the
    // host right after (unless the client said it is a scratch file).
    let durable = q.fsync.as_deref() != Some("0");
    if durable {
        file.sync_data().await.map_err(ioerr)?;
    }
    drop(file);
    blocking(move || {
        let err = |e: std::io::Error| ApiError::io(&path.display().to_string(), &e);
        part.persist(&name).map_err(err)?;
        // The rename too: the directory entry is on disk before the answer.
        if durable {
            rustix::fs::fsync(&*dir).map_err(|e| err(e.into()))?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "status": "OK", "error": "" })))
}

/// `DELETE`: remove a file, a symlink or an empty directory.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    _user: AuthUser,
    uri: OriginalUri,
) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = split_uri(&state, &uri)?;
    let path = state.roots.parse(&raw)?;
    blocking(move || {
        let what = path.display().to_string();
        let (dir, name) = state.roots.parent(&path, false)?;
        let st = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| os_error(&what, e))?;
        let flags = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&dir, &name, flags).map_err(|e| os_error(&what, e))
    })
    .await?;
    Ok(Json(serde_json::json!({ "status": "OK", "error": "" })))
}
