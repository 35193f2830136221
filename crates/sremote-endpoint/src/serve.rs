//! `sremote-endpoint serve`: session mode. Frames on stdin/stdout (see
//! `sremote_core::frame`), many calls in flight, answered as they finish.
//!
//! Threads follow a leader/follower pattern: one thread at a time reads the next frame;
//! having read a request it lets the next idle thread take over reading and runs the call
//! itself, so no call waits for a hand-off between threads. A thread is added whenever a
//! request arrives and no other thread is waiting to read. The endpoint exits as soon as
//! stdin closes (the client or its connection went away), killing what its calls started.

pub(crate) mod store;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sremote_core::frame::{self, Frame, FrameKind};
use sremote_core::protocol::{ErrorBody, ErrorKind, PROTOCOL_VERSION, Request, Response, VERSION};

use crate::dispatch::SessionCall;
use crate::endpoint::Endpoint;
use crate::env::SessionEnv;
use crate::response::error_response;
use store::{Session, with_session_module};

/// Most threads a session runs calls on at once; more requests wait for a free one.
const MAX_THREADS: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The endpoint's stdout: frames not written yet, then the file.
struct Out {
    file: File,
    /// Responses held back while more requests were already read (written together, one
    /// `write` for many when calls are pipelined; see [`serve_loop`]).
    held: Vec<u8>,
}

impl Out {
    /// Write what is held.
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.held.is_empty() {
            self.file.write_all(&self.held)?;
            self.held.clear();
        }
        Ok(())
    }
}

/// Attachments up to this size go into the response's buffer; larger ones are written in
/// place (never copied).
const COPY_ATTACHMENTS: usize = 64 << 10;

struct Shared {
    endpoint: Endpoint,
    reader: Mutex<BufReader<File>>,
    writer: Mutex<Out>,
    /// Set while `writer` holds responses back.
    held: std::sync::atomic::AtomicBool,
    env: SessionEnv,
    /// Named values kept between calls (`session.push`/`session.pull`, `{"$ref": name}`,
    /// the Python namespace's values) and the deadlines of namespace calls.
    session: Arc<Session>,
    /// Calls read and not yet answered, by id: `true` once cancelled (answered early;
    /// the late result is dropped). Entered before the next frame is read, so a cancel
    /// always finds a call whose request came first.
    calls: Mutex<HashMap<String, bool>>,
    idle: AtomicUsize,
    threads: AtomicUsize,
}

/// Run session mode on this process's stdin/stdout; returns the exit code.
pub(crate) fn run(endpoint: &Endpoint) -> i32 {
    // Private copies of the real stdin/stdout for the frames; fd 0 becomes /dev/null and
    // fd 1 goes to stderr, so nothing a call prints can corrupt the stream.
    let (input, output) = match private_stdio() {
        Ok(io) => io,
        Err(e) => {
            eprintln!("sremote-endpoint serve: cannot set up stdio: {e}");
            return crate::exit::EXIT_NO_RESPONSE;
        }
    };
    let session: Arc<Session> = Arc::default();
    let endpoint = with_session_module(endpoint.clone().fix_location(), session.clone());
    let shared = Arc::new(Shared {
        endpoint,
        reader: Mutex::new(BufReader::with_capacity(256 << 10, input)),
        writer: Mutex::new(Out {
            file: output,
            held: Vec::new(),
        }),
        held: Default::default(),
        env: SessionEnv::new(),
        session,
        calls: Mutex::default(),
        idle: AtomicUsize::new(0),
        threads: AtomicUsize::new(1),
    });
    let hello = json!({
        "protocol": PROTOCOL_VERSION, "version": VERSION, "pid": std::process::id(),
        "capabilities": ["attachments", "cancel", "ping", "store"],
    });
    let mut greeting = frame::MAGIC.to_vec();
    greeting
        .extend(frame::encode(FrameKind::Hello, hello.to_string().as_bytes()).unwrap_or_default());
    if write_out(&shared, &greeting).is_err() {
        return crate::exit::EXIT_NO_RESPONSE;
    }
    serve_loop(shared);
    0
}

