//! Frame codec: bytes ⇄ [`RemotingCommand`], both header encodings.
//!
//! Frame layout (§1.1), all big-endian:
//!
//! ```text
//! | length: i32 | headerWord: i32 | header: headerLen bytes | body |
//!   length     = 4 + headerLen + bodyLen (bytes after the length word)
//!   headerWord = serializeType << 24 | headerLen
//! ```
//!
//! Decoding is two-phase: [`FrameCodec::check`] only looks at the length word and says whether
//! a whole frame is buffered ("not yet" is flow control, not an error); then
//! [`FrameCodec::decode`] splits the frame off the buffer and parses it. The body is a
//! zero-copy slice of the frame. This module knows nothing about sockets.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::Value;

use super::code::LanguageCode;
use super::command::{ExtFields, RemotingCommand, SerializeType};
use super::error::CodecError;

/// Java's default `com.rocketmq.remoting.frameMaxLength`: 16 MiB including the length word.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The header length travels in 24 bits.
const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// Fixed part of a binary header: code(2) language(1) version(2) opaque(4) flag(4) remarkLen(4) … extLen(4).
const BINARY_FIXED_LEN: usize = 21;

/// Encodes and decodes frames with a maximum frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    /// Largest accepted frame in bytes, counting the 4-byte length word (as Netty's
    /// `LengthFieldBasedFrameDecoder` does in the Java server).
    pub max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl FrameCodec {
    /// A codec with the given maximum frame size.
    pub fn new(max_frame: usize) -> Self {
        FrameCodec { max_frame }
    }

    /// Phase one: `Ok(Some(n))` when the first `n` bytes of `buf` are one whole frame,
    /// `Ok(None)` when more bytes are needed, an error when the length word is impossible
    /// (the caller must then close the connection: the stream cannot be resynchronised).
    pub fn check(&self, buf: &[u8]) -> Result<Option<usize>, CodecError> {
        let Some(word) = buf.get(..4) else {
            return Ok(None);
        };
        let length = i32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        if length < 4 {
            return Err(CodecError::FrameTooShort {
                length: i64::from(length),
            });
        }
        // `length` is positive, so the conversion is lossless.
        let total = 4 + length as usize;
        if total > self.max_frame {
            return Err(CodecError::FrameTooLarge {
                length: total as u64,
                max: self.max_frame,
            });
        }
        Ok((buf.len() >= total).then_some(total))
    }

    /// Phase two: if a whole frame is buffered, removes it from `buf` and parses it.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RemotingCommand>, CodecError> {
        match self.check(buf)? {
            None => Ok(None),
            Some(total) => {
                let mut frame = buf.split_to(total).freeze();
                frame.advance(4);
                decode_frame_body(frame).map(Some)
            }
        }
    }

    /// Appends the frame for `cmd` to `dst`, in `cmd.serialize_type`. A command whose code or
    /// version does not fit the binary header's 16-bit fields is written as JSON instead, so
    /// it still reaches the peer intact.
    pub fn encode(&self, cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<(), CodecError> {
        // A binary header is written straight into `dst`; a JSON one is serialised first.
        let (ty, json, header_len) = match header_type(cmd) {
            SerializeType::RocketMq => (SerializeType::RocketMq, None, binary_header_len(cmd)?),
            SerializeType::Json => {
                let h = encode_json_header(cmd)?;
                let len = h.len();
                (SerializeType::Json, Some(h), len)
            }
        };
        let body_len = cmd.body.as_ref().map_or(0, Bytes::len);
        if header_len > MAX_HEADER_LEN {
            return Err(CodecError::Unencodable {
                reason: format!("header of {header_len} bytes exceeds 24 bits"),
            });
        }
        let total = 8 + header_len + body_len;
        if total > self.max_frame || total - 4 > i32::MAX as usize {
            return Err(CodecError::Unencodable {
                reason: format!(
                    "frame of {total} bytes exceeds the maximum of {} bytes",
                    self.max_frame
                ),
            });
        }
        dst.reserve(total);
        dst.put_i32((total - 4) as i32);
        dst.put_u32(u32::from(ty.as_byte()) << 24 | header_len as u32);
        match &json {
            Some(h) => dst.put_slice(h),
            None => write_binary_header(cmd, dst),
        }
        if let Some(body) = &cmd.body {
            dst.put_slice(body);
        }
        Ok(())
    }

    /// Encodes `cmd` into a fresh buffer.
    pub fn encode_to_bytes(&self, cmd: &RemotingCommand) -> Result<Bytes, CodecError> {
        let mut buf = BytesMut::new();
        self.encode(cmd, &mut buf)?;
        Ok(buf.freeze())
    }
}

