//! `Request::parse` must return a value or an error for every input, never panic, and a
//! parsed request must survive a round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sremote_core::protocol::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        let again = serde_json::to_vec(&req).expect("a parsed request serializes");
        assert_eq!(Request::parse(&again).expect("and parses again"), req);
    }
});
