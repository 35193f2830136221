//! Helpers for running the `sremote` binary in tests: a throwaway client HOME, a hosts
//! config, output as text.
#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses a part"
)]

pub mod gateway;
pub mod partition;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A client side: its own HOME (control sockets, config) and a config file.
pub struct Client {
    pub home: tempfile::TempDir,
    pub config: PathBuf,
    /// Extra environment for every run.
    pub env: Vec<(String, String)>,
}

impl Client {
    pub fn new(config_toml: &str) -> Client {
        let home = tempfile::Builder::new()
            .prefix("srcli-")
            .tempdir_in("/tmp")
            .unwrap();
        let config = home.path().join("config.toml");
        std::fs::write(&config, config_toml).unwrap();
        Client {
            home,
            config,
            env: Vec::new(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sremote"));
        c.args(args)
            .env("HOME", self.home.path())
            .env("SREMOTE_CONFIG", &self.config)
            .env_remove("SREMOTE_ENDPOINT")
            .env_remove("SREMOTE_SSH_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run sremote")
    }
}

/// A `[hosts.NAME]` entry for a testkit sshd (through its ssh_config alias).
pub fn ssh_host(name: &str, alias: &str, ssh_config: &Path) -> String {
    format!(
        "[hosts.{name}]\ndestination = \"{alias}\"\nssh_config = \"{}\"\n",
        ssh_config.display()
    )
}

pub use sremote_testkit::alive;

/// Wait up to 5 s for `pid` to be gone; panics naming `what` if it is not.
pub async fn wait_dead(pid: u32, what: &str) {
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what} (pid {pid}) is still running");
}
