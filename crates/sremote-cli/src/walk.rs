//! Directory trees on both sides: excludes, local walks, remote listings through the
//! endpoint (`os.listdir`, `os.stat`), so nothing is parsed from a shell's output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use glob::{MatchOptions, Pattern};

pub use crate::ignorefiles::IgnoreFiles;
use serde::Deserialize;
use sremote_core::{Connector, Error, RemoteClient};
use tokio::task::JoinSet;

/// `--exclude` globs. A pattern without `/` matches a name at any depth (`*.o`,
/// `.git`); one with `/` matches the path from the top of the tree (`data/*.tmp`,
/// `**/cache`); a trailing `/` matches directories only (`build/`).
///
/// With [`with_ignore_files`](Excludes::with_ignore_files) it also holds the rules of the
/// ignore files [`local_tree`] finds (`.sremoteignore`, `.gitignore`).
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    patterns: Vec<(Pattern, bool, bool)>,
    files: Option<IgnoreFiles>,
}

impl Excludes {
    pub fn new(globs: &[String]) -> Result<Excludes, Error> {
        let mut patterns = Vec::new();
        for g in globs {
            let dir_only = g.ends_with('/');
            let body = g.trim_end_matches('/').trim_start_matches('/');
            let anchored = body.contains('/') || g.starts_with('/');
            let p = Pattern::new(body).map_err(|e| {
                Error::usage(
                    format!("--exclude {g:?} is not a glob: {e}"),
                    "use *, ?, [abc] and ** (escape with [*])",
                )
            })?;
            patterns.push((p, anchored, dir_only));
        }
        Ok(Excludes {
            patterns,
            files: None,
        })
    }

    /// Also leave out what the ignore files under `top` say (see [`IgnoreFiles`]); they
    /// are read as [`local_tree`] walks `top`.
    pub fn with_ignore_files(mut self, top: &Path, gitignore: bool) -> Result<Excludes, Error> {
        self.files = Some(IgnoreFiles::new(top, gitignore)?);
        Ok(self)
    }

    /// Whether the entry at relative path `rel` (`/`-separated) is excluded.
    pub fn excluded(&self, rel: &str, is_dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let opts = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.patterns.iter().any(|(p, anchored, dir_only)| {
            (!dir_only || is_dir)
                && if *anchored {
                    p.matches_with(rel, opts)
                } else {
                    p.matches_with(name, opts)
                }
        }) || self.files.as_ref().is_some_and(|f| f.ignored(rel, is_dir))
    }
}

/// A regular file of a local tree.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Path relative to the top, `/`-separated.
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, whole seconds since the epoch.
    pub mtime: i64,
}

/// A local directory tree (after excludes).
#[derive(Debug, Clone, Default)]
pub struct LocalTree {
    pub files: Vec<LocalFile>,
    /// Every directory below the top, relative (parents before children).
    pub dirs: Vec<String>,
    /// Entries left out (symlinked directories, sockets, …), for warnings.
    pub skipped: Vec<String>,
    /// The relative paths of those entries (`sync --delete` leaves them alone on the host).
    pub skipped_rels: Vec<String>,
}

