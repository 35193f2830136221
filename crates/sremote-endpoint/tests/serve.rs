//! `sremote-endpoint serve` driven frame by frame: cancels that arrive before, during and
//! after their call.

mod common;

use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Host;
use serde_json::{Value, json};
use sremote_core::frame::{self, Frame, FrameKind};

/// A running `serve` with its responses (JSON) arriving on a channel.
struct Serve {
    child: Child,
    stdin: Option<ChildStdin>,
    responses: mpsc::Receiver<Value>,
    _host: Host,
}

impl Serve {
    fn start() -> Serve {
        let host = Host::new(env!("CARGO_BIN_EXE_sremote-endpoint"));
        let mut child = host
            .command(&["serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, responses) = mpsc::channel();
        std::thread::spawn(move || {
            let mut magic = [0u8; 8];
            std::io::Read::read_exact(&mut stdout, &mut magic).unwrap();
            assert_eq!(&magic, frame::MAGIC);
            while let Ok(Some(f)) = frame::read(&mut stdout) {
                if let Frame::Message {
                    kind: FrameKind::Response,
                    json,
                    ..
                } = f
                {
                    let _ = tx.send(serde_json::from_slice(&json).unwrap());
                }
            }
        });
        Serve {
            stdin: child.stdin.take(),
            child,
            responses,
            _host: host,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let w = self.stdin.as_mut().unwrap();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    fn request(&mut self, id: &str, module: &str, function: &str, args: Value) {
        let req =
            json!({"protocol": 1, "id": id, "module": module, "function": function, "args": args});
        let f = frame::encode_message(FrameKind::Request, req.to_string().as_bytes(), &[]);
        self.send(&f.unwrap());
    }

    fn cancel(&mut self, id: &str) {
        let body = json!({ "id": id }).to_string();
        self.send(&frame::encode(FrameKind::Cancel, body.as_bytes()).unwrap());
    }

    fn next(&self) -> Value {
        self.responses
            .recv_timeout(Duration::from_secs(20))
            .expect("no response within 20 s")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn a_cancel_before_its_request_is_answered_and_the_request_still_runs() {
    let mut s = Serve::start();
    s.cancel("early");
    let first = s.next();
    assert_eq!(first["id"], "early");
    assert_eq!(first["error"]["kind"], "Cancelled", "{first}");
    // The request arriving afterwards is answered (not swallowed as "already cancelled").
    s.request("early", "os", "getpid", json!([]));
    let second = s.next();
    assert_eq!(second["id"], "early");
    assert!(second["ok"].as_u64().is_some(), "{second}");
}

#[test]
fn a_cancel_after_its_request_ends_the_call_once() {
    let mut s = Serve::start();
    s.request("slow", "subprocess", "run", json!([["sleep", "30"]]));
    std::thread::sleep(Duration::from_millis(200));
    s.cancel("slow");
    let r = s.next();
    assert_eq!(r["id"], "slow");
    assert_eq!(r["error"]["kind"], "Cancelled", "{r}");
    // Back to back: the request is read before its cancel, whatever the thread timing.
    s.request("quick", "subprocess", "run", json!([["sleep", "30"]]));
    s.cancel("quick");
    let r = s.next();
    assert_eq!(r["id"], "quick");
    assert_eq!(r["error"]["kind"], "Cancelled", "{r}");
    // The cancelled calls answer nothing more; the session serves the next call.
    s.request("after", "os", "getpid", json!([]));
    let r = s.next();
    assert_eq!(r["id"], "after", "{r}");
    assert!(r["ok"].as_u64().is_some(), "{r}");
}
