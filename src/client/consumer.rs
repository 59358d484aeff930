//! The pull consumer: the caller chooses queues and offsets; the consumer pulls, filters by
//! tag and stores offsets on the broker.
//!
//! Requests go to the broker group's leader (brokerId 0; the lowest listed id if the route
//! has no leader). A pull carries its subscription (sysflag FLAG_SUBSCRIPTION, a TAG
//! expression such as `TagA || TagB`), so the broker filters by tag hash code without
//! needing a heartbeat first; the consumer then keeps only messages whose tag string
//! matches, as the Java client does after a pull (hash collisions). Pulled bodies are
//! decoded with the store crate's stored-message codec.
//!
//! Subscriptions given to [`PullConsumer::subscribe`] are also sent in heartbeats
//! (CONSUME_ACTIVELY, CLUSTERING), which is what a push consumer with rebalancing will build
//! on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftmq_store::message::java_string_hash;

use crate::remoting::body::{
    ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel, MessageQueue, SubscriptionData,
};
use crate::remoting::header::offset::{
    GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, OffsetResponseHeader,
    QueryConsumerOffsetRequestHeader, SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use crate::remoting::header::pull::{
    PullMessageRequestHeader, PullMessageResponseHeader, PULL_FLAG_COMMIT_OFFSET,
    PULL_FLAG_SUBSCRIPTION, PULL_FLAG_SUSPEND,
};
use crate::remoting::{CommandHeader, RemotingCommand, RequestCode, ResponseCode};

use super::error::{ClientError, ClientResult};
use super::message::{unix_millis, MessageExt};
use super::{lock, ClientConfig, ClientCore, ClientInstance};

/// The expression that subscribes to every tag.
pub const SUB_ALL: &str = "*";

/// Extra time a long-polling pull waits for the answer beyond the broker's hold time.
const SUSPEND_RPC_MARGIN: Duration = Duration::from_secs(5);

/// How a pull ended (the broker's code, protocol.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullStatus {
    /// Messages were found (code 0).
    Found,
    /// Nothing at or after the offset yet (code 19).
    NoNewMsg,
    /// Entries were scanned but none matched the filter (code 20).
    NoMatchedMsg,
    /// The offset is outside the queue; continue from `next_begin_offset` (code 21).
    OffsetIllegal,
}

/// The outcome of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResult {
    pub status: PullStatus,
    /// Offset to pull from next.
    pub next_begin_offset: i64,
    /// Smallest offset still in the queue.
    pub min_offset: i64,
    /// Offset the next message will get (one past the last).
    pub max_offset: i64,
    /// Broker id the broker suggests pulling from next (0 = leader).
    pub suggest_which_broker_id: i64,
    /// Matching messages, in queue order (empty unless `Found`).
    pub messages: Vec<MessageExt>,
}

/// A parsed TAG subscription expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The expression as given (`*` for all).
    pub expression: String,
    /// The tags, empty for `*`.
    pub tags: BTreeSet<String>,
    /// When it was made (ms), sent as `subVersion`.
    pub version: i64,
}

impl Subscription {
    /// Parses `TagA || TagB` (`*` or empty = every tag), as `FilterAPI.buildSubscriptionData`.
    pub fn parse(expression: &str) -> Self {
        let expr = expression.trim();
        let tags: BTreeSet<String> = if expr.is_empty() || expr == SUB_ALL {
            BTreeSet::new()
        } else {
            expr.split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Subscription {
            expression: if tags.is_empty() {
                SUB_ALL.to_owned()
            } else {
                expr.to_owned()
            },
            tags,
            version: unix_millis(),
        }
    }

    /// Whether every tag matches.
    pub fn is_all(&self) -> bool {
        self.tags.is_empty()
    }

    /// Whether a message with `tag` passes (untagged messages only pass `*`).
    pub fn matches(&self, tag: Option<&str>) -> bool {
        self.is_all() || tag.is_some_and(|t| self.tags.contains(t))
    }

    fn to_data(&self, topic: &str) -> SubscriptionData {
        SubscriptionData {
            class_filter_mode: false,
            topic: topic.to_owned(),
            sub_string: self.expression.clone(),
            tags_set: self.tags.iter().cloned().collect(),
            code_set: self.tags.iter().map(|t| java_string_hash(t)).collect(),
            sub_version: self.version,
            expression_type: "TAG".to_owned(),
        }
    }
}

/// Options of one pull; [`PullConsumer::pull`] covers the common case.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Tag expression; `None` uses the topic's subscription (or `*`).
    pub expression: Option<String>,
    /// Most messages to return (the broker may return fewer).
    pub max_nums: i32,
    /// With `Some(hold)`, the broker holds the pull up to `hold` waiting for a message
    /// (long polling); the answer is awaited for `hold` plus a margin.
    pub suspend: Option<Duration>,
    /// Without suspension: how long to wait for the answer.
    pub timeout: Duration,
    /// Offset to store for the group along with the pull (FLAG_COMMIT_OFFSET).
    pub commit_offset: Option<i64>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            expression: None,
            max_nums: 32,
            suspend: None,
            timeout: Duration::from_secs(3),
            commit_offset: None,
        }
    }
}