fn private_stdio() -> std::io::Result<(File, File)> {
    let input = File::from(crate::capture::dup_cloexec(0)?);
    let output = File::from(crate::capture::dup_cloexec(1)?);
    let null = File::open("/dev/null")?;
    crate::capture::redirect(null.as_raw_fd(), 0)?;
    crate::capture::redirect(2, 1)?;
    Ok((input, output))
}

fn write_out(shared: &Shared, bytes: &[u8]) -> std::io::Result<()> {
    let mut w = lock(&shared.writer);
    w.held.extend_from_slice(bytes);
    shared.held.store(false, Ordering::SeqCst);
    w.flush()
}

/// Write the responses held back, if any.
fn flush_held(shared: &Shared) {
    if shared.held.load(Ordering::SeqCst) {
        let mut w = lock(&shared.writer);
        shared.held.store(false, Ordering::SeqCst);
        if w.flush().is_err() {
            shut_down(None);
        }
    }
}

/// The client is gone or spoke garbage: stop everything now.
fn shut_down(reason: Option<String>) -> ! {
    crate::process::kill_running_children();
    crate::python::shutdown();
    if let Some(r) = reason {
        eprintln!("sremote-endpoint serve: {r}");
        std::process::exit(crate::exit::EXIT_NO_RESPONSE);
    }
    std::process::exit(0);
}

