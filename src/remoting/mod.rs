//! The RocketMQ remoting protocol: frames, commands, codes, typed headers, the JSON dialect of
//! bodies, and a TCP server and client speaking it.
//!
//! Owns everything about the wire and nothing about what requests mean: the broker and the
//! nameserver plug in through [`Processor`]. Layout:
//! - [`code`]: request/response/language codes, stable numbers in one place.
//! - [`command`]: [`RemotingCommand`], ext-field getters, the [`CommandHeader`] trait.
//! - [`codec`]: frame encode/decode (two-phase), JSON and ROCKETMQ binary headers.
//! - [`json`]: the fastjson dialect of bodies.
//! - [`error`]: error types.

pub mod code;
pub mod codec;
pub mod command;
pub mod error;
pub mod json;

pub use code::{LanguageCode, RequestCode, ResponseCode};
pub use codec::{FrameCodec, DEFAULT_MAX_FRAME};
pub use command::{CommandHeader, ExtFields, RemotingCommand, SerializeType};
pub use error::{CodecError, HeaderError, ProcessError, RemotingError};
