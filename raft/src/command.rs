//! The replicated command (openraft's `D`) and its result (openraft's `R`).
//!
//! Every write of a broker group is one [`BrokerCommand`] carried by one Raft entry: a batch of
//! messages already in RocketMQ's stored-message layout (queue offsets assigned by the leader's
//! proposer), consumer-offset commits, topic and subscription-group changes. This module knows
//! the *shape* of those writes; it does not know the remoting protocol that produced them, nor
//! the files the state machine updates with them.
//!
//! New variants are only ever appended at the end: the stored encoding is bincode's variant
//! index behind a version byte (see [`crate::codec`]), so renumbering would break old logs.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One replicated broker write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerCommand {
    /// Concatenated RocketMQ stored messages (protocol layout, big-endian), queue offsets and
    /// store timestamps already assigned. The log store keeps these bytes as they are (only the
    /// PHYSICALOFFSET fields are patched with the record position).
    PutMessages {
        #[serde(with = "bytes_serde")]
        bytes: Bytes,
    },
    /// Consumer offset commits, applied in order.
    CommitOffsets { offsets: Vec<OffsetCommit> },
    /// Create or replace a topic's configuration.
    UpsertTopic { topic: TopicConfig },
    /// Remove a topic's configuration.
    DeleteTopic { topic: String },
    /// Create or replace a subscription group's configuration.
    UpsertSubscriptionGroup { group: SubscriptionGroupConfig },
    /// Remove a subscription group.
    DeleteSubscriptionGroup { group: String },
    // Reserved for transaction decisions and delay-level bookkeeping: append new variants here.
}

impl BrokerCommand {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            BrokerCommand::PutMessages { .. } => "put_messages",
            BrokerCommand::CommitOffsets { .. } => "commit_offsets",
            BrokerCommand::UpsertTopic { .. } => "upsert_topic",
            BrokerCommand::DeleteTopic { .. } => "delete_topic",
            BrokerCommand::UpsertSubscriptionGroup { .. } => "upsert_subscription_group",
            BrokerCommand::DeleteSubscriptionGroup { .. } => "delete_subscription_group",
        }
    }
}

/// One consumer offset commit: `group` has consumed `topic`/`queue_id` up to `offset` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommit {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub offset: i64,
}

/// Topic and subscription-group rows are the metadata tables' own types: the command
/// carries exactly what the state machine stores.
pub use raftmq_store::metadata::{SubscriptionGroupConfig, TopicConfig};

/// What applying one entry produced (openraft's `R`): one per entry, in log order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// For [`BrokerCommand::PutMessages`]: every message of the batch, in batch order.
    /// Empty for every other entry.
    pub messages: Vec<AppendedMessage>,
}

/// Where one message of a committed batch landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedMessage {
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    /// Commitlog position of the message (identical on every replica).
    pub phys_offset: i64,
    pub size: i32,
    pub store_timestamp: i64,
}

/// serde for [`Bytes`] as a byte string (the `bytes` crate is built without its serde feature).
mod bytes_serde {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let v: serde_bytes_vec::ByteBuf = Deserialize::deserialize(d)?;
        Ok(Bytes::from(v.0))
    }

    /// A `Vec<u8>` that deserializes from a byte string (bincode) or a sequence.
    mod serde_bytes_vec {
        use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
        use std::fmt;

        pub struct ByteBuf(pub Vec<u8>);

        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a byte string")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                        while let Some(b) = seq.next_element::<u8>()? {
                            out.push(b);
                        }
                        Ok(ByteBuf(out))
                    }
                }
                d.deserialize_byte_buf(V)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn put_messages_roundtrips_through_bincode() {
        let cmd = BrokerCommand::PutMessages {
            bytes: Bytes::from_static(b"\x00\x01stored-messages"),
        };
        let enc = codec::encode_versioned(&cmd).unwrap();
        assert_eq!(codec::decode_versioned::<BrokerCommand>(&enc).unwrap(), cmd);
    }

    #[test]
    fn every_command_roundtrips() {
        let cmds = vec![
            BrokerCommand::CommitOffsets {
                offsets: vec![OffsetCommit {
                    group: "g".into(),
                    topic: "t".into(),
                    queue_id: 3,
                    offset: 42,
                }],
            },
            BrokerCommand::UpsertTopic {
                topic: TopicConfig::new("t"),
            },
            BrokerCommand::DeleteTopic { topic: "t".into() },
            BrokerCommand::UpsertSubscriptionGroup {
                group: SubscriptionGroupConfig::new("g"),
            },
            BrokerCommand::DeleteSubscriptionGroup { group: "g".into() },
        ];
        for cmd in cmds {
            let enc = codec::encode_versioned(&cmd).unwrap();
            assert_eq!(codec::decode_versioned::<BrokerCommand>(&enc).unwrap(), cmd);
        }
    }

    #[test]
    fn variant_indexes_are_stable() {
        // The stored encoding is the variant index; pin it so a reorder fails here.
        let enc = codec::encode(&BrokerCommand::DeleteTopic {
            topic: String::new(),
        })
        .unwrap();
        assert_eq!(&enc[..4], &3u32.to_be_bytes());
    }
}
