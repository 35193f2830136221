//! A real `sremote-gateway` on loopback for the CLI's REST tests: a user with a
//! password, a root to serve, the NEWT URL.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "pw with spaces 'and' $(quotes)";

/// A binary of this workspace beside the test executable (built by `cargo nextest
/// --workspace`), else built now.
pub fn workspace_binary(name: &str, package: &str) -> std::path::PathBuf {
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

pub struct Gateway {
    child: Child,
    pub url: String,
    pub home: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn gateway() -> Gateway {
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
