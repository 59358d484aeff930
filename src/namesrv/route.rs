//! `RouteInfoManager`: the nameserver's in-memory route registry (protocol.md §8).
//!
//! It owns which broker groups exist (by cluster and brokerName), the member addresses of each
//! group keyed by brokerId, the queue data of every topic, filter servers, and when each member
//! was last heard from. It is pure logic: no sockets, no clock of its own (callers pass `now`),
//! no JSON. The processor turns requests into calls here; the liveness task calls
//! [`RouteInfoManager::scan_expired`].
//!
//! # Raft groups
//!
//! A raftmq broker group is a Raft group: one brokerName, three members. The route must show the
//! current leader as brokerId 0 (the only id producers write to) and followers under their own
//! stable non-zero ids. The REGISTER_BROKER header carries, besides RocketMQ's fields, two ext
//! fields that Java brokers never send (see [`RaftInfo`]):
//!
//! * `raftTerm`: the Raft term the member is in when it registers;
//! * `raftNodeId`: its Raft node id (optional).
//!
//! A member that is leader registers with `brokerId=0`; a follower registers with its own id
//! (by convention `raftNodeId + 1`, as DLedger does with `selfIdNumber + 1`, so never 0).
//! Rules, applied per brokerName:
//!
//! 1. A leader claim (`brokerId=0` with `raftTerm`) whose term is lower than the term of the
//!    leader this group last accepted is **stale** and changes nothing (a deposed leader that
//!    has not noticed yet, or a delayed packet). [`RegisterOutcome::StaleTerm`] says so.
//! 2. A leader claim with an equal or higher term takes brokerId 0 at once. The member that held
//!    0 before is moved to a follower id: the last non-zero id it registered with, else
//!    `raftNodeId + 1`; if it has neither, or that id is taken by another address, it is dropped
//!    from the route until it re-registers as a follower.
//! 3. A member re-registering with a different brokerId (leader ↔ follower) is re-keyed at once:
//!    as in RocketMQ, an address appears under one id only.
//! 4. Registrations of one member are ordered by (term, leader?): one that orders before the
//!    member's last accepted registration is stale (requests may be processed out of order,
//!    and a node's role within a term only moves from follower/candidate to leader). So a
//!    late "follower of term 2" cannot undo "leader of term 2".
//!
//! A registration without `raftTerm` behaves exactly like classic RocketMQ: its brokerId is
//! taken as given and replaces whatever address held that id.
//!
//! Topic queue data is built only from the member that holds brokerId 0, as RocketMQ does, and
//! registration is merge-only: topics absent from a body are not removed (brokers send
//! incremental bodies after topic creation).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::bodies::{
    BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfigSerializeWrapper, TopicList,
    TopicRouteData, PERM_WRITE,
};

/// brokerId of the master; for a Raft group, of the current leader.
pub const MASTER_ID: i64 = 0;

/// Identifies the connection a registration arrived on, so that closing it removes the broker.
pub type ConnId = u64;

/// The Raft part of a registration (ext fields `raftTerm`, `raftNodeId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftInfo {
    pub term: u64,
    pub node_id: Option<u64>,
}

/// One REGISTER_BROKER request, already parsed.
#[derive(Debug, Clone)]
pub struct Registration {
    pub cluster_name: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub ha_server_addr: String,
    pub broker_id: i64,
    /// `None` for classic RocketMQ brokers.
    pub raft: Option<RaftInfo>,
    pub topic_config: TopicConfigSerializeWrapper,
    pub filter_server_list: Vec<String>,
    /// The connection it came over, if any (unit tests register without one).
    pub conn: Option<ConnId>,
    /// 5.x `heartbeatTimeoutMillis`: this broker's own expiry; `None` uses the configured one.
    pub heartbeat_timeout: Option<Duration>,
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The route now reflects the registration. For a member that is not the master, the
    /// current master's address and HA address (if there is a master).
    Accepted {
        master_addr: Option<String>,
        master_ha_addr: Option<String>,
    },
    /// A Raft registration older than what the route already reflects (a leader claim below
    /// the group's leader term, or a member going back in (term, role)); nothing changed.
    StaleTerm {
        claimed_term: u64,
        current_term: u64,
        leader_addr: Option<String>,
    },
}

/// A member removed from the route, for logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub cluster_name: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: i64,
}

