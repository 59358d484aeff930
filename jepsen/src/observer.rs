//! Role observer: asks every broker node for its Raft role and term
//! (GET_BROKER_RUNTIME_INFO: `brokerRole`, `raftTerm`) at a fixed period and records each round
//! as one `role` operation (process `"observer"`), so the checker can find two leaders in one
//! term or a node whose term goes down, and the report can draw per-node role lanes. A node
//! that does not answer in time is recorded as `down`. A node is named after the Raft id it
//! reports (`n<raftNodeId>`, or `a<id>`, `b<id>`, ... when the run has several groups), so a slot whose node was replaced by a new id (the membership
//! nemesis) is recorded under the new name from its first answer on, and as `down` under the
//! last name it answered with.
//!
//! Runs on its own thread (inside the clients' namespace when given). It knows the remoting
//! request and the history format, nothing of faults.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raftmq::remoting::{ClientConfig, RemotingClient, RemotingCommand, RequestCode};

use crate::history::{NodeRole, Op, OpF, OpType, Process, Recorder};

/// A running observer; [`RoleObserver::stop`] ends it.
#[derive(Debug)]
pub struct RoleObserver {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl RoleObserver {
    /// Observes `nodes` (name, `host:port`, broker group if the run has several) every
    /// `period` from namespace `netns`.
    pub fn spawn(
        nodes: Vec<(String, String, Option<String>)>,
        period: Duration,
        recorder: Arc<Recorder>,
        netns: Option<String>,
    ) -> std::io::Result<RoleObserver> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("role-observer".into())
            .spawn(move || {
                if let Some(ns) = &netns {
                    if let Err(e) = crate::netns::enter_netns(ns) {
                        tracing::warn!(error = %e, "role observer cannot enter the namespace");
                        return;
                    }
                }
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(observe(nodes, period, &recorder, &s));
            })?;
        Ok(RoleObserver { stop, thread })
    }

    /// Stops observing and waits for the last round to be recorded.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

async fn observe(
    nodes: Vec<(String, String, Option<String>)>,
    period: Duration,
    rec: &Recorder,
    stop: &AtomicBool,
) {
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let mut clients: Vec<(String, Arc<RemotingClient>)> = nodes
        .iter()
        .map(|(name, addr, _)| {
            let client = RemotingClient::new(addr.clone(), config.clone());
            (name.clone(), Arc::new(client))
        })
        .collect();
    let process = || Process::Named("observer".into());
    while !stop.load(Ordering::SeqCst) {
        let started = tokio::time::Instant::now();
        if rec
            .record(Op::new(0, process(), OpType::Invoke, OpF::Role))
            .is_err()
        {
            return;
        }
        // Ask every node at once; each ask is bounded by its connect and request timeouts.
        let mut asks = tokio::task::JoinSet::new();
        for (i, (name, client)) in clients.iter().enumerate() {
            let (name, client) = (name.clone(), client.clone());
            asks.spawn(async move {
                let cmd = RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo);
                let answer = client.invoke(cmd, Duration::from_millis(500)).await;
                (i, role_of(&name, answer.ok()))
            });
        }
        let mut roles: Vec<Option<NodeRole>> = vec![None; clients.len()];
        while let Some(r) = asks.join_next().await {
            if let Ok((i, role)) = r {
                roles[i] = Some(role);
            }
        }
        for (r, (name, _)) in roles.iter().zip(clients.iter_mut()) {
            if let Some(r) = r.as_ref().filter(|r| r.role != "down") {
                if *name != r.node {
                    name.clone_from(&r.node);
                }
            }
        }
        let mut ok = Op::new(0, process(), OpType::Ok, OpF::Role);
        ok.nodes = Some(
            roles
                .into_iter()
                .zip(clients.iter().zip(&nodes))
                .map(|(r, ((name, _), (_, _, group)))| {
                    let mut r = r.unwrap_or_else(|| NodeRole {
                        node: name.clone(),
                        role: "down".into(),
                        term: None,
                        group: None,
                    });
                    r.group.clone_from(group);
                    r
                })
                .collect(),
        );
        if rec.record(ok).is_err() {
            return;
        }
        tokio::time::sleep_until(started + period).await;
    }
}

fn role_of(name: &str, answer: Option<RemotingCommand>) -> NodeRole {
    let down = || NodeRole {
        node: name.to_owned(),
        role: "down".into(),
        term: None,
        group: None,
    };
    let Some(resp) = answer else {
        return down();
    };
    let Some(body) = resp.body.as_ref() else {
        return down();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return down();
    };
    let table = &v["table"];
    let role = match table["brokerRole"].as_str() {
        Some("SYNC_MASTER" | "ASYNC_MASTER") => "leader",
        Some(_) => "follower",
        None => return down(),
    };
    let node = table["raftNodeId"]
        .as_str()
        .and_then(|id| id.parse::<u64>().ok())
        .map_or_else(
            || name.to_owned(),
            |id| crate::membership::member_name(name, id),
        );
    NodeRole {
        node,
        role: role.into(),
        term: table["raftTerm"].as_str().and_then(|t| t.parse().ok()),
        group: None,
    }
}
