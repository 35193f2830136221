//! Many small files in one round trip: a tar stream through one `exec` (`tar -x` or
//! `tar -c` on the host), built and unpacked here with the `tar` crate. File names travel
//! inside the archive or as argv words, never through a shell. Hosts without `tar` get
//! one transfer per file instead.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use sremote_core::{Error, RemoteCommand};

use crate::hosts::Connected;
use crate::walk::LocalFile;

/// Files up to this size travel in batches.
pub const SMALL: u64 = 1 << 20;
const BATCH_BYTES: u64 = 16 << 20;
const BATCH_FILES: usize = 2000;

/// `$1` the directory (created); the archive on stdin. `-o`: files belong to the user
/// running it, whatever the archive says.
const UNTAR: &str = r#"mkdir -p -- "$1" && exec tar -x -o -f - -C "$1""#;

/// `$1` the directory; the members (`./rel`) follow.
const TAR: &str = r#"cd -- "$1" && shift && exec tar -c -f - "$@""#;

/// Group `items` (with their sizes) into batches of small ones, and the large ones.
/// `SREMOTE_NO_TAR=1` sends everything one by one.
pub fn split<T: Clone>(items: &[T], size: impl Fn(&T) -> u64) -> (Vec<Vec<T>>, Vec<T>) {
    if std::env::var_os("SREMOTE_NO_TAR").is_some_and(|v| v == "1") {
        return (Vec::new(), items.to_vec());
    }
    let (mut batches, mut large) = (Vec::new(), Vec::new());
    let (mut cur, mut cur_bytes) = (Vec::new(), 0u64);
    for it in items {
        let s = size(it);
        if s > SMALL {
            large.push(it.clone());
            continue;
        }
        if !cur.is_empty() && (cur_bytes + s > BATCH_BYTES || cur.len() >= BATCH_FILES) {
            batches.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur_bytes += s;
        cur.push(it.clone());
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    (batches, large)
}

/// What happened to a batch.
pub enum Batch {
    /// Moved; the bytes.
    Done(u64),
    /// The host has no `tar`: move these one by one.
    NoTar,
}

fn failed(c: &Connected, what: &str, stderr: &str) -> Error {
    Error::Usage(format!(
        "{what} on {} failed: {stderr} — check the space and permissions there",
        c.spec.name
    ))
}

/// Push `files` into `root` on the host as one tar stream.
pub async fn push(c: &Connected, files: Vec<LocalFile>, root: &str) -> Result<Batch, Error> {
    let archive = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, u64), Error> {
        let mut b = tar::Builder::new(Vec::new());
        let mut bytes = 0;
        for f in &files {
            b.append_path_with_name(&f.path, &f.rel)
                .map_err(|e| Error::Usage(format!("cannot read {}: {e}", f.path.display())))?;
            bytes += f.size;
        }
        let data = b
            .into_inner()
            .map_err(|e| Error::Usage(format!("cannot build the archive: {e}")))?;
        Ok((data, bytes))
    })
    .await
    .map_err(|e| Error::Usage(format!("archive task failed: {e}")))??;
    let (data, bytes) = archive;
    let cmd = RemoteCommand::new("/bin/sh")
        .args(["-c", UNTAR, "sremote-untar", root])
        .stdin(data);
    let out = c.connector.exec(&cmd).await?;
    match out.exit_code {
        Some(0) => Ok(Batch::Done(bytes)),
        Some(127) => Ok(Batch::NoTar),
        _ => Err(failed(
            c,
            &format!("unpacking files into {root}"),
            &out.stderr_text(),
        )),
    }
}

/// Pull `rels` (relative to `root` on the host) into the local directory `into`.
pub async fn pull(c: &Connected, rels: &[String], root: &str, into: &Path) -> Result<Batch, Error> {
    let cmd = RemoteCommand::new("/bin/sh")
        .args(["-c", TAR, "sremote-tar", root])
        .args(rels.iter().map(|r| format!("./{r}")));
    let out = c.connector.exec(&cmd).await?;
    match out.exit_code {
        Some(0) => {}
        Some(127) => return Ok(Batch::NoTar),
        _ => {
            return Err(failed(
                c,
                &format!("packing files of {root}"),
                &out.stderr_text(),
            ));
        }
    }
    let into: PathBuf = into.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<u64, Error> {
        let mut archive = tar::Archive::new(Cursor::new(out.stdout));
        archive.set_preserve_mtime(true);
        archive.set_preserve_permissions(true);
        let mut bytes = 0;
        let entries = archive
            .entries()
            .map_err(|e| Error::Usage(format!("a garbled archive came back: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| Error::Usage(format!("a garbled archive came back: {e}")))?;
            bytes += entry.size();
            // `unpack_in` refuses names that would land outside `into`.
            let inside = entry
                .unpack_in(&into)
                .map_err(|e| Error::Usage(format!("cannot write below {}: {e}", into.display())))?;
            if !inside {
                return Err(Error::Usage(format!(
                    "the host sent a path outside {}: refused",
                    into.display()
                )));
            }
        }
        Ok(bytes)
    })
    .await
    .map_err(|e| Error::Usage(format!("unpack task failed: {e}")))?
    .map(Batch::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_by_size_and_count() {
        let sizes = [10, SMALL + 1, 10 << 20, 10 << 20, 5];
        let (batches, large) = split(&sizes, |s| *s);
        assert_eq!(large, [SMALL + 1, 10 << 20, 10 << 20]);
        assert_eq!(batches, [vec![10, 5]]);
        let many = vec![1u64; BATCH_FILES + 1];
        let (batches, _) = split(&many, |s| *s);
        assert_eq!(batches.len(), 2);
    }
}
