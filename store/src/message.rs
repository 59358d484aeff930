//! RocketMQ stored-message codec (the record layout a consumer receives in a pull body).
//!
//! Owns the byte layout of one stored message (big-endian, protocol.md §5.1), the
//! properties string, sysflag bits, batch iteration and the in-place patches the write path
//! needs (physical offset, queue offset, store timestamp). It knows nothing of the Raft
//! record header around a batch, of files, or of sockets.

use thiserror::Error;

/// Offset of TOTALSIZE (i32) inside a stored message.
pub const TOTAL_SIZE_OFFSET: usize = 0;
/// Offset of MAGICCODE (i32).
pub const MAGIC_OFFSET: usize = 4;
/// Offset of PHYSICALOFFSET (i64): the commitlog position of the message itself.
pub const PHYSICAL_OFFSET_OFFSET: usize = 28;

/// MAGICCODE of a V1 record (1-byte signed topic length); what 4.x clients can read.
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// MAGICCODE of a V2 record (2-byte topic length, RocketMQ 5.x, topics > 127 bytes).
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;

/// Smallest possible stored message: IPv4 hosts, V1 magic, empty body, topic and properties.
pub const MIN_STORED_SIZE: usize = 91;

/// Why a stored message (or batch of them) could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The bytes do not form a valid stored message at `offset` (within the buffer given).
    #[error("malformed stored message at buffer offset {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    /// The encoded message exceeds the configured `maxMessageSize`.
    #[error("message of {size} bytes exceeds maxMessageSize {max}")]
    TooLarge { size: usize, max: usize },
}

impl MessageError {
    fn malformed(offset: usize, reason: impl Into<String>) -> Self {
        MessageError::Malformed {
            offset,
            reason: reason.into(),
        }
    }
}

/// Result type of the codec.
pub type MessageResult<T> = std::result::Result<T, MessageError>;

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

/// Checks the framing of the message starting at `off` and returns its TOTALSIZE.
///
/// Only the frame is checked here (size in range, known magic); the full field walk is
/// [`MessageView::parse`].
fn frame_at(buf: &[u8], off: usize) -> MessageResult<usize> {
    let size = read_i32(buf, off + TOTAL_SIZE_OFFSET)
        .ok_or_else(|| MessageError::malformed(off, "truncated TOTALSIZE"))?;
    if size <= 0 {
        return Err(MessageError::malformed(
            off,
            format!("non-positive TOTALSIZE {size}"),
        ));
    }
    let size = size as usize;
    if size < MIN_STORED_SIZE {
        return Err(MessageError::malformed(
            off,
            format!("TOTALSIZE {size} below minimum {MIN_STORED_SIZE}"),
        ));
    }
    if buf.len() - off < size {
        return Err(MessageError::malformed(
            off,
            format!(
                "TOTALSIZE {size} runs past the end of the buffer ({} bytes left)",
                buf.len() - off
            ),
        ));
    }
    let magic = read_i32(buf, off + MAGIC_OFFSET)
        .ok_or_else(|| MessageError::malformed(off, "truncated MAGICCODE"))?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(MessageError::malformed(
            off,
            format!("unknown MAGICCODE {magic:#010x}"),
        ));
    }
    Ok(size)
}

/// Writes each message's PHYSICALOFFSET (offset 28, i64 BE) in a batch of concatenated stored
/// messages: `base + offset of that message within buf`.
///
/// The commitlog calls this before it computes its record CRC, with `base` = the global
/// position of the first payload byte, so every replica stores identical bytes and the
/// offset a consumer sees is the message's real place in the log. Returns how many messages
/// were patched (0 for an empty buffer). On error nothing past the first bad message is
/// patched, and the caller must reject the whole batch.
pub fn patch_physical_offsets(buf: &mut [u8], base: u64) -> MessageResult<usize> {
    // Validate the whole frame chain first so a malformed batch is left untouched.
    let mut starts = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        let size = frame_at(buf, off)?;
        starts.push(off);
        off += size;
    }
    for &start in &starts {
        let phys = base
            .checked_add(start as u64)
            .filter(|p| *p <= i64::MAX as u64)
            .ok_or_else(|| MessageError::malformed(start, "physical offset overflows i64"))?;
        buf[start + PHYSICAL_OFFSET_OFFSET..start + PHYSICAL_OFFSET_OFFSET + 8]
            .copy_from_slice(&(phys as i64).to_be_bytes());
    }
    Ok(starts.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A minimal valid V1 frame of `size` bytes (only the fields the frame check reads).
    fn frame(size: usize) -> Vec<u8> {
        let mut v = vec![0u8; size];
        v[0..4].copy_from_slice(&(size as i32).to_be_bytes());
        v[4..8].copy_from_slice(&MAGIC_V1.to_be_bytes());
        v
    }

    fn phys(buf: &[u8], at: usize) -> i64 {
        i64::from_be_bytes(buf[at + 28..at + 36].try_into().unwrap())
    }

    #[test]
    fn patch_writes_base_plus_offset_for_each_message() {
        let mut buf = frame(100);
        buf.extend(frame(120));
        buf.extend(frame(91));
        let n = patch_physical_offsets(&mut buf, 1_000).unwrap();
        assert_eq!(n, 3);
        assert_eq!(phys(&buf, 0), 1_000);
        assert_eq!(phys(&buf, 100), 1_100);
        assert_eq!(phys(&buf, 220), 1_220);
    }

    #[test]
    fn patch_of_empty_buffer_patches_nothing() {
        assert_eq!(patch_physical_offsets(&mut [], 7).unwrap(), 0);
    }

    #[test]
    fn patch_rejects_zero_size_short_tail_and_bad_magic_without_touching_bytes() {
        let mut zero = frame(100);
        zero.extend([0u8; 8]);
        let before = zero.clone();
        assert!(matches!(
            patch_physical_offsets(&mut zero, 5),
            Err(MessageError::Malformed { offset: 100, .. })
        ));
        assert_eq!(zero, before, "a rejected batch is left unpatched");

        let mut short = frame(100);
        short.truncate(99);
        assert!(patch_physical_offsets(&mut short, 0).is_err());

        let mut tail = frame(100);
        tail.extend([0u8, 0]);
        assert!(patch_physical_offsets(&mut tail, 0).is_err());

        let mut bad_magic = frame(100);
        bad_magic[4..8].copy_from_slice(&0i32.to_be_bytes());
        assert!(patch_physical_offsets(&mut bad_magic, 0).is_err());

        let mut tiny = frame(91);
        tiny[0..4].copy_from_slice(&40i32.to_be_bytes());
        assert!(patch_physical_offsets(&mut tiny, 0).is_err());
    }

    #[test]
    fn patch_rejects_offsets_past_i64() {
        let mut buf = frame(100);
        assert!(patch_physical_offsets(&mut buf, u64::MAX - 10).is_err());
    }
}