/// A pull consumer of one consumer group.
#[derive(Debug)]
pub struct PullConsumer {
    instance: ClientInstance,
    group: String,
    subscriptions: Mutex<BTreeMap<String, Subscription>>,
}

impl PullConsumer {
    /// Starts a client instance of its own and a consumer of `group` on it.
    pub async fn start(
        client: ClientConfig,
        group: impl Into<String>,
    ) -> ClientResult<PullConsumer> {
        Self::with_instance(ClientInstance::start(client)?, group)
    }

    /// A consumer on an existing client instance.
    pub fn with_instance(
        instance: ClientInstance,
        group: impl Into<String>,
    ) -> ClientResult<PullConsumer> {
        let group = group.into();
        if group.is_empty() {
            return Err(ClientError::Config("consumer group is empty".to_owned()));
        }
        let c = PullConsumer {
            instance,
            group,
            subscriptions: Mutex::new(BTreeMap::new()),
        };
        c.register();
        Ok(c)
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The client instance this consumer uses.
    pub fn instance(&self) -> &ClientInstance {
        &self.instance
    }

    fn core(&self) -> &Arc<ClientCore> {
        self.instance.core()
    }

    /// Subscribes to `topic` with a TAG expression (`*`, `TagA`, `TagA || TagB`): used by
    /// pulls of that topic and announced in heartbeats.
    pub fn subscribe(&self, topic: &str, expression: &str) -> ClientResult<()> {
        raftmq_store::message::validate_topic_name(topic).map_err(|e| {
            ClientError::InvalidMessage {
                topic: topic.to_owned(),
                reason: e.to_string(),
            }
        })?;
        lock(&self.subscriptions).insert(topic.to_owned(), Subscription::parse(expression));
        self.register();
        Ok(())
    }

    /// Drops the subscription to `topic`.
    pub fn unsubscribe(&self, topic: &str) {
        lock(&self.subscriptions).remove(topic);
        self.register();
    }

    fn register(&self) {
        let subs = lock(&self.subscriptions);
        self.instance.register_consumer(ConsumerData {
            group_name: self.group.clone(),
            consume_type: ConsumeType::ConsumeActively,
            message_model: MessageModel::Clustering,
            consume_from_where: ConsumeFromWhere::ConsumeFromFirstOffset,
            subscription_data_set: subs.iter().map(|(t, s)| s.to_data(t)).collect(),
            unit_mode: false,
        });
    }

    /// Stops heartbeating this group and tells the brokers (UNREGISTER_CLIENT).
    pub async fn shutdown(self) {
        let core = self.core().clone();
        let group = self.group.clone();
        // Dropping removes the group from the heartbeats.
        drop(self);
        core.unregister_client(None, Some(&group)).await;
    }

    /// The readable queues of `topic`.
    pub async fn fetch_subscribe_queues(&self, topic: &str) -> ClientResult<Vec<MessageQueue>> {
        let route = self.core().route(topic).await?;
        Ok(route.read_queues())
    }

    /// Pulls up to `max_nums` messages from `offset` without long polling, filtered by the
    /// topic's subscription (`*` if none).
    pub async fn pull(
        &self,
        queue: &MessageQueue,
        offset: i64,
        max_nums: i32,
        timeout: Duration,
    ) -> ClientResult<PullResult> {
        let opts = PullOptions {
            max_nums,
            timeout,
            ..PullOptions::default()
        };
        self.pull_with(queue, offset, &opts).await
    }

    /// Pulls with long polling: when nothing is there the broker holds the request up to
    /// `hold` and answers as soon as a message arrives.
    pub async fn pull_blocking(
        &self,
        queue: &MessageQueue,
        offset: i64,
        max_nums: i32,
        hold: Duration,
    ) -> ClientResult<PullResult> {
        let opts = PullOptions {
            max_nums,
            suspend: Some(hold),
            ..PullOptions::default()
        };
        self.pull_with(queue, offset, &opts).await
    }

    /// Pulls with explicit options. A connection failure or a "not available / not leader"
    /// answer refreshes the route and tries once more.
    pub async fn pull_with(
        &self,
        queue: &MessageQueue,
        offset: i64,
        opts: &PullOptions,
    ) -> ClientResult<PullResult> {
        if opts.max_nums <= 0 {
            return Err(ClientError::Config(format!(
                "max_nums must be positive, got {}",
                opts.max_nums
            )));
        }
        let sub = match &opts.expression {
            Some(e) => Subscription::parse(e),
            None => lock(&self.subscriptions)
                .get(&queue.topic)
                .cloned()
                .unwrap_or_else(|| Subscription::parse(SUB_ALL)),
        };
        let mut sys_flag = PULL_FLAG_SUBSCRIPTION;
        if opts.suspend.is_some() {
            sys_flag |= PULL_FLAG_SUSPEND;
        }
        if opts.commit_offset.is_some() {
            sys_flag |= PULL_FLAG_COMMIT_OFFSET;
        }
        let header = PullMessageRequestHeader {
            consumer_group: self.group.clone(),
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
            queue_offset: offset,
            max_msg_nums: opts.max_nums,
            sys_flag,
            commit_offset: opts.commit_offset.unwrap_or(0),
            suspend_timeout_millis: opts.suspend.map(|d| d.as_millis() as i64).unwrap_or(0),
            subscription: Some(sub.expression.clone()),
            sub_version: sub.version,
            expression_type: Some("TAG".to_owned()),
            max_msg_bytes: None,
            broker_name: Some(queue.broker_name.clone()),
        };
        let timeout = match opts.suspend {
            Some(hold) => hold + SUSPEND_RPC_MARGIN,
            None => opts.timeout,
        };
        let (addr, resp) = self
            .invoke_broker(queue, RequestCode::PullMessage, &header, timeout)
            .await?;
        let status = match resp.response_code() {
            Some(ResponseCode::Success) => PullStatus::Found,
            Some(ResponseCode::PullNotFound) => PullStatus::NoNewMsg,
            Some(ResponseCode::PullRetryImmediately) => PullStatus::NoMatchedMsg,
            Some(ResponseCode::PullOffsetMoved) => PullStatus::OffsetIllegal,
            _ => return Err(ClientError::broker(&addr, resp.code, resp.remark)),
        };
        let h: PullMessageResponseHeader =
            resp.decode_header().map_err(|e| ClientError::BadResponse {
                addr: addr.clone(),
                reason: format!("pull response: {e}"),
            })?;
        let messages = match (status, resp.body.as_deref()) {
            (PullStatus::Found, Some(body)) => MessageExt::decode_batch(body, &addr)?
                .into_iter()
                .filter(|m| sub.matches(m.tags()))
                .collect(),
            _ => Vec::new(),
        };
        Ok(PullResult {
            status,
            next_begin_offset: h.next_begin_offset,
            min_offset: h.min_offset,
            max_offset: h.max_offset,
            suggest_which_broker_id: h.suggest_which_broker_id,
            messages,
        })
    }

    /// Stores the group's offset for `queue` on the broker (UPDATE_CONSUMER_OFFSET, waiting
    /// for the answer).
    pub async fn commit_offset(&self, queue: &MessageQueue, offset: i64) -> ClientResult<()> {
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
            commit_offset: offset,
        };
        let timeout = self.core().config.request_timeout;
        let (addr, resp) = self
            .invoke_broker(queue, RequestCode::UpdateConsumerOffset, &header, timeout)
            .await?;
        match resp.response_code() {
            Some(ResponseCode::Success) => Ok(()),
            _ => Err(ClientError::broker(&addr, resp.code, resp.remark)),
        }
    }

