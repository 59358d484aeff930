//! The acceptance scenarios, written once against a nameserver address so that each runs
//! against `raftmq dev` and against a group of separate processes.
//!
//! Every wait is bounded; every check is on exact values (sets of bodies, per-key order).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocketmq_client_rust::{
    ClientConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, ConsumeOrderlyContext,
    ConsumeOrderlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, SendStatus,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;

use super::{client_runtime, unique, wait_until};

/// How long a scenario waits for deliveries before failing.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// One message as the consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Got {
    pub body: String,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub queue_id: i32,
    pub queue_offset: i64,
}

impl Got {
    fn of(m: &MessageExt) -> Got {
        let inner = m.message_inner();
        Got {
            body: String::from_utf8_lossy(m.body().as_deref().unwrap_or_default()).into_owned(),
            tag: inner.tags().map(str::to_string),
            keys: inner.keys().unwrap_or_default(),
            queue_id: m.queue_id(),
            queue_offset: m.queue_offset(),
        }
    }
}

/// Deliveries collected by a listener (duplicates kept, so redelivery is visible).
pub type Inbox = Arc<Mutex<Vec<Got>>>;

fn bodies(inbox: &Inbox) -> Vec<String> {
    inbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|g| g.body.clone())
        .collect()
}

/// A started producer with the client's default settings.
pub async fn producer(namesrv: &str) -> DefaultMQProducer {
    producer_with(namesrv, None).await
}

/// Client settings: the defaults, or a shorter route refresh (`pollNameServerInterval`,
/// 30 s by default) so that a failover test does not wait half a minute for the new leader.
fn client_config(route_poll_ms: Option<u32>) -> ClientConfig {
    let mut cfg = ClientConfig::default();
    if let Some(ms) = route_poll_ms {
        cfg.set_poll_name_server_interval(ms);
    }
    cfg
}

/// A started producer; `route_poll_ms` as in [`client_config`].
pub async fn producer_with(namesrv: &str, route_poll_ms: Option<u32>) -> DefaultMQProducer {
    let mut p = DefaultMQProducer::builder(client_runtime("producer"))
        .client_config(client_config(route_poll_ms))
        .producer_group(unique("compat_pg"))
        .name_server_addr(namesrv.to_string())
        .send_msg_timeout(10_000)
        .retry_times_when_send_failed(4)
        .build();
    p.start().await.expect("producer starts");
    p
}

/// A message with a tag and one key.
pub fn message(topic: &str, tag: &str, key: &str, body: &str) -> Message {
    Message::builder()
        .topic(topic)
        .tags(tag)
        .key(key)
        .body_slice(body.as_bytes())
        .build_unchecked()
}

/// Sends `msgs` one by one (sync) and asserts each result is SEND_OK; returns the bodies.
pub async fn send_all(p: &DefaultMQProducer, msgs: Vec<Message>) -> Vec<String> {
    let mut sent = vec![];
    for m in msgs {
        let body = String::from_utf8_lossy(m.body_slice()).into_owned();
        let r = tokio::time::timeout(Duration::from_secs(30), p.send(m))
            .await
            .unwrap_or_else(|_| panic!("send of {body} not answered in 30 s"))
            .unwrap_or_else(|e| panic!("send of {body} failed: {e}"))
            .expect("sync send returns a result");
        assert_eq!(r.send_status, SendStatus::SendOk, "{body}: {r:?}");
        assert!(r.message_queue.is_some(), "{body}: no queue in {r:?}");
        sent.push(body);
    }
    sent
}

/// How a consumer is built.
pub struct ConsumerSpec<'a> {
    pub namesrv: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    pub expression: &'a str,
    pub orderly: bool,
    /// Route refresh interval override (see [`client_config`]).
    pub route_poll_ms: Option<u32>,
}