impl LocalTree {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

pub fn secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

/// Walk `root` (a directory), leaving out what `ex` excludes (reading the ignore files of
/// each directory it enters into `ex`, when `ex` has them).
///
/// A symlink to a file is sent as a copy of the file it points to when that file is
/// inside `root` (its path then is the resolved one); a symlink that leads out of
/// `root` fails the walk, naming every such link: a push or sync never sends what lies
/// outside LOCAL. Symlinks to directories are not followed (left out, with a warning).
pub fn local_tree(root: &Path, ex: &mut Excludes) -> Result<LocalTree, Error> {
    let mut tree = LocalTree::default();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    let top = std::fs::canonicalize(root).map_err(|e| unreadable(root, e))?;
    let mut outside = Vec::new();
    while let Some((dir, rel)) = stack.pop() {
        if let Some(files) = &mut ex.files {
            files.load(&rel)?;
        }
        let mut subdirs = Vec::new();
        for entry in sorted_entries(&dir)? {
            let name = utf8_name(&entry)?;
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match classify(&entry, &rel, &top, ex)? {
                Found::Excluded => {}
                Found::Skipped(why) => {
                    tree.skipped.push(format!("{rel} ({why})"));
                    tree.skipped_rels.push(rel);
                }
                Found::Dir => {
                    tree.dirs.push(rel.clone());
                    subdirs.push((entry.path(), rel));
                }
                Found::File { path, size, mtime } => tree.files.push(LocalFile {
                    rel,
                    path,
                    size,
                    mtime,
                }),
                Found::Outside(target) => outside.push(format!("{rel} -> {}", target.display())),
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    if !outside.is_empty() {
        return Err(links_out(root, &outside));
    }
    Ok(tree)
}

/// The entries of `dir`, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, Error> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// An entry's name, which must be UTF-8 to be named on the host.
fn utf8_name(entry: &std::fs::DirEntry) -> Result<String, Error> {
    entry
        .file_name()
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| {
            Error::usage(
                format!(
                    "{}: the name is not UTF-8, so it cannot be named on the host",
                    entry.path().display()
                ),
                "rename it or --exclude it",
            )
        })
}

/// What a walk makes of one entry.
enum Found {
    Excluded,
    /// Left out, and why.
    Skipped(&'static str),
    /// A directory to enter.
    Dir,
    /// A file to send (`path`: a symlink resolved).
    File {
        path: PathBuf,
        size: u64,
        mtime: i64,
    },
    /// A symlink to a file outside the tree: where it leads.
    Outside(PathBuf),
}

/// Classify `entry` (at `rel` in the tree whose canonical root is `top`).
fn classify(
    entry: &std::fs::DirEntry,
    rel: &str,
    top: &Path,
    ex: &Excludes,
) -> Result<Found, Error> {
    let path = entry.path();
    let link = entry
        .file_type()
        .map_err(|e| unreadable(&path, e))?
        .is_symlink();
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(_) if link => return Ok(Found::Skipped("a broken symlink")),
        Err(e) => return Err(unreadable(&path, e)),
    };
    if ex.excluded(rel, meta.is_dir()) {
        return Ok(Found::Excluded);
    }
    if meta.is_dir() {
        return Ok(match link {
            true => Found::Skipped("a symlink to a directory"),
            false => Found::Dir,
        });
    }
    if !meta.is_file() {
        return Ok(Found::Skipped("not a regular file"));
    }
    let path = match link {
        true => std::fs::canonicalize(&path).map_err(|e| unreadable(&path, e))?,
        false => path,
    };
    if link && !path.starts_with(top) {
        return Ok(Found::Outside(path));
    }
    Ok(Found::File {
        path,
        size: meta.len(),
        mtime: meta.modified().map(secs).unwrap_or(0),
    })
}

fn unreadable(p: &Path, e: std::io::Error) -> Error {
    Error::usage(
        format!("cannot read {}: {e}", p.display()),
        "check the path and its permissions, or --exclude it",
    )
}

/// The error for symlinks (`rel -> target`) that lead out of `root`.
fn links_out(root: &Path, outside: &[String]) -> Error {
    let (s, verb) = if outside.len() == 1 {
        ("", "leads")
    } else {
        ("s", "lead")
    };
    Error::usage(
        format!(
            "{}: {} symlink{s} {verb} out of the directory, and nothing outside it is sent: {}",
            root.display(),
            outside.len(),
            outside.join(", ")
        ),
        "replace each with a copy of what it points to, remove it, or --exclude it",
    )
}

/// A file of a remote tree.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteFile {
    pub size: u64,
    /// Whole seconds since the epoch.
    pub mtime: i64,
}

/// A remote directory tree: files and directories by relative path.
#[derive(Debug, Clone, Default)]
pub struct RemoteTree {
    pub files: BTreeMap<String, RemoteFile>,
    pub dirs: Vec<String>,
    pub skipped: Vec<String>,
    /// Those of `files` that are symlinks on the host (a pull recreates a link only when
    /// it stays inside the tree, see `batch::pull`).
    pub links: std::collections::BTreeSet<String>,
}

#[derive(Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime: f64,
    pub is_dir: bool,
    pub is_file: bool,
    #[serde(default)]
    pub is_symlink: bool,
}

/// `root/rel` as the host should see it.
pub fn join(root: &str, rel: &str) -> String {
    let root = root.trim_end_matches('/');
    if rel.is_empty() {
        return if root.is_empty() {
            "/".into()
        } else {
            root.into()
        };
    }
    format!("{root}/{rel}")
}

type Client = RemoteClient<Arc<dyn Connector>>;

/// `os.stat(path)`, or `None` when nothing is there.
pub async fn remote_stat(client: &Client, path: &str) -> Result<Option<Stat>, Error> {
    let exists: bool = client.call("os", "path_exists").arg(path).await?.value;
    if !exists {
        return Ok(None);
    }
    Ok(Some(client.call("os", "stat").arg(path).await?.value))
}

/// One plain path component: not empty, `.` or `..`, and without `/` or NUL.
fn is_plain_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..") && !name.contains(['/', '\0'])
}

