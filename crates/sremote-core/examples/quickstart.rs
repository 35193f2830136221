//! The README's Rust quick start, compiled with the crate so it stays true:
//! `cargo run -p sremote-core --example quickstart`.
use sremote_core::{CallOutput, LocalConnector, RemoteClient, args};

#[tokio::main]
async fn main() -> Result<(), sremote_core::Error> {
    let client = RemoteClient::new(LocalConnector::new());
    client.register_remote_env_variable("myVar", "myValue");
    let out: CallOutput<String> = client
        .do_remote_call("os", "getenv", args!["myVar"])
        .await?;
    assert_eq!(out.value, "myValue"); // out.stdout, out.stderr, out.meta too

    // The builder: keyword arguments, timeouts, per-call env.
    let nope: CallOutput<Option<String>> = client
        .call("os", "getenv")
        .arg("NOPE")
        .kwarg("default", "x")
        .timeout(std::time::Duration::from_secs(10))
        .await?;
    assert_eq!(nope.value.as_deref(), Some("x"));
    println!(
        "myVar = {} (took {} µs on {})",
        out.value, out.meta.timing.elapsed_us, out.meta.host
    );
    Ok(())
}