/// A started push consumer (CONSUME_FROM_FIRST_OFFSET) whose listener appends to `inbox`.
pub async fn push_consumer(spec: &ConsumerSpec<'_>, inbox: &Inbox) -> DefaultMQPushConsumer {
    let mut c = DefaultMQPushConsumer::builder(client_runtime("consumer"))
        .client_config(client_config(spec.route_poll_ms))
        .consumer_group(spec.group.to_string())
        .name_server_addr(spec.namesrv.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .consume_thread_min(1)
        .consume_thread_max(4)
        .pull_batch_size(16)
        .build();
    c.subscribe(spec.topic, spec.expression)
        .await
        .expect("subscribe");
    let sink = inbox.clone();
    if spec.orderly {
        c.register_message_listener_orderly(
            move |msgs: &[&MessageExt], ctx: &mut ConsumeOrderlyContext| {
                ctx.set_auto_commit(true);
                let mut v = sink.lock().unwrap_or_else(|e| e.into_inner());
                v.extend(msgs.iter().map(|m| Got::of(m)));
                Ok(ConsumeOrderlyStatus::Success)
            },
        );
    } else {
        c.register_message_listener_concurrently(
            move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
                let mut v = sink.lock().unwrap_or_else(|e| e.into_inner());
                v.extend(msgs.iter().map(|m| Got::of(m)));
                Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
            },
        );
    }
    tokio::time::timeout(Duration::from_secs(30), c.start())
        .await
        .expect("consumer start bounded")
        .expect("consumer starts");
    c
}

/// Waits until `inbox` holds at least every body of `want`; returns what arrived.
pub async fn wait_for_all(inbox: &Inbox, want: &BTreeSet<String>, what: &str) -> Vec<String> {
    let ok = wait_until(DELIVERY_TIMEOUT, || {
        let got: BTreeSet<String> = bodies(inbox).into_iter().collect();
        want.is_subset(&got)
    })
    .await;
    let got = bodies(inbox);
    if !ok {
        let have: BTreeSet<String> = got.iter().cloned().collect();
        let missing: Vec<&String> = want.difference(&have).take(10).collect();
        panic!(
            "{what}: {} of {} delivered within {DELIVERY_TIMEOUT:?}; missing e.g. {missing:?}",
            want.len() - want.difference(&have).count(),
            want.len()
        );
    }
    got
}

/// Waits a little longer than a redelivery would take and returns the final inbox.
async fn settle(inbox: &Inbox, quiet: Duration) -> Vec<String> {
    let mut last = bodies(inbox).len();
    let mut since = Instant::now();
    let deadline = Instant::now() + quiet * 4;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = bodies(inbox).len();
        if n != last {
            last = n;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    bodies(inbox)
}

fn as_set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn assert_no_duplicates(got: &[String], what: &str) {
    let set = as_set(got);
    assert_eq!(set.len(), got.len(), "{what}: duplicate deliveries");
}

const TAGS: [&str; 3] = ["TagA", "TagB", "TagC"];

/// Messages `prefix-i` with tags cycling A, B, C and key `k-prefix-i`.
fn tagged_batch(topic: &str, prefix: &str, n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let tag = TAGS[i % TAGS.len()];
            message(
                topic,
                tag,
                &format!("k-{prefix}-{i}"),
                &format!("{prefix}-{i}"),
            )
        })
        .collect()
}

