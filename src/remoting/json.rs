//! RocketMQ's JSON dialect for bodies (protocol.md §4.1).
//!
//! Java RocketMQ writes bodies with fastjson defaults, which are not always standard JSON:
//!
//! 1. non-string map keys are written **unquoted**: `{"brokerAddrs":{0:"10.0.0.1:10911"}}`;
//! 2. object-typed map keys are written as **the key object itself**:
//!    `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:11110}}`;
//! 3. enums by name, nulls omitted, fields alphabetical (harmless for any parser).
//!
//! **Reading** ([`from_slice`]): standard JSON goes through `serde_json` directly (the fast
//! path, taken by every hot-path body: heartbeats and lock bodies are standard JSON from all
//! clients). On a syntax error the input is re-read by a lenient parser that also accepts
//! unquoted keys (numbers or identifiers), object/array keys (turned into their compact JSON
//! text, so [`parse_object_key`] can decode them), single-quoted strings and trailing commas,
//! and the result is deserialized into the target type. Nesting is capped at
//! [`MAX_DEPTH`] so hostile input cannot exhaust the stack.
//!
//! **Writing** ([`to_vec`], [`object_key_map`], [`ObjectWriter`]): we emit
//! * numeric map keys **quoted** (`{"0":"ip:port"}`): Java (fastjson) and Go accept both forms,
//!   the C++/Node client needs quotes; this is also what a Java nameserver sends to clients of
//!   version ≥ 4.9.4;
//! * `MessageQueue`-keyed maps in the **fastjson object-key form**, because that is the only
//!   form the Java client parses (Go parses it too; C++ supports no form of these bodies);
//! * everything else as standard JSON with raw UTF-8.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Number, Value};

/// Deepest nesting of objects/arrays the lenient parser accepts.
pub const MAX_DEPTH: usize = 128;

/// A JSON body could not be parsed or does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON body at byte {offset}: {reason}")]
pub struct JsonError {
    /// Byte offset in the input where the problem was found (0 for shape errors).
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

impl JsonError {
    fn at(offset: usize, reason: impl Into<String>) -> Self {
        JsonError {
            offset,
            reason: reason.into(),
        }
    }
}

/// Parses a body in RocketMQ's JSON dialect into `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Ok(v),
        // Valid JSON of the wrong shape: the lenient parser would not change that.
        Err(e) if e.is_data() => Err(JsonError::at(0, e.to_string())),
        Err(_) => {
            let value = parse_lenient(bytes)?;
            serde_json::from_value(value).map_err(|e| JsonError::at(0, e.to_string()))
        }
    }
}

/// Parses a body in RocketMQ's JSON dialect into a [`Value`] (see the module doc for what is
/// accepted beyond standard JSON).
pub fn parse_lenient(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut p = Parser { s: bytes, pos: 0 };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != bytes.len() {
        return Err(JsonError::at(
            p.pos,
            "trailing characters after the JSON value",
        ));
    }
    Ok(v)
}

/// Decodes a map key that fastjson wrote as an object (e.g. a `MessageQueue`); the lenient
/// parser hands such keys over as their compact JSON text.
pub fn parse_object_key<T: DeserializeOwned>(key: &str) -> Result<T, JsonError> {
    serde_json::from_str(key).map_err(|e| JsonError::at(0, format!("map key {key:?}: {e}")))
}

/// Serializes a body as standard JSON (numeric map keys quoted).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    serde_json::to_vec(value).map_err(|e| JsonError::at(0, e.to_string()))
}

/// Renders a map with object keys in fastjson's form: `{{"brokerName":"b",...}:11110,...}`.
pub fn object_key_map<'a, K, V, I>(entries: I) -> Result<String, JsonError>
where
    K: Serialize + 'a,
    V: Serialize + 'a,
    I: IntoIterator<Item = (&'a K, &'a V)>,
{
    let mut out = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&to_string(k)?);
        out.push(':');
        out.push_str(&to_string(v)?);
    }
    out.push('}');
    Ok(out)
}

