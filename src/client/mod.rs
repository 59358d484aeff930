//! A minimal RocketMQ client over the remoting protocol: a producer with synchronous sends and
//! a pull consumer with offset commits. Used by the project's end-to-end tests, `raftmq bench`
//! and the chaos harness; it speaks to any RocketMQ-compatible broker and nameserver.
//!
//! Layout:
//! - [`ClientInstance`] (this module): what producers and consumers of one process share —
//!   nameserver list, connections per address, the route cache and a background task
//!   (owned by a guard, stopped when the last handle drops) that refreshes routes and sends
//!   HEART_BEAT for every registered group. Producers and consumers register their groups
//!   here, and broker-initiated requests (NOTIFY_CONSUMER_IDS_CHANGED) arrive as
//!   [`ClientEvent`]s, so push consumers and rebalancing can be added as further users of
//!   the instance.
//! - [`route`]: GET_ROUTEINFO_BY_TOPIC, the route cache, leader (brokerId 0) addresses and
//!   the write/read queues of a topic.
//! - [`producer`]: [`Producer`] — SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE with round-robin
//!   queue selection; retries on another group, on the leader a refusing node names, or on
//!   a new leader after a route refresh; oneway sends.
//! - [`consumer`]: [`PullConsumer`] — PULL_MESSAGE (tag subscriptions, long polling),
//!   consumer offsets (query/update), min/max queue offsets, offset by timestamp.
//! - [`query`]: message lookups by offsetMsgId and by key / UNIQ_KEY on a [`ClientInstance`].
//! - [`message`]: [`Message`], [`MessageExt`] (decoded with the store crate's stored-message
//!   codec) and the UNIQ_KEY generator.
//! - [`error`]: [`ClientError`], with broker codes classified by [`BrokerErrorKind`].
//!
//! It knows the wire (through `remoting`) and the nameserver's route body types (through
//! `namesrv::bodies`); it knows nothing of the broker's internals.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftmq::client::ClientError> {
//! use raftmq::client::*;
//! use std::time::Duration;
//!
//! let producer = Producer::start(ClientConfig::new("127.0.0.1:9876"), ProducerConfig::new("PG")).await?;
//! let sent = producer.send(Message::new("TopicTest", "hello").with_tags("TagA")).await?;
//!
//! let consumer = PullConsumer::start(ClientConfig::new("127.0.0.1:9876"), "CG").await?;
//! consumer.subscribe("TopicTest", "TagA")?;
//! let got = consumer.pull(&sent.queue, sent.queue_offset, 32, Duration::from_secs(3)).await?;
//! consumer.commit_offset(&sent.queue, got.next_begin_offset).await?;
//! # Ok(()) }
//! ```

pub mod consumer;
pub mod error;
pub mod message;
pub mod producer;
pub mod query;
pub mod route;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::remoting::body::{ConsumerData, HeartbeatData, ProducerData};
use crate::remoting::header::client::{
    NotifyConsumerIdsChangedRequestHeader, UnregisterClientRequestHeader,
};
use crate::remoting::{
    self, json, BoxFuture, ConnContext, ProcessResult, Processor, RemotingClient, RemotingCommand,
    RequestCode, ResponseCode, SerializeType,
};

pub use consumer::{PullConsumer, PullResult, PullStatus};
pub use error::{BrokerErrorKind, ClientError, ClientResult};
pub use message::{Message, MessageExt, UniqIdGenerator};
pub use producer::{Producer, ProducerConfig, SendResult, SendStatus};
pub use remoting::body::MessageQueue;
use route::RouteTable;
pub use route::TopicRoute;