/// Auto-create on first send, sync sends with tags and keys (all SEND_OK, spread over the
/// queues, offsets strictly increasing per queue), then a push consumer of a new group from
/// the first offset gets exactly every message with its tag and key.
pub async fn send_and_consume_all(namesrv: &str) {
    let topic = unique("CompatAll");
    let p = producer(namesrv).await;
    let msgs = tagged_batch(&topic, "all", 60);
    let mut per_queue: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut want = BTreeSet::new();
    for m in msgs {
        let body = String::from_utf8_lossy(m.body_slice()).into_owned();
        let r = tokio::time::timeout(Duration::from_secs(30), p.send(m))
            .await
            .expect("send bounded")
            .unwrap_or_else(|e| panic!("send of {body} failed: {e}"))
            .expect("sync send returns a result");
        assert_eq!(r.send_status, SendStatus::SendOk, "{body}: {r:?}");
        let mq = r.message_queue.clone().expect("result names its queue");
        assert_eq!(mq.topic().as_str(), topic);
        assert!(r.msg_id.as_deref().is_some_and(|s| !s.is_empty()), "{r:?}");
        assert!(
            r.offset_msg_id.as_deref().is_some_and(|s| !s.is_empty()),
            "{r:?}"
        );
        per_queue
            .entry(mq.queue_id())
            .or_default()
            .push(r.queue_offset as i64);
        want.insert(body);
    }
    assert!(
        per_queue.len() > 1,
        "sends spread over queues: {per_queue:?}"
    );
    for (q, offs) in &per_queue {
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "queue {q}: {offs:?}");
    }

    let inbox: Inbox = Arc::default();
    let group = unique("compat_all");
    let mut c = push_consumer(
        &ConsumerSpec {
            namesrv,
            group: &group,
            topic: &topic,
            expression: "*",
            orderly: false,
            route_poll_ms: None,
        },
        &inbox,
    )
    .await;
    wait_for_all(&inbox, &want, "push consumer of all").await;
    let got = settle(&inbox, Duration::from_secs(2)).await;
    assert_eq!(as_set(&got), want);
    assert_no_duplicates(&got, "push consumer of all");
    // Tags and keys came through as sent.
    for g in inbox.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let i: usize = g
            .body
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("index");
        assert_eq!(g.tag.as_deref(), Some(TAGS[i % TAGS.len()]), "{g:?}");
        assert_eq!(g.keys, vec![format!("k-all-{i}")], "{g:?}");
    }
    c.shutdown().await;
    let mut p = p;
    p.shutdown().await;
}

/// A second group subscribing to `TagA || TagC` gets exactly those messages.
pub async fn tag_filter(namesrv: &str) {
    let topic = unique("CompatTag");
    let p = producer(namesrv).await;
    let msgs = tagged_batch(&topic, "tag", 45);
    let sent = send_all(&p, msgs).await;
    let want: BTreeSet<String> = sent
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(TAGS[i % 3], "TagA" | "TagC"))
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(want.len(), 30);

    let inbox: Inbox = Arc::default();
    let group = unique("compat_tag");
    let mut c = push_consumer(
        &ConsumerSpec {
            namesrv,
            group: &group,
            topic: &topic,
            expression: "TagA || TagC",
            orderly: false,
            route_poll_ms: None,
        },
        &inbox,
    )
    .await;
    wait_for_all(&inbox, &want, "tag-filtered consumer").await;
    let got = settle(&inbox, Duration::from_secs(2)).await;
    assert_eq!(as_set(&got), want, "only TagA and TagC");
    assert_no_duplicates(&got, "tag-filtered consumer");
    c.shutdown().await;
    let mut p = p;
    p.shutdown().await;
}

/// A consumer takes everything, shuts down (committing its offsets), more messages are sent,
/// and a new consumer instance of the same group gets exactly the new ones.
pub async fn resume_from_committed_offsets(namesrv: &str) {
    let topic = unique("CompatResume");
    let group = unique("compat_resume");
    let p = producer(namesrv).await;
    let first = as_set(&send_all(&p, tagged_batch(&topic, "first", 30)).await);

    let inbox: Inbox = Arc::default();
    let spec = ConsumerSpec {
        namesrv,
        group: &group,
        topic: &topic,
        expression: "*",
        orderly: false,
        route_poll_ms: None,
    };
    let mut c = push_consumer(&spec, &inbox).await;
    wait_for_all(&inbox, &first, "first consumer").await;
    let got = settle(&inbox, Duration::from_secs(1)).await;
    assert_eq!(as_set(&got), first);
    // Shutdown persists the consumed offsets to the broker.
    tokio::time::timeout(Duration::from_secs(30), c.shutdown())
        .await
        .expect("consumer shutdown bounded");
    drop(c);

    let second = as_set(&send_all(&p, tagged_batch(&topic, "second", 30)).await);
    let inbox2: Inbox = Arc::default();
    let mut c2 = push_consumer(&spec, &inbox2).await;
    wait_for_all(&inbox2, &second, "restarted consumer").await;
    let got2 = settle(&inbox2, Duration::from_secs(3)).await;
    let redelivered: Vec<&String> = got2.iter().filter(|b| first.contains(*b)).collect();
    assert!(
        redelivered.is_empty(),
        "redelivered after restart: {redelivered:?}"
    );
    assert_eq!(as_set(&got2), second);
    assert_no_duplicates(&got2, "restarted consumer");
    c2.shutdown().await;
    let mut p = p;
    p.shutdown().await;
}

