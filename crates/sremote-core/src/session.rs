//! Session mode, client side: one long-lived `sremote-endpoint serve` per client, many
//! calls in flight over it, answered in any order and matched by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::connector::{Connector, RemoteCommand};
use crate::error::{ConnectorError, ConnectorErrorKind};
use crate::frame::{self, Frame, FrameKind};
use crate::protocol::{PROTOCOL_VERSION, Response};

/// A response with its raw attachments.
pub(crate) type Answer = (Response, Vec<Vec<u8>>);

/// Why a session call failed.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// The endpoint is missing or cannot run (exit 126/127 before the handshake).
    NotSetup(String),
    /// The stream carried something that is not our protocol.
    Protocol { detail: String, received: String },
    /// The connection or the endpoint went away.
    Transport(ConnectorError),
    /// The call was cancelled before its request was written.
    Cancelled,
    /// A setup line failed before the endpoint started.
    Setup(crate::setup::SetupFailure),
}

/// A call waiting for its response: what it is (for error messages) and where to answer.
struct Waiter {
    action: String,
    tx: oneshot::Sender<Result<Answer, SessionError>>,
}

type Pending = Arc<Mutex<HashMap<String, Waiter>>>;
type Writer = Arc<tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A live session. Dropping it closes the endpoint's stdin, which ends the endpoint.
pub(crate) struct Session {
    writer: Writer,
    pending: Pending,
    alive: Arc<AtomicBool>,
    /// Why the session ended: (the stream was garbled, what happened).
    death: Arc<Mutex<Option<(bool, String)>>>,
    host: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Endpoint process id on the host (from the handshake).
    pub pid: u32,
    /// The endpoint's version (from the handshake).
    pub version: String,
    /// What the endpoint offers (`attachments`, `cancel`, `ping`, `store`, …).
    pub capabilities: Vec<String>,
}

/// Writes the Cancel frame of a call whose request went out in a session.
#[derive(Clone)]
pub(crate) struct Canceller {
    writer: Writer,
    alive: Arc<AtomicBool>,
    host: String,
    supported: bool,
}

impl Canceller {
    /// Ask the endpoint to cancel call `id` (it kills the call's subprocesses and answers
    /// `Cancelled`).
    pub(crate) async fn cancel(&self, id: &str, action: &str) -> Result<(), ConnectorError> {
        if !self.supported {
            return Err(ConnectorError::unsupported(&self.host, "cancel", action)
                .detail("the endpoint's session offers no cancel")
                .hint("run `sremote bootstrap` to install a current endpoint"));
        }
        let body = serde_json::json!({ "id": id }).to_string();
        let frame = frame::encode(FrameKind::Cancel, body.as_bytes()).map_err(|e| {
            ConnectorError::new(ConnectorErrorKind::InvalidInput, &self.host, action).detail(e)
        })?;
        write_all(&self.writer, &self.alive, &self.host, action, &frame, &[])
            .await
            .map_err(|e| match e {
                SessionError::Transport(e) => e,
                _ => disconnected(&self.host, action, "the session is closed"),
            })
    }
}

/// Write `head`, then each attachment in place (length prefix, bytes), and flush: a large
/// payload is never copied into one frame buffer.
async fn write_all(
    writer: &Writer,
    alive: &AtomicBool,
    host: &str,
    action: &str,
    head: &[u8],
    attachments: &[Vec<u8>],
) -> Result<(), SessionError> {
    let mut w = writer.lock().await;
    write_locked(&mut w, alive, host, action, head, attachments).await
}

async fn write_locked(
    w: &mut Box<dyn AsyncWrite + Send + Unpin>,
    alive: &AtomicBool,
    host: &str,
    action: &str,
    head: &[u8],
    attachments: &[Vec<u8>],
) -> Result<(), SessionError> {
    let result = async {
        w.write_all(head).await?;
        for a in attachments {
            w.write_all(&frame::attachment_prefix(a)).await?;
            w.write_all(a).await?;
        }
        w.flush().await
    }
    .await;
    result.map_err(|e| {
        alive.store(false, Ordering::SeqCst);
        SessionError::Transport(disconnected(
            host,
            action,
            format!("writing to the session failed: {e}"),
        ))
    })
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.host)
            .field("pid", &self.pid)
            .field("version", &self.version)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn disconnected(host: &str, action: &str, detail: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(ConnectorErrorKind::Disconnected, host, action)
        .detail(detail)
        .hint("the call's outcome is unknown; the next call opens a new session")
}

