//! A running broker group node: openraft core, peer transport, role watcher, admin calls.
//!
//! [`RaftGroup::start`] builds the openraft `Raft` from a [`RaftGroupConfig`], a log store and
//! a state machine, starts the peer server, and on a pristine node with `bootstrap` set
//! initialises the group with every `dLegerPeers` member: the lowest id at once, the others
//! only if no leader reached them within three election timeouts (identical membership, so
//! concurrent initialisation stays safe, and a late starter does not depose a leader). A restarted node finds its vote and log on disk and
//! needs nothing. The role watcher turns openraft metrics into a [`Role`] on a
//! `tokio::sync::watch` channel the moment leadership changes; `ready` says the leader has
//! applied its own first entry of the term and may take sends.
//!
//! This module knows nothing of RocketMQ: the broker reacts to [`Role`] changes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::RaftError;
use openraft::{ChangeMembers, ServerState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::command::{BrokerCommand, CommandResult};
use crate::config::RaftGroupConfig;
use crate::error::{RaftGroupError, Result};
use crate::network::{
    AdminRequest, PeerListener, PeerServer, Router, TcpNetworkFactory, TransportConfig,
};
use crate::types::{typ, NodeId, PeerNode, TypeConfig};

/// Who leads, as seen by this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Role {
    pub term: u64,
    pub leader: Option<NodeId>,
    /// This node is the leader.
    pub is_leader: bool,
    /// Leader and its own first entry of `term` is applied: sends may be sequenced.
    pub ready: bool,
}

/// A point-in-time view of the node's Raft state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetrics {
    pub id: NodeId,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub state: String,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Last committed index known to this node (when the group knows its commitlog).
    pub committed_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    /// Leader only: matched index per member.
    pub replication: BTreeMap<NodeId, Option<u64>>,
    pub voters: BTreeSet<NodeId>,
    /// Members that receive the log but do not vote.
    pub learners: BTreeSet<NodeId>,
    /// Every member (voters and learners) with its addresses, from the effective membership.
    pub nodes: BTreeMap<NodeId, PeerNode>,
    /// `Some(reason)` once the core stopped on a fatal error.
    pub fatal: Option<String>,
}

/// How the node talks to its peers.
pub enum Transport {
    /// Real TCP: bind `raft_addr` of this node (or use an already bound listener).
    Tcp(Option<PeerListener>),
    /// The in-memory test router.
    Router(Router),
}

/// One node of a broker group.
pub struct RaftGroup {
    id: NodeId,
    cfg: RaftGroupConfig,
    /// True while a leadership transfer is under way: the role stops being `ready`.
    transferring: watch::Sender<bool>,
    raft: typ::Raft,
    role: watch::Receiver<Role>,
    tcp: Option<TcpNetworkFactory>,
    router: Option<Router>,
    server: Option<PeerServer>,
    watcher: JoinHandle<()>,
    commit_log: Option<raftmq_store::commitlog::CommitLog>,
    /// A pending delayed initialisation (non-first pristine nodes).
    bootstrapper: Option<JoinHandle<()>>,
}

