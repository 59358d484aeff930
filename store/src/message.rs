//! RocketMQ stored-message codec (the record layout a consumer receives in a pull body).
//!
//! Owns the byte layout of one stored message (big-endian, as RocketMQ's `MessageDecoder`
//! reads it), the properties string, sysflag bits, batch iteration, the in-place patches the
//! write path needs (physical offset, queue offset, store timestamp, store host), the tag
//! hash code and the offsetMsgId. It knows nothing of the Raft record header around a batch,
//! of files, or of sockets.
//!
//! Main types: [`StoredMessage`] (owned, for encoding) and [`MessageView`] (borrowed decode
//! over the stored bytes, used by the dispatcher so applying a batch copies nothing).
//!
//! Layout (IPv4 hosts; an IPv6 host is 12 bytes longer and shifts every later field):
//!
//! ```text
//!  0 TOTALSIZE i32 | 4 MAGICCODE i32 | 8 BODYCRC i32 | 12 QUEUEID i32 | 16 FLAG i32
//! 20 QUEUEOFFSET i64 | 28 PHYSICALOFFSET i64 | 36 SYSFLAG i32 | 40 BORNTIMESTAMP i64
//! 48 BORNHOST (4|16 addr + i32 port) | 56 STORETIMESTAMP i64 | 64 STOREHOST (4|16 + i32)
//! 72 RECONSUMETIMES i32 | 76 PREPARED TX OFFSET i64 | 84 BODYLEN i32 + body
//! TOPICLEN (i8 for V1, i16 for V2) + topic | PROPLEN i16 + properties
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// Offset of TOTALSIZE (i32) inside a stored message.
pub const TOTAL_SIZE_OFFSET: usize = 0;
/// Offset of MAGICCODE (i32).
pub const MAGIC_OFFSET: usize = 4;
/// Offset of BODYCRC (i32).
pub const BODY_CRC_OFFSET: usize = 8;
/// Offset of QUEUEID (i32).
pub const QUEUE_ID_OFFSET: usize = 12;
/// Offset of FLAG (i32).
pub const FLAG_OFFSET: usize = 16;
/// Offset of QUEUEOFFSET (i64).
pub const QUEUE_OFFSET_OFFSET: usize = 20;
/// Offset of PHYSICALOFFSET (i64): the commitlog position of the message itself.
pub const PHYSICAL_OFFSET_OFFSET: usize = 28;
/// Offset of SYSFLAG (i32).
pub const SYS_FLAG_OFFSET: usize = 36;
/// Offset of BORNTIMESTAMP (i64).
pub const BORN_TIMESTAMP_OFFSET: usize = 40;
/// Offset of BORNHOST; every later field moves by 12 bytes when it is IPv6.
pub const BORN_HOST_OFFSET: usize = 48;

/// MAGICCODE of a V1 record (1-byte signed topic length); what 4.x clients can read.
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// MAGICCODE of a V2 record (2-byte topic length, RocketMQ 5.x, topics > 127 bytes).
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;

/// Smallest possible stored message: IPv4 hosts, V1 magic, empty body, topic and properties.
pub const MIN_STORED_SIZE: usize = 91;
/// Broker `maxMessageSize` default (4 MiB), applied to the whole encoded record as in R4.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Longest topic a V1 record can carry (the length is one signed byte).
pub const MAX_TOPIC_LEN_V1: usize = 127;
/// Longest topic or properties string (the length is an i16).
pub const MAX_SHORT_LEN: usize = i16::MAX as usize;

/// Separates a property key from its value.
pub const NAME_VALUE_SEPARATOR: u8 = 0x01;
/// Terminates every property pair, including the last.
pub const PROPERTY_SEPARATOR: u8 = 0x02;

/// Well-known property keys (RocketMQ `MessageConst`).
pub mod property {
    pub const TAGS: &str = "TAGS";
    pub const KEYS: &str = "KEYS";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const WAIT: &str = "WAIT";
    pub const DELAY: &str = "DELAY";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const PGROUP: &str = "PGROUP";
    pub const CLUSTER: &str = "CLUSTER";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    pub const TRANSACTION_ID: &str = "__transactionId__";
}

/// MessageSysFlag bits (identical in RocketMQ 4.9 and 5.x).
pub mod sysflag {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x2;
    pub const TRANSACTION_MASK: i32 = 0xC;
    pub const TRANSACTION_NOT: i32 = 0x0;
    pub const TRANSACTION_PREPARED: i32 = 0x4;
    pub const TRANSACTION_COMMIT: i32 = 0x8;
    pub const TRANSACTION_ROLLBACK: i32 = 0xC;
    pub const BORNHOST_V6: i32 = 0x10;
    pub const STOREHOST_V6: i32 = 0x20;
    pub const NEED_UNWRAP: i32 = 0x40;
    pub const INNER_BATCH: i32 = 0x80;
    pub const COMPRESSION_TYPE_MASK: i32 = 0x700;
}

