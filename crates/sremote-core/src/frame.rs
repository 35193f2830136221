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
    Pong = 6,
}

impl FrameKind {
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

/// Read one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut h[1..])?;
    let (len, kind) = parse_header(h)?;
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
