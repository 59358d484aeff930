//! Retention drives log compaction on real broker processes: with small segments and
//! `fileReservedTime=0` every node deletes its sealed segments, consumers' minOffset moves,
//! the leader keeps what a stopped member still needs, and that member, once the node that
//! purged past it leads, comes back through the snapshot path and serves the same messages.
#![allow(clippy::unwrap_used)]

#[path = "common/broker_cluster.rs"]
mod broker_cluster;

use std::path::Path;
use std::time::{Duration, Instant};

use broker_cluster::*;
use raftmq::remoting::{RemotingCommand, RequestCode};

const TOPIC: &str = "Retention";
const SEGMENT: u64 = 256 * 1024;

/// Every hour of the day, so the time rule always allows deletion.
fn every_hour() -> String {
    (0..24)
        .map(|h| format!("{h:02}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Bases of the commitlog segment files of node `i`, oldest first.
fn segments(c: &Cluster, i: usize) -> Vec<u64> {
    let dir = c.dir.path().join(format!("store-n{i}")).join("commitlog");
    segment_bases(&dir)
}

fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
                .then(|| name.parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

async fn queue_offset(addr: &str, code: RequestCode) -> i64 {
    let req = RemotingCommand::request(code)
        .with_ext("topic", TOPIC)
        .with_ext("queueId", 0);
    let resp = Cluster::client(addr).invoke(req, RPC).await.unwrap();
    assert_eq!(resp.code, 0, "{code:?} on {addr}: {:?}", resp.remark);
    resp.ext_fields["offset"].parse().unwrap()
}

async fn min_offset(addr: &str) -> i64 {
    queue_offset(addr, RequestCode::GetMinOffset).await
}

async fn max_offset(addr: &str) -> i64 {
    queue_offset(addr, RequestCode::GetMaxOffset).await
}

/// Messages `[from, to)` of queue 0, pulled from `addr`.
async fn pull_range(addr: &str, from: i64, to: i64) -> Vec<Pulled> {
    let c = Cluster::client(addr);
    let mut out = vec![];
    let mut offset = from;
    let deadline = Instant::now() + Duration::from_secs(30);
    while offset < to {
        assert!(
            Instant::now() < deadline,
            "pulling {from}..{to} from {addr}"
        );
        let resp = rpc(&c, pull_req("check", TOPIC, 0, offset, "*", 0)).await;
        assert_eq!(
            resp.code, 0,
            "pull @{offset} from {addr}: {:?}",
            resp.remark
        );
        for m in decode(resp.body.as_deref().unwrap()) {
            if m.queue_offset < to {
                out.push(m);
            }
        }
        offset = resp.ext_fields["nextBeginOffset"].parse().unwrap();
    }
    out
}

async fn send_many(leader: &str, prefix: &str, n: usize) {
    let c = Cluster::client(leader);
    let body = vec![b'r'; 3000];
    for i in 0..n {
        let uniq = format!("{prefix}{i:05}");
        let p = props(&[("UNIQ_KEY", &uniq)]);
        let resp = c
            .invoke(send_req(TOPIC, 0, &p, &body), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(resp.code, 0, "send {uniq}: {:?}", resp.remark);
    }
}

async fn wait_for<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_compacts_every_node_and_a_stopped_member_returns_by_snapshot() {
    let extra = format!(
        "mapedFileSizeCommitLog={SEGMENT}\nmapedFileSizeConsumeQueue=400\nfileReservedTime=0\n\
         deleteWhen={}\ncleanResourceInterval=200\ndiskSpaceCleanForciblyRatio=100\n",
        every_hour()
    );
    let mut c = Cluster::start_with(3, &extra);
    let leader = c.leader_addr(None, Duration::from_secs(30)).await;
    let li = c.nodes.iter().position(|n| n.addr == leader).unwrap();
    let (f1, f2) = ((li + 1) % 3, (li + 2) % 3);
    let t = Duration::from_secs(60);

    // About 1 MB: several 256 KiB segments seal and expire at once.
    send_many(&leader, "A", 300).await;
    for i in 0..3 {
        let addr = c.nodes[i].addr.clone();
        let cc = &c;
        wait_for(&format!("n{i} deleted segments"), t, || {
            let addr = addr.clone();
            async move { segments(cc, i)[0] > 0 && min_offset(&addr).await > 0 }
        })
        .await;
    }

    // A follower is stopped; the leader keeps what it still needs, the other follower
    // decides for its own files and purges past it.
    c.stop(f1);
    let f1_end = *segments(&c, f1).last().unwrap();
    send_many(&leader, "B", 400).await;
    let cc = &c;
    wait_for(
        "the running follower purged past the stopped one",
        t,
        || async move { segments(cc, f2)[0] > f1_end },
    )
    .await;
    let leader_first = segments(&c, li)[0];
    assert!(
        leader_first > 0 && leader_first <= f1_end,
        "the leader purged to {leader_first}, past the stopped member's log end segment {f1_end}"
    );

    // The leader goes; the follower that purged leads, the stopped one comes back and can
    // only catch up through a snapshot.
    c.stop(li);
    c.start_node(f1);
    let new_leader = c.leader_addr(Some(&leader), t).await;
    assert_eq!(
        new_leader, c.nodes[f2].addr,
        "the member with the longest log leads"
    );
    let back = c.nodes[f1].addr.clone();
    let want_max = max_offset(&new_leader).await;
    assert_eq!(want_max, 700);
    let backc = back.clone();
    wait_for("the returning member caught up", t, || {
        let back = backc.clone();
        async move { max_offset(&back).await == want_max }
    })
    .await;
    let f1_first = segments(&c, f1)[0];
    assert!(
        f1_first > f1_end,
        "the returning member kept its old segments ({f1_first} <= {f1_end}): not the snapshot path"
    );

    // It serves the same messages, at the same physical offsets, as the leader: everything
    // both retain (with fileReservedTime=0 that is little more than the active segment).
    let from = min_offset(&back).await.max(min_offset(&new_leader).await);
    assert!(
        want_max - from >= 20,
        "too little retained to compare: {from}..{want_max}"
    );
    let theirs = pull_range(&back, from, want_max).await;
    let ours = pull_range(&new_leader, from, want_max).await;
    assert_eq!(theirs.len() as i64, want_max - from);
    assert_eq!(theirs, ours);
    // And new sends reach it.
    send_many(&new_leader, "C", 5).await;
    wait_for("a new send reached the returning member", t, || {
        let back = back.clone();
        async move { max_offset(&back).await == want_max + 5 }
    })
    .await;

    // kill -9 of the member that purged furthest: it restarts from its compacted store
    // (re-applying from its checkpoint, never from a purged entry) and the group writes on.
    c.kill(f2);
    c.start_node(f2);
    let deadline = Instant::now() + t;
    for i in 0..5 {
        let uniq = format!("D{i:05}");
        let p = props(&[("UNIQ_KEY", &uniq)]);
        loop {
            assert!(
                Instant::now() < deadline,
                "could not send {uniq} after the restart"
            );
            // Whoever the nameserver routes to; refusals and lost connections are retried.
            let leader = c.leader_addr(None, t).await;
            let sent = Cluster::client(&leader)
                .invoke(send_req(TOPIC, 0, &p, b"d"), Duration::from_secs(3))
                .await;
            if matches!(sent, Ok(ref r) if r.code == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for addr in [c.nodes[f1].addr.clone(), c.nodes[f2].addr.clone()] {
        wait_for(&format!("{addr} has every message"), t, || {
            let addr = addr.clone();
            // A retried send may have been committed before its answer was lost.
            async move { max_offset(&addr).await >= want_max + 10 }
        })
        .await;
    }
}
