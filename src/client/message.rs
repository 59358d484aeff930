//! Client-side messages: [`Message`] (what a producer sends), [`MessageExt`] (what a consumer
//! pulls back, with its broker-side fields) and the UNIQ_KEY generator ([`UniqIdGenerator`],
//! protocol.md §6.2).
//!
//! Wire facts (protocol.md §5.3): tags, keys and the unique id travel as properties
//! (`TAGS`, `KEYS` joined by a single space, `UNIQ_KEY`) in the `key 0x01 value 0x02` string.
//! Pulled bodies are stored-message records (§5.1) and are decoded with the store crate's
//! codec, never by a second decoder here.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use raftmq_store::message::{self as codec, property, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};

use super::error::{ClientError, ClientResult};

/// Property `WAIT`: the producer wants the broker to confirm the store (Java sets it on every
/// message by default).
pub const PROPERTY_WAIT: &str = property::WAIT;
/// Property `DELAY`: delay level 1..18.
pub const PROPERTY_DELAY: &str = property::DELAY;

/// Largest body the client accepts (Java `maxMessageSize`, 4 MiB).
pub const MAX_BODY_SIZE: usize = 4 * 1024 * 1024;
/// Largest encoded properties string (a signed 16-bit length on the wire).
pub const MAX_PROPERTIES_SIZE: usize = i16::MAX as usize;

/// A message to send: topic, body, user flag and properties (tags, keys, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Target topic.
    pub topic: String,
    /// Payload, sent as is (the client never compresses).
    pub body: Bytes,
    /// Opaque user flag, stored with the message.
    pub flag: i32,
    properties: BTreeMap<String, String>,
}

impl Message {
    /// A message with `WAIT=true`, as the Java client builds it.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        let mut properties = BTreeMap::new();
        properties.insert(PROPERTY_WAIT.to_owned(), "true".to_owned());
        Message {
            topic: topic.into(),
            body: body.into(),
            flag: 0,
            properties,
        }
    }

    /// Builder: sets the tag (`TAGS`).
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.set_property(property::TAGS, tags);
        self
    }

    /// Builder: sets the keys (`KEYS`, joined by single spaces).
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined = keys
            .into_iter()
            .map(|k| k.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        self.set_property(property::KEYS, joined);
        self
    }

    /// Builder: sets a user property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_property(key, value);
        self
    }

    /// Builder: sets the user flag.
    pub fn with_flag(mut self, flag: i32) -> Self {
        self.flag = flag;
        self
    }

    /// Sets a property; an empty value removes it (empty values do not survive the wire).
    pub fn set_property(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        if value.is_empty() {
            self.properties.remove(&key);
        } else {
            self.properties.insert(key, value);
        }
    }

    /// Removes a property.
    pub fn remove_property(&mut self, key: &str) -> Option<String> {
        self.properties.remove(key)
    }

    /// A property's value.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// All properties.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The tag, if any.
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }

    /// The keys, split on spaces.
    pub fn keys(&self) -> Vec<&str> {
        split_keys(self.property(property::KEYS))
    }

    /// The client-generated unique id, once set (the producer sets it before sending).
    pub fn uniq_key(&self) -> Option<&str> {
        self.property(property::UNIQ_KEY)
    }

    /// Sets the delay level (1..18; 0 removes it).
    pub fn set_delay_level(&mut self, level: i32) {
        if level > 0 {
            self.set_property(PROPERTY_DELAY, level.to_string());
        } else {
            self.properties.remove(PROPERTY_DELAY);
        }
    }

    /// Checks what the broker would reject, before anything is sent: topic name, body size,
    /// property characters and total property size.
    pub fn validate(&self) -> ClientResult<()> {
        let bad = |reason: String| ClientError::InvalidMessage {
            topic: self.topic.clone(),
            reason,
        };
        codec::validate_topic_name(&self.topic).map_err(|e| bad(e.to_string()))?;
        if self.topic.len() > codec::MAX_TOPIC_LEN_V1 {
            return Err(bad(format!(
                "topic is {} bytes, at most {} allowed",
                self.topic.len(),
                codec::MAX_TOPIC_LEN_V1
            )));
        }
        if self.body.is_empty() {
            return Err(bad("body is empty".to_owned()));
        }
        if self.body.len() > MAX_BODY_SIZE {
            return Err(bad(format!(
                "body of {} bytes exceeds {MAX_BODY_SIZE}",
                self.body.len()
            )));
        }
        let separator = |s: &str| {
            s.bytes()
                .any(|b| b == NAME_VALUE_SEPARATOR || b == PROPERTY_SEPARATOR)
        };
        if let Some((k, _)) = self
            .properties
            .iter()
            .find(|(k, v)| k.is_empty() || separator(k) || separator(v))
        {
            return Err(bad(format!(
                "property {k:?} is empty or contains a 0x01/0x02 separator"
            )));
        }
        let size = self.encoded_properties().len();
        if size > MAX_PROPERTIES_SIZE {
            return Err(bad(format!(
                "properties of {size} bytes exceed {MAX_PROPERTIES_SIZE}"
            )));
        }
        Ok(())
    }

    /// The properties string as sent (`key 0x01 value 0x02` per pair).
    pub fn encoded_properties(&self) -> String {
        let pairs: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        codec::encode_properties(&pairs)
    }
}

