//! The producer: synchronous sends with SEND_MESSAGE_V2 (one-letter header keys), queue
//! selection, retries, and oneway sends.
//!
//! How a send proceeds (as the Java `DefaultMQProducer` does):
//! 1. the message is validated and gets a UNIQ_KEY if it has none;
//! 2. the topic's route comes from the cache or the nameservers; an unknown topic gets a
//!    provisional route from `TBW102` so the broker auto-creates it;
//! 3. a write queue is picked round-robin, avoiding the broker group of the previous failed
//!    attempt, and the request goes to that group's leader (brokerId 0);
//! 4. on a retryable failure (connection failure, timeout, a follower's "not leader" answer
//!    SERVICE_NOT_AVAILABLE, TOPIC_NOT_EXIST, SYSTEM_ERROR/BUSY, NO_PERMISSION, 501) the
//!    route is refreshed and the send is retried, at most `retry_times_when_send_failed`
//!    more times and within one overall `send_timeout`: on the leader the refusing node
//!    named in its remark (if the route lists that address in the same group), else on
//!    another broker group, else on the same group after `retry_backoff`.
//!
//! Batches (SEND_BATCH_MESSAGE, §5.6) go through the same loop.
//!
//! Sends are at-least-once: a retry after a timeout may store the message twice (same
//! UNIQ_KEY). [`ClientError::is_indeterminate`] tells whether a failed send may have been
//! stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::remoting::body::MessageQueue;
use crate::remoting::header::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use crate::remoting::{RemotingCommand, RequestCode, ResponseCode};

use super::error::{BrokerErrorKind, ClientError, ClientResult};
use super::message::{unix_millis, Message};
use super::route::{TopicRoute, DEFAULT_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS};
use super::{ClientConfig, ClientCore, ClientInstance};

use raftmq_store::message::property;

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Producer group (sent with every message and in heartbeats).
    pub group: String,
    /// Budget for one send, retries included. Default 3 s.
    pub send_timeout: Duration,
    /// Extra attempts after a retryable failure. Default 2 (Java's default).
    pub retry_times_when_send_failed: u32,
    /// Whether an unknown topic is sent with a provisional route from
    /// [`create_topic_key`](Self::create_topic_key) so the broker auto-creates it.
    pub auto_create_topic: bool,
    /// Template topic for auto-creation. Default `TBW102`.
    pub create_topic_key: String,
    /// Queue count asked for when a topic is auto-created. Default 4.
    pub default_topic_queue_nums: i32,
    /// Pause before retrying on the same broker group (no other group to try and no leader
    /// named by the refusing node), so a retry can outlast a leader election. Default 100 ms.
    pub retry_backoff: Duration,
}

impl ProducerConfig {
    /// Defaults for producer group `group`.
    pub fn new(group: impl Into<String>) -> Self {
        ProducerConfig {
            group: group.into(),
            send_timeout: Duration::from_secs(3),
            retry_times_when_send_failed: 2,
            auto_create_topic: true,
            create_topic_key: DEFAULT_TOPIC.to_owned(),
            default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// How the broker stored a message (`SendStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendStatus {
    /// Stored (for raftmq: committed on a majority).
    SendOk,
    /// Stored, but the flush to disk did not finish in time (code 10).
    FlushDiskTimeout,
    /// Stored, but the replica did not confirm in time (code 12).
    FlushSlaveTimeout,
    /// Stored, but no replica was available (code 11).
    SlaveNotAvailable,
}

/// The outcome of a successful send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// How the broker stored the message.
    pub status: SendStatus,
    /// The client-generated id (UNIQ_KEY); comma-joined for a batch.
    pub msg_id: String,
    /// The broker's id: store host + commitlog offset (§6.1).
    pub offset_msg_id: String,
    /// The queue that took the message (queue id as the broker reports it).
    pub queue: MessageQueue,
    /// Offset of the message in that queue.
    pub queue_offset: i64,
    /// Broker's `transactionId` (its copy of the UNIQ_KEY), if sent.
    pub transaction_id: Option<String>,
    /// Broker's region id (`MSG_REGION`), if sent.
    pub region_id: Option<String>,
}

/// A producer. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct Producer {
    instance: ClientInstance,
    config: ProducerConfig,
    next_queue: AtomicUsize,
}