    /// The group's stored offset for `queue` (QUERY_CONSUMER_OFFSET); `None` when the
    /// broker has none (QUERY_NOT_FOUND).
    pub async fn fetch_offset(&self, queue: &MessageQueue) -> ClientResult<Option<i64>> {
        let header = QueryConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
            set_zero_if_not_found: None,
        };
        let timeout = self.core().config.request_timeout;
        let (addr, resp) = self
            .invoke_broker(queue, RequestCode::QueryConsumerOffset, &header, timeout)
            .await?;
        match resp.response_code() {
            Some(ResponseCode::Success) => offset_of(&addr, &resp).map(Some),
            Some(ResponseCode::QueryNotFound) => Ok(None),
            _ => Err(ClientError::broker(&addr, resp.code, resp.remark)),
        }
    }

    /// The queue's max offset (GET_MAX_OFFSET): the offset the next message will get.
    pub async fn max_offset(&self, queue: &MessageQueue) -> ClientResult<i64> {
        let header = GetMaxOffsetRequestHeader {
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
            committed: None,
        };
        self.offset_request(queue, RequestCode::GetMaxOffset, &header)
            .await
    }

    /// The queue's min offset (GET_MIN_OFFSET).
    pub async fn min_offset(&self, queue: &MessageQueue) -> ClientResult<i64> {
        let header = GetMinOffsetRequestHeader {
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
        };
        self.offset_request(queue, RequestCode::GetMinOffset, &header)
            .await
    }

    /// The first offset of `queue` whose message was stored at or after `timestamp_ms`
    /// (SEARCH_OFFSET_BY_TIMESTAMP).
    pub async fn search_offset(
        &self,
        queue: &MessageQueue,
        timestamp_ms: i64,
    ) -> ClientResult<i64> {
        let header = SearchOffsetRequestHeader {
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
            timestamp: timestamp_ms,
            boundary_type: None,
        };
        self.offset_request(queue, RequestCode::SearchOffsetByTimestamp, &header)
            .await
    }

    async fn offset_request<H: CommandHeader>(
        &self,
        queue: &MessageQueue,
        code: RequestCode,
        header: &H,
    ) -> ClientResult<i64> {
        let timeout = self.core().config.request_timeout;
        let (addr, resp) = self.invoke_broker(queue, code, header, timeout).await?;
        match resp.response_code() {
            Some(ResponseCode::Success) => offset_of(&addr, &resp),
            _ => Err(ClientError::broker(&addr, resp.code, resp.remark)),
        }
    }

    /// Sends a request to `queue`'s broker group; on a connection failure or a retryable
    /// "service not available / not leader" answer, refreshes the route and tries once more
    /// (possibly on a new leader). Returns the address that answered and its response.
    async fn invoke_broker<H: CommandHeader>(
        &self,
        queue: &MessageQueue,
        code: RequestCode,
        header: &H,
        timeout: Duration,
    ) -> ClientResult<(String, RemotingCommand)> {
        let core = self.core();
        let mut route = core.route(&queue.topic).await?;
        let mut refreshed = false;
        loop {
            let sent_at = tokio::time::Instant::now();
            let addr = route
                .read_addr(&queue.broker_name)
                .map(str::to_owned)
                .ok_or_else(|| ClientError::BrokerNotFound {
                    topic: queue.topic.clone(),
                    broker_name: queue.broker_name.clone(),
                })?;
            let req = RemotingCommand::request(code).with_header(header);
            let outcome = core.net.invoke_timeout(&addr, req, timeout).await;
            let moved = match &outcome {
                Err(ClientError::Connect { .. } | ClientError::ConnectionLost { .. }) => true,
                Ok(resp) => matches!(
                    resp.response_code(),
                    Some(ResponseCode::ServiceNotAvailable | ResponseCode::NotLeaderForQueue)
                ),
                Err(_) => false,
            };
            if !moved || refreshed {
                return outcome.map(|resp| (addr, resp));
            }
            refreshed = true;
            route = core.route_newer_than(&queue.topic, sent_at).await?;
        }
    }
}

impl Drop for PullConsumer {
    fn drop(&mut self) {
        self.instance.unregister_consumer_group(&self.group);
    }
}

fn offset_of(addr: &str, resp: &RemotingCommand) -> ClientResult<i64> {
    resp.decode_header::<OffsetResponseHeader>()
        .map(|h| h.offset)
        .map_err(|e| ClientError::BadResponse {
            addr: addr.to_owned(),
            reason: format!("offset response: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_expressions_parse_like_filter_api() {
        let s = Subscription::parse(" TagA || TagB ||  ");
        assert_eq!(s.tags.len(), 2);
        assert!(s.matches(Some("TagB")));
        assert!(!s.matches(Some("TagC")));
        assert!(!s.matches(None));
        let all = Subscription::parse("");
        assert_eq!(all.expression, "*");
        assert!(all.matches(None));
        let d = s.to_data("T");
        assert_eq!(d.code_set, vec![2598919, 2598920]);
        assert_eq!(d.expression_type, "TAG");
    }
}