fn split_keys(raw: Option<&str>) -> Vec<&str> {
    raw.map(|k| k.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// A pulled message with the fields the broker stored (protocol.md §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    pub topic: String,
    pub queue_id: i32,
    /// Logical offset in its queue.
    pub queue_offset: i64,
    /// Commitlog (physical) offset.
    pub commit_log_offset: i64,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body_crc: i32,
    /// Stored bytes: still compressed if `sys_flag` has the compressed bit (0x1); this client
    /// never compresses and does not inflate.
    pub body: Bytes,
    /// Properties in stored order.
    pub properties: Vec<(String, String)>,
    /// Broker-derived id: store host + commitlog offset (§6.1).
    pub offset_msg_id: String,
}

impl MessageExt {
    /// Decodes a pull body (concatenated stored messages) with the store codec. `addr` names
    /// the broker in errors.
    pub fn decode_batch(body: &[u8], addr: &str) -> ClientResult<Vec<MessageExt>> {
        let mut out = Vec::new();
        for item in codec::iter_batch(body) {
            let (_, view) = item.map_err(|e| ClientError::BadResponse {
                addr: addr.to_owned(),
                reason: format!("pulled messages: {e}"),
            })?;
            out.push(MessageExt {
                topic: view.topic().to_owned(),
                queue_id: view.queue_id(),
                queue_offset: view.queue_offset(),
                commit_log_offset: view.physical_offset(),
                flag: view.flag(),
                sys_flag: view.sys_flag(),
                born_timestamp: view.born_timestamp(),
                born_host: view.born_host(),
                store_timestamp: view.store_timestamp(),
                store_host: view.store_host(),
                reconsume_times: view.reconsume_times(),
                prepared_transaction_offset: view.prepared_transaction_offset(),
                body_crc: view.body_crc(),
                body: Bytes::copy_from_slice(view.body()),
                properties: view
                    .properties()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                offset_msg_id: view.offset_msg_id(),
            });
        }
        Ok(out)
    }

    /// A property's value.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The tag, if any.
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }

    /// The keys, split on spaces.
    pub fn keys(&self) -> Vec<&str> {
        split_keys(self.property(property::KEYS))
    }

    /// The producer's unique id (`UNIQ_KEY`), if the producer set one.
    pub fn uniq_key(&self) -> Option<&str> {
        self.property(property::UNIQ_KEY)
    }

    /// The id users see: the UNIQ_KEY, else the offsetMsgId (as the Java client does).
    pub fn msg_id(&self) -> &str {
        self.uniq_key().unwrap_or(&self.offset_msg_id)
    }

    /// Whether the stored body is compressed.
    pub fn is_compressed(&self) -> bool {
        self.sys_flag & codec::sysflag::COMPRESSED != 0
    }
}

/// Generates UNIQ_KEYs in the Java `MessageClientIDSetter` layout (protocol.md §6.2):
/// IPv4 (4 bytes) + pid low 16 bits (2) + a per-generator random word (4, where Java puts
/// its class-loader hash) + milliseconds since the start of the current month (4) + a
/// wrapping counter (2), as 32 upper-case hex characters.
///
/// The month start is taken in UTC (Java uses local time); the id is opaque to brokers, and
/// the random word keeps two generators in one process apart.
#[derive(Debug)]
pub struct UniqIdGenerator {
    /// Hex of ip + pid + random word: 20 characters.
    prefix: String,
    /// (start of the current month, start of the next), Unix ms.
    month: Mutex<(i64, i64)>,
    counter: AtomicU16,
}

