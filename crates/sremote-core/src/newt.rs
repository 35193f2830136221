//! The sremote extensions of the NEWT REST API, in one place for both ends:
//! `sremote-gateway` (the server) sends them and `sremote-rest` (the client) reads them.
//! Header names are lower case, as HTTP/2 requires and as `http::HeaderName` keeps them.

/// Response header of `GET /file/<machine>/<path>?view=read`: the file's permission bits,
/// in octal, without setuid, setgid and sticky bits (e.g. `755`).
pub const MODE_HEADER: &str = "x-sremote-mode";

/// Response header of `GET /file/<machine>/<path>?view=read`: the file's modification
/// time, in whole seconds since the Unix epoch (e.g. `1577934240`).
pub const MTIME_HEADER: &str = "x-sremote-mtime";
