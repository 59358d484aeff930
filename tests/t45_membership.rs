//! Membership change and leadership transfer over real processes, under a produce load:
//! a 3-node group hands leadership to a follower, removes another node, and takes in a new
//! node (new id, empty store, `dLegerJoin=true`) as a learner that is then promoted. Every
//! acknowledged message is readable at its acknowledged offset afterwards, and the new node
//! serves the same data as the leader.
#![allow(clippy::unwrap_used)]

#[path = "common/broker_cluster.rs"]
mod broker_cluster;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_cluster::*;
use raftmq::admin::{AdminError, GroupAdmin};
use raftmq::remoting::{RemotingCommand, RequestCode};
use serde_json::Value;

const TOPIC: &str = "Membership";

/// The broker the nameserver lists as brokerId 0.
async fn routed_leader(namesrv: &str) -> Option<String> {
    let ns = Cluster::client(namesrv);
    let req =
        RemotingCommand::request(RequestCode::GetRouteinfoByTopic).with_ext("topic", "TBW102");
    let resp = ns.invoke(req, RPC).await.ok()?;
    if resp.code != 0 {
        return None;
    }
    let v: Value = serde_json::from_slice(resp.body.as_deref()?).ok()?;
    v["brokerDatas"][0]["brokerAddrs"]["0"]
        .as_str()
        .map(str::to_owned)
}

type Acks = Arc<Mutex<BTreeMap<String, (i32, i64)>>>;

