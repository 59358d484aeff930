//! Nameserver over real TCP on 127.0.0.1: fake brokers register, clients fetch routes in both
//! header encodings, Raft leader changes and stale terms, connection-close removal, KV config,
//! bad input, and the real `raftmq namesrv` binary started and stopped with SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use raftmq::config::NamesrvConfig;
use raftmq::namesrv::bodies::{RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};
use raftmq::namesrv::Namesrv;
use raftmq::remoting::{ClientConfig, RemotingClient, RemotingCommand, SerializeType};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);
const JSON: SerializeType = SerializeType::Json;
const BINARY: SerializeType = SerializeType::RocketMq;

async fn start(order_message_enable: bool) -> Namesrv {
    let cfg = NamesrvConfig {
        bind_address: [127, 0, 0, 1].into(),
        listen_port: 0,
        kv_config_path: None,
        order_message_enable,
        ..NamesrvConfig::default()
    };
    Namesrv::bind(cfg).await.unwrap()
}

fn client(ns: &Namesrv) -> RemotingClient {
    RemotingClient::new(ns.local_addr().to_string(), ClientConfig::default())
}

/// A broker's registration: `raft` = (term, node id) for raftmq group members.
struct Reg<'a> {
    name: &'a str,
    addr: &'a str,
    id: i64,
    raft: Option<(u64, u64)>,
    topics: &'a [(&'a str, i32)],
    counter: i64,
}

impl<'a> Reg<'a> {
    /// A master (brokerId 0) outside any Raft group, data version 1.
    fn master(name: &'a str, addr: &'a str, topics: &'a [(&'a str, i32)]) -> Self {
        Reg {
            name,
            addr,
            id: 0,
            raft: None,
            topics,
            counter: 1,
        }
    }
}

fn register_cmd(r: &Reg<'_>, st: SerializeType) -> RemotingCommand {
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            data_version: raftmq::namesrv::bodies::DataVersion {
                counter: r.counter,
                timestamp: 1_700_000_000_000,
                state_version: None,
            },
            topic_config_table: r
                .topics
                .iter()
                .map(|(t, q)| (t.to_string(), TopicConfig::new(t, *q)))
                .collect(),
        },
        filter_server_list: vec![],
    };
    let mut cmd = RemotingCommand::request(103)
        .with_serialize_type(st)
        .with_ext("brokerName", r.name)
        .with_ext("brokerAddr", r.addr)
        .with_ext("clusterName", "DefaultCluster")
        .with_ext("haServerAddr", format!("{}-ha", r.addr))
        .with_ext("brokerId", r.id)
        .with_ext("compressed", false)
        .with_ext("bodyCrc32", 0)
        .with_body(serde_json::to_vec(&body).unwrap());
    if let Some((term, node)) = r.raft {
        cmd = cmd.with_ext("raftTerm", term).with_ext("raftNodeId", node);
    }
    cmd
}

async fn register(c: &RemotingClient, r: Reg<'_>, st: SerializeType) -> RemotingCommand {
    c.invoke(register_cmd(&r, st), TIMEOUT).await.unwrap()
}

async fn route(c: &RemotingClient, topic: &str, st: SerializeType) -> RemotingCommand {
    let cmd = RemotingCommand::request(105)
        .with_serialize_type(st)
        .with_ext("topic", topic);
    c.invoke(cmd, TIMEOUT).await.unwrap()
}

fn body_json(resp: &RemotingCommand) -> Value {
    serde_json::from_slice(resp.body.as_deref().expect("response has a body")).unwrap()
}

/// `brokerAddrs` of the first broker data of `topic`'s route.
async fn broker_addrs(c: &RemotingClient, topic: &str) -> Value {
    let resp = route(c, topic, JSON).await;
    assert_eq!(resp.code, 0, "route for {topic}: {:?}", resp.remark);
    body_json(&resp)["brokerDatas"][0]["brokerAddrs"].clone()
}

