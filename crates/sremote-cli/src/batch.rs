//! Many small files in one round trip: a tar stream through one `exec` (`tar -x` or
//! `tar -c` on the host), built and unpacked here with the `tar` crate. File names travel
//! inside the archive or as argv words, never through a shell. Hosts without `tar` get
//! one transfer per file instead.

use std::io::Cursor;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use sremote_core::{Error, RemoteCommand};
use tar::EntryType;

use crate::hosts::Connected;
use crate::walk::LocalFile;

/// Files up to this size travel in batches.
pub const SMALL: u64 = 1 << 20;
const BATCH_BYTES: u64 = 16 << 20;
const BATCH_FILES: usize = 2000;

/// `$1` the directory (created), then the directories (relative to it, `.` for itself)
/// that hold the archive's files; the archive on stdin. It is unpacked into a private
/// directory below `$1` first, so that a failure (a full disk) leaves no file truncated
/// under its final name; then each directory's files are moved into place, one `mv` per
/// directory (renames on one file system). `-o`: files belong to the user running it,
/// whatever the archive says. Exit 127: no tar.
const UNTAR: &str = r#"r=$1; shift
mkdir -p -- "$r" || exit 1
t=$(mktemp -d "$r/.sremote-part.XXXXXX" 2>/dev/null) || { t="$r/.sremote-part.$$"; mkdir -m 700 -- "$t"; } || exit 1
trap 'rm -rf -- "$t"' EXIT
trap 'exit 1' HUP INT TERM PIPE
tar -x -o -f - -C "$t"; s=$?
[ $s -eq 0 ] || exit $s
for d do
  set --
  for f in "$t/$d"/* "$t/$d"/.[!.]* "$t/$d"/..?*; do
    [ -f "$f" ] && [ ! -h "$f" ] && set -- "$@" "$f"
  done
  [ $# -eq 0 ] || mv -f -- "$@" "$r/$d/" || s=1
done
exit $s"#;

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
    Error::usage(
        format!("{what} on {} failed: {stderr}", c.spec.name),
        "check the space and permissions there",
    )
}

/// Push `files` into `root` on the host as one tar stream.
/// Each file lands whole or not at all: a failure (a full disk) leaves none of the
/// batch's files under its final name (see `UNTAR`).
pub async fn push(c: &Connected, files: Vec<LocalFile>, root: &str) -> Result<Batch, Error> {
    let dirs: std::collections::BTreeSet<String> = files
        .iter()
        .map(|f| match f.rel.rsplit_once('/') {
            Some((dir, _)) => dir.to_string(),
            None => ".".to_string(),
        })
        .collect();
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
        .args(dirs)
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

/// What a pull batch brought.
#[derive(Debug, Default)]
pub struct Unpacked {
    pub bytes: u64,
    /// Entries not written, with the reason (a symlink that leads out of the tree…).
    pub skipped: Vec<String>,
}

/// Pull `rels` (relative to `root` on the host) into the local directory `into`
/// (`None`: the host has no tar). Each file lands atomically (temp + rename); symlinks
/// come back only when they stay inside the tree (see [`link_stays_inside`]).
pub async fn pull(
    c: &Connected,
    rels: &[String],
    root: &str,
    into: &Path,
) -> Result<Option<Unpacked>, Error> {
    let cmd = RemoteCommand::new("/bin/sh")
        .args(["-c", TAR, "sremote-tar", root])
        .args(rels.iter().map(|r| format!("./{r}")));
    let out = c.connector.exec(&cmd).await?;
    match out.exit_code {
        Some(0) => {}
        Some(127) => return Ok(None),
        _ => {
            return Err(failed(
                c,
                &format!("packing files of {root}"),
                &out.stderr_text(),
            ));
        }
    }
    let into: PathBuf = into.to_path_buf();
    tokio::task::spawn_blocking(move || unpack(out.stdout, &into))
        .await
        .map_err(|e| Error::Usage(format!("unpack task failed: {e}")))?
        .map(Some)
}

/// `p` as a path of normal components only (`./` dropped); `None` for anything that could
/// leave the directory (`..`, an absolute path) or names nothing.
fn member(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Whether a symlink at `rel` (relative to the top of the tree) pointing to `target`
/// resolves inside the tree: a relative target that climbs at most as many `..` as `rel`
/// is deep, all of them first, then only goes down. (`a/../x` is refused: `a` could be a
/// link itself.) Every link in the tree obeying this, none leads out.
pub fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    let depth = rel.components().count().saturating_sub(1);
    let (mut up, mut down) = (0, 0);
    for c in target.components() {
        match c {
            Component::ParentDir if down == 0 => up += 1,
            Component::Normal(_) => down += 1,
            Component::CurDir => {}
            _ => return false,
        }
    }
    down > 0 && up <= depth
}

/// Unpack a tar stream from the host below `into`, never outside it.
fn unpack(data: Vec<u8>, into: &Path) -> Result<Unpacked, Error> {
    let garbled = |e: std::io::Error| Error::Usage(format!("a garbled archive came back: {e}"));
    let write_err = |p: &Path, e: std::io::Error| {
        Error::usage(
            format!("cannot write {}: {e}", p.display()),
            "check the local disk space and permissions",
        )
    };
    let top = std::fs::canonicalize(into).map_err(|e| write_err(into, e))?;
    let mut archive = tar::Archive::new(Cursor::new(data));
    let mut done = Unpacked::default();
    let mut written = std::collections::HashSet::new();
    for entry in archive.entries().map_err(garbled)? {
        let mut entry = entry.map_err(garbled)?;
        let path = entry.path().map_err(garbled)?.into_owned();
        let rel = member(&path).ok_or_else(|| {
            Error::Usage(format!(
                "the host sent a path outside {} ({}): refused",
                into.display(),
                path.display()
            ))
        })?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            let dir = top.join(&rel);
            std::fs::create_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
            continue;
        }
        let dest = place(&top, &rel).map_err(|e| write_err(&top.join(&rel), e))?;
        let link = entry.link_name().map_err(garbled)?.map(|l| l.into_owned());
        let shown = rel.display();
        let landed = match (kind, link) {
            (EntryType::Regular | EntryType::Continuous, _) => {
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
                let mtime = entry.header().mtime().ok();
                done.bytes += entry.size();
                land(&dest, |f| {
                    std::io::copy(&mut entry, f)?;
                    if let Some(t) = mtime {
                        f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(t))?;
                    }
                    f.set_permissions(std::fs::Permissions::from_mode(mode))
                })
            }
            (EntryType::Symlink, Some(target)) if link_stays_inside(&rel, &target) => {
                land_symlink(&dest, &target)
            }
            (EntryType::Symlink, Some(target)) => {
                done.skipped.push(format!(
                    "{shown} (a symlink to {}, which leads out of the tree)",
                    target.display()
                ));
                continue;
            }
            (EntryType::Link, Some(target))
                if member(&target).is_some_and(|t| written.contains(&t)) =>
            {
                let from = top.join(member(&target).unwrap_or_default());
                land(&dest, |f| {
                    std::io::copy(&mut std::fs::File::open(&from)?, f)?;
                    let meta = std::fs::metadata(&from)?;
                    f.set_modified(meta.modified()?)?;
                    f.set_permissions(meta.permissions())
                })
            }
            _ => {
                done.skipped.push(format!("{shown} (not a regular file)"));
                continue;
            }
        };
        landed.map_err(|e| write_err(&dest, e))?;
        written.insert(rel);
    }
    Ok(done)
}

/// Where `rel` lands below `top` (canonical): its directory is created, and must not
/// lead out of `top` (a symlink on the way).
fn place(top: &Path, rel: &Path) -> std::io::Result<PathBuf> {
    let parent = top.join(rel.parent().unwrap_or(Path::new("")));
    std::fs::create_dir_all(&parent)?;
    let real = std::fs::canonicalize(&parent)?;
    if !real.starts_with(top) {
        return Err(std::io::Error::other(format!(
            "its directory leads out of {} (to {}): refused",
            top.display(),
            real.display()
        )));
    }
    Ok(real.join(rel.file_name().unwrap_or_default()))
}

/// A private temp name beside `dest`.
fn temp_beside(dest: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let n = N.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!(".{name}.sremote-{}-{n}", std::process::id()))
}

/// Write `dest` through a temp file beside it (filled by `fill`), renamed into place
/// only when complete: a failure leaves the old `dest` (or nothing) behind.
fn land(
    dest: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temp_beside(dest);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        fill(&mut f)?;
        drop(f);
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn land_symlink(dest: &Path, target: &Path) -> std::io::Result<()> {
    let tmp = temp_beside(dest);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, dest).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulled_links_stay_inside() {
        let ok = |rel: &str, t: &str| link_stays_inside(Path::new(rel), Path::new(t));
        assert!(ok("a", "b.txt"));
        assert!(ok("d/a", "../b.txt"));
        assert!(ok("d/e/a", "../../x/y"));
        assert!(ok("a", "./x"));
        assert!(!ok("a", "/etc/passwd"), "absolute");
        assert!(!ok("a", "../x"), "climbs above the top");
        assert!(!ok("d/a", "../../x"));
        assert!(!ok("a", "b/../x"), "`b` may be a link itself");
        assert!(!ok("a", ".."));
        assert!(!ok("d/a", ".."), "a link to a directory above");
        assert_eq!(member(Path::new("./a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(member(Path::new("a/../b")), None);
        assert_eq!(member(Path::new("/etc/x")), None);
        assert_eq!(member(Path::new(".")), None);
    }

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
