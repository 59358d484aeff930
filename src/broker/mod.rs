//! The broker: RocketMQ request processors over one node of a Raft broker group.
//!
//! A [`Broker`] owns one node's storage (commitlog, dispatcher, metadata tables, opened by
//! `raftmq_raft::open_storage`), its [`RaftGroup`] and proposer, and a remoting server
//! answering RocketMQ clients. Every write (a send, an offset commit, a topic change) is a
//! Raft entry proposed on the leader; followers answer writes with SERVICE_NOT_AVAILABLE and
//! the leader's address in the remark, which RocketMQ producers treat as "retry elsewhere".
//! Reads (pulls, offsets, queries) are served from committed, dispatched data on any node.
//!
//! Layout:
//! - [`config`]: [`BrokerConfig`] from `broker.conf` keys.
//! - [`topic`]: topic configs, TBW102 auto-creation, system-topic rules.
//! - [`processor`]: the request processors (send, pull, offsets, clients, admin, queries).
//! - [`long_polling`]: held pulls, woken when their queue advances.
//! - [`client_manager`]: producer/consumer channels, subscriptions, NOTIFY_CONSUMER_IDS_CHANGED.
//! - [`role`]: leadership changes → nameserver registration (leader as brokerId 0).
//! - [`schedule`]: delay levels (SCHEDULE_TOPIC_XXXX) and delayed retries.
//! - [`offset_committer`]: batched, replicated consumer offset commits.
//! - [`retention`]: expired commitlog segments → log compaction on every node.
//!
//! This module never touches segment files directly: it reads through the commitlog and
//! dispatcher handles and writes only through the group.

pub mod client_manager;
pub mod config;
pub mod long_polling;
pub mod offset_committer;
pub mod processor;
pub mod retention;
pub mod role;
pub mod schedule;
pub mod topic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raftmq_raft::{
    open_storage_with_fs, BrokerCommand, NodeId, Proposer, ProposerLimits, RaftGroup,
    RaftGroupError, Role, StateMachine, StorageConfig, Transport,
};
use raftmq_store::commitlog::CommitLog;
use raftmq_store::metadata::TopicTable;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::remoting::{RemotingServer, ServerConfig, ServerHandle};

pub use config::BrokerConfig;

