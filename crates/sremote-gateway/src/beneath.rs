//! Opening a path *beneath* a directory handle, so that nothing — a symlink, a `..`, or a
//! directory swapped for a symlink while the request runs — leads out of it.
//!
//! Linux 5.6+ does this in one call: `openat2(root, path, RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` resolves every component under the handle, follows symlinks
//! only while they stay beneath it (an escape is `EXDEV`), never follows `/proc` magic
//! links, and retries internally or answers `EAGAIN` when a rename races it. Where
//! `openat2` is missing (`ENOSYS`: older kernels, some seccomp filters) the path is walked
//! one component at a time from the handle, each opened with `O_NOFOLLOW`: no symlink is
//! followed at all there (`ELOOP`/`ENOTDIR`), which is stricter but just as safe.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Cleared the first time `openat2` answers `ENOSYS`.
static HAVE_OPENAT2: AtomicBool = AtomicBool::new(true);

/// How often an `openat2` that raced a rename (`EAGAIN`) is tried again.
const RACE_RETRIES: usize = 32;

/// `O_CLOEXEC`, and `O_NOCTTY` unless `O_PATH` (which `openat2` allows with nothing else).
fn with_defaults(flags: OFlags) -> OFlags {
    if flags.contains(OFlags::PATH) {
        flags | OFlags::CLOEXEC
    } else {
        flags | OFlags::CLOEXEC | OFlags::NOCTTY
    }
}

/// Open `rel` beneath `root`. `rel` must be relative and hold only normal components (the
/// caller has refused `..`); empty means `root` itself. `O_CLOEXEC` (and `O_NOCTTY`) are
/// added to `flags`.
pub fn open(root: BorrowedFd<'_>, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    let flags = with_defaults(flags);
    let target = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    if HAVE_OPENAT2.load(Ordering::Relaxed) {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        for _ in 0..RACE_RETRIES {
            match rustix::fs::openat2(root, target, flags, mode, how) {
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => {
                    HAVE_OPENAT2.store(false, Ordering::Relaxed);
                    return walk(root, rel, flags, mode);
                }
                other => return other,
            }
        }
        return Err(Errno::AGAIN);
    }
    walk(root, rel, flags, mode)
}

/// The fallback: every component opened with `O_NOFOLLOW` from the handle before it, so
/// no symlink is ever followed.
pub fn walk(root: BorrowedFd<'_>, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    let flags = with_defaults(flags);
    let comps: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Ok(n)),
            Component::CurDir => None,
            _ => Some(Err(Errno::XDEV)),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, dirs)) = comps.split_last() else {
        return rustix::fs::openat(root, ".", flags, mode);
    };
    let mut cur: Option<OwnedFd> = None;
    for dir in dirs {
        let at = cur.as_ref().map_or(root, |f| f.as_fd());
        let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        cur = Some(rustix::fs::openat(at, *dir, step, Mode::empty())?);
    }
    let at = cur.as_ref().map_or(root, |f| f.as_fd());
    rustix::fs::openat(at, *last, flags | OFlags::NOFOLLOW, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused_by_openat2_and_by_the_walk() {
        let base = tempfile::tempdir().expect("tempdir");
        let root = base.path().join("root");
        std::fs::create_dir_all(root.join("d")).expect("mkdir");
        std::fs::write(root.join("d/f"), "in").expect("write");
        std::fs::write(base.path().join("secret"), "out").expect("write");
        std::os::unix::fs::symlink(base.path(), root.join("up")).expect("symlink");
        std::os::unix::fs::symlink("d", root.join("inner")).expect("symlink");
        let fd =
            rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).expect("root");
        let ro = OFlags::RDONLY;
        assert!(open(fd.as_fd(), Path::new("d/f"), ro, Mode::empty()).is_ok());
        assert!(
            open(fd.as_fd(), Path::new("inner/f"), ro, Mode::empty()).is_ok(),
            "a symlink that stays beneath is followed"
        );
        assert_eq!(
            open(fd.as_fd(), Path::new("up/secret"), ro, Mode::empty()).err(),
            Some(Errno::XDEV)
        );
        assert!(walk(fd.as_fd(), Path::new("d/f"), ro, Mode::empty()).is_ok());
        assert!(walk(fd.as_fd(), Path::new("up/secret"), ro, Mode::empty()).is_err());
        assert!(walk(fd.as_fd(), Path::new("inner/f"), ro, Mode::empty()).is_err());
        assert!(walk(fd.as_fd(), Path::new("../secret"), ro, Mode::empty()).is_err());
    }
}