/// Sends until `stop`, to whatever the nameserver routes to; records acknowledged sends.
fn spawn_load(namesrv: String, acks: Acks, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(150);
        let mut refused = 0;
        let mut i = 0u32;
        let mut leader = None;
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            if leader.is_none() {
                leader = routed_leader(&namesrv).await;
            }
            let Some(addr) = leader.clone() else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let uniq = format!("L{i:06}");
            let p = props(&[("TAGS", "T"), ("UNIQ_KEY", &uniq), ("KEYS", &uniq)]);
            let c = Cluster::client(&addr);
            match c
                .invoke(
                    send_req(TOPIC, -1, &p, uniq.as_bytes()),
                    Duration::from_secs(3),
                )
                .await
            {
                Ok(r) if r.code == 0 => {
                    let q = r.ext_fields["queueId"].parse().unwrap();
                    let o = r.ext_fields["queueOffset"].parse().unwrap();
                    acks.lock().unwrap().insert(uniq, (q, o));
                    i += 1;
                }
                Ok(r) => {
                    assert!(
                        [1, 2, 14].contains(&r.code),
                        "send: {} {:?}",
                        r.code,
                        r.remark
                    );
                    refused += 1;
                    leader = None;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => {
                    refused += 1;
                    leader = None;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        refused
    })
}

async fn wait_acks(acks: &Acks, more_than: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.lock().unwrap().len() <= more_than {
        assert!(Instant::now() < deadline, "no acknowledged sends {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_remove_add_and_promote_under_load_lose_nothing() {
    let mut cluster = Cluster::start(3);
    let first = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(cluster.namesrv.clone(), acks.clone(), stop.clone());
    wait_acks(&acks, 20, "before the changes").await;

    // A follower refuses changes and names the leader.
    let follower = cluster.nodes.iter().find(|n| n.addr != first).unwrap();
    match GroupAdmin::new(follower.addr.clone()).promote(1).await {
        Err(AdminError::NotLeader { leader_addr, .. }) => {
            assert_eq!(leader_addr.as_deref(), Some(first.as_str()))
        }
        other => panic!("follower answered a change with {other:?}"),
    }

    // Bad requests get clear refusals and change nothing.
    let leader_admin = GroupAdmin::new(first.clone());
    let bad = leader_admin
        .add_learner(7, "no-port", None)
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("raftAddr"), "{bad}");
    let bad = leader_admin.promote(9).await.unwrap_err();
    assert!(bad.to_string().contains("not a learner"), "{bad}");
    let bad = leader_admin.remove_node(9).await.unwrap_err();
    assert!(bad.to_string().contains("not a member"), "{bad}");
    let bad = leader_admin.transfer_leader(9).await.unwrap_err();
    assert!(bad.to_string().contains("not a voter"), "{bad}");

    // The CLI: status in text and JSON; a change sent to a follower fails naming the leader.
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .arg("admin")
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let o = cli(&["group-status", "-b", &first]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("state Leader") && text.contains("n2 "),
        "{text}"
    );
    let o = cli(&["group-status", "-b", &follower.addr, "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["leaderAddr"].as_str(), Some(first.as_str()), "{v}");
    let o = cli(&["transfer-leader", "-b", &follower.addr, "--to", "n0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains(&format!("the leader is {first}")), "{err}");
    let o = cli(&["promote", "-b", &first, "--node", "x1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a node id"));

    // 1. Leadership transfer to a follower.
    let st = GroupAdmin::new(first.clone()).status().await.unwrap();
    assert!(st.is_leader() && st.voters == vec![0, 1, 2], "{st:?}");
    let to = st
        .voters
        .iter()
        .copied()
        .find(|v| *v != st.self_id)
        .unwrap();
    GroupAdmin::new(first.clone())
        .transfer_leader(to)
        .await
        .unwrap();
    let leader = cluster.nodes[to as usize].addr.clone();
    let st = GroupAdmin::new(leader.clone()).status().await.unwrap();
    assert!(
        st.is_leader(),
        "n{to} does not lead after the transfer: {st:?}"
    );
    let n = acks.lock().unwrap().len();
    wait_acks(&acks, n + 10, "after the transfer").await;

    // 2. Remove the third node (neither the old nor the new leader), then stop it.
    let gone = st
        .voters
        .iter()
        .copied()
        .find(|v| *v != to && cluster.nodes[*v as usize].addr != first)
        .unwrap();
    let admin = GroupAdmin::new(leader.clone());
    let refused = admin.remove_node(to).await.unwrap_err();
    assert!(
        refused.to_string().contains("transfer leadership"),
        "{refused}"
    );
    admin.remove_node(gone).await.unwrap();
    cluster.kill(gone as usize);
    let st = admin.status().await.unwrap();
    assert_eq!(st.voters.len(), 2, "{st:?}");
    assert!(
        !st.voters.contains(&gone) && st.member(gone).is_none(),
        "{st:?}"
    );
    let n = acks.lock().unwrap().len();
    wait_acks(&acks, n + 10, "with two voters").await;

    // 3. A new node n3 (empty store, never used id) joins: it must not initialise a group.
    let (port, raft_port) = (free_port(), free_port());
    let conf = cluster.dir.path().join("broker-a-n3.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerIP1=127.0.0.1\n\
             listenPort={port}\nnamesrvAddr={}\nstorePathRootDir={}\n\
             dLegerGroup=broker-a\ndLegerPeers=n3-127.0.0.1:{raft_port}\ndLegerSelfId=n3\n\
             dLegerJoin=true\nmapedFileSizeCommitLog=8388608\nmaxMessageSize=65536\n",
            cluster.namesrv,
            cluster.dir.path().join("store-n3").display(),
        ),
    )
    .unwrap();
    let new_addr = format!("127.0.0.1:{port}");
    cluster.nodes.push(Node {
        id: 3,
        conf,
        addr: new_addr.clone(),
        child: None,
    });
    cluster.start_node(3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh = GroupAdmin::new(new_addr.clone()).status().await.unwrap();
    assert_eq!(
        fresh.leader, None,
        "a joining node elected itself: {fresh:?}"
    );
    assert!(fresh.voters.is_empty(), "{fresh:?}");

    admin
        .add_learner(3, &format!("127.0.0.1:{raft_port}"), Some(&new_addr))
        .await
        .unwrap();
    let st = admin.status().await.unwrap();
    assert_eq!(st.learners, vec![3], "{st:?}");
    assert_eq!(
        st.member(3).unwrap().broker_addr.as_deref(),
        Some(new_addr.as_str())
    );
    admin.promote(3).await.unwrap();
    let st = admin.status().await.unwrap();
    let mut want = vec![to, 3];
    want.extend(st.voters.iter().copied().filter(|v| *v != to && *v != 3));
    want.sort_unstable();
    assert_eq!(st.voters, want, "{st:?}");
    assert_eq!(st.voters.len(), 3, "{st:?}");
    assert!(st.learners.is_empty(), "{st:?}");
    let n = acks.lock().unwrap().len();
    wait_acks(&acks, n + 20, "after the promotion").await;

    stop.store(true, Ordering::SeqCst);
    let refused = load.await.unwrap();
    let acks = acks.lock().unwrap().clone();
    eprintln!(
        "{} sends acknowledged, {refused} refused or failed",
        acks.len()
    );

    // Every acknowledged message is on the leader at its acknowledged place, and the new node
    // serves exactly the same messages once it applied the leader's log.
    let on_leader = drain(&leader, TOPIC, 4, "*").await;
    let at: BTreeMap<String, (i32, i64)> = on_leader
        .iter()
        .map(|(k, m)| (m.uniq.clone().unwrap(), *k))
        .collect();
    for (uniq, place) in &acks {
        assert_eq!(at.get(uniq), Some(place), "{uniq} lost or moved");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let on_new = drain(&new_addr, TOPIC, 4, "*").await;
        if on_new == on_leader {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n3 serves {} messages, the leader {}",
            on_new.len(),
            on_leader.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