/// Parses a frame without its length word: header word, header, body.
fn decode_frame_body(mut frame: Bytes) -> Result<RemotingCommand, CodecError> {
    if frame.len() < 4 {
        return Err(CodecError::FrameTooShort {
            length: frame.len() as i64,
        });
    }
    let word = frame.get_u32();
    let ty_byte = (word >> 24) as u8;
    let header_len = (word & 0x00FF_FFFF) as usize;
    if header_len > frame.len() {
        return Err(CodecError::HeaderPastFrame {
            header_len,
            available: frame.len(),
        });
    }
    let ty = SerializeType::from_byte(ty_byte)
        .ok_or(CodecError::UnknownSerializeType { value: ty_byte })?;
    let header = frame.split_to(header_len);
    let mut cmd = match ty {
        SerializeType::Json => decode_json_header(&header)?,
        SerializeType::RocketMq => decode_binary_header(&header)?,
    };
    cmd.serialize_type = ty;
    cmd.body = (!frame.is_empty()).then_some(frame);
    Ok(cmd)
}

/// Encodes only the header; returns the encoding actually used (see [`FrameCodec::encode`]).
pub fn encode_header(cmd: &RemotingCommand) -> Result<(SerializeType, Vec<u8>), CodecError> {
    match header_type(cmd) {
        SerializeType::RocketMq => encode_binary_header(cmd).map(|h| (SerializeType::RocketMq, h)),
        SerializeType::Json => encode_json_header(cmd).map(|h| (SerializeType::Json, h)),
    }
}

