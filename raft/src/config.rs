//! Configuration of one broker group's Raft node: who the peers are and how fast to react.
//!
//! Built from RocketMQ DLedger keys (`dLegerGroup`, `dLegerPeers`, `dLegerSelfId`) plus the
//! timeouts and batch sizes of this crate. [`RaftGroupConfig::validate`] runs before anything
//! starts and includes openraft's own `Config::validate`. This module does not read files:
//! the broker's config loader hands the values over.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;
use crate::types::{NodeId, PeerNode};

/// Raft settings of one node of a broker group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftGroupConfig {
    /// `dLegerGroup`: the group name; peers of another group are refused at handshake.
    pub group: String,
    /// `dLegerSelfId`: this node's id (`n1` → 1).
    pub self_id: NodeId,
    /// `dLegerPeers`: every voter of the group, this node included.
    pub peers: BTreeMap<NodeId, PeerNode>,
    /// Leader heartbeat period. Default 50 ms; must be below `election_timeout_min`.
    /// openraft checks its timers every 1.5 heartbeat periods.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomized election timeout. Default 200 ms.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout, and also the leader lease: a
    /// follower that saw a leader campaigns only after the lease plus its own timeout (drawn
    /// once in `[min, max)` when the node starts) without hearing from it, so a dead
    /// leader is replaced after `max + [min, max)`. Default 300 ms.
    pub election_timeout_max: Duration,
    /// Timeout of one snapshot chunk transfer. Default 10 s.
    pub install_snapshot_timeout: Duration,
    /// Most entries in one AppendEntries RPC. Entries are message batches. Default 64.
    pub max_payload_entries: u64,
    /// Byte cap of one replication read (at least one entry is always sent). Default 8 MiB.
    pub replication_max_bytes: usize,
    /// Largest peer-transport frame accepted or sent. Default 64 MiB; must exceed
    /// `replication_max_bytes` plus the largest single entry.
    pub max_frame_bytes: usize,
    /// Timeout of one TCP connect to a peer. Default 1 s.
    pub connect_timeout: Duration,
    /// Most simultaneous inbound peer connections. Default 64.
    pub max_inbound_connections: usize,
    /// Proposer: most payload bytes merged into one entry. Default 1 MiB.
    pub max_batch_bytes: usize,
    /// Proposer: most commands merged into one entry. Default 1024.
    pub max_batch_commands: usize,
    /// Proposer: most batches proposed but not yet committed. Default 2.
    pub max_inflight_batches: usize,
}

impl RaftGroupConfig {
    /// Default leader heartbeat period.
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(50);
    /// Default lower bound of the election timeout.
    pub const DEFAULT_ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(200);
    /// Default upper bound of the election timeout (and leader lease).
    pub const DEFAULT_ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(300);

    /// Defaults for everything but the peer set.
    pub fn new(
        group: impl Into<String>,
        self_id: NodeId,
        peers: BTreeMap<NodeId, PeerNode>,
    ) -> Self {
        RaftGroupConfig {
            group: group.into(),
            self_id,
            peers,
            heartbeat_interval: Self::DEFAULT_HEARTBEAT_INTERVAL,
            election_timeout_min: Self::DEFAULT_ELECTION_TIMEOUT_MIN,
            election_timeout_max: Self::DEFAULT_ELECTION_TIMEOUT_MAX,
            install_snapshot_timeout: Duration::from_secs(10),
            max_payload_entries: 64,
            replication_max_bytes: 8 << 20,
            max_frame_bytes: 64 << 20,
            connect_timeout: Duration::from_secs(1),
            max_inbound_connections: 64,
            max_batch_bytes: 1 << 20,
            max_batch_commands: 1024,
            max_inflight_batches: 2,
        }
    }

    /// Build from the DLedger keys of a `broker.conf`, e.g. `dLegerGroup=broker-a`,
    /// `dLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913`, `dLegerSelfId=n0`.
    pub fn from_dledger(group: &str, peers: &str, self_id: &str) -> Result<Self, ConfigError> {
        let peers = parse_peers(peers)?;
        let self_id = parse_node_id(self_id)?;
        let cfg = RaftGroupConfig::new(group, self_id, peers);
        cfg.validate()?;
        Ok(cfg)
    }

    /// This node's own entry in `peers`.
    pub fn self_node(&self) -> Option<&PeerNode> {
        self.peers.get(&self.self_id)
    }

