//! The percent-encoded path of a gateway `/file/<machine>/<path>` URL: either an absolute
//! path lexically inside a root, or a refusal — never a panic, never `..`, never outside.
#![no_main]
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sremote_gateway::paths::Roots;

fn roots() -> &'static Roots {
    static ROOTS: OnceLock<Roots> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let dir = std::env::temp_dir().join("sremote-fuzz-root");
        std::fs::create_dir_all(dir.join("home")).expect("make the fuzz root");
        Roots::new(&[dir.clone()], &dir.join("home")).expect("a root")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(encoded) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = roots().parse(encoded) {
        let root: PathBuf = std::env::temp_dir().join("sremote-fuzz-root");
        let root = root.canonicalize().unwrap_or(root);
        let inside =
            path.starts_with(&root) || path.starts_with(Path::new("/tmp/sremote-fuzz-root"));
        assert!(inside, "{encoded:?} -> {} escapes the root", path.display());
        assert!(
            !path.components().any(|c| c == Component::ParentDir),
            "{}",
            path.display()
        );
    }
});
