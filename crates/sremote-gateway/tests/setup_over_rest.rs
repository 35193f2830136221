//! The host's setup lines over REST (NEWT runs commands without a stdin, from word-split
//! command lines): file-mode calls see what the lines exported, multi-line and quoted
//! lines included, and a failing line is `Error::Setup` naming it.
mod common;

use common::{Gateway, Opts};
use sremote_core::{CallOutput, Error, RemoteClient, args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_mode_calls_see_the_setup() {
    let gw = Gateway::start(Opts::default());
    let client = RemoteClient::new(gw.login().await);
    client.set_setup([
        "export SREMOTE_REST='it'\\''s \"set\" up'",
        "if true; then\n  export SREMOTE_REST2=two-lines\nfi # comment",
    ]);
    let out: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["SREMOTE_REST"])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert_eq!(out.value, "it's \"set\" up");
    assert_eq!(out.meta.mode, sremote_core::CallMode::File);
    let out: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["SREMOTE_REST2"])
        .await
        .unwrap();
    assert_eq!(out.value, "two-lines");
    client.set_setup(["false"]);
    let e = client
        .do_remote_call::<u32>("os", "getpid", args![])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Setup(f) if f.line == 1 && f.status == 1),
        "{e}"
    );
}
