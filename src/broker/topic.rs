//! Topic configurations: lookups, the send-time auto-creation rule (TBW102), retry topics and
//! system-topic protection.
//!
//! Topic configs live in the replicated metadata tables; every change is a Raft entry
//! (`UpsertTopic` / `DeleteTopic`) proposed by the leader, so every replica sees the same
//! table. Reads go straight to the applied table. The rules themselves
//! ([`resolve_for_send`]) are pure functions, tested without a group.

use std::sync::atomic::{AtomicI64, Ordering};

use raftmq_raft::BrokerCommand;
use raftmq_store::metadata::TopicConfig;

use super::{BrokerConfig, BrokerError, Node};
use crate::namesrv::bodies::{DataVersion, PERM_INHERIT, PERM_READ, PERM_WRITE};
use crate::remoting::ResponseCode;

/// The auto-create template topic.
pub const TBW102: &str = "TBW102";
/// Prefix of a consumer group's retry topic.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// Prefix of a consumer group's dead-letter topic.
pub const DLQ_PREFIX: &str = "%DLQ%";

/// Topics clients may not send to directly.
const SEND_FORBIDDEN: &[&str] = &[
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// What a send to a topic should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTopic {
    /// The topic exists.
    Existing(TopicConfig),
    /// The topic must be created (replicated) with this config first.
    Create(TopicConfig),
    /// Refused with this response code and remark.
    Refused(ResponseCode, String),
}

/// The send-time rule: existing topic, auto-create from the template, or refuse.
///
/// Auto-creation follows RocketMQ: the template (`defaultTopic`, normally TBW102) must exist
/// and carry PERM_INHERIT; the new topic gets `min(defaultTopicQueueNums, template write
/// queues)` queues and the template's perm without INHERIT. Retry topics get 1 queue.
pub fn resolve_for_send(
    topic: &str,
    existing: Option<TopicConfig>,
    template: Option<TopicConfig>,
    client_queue_nums: i32,
) -> SendTopic {
    if let Err(e) = raftmq_store::message::validate_topic_name(topic) {
        return SendTopic::Refused(ResponseCode::MessageIllegal, e.to_string());
    }
    if topic.len() > 127 && !topic.starts_with(RETRY_PREFIX) && !topic.starts_with(DLQ_PREFIX) {
        return SendTopic::Refused(
            ResponseCode::MessageIllegal,
            format!("the topic[{topic}] is longer than 127 characters"),
        );
    }
    if SEND_FORBIDDEN.contains(&topic) {
        return SendTopic::Refused(
            ResponseCode::NoPermission,
            format!("sending message to topic[{topic}] is forbidden"),
        );
    }
    if let Some(t) = existing {
        return SendTopic::Existing(t);
    }
    if topic.starts_with(RETRY_PREFIX) {
        return SendTopic::Create(retry_topic(topic));
    }
    match template {
        Some(tpl) if tpl.perm & PERM_INHERIT != 0 => {
            let queues = client_queue_nums.clamp(1, tpl.write_queue_nums.max(1));
            let mut t = TopicConfig::new(topic);
            t.read_queue_nums = queues;
            t.write_queue_nums = queues;
            t.perm = tpl.perm & !PERM_INHERIT;
            SendTopic::Create(t)
        }
        _ => SendTopic::Refused(
            ResponseCode::TopicNotExist,
            format!("topic[{topic}] not exist, apply first please!"),
        ),
    }
}

/// A retry (or dead-letter) topic config: 1 queue, read|write.
pub fn retry_topic(name: &str) -> TopicConfig {
    let mut t = TopicConfig::new(name);
    t.read_queue_nums = 1;
    t.write_queue_nums = 1;
    t.perm = PERM_READ | PERM_WRITE;
    t
}

/// Topic lookups and replicated changes; the data version reported to nameservers.
pub struct TopicManager {
    auto_create: bool,
    default_queue_nums: i32,
    broker_perm: i32,
    counter: AtomicI64,
    started_ms: i64,
    creating: tokio::sync::Mutex<()>,
}