/// List the tree under directory `root` on the host (`None`: `root` does not exist).
pub async fn remote_tree(
    client: &Client,
    root: &str,
    ex: &Excludes,
) -> Result<Option<RemoteTree>, Error> {
    let Some(top) = remote_stat(client, root).await? else {
        return Ok(None);
    };
    if !top.is_dir {
        return Err(Error::usage(
            format!("{root} on {} is a file, not a directory", client.host()),
            "give a directory",
        ));
    }
    let mut tree = RemoteTree::default();
    let mut pending = vec![String::new()];
    while let Some(dir) = pending.pop() {
        for (rel, st) in stat_children(client, root, &dir, &mut tree.skipped).await? {
            let st = match st {
                Ok(st) => st,
                // Vanished since the listing, or a broken symlink: leave it out.
                Err(Error::RemoteExec(_)) => {
                    tree.skipped.push(format!("{rel} (cannot stat)"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !ex.excluded(&rel, st.is_dir) && tree.add(&rel, &st) {
                pending.push(rel);
            }
        }
    }
    tree.dirs.sort();
    Ok(Some(tree))
}

/// `os.stat` of every entry of `dir` (relative to `root`), 32 at a time, sorted by path;
/// names that are not one plain path component go to `skipped`.
async fn stat_children(
    client: &Client,
    root: &str,
    dir: &str,
    skipped: &mut Vec<String>,
) -> Result<Vec<(String, Result<Stat, Error>)>, Error> {
    let names: Vec<String> = client
        .call("os", "listdir")
        .arg(join(root, dir))
        .await?
        .value;
    let mut stats = JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    for name in names {
        // A listing comes from the host: a name that is not one plain path component
        // would place a pulled file outside the local tree.
        if !is_plain_name(&name) {
            skipped.push(format!("{name:?} (not a plain file name)"));
            continue;
        }
        let rel = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        let (client, path, limit) = (client.clone(), join(root, &rel), limit.clone());
        stats.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let st: Result<Stat, Error> =
                client.call("os", "stat").arg(&path).await.map(|o| o.value);
            (rel, st)
        });
    }
    let mut found = Vec::new();
    while let Some(r) = stats.join_next().await {
        let (rel, st) = r.map_err(|e| Error::Usage(format!("listing task failed: {e}")))?;
        found.push((rel, st));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

impl RemoteTree {
    /// Record entry `rel`: a file (and whether it is a symlink), a directory, or why it is
    /// skipped. `true` for a directory to descend into.
    fn add(&mut self, rel: &str, st: &Stat) -> bool {
        if st.is_dir {
            if st.is_symlink {
                self.skipped
                    .push(format!("{rel} (a symlink to a directory)"));
                return false;
            }
            self.dirs.push(rel.to_string());
            return true;
        }
        if st.is_file {
            if st.is_symlink {
                self.links.insert(rel.to_string());
            }
            self.files.insert(
                rel.to_string(),
                RemoteFile {
                    size: st.size,
                    mtime: st.mtime.floor() as i64,
                },
            );
        } else {
            self.skipped.push(format!("{rel} (not a regular file)"));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_rules() {
        let ex = Excludes::new(&[
            "*.o".into(),
            "build/".into(),
            "data/*.tmp".into(),
            "**/cache".into(),
        ])
        .unwrap();
        assert!(ex.excluded("a.o", false));
        assert!(ex.excluded("src/deep/a.o", false));
        assert!(ex.excluded("build", true));
        assert!(ex.excluded("x/build", true));
        assert!(!ex.excluded("build", false));
        assert!(ex.excluded("data/x.tmp", false));
        assert!(!ex.excluded("data/sub/x.tmp", false));
        assert!(!ex.excluded("other/x.tmp", false));
        assert!(ex.excluded("a/b/cache", true));
        assert!(!ex.excluded("main.c", false));
        assert!(Excludes::new(&["[".into()]).is_err());
    }

    /// A hostile host's listing cannot place a pulled file outside the local tree.
    #[test]
    fn only_plain_names_from_a_listing() {
        for bad in ["", ".", "..", "../x", "a/../../b", "/etc/passwd", "a\0b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        for good in ["a", ".hidden", "..x", "a b", "é", "-n"] {
            assert!(is_plain_name(good), "{good:?}");
        }
    }

    #[test]
    fn joins() {
        assert_eq!(join("data/", "a b"), "data/a b");
        assert_eq!(join("/", "etc"), "/etc");
        assert_eq!(join("d", ""), "d");
    }
}
