//! `sremote-testkit sshd`: a throwaway loopback sshd for tests in other languages (the
//! Python package's pytest fixture).
//!
//! Prints one JSON line — `{"host", "port", "user", "alias", "ssh_config", "home",
//! "destination", "pid"}` — then serves until its stdin closes, and stops the server (by
//! its PID) before it exits. Lines on stdin are commands, each answered by one line:
//! `kill-sessions` (break established connections; new ones work) → `ok`.
use std::io::{BufRead, Write};

use sremote_testkit::Sshd;

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("sshd") {
        eprintln!(
            "usage: sremote-testkit sshd   (prints the server as JSON; stops when stdin closes)"
        );
        std::process::exit(2);
    }
    let sshd = match Sshd::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sremote-testkit: cannot start sshd: {e}");
            std::process::exit(1);
        }
    };
    let line = format!(
        "{{\"host\": {}, \"port\": {}, \"user\": {}, \"alias\": {}, \"ssh_config\": {}, \"home\": {}, \"destination\": {}, \"pid\": {}}}",
        json_str(&sshd.host),
        sshd.port,
        json_str(&sshd.user),
        json_str(&sshd.alias),
        json_str(&sshd.ssh_config.to_string_lossy()),
        json_str(&sshd.home.to_string_lossy()),
        json_str(&sshd.destination()),
        sshd.pid().unwrap_or(0),
    );
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    for cmd in std::io::stdin().lock().lines() {
        let Ok(cmd) = cmd else { break };
        let answer = match cmd.trim() {
            "kill-sessions" => {
                sshd.kill_sessions();
                "ok"
            }
            "" => continue,
            _ => "unknown command",
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
    drop(sshd); // kills the server by its PID
}