/// Transaction type carried in SYSFLAG bits 2-3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionType {
    /// Ordinary message.
    Not,
    /// Half message: stored, not visible to consumers.
    Prepared,
    /// Commit record of a half message: dispatched to its queue.
    Commit,
    /// Rollback record: neither dispatched nor indexed.
    Rollback,
}

impl TransactionType {
    /// Decodes the transaction bits of a SYSFLAG value.
    pub fn from_sys_flag(sys_flag: i32) -> Self {
        match sys_flag & sysflag::TRANSACTION_MASK {
            sysflag::TRANSACTION_PREPARED => TransactionType::Prepared,
            sysflag::TRANSACTION_COMMIT => TransactionType::Commit,
            sysflag::TRANSACTION_ROLLBACK => TransactionType::Rollback,
            _ => TransactionType::Not,
        }
    }

    /// Only NOT and COMMIT records get consumequeue units (RocketMQ's dispatch rule).
    pub fn is_consumable(self) -> bool {
        matches!(self, TransactionType::Not | TransactionType::Commit)
    }
}

/// Why a stored message (or batch of them) could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The bytes do not form a valid stored message at `offset` (within the buffer given).
    #[error("malformed stored message at buffer offset {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    /// The message cannot be encoded (a field does not fit the layout).
    #[error("cannot encode stored message: {0}")]
    Invalid(String),
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

impl From<MessageError> for crate::error::StoreError {
    fn from(e: MessageError) -> Self {
        match e {
            MessageError::TooLarge { size, max } => crate::error::StoreError::MessageTooLarge {
                size: size as u64,
                max: max as u64,
            },
            other => crate::error::StoreError::Codec(other.to_string()),
        }
    }
}

/// Result type of the codec.
pub type MessageResult<T> = std::result::Result<T, MessageError>;

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

fn read_i64(buf: &[u8], at: usize) -> Option<i64> {
    let bytes = buf.get(at..at.checked_add(8)?)?;
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes(bytes.try_into().ok()?))
}

/// BODYCRC: CRC-32 (IEEE, as `java.util.zip.CRC32`) masked to a non-negative i32.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

/// Java `String.hashCode()` over UTF-16 code units, sign-extended to i64: the consumequeue
/// tagsCode of a tag. An empty tag hashes to 0, the code of "no tag".
pub fn tag_hash_code(tag: &str) -> i64 {
    java_string_hash(tag) as i64
}

/// Java `String.hashCode()` (i32 wrap-around over UTF-16 code units).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

fn push_hex_upper(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    }
}

fn host_bytes(addr: &SocketAddr) -> Vec<u8> {
    let mut v = match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    v.extend_from_slice(&(addr.port() as i32).to_be_bytes());
    v
}

/// offsetMsgId (RocketMQ `MessageDecoder.createMessageId`): store host address + port (i32) + physical offset (i64),
/// upper-case hex; 32 chars for IPv4, 56 for IPv6.
pub fn offset_msg_id(store_host: SocketAddr, phys_offset: i64) -> String {
    let mut bytes = host_bytes(&store_host);
    bytes.extend_from_slice(&phys_offset.to_be_bytes());
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex_upper(&mut out, &bytes);
    out
}

/// Inverse of [`offset_msg_id`]: 32 hex chars = IPv4, 56 = IPv6 (either case accepted).
pub fn decode_offset_msg_id(id: &str) -> MessageResult<(SocketAddr, i64)> {
    let bad = |reason: &str| MessageError::Malformed {
        offset: 0,
        reason: format!("offsetMsgId {id:?}: {reason}"),
    };
    if !id.is_ascii() || (id.len() != 32 && id.len() != 56) {
        return Err(bad("expected 32 or 56 hex characters"));
    }
    let mut bytes = Vec::with_capacity(id.len() / 2);
    for pair in id.as_bytes().chunks(2) {
        let s = std::str::from_utf8(pair).map_err(|_| bad("not hex"))?;
        bytes.push(u8::from_str_radix(s, 16).map_err(|_| bad("not hex"))?);
    }
    let ip_len = if bytes.len() == 16 { 4 } else { 16 };
    let host = decode_host(&bytes, 0, ip_len == 16).ok_or_else(|| bad("bad host"))?;
    let offset = read_i64(&bytes, ip_len + 4).ok_or_else(|| bad("short"))?;
    Ok((host, offset))
}