impl Producer {
    /// Starts a client instance of its own and a producer on it.
    pub async fn start(client: ClientConfig, config: ProducerConfig) -> ClientResult<Producer> {
        Self::with_instance(ClientInstance::start(client)?, config)
    }

    /// A producer on an existing client instance (shared connections and routes).
    pub fn with_instance(
        instance: ClientInstance,
        config: ProducerConfig,
    ) -> ClientResult<Producer> {
        if config.group.is_empty() {
            return Err(ClientError::Config("producer group is empty".to_owned()));
        }
        if config.send_timeout.is_zero() {
            return Err(ClientError::Config(
                "send_timeout must be positive".to_owned(),
            ));
        }
        instance.register_producer_group(&config.group);
        Ok(Producer {
            instance,
            config,
            next_queue: AtomicUsize::new(0),
        })
    }

    /// The client instance this producer uses.
    pub fn instance(&self) -> &ClientInstance {
        &self.instance
    }

    /// The producer settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    fn core(&self) -> &Arc<ClientCore> {
        self.instance.core()
    }

    /// The queues a send to `topic` may use.
    pub async fn fetch_publish_queues(&self, topic: &str) -> ClientResult<Vec<MessageQueue>> {
        Ok(self
            .publish_route(topic, None)
            .await?
            .write_queues()
            .to_vec())
    }

    /// Sends `msg` to a queue of its topic, retrying elsewhere on retryable failures.
    pub async fn send(&self, mut msg: Message) -> ClientResult<SendResult> {
        self.prepare(&mut msg)?;
        self.send_payload(&Payload::Single(msg), None).await
    }

    /// Sends `msg` to one queue. Retryable failures are retried on the same queue after a
    /// route refresh (the group may have a new leader), within the send timeout.
    pub async fn send_to_queue(
        &self,
        mut msg: Message,
        queue: &MessageQueue,
    ) -> ClientResult<SendResult> {
        self.prepare(&mut msg)?;
        if queue.topic != msg.topic {
            return Err(ClientError::InvalidMessage {
                topic: msg.topic.clone(),
                reason: format!("queue belongs to topic {:?}", queue.topic),
            });
        }
        self.send_payload(&Payload::Single(msg), Some(queue)).await
    }

    /// Sends messages of one topic as one SEND_BATCH_MESSAGE (320): stored consecutively in
    /// one queue. The result's `msg_id` and `offset_msg_id` are comma-joined, one id per
    /// message in order; `queue_offset` is the first message's. Delayed messages are refused.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> ClientResult<SendResult> {
        let payload = self.batch_payload(msgs)?;
        self.send_payload(&payload, None).await
    }

    /// As [`send_batch`](Self::send_batch), to one queue.
    pub async fn send_batch_to_queue(
        &self,
        msgs: Vec<Message>,
        queue: &MessageQueue,
    ) -> ClientResult<SendResult> {
        let payload = self.batch_payload(msgs)?;
        if queue.topic != payload.topic() {
            return Err(ClientError::InvalidMessage {
                topic: payload.topic().to_owned(),
                reason: format!("queue belongs to topic {:?}", queue.topic),
            });
        }
        self.send_payload(&payload, Some(queue)).await
    }

    /// Sends `msg` without waiting for the broker (oneway): no result, no retry. An error
    /// means the request could not be written to a connection.
    pub async fn send_oneway(&self, mut msg: Message) -> ClientResult<()> {
        self.prepare(&mut msg)?;
        let route = self.publish_route(&msg.topic, None).await?;
        let queues = route.write_queues();
        let queue = self
            .select_queue(queues, None)
            .ok_or_else(|| ClientError::NoRoute {
                topic: msg.topic.clone(),
                reason: "the route has no writable queue with a leader".to_owned(),
            })?;
        let addr = leader(&route, &queue)?;
        let req = Payload::Single(msg).request(&self.config, &queue);
        self.core().net.invoke_oneway(&addr, req).await
    }

    /// The send loop shared by every synchronous send: route, queue (`fixed` or
    /// round-robin), leader, attempt. On a retryable failure the next attempt uses a route
    /// fetched after the failure and goes to the leader the refusing node named, else to
    /// another group if there is one, else to the same group after `retry_backoff`. A route
    /// without a leader for the wanted group (an election in progress) also waits
    /// `retry_backoff` and looks again.
    async fn send_payload(
        &self,
        payload: &Payload,
        fixed: Option<&MessageQueue>,
    ) -> ClientResult<SendResult> {
        let topic = payload.topic();
        let deadline = Instant::now() + self.config.send_timeout;
        let attempts = 1 + self.config.retry_times_when_send_failed;
        let mut last_broker: Option<String> = None;
        let mut hint: Option<(MessageQueue, String)> = None;
        let mut maybe_written = false;
        let mut last_err = None;
        let mut made = 0;
        // When the last failure was seen: a retry needs a route fetched after it.
        let mut failed_at: Option<Instant> = None;
        for attempt in 0..attempts {
            let is_last = attempt + 1 == attempts;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let route = match self.publish_route(topic, failed_at).await {
                Ok(r) => r,
                // Nothing was sent yet: report the route problem itself.
                Err(e) if made == 0 => return Err(e),
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            };
            let target = match hint.take() {
                Some(h) => Ok(h),
                None => self.pick_target(&route, topic, fixed, last_broker.as_deref()),
            };
            let (queue, addr) = match target {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(topic, attempt, cause = %e, "no leader to send to");
                    failed_at = Some(Instant::now());
                    last_err = Some(e);
                    if !is_last {
                        self.backoff(deadline).await;
                    }
                    continue;
                }
            };
            made += 1;
            let err = match self.send_once(&addr, payload, &queue, remaining).await {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            failed_at = Some(Instant::now());
            maybe_written |= err.is_indeterminate();
            let retry = err.is_retryable();
            tracing::debug!(topic, broker = %queue.broker_name, %addr, queue = queue.queue_id,
                attempt, cause = %err, retry, "send attempt failed");
            if !retry {
                last_err = Some(err);
                break;
            }
            if let Some(to) = leader_hint(&err, &route, &queue.broker_name, &addr) {
                tracing::debug!(topic, broker = %queue.broker_name, leader = %to, "following the leader hint");
                hint = Some((queue.clone(), to));
            } else {
                let elsewhere = fixed.is_none()
                    && route
                        .write_queues()
                        .iter()
                        .any(|q| q.broker_name != queue.broker_name);
                if !elsewhere && !is_last {
                    self.backoff(deadline).await;
                }
            }
            last_broker = Some(queue.broker_name.clone());
            last_err = Some(err);
        }
        match last_err {
            // No attempt reached a broker: the route problem is the answer.
            Some(e) if made == 0 => Err(e),
            last => Err(self.send_failed(topic, made, maybe_written, last, deadline)),
        }
    }

    /// The queue and leader address for the next attempt.
    fn pick_target(
        &self,
        route: &TopicRoute,
        topic: &str,
        fixed: Option<&MessageQueue>,
        avoid: Option<&str>,
    ) -> ClientResult<(MessageQueue, String)> {
        let queue = match fixed {
            Some(q) => q.clone(),
            None => self
                .select_queue(route.write_queues(), avoid)
                .ok_or_else(|| ClientError::NoRoute {
                    topic: topic.to_owned(),
                    reason: "the route has no writable queue with a leader".to_owned(),
                })?,
        };
        let addr = leader(route, &queue)?;
        Ok((queue, addr))
    }

    /// Sleeps `retry_backoff`, or until the deadline if that is sooner.
    async fn backoff(&self, deadline: Instant) {
        let pause = self
            .config
            .retry_backoff
            .min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
    }

    /// Validates a batch and builds its wire body (protocol.md §5.6).
    fn batch_payload(&self, mut msgs: Vec<Message>) -> ClientResult<Payload> {
        let Some(first) = msgs.first() else {
            return Err(ClientError::InvalidMessage {
                topic: String::new(),
                reason: "empty batch".to_owned(),
            });
        };
        let topic = first.topic.clone();
        let mut body = Vec::new();
        let mut ids = Vec::with_capacity(msgs.len());
        for m in &mut msgs {
            self.prepare(m)?;
            let bad = |reason: &str| ClientError::InvalidMessage {
                topic: m.topic.clone(),
                reason: reason.to_owned(),
            };
            if m.topic != topic {
                return Err(bad("a batch must have one topic"));
            }
            if m.property(super::message::PROPERTY_DELAY).is_some() {
                return Err(bad("delayed messages cannot be batched"));
            }
            let props = m.encoded_properties();
            let total = 4 + 4 + 4 + 4 + 4 + m.body.len() + 2 + props.len();
            body.extend_from_slice(&(total as i32).to_be_bytes());
            body.extend_from_slice(&0i32.to_be_bytes()); // MAGICCODE
            body.extend_from_slice(&0i32.to_be_bytes()); // BODYCRC: the broker computes it
            body.extend_from_slice(&m.flag.to_be_bytes());
            body.extend_from_slice(&(m.body.len() as i32).to_be_bytes());
            body.extend_from_slice(&m.body);
            body.extend_from_slice(&(props.len() as i16).to_be_bytes());
            body.extend_from_slice(props.as_bytes());
            ids.push(m.uniq_key().unwrap_or_default().to_owned());
        }
        if body.len() > super::message::MAX_BODY_SIZE {
            return Err(ClientError::InvalidMessage {
                topic,
                reason: format!(
                    "batch of {} bytes exceeds {}",
                    body.len(),
                    super::message::MAX_BODY_SIZE
                ),
            });
        }
        Ok(Payload::Batch {
            topic,
            body: Bytes::from(body),
            msg_id: ids.join(","),
        })
    }

    /// Stops heartbeating this producer and tells the brokers (UNREGISTER_CLIENT)
    /// (when this was the instance's last producer of the group).
    pub async fn shutdown(self) {
        let core = self.core().clone();
        let group = self.config.group.clone();
        // Dropping removes this producer from the heartbeats.
        drop(self);
        if !core.has_producer_group(&group) {
            core.unregister_client(Some(&group), None).await;
        }
    }

    fn prepare(&self, msg: &mut Message) -> ClientResult<()> {
        msg.validate()?;
        if msg.uniq_key().is_none() {
            msg.set_property(property::UNIQ_KEY, self.core().uniq.next_id());
        }
        Ok(())
    }

    /// The topic's route; with `newer_than`, one fetched after that instant. An unknown
    /// topic gets a provisional route built from the template topic when auto-creation is on.
    async fn publish_route(
        &self,
        topic: &str,
        newer_than: Option<Instant>,
    ) -> ClientResult<Arc<TopicRoute>> {
        let core = self.core();
        let found = match newer_than {
            Some(since) => core.route_newer_than(topic, since).await,
            None => core.route(topic).await,
        };
        match found {
            Err(ClientError::TopicNotExist { .. }) if self.config.auto_create_topic => {
                let template = core
                    .route(&self.config.create_topic_key)
                    .await
                    .map_err(|e| ClientError::NoRoute {
                        topic: topic.to_owned(),
                        reason: format!(
                            "unknown topic, and no route for template {:?}: {e}",
                            self.config.create_topic_key
                        ),
                    })?;
                let route = TopicRoute::provisional(
                    topic,
                    template.data(),
                    self.config.default_topic_queue_nums,
                );
                core.routes.insert(route);
                core.routes
                    .cached(topic)
                    .ok_or_else(|| ClientError::NoRoute {
                        topic: topic.to_owned(),
                        reason: "route vanished from the cache".to_owned(),
                    })
            }
            other => other,
        }
    }

    /// Round-robin over `queues`, skipping `avoid`'s queues when another group has some.
    fn select_queue(&self, queues: &[MessageQueue], avoid: Option<&str>) -> Option<MessageQueue> {
        if queues.is_empty() {
            return None;
        }
        let start = self.next_queue.fetch_add(1, Ordering::Relaxed);
        if let Some(avoid) = avoid {
            for i in 0..queues.len() {
                let q = &queues[(start + i) % queues.len()];
                if q.broker_name != avoid {
                    return Some(q.clone());
                }
            }
        }
        Some(queues[start % queues.len()].clone())
    }

    async fn send_once(
        &self,
        addr: &str,
        payload: &Payload,
        queue: &MessageQueue,
        timeout: Duration,
    ) -> ClientResult<SendResult> {
        let req = payload.request(&self.config, queue);
        let resp = self.core().net.invoke_timeout(addr, req, timeout).await?;
        let status = match resp.response_code() {
            Some(ResponseCode::Success) => SendStatus::SendOk,
            Some(ResponseCode::FlushDiskTimeout) => SendStatus::FlushDiskTimeout,
            Some(ResponseCode::FlushSlaveTimeout) => SendStatus::FlushSlaveTimeout,
            Some(ResponseCode::SlaveNotAvailable) => SendStatus::SlaveNotAvailable,
            _ => return Err(ClientError::broker(addr, resp.code, resp.remark)),
        };
        let h: SendMessageResponseHeader =
            resp.decode_header().map_err(|e| ClientError::BadResponse {
                addr: addr.to_owned(),
                reason: format!("send response: {e}"),
            })?;
        Ok(SendResult {
            status,
            msg_id: payload.msg_id().to_owned(),
            offset_msg_id: h.msg_id,
            queue: MessageQueue::new(payload.topic(), queue.broker_name.clone(), h.queue_id),
            queue_offset: h.queue_offset,
            transaction_id: h.transaction_id,
            region_id: h.msg_region,
        })
    }

    fn send_failed(
        &self,
        topic: &str,
        attempts: u32,
        maybe_written: bool,
        last: Option<ClientError>,
        deadline: Instant,
    ) -> ClientError {
        let last = last.unwrap_or_else(|| ClientError::Timeout {
            addr: String::new(),
            code: RequestCode::SendMessageV2.code(),
            timeout: self.config.send_timeout,
        });
        tracing::debug!(topic, attempts, maybe_written, overdue = Instant::now() >= deadline,
            cause = %last, "send failed");
        ClientError::SendFailed {
            topic: topic.to_owned(),
            attempts,
            maybe_written,
            last: Box::new(last),
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.instance.unregister_producer_group(&self.config.group);
    }
}

