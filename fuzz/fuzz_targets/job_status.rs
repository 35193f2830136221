//! A job directory's `status.json` (written by the runner, read back by `job status`):
//! decoded or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sremote_endpoint::fuzzing::job_status(data);
});