/// Host field at `at`: 4- or 16-byte address then an i32 port. `None` when short or the
/// port is out of range.
fn decode_host(buf: &[u8], at: usize, v6: bool) -> Option<SocketAddr> {
    let ip_len = if v6 { 16 } else { 4 };
    let addr = buf.get(at..at + ip_len)?;
    let port = read_i32(buf, at + ip_len)?;
    let port = u16::try_from(port).ok()?;
    let ip = if v6 {
        let octets: [u8; 16] = addr.try_into().ok()?;
        IpAddr::V6(Ipv6Addr::from(octets))
    } else {
        let octets: [u8; 4] = addr.try_into().ok()?;
        IpAddr::V4(Ipv4Addr::from(octets))
    };
    Some(SocketAddr::new(ip, port))
}

/// Encodes properties as `key 0x01 value 0x02` for each pair (every pair terminated).
pub fn encode_properties<K: AsRef<str>, V: AsRef<str>>(props: &[(K, V)]) -> String {
    let len = props
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = String::with_capacity(len);
    for (k, v) in props {
        out.push_str(k.as_ref());
        out.push(NAME_VALUE_SEPARATOR as char);
        out.push_str(v.as_ref());
        out.push(PROPERTY_SEPARATOR as char);
    }
    out
}

/// Iterates the pairs of a properties string with Java's parser rules: split on 0x02, the
/// first 0x01 of a segment separates key and value, segments with an empty key or value are
/// dropped.
pub fn parse_properties(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    Properties { rest: Some(raw) }
}

/// The iterator of [`parse_properties`]. It searches the two separator bytes directly: both
/// are ASCII, so every cut lies on a char boundary (a `char` pattern would compare each
/// candidate through `memcmp`, which showed in profiles of the dispatch path).
struct Properties<'a> {
    /// What is left to split; `None` once the last segment was taken.
    rest: Option<&'a str>,
}

impl<'a> Iterator for Properties<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest?;
            let seg = match rest.bytes().position(|b| b == PROPERTY_SEPARATOR) {
                Some(i) => {
                    self.rest = Some(&rest[i + 1..]);
                    &rest[..i]
                }
                None => {
                    self.rest = None;
                    rest
                }
            };
            if let Some(j) = seg.bytes().position(|b| b == NAME_VALUE_SEPARATOR) {
                let (k, v) = (&seg[..j], &seg[j + 1..]);
                if !k.is_empty() && !v.is_empty() {
                    return Some((k, v));
                }
            }
        }
    }
}

/// The properties the dispatcher needs, each the first value of its key as
/// [`MessageView::property`] finds it, taken in one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexProperties<'a> {
    pub tags: Option<&'a str>,
    pub keys: Option<&'a str>,
    pub uniq_key: Option<&'a str>,
}

impl<'a> IndexProperties<'a> {
    /// tagsCode for the consumequeue: 0 without tags (as [`MessageView::tags_code`]).
    pub fn tags_code(&self) -> i64 {
        self.tags.map(tag_hash_code).unwrap_or(0)
    }
    /// Space-separated KEYS tokens, empty ones skipped (as [`MessageView::keys`]).
    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.keys.unwrap_or("").split(' ').filter(|k| !k.is_empty())
    }
}

/// An owned stored message, for building records (proposer, tests, tools).
///
/// `encode` derives TOTALSIZE, BODYCRC, the IPv6 sysflag bits (from the host address
/// families) and the magic (V1 when the topic fits in 127 bytes, V2 otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Vec<u8>,
    /// Properties in encoding order.
    pub properties: Vec<(String, String)>,
}

impl StoredMessage {
    /// First value of property `key`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Encoded length of this message, without the size limit check.
    pub fn encoded_len(&self) -> usize {
        let props = encode_properties(&self.properties).len();
        let topic_len_width = if self.topic.len() <= MAX_TOPIC_LEN_V1 {
            1
        } else {
            2
        };
        84 + 4
            + self.body.len()
            + topic_len_width
            + self.topic.len()
            + 2
            + props
            + if self.born_host.is_ipv6() { 12 } else { 0 }
            + if self.store_host.is_ipv6() { 12 } else { 0 }
    }

    /// Encodes with the default `maxMessageSize`.
    pub fn encode(&self) -> MessageResult<Vec<u8>> {
        self.encode_with_limit(DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// Encodes, rejecting a record larger than `max_size` bytes (`maxMessageSize`).
    pub fn encode_with_limit(&self, max_size: usize) -> MessageResult<Vec<u8>> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out, max_size)?;
        Ok(out)
    }

