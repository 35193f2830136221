//! `sremote install HOST --git URL@BRANCH` and `sremote modules HOST [--check …]` against a
//! real sshd: a git repository made by the test is cloned and pip-installed on the host,
//! then listed with its version and checked; a failing install shows what git printed.
mod common;

use std::path::Path;
use std::process::Command;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

/// A repository holding the package `clitiny` 0.4.2 on branch `release` (the default
/// branch has nothing installable).
fn repo(root: &Path) -> String {
    let repo = root.join("tiny repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README"), "nothing here\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "empty"]);
    git(&repo, &["checkout", "-q", "-b", "release"]);
    std::fs::create_dir_all(repo.join("clitiny")).unwrap();
    std::fs::write(
        repo.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"clitiny\"\nversion = \"0.4.2\"\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("clitiny/__init__.py"),
        "def hi():\n    return 'hi'\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "clitiny"]);
    git(&repo, &["checkout", "-q", "main"]);
    format!("file://{}", repo.display())
}

#[test]
fn install_from_git_then_list_and_check_modules() {
    let a = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("alpha", &a.alias, &a.ssh_config));
    let local = tempfile::tempdir().unwrap();
    let url = repo(local.path());

    let out = client.run(&["modules", "alpha", "--check", "clitiny"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("clitiny"),
        "{}",
        text(&out.stderr)
    );

    let spec = format!("{url}@release");
    let out = client.run(&["install", "alpha", "--git", &spec]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("as tiny-repo"), "{said}");
    // With --name the module is imported as a check: a wrong name fails the install.
    let out = client.run(&["install", "alpha", "--git", &spec, "--name", "not_clitiny"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("import not_clitiny"), "{err}");
    let out = client.run(&["install", "alpha", "--git", &spec, "--name", "clitiny"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = client.run(&["modules", "alpha", "--check", "clitiny", "os", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&client.run(&["call", "alpha", "clitiny", "hi"]).stdout),
        "hi\n"
    );

    let out = client.run(&["--json", "modules", "alpha"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["python"]["python"].as_str().unwrap().contains("venv"),
        "{v}"
    );
    let pkgs = v["python"]["packages"].as_array().unwrap();
    assert!(
        pkgs.iter()
            .any(|p| p["name"] == "clitiny" && p["version"] == "0.4.2"),
        "{v}"
    );
    let modules = v["modules"].as_array().unwrap();
    assert!(
        modules
            .iter()
            .any(|m| m["name"] == "os" && m["kind"] == "builtin")
    );

    let text_out = text(&client.run(&["modules", "alpha"]).stdout);
    assert!(
        text_out.contains("MODULE") && text_out.contains("clitiny"),
        "{text_out}"
    );

    // --check names what is missing, per host, and exits 1.
    let out = client.run(&["modules", "alpha", "--check", "os", "no_such_mod_x"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no_such_mod_x") && !err.contains("os,"),
        "{err}"
    );

    // A branch that does not exist: exit 1 with what git said.
    let out = client.run(&["install", "alpha", "--git", &format!("{url}@nope")]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nope"), "{err}");
}