fn spawn_thread(shared: &Arc<Shared>) {
    if shared.threads.fetch_add(1, Ordering::SeqCst) >= MAX_THREADS {
        shared.threads.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("sremote-serve".into())
        .spawn(move || serve_loop(s));
    if spawned.is_err() {
        shared.threads.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Built-in functions that answer at once: a session runs them on the thread that read
/// them, still holding the reader (no hand-off to another thread, which costs a cross-CPU
/// wake-up per call). Anything else — and anything with a timeout — lets the next thread
/// read first, so slow calls never hold up others or a cancel.
const INLINE: &[(&str, &str)] = &[
    ("os", "getenv"),
    ("os", "getpid"),
    ("os", "environ"),
    ("os", "getcwd"),
    ("os", "cpu_count"),
    ("os", "uname"),
    ("sys", "version"),
    ("sys", "location"),
    ("sys", "echo"),
    ("session", "push"),
    ("session", "pull"),
    ("session", "delete"),
    ("session", "names"),
    ("session", "python_workers"),
];

fn runs_inline(req: &Request) -> bool {
    req.timeout_ms.is_none()
        && req.check_modules.is_empty()
        && INLINE
            .iter()
            .any(|(m, f)| req.module == *m && req.function == *f)
}

fn serve_loop(shared: Arc<Shared>) {
    loop {
        shared.idle.fetch_add(1, Ordering::SeqCst);
        let mut guard = lock(&shared.reader);
        shared.idle.fetch_sub(1, Ordering::SeqCst);
        // Responses of inline calls are held back while the next request is already
        // read; before a read that may wait for the client they go out, in one write.
        if frame::complete_frame_len(guard.buffer()).is_none() {
            flush_held(&shared);
        }
        let frame = frame::read(&mut *guard);
        let mut reader = Some(guard);
        match frame {
            Ok(None) => shut_down(None),
            Err(e) => shut_down(Some(format!("bad frame from the client: {e}"))),
            Ok(Some(Frame::Message {
                kind: FrameKind::Request,
                json,
                attachments,
            })) => {
                let parsed = Request::parse(&json);
                if let Ok(req) = &parsed {
                    lock(&shared.calls).insert(req.id.clone(), false);
                }
                let inline = matches!(&parsed, Ok(req) if runs_inline(req));
                if !inline {
                    // Let the next thread read while this one runs the call.
                    drop(reader.take());
                    flush_held(&shared);
                    if shared.idle.load(Ordering::SeqCst) == 0 {
                        spawn_thread(&shared);
                    }
                }
                if let Some((response, out)) = handle_request(&shared, parsed, attachments)
                    && write_response(&shared, &response, &out, inline).is_err()
                {
                    shut_down(None);
                }
            }
            Ok(Some(Frame::Plain {
                kind: FrameKind::Cancel,
                body,
            })) => cancel(&shared, &body),
            Ok(Some(Frame::Plain {
                kind: FrameKind::Ping,
                body,
            })) => {
                let pong = frame::encode(FrameKind::Pong, &body).unwrap_or_default();
                if write_out(&shared, &pong).is_err() {
                    shut_down(None);
                }
            }
            Ok(Some(Frame::Message { kind, .. } | Frame::Plain { kind, .. })) => {
                shut_down(Some(format!("unexpected {kind:?} frame from the client")))
            }
        }
    }
}

/// Write a response frame: the JSON serialized straight into the output buffer, small
/// attachments copied after it, large ones written in place (never copied). With `hold`
/// (an inline call, run by the thread holding the reader) the frame stays in the buffer
/// until that thread (or the next reader) finds no further request read: see
/// [`serve_loop`].
fn write_response(
    shared: &Shared,
    response: &Response,
    attachments: &[Vec<u8>],
    hold: bool,
) -> std::io::Result<()> {
    let mut w = lock(&shared.writer);
    let framed = frame::append_message_head(&mut w.held, FrameKind::Response, attachments, |b| {
        Ok(crate::response::write_json(response, b)?)
    });
    let attachments = match framed {
        Ok(()) => attachments,
        Err(e) => {
            let body = ErrorBody::new(
                ErrorKind::Raised,
                format!("the response cannot be framed: {e}"),
            );
            let error = error_response(response.id.clone(), body);
            frame::append_message_head(&mut w.held, FrameKind::Response, &[], |b| {
                Ok(serde_json::to_writer(b, &error)?)
            })?;
            &[]
        }
    };
    if attachments.iter().map(Vec::len).sum::<usize>() <= COPY_ATTACHMENTS {
        for a in attachments {
            w.held.extend_from_slice(&frame::attachment_prefix(a));
            w.held.extend_from_slice(a);
        }
    } else {
        w.flush()?;
        for a in attachments {
            w.file.write_all(&frame::attachment_prefix(a))?;
            w.file.write_all(a)?;
        }
    }
    if hold {
        shared.held.store(true, Ordering::SeqCst);
        return Ok(());
    }
    shared.held.store(false, Ordering::SeqCst);
    w.flush()
}

type Reply = (Response, Vec<Vec<u8>>);

/// Run one request; its response and attachments, or `None` when already answered.
fn handle_request(
    shared: &Shared,
    parsed: Result<Request, (Option<String>, ErrorBody)>,
    attachments: Vec<Vec<u8>>,
) -> Option<Reply> {
    let mut req = match parsed {
        Ok(r) => r,
        Err((id, err)) => return Some((error_response(id.unwrap_or_default(), err), Vec::new())),
    };
    let id = req.id.clone();
    shared.session.take_timeout(&mut req);
    let reply = if lock(&shared.calls).get(&id) == Some(&true) {
        None // cancelled before it started: not run at all
    } else if let Err(e) = shared.session.store.resolve_refs(&mut req) {
        let (m, f) = (req.module.clone(), req.function.clone());
        Some((error_response(id.clone(), e.into_body(&m, &f)), Vec::new()))
    } else {
        let (handled, out) = shared.endpoint.dispatch_with(
            req,
            Some(SessionCall {
                env: &shared.env,
                attachments,
            }),
        );
        Some((handled.response, out))
    };
    let mut calls = lock(&shared.calls);
    let cancelled = calls.remove(&id) == Some(true);
    crate::process::forget_call(&id);
    drop(calls);
    shared.session.forget(&id);
    reply.filter(|_| !cancelled)
}

fn cancel(shared: &Shared, body: &[u8]) {
    let Some(id) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
    else {
        return;
    };
    // A call whose request was read is marked (its late result is dropped) and its
    // children killed. An id that is not running (finished, or never sent) is answered
    // all the same and not remembered: the client ignores an answer it does not wait for,
    // and a request arriving later must run, not wait forever for an answer.
    let running = {
        let mut calls = lock(&shared.calls);
        match calls.get_mut(&id) {
            Some(cancelled) => {
                *cancelled = true;
                crate::process::kill_call_children(&id);
                true
            }
            None => false,
        }
    };
    if running {
        crate::python::cancel(&id);
    }
    let body = ErrorBody::new(
        ErrorKind::Cancelled,
        if running {
            "the call was cancelled by the client; its subprocesses were killed"
        } else {
            "the call was cancelled by the client (no call with this id was running)"
        },
    );
    if write_response(shared, &error_response(id, body), &[], false).is_err() {
        shut_down(None);
    }
}