    /// Appends the encoded record to `out` (building a batch without extra copies); returns
    /// its length. On error `out` is unchanged.
    pub fn encode_into(&self, out: &mut Vec<u8>, max_size: usize) -> MessageResult<usize> {
        let props = encode_properties(&self.properties);
        if props.len() > MAX_SHORT_LEN {
            return Err(MessageError::Invalid(format!(
                "properties of {} bytes exceed {MAX_SHORT_LEN}",
                props.len()
            )));
        }
        if self.topic.is_empty() || self.topic.len() > MAX_SHORT_LEN {
            return Err(MessageError::Invalid(format!(
                "topic length {} outside 1..={MAX_SHORT_LEN}",
                self.topic.len()
            )));
        }
        let size = self.encoded_len();
        if size > max_size {
            return Err(MessageError::TooLarge {
                size,
                max: max_size,
            });
        }
        if size > i32::MAX as usize {
            return Err(MessageError::TooLarge {
                size,
                max: i32::MAX as usize,
            });
        }
        let v2 = self.topic.len() > MAX_TOPIC_LEN_V1;
        let mut sys_flag = self.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            sys_flag |= sysflag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            sys_flag |= sysflag::STOREHOST_V6;
        }

        let start = out.len();
        out.reserve(size);
        out.extend_from_slice(&(size as i32).to_be_bytes());
        out.extend_from_slice(&(if v2 { MAGIC_V2 } else { MAGIC_V1 }).to_be_bytes());
        out.extend_from_slice(&body_crc(&self.body).to_be_bytes());
        out.extend_from_slice(&self.queue_id.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        out.extend_from_slice(&self.queue_offset.to_be_bytes());
        out.extend_from_slice(&self.physical_offset.to_be_bytes());
        out.extend_from_slice(&sys_flag.to_be_bytes());
        out.extend_from_slice(&self.born_timestamp.to_be_bytes());
        out.extend_from_slice(&host_bytes(&self.born_host));
        out.extend_from_slice(&self.store_timestamp.to_be_bytes());
        out.extend_from_slice(&host_bytes(&self.store_host));
        out.extend_from_slice(&self.reconsume_times.to_be_bytes());
        out.extend_from_slice(&self.prepared_transaction_offset.to_be_bytes());
        out.extend_from_slice(&(self.body.len() as i32).to_be_bytes());
        out.extend_from_slice(&self.body);
        if v2 {
            out.extend_from_slice(&(self.topic.len() as i16).to_be_bytes());
        } else {
            out.push(self.topic.len() as u8);
        }
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(&(props.len() as i16).to_be_bytes());
        out.extend_from_slice(props.as_bytes());
        debug_assert_eq!(out.len() - start, size);
        Ok(size)
    }

    /// Decodes one message that must occupy all of `buf`.
    pub fn decode(buf: &[u8]) -> MessageResult<StoredMessage> {
        let view = MessageView::parse(buf)?;
        if view.total_size() != buf.len() {
            return Err(MessageError::malformed(
                view.total_size(),
                "trailing bytes after the message",
            ));
        }
        Ok(view.to_owned_message())
    }
}

/// A validated, borrowed stored message: fixed fields are read on demand, the variable
/// parts were located once by [`MessageView::parse`].
#[derive(Clone, Copy, Debug)]
pub struct MessageView<'a> {
    bytes: &'a [u8],
    host_extra: usize,
    body: (usize, usize),
    topic: &'a str,
    properties: &'a str,
}

