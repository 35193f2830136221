//! Per-project Python environments over a real sshd: two projects with different
//! versions of one package, each call, program and job seeing its own; `sremote venvs`
//! lists and deletes them; the hosts config's `venv` key.
mod common;

use std::path::Path;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

/// A package directory of `vpkg` at `version`.
fn package(root: &Path, version: &str) -> String {
    let dir = root.join(format!("vpkg-{version}"));
    std::fs::create_dir_all(dir.join("vpkg")).unwrap();
    std::fs::write(
        dir.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = \"vpkg\"\nversion = \"{version}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("vpkg/__init__.py"),
        format!("VERSION = '{version}'\n\ndef version():\n    return VERSION\n"),
    )
    .unwrap();
    dir.display().to_string()
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
fn two_projects_two_versions_each_sees_its_own() {
    let a = Sshd::start().unwrap();
    let config = format!(
        "{}{}venv = \"projB\"\n",
        ssh_host("alpha", &a.alias, &a.ssh_config),
        ssh_host("beta", &a.alias, &a.ssh_config)
    );
    let c = Client::new(&config);
    let local = tempfile::tempdir().unwrap();
    let (v1, v2) = (package(local.path(), "1.0"), package(local.path(), "2.0"));

    let said = ok(&c.run(&["install", "alpha", "--venv", "projA", &v1]));
    assert!(
        said.contains("venvs/projA") && said.contains("venv created"),
        "{said}"
    );
    ok(&c.run(&["install", "alpha", "--venv", "projB", &v2]));
    assert!(a.home.join(".sremote/venvs/projA/bin/python3").exists());

    // Calls, programs and jobs, each in its own project.
    assert_eq!(
        ok(&c.run(&["call", "alpha", "--venv", "projA", "vpkg", "version"])),
        "1.0"
    );
    assert_eq!(
        ok(&c.run(&["call", "alpha", "--venv", "projB", "vpkg", "version"])),
        "2.0"
    );
    let out = c.run(&["call", "alpha", "vpkg", "version"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the default environment has neither"
    );
    let script =
        "import os, vpkg; print(vpkg.VERSION, os.environ['VIRTUAL_ENV'].endswith('venvs/projA'))";
    assert_eq!(
        ok(&c.run(&[
            "run", "alpha", "--venv", "projA", "--", "python3", "-c", script
        ])),
        "1.0 True"
    );
    let job = ok(&c.run(&[
        "submit", "alpha", "--venv", "projB", "--wait", "vpkg", "version",
    ]));
    assert!(job.ends_with("2.0"), "{job}");
    // The hosts config's venv.
    assert_eq!(ok(&c.run(&["call", "beta", "vpkg", "version"])), "2.0");

    // The list, then one removed: calls there are refused, naming how to create it.
    let out = c.run(&["--json", "venvs", "alpha"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let venvs = v["venvs"].as_array().unwrap();
    let names: Vec<&str> = venvs.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["projA", "projB"], "{v}");
    assert!(
        venvs[0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[0] == "vpkg" && p[1] == "1.0"),
        "{v}"
    );
    let listing = ok(&c.run(&["venvs", "alpha"]));
    assert!(listing.contains("vpkg==2.0"), "{listing}");
    ok(&c.run(&["venvs", "alpha", "--rm", "projA"]));
    assert!(!a.home.join(".sremote/venvs/projA").exists());
    let out = c.run(&["call", "alpha", "--venv", "projA", "vpkg", "version"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("does not exist") && err.contains("--venv projA"),
        "{err}"
    );
    let out = c.run(&["venvs", "alpha", "--rm", "projA"]);
    assert!(!out.status.success() && text(&out.stderr).contains("no venv projA"));

    // Names are data, and checked.
    for bad in ["../x", "-x", "a b"] {
        let out = c.run(&["call", "alpha", "--venv", bad, "os", "getpid"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
    }
}
