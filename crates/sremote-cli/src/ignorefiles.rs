//! Ignore files in a local tree: `.sremoteignore` (always read by `sync`) and, with
//! `--gitignore`, `.gitignore`. Gitignore syntax, matched by ripgrep's `ignore` crate.
//!
//! A file's rules apply to the directory it is in and everything below; a deeper file's
//! rules come first (a `!pattern` there re-includes what a parent file left out), as
//! in git. Rules are matched against paths relative to the local top, so the same rules
//! decide which entries of the host's directory `sync --delete` keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use sremote_core::Error;

/// The ignore file `sync` always reads.
pub const SREMOTEIGNORE: &str = ".sremoteignore";

/// The rules of the ignore files found so far, by the directory (relative to the top,
/// `/`-separated, `""` for the top) they were found in.
#[derive(Debug, Clone)]
pub struct IgnoreFiles {
    /// The local top, absolute (rules are rooted at `top/dir`).
    top: PathBuf,
    /// The file names read in every directory, in order.
    names: Vec<&'static str>,
    by_dir: BTreeMap<String, Gitignore>,
}

impl IgnoreFiles {
    /// Rules from `.sremoteignore` files under `top`, and from `.gitignore` files when
    /// `gitignore` is set. Nothing is read until [`load`](Self::load).
    pub fn new(top: &Path, gitignore: bool) -> Result<IgnoreFiles, Error> {
        let top = std::fs::canonicalize(top).map_err(|e| {
            Error::usage(
                format!("cannot read {}: {e}", top.display()),
                "check the path and its permissions",
            )
        })?;
        let mut names = Vec::new();
        if gitignore {
            names.push(".gitignore");
        }
        // Read last so that its rules win over .gitignore's in the same directory.
        names.push(SREMOTEIGNORE);
        Ok(IgnoreFiles {
            top,
            names,
            by_dir: BTreeMap::new(),
        })
    }

    /// Read the ignore files of directory `rel` (relative to the top), if it has any.
    /// A file that cannot be read, or a line that is not a valid pattern, is an error
    /// naming the file and line: a sync must not send what the user meant to leave out.
    pub fn load(&mut self, rel: &str) -> Result<(), Error> {
        let dir = if rel.is_empty() {
            self.top.clone()
        } else {
            self.top.join(rel)
        };
        let mut builder = GitignoreBuilder::new(&dir);
        let mut any = false;
        for name in &self.names {
            let file = dir.join(name);
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::usage(
                        format!("cannot read {}: {e}", file.display()),
                        "fix its permissions or remove it",
                    ));
                }
            };
            any = true;
            for (n, line) in text.lines().enumerate() {
                builder.add_line(Some(file.clone()), line).map_err(|e| {
                    Error::usage(
                        format!(
                            "{}:{}: {line:?} is not a gitignore pattern: {e}",
                            file.display(),
                            n + 1
                        ),
                        "fix or remove the line",
                    )
                })?;
            }
        }
        if any {
            let rules = builder.build().map_err(|e| {
                Error::Usage(format!(
                    "the ignore rules in {} cannot be used: {e}",
                    dir.display()
                ))
            })?;
            self.by_dir.insert(rel.to_string(), rules);
        }
        Ok(())
    }

    /// Whether the entry at `rel` (relative to the top, `/`-separated) is ignored by the
    /// rules loaded so far: the deepest directory whose rules say anything decides.
    pub fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        let path = self.top.join(rel);
        let mut dir = rel;
        loop {
            dir = match dir.rfind('/') {
                Some(i) => &dir[..i],
                None if dir.is_empty() => return false,
                None => "",
            };
            if let Some(rules) = self.by_dir.get(dir) {
                match rules.matched(&path, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
            if dir.is_empty() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = t.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        t
    }

    #[test]
    fn deeper_rules_win_and_gitignore_only_when_asked() {
        let t = tree(&[
            (".sremoteignore", "*.log\nbuild/\n/top-only.txt\n"),
            ("sub/.sremoteignore", "!keep.log\n"),
            (".gitignore", "secret.txt\n"),
        ]);
        let mut ig = IgnoreFiles::new(t.path(), false).unwrap();
        ig.load("").unwrap();
        ig.load("sub").unwrap();
        assert!(ig.ignored("a.log", false));
        assert!(ig.ignored("sub/deep/a.log", false));
        assert!(!ig.ignored("sub/keep.log", false));
        assert!(ig.ignored("build", true));
        assert!(!ig.ignored("build", false));
        assert!(ig.ignored("top-only.txt", false));
        assert!(!ig.ignored("sub/top-only.txt", false));
        assert!(!ig.ignored("secret.txt", false));

        let mut ig = IgnoreFiles::new(t.path(), true).unwrap();
        ig.load("").unwrap();
        assert!(ig.ignored("secret.txt", false));
        assert!(ig.ignored("x/secret.txt", false));
    }

    #[test]
    fn a_bad_pattern_names_the_file_and_line() {
        let t = tree(&[(".sremoteignore", "ok\n{a,b\n")]);
        let mut ig = IgnoreFiles::new(t.path(), false).unwrap();
        let e = ig.load("").unwrap_err().to_string();
        assert!(e.contains(".sremoteignore:2"), "{e}");
    }
}
