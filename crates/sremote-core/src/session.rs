//! Session mode, client side: one long-lived `sremote-endpoint serve` per client, many
//! calls in flight over it, answered in any order and matched by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;

use crate::connector::{BoxFuture, Connector, RemoteCommand};
use crate::error::{ConnectorError, ConnectorErrorKind};
use crate::frame::{self, Frame, FrameKind};
use crate::protocol::{PROTOCOL_VERSION, Response};

/// A response with its raw attachments.
pub(crate) type Answer = (Response, Vec<Vec<u8>>);

/// What a session start's offer to install the endpoint is answered with
/// ([`Session::open`]): the endpoint to send, or `None` to decline.
pub(crate) type Offer<'a> = dyn Fn(&crate::bootstrap::HostFacts) -> Option<crate::bootstrap::EndpointArtifact>
    + Send
    + Sync
    + 'a;

/// Why a session call failed.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// The endpoint is missing or cannot run (exit 126/127 before the handshake).
    NotSetup(String),
    /// The session start found no endpoint and offered to install one; the client
    /// declined (`crate::bootstrap::offer`): why, and what the start's probe learned.
    NoEndpoint {
        reason: String,
        facts: Box<crate::bootstrap::HostFacts>,
    },
    /// The stream carried something that is not our protocol.
    Protocol { detail: String, received: String },
    /// The connection or the endpoint went away.
    Transport(ConnectorError),
    /// The call was cancelled before its request was written.
    Cancelled,
    /// A setup line failed before the endpoint started.
    Setup(crate::setup::SetupFailure),
    /// The sremote dir check before the start refused the dir (its `untrusted=` line,
    /// without the prefix; `crate::trust::guarded`).
    Untrusted(String),
}

/// A call waiting for its response: what it is (for error messages) and where to answer.
struct Waiter {
    action: String,
    tx: oneshot::Sender<Result<Answer, SessionError>>,
}

mod wire;

use wire::{Incoming, Stdin, Stdout, Writer, read_frame};

/// The calls waiting for their responses, by request id.
type Pending = Mutex<HashMap<String, Waiter, wire::IdHash>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long the endpoint has to greet.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The endpoint's stdout is read through a buffer this large.
const STDOUT_BUFFER: usize = 256 << 10;
/// How much of the endpoint's stderr is kept for error messages (the last bytes).
const STDERR_TAIL: usize = 64 << 10;
/// How often a quiet session with waiting calls is pinged.
const PING_EVERY: Duration = Duration::from_secs(15);
/// A session that answers nothing, not even pings, for this long is dead.
const DEAD_AFTER: Duration = Duration::from_secs(60);

/// Why a session ended.
struct Death {
    /// The stream carried something that is not our protocol (else it ended or broke).
    garbled: bool,
    why: String,
}

impl Death {
    /// The stream was garbled.
    fn garbled(why: String) -> Death {
        Death { garbled: true, why }
    }

    /// The stream ended or broke.
    fn gone(why: String) -> Death {
        Death {
            garbled: false,
            why,
        }
    }

    /// What a call of `action` on `host` fails with: a protocol error when the stream
    /// was garbled, else a disconnect with the reason.
    fn error(&self, host: &str, action: &str) -> SessionError {
        if self.garbled {
            SessionError::Protocol {
                detail: self.why.clone(),
                received: String::new(),
            }
        } else {
            SessionError::Transport(disconnected(host, action, &self.why))
        }
    }
}

/// What a session's calls, its reader and its heartbeat share.
struct Shared {
    host: String,
    /// Every frame to the endpoint goes through it.
    writer: Writer,
    pending: Pending,
    /// Cleared once the session can take no more calls.
    alive: AtomicBool,
    /// When the endpoint last sent anything (what the heartbeat measures).
    last_rx: Mutex<Instant>,
    /// Why the session ended, once it has (the first reason).
    death: Mutex<Option<Death>>,
}

