//! The acceptance scenarios with the third-party client against `raftmq dev` (a nameserver
//! and a 3-node Raft group in one process), one fresh instance per test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{scenarios, Dev};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_autocreate_send_with_tags_keys_and_push_consume_all() {
    let dev = Dev::start();
    scenarios::send_and_consume_all(&dev.namesrv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_tag_filter_in_a_second_group() {
    let dev = Dev::start();
    scenarios::tag_filter(&dev.namesrv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_resume_from_committed_offsets_without_redelivery() {
    let dev = Dev::start();
    scenarios::resume_from_committed_offsets(&dev.namesrv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_orderly_consume_keeps_per_key_order() {
    let dev = Dev::start();
    scenarios::orderly_per_key(&dev.namesrv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_reconsume_later_redelivers_through_the_retry_topic() {
    let dev = Dev::start();
    scenarios::retry_after_reconsume_later(&dev.namesrv).await;
}
