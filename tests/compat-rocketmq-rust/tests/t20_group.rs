//! The acceptance scenarios with the third-party client against a nameserver process and a
//! broker group of three `raftmq broker` processes, one fresh group per test; and the
//! failover run: `kill -9` of the leader mid-stream loses no acknowledged message.
#![allow(clippy::unwrap_used)]

mod common;

use common::{scenarios, Group};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_autocreate_send_with_tags_keys_and_push_consume_all() {
    let group = Group::start().await;
    scenarios::send_and_consume_all(&group.namesrv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_tag_filter_in_a_second_group() {
    let group = Group::start().await;
    scenarios::tag_filter(&group.namesrv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_resume_from_committed_offsets_without_redelivery() {
    let group = Group::start().await;
    scenarios::resume_from_committed_offsets(&group.namesrv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_orderly_consume_keeps_per_key_order() {
    let group = Group::start().await;
    scenarios::orderly_per_key(&group.namesrv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_leader_kill_mid_stream_loses_no_acknowledged_message() {
    let mut group = Group::start().await;
    scenarios::leader_kill_loses_no_acknowledged_message(&mut group).await;
}
