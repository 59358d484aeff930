//! Peer-transport frames: `[len u32][kind u8][req_id u64][body]`, big-endian.
//!
//! `len` counts the bytes after itself (kind, req_id and body). Framing is two-phase: [`check`]
//! tells whether a whole frame is buffered (incomplete is flow control, not an error) and
//! rejects a length above the configured maximum before anything is allocated; [`parse`] then
//! splits the frame off the buffer. Bodies are bincode (see [`crate::codec`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of `len`.
pub const LEN_BYTES: usize = 4;
/// Bytes of `kind` + `req_id`.
pub const META_BYTES: usize = 1 + 8;

/// Version of the transport protocol, carried in the handshake.
pub const PROTOCOL_VERSION: u16 = 1;

/// What a frame carries. Values are wire-stable: never renumber or reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Client → server, first frame: [`super::Hello`].
    Hello = 1,
    /// Server → client: handshake accepted (empty body).
    HelloOk = 2,
    /// Server → client: handshake refused (body: reason string); the server then closes.
    HelloReject = 3,
    AppendEntries = 10,
    Vote = 11,
    InstallSnapshot = 12,
    /// Group administration between members ([`super::AdminRequest`]).
    Admin = 13,
    AppendEntriesResponse = 0x80 | 10,
    VoteResponse = 0x80 | 11,
    InstallSnapshotResponse = 0x80 | 12,
    AdminResponse = 0x80 | 13,
}

impl FrameKind {
    pub fn from_u8(v: u8) -> Option<FrameKind> {
        Some(match v {
            1 => FrameKind::Hello,
            2 => FrameKind::HelloOk,
            3 => FrameKind::HelloReject,
            10 => FrameKind::AppendEntries,
            11 => FrameKind::Vote,
            12 => FrameKind::InstallSnapshot,
            13 => FrameKind::Admin,
            0x8a => FrameKind::AppendEntriesResponse,
            0x8b => FrameKind::VoteResponse,
            0x8c => FrameKind::InstallSnapshotResponse,
            0x8d => FrameKind::AdminResponse,
            _ => return None,
        })
    }

    /// The response kind answering this request kind.
    pub fn response(self) -> Option<FrameKind> {
        match self {
            FrameKind::AppendEntries => Some(FrameKind::AppendEntriesResponse),
            FrameKind::Vote => Some(FrameKind::VoteResponse),
            FrameKind::InstallSnapshot => Some(FrameKind::InstallSnapshotResponse),
            FrameKind::Admin => Some(FrameKind::AdminResponse),
            _ => None,
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub req_id: u64,
    pub body: Bytes,
}

/// A frame that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("frame length {len} is shorter than its fixed part")]
    TooShort { len: usize },
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
}

/// Length of the whole frame at the front of `buf` if it is completely buffered.
pub fn check(buf: &[u8], max_frame: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < LEN_BYTES {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len < META_BYTES {
        return Err(FrameError::TooShort { len });
    }
    let total = LEN_BYTES + len;
    if total > max_frame {
        return Err(FrameError::TooLarge {
            size: total,
            max: max_frame,
        });
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Split one frame off the front of `buf`, if a whole one is buffered.
pub fn parse(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, FrameError> {
    let Some(total) = check(buf, max_frame)? else {
        return Ok(None);
    };
    let mut frame = buf.split_to(total);
    frame.advance(LEN_BYTES);
    let kind_byte = frame.get_u8();
    let req_id = frame.get_u64();
    let kind = FrameKind::from_u8(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
    Ok(Some(Frame {
        kind,
        req_id,
        body: frame.freeze(),
    }))
}

/// Encode a frame; fails if it would exceed `max_frame`.
pub fn encode(
    kind: FrameKind,
    req_id: u64,
    body: &[u8],
    max_frame: usize,
) -> Result<Bytes, FrameError> {
    let total = LEN_BYTES + META_BYTES + body.len();
    if total > max_frame || u32::try_from(total - LEN_BYTES).is_err() {
        return Err(FrameError::TooLarge {
            size: total,
            max: max_frame,
        });
    }
    let mut out = BytesMut::with_capacity(total);
    out.put_u32((total - LEN_BYTES) as u32);
    out.put_u8(kind as u8);
    out.put_u64(req_id);
    out.put_slice(body);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_partial_input() {
        let enc = encode(FrameKind::Vote, 77, b"body", 1024).unwrap();
        let mut buf = BytesMut::new();
        for (i, b) in enc.iter().enumerate() {
            assert_eq!(
                parse(&mut buf, 1024).unwrap(),
                None,
                "complete after {i} bytes"
            );
            buf.put_u8(*b);
        }
        let f = parse(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(f.kind, FrameKind::Vote);
        assert_eq!(f.req_id, 77);
        assert_eq!(&f.body[..], b"body");
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_oversized_short_and_unknown() {
        let mut buf = BytesMut::new();
        buf.put_u32(1_000_000);
        assert_eq!(
            parse(&mut buf, 1024),
            Err(FrameError::TooLarge {
                size: 1_000_004,
                max: 1024
            })
        );
        let mut buf = BytesMut::new();
        buf.put_u32(3);
        assert_eq!(parse(&mut buf, 1024), Err(FrameError::TooShort { len: 3 }));
        let mut buf = BytesMut::new();
        buf.put_u32(9);
        buf.put_u8(99);
        buf.put_u64(1);
        assert_eq!(parse(&mut buf, 1024), Err(FrameError::UnknownKind(99)));
        assert!(encode(FrameKind::Vote, 1, &[0u8; 2000], 1024).is_err());
    }

    #[test]
    fn kinds_roundtrip() {
        for k in [
            FrameKind::Hello,
            FrameKind::HelloOk,
            FrameKind::HelloReject,
            FrameKind::AppendEntries,
            FrameKind::Vote,
            FrameKind::InstallSnapshot,
            FrameKind::AppendEntriesResponse,
            FrameKind::VoteResponse,
            FrameKind::InstallSnapshotResponse,
            FrameKind::Admin,
            FrameKind::AdminResponse,
        ] {
            assert_eq!(FrameKind::from_u8(k as u8), Some(k));
        }
    }
}
