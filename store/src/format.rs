//! On-disk formats of the commitlog, specified in one place.
//!
//! Owns the record header layout, the end-of-segment marker, the CRC rule, the entry-index
//! unit layout and file naming. Everything is fixed-width big-endian (RocketMQ's byte order,
//! so stored messages inside payloads are served as they lie). No serde here: framing is code.
//!
//! Record = 48-byte header + payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4 | magic (`RECORD_MAGIC`) |
//! | 4  | 1 | version (`FORMAT_VERSION`) |
//! | 5  | 1 | kind (`EntryKind`) |
//! | 6  | 2 | reserved, 0 |
//! | 8  | 8 | index (Raft log index) |
//! | 16 | 8 | term |
//! | 24 | 8 | leader (node id of the leader that created the entry) |
//! | 32 | 8 | pos (global offset of this header; a check against stale bytes) |
//! | 40 | 4 | payload_len |
//! | 44 | 4 | crc32c over the header with this field zeroed, then the payload |
//!
//! A record never spans two segments. If `record_len + END_MARKER_LEN` does not fit in what
//! is left of the segment, an end marker (`END_MAGIC`, then the u32 count of bytes it covers)
//! is written and the record goes to the start of the next segment. The rule only depends on
//! the record's size and position, so every replica puts every record at the same position.
//! A header whose magic is 0 ends the log (preallocated segments are zero; truncation zeroes
//! the header at the cut).

use std::path::{Path, PathBuf};

use crate::commitlog::EntryId;

/// Magic of a record header: "RMQL".
pub const RECORD_MAGIC: u32 = 0x524D_514C;
/// Magic of the end-of-segment marker: "RMQE".
pub const END_MAGIC: u32 = 0x524D_5145;
/// Current record format version.
pub const FORMAT_VERSION: u8 = 1;
/// Size of a record header.
pub const HEADER_LEN: usize = 48;
/// Size of the end-of-segment marker (magic + covered length). Every record leaves at least
/// this much room behind it, so a marker always fits.
pub const END_MARKER_LEN: usize = 8;
/// Offset of the CRC field inside the header.
const CRC_OFFSET: usize = 44;

/// What a log entry carries. Stored as one byte in the header.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum EntryKind {
    /// No payload meaning (a new leader's first entry).
    Blank = 0,
    /// Cluster membership, opaque versioned bytes written by the raft layer.
    Membership = 1,
    /// Concatenated RocketMQ stored messages; PHYSICALOFFSET is patched at append.
    Messages = 2,
    /// Any other replicated command, opaque versioned bytes written by the raft layer.
    Command = 3,
}

impl EntryKind {
    /// Decodes the kind byte; `None` for an unknown value.
    pub fn from_u8(v: u8) -> Option<EntryKind> {
        match v {
            0 => Some(EntryKind::Blank),
            1 => Some(EntryKind::Membership),
            2 => Some(EntryKind::Messages),
            3 => Some(EntryKind::Command),
            _ => None,
        }
    }
}

/// A decoded record header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecordHeader {
    pub kind: EntryKind,
    pub id: EntryId,
    pub pos: u64,
    pub payload_len: u32,
    pub crc: u32,
}

impl RecordHeader {
    /// Total bytes the record occupies in a segment.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// What the first bytes at a position turned out to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    /// A well-formed record header (its CRC still has to be checked against the payload).
    Record(RecordHeader),
    /// The end-of-segment marker covering `len` bytes.
    EndMarker { len: u32 },
    /// Zero magic: the end of the written log.
    Empty,
}

/// Why a header could not be decoded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BadHeader(pub String);

/// Encodes a header with its CRC field zeroed into `out` (must be `HEADER_LEN` long).
fn put_header_fields(out: &mut [u8], kind: EntryKind, id: EntryId, pos: u64, payload_len: u32) {
    out[0..4].copy_from_slice(&RECORD_MAGIC.to_be_bytes());
    out[4] = FORMAT_VERSION;
    out[5] = kind as u8;
    out[6..8].copy_from_slice(&0u16.to_be_bytes());
    out[8..16].copy_from_slice(&id.index.to_be_bytes());
    out[16..24].copy_from_slice(&id.term.to_be_bytes());
    out[24..32].copy_from_slice(&id.leader.to_be_bytes());
    out[32..40].copy_from_slice(&pos.to_be_bytes());
    out[40..44].copy_from_slice(&payload_len.to_be_bytes());
    out[44..48].copy_from_slice(&0u32.to_be_bytes());
}

