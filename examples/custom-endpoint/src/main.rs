//! An sremote endpoint with the built-in modules plus a module `calc` of our own.
//!
//! Build it as a static binary (it runs on hosts whatever their C library):
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+crt-static" \
//!   cargo build --release -p custom-endpoint --target "$(rustc -vV | sed -n 's/host: //p')"
//! ```
//!
//! then install it on a host and call it:
//!
//! ```text
//! sremote bootstrap HOST --endpoint target/<triple>/release/custom-endpoint
//! sremote call --endpoint target/<triple>/release/custom-endpoint HOST calc add 2 3
//! ```
//!
//! or from Rust: `client.do_bootstrap_install_with(path).await?` and then
//! `client.call::<i64>("calc", "add").arg(2).arg(3).await?`.

use serde::{Deserialize, Serialize};
use sremote_endpoint::{CallError, Endpoint};
// This crate's `println!` writes to the running call's `stdout` in every call mode (std's
// is captured per call in pipe and file mode only: a session runs calls concurrently).
use sremote_endpoint::println;

/// Arguments and return values are serde types, checked at the boundary: a call with
/// arguments that do not fit gets `BadArguments` naming this signature.
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// A struct argument arrives as a JSON object: `{"x": 3.0, "y": 4.0}`.
#[derive(Debug, Deserialize, Serialize)]
struct Point {
    x: f64,
    y: f64,
}

fn norm(p: Point) -> f64 {
    p.x.hypot(p.y)
}

/// Failures are values: an `Err` becomes a `Raised` error on the client, with this message.
fn divide(a: f64, b: f64) -> Result<f64, CallError> {
    if b == 0.0 {
        return Err(CallError::raised("division by zero"));
    }
    Ok(a / b)
}

/// What a function prints is returned with the value, in `CallOutput::stdout`.
fn shout(text: String) -> String {
    println!("shouting {text:?}");
    text.to_uppercase()
}

fn main() {
    Endpoint::with_builtins()
        .module("calc", |m| {
            m.doc("Example functions of the custom-endpoint crate.");
            m.function("add", add).params(&["a", "b"]).doc("a + b");
            m.function("norm", norm)
                .params(&["p"])
                .doc("length of the vector p");
            m.function("divide", divide)
                .params(&["a", "b"])
                .doc("a / b; fails for b = 0");
            m.function("shout", shout)
                .params(&["text"])
                .doc("TEXT, printing what it does");
        })
        .run()
}