impl<'a> MessageView<'a> {
    /// Parses and validates the message at the start of `buf` (trailing bytes are allowed:
    /// they belong to the next message of a batch). Checks magic, every length against
    /// TOTALSIZE, host ports and UTF-8 of topic and properties; the body CRC is checked
    /// separately by [`MessageView::body_crc_ok`].
    pub fn parse(buf: &'a [u8]) -> MessageResult<MessageView<'a>> {
        Self::parse_at(buf, 0)
    }

    /// As [`MessageView::parse`], reporting errors at `base + offset` for batch callers.
    fn parse_at(buf: &'a [u8], base: usize) -> MessageResult<MessageView<'a>> {
        let err = |off: usize, reason: String| MessageError::malformed(base + off, reason);
        let size = frame_size(buf).map_err(|r| err(0, r))?;
        let bytes = &buf[..size];
        let magic = read_i32(bytes, MAGIC_OFFSET).unwrap_or(0);
        let sys_flag = read_i32(bytes, SYS_FLAG_OFFSET).unwrap_or(0);
        let born_v6 = sys_flag & sysflag::BORNHOST_V6 != 0;
        let store_v6 = sys_flag & sysflag::STOREHOST_V6 != 0;
        let host_extra = if born_v6 { 12 } else { 0 } + if store_v6 { 12 } else { 0 };
        let short = |what: &str| err(0, format!("TOTALSIZE {size} too small for {what}"));

        if decode_host(bytes, BORN_HOST_OFFSET, born_v6).is_none() {
            return Err(err(BORN_HOST_OFFSET, "bad or truncated BORNHOST".into()));
        }
        let store_host_at = BORN_HOST_OFFSET + if born_v6 { 20 } else { 8 } + 8;
        if decode_host(bytes, store_host_at, store_v6).is_none() {
            return Err(err(store_host_at, "bad or truncated STOREHOST".into()));
        }
        let body_len_at = 84 + host_extra;
        let body_len = read_i32(bytes, body_len_at).ok_or_else(|| short("BODYLENGTH"))?;
        let body_len = usize::try_from(body_len)
            .map_err(|_| err(body_len_at, format!("negative BODYLENGTH {body_len}")))?;
        let body_start = body_len_at + 4;
        let body_end = body_start
            .checked_add(body_len)
            .filter(|e| *e <= size)
            .ok_or_else(|| short("BODY"))?;

        let (topic_len, topic_start) = if magic == MAGIC_V2 {
            let l = read_i16(bytes, body_end).ok_or_else(|| short("TOPICLENGTH"))?;
            (i64::from(l), body_end + 2)
        } else {
            let l = *bytes.get(body_end).ok_or_else(|| short("TOPICLENGTH"))? as i8;
            (i64::from(l), body_end + 1)
        };
        let topic_len = usize::try_from(topic_len)
            .map_err(|_| err(body_end, format!("negative TOPICLENGTH {topic_len}")))?;
        let topic_end = topic_start + topic_len;
        let topic_bytes = bytes
            .get(topic_start..topic_end)
            .ok_or_else(|| short("TOPIC"))?;
        let topic = std::str::from_utf8(topic_bytes)
            .map_err(|_| err(topic_start, "TOPIC is not UTF-8".into()))?;

        let props_len = read_i16(bytes, topic_end).ok_or_else(|| short("PROPERTIESLENGTH"))?;
        let props_len = usize::try_from(props_len)
            .map_err(|_| err(topic_end, format!("negative PROPERTIESLENGTH {props_len}")))?;
        let props_start = topic_end + 2;
        let props_end = props_start + props_len;
        if props_end != size {
            return Err(err(
                0,
                format!("fields end at {props_end} but TOTALSIZE is {size}"),
            ));
        }
        let properties = std::str::from_utf8(&bytes[props_start..props_end])
            .map_err(|_| err(props_start, "PROPERTIES are not UTF-8".into()))?;
        Ok(MessageView {
            bytes,
            host_extra,
            body: (body_start, body_end),
            topic,
            properties,
        })
    }

    fn i32_at(&self, at: usize) -> i32 {
        read_i32(self.bytes, at).expect("invariant: fixed fields were bounds-checked in parse")
    }

    fn i64_at(&self, at: usize) -> i64 {
        read_i64(self.bytes, at).expect("invariant: fixed fields were bounds-checked in parse")
    }

    fn born_host_len(&self) -> usize {
        if self.sys_flag() & sysflag::BORNHOST_V6 != 0 {
            20
        } else {
            8
        }
    }

    /// The whole record, as stored.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn total_size(&self) -> usize {
        self.bytes.len()
    }
    pub fn magic(&self) -> i32 {
        self.i32_at(MAGIC_OFFSET)
    }
    /// The BODYCRC field as stored.
    pub fn body_crc(&self) -> i32 {
        self.i32_at(BODY_CRC_OFFSET)
    }
    /// Whether BODYCRC matches the body.
    pub fn body_crc_ok(&self) -> bool {
        self.body_crc() == body_crc(self.body())
    }
    pub fn queue_id(&self) -> i32 {
        self.i32_at(QUEUE_ID_OFFSET)
    }
    pub fn flag(&self) -> i32 {
        self.i32_at(FLAG_OFFSET)
    }
    pub fn queue_offset(&self) -> i64 {
        self.i64_at(QUEUE_OFFSET_OFFSET)
    }
    pub fn physical_offset(&self) -> i64 {
        self.i64_at(PHYSICAL_OFFSET_OFFSET)
    }
    pub fn sys_flag(&self) -> i32 {
        self.i32_at(SYS_FLAG_OFFSET)
    }
    pub fn transaction_type(&self) -> TransactionType {
        TransactionType::from_sys_flag(self.sys_flag())
    }
    pub fn born_timestamp(&self) -> i64 {
        self.i64_at(BORN_TIMESTAMP_OFFSET)
    }
    pub fn born_host(&self) -> SocketAddr {
        decode_host(
            self.bytes,
            BORN_HOST_OFFSET,
            self.sys_flag() & sysflag::BORNHOST_V6 != 0,
        )
        .expect("invariant: BORNHOST was validated in parse")
    }
    pub fn store_timestamp(&self) -> i64 {
        self.i64_at(BORN_HOST_OFFSET + self.born_host_len())
    }
    pub fn store_host(&self) -> SocketAddr {
        decode_host(
            self.bytes,
            BORN_HOST_OFFSET + self.born_host_len() + 8,
            self.sys_flag() & sysflag::STOREHOST_V6 != 0,
        )
        .expect("invariant: STOREHOST was validated in parse")
    }
    pub fn reconsume_times(&self) -> i32 {
        self.i32_at(72 + self.host_extra)
    }
    pub fn prepared_transaction_offset(&self) -> i64 {
        self.i64_at(76 + self.host_extra)
    }
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.body.0..self.body.1]
    }
    pub fn topic(&self) -> &'a str {
        self.topic
    }
    /// The raw properties string (`k 0x01 v 0x02`...).
    pub fn properties_raw(&self) -> &'a str {
        self.properties
    }
    /// Properties with Java's parser rules.
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        parse_properties(self.properties)
    }
    /// First value of property `key`.
    pub fn property(&self, key: &str) -> Option<&'a str> {
        self.properties().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
    pub fn tags(&self) -> Option<&'a str> {
        self.property(property::TAGS)
    }
    /// TAGS, KEYS and UNIQ_KEY in one pass over the properties.
    pub fn index_properties(&self) -> IndexProperties<'a> {
        let mut out = IndexProperties::default();
        for (k, v) in self.properties() {
            let slot = match k {
                property::TAGS => &mut out.tags,
                property::KEYS => &mut out.keys,
                property::UNIQ_KEY => &mut out.uniq_key,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v);
            }
        }
        out
    }
    /// tagsCode for the consumequeue: 0 without tags.
    pub fn tags_code(&self) -> i64 {
        self.tags().map(tag_hash_code).unwrap_or(0)
    }
    /// Space-separated KEYS tokens (empty tokens skipped).
    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.property(property::KEYS)
            .unwrap_or("")
            .split(' ')
            .filter(|k| !k.is_empty())
    }
    pub fn uniq_key(&self) -> Option<&'a str> {
        self.property(property::UNIQ_KEY)
    }
    /// offsetMsgId of this message (store host + physical offset).
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(self.store_host(), self.physical_offset())
    }

    /// Copies into an owned [`StoredMessage`].
    pub fn to_owned_message(&self) -> StoredMessage {
        StoredMessage {
            topic: self.topic.to_owned(),
            queue_id: self.queue_id(),
            flag: self.flag(),
            queue_offset: self.queue_offset(),
            physical_offset: self.physical_offset(),
            sys_flag: self.sys_flag(),
            born_timestamp: self.born_timestamp(),
            born_host: self.born_host(),
            store_timestamp: self.store_timestamp(),
            store_host: self.store_host(),
            reconsume_times: self.reconsume_times(),
            prepared_transaction_offset: self.prepared_transaction_offset(),
            body: self.body().to_vec(),
            properties: self
                .properties()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

/// Frame check of the message at the start of `buf`: TOTALSIZE in range and a known magic.
/// Returns the size, or the reason it is bad.
fn frame_size(buf: &[u8]) -> std::result::Result<usize, String> {
    let size = read_i32(buf, TOTAL_SIZE_OFFSET).ok_or("truncated TOTALSIZE")?;
    if size <= 0 {
        return Err(format!("non-positive TOTALSIZE {size}"));
    }
    let size = size as usize;
    if size < MIN_STORED_SIZE {
        return Err(format!("TOTALSIZE {size} below minimum {MIN_STORED_SIZE}"));
    }
    if buf.len() < size {
        return Err(format!(
            "TOTALSIZE {size} runs past the end of the buffer ({} bytes left)",
            buf.len()
        ));
    }
    let magic = read_i32(buf, MAGIC_OFFSET).ok_or("truncated MAGICCODE")?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(format!("unknown MAGICCODE {magic:#010x}"));
    }
    Ok(size)
}

/// Iterator over the messages of a batch (concatenated stored messages). Yields
/// `(offset within the batch, view)`; stops after the first error, which it yields.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    off: usize,
    failed: bool,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = MessageResult<(usize, MessageView<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.off >= self.buf.len() {
            return None;
        }
        match MessageView::parse_at(&self.buf[self.off..], self.off) {
            Ok(view) => {
                let at = self.off;
                self.off += view.total_size();
                Some(Ok((at, view)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterates the messages of a batch with full validation.
pub fn iter_batch(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        off: 0,
        failed: false,
    }
}

/// `(start, len)` of every message in a batch, checking only the frames (size and magic).
/// Lets a writer patch fields of each message through `&mut buf[start..start + len]`.
pub fn batch_frames(buf: &[u8]) -> MessageResult<Vec<(usize, usize)>> {
    let mut frames = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        let size = frame_size(&buf[off..]).map_err(|r| MessageError::malformed(off, r))?;
        frames.push((off, size));
        off += size;
    }
    Ok(frames)
}

/// Writes each message's PHYSICALOFFSET (offset 28, i64 BE) in a batch of concatenated stored
/// messages: `base + offset of that message within buf`.
///
/// The commitlog calls this before it computes its record CRC, with `base` = the global
/// position of the first payload byte, so every replica stores identical bytes and the
/// offset a consumer sees is the message's real place in the log. Returns how many messages
/// were patched (0 for an empty buffer). A malformed batch is rejected before any byte is
/// written.
pub fn patch_physical_offsets(buf: &mut [u8], base: u64) -> MessageResult<usize> {
    let frames = batch_frames(buf)?;
    for &(start, _) in &frames {
        let phys = base
            .checked_add(start as u64)
            .filter(|p| *p <= i64::MAX as u64)
            .ok_or_else(|| MessageError::malformed(start, "physical offset overflows i64"))?;
        buf[start + PHYSICAL_OFFSET_OFFSET..start + PHYSICAL_OFFSET_OFFSET + 8]
            .copy_from_slice(&(phys as i64).to_be_bytes());
    }
    Ok(frames.len())
}

/// One message of a SEND_BATCH_MESSAGE body (RocketMQ `MessageDecoder.encodeMessages`
/// layout), borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireBatchItem<'a> {
    pub flag: i32,
    pub body: &'a [u8],
    /// The inner properties string (`k 0x01 v 0x02`...), as sent.
    pub properties: &'a str,
}

/// Splits a SEND_BATCH_MESSAGE body: per message `TOTALSIZE i32 | MAGICCODE i32 (0) |
/// BODYCRC i32 (0) | FLAG i32 | BODYLEN i32 + body | PROPLEN i16 + properties`. Every
/// length is checked against TOTALSIZE; the broker then stores each item as a full record
/// with the batch header's topic, queue and properties added.
pub fn decode_wire_batch(buf: &[u8]) -> MessageResult<Vec<WireBatchItem<'_>>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        let rest = &buf[off..];
        let bad = |reason: String| MessageError::malformed(off, reason);
        let total = read_i32(rest, 0).ok_or_else(|| bad("truncated TOTALSIZE".into()))?;
        let total = usize::try_from(total)
            .ok()
            .filter(|t| *t >= 22 && *t <= rest.len())
            .ok_or_else(|| bad(format!("TOTALSIZE {total} outside 22..={}", rest.len())))?;
        let item = &rest[..total];
        let flag = read_i32(item, 12).ok_or_else(|| bad("truncated FLAG".into()))?;
        let body_len = read_i32(item, 16).ok_or_else(|| bad("truncated BODYLEN".into()))?;
        let body_len = usize::try_from(body_len)
            .ok()
            .filter(|l| 20 + l + 2 <= total)
            .ok_or_else(|| bad(format!("BODYLEN {body_len} does not fit TOTALSIZE {total}")))?;
        let body = &item[20..20 + body_len];
        let props_at = 20 + body_len;
        let props_len = read_i16(item, props_at).ok_or_else(|| bad("truncated PROPLEN".into()))?;
        let props_len = usize::try_from(props_len)
            .ok()
            .filter(|l| props_at + 2 + l == total)
            .ok_or_else(|| {
                bad(format!(
                    "PROPLEN {props_len} does not end the message at TOTALSIZE {total}"
                ))
            })?;
        let properties = std::str::from_utf8(&item[props_at + 2..props_at + 2 + props_len])
            .map_err(|_| bad("properties are not UTF-8".into()))?;
        out.push(WireBatchItem {
            flag,
            body,
            properties,
        });
        off += total;
    }
    Ok(out)
}

/// Bytes needed from the start of a message to read its STORETIMESTAMP whatever its hosts.
pub const STORE_TIMESTAMP_PREFIX_LEN: usize = BORN_HOST_OFFSET + 20 + 8;

/// STORETIMESTAMP from the first bytes of a stored message (at least 64, or 76 when the
/// born host is IPv6): lets a time search read a short prefix instead of the whole message.
pub fn store_timestamp_from_prefix(prefix: &[u8]) -> MessageResult<i64> {
    let magic =
        read_i32(prefix, MAGIC_OFFSET).ok_or_else(|| MessageError::malformed(0, "short"))?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(MessageError::malformed(
            0,
            format!("unknown MAGICCODE {magic:#010x}"),
        ));
    }
    let sys_flag =
        read_i32(prefix, SYS_FLAG_OFFSET).ok_or_else(|| MessageError::malformed(0, "short"))?;
    let at = BORN_HOST_OFFSET
        + if sys_flag & sysflag::BORNHOST_V6 != 0 {
            20
        } else {
            8
        };
    read_i64(prefix, at).ok_or_else(|| MessageError::malformed(at, "short STORETIMESTAMP"))
}

