//! The TCP peer transport over real loopback: handshake rules, replication through it,
//! reconnect after a peer restarts, hard TTL, and the oversized-request mapping.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::mem::{MemLog, MemSm};
use common::wait_until;
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use raftmq_raft::network::{
    frame, FrameKind, PeerListener, PeerServer, TcpNetworkFactory, TransportConfig, TransportError,
};
use raftmq_raft::{typ, BrokerCommand, NodeId, PeerNode, RaftGroupConfig};

fn tcfg(group: &str, self_id: NodeId) -> TransportConfig {
    let peers =
        raftmq_raft::config::parse_peers("n0-127.0.0.1:1;n1-127.0.0.1:2;n2-127.0.0.1:3").unwrap();
    let mut c = RaftGroupConfig::new(group, self_id, peers);
    c.heartbeat_interval = Duration::from_millis(100);
    c.election_timeout_min = Duration::from_millis(400);
    c.election_timeout_max = Duration::from_millis(800);
    TransportConfig::from_group(&c)
}

fn raft_config() -> Arc<openraft::Config> {
    Arc::new(
        openraft::Config {
            cluster_name: "g".into(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    )
}

struct Node {
    raft: typ::Raft,
    sm: MemSm,
    log: MemLog,
    server: Option<PeerServer>,
    addr: String,
}

async fn start_node(id: NodeId, listener: PeerListener, log: MemLog, sm: MemSm) -> Node {
    let addr = listener.local_addr().unwrap().to_string();
    let net = TcpNetworkFactory::new(tcfg("g", id));
    let raft = typ::Raft::new(id, raft_config(), net, log.clone(), sm.clone())
        .await
        .unwrap();
    let server = listener.serve(raft.clone()).unwrap();
    Node {
        raft,
        sm,
        log,
        server: Some(server),
        addr,
    }
}

async fn cluster() -> Vec<Node> {
    let mut listeners = vec![];
    for id in 0..3 {
        listeners.push(
            PeerListener::bind("127.0.0.1:0", tcfg("g", id))
                .await
                .unwrap(),
        );
    }
    let mut nodes = vec![];
    for (id, l) in listeners.into_iter().enumerate() {
        nodes.push(start_node(id as NodeId, l, MemLog::default(), MemSm::default()).await);
    }
    let members: BTreeMap<NodeId, PeerNode> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i as NodeId, PeerNode::new(n.addr.clone())))
        .collect();
    nodes[0].raft.initialize(members).await.unwrap();
    nodes
}

