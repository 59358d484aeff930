//! Role changes → nameserver registration.
//!
//! The node registers with every nameserver of `namesrvAddr` at once (concurrently) whenever
//! its Raft role changes, whenever a topic is created, and every `registerNameServerPeriod`
//! (30 s). The ready leader registers as brokerId 0; everyone else (followers, and a leader
//! whose first entry of the term is not applied yet) as `nodeId + 1`. Every registration
//! carries the Raft term and node id (`raftTerm`, `raftNodeId`), so a nameserver ignores a
//! deposed leader's late claim. On becoming the ready leader the node first makes sure the
//! system topics exist (TBW102).

use std::sync::Arc;
use std::time::Duration;

use raftmq_raft::Role;
use tokio::sync::Notify;

use super::{BrokerConfig, BrokerState};
use crate::namesrv::bodies::{RegisterBrokerBody, TopicConfigSerializeWrapper};
use crate::remoting::header::namesrv::{
    RegisterBrokerRequestHeader, UnRegisterBrokerRequestHeader,
};
use crate::remoting::{ClientConfig, RemotingClient, RemotingCommand, RequestCode, ResponseCode};

/// Nameserver clients and the "register now" trigger.
pub struct Registrar {
    clients: Vec<Arc<RemotingClient>>,
    trigger: Notify,
    timeout: Duration,
    period: Duration,
    addr: String,
}

impl Registrar {
    pub fn new(cfg: &BrokerConfig, addr: std::net::SocketAddr) -> Self {
        Registrar {
            clients: cfg
                .namesrv_addr
                .iter()
                .map(|a| Arc::new(RemotingClient::new(a.clone(), ClientConfig::default())))
                .collect(),
            trigger: Notify::new(),
            timeout: cfg.register_broker_timeout,
            period: cfg.register_name_server_period,
            addr: addr.to_string(),
        }
    }

    /// Ask the registration task to register at once (topic created, ...).
    pub fn register_soon(&self) {
        self.trigger.notify_one();
    }
}

/// The brokerId this node registers with in `role`.
pub fn broker_id(role: &Role, node_id: u64) -> i64 {
    if role.is_leader && role.ready {
        0
    } else {
        node_id as i64 + 1
    }
}

fn build_body(state: &BrokerState) -> Result<Vec<u8>, String> {
    let topics = state.topics.all(&state.node).map_err(|e| e.to_string())?;
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            data_version: state.topics.data_version(),
            topic_config_table: topics
                .iter()
                .map(|t| (t.topic_name.clone(), super::topic::to_wire(t)))
                .collect(),
        },
        filter_server_list: vec![],
    };
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// Register with every nameserver concurrently.
pub async fn register_all(state: &Arc<BrokerState>, role: Role) {
    let reg = &state.registrar;
    if reg.clients.is_empty() {
        return;
    }
    let body = match build_body(state) {
        Ok(b) => bytes::Bytes::from(b),
        Err(e) => {
            tracing::warn!(cause = %e, "cannot build registration body");
            return;
        }
    };
    let node_id = state.node.group.id();
    let header = RegisterBrokerRequestHeader {
        broker_name: state.cfg.broker_name.clone(),
        broker_addr: reg.addr.clone(),
        cluster_name: state.cfg.broker_cluster_name.clone(),
        ha_server_addr: reg.addr.clone(),
        broker_id: broker_id(&role, node_id),
        compressed: false,
        body_crc32: (crc32fast::hash(&body) & 0x7FFF_FFFF) as i32,
        heartbeat_timeout_millis: None,
        enable_acting_master: None,
        raft_term: Some(role.term),
        raft_node_id: Some(node_id),
    };
    let mut set = tokio::task::JoinSet::new();
    for c in &reg.clients {
        let c = c.clone();
        let cmd = RemotingCommand::request(RequestCode::RegisterBroker)
            .with_header(&header)
            .with_body(body.clone());
        let timeout = reg.timeout;
        set.spawn(async move {
            let r = c.invoke(cmd, timeout).await;
            (c.addr().to_string(), r)
        });
    }
    while let Some(r) = set.join_next().await {
        match r {
            Ok((ns, Ok(resp))) if resp.response_code() == Some(ResponseCode::Success) => {
                tracing::debug!(namesrv = %ns, broker_id = header.broker_id, term = role.term, "registered");
            }
            Ok((ns, Ok(resp))) => {
                tracing::warn!(namesrv = %ns, code = resp.code, remark = ?resp.remark, "registration refused")
            }
            Ok((ns, Err(e))) => tracing::warn!(namesrv = %ns, cause = %e, "registration failed"),
            Err(e) => tracing::warn!(cause = %e, "registration task failed"),
        }
    }
}

/// Unregister from every nameserver (clean shutdown).
pub async fn unregister_all(state: &Arc<BrokerState>) {
    let role = state.node.role();
    let header = UnRegisterBrokerRequestHeader {
        broker_name: state.cfg.broker_name.clone(),
        broker_addr: state.registrar.addr.clone(),
        cluster_name: state.cfg.broker_cluster_name.clone(),
        broker_id: broker_id(&role, state.node.group.id()),
    };
    for c in &state.registrar.clients {
        let cmd = RemotingCommand::request(RequestCode::UnregisterBroker).with_header(&header);
        if let Err(e) = c.invoke(cmd, Duration::from_secs(1)).await {
            tracing::debug!(namesrv = %c.addr(), cause = %e, "unregister failed");
        }
    }
}

/// The registration task: on every role change, trigger and period.
pub async fn run(state: Arc<BrokerState>) {
    let mut rx = state.node.group.role();
    let mut tick = tokio::time::interval(state.registrar.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Role> = None;
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return; },
            _ = tick.tick() => {},
            _ = state.registrar.trigger.notified() => {},
        }
        let role = *rx.borrow_and_update();
        let became_ready = role.is_leader
            && role.ready
            && !last.is_some_and(|l| l.is_leader && l.ready && l.term == role.term);
        if became_ready {
            match state.topics.ensure_system_topics(&state.node).await {
                Ok(created) => {
                    if created {
                        tracing::info!("created system topic TBW102");
                    }
                }
                Err(e) => tracing::warn!(cause = %e, "cannot create system topics"),
            }
        }
        if last.is_some_and(|l| l.is_leader) && !role.is_leader {
            // Queue locks live on the leader only; a new leader starts with none.
            state.locks.clear();
        }
        if last != Some(role) {
            tracing::info!(term = role.term, leader = ?role.leader, is_leader = role.is_leader,
                ready = role.ready, "role changed; registering with nameservers");
        }
        last = Some(role);
        register_all(&state, role).await;
    }
}
