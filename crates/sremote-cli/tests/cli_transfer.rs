//! push/pull of directory trees (hostile names, excludes), sync, and the progress bar on a
//! terminal but not in a pipe.
mod common;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

/// Names no shell may see unquoted.
const HOSTILE: [&str; 5] = ["a b", "q'uote\"d", "$(touch PWNED)", "new\nline", "-dash"];

fn make_tree(root: &Path) {
    for (i, name) in HOSTILE.iter().enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.txt")), format!("file {i}\n")).unwrap();
        std::fs::write(dir.join("scratch.tmp"), "excluded").unwrap();
    }
    std::fs::create_dir_all(root.join("build/deep")).unwrap();
    std::fs::write(root.join("build/deep/out.o"), "excluded").unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::fs::write(
        root.join("top.bin"),
        (0..=255u8).cycle().take(300_000).collect::<Vec<_>>(),
    )
    .unwrap();
}

/// Relative path → content of every file under `root`.
fn contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn push_and_pull_trees_with_hostile_names_and_excludes() {
    trees_round_trip(false);
}

#[test]
fn push_and_pull_trees_one_file_at_a_time() {
    trees_round_trip(true);
}

/// Small files travel in tar batches, or (`one_by_one`, as on hosts without tar) each
/// with its own transfer.
fn trees_round_trip(one_by_one: bool) {
    let a = Sshd::start().unwrap();
    let mut client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    if one_by_one {
        client.env.push(("SREMOTE_NO_TAR".into(), "1".into()));
    }
    let src = client.home.path().join("src tree");
    make_tree(&src);
    let out = client.run(&[
        "push",
        "alpha",
        src.to_str().unwrap(),
        "dest $(x)/tree",
        "--exclude",
        "*.tmp",
        "--exclude",
        "build/",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "no progress bar in a pipe: {}",
        text(&out.stderr)
    );
    let remote = a.home.join("dest $(x)/tree");
    let got = contents(&remote);
    let mut want = contents(&src);
    want.retain(|k, _| !k.ends_with(".tmp") && !k.starts_with("build/"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(got, want);
    assert!(
        remote.join("empty dir").is_dir(),
        "empty directories are created"
    );
    // push keeps modification times: a sync right after it has nothing to send.
    let out = client.run(&[
        "--json",
        "sync",
        src.to_str().unwrap(),
        "alpha:dest $(x)/tree",
        "--exclude",
        "*.tmp",
        "--exclude",
        "build/",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sent"], 0, "{v} {}", text(&out.stderr));
    assert!(!a.home.join("PWNED").exists() && !remote.join("PWNED").exists());

    // Back again, leaving out one more pattern; into an existing directory.
    let back = client.home.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let out = client.run(&[
        "--json",
        "pull",
        "alpha",
        "dest $(x)/tree",
        back.to_str().unwrap(),
        "--exclude",
        "a b",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    want.retain(|k, _| !k.starts_with("a b/"));
    assert_eq!(v["files"], want.len());
    assert_eq!(contents(&back.join("tree")), want);

    // One file, and a directory pulled from a missing path: errors name host and path.
    let out = client.run(&[
        "pull",
        "alpha",
        "dest $(x)/tree/top.bin",
        back.join("one.bin").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(back.join("one.bin")).unwrap().len(), 300_000);
    let out = client.run(&["pull", "alpha", "no/such dir", back.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("no/such dir") && err.contains("\n  hint: "),
        "{err}"
    );
}

/// `sremote --json sync SRC alpha:work/proj --exclude build/ EXTRA…`, which must succeed.
fn sync_json(client: &Client, src: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--json",
        "sync",
        src.to_str().unwrap(),
        "alpha:work/proj",
        "--exclude",
        "build/",
    ];
    args.extend_from_slice(extra);
    let out = client.run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `sync --delete` removes on the host what the local directory does not have — hostile
/// names included, as data — and keeps excluded paths; `--dry-run` only tells.
#[test]
fn sync_delete_removes_only_what_is_not_here() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let src = client.home.path().join("proj");
    make_tree(&src);
    let sync = |extra: &[&str]| sync_json(&client, &src, extra);
    sync(&[]);
    let host = a.home.join("work/proj");
    // Things only the host has: a file, a tree with hostile names, an excluded file; and
    // a path that is a directory here but a file there.
    std::fs::write(host.join("stale.txt"), "old").unwrap();
    std::fs::create_dir_all(host.join("old dir/-rf/$(touch PWNED)")).unwrap();
    std::fs::write(host.join("old dir/-rf/$(touch PWNED)/x;rm -rf ~"), "old").unwrap();
    std::fs::write(host.join("-rf"), "old").unwrap();
    std::fs::write(host.join("build/keep.o"), "excluded, kept").unwrap_or_else(|_| {
        std::fs::create_dir_all(host.join("build")).unwrap();
        std::fs::write(host.join("build/keep.o"), "excluded, kept").unwrap();
    });
    std::fs::create_dir_all(src.join("was a file")).unwrap();
    std::fs::write(src.join("was a file/now.txt"), "new").unwrap();
    std::fs::write(host.join("was a file"), "old").unwrap();

    let dry = sync(&["--delete", "--dry-run"]);
    let listed: Vec<&str> = dry["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for p in [
        "stale.txt",
        "-rf",
        "was a file",
        "old dir/-rf/$(touch PWNED)/x;rm -rf ~",
        "old dir",
    ] {
        assert!(listed.contains(&p), "{p} not listed: {dry}");
    }
    assert!(host.join("stale.txt").exists(), "--dry-run deletes nothing");

    let done = sync(&["--delete"]);
    assert_eq!(
        done["deleted"].as_array().unwrap().len(),
        listed.len(),
        "{done}"
    );
    for gone in ["stale.txt", "-rf", "old dir"] {
        assert!(!host.join(gone).exists(), "{gone} still there");
    }
    assert_eq!(
        std::fs::read_to_string(host.join("build/keep.o")).unwrap(),
        "excluded, kept"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("was a file/now.txt")).unwrap(),
        "new"
    );
    for (rel, data) in contents(&src) {
        if !rel.starts_with("build/") && !rel.ends_with(".tmp") {
            assert_eq!(std::fs::read(host.join(&rel)).unwrap(), data, "{rel}");
        }
    }
    assert!(!a.home.join("PWNED").exists() && !host.join("PWNED").exists());
    let again = sync(&["--delete"]);
    assert_eq!(
        (&again["sent"], again["deleted"].as_array().unwrap().len()),
        (&0.into(), 0),
        "{again}"
    );
}

#[test]
fn sync_sends_only_what_changed() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let src = client.home.path().join("proj");
    make_tree(&src);
    let sync = |extra: &[&str]| sync_json(&client, &src, extra);
    let first = sync(&[]);
    let n = contents(&src)
        .keys()
        .filter(|k| !k.starts_with("build/"))
        .count();
    assert_eq!(first["sent"], n);
    let second = sync(&[]);
    assert_eq!(second["sent"], 0, "{second}");
    assert_eq!(second["unchanged"], n);
    assert_eq!(sync(&["--checksum"])["sent"], 0);

    // Same size, new content and mtime: sent by mtime. (Times compare in whole seconds,
    // so the test moves it away from the second of the first sync.)
    let f = src.join("a b/a b.txt");
    std::fs::write(&f, "file X\n").unwrap();
    let past = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(past)
        .unwrap();
    let t = sync(&[]);
    assert_eq!(t["sent"], 1);
    assert_eq!(t["files"][0], "a b/a b.txt");
    assert_eq!(
        std::fs::read_to_string(a.home.join("work/proj/a b/a b.txt")).unwrap(),
        "file X\n"
    );

    // Same size and mtime, other content: only --checksum sees it.
    let remote = a.home.join("work/proj/$(touch PWNED)/$(touch PWNED).txt");
    let mtime = std::fs::metadata(&remote).unwrap().modified().unwrap();
    std::fs::write(&remote, "file 9\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&remote)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(sync(&[])["sent"], 0);
    let c = sync(&["--checksum"]);
    assert_eq!(c["sent"], 1, "{c}");
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), "file 2\n");
    assert!(!a.home.join("PWNED").exists());

    // Text output for people.
    let out = client.run(&[
        "sync",
        src.to_str().unwrap(),
        "alpha:work/proj",
        "--exclude",
        "build/",
    ]);
    assert!(
        text(&out.stdout).starts_with(&format!("sent 0 of {n} files")),
        "{}",
        text(&out.stdout)
    );
}

/// Run `sremote` with stdout and stderr on a new pseudo-terminal; everything it wrote.
fn under_pty(client: &Client, args: &[&str]) -> (Option<i32>, String) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors that we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: fresh descriptors from openpty, owned from here on.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = client
        .command(args)
        .env("TERM", "xterm")
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    drop(slave);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a buffer we own from a descriptor we own.
            let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break; // EIO once the child closed the terminal
            }
            all.extend_from_slice(&buf[..n as usize]);
        }
        all
    });
    let status = child.wait().unwrap();
    (status.code(), text(&reader.join().unwrap()))
}

