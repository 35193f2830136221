//! `Response::parse` must return a value or an error for every input, never panic; Blob
//! decoding of arbitrary JSON must not panic either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sremote_core::protocol::{Blob, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = Response::parse(data) {
        let _ = serde_json::to_vec(&resp).expect("a parsed response serializes");
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = serde_json::from_value::<Blob>(value);
    }
});
