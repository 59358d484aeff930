//! The RocketMQ remoting protocol: frames, commands, codes, typed headers, the JSON dialect of
//! bodies, and a TCP server and client speaking it.
//!
//! Owns everything about the wire and nothing about what requests mean: the broker and the
//! nameserver plug in through [`Processor`]. Layout:
//! - [`code`]: request/response/language codes, stable numbers in one place.
//! - [`command`]: [`RemotingCommand`], ext-field getters, the [`CommandHeader`] trait.
//! - [`header`]: typed custom headers of every request served.
//! - [`codec`]: frame encode/decode (two-phase), JSON and ROCKETMQ binary headers.
//! - [`body`]: client ⇄ broker JSON bodies (heartbeat, locks, offset tables, ...).
//! - [`json`]: the fastjson dialect of bodies (lenient reader, quoted-key/object-key writers).
//! - [`connection`]: one full-duplex connection, [`Processor`], [`ConnContext`].
//! - [`server`]: [`RemotingServer`] (accept loop, limits, shutdown).
//! - [`client`]: [`RemotingClient`] (one lazily reconnecting connection).
//! - [`error`]: error types.
//!
//! Serving a request code and calling it:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use raftmq::remoting::header::namesrv::GetRouteInfoRequestHeader;
//! use raftmq::remoting::*;
//!
//! struct Routes;
//!
//! impl Processor for Routes {
//!     fn process<'a>(&'a self, _ctx: &'a ConnContext, req: RemotingCommand)
//!         -> BoxFuture<'a, ProcessResult>
//!     {
//!         Box::pin(async move {
//!             // A missing `topic` becomes SYSTEM_ERROR "the custom field <topic> is null".
//!             let h: GetRouteInfoRequestHeader = req.decode_header()?;
//!             Ok(Some(RemotingCommand::error_to(&req, ResponseCode::TopicNotExist,
//!                 format!("No topic route info in name server for the topic: {}", h.topic))))
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), RemotingError> {
//! let table = ProcessorTable::new().register([RequestCode::GetRouteinfoByTopic], Arc::new(Routes));
//! let server = RemotingServer::bind("127.0.0.1:0", Arc::new(table), ServerConfig::default()).await?;
//! let client = RemotingClient::new(server.local_addr().to_string(), ClientConfig::default());
//! let resp = client
//!     .invoke(
//!         RemotingCommand::request(RequestCode::GetRouteinfoByTopic).with_ext("topic", "T"),
//!         Duration::from_secs(3),
//!     )
//!     .await?;
//! assert_eq!(resp.response_code(), Some(ResponseCode::TopicNotExist));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod body;
pub mod client;
pub mod code;
pub mod codec;
pub mod command;
pub mod connection;
pub mod error;
pub mod ext;
pub mod header;
pub mod json;
pub mod server;

#[cfg(test)]
mod proptests;

pub use client::{ClientConfig, RemotingClient};
pub use code::{LanguageCode, RequestCode, ResponseCode};
pub use codec::{FrameCodec, DEFAULT_MAX_FRAME};
pub use command::{CommandHeader, ExtFields, RemotingCommand, SerializeType};
pub use connection::{
    BoxFuture, ConnContext, NotSupportedProcessor, ProcessResult, Processor, ProcessorTable,
};
pub use error::{CodecError, HeaderError, ProcessError, RemotingError};
pub use server::{RemotingServer, ServerConfig, ServerHandle};
