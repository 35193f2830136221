//! Confining file requests to the configured roots.
//!
//! A request path is percent-decoded by us (never by a router), then refused with 403 if it
//! holds a NUL byte or a `..` component, or if it is not inside a root. It is then opened
//! *beneath the root's directory handle* (see [`crate::beneath`]: `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), never by its path, so a symlink — or a
//! directory swapped for one while the request runs — cannot lead outside. A symlink
//! from one root into another is followed (its canonical path names the other root, and
//! the open is again confined beneath that root's handle). Writes create missing
//! directories, temporary files and renames relative to handles obtained the same way.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::beneath;
use crate::error::{ApiError, GatewayError};

/// One root: as configured, canonical, and a handle on the directory.
#[derive(Debug, Clone)]
struct Root {
    configured: PathBuf,
    canonical: PathBuf,
    fd: Arc<OwnedFd>,
}

/// The directories file requests may touch.
#[derive(Debug, Clone)]
pub struct Roots {
    roots: Vec<Root>,
    home: PathBuf,
}

/// An OS error on `what` as an answer; escapes are 403.
pub fn os_error(what: &str, e: Errno) -> ApiError {
    match e {
        Errno::XDEV => ApiError::forbidden(format!("{what} leads outside every root (symlink)")),
        Errno::LOOP => ApiError::forbidden(format!(
            "{what}: a symlink that cannot be followed safely here (loop, or a kernel \
             without openat2)"
        )),
        Errno::AGAIN => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{what}: the path kept changing while it was opened; try again"),
        ),
        _ => ApiError::io(what, &std::io::Error::from(e)),
    }
}

impl Roots {
    /// Resolve the configured roots (they must exist) and open a handle on each.
    pub fn new(roots: &[PathBuf], home: &Path) -> Result<Roots, GatewayError> {
        let mut out = Vec::new();
        for r in roots {
            let bad = |e: &dyn std::fmt::Display| {
                GatewayError::Config(format!("root {}: {e}", r.display()))
            };
            let c = std::fs::canonicalize(r).map_err(|e| bad(&e))?;
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = rustix::fs::open(&c, flags, Mode::empty()).map_err(|e| match e {
                Errno::NOTDIR => bad(&"not a directory"),
                e => bad(&e),
            })?;
            out.push(Root {
                configured: lexical(r),
                canonical: c,
                fd: Arc::new(fd),
            });
        }
        Ok(Roots {
            roots: out,
            home: home.to_path_buf(),
        })
    }

    /// The root `abs` is (lexically) in — the most specific one — and the rest of the path.
    fn locate(&self, abs: &Path) -> Option<(&Root, PathBuf)> {
        self.roots
            .iter()
            .flat_map(|r| [(r, &r.configured), (r, &r.canonical)])
            .filter_map(|(r, prefix)| Some((r, abs.strip_prefix(prefix).ok()?.to_path_buf())))
            .min_by_key(|(_, rel)| rel.components().count())
    }

