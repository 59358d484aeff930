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
//!    more times and within one overall `send_timeout`.
//!
//! Sends are at-least-once: a retry after a timeout may store the message twice (same
//! UNIQ_KEY). [`ClientError::is_indeterminate`] tells whether a failed send may have been
//! stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::remoting::body::MessageQueue;
use crate::remoting::header::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use crate::remoting::{RemotingCommand, RequestCode, ResponseCode};

use super::error::{ClientError, ClientResult};
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
        Ok(self.publish_route(topic, false).await?.write_queues())
    }

    /// Sends `msg` to a queue of its topic, retrying elsewhere on retryable failures.
    pub async fn send(&self, mut msg: Message) -> ClientResult<SendResult> {
        self.prepare(&mut msg)?;
        let deadline = Instant::now() + self.config.send_timeout;
        let attempts = 1 + self.config.retry_times_when_send_failed;
        let mut last_broker: Option<String> = None;
        let mut maybe_written = false;
        let mut last_err = None;
        let mut made = 0;
        for attempt in 0..attempts {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let route = match self.publish_route(&msg.topic, attempt > 0).await {
                Ok(r) => r,
                // Nothing was sent yet: report the route problem itself.
                Err(e) if made == 0 => return Err(e),
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            };
            let queues = route.write_queues();
            let Some(queue) = self.select_queue(&queues, last_broker.as_deref()) else {
                let e = ClientError::NoRoute {
                    topic: msg.topic.clone(),
                    reason: "the route has no writable queue with a leader".to_owned(),
                };
                if made == 0 {
                    return Err(e);
                }
                last_err = Some(e);
                break;
            };
            made += 1;
            match self.send_once(&route, &msg, &queue, remaining).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    maybe_written |= e.is_indeterminate();
                    let retry = e.is_retryable();
                    tracing::debug!(topic = %msg.topic, broker = %queue.broker_name,
                        queue = queue.queue_id, attempt, cause = %e, retry, "send attempt failed");
                    last_broker = Some(queue.broker_name.clone());
                    last_err = Some(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(self.send_failed(&msg.topic, made, maybe_written, last_err, deadline))
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
        let deadline = Instant::now() + self.config.send_timeout;
        let attempts = 1 + self.config.retry_times_when_send_failed;
        let mut maybe_written = false;
        let mut last_err = None;
        let mut made = 0;
        for attempt in 0..attempts {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let route = match self.publish_route(&msg.topic, attempt > 0).await {
                Ok(r) => r,
                Err(e) if made == 0 => return Err(e),
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            };
            made += 1;
            match self.send_once(&route, &msg, queue, remaining).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    maybe_written |= e.is_indeterminate();
                    let retry = e.is_retryable();
                    last_err = Some(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(self.send_failed(&msg.topic, made, maybe_written, last_err, deadline))
    }

    /// Sends `msg` without waiting for the broker (oneway): no result, no retry. An error
    /// means the request could not be written to a connection.
    pub async fn send_oneway(&self, mut msg: Message) -> ClientResult<()> {
        self.prepare(&mut msg)?;
        let route = self.publish_route(&msg.topic, false).await?;
        let queues = route.write_queues();
        let queue = self
            .select_queue(&queues, None)
            .ok_or_else(|| ClientError::NoRoute {
                topic: msg.topic.clone(),
                reason: "the route has no writable queue with a leader".to_owned(),
            })?;
        let addr = leader(&route, &queue)?;
        let req = self.request(&msg, &queue);
        self.core().net.invoke_oneway(&addr, req).await
    }

    fn prepare(&self, msg: &mut Message) -> ClientResult<()> {
        msg.validate()?;
        if msg.uniq_key().is_none() {
            msg.set_property(property::UNIQ_KEY, self.core().uniq.next_id());
        }
        Ok(())
    }

    /// The topic's route; with `refresh`, fetched anew. An unknown topic gets a provisional
    /// route built from the template topic when auto-creation is on.
    async fn publish_route(&self, topic: &str, refresh: bool) -> ClientResult<Arc<TopicRoute>> {
        let core = self.core();
        let found = if refresh {
            core.refresh_route(topic).await
        } else {
            core.route(topic).await
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
                    &template.data,
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

    fn request(&self, msg: &Message, queue: &MessageQueue) -> RemotingCommand {
        let header = SendMessageRequestHeader {
            producer_group: self.config.group.clone(),
            topic: msg.topic.clone(),
            default_topic: self.config.create_topic_key.clone(),
            default_topic_queue_nums: self.config.default_topic_queue_nums,
            queue_id: queue.queue_id,
            sys_flag: 0,
            born_timestamp: unix_millis(),
            flag: msg.flag,
            properties: Some(msg.encoded_properties()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            max_reconsume_times: None,
            batch: Some(false),
            broker_name: Some(queue.broker_name.clone()),
        };
        let code = RequestCode::SendMessageV2.code();
        let mut req = RemotingCommand::request(code).with_body(msg.body.clone());
        header.encode_ext(code, &mut req.ext_fields);
        req
    }

    async fn send_once(
        &self,
        route: &TopicRoute,
        msg: &Message,
        queue: &MessageQueue,
        timeout: Duration,
    ) -> ClientResult<SendResult> {
        let addr = leader(route, queue)?;
        let req = self.request(msg, queue);
        let resp = self.core().net.invoke_timeout(&addr, req, timeout).await?;
        let status = match resp.response_code() {
            Some(ResponseCode::Success) => SendStatus::SendOk,
            Some(ResponseCode::FlushDiskTimeout) => SendStatus::FlushDiskTimeout,
            Some(ResponseCode::FlushSlaveTimeout) => SendStatus::FlushSlaveTimeout,
            Some(ResponseCode::SlaveNotAvailable) => SendStatus::SlaveNotAvailable,
            _ => return Err(ClientError::broker(&addr, resp.code, resp.remark)),
        };
        let h: SendMessageResponseHeader =
            resp.decode_header().map_err(|e| ClientError::BadResponse {
                addr: addr.clone(),
                reason: format!("send response: {e}"),
            })?;
        Ok(SendResult {
            status,
            msg_id: msg.uniq_key().unwrap_or_default().to_owned(),
            offset_msg_id: h.msg_id,
            queue: MessageQueue::new(msg.topic.clone(), queue.broker_name.clone(), h.queue_id),
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
        tracing::warn!(topic, attempts, maybe_written, overdue = Instant::now() >= deadline,
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
