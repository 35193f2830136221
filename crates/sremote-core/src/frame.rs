//! Session-mode framing: length-prefixed frames over one byte stream (see PROTOCOL.md).
//!
//! ```text
//! stream  := MAGIC frame*
//! frame   := len:u32le kind:u8 body[len - 1]
//! message := json_len:u32le json[json_len] (att_len:u64le att[att_len])*
//! ```
//! Request and response frames carry a *message*: the JSON body seen by users and plugins,
//! then raw attachments referenced from the JSON as `{"$blob": N}` (no base64 on the wire).
//! Shared by the client and the endpoint; sync I/O only (the client wraps it).

use std::io::{self, Read, Write};

/// Written by the endpoint first, so a client can tell a session from shell noise.
pub const MAGIC: &[u8; 8] = b"SRMT\x00\x01\r\n";

/// Frames above this size are refused (a garbled length never makes us allocate much).
pub const MAX_FRAME: u32 = 1 << 31;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Endpoint → client, once: JSON `{"protocol", "version", "pid", "capabilities"}`.
    Hello = 1,
    /// Client → endpoint: a message holding a `Request`.
    Request = 2,
    /// Endpoint → client: a message holding a `Response`.
    Response = 3,
    /// Client → endpoint: JSON `{"id"}` of a call to cancel.
    Cancel = 4,
    /// Either way: 8 opaque bytes, answered by `Pong` with the same bytes.
    Ping = 5,
    /// The answer to a `Ping`: its 8 bytes.
    Pong = 6,
}

impl FrameKind {
    /// The kind with wire value `b`, if any.
    pub fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Hello,
            2 => FrameKind::Request,
            3 => FrameKind::Response,
            4 => FrameKind::Cancel,
            5 => FrameKind::Ping,
            6 => FrameKind::Pong,
            _ => return None,
        })
    }
}

/// Encode a frame header for a body of `body_len` bytes.
pub fn header(kind: FrameKind, body_len: usize) -> io::Result<[u8; 5]> {
    let len = u32::try_from(body_len + 1)
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame of {body_len} bytes is too large"),
            )
        })?;
    let mut h = [0u8; 5];
    h[..4].copy_from_slice(&len.to_le_bytes());
    h[4] = kind as u8;
    Ok(h)
}

/// Most bytes reserved up front for one attachment (a garbled length must not reserve
/// gigabytes); beyond this the buffer grows as data arrives.
const MAX_RESERVE: usize = 256 << 20;

/// The start of a message frame: header, JSON length and JSON. Write it, then for every
/// attachment [`attachment_prefix`] and the attachment's bytes — no copy into one buffer.
pub fn message_head(kind: FrameKind, json: &[u8], attachments: &[Vec<u8>]) -> io::Result<Vec<u8>> {
    let body_len = 4 + json.len() + attachments.iter().map(|a| 8 + a.len()).sum::<usize>();
    let mut out = Vec::with_capacity(9 + json.len());
    out.extend_from_slice(&header(kind, body_len)?);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(json);
    Ok(out)
}

/// Append a message frame's head to `out` — header, JSON length and the JSON that `json`
/// writes straight into `out` (no intermediate buffer) — counting `attachments` in the
/// header; write each attachment after it with [`attachment_prefix`]. Several frames can
/// be appended to one buffer and written with one `write`. On an error (the JSON cannot be
/// written, the frame would be too large) `out` is left as it was.
pub fn append_message_head(
    out: &mut Vec<u8>,
    kind: FrameKind,
    attachments: &[Vec<u8>],
    json: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0u8; 9]);
    let filled = json(out).and_then(|()| {
        let json_len = out.len() - start - 9;
        let atts = attachments.iter().map(|a| 8 + a.len()).sum::<usize>();
        let json_len32 = u32::try_from(json_len)
            .map_err(|_| invalid(format!("a JSON body of {json_len} bytes is too large")))?;
        let h = header(kind, 4 + json_len + atts)?;
        out[start..start + 5].copy_from_slice(&h);
        out[start + 5..start + 9].copy_from_slice(&json_len32.to_le_bytes());
        Ok(())
    });
    if filled.is_err() {
        out.truncate(start);
    }
    filled
}