/// Checks a topic name against RocketMQ's rule `^[%|a-zA-Z0-9_-]+$`, at most 255 bytes
/// (127 for V1 records). Topic names become directory names under `consumequeue/`, so
/// nothing else may reach the log.
pub fn validate_topic_name(topic: &str) -> MessageResult<()> {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-');
    if topic.is_empty() || topic.len() > 255 || !topic.bytes().all(ok_char) {
        return Err(MessageError::Invalid(format!(
            "topic {topic:?} must match ^[%|a-zA-Z0-9_-]+$ and be at most 255 bytes"
        )));
    }
    Ok(())
}

fn check_single(msg: &[u8]) -> MessageResult<i32> {
    let size = frame_size(msg).map_err(|r| MessageError::malformed(0, r))?;
    if size != msg.len() {
        return Err(MessageError::malformed(
            0,
            format!("slice of {} bytes holds a {size}-byte message", msg.len()),
        ));
    }
    read_i32(msg, SYS_FLAG_OFFSET).ok_or_else(|| MessageError::malformed(0, "short"))
}

/// Sets QUEUEOFFSET of the single message occupying `msg` (the proposer's sequencer).
pub fn set_queue_offset(msg: &mut [u8], queue_offset: i64) -> MessageResult<()> {
    check_single(msg)?;
    msg[QUEUE_OFFSET_OFFSET..QUEUE_OFFSET_OFFSET + 8].copy_from_slice(&queue_offset.to_be_bytes());
    Ok(())
}

