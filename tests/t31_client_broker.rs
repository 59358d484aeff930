//! The client library against the real thing: a `raftmq namesrv` and a 3-node `raftmq broker`
//! group as processes on loopback. Sends (auto-created topic, tags, keys, a batch), tag-filtered
//! pulls that give back exactly what was acknowledged, offsets, lookups by id and key, long
//! polling, and sends that resume on the new leader after `kill -9` of the old one.
#![allow(clippy::unwrap_used)]

#[path = "common/broker_cluster.rs"]
mod broker_cluster;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_cluster::Cluster;
use raftmq::client::{
    ClientConfig, Message, MessageExt, MessageQueue, Producer, ProducerConfig, PullConsumer,
    PullStatus, SendResult, SendStatus,
};
use raftmq::remoting::SerializeType;
use raftmq_store::message::decode_offset_msg_id;

const TOPIC: &str = "ClientOrders";

/// Every message of `queues` from offset 0, as `consumer`'s subscription filters them.
async fn drain(consumer: &PullConsumer, queues: &[MessageQueue]) -> Vec<MessageExt> {
    let mut out = Vec::new();
    for q in queues {
        let mut offset = 0;
        for _ in 0..1000 {
            let r = consumer
                .pull(q, offset, 32, Duration::from_secs(5))
                .await
                .unwrap();
            match r.status {
                PullStatus::Found | PullStatus::NoMatchedMsg => offset = r.next_begin_offset,
                PullStatus::NoNewMsg => break,
                PullStatus::OffsetIllegal => panic!("offset {offset} illegal on {q:?}"),
            }
            out.extend(r.messages);
        }
    }
    out
}

