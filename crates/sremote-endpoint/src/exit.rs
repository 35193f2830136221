//! The `sremote-endpoint` command line's exit codes (the `job` commands have their own).

/// Exit code: a response was written (it may carry an error).
pub(crate) const EXIT_OK: i32 = 0;
/// Exit code: the command line was wrong.
pub(crate) const EXIT_USAGE: i32 = 2;
/// Exit code: the response could not be written.
pub(crate) const EXIT_NO_RESPONSE: i32 = 3;
