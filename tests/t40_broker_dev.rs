//! `raftmq dev` (nameserver + 3-node group in one process) used through the project's client:
//! sync sends with tags and keys (topic auto-created), a batch send, a tag-filtered pull
//! consumer with committed offsets, heartbeat-registered subscriptions, consumer list,
//! queue locks, query by key / UNIQ_KEY / offsetMsgId, time search and stats; then SIGINT.
#![allow(clippy::unwrap_used)]

#[path = "common/broker_cluster.rs"]
mod broker_cluster;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker_cluster::{decode, rpc, Cluster};
use raftmq::client::{
    ClientConfig, Message, MessageQueue, Producer, ProducerConfig, PullConsumer, PullStatus,
};
use raftmq::remoting::body::{
    ConsumeFromWhere, ConsumeType, ConsumerData, HeartbeatData, LockBatchRequestBody, MessageModel,
    SubscriptionData,
};
use raftmq::remoting::{RemotingCommand, RequestCode};
use serde_json::Value;

/// Three remoting ports 10 apart whose Raft ports (+30000) are free too.
fn free_base() -> u16 {
    for _ in 0..200 {
        let base = 20000 + (std::process::id() as u16 % 50) * 100 + fastrand_u16() % 90;
        let ports: Vec<u16> = (0..3)
            .flat_map(|i| [base + i * 10, base + i * 10 + 30000])
            .collect();
        if ports
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free port range");
}

fn fastrand_u16() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 65_521) as u16
}