fn to_string<T: Serialize + ?Sized>(v: &T) -> Result<String, JsonError> {
    serde_json::to_string(v).map_err(|e| JsonError::at(0, e.to_string()))
}

/// Builds a JSON object field by field, so a body can mix standard fields with raw
/// fastjson-only fragments such as [`object_key_map`] output.
#[derive(Debug)]
pub struct ObjectWriter {
    out: String,
    empty: bool,
}

impl Default for ObjectWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectWriter {
    /// An empty object.
    pub fn new() -> Self {
        ObjectWriter {
            out: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, name: &str) -> Result<(), JsonError> {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push_str(&to_string(name)?);
        self.out.push(':');
        Ok(())
    }

    /// Adds a field with a serializable value.
    pub fn field<T: Serialize + ?Sized>(
        mut self,
        name: &str,
        value: &T,
    ) -> Result<Self, JsonError> {
        self.key(name)?;
        self.out.push_str(&to_string(value)?);
        Ok(self)
    }

    /// Adds a field whose value is already-rendered JSON text (trusted, not checked).
    pub fn raw_field(mut self, name: &str, raw: &str) -> Result<Self, JsonError> {
        self.key(name)?;
        self.out.push_str(raw);
        Ok(self)
    }

    /// The finished object text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient parser
// ---------------------------------------------------------------------------------------------

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn err<T>(&self, reason: impl Into<String>) -> Result<T, JsonError> {
        Err(JsonError::at(self.pos, reason))
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(format!("expected '{}'", b as char))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        match self.peek() {
            None => self.err("unexpected end of input"),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(q @ (b'"' | b'\'')) => self.string(q).map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                let word = self.bare_word();
                match word {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => self.err("unexpected character"),
                }
            }
        }
    }