impl Shared {
    fn new(host: String, stdin: Stdin) -> Shared {
        Shared {
            host,
            writer: Writer::new(stdin),
            pending: Mutex::default(),
            alive: AtomicBool::new(true),
            last_rx: Mutex::new(Instant::now()),
            death: Mutex::default(),
        }
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// The endpoint sent something: it is alive.
    fn heard(&self) {
        *lock(&self.last_rx) = Instant::now();
    }

    /// Record why the session ended, mark it dead — in that order, so a call that sees
    /// it dead finds the reason — and fail every waiting call.
    fn die(&self, death: Death) {
        let mut recorded = lock(&self.death);
        let death = recorded.get_or_insert(death);
        self.alive.store(false, Ordering::SeqCst);
        for (_, w) in lock(&self.pending).drain() {
            let _ = w.tx.send(Err(death.error(&self.host, &w.action)));
        }
    }

    /// Why a dead session cannot take `action` (`otherwise` when no reason was recorded).
    fn death_error(&self, action: &str, otherwise: &str) -> SessionError {
        match lock(&self.death).as_ref() {
            Some(death) => death.error(&self.host, action),
            None => SessionError::Transport(disconnected(&self.host, action, otherwise)),
        }
    }

    /// Queue a frame without attachments and write the queue now.
    async fn write(&self, action: &str, frame: &[u8]) -> Result<(), SessionError> {
        self.writer.queue(frame, || true);
        let flushed = self.writer.flush().await;
        flushed.map_err(|e| self.write_failed(action, e))
    }

    /// A write failed: the session is dead (the reader may know better why).
    fn write_failed(&self, action: &str, e: std::io::Error) -> SessionError {
        self.alive.store(false, Ordering::SeqCst);
        match lock(&self.death).as_ref() {
            Some(death) => death.error(&self.host, action),
            None => SessionError::Transport(disconnected(
                &self.host,
                action,
                format!("writing to the session failed: {e}"),
            )),
        }
    }
}

/// A live session. Dropping it closes the endpoint's stdin, which ends the endpoint.
pub(crate) struct Session {
    shared: Arc<Shared>,
    /// The stderr drain, the reader and the heartbeat.
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
    shared: Arc<Shared>,
    supported: bool,
}

impl Canceller {
    /// Ask the endpoint to cancel call `id` (it kills the call's subprocesses and answers
    /// `Cancelled`).
    pub(crate) async fn cancel(&self, id: &str, action: &str) -> Result<(), ConnectorError> {
        let host = &self.shared.host;
        if !self.supported {
            return Err(ConnectorError::unsupported(host, "cancel", action)
                .detail("the endpoint's session offers no cancel")
                .hint("run `sremote bootstrap` to install a current endpoint"));
        }
        let body = serde_json::json!({ "id": id }).to_string();
        let frame = frame::encode(FrameKind::Cancel, body.as_bytes()).map_err(|e| {
            ConnectorError::new(ConnectorErrorKind::InvalidInput, host, action).detail(e)
        })?;
        self.shared
            .write(action, &frame)
            .await
            .map_err(|e| match e {
                SessionError::Transport(e) => e,
                _ => disconnected(host, action, "the session is closed"),
            })
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.shared.host)
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

/// The last [`STDERR_TAIL`] bytes the endpoint wrote to stderr (its diagnostics), for
/// errors about a session that did not start.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    /// Read the endpoint's stderr to its end, so the endpoint never blocks on it, keeping
    /// the tail.
    async fn drain(self, mut stderr: Box<dyn AsyncRead + Send + Unpin>) {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let mut t = lock(&self.0);
            t.extend_from_slice(&buf[..n]);
            let excess = t.len().saturating_sub(STDERR_TAIL);
            t.drain(..excess);
        }
    }

