//! The broker over real processes: a `raftmq namesrv` and a 3-node `raftmq broker` group on
//! loopback. Produce with tags and keys (topic auto-created from TBW102), consume with a tag
//! filter, errors (oversized, unknown topic, bad queue), a follower redirects writes,
//! long polling wakes on a send, offsets are replicated and survive a restart of the group.
#![allow(clippy::unwrap_used)]

#[path = "common/broker_cluster.rs"]
mod broker_cluster;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use broker_cluster::*;
use raftmq::remoting::{RemotingCommand, RequestCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_filter_redirect_long_poll_and_offsets_survive_restart() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let lc = Cluster::client(&leader);

    // Produce 40 messages, tags alternating TagA/TagB, a key each: every send SEND_OK.
    let mut sent = vec![];
    for i in 0..40 {
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let key = format!("order-{i}");
        let uniq = format!("UNIQ{i:04}");
        let p = props(&[
            ("TAGS", tag),
            ("KEYS", &key),
            ("UNIQ_KEY", &uniq),
            ("WAIT", "true"),
        ]);
        let resp = rpc(
            &lc,
            send_req("Orders", -1, &p, format!("body-{i}").as_bytes()),
        )
        .await;
        assert_eq!(resp.code, 0, "send {i}: {:?}", resp.remark);
        assert_eq!(&resp.ext_fields["transactionId"], uniq);
        assert_eq!(&resp.ext_fields["MSG_REGION"], "DefaultRegion");
        let msg_id = &resp.ext_fields["msgId"];
        assert_eq!(msg_id.len(), 32, "offsetMsgId is 16 bytes of hex");
        let q: i32 = resp.ext_fields["queueId"].parse().unwrap();
        let o: i64 = resp.ext_fields["queueOffset"].parse().unwrap();
        sent.push((q, o, tag.to_string(), key, format!("body-{i}")));
    }
    // The topic was auto-created with min(4, 8) queues; offsets are dense per queue.
    let queues: BTreeSet<i32> = sent.iter().map(|s| s.0).collect();
    assert_eq!(queues, (0..4).collect());
    for q in 0..4 {
        let mut offs: Vec<i64> = sent.iter().filter(|s| s.0 == q).map(|s| s.1).collect();
        offs.sort();
        assert_eq!(offs, (0..offs.len() as i64).collect::<Vec<_>>());
    }

    // Consume with a tag filter: exactly the TagA messages, as sent.
    let got = drain(&leader, "Orders", 4, "TagA").await;
    let want: Vec<_> = sent.iter().filter(|s| s.2 == "TagA").collect();
    assert_eq!(got.len(), want.len());
    for s in &want {
        let m = &got[&(s.0, s.1)];
        assert_eq!(m.body, s.4.as_bytes());
        assert_eq!(m.tags.as_deref(), Some("TagA"));
        assert_eq!(m.keys, vec![s.3.clone()]);
    }
    // `*` gets everything; followers serve the same committed bytes.
    assert_eq!(drain(&leader, "Orders", 4, "*").await.len(), 40);
    let follower = cluster
        .nodes
        .iter()
        .map(|n| n.addr.clone())
        .find(|a| *a != leader)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = drain(&follower, "Orders", 4, "*").await;
        if f.len() == 40 {
            assert_eq!(f, drain(&leader, "Orders", 4, "*").await);
            break;
        }
        assert!(Instant::now() < deadline, "follower has {} of 40", f.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A follower refuses writes with SERVICE_NOT_AVAILABLE naming the leader.
    let fc = Cluster::client(&follower);
    let resp = rpc(&fc, send_req("Orders", 0, &props(&[("TAGS", "X")]), b"x")).await;
    assert_eq!(resp.code, 14, "{:?}", resp.remark);
    assert!(
        resp.remark.as_deref().unwrap().contains(&leader),
        "{:?}",
        resp.remark
    );

    // Errors: oversized message, unknown topic without a template, queue out of range.
    let big = vec![b'x'; 70_000];
    let resp = rpc(&lc, send_req("Orders", 0, "", &big)).await;
    assert_eq!(resp.code, 13, "{:?}", resp.remark);
    let resp = rpc(
        &lc,
        send_req("Nope", 0, "", b"x").with_ext("c", "NoTemplate"),
    )
    .await;
    assert_eq!(resp.code, 17, "{:?}", resp.remark);
    let resp = rpc(&lc, send_req("Orders", 9, "", b"x")).await;
    assert_ne!(resp.code, 0);
    let resp = rpc(&lc, pull_req("g", "NoSuchTopic", 0, 0, "*", 0)).await;
    assert_eq!(resp.code, 17);
    let resp = rpc(&lc, pull_req("g", "Orders", 0, 1000, "*", 0)).await;
    assert_eq!(resp.code, 21, "offset beyond the queue is OFFSET_MOVED");
    let max: i64 = resp.ext_fields["maxOffset"].parse().unwrap();
    assert_eq!(&resp.ext_fields["nextBeginOffset"], max.to_string());

    // Long polling: a pull at the end of queue 0 is held and wakes on a send.
    let pull = tokio::spawn({
        let leader = leader.clone();
        async move {
            let c = Cluster::client(&leader);
            let start = Instant::now();
            let resp = c
                .invoke(
                    pull_req("lp", "Orders", 0, max, "*", 15_000),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
            (resp, start.elapsed())
        }
    });
    // The same on a follower: woken when the entry is committed and applied there.
    let follower_pull = tokio::spawn({
        let follower = follower.clone();
        async move {
            let c = Cluster::client(&follower);
            let resp = c
                .invoke(
                    pull_req("lp", "Orders", 0, max, "*", 15_000),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
            (resp, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_at = Instant::now();
    let resp = rpc(
        &lc,
        send_req("Orders", 0, &props(&[("TAGS", "TagA")]), b"late"),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let (resp, held) = pull.await.unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(decode(resp.body.as_deref().unwrap())[0].body, b"late");
    assert!(
        held >= Duration::from_millis(250),
        "the pull was held ({held:?})"
    );
    assert!(
        sent_at.elapsed() < Duration::from_secs(2),
        "woken by the send, not a timeout"
    );
    let (resp, woke_at) = follower_pull.await.unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(decode(resp.body.as_deref().unwrap())[0].body, b"late");
    assert!(
        woke_at.duration_since(sent_at) < Duration::from_secs(3),
        "the follower's held pull woke on apply ({:?})",
        woke_at.duration_since(sent_at)
    );
    // Without a send, a held pull ends with PULL_NOT_FOUND after its suspend time.
    let start = Instant::now();
    let resp = rpc(&lc, pull_req("lp", "Orders", 1, 1_000_000, "*", 0)).await;
    assert_eq!(resp.code, 21);
    let q1_max: i64 = resp.ext_fields["maxOffset"].parse().unwrap();
    let resp = rpc(&lc, pull_req("lp", "Orders", 1, q1_max, "*", 500)).await;
    assert_eq!(resp.code, 19);
    assert!(start.elapsed() >= Duration::from_millis(500));

    // An empty queue pulled from offset 0 (what clients do with a group's retry queue) is
    // held too, and wakes on the first message instead of answering at once.
    let resp = rpc(&lc, send_req("EmptyQ", 0, "", b"first")).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let start = Instant::now();
    let resp = rpc(&lc, pull_req("lp", "EmptyQ", 1, 0, "*", 400)).await;
    assert_eq!(resp.code, 19, "{:?}", resp.remark);
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "an empty queue at offset 0 is held, not answered at once ({:?})",
        start.elapsed()
    );
    let empty_pull = tokio::spawn({
        let leader = leader.clone();
        async move {
            let c = Cluster::client(&leader);
            let resp = c
                .invoke(
                    pull_req("lp", "EmptyQ", 1, 0, "*", 15_000),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
            (resp, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_at = Instant::now();
    let resp = rpc(&lc, send_req("EmptyQ", 1, "", b"wakes")).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let (resp, woke_at) = empty_pull.await.unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(decode(resp.body.as_deref().unwrap())[0].body, b"wakes");
    assert!(
        woke_at.duration_since(sent_at) < Duration::from_secs(2),
        "woken by the send, not a timeout"
    );

    // Offsets: commit on the leader, read back on a follower (replicated).
    let commit = RemotingCommand::request(RequestCode::UpdateConsumerOffset)
        .with_ext("consumerGroup", "CG")
        .with_ext("topic", "Orders")
        .with_ext("queueId", 2)
        .with_ext("commitOffset", 7);
    let resp = rpc(&lc, commit.clone()).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let resp = rpc(&fc, commit).await;
    assert_eq!(resp.code, 14, "followers refuse offset commits");
    let query = RemotingCommand::request(RequestCode::QueryConsumerOffset)
        .with_ext("consumerGroup", "CG")
        .with_ext("topic", "Orders")
        .with_ext("queueId", 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = rpc(&fc, query.clone()).await;
        if resp.code == 0 && &resp.ext_fields["offset"] == "7" {
            break;
        }
        assert!(Instant::now() < deadline, "offset not replicated: {resp:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let max_req = RemotingCommand::request(RequestCode::GetMaxOffset)
        .with_ext("topic", "Orders")
        .with_ext("queueId", 0);
    let resp = rpc(&lc, max_req.clone()).await;
    let max0: i64 = resp.ext_fields["offset"].parse().unwrap();
    assert_eq!(max0, max + 1);

    // Stop the whole group and start it again: data and offsets are still there.
    drop(lc);
    drop(fc);
    for i in 0..3 {
        cluster.stop(i);
    }
    for i in 0..3 {
        cluster.start_node(i);
    }
    let leader2 = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let c = Cluster::client(&leader2);
    let resp = rpc(&c, query).await;
    assert_eq!((resp.code, &resp.ext_fields["offset"]), (0, "7"));
    let resp = rpc(&c, max_req).await;
    assert_eq!(&resp.ext_fields["offset"], max0.to_string());
    assert_eq!(drain(&leader2, "Orders", 4, "*").await.len(), 41);
    let resp = rpc(
        &c,
        send_req("Orders", 0, &props(&[("TAGS", "TagA")]), b"after"),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(&resp.ext_fields["queueOffset"], max0.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_admin_is_replicated_and_routed() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let follower = cluster
        .nodes
        .iter()
        .map(|n| n.addr.clone())
        .find(|a| *a != leader)
        .unwrap();
    let create = |topic: &str, r: i32, w: i32, perm: i32| {
        RemotingCommand::request(RequestCode::UpdateAndCreateTopic)
            .with_ext("topic", topic)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", r)
            .with_ext("writeQueueNums", w)
            .with_ext("perm", perm)
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("order", false)
    };
    let lc = Cluster::client(&leader);
    let fc = Cluster::client(&follower);
    let resp = rpc(&lc, create("Admin", 8, 8, 6)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let resp = rpc(&fc, create("Admin2", 8, 8, 6)).await;
    assert_eq!(resp.code, 14, "followers refuse topic changes");
    let bad = rpc(&lc, create("Admin3", 0, 8, 6)).await;
    assert_eq!(bad.code, 1);

    // The nameserver routes the new topic with its queues at once (registration on change).
    let ns = Cluster::client(&cluster.namesrv);
    let route = |topic: &str| {
        RemotingCommand::request(RequestCode::GetRouteinfoByTopic).with_ext("topic", topic)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = rpc(&ns, route("Admin")).await;
        if resp.code == 0 {
            let v: serde_json::Value =
                serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
            assert_eq!(v["queueDatas"][0]["writeQueueNums"], 8);
            break;
        }
        assert!(Instant::now() < deadline, "topic never routed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Replicated: the follower's topic table has it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = rpc(
            &fc,
            RemotingCommand::request(RequestCode::GetAllTopicConfig),
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
        if v["topicConfigTable"]["Admin"]["readQueueNums"] == 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "topic config not replicated: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Shrink the write queues first (RocketMQ's procedure): sends go to queues 0..4 only,
    // while queues 4..8 stay readable until they are drained.
    let resp = rpc(&lc, create("Admin", 8, 4, 6)).await;
    assert_eq!(resp.code, 0);
    let resp = rpc(&lc, send_req("Admin", -1, "", b"x")).await;
    assert!(resp.ext_fields["queueId"].parse::<i32>().unwrap() < 4);
    let resp = rpc(&lc, pull_req("g", "Admin", 6, 0, "*", 0)).await;
    assert_eq!(
        resp.code, 19,
        "queue 6 is still readable: {:?}",
        resp.remark
    );
    // Read-only topic: sends refused, pulls served.
    let resp = rpc(&lc, create("Admin", 8, 8, 4)).await;
    assert_eq!(resp.code, 0);
    let resp = rpc(&lc, send_req("Admin", 0, "", b"x")).await;
    assert_eq!(resp.code, 16);

    // Runtime info names the Raft role.
    let resp = rpc(
        &lc,
        RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
    assert_eq!(v["table"]["brokerRole"], "SYNC_MASTER");
    let resp = rpc(&lc, RemotingCommand::request(RequestCode::GetBrokerConfig)).await;
    let text = String::from_utf8(resp.body.unwrap().to_vec()).unwrap();
    assert!(text.contains("brokerName=broker-a\n"), "{text}");
    assert!(text.contains(&format!(
        "listenPort={}\n",
        leader.rsplit(':').next().unwrap()
    )));
    // Delete: gone from the broker's table (and sends no longer auto-create it from a
    // template that is not there).
    let resp = rpc(
        &lc,
        RemotingCommand::request(RequestCode::DeleteTopicInBroker).with_ext("topic", "Admin"),
    )
    .await;
    assert_eq!(resp.code, 0);
    let resp = rpc(
        &lc,
        send_req("Admin", 0, "", b"x").with_ext("c", "NoTemplate"),
    )
    .await;
    assert_eq!(resp.code, 17);
}

async fn min_max(c: &raftmq::remoting::RemotingClient, topic: &str, q: i32) -> (i64, i64) {
    let mut out = [0i64; 2];
    for (i, code) in [RequestCode::GetMinOffset, RequestCode::GetMaxOffset]
        .into_iter()
        .enumerate()
    {
        let resp = rpc(
            c,
            RemotingCommand::request(code)
                .with_ext("topic", topic)
                .with_ext("queueId", q),
        )
        .await;
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
        out[i] = resp.ext_fields["offset"].parse().unwrap();
    }
    (out[0], out[1])
}

/// DELETE_TOPIC_IN_BROKER empties the topic's queues on every member and drops the groups'
/// offsets on it, as RocketMQ does; queue offsets never go back, so a recreated topic
/// continues where the old one ended and a consumer's old offset never names a new message.
/// The deletion survives `kill -9` of the whole group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_empties_its_queues_on_every_member() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let lc = Cluster::client(&leader);
    for (q, n) in [(0, 5), (1, 3)] {
        for i in 0..n {
            let resp = rpc(&lc, send_req("Gone", q, "", format!("{q}-{i}").as_bytes())).await;
            assert_eq!(resp.code, 0, "{:?}", resp.remark);
        }
    }
    let commit = RemotingCommand::request(RequestCode::UpdateConsumerOffset)
        .with_ext("consumerGroup", "CG")
        .with_ext("topic", "Gone")
        .with_ext("queueId", 0)
        .with_ext("commitOffset", 3);
    assert_eq!(rpc(&lc, commit).await.code, 0);
    let query = RemotingCommand::request(RequestCode::QueryConsumerOffset)
        .with_ext("consumerGroup", "CG")
        .with_ext("topic", "Gone")
        .with_ext("queueId", 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rpc(&lc, query.clone()).await.code != 0 {
        assert!(Instant::now() < deadline, "offset commit never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let resp = rpc(
        &lc,
        RemotingCommand::request(RequestCode::DeleteTopicInBroker).with_ext("topic", "Gone"),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    // Every member: the queues are empty at their old ends.
    for node in &cluster.nodes {
        let c = Cluster::client(&node.addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = (min_max(&c, "Gone", 0).await, min_max(&c, "Gone", 1).await);
            if got == ((5, 5), (3, 3)) {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {got:?}", node.addr);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(
        rpc(&lc, query.clone()).await.code,
        22,
        "the group's offset on the deleted topic is gone"
    );

    // Recreated by a send: offsets continue; nothing old is readable.
    let resp = rpc(&lc, send_req("Gone", 0, "", b"new")).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(&resp.ext_fields["queueOffset"], "5");
    only_new(&lc).await;

    // kill -9 of the whole group: the deletion holds after recovery.
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.start_node(i);
    }
    // The nameserver may still route to the old leader, now perhaps a follower that is still
    // catching up: wait for it to hold the acknowledged message again.
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let c = Cluster::client(&leader);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = (min_max(&c, "Gone", 0).await, min_max(&c, "Gone", 1).await);
        if got == ((5, 6), (3, 3)) {
            break;
        }
        assert!(
            got.0 .0 == 5 && got.1 == (3, 3) && Instant::now() < deadline,
            "after recovery: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    only_new(&c).await;
}

/// Pulls of the recreated topic "Gone" from offset 0: moved past the deleted messages to
/// where the new ones begin, and only the one new message is there.
async fn only_new(c: &raftmq::remoting::RemotingClient) {
    for (q, min) in [(0, 5), (1, 3)] {
        let resp = rpc(c, pull_req("CG", "Gone", q, 0, "*", 0)).await;
        assert_eq!(resp.code, 21, "queue {q}: {:?}", resp.remark);
        assert_eq!(&resp.ext_fields["nextBeginOffset"], min.to_string());
    }
    let resp = rpc(c, pull_req("CG", "Gone", 0, 5, "*", 0)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let got = decode(resp.body.as_deref().unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].queue_offset, got[0].body.as_slice()),
        (5, &b"new"[..])
    );
}
