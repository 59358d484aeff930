//! The RocketMQ remoting protocol.
