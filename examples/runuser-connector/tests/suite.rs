//! The whole shared connector test-suite through `runuser`, as a throwaway user the
//! testkit creates (needs root: skipped with a message otherwise), and a function call
//! through it (bootstrap deploys the endpoint into that user's home).
use std::sync::Arc;

use async_trait::async_trait;
use runuser_connector::RunuserConnector;
use sremote_core::testsuite::Fixture;
use sremote_core::{
    Connector, ConnectorError, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source,
};
use sremote_testkit::LoginUser;

/// The connector, keeping its user alive (the user is removed when the last one goes).
#[derive(Debug, Clone)]
struct AsUser(RunuserConnector, Arc<LoginUser>);

#[async_trait]
impl Connector for AsUser {
    fn host(&self) -> &str {
        self.0.host()
    }
    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        self.0.exec(cmd).await
    }
    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        self.0.push(from, to).await
    }
    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        self.0.pull(from, to).await
    }
    async fn spawn(&self, cmd: &RemoteCommand) -> Result<RemoteProcess, ConnectorError> {
        self.0.spawn(cmd).await
    }
}

/// A fresh user with its own home; `None` (skipped) without root.
fn user() -> Option<AsUser> {
    let user = match LoginUser::create("sh") {
        Ok(u) => u,
        Err(sremote_testkit::Error::Skip(why)) => {
            eprintln!("skipped: {why} (runuser and useradd need root; CI runs these as root)");
            return None;
        }
        Err(e) => panic!("cannot create a test user: {e}"),
    };
    let c = RunuserConnector::new(&user.name).expect("a valid name");
    Some(AsUser(c, Arc::new(user)))
}

async fn fixture() -> Option<Fixture<AsUser>> {
    Some(Fixture {
        connector: user()?,
        scratch: "scratch dir".to_string(),
        unwritable: Some("/etc".to_string()),
    })
}

sremote_core::connector_tests!(optional fixture);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_run_as_the_user_in_its_home() {
    let Some(c) = user() else { return };
    let cmd = RemoteCommand::new("sh").args(["-c", r#"id -un; pwd; printf %s "$HOME""#]);
    let out = c.exec(&cmd).await.expect("exec");
    let home = c.1.home.display().to_string();
    let want = format!("{}\n{home}\n{home}", c.1.name);
    assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_call_bootstraps_the_endpoint_through_it() {
    let Some(c) = user() else { return };
    let home = c.1.home.display().to_string();
    let client = sremote_core::RemoteClient::new(c);
    let out = client
        .do_remote_call::<String>("os", "getenv", sremote_core::args!["HOME"])
        .await
        .expect("os.getenv through runuser");
    assert_eq!(out.value, home);
}
