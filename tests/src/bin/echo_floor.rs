//! `sremote-echo-floor`: the transport's lower bound for the peer benchmark
//! (`bench/peers.py`, issue 14): fixed-size messages through one `ssh host cat`, timed by a
//! compiled client, so that the floor pays no interpreter overhead that sremote's own
//! compiled client does not pay either.
//!
//! ```text
//! sremote-echo-floor [--size 64] [--calls 2000] [--warmup 200] [--inflight 1] -- CMD ARG…
//! ```
//!
//! Spawns `CMD ARG…` (e.g. `ssh -F cfg host cat`) with piped stdin and stdout, waits for
//! one message to come back (the connection is up), sends `--warmup` messages untimed,
//! then `--calls` timed ones with at most `--inflight` outstanding, and prints one JSON
//! line: `{"size", "inflight", "calls", "p50_us", "p90_us", "calls_per_s"}`. The latency
//! of a message is from just before the write that sends it to the read that completes its
//! echo (with `--inflight 1`: one round trip). With several in flight, completed echoes
//! are answered with as many new messages in one write, so the floor batches as well as
//! any client could.
//!
//! Std only, on purpose: the benchmark scripts build it with plain `rustc -O` in seconds,
//! without the test crate's dependencies (`cargo build -p sremote-tests --bin
//! sremote-echo-floor` builds the same program).
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// What the command line asks for.
struct Options {
    size: usize,
    calls: usize,
    warmup: usize,
    inflight: usize,
    command: Vec<String>,
}

const USAGE: &str =
    "usage: sremote-echo-floor [--size N] [--calls N] [--warmup N] [--inflight N] -- CMD ARG...";

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        size: 64,
        calls: 2000,
        warmup: 200,
        inflight: 1,
        command: Vec::new(),
    };
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "--" => {
                o.command = args.by_ref().collect();
                break;
            }
            "--size" => &mut o.size,
            "--calls" => &mut o.calls,
            "--warmup" => &mut o.warmup,
            "--inflight" => &mut o.inflight,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        let value = args
            .next()
            .ok_or_else(|| format!("{a} needs a number\n{USAGE}"))?;
        *slot = value
            .parse()
            .map_err(|_| format!("{a} {value:?}: not a number\n{USAGE}"))?;
    }
    if o.command.is_empty() {
        return Err(format!("no command to echo through\n{USAGE}"));
    }
    if o.size == 0 || o.calls == 0 || o.inflight == 0 {
        return Err(format!(
            "--size, --calls and --inflight must be at least 1\n{USAGE}"
        ));
    }
    Ok(o)
}

/// The echo command's two ends and a read buffer.
struct Echo {
    child: Child,
    tx: ChildStdin,
    rx: ChildStdout,
    buf: Vec<u8>,
}

impl Echo {
    fn spawn(command: &[String]) -> Result<Echo, String> {
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command[0]))?;
        let tx = child.stdin.take().ok_or("no stdin pipe")?;
        let rx = child.stdout.take().ok_or("no stdout pipe")?;
        Ok(Echo {
            child,
            tx,
            rx,
            buf: vec![0; 1 << 16],
        })
    }

    /// Read whatever has come back (at least one byte); returns how many bytes.
    fn read_some(&mut self) -> Result<usize, String> {
        match self.rx.read(&mut self.buf) {
            Ok(0) => Err("the echo command closed its output early (did it fail?)".into()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("reading the echo: {e}")),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.tx
            .write_all(bytes)
            .map_err(|e| format!("writing to the echo command: {e}"))
    }

    fn finish(mut self) -> Result<(), String> {
        drop(self.tx);
        let mut rest = Vec::new();
        let _ = self.rx.read_to_end(&mut rest);
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the echo command ended with {status}"))
        }
    }
}

/// Send `count` messages, at most `inflight` outstanding; the latency of each.
fn run(
    echo: &mut Echo,
    size: usize,
    count: usize,
    inflight: usize,
) -> Result<Vec<Duration>, String> {
    let msg = vec![b'x'; size];
    let batch: Vec<u8> = msg.repeat(inflight);
    let mut sent_at: VecDeque<Instant> = VecDeque::with_capacity(inflight);
    let mut latencies = Vec::with_capacity(count);
    let (mut sent, mut pending_bytes) = (0usize, 0usize);
    while latencies.len() < count {
        let room = (inflight - sent_at.len()).min(count - sent);
        if room > 0 {
            // Timed from before the write: the echo may well be back before it returns.
            let now = Instant::now();
            echo.send(&batch[..room * size])?;
            sent_at.extend(std::iter::repeat_n(now, room));
            sent += room;
        }
        pending_bytes += echo.read_some()?;
        let now = Instant::now();
        while pending_bytes >= size {
            pending_bytes -= size;
            let t = sent_at
                .pop_front()
                .ok_or("more bytes came back than were sent")?;
            latencies.push(now - t);
        }
    }
    Ok(latencies)
}

fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn measure(o: &Options) -> Result<String, String> {
    let mut echo = Echo::spawn(&o.command)?;
    run(&mut echo, o.size, 1, 1)?; // the connection is up
    run(&mut echo, o.size, o.warmup, o.inflight)?;
    let started = Instant::now();
    let mut lat = run(&mut echo, o.size, o.calls, o.inflight)?;
    let elapsed = started.elapsed().as_secs_f64();
    echo.finish()?;
    lat.sort();
    Ok(format!(
        "{{\"size\": {}, \"inflight\": {}, \"calls\": {}, \"p50_us\": {:.2}, \"p90_us\": {:.2}, \"calls_per_s\": {:.1}}}",
        o.size,
        o.inflight,
        o.calls,
        percentile_us(&lat, 0.5),
        percentile_us(&lat, 0.9),
        o.calls as f64 / elapsed
    ))
}

fn main() -> ExitCode {
    let result = parse(std::env::args().skip(1)).and_then(|o| measure(&o));
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sremote-echo-floor: {e}");
            ExitCode::from(2)
        }
    }
}
