//! raftmq group administration headers (request codes 9101..=9105, docs/admin.md).
//!
//! Node ids are written as DLedger names (`n3`); a bare number is accepted too.

use super::command_header;

command_header! {
    /// RAFTMQ_ADD_LEARNER (9102) request.
    pub struct AddLearnerRequestHeader {
        /// The new member's id, `n<number>`; it must not be a member already.
        node_id: String => "nodeId",
        /// `host:port` of the new member's Raft transport (its `dLegerPeers` entry).
        raft_addr: String => "raftAddr",
        /// `host:port` its broker serves clients on; recorded in the membership.
        broker_addr: Option<String> => "brokerAddr",
        /// How long to wait for the learner to catch up (default 30 000).
        timeout_millis: Option<i64> => "timeoutMillis",
    }
}

command_header! {
    /// RAFTMQ_PROMOTE (9103), RAFTMQ_REMOVE_NODE (9104) and RAFTMQ_TRANSFER_LEADER (9105)
    /// request: the member the change is about.
    pub struct GroupNodeRequestHeader {
        node_id: String => "nodeId",
        /// How long the change may take (default 30 000).
        timeout_millis: Option<i64> => "timeoutMillis",
    }
}