/// Settings shared by every producer and consumer of one [`ClientInstance`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Nameserver addresses (`host:port`), tried in turn.
    pub namesrv_addrs: Vec<String>,
    /// Address put in the client id and in UNIQ_KEYs. Default 127.0.0.1.
    pub client_ip: IpAddr,
    /// Second part of the client id (`ip@instance`). Default `<pid>#<nanos>`, unique per
    /// instance, as Java's default instance name.
    pub instance_name: String,
    /// Timeout of nameserver requests, heartbeats and offset requests. Default 3 s.
    pub request_timeout: Duration,
    /// Route refresh period (also the maximum age of a cached route). Default 30 s.
    pub route_refresh_interval: Duration,
    /// Heartbeat period. Default 30 s.
    pub heartbeat_interval: Duration,
    /// Header encoding of every request (responses come back in the same one). Default
    /// JSON, as Java's (`rocketmq.serialize.type`); `RocketMq` is the compact binary header
    /// that RocketMQ brokers and nameservers also accept, cheaper to encode and parse.
    pub serialize_type: SerializeType,
    /// Connection settings for every address.
    pub remoting: remoting::ClientConfig,
}

impl ClientConfig {
    /// Defaults with the nameservers of `namesrv`, a `;`-separated list as in
    /// `namesrvAddr` (`127.0.0.1:9876;127.0.0.1:9877`).
    pub fn new(namesrv: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        ClientConfig {
            namesrv_addrs: namesrv
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            instance_name: format!("{}#{}", std::process::id(), nanos),
            request_timeout: Duration::from_secs(3),
            route_refresh_interval: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(30),
            serialize_type: SerializeType::Json,
            remoting: remoting::ClientConfig::default(),
        }
    }

    fn validate(&self) -> ClientResult<()> {
        if self.namesrv_addrs.is_empty() {
            return Err(ClientError::Config("no nameserver address".to_owned()));
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("route_refresh_interval", self.route_refresh_interval),
            ("heartbeat_interval", self.heartbeat_interval),
        ] {
            if d.is_zero() {
                return Err(ClientError::Config(format!("{name} must be positive")));
            }
        }
        Ok(())
    }
}

/// What brokers tell a client on their own initiative, delivered to
/// [`ClientInstance::events`] subscribers (a push consumer rebalances on these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// NOTIFY_CONSUMER_IDS_CHANGED: the membership of a consumer group changed.
    ConsumerIdsChanged {
        /// The group.
        group: String,
        /// The broker that said so.
        broker: String,
    },
}

/// Answers the requests brokers send to clients: NOTIFY_CONSUMER_IDS_CHANGED becomes a
/// [`ClientEvent`]; everything else is REQUEST_CODE_NOT_SUPPORTED (this client has no
/// transactions and no running-info dump yet).
#[derive(Debug)]
struct ServerRequests {
    events: broadcast::Sender<ClientEvent>,
}

impl Processor for ServerRequests {
    fn process<'a>(
        &'a self,
        ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        Box::pin(async move {
            if req.code == RequestCode::NotifyConsumerIdsChanged.code() {
                let h: NotifyConsumerIdsChangedRequestHeader = req.decode_header()?;
                tracing::debug!(group = %h.consumer_group, broker = %ctx.peer_addr(), "consumer ids changed");
                // No subscriber is fine: nobody rebalances yet.
                let _ = self.events.send(ClientEvent::ConsumerIdsChanged {
                    group: h.consumer_group,
                    broker: ctx.peer_addr().to_string(),
                });
                return Ok(Some(RemotingCommand::response_to(&req)));
            }
            Ok(Some(RemotingCommand::not_supported(&req)))
        })
    }
}

/// Connections by address and the request helpers every module uses.
#[derive(Debug)]
pub(crate) struct Transport {
    remoting: remoting::ClientConfig,
    serialize_type: SerializeType,
    timeout: Duration,
    clients: Mutex<HashMap<String, Arc<RemotingClient>>>,
    /// Wakes the background task to heartbeat at once (a route brought new brokers).
    wake: Arc<Notify>,
    /// Serves broker-initiated requests on every connection.
    handler: Arc<ServerRequests>,
}

