//! The sremote directory on a host is trusted — it holds the endpoint every call runs —
//! so bootstrap and calls refuse one that another user could change: owned by another
//! user (directly or through a symlink), or writable by group or others, including a
//! directory bootstrap would create under the home directory. Over a real sshd; the
//! other user is `nobody`, a real account on the host.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

const NOBODY: u32 = 65534;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `args` fails as a refused sremote dir, naming `what` and the fix `fix`.
fn refused(client: &Client, args: &[&str], what: &str, fix: &str) {
    let out = client.run(args);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} was not refused: {err}"
    );
    assert!(
        err.contains("refusing the sremote directory") && err.contains(what) && err.contains(fix),
        "{args:?}: {err}"
    );
}

#[test]
fn a_sremote_dir_another_user_can_change_is_refused() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("box", &a.alias, &a.ssh_config));
    let dir = a.home.join(".sremote");
    let bootstrap = ["bootstrap", "box"];

    // Owned by another user.
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&dir, 0o700);
    refused(&client, &bootstrap, "belongs to uid 65534", "chown -R");
    assert!(!dir.join("bin").exists(), "nothing may be installed there");
    std::fs::remove_dir(&dir).unwrap();

    // A symlink to a directory another user owns.
    let theirs = tempfile::Builder::new()
        .prefix("sremote-theirs-")
        .tempdir_in("/tmp")
        .unwrap();
    std::os::unix::fs::chown(theirs.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    std::os::unix::fs::symlink(theirs.path(), &dir).unwrap();
    refused(
        &client,
        &bootstrap,
        &format!(
            "(a symlink to {}) belongs to uid 65534",
            theirs.path().display()
        ),
        "chown -R",
    );
    assert!(!theirs.path().join("bin").exists());
    std::fs::remove_file(&dir).unwrap();

    // Writable by everybody.
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o777);
    refused(
        &client,
        &bootstrap,
        "writable by group or others (drwxrwxrwx)",
        "chmod go-w",
    );
    assert!(!dir.join("bin").exists());

    // Installed while it was fine, then opened up: calls refuse to run the endpoint, in
    // every call mode.
    chmod(&dir, 0o700);
    let out = client.run(&bootstrap);
    assert!(out.status.success(), "{}", text(&out.stderr));
    chmod(&dir.join("bin"), 0o777);
    for mode in ["session", "pipe", "file"] {
        refused(
            &client,
            &["call", "box", "os", "getpid", "--mode", mode],
            "/bin is writable by group or others",
            "chmod go-w",
        );
    }
    chmod(&dir.join("bin"), 0o700);
    let out = client.run(&["call", "box", "os", "getpid"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A custom sremote dir whose parent under the home directory is writable by others.
#[test]
fn a_custom_sremote_dir_below_an_open_directory_is_refused() {
    let a = Sshd::start().unwrap();
    let config = format!(
        "{}endpoint_dir = \"scratch/.sremote\"\n",
        ssh_host("box", &a.alias, &a.ssh_config)
    );
    let client = Client::new(&config);
    let scratch = a.home.join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    chmod(&scratch, 0o777);
    refused(
        &client,
        &["bootstrap", "box"],
        "~/scratch is writable by group or others",
        "chmod go-w",
    );
    assert!(!scratch.join(".sremote").exists());
    chmod(&scratch, 0o755);
    let out = client.run(&["call", "box", "os", "getpid"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = std::fs::metadata(scratch.join(".sremote"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}
