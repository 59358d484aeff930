//! Producer and consumer channels, consumer subscriptions, and NOTIFY_CONSUMER_IDS_CHANGED.
//!
//! A channel is one client connection registered by HEART_BEAT under a group. Consumer
//! groups also keep the subscriptions from the heartbeats, with tag hash codes recomputed
//! here (the Go client hashes UTF-8 bytes, Java UTF-16 units; the broker must not trust
//! either). A channel goes when its connection closes, on UNREGISTER_CLIENT, or after
//! `channelExpiredTimeout` (120 s) without a heartbeat. When a consumer group's members or subscriptions change, every
//! member gets NOTIFY_CONSUMER_IDS_CHANGED (oneway) so it rebalances at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::BrokerState;
use crate::remoting::body::{ConsumerData, MessageQueue, SubscriptionData};
use crate::remoting::header::client::NotifyConsumerIdsChangedRequestHeader;
use crate::remoting::{ConnContext, LanguageCode, RemotingCommand, RequestCode};

/// One client connection in a group.
#[derive(Clone)]
pub struct Channel {
    pub client_id: String,
    pub ctx: ConnContext,
    pub last_update: Instant,
    /// Language and MQVersion of the client's last heartbeat.
    pub language: LanguageCode,
    pub version: i32,
}

/// Who the client on a connection says it is (from its HEART_BEAT frame).
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub language: LanguageCode,
    pub version: i32,
}

impl Channel {
    fn new(info: &ClientInfo, ctx: &ConnContext) -> Self {
        Channel {
            client_id: info.client_id.clone(),
            ctx: ctx.clone(),
            last_update: Instant::now(),
            language: info.language,
            version: info.version,
        }
    }
}

/// A parsed subscription: what the pull filter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: String,
    pub expression: String,
    /// Tags; empty = all (`*`).
    pub tags: HashSet<String>,
    /// Java hash codes of `tags`.
    pub codes: HashSet<i64>,
    pub sub_version: i64,
    pub expression_type: String,
}

impl Subscription {
    /// Parse a TAG expression (`TagA || TagB`, `*` or empty = everything).
    pub fn parse(topic: &str, expression: &str, sub_version: i64, expression_type: &str) -> Self {
        let mut tags = HashSet::new();
        let trimmed = expression.trim();
        if !trimmed.is_empty() && trimmed != "*" {
            for t in trimmed.split("||").map(str::trim).filter(|t| !t.is_empty()) {
                tags.insert(t.to_string());
            }
        }
        let codes = tags
            .iter()
            .map(|t| raftmq_store::message::tag_hash_code(t))
            .collect();
        Subscription {
            topic: topic.to_string(),
            expression: expression.to_string(),
            tags,
            codes,
            sub_version,
            expression_type: if expression_type.is_empty() {
                "TAG".into()
            } else {
                expression_type.to_string()
            },
        }
    }

    fn from_data(d: &SubscriptionData) -> Self {
        Self::parse(&d.topic, &d.sub_string, d.sub_version, &d.expression_type)
    }

    /// Everything matches.
    pub fn is_all(&self) -> bool {
        self.tags.is_empty()
    }

    /// The consumequeue-level check on a tags hash code.
    pub fn matches_code(&self, code: i64) -> bool {
        self.is_all() || self.codes.contains(&code)
    }

    /// The exact check on the message's TAGS property.
    pub fn matches_tag(&self, tag: Option<&str>) -> bool {
        self.is_all() || tag.is_some_and(|t| self.tags.contains(t))
    }
}

#[derive(Default)]
struct ConsumerGroup {
    /// By connection id.
    channels: HashMap<u64, Channel>,
    subscriptions: BTreeMap<String, Subscription>,
    /// The latest heartbeat's consumer data (consume type, model, where to start, raw subs).
    data: Option<ConsumerData>,
}

#[derive(Default)]
struct Tables {
    consumers: HashMap<String, ConsumerGroup>,
    producers: HashMap<String, HashMap<u64, Channel>>,
}

/// The registry of producer and consumer channels.
#[derive(Default)]
pub struct ClientManager {
    tables: Mutex<Tables>,
}

impl ClientManager {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a producer channel.
    pub fn register_producer(&self, group: &str, info: &ClientInfo, ctx: &ConnContext) {
        let mut t = self.lock();
        t.producers
            .entry(group.to_string())
            .or_default()
            .insert(ctx.id(), Channel::new(info, ctx));
    }