    /// The tail as text, trimmed.
    fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).trim().to_string()
    }

    /// What the start of an endpoint that exited with `code` reported: a failed setup
    /// line, or the sremote dir check's refusal. The report may still be on the way to
    /// the drain: wait for it up to 2 s.
    async fn start_failure(&self, code: i32) -> Option<SessionError> {
        use crate::setup::SETUP_FAILED_EXIT;
        use crate::trust::UNTRUSTED_EXIT;
        if !matches!(code, SETUP_FAILED_EXIT | UNTRUSTED_EXIT) {
            return None;
        }
        for _ in 0..100 {
            let report = {
                let tail = lock(&self.0);
                match code {
                    SETUP_FAILED_EXIT => {
                        crate::setup::failure(Some(code), &tail).map(SessionError::Setup)
                    }
                    _ => crate::trust::untrusted_line(&tail).map(SessionError::Untrusted),
                }
            };
            if report.is_some() {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// What arrived first on the endpoint's stdout.
enum Handshake {
    /// The magic and a Hello frame: its body.
    Hello(Vec<u8>),
    /// Eight bytes that are not the magic (shell noise, most likely).
    Junk([u8; 8]),
    /// The magic, then a frame of another kind.
    Unexpected(FrameKind),
    /// The stream ended or broke before a Hello.
    Ended,
    /// Nothing complete within [`HANDSHAKE_TIMEOUT`].
    TimedOut,
    /// No endpoint there: the start offers to install one (`crate::bootstrap::offer`);
    /// the host's facts from its probe.
    Offer(Box<crate::bootstrap::HostFacts>),
}

/// Read the magic and the Hello frame.
async fn read_handshake(stdout: &mut Stdout) -> Handshake {
    let read = async {
        let mut magic = [0u8; 8];
        stdout.read_exact(&mut magic).await?;
        if &magic == crate::bootstrap::NEED {
            let facts = crate::bootstrap::read_offer(stdout).await?;
            return Ok(Handshake::Offer(Box::new(facts)));
        }
        if &magic != frame::MAGIC {
            return Ok(Handshake::Junk(magic));
        }
        Ok::<_, std::io::Error>(match read_frame(stdout).await? {
            Some(Frame::Plain {
                kind: FrameKind::Hello,
                body,
            }) => Handshake::Hello(body),
            Some(Frame::Message { kind, .. } | Frame::Plain { kind, .. }) => {
                Handshake::Unexpected(kind)
            }
            None => Handshake::Ended,
        })
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, read).await {
        Ok(Ok(handshake)) => handshake,
        Ok(Err(_)) => Handshake::Ended,
        Err(_) => Handshake::TimedOut,
    }
}

/// Send `artifact` to a start that offered to install it; its answer is the installed
/// endpoint's handshake.
async fn take_offer(
    stdin: &mut Stdin,
    stdout: &mut Stdout,
    artifact: &crate::bootstrap::EndpointArtifact,
) -> Handshake {
    match crate::bootstrap::send_offered(stdin, artifact).await {
        Ok(()) => read_handshake(stdout).await,
        Err(_) => Handshake::Ended,
    }
}

/// The stream did not start with the magic: a protocol error showing what arrived — the
/// eight bytes `start` and a little more, without waiting long for it.
async fn not_a_session(start: [u8; 8], stdout: &mut Stdout) -> SessionError {
    let mut more = [0u8; 200];
    let n = tokio::time::timeout(Duration::from_millis(100), stdout.read(&mut more))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let mut received = start.to_vec();
    received.extend_from_slice(&more[..n]);
    SessionError::Protocol {
        detail: "the session did not start with the sremote handshake (is something in the \
                 login scripts printing to stdout?)"
            .into(),
        received: String::from_utf8_lossy(&received).into_owned(),
    }
}

/// A session start whose endpoint ended before its Hello: the start's names, for errors.
struct Ended<'a> {
    endpoint: &'a str,
    host: &'a str,
    action: &'a str,
}

/// How long a start that ended may take to deliver the rest of its stderr.
const STDERR_GRACE: Duration = Duration::from_millis(500);

impl Ended<'_> {
    /// Why: its exit code and stderr tell — missing or not runnable (126/127), too old
    /// for session mode (2), an offered install that failed (65–69), a failed setup line,
    /// a refused sremote dir, or a disconnect.
    async fn why(
        &self,
        wait: &mut BoxFuture<Result<Option<i32>, ConnectorError>>,
        drain: tokio::task::JoinHandle<()>,
        stderr: &StderrTail,
    ) -> SessionError {
        let code = tokio::time::timeout(Duration::from_secs(5), wait).await;
        // The stderr ends with the program (no fixed wait: this is a fresh host's path).
        let _ = tokio::time::timeout(STDERR_GRACE, drain).await;
        if let Ok(Ok(Some(c))) = code
            && let Some(failure) = stderr.start_failure(c).await
        {
            return failure;
        }
        let tail = stderr.text();
        let endpoint = self.endpoint;
        match code {
            Ok(Ok(Some(126 | 127))) => {
                SessionError::NotSetup(format!("no runnable endpoint at {endpoint}: {tail}"))
            }
            Ok(Ok(Some(2))) => SessionError::NotSetup(format!(
                "the endpoint at {endpoint} has no session mode: {tail}"
            )),
            // The install the start offered (`crate::bootstrap::offer`) failed.
            Ok(Ok(Some(c @ 65..=69))) => SessionError::NotSetup(format!(
                "installing the endpoint at {endpoint} failed (exit {c}): {tail}"
            )),
            other => SessionError::Transport(disconnected(
                self.host,
                &format!("{} (opening a session)", self.action),
                format!("endpoint session ended during the handshake ({other:?}): {tail}"),
            )),
        }
    }
}

/// The reader task: hand each response to the call waiting for it until the stream ends
/// or is garbled, then fail the calls still waiting and reap the endpoint.
async fn read_responses(
    mut stdout: Stdout,
    wait: BoxFuture<Result<Option<i32>, ConnectorError>>,
    shared: Arc<Shared>,
) {
    let death = loop {
        match wire::next_frame(&mut stdout).await {
            Ok(Some(Incoming::Response(parsed, attachments))) => {
                shared.heard();
                match parsed {
                    Ok(response) => {
                        if let Some(w) = lock(&shared.pending).remove(&response.id) {
                            let _ = w.tx.send(Ok((response, attachments)));
                        }
                    }
                    Err(e) => break Death::garbled(format!("garbled response frame: {e}")),
                }
            }
            Ok(Some(Incoming::Other(FrameKind::Pong | FrameKind::Hello))) => shared.heard(),
            Ok(Some(Incoming::Other(kind))) => {
                break Death::garbled(format!("unexpected {kind:?} frame from the endpoint"));
            }
            Ok(None) => break Death::gone("the endpoint closed the session".to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                break Death::garbled(format!("garbled data from the endpoint: {e}"));
            }
            Err(e) => break Death::gone(format!("reading the session failed: {e}")),
        }
    };
    shared.die(death);
    let _ = wait.await;
}

/// The writer task: writes the requests that calls queued for it (see [`Writer`]); a
/// failed write ends the session.
async fn write_queued(shared: Arc<Shared>) {
    let e = shared.writer.run().await;
    shared.die(Death::gone(format!("writing to the session failed: {e}")));
}

/// While calls are waiting, ping the endpoint when it has been quiet, and declare the
/// connection dead when nothing at all arrives for [`DEAD_AFTER`] (a half-open TCP
/// connection never reports an error by itself).
async fn heartbeat(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PING_EVERY);
    loop {
        tick.tick().await;
        if !shared.is_alive() {
            return;
        }
        let quiet = lock(&shared.last_rx).elapsed();
        if lock(&shared.pending).is_empty() {
            shared.heard();
            continue;
        }
        if quiet >= DEAD_AFTER {
            let why = format!("no answer to heartbeats for {} s", quiet.as_secs());
            shared.die(Death::gone(why));
            return;
        }
        if quiet >= PING_EVERY
            && let Ok(ping) = frame::encode(FrameKind::Ping, &[0u8; 8])
        {
            let _ = shared.write("ping", &ping).await;
        }
    }
}

