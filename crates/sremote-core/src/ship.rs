//! Local Python files that travel with a call: `sremote call HOST ./calc.py:multiply 10 7`.
//!
//! [`local_module`] reads the file and the files next to it that it imports (`import
//! helper`, `from helper import twice` where `helper.py` is in the same directory),
//! recursively, and returns them as [`ShippedModule`]s, dependencies first, for
//! [`CallBuilder::code`](crate::CallBuilder::code). Modules that are not files next to it
//! (the standard library, installed packages) are the host's to have
//! (`sremote install HOST PACKAGE`). The Python package does the same with more
//! knowledge (it asks the running interpreter, `sremote._ship`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::protocol::ShippedModule;

/// Largest file shipped (a module's source, not data).
const MAX_SOURCE: u64 = 8 << 20;

/// A target `PATH.py:FUNCTION` split into the file and the function, when it is one.
pub fn file_target(target: &str) -> Option<(&Path, &str)> {
    let (path, function) = target.rsplit_once(':')?;
    (path.ends_with(".py") && !function.is_empty()).then_some((Path::new(path), function))
}

/// The module name of `path` (its stem) and the modules to ship for it, `path` last.
pub fn local_module(path: &Path) -> Result<(String, Vec<ShippedModule>), Error> {
    let name = module_name(path)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    add(&dir, &name, path, &mut out, &mut seen)?;
    Ok((name, out))
}

fn module_name(path: &Path) -> Result<String, Error> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let ok = stem
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(stem.to_string())
    } else {
        Err(Error::usage(
            format!(
                "{}: a Python file shipped with a call needs a module name as its file name \
                 (letters, digits, `_`; not starting with a digit)",
                path.display()
            ),
            "rename it",
        ))
    }
}

fn add(
    dir: &Path,
    name: &str,
    path: &Path,
    out: &mut Vec<ShippedModule>,
    seen: &mut BTreeSet<String>,
) -> Result<(), Error> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let source = read(path)?;
    for dep in imported_names(&source) {
        let file: PathBuf = dir.join(format!("{dep}.py"));
        if file.is_file() {
            add(dir, &dep, &file, out, seen)?;
        }
    }
    out.push(ShippedModule::new(name, source));
    Ok(())
}

fn read(path: &Path) -> Result<String, Error> {
    let fail = |why: String| {
        Error::usage(
            format!(
                "cannot read {} to ship it with the call: {why}",
                path.display()
            ),
            "check the path",
        )
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > MAX_SOURCE {
        return Err(fail(format!(
            "it has {} bytes, more than the {} a module's source may have",
            meta.len(),
            MAX_SOURCE
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| fail("it is not UTF-8 text".into()))
}

/// The top-level module names of the `import` and `from … import` statements of
/// `source` (absolute imports only; a line-based reading, enough to find files next to
/// it — a name that is no file there is left to the host).
fn imported_names(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        let line = line.trim_start();
        let names: Vec<&str> = if let Some(rest) = line.strip_prefix("import ") {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().next())
                .collect()
        } else if let Some(rest) = line.strip_prefix("from ") {
            rest.split_whitespace().next().into_iter().collect()
        } else {
            continue;
        };
        for n in names {
            let top = n.split('.').next().unwrap_or_default();
            if !top.is_empty() && top.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(top.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_imports() {
        assert_eq!(
            file_target("./calc.py:multiply"),
            Some((Path::new("./calc.py"), "multiply"))
        );
        assert_eq!(file_target("calc"), None);
        assert_eq!(file_target("calc.py:"), None);
        assert_eq!(
            imported_names(
                "import os, helper as h\nfrom util.x import y\n    import json\nx = 1\n"
            ),
            ["os", "helper", "util", "json"]
        );
    }

    #[test]
    fn a_file_and_its_neighbours_dependencies_first() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("helper.py"), "def twice(x): return 2 * x\n").unwrap();
        std::fs::write(
            d.path().join("calc.py"),
            "import os\nfrom helper import twice\ndef multiply(a, b): return twice(a) * b\n",
        )
        .unwrap();
        let (name, code) = local_module(&d.path().join("calc.py")).unwrap();
        assert_eq!(name, "calc");
        let names: Vec<_> = code.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["helper", "calc"]);
        assert!(local_module(&d.path().join("missing.py")).is_err());
        std::fs::write(d.path().join("1bad.py"), "").unwrap();
        assert!(local_module(&d.path().join("1bad.py")).is_err());
    }
}
