//! A custom endpoint crate (`examples/custom-endpoint`) end to end over a real sshd: built
//! as a static binary the way `deploy/build-endpoint.sh` builds the stock one, bootstrapped
//! with `do_bootstrap_install_with`, its functions called in every mode, its module list
//! visible through `sremote-endpoint modules`; and the same through the `sremote` CLI
//! (`bootstrap --endpoint`, `call --endpoint`).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use sremote_core::protocol::ErrorKind;
use sremote_core::{CallOutput, Connector, Error, RemoteCommand};
use sremote_testkit::Sshd;
use sremote_tests::{MODES, connect};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `<target>` of the running test binary (`<target>/debug/deps/<test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// `cargo` in a clean environment (nothing of the outer build leaks in).
fn cargo() -> Command {
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.current_dir(workspace());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key == "RUSTC_WRAPPER"
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example built as a static binary for this machine's target (once per test binary).
fn custom_endpoint() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let rustc = Command::new("rustc")
            .arg("-vV")
            .output()
            .expect("rustc -vV");
        let info = String::from_utf8_lossy(&rustc.stdout).into_owned();
        let host = info
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .expect("host triple")
            .to_string();
        // The bundled endpoint's nested build dir and profile (crates/sremote-endpoint-bin):
        // the static dependencies are built there already.
        let dir = target_dir().join("endpoint-static");
        let mut cmd = cargo();
        cmd.args([
            "build",
            "--quiet",
            "--profile",
            "endpoint-dev",
            "-p",
            "custom-endpoint",
            "--bin",
            "custom-endpoint",
        ])
        .args(["--target", &host, "--target-dir"])
        .arg(&dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static");
        run(cmd, "static build of examples/custom-endpoint");
        let bin = dir.join(&host).join("endpoint-dev").join("custom-endpoint");
        assert!(bin.is_file(), "{} was not built", bin.display());
        let ldd = Command::new("ldd").arg(&bin).output().map(|o| {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        });
        if let Ok(text) = ldd {
            assert!(
                text.contains("not a dynamic executable") || text.contains("statically linked"),
                "not static: {text}"
            );
        }
        bin
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_endpoint_bootstrapped_and_called_in_every_mode() {
    let bin = custom_endpoint();
    // Its module list, locally.
    let listing = Command::new(bin)
        .args(["modules", "--json"])
        .output()
        .unwrap();
    let listing: Value = serde_json::from_slice(&listing.stdout).unwrap();
    let calc = listing["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "calc")
        .expect("calc listed");
    let sigs: Vec<&str> = calc["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["signature"].as_str().unwrap())
        .collect();
    assert!(
        sigs.contains(&"calc.add(a: int, b: int) -> int"),
        "{sigs:?}"
    );

    let sshd = Sshd::start().unwrap();
    let client = connect(&sshd).await;
    let report = client.do_bootstrap_install_with(bin).await.unwrap();
    assert!(report.installed, "{report:?}");
    assert!(
        report.endpoint_path.contains("bin/sremote-endpoint-"),
        "{report:?}"
    );
    assert_eq!(client.endpoint_path(), report.endpoint_path);
    let again = client.do_bootstrap_install_with(bin).await.unwrap();
    assert!(!again.installed, "the same binary is not pushed twice");

    for mode in MODES {
        let sum: CallOutput<i64> = client
            .call("calc", "add")
            .arg(2)
            .arg(40)
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(sum.value, 42, "{mode:?}");
        let by_name: CallOutput<i64> = client
            .call("calc", "add")
            .kwarg("b", 1)
            .kwarg("a", -3)
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(by_name.value, -2);
        let n: CallOutput<f64> = client
            .call("calc", "norm")
            .arg(json!({"x": 3.0, "y": 4.0}))
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(n.value, 5.0);
        let loud: CallOutput<String> = client
            .call("calc", "shout")
            .arg("hi $(id)")
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(loud.value, "HI $(ID)");
        // What the function prints (with sremote_endpoint::println!) comes back with its
        // call in every mode, sessions included.
        assert_eq!(loud.stdout, "shouting \"hi $(id)\"\n", "{mode:?}");
        let err = client
            .call::<f64>("calc", "divide")
            .arg(1.0)
            .arg(0.0)
            .mode(mode)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::RemoteExec(e) if e.kind == ErrorKind::Raised && e.message == "division by zero"),
            "{err}"
        );
        let err = client
            .call::<i64>("calc", "add")
            .arg("two")
            .arg(2)
            .mode(mode)
            .await
            .unwrap_err();
        match &err {
            Error::RemoteExec(e) => {
                assert_eq!(e.kind, ErrorKind::BadArguments);
                assert!(
                    e.message.contains("calc.add(a: int, b: int) -> int"),
                    "{}",
                    e.message
                );
            }
            other => panic!("{other}"),
        }
        // The built-in modules are still there.
        let home: CallOutput<String> = client
            .call("os", "getenv")
            .arg("HOME")
            .mode(mode)
            .await
            .unwrap();
        assert_eq!(home.value, sshd.home.to_str().unwrap());
    }
    // `sremote-endpoint modules` of the installed binary, on the host.
    let out = client
        .connector()
        .exec(&RemoteCommand::new(&report.endpoint_path).args(["modules"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("calc (custom): Example functions") && text.contains("calc.norm(p: Point)"),
        "{text}"
    );
}

fn sremote_cli() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut cmd = cargo();
            cmd.args([
                "build",
                "--quiet",
                "-p",
                "sremote-cli",
                "--bin",
                "sremote",
                "--target-dir",
            ])
            .arg(target_dir());
            run(cmd, "build of the sremote CLI");
            target_dir().join("debug").join("sremote")
        })
        .clone()
}

#[test]
fn cli_bootstrap_and_call_with_a_custom_endpoint() {
    let bin = custom_endpoint();
    let cli = sremote_cli();
    let sshd = Sshd::start().unwrap();
    let sremote = |args: &[&str]| {
        let out = Command::new(&cli)
            .arg("--ssh-config")
            .arg(&sshd.ssh_config)
            .args(args)
            .env_remove("SREMOTE_CUSTOM_ENDPOINT")
            .env_remove("SREMOTE_ENDPOINT")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let bin_str = bin.to_str().unwrap();
    let (code, stdout, stderr) = sremote(&["bootstrap", &sshd.alias, "--endpoint", bin_str]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("installed") && stdout.contains("bin/sremote-endpoint-"),
        "{stdout}"
    );
    // A later invocation names the custom endpoint again (flag or SREMOTE_CUSTOM_ENDPOINT).
    let (code, stdout, stderr) = sremote(&[
        "call",
        "--endpoint",
        bin_str,
        &sshd.alias,
        "calc",
        "add",
        "20",
        "22",
    ]);
    assert_eq!((code, stdout.trim()), (Some(0), "42"), "{stderr}");
    let out = Command::new(&cli)
        .arg("--ssh-config")
        .arg(&sshd.ssh_config)
        .args(["call", &sshd.alias, "calc", "shout", "x", "--mode", "pipe"])
        .env("SREMOTE_CUSTOM_ENDPOINT", bin)
        .output()
        .unwrap();
    // The value alone on stdout; what the function printed on stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "X\n", "{err}");
    assert!(err.contains("shouting \"x\"\n"), "{err}");
    // Without it, the stock endpoint answers: no `calc` there.
    let (code, _, stderr) = sremote(&[
        "call",
        &sshd.alias,
        "calc",
        "add",
        "1",
        "2",
        "--mode",
        "pipe",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("ModuleNotFound") && stderr.contains("calc"),
        "{stderr}"
    );
}