/// The whole length (header included) of the frame at the start of `buf` when all of it
/// is there; `None` when `buf` holds less (or a header that [`parse_header`] refuses,
/// which reading it then reports).
pub fn complete_frame_len(buf: &[u8]) -> Option<usize> {
    let h: [u8; 5] = buf.get(..5)?.try_into().ok()?;
    let (len, _) = parse_header(h).ok()?;
    let total = 5 + len;
    (buf.len() >= total).then_some(total)
}

/// The length prefix written before an attachment.
pub fn attachment_prefix(attachment: &[u8]) -> [u8; 8] {
    (attachment.len() as u64).to_le_bytes()
}

/// Write a message frame (head, then each attachment in place) and flush.
pub fn write_message(
    w: &mut impl Write,
    kind: FrameKind,
    json: &[u8],
    attachments: &[Vec<u8>],
) -> io::Result<()> {
    w.write_all(&message_head(kind, json, attachments)?)?;
    for a in attachments {
        w.write_all(&attachment_prefix(a))?;
        w.write_all(a)?;
    }
    w.flush()
}

/// A frame as read: a message (request/response) split into JSON and attachments, each
/// read into its own buffer, or a plain body.
#[derive(Debug)]
pub enum Frame {
    /// A request or response.
    Message {
        /// `Request` or `Response`.
        kind: FrameKind,
        /// The message's JSON.
        json: Vec<u8>,
        /// Its raw attachments, referenced from the JSON as `{"$blob": N}`.
        attachments: Vec<Vec<u8>>,
    },
    /// Any other frame.
    Plain {
        /// What it is.
        kind: FrameKind,
        /// Its body, as sent.
        body: Vec<u8>,
    },
}

/// Whether frames of `kind` carry a message.
pub fn is_message(kind: FrameKind) -> bool {
    matches!(kind, FrameKind::Request | FrameKind::Response)
}

/// Check one field's length against what is left of the frame body.
pub fn take_len(left: &mut usize, n: usize) -> io::Result<usize> {
    if n > *left {
        return Err(invalid("message field runs past its frame"));
    }
    *left -= n;
    Ok(n)
}

/// A buffer for `n` bytes that will arrive (reserved up to 256 MiB at first: a corrupt length cannot make it allocate more).
pub fn buffer_for(n: usize) -> Vec<u8> {
    Vec::with_capacity(n.min(MAX_RESERVE))
}

/// Read one frame, messages field by field (no intermediate copies); `Ok(None)` at a
/// clean end of stream.
pub fn read(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let Some((mut left, kind)) = read_header(r)? else {
        return Ok(None);
    };
    let exact = |r: &mut dyn Read, n: usize| -> io::Result<Vec<u8>> {
        let mut v = buffer_for(n);
        if r.take(n as u64).read_to_end(&mut v)? != n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended inside a frame",
            ));
        }
        Ok(v)
    };
    if !is_message(kind) {
        return Ok(Some(Frame::Plain {
            kind,
            body: exact(r, left)?,
        }));
    }
    let mut n4 = [0u8; 4];
    take_len(&mut left, 4)?;
    r.read_exact(&mut n4)?;
    let json_len = take_len(&mut left, u32::from_le_bytes(n4) as usize)?;
    let json = exact(r, json_len)?;
    let mut attachments = Vec::new();
    while left > 0 {
        let mut n8 = [0u8; 8];
        take_len(&mut left, 8)?;
        r.read_exact(&mut n8)?;
        let n =
            usize::try_from(u64::from_le_bytes(n8)).map_err(|_| invalid("attachment too large"))?;
        attachments.push(exact(r, take_len(&mut left, n)?)?);
    }
    Ok(Some(Frame::Message {
        kind,
        json,
        attachments,
    }))
}

/// Encode a message (JSON + attachments) as one frame.
pub fn encode_message(
    kind: FrameKind,
    json: &[u8],
    attachments: &[Vec<u8>],
) -> io::Result<Vec<u8>> {
    let body_len = 4 + json.len() + attachments.iter().map(|a| 8 + a.len()).sum::<usize>();
    let mut out = Vec::with_capacity(5 + body_len);
    out.extend_from_slice(&header(kind, body_len)?);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(json);
    for a in attachments {
        out.extend_from_slice(&(a.len() as u64).to_le_bytes());
        out.extend_from_slice(a);
    }
    Ok(out)
}

/// Encode a frame with a plain body.
pub fn encode(kind: FrameKind, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&header(kind, body.len())?);
    out.extend_from_slice(body);
    Ok(out)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Split a message body into its JSON and attachments.
