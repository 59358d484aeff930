//! A standalone broker (a Raft group of one, real process): bad requests get clear error
//! codes and the broker keeps serving; a client vanishing during a held pull is harmless;
//! CONSUMER_SEND_MSG_BACK stores retry and dead-letter copies.
#![allow(clippy::unwrap_used)]

#[path = "common/broker_cluster.rs"]
mod broker_cluster;

use std::time::Duration;

use broker_cluster::*;
use raftmq::remoting::{RemotingCommand, RequestCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_error_codes_and_the_broker_keeps_serving() {
    let cluster = Cluster::start(1);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let c = Cluster::client(&leader);
    let ok = rpc(
        &c,
        send_req(
            "Bad",
            0,
            &props(&[("TAGS", "A"), ("UNIQ_KEY", "U1")]),
            b"first",
        ),
    )
    .await;
    assert_eq!(ok.code, 0, "{:?}", ok.remark);

    // A send without required header fields.
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::SendMessageV2)
            .with_ext("b", "Bad")
            .with_body(&b"x"[..]),
    )
    .await;
    assert_eq!(resp.code, 1, "{:?}", resp.remark);
    // A malformed batch body.
    let mut batch = send_req("Bad", 0, "", &[0, 0, 0, 99, 1, 2, 3]);
    batch.code = RequestCode::SendBatchMessage.code();
    let resp = rpc(&c, batch).await;
    assert_eq!(resp.code, 13, "{:?}", resp.remark);
    // A bad topic name.
    let resp = rpc(&c, send_req("bad topic", 0, "", b"x")).await;
    assert_eq!(resp.code, 13, "{:?}", resp.remark);
    // Sending to a system topic.
    let resp = rpc(&c, send_req("SCHEDULE_TOPIC_XXXX", 0, "", b"x")).await;
    assert_eq!(resp.code, 16);
    // Transactions are refused clearly.
    let resp = rpc(
        &c,
        send_req("Bad", 0, &props(&[("TRAN_MSG", "true")]), b"x"),
    )
    .await;
    assert_eq!(resp.code, 16);
    // A heartbeat whose body is not JSON.
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::HeartBeat).with_body(&b"{not json"[..]),
    )
    .await;
    assert_eq!(resp.code, 1);
    // Pulls: a queue that does not exist, SQL92, a group without subscription.
    let resp = rpc(&c, pull_req("g", "Bad", 99, 0, "*", 0)).await;
    assert_eq!(resp.code, 1, "{:?}", resp.remark);
    let resp = rpc(
        &c,
        pull_req("g", "Bad", 0, 0, "a > 1", 0).with_ext("expressionType", "SQL92"),
    )
    .await;
    assert_eq!(resp.code, 23);
    let mut no_sub = pull_req("nobody", "Bad", 0, 0, "*", 0);
    no_sub.ext_fields.insert("sysFlag", "0");
    let resp = rpc(&c, no_sub).await;
    assert_eq!(resp.code, 24);
    // Unknown group for the consumer list, unknown request code.
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::GetConsumerListByGroup)
            .with_ext("consumerGroup", "none"),
    )
    .await;
    assert_eq!(resp.code, 1);
    let resp = rpc(&c, RemotingCommand::request(9999)).await;
    assert_eq!(resp.code, 3);
    // VIEW_MESSAGE_BY_ID at an offset holding no message.
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::ViewMessageById).with_ext("offset", 3),
    )
    .await;
    assert_eq!(resp.code, 1);

    // A client that goes away while its pull is held.
    {
        let gone = Cluster::client(&leader);
        let held = tokio::spawn(async move {
            let _ = gone
                .invoke(
                    pull_req("g", "Bad", 0, 1, "*", 10_000),
                    Duration::from_secs(30),
                )
                .await;
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        held.abort();
    }

    // Still serving, and the first message is intact.
    let resp = rpc(&c, send_req("Bad", 0, &props(&[("TAGS", "A")]), b"second")).await;
    assert_eq!(resp.code, 0);
    assert_eq!(&resp.ext_fields["queueOffset"], "1");
    let got = drain(&leader, "Bad", 1, "*").await;
    let bodies: Vec<&[u8]> = got.values().map(|m| m.body.as_slice()).collect();
    assert_eq!(bodies, vec![&b"first"[..], &b"second"[..]]);

    // CONSUMER_SEND_MSG_BACK: a retry copy, then a dead-letter copy.
    let phys = got[&(0, 0)].phys;
    let back = |level: i32| {
        RemotingCommand::request(RequestCode::ConsumerSendMsgBack)
            .with_ext("offset", phys)
            .with_ext("group", "CG")
            .with_ext("delayLevel", level)
            .with_ext("originMsgId", "U1")
            .with_ext("originTopic", "Bad")
    };
    // Level 1 (1 s): the retry copy waits in the schedule topic, then arrives.
    let sent_back = std::time::Instant::now();
    let resp = rpc(&c, back(1)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert!(
        drain(&leader, "%RETRY%CG", 1, "*").await.is_empty(),
        "not before its delay"
    );
    let retry = loop {
        let r = drain(&leader, "%RETRY%CG", 1, "*").await;
        if !r.is_empty() {
            break r;
        }
        assert!(
            sent_back.elapsed() < Duration::from_secs(10),
            "retry copy never delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        sent_back.elapsed() >= Duration::from_millis(900),
        "{:?}",
        sent_back.elapsed()
    );
    assert_eq!(retry.len(), 1);
    let r = &retry[&(0, 0)];
    assert_eq!(r.body, b"first");
    assert_eq!(r.tags.as_deref(), Some("A"));
    let resp = rpc(&c, back(-1)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(drain(&leader, "%DLQ%CG", 1, "*").await.len(), 1);

    // A message sent with DELAY=1 is held ~1 s, then delivered to its queue (a held pull
    // wakes for it).
    let max: i64 = rpc(
        &c,
        RemotingCommand::request(RequestCode::GetMaxOffset)
            .with_ext("topic", "Bad")
            .with_ext("queueId", 0),
    )
    .await
    .ext_fields["offset"]
        .parse()
        .unwrap();
    let sent_at = std::time::Instant::now();
    let resp = rpc(&c, send_req("Bad", 0, &props(&[("DELAY", "1")]), b"later")).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let resp = c
        .invoke(
            pull_req("g", "Bad", 0, max, "*", 8_000),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(decode(resp.body.as_deref().unwrap())[0].body, b"later");
    let waited = sent_at.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

/// Records the NOTIFY_CONSUMER_IDS_CHANGED requests a client receives.
struct Notified(tokio::sync::mpsc::UnboundedSender<String>);

impl raftmq::remoting::Processor for Notified {
    fn process<'a>(
        &'a self,
        _ctx: &'a raftmq::remoting::ConnContext,
        req: RemotingCommand,
    ) -> raftmq::remoting::BoxFuture<'a, raftmq::remoting::ProcessResult> {
        Box::pin(async move {
            if req.code == RequestCode::NotifyConsumerIdsChanged.code() {
                let _ = self
                    .0
                    .send(req.ext_opt_str("consumerGroup").unwrap_or("").to_string());
            }
            Ok(None)
        })
    }
}

fn heartbeat(client_id: &str) -> RemotingCommand {
    let body = serde_json::json!({
        "clientID": client_id,
        "producerDataSet": [],
        "consumerDataSet": [{
            "groupName": "CG-n",
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet": [{"topic": "Bad", "subString": "*", "subVersion": 1}],
            "unitMode": false
        }]
    });
    RemotingCommand::request(RequestCode::HeartBeat).with_body(serde_json::to_vec(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_notified_of_group_changes_and_pulls_commit_offsets() {
    let cluster = Cluster::start(1);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let first = raftmq::remoting::RemotingClient::with_handler(
        leader.clone(),
        raftmq::remoting::ClientConfig::default(),
        std::sync::Arc::new(Notified(tx)),
    );
    // The first member's own registration changes the group: it is told too.
    assert_eq!(rpc(&first, heartbeat("c1")).await.code, 0);
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("CG-n"));
    // A repeated heartbeat changes nothing: no notification.
    assert_eq!(rpc(&first, heartbeat("c1")).await.code, 0);
    // A second member joins: the first is notified at once.
    let second = Cluster::client(&leader);
    assert_eq!(rpc(&second, heartbeat("c2")).await.code, 0);
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("CG-n"));
    assert!(
        rx.try_recv().is_err(),
        "exactly one notification per change"
    );
    // The second member's connection closes: the first is notified again.
    drop(second);
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("CG-n"));
    let resp = rpc(
        &first,
        RemotingCommand::request(RequestCode::GetConsumerListByGroup)
            .with_ext("consumerGroup", "CG-n"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
    assert_eq!(v["consumerIdList"], serde_json::json!(["c1"]));

    // A pull with FLAG_COMMIT_OFFSET stores the group's offset (heartbeat subscription used).
    for i in 0..3 {
        let resp = rpc(&first, send_req("Bad", 0, "", format!("{i}").as_bytes())).await;
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
    }
    let pull = pull_req("CG-n", "Bad", 0, 1, "*", 0)
        .with_ext("sysFlag", 0x1)
        .with_ext("commitOffset", 2);
    let resp = rpc(&first, pull).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(decode(resp.body.as_deref().unwrap()).len(), 2);
    let query = RemotingCommand::request(RequestCode::QueryConsumerOffset)
        .with_ext("consumerGroup", "CG-n")
        .with_ext("topic", "Bad")
        .with_ext("queueId", 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let resp = rpc(&first, query.clone()).await;
        if resp.code == 0 && &resp.ext_fields["offset"] == "2" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{resp:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_headers_oneway_sends_and_compressed_bodies_stored_as_sent() {
    let cluster = Cluster::start(1);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let c = Cluster::client(&leader);
    // SEND_MESSAGE (10) with full header names, as the Go client sends single messages,
    // with a compressed body (sysFlag 0x1): stored and returned byte for byte.
    let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let v1 = RemotingCommand::request(RequestCode::SendMessage)
        .with_ext("producerGroup", "PG")
        .with_ext("topic", "V1")
        .with_ext("defaultTopic", "TBW102")
        .with_ext("defaultTopicQueueNums", 4)
        .with_ext("queueId", 1)
        .with_ext("sysFlag", 1)
        .with_ext("bornTimestamp", 1)
        .with_ext("flag", 7)
        .with_ext("properties", props(&[("TAGS", "Z")]))
        .with_body(body.clone());
    let resp = rpc(&c, v1).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(&resp.ext_fields["queueId"], "1");
    // A oneway send: no answer, but stored.
    c.invoke_oneway(send_req("V1", 1, &props(&[("TAGS", "Z")]), b"oneway"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let got = loop {
        let got = drain(&leader, "V1", 4, "*").await;
        if got.len() == 2 {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "oneway send not stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(got[&(1, 0)].body, body);
    assert_eq!(got[&(1, 1)].body, b"oneway");
    let resp = rpc(&c, pull_req("g", "V1", 1, 0, "*", 0)).await;
    let raw = resp.body.unwrap();
    let view = raftmq_store::message::MessageView::parse(&raw).unwrap();
    assert_eq!(view.sys_flag() & 1, 1, "compressed flag kept");
    assert_eq!(view.flag(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_sends_create_a_topic_once() {
    let cluster = Cluster::start(1);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let c = std::sync::Arc::new(Cluster::client(&leader));
    let counter = |c: std::sync::Arc<raftmq::remoting::RemotingClient>| async move {
        let resp = rpc(&c, RemotingCommand::request(RequestCode::GetAllTopicConfig)).await;
        let v: serde_json::Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
        v["dataVersion"]["counter"].as_i64().unwrap()
    };
    let before = counter(c.clone()).await;
    let sends: Vec<_> = (0..16)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                rpc(&c, send_req("Fresh", -1, "", format!("{i}").as_bytes()))
                    .await
                    .code
            })
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap(), 0);
    }
    assert_eq!(counter(c.clone()).await, before + 1, "one topic creation");
    assert_eq!(drain(&leader, "Fresh", 4, "*").await.len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_groups_are_replicated_config() {
    let cluster = Cluster::start(1);
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let c = Cluster::client(&leader);
    assert_eq!(rpc(&c, send_req("G", 0, "", b"x")).await.code, 0);
    let create = |body: &str| {
        RemotingCommand::request(RequestCode::UpdateAndCreateSubscriptiongroup)
            .with_body(body.as_bytes().to_vec())
    };
    // Java sends every field, plus some this broker does not know.
    let resp = rpc(&c, create(r#"{"groupName":"Off","consumeEnable":false,"retryMaxTimes":3,"groupSysFlag":0,"consumeMessageOrderly":false}"#)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(rpc(&c, create("{}")).await.code, 1);
    assert_eq!(rpc(&c, create("not json")).await.code, 1);
    let resp = rpc(&c, pull_req("Off", "G", 0, 0, "*", 0)).await;
    assert_eq!(resp.code, 16, "a disabled group may not consume");
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::GetAllSubscriptiongroupConfig),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
    let off = &v["subscriptionGroupTable"]["Off"];
    assert_eq!(
        (
            off["consumeEnable"].as_bool(),
            off["retryMaxTimes"].as_i64()
        ),
        (Some(false), Some(3))
    );
    assert_eq!(off["retryQueueNums"], 1, "defaults for absent fields");
    let resp = rpc(
        &c,
        RemotingCommand::request(RequestCode::DeleteSubscriptiongroup).with_ext("groupName", "Off"),
    )
    .await;
    assert_eq!(resp.code, 0);
    let resp = rpc(&c, pull_req("Off", "G", 0, 0, "*", 0)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
}

async fn consumer_ids(c: &raftmq::remoting::RemotingClient) -> serde_json::Value {
    let resp = rpc(
        c,
        RemotingCommand::request(RequestCode::GetConsumerListByGroup)
            .with_ext("consumerGroup", "CG-n"),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let v: serde_json::Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
    v["consumerIdList"].clone()
}

/// A client that keeps its connection open but stops sending heartbeats is dropped after
/// `channelExpiredTimeout`, and the rest of its group is told; a client that keeps beating
/// stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_channel_expires_and_its_group_is_told() {
    const EXPIRY: Duration = Duration::from_millis(1500);
    let cluster = Cluster::start_with(1, "channelExpiredTimeout=1500\n");
    let leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let live = raftmq::remoting::RemotingClient::with_handler(
        leader.clone(),
        raftmq::remoting::ClientConfig::default(),
        std::sync::Arc::new(Notified(tx)),
    );
    assert_eq!(rpc(&live, heartbeat("c1")).await.code, 0);
    assert_eq!(rx.recv().await.as_deref(), Some("CG-n"));

    let silent = Cluster::client(&leader);
    assert_eq!(rpc(&silent, heartbeat("c2")).await.code, 0);
    let silent_since = std::time::Instant::now();
    assert_eq!(rx.recv().await.as_deref(), Some("CG-n"));
    assert_eq!(consumer_ids(&live).await, serde_json::json!(["c1", "c2"]));

    // c1 beats every 300 ms; c2's connection stays open and says nothing.
    let deadline = silent_since + Duration::from_secs(15);
    loop {
        assert_eq!(rpc(&live, heartbeat("c1")).await.code, 0);
        if let Ok(group) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            assert_eq!(group.as_deref(), Some("CG-n"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the silent channel never expired"
        );
    }
    let waited = silent_since.elapsed();
    assert!(
        waited >= EXPIRY,
        "expired after {waited:?}, before {EXPIRY:?}"
    );
    assert_eq!(consumer_ids(&live).await, serde_json::json!(["c1"]));
    // The silent client's connection is still usable: a heartbeat brings it back.
    assert_eq!(rpc(&silent, heartbeat("c2")).await.code, 0);
    assert_eq!(consumer_ids(&live).await, serde_json::json!(["c1", "c2"]));
}
