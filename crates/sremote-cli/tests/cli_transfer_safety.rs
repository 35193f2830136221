//! Tree transfers that must not hurt: symlinks never carry anything out of a tree (pull
//! then sync used to upload the client's secret), and a push into a full disk leaves no
//! truncated file under its final name and says which files did not land.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

const SECRET: &str = "TOP SECRET of the client";

/// Relative path → (is a symlink, content read through it, if any) of everything below.
fn entries(root: &Path) -> BTreeMap<String, (bool, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let link = e.file_type().unwrap().is_symlink();
            if !link && p.is_dir() {
                stack.push(p);
                continue;
            }
            out.insert(rel, (link, std::fs::read(&p).ok()));
        }
    }
    out
}

fn assert_no_secret(root: &Path, what: &str) {
    for (rel, (_, data)) in entries(root) {
        let data = data.unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&data).contains(SECRET),
            "{what}: {rel} carries the secret"
        );
    }
}

/// No symlink below `root` may resolve outside it.
fn assert_links_stay_inside(root: &Path) {
    let top = root.canonicalize().unwrap();
    for (rel, (link, _)) in entries(root) {
        if let (true, Ok(real)) = (link, root.join(&rel).canonicalize()) {
            assert!(real.starts_with(&top), "{rel} leads to {}", real.display());
        }
    }
}

#[test]
fn symlinks_never_carry_anything_out_of_a_tree() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let secret = client.home.path().join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    // On the host: a tree with links out (absolute, and climbing with `..`) and links
    // that stay inside.
    let proj = a.home.join("proj");
    std::fs::create_dir_all(proj.join("sub")).unwrap();
    std::fs::write(proj.join("in.txt"), "inside").unwrap();
    std::fs::write(proj.join("sub/deep.txt"), "deep").unwrap();
    std::os::unix::fs::symlink(&secret, proj.join("leak")).unwrap();
    let climb = format!("{}{}", "../".repeat(12), secret.display());
    std::os::unix::fs::symlink(&climb, proj.join("sub/up")).unwrap();
    std::os::unix::fs::symlink("in.txt", proj.join("ok")).unwrap();
    std::os::unix::fs::symlink("../in.txt", proj.join("sub/ok2")).unwrap();

    let copy = client.home.path().join("copy");
    let out = client.run(&["pull", "alpha", "proj", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("leak") && err.contains("sub/up"),
        "no warning: {err}"
    );
    let got = entries(&copy);
    assert!(
        !got.contains_key("leak") && !got.contains_key("sub/up"),
        "{got:?}"
    );
    assert_eq!(
        got["ok"],
        (true, Some(b"inside".to_vec())),
        "an inside link stays a link"
    );
    assert_eq!(got["sub/ok2"], (true, Some(b"inside".to_vec())));
    assert_eq!(got["sub/deep.txt"], (false, Some(b"deep".to_vec())));
    assert_links_stay_inside(&copy);
    assert_no_secret(&copy, "the pulled tree");

    // Syncing the pulled tree back sends nothing from outside it.
    let out = client.run(&["sync", copy.to_str().unwrap(), "alpha:back"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_no_secret(&a.home.join("back"), "the synced tree on the host");

    // A local link out of the tree: push and sync refuse, naming it, and send nothing.
    let mine = client.home.path().join("mine");
    std::fs::create_dir_all(mine.join("d")).unwrap();
    std::fs::write(mine.join("a.txt"), "a").unwrap();
    std::os::unix::fs::symlink(&secret, mine.join("d/leak")).unwrap();
    std::os::unix::fs::symlink("../a.txt", mine.join("d/ok")).unwrap();
    for args in [
        vec!["push", "alpha", mine.to_str().unwrap(), "pushed"],
        vec!["sync", mine.to_str().unwrap(), "alpha:pushed"],
    ] {
        let out = client.run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("d/leak") && err.contains("--exclude"),
            "{args:?}: {err}"
        );
        assert!(!a.home.join("pushed").exists(), "{args:?} sent something");
    }
    // Without it (excluded), the link inside the tree is sent as the file it points to.
    let out = client.run(&[
        "push",
        "alpha",
        mine.to_str().unwrap(),
        "pushed",
        "--exclude",
        "d/leak",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(a.home.join("pushed/d/ok")).unwrap(), b"a");
    assert_no_secret(&a.home.join("pushed"), "the pushed tree");
}

/// A tmpfs of a few MiB mounted on a fresh directory; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("sremote-full-")
            .tempdir_in("/tmp")
            .unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs (the tests run as root)");
        SmallDisk { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn clear(&self) {
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// `n` files of `size` bytes, each with its own content, under `root/<sub>/`.
fn files(root: &Path, sub: &str, n: usize, size: usize) -> Vec<String> {
    std::fs::create_dir_all(root.join(sub)).unwrap();
    (0..n)
        .map(|i| {
            let rel = format!("{sub}/f{i:02}.bin");
            let data: Vec<u8> = (0..size).map(|j| (i * 7 + j / 4096) as u8).collect();
            std::fs::write(root.join(&rel), data).unwrap();
            rel
        })
        .collect()
}

/// After a failed push of `src` into `dest`: no file under `dest` differs from its source
/// (no truncated file under a final name), no temp directory is left, and every file
/// that is not there is named in the error.
fn check_after_full_disk(src: &Path, dest: &Path, rels: &[String], err: &str) {
    let mut missing = 0;
    for rel in rels {
        match std::fs::read(dest.join(rel)) {
            Ok(data) => assert_eq!(
                data,
                std::fs::read(src.join(rel)).unwrap(),
                "{rel} is under its final name but not whole"
            ),
            Err(_) => {
                missing += 1;
                assert!(
                    err.contains(rel.as_str()),
                    "{rel} is missing but not named: {err}"
                );
            }
        }
    }
    assert!(missing > 0, "the disk was not full?");
    let leftovers: Vec<String> = entries(dest)
        .into_keys()
        .filter(|k| !rels.contains(k))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn a_push_into_a_full_disk_leaves_no_truncated_file() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let disk = SmallDisk::mount(4);
    let dest = disk.path().join("tree");
    let dest_s = dest.to_str().unwrap();

    // Small files: one tar batch of 6 MiB into 4 MiB.
    let src = client.home.path().join("small");
    let rels = files(&src, "s", 30, 200 << 10);
    let out = client.run(&["push", "alpha", src.to_str().unwrap(), dest_s]);
    assert_ne!(out.status.code(), Some(0), "the push cannot fit");
    let err = text(&out.stderr);
    assert!(err.contains("may not have been written"), "{err}");
    check_after_full_disk(&src, &dest, &rels, &err);

    // Large files, one transfer each (some land, then the disk is full).
    disk.clear();
    let src = client.home.path().join("large");
    let rels = files(&src, "l", 5, 1_500_000);
    let out = client.run(&["push", "alpha", src.to_str().unwrap(), dest_s]);
    assert_ne!(out.status.code(), Some(0), "the push cannot fit");
    check_after_full_disk(&src, &dest, &rels, &text(&out.stderr));
}
