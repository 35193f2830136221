//! Plugin executables over a real sshd: `client.install_module` pushes a Python and a shell
//! plugin (the examples of PROTOCOL.md, "Plugin executables", read from the file), called in
//! every mode; bad output names the plugin; names are checked before anything is sent.
use serde_json::{Value, json};
use sremote_core::protocol::ErrorKind;
use sremote_core::{CallOutput, Error};
use sremote_testkit::Sshd;
use sremote_tests::{MODES, connect};

/// The code block of language `lang` in PROTOCOL.md's section "Plugin executables": the
/// documented examples are exactly what is installed and called here.
fn doc_example(lang: &str) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md")).unwrap();
    let section = doc
        .split("\n## Plugin executables\n")
        .nth(1)
        .expect("section Plugin executables");
    let section = section.split("\n## ").next().unwrap();
    let block = section
        .split(&format!("```{lang}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {lang} example"));
    block.split("```").next().unwrap().to_string()
}

fn write_plugin(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_shell_plugins_installed_and_called_in_every_mode() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    let local = tempfile::tempdir().unwrap();
    let py = write_plugin(local.path(), "textstats.py", &doc_example("python"));
    let sh = write_plugin(local.path(), "hostinfo.sh", &doc_example("sh"));
    let at = client.install_module("textstats", &py).await.unwrap();
    assert!(at.ends_with(".sremote/modules/textstats"), "{at}");
    client.install_module("hostinfo", &sh).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sshd.home.join(".sremote/modules/textstats"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    for mode in MODES {
        let text = "two words $(id) ; `x`";
        let v: CallOutput<Value> = client
            .call("textstats", "count")
            .arg(text)
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(
            v.value,
            json!({"chars": text.len(), "words": 5}),
            "{mode:?}"
        );
        assert_eq!(v.stdout, format!("counting {} characters\n", text.len()));
        let err = client
            .call::<Value>("textstats", "fail")
            .mode(mode)
            .await
            .unwrap_err();
        match &err {
            Error::RemoteExec(e) => {
                assert_eq!(e.kind, ErrorKind::Raised);
                assert_eq!(e.message, "RuntimeError: failing on purpose");
                assert!(
                    e.traceback
                        .as_deref()
                        .unwrap_or_default()
                        .contains("raise RuntimeError")
                );
            }
            other => panic!("{other}"),
        }
        let err = client
            .call::<Value>("textstats", "nope")
            .mode(mode)
            .await
            .unwrap_err();
        assert_eq!(
            err.remote_kind(),
            Some(ErrorKind::FunctionNotFound),
            "{err}"
        );

        let up: CallOutput<f64> = client.call("hostinfo", "uptime").mode(mode).await.unwrap();
        assert!(up.value > 0.0, "{mode:?}");
    }
    // The endpoint lists them.
    let listing: CallOutput<Value> = client.call("sys", "modules").await.unwrap();
    let plugins: Vec<&str> = listing.value["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "plugin")
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(plugins, ["hostinfo", "textstats"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugin_output_names_the_plugin() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    let local = tempfile::tempdir().unwrap();
    let garbage = write_plugin(
        local.path(),
        "g",
        "#!/bin/sh\necho 'this is not json'\nexit 3\n",
    );
    client.install_module("garbled", &garbage).await.unwrap();
    let neither = write_plugin(local.path(), "n", "#!/bin/sh\necho '{\"value\": 1}'\n");
    client.install_module("neither", &neither).await.unwrap();
    for mode in MODES {
        for (module, expect) in [
            ("garbled", "this is not json"),
            ("neither", "exactly one of `ok` and `error`"),
        ] {
            let err = client
                .call::<Value>(module, "f")
                .mode(mode)
                .await
                .unwrap_err();
            let text = err.to_string();
            let Error::Protocol(p) = &err else {
                panic!("a Protocol error, not {err:?}")
            };
            assert!(
                p.module
                    .as_deref()
                    .is_some_and(|m| m.ends_with(&format!(".sremote/modules/{module}"))),
                "names the plugin: {p:?}"
            );
            assert!(
                text.contains(&format!(".sremote/modules/{module}")) && !text.contains("bootstrap"),
                "names the plugin, and does not send the user to bootstrap: {text}"
            );
            assert!(text.contains(expect), "{text}");
            if module == "garbled" {
                assert_eq!(p.received, "this is not json\n", "{p:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_names_are_checked_before_anything_is_sent() {
    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    let local = tempfile::tempdir().unwrap();
    let file = write_plugin(local.path(), "p", &doc_example("sh"));
    for bad in [
        "", ".hidden", "-rf", "a/b", "../x", "$(id)", "a b", "os", "sys", "session",
    ] {
        let err = client.install_module(bad, &file).await.unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{bad:?}: {err}");
    }
    let err = client
        .install_module("ok-name", &local.path().join("missing"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Usage(m) if m.contains("missing")),
        "{err}"
    );
    assert!(!sshd.home.join(".sremote/modules/ok-name").exists());
    assert!(!sshd.home.join("x").exists() && !sshd.home.join("a").exists());
}
