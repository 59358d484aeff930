//! Error types of the remoting layer.
//!
//! Three tiers, each with the context needed to act on it:
//! * [`CodecError`]: the byte stream is not a valid frame; the connection is closed.
//! * [`HeaderError`]: a frame was valid but a header (ext field) is missing or malformed;
//!   the request gets an error response and the connection stays open.
//! * [`RemotingError`]: what a caller of the client/server API sees (I/O, timeouts, closed
//!   connections, codec failures).

use std::net::SocketAddr;
use std::time::Duration;

/// The bytes on a connection do not form a valid RocketMQ frame.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The length word announces a frame larger than the configured maximum.
    #[error("frame of {length} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge { length: u64, max: usize },
    /// The length word is negative or too small to hold the header-length word.
    #[error("frame length {length} is too small (at least 4 bytes must follow the length word)")]
    FrameTooShort { length: i64 },
    /// The header length (low 24 bits of the second word) points past the end of the frame.
    #[error("header length {header_len} exceeds the {available} bytes left in the frame")]
    HeaderPastFrame { header_len: usize, available: usize },
    /// The serialize-type byte is neither 0 (JSON) nor 1 (ROCKETMQ).
    #[error("unknown serialize type {value}")]
    UnknownSerializeType { value: u8 },
    /// A JSON header that does not parse or lacks a required field.
    #[error("invalid JSON header: {reason}")]
    JsonHeader { reason: String },
    /// A ROCKETMQ binary header that is truncated or has impossible lengths.
    #[error("invalid binary header at byte {offset}: {reason}")]
    BinaryHeader { offset: usize, reason: &'static str },
    /// A header string is not UTF-8.
    #[error("header field {field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    /// The command cannot be represented on the wire.
    #[error("command cannot be encoded: {reason}")]
    Unencodable { reason: String },
}

/// A typed header could not be read from the ext fields of a command.
///
/// The messages follow Java RocketMQ's wording where one exists, so operators see the same
/// text from either implementation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A required field is absent.
    #[error("the custom field <{field}> is null")]
    Missing { field: &'static str },
    /// A field is present but does not parse as the expected type.
    #[error("the custom field <{field}> has value {value:?}, expected {expected}")]
    Malformed {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Failure of a client or server operation.
#[derive(Debug, thiserror::Error)]
pub enum RemotingError {
    /// Socket-level failure, with the peer it concerned.
    #[error("I/O error with {peer}: {source}")]
    Io {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    /// Binding the listening socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The peer sent bytes that are not a valid frame (the connection is closed).
    #[error("protocol error with {peer}: {source}")]
    Codec {
        peer: String,
        #[source]
        source: CodecError,
    },
    /// A command could not be encoded.
    #[error(transparent)]
    Encode(CodecError),
    /// No response arrived in time; the pending entry has been removed.
    #[error("request {opaque} (code {code}) to {peer} timed out after {timeout:?}")]
    Timeout {
        peer: String,
        code: i32,
        opaque: i32,
        timeout: Duration,
    },
    /// The peer is not reading: its write queue is full.
    #[error("write queue to {peer} is full")]
    Backpressure { peer: SocketAddr },
    /// The connection closed before the operation could complete.
    #[error("connection to {peer} is closed")]
    ConnectionClosed { peer: SocketAddr },
}

/// Why a processor could not produce a response. The server turns it into a
/// `SYSTEM_ERROR` response whose remark is this error's text (as Java does with exceptions).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A required or well-formed ext field was not supplied.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// A JSON body did not parse.
    #[error(transparent)]
    Json(#[from] super::json::JsonError),
    /// A call the processor made failed.
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// Anything else, described for the client.
    #[error("{0}")]
    Other(String),
}

impl ProcessError {
    /// A free-text failure.
    pub fn msg(text: impl Into<String>) -> Self {
        ProcessError::Other(text.into())
    }
}