impl UniqIdGenerator {
    /// A generator whose ids carry `ip` (use the client's address; loopback is fine).
    pub fn new(ip: Ipv4Addr) -> Self {
        let mut fixed = Vec::with_capacity(10);
        fixed.extend_from_slice(&ip.octets());
        fixed.extend_from_slice(&(std::process::id() as u16).to_be_bytes());
        fixed.extend_from_slice(&random_u32().to_be_bytes());
        UniqIdGenerator {
            prefix: hex_upper(&fixed),
            month: Mutex::new((0, 0)),
            counter: AtomicU16::new(0),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        let now = unix_millis();
        let start = {
            let mut m = self.month.lock().unwrap_or_else(|p| p.into_inner());
            if now < m.0 || now >= m.1 {
                *m = month_bounds_utc(now);
            }
            m.0
        };
        let elapsed = (now - start) as i32;
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut tail = Vec::with_capacity(6);
        tail.extend_from_slice(&elapsed.to_be_bytes());
        tail.extend_from_slice(&counter.to_be_bytes());
        let mut id = String::with_capacity(32);
        id.push_str(&self.prefix);
        id.push_str(&hex_upper(&tail));
        id
    }
}

impl Default for UniqIdGenerator {
    fn default() -> Self {
        Self::new(Ipv4Addr::LOCALHOST)
    }
}

/// The IPv4 address to put in ids; loopback when `ip` is not IPv4.
pub(crate) fn ipv4_of(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => v6.to_ipv4().unwrap_or(Ipv4Addr::LOCALHOST),
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xF) as usize] as char);
    }
    s
}

/// A random word from the std hasher's per-process random keys, mixed with the time.
fn random_u32() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(unix_millis());
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// Wall clock in Unix milliseconds (0 if the clock is before 1970).
pub(crate) fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix ms of the first instant of the UTC month containing `now_ms`, and of the next month.
fn month_bounds_utc(now_ms: i64) -> (i64, i64) {
    const DAY_MS: i64 = 86_400_000;
    let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        days_from_civil(y, m, 1) * DAY_MS,
        days_from_civil(ny, nm, 1) * DAY_MS,
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month 1..=12, day 1..=31).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_store::message::StoredMessage;

    #[test]
    fn builder_sets_tags_keys_and_wait() {
        let m = Message::new("T", "hello")
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_property("color", "red");
        assert_eq!(m.tags(), Some("TagA"));
        assert_eq!(m.keys(), vec!["k1", "k2"]);
        assert_eq!(m.property(PROPERTY_WAIT), Some("true"));
        let props = m.encoded_properties();
        let parsed: Vec<_> = codec::parse_properties(&props).collect();
        assert!(parsed.contains(&("KEYS", "k1 k2")));
        assert!(props.ends_with('\u{2}'));
        m.validate().unwrap();
    }

    #[test]
    fn validate_rejects_bad_topic_empty_body_and_separators() {
        assert!(Message::new("bad topic", "x").validate().is_err());
        assert!(Message::new("T", Bytes::new()).validate().is_err());
        assert!(Message::new("T", "x")
            .with_property("k", "a\u{1}b")
            .validate()
            .is_err());
        assert!(Message::new("T", vec![0u8; MAX_BODY_SIZE + 1])
            .validate()
            .is_err());
    }

    #[test]
    fn uniq_ids_are_32_upper_hex_and_distinct() {
        let g = UniqIdGenerator::new(Ipv4Addr::new(10, 0, 0, 9));
        let a = g.next_id();
        let b = g.next_id();
        assert_eq!(a.len(), 32);
        assert!(a.starts_with("0A000009"));
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
        assert_ne!(a, b);
        assert_eq!(a[..20], b[..20]);
    }

    #[test]
    fn month_bounds_match_known_dates() {
        // 2024-02-29T12:00:00Z -> [2024-02-01, 2024-03-01)
        let (s, e) = month_bounds_utc(1_709_208_000_000);
        assert_eq!(s, 1_706_745_600_000);
        assert_eq!(e, 1_709_251_200_000);
        // December rolls over to January of the next year.
        let (s, e) = month_bounds_utc(1_735_603_200_000); // 2024-12-31
        assert_eq!(s, 1_733_011_200_000); // 2024-12-01
        assert_eq!(e, 1_735_689_600_000); // 2025-01-01
    }

    #[test]
    fn decode_batch_reads_stored_records() {
        let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let rec = |off: i64, tag: &str| {
            StoredMessage {
                topic: "T".into(),
                queue_id: 1,
                flag: 7,
                queue_offset: off,
                physical_offset: 100 * off,
                sys_flag: 0,
                born_timestamp: 1,
                born_host: host,
                store_timestamp: 2,
                store_host: host,
                reconsume_times: 0,
                prepared_transaction_offset: 0,
                body: format!("body{off}").into_bytes(),
                properties: vec![
                    ("TAGS".into(), tag.into()),
                    ("UNIQ_KEY".into(), format!("U{off}")),
                ],
            }
            .encode()
            .unwrap()
        };
        let mut body = rec(0, "A");
        body.extend(rec(1, "B"));
        let msgs = MessageExt::decode_batch(&body, "b").unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].tags(), Some("B"));
        assert_eq!(msgs[1].msg_id(), "U1");
        assert_eq!(&msgs[0].body[..], b"body0");
        assert_eq!(msgs[1].commit_log_offset, 100);
        assert!(MessageExt::decode_batch(&body[..body.len() - 3], "b").is_err());
    }
}
