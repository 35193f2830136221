//! A plugin executable's stdout: decoded into an answer or a `Protocol` error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sremote_endpoint::fuzzing::plugin_answer(data);
});