async fn leader_of(nodes: &[Node]) -> Option<NodeId> {
    let l = nodes[0].raft.metrics().borrow().current_leader;
    let l = l?;
    nodes
        .iter()
        .all(|n| n.raft.metrics().borrow().current_leader == Some(l))
        .then_some(l)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_over_loopback_tcp() {
    let nodes = cluster().await;
    wait_until("a leader all agree on", Duration::from_secs(10), || async {
        leader_of(&nodes).await.is_some()
    })
    .await;
    let leader = leader_of(&nodes).await.unwrap() as usize;
    for i in 0..20u8 {
        nodes[leader]
            .raft
            .client_write(BrokerCommand::PutMessages {
                bytes: Bytes::from(vec![i; 100]),
            })
            .await
            .unwrap();
    }
    for n in &nodes {
        wait_until(
            "every node applied 20 commands",
            Duration::from_secs(10),
            || async { n.sm.inner.lock().unwrap().commands.len() == 20 },
        )
        .await;
    }
    let first = nodes[0].sm.inner.lock().unwrap().commands.clone();
    for n in &nodes[1..] {
        assert_eq!(n.sm.inner.lock().unwrap().commands, first);
    }
    for (i, (_, c)) in first.iter().enumerate() {
        assert_eq!(
            c,
            &BrokerCommand::PutMessages {
                bytes: Bytes::from(vec![i as u8; 100])
            }
        );
    }
    for n in nodes {
        n.raft.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_restart_on_same_port_reconnects_and_catches_up() {
    let mut nodes = cluster().await;
    wait_until("a leader", Duration::from_secs(10), || async {
        leader_of(&nodes).await.is_some()
    })
    .await;
    let leader = leader_of(&nodes).await.unwrap() as usize;
    let victim = (leader + 1) % 3;

    // Kill the follower: stop its core and close its listener and connections.
    nodes[victim].raft.shutdown().await.unwrap();
    nodes[victim].server = None;
    for i in 0..5u8 {
        nodes[leader]
            .raft
            .client_write(BrokerCommand::DeleteTopic {
                topic: format!("t{i}"),
            })
            .await
            .unwrap();
    }
    // Restart it on the same address with its old (in-memory) state.
    let addr = nodes[victim].addr.clone();
    let listener = loop {
        match PeerListener::bind(&addr, tcfg("g", victim as NodeId)).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let (log, sm) = (nodes[victim].log.clone(), nodes[victim].sm.clone());
    nodes[victim] = start_node(victim as NodeId, listener, log, sm).await;
    let n = &nodes[victim];
    wait_until(
        "restarted follower applied the 5 writes",
        Duration::from_secs(15),
        || async { n.sm.inner.lock().unwrap().commands.len() == 5 },
    )
    .await;
    for n in nodes {
        n.raft.shutdown().await.unwrap();
    }
}

async fn one_listener(group: &str, id: NodeId) -> (PeerServer, String, typ::Raft) {
    let l = PeerListener::bind("127.0.0.1:0", tcfg(group, id))
        .await
        .unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let raft = typ::Raft::new(
        id,
        raft_config(),
        TcpNetworkFactory::new(tcfg(group, id)),
        MemLog::default(),
        MemSm::default(),
    )
    .await
    .unwrap();
    (l.serve(raft.clone()).unwrap(), addr, raft)
}

fn vote_req() -> typ::VoteRequest {
    openraft::raft::VoteRequest::new(openraft::Vote::new(1, 0), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_rejects_wrong_group_wrong_target_and_self() {
    let (_server, addr, raft) = one_listener("g", 1).await;

    // Right group and target: the vote reaches Raft and gets an answer.
    let f = TcpNetworkFactory::new(tcfg("g", 0));
    let body = raftmq_raft::codec::encode(&vote_req()).unwrap();
    let ok = f.peer(1, &addr).call(FrameKind::Vote, &body).await.unwrap();
    assert_eq!(ok.kind, FrameKind::VoteResponse);

    for (client, target, what) in [
        (TcpNetworkFactory::new(tcfg("other", 0)), 1, "wrong group"),
        (TcpNetworkFactory::new(tcfg("g", 0)), 2, "wrong target id"),
        (TcpNetworkFactory::new(tcfg("g", 1)), 1, "self connection"),
    ] {
        let err = client
            .peer(target, &addr)
            .call(FrameKind::Vote, &body)
            .await
            .unwrap_err();
        assert!(
            matches!(err, TransportError::Rejected { .. }),
            "{what}: {err:?}"
        );
    }

    // Through the openraft trait, a rejection is Unreachable.
    let mut f = TcpNetworkFactory::new(tcfg("other", 0));
    let mut net = f.new_client(1, &PeerNode::new(addr.clone())).await;
    let err = net
        .vote(vote_req(), RPCOption::new(Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    // And the client backs off instead of redialling at once.
    let err = f
        .peer(1, &addr)
        .call(FrameKind::Vote, &body)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::BackingOff { .. }), "{err:?}");
    raft.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_hits_hard_ttl() {
    // A fake peer that completes the handshake and then never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let fake = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await.unwrap();
        let ok = frame::encode(FrameKind::HelloOk, 0, &[], 1 << 20).unwrap();
        s.write_all(&ok).await.unwrap();
        // Swallow requests without answering.
        while s.read(&mut buf).await.unwrap_or(0) > 0 {}
    });
    let mut f = TcpNetworkFactory::new(tcfg("g", 0));
    let mut net = f.new_client(1, &PeerNode::new(addr)).await;
    let start = std::time::Instant::now();
    let err = net
        .vote(vote_req(), RPCOption::new(Duration::from_millis(300)))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, RPCError::Timeout(_)), "{err:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_append_maps_to_payload_too_large() {
    let (_server, addr, raft) = one_listener("g", 1).await;
    let mut cfg = tcfg("g", 0);
    cfg.max_frame_bytes = 4096;
    let mut f = TcpNetworkFactory::new(cfg);
    let mut net = f.new_client(1, &PeerNode::new(addr)).await;
    let entries: Vec<typ::Entry> = (1..=10)
        .map(|i| openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 0), i),
            payload: openraft::EntryPayload::Normal(BrokerCommand::PutMessages {
                bytes: Bytes::from(vec![7u8; 1000]),
            }),
        })
        .collect();
    let req = openraft::raft::AppendEntriesRequest {
        vote: openraft::Vote::new_committed(1, 0),
        prev_log_id: None,
        entries,
        leader_commit: None,
    };
    let err = net
        .append_entries(req, RPCOption::new(Duration::from_secs(2)))
        .await
        .unwrap_err();
    match err {
        RPCError::PayloadTooLarge(p) => assert_eq!(p.entries_hint(), 5),
        other => panic!("{other:?}"),
    }
    raft.shutdown().await.unwrap();
}

async fn read_until_closed(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = vec![];
    let mut buf = [0u8; 1024];
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(r.is_ok(), "server kept the connection open");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closes_on_oversized_hello_and_garbage_requests() {
    use tokio::io::AsyncWriteExt;
    let (_server, addr, raft) = one_listener("g", 1).await;

    // A first frame claiming 1 MiB is refused before any handshake.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    assert!(read_until_closed(&mut s).await.is_empty());

    // A valid handshake, then an undecodable request: the connection is closed, unanswered.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let hello = raftmq_raft::network::Hello {
        version: frame::PROTOCOL_VERSION,
        group: "g".into(),
        from: 0,
        to: 1,
    };
    let body = raftmq_raft::codec::encode(&hello).unwrap();
    s.write_all(&frame::encode(FrameKind::Hello, 0, &body, 1 << 20).unwrap())
        .await
        .unwrap();
    s.write_all(&frame::encode(FrameKind::AppendEntries, 7, b"garbage", 1 << 20).unwrap())
        .await
        .unwrap();
    let got = read_until_closed(&mut s).await;
    let ok = frame::encode(FrameKind::HelloOk, 0, &[], 1 << 20).unwrap();
    assert_eq!(
        got,
        ok.to_vec(),
        "expected the hello answer and nothing else"
    );

    // The node keeps serving well-formed peers.
    let f = TcpNetworkFactory::new(tcfg("g", 0));
    let body = raftmq_raft::codec::encode(&vote_req()).unwrap();
    assert_eq!(
        f.peer(1, &addr)
            .call(FrameKind::Vote, &body)
            .await
            .unwrap()
            .kind,
        FrameKind::VoteResponse
    );
    raft.shutdown().await.unwrap();
}