#[derive(Debug, Clone)]
struct Member {
    /// The id this address is shown under in `brokerAddrs`.
    broker_id: i64,
    /// The last non-zero id this member registered with: where it goes when a newer leader
    /// displaces it before it re-registers itself.
    follower_id: Option<i64>,
    ha_server_addr: String,
    raft: Option<RaftInfo>,
    data_version: DataVersion,
    last_update: Instant,
    conn: Option<ConnId>,
    heartbeat_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
struct BrokerGroup {
    cluster: String,
    /// brokerAddr → member. Keyed by address so that one address has one id.
    members: BTreeMap<String, Member>,
    /// Term of the last accepted Raft leader claim. Kept after that leader goes away, so a
    /// deposed leader cannot come back with its old term while the group still exists.
    leader_term: Option<u64>,
}

impl BrokerGroup {
    fn master(&self) -> Option<(&String, &Member)> {
        self.members.iter().find(|(_, m)| m.broker_id == MASTER_ID)
    }

    fn broker_data(&self, broker_name: &str) -> BrokerData {
        BrokerData {
            cluster: self.cluster.clone(),
            broker_name: broker_name.to_string(),
            broker_addrs: self
                .members
                .iter()
                .map(|(addr, m)| (m.broker_id, addr.clone()))
                .collect(),
        }
    }
}

/// The route registry. Not thread-safe by itself; the nameserver wraps it in a lock.
#[derive(Debug, Default)]
pub struct RouteInfoManager {
    /// cluster → brokerNames.
    clusters: BTreeMap<String, BTreeSet<String>>,
    /// brokerName → group.
    groups: BTreeMap<String, BrokerGroup>,
    /// topic → brokerName → queue data.
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// brokerAddr → filter server addresses.
    filter_servers: BTreeMap<String, Vec<String>>,
}

impl RouteInfoManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a REGISTER_BROKER (see the module doc for the Raft rules).
    pub fn register(&mut self, reg: Registration, now: Instant) -> RegisterOutcome {
        let Registration {
            cluster_name,
            broker_name,
            broker_addr,
            ha_server_addr,
            broker_id,
            raft,
            topic_config,
            filter_server_list,
            conn,
            heartbeat_timeout,
        } = reg;

        // Rules 1 and 4: stale registrations change nothing.
        if let (Some(r), Some(group)) = (raft, self.groups.get(&broker_name)) {
            let stale = |current_term| RegisterOutcome::StaleTerm {
                claimed_term: r.term,
                current_term,
                leader_addr: group.master().map(|(a, _)| a.clone()),
            };
            if let Some(prev) = group.members.get(&broker_addr) {
                if let Some(prev_raft) = prev.raft {
                    let before = (prev_raft.term, prev.broker_id == MASTER_ID);
                    if (r.term, broker_id == MASTER_ID) < before {
                        return stale(prev_raft.term);
                    }
                }
            }
            if let (MASTER_ID, Some(current)) = (broker_id, group.leader_term) {
                if r.term < current {
                    return stale(current);
                }
            }
        }

        // The cluster may have changed in the config; keep one cluster per brokerName.
        if let Some(old) = self.groups.get(&broker_name).map(|g| g.cluster.clone()) {
            if old != cluster_name {
                self.remove_name_from_cluster(&old, &broker_name);
            }
        }
        self.clusters
            .entry(cluster_name.clone())
            .or_default()
            .insert(broker_name.clone());
        let group = self
            .groups
            .entry(broker_name.clone())
            .or_insert_with(|| BrokerGroup {
                cluster: cluster_name.clone(),
                members: BTreeMap::new(),
                leader_term: None,
            });
        group.cluster = cluster_name;

        // Free the id for this address: rule 2 for Raft leader claims, RocketMQ's
        // "one address per id" otherwise.
        let mut dropped = Vec::new();
        let holders: Vec<String> = group
            .members
            .iter()
            .filter(|(a, m)| m.broker_id == broker_id && **a != broker_addr)
            .map(|(a, _)| a.clone())
            .collect();
        for addr in holders {
            let demote_to = match (raft, broker_id) {
                (Some(_), MASTER_ID) => group.members.get(&addr).and_then(|m| {
                    m.follower_id.or_else(|| {
                        m.raft
                            .and_then(|r| r.node_id)
                            .and_then(|id| i64::try_from(id).ok())
                            .and_then(|id| id.checked_add(1))
                    })
                }),
                _ => None,
            }
            // Never show two addresses under one id.
            .filter(|id| *id != MASTER_ID && !group.members.values().any(|m| m.broker_id == *id));
            match demote_to {
                Some(id) => {
                    if let Some(m) = group.members.get_mut(&addr) {
                        m.broker_id = id;
                    }
                }
                None => {
                    group.members.remove(&addr);
                    dropped.push(addr);
                }
            }
        }
        if let (Some(r), MASTER_ID) = (raft, broker_id) {
            group.leader_term = Some(group.leader_term.map_or(r.term, |t| t.max(r.term)));
        }

        let previous = group.members.get(&broker_addr).cloned();
        let follower_id = if broker_id != MASTER_ID {
            Some(broker_id)
        } else {
            previous.as_ref().and_then(|p| p.follower_id)
        };
        group.members.insert(
            broker_addr.clone(),
            Member {
                broker_id,
                follower_id,
                ha_server_addr,
                raft,
                data_version: topic_config.data_version,
                last_update: now,
                conn,
                heartbeat_timeout,
            },
        );

        // Queue data only from the master, and only when something may have changed.
        let rebuild = broker_id == MASTER_ID
            && previous.as_ref().is_none_or(|p| {
                p.broker_id != MASTER_ID || p.data_version != topic_config.data_version
            });
        let master = group
            .master()
            .map(|(a, m)| (a.clone(), m.ha_server_addr.clone()));

        for addr in dropped {
            self.filter_servers.remove(&addr);
        }
        if rebuild {
            for tc in topic_config.topic_config_table.values() {
                self.topics
                    .entry(tc.topic_name.clone())
                    .or_default()
                    .insert(
                        broker_name.clone(),
                        QueueData::from_topic_config(&broker_name, tc),
                    );
            }
        }
        if filter_server_list.is_empty() {
            self.filter_servers.remove(&broker_addr);
        } else {
            self.filter_servers
                .insert(broker_addr.clone(), filter_server_list);
        }

        match master {
            Some((addr, ha)) if broker_id != MASTER_ID => RegisterOutcome::Accepted {
                master_addr: Some(addr),
                master_ha_addr: Some(ha),
            },
            _ => RegisterOutcome::Accepted {
                master_addr: None,
                master_ha_addr: None,
            },
        }
    }

