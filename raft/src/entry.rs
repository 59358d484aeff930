//! Mapping between openraft entries and the store's commitlog records.
//!
//! | openraft payload | record kind | record payload |
//! |---|---|---|
//! | `Blank` | `Blank` | empty |
//! | `Membership(m)` | `Membership` | version byte + bincode(m) |
//! | `Normal(PutMessages { bytes })` | `Messages` | the stored-message bytes as they are |
//! | `Normal(any other command)` | `Command` | version byte + bincode(command) |
//!
//! Message batches are never re-encoded: the record payload *is* the RocketMQ batch (with
//! PHYSICALOFFSET patched by the store), so pulls can serve it unchanged. The record header
//! (index, term, leader) carries openraft's `LogId`.

use bytes::Bytes;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use raftmq_store::commitlog::{EntryId, EntryKind, NewEntry, StoredEntry};

use crate::codec::{self, CodecError};
use crate::command::BrokerCommand;
use crate::types::{typ, NodeId};

/// A record that does not decode into an openraft entry.
#[derive(Debug, thiserror::Error)]
#[error("record at index {index} (kind {kind:?}): {source}")]
pub struct EntryDecodeError {
    pub index: u64,
    pub kind: EntryKind,
    #[source]
    pub source: CodecError,
}

pub fn entry_id(log_id: &LogId<NodeId>) -> EntryId {
    EntryId {
        index: log_id.index,
        term: log_id.leader_id.term,
        leader: log_id.leader_id.node_id,
    }
}

pub fn log_id(id: &EntryId) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(id.term, id.leader), id.index)
}

/// The record to append for `e`.
pub fn to_new_entry(e: &typ::Entry) -> Result<NewEntry, CodecError> {
    let (kind, payload) = match &e.payload {
        EntryPayload::Blank => (EntryKind::Blank, Bytes::new()),
        EntryPayload::Membership(m) => (
            EntryKind::Membership,
            Bytes::from(codec::encode_versioned(m)?),
        ),
        EntryPayload::Normal(BrokerCommand::PutMessages { bytes }) => {
            (EntryKind::Messages, bytes.clone())
        }
        EntryPayload::Normal(cmd) => (
            EntryKind::Command,
            Bytes::from(codec::encode_versioned(cmd)?),
        ),
    };
    Ok(NewEntry {
        id: entry_id(&e.log_id),
        kind,
        payload,
    })
}

/// The openraft entry stored in `s`.
pub fn from_stored(s: StoredEntry) -> Result<typ::Entry, EntryDecodeError> {
    let err = |source| EntryDecodeError {
        index: s.id.index,
        kind: s.kind,
        source,
    };
    let payload = match s.kind {
        EntryKind::Blank => EntryPayload::Blank,
        EntryKind::Membership => {
            EntryPayload::Membership(codec::decode_versioned(&s.payload).map_err(err)?)
        }
        EntryKind::Messages => EntryPayload::Normal(BrokerCommand::PutMessages {
            bytes: s.payload.clone(),
        }),
        EntryKind::Command => {
            let cmd: BrokerCommand = codec::decode_versioned(&s.payload).map_err(err)?;
            if matches!(cmd, BrokerCommand::PutMessages { .. }) {
                // Message batches are always stored as `Messages` records.
                return Err(err(CodecError::Invalid(
                    "message batch in a command record",
                )));
            }
            EntryPayload::Normal(cmd)
        }
    };
    Ok(typ::Entry {
        log_id: log_id(&s.id),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::types::PeerNode;

    fn stored(n: NewEntry, pos: u64) -> StoredEntry {
        StoredEntry {
            id: n.id,
            kind: n.kind,
            pos,
            payload: n.payload,
        }
    }

    #[test]
    fn every_payload_roundtrips_through_a_record() {
        let lid = LogId::new(CommittedLeaderId::new(3, 2), 17);
        let members: BTreeMap<NodeId, PeerNode> = (0..3)
            .map(|i| (i, PeerNode::new(format!("127.0.0.1:{}", 4000 + i))))
            .collect();
        let membership = openraft::Membership::new(
            vec![members.keys().copied().collect::<BTreeSet<_>>()],
            members,
        );
        let payloads = vec![
            EntryPayload::Blank,
            EntryPayload::Membership(membership),
            EntryPayload::Normal(BrokerCommand::PutMessages {
                bytes: Bytes::from_static(b"raw stored messages"),
            }),
            EntryPayload::Normal(BrokerCommand::DeleteTopic { topic: "t".into() }),
        ];
        for payload in payloads {
            let e = typ::Entry {
                log_id: lid,
                payload,
            };
            let rec = to_new_entry(&e).unwrap();
            assert_eq!(
                rec.id,
                EntryId {
                    index: 17,
                    term: 3,
                    leader: 2
                }
            );
            let back = from_stored(stored(rec, 4096)).unwrap();
            assert_eq!(back.log_id, e.log_id);
            assert_eq!(format!("{:?}", back.payload), format!("{:?}", e.payload));
        }
    }

    #[test]
    fn messages_are_stored_raw() {
        let e = typ::Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), 1),
            payload: EntryPayload::Normal(BrokerCommand::PutMessages {
                bytes: Bytes::from_static(b"abc"),
            }),
        };
        let rec = to_new_entry(&e).unwrap();
        assert_eq!(rec.kind, EntryKind::Messages);
        assert_eq!(&rec.payload[..], b"abc");
    }

    #[test]
    fn corrupt_payloads_are_errors() {
        let id = EntryId {
            index: 5,
            term: 1,
            leader: 0,
        };
        for kind in [EntryKind::Membership, EntryKind::Command] {
            let s = StoredEntry {
                id,
                kind,
                pos: 0,
                payload: Bytes::from_static(&[1, 0xff, 0xff]),
            };
            assert!(from_stored(s).is_err());
        }
        // A PutMessages command smuggled into a Command record is refused.
        let s = StoredEntry {
            id,
            kind: EntryKind::Command,
            pos: 0,
            payload: Bytes::from(
                codec::encode_versioned(&BrokerCommand::PutMessages {
                    bytes: Bytes::new(),
                })
                .unwrap(),
            ),
        };
        assert!(from_stored(s).is_err());
    }
}