/// Read one frame (messages field by field, each attachment into its own buffer);
/// `Ok(None)` at a clean end of stream. The async twin of [`frame::read`].
async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Frame>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut h[1..]).await?;
    let (mut left, kind) = frame::parse_header(h)?;
    if !frame::is_message(kind) {
        return Ok(Some(Frame::Plain {
            kind,
            body: read_exactly(r, left).await?,
        }));
    }
    let mut n4 = [0u8; 4];
    frame::take_len(&mut left, 4)?;
    r.read_exact(&mut n4).await?;
    let json_len = frame::take_len(&mut left, u32::from_le_bytes(n4) as usize)?;
    let json = read_exactly(r, json_len).await?;
    let mut attachments = Vec::new();
    while left > 0 {
        let mut n8 = [0u8; 8];
        frame::take_len(&mut left, 8)?;
        r.read_exact(&mut n8).await?;
        let n = usize::try_from(u64::from_le_bytes(n8)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "attachment too large")
        })?;
        attachments.push(read_exactly(r, frame::take_len(&mut left, n)?).await?);
    }
    Ok(Some(Frame::Message {
        kind,
        json,
        attachments,
    }))
}

/// Read exactly `n` bytes into a new buffer (reserved as the bytes are announced).
async fn read_exactly(r: &mut (impl AsyncRead + Unpin), n: usize) -> std::io::Result<Vec<u8>> {
    let mut v = frame::buffer_for(n);
    if r.take(n as u64).read_to_end(&mut v).await? != n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "stream ended inside a frame",
        ));
    }
    Ok(v)
}

/// While calls are waiting, ping the endpoint when it has been quiet, and declare the
/// connection dead when nothing at all arrives for [`DEAD_AFTER`] (a half-open TCP
/// connection never reports an error by itself).
async fn heartbeat(
    writer: Writer,
    pending: Pending,
    alive: Arc<AtomicBool>,
    last_rx: Arc<Mutex<Instant>>,
    host: String,
) {
    let mut tick = tokio::time::interval(PING_EVERY);
    loop {
        tick.tick().await;
        if !alive.load(Ordering::SeqCst) {
            return;
        }
        let quiet = lock(&last_rx).elapsed();
        if lock(&pending).is_empty() {
            *lock(&last_rx) = Instant::now();
            continue;
        }
        if quiet >= DEAD_AFTER {
            alive.store(false, Ordering::SeqCst);
            for (_, w) in lock(&pending).drain() {
                let e = disconnected(
                    &host,
                    &w.action,
                    format!("no answer to heartbeats for {} s", quiet.as_secs()),
                );
                let _ = w.tx.send(Err(SessionError::Transport(e)));
            }
            return;
        }
        if quiet >= PING_EVERY
            && let Ok(ping) = frame::encode(FrameKind::Ping, &[0u8; 8])
        {
            let mut w = writer.lock().await;
            let _ = w.write_all(&ping).await;
            let _ = w.flush().await;
        }
    }
}

/// How often a quiet session with waiting calls is pinged.
const PING_EVERY: Duration = Duration::from_secs(15);
/// A session that answers nothing, not even pings, for this long is dead.
const DEAD_AFTER: Duration = Duration::from_secs(60);

