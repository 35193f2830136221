//! Self-discovery: where the endpoint's sremote dir, tmp dir and plugin modules are.
//!
//! The sremote dir is, in order:
//! 1. `$SREMOTE_DIR` when set and not empty;
//! 2. the `sremote` field of `~/.sremote/.location` (JSON; absolute, or relative to `HOME`);
//! 3. `<dir>` when the executable is `<dir>/bin/sremote-endpoint…` (the installed layout);
//! 4. `~/.sremote`.
//!
//! The tmp dir is `<SREMOTE_DIR>/tmp` when `$SREMOTE_DIR` is set; else `.location`'s
//! `absolute_tmp` (absolute; were it relative, relative to `HOME` like `sremote`), or its
//! `relative_tmp` (relative to the sremote dir); else `<sremote>/tmp`. The client reads
//! `.location` by the same rule (PROTOCOL.md, "Self-discovery").
//! Plugin modules live in `<sremote>/modules`.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where the endpoint keeps its files on this host (all paths absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The sremote dir (`~/.sremote` by default).
    pub sremote: PathBuf,
    /// Scratch space for request/response files and jobs.
    pub tmp: PathBuf,
    /// Plugin executables: `<sremote>/modules/<module>`.
    pub modules: PathBuf,
}

#[derive(serde::Deserialize, Default)]
struct LocationFile {
    sremote: Option<String>,
    absolute_tmp: Option<String>,
    relative_tmp: Option<String>,
}

impl Location {
    /// Discover the location from the environment, `~/.sremote/.location` and the
    /// executable's path (see the module docs). Never fails: an unreadable or invalid
    /// `.location` is ignored.
    pub fn discover() -> Location {
        let home = home_dir();
        let file: LocationFile = std::fs::read(home.join(".sremote").join(".location"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        if let Some(dir) = std::env::var_os("SREMOTE_DIR").filter(|d| !d.is_empty()) {
            return Location::for_dir(absolute(Path::new(&dir)));
        }
        let sremote = file
            .sremote
            .filter(|s| !s.is_empty())
            .map(|s| absolute(&home.join(s)))
            .or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|exe| installed_dir(&exe))
            })
            .unwrap_or_else(|| home.join(".sremote"));
        let tmp = match (
            file.absolute_tmp.filter(|s| !s.is_empty()),
            file.relative_tmp.filter(|s| !s.is_empty()),
        ) {
            (Some(abs), _) => absolute(&home.join(abs)),
            (None, Some(rel)) => sremote.join(rel),
            (None, None) => sremote.join("tmp"),
        };
        Location {
            modules: sremote.join("modules"),
            sremote,
            tmp,
        }
    }

    /// The standard layout under `dir`: `dir/tmp`, `dir/modules`.
    pub fn for_dir(dir: impl Into<PathBuf>) -> Location {
        let sremote = absolute(&dir.into());
        Location {
            tmp: sremote.join("tmp"),
            modules: sremote.join("modules"),
            sremote,
        }
    }

    /// The plugin executable for `module`, if one exists. `module` must already be a
    /// valid module name (no `/`, not starting with `.`).
    pub fn plugin(&self, module: &str) -> Option<PathBuf> {
        let path = self.modules.join(module);
        is_executable(&path).then_some(path)
    }

    /// Names of all plugin executables, sorted.
    pub fn plugins(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.modules) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::module::valid_name(n) && is_executable(&self.modules.join(n)))
            .collect();
        names.sort();
        names
    }
}

/// `<dir>` for an executable installed as `<dir>/bin/sremote-endpoint…`.
fn installed_dir(exe: &Path) -> Option<PathBuf> {
    let name = exe.file_name()?.to_str()?;
    let bin = exe.parent()?;
    (name.starts_with("sremote-endpoint") && bin.file_name()? == "bin")
        .then(|| bin.parent().map(Path::to_path_buf))?
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `$HOME`, else the home dir of this uid from `/etc/passwd`, else `/`.
pub(crate) fn home_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    // getpwuid() is avoided: in a static glibc binary it needs NSS libraries at run time.
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() }.to_string();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() >= 6 && fields[2] == uid).then(|| PathBuf::from(fields[5]))
            })
        })
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_layout_is_recognised() {
        assert_eq!(
            installed_dir(Path::new("/h/.sremote/bin/sremote-endpoint-0.1.0")),
            Some(PathBuf::from("/h/.sremote"))
        );
        assert_eq!(
            installed_dir(Path::new("/repo/target/debug/sremote-endpoint")),
            None
        );
        assert_eq!(installed_dir(Path::new("/usr/bin/python3")), None);
    }

    #[test]
    fn for_dir_layout() {
        let loc = Location::for_dir("/srv/sr");
        assert_eq!(loc.tmp, PathBuf::from("/srv/sr/tmp"));
        assert_eq!(loc.modules, PathBuf::from("/srv/sr/modules"));
        assert_eq!(loc.plugin("nothing-here"), None);
    }
}
