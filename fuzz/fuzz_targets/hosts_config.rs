//! `~/.config/sremote/config.toml`: parsed or refused with a usage error naming the line,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sremote_hosts::config::Config::parse(text, std::path::Path::new("config.toml"));
    }
});