impl Transport {
    fn client(&self, addr: &str) -> Arc<RemotingClient> {
        let mut clients = lock(&self.clients);
        if let Some(c) = clients.get(addr) {
            return c.clone();
        }
        clients
            .entry(addr.to_owned())
            .or_insert_with(|| {
                Arc::new(RemotingClient::with_handler(
                    addr,
                    self.remoting.clone(),
                    self.handler.clone(),
                ))
            })
            .clone()
    }

    /// Request with the default timeout.
    pub(crate) async fn invoke(
        &self,
        addr: &str,
        cmd: RemotingCommand,
    ) -> ClientResult<RemotingCommand> {
        self.invoke_timeout(addr, cmd, self.timeout).await
    }

    /// Request with an explicit timeout covering connect and answer. A connect that does
    /// not finish in time is a [`ClientError::Connect`]: nothing was sent.
    pub(crate) async fn invoke_timeout(
        &self,
        addr: &str,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> ClientResult<RemotingCommand> {
        cmd.serialize_type = self.serialize_type;
        let code = cmd.code;
        let start = tokio::time::Instant::now();
        let conn = match tokio::time::timeout(timeout, self.client(addr).connection()).await {
            Ok(conn) => conn.map_err(|e| ClientError::from_remoting(addr, code, e))?,
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.to_owned(),
                    reason: format!("not connected within {timeout:?}"),
                })
            }
        };
        let left = timeout.saturating_sub(start.elapsed());
        conn.invoke(cmd, left)
            .await
            .map_err(|e| ClientError::from_remoting(addr, code, e))
    }

    /// Oneway request.
    pub(crate) async fn invoke_oneway(
        &self,
        addr: &str,
        mut cmd: RemotingCommand,
    ) -> ClientResult<()> {
        cmd.serialize_type = self.serialize_type;
        let code = cmd.code;
        self.client(addr)
            .invoke_oneway(cmd)
            .await
            .map_err(|e| ClientError::from_remoting(addr, code, e))
    }

    pub(crate) fn wake_heartbeat(&self) {
        self.wake.notify_one();
    }
}

/// State shared by the handles of one instance.
#[derive(Debug)]
pub(crate) struct ClientCore {
    pub(crate) config: ClientConfig,
    pub(crate) client_id: String,
    pub(crate) net: Transport,
    pub(crate) routes: RouteTable,
    pub(crate) uniq: UniqIdGenerator,
    /// Producer groups and how many producers of this instance use each.
    producer_groups: Mutex<BTreeMap<String, usize>>,
    consumer_groups: Mutex<BTreeMap<String, ConsumerData>>,
}

impl ClientCore {
    /// Route of `topic` from the cache or the nameservers.
    pub(crate) async fn route(&self, topic: &str) -> ClientResult<Arc<TopicRoute>> {
        self.routes.get(&self.net, topic).await
    }

    /// Route of `topic` fetched now (falls back to the cached one if nameservers are down).
    pub(crate) async fn refresh_route(&self, topic: &str) -> ClientResult<Arc<TopicRoute>> {
        self.routes.refresh(&self.net, topic).await
    }

    /// Route of `topic` fetched after `since` (a failure seen at `since` needs a newer
    /// route); concurrent callers share one lookup.
    pub(crate) async fn route_newer_than(
        &self,
        topic: &str,
        since: tokio::time::Instant,
    ) -> ClientResult<Arc<TopicRoute>> {
        self.routes
            .refresh_if_older(&self.net, topic, since.into_std())
            .await
    }

    /// Whether some producer of this instance is in `group`.
    pub(crate) fn has_producer_group(&self, group: &str) -> bool {
        lock(&self.producer_groups).contains_key(group)
    }

    fn heartbeat_data(&self) -> HeartbeatData {
        HeartbeatData {
            client_id: self.client_id.clone(),
            producer_data_set: lock(&self.producer_groups)
                .keys()
                .map(|g| ProducerData {
                    group_name: g.clone(),
                })
                .collect(),
            consumer_data_set: lock(&self.consumer_groups).values().cloned().collect(),
            heartbeat_fingerprint: None,
            without_sub: None,
        }
    }