/// Why the broker could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("storage under {dir}: {reason}")]
    Storage { dir: PathBuf, reason: String },
    #[error("raft group: {0}")]
    Raft(#[from] RaftGroupError),
    #[error("remoting: {0}")]
    Remoting(#[from] crate::remoting::RemotingError),
    /// This node is not the ready leader; writes go to `leader_addr`.
    #[error("not the leader (leader: {})", leader_addr.as_deref().unwrap_or("unknown"))]
    NotLeader { leader_addr: Option<String> },
    #[error("metadata: {0}")]
    Metadata(String),
}

/// The replica a broker node serves from: its Raft group, proposer and storage handles.
pub struct Node {
    pub(crate) group: RaftGroup,
    pub(crate) proposer: Proposer,
    pub(crate) sm: StateMachine,
    pub(crate) log: CommitLog,
    /// The applied topic configs (kept by the state machine), read on every send and pull.
    pub(crate) topics: Arc<TopicTable>,
    /// Broker (remoting) address of every group member, by node id, from `peerBrokerAddrs`.
    pub(crate) peer_broker_addrs: BTreeMap<NodeId, String>,
}

impl Node {
    /// The current role.
    pub fn role(&self) -> Role {
        self.group.current_role()
    }

    /// The broker address of the current leader, if known.
    pub fn leader_addr(&self) -> Option<String> {
        self.role().leader.and_then(|l| self.broker_addr_of(l))
    }

    /// The broker address of member `id`: from `peerBrokerAddrs`, else from the replicated
    /// membership (members added at run time carry theirs there).
    pub fn broker_addr_of(&self, id: NodeId) -> Option<String> {
        if let Some(a) = self.peer_broker_addrs.get(&id) {
            return Some(a.clone());
        }
        self.group
            .metrics()
            .nodes
            .get(&id)
            .map(|n| n.broker_addr.clone())
            .filter(|a| !a.is_empty())
    }

    /// Ok when this node is the leader and may take writes.
    pub fn check_writable(&self) -> Result<(), BrokerError> {
        let r = self.role();
        if r.is_leader && r.ready {
            Ok(())
        } else {
            Err(BrokerError::NotLeader {
                leader_addr: if r.is_leader {
                    None
                } else {
                    self.leader_addr()
                },
            })
        }
    }

    /// Propose one command and wait until it is applied.
    pub async fn write(&self, cmd: BrokerCommand) -> Result<(), BrokerError> {
        self.check_writable()?;
        match self.group.write(cmd).await {
            Ok(_) => Ok(()),
            Err(RaftGroupError::NotLeader { .. }) => Err(BrokerError::NotLeader {
                leader_addr: self.leader_addr(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The raw stored bytes of the committed message at `phys_offset`.
    pub fn read_message(&self, phys_offset: i64, size: i32) -> Result<bytes::Bytes, String> {
        if phys_offset < 0 || size <= 0 {
            return Err(format!("bad message location {phys_offset}+{size}"));
        }
        self.log
            .read_at(phys_offset as u64, size as usize)
            .map_err(|e| e.to_string())
    }
}

/// Shared state of a running broker node, handed to every processor.
pub struct BrokerState {
    pub cfg: BrokerConfig,
    /// `brokerIP1:port` clients reach this node at; the STOREHOST of stored messages.
    pub addr: SocketAddr,
    pub node: Node,
    pub topics: topic::TopicManager,
    pub clients: client_manager::ClientManager,
    pub locks: client_manager::LockTable,
    pub polls: Arc<long_polling::LongPolling>,
    pub offsets: offset_committer::OffsetCommitter,
    pub registrar: role::Registrar,
}

/// A running broker node.
pub struct Broker {
    state: Arc<BrokerState>,
    server: Option<ServerHandle>,
    tasks: Vec<JoinHandle<()>>,
}

/// Parses `peerBrokerAddrs` (`n0-host:port;n1-host:port`).
fn parse_peer_broker_addrs(s: &str) -> Result<BTreeMap<NodeId, String>, BrokerError> {
    let mut out = BTreeMap::new();
    for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item.split_once('-').ok_or_else(|| {
            BrokerError::Config(crate::config::ConfigError::Inconsistent(format!(
                "peerBrokerAddrs entry {item:?} is not n<id>-<host:port>"
            )))
        })?;
        let n = id
            .strip_prefix('n')
            .and_then(|n| n.parse::<NodeId>().ok())
            .ok_or_else(|| {
                BrokerError::Config(crate::config::ConfigError::Inconsistent(format!(
                    "peerBrokerAddrs id {id:?} is not n<number>"
                )))
            })?;
        out.insert(n, addr.to_string());
    }
    Ok(out)
}

impl Broker {
    /// Open storage, start the Raft node, the remoting server on `listenPort` and the
    /// background tasks (nameserver registration, client expiry, offset commits).
    pub async fn start(cfg: BrokerConfig) -> Result<Broker, BrokerError> {
        Broker::start_with_fs(cfg, raftmq_store::io::StdFileSystem::arc()).await
    }

    /// [`Broker::start`] with the store's files reached through `fs` (fault injection).
    pub async fn start_with_fs(
        cfg: BrokerConfig,
        fs: Arc<dyn raftmq_store::io::FileSystem>,
    ) -> Result<Broker, BrokerError> {
        cfg.validate()?;
        let listen = SocketAddr::new(cfg.broker_ip1, cfg.listen_port);
        let group_cfg = cfg.raft_group()?;
        let root = cfg.store_path_root_dir.clone();
        std::fs::create_dir_all(&root).map_err(|e| BrokerError::Storage {
            dir: root.clone(),
            reason: e.to_string(),
        })?;
        let mut scfg = StorageConfig::default();
        scfg.commitlog.segment_size = cfg.maped_file_size_commit_log;
        scfg.commitlog.flush = cfg.flush_disk_type;
        // Entry-index files (32 bytes per entry) sized to the segments: small groups stay small.
        scfg.commitlog.index_file_size =
            (cfg.maped_file_size_commit_log / 4).clamp(1 << 20, 128 << 20) / 32 * 32;
        scfg.dispatch.cq_units_per_file = cfg.maped_file_size_consume_queue / 20;
        scfg.dispatch.index_enabled = cfg.message_index_enable;
        let storage = {
            let root = root.clone();
            let max_read = group_cfg.replication_max_bytes;
            tokio::task::spawn_blocking(move || open_storage_with_fs(&root, &scfg, max_read, fs))
                .await
                .map_err(|e| BrokerError::Storage {
                    dir: cfg.store_path_root_dir.clone(),
                    reason: e.to_string(),
                })?
                .map_err(|e| BrokerError::Storage {
                    dir: cfg.store_path_root_dir.clone(),
                    reason: e.to_string(),
                })?
        };
        let sm = storage.state_machine.clone();
        let polls = Arc::new(long_polling::LongPolling::default());
        let schedule_wake = Arc::new(tokio::sync::Notify::new());
        {
            let polls = polls.clone();
            let wake = schedule_wake.clone();
            sm.set_queue_advanced_hook(Box::new(move |topic: &str, q: i32, max: i64| {
                if topic == raftmq_store::dispatch::SCHEDULE_TOPIC {
                    wake.notify_one();
                }
                polls.advanced(topic, q, max)
            }));
        }
        let log = storage.commit_log.clone();
        // Only the lowest-numbered member initialises a pristine group; the others join when
        // it reaches them. (Every member initialising at once makes each start an election of
        // term 1 as it comes up, and a late one deposes the first leader.)
        // A joining node (`dLegerJoin`) never initialises: the leader adds it as a learner.
        let bootstrap =
            !cfg.dleger_join && group_cfg.peers.keys().next() == Some(&group_cfg.self_id);
        let mut group = RaftGroup::start(
            &group_cfg,
            Transport::Tcp(None),
            storage.log_store,
            storage.state_machine,
            bootstrap,
        )
        .await?;
        group.set_commit_log(log.clone());
        let proposer = Proposer::start(
            group.raft().clone(),
            group.role(),
            sm.queue_offsets(),
            ProposerLimits::from_group(&group_cfg),
        );
        let peer_broker_addrs = parse_peer_broker_addrs(&cfg.peer_broker_addrs)?;

        // Bind the remoting port before anything registers with a nameserver.
        let node = Node {
            group,
            proposer,
            topics: sm.topic_table(),
            sm,
            log,
            peer_broker_addrs,
        };
        let slot: Arc<std::sync::OnceLock<Arc<BrokerState>>> = Arc::default();
        let table = processor::table(slot.clone());
        let server = RemotingServer::bind(
            &listen.to_string(),
            Arc::new(table),
            ServerConfig {
                max_frame: cfg.max_message_size.saturating_mul(2).max(16 << 20),
                ..ServerConfig::default()
            },
        )
        .await?;
        let addr = cfg.broker_addr(server.local_addr().port());
        let state = Arc::new(BrokerState {
            topics: topic::TopicManager::new(&cfg),
            clients: client_manager::ClientManager::default(),
            locks: client_manager::LockTable::default(),
            offsets: offset_committer::OffsetCommitter::default(),
            registrar: role::Registrar::new(&cfg, addr),
            polls,
            node,
            addr,
            cfg,
        });
        let _ = slot.set(state.clone());
        tracing::info!(%addr, node = state.node.group.id(), group = %state.cfg.dleger_group,
            broker = %state.cfg.broker_name, "broker serving");
        let tasks = vec![
            tokio::spawn(role::run(state.clone())),
            tokio::spawn(client_manager::run_expiry(state.clone())),
            tokio::spawn(offset_committer::run(state.clone())),
            tokio::spawn(long_polling::run_prune(state.clone())),
            tokio::spawn(schedule::run(state.clone(), schedule_wake)),
            tokio::spawn(retention::run(state.clone())),
        ];
        Ok(Broker {
            state,
            server: Some(server),
            tasks,
        })
    }

    /// The address clients reach this node at.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// Shared state (processors' view), for tests and tools.
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Leadership changes of this node.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.state.node.group.role()
    }

    /// Wait until the group has a ready leader (this node or another).
    pub async fn wait_for_ready_leader(&self, timeout: Duration) -> Result<Role, BrokerError> {
        Ok(self.state.node.group.wait_for_ready_leader(timeout).await?)
    }

    /// Stop serving: unregister from the nameservers, close client connections, checkpoint.
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        role::unregister_all(&self.state).await;
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        if let Err(e) = self.state.node.sm.checkpoint().await {
            tracing::warn!(cause = %e, "checkpoint on shutdown failed");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
