//! Shared by the test binaries: a connector that keeps its test host alive.
#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses a part"
)]

use std::sync::Arc;

use async_trait::async_trait;
use sremote_core::testsuite::Fixture;
use sremote_core::{
    Connector, ConnectorError, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source,
};
use sremote_ssh::SshConnector;
use sremote_testkit::{NetnsHost, Sshd, unique_name};

/// An [`SshConnector`] that holds on to the server it talks to.
#[derive(Debug)]
pub struct Hosted<H: std::fmt::Debug + Send + Sync> {
    pub ssh: SshConnector,
    pub host: Arc<H>,
}

impl<H: std::fmt::Debug + Send + Sync> Clone for Hosted<H> {
    fn clone(&self) -> Self {
        Hosted {
            ssh: self.ssh.clone(),
            host: self.host.clone(),
        }
    }
}

#[async_trait]
impl<H: std::fmt::Debug + Send + Sync> Connector for Hosted<H> {
    fn host(&self) -> &str {
        self.ssh.host()
    }
    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        self.ssh.exec(cmd).await
    }
    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        self.ssh.push(from, to).await
    }
    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        self.ssh.pull(from, to).await
    }
    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        self.ssh.spawn(cmd).await
    }
}

/// Connect to the shared loopback sshd through its ssh_config alias.
pub async fn loopback() -> Hosted<Sshd> {
    let sshd = Sshd::shared().expect("start sshd");
    let ssh = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n--- sshd log:\n{}", sshd.log()));
    Hosted { ssh, host: sshd }
}

pub async fn loopback_fixture() -> Fixture<Hosted<Sshd>> {
    Fixture {
        connector: loopback().await,
        scratch: unique_name("scratch"),
        unwritable: None,
    }
}

/// The network-namespace host, as its unprivileged user; `None` when skipped.
pub async fn netns() -> Option<Hosted<NetnsHost>> {
    let host = match NetnsHost::shared("srt-ssh", 42) {
        Ok(h) => h,
        Err(sremote_testkit::Error::Skip(why)) => {
            eprintln!("skipped: {why}");
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    let ssh = SshConnector::builder()
        .config_file(&host.ssh_config)
        .connect(&host.name)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n--- sshd log:\n{}", host.log()));
    Some(Hosted { ssh, host })
}

/// A fresh sshd logged into as a new user whose login shell is `shell` and whose login
/// scripts print banners on stdout and stderr; `None` when this machine cannot (not root).
pub async fn login_shell(shell: &str) -> Option<Hosted<Sshd>> {
    let sshd = match Sshd::start_as(shell) {
        Ok(s) => Arc::new(s),
        Err(sremote_testkit::Error::Skip(why)) => {
            eprintln!("skipped: {why}");
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    let ssh = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connect as a {shell} user: {e}\n--- sshd log:\n{}",
                sshd.log()
            )
        });
    Some(Hosted { ssh, host: sshd })
}

/// The shared suite's fixture for a [`login_shell`] host (the loopback one when skipped).
pub async fn login_shell_fixture(shell: &str) -> Fixture<Box<dyn Connector>> {
    let connector: Box<dyn Connector> = match login_shell(shell).await {
        Some(h) => Box::new(h),
        None => Box::new(loopback().await),
    };
    Fixture {
        connector,
        scratch: unique_name("scratch"),
        unwritable: Some("/root".into()),
    }
}
