//! Installing Python code into the endpoint's venv over a real sshd: a git repository made
//! by the test (a tiny package with a pyproject.toml) is cloned and pip-installed on the
//! host, then called through the Python bridge; failures carry the tools' output; user
//! strings never reach a shell.
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sremote_core::protocol::ErrorKind;
use sremote_core::{CallMode, CallOutput, Error};
use sremote_testkit::Sshd;
use sremote_tests::connect;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository holding the package `tinypkg` 0.3.1 on branch `release`.
fn tiny_repo(root: &Path) -> String {
    let repo = root.join("tiny repo");
    std::fs::create_dir_all(repo.join("tinypkg")).unwrap();
    std::fs::write(
        repo.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"tinypkg\"\nversion = \"0.3.1\"\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("tinypkg/__init__.py"),
        "calls = 0\n\ndef hello(name, times=1):\n    global calls\n    calls += 1\n    \
         print('greeting', name)\n    return ('hello ' + name + '! ') * times\n",
    )
    .unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["checkout", "-q", "-b", "release"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "tinypkg"]);
    format!("file://{}", repo.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_module_installed_into_a_new_venv_then_called() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    let local = tempfile::tempdir().unwrap();
    let url = tiny_repo(local.path());
    // A session is open and its Python worker runs the system python3 before the install.
    let before: CallOutput<String> = client
        .call("py:sys", "executable.__str__")
        .mode(CallMode::Session)
        .await
        .unwrap();
    assert!(!before.value.contains(".sremote/venv"), "{}", before.value);
    let err = client.check_modules(["tinypkg"]).await.unwrap_err();
    assert!(
        matches!(&err, Error::ModulesMissing(m) if m.missing == ["tinypkg"]),
        "{err}"
    );

    let report = client
        .do_install_git_module(&url, "release", "tinypkg")
        .await
        .unwrap();
    assert!(report.created_venv, "{report:?}");
    assert!(
        report.python.ends_with(".sremote/venv/bin/python3"),
        "{report:?}"
    );
    assert!(
        sshd.home
            .join(".sremote/src/tinypkg/pyproject.toml")
            .is_file()
    );

    for mode in [CallMode::Session, CallMode::Pipe, CallMode::File] {
        let v: CallOutput<String> = client
            .call("tinypkg", "hello")
            .arg("world")
            .kwarg("times", 2)
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(v.value, "hello world! hello world! ", "{mode:?}");
        assert_eq!(v.stdout, "greeting world\n");
    }
    // The session's worker switched to the venv's interpreter.
    let after: CallOutput<String> = client
        .call("py:sys", "executable.__str__")
        .mode(CallMode::Session)
        .await
        .unwrap();
    assert!(
        after.value.ends_with(".sremote/venv/bin/python3"),
        "{}",
        after.value
    );
    client.check_modules(["tinypkg", "json"]).await.unwrap();
    let err = client
        .check_modules(["tinypkg", "absent_pkg_xyz"])
        .await
        .unwrap_err();
    match err {
        Error::ModulesMissing(m) => {
            assert_eq!(m.missing, ["absent_pkg_xyz"]);
            assert_eq!(m.present["tinypkg"], "0.3.1");
        }
        other => panic!("{other}"),
    }
    // Installing again replaces the clone; the venv is kept.
    let again = client
        .do_install_git_module(&url, "", "tinypkg")
        .await
        .unwrap();
    assert!(!again.created_venv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_carry_the_tools_output_and_strings_stay_data() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    let local = tempfile::tempdir().unwrap();
    let canary = sshd.home.join("pwned");
    let hostile = format!("$(touch {0})`touch {0}`;touch {0}", canary.display());

    // A repository that does not exist: git's own message comes back.
    let missing = format!("file://{}/nothing here {hostile}", local.path().display());
    let err = client
        .do_install_git_module(&missing, "main", "nothing")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Raised), "{text}");
    assert!(
        text.contains("git clone") && text.contains("nothing here"),
        "{text}"
    );
    assert!(text.contains(client.host()), "{text}");

    // A branch that does not exist.
    let url = tiny_repo(local.path());
    let err = client
        .do_install_git_module(&url, &hostile, "tinypkg")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("git clone"), "{err}");

    // pip refuses what is not a requirement; the spec is never an option or a command.
    for spec in ["--index-url=http://127.0.0.1:9/", hostile.as_str()] {
        let err = client.install_python_packages([spec]).await.unwrap_err();
        match &err {
            Error::RemoteExec(e) => {
                assert_eq!(e.function, "install_python_packages");
                assert!(e.message.contains("pip install failed"), "{}", e.message);
                assert!(e.stderr.contains("ERROR"), "pip's own output: {}", e.stderr);
                assert!(e.message.contains("output:\n"), "{}", e.message);
            }
            other => panic!("{other}"),
        }
    }
    // Names are checked before anything is sent.
    for name in ["", "../x", "-rf", "a b", "$(id)"] {
        let err = client
            .do_install_git_module(&url, "release", name)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{name:?}: {err}");
    }
    let err = client
        .install_python_packages(Vec::<String>::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    assert!(!canary.exists(), "a user string was run by a shell");
    // The venv made on the way is usable.
    let v: CallOutput<Value> = client
        .call("py:sys", "executable.__str__")
        .mode(CallMode::Pipe)
        .await
        .unwrap();
    assert!(
        v.value
            .as_str()
            .unwrap()
            .ends_with(".sremote/venv/bin/python3"),
        "{}",
        v.value
    );
}
