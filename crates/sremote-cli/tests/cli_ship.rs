//! `sremote call HOST ./file.py:FUNCTION …` and `sremote submit HOST ./file.py:FUNCTION …`:
//! a local Python file (and the files next to it that it imports) travels with the call,
//! over a real sshd; `sremote install` puts a package into the host's venv; a missing
//! module's error names both ways.
mod common;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

#[test]
fn a_local_file_travels_with_call_and_submit() {
    let sshd = Sshd::start().unwrap();
    let client = Client::new(&ssh_host("box", &sshd.alias, &sshd.ssh_config));
    let work = tempfile::tempdir().unwrap();
    let calc = work.path().join("calc.py");
    std::fs::write(
        work.path().join("helper.py"),
        "def twice(x):\n    return 2 * x\n",
    )
    .unwrap();
    std::fs::write(
        &calc,
        "from helper import twice\n\ndef multiply(a, b):\n    print('multiplying')\n    return twice(a) * b // 2\n",
    )
    .unwrap();
    let target = format!("{}:multiply", calc.display());
    let out = client.run(&["call", "box", &target, "10", "7"]);
    // The value alone on stdout; what the function prints goes to stderr.
    assert_eq!(ok(&out), "70");
    assert!(text(&out.stderr).contains("multiplying"));
    // The host does not know `calc` by itself: the plain call fails and says what to do.
    let out = client.run(&["call", "box", "calc", "multiply", "10", "7"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("./file.py:FUNCTION") && err.contains("sremote install"),
        "{err}"
    );
    // A job of the file; the same call again reattaches; changed code is a new job.
    let first = ok(&client.run(&["submit", "box", "--wait", &target, "10", "7"]));
    assert!(first.ends_with("70"), "{first}");
    let again = client.run(&["submit", "box", &target, "10", "7"]);
    let again_text = format!("{}{}", text(&again.stdout), text(&again.stderr));
    assert!(again_text.contains("submitted before"), "{again_text}");
    std::fs::write(
        &calc,
        "from helper import twice\n\ndef multiply(a, b):\n    return twice(a) * b // 2 + 1000\n",
    )
    .unwrap();
    let changed = ok(&client.run(&["submit", "box", "--wait", &target, "10", "7"]));
    assert!(changed.ends_with("1070"), "{changed}");
    // Usage errors.
    let out = client.run(&["call", "box", "calc"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("which function"));
    let out = client.run(&["call", "box", "./missing.py:f"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("missing.py"));
}

#[test]
fn install_reads_requirements_and_refuses_nothing_to_install() {
    let client = Client::new("");
    let out = client.run(&["install", "local"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nothing to install"),
        "{}",
        text(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("requirements.txt");
    std::fs::write(&req, "--index-url http://example.invalid\n").unwrap();
    let out = client.run(&["install", "local", "-r", req.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pip options"),
        "{}",
        text(&out.stderr)
    );
    // A real install (a package directory of this machine, which is also the host):
    // afterwards the host's Python imports it.
    let pkg = dir.path().join("shippkg");
    std::fs::create_dir_all(pkg.join("shipkg")).unwrap();
    std::fs::write(
        pkg.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"shipkg\"\nversion = \"1.0\"\n",
    )
    .unwrap();
    std::fs::write(
        pkg.join("shipkg/__init__.py"),
        "def hello():\n    return 'hi'\n",
    )
    .unwrap();
    std::fs::write(&req, format!("# ours\n{}\n", pkg.display())).unwrap();
    let out = client.run(&["install", "local", "-r", req.to_str().unwrap()]);
    assert!(ok(&out).contains("installed"));
    assert_eq!(ok(&client.run(&["call", "local", "shipkg", "hello"])), "hi");
}