    /// UNREGISTER_BROKER: removes the member at `broker_addr` of `broker_name`. Returns what
    /// was removed. The brokerId in the request is not needed to find it (an address has one
    /// id) and may be out of date after a role change.
    pub fn unregister(&mut self, broker_name: &str, broker_addr: &str) -> Option<Removed> {
        self.remove_member(broker_name, broker_addr)
    }

    /// Removes every member registered over connection `conn` (the connection closed).
    pub fn remove_by_conn(&mut self, conn: ConnId) -> Vec<Removed> {
        let victims: Vec<(String, String)> = self
            .groups
            .iter()
            .flat_map(|(name, g)| {
                g.members
                    .iter()
                    .filter(|(_, m)| m.conn == Some(conn))
                    .map(move |(addr, _)| (name.clone(), addr.clone()))
            })
            .collect();
        victims
            .into_iter()
            .filter_map(|(name, addr)| self.remove_member(&name, &addr))
            .collect()
    }

    /// Removes members not heard from for longer than their timeout (their own
    /// `heartbeatTimeoutMillis`, else `default_timeout`).
    pub fn scan_expired(&mut self, now: Instant, default_timeout: Duration) -> Vec<Removed> {
        let victims: Vec<(String, String)> = self
            .groups
            .iter()
            .flat_map(|(name, g)| {
                g.members
                    .iter()
                    .filter(move |(_, m)| {
                        let timeout = m.heartbeat_timeout.unwrap_or(default_timeout);
                        now.saturating_duration_since(m.last_update) > timeout
                    })
                    .map(move |(addr, _)| (name.clone(), addr.clone()))
            })
            .collect();
        victims
            .into_iter()
            .filter_map(|(name, addr)| self.remove_member(&name, &addr))
            .collect()
    }

    fn remove_member(&mut self, broker_name: &str, broker_addr: &str) -> Option<Removed> {
        let group = self.groups.get_mut(broker_name)?;
        let member = group.members.remove(broker_addr)?;
        let removed = Removed {
            cluster_name: group.cluster.clone(),
            broker_name: broker_name.to_string(),
            broker_addr: broker_addr.to_string(),
            broker_id: member.broker_id,
        };
        self.filter_servers.remove(broker_addr);
        if group.members.is_empty() {
            let cluster = group.cluster.clone();
            self.groups.remove(broker_name);
            self.remove_name_from_cluster(&cluster, broker_name);
            // The group is gone: its queues leave every topic; empty topics disappear.
            self.topics.retain(|_, per_broker| {
                per_broker.remove(broker_name);
                !per_broker.is_empty()
            });
        }
        Some(removed)
    }

