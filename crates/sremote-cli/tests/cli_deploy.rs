//! Manual deployment as the original sremote documents it: `sremote endpoint extract`
//! writes the bundled endpoint, `deploy/deploy-endpoint.sh -d DIR -t TMP` installs it and
//! writes `~/.sremote/.location`, and bootstrap creates a tmp dir that `.location` names.
//! Against a real sshd.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn extract_writes_the_bundled_endpoint() {
    let client = Client::new("");
    let dir = tempfile::tempdir().unwrap();
    let out = client.run(&[
        "--json",
        "endpoint",
        "extract",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = Path::new(v["path"].as_str().unwrap());
    assert_eq!(path.parent().unwrap(), dir.path());
    assert_eq!(mode(path), 0o755);
    let info = client.run(&["--json", "endpoint", "info"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["sha256"], info["sha256"]);
    let sha = sremote_core::bootstrap::sha256_hex(&std::fs::read(path).unwrap());
    assert_eq!(v["sha256"], sha.as_str());
    let version = std::process::Command::new(path)
        .arg("version")
        .output()
        .unwrap();
    assert!(version.status.success());

    // A file name works too, and another target is refused (nothing written).
    let file = dir.path().join("ep");
    let out = client.run(&[
        "endpoint",
        "extract",
        "--target",
        "x86_64-unknown-linux-gnu",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(file.is_file());
    let other = dir.path().join("arm");
    let out = client.run(&[
        "endpoint",
        "extract",
        "--target",
        "aarch64-unknown-linux-gnu",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("build-endpoint.sh"));
    assert!(!other.exists());
}

#[test]
fn deploy_by_hand_with_own_dirs_then_calls_use_them() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let local = tempfile::tempdir().unwrap();
    let out = client.run(&[
        "--json",
        "endpoint",
        "extract",
        local.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bin = v["path"].as_str().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/deploy-endpoint.sh");
    // Hostile names: only /bin/sh reads them, single-quoted.
    let (dir, tmp) = ("my sr$(touch PWNED)", "scratch 'x'/tmp");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args([
            "-F",
            a.ssh_config.to_str().unwrap(),
            "-d",
            dir,
            "-t",
            tmp,
            &a.alias,
            bin,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let home = &a.home;
    assert!(
        home.join(dir)
            .join("bin")
            .join(Path::new(bin).file_name().unwrap())
            .is_file()
    );
    assert_eq!(mode(&home.join(tmp)), 0o700);
    assert_eq!(mode(&home.join(dir).join("jobs")), 0o700);
    assert!(!home.join("PWNED").exists());
    let loc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join(".sremote/.location")).unwrap()).unwrap();
    assert_eq!(loc["sremote"], dir);
    assert_eq!(loc["absolute_tmp"], tmp);

    // The client finds the endpoint there: nothing to push; a file-mode call (which
    // writes its request into the tmp dir) works.
    let out = client.run(&["--json", "bootstrap", "alpha"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(b["installed"], false, "{b}");
    let out = client.run(&["call", "alpha", "os", "getenv", "HOME", "--mode", "file"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), home.to_str().unwrap());
}

/// Regression: a `.location` whose tmp dir does not exist got nothing created, and calls
/// that need it failed.
#[test]
fn bootstrap_creates_the_tmp_dir_that_location_names() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    // Written by hand before any install: the install creates it.
    std::fs::create_dir_all(a.home.join(".sremote")).unwrap();
    std::fs::write(
        a.home.join(".sremote/.location"),
        r#"{"absolute_tmp": "sremote_tmp"}"#,
    )
    .unwrap();
    let out = client.run(&["bootstrap", "alpha"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&a.home.join("sremote_tmp")), 0o700);
    // Written by hand after the install: bootstrap with nothing to push still creates it.
    std::fs::write(
        a.home.join(".sremote/.location"),
        r#"{"relative_tmp": "scratch"}"#,
    )
    .unwrap();
    let out = client.run(&["--json", "bootstrap", "alpha"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&a.home.join(".sremote/scratch")), 0o700);
    let out = client.run(&["call", "alpha", "os", "getpid", "--mode", "file"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