impl RaftGroup {
    /// Start the node; `bootstrap` initialises a pristine group with every configured peer.
    pub async fn start<LS, SM>(
        cfg: &RaftGroupConfig,
        transport: Transport,
        log_store: LS,
        state_machine: SM,
        bootstrap: bool,
    ) -> Result<RaftGroup>
    where
        LS: openraft::storage::RaftLogStorage<TypeConfig>,
        SM: openraft::storage::RaftStateMachine<TypeConfig>,
    {
        cfg.validate()?;
        let rcfg = cfg.to_openraft()?;
        let id = cfg.self_id;
        let fatal = |e: typ::Fatal| RaftGroupError::Fatal(e.to_string());
        let (raft, tcp, router, server) = match transport {
            Transport::Tcp(listener) => {
                let tcfg = TransportConfig::from_group(cfg);
                let listener = match listener {
                    Some(l) => l,
                    None => {
                        let addr = cfg
                            .self_node()
                            .map(|n| n.raft_addr.clone())
                            .unwrap_or_default();
                        PeerListener::bind(&addr, tcfg.clone())
                            .await
                            .map_err(|source| RaftGroupError::Io {
                                op: "bind raft listener",
                                addr,
                                source,
                            })?
                    }
                };
                let net = TcpNetworkFactory::new(tcfg);
                let raft = typ::Raft::new(id, rcfg, net.clone(), log_store, state_machine)
                    .await
                    .map_err(fatal)?;
                let addr = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let server = listener
                    .serve(raft.clone())
                    .map_err(|source| RaftGroupError::Io {
                        op: "serve raft listener",
                        addr,
                        source,
                    })?;
                (raft, Some(net), None, Some(server))
            }
            Transport::Router(router) => {
                let raft = typ::Raft::new(id, rcfg, router.network(id), log_store, state_machine)
                    .await
                    .map_err(fatal)?;
                router.add(id, raft.clone());
                (raft, None, Some(router), None)
            }
        };

        let mut bootstrapper = None;
        if bootstrap && !raft.is_initialized().await.map_err(fatal)? {
            // The lowest id initialises at once; the others wait to be reached by its leader
            // and initialise themselves only if nobody did (that node may be down for good).
            // A late pristine node must not campaign at once: its term-1 vote would outrank
            // a running term-1 leader with a lower id and depose it.
            let first = cfg.peers.keys().next().copied() == Some(id);
            let delay = if first {
                Duration::ZERO
            } else {
                cfg.election_timeout_max * 3
            };
            let (raft2, members, group) = (raft.clone(), cfg.peers.clone(), cfg.group.clone());
            bootstrapper = Some(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                bootstrap_once(id, &group, &raft2, members).await;
            }));
            if first {
                if let Some(h) = bootstrapper.take() {
                    let _ = h.await;
                }
            }
        }

        let (role_tx, role) = watch::channel(Role::default());
        let (transferring, transfer_rx) = watch::channel(false);
        let watcher = tokio::spawn(watch_role(
            id,
            raft.server_metrics(),
            raft.data_metrics(),
            transfer_rx,
            role_tx,
        ));
        Ok(RaftGroup {
            id,
            cfg: cfg.clone(),
            transferring,
            raft,
            role,
            tcp,
            router,
            server,
            watcher,
            commit_log: None,
            bootstrapper,
        })
    }

    /// Let metrics report the committed index from this commitlog.
    pub fn set_commit_log(&mut self, log: raftmq_store::commitlog::CommitLog) {
        self.commit_log = Some(log);
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The openraft handle (for this crate's proposer and for tests).
    pub fn raft(&self) -> &typ::Raft {
        &self.raft
    }

    /// Leadership changes, as they happen.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// The role now (no receiver is cloned: this is on every request's path).
    pub fn current_role(&self) -> Role {
        *self.role.borrow()
    }

    /// Address the peer server listens on (TCP transport only).
    pub fn raft_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(|s| s.local_addr())
    }

    pub fn metrics(&self) -> GroupMetrics {
        let m = self.raft.metrics().borrow().clone();
        GroupMetrics {
            id: m.id,
            term: m.current_term,
            leader: m.current_leader,
            state: format!("{:?}", m.state),
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            committed_index: self
                .commit_log
                .as_ref()
                .and_then(|l| l.committed())
                .map(|c| c.index),
            purged_index: m.purged.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            replication: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(k, v)| (*k, v.map(|l| l.index))).collect())
                .unwrap_or_default(),
            voters: m.membership_config.membership().voter_ids().collect(),
            learners: m.membership_config.membership().learner_ids().collect(),
            nodes: m
                .membership_config
                .membership()
                .nodes()
                .map(|(id, n)| (*id, n.clone()))
                .collect(),
            fatal: m.running_state.as_ref().err().map(|e| e.to_string()),
        }
    }

    /// Start the proposer (group commit of sends, per-term queue offsets) of this node.
    pub fn proposer(
        &self,
        offsets: std::sync::Arc<dyn crate::proposer::QueueOffsetSource>,
    ) -> crate::proposer::Proposer {
        crate::proposer::Proposer::start(
            self.raft.clone(),
            self.role(),
            offsets,
            crate::proposer::ProposerLimits::from_group(&self.cfg),
        )
    }

    /// Propose one command and wait until it is applied; returns its log index and result.
    /// Message batches must go through the [`crate::Proposer`], which assigns queue offsets.
    pub async fn write(&self, cmd: BrokerCommand) -> Result<(u64, CommandResult)> {
        if matches!(cmd, BrokerCommand::PutMessages { .. }) {
            return Err(RaftGroupError::InvalidCommand(
                "message batches are proposed through the proposer".into(),
            ));
        }
        match self.raft.client_write(cmd).await {
            Ok(resp) => Ok((resp.log_id.index, resp.data)),
            Err(e) => Err(map_write_error(e)),
        }
    }

    /// Add `id` as a learner; with `blocking`, wait until it has caught up.
    pub async fn add_learner(&self, id: NodeId, node: PeerNode, blocking: bool) -> Result<()> {
        self.raft
            .add_learner(id, node, blocking)
            .await
            .map(|_| ())
            .map_err(map_write_error)
    }

    /// Make exactly `voters` the voting members (joint consensus; learners stay learners).
    pub async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<()> {
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), true)
            .await
            .map(|_| ())
            .map_err(map_write_error)
    }

    /// Remove `ids` from the group entirely (they must not be voters any more).
    pub async fn remove_nodes(&self, ids: BTreeSet<NodeId>) -> Result<()> {
        self.raft
            .change_membership(ChangeMembers::RemoveNodes(ids), false)
            .await
            .map(|_| ())
            .map_err(map_write_error)
    }

    /// Wait until this node sees a leader that is ready, up to `timeout`.
    pub async fn wait_for_ready_leader(&self, timeout: Duration) -> Result<Role> {
        let mut rx = self.role.clone();
        let fut = async {
            loop {
                let r = *rx.borrow_and_update();
                if r.leader.is_some() && (!r.is_leader || r.ready) {
                    return Ok(r);
                }
                if rx.changed().await.is_err() {
                    return Err(RaftGroupError::Shutdown);
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| RaftGroupError::Timeout {
                op: "wait for leader",
            })?
    }

    /// Hand leadership to `target` (openraft 0.9 has no transfer; openraft.md §5.3).
    ///
    /// On the leader: stop being `ready` (the proposer refuses sends), switch off the other
    /// voters' and its own election timers and its heartbeats, wait until `target` has
    /// matched the whole log, wait out the leader lease, then ask `target` to campaign and
    /// wait until it leads. Timers and heartbeats are switched back on whatever happens.
    pub async fn transfer_leadership(&self, target: NodeId, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(RaftGroupError::NotLeader {
                leader: m.current_leader,
                leader_node: None,
            });
        }
        if target == self.id {
            return Ok(());
        }
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if !voters.contains(&target) {
            return Err(RaftGroupError::InvalidCommand(format!(
                "n{target} is not a voter"
            )));
        }
        let others: Vec<NodeId> = voters
            .iter()
            .copied()
            .filter(|v| *v != target && *v != self.id)
            .collect();
        tracing::info!(node = self.id, target, "leadership transfer starts");

        self.transferring.send_replace(true);
        let pause = AdminRequest::PauseElect {
            millis: u64::try_from((timeout + self.cfg.election_timeout_max).as_millis())
                .unwrap_or(u64::MAX),
        };
        for o in &others {
            if let Err(e) = self.admin(*o, pause, &membership).await {
                tracing::warn!(node = self.id, peer = *o, cause = %e, "cannot pause a voter's election timer");
            }
        }
        self.raft.runtime_config().elect(false);
        self.raft.runtime_config().heartbeat(false);

        let res = self.run_transfer(target, deadline, &membership).await;

        self.raft.runtime_config().heartbeat(true);
        self.raft.runtime_config().elect(true);
        for o in &others {
            if let Err(e) = self.admin(*o, AdminRequest::ResumeElect, &membership).await {
                tracing::warn!(node = self.id, peer = *o, cause = %e, "cannot resume a voter's election timer");
            }
        }
        self.transferring.send_replace(false);
        match &res {
            Ok(()) => tracing::info!(node = self.id, target, "leadership transferred"),
            Err(e) => {
                tracing::warn!(node = self.id, target, cause = %e, "leadership transfer failed")
            }
        }
        res
    }

    async fn run_transfer(
        &self,
        target: NodeId,
        deadline: tokio::time::Instant,
        membership: &typ::Membership,
    ) -> Result<()> {
        let timeout = RaftGroupError::Timeout {
            op: "leadership transfer",
        };
        // Wait until the target has the whole log.
        let mut rx = self.raft.metrics();
        let caught_up = async {
            loop {
                {
                    let m = rx.borrow_and_update();
                    if m.state != ServerState::Leader {
                        return Err(RaftGroupError::NotLeader {
                            leader: m.current_leader,
                            leader_node: None,
                        });
                    }
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&target).copied().flatten())
                        .map(|l| l.index);
                    if matched.is_some() && matched >= m.last_log_index {
                        return Ok(());
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(RaftGroupError::Shutdown);
                }
            }
        };
        tokio::time::timeout_at(deadline, caught_up)
            .await
            .map_err(|_| RaftGroupError::Timeout {
                op: "leadership transfer",
            })??;
        // Voters refuse to vote while they consider the leader's lease valid.
        let lease_over = tokio::time::Instant::now()
            + self.cfg.election_timeout_max
            + self.cfg.heartbeat_interval;
        if lease_over > deadline {
            return Err(timeout);
        }
        tokio::time::sleep_until(lease_over).await;
        self.admin(target, AdminRequest::Elect, membership)
            .await
            .map_err(|reason| RaftGroupError::Raft {
                op: "transfer",
                reason,
            })?;
        let mut rx = self.raft.metrics();
        let led = async {
            loop {
                if rx.borrow_and_update().current_leader == Some(target) {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err(RaftGroupError::Shutdown);
                }
            }
        };
        tokio::time::timeout_at(deadline, led)
            .await
            .map_err(|_| RaftGroupError::Timeout {
                op: "leadership transfer",
            })?
    }

    async fn admin(
        &self,
        to: NodeId,
        req: AdminRequest,
        membership: &typ::Membership,
    ) -> std::result::Result<(), String> {
        if let Some(r) = &self.router {
            return r.admin(self.id, to, req).await;
        }
        let addr = membership
            .get_node(&to)
            .map(|n| n.raft_addr.clone())
            .ok_or_else(|| format!("n{to} has no address"))?;
        match &self.tcp {
            Some(t) => t.admin(to, &addr, req, self.cfg.connect_timeout * 3).await,
            None => Err("no transport".into()),
        }
    }

    /// Purge the log up to a segment-boundary snapshot: the newest one at or below `upto`
    /// (the retention bound; `None` = no bound) and, unless `force` (disk critically full),
    /// at or below what every member has matched, so nobody needs the snapshot path. The
    /// snapshot served to followers from then on is the one at the purge point. The state
    /// machine checkpoints before the purge, so a restart never needs a purged entry. Returns
    /// the purged index, or `None` when there was nothing (safe) to purge.
    pub async fn compact(
        &self,
        sm: &crate::state_machine::StateMachine,
        log: &raftmq_store::commitlog::CommitLog,
        upto: Option<u64>,
        force: bool,
        timeout: Duration,
    ) -> Result<Option<u64>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let fatal = |e: typ::Fatal| RaftGroupError::Fatal(e.to_string());
        let smfatal = |e: typ::StorageError| RaftGroupError::Fatal(e.to_string());
        let mut bound = upto.unwrap_or(u64::MAX);
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader && !force {
            let matched = m
                .replication
                .as_ref()
                .map(|r| r.values().map(|v| v.map(|l| l.index)).min().flatten())
                .unwrap_or(None);
            match matched {
                Some(mi) => bound = bound.min(mi),
                None => {
                    tracing::info!(
                        node = self.id,
                        "purge postponed: a member has matched nothing yet"
                    );
                    return Ok(None);
                }
            }
        }
        let Some(target) = sm.select_purge_point(bound) else {
            return Ok(None);
        };
        if m.purged.is_some_and(|p| p.index >= target.index) {
            sm.prune_snapshots().await.map_err(smfatal)?;
            return Ok(None);
        }
        self.raft.trigger().snapshot().await.map_err(fatal)?;
        self.wait_metrics(deadline, "snapshot", |m| {
            m.snapshot.is_some_and(|s| s.index >= target.index)
        })
        .await?;
        // openraft keeps its newest snapshot id; what followers are sent is ours.
        let mut asked = tokio::time::Instant::now();
        while sm.current_snapshot() != Some(target) {
            if tokio::time::Instant::now() >= deadline {
                return Err(RaftGroupError::Timeout { op: "snapshot" });
            }
            // A build already under way may have served an older choice: ask again.
            if asked.elapsed() > Duration::from_millis(300) {
                self.raft.trigger().snapshot().await.map_err(fatal)?;
                asked = tokio::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A restart re-applies the log from the last persisted checkpoint: it must not lie
        // below the purge point (the boundary was captured when a later entry was applied,
        // so a checkpoint now covers it).
        sm.checkpoint().await.map_err(smfatal)?;
        self.raft
            .trigger()
            .purge_log(target.index)
            .await
            .map_err(fatal)?;
        self.wait_metrics(deadline, "purge", |m| {
            m.purged.is_some_and(|p| p.index >= target.index)
        })
        .await?;
        sm.prune_snapshots().await.map_err(smfatal)?;
        sm.purge_derived_below(log.state().first_pos)
            .await
            .map_err(smfatal)?;
        tracing::info!(
            node = self.id,
            upto = target.index,
            first_pos = log.state().first_pos,
            "log purged"
        );
        Ok(Some(target.index))
    }

    async fn wait_metrics(
        &self,
        deadline: tokio::time::Instant,
        op: &'static str,
        cond: impl Fn(&typ::RaftMetrics) -> bool,
    ) -> Result<()> {
        let mut rx = self.raft.metrics();
        let fut = async {
            loop {
                if cond(&rx.borrow_and_update()) {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err(RaftGroupError::Shutdown);
                }
            }
        };
        tokio::time::timeout_at(deadline, fut)
            .await
            .map_err(|_| RaftGroupError::Timeout { op })?
    }

    /// Stop cleanly: the core stops, the server closes.
    pub async fn shutdown(mut self) -> Result<()> {
        self.cut_network();
        self.raft
            .shutdown()
            .await
            .map_err(|e| RaftGroupError::Fatal(format!("raft core join: {e}")))
    }

    fn cut_network(&mut self) {
        if let Some(b) = self.bootstrapper.take() {
            b.abort();
        }
        self.server = None;
        if let Some(t) = &self.tcp {
            t.close();
        }
        if let Some(r) = &self.router {
            r.remove(self.id);
        }
        self.watcher.abort();
    }
}