impl Session {
    /// Start `endpoint serve` on the host and complete the handshake, for the call
    /// `action` (named in errors). Three tasks then serve the session: a drain of the
    /// endpoint's stderr, the reader of responses and the heartbeat. When the start finds
    /// no endpoint and offers to install one, `offer` says what to send (`None`: decline,
    /// [`SessionError::NoEndpoint`] with the host's facts).
    pub(crate) async fn open<C: Connector + ?Sized>(
        connector: &C,
        serve: &RemoteCommand,
        endpoint: &str,
        action: &str,
        offer: &Offer<'_>,
    ) -> Result<Session, SessionError> {
        let host = connector.host().to_string();
        let process = connector.spawn(serve).await.map_err(|mut e| {
            // Name the call and the endpoint, not the `sh` that checks and starts it.
            e.action = format!("{action} (starting {endpoint} serve)");
            SessionError::Transport(e)
        })?;
        let mut stdout = tokio::io::BufReader::with_capacity(STDOUT_BUFFER, process.stdout);
        let stderr = StderrTail::default();
        let drain = tokio::spawn(stderr.clone().drain(process.stderr));
        let mut wait = process.wait;
        let mut stdin = process.stdin;
        let mut handshake = read_handshake(&mut stdout).await;
        if let Handshake::Offer(facts) = handshake {
            let Some(artifact) = offer(&facts) else {
                // Declined: the start exits at the end of its stdin (no kill needed; `wait`
                // ends once stdout is read or dropped).
                drop((stdin, stdout));
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut wait).await;
                let reason = format!("no endpoint at {endpoint}");
                return Err(SessionError::NoEndpoint { reason, facts });
            };
            handshake = take_offer(&mut stdin, &mut stdout, &artifact).await;
        }
        let hello = match handshake {
            Handshake::Hello(body) => parse_hello(&body, endpoint)?,
            Handshake::Junk(start) => return Err(not_a_session(start, &mut stdout).await),
            Handshake::Unexpected(kind) => {
                return Err(SessionError::Protocol {
                    detail: format!("expected a hello frame, got {kind:?}"),
                    received: String::new(),
                });
            }
            Handshake::Ended => {
                let ended = Ended {
                    endpoint,
                    host: &host,
                    action,
                };
                return Err(ended.why(&mut wait, drain, &stderr).await);
            }
            Handshake::Offer(_) => {
                return Err(SessionError::Protocol {
                    detail: "a second offer to install the endpoint".into(),
                    received: String::new(),
                });
            }
            Handshake::TimedOut => {
                let opening = format!("{action} (opening a session)");
                return Err(SessionError::Transport(
                    ConnectorError::new(ConnectorErrorKind::Timeout, &host, &opening)
                        .detail("no handshake from the endpoint within 60 s"),
                ));
            }
        };
        let shared = Arc::new(Shared::new(host, stdin));
        let tasks = vec![
            drain,
            tokio::spawn(read_responses(stdout, wait, shared.clone())),
            tokio::spawn(heartbeat(shared.clone())),
            tokio::spawn(write_queued(shared.clone())),
        ];
        Ok(Session {
            shared,
            tasks,
            pid: hello.pid,
            version: hello.version,
            capabilities: hello.capabilities,
        })
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.shared.is_alive()
    }

    /// Whether the endpoint announced `capability` in its handshake.
    pub(crate) fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// What cancels a call of this session.
    pub(crate) fn canceller(&self) -> Canceller {
        Canceller {
            shared: self.shared.clone(),
            supported: self.has_capability("cancel"),
        }
    }

    /// Send a request message and wait for its response. `head` is the frame up to its
    /// attachments ([`frame::append_message_head`]); `action` (`call os.getpid`) names
    /// the call in errors. With `control`, the request is written only if the call was
    /// not cancelled first, and a later cancel knows it must go to this session.
    pub(crate) async fn call(
        &self,
        id: &str,
        head: &[u8],
        attachments: &[Vec<u8>],
        action: &str,
        control: Option<&crate::call::CallControl>,
    ) -> Result<Answer, SessionError> {
        let shared = &self.shared;
        if !shared.is_alive() {
            return Err(shared.death_error(action, "the session is closed"));
        }
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            action: action.to_string(),
            tx,
        };
        let alone = {
            let mut pending = lock(&shared.pending);
            pending.insert(id.to_string(), waiter);
            pending.len() == 1
        };
        // If the caller stops waiting (dropped future), forget the entry, and let the
        // writer task write a request it may have left queued.
        struct Forget<'a>(&'a Shared, &'a str, bool);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                if self.2 {
                    lock(&self.0.pending).remove(self.1);
                    self.0.writer.wake();
                }
            }
        }
        let mut guard = Forget(shared, id, true);
        // The reader marks the session dead before it fails the pending calls: a call
        // registered after that must notice here, or it would wait forever — and be told
        // why it died (a garbled stream is a protocol error, not a disconnect).
        if !shared.is_alive() {
            return Err(shared.death_error(action, "the session ended"));
        }
        // Admitted under the queue's lock, so a Cancel frame can only follow the request.
        let admit = || control.is_none_or(|c| c.start_sending(self.canceller()));
        if attachments.is_empty() && head.len() <= wire::QUEUE_AT_MOST {
            if !shared.writer.queue(head, admit) {
                return Err(SessionError::Cancelled);
            }
            if alone {
                // Nothing else in flight: write it now, no hop to the writer task.
                let flushed = shared.writer.flush().await;
                flushed.map_err(|e| shared.write_failed(action, e))?;
            } else {
                // Other calls are in flight: the writer task writes this request with
                // those the calls woken beside this one queue.
                shared.writer.wake();
            }
        } else {
            let written = shared.writer.write_in_place(head, attachments, admit).await;
            if !written.map_err(|e| shared.write_failed(action, e))? {
                return Err(SessionError::Cancelled);
            }
        }
        let answer = rx
            .await
            .unwrap_or_else(|_| Err(shared.death_error(action, "the session ended")));
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