/// Java's `String.hashCode` (what `SelectMessageQueueByHash` uses), to pick a queue by key.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Orderly: `send_with_selector` puts every key on one queue; an orderly push consumer
/// (queue locks on the broker) sees every key's messages in send order.
pub async fn orderly_per_key(namesrv: &str) {
    let topic = unique("CompatOrder");
    let p = producer(namesrv).await;
    let keys: Vec<String> = (0..6).map(|k| format!("order-{k}")).collect();
    let per_key = 15;
    let mut sent_by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut queue_of_key: BTreeMap<String, MessageQueue> = BTreeMap::new();
    // Interleave keys, as concurrent business flows would.
    for seq in 0..per_key {
        for key in &keys {
            let body = format!("{key}#{seq:03}");
            let msg = message(&topic, "Ord", key, &body);
            let selector = |mqs: &[MessageQueue], _m: &Message, k: &String| {
                let n = i32::try_from(mqs.len()).ok()?;
                let idx = java_hash(k).checked_abs().unwrap_or(0) % n.max(1);
                mqs.get(usize::try_from(idx).ok()?).cloned()
            };
            let r = tokio::time::timeout(
                Duration::from_secs(30),
                p.send_with_selector(msg, selector, key.clone()),
            )
            .await
            .expect("send bounded")
            .unwrap_or_else(|e| panic!("orderly send {body}: {e}"))
            .expect("result");
            assert_eq!(r.send_status, SendStatus::SendOk, "{body}");
            let mq = r.message_queue.clone().expect("queue");
            let first = queue_of_key
                .entry(key.clone())
                .or_insert_with(|| mq.clone());
            assert_eq!(*first, mq, "key {key} stays on one queue");
            sent_by_key.entry(key.clone()).or_default().push(body);
        }
    }
    let want: BTreeSet<String> = sent_by_key.values().flatten().cloned().collect();

    let inbox: Inbox = Arc::default();
    let group = unique("compat_order");
    let mut c = push_consumer(
        &ConsumerSpec {
            namesrv,
            group: &group,
            topic: &topic,
            expression: "*",
            orderly: true,
            route_poll_ms: None,
        },
        &inbox,
    )
    .await;
    assert!(c.is_consume_orderly());
    wait_for_all(&inbox, &want, "orderly consumer").await;
    let got = settle(&inbox, Duration::from_secs(2)).await;
    assert_no_duplicates(&got, "orderly consumer");
    for (key, sent) in &sent_by_key {
        let seen: Vec<String> = got
            .iter()
            .filter(|b| b.split('#').next() == Some(key.as_str()))
            .cloned()
            .collect();
        assert_eq!(&seen, sent, "order of key {key}");
    }
    c.shutdown().await;
    let mut p = p;
    p.shutdown().await;
}

