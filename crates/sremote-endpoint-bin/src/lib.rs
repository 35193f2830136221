//! This machine's static `sremote-endpoint` binary, embedded at build time.
//!
//! `sremote-core` (feature `bundled-endpoint`, on by default) uses it to bootstrap hosts
//! of the same target (e.g. `x86_64-unknown-linux-gnu`) with no user effort. The binary is
//! built statically (`+crt-static`), so it runs on any Linux of that architecture.

/// The endpoint binary's bytes.
pub static ENDPOINT: &[u8] = include_bytes!(env!("SREMOTE_ENDPOINT_PATH"));

/// The Rust target triple the binary was built for.
pub const TARGET: &str = env!("SREMOTE_ENDPOINT_TARGET");
