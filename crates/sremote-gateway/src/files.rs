//! `/file/<machine>/<path>`: `GET ?view=read` streams a file, `GET` lists a directory (or
//! describes a file), `PUT` writes the raw body atomically, `DELETE` removes.
//!
//! Extensions: `PUT …?mode=755` sets the permission bits (default 644); `GET ?view=read`
//! answers the file's mode in `X-Sremote-Mode`; a path starting with `~` is in the home.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// Query parameters of the file routes.
#[derive(Debug, Default, Deserialize)]
pub struct FileQuery {
    view: Option<String>,
    mode: Option<String>,
    /// `PUT ?fsync=0`: a scratch file, answered without waiting for the disk.
    fsync: Option<String>,
}

/// Header carrying a file's permission bits (octal) on `GET ?view=read`.
pub const MODE_HEADER: &str = "x-sremote-mode";
/// Header carrying a file's modification time (seconds since the epoch) on `GET ?view=read`.
pub const MTIME_HEADER: &str = "x-sremote-mtime";

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

/// `GET`: the file's bytes with `view=read`, else a listing.
pub async fn get(
    State(state): State<Arc<AppState>>,
    _user: AuthUser,
    uri: OriginalUri,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    let raw = split_uri(&state, &uri)?;
    let path = state.roots.parse(&raw)?;
    let real = state.roots.existing(&path).await?;
    let what = path.display().to_string();
    let meta = tokio::fs::metadata(&real)
        .await
        .map_err(|e| ApiError::io(&what, &e))?;
    match q.view.as_deref() {
        Some("read") => {
            if meta.is_dir() {
                return Err(ApiError::unprocessable(
                    "is_directory",
                    format!("{what} is a directory"),
                ));
            }
            let file = tokio::fs::File::open(&real)
                .await
                .map_err(|e| ApiError::io(&what, &e))?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10);
            let mut resp = Body::from_stream(stream).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
            if let Ok(v) =
                HeaderValue::from_str(&format!("{:o}", meta.permissions().mode() & 0o7777))
            {
                h.insert(MODE_HEADER, v);
            }
            if let Some(secs) = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            {
                h.insert(MTIME_HEADER, HeaderValue::from(secs.as_secs()));
            }
            Ok(resp)
        }
        Some(other) => Err(ApiError::unprocessable(
            "bad_view",
            format!("unknown view {other:?}; use view=read"),
        )),
        None if meta.is_dir() => {
            let mut entries = Vec::new();
            let mut rd = tokio::fs::read_dir(&real)
                .await
                .map_err(|e| ApiError::io(&what, &e))?;
            while let Some(e) = rd.next_entry().await.map_err(|e| ApiError::io(&what, &e))? {
                if let Ok(m) = e.metadata().await {
                    entries.push(entry(&e.file_name(), &m));
                }
            }
            entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            Ok(Json(entries).into_response())
        }
        None => {
            let m = tokio::fs::symlink_metadata(&path)
                .await
                .map_err(|e| ApiError::io(&what, &e))?;
            Ok(Json(vec![entry(path.file_name().unwrap_or(OsStr::new("/")), &m)]).into_response())
        }
    }
}

/// One listing entry, NEWT-like (`name`, `perms`, `size`, `user`, `group`, `date`, …).
fn entry(name: &OsStr, m: &std::fs::Metadata) -> serde_json::Value {
    let ft = m.file_type();
    let (kind, c) = if ft.is_dir() {
        ("dir", 'd')
    } else if ft.is_symlink() {
        ("symlink", 'l')
    } else if ft.is_file() {
        ("file", '-')
    } else {
        ("other", '?')
    };
    let mode = m.permissions().mode();
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
        "hardlinks": m.nlink(),
        "user": m.uid(),
        "group": m.gid(),
        "size": m.len(),
        "date": m.mtime(),
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
    let mode = parse_mode(&q)?;
    let max = state.config.limits.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(ApiError::too_large(max));
    }
    let (dir, name) = state.roots.parent(&path, true).await?;
    let what = path.display().to_string();
    let ioerr = |e: std::io::Error| ApiError::io(&what, &e);
    let tmp = tempfile::Builder::new()
        .prefix(".sremote-part-")
        .tempfile_in(&dir)
        .map_err(ioerr)?;
    let (file, tmp_path) = tmp.into_parts();
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
            return Err(ApiError::too_large(max)); // tmp_path is removed on drop
        }
        buf.extend_from_slice(&data);
        if buf.len() >= 1 << 20 {
            file.write_all(&buf).await.map_err(ioerr)?;
            buf.clear();
        }
    }
    file.write_all(&buf).await.map_err(ioerr)?;
    file.flush().await.map_err(ioerr)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .await
        .map_err(ioerr)?;
    // On disk before the rename and the 200: an answered upload survives a crash of the
    // host right after (unless the client said it is a scratch file).
    let durable = q.fsync.as_deref() != Some("0");
    if durable {
        file.sync_data().await.map_err(ioerr)?;
    }
    drop(file);
    let dest = dir.join(&name);
    tokio::task::spawn_blocking(move || {
        tmp_path.persist(&dest).map_err(|e| e.error)?;
        // The rename too: the directory entry is on disk before the answer.
        if durable {
            std::fs::File::open(&dir)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(ioerr)?;
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
    let (dir, name) = state.roots.parent(&path, false).await?;
    let target = dir.join(name);
    let what = path.display().to_string();
    let meta = tokio::fs::symlink_metadata(&target)
        .await
        .map_err(|e| ApiError::io(&what, &e))?;
    let res = if meta.is_dir() {
        tokio::fs::remove_dir(&target).await
    } else {
        tokio::fs::remove_file(&target).await
    };
    res.map_err(|e| ApiError::io(&what, &e))?;
    Ok(Json(serde_json::json!({ "status": "OK", "error": "" })))
}
