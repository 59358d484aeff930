//! RocketMQ's JSON dialect (fastjson) for bodies.

/// A JSON body could not be parsed or does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON body at byte {offset}: {reason}")]
pub struct JsonError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}