/// Sends until `stop` says so, one sync `send_with_selector` at a time, cycling over four
/// order keys (`ok0#…` to `ok3#…`, a key always on the same queue); returns (acknowledged,
/// attempted) in send order. A failed send (error or timeout) is not acknowledged and is not
/// retried here: the client already did what it does.
async fn send_stream(
    p: &DefaultMQProducer,
    topic: &str,
    prefix: &str,
    mut stop: impl FnMut(usize, usize) -> bool,
    deadline: Instant,
) -> (Vec<String>, Vec<String>) {
    let mut acked = vec![];
    let mut attempted = vec![];
    let mut i = 0usize;
    while !stop(acked.len(), attempted.len()) && Instant::now() < deadline {
        let key = format!("ok{}", i % 4);
        let body = format!("{key}#{prefix}-{i}");
        let m = message(topic, TAGS[i % 3], &key, &body);
        attempted.push(body.clone());
        let selector = |mqs: &[MessageQueue], _m: &Message, k: &String| {
            let n = i32::try_from(mqs.len()).ok()?.max(1);
            let idx = java_hash(k).checked_abs().unwrap_or(0) % n;
            mqs.get(usize::try_from(idx).ok()?).cloned()
        };
        match tokio::time::timeout(
            Duration::from_secs(20),
            p.send_with_selector(m, selector, key),
        )
        .await
        {
            Ok(Ok(Some(r))) if r.send_status == SendStatus::SendOk => acked.push(body),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        i += 1;
    }
    (acked, attempted)
}

/// For each order key, the acknowledged bodies must be first seen by the orderly consumer in
/// send order (a redelivery after failover may repeat a suffix; first sightings keep order).
fn assert_key_order(acked_in_order: &[String], got: &[String]) {
    let mut first_seen: Vec<&String> = vec![];
    let mut seen = BTreeSet::new();
    for b in got {
        if seen.insert(b) {
            first_seen.push(b);
        }
    }
    for k in 0..4 {
        let key = format!("ok{k}#");
        let sent: Vec<&String> = acked_in_order
            .iter()
            .filter(|b| b.starts_with(&key))
            .collect();
        let acked: BTreeSet<&String> = sent.iter().copied().collect();
        let order: Vec<&String> = first_seen
            .iter()
            .copied()
            .filter(|b| acked.contains(b))
            .collect();
        assert_eq!(order, sent, "orderly delivery of key ok{k}");
    }
}

/// `kill -9` of the group's leader while a producer sends (by order key) and two push
/// consumers consume, one concurrently and one orderly: the producer gets SEND_OK again from
/// the new leader, both consumers end up with every acknowledged message (duplicates allowed:
/// delivery is at least once) and nothing unsent, and the orderly one sees each key's
/// acknowledged messages in send order.
pub async fn leader_kill_loses_no_acknowledged_message(group: &mut super::Group) {
    let namesrv = group.namesrv.clone();
    // The client's smallest allowed route refresh interval.
    let poll = Some(10_000);
    let topic = unique("CompatFailover");
    let p = producer_with(&namesrv, poll).await;
    // The first send auto-creates the topic.
    let mut acked = send_all(&p, tagged_batch(&topic, "pre", 20)).await;
    let mut attempted = acked.clone();
    let leader = group
        .leader_for(&topic, Duration::from_secs(30))
        .await
        .expect("the route shows a leader for the topic");

    let inbox: Inbox = Arc::default();
    let cgroup = unique("compat_failover");
    let mut c = push_consumer(
        &ConsumerSpec {
            namesrv: &namesrv,
            group: &cgroup,
            topic: &topic,
            expression: "*",
            orderly: false,
            route_poll_ms: poll,
        },
        &inbox,
    )
    .await;
    // A second group consumes orderly (queue locks, lost with the old leader).
    let ordered: Inbox = Arc::default();
    let ogroup = unique("compat_failover_ord");
    let mut oc = push_consumer(
        &ConsumerSpec {
            namesrv: &namesrv,
            group: &ogroup,
            topic: &topic,
            expression: "*",
            orderly: true,
            route_poll_ms: poll,
        },
        &ordered,
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let (a, t) = send_stream(&p, &topic, "mid", |acked, _| acked >= 20, deadline).await;
    acked.extend(a);
    attempted.extend(t);

    group.kill9(leader);
    let killed_at = Instant::now();
    // Keep sending until 30 sends succeeded after the kill (on the new leader).
    let (after, t) = send_stream(&p, &topic, "post", |acked, _| acked >= 30, deadline).await;
    eprintln!(
        "failover: killed n{leader}; after the kill {} of {} sends acknowledged in {:?}",
        after.len(),
        t.len(),
        killed_at.elapsed()
    );
    attempted.extend(t);
    assert!(
        after.len() >= 30,
        "the producer did not resume on a new leader: {} sends acknowledged after the kill",
        after.len()
    );
    acked.extend(after);
    let new_leader = group.leader_for(&topic, Duration::from_secs(30)).await;
    assert!(
        new_leader.is_some_and(|n| n != leader),
        "route shows a new leader: {new_leader:?} (killed n{leader})"
    );

    let want = as_set(&acked);
    wait_for_all(&inbox, &want, "consumer across the failover").await;
    let got = settle(&inbox, Duration::from_secs(2)).await;
    eprintln!(
        "failover: {} acknowledged, {} attempted, {} deliveries ({} distinct), all acknowledged \
         delivered {:?} after the kill",
        want.len(),
        attempted.len(),
        got.len(),
        as_set(&got).len(),
        killed_at.elapsed()
    );
    let attempted = as_set(&attempted);
    let unknown: Vec<&String> = got.iter().filter(|b| !attempted.contains(*b)).collect();
    assert!(unknown.is_empty(), "delivered but never sent: {unknown:?}");

    wait_for_all(&ordered, &want, "orderly consumer across the failover").await;
    let got_ordered = settle(&ordered, Duration::from_secs(2)).await;
    eprintln!(
        "failover: orderly consumer {} deliveries ({} distinct), done {:?} after the kill",
        got_ordered.len(),
        as_set(&got_ordered).len(),
        killed_at.elapsed()
    );
    let unknown: Vec<&String> = got_ordered
        .iter()
        .filter(|b| !attempted.contains(*b))
        .collect();
    assert!(
        unknown.is_empty(),
        "orderly: delivered but never sent: {unknown:?}"
    );
    assert_key_order(&acked, &got_ordered);
    oc.shutdown().await;
    c.shutdown().await;
    let mut p = p;
    p.shutdown().await;
}

/// A concurrent listener answers RECONSUME_LATER to the first delivery of each message: the
/// client sends it back (CONSUMER_SEND_MSG_BACK), the broker redelivers it through the
/// group's retry topic after the first delay level (10 s), with reconsumeTimes 1.
pub async fn retry_after_reconsume_later(namesrv: &str) {
    let topic = unique("CompatRetry");
    let mut p = producer(namesrv).await;
    let want = as_set(&send_all(&p, tagged_batch(&topic, "retry", 6)).await);

    let seen: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
    let sink = seen.clone();
    let mut c = DefaultMQPushConsumer::builder(client_runtime("consumer"))
        .consumer_group(unique("compat_retry"))
        .name_server_addr(namesrv.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .consume_message_batch_max_size(1)
        .build();
    c.subscribe(&topic, "*").await.expect("subscribe");
    c.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            let mut v = sink.lock().unwrap_or_else(|e| e.into_inner());
            let mut later = false;
            for m in msgs {
                let g = Got::of(m);
                later |= m.reconsume_times() == 0;
                v.push((g.body, m.reconsume_times()));
            }
            Ok(if later {
                ConsumeConcurrentlyStatus::ReconsumeLater
            } else {
                ConsumeConcurrentlyStatus::ConsumeSuccess
            })
        },
    );
    tokio::time::timeout(Duration::from_secs(30), c.start())
        .await
        .expect("consumer start bounded")
        .expect("consumer starts");
    let ok = wait_until(DELIVERY_TIMEOUT, || {
        let v = seen.lock().unwrap_or_else(|e| e.into_inner());
        let retried: BTreeSet<String> = v
            .iter()
            .filter(|(_, n)| *n >= 1)
            .map(|(b, _)| b.clone())
            .collect();
        retried == want
    })
    .await;
    let v = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        ok,
        "not every message came back with reconsumeTimes 1: {v:?}"
    );
    let first: BTreeSet<String> = v
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(b, _)| b.clone())
        .collect();
    assert_eq!(first, want, "first deliveries");
    c.shutdown().await;
    p.shutdown().await;
}