/// The encoding `cmd`'s header is written in: the one asked for, except that a code or
/// version beyond 16 bits needs JSON.
fn header_type(cmd: &RemotingCommand) -> SerializeType {
    let fits_binary = i16::try_from(cmd.code).is_ok() && i16::try_from(cmd.version).is_ok();
    match cmd.serialize_type {
        SerializeType::RocketMq if fits_binary => SerializeType::RocketMq,
        _ => SerializeType::Json,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON header (serialize type 0)
// ---------------------------------------------------------------------------------------------

/// The JSON header as Java writes it: alphabetical keys, `remark` omitted when null.
/// `extFields` is always written (possibly `{}`) because the Java client dereferences the map
/// of some responses without a null check.
#[derive(Serialize)]
struct JsonHeaderOut<'a> {
    code: i32,
    #[serde(rename = "extFields")]
    ext_fields: &'a ExtFields,
    flag: i32,
    language: &'static str,
    opaque: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    remark: Option<&'a str>,
    #[serde(rename = "serializeTypeCurrentRPC")]
    serialize_type_current_rpc: &'static str,
    version: i32,
}

fn encode_json_header(cmd: &RemotingCommand) -> Result<Vec<u8>, CodecError> {
    let out = JsonHeaderOut {
        code: cmd.code,
        ext_fields: &cmd.ext_fields,
        flag: cmd.flag,
        language: cmd.language.name(),
        opaque: cmd.opaque,
        remark: cmd.remark.as_deref(),
        serialize_type_current_rpc: "JSON",
        version: cmd.version,
    };
    serde_json::to_vec(&out).map_err(|e| CodecError::Unencodable {
        reason: e.to_string(),
    })
}

fn json_err(reason: impl Into<String>) -> CodecError {
    CodecError::JsonHeader {
        reason: reason.into(),
    }
}

/// Reads an int header field leniently: a JSON number, or a string holding one.
fn json_int(obj: &serde_json::Map<String, Value>, key: &str) -> Result<Option<i32>, CodecError> {
    let parsed = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().and_then(|v| i32::try_from(v).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| json_err(format!("field {key} is not a 32-bit integer")))
}

/// Renders an ext field value as the string Java would have sent. Lenient on purpose:
/// numbers and booleans are stringified, nested values keep their JSON text.
fn json_value_to_ext(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Parses a JSON header. Accepts what Java, Go and C++ send: unknown keys ignored, missing
/// `serializeTypeCurrentRPC` fine, `remark` null/""/absent all mean none, any language name.
/// Only `code` is required.
///
/// Every request header passes through here, so the usual case is parsed in one pass straight
/// into the command (no intermediate `serde_json::Value` tree). Anything that pass refuses is
/// parsed again by [`decode_json_header_value`], whose error is the one reported; both accept
/// exactly the same headers and build the same command (see the tests).
pub fn decode_json_header(bytes: &[u8]) -> Result<RemotingCommand, CodecError> {
    match serde_json::from_slice::<fast_json::Header>(bytes) {
        Ok(h) => h.into_command(),
        Err(_) => decode_json_header_value(bytes),
    }
}

/// One-pass decoding of a JSON header (see [`decode_json_header`]).
mod fast_json {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;
    use serde_json::Value;

    use super::{json_err, CodecError, ExtFields, LanguageCode, RemotingCommand, SerializeType};

    /// A JSON value as far as a header field needs it; strings borrowed when unescaped.
    pub(super) enum Scalar<'a> {
        Null,
        Str(Cow<'a, str>),
        Bool(bool),
        Num(serde_json::Number),
        /// Arrays and objects, kept whole (only their JSON text is ever used).
        Nested(Value),
    }

    impl<'de> Deserialize<'de> for Scalar<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ScalarVisitor)
        }
    }

    struct ScalarVisitor;

    impl<'de> Visitor<'de> for ScalarVisitor {
        type Value = Scalar<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Scalar::Null)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Scalar::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            Scalar::deserialize(d)
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Scalar::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Scalar::Num(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Scalar::Num(v.into()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            serde_json::Number::from_f64(v)
                .map(Scalar::Num)
                .ok_or_else(|| E::custom("not a finite number"))
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(v)))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Scalar::Nested)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Scalar::Nested)
        }
    }

    impl Scalar<'_> {
        /// The ext-field string Java would have sent (as `json_value_to_ext`).
        fn into_ext(self) -> Option<String> {
            match self {
                Scalar::Null => None,
                Scalar::Str(s) => Some(s.into_owned()),
                Scalar::Bool(b) => Some(b.to_string()),
                Scalar::Num(n) => Some(n.to_string()),
                Scalar::Nested(v) => Some(v.to_string()),
            }
        }

        /// A lenient int field (as `json_int`): `Err(())` when present but not an i32.
        fn into_int(self) -> Result<Option<i32>, ()> {
            let parsed = match self {
                Scalar::Null => return Ok(None),
                Scalar::Num(n) => n.as_i64().and_then(|v| i32::try_from(v).ok()),
                Scalar::Str(s) => s.trim().parse().ok(),
                _ => None,
            };
            parsed.map(Some).ok_or(())
        }
    }

    /// A map key, borrowed when unescaped.
    struct Key<'a>(Cow<'a, str>);

    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string key")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                    Ok(Key(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(Key(Cow::Owned(v.to_owned())))
                }
                fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                    Ok(Key(Cow::Owned(v)))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// `extFields`: null, or an object whose values become strings.
    struct Ext(ExtFields);

    impl<'de> Deserialize<'de> for Ext {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Ext;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object or null")
                }
                fn visit_unit<E>(self) -> Result<Self::Value, E> {
                    Ok(Ext(ExtFields::new()))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut ext = ExtFields::with_capacity(16, 256);
                    while let Some(k) = map.next_key::<Key<'de>>()? {
                        let v: Scalar<'de> = map.next_value()?;
                        match v {
                            // The usual case, copied straight into the map.
                            Scalar::Str(s) => ext.insert(&*k.0, &*s),
                            other => match other.into_ext() {
                                Some(s) => ext.insert(&*k.0, s),
                                // A later null does not remove an earlier value: the value
                                // tree keeps the last one (null) and skips it, so remove it
                                // too.
                                None => {
                                    ext.remove(k.0.as_ref());
                                }
                            },
                        }
                    }
                    Ok(Ext(ext))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// The header fields, each as last seen (a repeated key keeps its last value, as the
    /// value tree does).
    #[derive(Default)]
    pub(super) struct Header {
        code: Option<Result<Option<i32>, ()>>,
        language: Option<LanguageCode>,
        version: Option<Result<Option<i32>, ()>>,
        opaque: Option<Result<Option<i32>, ()>>,
        flag: Option<Result<Option<i32>, ()>>,
        remark: Option<String>,
        ext_fields: ExtFields,
    }

    impl<'de> Deserialize<'de> for Header {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Header;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut h = Header::default();
                    while let Some(k) = map.next_key::<Key<'de>>()? {
                        match k.0.as_ref() {
                            "code" => h.code = Some(map.next_value::<Scalar<'de>>()?.into_int()),
                            "version" => {
                                h.version = Some(map.next_value::<Scalar<'de>>()?.into_int())
                            }
                            "opaque" => {
                                h.opaque = Some(map.next_value::<Scalar<'de>>()?.into_int())
                            }
                            "flag" => h.flag = Some(map.next_value::<Scalar<'de>>()?.into_int()),
                            "language" => {
                                h.language = Some(match map.next_value::<Scalar<'de>>()? {
                                    Scalar::Str(s) => LanguageCode::from_name(&s),
                                    Scalar::Num(n) => n
                                        .as_i64()
                                        .and_then(|v| i32::try_from(v).ok())
                                        .and_then(LanguageCode::from_code)
                                        .unwrap_or(LanguageCode::Other),
                                    _ => LanguageCode::Other,
                                })
                            }
                            "remark" => {
                                h.remark = match map.next_value::<Scalar<'de>>()? {
                                    Scalar::Str(s) if !s.is_empty() => Some(s.into_owned()),
                                    _ => None,
                                }
                            }
                            "extFields" => h.ext_fields = map.next_value::<Ext>()?.0,
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(h)
                }
            }
            d.deserialize_map(V)
        }
    }

    fn int(field: Option<Result<Option<i32>, ()>>, key: &str) -> Result<Option<i32>, CodecError> {
        field
            .unwrap_or(Ok(None))
            .map_err(|()| json_err(format!("field {key} is not a 32-bit integer")))
    }

    impl Header {
        pub(super) fn into_command(self) -> Result<RemotingCommand, CodecError> {
            let code = int(self.code, "code")?.ok_or_else(|| json_err("field code is missing"))?;
            Ok(RemotingCommand {
                code,
                language: self.language.unwrap_or(LanguageCode::Other),
                version: int(self.version, "version")?.unwrap_or(0),
                opaque: int(self.opaque, "opaque")?.unwrap_or(0),
                flag: int(self.flag, "flag")?.unwrap_or(0),
                remark: self.remark,
                ext_fields: self.ext_fields,
                body: None,
                serialize_type: SerializeType::Json,
            })
        }
    }
}