    fn remove_name_from_cluster(&mut self, cluster: &str, broker_name: &str) {
        if let Some(names) = self.clusters.get_mut(cluster) {
            names.remove(broker_name);
            if names.is_empty() {
                self.clusters.remove(cluster);
            }
        }
    }

    /// QUERY_DATA_VERSION: whether the broker's topic-config version differs from what was
    /// registered, and the registered one. Counts as a heartbeat for a known member.
    pub fn query_data_version(
        &mut self,
        broker_name: &str,
        broker_addr: &str,
        theirs: &DataVersion,
        now: Instant,
    ) -> (bool, Option<DataVersion>) {
        let member = self
            .groups
            .get_mut(broker_name)
            .and_then(|g| g.members.get_mut(broker_addr));
        match member {
            None => (true, None),
            Some(m) => {
                m.last_update = now;
                let ours = m.data_version;
                (
                    ours.counter != theirs.counter || ours.timestamp != theirs.timestamp,
                    Some(ours),
                )
            }
        }
    }

    /// BROKER_HEARTBEAT (5.x): refreshes a registered member's liveness; `false` if unknown.
    pub fn heartbeat(&mut self, broker_name: &str, broker_addr: &str, now: Instant) -> bool {
        match self
            .groups
            .get_mut(broker_name)
            .and_then(|g| g.members.get_mut(broker_addr))
        {
            Some(m) => {
                m.last_update = now;
                true
            }
            None => false,
        }
    }

    /// TopicRouteData for `topic`, or `None` when the topic has no queue data or none of its
    /// broker groups is registered (the caller answers TOPIC_NOT_EXIST). `orderTopicConf` is
    /// left for the caller, which owns the KV config.
    pub fn topic_route(&self, topic: &str) -> Option<TopicRouteData> {
        let per_broker = self.topics.get(topic)?;
        let queue_datas: Vec<QueueData> = per_broker.values().cloned().collect();
        let broker_datas: Vec<BrokerData> = per_broker
            .keys()
            .filter_map(|name| self.groups.get(name).map(|g| g.broker_data(name)))
            .collect();
        if queue_datas.is_empty() || broker_datas.is_empty() {
            return None;
        }
        let filter_server_table = broker_datas
            .iter()
            .flat_map(|bd| bd.broker_addrs.values())
            .filter_map(|addr| {
                self.filter_servers
                    .get(addr)
                    .map(|list| (addr.clone(), list.clone()))
            })
            .collect();
        Some(TopicRouteData {
            order_topic_conf: None,
            queue_datas,
            broker_datas,
            filter_server_table,
        })
    }

