//! `sremote-endpoint`: the stock endpoint with the built-in modules.
fn main() {
    sremote_endpoint::Endpoint::with_builtins().run()
}