/// Parses a JSON header through a `serde_json::Value` tree: the reference for
/// [`decode_json_header`] and the source of its error messages.
pub fn decode_json_header_value(bytes: &[u8]) -> Result<RemotingCommand, CodecError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| json_err(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(json_err("header is not a JSON object"));
    };
    let code = json_int(&obj, "code")?.ok_or_else(|| json_err("field code is missing"))?;
    let language = match obj.get("language") {
        Some(Value::String(s)) => LanguageCode::from_name(s),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .and_then(LanguageCode::from_code)
            .unwrap_or(LanguageCode::Other),
        _ => LanguageCode::Other,
    };
    let remark = match obj.get("remark") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let mut ext_fields = ExtFields::new();
    match obj.get("extFields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if let Some(s) = json_value_to_ext(v) {
                    ext_fields.insert(k.clone(), s);
                }
            }
        }
        Some(_) => return Err(json_err("field extFields is not an object")),
    }
    Ok(RemotingCommand {
        code,
        language,
        version: json_int(&obj, "version")?.unwrap_or(0),
        opaque: json_int(&obj, "opaque")?.unwrap_or(0),
        flag: json_int(&obj, "flag")?.unwrap_or(0),
        remark,
        ext_fields,
        body: None,
        serialize_type: SerializeType::Json,
    })
}