/// Sets QUEUEID of the single message occupying `msg`.
pub fn set_queue_id(msg: &mut [u8], queue_id: i32) -> MessageResult<()> {
    check_single(msg)?;
    msg[QUEUE_ID_OFFSET..QUEUE_ID_OFFSET + 4].copy_from_slice(&queue_id.to_be_bytes());
    Ok(())
}

/// Sets STORETIMESTAMP of the single message occupying `msg` (its place depends on the
/// born host family).
pub fn set_store_timestamp(msg: &mut [u8], ts: i64) -> MessageResult<()> {
    let sys_flag = check_single(msg)?;
    let at = BORN_HOST_OFFSET
        + if sys_flag & sysflag::BORNHOST_V6 != 0 {
            20
        } else {
            8
        };
    msg[at..at + 8].copy_from_slice(&ts.to_be_bytes());
    Ok(())
}

/// Sets STOREHOST of the single message occupying `msg`. The address family must match the
/// one already encoded (changing it would change the record length).
pub fn set_store_host(msg: &mut [u8], host: SocketAddr) -> MessageResult<()> {
    let sys_flag = check_single(msg)?;
    let stored_v6 = sys_flag & sysflag::STOREHOST_V6 != 0;
    if stored_v6 != host.is_ipv6() {
        return Err(MessageError::Invalid(format!(
            "store host {host} has a different address family than the encoded one"
        )));
    }
    let at = BORN_HOST_OFFSET
        + if sys_flag & sysflag::BORNHOST_V6 != 0 {
            20
        } else {
            8
        }
        + 8;
    let bytes = host_bytes(&host);
    msg[at..at + bytes.len()].copy_from_slice(&bytes);
    Ok(())
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

#[cfg(test)]
mod property_parser_tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    /// Java's rules written the obvious way: the reference for the byte-level parser.
    fn reference(raw: &str) -> Vec<(&str, &str)> {
        raw.split(PROPERTY_SEPARATOR as char)
            .filter_map(|seg| {
                let (k, v) = seg.split_once(NAME_VALUE_SEPARATOR as char)?;
                (!k.is_empty() && !v.is_empty()).then_some((k, v))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn byte_level_parser_matches_the_reference(
            raw in "[\\x01\\x02a-cKEYSTAGUNIQ_ é\u{2603}]{0,40}"
        ) {
            let got: Vec<_> = parse_properties(&raw).collect();
            prop_assert_eq!(got, reference(&raw));
        }

        #[test]
        fn index_properties_are_the_first_values(
            pairs in proptest::collection::vec(
                (prop_oneof![Just("TAGS"), Just("KEYS"), Just("UNIQ_KEY"), Just("X"), Just("")],
                 "[a-c é]{0,4}"),
                0..8,
            )
        ) {
            let host: std::net::SocketAddr = "127.0.0.1:10911".parse().unwrap();
            let bytes = StoredMessage {
                topic: "T".into(),
                queue_id: 0,
                flag: 0,
                queue_offset: 0,
                physical_offset: 0,
                sys_flag: 0,
                born_timestamp: 1,
                born_host: host,
                store_timestamp: 0,
                store_host: host,
                reconsume_times: 0,
                prepared_transaction_offset: 0,
                body: b"b".to_vec(),
                properties: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
            .encode()
            .unwrap();
            let (_, view) = iter_batch(&bytes).next().unwrap().unwrap();
            let first = |key: &str| view.property(key);
            let got = view.index_properties();
            prop_assert_eq!(got.tags, first(property::TAGS));
            prop_assert_eq!(got.keys, first(property::KEYS));
            prop_assert_eq!(got.uniq_key, first(property::UNIQ_KEY));
        }
    }
}
