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
    let ok = c
        .invoke(
            send_req(
                "Bad",
                0,
                &props(&[("TAGS", "A"), ("UNIQ_KEY", "U1")]),
                b"first",
            ),
            RPC,
        )
        .await
        .unwrap();
    assert_eq!(ok.code, 0, "{:?}", ok.remark);

    // A send without required header fields.
    let resp = c
        .invoke(
            RemotingCommand::request(RequestCode::SendMessageV2)
                .with_ext("b", "Bad")
                .with_body(&b"x"[..]),
            RPC,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 1, "{:?}", resp.remark);
    // A malformed batch body.
    let mut batch = send_req("Bad", 0, "", &[0, 0, 0, 99, 1, 2, 3]);
    batch.code = RequestCode::SendBatchMessage.code();
    let resp = c.invoke(batch, RPC).await.unwrap();
    assert_eq!(resp.code, 13, "{:?}", resp.remark);
    // A bad topic name.
    let resp = c
        .invoke(send_req("bad topic", 0, "", b"x"), RPC)
        .await
        .unwrap();
    assert_eq!(resp.code, 13, "{:?}", resp.remark);
    // Sending to a system topic.
    let resp = c
        .invoke(send_req("SCHEDULE_TOPIC_XXXX", 0, "", b"x"), RPC)
        .await
        .unwrap();
    assert_eq!(resp.code, 16);
    // Transactions are refused clearly.
    let resp = c
        .invoke(
            send_req("Bad", 0, &props(&[("TRAN_MSG", "true")]), b"x"),
            RPC,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 16);
    // A heartbeat whose body is not JSON.
    let resp = c
        .invoke(
            RemotingCommand::request(RequestCode::HeartBeat).with_body(&b"{not json"[..]),
            RPC,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 1);
    // Pulls: a queue that does not exist, SQL92, a group without subscription.
    let resp = c
        .invoke(pull_req("g", "Bad", 99, 0, "*", 0), RPC)
        .await
        .unwrap();
    assert_eq!(resp.code, 1, "{:?}", resp.remark);
    let resp = c
        .invoke(
            pull_req("g", "Bad", 0, 0, "a > 1", 0).with_ext("expressionType", "SQL92"),
            RPC,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 23);
    let mut no_sub = pull_req("nobody", "Bad", 0, 0, "*", 0);
    no_sub.ext_fields.insert("sysFlag".into(), "0".into());
    let resp = c.invoke(no_sub, RPC).await.unwrap();
    assert_eq!(resp.code, 24);
    // Unknown group for the consumer list, unknown request code.
    let resp = c
        .invoke(
            RemotingCommand::request(RequestCode::GetConsumerListByGroup)
                .with_ext("consumerGroup", "none"),
            RPC,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 1);
    let resp = c.invoke(RemotingCommand::request(9999), RPC).await.unwrap();
    assert_eq!(resp.code, 3);
    // VIEW_MESSAGE_BY_ID at an offset holding no message.
    let resp = c
        .invoke(
            RemotingCommand::request(RequestCode::ViewMessageById).with_ext("offset", 3),
            RPC,
        )
        .await
        .unwrap();
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
    let resp = c
        .invoke(send_req("Bad", 0, &props(&[("TAGS", "A")]), b"second"), RPC)
        .await
        .unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(resp.ext_fields["queueOffset"], "1");
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
    let resp = c.invoke(back(0), RPC).await.unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let retry = drain(&leader, "%RETRY%CG", 1, "*").await;
    assert_eq!(retry.len(), 1);
    let r = &retry[&(0, 0)];
    assert_eq!(r.body, b"first");
    assert_eq!(r.tags.as_deref(), Some("A"));
    let resp = c.invoke(back(-1), RPC).await.unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(drain(&leader, "%DLQ%CG", 1, "*").await.len(), 1);
}
