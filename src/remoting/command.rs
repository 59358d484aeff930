//! [`RemotingCommand`]: one request or response, independent of how its header is encoded.
//!
//! Ext fields ("custom header") are a string → string map on the wire; typed views are
//! built with the `ext_*` getters or a [`CommandHeader`] implementation. This module knows
//! nothing about sockets or byte layout (see `codec`).

use std::fmt::Display;
use std::str::FromStr;

use bytes::Bytes;

use super::code::{LanguageCode, ResponseCode};
use super::error::HeaderError;

pub use super::ext::ExtFields;

/// Flag bit 0: this command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: no response is expected.
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// MQVersion ordinal of RocketMQ 4.9.8, the version this implementation reports in the
/// frames it creates (clients treat the HEART_BEAT response version as the broker version,
/// and refuse SQL92 filtering below 4.1.0).
pub const DEFAULT_VERSION: i32 = 409;

/// How a command's header is encoded on the wire (the top byte of the header-length word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// Type 0: the header is a JSON object. The default, because every client parses it.
    #[default]
    Json,
    /// Type 1: the compact ROCKETMQ binary header.
    RocketMq,
}

impl SerializeType {
    /// The byte carried on the wire.
    pub const fn as_byte(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    /// Parses the wire byte.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(SerializeType::Json),
            1 => Some(SerializeType::RocketMq),
            _ => None,
        }
    }
}

