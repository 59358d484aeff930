//! Versioned bincode payloads: the one place that turns Raft-layer values into bytes.
//!
//! Bytes written by this module sit either inside a commitlog record payload (membership,
//! commands, the vote) or inside a peer-transport frame body. Stored payloads start with a
//! format version byte so the layout can evolve; transport bodies are versioned by the
//! handshake instead. The record framing itself belongs to `raftmq-store`.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version byte of every stored payload this crate writes.
pub const PAYLOAD_VERSION: u8 = 1;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty payload, expected a version byte")]
    Empty,
    #[error("unsupported payload version {got}, expected {expected}")]
    Version { got: u8, expected: u8 },
    #[error("invalid payload: {0}")]
    Invalid(&'static str),
    #[error("bincode: {0}")]
    Bincode(#[from] bincode::Error),
}

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_big_endian()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// Serialize `value` without a version byte (transport bodies).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(options(u64::MAX).serialize(value)?)
}

/// Serialize `value` into `out` without a version byte.
pub fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), CodecError> {
    options(u64::MAX).serialize_into(out, value)?;
    Ok(())
}

/// Deserialize bytes written by [`encode`]; refuses to allocate more than `limit` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: u64) -> Result<T, CodecError> {
    Ok(options(limit).deserialize(bytes)?)
}

/// Serialize `value` behind [`PAYLOAD_VERSION`] (stored payloads).
pub fn encode_versioned<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![PAYLOAD_VERSION];
    encode_into(&mut out, value)?;
    Ok(out)
}

/// Deserialize bytes written by [`encode_versioned`].
pub fn decode_versioned<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != PAYLOAD_VERSION {
        return Err(CodecError::Version {
            got: version,
            expected: PAYLOAD_VERSION,
        });
    }
    // A stored payload can never legitimately decode into more than its own size times a
    // small factor; the limit only stops a corrupt length prefix from allocating gigabytes.
    decode(body, (body.len() as u64).saturating_mul(8).max(4096))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_roundtrip_and_rejections() {
        let v: (u64, String) = (7, "x".into());
        let b = encode_versioned(&v).unwrap();
        assert_eq!(b[0], PAYLOAD_VERSION);
        assert_eq!(decode_versioned::<(u64, String)>(&b).unwrap(), v);

        assert!(matches!(
            decode_versioned::<u64>(&[]),
            Err(CodecError::Empty)
        ));
        let mut bad = b.clone();
        bad[0] = 9;
        assert!(matches!(
            decode_versioned::<(u64, String)>(&bad),
            Err(CodecError::Version { got: 9, .. })
        ));
        let mut trailing = b.clone();
        trailing.push(0);
        assert!(decode_versioned::<(u64, String)>(&trailing).is_err());
    }

    #[test]
    fn decode_refuses_huge_length_prefix() {
        // A Vec<u8> whose length prefix claims u64::MAX bytes.
        let bytes = u64::MAX.to_be_bytes();
        assert!(decode::<Vec<u8>>(&bytes, 1 << 20).is_err());
    }
}