    /// Check every field; returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.group.is_empty() {
            return invalid("dLegerGroup", "must not be empty".into());
        }
        if self.group.len() > 255 {
            return invalid("dLegerGroup", "longer than 255 bytes".into());
        }
        if self.peers.is_empty() {
            return invalid("dLegerPeers", "no peers".into());
        }
        if !self.peers.contains_key(&self.self_id) {
            return invalid(
                "dLegerSelfId",
                format!(
                    "n{} is not one of dLegerPeers {:?}",
                    self.self_id,
                    self.peers.keys()
                ),
            );
        }
        for (id, node) in &self.peers {
            check_addr(&node.raft_addr).map_err(|reason| ConfigError::Invalid {
                key: "dLegerPeers",
                reason: format!("n{id}: {reason}"),
            })?;
        }
        if self.replication_max_bytes == 0 {
            return invalid("replication_max_bytes", "must be > 0".into());
        }
        if self.max_frame_bytes <= self.replication_max_bytes {
            return invalid(
                "max_frame_bytes",
                format!(
                    "{} must exceed replication_max_bytes {}",
                    self.max_frame_bytes, self.replication_max_bytes
                ),
            );
        }
        if u32::try_from(self.max_frame_bytes).is_err() {
            return invalid("max_frame_bytes", "must fit in u32".into());
        }
        if self.max_batch_bytes == 0
            || self.max_batch_commands == 0
            || self.max_inflight_batches == 0
        {
            return invalid("max_batch_*", "batch limits must be > 0".into());
        }
        if self.max_batch_bytes >= self.replication_max_bytes {
            return invalid(
                "max_batch_bytes",
                "must be below replication_max_bytes so one entry always fits a replication read"
                    .into(),
            );
        }
        if self.connect_timeout.is_zero() || self.max_inbound_connections == 0 {
            return invalid(
                "connect_timeout",
                "connect timeout and connection limit must be > 0".into(),
            );
        }
        self.to_openraft().map(|_| ())
    }

    /// openraft's configuration derived from ours (snapshots and purges are never automatic).
    pub fn to_openraft(&self) -> Result<Arc<openraft::Config>, ConfigError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let cfg = openraft::Config {
            cluster_name: self.group.clone(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            install_snapshot_timeout: ms(self.install_snapshot_timeout),
            max_payload_entries: self.max_payload_entries,
            replication_lag_threshold: 1000,
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            ..Default::default()
        };
        let cfg = cfg.validate().map_err(|e| ConfigError::Invalid {
            key: "raft timeouts",
            reason: e.to_string(),
        })?;
        Ok(Arc::new(cfg))
    }
}

/// Parse a DLedger node id: `n0` → 0 (a bare `0` is accepted too).
pub fn parse_node_id(s: &str) -> Result<NodeId, ConfigError> {
    let t = s.trim();
    let digits = t.strip_prefix(['n', 'N']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::Invalid {
            key: "dLegerSelfId",
            reason: format!("node id {s:?} is not of the form n<number>"),
        });
    }
    digits.parse().map_err(|_| ConfigError::Invalid {
        key: "dLegerSelfId",
        reason: format!("node id {s:?} out of range"),
    })
}

/// Parse `dLegerPeers`: `n0-127.0.0.1:40911;n1-127.0.0.1:40912`. Empty items are skipped;
/// duplicate ids or addresses are errors.
pub fn parse_peers(s: &str) -> Result<BTreeMap<NodeId, PeerNode>, ConfigError> {
    let bad = |reason: String| ConfigError::Invalid {
        key: "dLegerPeers",
        reason,
    };
    let mut peers = BTreeMap::new();
    for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('-')
            .ok_or_else(|| bad(format!("{item:?} is not <id>-<host:port>")))?;
        let id = parse_node_id(id).map_err(|_| bad(format!("{item:?}: bad node id {id:?}")))?;
        let addr = addr.trim();
        check_addr(addr).map_err(|r| bad(format!("{item:?}: {r}")))?;
        if peers.values().any(|p: &PeerNode| p.raft_addr == addr) {
            return Err(bad(format!("address {addr} listed twice")));
        }
        if peers.insert(id, PeerNode::new(addr)).is_some() {
            return Err(bad(format!("node n{id} listed twice")));
        }
    }
    if peers.is_empty() {
        return Err(bad("no peers".into()));
    }
    Ok(peers)
}

fn check_addr(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("address {addr:?} lacks :port"))?;
    if host.is_empty() {
        return Err(format!("address {addr:?} lacks a host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("address {addr:?} has a bad port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dledger_keys() {
        let cfg = RaftGroupConfig::from_dledger(
            "broker-a",
            "n0-127.0.0.1:40911; n1-127.0.0.1:40912;n2-127.0.0.1:40913;",
            "n1",
        )
        .unwrap();
        assert_eq!(cfg.self_id, 1);
        assert_eq!(cfg.peers.len(), 3);
        assert_eq!(cfg.peers[&2].raft_addr, "127.0.0.1:40913");
        assert_eq!(cfg.self_node().unwrap().raft_addr, "127.0.0.1:40912");
        let oc = cfg.to_openraft().unwrap();
        assert_eq!(oc.snapshot_policy, openraft::SnapshotPolicy::Never);
        assert_eq!(oc.max_in_snapshot_log_to_keep, u64::MAX);
        assert_eq!(oc.cluster_name, "broker-a");
    }

    #[test]
    fn rejects_bad_peers() {
        for bad in [
            "",
            "n0",
            "n0-127.0.0.1",
            "nx-127.0.0.1:1",
            "n0-127.0.0.1:0",
            "n0-:1",
            "n0-127.0.0.1:1;n0-127.0.0.1:2",
            "n0-127.0.0.1:1;n1-127.0.0.1:1",
            "n0-127.0.0.1:99999",
        ] {
            assert!(parse_peers(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_node_id("n").is_err());
        assert!(parse_node_id("n-1").is_err());
        assert_eq!(parse_node_id("7").unwrap(), 7);
    }

    #[test]
    fn validate_rejects_inconsistent_settings() {
        let peers = parse_peers("n0-127.0.0.1:1").unwrap();
        assert!(RaftGroupConfig::new("g", 1, peers.clone())
            .validate()
            .is_err());
        assert!(RaftGroupConfig::new("", 0, peers.clone())
            .validate()
            .is_err());
        let mut c = RaftGroupConfig::new("g", 0, peers.clone());
        c.heartbeat_interval = c.election_timeout_min;
        assert!(c.validate().is_err());
        let mut c = RaftGroupConfig::new("g", 0, peers.clone());
        c.election_timeout_max = c.election_timeout_min;
        assert!(c.validate().is_err());
        let mut c = RaftGroupConfig::new("g", 0, peers.clone());
        c.max_frame_bytes = c.replication_max_bytes;
        assert!(c.validate().is_err());
        assert!(RaftGroupConfig::new("g", 0, peers).validate().is_ok());
    }
}
