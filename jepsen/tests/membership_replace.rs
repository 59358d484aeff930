//! `Cluster::replace_node` on a real broker group (loopback, real processes): the leader's
//! slot and a follower's slot are each replaced by a new node with a new Raft id and an
//! empty store; the old data is gone, the new nodes vote and hold the leader's whole log.

#![allow(clippy::unwrap_used)]

mod nemesis_support;

use std::ffi::OsString;
use std::time::Duration;

use nemesis_support::raftmq_bin;
use raftmq_jepsen::cluster::{self, BrokerGroupSpec, Cluster, ClusterConfig, NetMode};
use raftmq_jepsen::membership::GroupLayout;
use raftmq_jepsen::netns;

fn group() -> (tempfile::TempDir, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig {
        binary: raftmq_bin(),
        dir: dir.path().to_owned(),
        mode: NetMode::Loopback,
        prefix: netns::unique_prefix(),
        start_timeout: Duration::from_secs(30),
    };
    let mut c = Cluster::create(config, &["namesrv", "n0", "n1", "n2"], |_| {
        cluster::free_port()
    })
    .unwrap();
    let members = [1, 2, 3];
    let raft_ports: Vec<u16> = (0..3).map(|_| cluster::free_port().unwrap()).collect();
    let spec = BrokerGroupSpec {
        name: "broker-a".into(),
        cluster: "C".into(),
        namesrv: c.node(0).unwrap().addr().to_string(),
        flush_disk_type: "ASYNC_FLUSH".into(),
        segment_bytes: 1 << 20,
        consume_queue_bytes: 20 * 1000,
        message_index: false,
    };
    c.set_group(GroupLayout::new(spec.clone(), &members, &raft_ports));
    for i in 0..4 {
        let args: Vec<OsString> = if i == 0 {
            cluster::namesrv_command(c.node(0).unwrap()).unwrap()
        } else {
            cluster::broker_command(&c, &members, &raft_ports, i - 1, &spec).unwrap()
        };
        c.set_command(i, args).unwrap();
        c.start(i).unwrap();
    }
    (dir, c)
}

#[test]
fn the_leader_and_a_follower_are_replaced_by_new_ids() {
    let (_dir, mut c) = group();
    let (leader, _) = c.group_leader(Duration::from_secs(30)).unwrap();
    let old_dir = c.node(leader).unwrap().data_dir.clone();
    let old_name = c.node(leader).unwrap().name.clone();

    let r = c.replace_node(leader).unwrap();
    assert_eq!(r.index, leader);
    assert_eq!(r.old_name, old_name);
    assert_eq!((r.new_id, r.new_name.as_str()), (3, "n3"));
    assert!(!old_dir.exists(), "old data not wiped");
    let n = c.node(leader).unwrap();
    assert_eq!(n.name, "n3");
    assert!(n.is_running());
    assert!(n.data_dir.ends_with("nodes/n3/data"));

    let follower = (1..=3)
        .find(|&i| i != leader && c.group_leader(Duration::from_secs(30)).unwrap().0 != i)
        .unwrap();
    let r2 = c.replace_node(follower).unwrap();
    assert_eq!((r2.new_id, r2.new_name.as_str()), (4, "n4"));

    let (_, st) = c.group_leader(Duration::from_secs(30)).unwrap();
    let mut voters = st.voters.clone();
    voters.sort_unstable();
    let mut want: Vec<u64> = c
        .group_layout()
        .unwrap()
        .members
        .iter()
        .map(|m| m.id)
        .collect();
    want.sort_unstable();
    assert_eq!(voters, want);
    assert!(voters.contains(&3) && voters.contains(&4), "{st:?}");
    assert!(st.learners.is_empty(), "{st:?}");
    // Both new nodes match the leader's log.
    let last = st.last_log_index;
    for id in [3, 4] {
        let m = st.member(id).unwrap();
        assert!(m.voter);
        assert!(m.matched_index.is_some(), "{st:?}");
    }
    assert!(last.is_some());
    c.stop_all(Duration::from_secs(5)).unwrap();
}
