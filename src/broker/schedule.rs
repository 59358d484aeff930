//! Delayed delivery (RocketMQ delay levels): messages sent with a `DELAY` level, and retry
//! copies from CONSUMER_SEND_MSG_BACK, wait in `SCHEDULE_TOPIC_XXXX` (queue = level − 1) and
//! are re-sent to their real topic and queue (`REAL_TOPIC`, `REAL_QID`) when due.
//!
//! The dispatcher stores each delayed message's delivery time as its consumequeue tags code,
//! so the scheduler reads due messages from the consumequeue alone. It runs on the ready
//! leader only. Its progress per level is a consumer offset of the internal group
//! `SCHEDULE_CONSUMER` on `SCHEDULE_TOPIC_XXXX`, replicated like any offset commit, so a new
//! leader resumes where the old one stopped (a message delivered just before a failover
//! may be delivered twice; none is lost). It sleeps until the earliest due time or until a
//! delayed message is applied; no fixed-rate polling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use raftmq_store::dispatch::SCHEDULE_TOPIC;
use raftmq_store::message::{property, MessageView, StoredMessage};
use tokio::sync::Notify;

use super::{now_ms, BrokerState};

/// Internal group whose offsets record the scheduler's progress.
pub const SCHEDULE_GROUP: &str = "SCHEDULE_CONSUMER";
/// Number of delay levels (`1s 5s 10s 30s 1m ... 2h`).
pub const MAX_LEVEL: i32 = 18;
/// Most messages delivered per level per round.
const ROUND: usize = 256;

/// Rewrite `m` to wait in the schedule topic at `level` (clamped to 1..=18).
pub fn to_schedule(m: &mut StoredMessage, level: i32) {
    let level = level.clamp(1, MAX_LEVEL);
    set_prop(&mut m.properties, property::DELAY, level.to_string());
    set_prop(&mut m.properties, property::REAL_TOPIC, m.topic.clone());
    set_prop(
        &mut m.properties,
        property::REAL_QID,
        m.queue_id.to_string(),
    );
    m.topic = SCHEDULE_TOPIC.to_string();
    m.queue_id = level - 1;
}

fn set_prop(props: &mut Vec<(String, String)>, k: &str, v: String) {
    match props.iter_mut().find(|(pk, _)| pk == k) {
        Some(p) => p.1 = v,
        None => props.push((k.to_string(), v)),
    }
}

/// The message to deliver for a due delayed message: real topic and queue, no `DELAY`.
fn restore(view: &MessageView<'_>, state: &BrokerState) -> Option<StoredMessage> {
    let mut m = view.to_owned_message();
    let topic = view.property(property::REAL_TOPIC)?.to_string();
    let qid: i32 = view
        .property(property::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    let queues = state
        .topics
        .get(&state.node, &topic)
        .ok()
        .flatten()
        .map(|t| t.write_queue_nums.max(1))
        .unwrap_or(1);
    m.properties.retain(|(k, _)| k != property::DELAY);
    m.topic = topic;
    m.queue_id = if (0..queues).contains(&qid) { qid } else { 0 };
    m.store_host = state.addr;
    Some(m)
}

/// The scheduler task; `wake` is notified when a delayed message is applied.
pub async fn run(state: Arc<BrokerState>, wake: Arc<Notify>) {
    let mut role_rx = state.node.group.role();
    let mut cursors: HashMap<i32, i64> = HashMap::new();
    let mut term = None;
    loop {
        let role = *role_rx.borrow_and_update();
        if !(role.is_leader && role.ready) {
            term = None;
            if role_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        if term != Some(role.term) {
            // New term: start from the replicated progress.
            cursors.clear();
            for q in 0..MAX_LEVEL {
                let off = state
                    .node
                    .sm
                    .with_metadata(|m| m.offset(SCHEDULE_GROUP, SCHEDULE_TOPIC, q))
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                cursors.insert(q, off);
            }
            term = Some(role.term);
        }
        let mut next_due = now_ms() + 60_000;
        for q in 0..MAX_LEVEL {
            let start = cursors.get(&q).copied().unwrap_or(0);
            let (done, due) = deliver_level(&state, q, start).await;
            if done != start {
                cursors.insert(q, done);
                state
                    .offsets
                    .submit(SCHEDULE_GROUP, SCHEDULE_TOPIC, q, done);
            }
            if let Some(d) = due {
                next_due = next_due.min(d);
            }
        }
        let wait = Duration::from_millis((next_due - now_ms()).clamp(0, 60_000) as u64);
        tokio::select! {
            _ = wake.notified() => {},
            _ = tokio::time::sleep(wait) => {},
            r = role_rx.changed() => if r.is_err() { return; },
        }
    }
}

/// Deliver the due messages of one level from `offset`; returns the new offset and the due
/// time of the first message not yet due (if any).
async fn deliver_level(state: &BrokerState, q: i32, mut offset: i64) -> (i64, Option<i64>) {
    let (min, max) = state.node.sm.with_dispatcher(|d| {
        (
            d.min_offset(SCHEDULE_TOPIC, q),
            d.max_offset(SCHEDULE_TOPIC, q),
        )
    });
    offset = offset.max(min);
    let mut n = 0;
    while offset < max && n < ROUND {
        let unit = match state
            .node
            .sm
            .with_dispatcher(|d| d.unit(SCHEDULE_TOPIC, q, offset))
        {
            Ok(Some(u)) => u,
            Ok(None) => return (offset, None),
            Err(e) => {
                tracing::warn!(level = q + 1, offset, cause = %e, "cannot read schedule queue");
                return (offset, Some(now_ms() + 1000));
            }
        };
        if unit.tags_code > now_ms() {
            return (offset, Some(unit.tags_code));
        }
        let bytes = match state.node.read_message(unit.phys_offset, unit.size) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(level = q + 1, offset, cause = %e, "delayed message unreadable; skipped");
                offset += 1;
                continue;
            }
        };
        let msg = MessageView::parse(&bytes)
            .ok()
            .and_then(|v| restore(&v, state));
        let Some(msg) = msg else {
            tracing::warn!(
                level = q + 1,
                offset,
                "delayed message without REAL_TOPIC; skipped"
            );
            offset += 1;
            continue;
        };
        let encoded = match msg.encode_with_limit(usize::MAX) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(level = q + 1, offset, cause = %e, "delayed message cannot be re-encoded; skipped");
                offset += 1;
                continue;
            }
        };
        match state.node.proposer.send(BytesMut::from(&encoded[..])).await {
            Ok(_) => {
                offset += 1;
                n += 1;
            }
            Err(e) => {
                tracing::debug!(level = q + 1, offset, cause = %e, "delivery of a delayed message failed; will retry");
                return (offset, Some(now_ms() + 500));
            }
        }
    }
    // More due messages than one round: come back at once.
    (offset, (offset < max).then(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_schedule_keeps_the_real_destination_and_clamps_the_level() {
        let mut m = StoredMessage {
            topic: "T".into(),
            queue_id: 3,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 0,
            store_host: "127.0.0.1:2".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"x".to_vec(),
            properties: vec![("DELAY".into(), "40".into()), ("TAGS".into(), "A".into())],
        };
        to_schedule(&mut m, 40);
        assert_eq!((m.topic.as_str(), m.queue_id), (SCHEDULE_TOPIC, 17));
        assert_eq!(m.property("DELAY"), Some("18"));
        assert_eq!(m.property("REAL_TOPIC"), Some("T"));
        assert_eq!(m.property("REAL_QID"), Some("3"));
        assert_eq!(m.property("TAGS"), Some("A"));
    }
}