impl TopicManager {
    pub fn new(cfg: &BrokerConfig) -> Self {
        TopicManager {
            auto_create: cfg.auto_create_topic_enable,
            default_queue_nums: cfg.default_topic_queue_nums,
            broker_perm: cfg.broker_permission,
            counter: AtomicI64::new(0),
            started_ms: super::now_ms(),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// Serialises auto-creations, so concurrent first sends create a topic once.
    pub async fn creation_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.creating.lock().await
    }

    /// The applied config of `name`.
    pub fn get(&self, node: &Node, name: &str) -> Result<Option<TopicConfig>, BrokerError> {
        Ok(node.topics.get(name))
    }

    /// Every applied topic config.
    pub fn all(&self, node: &Node) -> Result<Vec<TopicConfig>, BrokerError> {
        node.sm
            .with_metadata(|m| m.topics())
            .map_err(|e| BrokerError::Metadata(e.to_string()))
    }

    /// Replicate a topic config (leader only) and bump the data version.
    pub async fn put(&self, node: &Node, cfg: TopicConfig) -> Result<(), BrokerError> {
        node.write(BrokerCommand::UpsertTopic { topic: cfg })
            .await?;
        self.counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Replicate a topic deletion (leader only).
    pub async fn delete(&self, node: &Node, name: &str) -> Result<(), BrokerError> {
        node.write(BrokerCommand::DeleteTopic {
            topic: name.to_string(),
        })
        .await?;
        self.counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// On a newly ready leader: make sure the system topics exist (TBW102 when
    /// `autoCreateTopicEnable`). Returns true if anything was created.
    pub async fn ensure_system_topics(&self, node: &Node) -> Result<bool, BrokerError> {
        if !self.auto_create || self.get(node, TBW102)?.is_some() {
            return Ok(false);
        }
        let mut t = TopicConfig::new(TBW102);
        t.read_queue_nums = self.default_queue_nums;
        t.write_queue_nums = self.default_queue_nums;
        t.perm = PERM_INHERIT | (self.broker_perm & (PERM_READ | PERM_WRITE));
        self.put(node, t).await?;
        Ok(true)
    }

    /// Make sure a group's retry topic exists (leader only; no-op elsewhere).
    pub async fn ensure_retry_topic(&self, node: &Node, group: &str) -> Result<bool, BrokerError> {
        let name = format!("{RETRY_PREFIX}{group}");
        if self.get(node, &name)?.is_some() || node.check_writable().is_err() {
            return Ok(false);
        }
        self.put(node, retry_topic(&name)).await?;
        Ok(true)
    }

    /// The data version sent with registrations.
    pub fn data_version(&self) -> DataVersion {
        DataVersion {
            counter: self.counter.load(Ordering::Relaxed),
            timestamp: self.started_ms,
            state_version: None,
        }
    }

    /// The broker-wide permission (`brokerPermission`).
    pub fn broker_perm(&self) -> i32 {
        self.broker_perm
    }
}

/// A metadata topic config in the nameserver/JSON form.
pub fn to_wire(t: &TopicConfig) -> crate::namesrv::bodies::TopicConfig {
    crate::namesrv::bodies::TopicConfig {
        topic_name: t.topic_name.clone(),
        read_queue_nums: t.read_queue_nums,
        write_queue_nums: t.write_queue_nums,
        perm: t.perm,
        topic_filter_type: t.topic_filter_type.clone(),
        topic_sys_flag: t.topic_sys_flag,
        order: t.order,
        attributes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tbw(queues: i32, perm: i32) -> TopicConfig {
        let mut t = TopicConfig::new(TBW102);
        t.read_queue_nums = queues;
        t.write_queue_nums = queues;
        t.perm = perm;
        t
    }

    #[test]
    fn auto_create_takes_min_queues_and_drops_inherit() {
        match resolve_for_send("Orders", None, Some(tbw(8, 7)), 4) {
            SendTopic::Create(t) => {
                assert_eq!((t.read_queue_nums, t.write_queue_nums, t.perm), (4, 4, 6));
                assert_eq!(t.topic_name, "Orders");
            }
            other => panic!("{other:?}"),
        }
        match resolve_for_send("Orders", None, Some(tbw(2, 7)), 4) {
            SendTopic::Create(t) => assert_eq!(t.write_queue_nums, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_template_or_no_inherit_is_topic_not_exist() {
        for tpl in [None, Some(tbw(8, 6))] {
            match resolve_for_send("Orders", None, tpl, 4) {
                SendTopic::Refused(code, _) => assert_eq!(code, ResponseCode::TopicNotExist),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn existing_system_and_bad_names() {
        let t = TopicConfig::new("T");
        assert_eq!(
            resolve_for_send("T", Some(t.clone()), None, 4),
            SendTopic::Existing(t)
        );
        assert!(matches!(
            resolve_for_send("SCHEDULE_TOPIC_XXXX", None, Some(tbw(8, 7)), 4),
            SendTopic::Refused(ResponseCode::NoPermission, _)
        ));
        assert!(matches!(
            resolve_for_send("bad topic!", None, Some(tbw(8, 7)), 4),
            SendTopic::Refused(ResponseCode::MessageIllegal, _)
        ));
        match resolve_for_send("%RETRY%g", None, None, 4) {
            SendTopic::Create(t) => assert_eq!(t.write_queue_nums, 1),
            other => panic!("{other:?}"),
        }
    }
}