/// Computes the record CRC: crc32c over the header with its CRC field zeroed, then the payload.
pub fn record_crc(header_with_zero_crc: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&header_with_zero_crc[..HEADER_LEN]);
    crc32c::crc32c_append(crc, payload)
}

/// Appends one complete record (header with CRC, then payload) to `out`.
///
/// The payload must already be final (PHYSICALOFFSET patched), since the CRC covers it.
pub fn encode_record(out: &mut Vec<u8>, kind: EntryKind, id: EntryId, pos: u64, payload: &[u8]) {
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    let payload_len = u32::try_from(payload.len()).expect("invariant: payload fits a segment");
    put_header_fields(&mut out[start..], kind, id, pos, payload_len);
    let crc = record_crc(&out[start..start + HEADER_LEN], payload);
    out[start + CRC_OFFSET..start + HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(payload);
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Decodes what lies at the start of `buf` (at least `END_MARKER_LEN` bytes; a record header
/// needs `HEADER_LEN`). Checks magic, version, kind and reserved bytes, not the CRC.
pub fn decode_slot(buf: &[u8]) -> std::result::Result<Slot, BadHeader> {
    if buf.len() < END_MARKER_LEN {
        return Err(BadHeader(format!("only {} bytes left", buf.len())));
    }
    match be_u32(buf, 0) {
        0 => Ok(Slot::Empty),
        END_MAGIC => Ok(Slot::EndMarker {
            len: be_u32(buf, 4),
        }),
        RECORD_MAGIC => {
            if buf.len() < HEADER_LEN {
                return Err(BadHeader(format!(
                    "record header cut short: {} bytes",
                    buf.len()
                )));
            }
            if buf[4] != FORMAT_VERSION {
                return Err(BadHeader(format!("unknown format version {}", buf[4])));
            }
            let kind = EntryKind::from_u8(buf[5])
                .ok_or_else(|| BadHeader(format!("unknown entry kind {}", buf[5])))?;
            if buf[6] != 0 || buf[7] != 0 {
                return Err(BadHeader("reserved bytes are not zero".into()));
            }
            Ok(Slot::Record(RecordHeader {
                kind,
                id: EntryId {
                    index: be_u64(buf, 8),
                    term: be_u64(buf, 16),
                    leader: be_u64(buf, 24),
                },
                pos: be_u64(buf, 32),
                payload_len: be_u32(buf, 40),
                crc: be_u32(buf, CRC_OFFSET),
            }))
        }
        other => Err(BadHeader(format!("bad magic {other:#010x}"))),
    }
}

/// True when `header_bytes` + `payload` match the CRC stored in the header.
pub fn crc_matches(header_bytes: &[u8], payload: &[u8]) -> bool {
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&header_bytes[..HEADER_LEN]);
    let stored = be_u32(&h, CRC_OFFSET);
    h[CRC_OFFSET..HEADER_LEN].fill(0);
    record_crc(&h, payload) == stored
}

/// Encodes an end-of-segment marker covering `len` bytes (the rest of the segment).
pub fn encode_end_marker(len: u32) -> [u8; END_MARKER_LEN] {
    let mut m = [0u8; END_MARKER_LEN];
    m[0..4].copy_from_slice(&END_MAGIC.to_be_bytes());
    m[4..8].copy_from_slice(&len.to_be_bytes());
    m
}

/// Where a record of `record_len` bytes goes if the log's write position is `pos`:
/// `Ok(pos)` when it fits the current segment, or `Err(next_segment_base)` when an end
/// marker must fill the rest. The one deterministic roll rule.
/// A zero `segment_size` (refused by config validation) places nothing: `Err(pos)`.
pub fn place(pos: u64, record_len: u64, segment_size: u64) -> std::result::Result<u64, u64> {
    if segment_size == 0 {
        return Err(pos);
    }
    let base = pos - pos % segment_size;
    let remaining = base + segment_size - pos;
    if record_len + END_MARKER_LEN as u64 <= remaining {
        Ok(pos)
    } else {
        Err(base + segment_size)
    }
}

/// Largest payload a segment of `segment_size` bytes can hold.
pub fn max_payload(segment_size: u64) -> u64 {
    segment_size.saturating_sub((HEADER_LEN + END_MARKER_LEN) as u64)
}

/// File name of a segment (or index file) starting at global offset `base`: 20 digits.
pub fn file_name(base: u64) -> String {
    format!("{base:020}")
}

/// Parses a 20-digit file name back into its base offset.
pub fn parse_file_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Path of the file starting at `base` inside `dir`.
pub fn file_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(file_name(base))
}

/// Size of one entry-index unit.
pub const INDEX_UNIT_LEN: usize = 32;
/// Flag byte of a written unit (a zeroed unit has 0).
const UNIT_VALID: u8 = 1;

/// One entry-index unit: where entry `index` lies. Unit for index i sits at byte `i * 32` of
/// the entry-index file list, so a lookup is one read.
///
/// `pos u64 | record_len u32 | kind u8 | flag u8 | reserved u16 | term u64 | leader u64`
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IndexUnit {
    pub pos: u64,
    pub record_len: u32,
    pub kind: EntryKind,
    pub term: u64,
    pub leader: u64,
}

impl IndexUnit {
    /// Encodes the unit.
    pub fn encode(&self) -> [u8; INDEX_UNIT_LEN] {
        let mut u = [0u8; INDEX_UNIT_LEN];
        u[0..8].copy_from_slice(&self.pos.to_be_bytes());
        u[8..12].copy_from_slice(&self.record_len.to_be_bytes());
        u[12] = self.kind as u8;
        u[13] = UNIT_VALID;
        u[16..24].copy_from_slice(&self.term.to_be_bytes());
        u[24..32].copy_from_slice(&self.leader.to_be_bytes());
        u
    }

    /// Decodes a unit; `None` for a zeroed (never written or truncated) or malformed unit.
    pub fn decode(u: &[u8]) -> Option<IndexUnit> {
        if u.len() < INDEX_UNIT_LEN || u[13] != UNIT_VALID {
            return None;
        }
        Some(IndexUnit {
            pos: be_u64(u, 0),
            record_len: be_u32(u, 8),
            kind: EntryKind::from_u8(u[12])?,
            term: be_u64(u, 16),
            leader: be_u64(u, 24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(index: u64) -> EntryId {
        EntryId {
            index,
            term: 7,
            leader: 2,
        }
    }

    #[test]
    fn record_round_trips_and_crc_covers_payload() {
        let mut buf = Vec::new();
        encode_record(&mut buf, EntryKind::Command, id(5), 4096, b"hello");
        assert_eq!(buf.len(), HEADER_LEN + 5);
        let Ok(Slot::Record(h)) = decode_slot(&buf) else {
            panic!("not a record")
        };
        assert_eq!(h.id, id(5));
        assert_eq!(h.pos, 4096);
        assert_eq!(h.kind, EntryKind::Command);
        assert_eq!(h.payload_len, 5);
        assert!(crc_matches(&buf[..HEADER_LEN], &buf[HEADER_LEN..]));
        buf[HEADER_LEN + 1] ^= 0x10;
        assert!(!crc_matches(&buf[..HEADER_LEN], &buf[HEADER_LEN..]));
    }

    #[test]
    fn zero_magic_is_end_of_log_and_garbage_is_rejected() {
        assert_eq!(decode_slot(&[0u8; HEADER_LEN]), Ok(Slot::Empty));
        assert!(decode_slot(&[0xAB; HEADER_LEN]).is_err());
        let m = encode_end_marker(100);
        assert_eq!(decode_slot(&m), Ok(Slot::EndMarker { len: 100 }));
    }

    #[test]
    fn roll_rule_always_leaves_room_for_the_marker() {
        assert_eq!(place(0, 92, 100), Ok(0));
        assert_eq!(place(0, 93, 100), Err(100));
        assert_eq!(place(150, 40, 100), Ok(150));
        assert_eq!(place(150, 43, 100), Err(200));
        assert_eq!(max_payload(100), 100 - 56);
    }

    #[test]
    fn file_names_are_twenty_digits() {
        assert_eq!(file_name(1073741824), "00000000001073741824");
        assert_eq!(
            parse_file_name(Path::new("/x/00000000001073741824")),
            Some(1073741824)
        );
        assert_eq!(parse_file_name(Path::new("/x/0000000000107374182")), None);
        assert_eq!(parse_file_name(Path::new("/x/abc")), None);
    }

    #[test]
    fn index_unit_round_trips_and_zero_is_absent() {
        let u = IndexUnit {
            pos: 1 << 40,
            record_len: 1072,
            kind: EntryKind::Messages,
            term: 3,
            leader: 1,
        };
        assert_eq!(IndexUnit::decode(&u.encode()), Some(u));
        assert_eq!(IndexUnit::decode(&[0u8; INDEX_UNIT_LEN]), None);
    }
}