fn store_host(r: &SendResult) -> String {
    decode_offset_msg_id(&r.offset_msg_id)
        .unwrap()
        .0
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_against_a_three_node_group_with_leader_failover() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let client = ClientConfig::new(&cluster.namesrv);
    let mut pc = ProducerConfig::new("PG");
    // Enough retries and time to outlast an election.
    pc.send_timeout = Duration::from_secs(20);
    pc.retry_times_when_send_failed = 200;
    pc.retry_backoff = Duration::from_millis(100);
    let producer = Producer::start(client.clone(), pc).await.unwrap();

    // Sends to a new topic (auto-created from TBW102) land on the leader.
    let mut sent: Vec<(Message, SendResult)> = Vec::new();
    for i in 0..20 {
        let msg = Message::new(TOPIC, format!("body-{i}"))
            .with_tags(if i % 2 == 0 { "TagA" } else { "TagB" })
            .with_keys([format!("key-{i}")]);
        let r = producer.send(msg.clone()).await.unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(store_host(&r), leader);
        sent.push((msg, r));
    }
    let batch: Vec<Message> = (0..3)
        .map(|i| Message::new(TOPIC, format!("batch-{i}")).with_tags("TagA"))
        .collect();
    let br = producer.send_batch(batch.clone()).await.unwrap();
    let batch_ids: Vec<&str> = br.msg_id.split(',').collect();
    assert_eq!(batch_ids.len(), 3);

    // A TagA consumer gets exactly the TagA messages, as sent.
    let consumer = PullConsumer::start(client.clone(), "CG").await.unwrap();
    consumer.subscribe(TOPIC, "TagA").unwrap();
    let queues = consumer.fetch_subscribe_queues(TOPIC).await.unwrap();
    assert_eq!(queues.len(), 4, "auto-created with defaultTopicQueueNums");
    let got = drain(&consumer, &queues).await;
    let by_id: HashMap<&str, &MessageExt> = got.iter().map(|m| (m.msg_id(), m)).collect();
    let tag_a: Vec<_> = sent
        .iter()
        .filter(|(m, _)| m.tags() == Some("TagA"))
        .collect();
    assert_eq!(got.len(), tag_a.len() + 3);
    for (msg, r) in tag_a {
        let m = by_id[r.msg_id.as_str()];
        assert_eq!(
            (m.topic.as_str(), m.tags(), m.keys()),
            (TOPIC, msg.tags(), msg.keys())
        );
        assert_eq!(m.body, msg.body);
        assert_eq!(
            (m.queue_id, m.queue_offset),
            (r.queue.queue_id, r.queue_offset)
        );
        assert_eq!(m.offset_msg_id, r.offset_msg_id);
    }
    for (i, id) in batch_ids.iter().enumerate() {
        assert_eq!(by_id[id].body, batch[i].body);
        assert_eq!(by_id[id].queue_offset, br.queue_offset + i as i64);
    }

    // Offsets and lookups.
    let q0 = &queues[0];
    assert_eq!(consumer.min_offset(q0).await.unwrap(), 0);
    let max0 = consumer.max_offset(q0).await.unwrap();
    assert!(max0 >= 5, "queue 0 holds {max0}");
    consumer.commit_offset(q0, 3).await.unwrap();
    assert_eq!(consumer.fetch_offset(q0).await.unwrap(), Some(3));
    let inst = producer.instance();
    let (m7, r7) = &sent[7];
    let viewed = inst
        .view_message(&r7.offset_msg_id, Some(TOPIC))
        .await
        .unwrap();
    assert_eq!(viewed.body, m7.body);
    let by_key = inst
        .query_messages_by_key(TOPIC, "key-7", 32, 0, i64::MAX)
        .await
        .unwrap();
    assert!(by_key.iter().any(|m| m.msg_id() == r7.msg_id), "{by_key:?}");
    let by_uniq = inst
        .query_messages_by_uniq_key(TOPIC, &r7.msg_id, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(by_uniq.len(), 1);

    // Long polling: a held pull returns once a message arrives.
    let consumer = Arc::new(consumer);
    let held = {
        let (c, q) = (consumer.clone(), q0.clone());
        tokio::spawn(async move { c.pull_blocking(&q, max0, 32, Duration::from_secs(15)).await })
    };
    let woke = Instant::now();
    let r = producer
        .send_to_queue(Message::new(TOPIC, "wake").with_tags("TagA"), q0)
        .await
        .unwrap();
    let pulled = held.await.unwrap().unwrap();
    assert_eq!(pulled.status, PullStatus::Found);
    assert!(pulled.messages.iter().any(|m| m.msg_id() == r.msg_id));
    assert!(woke.elapsed() < Duration::from_secs(10));

    // The same requests with the compact binary (ROCKETMQ) header instead of JSON: route
    // lookup, heartbeat, send and batch, tag-filtered pull, offsets and lookups.
    let binary = ClientConfig {
        serialize_type: SerializeType::RocketMq,
        ..client.clone()
    };
    let bin_producer = Producer::start(binary.clone(), ProducerConfig::new("PG-bin"))
        .await
        .unwrap();
    let mut bin_sent = Vec::new();
    for i in 0..6 {
        let msg = Message::new("BinaryHeaders", format!("bin-{i}"))
            .with_tags(if i % 3 == 0 { "TagA" } else { "TagB" })
            .with_keys([format!("bin-key-{i}")]);
        let r = bin_producer.send(msg.clone()).await.unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        bin_sent.push((msg, r));
    }
    let bin_batch = bin_producer
        .send_batch(vec![
            Message::new("BinaryHeaders", "bin-batch-0").with_tags("TagA"),
            Message::new("BinaryHeaders", "bin-batch-1").with_tags("TagA"),
        ])
        .await
        .unwrap();
    assert_eq!(bin_batch.status, SendStatus::SendOk);
    let bin_consumer = PullConsumer::start(binary, "CG-bin").await.unwrap();
    bin_consumer.subscribe("BinaryHeaders", "TagA").unwrap();
    let bin_queues = bin_consumer
        .fetch_subscribe_queues("BinaryHeaders")
        .await
        .unwrap();
    let mut bodies: Vec<String> = drain(&bin_consumer, &bin_queues)
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["bin-0", "bin-3", "bin-batch-0", "bin-batch-1"]);
    let (m3, r3) = &bin_sent[3];
    bin_consumer.commit_offset(&r3.queue, 1).await.unwrap();
    assert_eq!(bin_consumer.fetch_offset(&r3.queue).await.unwrap(), Some(1));
    let bin_inst = bin_producer.instance();
    let viewed = bin_inst
        .view_message(&r3.offset_msg_id, Some("BinaryHeaders"))
        .await
        .unwrap();
    assert_eq!(viewed.body, m3.body);
    let by_key = bin_inst
        .query_messages_by_key("BinaryHeaders", "bin-key-3", 32, 0, i64::MAX)
        .await
        .unwrap();
    assert!(by_key.iter().any(|m| m.msg_id() == r3.msg_id), "{by_key:?}");

    // kill -9 of the leader: the next sends resume on a new leader, and everything
    // acknowledged before is still there.
    let idx = cluster.nodes.iter().position(|n| n.addr == leader).unwrap();
    cluster.kill(idx);
    let mut after = Vec::new();
    for i in 0..5 {
        let r = producer
            .send(Message::new(TOPIC, format!("after-{i}")).with_tags("TagA"))
            .await
            .unwrap();
        assert_ne!(store_host(&r), leader);
        after.push(r);
    }
    let fresh = PullConsumer::start(client, "CG2").await.unwrap();
    fresh.subscribe(TOPIC, "*").unwrap();
    let all = drain(&fresh, &queues).await;
    let ids: std::collections::HashSet<&str> = all.iter().map(|m| m.msg_id()).collect();
    for (_, r) in &sent {
        assert!(ids.contains(r.msg_id.as_str()), "lost {}", r.msg_id);
    }
    for r in after.iter().chain([&r]) {
        assert!(ids.contains(r.msg_id.as_str()), "lost {}", r.msg_id);
    }
    for id in batch_ids {
        assert!(ids.contains(id), "lost batch message {id}");
    }
}