impl Drop for RaftGroup {
    /// Dropping without `shutdown` behaves like a killed process: peers lose the connection at
    /// once and the core stops without further I/O to them.
    fn drop(&mut self) {
        self.cut_network();
        let raft = self.raft.clone();
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}

/// Initialise the group unless this node already has a vote or a log (then it was reached
/// by a leader, or restarted).
async fn bootstrap_once(
    id: NodeId,
    group: &str,
    raft: &typ::Raft,
    members: BTreeMap<NodeId, PeerNode>,
) {
    match raft.is_initialized().await {
        Ok(false) => {}
        Ok(true) => return,
        Err(e) => {
            tracing::error!(node = id, cause = %e, "cannot bootstrap: raft stopped");
            return;
        }
    }
    match raft.initialize(members).await {
        Ok(()) => tracing::info!(node = id, %group, "initialised a new group"),
        Err(RaftError::APIError(e)) => {
            tracing::info!(node = id, cause = %e, "group already initialised")
        }
        Err(RaftError::Fatal(e)) => {
            tracing::error!(node = id, cause = %e, "bootstrap failed: raft stopped")
        }
    }
}

pub(crate) fn map_write_error<E>(e: RaftError<NodeId, E>) -> RaftGroupError
where
    E: std::error::Error + openraft::TryAsRef<typ::ForwardToLeader>,
{
    if let Some(f) = e.forward_to_leader() {
        return RaftGroupError::NotLeader {
            leader: f.leader_id,
            leader_node: f.leader_node.clone(),
        };
    }
    match e {
        RaftError::Fatal(f) => RaftGroupError::Fatal(f.to_string()),
        RaftError::APIError(e) => RaftGroupError::Raft {
            op: "write",
            reason: e.to_string(),
        },
    }
}

/// The role from openraft's server metrics (vote, state, leader) and, for `ready`, the last
/// applied entry.
fn role_from(
    id: NodeId,
    server: &typ::ServerMetrics,
    data: &watch::Receiver<typ::DataMetrics>,
) -> Role {
    let term = server.vote.leader_id().get_term();
    let is_leader = server.state == ServerState::Leader && server.current_leader == Some(id);
    let ready = is_leader
        && data
            .borrow()
            .last_applied
            .map(|l| l.leader_id.term == term && l.leader_id.node_id == id)
            .unwrap_or(false);
    Role {
        term,
        leader: server.current_leader,
        is_leader,
        ready,
    }
}

/// Keeps the role channel in step with openraft. It wakes on server metrics (vote, state,
/// leader: they change with elections, not with every entry) and follows the data metrics
/// only while this node leads but is not ready yet, so the steady stream of log and apply
/// updates does not wake it on every send.
async fn watch_role(
    id: NodeId,
    mut server: watch::Receiver<typ::ServerMetrics>,
    mut data: watch::Receiver<typ::DataMetrics>,
    mut transferring: watch::Receiver<bool>,
    tx: watch::Sender<Role>,
) {
    loop {
        data.mark_unchanged();
        let mut role = role_from(id, &server.borrow_and_update(), &data);
        if *transferring.borrow_and_update() {
            role.ready = false;
        }
        tx.send_if_modified(|cur| {
            if *cur != role {
                tracing::info!(node = id, term = role.term, leader = ?role.leader,
                    is_leader = role.is_leader, ready = role.ready, "role changed");
                *cur = role;
                true
            } else {
                false
            }
        });
        let awaiting_ready = role.is_leader && !role.ready;
        let closed = tokio::select! {
            r = server.changed() => r.is_err(),
            r = data.changed(), if awaiting_ready => r.is_err(),
            r = transferring.changed() => r.is_err(),
        };
        if closed {
            tx.send_modify(|r| {
                r.is_leader = false;
                r.ready = false;
                r.leader = None;
            });
            return;
        }
    }
}