struct Dev(std::process::Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_the_client_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let base = free_base();
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args([
            "dev",
            "-p",
            "0",
            "--broker-port",
            &base.to_string(),
            "--data",
        ])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(data.path().join("dev.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let dev = Dev(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut namesrv = String::new();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        if let Some(a) = line.strip_prefix("raftmq dev: nameserver listening on ") {
            namesrv = a.to_string();
        }
        if line.starts_with("raftmq dev: ready") {
            break;
        }
    }
    assert!(!namesrv.is_empty());
    // Every node stores under --data.
    for i in 0..3 {
        assert!(data
            .path()
            .join(format!("broker-a-n{i}/commitlog"))
            .is_dir());
    }

    // Produce with the client: tags, keys, auto-created topic; and one batch.
    let producer = Producer::start(ClientConfig::new(&namesrv), ProducerConfig::new("PG"))
        .await
        .unwrap();
    let mut sent = BTreeMap::new();
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in 0..24 {
        let tag = ["TagA", "TagB", "TagC"][i % 3];
        let msg = Message::new("DevTopic", format!("m{i}"))
            .with_tags(tag)
            .with_keys([format!("key-{i}")]);
        let r = producer.send(msg).await.unwrap();
        sent.insert(r.msg_id.clone(), (i, tag, r.clone()));
    }
    let batch: Vec<Message> = (0..5)
        .map(|i| Message::new("DevTopic", format!("b{i}")).with_tags("TagA"))
        .collect();
    let br = producer.send_batch(batch).await.unwrap();
    assert_eq!(br.msg_id.split(',').count(), 5);

    // Consume TagA from every queue with a pull consumer; commit offsets.
    let consumer = PullConsumer::start(ClientConfig::new(&namesrv), "CG-dev")
        .await
        .unwrap();
    consumer.subscribe("DevTopic", "TagA").unwrap();
    let queues = consumer.fetch_subscribe_queues("DevTopic").await.unwrap();
    assert_eq!(queues.len(), 4);
    let mut got = vec![];
    for q in &queues {
        let mut offset = 0;
        loop {
            let r = consumer
                .pull(q, offset, 32, Duration::from_secs(3))
                .await
                .unwrap();
            match r.status {
                PullStatus::Found => {
                    for m in &r.messages {
                        assert_eq!(m.property("TAGS"), Some("TagA"));
                        got.push(String::from_utf8(m.body.to_vec()).unwrap());
                    }
                }
                PullStatus::NoMatchedMsg => {}
                _ => break,
            }
            offset = r.next_begin_offset;
        }
        consumer.commit_offset(q, offset).await.unwrap();
        assert_eq!(consumer.fetch_offset(q).await.unwrap(), Some(offset));
    }
    got.sort();
    let mut want: Vec<String> = sent
        .values()
        .filter(|(_, t, _)| *t == "TagA")
        .map(|(i, _, _)| format!("m{i}"))
        .chain((0..5).map(|i| format!("b{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);

    // Raw requests to the leader.
    let (_, _, first) = sent.values().find(|(i, _, _)| *i == 0).unwrap();
    let leader = {
        let ns = Cluster::client(&namesrv);
        let resp = rpc(
            &ns,
            RemotingCommand::request(RequestCode::GetRouteinfoByTopic)
                .with_ext("topic", "DevTopic"),
        )
        .await;
        let v: Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
        v["brokerDatas"][0]["brokerAddrs"]["0"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let c = Cluster::client(&leader);

    // VIEW_MESSAGE_BY_ID with the offset decoded from offsetMsgId.
    let (_, phys) = raftmq_store::message::decode_offset_msg_id(&first.offset_msg_id).unwrap();
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::ViewMessageById).with_ext("offset", phys),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(decode(resp.body.as_deref().unwrap())[0].body, b"m0");

    // QUERY_MESSAGE by key and by UNIQ_KEY.
    let query = |key: &str, uniq: bool| {
        let mut r = RemotingCommand::request(RequestCode::QueryMessage)
            .with_ext("topic", "DevTopic")
            .with_ext("key", key)
            .with_ext("maxNum", 32)
            .with_ext("beginTimestamp", 0)
            .with_ext("endTimestamp", i64::MAX);
        if uniq {
            r = r.with_ext("_UNIQUE_KEY_QUERY", "true");
        }
        r
    };
    let resp = rpc(&c, query("key-5", false)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let found = decode(resp.body.as_deref().unwrap());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].body, b"m5");
    let resp = rpc(&c, query(&first.msg_id, true)).await;
    assert_eq!(resp.code, 0);
    assert_eq!(decode(resp.body.as_deref().unwrap())[0].body, b"m0");
    let resp = rpc(&c, query("no-such-key", false)).await;
    assert_eq!(resp.code, 22);

    // SEARCH_OFFSET_BY_TIMESTAMP: before everything → min; far future → max.
    let q0 = &queues[0];
    let search = |ts: i64| {
        RemotingCommand::request(RequestCode::SearchOffsetByTimestamp)
            .with_ext("topic", "DevTopic")
            .with_ext("queueId", q0.queue_id)
            .with_ext("timestamp", ts)
    };
    let resp = rpc(&c, search(start_ms - 60_000)).await;
    assert_eq!(&resp.ext_fields["offset"], "0");
    let max = consumer.max_offset(q0).await.unwrap();
    let resp = rpc(&c, search(i64::MAX / 2)).await;
    assert_eq!(&resp.ext_fields["offset"], max.to_string());

    // Subscriptions from heartbeats: a pull without FLAG_SUBSCRIPTION uses them.
    let hb = HeartbeatData {
        client_id: "127.0.0.1@raw".into(),
        producer_data_set: vec![],
        consumer_data_set: vec![ConsumerData {
            group_name: "CG-raw".into(),
            consume_type: ConsumeType::ConsumePassively,
            message_model: MessageModel::Clustering,
            consume_from_where: ConsumeFromWhere::ConsumeFromFirstOffset,
            subscription_data_set: vec![SubscriptionData {
                class_filter_mode: false,
                topic: "DevTopic".into(),
                sub_string: "TagB".into(),
                tags_set: vec!["TagB".into()],
                code_set: vec![12345],
                sub_version: 1,
                expression_type: "TAG".into(),
            }],
            unit_mode: false,
        }],
        heartbeat_fingerprint: None,
        without_sub: None,
    };
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::HeartBeat)
            .with_body(serde_json::to_vec(&hb).unwrap()),
    )
    .await;
    assert_eq!(resp.code, 0);
    let mut tags_b = 0;
    for q in &queues {
        let pull = RemotingCommand::request(RequestCode::PullMessage)
            .with_ext("consumerGroup", "CG-raw")
            .with_ext("topic", "DevTopic")
            .with_ext("queueId", q.queue_id)
            .with_ext("queueOffset", 0)
            .with_ext("maxMsgNums", 32)
            .with_ext("sysFlag", 0)
            .with_ext("commitOffset", 0)
            .with_ext("suspendTimeoutMillis", 0)
            .with_ext("subVersion", 1);
        let resp = rpc(&c, pull).await;
        if resp.code == 0 {
            for m in decode(resp.body.as_deref().unwrap()) {
                assert_eq!(
                    m.tags.as_deref(),
                    Some("TagB"),
                    "broker recomputed the tag codes"
                );
                tags_b += 1;
            }
        }
    }
    assert_eq!(tags_b, 8);
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::GetConsumerListByGroup)
            .with_ext("consumerGroup", "CG-raw"),
    )
    .await;
    assert_eq!(resp.code, 0);
    let v: Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
    assert_eq!(v["consumerIdList"], serde_json::json!(["127.0.0.1@raw"]));
    // The group's retry topic was created on the heartbeat.
    let resp = rpc(&c, RemotingCommand::request(RequestCode::GetAllTopicConfig)).await;
    let v: Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
    assert!(v["topicConfigTable"]["%RETRY%CG-raw"].is_object(), "{v}");
    assert_eq!(v["topicConfigTable"]["DevTopic"]["writeQueueNums"], 4);

    // Queue locks: exclusive between clients.
    let lock = |client: &str| {
        let body = LockBatchRequestBody {
            consumer_group: "CG-order".into(),
            client_id: client.into(),
            mq_set: vec![MessageQueue::new("DevTopic", "broker-a", 0)],
            only_this_broker: None,
        };
        RemotingCommand::request(RequestCode::LockBatchMq)
            .with_body(serde_json::to_vec(&body).unwrap())
    };
    let held = |resp: RemotingCommand| {
        let v: Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
        v["lockOKMQSet"].as_array().unwrap().len()
    };
    assert_eq!(held(rpc(&c, lock("c1")).await), 1);
    assert_eq!(held(rpc(&c, lock("c2")).await), 0);
    assert_eq!(held(rpc(&c, lock("c1")).await), 1);

    // Stats.
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::GetTopicStatsInfo).with_ext("topic", "DevTopic"),
    )
    .await;
    assert_eq!(resp.code, 0);
    let table: BTreeMap<MessageQueue, raftmq::remoting::body::TopicOffset> =
        raftmq::remoting::body::decode_offset_table(resp.body.as_deref().unwrap()).unwrap();
    assert_eq!(table.values().map(|t| t.max_offset).sum::<i64>(), 29);
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::GetConsumeStats)
            .with_ext("consumerGroup", "CG-dev")
            .with_ext("topic", "DevTopic"),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let table: BTreeMap<MessageQueue, raftmq::remoting::body::OffsetWrapper> =
        raftmq::remoting::body::decode_offset_table(resp.body.as_deref().unwrap()).unwrap();
    assert!(table.values().all(|o| o.consumer_offset == o.broker_offset));

    producer.shutdown().await;
    consumer.shutdown().await;

    // SIGINT stops the whole dev setup cleanly.
    let mut dev = dev;
    Command::new("kill")
        .args(["-INT", &dev.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = dev.0.try_wait().unwrap() {
            assert!(status.success(), "dev exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "dev did not stop on SIGINT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