pub fn decode_message(body: &[u8]) -> io::Result<(&[u8], Vec<Vec<u8>>)> {
    let take = |b: &[u8], n: usize| -> io::Result<usize> {
        if b.len() < n {
            Err(invalid("message is truncated"))
        } else {
            Ok(n)
        }
    };
    take(body, 4)?;
    let json_len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let rest = &body[4..];
    take(rest, json_len)?;
    let (json, mut rest) = rest.split_at(json_len);
    let mut attachments = Vec::new();
    while !rest.is_empty() {
        take(rest, 8)?;
        let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| invalid("attachment too large"))?;
        take(&rest[8..], len)?;
        attachments.push(rest[8..8 + len].to_vec());
        rest = &rest[8 + len..];
    }
    Ok((json, attachments))
}

/// Parse a frame header: body length (kind byte excluded) and kind.
pub fn parse_header(h: [u8; 5]) -> io::Result<(usize, FrameKind)> {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if len == 0 || len > MAX_FRAME {
        return Err(invalid(format!("bad frame length {len}")));
    }
    let kind =
        FrameKind::from_u8(h[4]).ok_or_else(|| invalid(format!("unknown frame kind {}", h[4])))?;
    Ok((len as usize - 1, kind))
}

/// Read a frame header: its body length and kind; `Ok(None)` at a clean end of stream
/// (nothing read), an error when it ends inside the header.
fn read_header(r: &mut impl Read) -> io::Result<Option<(usize, FrameKind)>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut h[1..])?;
    parse_header(h).map(Some)
}

/// Read one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(FrameKind, Vec<u8>)>> {
    let Some((len, kind)) = read_header(r)? else {
        return Ok(None);
    };
    let mut body = Vec::new();
    // Grows as bytes arrive: a garbled length cannot make us allocate it up front.
    let got = r.take(len as u64).read_to_end(&mut body)?;
    if got != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "stream ended inside a frame",
        ));
    }
    Ok(Some((kind, body)))
}

/// Write one frame and flush.
pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trip() {
        let atts = vec![vec![1, 2, 3], vec![], vec![0; 1000]];
        let frame = encode_message(FrameKind::Request, br#"{"a":1}"#, &atts).unwrap();
        let (kind, body) = read_frame(&mut &frame[..]).unwrap().unwrap();
        assert_eq!(kind, FrameKind::Request);
        let (json, back) = decode_message(&body).unwrap();
        assert_eq!((json, back), (&br#"{"a":1}"#[..], atts));
        assert!(read_frame(&mut &b""[..]).unwrap().is_none());
    }

    #[test]
    fn streamed_messages_read_field_by_field() {
        let atts = vec![vec![9u8; 100_000], vec![]];
        let mut wire = Vec::new();
        write_message(&mut wire, FrameKind::Response, b"{}", &atts).unwrap();
        wire.extend(encode(FrameKind::Ping, b"12345678").unwrap());
        let one_buffer = encode_message(FrameKind::Response, b"{}", &atts).unwrap();
        assert!(
            wire[..wire.len() - 13] == one_buffer[..],
            "streamed and buffered encodings differ"
        );
        let mut r = &wire[..];
        match read(&mut r).unwrap().unwrap() {
            Frame::Message {
                kind,
                json,
                attachments,
            } => {
                assert_eq!((kind, &json[..]), (FrameKind::Response, &b"{}"[..]));
                assert!(attachments == atts, "attachments differ");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read(&mut r).unwrap(),
            Some(Frame::Plain {
                kind: FrameKind::Ping,
                ..
            })
        ));
        assert!(read(&mut r).unwrap().is_none());
        // A field longer than its frame is an error.
        let bad = b"\x09\x00\x00\x00\x02\xff\x00\x00\x00abcd";
        assert!(read(&mut &bad[..]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            &b"hello world\n"[..],
            b"\xff\xff\xff\xff\x02",
            b"\x05\x00\x00\x00\x09abcd",
            b"\x10\x00\x00\x00\x02ab",
        ] {
            assert!(read_frame(&mut &junk[..]).is_err(), "{junk:?}");
        }
        assert!(decode_message(b"\x05\x00\x00\x00ab").is_err());
        assert!(decode_message(b"\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00ab").is_err());
    }
}