    /// Register a consumer channel and its subscriptions; returns true if the group's
    /// membership or subscriptions changed (members should be notified).
    pub fn register_consumer(
        &self,
        data: &ConsumerData,
        info: &ClientInfo,
        ctx: &ConnContext,
    ) -> bool {
        let mut t = self.lock();
        let g = t.consumers.entry(data.group_name.clone()).or_default();
        g.data = Some(data.clone());
        let new_channel = g
            .channels
            .insert(ctx.id(), Channel::new(info, ctx))
            .is_none_or(|old| old.client_id != info.client_id);
        let mut sub_changed = false;
        for d in &data.subscription_data_set {
            let s = Subscription::from_data(d);
            match g.subscriptions.get(&s.topic) {
                Some(old) if old.expression == s.expression => {
                    // Same filter (maybe a newer version): no rebalance needed.
                    if s.sub_version > old.sub_version {
                        g.subscriptions.insert(s.topic.clone(), s);
                    }
                }
                _ => {
                    g.subscriptions.insert(s.topic.clone(), s);
                    sub_changed = true;
                }
            }
        }
        new_channel || sub_changed
    }

    /// The subscription of `group` on `topic`, as heartbeats registered it.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<Subscription> {
        self.lock()
            .consumers
            .get(group)
            .and_then(|g| g.subscriptions.get(topic).cloned())
    }

    /// Sorted client ids of a consumer group.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let t = self.lock();
        let mut ids: Vec<String> = t
            .consumers
            .get(group)
            .map(|g| g.channels.values().map(|c| c.client_id.clone()).collect())
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The latest consumer data a member of `group` sent.
    pub fn consumer_data(&self, group: &str) -> Option<ConsumerData> {
        self.lock()
            .consumers
            .get(group)
            .and_then(|g| g.data.clone())
    }

    /// Channels of a producer group.
    pub fn producer_channels(&self, group: &str) -> Vec<Channel> {
        self.lock()
            .producers
            .get(group)
            .map(|chs| chs.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Channels of a consumer group.
    pub fn consumer_channels(&self, group: &str) -> Vec<Channel> {
        self.lock()
            .consumers
            .get(group)
            .map(|g| g.channels.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Remove a client from groups; returns the consumer groups that changed.
    pub fn unregister(
        &self,
        ctx: &ConnContext,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> Vec<String> {
        let mut t = self.lock();
        if let Some(p) = producer_group {
            if let Some(chs) = t.producers.get_mut(p) {
                chs.remove(&ctx.id());
            }
        }
        let mut changed = vec![];
        if let Some(c) = consumer_group {
            if let Some(g) = t.consumers.get_mut(c) {
                if g.channels.remove(&ctx.id()).is_some() {
                    changed.push(c.to_string());
                }
            }
        }
        changed
    }

    /// Remove every channel of a closed connection; returns the consumer groups that changed.
    pub fn connection_closed(&self, conn_id: u64) -> Vec<String> {
        let mut t = self.lock();
        for chs in t.producers.values_mut() {
            chs.remove(&conn_id);
        }
        let mut changed = vec![];
        for (name, g) in t.consumers.iter_mut() {
            if g.channels.remove(&conn_id).is_some() {
                changed.push(name.clone());
            }
        }
        changed
    }

    /// Remove channels silent for longer than `max_idle`; returns consumer groups that changed.
    pub fn expire(&self, max_idle: Duration) -> Vec<String> {
        let now = Instant::now();
        let mut t = self.lock();
        for chs in t.producers.values_mut() {
            chs.retain(|_, c| now.duration_since(c.last_update) < max_idle);
        }
        let mut changed = vec![];
        for (name, g) in t.consumers.iter_mut() {
            let before = g.channels.len();
            g.channels
                .retain(|_, c| now.duration_since(c.last_update) < max_idle);
            if g.channels.len() != before {
                changed.push(name.clone());
            }
        }
        t.consumers.retain(|_, g| !g.channels.is_empty());
        t.producers.retain(|_, chs| !chs.is_empty());
        changed
    }

    /// Send NOTIFY_CONSUMER_IDS_CHANGED to every member of `group` (never blocks).
    pub fn notify_changed(&self, group: &str) {
        for ch in self.consumer_channels(group) {
            let cmd = RemotingCommand::request(RequestCode::NotifyConsumerIdsChanged).with_header(
                &NotifyConsumerIdsChangedRequestHeader {
                    consumer_group: group.to_string(),
                },
            );
            if let Err(e) = ch.ctx.try_invoke_oneway(cmd) {
                tracing::debug!(group, client = %ch.client_id, cause = %e, "notify consumer ids changed failed");
            }
        }
    }
}

/// A queue lock older than this is free for anyone (`rocketmq.broker.rebalance.lockMaxLiveTime`).
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(60);

/// Orderly-consumption queue locks: group → queue → (client id, last renewal). Held in memory
/// on the node that answers, so they are lost on failover, as in RocketMQ.
#[derive(Default)]
pub struct LockTable {
    locks: Mutex<HashMap<String, GroupLocks>>,
}

/// One group's locks: queue → (holder client id, last renewal).
type GroupLocks = HashMap<MessageQueue, (String, Instant)>;

impl LockTable {
    /// Lock (or renew) what is free, expired or already held by `client_id`; returns the
    /// queues `client_id` now holds among `mqs`.
    pub fn lock(&self, group: &str, client_id: &str, mqs: &[MessageQueue]) -> Vec<MessageQueue> {
        let now = Instant::now();
        let mut t = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        let g = t.entry(group.to_string()).or_default();
        let mut ok = vec![];
        for mq in mqs {
            let free = match g.get(mq) {
                None => true,
                Some((holder, at)) => {
                    holder == client_id || now.duration_since(*at) > LOCK_MAX_LIVE
                }
            };
            if free {
                g.insert(mq.clone(), (client_id.to_string(), now));
                ok.push(mq.clone());
            }
        }
        ok
    }

    /// Release the queues of `mqs` that `client_id` holds.
    pub fn unlock(&self, group: &str, client_id: &str, mqs: &[MessageQueue]) {
        let mut t = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = t.get_mut(group) {
            for mq in mqs {
                if g.get(mq).is_some_and(|(holder, _)| holder == client_id) {
                    g.remove(mq);
                }
            }
        }
    }

    /// Forget every lock (this node stopped leading).
    pub fn clear(&self) {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Every 10 s (more often when `channelExpiredTimeout` is short), drop channels silent for
/// `channelExpiredTimeout` (120 s by default) and notify their groups.
pub async fn run_expiry(state: Arc<BrokerState>) {
    let max_idle = state.cfg.channel_expired_timeout;
    let period = (max_idle / 4).clamp(Duration::from_millis(25), Duration::from_secs(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for g in state.clients.expire(max_idle) {
            tracing::info!(group = %g, "consumer channel expired");
            state.clients.notify_changed(&g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_parsing_and_matching() {
        let s = Subscription::parse("T", "TagA || TagB ||  ", 1, "");
        assert_eq!(s.tags.len(), 2);
        assert!(s.matches_code(2598919));
        assert!(s.matches_tag(Some("TagB")));
        assert!(!s.matches_tag(Some("TagC")));
        assert!(!s.matches_tag(None));
        assert_eq!(s.expression_type, "TAG");
        let all = Subscription::parse("T", "*", 0, "TAG");
        assert!(all.is_all() && all.matches_code(7) && all.matches_tag(None));
    }

    #[test]
    fn locks_are_exclusive_renewable_and_released() {
        let t = LockTable::default();
        let q0 = MessageQueue::new("T", "b", 0);
        let q1 = MessageQueue::new("T", "b", 1);
        assert_eq!(
            t.lock("g", "c1", std::slice::from_ref(&q0)),
            vec![q0.clone()]
        );
        assert_eq!(
            t.lock("g", "c2", &[q0.clone(), q1.clone()]),
            vec![q1.clone()]
        );
        assert_eq!(
            t.lock("g", "c1", std::slice::from_ref(&q0)),
            vec![q0.clone()]
        );
        assert_eq!(
            t.lock("other", "c2", std::slice::from_ref(&q0)),
            vec![q0.clone()]
        );
        t.unlock("g", "c2", std::slice::from_ref(&q0));
        assert!(
            t.lock("g", "c2", std::slice::from_ref(&q0)).is_empty(),
            "c2 cannot unlock c1's lock"
        );
        t.unlock("g", "c1", std::slice::from_ref(&q0));
        assert_eq!(t.lock("g", "c2", std::slice::from_ref(&q0)), vec![q0]);
    }
}
