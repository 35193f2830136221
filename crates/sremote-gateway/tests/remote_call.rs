//! `RemoteClient` over REST: bootstrap the endpoint through the gateway, then calls in
//! file mode (NEWT has no stdin).
mod common;

use std::time::{Duration, Instant};

use common::{Gateway, Opts};
use sremote_core::{CallOutput, RemoteClient, args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_and_do_remote_call_over_rest() {
    let gw = Gateway::start(Opts::default());
    let client = RemoteClient::new(gw.login().await);
    let report = client
        .do_bootstrap_install()
        .await
        .unwrap_or_else(|e| panic!("bootstrap: {e}\n{}", gw.log()));
    assert!(report.installed, "{report:?}");
    assert!(report.endpoint_path.contains(".sremote/bin/"), "{report:?}");
    assert!(
        gw.home.join(".sremote/bin").is_dir(),
        "installed under the gateway user's ~/.sremote"
    );
    let again = client.do_bootstrap_install().await.unwrap();
    assert!(
        !again.installed,
        "the right endpoint is found, not pushed again"
    );
    client.register_remote_env_variable("myVar", "myValue");
    let out: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["myVar"])
        .await
        .unwrap();
    assert_eq!(out.value, "myValue");
    assert_eq!(out.meta.mode, sremote_core::CallMode::File);
    let home: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["HOME"])
        .await
        .unwrap();
    assert_eq!(home.value, gw.home.display().to_string());
    let err = client
        .do_remote_call::<String>("no_such_module", "f", args![])
        .await
        .expect_err("remote error");
    assert!(err.remote_kind().is_some(), "{err}");
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let _: CallOutput<String> = client
            .do_remote_call("os", "getenv", args!["HOME"])
            .await
            .unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "file-mode call over the gateway: median {:?} (20 calls)",
        times[10]
    );
    assert!(times[10] < Duration::from_secs(5));
}