#[test]
fn progress_bar_and_colour_only_on_a_terminal() {
    let client = Client::new("");
    let big = client.home.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 48 << 20]).unwrap();
    let dest = client.home.path().join("copy.bin");
    let args = [
        "push",
        "local",
        big.to_str().unwrap(),
        dest.to_str().unwrap(),
    ];
    let (code, screen) = under_pty(&client, &args);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("/48.00 MiB") && screen.contains("B/s ETA"),
        "no progress on the terminal: {screen:?}"
    );
    assert!(screen.contains("1 file in"), "{screen:?}");
    // A single-file pull knows its total too (the remote size is asked first).
    let back = client.home.path().join("back.bin");
    let pull = [
        "pull",
        "local",
        dest.to_str().unwrap(),
        back.to_str().unwrap(),
    ];
    let (code, screen) = under_pty(&client, &pull);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("/48.00 MiB") && !screen.contains("/0 B"),
        "pull's bar has no total: {screen:?}"
    );
    assert_eq!(std::fs::metadata(&back).unwrap().len(), 48 << 20);
    let out = client
        .command(&args)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty() && out.stdout.is_empty(),
        "quiet in a pipe: {}",
        text(&out.stderr)
    );

    let bad = ["call", "local", "nosuchmodule", "f"];
    let (code, screen) = under_pty(&client, &bad);
    assert_eq!(code, Some(1));
    assert!(screen.contains("\x1b[1;31merror:\x1b[0m"), "{screen:?}");
    let out = client.run(&bad);
    assert!(
        text(&out.stderr).starts_with("error: nosuchmodule.f on local failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains('\x1b'));
}