// ---------------------------------------------------------------------------------------------
// ROCKETMQ binary header (serialize type 1)
// ---------------------------------------------------------------------------------------------

fn encode_binary_header(cmd: &RemotingCommand) -> Result<Vec<u8>, CodecError> {
    let len = binary_header_len(cmd)?;
    let mut out = Vec::with_capacity(len);
    write_binary_header(cmd, &mut out);
    Ok(out)
}

/// The length of `cmd`'s binary header, after checking every length fits its field.
fn binary_header_len(cmd: &RemotingCommand) -> Result<usize, CodecError> {
    let too_long = |what: &str| CodecError::Unencodable {
        reason: format!("{what} too long for the binary header"),
    };
    let remark = cmd.remark.as_deref().unwrap_or("");
    i32::try_from(remark.len()).map_err(|_| too_long("remark"))?;
    let mut ext_len = 0usize;
    for (k, v) in &cmd.ext_fields {
        i16::try_from(k.len()).map_err(|_| too_long("ext field key"))?;
        i32::try_from(v.len()).map_err(|_| too_long("ext field value"))?;
        ext_len += 6 + k.len() + v.len();
    }
    i32::try_from(ext_len).map_err(|_| too_long("ext fields"))?;
    Ok(BINARY_FIXED_LEN + remark.len() + ext_len)
}

/// Writes the binary header; `binary_header_len` checked the lengths, and callers that code
/// and version fit in i16.
fn write_binary_header(cmd: &RemotingCommand, out: &mut impl BufMut) {
    let remark = cmd.remark.as_deref().unwrap_or("");
    let ext_len: usize = cmd
        .ext_fields
        .iter()
        .map(|(k, v)| 6 + k.len() + v.len())
        .sum();
    out.put_i16(cmd.code as i16);
    out.put_u8(cmd.language.code() as u8);
    out.put_i16(cmd.version as i16);
    out.put_i32(cmd.opaque);
    out.put_i32(cmd.flag);
    out.put_i32(remark.len() as i32);
    out.put_slice(remark.as_bytes());
    out.put_i32(ext_len as i32);
    for (k, v) in &cmd.ext_fields {
        out.put_i16(k.len() as i16);
        out.put_slice(k.as_bytes());
        out.put_i32(v.len() as i32);
        out.put_slice(v.as_bytes());
    }
}

