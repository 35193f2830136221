//! A session byte stream (what a host sends back): reading frames one after another must
//! end with a frame, a clean end or an error for every input — never a panic, and never
//! an allocation larger than what the input holds (lengths are checked before buffers).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sremote_core::frame::{self, Frame};

fuzz_target!(|data: &[u8]| {
    let mut r = std::io::Cursor::new(data);
    for _ in 0..1000 {
        match frame::read(&mut r) {
            Ok(Some(Frame::Message { json, .. })) => {
                let _ = sremote_core::protocol::Response::parse(&json);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = frame::decode_message(data);
});
