//! Confining file requests to the configured roots.
//!
//! A request path is percent-decoded by us (never by a router), then refused with 403 if it
//! holds a NUL byte or a `..` component, or if it is not inside a root. Then it is resolved
//! with `canonicalize` (following every symlink) and checked again against the canonical
//! roots, so a symlink inside a root that points outside is refused too. For writes the
//! parent directory is resolved that way (after creating the missing ones).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{ApiError, GatewayError};

/// The directories file requests may touch.
#[derive(Debug, Clone)]
pub struct Roots {
    /// (as configured, canonical)
    roots: Vec<(PathBuf, PathBuf)>,
    home: PathBuf,
}

impl Roots {
    /// Resolve the configured roots (they must exist).
    pub fn new(roots: &[PathBuf], home: &Path) -> Result<Roots, GatewayError> {
        let mut out = Vec::new();
        for r in roots {
            let c = std::fs::canonicalize(r)
                .map_err(|e| GatewayError::Config(format!("root {}: {e}", r.display())))?;
            if !c.is_dir() {
                return Err(GatewayError::Config(format!(
                    "root {} is not a directory",
                    r.display()
                )));
            }
            out.push((lexical(r), c));
        }
        Ok(Roots {
            roots: out,
            home: home.to_path_buf(),
        })
    }

    fn inside_lexically(&self, p: &Path) -> bool {
        self.roots
            .iter()
            .any(|(r, c)| p.starts_with(r) || p.starts_with(c))
    }

    fn inside(&self, canonical: &Path) -> bool {
        self.roots.iter().any(|(_, c)| canonical.starts_with(c))
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
        if !self.inside_lexically(&abs) {
            return Err(ApiError::forbidden(format!(
                "{} is outside every root of this gateway",
                abs.display()
            )));
        }
        Ok(abs)
    }

    /// Resolve an existing path (following symlinks) and check it stays inside a root.
    pub async fn existing(&self, path: &Path) -> Result<PathBuf, ApiError> {
        let c = tokio::fs::canonicalize(path)
            .await
            .map_err(|e| ApiError::io(&path.display().to_string(), &e))?;
        if !self.inside(&c) {
            return Err(ApiError::forbidden(format!(
                "{} leads outside every root (symlink)",
                path.display()
            )));
        }
        Ok(c)
    }

    /// For a write or delete: the canonical parent directory (inside a root) and the file
    /// name. With `create`, missing parents are created (only below a checked ancestor).
    pub async fn parent(&self, path: &Path, create: bool) -> Result<(PathBuf, OsString), ApiError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(ApiError::forbidden(format!(
                "{} cannot be written",
                path.display()
            )));
        };
        let what = path.display().to_string();
        if create {
            // Check the deepest existing ancestor before creating anything below it.
            let mut anc = parent;
            while tokio::fs::symlink_metadata(anc).await.is_err() {
                anc = anc.parent().unwrap_or(Path::new("/"));
            }
            self.existing(anc).await?;
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ApiError::io(&what, &e))?;
        }
        let dir = self.existing(parent).await?;
        if !dir.is_dir() {
            return Err(ApiError::not_found(format!(
                "{}: the parent is not a directory",
                what
            )));
        }
        Ok((dir, name.to_os_string()))
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

    #[tokio::test]
    async fn refuses_traversal_nul_outside_and_symlinks() {
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
        assert_eq!(
            roots.existing(&p).await.expect_err("symlink out").status,
            403
        );
        let e = roots
            .parse(&format!("{r}/link/new/file"))
            .expect("lexically inside");
        assert_eq!(
            roots
                .parent(&e, true)
                .await
                .expect_err("symlink out")
                .status,
            403
        );
        assert!(!outside.join("new").exists(), "nothing created outside");
        let ok = roots.parse(&format!("{r}/./a//b/c.txt")).expect("inside");
        let (dir, name) = roots.parent(&ok, true).await.expect("created");
        assert!(dir.ends_with("root/a/b") && name == "c.txt");
        assert_eq!(
            roots.parse("~/x").expect("home").parent(),
            Some(root.as_path())
        );
    }
}