    /// Sends HEART_BEAT to every broker in the cached routes (leaders only when this
    /// instance has no consumer group, as the Java client does). Returns how many brokers
    /// acknowledged it.
    pub(crate) async fn send_heartbeats(&self) -> usize {
        let data = self.heartbeat_data();
        if data.producer_data_set.is_empty() && data.consumer_data_set.is_empty() {
            return 0;
        }
        let body = match json::to_vec(&data) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(cause = %e, "cannot encode heartbeat");
                return 0;
            }
        };
        let leaders_only = data.consumer_data_set.is_empty();
        let addrs: BTreeSet<String> = self
            .routes
            .all()
            .iter()
            .flat_map(|r| r.broker_addrs(leaders_only))
            .collect();
        let mut ok = 0;
        for addr in addrs {
            let req = RemotingCommand::request(RequestCode::HeartBeat).with_body(body.clone());
            match self.net.invoke(&addr, req).await {
                Ok(resp) if resp.response_code() == Some(ResponseCode::Success) => ok += 1,
                Ok(resp) => {
                    tracing::debug!(broker = %addr, code = resp.code, remark = ?resp.remark, "heartbeat refused")
                }
                Err(e) => tracing::debug!(broker = %addr, cause = %e, "heartbeat failed"),
            }
        }
        ok
    }

    /// Sends UNREGISTER_CLIENT for a group to the brokers of the cached routes (leaders only
    /// for a producer group), so they drop this client at once instead of after 120 s.
    pub(crate) async fn unregister_client(
        &self,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) {
        let header = UnregisterClientRequestHeader {
            client_id: self.client_id.clone(),
            producer_group: producer_group.map(str::to_owned),
            consumer_group: consumer_group.map(str::to_owned),
        };
        let leaders_only = consumer_group.is_none();
        let addrs: BTreeSet<String> = self
            .routes
            .all()
            .iter()
            .flat_map(|r| r.broker_addrs(leaders_only))
            .collect();
        for addr in addrs {
            let req = RemotingCommand::request(RequestCode::UnregisterClient).with_header(&header);
            if let Err(e) = self.net.invoke(&addr, req).await {
                tracing::debug!(broker = %addr, cause = %e, "unregister failed");
            }
        }
    }

    async fn refresh_all_routes(&self) {
        for topic in self.routes.topics() {
            if let Err(e) = self.refresh_route(&topic).await {
                tracing::debug!(topic, cause = %e, "periodic route refresh failed");
            }
        }
    }
}

/// Aborts the background task when dropped.
#[derive(Debug)]
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A client instance: connections, route cache and the periodic route refresh and
/// heartbeat. Cheap to clone; the background task stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct ClientInstance {
    core: Arc<ClientCore>,
    _task: Arc<TaskGuard>,
}

