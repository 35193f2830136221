//! The session's byte stream, both ways: frames to the endpoint queued and written
//! together ([`Writer`]), frames from it parsed where they lie in the read buffer
//! ([`next_frame`]).

use std::io;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{self, Frame, FrameKind};
use crate::protocol::Response;

/// The endpoint's stdin.
pub(super) type Stdin = Box<dyn AsyncWrite + Send + Unpin>;
/// The endpoint's stdout, buffered.
pub(super) type Stdout = tokio::io::BufReader<Box<dyn AsyncRead + Send + Unpin>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hashes the request ids of the calls in flight (FNV-1a): they are the client's own
/// (`prefix-N`), not chosen by anyone who could aim collisions at the map, and SipHash,
/// the default, costs a few hundred instructions per call for its insert and remove.
#[derive(Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The [`IdHasher`] for a `HashMap`.
pub(super) type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// Frames up to this size (without attachments) are queued; larger ones, and every frame
/// with attachments, are written in place by the calling task (never copied).
pub(super) const QUEUE_AT_MOST: usize = 64 << 10;

/// The writing half. Every frame goes through one queue, in stream order: a call appends
/// its request (deciding under the queue's lock whether it may still be sent, so a
/// Cancel frame queued later can only follow it), then either writes the queue itself at
/// once (nothing else in flight: no hop to another task) or leaves it to the writer task
/// ([`Writer::run`]), which runs after the other calls woken by the same batch of
/// responses have queued theirs: one `write` for many requests when calls are pipelined.
pub(super) struct Writer {
    /// The stdin, and a spare buffer the queue is swapped into for writing.
    out: tokio::sync::Mutex<(Stdin, Vec<u8>)>,
    queue: Mutex<Vec<u8>>,
    queued: tokio::sync::Notify,
}

impl Writer {
    pub(super) fn new(stdin: Stdin) -> Writer {
        Writer {
            out: tokio::sync::Mutex::new((stdin, Vec::new())),
            queue: Mutex::default(),
            queued: tokio::sync::Notify::new(),
        }
    }

    /// Append `frame` to the queue if `admit` (called under the queue's lock) allows it;
    /// whether it did.
    pub(super) fn queue(&self, frame: &[u8], admit: impl FnOnce() -> bool) -> bool {
        let mut q = lock(&self.queue);
        if !admit() {
            return false;
        }
        q.extend_from_slice(frame);
        true
    }

    /// Let the writer task write what is queued.
    pub(super) fn wake(&self) {
        self.queued.notify_one();
    }

    /// Write what is queued, now.
    pub(super) async fn flush(&self) -> io::Result<()> {
        let mut out = self.out.lock().await;
        let (stdin, spare) = &mut *out;
        std::mem::swap(&mut *lock(&self.queue), spare);
        if spare.is_empty() {
            return Ok(());
        }
        let written = stdin.write_all(spare).await;
        spare.clear();
        written?;
        stdin.flush().await
    }

    /// Write the queue, then `head` and each attachment in place (length prefix, bytes):
    /// a large payload is never copied into one buffer. `admit` decides, under the
    /// queue's lock, whether the frame may still be sent (`Ok(false)`: it was not).
    pub(super) async fn write_in_place(
        &self,
        head: &[u8],
        attachments: &[Vec<u8>],
        admit: impl FnOnce() -> bool,
    ) -> io::Result<bool> {
        let mut out = self.out.lock().await;
        let (stdin, spare) = &mut *out;
        {
            let mut q = lock(&self.queue);
            if !admit() {
                return Ok(false);
            }
            std::mem::swap(&mut *q, spare);
        }
        let written = stdin.write_all(spare).await;
        spare.clear();
        written?;
        stdin.write_all(head).await?;
        for a in attachments {
            stdin.write_all(&frame::attachment_prefix(a)).await?;
            stdin.write_all(a).await?;
        }
        stdin.flush().await?;
        Ok(true)
    }

    /// The writer task: write the queue whenever woken; ends with the error of the write
    /// that failed.
    pub(super) async fn run(&self) -> io::Error {
        loop {
            self.queued.notified().await;
            if let Err(e) = self.flush().await {
                return e;
            }
        }
    }
}

/// A frame from the endpoint.
#[expect(
    clippy::large_enum_variant,
    reason = "one at a time, moved once: boxing would cost an allocation per response"
)]
pub(super) enum Incoming {
    /// A response frame: its JSON parsed (or why it could not be), and its attachments.
    Response(Result<Response, String>, Vec<Vec<u8>>),
    /// A frame of another kind (its body is not needed).
    Other(FrameKind),
}

/// The next frame; `Ok(None)` at a clean end of stream. A frame that lies whole in the
/// read buffer — the common case: one read brings one or many whole responses — is
/// parsed where it lies; one that does not (larger than the buffer, or cut by its end) is
/// read field by field.
pub(super) async fn next_frame(r: &mut Stdout) -> io::Result<Option<Incoming>> {
    loop {
        let buf = r.buffer();
        if let Some(total) = frame::complete_frame_len(buf) {
            let kind = FrameKind::from_u8(buf[4]).ok_or_else(|| invalid("unknown frame kind"))?;
            let item = if kind == FrameKind::Response {
                let (json, attachments) = frame::decode_message(&buf[5..total])?;
                Incoming::Response(Response::parse(json), attachments)
            } else {
                Incoming::Other(kind)
            };
            r.consume(total);
            return Ok(Some(item));
        }
        if !buf.is_empty() {
            break;
        }
        if r.fill_buf().await?.is_empty() {
            return Ok(None);
        }
    }
    Ok(read_frame(r).await?.map(|f| match f {
        Frame::Message {
            kind: FrameKind::Response,
            json,
            attachments,
        } => Incoming::Response(Response::parse(&json), attachments),
        Frame::Message { kind, .. } | Frame::Plain { kind, .. } => Incoming::Other(kind),
    }))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Read one frame (messages field by field, each attachment into its own buffer);
/// `Ok(None)` at a clean end of stream. The async twin of [`frame::read`].
pub(super) async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Frame>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
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
        let n =
            usize::try_from(u64::from_le_bytes(n8)).map_err(|_| invalid("attachment too large"))?;
        attachments.push(read_exactly(r, frame::take_len(&mut left, n)?).await?);
    }
    Ok(Some(Frame::Message {
        kind,
        json,
        attachments,
    }))
}

/// Read exactly `n` bytes into a new buffer (reserved as the bytes are announced, up to
/// a limit: a garbled length cannot make it allocate much).
async fn read_exactly(r: &mut (impl AsyncRead + Unpin), n: usize) -> io::Result<Vec<u8>> {
    let mut v = frame::buffer_for(n);
    if r.take(n as u64).read_to_end(&mut v).await? != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "stream ended inside a frame",
        ));
    }
    Ok(v)
}