/// What one send request carries: a message, or a batch already encoded.
#[derive(Debug)]
enum Payload {
    Single(Message),
    Batch {
        topic: String,
        body: Bytes,
        /// Comma-joined UNIQ_KEYs.
        msg_id: String,
    },
}

impl Payload {
    fn topic(&self) -> &str {
        match self {
            Payload::Single(m) => &m.topic,
            Payload::Batch { topic, .. } => topic,
        }
    }

    fn msg_id(&self) -> &str {
        match self {
            Payload::Single(m) => m.uniq_key().unwrap_or_default(),
            Payload::Batch { msg_id, .. } => msg_id,
        }
    }

    /// The SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE request for `queue`.
    fn request(&self, config: &ProducerConfig, queue: &MessageQueue) -> RemotingCommand {
        let (code, flag, properties, body, batch) = match self {
            Payload::Single(m) => (
                RequestCode::SendMessageV2.code(),
                m.flag,
                m.encoded_properties(),
                m.body.clone(),
                false,
            ),
            Payload::Batch { body, .. } => (
                RequestCode::SendBatchMessage.code(),
                0,
                format!("{}\u{1}true\u{2}", property::WAIT),
                body.clone(),
                true,
            ),
        };
        let header = SendMessageRequestHeader {
            producer_group: config.group.clone(),
            topic: self.topic().to_owned(),
            default_topic: config.create_topic_key.clone(),
            default_topic_queue_nums: config.default_topic_queue_nums,
            queue_id: queue.queue_id,
            sys_flag: 0,
            born_timestamp: unix_millis(),
            flag,
            properties: Some(properties),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            max_reconsume_times: None,
            batch: Some(batch),
            broker_name: Some(queue.broker_name.clone()),
        };
        let mut req = RemotingCommand::request(code).with_body(body);
        header.encode_ext(code, &mut req.ext_fields);
        req
    }
}

/// The leader a refusing node named: an `ip:port` in the remark of a "service not
/// available" / "not leader" answer that the route lists as another member of the same
/// group (so a remark can never send the client to an unknown address).
fn leader_hint(err: &ClientError, route: &TopicRoute, group: &str, tried: &str) -> Option<String> {
    let ClientError::Broker { kind, remark, .. } = err else {
        return None;
    };
    if !matches!(
        kind,
        BrokerErrorKind::ServiceNotAvailable | BrokerErrorKind::NotLeader
    ) {
        return None;
    }
    let members = route
        .data()
        .broker_datas
        .iter()
        .find(|b| b.broker_name == group)?;
    remark
        .split(|c: char| c.is_whitespace() || ",;()[]\"'<>=".contains(c))
        .filter(|t| t.parse::<std::net::SocketAddr>().is_ok())
        .find(|t| *t != tried && members.broker_addrs.values().any(|a| a == t))
        .map(str::to_owned)
}

/// The leader address of `queue`'s broker group.
fn leader(route: &TopicRoute, queue: &MessageQueue) -> ClientResult<String> {
    route
        .leader_addr(&queue.broker_name)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::BrokerNotFound {
            topic: queue.topic.clone(),
            broker_name: queue.broker_name.clone(),
        })
}