impl Session {
    /// Start `endpoint serve` on the host and complete the handshake, for the call
    /// `action` (named in errors).
    pub(crate) async fn open<C: Connector + ?Sized>(
        connector: &C,
        serve: &RemoteCommand,
        endpoint: &str,
        action: &str,
    ) -> Result<Session, SessionError> {
        let host = connector.host().to_string();
        let opening = format!("{action} (opening a session)");
        let process = connector
            .spawn(serve)
            .await
            .map_err(SessionError::Transport)?;
        let mut stdout = tokio::io::BufReader::with_capacity(256 << 10, process.stdout);
        let stderr_tail = Arc::new(Mutex::new(Vec::<u8>::new()));
        let mut tasks = Vec::new();
        {
            // Drain stderr (the endpoint's diagnostics) so it never blocks; keep the tail.
            let tail = stderr_tail.clone();
            let mut stderr = process.stderr;
            tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stderr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut t = lock(&tail);
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(64 << 10);
                    t.drain(..excess);
                }
            }));
        }
        let mut wait = process.wait;
        let mut magic = [0u8; 8];
        let handshake = async {
            stdout.read_exact(&mut magic).await?;
            if &magic != frame::MAGIC {
                return Ok(Err(magic));
            }
            read_frame(&mut stdout).await.map(Ok)
        };
        let hello = match tokio::time::timeout(Duration::from_secs(60), handshake).await {
            Ok(Ok(Ok(Some(Frame::Plain {
                kind: FrameKind::Hello,
                body,
            })))) => body,
            Ok(Ok(Err(junk))) => {
                // Show a little more of what arrived, without waiting long for it.
                let mut more = vec![0u8; 200];
                let n = tokio::time::timeout(Duration::from_millis(100), stdout.read(&mut more))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                let mut received = junk.to_vec();
                received.extend_from_slice(&more[..n]);
                return Err(SessionError::Protocol {
                    detail: "the session did not start with the sremote handshake (is something \
                             in the login scripts printing to stdout?)"
                        .into(),
                    received: String::from_utf8_lossy(&received).into_owned(),
                });
            }
            Ok(Ok(Ok(Some(Frame::Message { kind, .. } | Frame::Plain { kind, .. })))) => {
                return Err(SessionError::Protocol {
                    detail: format!("expected a hello frame, got {kind:?}"),
                    received: String::new(),
                });
            }
            Ok(Err(_) | Ok(Ok(None))) => {
                // The endpoint ended before the handshake: missing, broken, or too old.
                let code = tokio::time::timeout(Duration::from_secs(5), &mut wait).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let tail = String::from_utf8_lossy(&lock(&stderr_tail))
                    .trim()
                    .to_string();
                if let Ok(Ok(Some(c @ crate::setup::SETUP_FAILED_EXIT))) = code {
                    // Its report may still be on the way to the stderr drain.
                    for _ in 0..100 {
                        if let Some(f) = crate::setup::failure(Some(c), &lock(&stderr_tail)) {
                            return Err(SessionError::Setup(f));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                return Err(match code {
                    Ok(Ok(Some(126 | 127))) => SessionError::NotSetup(format!(
                        "no runnable endpoint at {endpoint}: {tail}"
                    )),
                    Ok(Ok(Some(2))) => SessionError::NotSetup(format!(
                        "the endpoint at {endpoint} has no session mode: {tail}"
                    )),
                    other => SessionError::Transport(disconnected(
                        &host,
                        &opening,
                        format!("endpoint session ended during the handshake ({other:?}): {tail}"),
                    )),
                });
            }
            Err(_) => {
                return Err(SessionError::Transport(
                    ConnectorError::new(ConnectorErrorKind::Timeout, &host, &opening)
                        .detail("no handshake from the endpoint within 60 s"),
                ));
            }
        };
        let hello = parse_hello(&hello, endpoint)?;

        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let last_rx = Arc::new(Mutex::new(Instant::now()));
        let death: Arc<Mutex<Option<(bool, String)>>> = Arc::default();
        {
            let (pending, alive, host, last_rx) = (
                pending.clone(),
                alive.clone(),
                host.clone(),
                last_rx.clone(),
            );
            let death = death.clone();
            tasks.push(tokio::spawn(async move {
                let (garbled, why) = loop {
                    match read_frame(&mut stdout).await {
                        Ok(Some(Frame::Message {
                            kind: FrameKind::Response,
                            json,
                            attachments,
                        })) => {
                            *lock(&last_rx) = Instant::now();
                            match Response::parse(&json).map(|r| (r, attachments)) {
                                Ok((resp, atts)) => {
                                    if let Some(w) = lock(&pending).remove(&resp.id) {
                                        let _ = w.tx.send(Ok((resp, atts)));
                                    }
                                }
                                Err(e) => break (true, format!("garbled response frame: {e}")),
                            }
                        }
                        Ok(Some(Frame::Plain {
                            kind: FrameKind::Pong | FrameKind::Hello,
                            ..
                        })) => *lock(&last_rx) = Instant::now(),
                        Ok(Some(Frame::Message { kind, .. } | Frame::Plain { kind, .. })) => {
                            break (true, format!("unexpected {kind:?} frame from the endpoint"));
                        }
                        Ok(None) => break (false, "the endpoint closed the session".to_string()),
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            break (true, format!("garbled data from the endpoint: {e}"));
                        }
                        Err(e) => break (false, format!("reading the session failed: {e}")),
                    }
                };
                *lock(&death) = Some((garbled, why.clone()));
                alive.store(false, Ordering::SeqCst);
                for (_, w) in lock(&pending).drain() {
                    let err = if garbled {
                        SessionError::Protocol {
                            detail: why.clone(),
                            received: String::new(),
                        }
                    } else {
                        SessionError::Transport(disconnected(&host, &w.action, &why))
                    };
                    let _ = w.tx.send(Err(err));
                }
                let _ = wait.await;
            }));
        }
        let writer: Writer = Arc::new(tokio::sync::Mutex::new(process.stdin));
        tasks.push(tokio::spawn(heartbeat(
            writer.clone(),
            pending.clone(),
            alive.clone(),
            last_rx,
            host.clone(),
        )));
        let session = Session {
            writer,
            pending,
            alive,
            death,
            host,
            tasks,
            pid: hello.pid,
            version: hello.version,
            capabilities: hello.capabilities,
        };
        Ok(session)
    }

    /// Why a dead session cannot take `action`: a protocol error when its stream was
    /// garbled, else a disconnect with the reason (`otherwise` when none was recorded).
    fn death_error(&self, action: &str, otherwise: &str) -> SessionError {
        match lock(&self.death).clone() {
            Some((true, why)) => SessionError::Protocol {
                detail: why,
                received: String::new(),
            },
            Some((false, why)) => SessionError::Transport(disconnected(&self.host, action, why)),
            None => SessionError::Transport(disconnected(&self.host, action, otherwise)),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Whether the endpoint announced `capability` in its handshake.
    pub(crate) fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// What cancels a call of this session.
    pub(crate) fn canceller(&self) -> Canceller {
        Canceller {
            writer: self.writer.clone(),
            alive: self.alive.clone(),
            host: self.host.clone(),
            supported: self.has_capability("cancel"),
        }
    }

    /// Send a request message and wait for its response. `action` (`call os.getpid`)
    /// names the call in errors. With `control`, the request is written only if the call
    /// was not cancelled first, and a later cancel knows it must go to this session.
    pub(crate) async fn call(
        &self,
        id: &str,
        json: &[u8],
        attachments: &[Vec<u8>],
        action: &str,
        control: Option<&crate::call::CallControl>,
    ) -> Result<Answer, SessionError> {
        if !self.is_alive() {
            return Err(self.death_error(action, "the session is closed"));
        }
        let head = frame::message_head(FrameKind::Request, json, attachments).map_err(|e| {
            SessionError::Protocol {
                detail: e.to_string(),
                received: String::new(),
            }
        })?;
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            action: action.to_string(),
            tx,
        };
        lock(&self.pending).insert(id.to_string(), waiter);
        // If the caller stops waiting (dropped future), forget the entry.
        struct Forget<'a>(&'a Pending, &'a str, bool);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                if self.2 {
                    lock(self.0).remove(self.1);
                }
            }
        }
        let mut guard = Forget(&self.pending, id, true);
        // The reader marks the session dead before it fails the pending calls: a call
        // registered after that must notice here, or it would wait forever — and be told
        // why it died (a garbled stream is a protocol error, not a disconnect).
        if !self.is_alive() {
            return Err(self.death_error(action, "the session ended"));
        }
        {
            // Under the writer lock, so a Cancel frame can only follow the request.
            let mut w = self.writer.lock().await;
            if let Some(c) = control
                && !c.start_sending(self.canceller())
            {
                return Err(SessionError::Cancelled);
            }
            if let Err(e) =
                write_locked(&mut w, &self.alive, &self.host, action, &head, attachments).await
            {
                return Err(match lock(&self.death).is_some() {
                    true => self.death_error(action, "the session ended"),
                    false => e,
                });
            }
        }
        let answer = rx
            .await
            .unwrap_or_else(|_| Err(self.death_error(action, "the session ended")));
        guard.2 = false;
        answer
    }

    /// Ask the endpoint to cancel call `id` (its subprocesses are killed).
    pub(crate) async fn cancel(&self, id: &str, action: &str) -> Result<(), ConnectorError> {
        self.canceller().cancel(id, action).await
    }
}

