//! `sremote` against a real `sremote-gateway` on loopback: bootstrap and calls through
//! the NEWT REST API (file mode), credentials from the environment only.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

const USER: &str = "alice";
const PASSWORD: &str = "pw with spaces 'and' $(quotes)";

/// A binary of this workspace beside the test executable (built by `cargo nextest
/// --workspace`), else built now.
fn workspace_binary(name: &str, package: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", package, "--bin", name])
            .status()
            .unwrap();
        assert!(status.success(), "building {name}");
    }
    path
}

struct Gateway {
    child: Child,
    url: String,
    home: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    sremote_gateway::users::add_user(&users, USER, PASSWORD).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nbase_path = \"/newt\"\nmachines = [\"cluster\"]\nusers_file = \"{}\"\nroots = [\"~\"]\n",
            users.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(workspace_binary("sremote-gateway", "sremote-gateway"))
        .arg("--config")
        .arg(&config)
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = None;
    for stream in [
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        if let Ok(u) = rx.recv_timeout(std::time::Duration::from_millis(if url.is_none() {
            5000
        } else {
            10
        })) {
            url.get_or_insert(u);
        }
    }
    let url = url.expect("the gateway announced where it listens");
    Gateway {
        child,
        url,
        home,
        _dir: dir,
    }
}

fn sremote(home: &std::path::Path, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sremote"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("SREMOTE_NEWT_TOKEN")
        .stdin(Stdio::null());
    match password {
        Some(p) => cmd.env("SREMOTE_NEWT_PASSWORD", p),
        None => cmd.env_remove("SREMOTE_NEWT_PASSWORD"),
    };
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn bootstrap_and_call_over_rest() {
    let gw = gateway();
    let local_home = tempfile::tempdir().unwrap();
    let host = format!(
        "newt+{}/cluster",
        gw.url.replacen("://", &format!("://{USER}@"), 1)
    );
    let out = sremote(local_home.path(), &["bootstrap", &host], Some(PASSWORD));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("installed"),
        "{}",
        text(&out.stdout)
    );
    let out = sremote(
        local_home.path(),
        &["call", &host, "os", "getenv", "HOME", "--json"],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["ok"],
        gw.home.path().to_str().unwrap(),
        "ran in the gateway user's home"
    );
    assert_eq!(v["mode"], "file", "NEWT has no stdin: file mode");
    // Wrong password: a typed auth failure, exit code 3, and the password is not echoed.
    let out = sremote(
        local_home.path(),
        &["call", &host, "os", "getpid"],
        Some("wrong"),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Auth"), "{}", text(&out.stderr));
    // No password and no terminal: a usage error that says what to set.
    let out = sremote(local_home.path(), &["call", &host, "os", "getpid"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SREMOTE_NEWT_PASSWORD"),
        "{}",
        text(&out.stderr)
    );
}
