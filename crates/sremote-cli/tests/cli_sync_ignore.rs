//! `sync` reads `.sremoteignore` files (and `.gitignore` files with `--gitignore`), in
//! gitignore syntax, at every depth; left-out paths are neither sent nor deleted on the
//! host. Against a real sshd.
mod common;

use std::path::Path;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn sync(client: &Client, src: &Path, dest: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "sync", src.to_str().unwrap(), dest];
    args.extend_from_slice(extra);
    let out = client.run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn sync_honours_sremoteignore_and_gitignore_files() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let src = client.home.path().join("proj");
    write(
        &src,
        ".sremoteignore",
        "# comment\n*.log\n/data/raw/\n$(touch PWNED)\n",
    );
    write(&src, "sub/.sremoteignore", "!keep.log\n");
    write(&src, ".gitignore", "secret.env\ntarget/\n");
    write(&src, "main.py", "print(1)\n");
    write(&src, "run.log", "left out\n");
    write(&src, "sub/keep.log", "re-included\n");
    write(&src, "sub/deep/other.log", "left out\n");
    write(&src, "data/raw/big.bin", "left out\n");
    write(&src, "sub/data/raw/kept.bin", "anchored rule: kept\n");
    write(&src, "secret.env", "only without --gitignore\n");
    write(&src, "target/out.o", "only without --gitignore\n");
    write(&src, "$(touch PWNED)", "a name, ignored by a rule\n");

    // Without --gitignore: .sremoteignore applies, .gitignore does not.
    sync(&client, &src, "alpha:plain", &[]);
    let host = a.home.join("plain");
    for sent in [
        "main.py",
        "sub/keep.log",
        "sub/data/raw/kept.bin",
        "secret.env",
        "target/out.o",
        ".sremoteignore",
        ".gitignore",
    ] {
        assert!(host.join(sent).is_file(), "{sent} was not sent");
    }
    for left in [
        "run.log",
        "sub/deep/other.log",
        "data/raw",
        "$(touch PWNED)",
    ] {
        assert!(!host.join(left).exists(), "{left} was sent");
    }

    // With --gitignore and --delete: what the rules leave out is not sent, and what the
    // host has under ignored names is kept, while other strays go.
    let host = a.home.join("git");
    write(&host, "old.log", "ignored on the host: kept\n");
    write(&host, "target/cached.o", "ignored on the host: kept\n");
    write(&host, "stale.txt", "not here: deleted\n");
    let out = sync(&client, &src, "alpha:git", &["--gitignore", "--delete"]);
    assert_eq!(out["deleted"], serde_json::json!(["stale.txt"]), "{out}");
    for left in ["secret.env", "target/out.o", "run.log", "data/raw"] {
        assert!(!host.join(left).exists(), "{left} was sent");
    }
    assert!(host.join("main.py").is_file() && host.join("sub/keep.log").is_file());
    assert!(host.join("old.log").is_file() && host.join("target/cached.o").is_file());
    assert!(!a.home.join("PWNED").exists() && !src.join("PWNED").exists());
    assert_eq!(
        sync(&client, &src, "alpha:git", &["--gitignore", "--delete"])["sent"],
        0
    );
}

#[test]
fn a_bad_ignore_pattern_stops_the_sync_naming_the_line() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let src = client.home.path().join("proj");
    write(&src, "a.txt", "x\n");
    write(&src, "sub/.sremoteignore", "fine\nbad{a,b\n");
    let out = client.run(&["sync", src.to_str().unwrap(), "alpha:proj"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("sub/.sremoteignore:2"), "{err}");
    assert!(
        !a.home.join("proj/a.txt").exists(),
        "nothing is sent: {err}"
    );
}