/// A request or response of the RocketMQ remoting protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code in requests, response code in responses. Any `i32`; see
    /// [`RequestCode`](super::RequestCode) / [`ResponseCode`] for the known ones.
    pub code: i32,
    /// Sender's language; frames we create say JAVA (§1.2).
    pub language: LanguageCode,
    /// Sender's MQVersion ordinal.
    pub version: i32,
    /// Request id, echoed in the response.
    pub opaque: i32,
    /// [`FLAG_RESPONSE`] | [`FLAG_ONEWAY`].
    pub flag: i32,
    /// Error text in responses; `None` when absent (an empty remark decodes to `None`).
    pub remark: Option<String>,
    /// The custom header, all values strings.
    pub ext_fields: ExtFields,
    /// Payload; `None` when the frame has no body bytes.
    pub body: Option<Bytes>,
    /// Header encoding used when this command is written.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    fn new(code: i32, flag: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Java,
            version: DEFAULT_VERSION,
            opaque: 0,
            flag,
            remark: None,
            ext_fields: ExtFields::new(),
            body: None,
            serialize_type: SerializeType::Json,
        }
    }

    /// A new request. Its opaque is assigned when it is sent.
    pub fn request(code: impl Into<i32>) -> Self {
        Self::new(code.into(), 0)
    }

    /// A response with the given code; an empty `remark` means none.
    /// The server copies opaque and serialize type from the request before sending.
    pub fn response(code: impl Into<i32>, remark: impl Into<String>) -> Self {
        let remark = remark.into();
        let mut cmd = Self::new(code.into(), FLAG_RESPONSE);
        cmd.remark = (!remark.is_empty()).then_some(remark);
        cmd
    }

    /// A SUCCESS response correlated with `req` (same opaque, same header encoding).
    pub fn response_to(req: &RemotingCommand) -> Self {
        let mut cmd = Self::response(ResponseCode::Success, "");
        cmd.opaque = req.opaque;
        cmd.serialize_type = req.serialize_type;
        cmd
    }

    /// An error response correlated with `req`.
    pub fn error_to(
        req: &RemotingCommand,
        code: impl Into<i32>,
        remark: impl Into<String>,
    ) -> Self {
        let mut cmd = Self::response(code, remark);
        cmd.opaque = req.opaque;
        cmd.serialize_type = req.serialize_type;
        cmd
    }

    /// The REQUEST_CODE_NOT_SUPPORTED answer Java gives for an unknown code, remark included
    /// verbatim (leading space and all).
    pub fn not_supported(req: &RemotingCommand) -> Self {
        Self::error_to(
            req,
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", req.code),
        )
    }

    /// Builder: sets the remark (empty = none).
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        let remark = remark.into();
        self.remark = (!remark.is_empty()).then_some(remark);
        self
    }

    /// Builder: sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Builder: adds one ext field, rendered with `Display` (decimal numbers, `true`/`false`).
    pub fn with_ext(mut self, key: impl AsRef<str>, value: impl Display) -> Self {
        self.ext_fields.insert_display(key.as_ref(), value);
        self
    }

    /// Builder: writes a typed header into the ext fields.
    pub fn with_header<H: CommandHeader>(mut self, header: &H) -> Self {
        header.to_ext(&mut self.ext_fields);
        self
    }

    /// Builder: sets the header encoding.
    pub fn with_serialize_type(mut self, t: SerializeType) -> Self {
        self.serialize_type = t;
        self
    }

    /// Flag bit 0.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Flag bit 1.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Sets flag bit 0.
    pub fn mark_response(&mut self) {
        self.flag |= FLAG_RESPONSE;
    }

    /// Sets flag bit 1.
    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// The response code as a known [`ResponseCode`], if it is one.
    pub fn response_code(&self) -> Option<ResponseCode> {
        ResponseCode::from_code(self.code)
    }

    /// Reads a typed header from the ext fields.
    pub fn decode_header<H: CommandHeader>(&self) -> Result<H, HeaderError> {
        H::from_ext(&self.ext_fields)
    }

    /// Required string ext field.
    pub fn ext_str(&self, key: &'static str) -> Result<&str, HeaderError> {
        ext_str(&self.ext_fields, key)
    }

    /// Optional string ext field.
    pub fn ext_opt_str(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }

    /// Required `int` ext field.
    pub fn ext_i32(&self, key: &'static str) -> Result<i32, HeaderError> {
        ext_parse(&self.ext_fields, key, "an int")
    }

    /// Required `long` ext field.
    pub fn ext_i64(&self, key: &'static str) -> Result<i64, HeaderError> {
        ext_parse(&self.ext_fields, key, "a long")
    }

    /// Required `boolean` ext field with Java `Boolean.parseBoolean` semantics.
    pub fn ext_bool(&self, key: &'static str) -> Result<bool, HeaderError> {
        ext_bool(&self.ext_fields, key)
    }

    /// Optional `int` ext field (absent = `None`, present but malformed = error).
    pub fn ext_opt_i32(&self, key: &'static str) -> Result<Option<i32>, HeaderError> {
        ext_opt_parse(&self.ext_fields, key, "an int")
    }

    /// Optional `long` ext field.
    pub fn ext_opt_i64(&self, key: &'static str) -> Result<Option<i64>, HeaderError> {
        ext_opt_parse(&self.ext_fields, key, "a long")
    }

    /// Optional `boolean` ext field (Java `parseBoolean`).
    pub fn ext_opt_bool(&self, key: &'static str) -> Option<bool> {
        ext_opt_bool(&self.ext_fields, key)
    }
}

/// A typed view of a command's ext fields ("custom header" in RocketMQ).
///
/// `from_ext` must fail with [`HeaderError::Missing`] for absent required fields and
/// [`HeaderError::Malformed`] for unparsable values, and ignore unknown keys. `to_ext` writes
/// every non-`None` field as a string and omits `None` ones.
pub trait CommandHeader: Sized {
    /// Reads the header from ext fields.
    fn from_ext(ext: &ExtFields) -> Result<Self, HeaderError>;
    /// Writes the header into ext fields (existing unrelated keys are kept).
    fn to_ext(&self, ext: &mut ExtFields);
}

/// Required string field.
pub fn ext_str<'a>(ext: &'a ExtFields, key: &'static str) -> Result<&'a str, HeaderError> {
    ext.get(key).ok_or(HeaderError::Missing { field: key })
}

