//! Built-in module `os`: environment, directories, files' metadata, host identity.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::time::UNIX_EPOCH;

use serde::Serialize;

use crate::error::CallError;
use crate::module::ModuleBuilder;

pub(crate) fn register(m: &mut ModuleBuilder) {
    m.doc("Operating-system services: environment, directories, file metadata, host identity.");
    m.function("getenv", getenv)
        .params(&["key", "default"])
        .doc("The value of environment variable `key`, or `default` when it is not set.")
        .function("environ", environ)
        .doc("All environment variables.")
        .function("getcwd", getcwd)
        .doc("The current working directory.")
        .function("listdir", listdir)
        .params(&["path"])
        .default("path", ".")
        .doc("Names of the entries of directory `path`, sorted.")
        .function("makedirs", makedirs)
        .params(&["path", "exist_ok"])
        .default("exist_ok", false)
        .doc("Create directory `path` and its missing parents.")
        .function("remove", remove)
        .params(&["path"])
        .doc("Remove file `path`.")
        .function("rmdir", rmdir)
        .params(&["path"])
        .doc("Remove empty directory `path`.")
        .function("rename", rename)
        .params(&["src", "dst"])
        .doc("Rename `src` to `dst`.")
        .function("stat", stat)
        .params(&["path"])
        .returns("dict")
        .doc("{size, mode, mtime, is_dir, is_file, is_symlink, uid, gid} of `path` (follows symlinks).")
        .function("path_exists", path_exists)
        .params(&["path"])
        .doc("Whether `path` exists (a broken symlink does not).")
        .function("cpu_count", cpu_count)
        .doc("Number of online CPUs.")
        .function("getpid", getpid)
        .doc("Process id of the endpoint.")
        .function("uname", uname)
        .returns("dict")
        .doc("{sysname, nodename, release, version, machine}.");
}

fn getenv(key: String, default: Option<String>) -> Option<String> {
    std::env::var_os(&key)
        .map(|v| v.to_string_lossy().into_owned())
        .or(default)
}

fn environ() -> BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

fn getcwd() -> Result<String, CallError> {
    std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| CallError::raised(format!("os.getcwd(): {e}")))
}

fn listdir(path: String) -> Result<Vec<String>, CallError> {
    let entries = std::fs::read_dir(&path).map_err(|e| CallError::os("os.listdir", &path, &e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CallError::os("os.listdir", &path, &e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn makedirs(path: String, exist_ok: bool) -> Result<(), CallError> {
    if !exist_ok && std::fs::symlink_metadata(&path).is_ok() {
        let e = std::io::Error::from_raw_os_error(libc::EEXIST);
        return Err(CallError::os("os.makedirs", &path, &e));
    }
    std::fs::create_dir_all(&path).map_err(|e| CallError::os("os.makedirs", &path, &e))?;
    if !std::path::Path::new(&path).is_dir() {
        let e = std::io::Error::from_raw_os_error(libc::EEXIST);
        return Err(CallError::os("os.makedirs", &path, &e));
    }
    Ok(())
}

fn remove(path: String) -> Result<(), CallError> {
    std::fs::remove_file(&path).map_err(|e| CallError::os("os.remove", &path, &e))
}

fn rmdir(path: String) -> Result<(), CallError> {
    std::fs::remove_dir(&path).map_err(|e| CallError::os("os.rmdir", &path, &e))
}

fn rename(src: String, dst: String) -> Result<(), CallError> {
    std::fs::rename(&src, &dst)
        .map_err(|e| CallError::raised(format!("os.rename({src:?}, {dst:?}): {e}")))
}

/// The result of `os.stat`.
#[derive(Debug, Serialize)]
struct Stat {
    size: u64,
    mode: u32,
    /// Seconds since the Unix epoch, with fraction.
    mtime: f64,
    is_dir: bool,
    is_file: bool,
    is_symlink: bool,
    uid: u32,
    gid: u32,
}

fn stat(path: String) -> Result<Stat, CallError> {
    let link = std::fs::symlink_metadata(&path).map_err(|e| CallError::os("os.stat", &path, &e))?;
    // Follow a symlink like Python's os.stat; a dangling one reports the link itself.
    let meta = if link.file_type().is_symlink() {
        std::fs::metadata(&path).unwrap_or(link.clone())
    } else {
        link.clone()
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or_else(|| meta.mtime() as f64 + meta.mtime_nsec() as f64 * 1e-9);
    Ok(Stat {
        size: meta.len(),
        mode: meta.mode(),
        mtime,
        is_dir: meta.is_dir(),
        is_file: meta.is_file(),
        is_symlink: link.file_type().is_symlink(),
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

fn path_exists(path: String) -> bool {
    std::path::Path::new(&path).exists()
}

fn cpu_count() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

fn getpid() -> u32 {
    std::process::id()
}

/// The result of `os.uname` (also used by `sys.probe`).
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

pub(crate) fn uname() -> Result<Uname, CallError> {
    // SAFETY: utsname is plain old data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(CallError::raised(format!(
            "os.uname(): {}",
            std::io::Error::last_os_error()
        )));
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates every field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(Uname {
        sysname: field(&u.sysname),
        nodename: field(&u.nodename),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_functions_and_error_messages() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b").display().to_string();
        makedirs(d.clone(), false).unwrap();
        assert!(
            makedirs(d.clone(), false)
                .unwrap_err()
                .message
                .contains("File exists")
        );
        makedirs(d.clone(), true).unwrap();
        std::fs::write(format!("{d}/f"), "x").unwrap();
        assert_eq!(listdir(d.clone()).unwrap(), vec!["f"]);
        let s = stat(format!("{d}/f")).unwrap();
        assert!(s.is_file && !s.is_dir && s.size == 1 && s.mtime > 1e9);
        rename(format!("{d}/f"), format!("{d}/g")).unwrap();
        remove(format!("{d}/g")).unwrap();
        rmdir(d.clone()).unwrap();
        assert!(!path_exists(d.clone()));
        let e = remove("/nonexistent/x".into()).unwrap_err();
        assert_eq!(
            e.message,
            "os.remove(\"/nonexistent/x\"): No such file or directory (os error 2)"
        );
    }

    #[test]
    fn identity() {
        assert!(cpu_count() >= 1);
        assert_eq!(getpid(), std::process::id());
        assert_eq!(uname().unwrap().sysname, "Linux");
        assert_eq!(
            getenv("SREMOTE_SURELY_UNSET_VAR".into(), Some("d".into())),
            Some("d".into())
        );
    }
}
