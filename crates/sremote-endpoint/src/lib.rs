//! # sremote-endpoint
//!
//! The program that runs sremote call requests on a host, and a library to build your
//! own endpoint with your own modules.
//!
//! ```no_run
//! fn add(a: i64, b: i64) -> i64 { a + b }
//! fn main() {
//!     sremote_endpoint::Endpoint::with_builtins()
//!         .module("calc", |m| m.function("add", add).params(&["a", "b"]))
//!         .run()
//! }
//! ```
//!
//! ## Command line (what [`Endpoint::run`] does)
//! - `sremote-endpoint call [--consume] REQ [RESP]` — read the request JSON from file REQ
//!   (`-`: stdin), write the response JSON to file RESP atomically (`-` or omitted:
//!   stdout). `--consume` deletes REQ after reading it. While the call runs, fd 1 and fd 2
//!   are captured into the response's `stdout`/`stderr`; nothing but the response reaches
//!   the real stdout. Exit code 0 whenever a response was written (even an error
//!   response), 2 for a usage error, 3 when the response could not be written.
//! - `sremote-endpoint version [--json] [--sha256]`
//! - `sremote-endpoint modules [--json]`
//! - `sremote-endpoint serve` — session mode: length-prefixed frames on stdin/stdout,
//!   many calls in flight, a `session` module of stored values (see PROTOCOL.md).
//!
//! ## Lookup of a module
//! Built-in and registered modules (see [`Endpoint::module`]) first, then a plugin
//! executable `<sremote>/modules/<module>` (see [`Location`]), then the Python bridge: the
//! module is imported by `<sremote>/venv/bin/python3`, else by `python3` on `PATH`
//! (`py:NAME` always means the Python module NAME); else `ModuleNotFound`. In session mode
//! one persistent Python worker per session serves the Python calls.
//!
//! ## Errors
//! A function reports failure through its return type (see [`IntoCallResult`]): an `Err`
//! becomes kind `Raised`, or the kind of a [`CallError`]. Argument mismatches are
//! `BadArguments` naming the signature; a panic is caught and becomes `Panicked` with its
//! location as traceback; a call past its `timeout_ms` is answered with `Timeout`.
//!
//! ## Output
//! What a function prints with this crate's [`println!`] (and `print!`, `eprint!`,
//! `eprintln!`; `use sremote_endpoint::println;`) goes to its call's response in every
//! call mode; see [`output`]. std's `println!` is captured per call in pipe and file mode
//! only (a session runs calls concurrently in one process).
#![warn(missing_docs, missing_debug_implementations)]

mod capture;
mod cli;
mod context;
mod dispatch;
mod endpoint;
mod env;
mod error;
mod exit;
mod function;
mod job;
mod location;
mod module;
mod modules;
pub mod output;
mod panic;
mod plugin;
mod process;
mod python;
mod response;
mod serve;
mod types;
mod version;

pub use context::CallContext;
pub use endpoint::Endpoint;
pub use error::CallError;
pub use function::{IntoCallResult, IntoFunction, TypedFunction, markers};
pub use location::Location;
pub use module::{Args, FunctionBuilder, ModuleBuilder};
pub use serde_json::Value;
pub use sremote_core::protocol::{self, Blob, ErrorKind, Request, Response};
pub use types::{pretty_type, pretty_type_of};

/// Entry points for `fuzz/` (feature `fuzzing`): the decoders of what a host-side file or
/// program hands the endpoint. Not a stable API.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    /// Decode a plugin executable's stdout (never panics).
    pub fn plugin_answer(stdout: &[u8]) -> bool {
        crate::plugin::decode_answer(stdout).is_ok()
    }
    /// Decode a job directory's `status.json` (never panics).
    pub fn job_status(bytes: &[u8]) -> bool {
        crate::job::status_decodes(bytes)
    }
}