/// Required field parsed with `FromStr` (Java `Integer.parseInt`/`Long.parseLong` accept the
/// same decimal forms as Rust's integer parsing: optional sign, digits, no spaces).
pub fn ext_parse<T: FromStr>(
    ext: &ExtFields,
    key: &'static str,
    expected: &'static str,
) -> Result<T, HeaderError> {
    let raw = ext_str(ext, key)?;
    raw.parse().map_err(|_| HeaderError::Malformed {
        field: key,
        value: raw.to_owned(),
        expected,
    })
}

/// Optional field parsed with `FromStr`.
pub fn ext_opt_parse<T: FromStr>(
    ext: &ExtFields,
    key: &'static str,
    expected: &'static str,
) -> Result<Option<T>, HeaderError> {
    if ext.contains_key(key) {
        ext_parse(ext, key, expected).map(Some)
    } else {
        Ok(None)
    }
}

/// Java `Boolean.parseBoolean`: case-insensitive "true" is true, anything else false.
pub fn parse_java_bool(s: &str) -> bool {
    s.eq_ignore_ascii_case("true")
}

/// Required boolean field (only its presence can fail; see [`parse_java_bool`]).
pub fn ext_bool(ext: &ExtFields, key: &'static str) -> Result<bool, HeaderError> {
    ext_str(ext, key).map(parse_java_bool)
}

/// Optional boolean field.
pub fn ext_opt_bool(ext: &ExtFields, key: &str) -> Option<bool> {
    ext.get(key).map(parse_java_bool)
}

/// Inserts `value` under `key` if it is `Some`, rendered with `Display`.
pub fn put_opt<T: Display>(ext: &mut ExtFields, key: &str, value: Option<T>) {
    if let Some(v) = value {
        ext.insert_display(key, v);
    }
}

/// Inserts `value` under `key`, rendered with `Display`.
pub fn put<T: Display>(ext: &mut ExtFields, key: &str, value: T) {
    ext.insert_display(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::RequestCode;

    #[test]
    fn response_to_copies_opaque_and_encoding() {
        let mut req = RemotingCommand::request(RequestCode::GetRouteinfoByTopic)
            .with_serialize_type(SerializeType::RocketMq);
        req.opaque = 42;
        let resp = RemotingCommand::response_to(&req);
        assert!(resp.is_response());
        assert!(!resp.is_oneway());
        assert_eq!(resp.opaque, 42);
        assert_eq!(resp.code, 0);
        assert_eq!(resp.serialize_type, SerializeType::RocketMq);
    }

    #[test]
    fn not_supported_has_java_remark() {
        let req = RemotingCommand::request(9999);
        let resp = RemotingCommand::not_supported(&req);
        assert_eq!(resp.code, 3);
        assert_eq!(
            resp.remark.as_deref(),
            Some(" request type 9999 not supported")
        );
    }

    #[test]
    fn typed_getters_report_missing_and_malformed() {
        let req = RemotingCommand::request(10)
            .with_ext("topic", "T")
            .with_ext("queueId", "x1")
            .with_ext("offset", -5i64)
            .with_ext("order", "TRUE")
            .with_ext("unit", "yes");
        assert_eq!(req.ext_str("topic"), Ok("T"));
        assert_eq!(
            req.ext_str("group"),
            Err(HeaderError::Missing { field: "group" })
        );
        assert!(matches!(
            req.ext_i32("queueId"),
            Err(HeaderError::Malformed {
                field: "queueId",
                ..
            })
        ));
        assert_eq!(req.ext_i64("offset"), Ok(-5));
        assert_eq!(req.ext_bool("order"), Ok(true));
        assert_eq!(req.ext_bool("unit"), Ok(false));
        assert_eq!(req.ext_opt_i32("absent"), Ok(None));
        assert_eq!(req.ext_opt_bool("absent"), None);
        assert_eq!(
            req.ext_str("group").unwrap_err().to_string(),
            "the custom field <group> is null"
        );
    }

    #[test]
    fn empty_remark_is_none() {
        assert_eq!(RemotingCommand::response(0, "").remark, None);
        assert_eq!(
            RemotingCommand::response(1, "boom").remark.as_deref(),
            Some("boom")
        );
    }
}