    /// A run of identifier-ish characters (unquoted keys and literals).
    fn bare_word(&mut self) -> &str {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'-' | b'+' | b'.'))
        {
            self.pos += 1;
        }
        // Only ASCII bytes were consumed.
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let text = self.bare_word().to_owned();
        let n: Number = serde_json::from_str(&text)
            .map_err(|_| JsonError::at(start, format!("invalid number {text:?}")))?;
        Ok(Value::Number(n))
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.expect(b'{')?;
        let mut map = Map::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                None => return self.err("unterminated object"),
                _ => {}
            }
            let key = self.key(depth)?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let v = self.value(depth + 1)?;
            map.insert(key, v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return self.err("expected ',' or '}' in object"),
            }
        }
    }

    fn key(&mut self, depth: usize) -> Result<String, JsonError> {
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => self.string(q),
            // fastjson object keys: keep their compact JSON text.
            Some(b'{' | b'[') => {
                let v = self.value(depth + 1)?;
                Ok(v.to_string())
            }
            _ => {
                let start = self.pos;
                let word = self.bare_word().to_owned();
                if word.is_empty() {
                    return Err(JsonError::at(start, "expected an object key"));
                }
                Ok(word)
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return self.err("unterminated array"),
                _ => {}
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {}
                _ => return self.err("expected ',' or ']' in array"),
            }
        }
    }

    fn string(&mut self, quote: u8) -> Result<String, JsonError> {
        self.expect(quote)?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated string");
            };
            self.pos += 1;
            match c {
                c if c == quote => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated escape");
                    };
                    self.pos += 1;
                    match e {
                        b'"' | b'\'' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0C),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let ch = self.unicode_escape()?;
                            let mut tmp = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                        }
                        _ => return self.err("invalid escape"),
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| JsonError::at(self.pos, "string is not valid UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .s
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok());
        match digits {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => self.err("invalid \\u escape"),
        }
    }

    /// `\uXXXX`, combining surrogate pairs; a lone surrogate becomes U+FFFD (as Java would
    /// keep it as an unpaired char that has no UTF-8 form).
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) && self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.pos = save;
        }
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
    #[serde(rename_all = "camelCase")]
    struct Mq {
        broker_name: String,
        queue_id: i32,
        topic: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct BrokerData {
        broker_addrs: BTreeMap<i64, String>,
        broker_name: String,
        cluster: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct ClusterInfo {
        broker_addr_table: BTreeMap<String, BrokerData>,
        cluster_addr_table: BTreeMap<String, Vec<String>>,
    }

    /// protocol.md §4.4, as fastjson writes it (unquoted brokerId keys).
    #[test]
    fn golden_cluster_info_with_unquoted_numeric_keys() {
        let text = br#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#;
        let ci: ClusterInfo = from_slice(text).unwrap();
        let b = &ci.broker_addr_table["broker-a"];
        assert_eq!(b.broker_addrs[&0], "10.0.0.1:10911");
        assert_eq!(b.broker_addrs[&1], "10.0.0.2:10911");
        assert_eq!(ci.cluster_addr_table["DefaultCluster"], vec!["broker-a"]);
    }

    /// protocol.md §4.1 item 2: a real broker's ResetOffsetBody.
    #[test]
    fn golden_object_keyed_map_parses_and_is_reproduced() {
        let text = r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:11110,{"brokerName":"b","queueId":1,"topic":"t"}:0}}"#;
        let v = parse_lenient(text.as_bytes()).unwrap();
        let table = v["offsetTable"].as_object().unwrap();
        let mut parsed: BTreeMap<Mq, i64> = BTreeMap::new();
        for (k, v) in table {
            parsed.insert(parse_object_key(k).unwrap(), v.as_i64().unwrap());
        }
        let mq0 = Mq {
            broker_name: "b".into(),
            queue_id: 0,
            topic: "t".into(),
        };
        assert_eq!(parsed[&mq0], 11110);
        assert_eq!(parsed.len(), 2);

        // Emitting gives back exactly the fastjson text.
        let map = object_key_map(parsed.iter()).unwrap();
        let body = ObjectWriter::new()
            .raw_field("offsetTable", &map)
            .unwrap()
            .finish();
        assert_eq!(body, text);
    }

    #[test]
    fn standard_json_takes_the_fast_path_and_quotes_numeric_keys_on_output() {
        let mut addrs = BTreeMap::new();
        addrs.insert(0i64, "10.0.0.1:10911".to_owned());
        let out = to_vec(&serde_json::json!({ "brokerAddrs": addrs })).unwrap();
        assert_eq!(out, br#"{"brokerAddrs":{"0":"10.0.0.1:10911"}}"#);
        let back: BTreeMap<String, BTreeMap<i64, String>> = from_slice(&out).unwrap();
        assert_eq!(back["brokerAddrs"][&0], "10.0.0.1:10911");
    }

    #[test]
    fn other_fastjson_leniencies() {
        let v = parse_lenient(br#"{name:'single \'q\'', list:[1,2,], "u":"\u00e9\ud83d\ude00", big:123456789012345678901234567890, neg:-1.5e3,}"#).unwrap();
        assert_eq!(v["name"], "single 'q'");
        assert_eq!(v["list"], serde_json::json!([1, 2]));
        assert_eq!(v["u"], "é😀");
        assert!(v["big"].is_number());
        assert_eq!(v["neg"].as_f64(), Some(-1500.0));
    }

    #[test]
    fn invalid_json_is_an_error_with_offset_never_a_panic() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\" 1}",
            b"[1 2]",
            b"{\"a\":tru}",
            b"\"abc",
            b"{\"a\":1} x",
            b"{:1}",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"-",
        ] {
            assert!(
                parse_lenient(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = parse_lenient(b"{\"a\":1,\"b\":?}").unwrap_err();
        assert_eq!(e.offset, 11, "points at the ?");
        let deep = "[".repeat(MAX_DEPTH + 10);
        assert!(parse_lenient(deep.as_bytes()).is_err());
    }

    #[test]
    fn wrong_shape_is_a_clear_error() {
        let e = from_slice::<BrokerData>(br#"{"brokerName":"b"}"#).unwrap_err();
        assert!(e.reason.contains("missing field"), "{e}");
    }
}