    /// GET_BROKER_CLUSTER_INFO body.
    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self
                .groups
                .iter()
                .map(|(name, g)| (name.clone(), g.broker_data(name)))
                .collect(),
            cluster_addr_table: self
                .clusters
                .iter()
                .map(|(c, names)| (c.clone(), names.iter().cloned().collect()))
                .collect(),
        }
    }

    /// Every topic with queue data (GET_ALL_TOPIC_LIST_FROM_NAMESERVER).
    pub fn all_topics(&self) -> TopicList {
        TopicList {
            topic_list: self.topics.keys().cloned().collect(),
            broker_addr: None,
        }
    }

    /// Topics served by at least one broker group of `cluster` (GET_TOPICS_BY_CLUSTER).
    pub fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster);
        TopicList {
            topic_list: self
                .topics
                .iter()
                .filter(|(_, per)| {
                    names.is_some_and(|n| per.keys().any(|broker| n.contains(broker)))
                })
                .map(|(t, _)| t.clone())
                .collect(),
            broker_addr: None,
        }
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster names and brokerNames are topics too (brokers
    /// create them), plus one master address the admin tool may ask for the rest.
    pub fn system_topics(&self) -> TopicList {
        let mut topics: BTreeSet<String> = self.clusters.keys().cloned().collect();
        topics.extend(self.groups.keys().cloned());
        TopicList {
            topic_list: topics.into_iter().collect(),
            broker_addr: self
                .groups
                .values()
                .find_map(|g| g.master().map(|(a, _)| a.clone())),
        }
    }

    /// DELETE_TOPIC_IN_NAMESRV. With `cluster`, only that cluster's queue data goes (5.x);
    /// without, the topic goes entirely. Returns whether anything was removed.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) -> bool {
        match cluster {
            None => self.topics.remove(topic).is_some(),
            Some(cluster) => {
                let Some(names) = self.clusters.get(cluster) else {
                    return false;
                };
                let Some(per) = self.topics.get_mut(topic) else {
                    return false;
                };
                let before = per.len();
                per.retain(|broker, _| !names.contains(broker));
                let changed = per.len() != before;
                if per.is_empty() {
                    self.topics.remove(topic);
                }
                changed
            }
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER / ADD_WRITE_PERM_OF_BROKER: clears or sets the write bit of
    /// every queue data of `broker_name`; returns how many topics were touched.
    pub fn set_write_perm(&mut self, broker_name: &str, writable: bool) -> usize {
        let mut count = 0;
        for per in self.topics.values_mut() {
            if let Some(qd) = per.get_mut(broker_name) {
                qd.perm = if writable {
                    qd.perm | PERM_WRITE
                } else {
                    qd.perm & !PERM_WRITE
                };
                count += 1;
            }
        }
        count
    }

    /// Number of registered members (for logs and tests).
    pub fn member_count(&self) -> usize {
        self.groups.values().map(|g| g.members.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namesrv::bodies::TopicConfig;

    fn wrapper(counter: i64, topics: &[(&str, i32)]) -> TopicConfigSerializeWrapper {
        TopicConfigSerializeWrapper {
            data_version: DataVersion {
                counter,
                timestamp: 1,
                state_version: None,
            },
            topic_config_table: topics
                .iter()
                .map(|(t, q)| (t.to_string(), TopicConfig::new(t, *q)))
                .collect(),
        }
    }

    fn reg(name: &str, addr: &str, id: i64, raft: Option<(u64, u64)>) -> Registration {
        Registration {
            cluster_name: "C".into(),
            broker_name: name.into(),
            broker_addr: addr.into(),
            ha_server_addr: format!("{addr}-ha"),
            broker_id: id,
            raft: raft.map(|(term, node)| RaftInfo {
                term,
                node_id: Some(node),
            }),
            topic_config: wrapper(1, &[("T", 4)]),
            filter_server_list: vec![],
            conn: None,
            heartbeat_timeout: None,
        }
    }

    fn addrs(r: &RouteInfoManager, topic: &str) -> BTreeMap<i64, String> {
        r.topic_route(topic).unwrap().broker_datas[0]
            .broker_addrs
            .clone()
    }

    fn map(pairs: &[(i64, &str)]) -> BTreeMap<i64, String> {
        pairs.iter().map(|(i, a)| (*i, a.to_string())).collect()
    }

    #[test]
    fn classic_master_and_slave_route() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        assert_eq!(
            r.register(reg("a", "m:1", 0, None), now),
            RegisterOutcome::Accepted {
                master_addr: None,
                master_ha_addr: None
            }
        );
        assert_eq!(
            r.register(reg("a", "s:1", 1, None), now),
            RegisterOutcome::Accepted {
                master_addr: Some("m:1".into()),
                master_ha_addr: Some("m:1-ha".into())
            }
        );
        let route = r.topic_route("T").unwrap();
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        assert_eq!(route.queue_datas[0].perm, 6);
        assert_eq!(route.broker_datas[0].cluster, "C");
        assert_eq!(addrs(&r, "T"), map(&[(0, "m:1"), (1, "s:1")]));
        assert!(r.topic_route("Nope").is_none());
    }

    #[test]
    fn queue_data_only_from_master() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("a", "s:1", 1, None), now);
        assert!(r.topic_route("T").is_none(), "slave topics are not routes");
        r.register(reg("a", "m:1", 0, None), now);
        assert!(r.topic_route("T").is_some());
    }

    #[test]
    fn registration_is_merge_only_and_rebuilds_on_new_data_version() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("a", "m:1", 0, None), now);
        let mut second = reg("a", "m:1", 0, None);
        second.topic_config = wrapper(2, &[("U", 2)]);
        r.register(second, now);
        assert!(r.topic_route("T").is_some(), "absent topics are kept");
        assert_eq!(
            r.topic_route("U").unwrap().queue_datas[0].read_queue_nums,
            2
        );

        // Same data version: the body is not re-applied (deleted topics stay deleted).
        assert!(r.delete_topic("U", None));
        let mut third = reg("a", "m:1", 0, None);
        third.topic_config = wrapper(2, &[("U", 2)]);
        r.register(third, now);
        assert!(r.topic_route("U").is_none());
    }

    #[test]
    fn raft_leader_is_id_zero_and_role_change_rekeys_at_once() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("g", "n1:1", 0, Some((1, 1))), now);
        r.register(reg("g", "n2:1", 3, Some((1, 2))), now);
        r.register(reg("g", "n3:1", 4, Some((1, 3))), now);
        assert_eq!(
            addrs(&r, "T"),
            map(&[(0, "n1:1"), (3, "n2:1"), (4, "n3:1")])
        );

        // n2 wins term 2 and registers before n1 notices: n1 moves to its follower id.
        let out = r.register(reg("g", "n2:1", 0, Some((2, 2))), now);
        assert!(matches!(out, RegisterOutcome::Accepted { .. }));
        assert_eq!(
            addrs(&r, "T"),
            map(&[(0, "n2:1"), (2, "n1:1"), (4, "n3:1")])
        );

        // n1 re-registers as follower: same id, no duplicate.
        let out = r.register(reg("g", "n1:1", 2, Some((2, 1))), now);
        assert_eq!(
            out,
            RegisterOutcome::Accepted {
                master_addr: Some("n2:1".into()),
                master_ha_addr: Some("n2:1-ha".into())
            }
        );
        assert_eq!(
            addrs(&r, "T"),
            map(&[(0, "n2:1"), (2, "n1:1"), (4, "n3:1")])
        );

        // The leader itself steps down (registers as follower): nobody is 0 until a new leader.
        r.register(reg("g", "n2:1", 3, Some((3, 2))), now);
        assert_eq!(
            addrs(&r, "T"),
            map(&[(2, "n1:1"), (3, "n2:1"), (4, "n3:1")])
        );
        r.register(reg("g", "n3:1", 0, Some((3, 3))), now);
        assert_eq!(
            addrs(&r, "T"),
            map(&[(0, "n3:1"), (2, "n1:1"), (3, "n2:1")])
        );
    }

    #[test]
    fn stale_leader_claim_never_overwrites() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("g", "n1:1", 0, Some((5, 1))), now);
        r.register(reg("g", "n2:1", 0, Some((6, 2))), now);
        let out = r.register(reg("g", "n1:1", 0, Some((5, 1))), now);
        assert_eq!(
            out,
            RegisterOutcome::StaleTerm {
                claimed_term: 5,
                current_term: 6,
                leader_addr: Some("n2:1".into())
            }
        );
        assert_eq!(addrs(&r, "T"), map(&[(0, "n2:1"), (2, "n1:1")]));

        // Even after the current leader is gone, the old term stays stale while the group lives.
        r.unregister("g", "n2:1");
        let out = r.register(reg("g", "n1:1", 0, Some((5, 1))), now);
        assert!(matches!(out, RegisterOutcome::StaleTerm { .. }));
        assert_eq!(addrs(&r, "T"), map(&[(2, "n1:1")]));
    }

    #[test]
    fn displaced_leader_without_node_id_leaves_route_until_it_reregisters() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        let mut first = reg("g", "n1:1", 0, None);
        first.raft = Some(RaftInfo {
            term: 1,
            node_id: None,
        });
        r.register(first, now);
        r.register(reg("g", "n2:1", 0, Some((2, 2))), now);
        assert_eq!(addrs(&r, "T"), map(&[(0, "n2:1")]));
    }

    #[test]
    fn displaced_leader_returns_to_its_last_follower_id_and_never_collides() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        // Follower ids chosen by the brokers (here: the node ids themselves).
        r.register(reg("g", "n1:1", 1, Some((1, 1))), now);
        r.register(reg("g", "n2:1", 2, Some((1, 2))), now);
        r.register(reg("g", "n1:1", 0, Some((2, 1))), now);
        assert_eq!(addrs(&r, "T"), map(&[(0, "n1:1"), (2, "n2:1")]));
        // n2 takes over: n1 goes back to 1 (its own last follower id), not to node id + 1 = 2.
        r.register(reg("g", "n2:1", 0, Some((3, 2))), now);
        assert_eq!(addrs(&r, "T"), map(&[(0, "n2:1"), (1, "n1:1")]));

        // A member only ever seen as leader whose node id + 1 is taken leaves the route.
        let mut q = RouteInfoManager::new();
        q.register(reg("g", "a:1", 2, Some((1, 5))), now);
        q.register(reg("g", "b:1", 0, Some((1, 1))), now);
        q.register(reg("g", "c:1", 0, Some((2, 7))), now);
        assert_eq!(addrs(&q, "T"), map(&[(0, "c:1"), (2, "a:1")]));
    }

    #[test]
    fn out_of_order_registrations_of_one_member_are_stale() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("g", "n1:1", 2, Some((1, 1))), now);
        r.register(reg("g", "n1:1", 0, Some((2, 1))), now);
        // Its candidate-time "follower of term 2" registration arrives late: ignored.
        assert_eq!(
            r.register(reg("g", "n1:1", 2, Some((2, 1))), now),
            RegisterOutcome::StaleTerm {
                claimed_term: 2,
                current_term: 2,
                leader_addr: Some("n1:1".into())
            }
        );
        assert!(matches!(
            r.register(reg("g", "n1:1", 2, Some((1, 1))), now),
            RegisterOutcome::StaleTerm { .. }
        ));
        assert_eq!(addrs(&r, "T"), map(&[(0, "n1:1")]));
        // A real step-down comes with a higher term.
        assert!(matches!(
            r.register(reg("g", "n1:1", 2, Some((3, 1))), now),
            RegisterOutcome::Accepted { .. }
        ));
        assert_eq!(addrs(&r, "T"), map(&[(2, "n1:1")]));
        // Re-registering the same (term, role) is a plain heartbeat.
        assert!(matches!(
            r.register(reg("g", "n1:1", 2, Some((3, 1))), now),
            RegisterOutcome::Accepted { .. }
        ));
    }

    #[test]
    fn classic_same_id_new_address_replaces() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("a", "old:1", 0, None), now);
        r.register(reg("a", "new:1", 0, None), now);
        assert_eq!(addrs(&r, "T"), map(&[(0, "new:1")]));
    }

    #[test]
    fn removal_of_last_member_drops_group_cluster_and_topics() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("a", "m:1", 0, None), now);
        r.register(reg("a", "s:1", 1, None), now);
        let mut b = reg("b", "b:1", 0, None);
        b.topic_config = wrapper(1, &[("T", 8), ("OnlyB", 1)]);
        r.register(b, now);

        assert_eq!(r.unregister("a", "m:1").unwrap().broker_id, 0);
        // brokerName still has a member: queue data stays (consumers may read from slaves).
        assert_eq!(r.topic_route("T").unwrap().queue_datas.len(), 2);
        r.unregister("a", "s:1");
        let route = r.topic_route("T").unwrap();
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "b");
        assert_eq!(r.cluster_info().cluster_addr_table["C"], vec!["b"]);
        r.unregister("b", "b:1");
        assert!(r.topic_route("T").is_none());
        assert!(r.all_topics().topic_list.is_empty());
        assert!(r.cluster_info().cluster_addr_table.is_empty());
        assert!(r.unregister("b", "b:1").is_none());
    }

    #[test]
    fn remove_by_connection() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        let mut a = reg("a", "m:1", 0, None);
        a.conn = Some(7);
        r.register(a, now);
        let mut b = reg("b", "b:1", 0, None);
        b.conn = Some(8);
        r.register(b, now);
        let removed = r.remove_by_conn(7);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].broker_addr, "m:1");
        assert_eq!(r.member_count(), 1);
        assert!(r.remove_by_conn(7).is_empty());
    }

    #[test]
    fn expiry_uses_last_update_and_own_timeout() {
        let mut r = RouteInfoManager::new();
        let t0 = Instant::now();
        r.register(reg("a", "m:1", 0, None), t0);
        let mut quick = reg("b", "b:1", 0, None);
        quick.heartbeat_timeout = Some(Duration::from_secs(10));
        r.register(quick, t0);
        let timeout = Duration::from_secs(120);
        assert!(r.scan_expired(t0 + Duration::from_secs(11), timeout).len() == 1);
        assert!(r
            .scan_expired(t0 + Duration::from_secs(120), timeout)
            .is_empty());
        r.register(reg("a", "m:1", 0, None), t0 + Duration::from_secs(100));
        assert!(r
            .scan_expired(t0 + Duration::from_secs(200), timeout)
            .is_empty());
        assert_eq!(
            r.scan_expired(t0 + Duration::from_secs(221), timeout).len(),
            1
        );
        assert_eq!(r.member_count(), 0);
    }

    #[test]
    fn cluster_info_and_topic_lists() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("a", "m:1", 0, None), now);
        let mut other = reg("x", "x:1", 0, None);
        other.cluster_name = "D".into();
        other.topic_config = wrapper(1, &[("X", 1)]);
        r.register(other, now);
        let ci = r.cluster_info();
        assert_eq!(ci.cluster_addr_table["C"], vec!["a"]);
        assert_eq!(ci.cluster_addr_table["D"], vec!["x"]);
        assert_eq!(ci.broker_addr_table["a"].broker_addrs, map(&[(0, "m:1")]));
        assert_eq!(r.all_topics().topic_list, vec!["T", "X"]);
        assert_eq!(r.topics_by_cluster("D").topic_list, vec!["X"]);
        assert!(r.topics_by_cluster("nope").topic_list.is_empty());
        let sys = r.system_topics();
        assert_eq!(sys.topic_list, vec!["C", "D", "a", "x"]);
        assert!(sys.broker_addr.is_some());
    }

    #[test]
    fn delete_topic_whole_or_per_cluster() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        r.register(reg("a", "m:1", 0, None), now);
        let mut other = reg("x", "x:1", 0, None);
        other.cluster_name = "D".into();
        r.register(other, now);
        assert!(r.delete_topic("T", Some("D")));
        assert_eq!(r.topic_route("T").unwrap().queue_datas.len(), 1);
        assert!(!r.delete_topic("T", Some("D")));
        assert!(r.delete_topic("T", None));
        assert!(r.topic_route("T").is_none());
        assert!(!r.delete_topic("T", None));
    }

    #[test]
    fn write_perm_wipe_and_add() {
        let mut r = RouteInfoManager::new();
        r.register(reg("a", "m:1", 0, None), Instant::now());
        assert_eq!(r.set_write_perm("a", false), 1);
        assert_eq!(r.topic_route("T").unwrap().queue_datas[0].perm, 4);
        assert_eq!(r.set_write_perm("a", true), 1);
        assert_eq!(r.topic_route("T").unwrap().queue_datas[0].perm, 6);
        assert_eq!(r.set_write_perm("zzz", true), 0);
    }

    #[test]
    fn heartbeat_refreshes_liveness() {
        let mut r = RouteInfoManager::new();
        let t0 = Instant::now();
        r.register(reg("a", "m:1", 0, None), t0);
        assert!(r.heartbeat("a", "m:1", t0 + Duration::from_secs(100)));
        assert!(!r.heartbeat("a", "other:1", t0));
        let timeout = Duration::from_secs(120);
        assert!(r
            .scan_expired(t0 + Duration::from_secs(200), timeout)
            .is_empty());
        assert_eq!(
            r.scan_expired(t0 + Duration::from_secs(221), timeout).len(),
            1
        );
    }

    #[test]
    fn data_version_query() {
        let mut r = RouteInfoManager::new();
        let now = Instant::now();
        let dv = |c| DataVersion {
            counter: c,
            timestamp: 1,
            state_version: None,
        };
        assert_eq!(r.query_data_version("a", "m:1", &dv(1), now), (true, None));
        r.register(reg("a", "m:1", 0, None), now);
        assert_eq!(
            r.query_data_version("a", "m:1", &dv(1), now),
            (false, Some(dv(1)))
        );
        assert!(r.query_data_version("a", "m:1", &dv(2), now).0);
    }

    #[test]
    fn filter_servers_follow_their_broker() {
        let mut r = RouteInfoManager::new();
        let mut a = reg("a", "m:1", 0, None);
        a.filter_server_list = vec!["f:1".into()];
        r.register(a, Instant::now());
        let route = r.topic_route("T").unwrap();
        assert_eq!(route.filter_server_table["m:1"], vec!["f:1"]);
        r.register(reg("a", "m:1", 0, None), Instant::now());
        assert!(r.topic_route("T").unwrap().filter_server_table.is_empty());
    }

    proptest::proptest! {
        /// Any interleaving of Raft registrations (3 nodes, terms 0..6, either role) keeps the
        /// route sane: one address per id, the id-0 holder is the leader of the highest
        /// accepted term, and accepted leader terms never go down.
        #[test]
        fn raft_registration_sequences_keep_route_invariants(
            ops in proptest::collection::vec((0u64..3, 0u64..6, proptest::bool::ANY), 1..80)
        ) {
            let mut r = RouteInfoManager::new();
            let now = Instant::now();
            let mut highest_accepted_leader_term: Option<u64> = None;
            for (node, term, leader) in ops {
                let id = if leader { MASTER_ID } else { node as i64 + 1 };
                let addr = format!("n{node}:1");
                let out = r.register(reg("g", &addr, id, Some((term, node))), now);
                if leader {
                    if let RegisterOutcome::Accepted { .. } = out {
                        if let Some(h) = highest_accepted_leader_term {
                            proptest::prop_assert!(term >= h, "accepted term {term} after {h}");
                        }
                        highest_accepted_leader_term = Some(term);
                    }
                }
                let g = &r.groups["g"];
                let mut ids: Vec<i64> = g.members.values().map(|m| m.broker_id).collect();
                let n = ids.len();
                ids.sort_unstable();
                ids.dedup();
                proptest::prop_assert_eq!(ids.len(), n, "two addresses under one id");
                if let Some((_, m)) = g.master() {
                    proptest::prop_assert_eq!(m.raft.map(|r| r.term), g.leader_term);
                }
                proptest::prop_assert_eq!(g.leader_term, highest_accepted_leader_term);
            }
        }
    }
}