impl ClientInstance {
    /// Validates `config` and starts the background task. Must be called inside a tokio
    /// runtime. Nothing is connected until the first request.
    pub fn start(config: ClientConfig) -> ClientResult<ClientInstance> {
        config.validate()?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ClientError::Config("a client instance must be started inside a tokio runtime".into())
        })?;
        let wake = Arc::new(Notify::new());
        let ip = message::ipv4_of(config.client_ip);
        let core = Arc::new(ClientCore {
            client_id: format!("{}@{}", config.client_ip, config.instance_name),
            net: Transport {
                remoting: config.remoting.clone(),
                serialize_type: config.serialize_type,
                timeout: config.request_timeout,
                clients: Mutex::new(HashMap::new()),
                wake: wake.clone(),
                handler: Arc::new(ServerRequests {
                    events: broadcast::channel(64).0,
                }),
            },
            routes: RouteTable::new(config.namesrv_addrs.clone(), config.route_refresh_interval),
            uniq: UniqIdGenerator::new(ip),
            producer_groups: Mutex::new(BTreeMap::new()),
            consumer_groups: Mutex::new(BTreeMap::new()),
            config,
        });
        let task = handle.spawn(background(Arc::downgrade(&core), wake));
        Ok(ClientInstance {
            core,
            _task: Arc::new(TaskGuard(task)),
        })
    }

    /// Events brokers push to this client (NOTIFY_CONSUMER_IDS_CHANGED, ...). A receiver
    /// that falls more than 64 events behind loses the oldest ones.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.core.net.handler.events.subscribe()
    }

    /// This client's id (`ip@instanceName`), as brokers see it in heartbeats.
    pub fn client_id(&self) -> &str {
        &self.core.client_id
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.core.config
    }

    /// The route of `topic` (cached while fresh).
    pub async fn route(&self, topic: &str) -> ClientResult<Arc<TopicRoute>> {
        self.core.route(topic).await
    }

    /// Re-fetches the route of `topic` from the nameservers.
    pub async fn refresh_route(&self, topic: &str) -> ClientResult<Arc<TopicRoute>> {
        self.core.refresh_route(topic).await
    }

    /// Sends HEART_BEAT to the known brokers now; returns how many acknowledged it.
    pub async fn send_heartbeat_now(&self) -> usize {
        self.core.send_heartbeats().await
    }

    /// Adds a producer of `group` to the heartbeats (counted: the group stays while any
    /// producer of it is registered).
    pub fn register_producer_group(&self, group: &str) {
        *lock(&self.core.producer_groups)
            .entry(group.to_owned())
            .or_default() += 1;
        self.core.net.wake_heartbeat();
    }

    /// Adds or replaces a consumer group (with its subscriptions) in the heartbeats. One
    /// consumer per group and instance: a second one replaces the first's subscriptions.
    pub fn register_consumer(&self, data: ConsumerData) {
        lock(&self.core.consumer_groups).insert(data.group_name.clone(), data);
        self.core.net.wake_heartbeat();
    }

    /// Removes one producer of `group`; the group leaves the heartbeats with its last one.
    pub fn unregister_producer_group(&self, group: &str) {
        let mut groups = lock(&self.core.producer_groups);
        if let Some(n) = groups.get_mut(group) {
            *n -= 1;
            if *n == 0 {
                groups.remove(group);
            }
        }
    }

    /// Removes a consumer group from the heartbeats.
    pub fn unregister_consumer_group(&self, group: &str) {
        lock(&self.core.consumer_groups).remove(group);
    }

    pub(crate) fn core(&self) -> &Arc<ClientCore> {
        &self.core
    }
}

/// Refreshes routes and heartbeats periodically, and heartbeats at once when woken. Holds
/// only a weak reference, so it ends by itself once the instance is gone.
async fn background(core: Weak<ClientCore>, wake: Arc<Notify>) {
    let (route_every, hb_every) = match core.upgrade() {
        Some(c) => (c.config.route_refresh_interval, c.config.heartbeat_interval),
        None => return,
    };
    let mut route_tick = interval_at(Instant::now() + route_every, route_every);
    route_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut hb_tick = interval_at(Instant::now() + hb_every, hb_every);
    hb_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        enum Due {
            Routes,
            Heartbeat,
        }
        let due = tokio::select! {
            _ = route_tick.tick() => Due::Routes,
            _ = hb_tick.tick() => Due::Heartbeat,
            _ = wake.notified() => Due::Heartbeat,
        };
        let Some(core) = core.upgrade() else { return };
        match due {
            Due::Routes => core.refresh_all_routes().await,
            Due::Heartbeat => {
                core.send_heartbeats().await;
            }
        }
    }
}

/// Locks a std mutex, recovering from poisoning: the guarded maps stay consistent because
/// no code panics while holding them.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_list_splits_on_semicolons() {
        let c = ClientConfig::new(" a:1;b:2 ;");
        assert_eq!(c.namesrv_addrs, vec!["a:1", "b:2"]);
        assert!(ClientConfig::new("").validate().is_err());
    }

    #[test]
    fn start_outside_a_runtime_is_a_config_error() {
        assert!(matches!(
            ClientInstance::start(ClientConfig::new("a:1")),
            Err(ClientError::Config(_))
        ));
    }
}