    /// Turn the percent-encoded path of a `/file/<machine>/<path>` URL into an absolute path
    /// that is lexically inside a root. `~` or `~/…` (an extension) is the gateway user's home.
    pub fn parse(&self, encoded: &str) -> Result<PathBuf, ApiError> {
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
        if bytes.contains(&0) {
            return Err(ApiError::forbidden("the path contains a NUL byte"));
        }
        let raw = PathBuf::from(OsString::from_vec(bytes));
        let mut comps = raw.components().peekable();
        let mut abs = match comps.peek() {
            Some(Component::Normal(c)) if *c == "~" => {
                comps.next();
                self.home.clone()
            }
            _ => PathBuf::from("/"),
        };
        for c in comps {
            match c {
                Component::Normal(n) => abs.push(n),
                Component::ParentDir => {
                    return Err(ApiError::forbidden("the path contains a `..` component"));
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        if self.locate(&abs).is_none() {
            return Err(ApiError::forbidden(format!(
                "{} is outside every root of this gateway",
                abs.display()
            )));
        }
        Ok(abs)
    }

    /// Open `path` (from [`parse`](Self::parse)) beneath its root, following only symlinks
    /// that stay inside the roots. Blocking: call off the async threads.
    pub fn open(&self, path: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, ApiError> {
        let what = path.display().to_string();
        let Some((root, rel)) = self.locate(path) else {
            return Err(ApiError::forbidden(format!("{what} is outside every root")));
        };
        match beneath::open(root.fd.as_fd(), &rel, flags, mode) {
            Err(Errno::XDEV) => self.open_via_another_root(path, flags, mode),
            other => other.map_err(|e| os_error(&what, e)),
        }
    }

    /// A symlink led out of its root: allowed only into another root. The canonical path
    /// only picks that root; the open itself is again confined beneath its handle.
    fn open_via_another_root(
        &self,
        path: &Path,
        flags: OFlags,
        mode: Mode,
    ) -> Result<OwnedFd, ApiError> {
        let what = path.display().to_string();
        let escape = || os_error(&what, Errno::XDEV);
        let canonical = std::fs::canonicalize(path).map_err(|_| escape())?;
        let (root, rel) = self
            .roots
            .iter()
            .filter_map(|r| Some((r, canonical.strip_prefix(&r.canonical).ok()?)))
            .min_by_key(|(_, rel)| rel.components().count())
            .ok_or_else(escape)?;
        beneath::open(root.fd.as_fd(), rel, flags, mode).map_err(|e| os_error(&what, e))
    }

    /// A directory handle (readable, so it can be listed and fsynced) on `dir`.
    pub fn open_dir(&self, dir: &Path) -> Result<OwnedFd, ApiError> {
        self.open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
    }

    /// For a write or delete: a handle on the parent directory (inside a root) and the file
    /// name. With `create`, missing parents are created, each beneath a root's handle.
    pub fn parent(&self, path: &Path, create: bool) -> Result<(OwnedFd, OsString), ApiError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(ApiError::forbidden(format!(
                "{} cannot be written",
                path.display()
            )));
        };
        if self
            .locate(path)
            .is_some_and(|(_, rel)| rel.as_os_str().is_empty())
        {
            return Err(ApiError::forbidden(format!(
                "{} is a root: it cannot be written or removed",
                path.display()
            )));
        }
        let dir = if create {
            self.ensure_dir(parent)?
        } else {
            self.open_dir(parent)?
        };
        Ok((dir, name.to_os_string()))
    }

    /// Open `dir`, creating it (and missing parents below its root) when missing.
    fn ensure_dir(&self, dir: &Path) -> Result<OwnedFd, ApiError> {
        match self.open_dir(dir) {
            Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
                let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
                    return Err(e);
                };
                if self.locate(parent).is_none() {
                    return Err(e); // never create a root or anything above one
                }
                let at = self.ensure_dir(parent)?;
                match rustix::fs::mkdirat(&at, name, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(os_error(&dir.display().to_string(), e)),
                }
                self.open_dir(dir)
            }
            other => other,
        }
    }
}

/// Normalise a path without touching the file system (drop `.` and repeated `/`).
fn lexical(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal_nul_outside_and_symlinks() {
        let base = tempfile::tempdir().expect("tempdir");
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("secret"), "x").expect("write");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        let roots = Roots::new(std::slice::from_ref(&root), &root).expect("roots");
        let enc = |p: &Path| p.to_string_lossy().trim_start_matches('/').to_string();
        let r = enc(&root);
        for bad in [
            format!("{r}/../outside/secret"),
            format!("{r}/%2e%2e/outside/secret"),
            format!("{r}/%2E%2E/outside/secret"),
            format!("{r}/a%00b"),
            enc(&outside.join("secret")),
            "etc/passwd".to_string(),
        ] {
            let e = roots.parse(&bad).expect_err(&bad);
            assert_eq!(e.status, 403, "{bad}");
        }
        let p = roots
            .parse(&format!("{r}/link/secret"))
            .expect("lexically inside");
        let ro = OFlags::RDONLY;
        assert_eq!(
            roots.open(&p, ro, Mode::empty()).expect_err("out").status,
            403
        );
        let e = roots
            .parse(&format!("{r}/link/new/file"))
            .expect("lexically inside");
        assert_eq!(roots.parent(&e, true).expect_err("out").status, 403);
        assert!(!outside.join("new").exists(), "nothing created outside");
        let ok = roots.parse(&format!("{r}/./a//b/c.txt")).expect("inside");
        let (_dir, name) = roots.parent(&ok, true).expect("created");
        assert!(root.join("a/b").is_dir() && name == "c.txt");
        assert_eq!(
            roots.parse("~/x").expect("home").parent(),
            Some(root.as_path())
        );
        let r = roots.parse(&enc(&root)).expect("the root");
        assert_eq!(roots.parent(&r, false).expect_err("root").status, 403);
    }

    #[test]
    fn a_symlink_into_another_root_is_followed() {
        let base = tempfile::tempdir().expect("tempdir");
        let (home, scratch) = (base.path().join("home"), base.path().join("scratch"));
        std::fs::create_dir_all(&home).expect("mkdir");
        std::fs::create_dir_all(scratch.join("alice")).expect("mkdir");
        std::fs::write(scratch.join("alice/data"), "d").expect("write");
        std::os::unix::fs::symlink(scratch.join("alice"), home.join("scratch")).expect("link");
        let roots = Roots::new(&[home.clone(), scratch.clone()], &home).expect("roots");
        let p = roots.parse("~/scratch/data").expect("inside");
        roots
            .open(&p, OFlags::RDONLY, Mode::empty())
            .expect("followed into the other root");
    }
}