#[tokio::test]
async fn register_and_route_in_both_encodings() {
    let ns = start(false).await;
    let master = client(&ns);
    let slave = client(&ns);

    let resp = register(
        &master,
        Reg::master(
            "broker-a",
            "127.0.0.1:10911",
            &[("TopicTest", 4), ("TBW102", 8)],
        ),
        JSON,
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(resp.serialize_type, JSON);
    assert!(!resp.ext_fields.contains_key("masterAddr"));

    let resp = register(
        &slave,
        Reg {
            id: 1,
            ..Reg::master("broker-a", "127.0.0.1:20911", &[("TopicTest", 4)])
        },
        BINARY,
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(
        resp.serialize_type, BINARY,
        "answered in the request's encoding"
    );
    assert_eq!(&resp.ext_fields["masterAddr"], "127.0.0.1:10911");
    assert_eq!(&resp.ext_fields["haServerAddr"], "127.0.0.1:10911-ha");

    let app = client(&ns);
    for st in [JSON, BINARY] {
        let resp = route(&app, "TopicTest", st).await;
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
        assert_eq!(resp.serialize_type, st);
        let raw = std::str::from_utf8(resp.body.as_deref().unwrap()).unwrap();
        assert!(
            raw.contains(r#""brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:20911"}"#),
            "numeric keys must be quoted: {raw}"
        );
        let v: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(
            v,
            json!({
                "queueDatas": [{
                    "brokerName": "broker-a",
                    "readQueueNums": 4,
                    "writeQueueNums": 4,
                    "perm": 6,
                    "topicSysFlag": 0,
                    "topicSynFlag": 0
                }],
                "brokerDatas": [{
                    "cluster": "DefaultCluster",
                    "brokerName": "broker-a",
                    "brokerAddrs": {"0": "127.0.0.1:10911", "1": "127.0.0.1:20911"},
                    "enableActingMaster": false
                }],
                "filterServerTable": {}
            })
        );
    }

    // The auto-create template route a producer falls back to.
    let v = body_json(&route(&app, "TBW102", BINARY).await);
    assert_eq!(v["queueDatas"][0]["writeQueueNums"], 8);

    // Unknown topic: TOPIC_NOT_EXIST (17), in both encodings.
    for st in [JSON, BINARY] {
        let resp = route(&app, "NoSuchTopic", st).await;
        assert_eq!(resp.code, 17);
        assert!(resp.remark.unwrap().contains("NoSuchTopic"));
    }
    ns.shutdown().await;
}

#[tokio::test]
async fn cluster_info_topic_list_and_delete_topic() {
    let ns = start(false).await;
    let broker = client(&ns);
    register(
        &broker,
        Reg::master("broker-a", "127.0.0.1:10911", &[("T1", 2), ("T2", 2)]),
        JSON,
    )
    .await;
    let app = client(&ns);

    let resp = app
        .invoke(RemotingCommand::request(106), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(
        body_json(&resp),
        json!({
            "brokerAddrTable": {"broker-a": {
                "cluster": "DefaultCluster",
                "brokerName": "broker-a",
                "brokerAddrs": {"0": "127.0.0.1:10911"},
                "enableActingMaster": false
            }},
            "clusterAddrTable": {"DefaultCluster": ["broker-a"]}
        })
    );

    let resp = app
        .invoke(RemotingCommand::request(206), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(body_json(&resp), json!({"topicList": ["T1", "T2"]}));

    let resp = app
        .invoke(
            RemotingCommand::request(224).with_ext("cluster", "DefaultCluster"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(body_json(&resp)["topicList"], json!(["T1", "T2"]));

    let resp = app
        .invoke(
            RemotingCommand::request(216).with_ext("topic", "T1"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(route(&app, "T1", JSON).await.code, 17);
    assert_eq!(route(&app, "T2", JSON).await.code, 0);
    ns.shutdown().await;
}

#[tokio::test]
async fn leader_change_moves_broker_id_zero_at_once_and_stale_term_is_ignored() {
    let ns = start(false).await;
    // One connection per group member, as real brokers have.
    let n1 = client(&ns);
    let n2 = client(&ns);
    let n3 = client(&ns);
    let app = client(&ns);
    let member = |addr, id, term, node| Reg {
        name: "g1",
        addr,
        id,
        raft: Some((term, node)),
        topics: &[("T", 4)],
        counter: 1,
    };

    assert_eq!(
        register(&n1, member("127.0.0.1:1001", 0, 1, 1), JSON)
            .await
            .code,
        0
    );
    let resp = register(&n2, member("127.0.0.1:1002", 3, 1, 2), BINARY).await;
    assert_eq!(resp.code, 0);
    assert_eq!(&resp.ext_fields["masterAddr"], "127.0.0.1:1001");
    assert_eq!(
        register(&n3, member("127.0.0.1:1003", 4, 1, 3), JSON)
            .await
            .code,
        0
    );
    assert_eq!(
        broker_addrs(&app, "T").await,
        json!({"0": "127.0.0.1:1001", "3": "127.0.0.1:1002", "4": "127.0.0.1:1003"})
    );

    // n2 wins term 2 and registers at once: the very next route shows it as 0; the old
    // leader moves to its follower id (raftNodeId + 1) even before it re-registers.
    assert_eq!(
        register(&n2, member("127.0.0.1:1002", 0, 2, 2), JSON)
            .await
            .code,
        0
    );
    assert_eq!(
        broker_addrs(&app, "T").await,
        json!({"0": "127.0.0.1:1002", "2": "127.0.0.1:1001", "4": "127.0.0.1:1003"})
    );

    // The deposed leader's periodic registration still claims term 1: refused, route unchanged.
    let resp = register(&n1, member("127.0.0.1:1001", 0, 1, 1), JSON).await;
    assert_eq!(resp.code, 1, "stale claim must be refused");
    assert!(resp
        .remark
        .as_deref()
        .unwrap()
        .contains("stale raft term 1"));
    assert_eq!(&resp.ext_fields["raftTerm"], "2");
    assert_eq!(&resp.ext_fields["masterAddr"], "127.0.0.1:1002");
    assert_eq!(
        broker_addrs(&app, "T").await,
        json!({"0": "127.0.0.1:1002", "2": "127.0.0.1:1001", "4": "127.0.0.1:1003"})
    );

    // It notices and re-registers as a follower of term 2.
    let resp = register(&n1, member("127.0.0.1:1001", 2, 2, 1), BINARY).await;
    assert_eq!(resp.code, 0);
    assert_eq!(&resp.ext_fields["masterAddr"], "127.0.0.1:1002");

    // Leadership moves again, this time to n3 in term 5.
    assert_eq!(
        register(&n3, member("127.0.0.1:1003", 0, 5, 3), JSON)
            .await
            .code,
        0
    );
    assert_eq!(
        broker_addrs(&app, "T").await,
        json!({"0": "127.0.0.1:1003", "2": "127.0.0.1:1001", "3": "127.0.0.1:1002"})
    );
    ns.shutdown().await;
}

#[tokio::test]
async fn closing_the_broker_connection_removes_it_at_once() {
    let ns = start(false).await;
    let broker = client(&ns);
    let other = client(&ns);
    register(
        &broker,
        Reg::master("broker-a", "127.0.0.1:10911", &[("T", 4)]),
        JSON,
    )
    .await;
    register(
        &other,
        Reg::master("broker-b", "127.0.0.1:10921", &[("T", 2)]),
        JSON,
    )
    .await;
    let app = client(&ns);
    assert_eq!(
        body_json(&route(&app, "T", JSON).await)["brokerDatas"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    broker.close_connection().await;
    // Wait (bounded) for the server to notice the FIN; no expiry timer is involved.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = body_json(&route(&app, "T", JSON).await);
        let datas = v["brokerDatas"].as_array().unwrap().clone();
        if datas.len() == 1 {
            assert_eq!(datas[0]["brokerName"], "broker-b");
            assert_eq!(v["queueDatas"].as_array().unwrap().len(), 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker-a still routed after its connection closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ns.shutdown().await;
}

#[tokio::test]
async fn kv_config_round_trip_and_order_topic_conf() {
    let ns = start(true).await;
    let c = client(&ns);
    let kv = |code: i32, ns_: &str, key: Option<&str>| {
        let mut cmd = RemotingCommand::request(code).with_ext("namespace", ns_);
        if let Some(k) = key {
            cmd = cmd.with_ext("key", k);
        }
        cmd
    };

    let put = kv(100, "ORDER_TOPIC_CONFIG", Some("OrderT")).with_ext("value", "broker-a:2");
    assert_eq!(c.invoke(put, TIMEOUT).await.unwrap().code, 0);
    let put = kv(100, "ORDER_TOPIC_CONFIG", Some("Other")).with_ext("value", "broker-a:1");
    assert_eq!(c.invoke(put, TIMEOUT).await.unwrap().code, 0);

    let resp = c
        .invoke(kv(101, "ORDER_TOPIC_CONFIG", Some("OrderT")), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(&resp.ext_fields["value"], "broker-a:2");

    let resp = c
        .invoke(kv(219, "ORDER_TOPIC_CONFIG", None), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        body_json(&resp),
        json!({"table": {"OrderT": "broker-a:2", "Other": "broker-a:1"}})
    );

    // Brokers get the ORDER_TOPIC_CONFIG table back from registration; routes carry the
    // topic's entry as orderTopicConf (orderMessageEnable=true here).
    let resp = register(
        &c,
        Reg::master("broker-a", "127.0.0.1:10911", &[("OrderT", 4)]),
        BINARY,
    )
    .await;
    assert_eq!(body_json(&resp)["table"]["OrderT"], "broker-a:2");
    let v = body_json(&route(&c, "OrderT", JSON).await);
    assert_eq!(v["orderTopicConf"], "broker-a:2");

    for key in ["OrderT", "Other"] {
        let resp = c
            .invoke(kv(102, "ORDER_TOPIC_CONFIG", Some(key)), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(resp.code, 0);
    }
    let resp = c
        .invoke(kv(101, "ORDER_TOPIC_CONFIG", Some("OrderT")), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, 22, "QUERY_NOT_FOUND after delete");
    let resp = c
        .invoke(kv(219, "ORDER_TOPIC_CONFIG", None), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, 22);
    assert!(body_json(&route(&c, "OrderT", JSON).await)
        .get("orderTopicConf")
        .is_none());
    ns.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_error_responses_and_server_keeps_serving() {
    let ns = start(false).await;
    let c = client(&ns);
    let healthy = client(&ns);
    register(
        &healthy,
        Reg::master("broker-a", "127.0.0.1:10911", &[("T", 4)]),
        JSON,
    )
    .await;

    // Unknown request code.
    let resp = c
        .invoke(RemotingCommand::request(9999), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, 3);
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 9999 not supported")
    );
    // A code the nameserver does not serve (SEND_MESSAGE) is not supported either.
    let resp = c
        .invoke(RemotingCommand::request(10), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, 3);

    // Missing header field, in both encodings.
    for st in [JSON, BINARY] {
        let resp = c
            .invoke(
                RemotingCommand::request(105).with_serialize_type(st),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(resp.code, 1);
        assert!(
            resp.remark.as_deref().unwrap().contains("<topic>"),
            "{:?}",
            resp.remark
        );
    }

    // Garbage registration body.
    let mut cmd = register_cmd(&Reg::master("broker-x", "127.0.0.1:1", &[]), JSON);
    cmd.body = Some(bytes::Bytes::from_static(
        b"{\"topicConfigSerializeWrapper\":[1,2",
    ));
    let resp = c.invoke(cmd, TIMEOUT).await.unwrap();
    assert_eq!(resp.code, 1);

    // Malformed numeric header field and a wrong CRC.
    let mut cmd = register_cmd(
        &Reg {
            raft: Some((1, 1)),
            ..Reg::master("broker-x", "127.0.0.1:1", &[("X", 1)])
        },
        BINARY,
    );
    cmd.ext_fields.insert("raftTerm", "-3");
    assert_eq!(c.invoke(cmd.clone(), TIMEOUT).await.unwrap().code, 1);
    cmd.ext_fields.insert("raftTerm", "1");
    cmd.ext_fields.insert("bodyCrc32", "12345");
    let resp = c.invoke(cmd, TIMEOUT).await.unwrap();
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("crc32"));
    assert_eq!(
        route(&c, "X", JSON).await.code,
        17,
        "rejected registrations change nothing"
    );

    // Raw garbage on another socket: an impossible serialize type. The server closes that
    // connection; everything else keeps working.
    let mut raw = TcpStream::connect(ns.local_addr()).await.unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(8);
    frame.put_i32(0x7F00_0004);
    frame.put_slice(b"junk");
    raw.write_all(&frame).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(TIMEOUT, raw.read(&mut buf))
        .await
        .expect("server must close a garbage connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "no response to an unparseable frame, just a close");

    // The same connection that got errors still works, and so do the others.
    assert_eq!(route(&c, "T", BINARY).await.code, 0);
    assert_eq!(route(&healthy, "T", JSON).await.code, 0);
    ns.shutdown().await;
}

#[tokio::test]
async fn query_data_version_and_write_perm() {
    let ns = start(false).await;
    let c = client(&ns);
    register(
        &c,
        Reg {
            counter: 7,
            ..Reg::master("broker-a", "127.0.0.1:10911", &[("T", 4)])
        },
        JSON,
    )
    .await;
    let query = |counter: i64| {
        RemotingCommand::request(322)
            .with_ext("brokerName", "broker-a")
            .with_ext("brokerAddr", "127.0.0.1:10911")
            .with_ext("clusterName", "DefaultCluster")
            .with_ext("brokerId", 0)
            .with_body(
                serde_json::to_vec(&json!({"counter": counter, "timestamp": 1_700_000_000_000i64}))
                    .unwrap(),
            )
    };
    let resp = c.invoke(query(7), TIMEOUT).await.unwrap();
    assert_eq!(&resp.ext_fields["changed"], "false");
    assert_eq!(body_json(&resp)["counter"], 7);
    let resp = c.invoke(query(8), TIMEOUT).await.unwrap();
    assert_eq!(&resp.ext_fields["changed"], "true");

    let resp = c
        .invoke(
            RemotingCommand::request(205).with_ext("brokerName", "broker-a"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(&resp.ext_fields["wipeTopicCount"], "1");
    assert_eq!(
        body_json(&route(&c, "T", JSON).await)["queueDatas"][0]["perm"],
        4
    );
    let resp = c
        .invoke(
            RemotingCommand::request(327).with_ext("brokerName", "broker-a"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(&resp.ext_fields["addTopicCount"], "1");
    assert_eq!(
        body_json(&route(&c, "T", JSON).await)["queueDatas"][0]["perm"],
        6
    );
    ns.shutdown().await;
}

/// Reads the "... listening on ADDR" banner the binary prints once bound.
async fn read_banner(child: &mut std::process::Child, prefix: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line)
        .await
        .expect("binary did not report its address")
        .unwrap()
        .unwrap();
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected banner {line:?}"))
        .to_string()
}

/// Sends `signal` to the child and waits (bounded) for it to exit successfully.
async fn signal_and_expect_clean_exit(child: &mut std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("raftmq did not exit within 10 s of {signal}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit:?} after {signal}");
}

/// Starts the real binary on an ephemeral port, talks to it, SIGTERMs it, expects exit 0;
/// then `raftmq dev` interrupted right after start-up (Ctrl-C path) also exits 0.
#[tokio::test]
async fn binary_serves_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("namesrv.conf");
    std::fs::write(
        &conf,
        "listenPort=9876\nkvConfigPath=\nscanNotActiveBrokerInterval=1000\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args(["namesrv", "-c"])
        .arg(&conf)
        .args(["-p", "0", "--listen", "127.0.0.1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = read_banner(&mut child, "raftmq namesrv listening on ").await;

    let c = RemotingClient::new(addr, ClientConfig::default());
    let resp = register(
        &c,
        Reg {
            raft: Some((1, 0)),
            ..Reg::master("broker-a", "127.0.0.1:10911", &[("T", 4)])
        },
        BINARY,
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(broker_addrs(&c, "T").await, json!({"0": "127.0.0.1:10911"}));
    drop(c);
    signal_and_expect_clean_exit(&mut child, "-TERM").await;

    let mut dev = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args(["dev", "-p", "0", "--data"])
        .arg(dir.path().join("dev"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = read_banner(&mut dev, "raftmq dev: nameserver listening on ").await;
    assert!(addr.starts_with("127.0.0.1:"), "dev binds loopback: {addr}");
    signal_and_expect_clean_exit(&mut dev, "-INT").await;
}

/// A Go-client-style request written byte by byte (JSON header with `"language":"GO"`,
/// version 317, empty remark), and the raw response frame checked without our decoder.
#[tokio::test]
async fn raw_go_style_frame_gets_json_response_with_string_ext_fields() {
    let ns = start(false).await;
    let broker = client(&ns);
    register(
        &broker,
        Reg::master("broker-a", "127.0.0.1:10911", &[("TopicTest", 4)]),
        BINARY,
    )
    .await;

    let header = br#"{"code":105,"language":"GO","version":317,"opaque":42,"flag":0,"remark":"","extFields":{"topic":"TopicTest"}}"#;
    let mut frame = BytesMut::new();
    frame.put_i32(4 + header.len() as i32);
    frame.put_i32(header.len() as i32); // serialize type 0 (JSON) in the top byte
    frame.put_slice(header);
    let mut raw = TcpStream::connect(ns.local_addr()).await.unwrap();
    raw.write_all(&frame).await.unwrap();

    let mut len = [0u8; 4];
    tokio::time::timeout(TIMEOUT, raw.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let len = i32::from_be_bytes(len) as usize;
    let mut rest = vec![0u8; len];
    raw.read_exact(&mut rest).await.unwrap();
    let word = u32::from_be_bytes(rest[..4].try_into().unwrap());
    assert_eq!(word >> 24, 0, "answered in JSON like the request");
    let header_len = (word & 0x00FF_FFFF) as usize;
    let header: Value = serde_json::from_slice(&rest[4..4 + header_len]).unwrap();
    assert_eq!(header["code"], 0);
    assert_eq!(header["opaque"], 42);
    assert_eq!(header["flag"].as_i64().unwrap() & 1, 1, "response flag");
    if let Some(ext) = header.get("extFields").and_then(Value::as_object) {
        assert!(
            ext.values().all(Value::is_string),
            "ext values must be strings"
        );
    }
    let body: Value = serde_json::from_slice(&rest[4 + header_len..]).unwrap();
    assert_eq!(
        body["brokerDatas"][0]["brokerAddrs"],
        json!({"0": "127.0.0.1:10911"})
    );
    assert_eq!(
        body["queueDatas"][0]["topicSynFlag"], 0,
        "the Go client reads this name"
    );
    ns.shutdown().await;
}

#[tokio::test]
async fn kv_config_survives_restart_when_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = NamesrvConfig {
        bind_address: [127, 0, 0, 1].into(),
        listen_port: 0,
        kv_config_path: Some(dir.path().join("kvConfig.json")),
        ..NamesrvConfig::default()
    };
    let ns = Namesrv::bind(cfg.clone()).await.unwrap();
    let c = client(&ns);
    let put = RemotingCommand::request(100)
        .with_ext("namespace", "NS")
        .with_ext("key", "k")
        .with_ext("value", "v1");
    assert_eq!(c.invoke(put, TIMEOUT).await.unwrap().code, 0);
    drop(c);
    ns.shutdown().await;

    let ns = Namesrv::bind(cfg).await.unwrap();
    let c = client(&ns);
    let get = RemotingCommand::request(101)
        .with_ext("namespace", "NS")
        .with_ext("key", "k");
    let resp = c.invoke(get, TIMEOUT).await.unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(&resp.ext_fields["value"], "v1");
    ns.shutdown().await;
}

/// conf/namesrv.conf documents every key with its default: loading it changes nothing and
/// reports no unknown or ignored key.
#[test]
fn shipped_namesrv_conf_is_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/namesrv.conf");
    let props = raftmq::config::Properties::load(&path).unwrap();
    let (cfg, leftovers) = NamesrvConfig::from_properties_checked(&props).unwrap();
    assert_eq!(cfg, NamesrvConfig::default());
    assert_eq!(leftovers, raftmq::config::Leftovers::default());
    assert_eq!(
        props.entries.len(),
        6,
        "every key but the commented kvConfigPath"
    );
}

/// A broker registers with two independent nameservers through `NamesrvClient`; routes come
/// from either; a stale leader claim is reported as such; a dead nameserver is skipped.
#[tokio::test]
async fn namesrv_client_registers_with_every_nameserver() {
    use raftmq::namesrv::client::{NamesrvClient, RegisterResult};
    use raftmq::remoting::header::namesrv::{
        RegisterBrokerRequestHeader, UnRegisterBrokerRequestHeader,
    };

    let a = start(false).await;
    let b = start(false).await;
    let addrs = vec![a.local_addr().to_string(), b.local_addr().to_string()];
    let nc = NamesrvClient::new(&addrs, ClientConfig::default(), TIMEOUT);
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: [("T".to_string(), TopicConfig::new("T", 4))].into(),
            ..Default::default()
        },
        filter_server_list: vec![],
    };
    let header = |addr: &str, id: i64, term: u64, node: u64| RegisterBrokerRequestHeader {
        broker_name: "g1".into(),
        broker_addr: addr.into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: format!("{addr}-ha"),
        broker_id: id,
        raft_term: Some(term),
        raft_node_id: Some(node),
        ..Default::default()
    };

    let results = nc
        .register_broker(&header("127.0.0.1:1002", 0, 2, 2), &body)
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    for (addr, r) in &results {
        assert!(
            matches!(
                r,
                Ok(RegisterResult::Registered {
                    master_addr: None,
                    ..
                })
            ),
            "{addr}: {r:?}"
        );
    }

    // Each nameserver has the route on its own.
    for ns in [&a, &b] {
        let c = client(ns);
        assert_eq!(broker_addrs(&c, "T").await, json!({"0": "127.0.0.1:1002"}));
    }
    let route = nc.topic_route("T").await.unwrap().unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs[&0], "127.0.0.1:1002");
    assert!(nc.topic_route("Nope").await.unwrap().is_none());
    assert_eq!(
        nc.cluster_info().await.unwrap().cluster_addr_table["DefaultCluster"],
        vec!["g1"]
    );

    // A deposed leader of term 1 is told who leads, by both.
    let stale = nc
        .register_broker(&header("127.0.0.1:1001", 0, 1, 1), &body)
        .await
        .unwrap();
    for (_, r) in &stale {
        assert_eq!(
            r.as_ref().unwrap(),
            &RegisterResult::StaleTerm {
                current_term: 2,
                leader_addr: Some("127.0.0.1:1002".into())
            }
        );
    }

    // A follower learns the master from the registration response.
    let follower = nc
        .register_broker(&header("127.0.0.1:1001", 2, 2, 1), &body)
        .await
        .unwrap();
    match &follower[0].1 {
        Ok(RegisterResult::Registered {
            master_addr,
            ha_server_addr,
            ..
        }) => {
            assert_eq!(master_addr.as_deref(), Some("127.0.0.1:1002"));
            assert_eq!(ha_server_addr.as_deref(), Some("127.0.0.1:1002-ha"));
        }
        other => panic!("unexpected {other:?}"),
    }

    // With the first nameserver gone, reads fall through to the second and registration
    // reports the failure per address.
    a.shutdown().await;
    let route = nc.topic_route("T").await.unwrap().unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
    let results = nc
        .unregister_broker(&UnRegisterBrokerRequestHeader {
            broker_name: "g1".into(),
            broker_addr: "127.0.0.1:1001".into(),
            cluster_name: "DefaultCluster".into(),
            broker_id: 2,
        })
        .await;
    assert!(results[0].1.is_err(), "first nameserver is down");
    assert!(results[1].1.is_ok());
    let route = nc.topic_route("T").await.unwrap().unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 1);
    b.shutdown().await;
}
