//! The third-party client against the real `raftmq namesrv` process: routes registered by a
//! fake Raft broker group (over raftmq's own remoting) must parse in the client, the leader
//! (brokerId 0) must give it writable queues, and a leader change must show in the next
//! lookup.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{client_runtime, start_namesrv, unique};
use raftmq::namesrv::bodies::{
    DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper,
};
use raftmq::namesrv::client::{NamesrvClient, RegisterResult};
use raftmq::remoting::header::namesrv::RegisterBrokerRequestHeader;
use raftmq::remoting::ClientConfig;
use rocketmq_client_rust::DefaultMQProducer;

/// Registers one member of a Raft group the way raftmq brokers do (leader as brokerId 0).
async fn register(
    ns: &NamesrvClient,
    broker: &str,
    addr: &str,
    broker_id: i64,
    term: u64,
    node: u64,
    topics: &[(&str, i32)],
) {
    let header = RegisterBrokerRequestHeader {
        broker_name: broker.into(),
        broker_addr: addr.into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: format!("{addr}-ha"),
        broker_id,
        compressed: false,
        body_crc32: 0,
        heartbeat_timeout_millis: None,
        enable_acting_master: None,
        raft_term: Some(term),
        raft_node_id: Some(node),
    };
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            data_version: DataVersion {
                counter: i64::try_from(term).unwrap(),
                timestamp: 1_700_000_000_000,
                state_version: None,
            },
            topic_config_table: topics
                .iter()
                .map(|(t, q)| (t.to_string(), TopicConfig::new(t, *q)))
                .collect(),
        },
        filter_server_list: vec![],
    };
    let results = ns.register_broker(&header, &body).await.unwrap();
    for (addr, r) in results {
        assert!(
            matches!(r, Ok(RegisterResult::Registered { .. })),
            "registration at {addr}: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_parses_routes_of_a_raft_group_and_follows_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (_ns, ns_addr) = start_namesrv(dir.path());
    let ns = NamesrvClient::new(
        std::slice::from_ref(&ns_addr),
        ClientConfig::default(),
        Duration::from_secs(5),
    );
    let topic = unique("RouteTopic");
    let topics = [(topic.as_str(), 4), ("TBW102", 8)];
    // Group broker-a: n0 leads in term 3, n1 and n2 follow.
    register(&ns, "broker-a", "127.0.0.1:21911", 0, 3, 0, &topics).await;
    register(&ns, "broker-a", "127.0.0.1:21921", 1, 3, 1, &topics).await;
    register(&ns, "broker-a", "127.0.0.1:21931", 2, 3, 2, &topics).await;
    // A second group with the topic too, two queues.
    register(
        &ns,
        "broker-b",
        "127.0.0.1:22911",
        0,
        1,
        0,
        &[(topic.as_str(), 2)],
    )
    .await;

    let mut producer = DefaultMQProducer::builder(client_runtime("route-producer"))
        .producer_group(unique("route_pg"))
        .name_server_addr(ns_addr.clone())
        .send_msg_timeout(5_000)
        .build();
    producer.start().await.unwrap();

    let queues = tokio::time::timeout(
        Duration::from_secs(20),
        producer.fetch_publish_message_queues(&topic),
    )
    .await
    .expect("route lookup bounded")
    .unwrap_or_else(|e| panic!("client could not use our route data: {e}"));
    let got: BTreeSet<(String, i32)> = queues
        .iter()
        .map(|q| (q.broker_name().to_string(), q.queue_id()))
        .collect();
    let want: BTreeSet<(String, i32)> = (0..4)
        .map(|i| ("broker-a".to_string(), i))
        .chain((0..2).map(|i| ("broker-b".to_string(), i)))
        .collect();
    assert_eq!(got, want);
    assert!(queues.iter().all(|q| q.topic().as_str() == topic));

    // Leadership moves to n2 in term 4: the old leader re-registers as a follower.
    register(&ns, "broker-a", "127.0.0.1:21931", 0, 4, 2, &topics).await;
    register(&ns, "broker-a", "127.0.0.1:21911", 1, 4, 0, &topics).await;
    let route = ns.topic_route(&topic).await.unwrap().unwrap();
    let a = route
        .broker_datas
        .iter()
        .find(|b| b.broker_name == "broker-a")
        .unwrap();
    assert_eq!(
        a.broker_addrs.get(&0).map(String::as_str),
        Some("127.0.0.1:21931")
    );
    // The client still parses the changed route and sees the same writable queues.
    let queues = producer.fetch_publish_message_queues(&topic).await.unwrap();
    assert_eq!(queues.len(), 6);

    // A topic nobody has: a clean error, not a hang or a panic.
    let missing = tokio::time::timeout(
        Duration::from_secs(20),
        producer.fetch_publish_message_queues("NoSuchTopicAnywhere"),
    )
    .await
    .expect("lookup of a missing topic bounded");
    assert!(missing.is_err(), "{missing:?}");

    producer.shutdown().await;
}