/// Bounds-checked reader over a binary header; every failure names the byte offset.
struct BinReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BinReader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(CodecError::BinaryHeader {
                offset: self.pos,
                reason: what,
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, CodecError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, CodecError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    /// A length field followed by that many bytes; negative lengths are rejected.
    fn len_prefixed(&mut self, len: i64, what: &'static str) -> Result<&'a [u8], CodecError> {
        let n = usize::try_from(len).map_err(|_| CodecError::BinaryHeader {
            offset: self.pos,
            reason: what,
        })?;
        self.take(n, what)
    }
}

fn utf8<'a>(bytes: &'a [u8], field: &'static str) -> Result<&'a str, CodecError> {
    std::str::from_utf8(bytes).map_err(|_| CodecError::InvalidUtf8 { field })
}

/// Parses a ROCKETMQ binary header (§1.4).
pub fn decode_binary_header(bytes: &[u8]) -> Result<RemotingCommand, CodecError> {
    let mut r = BinReader { buf: bytes, pos: 0 };
    let code = i32::from(r.i16("truncated code")?);
    let language = LanguageCode::from_byte(r.u8("truncated language")?);
    let version = i32::from(r.i16("truncated version")?);
    let opaque = r.i32("truncated opaque")?;
    let flag = r.i32("truncated flag")?;
    let remark_len = r.i32("truncated remark length")?;
    let remark_bytes = r.len_prefixed(i64::from(remark_len), "bad remark length")?;
    let remark = (!remark_bytes.is_empty())
        .then(|| utf8(remark_bytes, "remark").map(str::to_owned))
        .transpose()?;
    let ext_len = r.i32("truncated ext length")?;
    let ext_block = r.len_prefixed(i64::from(ext_len), "bad ext fields length")?;
    let mut ext_fields = ExtFields::with_capacity(16, ext_block.len());
    let mut er = BinReader {
        buf: ext_block,
        pos: 0,
    };
    while er.pos < ext_block.len() {
        let klen = er.i16("truncated ext key length")?;
        let key = er.len_prefixed(i64::from(klen), "bad ext key length")?;
        let vlen = er.i32("truncated ext value length")?;
        let val = er.len_prefixed(i64::from(vlen), "bad ext value length")?;
        ext_fields.insert(utf8(key, "ext key")?, utf8(val, "ext value")?);
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: None,
        serialize_type: SerializeType::RocketMq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::RequestCode;

    /// The worked example of protocol.md §1.1 / §1.4: GET_ROUTEINFO_BY_TOPIC, opaque 7.
    fn route_request(ty: SerializeType) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(RequestCode::GetRouteinfoByTopic)
            .with_ext("topic", "TopicTest")
            .with_serialize_type(ty);
        cmd.opaque = 7;
        cmd
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn json_worked_example_matches_fact_sheet_bytes() {
        let header = br#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":409}"#;
        assert_eq!(header.len(), 131);
        let mut expected = hex("00000087 00000083");
        expected.extend_from_slice(header);

        let bytes = FrameCodec::default()
            .encode_to_bytes(&route_request(SerializeType::Json))
            .unwrap();
        assert_eq!(&bytes[..], &expected[..]);

        let mut buf = BytesMut::from(&expected[..]);
        let cmd = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(cmd, route_request(SerializeType::Json));
    }

    #[test]
    fn binary_worked_example_matches_fact_sheet_bytes() {
        let mut header = hex("0069 00 0199 00000007 00000000 00000000 00000014 0005");
        header.extend_from_slice(b"topic");
        header.extend_from_slice(&hex("00000009"));
        header.extend_from_slice(b"TopicTest");
        assert_eq!(header.len(), 41);
        let mut expected = hex("0000002D 01000029");
        expected.extend_from_slice(&header);

        let bytes = FrameCodec::default()
            .encode_to_bytes(&route_request(SerializeType::RocketMq))
            .unwrap();
        assert_eq!(&bytes[..], &expected[..]);

        let mut buf = BytesMut::from(&expected[..]);
        let cmd = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(cmd, route_request(SerializeType::RocketMq));
    }

    #[test]
    fn body_and_remark_round_trip_in_both_encodings() {
        for ty in [SerializeType::Json, SerializeType::RocketMq] {
            let mut cmd = RemotingCommand::response(
                17,
                "No topic route info in name server for the topic: T",
            )
            .with_ext("queueId", 3)
            .with_ext("ünïcode", "välue \"quoted\"")
            .with_body(Bytes::from_static(b"\x00\x01binary\xff"))
            .with_serialize_type(ty);
            cmd.opaque = -12;
            let bytes = FrameCodec::default().encode_to_bytes(&cmd).unwrap();
            let mut buf = BytesMut::from(&bytes[..]);
            let back = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
            assert_eq!(back, cmd, "{ty:?}");
        }
    }

    #[test]
    fn partial_frames_are_incomplete_not_errors() {
        let bytes = FrameCodec::default()
            .encode_to_bytes(&route_request(SerializeType::Json))
            .unwrap();
        let codec = FrameCodec::default();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(codec.decode(&mut buf).unwrap().is_none(), "cut {cut}");
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn two_frames_in_one_buffer_decode_in_order() {
        let codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut a = route_request(SerializeType::Json);
        a.opaque = 1;
        let mut b = route_request(SerializeType::RocketMq);
        b.opaque = 2;
        codec.encode(&a, &mut buf).unwrap();
        codec.encode(&b, &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().opaque, 1);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().opaque, 2);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn oversized_and_undersized_frames_are_rejected_from_the_length_word() {
        let codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&hex("00000400")[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooLarge {
                length: 1028,
                max: 1024
            })
        ));
        let mut buf = BytesMut::from(&hex("00000002 0000")[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooShort { length: 2 })
        ));
        let mut buf = BytesMut::from(&hex("FFFFFFFF")[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooShort { length: -1 })
        ));
    }

    #[test]
    fn header_length_past_frame_is_rejected() {
        let mut buf = BytesMut::from(&hex("00000008 00000010 7B7D0000")[..]);
        assert!(matches!(
            FrameCodec::default().decode(&mut buf),
            Err(CodecError::HeaderPastFrame {
                header_len: 16,
                available: 4
            })
        ));
    }

    #[test]
    fn unknown_serialize_type_is_rejected() {
        let mut buf = BytesMut::from(&hex("00000006 02000002 7B7D")[..]);
        assert!(matches!(
            FrameCodec::default().decode(&mut buf),
            Err(CodecError::UnknownSerializeType { value: 2 })
        ));
    }

    #[test]
    fn lenient_json_header_from_other_clients() {
        // Go style: remark "", extFields always present; numbers and bools as values;
        // no serializeTypeCurrentRPC; unknown keys.
        let h = br#"{"code":"11","language":"GO","version":317,"opaque":3,"flag":0,"remark":"","extFields":{"queueId":2,"order":true,"skip":null,"topic":"T"},"extra":[1]}"#;
        let cmd = decode_json_header(h).unwrap();
        assert_eq!(cmd.code, 11);
        assert_eq!(cmd.language, LanguageCode::Go);
        assert_eq!(cmd.remark, None);
        assert_eq!(cmd.ext_str("queueId"), Ok("2"));
        assert_eq!(cmd.ext_str("order"), Ok("true"));
        assert!(cmd.ext_opt_str("skip").is_none());
        // Minimal header.
        let cmd = decode_json_header(br#"{"code":34,"language":"KOTLIN"}"#).unwrap();
        assert_eq!(cmd.code, 34);
        assert_eq!(cmd.language, LanguageCode::Other);
        assert!(cmd.ext_fields.is_empty());
    }

    #[test]
    fn bad_json_headers_are_errors() {
        for h in [
            &b"{"[..],
            b"[]",
            br#"{"flag":0}"#,
            br#"{"code":99999999999}"#,
            br#"{"code":1,"extFields":"x"}"#,
            b"\xff\xfe",
        ] {
            assert!(
                decode_json_header(h).is_err(),
                "{:?}",
                String::from_utf8_lossy(h)
            );
        }
    }

    #[test]
    fn truncated_binary_headers_are_errors() {
        let full = encode_binary_header(&route_request(SerializeType::RocketMq)).unwrap();
        for cut in 0..full.len() {
            assert!(decode_binary_header(&full[..cut]).is_err(), "cut {cut}");
        }
        // Negative remark length.
        let mut bad = full.clone();
        bad[13..17].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_binary_header(&bad).is_err());
    }

    #[test]
    fn large_codes_fall_back_to_json() {
        let cmd = RemotingCommand::request(RequestCode::PopMessage)
            .with_serialize_type(SerializeType::RocketMq);
        let bytes = FrameCodec::default().encode_to_bytes(&cmd).unwrap();
        assert_eq!(bytes[4], 0, "serialize type byte");
        let back = FrameCodec::default()
            .decode(&mut BytesMut::from(&bytes[..]))
            .unwrap()
            .unwrap();
        assert_eq!(back.code, 200_050);
    }

    #[test]
    fn encoding_refuses_frames_over_the_limit() {
        let cmd = RemotingCommand::request(10).with_body(vec![0u8; 2048]);
        assert!(FrameCodec::new(1024).encode_to_bytes(&cmd).is_err());
    }
}
