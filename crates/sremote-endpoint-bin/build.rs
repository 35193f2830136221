//! Builds the static `sremote-endpoint` for the target this crate is compiled for and
//! embeds it (see `src/lib.rs`).
//!
//! - `SREMOTE_ENDPOINT_BIN=/path/to/sremote-endpoint` embeds a prebuilt binary instead
//!   (packagers, cross builds).
//! - Otherwise a nested `cargo build -p sremote-endpoint --profile endpoint` runs with
//!   `-C target-feature=+crt-static` into `<target>/endpoint-static` (its own target dir,
//!   so it never waits on the outer build's lock). `endpoint` (fat LTO) is for release
//!   builds; a debug or test build uses `endpoint-dev` (no LTO: minutes less, the same
//!   code); `SREMOTE_ENDPOINT_PROFILE` picks another.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SREMOTE_ENDPOINT_BIN");
    println!("cargo:rerun-if-env-changed=SREMOTE_ENDPOINT_PROFILE");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let target = env::var("TARGET").unwrap();
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();

    let binary = match env::var_os("SREMOTE_ENDPOINT_BIN") {
        Some(path) => PathBuf::from(path),
        None => build_static(&workspace, &target),
    };
    let embedded = out_dir.join("sremote-endpoint");
    std::fs::copy(&binary, &embedded)
        .unwrap_or_else(|e| panic!("copy endpoint binary {}: {e}", binary.display()));
    println!("cargo:rustc-env=SREMOTE_ENDPOINT_TARGET={target}");
    println!(
        "cargo:rustc-env=SREMOTE_ENDPOINT_PATH={}",
        embedded.display()
    );
}

fn build_static(workspace: &Path, target: &str) -> PathBuf {
    for dir in [
        "crates/sremote-endpoint",
        // All of core: the endpoint is built from its frames, protocol and job formats.
        "crates/sremote-core/src",
        "crates/sremote-core/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    // The outer target dir: OUT_DIR is <target>/<profile>/build/<pkg>/out.
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let target_root = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| out_dir.ancestors().nth(4).unwrap().to_path_buf());
    let nested = target_root.join("endpoint-static");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // A release build embeds the endpoint users get (`endpoint`: fat LTO); a debug or test
    // build one that builds in a fraction of the time (`endpoint-dev`); the same code.
    let profile = env::var("SREMOTE_ENDPOINT_PROFILE").unwrap_or_else(|_| {
        match env::var("PROFILE").as_deref() {
            Ok("release") => "endpoint".into(),
            _ => "endpoint-dev".into(),
        }
    });
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "--profile",
            &profile,
            "-p",
            "sremote-endpoint",
            "--bin",
            "sremote-endpoint",
        ])
        .args(["--target", target])
        .arg("--target-dir")
        .arg(&nested);
    // A clean environment for the nested build: none of the outer build's flags or
    // per-package variables leak in; only static linking for the target is asked for.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key == "RUSTC_WRAPPER"
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static");
    let status = cmd
        .status()
        .expect("run cargo for the static sremote-endpoint build");
    assert!(
        status.success(),
        "building the static sremote-endpoint failed; run deploy/build-endpoint.sh to see why, \
         or set SREMOTE_ENDPOINT_BIN to a prebuilt endpoint"
    );
    nested.join(target).join(&profile).join("sremote-endpoint")
}