/// What the endpoint's Hello frame says.
struct Hello {
    pid: u32,
    version: String,
    capabilities: Vec<String>,
}

/// Check the Hello frame: an endpoint of another protocol version is one to replace
/// (`NotSetup`, as in pipe and file mode), a Hello that is not JSON is garbage.
fn parse_hello(body: &[u8], endpoint: &str) -> Result<Hello, SessionError> {
    let garbled = |detail: String| SessionError::Protocol {
        detail,
        received: String::from_utf8_lossy(body).chars().take(300).collect(),
    };
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| garbled(format!("the session handshake is not JSON: {e}")))?;
    let version = v
        .get("version")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_string();
    match v.get("protocol").and_then(|p| p.as_u64()) {
        Some(p) if p == u64::from(PROTOCOL_VERSION) => {}
        Some(p) => {
            return Err(SessionError::NotSetup(format!(
                "the endpoint at {endpoint} (version {version}) speaks protocol {p}, this \
                 client protocol {PROTOCOL_VERSION}"
            )));
        }
        None => {
            return Err(garbled(
                "the session handshake names no protocol version".into(),
            ));
        }
    }
    let capabilities = v
        .get("capabilities")
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Hello {
        pid: v
            .get("pid")
            .and_then(|p| p.as_u64())
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
        version,
        capabilities,
    })
}
