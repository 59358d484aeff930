//! The client library over real TCP on 127.0.0.1: a real nameserver (`raftmq::namesrv`) and
//! FAKE brokers (test doubles, see [`FakeBroker`]) that register with it.
//!
//! Covered: route lookup and sends to the leader (brokerId 0); retries on another broker when
//! one answers "not leader" or cannot be reached; a new leader found after a route refresh;
//! auto-creation through TBW102; pulls that give back exactly what was sent (topic, tags,
//! keys, body, UNIQ_KEY); tag expressions on the wire and client-side filtering; offset
//! commit/fetch, min/max offsets and the pull statuses; long polling; heartbeats; typed
//! errors for timeouts and unknown topics.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftmq::client::consumer::PullOptions;
use raftmq::client::{
    BrokerErrorKind, ClientConfig, ClientError, ClientEvent, ClientInstance, Message, MessageQueue,
    Producer, ProducerConfig, PullConsumer, PullStatus, SendStatus,
};
use raftmq::config::NamesrvConfig;
use raftmq::namesrv::bodies::{
    RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper, PERM_INHERIT, PERM_READ,
    PERM_WRITE,
};
use raftmq::namesrv::client::NamesrvClient;
use raftmq::namesrv::Namesrv;
use raftmq::remoting::body::HeartbeatData;
use raftmq::remoting::header::client::UnregisterClientRequestHeader;
use raftmq::remoting::header::namesrv::RegisterBrokerRequestHeader;
use raftmq::remoting::header::offset::{
    GetMaxOffsetRequestHeader, OffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    QueryMessageRequestHeader, QueryMessageResponseHeader, SearchOffsetRequestHeader,
    UpdateConsumerOffsetRequestHeader, ViewMessageRequestHeader, UNIQUE_KEY_QUERY,
};
use raftmq::remoting::header::pull::{
    PullMessageRequestHeader, PullMessageResponseHeader, PULL_FLAG_COMMIT_OFFSET,
    PULL_FLAG_SUBSCRIPTION, PULL_FLAG_SUSPEND,
};
use raftmq::remoting::header::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use raftmq::remoting::SerializeType;
use raftmq::remoting::{
    self, json, BoxFuture, ConnContext, ProcessResult, Processor, RemotingCommand, RemotingServer,
    RequestCode, ResponseCode, ServerConfig, ServerHandle,
};
use raftmq_store::message::{
    self as codec, java_string_hash, offset_msg_id, parse_properties, StoredMessage,
};
use tokio::sync::Notify;

const TOPIC: &str = "TopicTest";

// ---------------------------------------------------------------------------------------
// TEST DOUBLE: a fake broker. It keeps sent messages in memory per queue, encodes them in
// the stored-message layout with the store codec, answers pulls (tag filter by hash code,
// simple long polling), offsets and heartbeats, and registers with the nameserver. It is
// not the raftmq broker and checks nothing beyond what these tests need.
// ---------------------------------------------------------------------------------------

/// Stored records per (topic, queue id).
type QueueTable = HashMap<(String, i32), Vec<Vec<u8>>>;

#[derive(Default)]
struct FakeState {
    addr: Mutex<Option<SocketAddr>>,
    queues: Mutex<QueueTable>,
    offsets: Mutex<HashMap<(String, String, i32), i64>>,
    heartbeats: Mutex<Vec<HeartbeatData>>,
    pulls: Mutex<Vec<PullMessageRequestHeader>>,
    send_headers: Mutex<Vec<SendMessageRequestHeader>>,
    /// Send requests received, refused ones included.
    sends: AtomicUsize,
    /// Answer sends with SERVICE_NOT_AVAILABLE, as a Raft follower does.
    not_leader: AtomicBool,
    /// Remark of that answer (a follower names the leader there).
    refuse_remark: Mutex<Option<String>>,
    /// Send NOTIFY_CONSUMER_IDS_CHANGED back on every heartbeat with a consumer group.
    notify_on_heartbeat: AtomicBool,
    /// UNREGISTER_CLIENT requests: (clientID, producerGroup, consumerGroup).
    unregistered: Mutex<Vec<UnregisterClientRequestHeader>>,
    /// Delay before every answer, in ms.
    delay_ms: AtomicI64,
    next_phys: AtomicI64,
    arrived: Notify,
    /// Header encoding of every request received: (code, encoding).
    encodings: Mutex<Vec<(i32, SerializeType)>>,
}

impl FakeState {
    fn store_host(&self) -> SocketAddr {
        self.addr.lock().unwrap().expect("bound")
    }

    fn stored(&self, topic: &str) -> usize {
        let q = self.queues.lock().unwrap();
        q.iter()
            .filter(|((t, _), _)| t == topic)
            .map(|(_, v)| v.len())
            .sum()
    }

    /// Stores one message; returns (physical offset, queue offset).
    fn store(
        &self,
        ctx: &ConnContext,
        h: &SendMessageRequestHeader,
        flag: i32,
        body: &[u8],
        properties: &str,
    ) -> (i64, i64) {
        let queue_id = h.queue_id.max(0);
        let props: Vec<(String, String)> = parse_properties(properties)
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let phys = self.next_phys.fetch_add(1000, Ordering::SeqCst);
        let mut queues = self.queues.lock().unwrap();
        let q = queues.entry((h.topic.clone(), queue_id)).or_default();
        let queue_offset = q.len() as i64;
        let record = StoredMessage {
            topic: h.topic.clone(),
            queue_id,
            flag,
            queue_offset,
            physical_offset: phys,
            sys_flag: h.sys_flag,
            born_timestamp: h.born_timestamp,
            born_host: ctx.peer_addr(),
            // Synthetic store clock: increases with the physical offset.
            store_timestamp: 1_000_000 + phys,
            store_host: self.store_host(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: body.to_vec(),
            properties: props,
        }
        .encode()
        .unwrap();
        q.push(record);
        (phys, queue_offset)
    }

    fn send(&self, ctx: &ConnContext, req: &RemotingCommand) -> RemotingCommand {
        self.sends.fetch_add(1, Ordering::SeqCst);
        let h = SendMessageRequestHeader::decode(req).unwrap();
        self.send_headers.lock().unwrap().push(h.clone());
        if self.not_leader.load(Ordering::SeqCst) {
            let remark = self.refuse_remark.lock().unwrap().clone();
            return RemotingCommand::error_to(
                req,
                ResponseCode::ServiceNotAvailable,
                remark.unwrap_or_else(|| "not leader".into()),
            );
        }
        let header_props = h.properties.clone().unwrap_or_default();
        let body = req.body.clone().unwrap_or_default();
        let mut stored = Vec::new();
        if req.code == RequestCode::SendBatchMessage.code() {
            // §5.6: TOTALSIZE, MAGIC, BODYCRC, FLAG, BODYLEN+BODY, PROPLEN+PROPS per message.
            let mut at = 0;
            while at < body.len() {
                let i32_at = |o: usize| i32::from_be_bytes(body[o..o + 4].try_into().unwrap());
                let total = i32_at(at) as usize;
                let flag = i32_at(at + 12);
                let blen = i32_at(at + 16) as usize;
                let b = &body[at + 20..at + 20 + blen];
                let p_at = at + 20 + blen;
                let plen = i16::from_be_bytes(body[p_at..p_at + 2].try_into().unwrap()) as usize;
                let props = std::str::from_utf8(&body[p_at + 2..p_at + 2 + plen]).unwrap();
                assert_eq!(total, 22 + blen + plen, "batch record size");
                stored.push(self.store(ctx, &h, flag, b, &format!("{props}{header_props}")));
                at += total;
            }
        } else {
            stored.push(self.store(ctx, &h, h.flag, &body, &header_props));
        }
        self.arrived.notify_waiters();
        let ids: Vec<String> = stored
            .iter()
            .map(|(phys, _)| offset_msg_id(self.store_host(), *phys))
            .collect();
        let uniq = parse_properties(&header_props)
            .find(|(k, _)| *k == "UNIQ_KEY")
            .map(|(_, v)| v.to_owned());
        RemotingCommand::response_to(req).with_header(&SendMessageResponseHeader {
            msg_id: ids.join(","),
            queue_id: h.queue_id.max(0),
            queue_offset: stored[0].1,
            transaction_id: uniq,
            batch_uniq_id: None,
            msg_region: Some("DefaultRegion".into()),
            trace_on: Some("false".into()),
        })
    }

    /// Answers a pull from what is stored now; `None` when it should wait (long polling).
    fn try_pull(
        &self,
        req: &RemotingCommand,
        h: &PullMessageRequestHeader,
        last: bool,
    ) -> Option<RemotingCommand> {
        let codes: Vec<i64> = h
            .subscription
            .as_deref()
            .filter(|s| s.trim() != "*")
            .map(|s| {
                s.split("||")
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| java_string_hash(t) as i64)
                    .collect()
            })
            .unwrap_or_default();
        let queues = self.queues.lock().unwrap();
        let empty = Vec::new();
        let q = queues.get(&(h.topic.clone(), h.queue_id)).unwrap_or(&empty);
        let max = q.len() as i64;
        let header = |next: i64| PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: next,
            min_offset: 0,
            max_offset: max,
            ..Default::default()
        };
        if h.queue_offset > max || h.queue_offset < 0 {
            return Some(
                RemotingCommand::error_to(
                    req,
                    ResponseCode::PullOffsetMoved,
                    "OFFSET_OVERFLOW_BADLY",
                )
                .with_header(&header(max)),
            );
        }
        if h.queue_offset == max {
            if !last && h.sys_flag & PULL_FLAG_SUSPEND != 0 {
                return None;
            }
            return Some(
                RemotingCommand::error_to(req, ResponseCode::PullNotFound, "OFFSET_OVERFLOW_ONE")
                    .with_header(&header(h.queue_offset)),
            );
        }
        let mut body = Vec::new();
        let mut found = 0;
        let mut next = h.queue_offset;
        for rec in &q[h.queue_offset as usize..] {
            if found >= h.max_msg_nums {
                break;
            }
            next += 1;
            let view = codec::MessageView::parse(rec).unwrap();
            if codes.is_empty() || codes.contains(&view.tags_code()) {
                body.extend_from_slice(rec);
                found += 1;
            }
        }
        if found == 0 {
            return Some(
                RemotingCommand::error_to(
                    req,
                    ResponseCode::PullRetryImmediately,
                    "NO_MATCHED_MESSAGE",
                )
                .with_header(&header(next)),
            );
        }
        Some(
            RemotingCommand::response_to(req)
                .with_header(&header(next))
                .with_body(body),
        )
    }

    async fn pull(&self, req: &RemotingCommand) -> RemotingCommand {
        let h: PullMessageRequestHeader = req.decode_header().unwrap();
        self.pulls.lock().unwrap().push(h.clone());
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(h.suspend_timeout_millis.max(0) as u64);
        loop {
            let notified = self.arrived.notified();
            let last = tokio::time::Instant::now() >= deadline;
            if let Some(resp) = self.try_pull(req, &h, last) {
                return resp;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// VIEW_MESSAGE_BY_ID and QUERY_MESSAGE by scanning every stored record.
    fn lookup(&self, req: &RemotingCommand) -> RemotingCommand {
        let queues = self.queues.lock().unwrap();
        let all = queues.values().flatten();
        if req.code == RequestCode::ViewMessageById.code() {
            let h: ViewMessageRequestHeader = req.decode_header().unwrap();
            return match all
                .into_iter()
                .find(|r| codec::MessageView::parse(r).unwrap().physical_offset() == h.offset)
            {
                Some(r) => RemotingCommand::response_to(req).with_body(r.clone()),
                None => RemotingCommand::error_to(req, ResponseCode::SystemError, "no message"),
            };
        }
        let h: QueryMessageRequestHeader = req.decode_header().unwrap();
        let unique = req.ext_opt_bool(UNIQUE_KEY_QUERY) == Some(true);
        let mut body = Vec::new();
        for r in all {
            let v = codec::MessageView::parse(r).unwrap();
            let hit = if unique {
                v.uniq_key() == Some(h.key.as_str())
            } else {
                v.keys().any(|k| k == h.key)
            };
            if v.topic() == h.topic && hit {
                body.extend_from_slice(r);
            }
        }
        if body.is_empty() {
            return RemotingCommand::error_to(req, ResponseCode::QueryNotFound, "not found");
        }
        RemotingCommand::response_to(req)
            .with_header(&QueryMessageResponseHeader {
                index_last_update_timestamp: 0,
                index_last_update_phyoffset: 0,
            })
            .with_body(body)
    }

    fn offsets(&self, req: &RemotingCommand) -> RemotingCommand {
        let code = RequestCode::from_code(req.code).unwrap();
        let offset = |o: i64| {
            RemotingCommand::response_to(req).with_header(&OffsetResponseHeader { offset: o })
        };
        match code {
            RequestCode::UpdateConsumerOffset => {
                let h: UpdateConsumerOffsetRequestHeader = req.decode_header().unwrap();
                self.offsets
                    .lock()
                    .unwrap()
                    .insert((h.consumer_group, h.topic, h.queue_id), h.commit_offset);
                RemotingCommand::response_to(req)
            }
            RequestCode::QueryConsumerOffset => {
                let h: QueryConsumerOffsetRequestHeader = req.decode_header().unwrap();
                match self
                    .offsets
                    .lock()
                    .unwrap()
                    .get(&(h.consumer_group, h.topic, h.queue_id))
                {
                    Some(o) => offset(*o),
                    None => {
                        RemotingCommand::error_to(req, ResponseCode::QueryNotFound, "Not found")
                    }
                }
            }
            RequestCode::GetMaxOffset => {
                let h: GetMaxOffsetRequestHeader = req.decode_header().unwrap();
                let q = self.queues.lock().unwrap();
                offset(q.get(&(h.topic, h.queue_id)).map_or(0, |v| v.len() as i64))
            }
            RequestCode::GetMinOffset => offset(0),
            RequestCode::SearchOffsetByTimestamp => {
                let h: SearchOffsetRequestHeader = req.decode_header().unwrap();
                let q = self.queues.lock().unwrap();
                let recs = q.get(&(h.topic, h.queue_id)).cloned().unwrap_or_default();
                let at = recs
                    .iter()
                    .position(|r| {
                        codec::MessageView::parse(r).unwrap().store_timestamp() >= h.timestamp
                    })
                    .unwrap_or(recs.len());
                offset(at as i64)
            }
            _ => RemotingCommand::not_supported(req),
        }
    }
}

struct FakeProcessor(Arc<FakeState>);

impl Processor for FakeProcessor {
    fn process<'a>(
        &'a self,
        ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        Box::pin(async move {
            let delay = self.0.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay as u64)).await;
            }
            let st = &self.0;
            st.encodings
                .lock()
                .unwrap()
                .push((req.code, req.serialize_type));
            let resp = match RequestCode::from_code(req.code) {
                Some(
                    RequestCode::SendMessageV2
                    | RequestCode::SendMessage
                    | RequestCode::SendBatchMessage,
                ) => st.send(ctx, &req),
                Some(RequestCode::UnregisterClient) => {
                    st.unregistered
                        .lock()
                        .unwrap()
                        .push(req.decode_header().unwrap());
                    RemotingCommand::response_to(&req)
                }
                Some(RequestCode::PullMessage) => st.pull(&req).await,
                Some(RequestCode::HeartBeat) => {
                    let hb: HeartbeatData = json::from_slice(req.body.as_deref().unwrap()).unwrap();
                    if st.notify_on_heartbeat.load(Ordering::SeqCst) {
                        for g in &hb.consumer_data_set {
                            let n = RemotingCommand::request(RequestCode::NotifyConsumerIdsChanged)
                                .with_ext("consumerGroup", &g.group_name);
                            ctx.invoke_oneway(n).await.unwrap();
                        }
                    }
                    st.heartbeats.lock().unwrap().push(hb);
                    RemotingCommand::response_to(&req)
                }
                Some(
                    RequestCode::UpdateConsumerOffset
                    | RequestCode::QueryConsumerOffset
                    | RequestCode::GetMaxOffset
                    | RequestCode::GetMinOffset
                    | RequestCode::SearchOffsetByTimestamp,
                ) => st.offsets(&req),
                Some(RequestCode::ViewMessageById | RequestCode::QueryMessage) => st.lookup(&req),
                _ => RemotingCommand::not_supported(&req),
            };
            Ok(Some(resp))
        })
    }
}

/// A fake broker node: its server, its state, and its registration connection (the
/// nameserver drops a broker whose connection closes, so it stays open).
struct FakeBroker {
    state: Arc<FakeState>,
    addr: String,
    server: Option<ServerHandle>,
    ns: NamesrvClient,
}

impl FakeBroker {
    async fn start(ns: &Namesrv) -> FakeBroker {
        Self::start_with(ns, Arc::new(FakeState::default())).await
    }

    /// A node serving `state`; nodes sharing one state act as replicas holding the same
    /// bytes (the store host in records is the first node's address).
    async fn start_with(ns: &Namesrv, state: Arc<FakeState>) -> FakeBroker {
        let server = RemotingServer::bind(
            "127.0.0.1:0",
            Arc::new(FakeProcessor(state.clone())),
            ServerConfig::default(),
        )
        .await
        .unwrap();
        state
            .addr
            .lock()
            .unwrap()
            .get_or_insert(server.local_addr());
        FakeBroker {
            addr: server.local_addr().to_string(),
            state,
            server: Some(server),
            ns: NamesrvClient::new(
                &[ns.local_addr().to_string()],
                remoting::ClientConfig::default(),
                Duration::from_secs(5),
            ),
        }
    }

    /// Stops serving clients while staying registered (an unreachable node).
    async fn stop_serving(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Registers as member `id` of group `name` (0 = leader) in Raft term `term`, serving
    /// `topics` (name, queues) plus TBW102.
    async fn register(&self, name: &str, id: i64, term: u64, topics: &[(&str, i32)]) {
        self.register_addr(&self.addr, name, id, term, topics).await;
    }

    /// As [`register`](Self::register) but announcing `addr` (to announce a dead address).
    async fn register_addr(
        &self,
        addr: &str,
        name: &str,
        id: i64,
        term: u64,
        topics: &[(&str, i32)],
    ) {
        let mut table: BTreeMap<String, TopicConfig> = topics
            .iter()
            .map(|(t, q)| (t.to_string(), TopicConfig::new(t, *q)))
            .collect();
        let mut tbw = TopicConfig::new("TBW102", 8);
        tbw.perm = PERM_INHERIT | PERM_READ | PERM_WRITE;
        table.insert("TBW102".into(), tbw);
        let body = RegisterBrokerBody {
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                topic_config_table: table,
                ..Default::default()
            },
            filter_server_list: vec![],
        };
        let header = RegisterBrokerRequestHeader {
            broker_name: name.into(),
            broker_addr: addr.into(),
            cluster_name: "DefaultCluster".into(),
            ha_server_addr: format!("{addr}-ha"),
            broker_id: id,
            raft_term: Some(term),
            raft_node_id: Some(id as u64),
            ..Default::default()
        };
        for (ns, r) in self.ns.register_broker(&header, &body).await.unwrap() {
            r.unwrap_or_else(|e| panic!("register {name} with {ns}: {e}"));
        }
    }
}

async fn namesrv() -> Namesrv {
    Namesrv::bind(NamesrvConfig {
        bind_address: [127, 0, 0, 1].into(),
        listen_port: 0,
        kv_config_path: None,
        ..NamesrvConfig::default()
    })
    .await
    .unwrap()
}

fn client_config(ns: &Namesrv) -> ClientConfig {
    ClientConfig::new(&ns.local_addr().to_string())
}

async fn producer(ns: &Namesrv) -> Producer {
    Producer::start(client_config(ns), ProducerConfig::new("PG"))
        .await
        .unwrap()
}

/// Waits for `cond` with a deadline, polling every 20 ms.
async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sends_go_to_the_leader_and_pull_back_exactly_what_was_sent() {
    let ns = namesrv().await;
    let leader = FakeBroker::start(&ns).await;
    let follower = FakeBroker::start(&ns).await;
    leader.register("broker-a", 0, 1, &[(TOPIC, 4)]).await;
    follower.register("broker-a", 1, 1, &[(TOPIC, 4)]).await;

    let p = producer(&ns).await;
    let mut sent = Vec::new();
    for i in 0..8 {
        let msg = Message::new(TOPIC, format!("body-{i}"))
            .with_tags(if i % 2 == 0 { "TagA" } else { "TagB" })
            .with_keys([format!("key-{i}"), "shared".to_string()])
            .with_flag(i);
        let r = p.send(msg.clone()).await.unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(r.queue.broker_name, "broker-a");
        assert_eq!(r.queue.topic, TOPIC);
        assert_eq!(r.msg_id.len(), 32, "UNIQ_KEY is 32 hex chars: {}", r.msg_id);
        assert_eq!(r.transaction_id.as_deref(), Some(r.msg_id.as_str()));
        let (host, _) = codec::decode_offset_msg_id(&r.offset_msg_id).unwrap();
        assert_eq!(host.to_string(), leader.addr);
        sent.push((msg, r));
    }
    // Round-robin over the four write queues, everything on the leader.
    let mut per_queue = [0; 4];
    for (_, r) in &sent {
        per_queue[r.queue.queue_id as usize] += 1;
    }
    assert_eq!(per_queue, [2, 2, 2, 2]);
    assert_eq!(leader.state.stored(TOPIC), 8);
    assert_eq!(follower.state.sends.load(Ordering::SeqCst), 0);
    let h = leader.state.send_headers.lock().unwrap()[0].clone();
    assert_eq!(
        (h.producer_group.as_str(), h.default_topic.as_str()),
        ("PG", "TBW102")
    );
    assert_eq!(h.default_topic_queue_nums, 4);

    let c = PullConsumer::start(client_config(&ns), "CG").await.unwrap();
    let queues = c.fetch_subscribe_queues(TOPIC).await.unwrap();
    assert_eq!(queues.len(), 4);
    let mut pulled = Vec::new();
    for q in &queues {
        let r = c.pull(q, 0, 32, Duration::from_secs(3)).await.unwrap();
        assert_eq!(r.status, PullStatus::Found);
        assert_eq!((r.next_begin_offset, r.min_offset, r.max_offset), (2, 0, 2));
        pulled.extend(r.messages);
    }
    assert_eq!(pulled.len(), 8);
    for (msg, r) in &sent {
        let m = pulled
            .iter()
            .find(|m| m.uniq_key() == Some(r.msg_id.as_str()))
            .unwrap_or_else(|| panic!("message {} not pulled", r.msg_id));
        assert_eq!(m.topic, TOPIC);
        assert_eq!(m.tags(), msg.tags());
        assert_eq!(m.keys(), msg.keys());
        assert_eq!(m.body, msg.body);
        assert_eq!(m.flag, msg.flag);
        assert_eq!(m.msg_id(), r.msg_id);
        assert_eq!(m.queue_id, r.queue.queue_id);
        assert_eq!(m.queue_offset, r.queue_offset);
        assert_eq!(m.offset_msg_id, r.offset_msg_id);
    }
    // Pull requests go to the leader and carry the subscription flag.
    let pulls = leader.state.pulls.lock().unwrap().clone();
    assert_eq!(pulls.len(), 4);
    assert!(pulls
        .iter()
        .all(|h| h.sys_flag & PULL_FLAG_SUBSCRIPTION != 0
            && h.subscription.as_deref() == Some("*")
            && h.consumer_group == "CG"));
    assert!(follower.state.pulls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tag_expression_is_transmitted_and_filters() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    let p = producer(&ns).await;
    for tag in ["TagA", "TagB", "TagC", "TagA"] {
        p.send(Message::new(TOPIC, tag).with_tags(tag))
            .await
            .unwrap();
    }
    p.send(Message::new(TOPIC, "untagged")).await.unwrap();

    let c = PullConsumer::start(client_config(&ns), "CG").await.unwrap();
    c.subscribe(TOPIC, "TagA || TagC").unwrap();
    let q = MessageQueue::new(TOPIC, "broker-a", 0);
    let r = c.pull(&q, 0, 32, Duration::from_secs(3)).await.unwrap();
    assert_eq!(r.status, PullStatus::Found);
    let tags: Vec<_> = r.messages.iter().map(|m| m.tags().unwrap()).collect();
    assert_eq!(tags, ["TagA", "TagC", "TagA"]);
    assert_eq!(r.next_begin_offset, 5);
    let last = b.state.pulls.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.subscription.as_deref(), Some("TagA || TagC"));
    assert_eq!(last.expression_type.as_deref(), Some("TAG"));
    assert!(last.sys_flag & PULL_FLAG_SUBSCRIPTION != 0);

    // Entries scanned, none matching: NoMatchedMsg with the offset moved past them.
    c.subscribe(TOPIC, "TagZ").unwrap();
    let r = c.pull(&q, 0, 32, Duration::from_secs(3)).await.unwrap();
    assert_eq!(r.status, PullStatus::NoMatchedMsg);
    assert_eq!(r.next_begin_offset, 5);
    assert!(r.messages.is_empty());

    // "Aa" and "BB" share a Java hash code, so the broker's hash filter returns both; the
    // client keeps only the tag it subscribed to.
    assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
    for tag in ["Aa", "BB"] {
        p.send(Message::new(TOPIC, tag).with_tags(tag))
            .await
            .unwrap();
    }
    c.subscribe(TOPIC, "Aa").unwrap();
    let r = c.pull(&q, 5, 32, Duration::from_secs(3)).await.unwrap();
    assert_eq!(r.status, PullStatus::Found);
    let tags: Vec<_> = r.messages.iter().map(|m| m.tags().unwrap()).collect();
    assert_eq!(tags, ["Aa"]);
    assert_eq!(r.next_begin_offset, 7);
}

#[tokio::test]
async fn offsets_round_trip_and_pull_statuses() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    let p = producer(&ns).await;
    for i in 0..3 {
        p.send(Message::new(TOPIC, format!("m{i}"))).await.unwrap();
    }
    let c = PullConsumer::start(client_config(&ns), "CG").await.unwrap();
    let q = MessageQueue::new(TOPIC, "broker-a", 0);
    assert_eq!(c.fetch_offset(&q).await.unwrap(), None);
    c.commit_offset(&q, 2).await.unwrap();
    assert_eq!(c.fetch_offset(&q).await.unwrap(), Some(2));
    assert_eq!(
        b.state
            .offsets
            .lock()
            .unwrap()
            .get(&("CG".into(), TOPIC.into(), 0)),
        Some(&2)
    );
    assert_eq!(c.max_offset(&q).await.unwrap(), 3);
    assert_eq!(c.min_offset(&q).await.unwrap(), 0);

    let r = c.pull(&q, 3, 32, Duration::from_secs(3)).await.unwrap();
    assert_eq!((r.status, r.next_begin_offset), (PullStatus::NoNewMsg, 3));
    let r = c.pull(&q, 10, 32, Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        (r.status, r.next_begin_offset),
        (PullStatus::OffsetIllegal, 3)
    );
    let r = c.pull(&q, 1, 1, Duration::from_secs(3)).await.unwrap();
    assert_eq!(r.messages.len(), 1);
    assert_eq!(&r.messages[0].body[..], b"m1");
    assert_eq!(r.next_begin_offset, 2);

    // An offset can ride along with a pull (FLAG_COMMIT_OFFSET).
    let opts = PullOptions {
        commit_offset: Some(2),
        ..PullOptions::default()
    };
    c.pull_with(&q, 2, &opts).await.unwrap();
    let h = b.state.pulls.lock().unwrap().last().cloned().unwrap();
    assert!(h.sys_flag & PULL_FLAG_COMMIT_OFFSET != 0);
    assert!(h.sys_flag & PULL_FLAG_SUSPEND == 0);
    assert_eq!(h.commit_offset, 2);
    assert!(matches!(
        c.pull(&q, 0, 0, Duration::from_secs(1)).await,
        Err(ClientError::Config(_))
    ));
}

/// `ClientConfig::serialize_type` picks the header encoding of every request the client
/// makes; the answers come back in it and decode.
#[tokio::test]
async fn requests_use_the_configured_header_encoding() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    for ty in [SerializeType::RocketMq, SerializeType::Json] {
        b.state.encodings.lock().unwrap().clear();
        let config = ClientConfig {
            serialize_type: ty,
            ..client_config(&ns)
        };
        let p = Producer::start(config.clone(), ProducerConfig::new("PG"))
            .await
            .unwrap();
        let r = p
            .send(Message::new(TOPIC, "encoded").with_tags("T"))
            .await
            .unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        p.send_oneway(Message::new(TOPIC, "oneway")).await.unwrap();
        let c = PullConsumer::start(config, "CG").await.unwrap();
        let q = MessageQueue::new(TOPIC, "broker-a", 0);
        c.commit_offset(&q, 1).await.unwrap();
        assert_eq!(c.fetch_offset(&q).await.unwrap(), Some(1));
        wait_for("the oneway send", Duration::from_secs(5), || {
            b.state.encodings.lock().unwrap().len() >= 4
        })
        .await;
        let seen = b.state.encodings.lock().unwrap().clone();
        assert!(seen.iter().all(|(_, t)| *t == ty), "{ty:?}: {seen:?}");
        p.shutdown().await;
        c.shutdown().await;
    }
}

#[tokio::test]
async fn oneway_sends_arrive() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 2)]).await;
    let p = producer(&ns).await;
    for i in 0..4 {
        p.send_oneway(Message::new(TOPIC, format!("o{i}")).with_tags("T"))
            .await
            .unwrap();
    }
    wait_for("four oneway messages", Duration::from_secs(5), || {
        b.state.stored(TOPIC) == 4
    })
    .await;
}

#[tokio::test]
async fn long_polling_pull_returns_when_a_message_arrives() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    let p = producer(&ns).await;
    let c = Arc::new(PullConsumer::start(client_config(&ns), "CG").await.unwrap());
    let q = MessageQueue::new(TOPIC, "broker-a", 0);
    let started = Instant::now();
    let puller = {
        let (c, q) = (c.clone(), q.clone());
        tokio::spawn(async move { c.pull_blocking(&q, 0, 32, Duration::from_secs(10)).await })
    };
    wait_for("the pull to be held", Duration::from_secs(5), || {
        !b.state.pulls.lock().unwrap().is_empty()
    })
    .await;
    let held = b.state.pulls.lock().unwrap()[0].clone();
    assert!(held.sys_flag & PULL_FLAG_SUSPEND != 0);
    assert_eq!(held.suspend_timeout_millis, 10_000);
    p.send(Message::new(TOPIC, "wake up")).await.unwrap();
    let r = puller.await.unwrap().unwrap();
    assert_eq!(r.status, PullStatus::Found);
    assert_eq!(&r.messages[0].body[..], b"wake up");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn not_leader_answer_retries_on_another_broker_group() {
    let ns = namesrv().await;
    let a = FakeBroker::start(&ns).await;
    let b = FakeBroker::start(&ns).await;
    a.register("broker-a", 0, 1, &[(TOPIC, 2)]).await;
    b.register("broker-b", 0, 1, &[(TOPIC, 2)]).await;
    a.state.not_leader.store(true, Ordering::SeqCst);

    let p = producer(&ns).await;
    for i in 0..6 {
        let r = p.send(Message::new(TOPIC, format!("m{i}"))).await.unwrap();
        assert_eq!(r.queue.broker_name, "broker-b", "send {i}");
    }
    assert_eq!(b.state.stored(TOPIC), 6);
    assert_eq!(a.state.stored(TOPIC), 0);
    assert!(
        a.state.sends.load(Ordering::SeqCst) >= 1,
        "broker-a was tried"
    );

    // With every group refusing, the send fails after 1 + 2 attempts with a typed error.
    b.state.not_leader.store(true, Ordering::SeqCst);
    let before = a.state.sends.load(Ordering::SeqCst) + b.state.sends.load(Ordering::SeqCst);
    let err = p.send(Message::new(TOPIC, "x")).await.unwrap_err();
    match &err {
        ClientError::SendFailed {
            attempts,
            maybe_written,
            ..
        } => {
            assert_eq!(*attempts, 3);
            assert!(!maybe_written);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.broker_kind(),
        Some(BrokerErrorKind::ServiceNotAvailable)
    );
    let after = a.state.sends.load(Ordering::SeqCst) + b.state.sends.load(Ordering::SeqCst);
    assert_eq!(after - before, 3);
}

#[tokio::test]
async fn new_leader_is_found_after_a_route_refresh() {
    let ns = namesrv().await;
    let n0 = FakeBroker::start(&ns).await;
    let n1 = FakeBroker::start(&ns).await;
    n0.register("g1", 0, 1, &[(TOPIC, 2)]).await;
    n1.register("g1", 1, 1, &[(TOPIC, 2)]).await;
    let p = producer(&ns).await;
    let q = MessageQueue::new(TOPIC, "g1", 1);
    let r = p
        .send_to_queue(Message::new(TOPIC, "before"), &q)
        .await
        .unwrap();
    assert_eq!(r.queue, q);
    assert_eq!(n0.state.stored(TOPIC), 1);

    // Leadership moves to n1 in term 2; n0 now answers as a follower. The producer's cached
    // route still points at n0.
    n0.state.not_leader.store(true, Ordering::SeqCst);
    n1.register("g1", 0, 2, &[(TOPIC, 2)]).await;
    n0.register("g1", 2, 2, &[(TOPIC, 2)]).await;
    let r = p
        .send_to_queue(Message::new(TOPIC, "after"), &q)
        .await
        .unwrap();
    assert_eq!(r.queue, q);
    let (host, _) = codec::decode_offset_msg_id(&r.offset_msg_id).unwrap();
    assert_eq!(host.to_string(), n1.addr);
    assert_eq!(n1.state.stored(TOPIC), 1);
    assert_eq!(
        n0.state.sends.load(Ordering::SeqCst),
        2,
        "one refused attempt on n0"
    );
    let route = p.instance().route(TOPIC).await.unwrap();
    assert_eq!(route.leader_addr("g1"), Some(n1.addr.as_str()));

    // Reads follow the new leader too.
    let c = PullConsumer::start(client_config(&ns), "CG").await.unwrap();
    let got = c.pull(&q, 0, 32, Duration::from_secs(3)).await.unwrap();
    assert_eq!(&got.messages[0].body[..], b"after");
}

#[tokio::test]
async fn unreachable_broker_and_nameserver_are_skipped() {
    let ns = namesrv().await;
    let live = FakeBroker::start(&ns).await;
    let dead_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    live.register("broker-live", 0, 1, &[(TOPIC, 1)]).await;
    live.register_addr(&dead_addr, "broker-dead", 0, 1, &[(TOPIC, 1)])
        .await;

    // The first nameserver in the list is down too.
    let cfg = ClientConfig::new(&format!("{dead_addr};{}", ns.local_addr()));
    let p = Producer::start(cfg, ProducerConfig::new("PG"))
        .await
        .unwrap();
    for i in 0..4 {
        let r = p.send(Message::new(TOPIC, format!("m{i}"))).await.unwrap();
        assert_eq!(r.queue.broker_name, "broker-live");
    }
    assert_eq!(live.state.stored(TOPIC), 4);

    // Sending only to the dead group fails with a connect error: certainly not written.
    let q = MessageQueue::new(TOPIC, "broker-dead", 0);
    let err = p
        .send_to_queue(Message::new(TOPIC, "x"), &q)
        .await
        .unwrap_err();
    assert!(!err.is_indeterminate(), "{err:?}");
    let ClientError::SendFailed { last, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(**last, ClientError::Connect { .. }), "{last:?}");
}

#[tokio::test]
async fn timeouts_give_typed_indeterminate_errors() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    let mut cfg = ProducerConfig::new("PG");
    cfg.send_timeout = Duration::from_millis(300);
    let p = Producer::start(client_config(&ns), cfg).await.unwrap();
    // Warm the route, then make the broker slow.
    p.fetch_publish_queues(TOPIC).await.unwrap();
    b.state.delay_ms.store(2_000, Ordering::SeqCst);
    let started = Instant::now();
    let err = p.send(Message::new(TOPIC, "slow")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_indeterminate(), "{err:?}");
    let ClientError::SendFailed { last, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(**last, ClientError::Timeout { .. }), "{last:?}");

    let c = PullConsumer::start(client_config(&ns), "CG").await.unwrap();
    let q = MessageQueue::new(TOPIC, "broker-a", 0);
    let err = c
        .pull(&q, 0, 32, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn unknown_topics_auto_create_through_tbw102_or_fail_typed() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;

    let p = producer(&ns).await;
    let r = p.send(Message::new("BrandNew", "first")).await.unwrap();
    assert_eq!(r.queue.topic, "BrandNew");
    assert!(r.queue.queue_id < 4, "at most defaultTopicQueueNums queues");
    assert_eq!(b.state.stored("BrandNew"), 1);

    let mut cfg = ProducerConfig::new("PG2");
    cfg.auto_create_topic = false;
    let strict = Producer::start(client_config(&ns), cfg).await.unwrap();
    let err = strict
        .send(Message::new("Unknown2", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TopicNotExist { .. }), "{err:?}");

    // Invalid messages are refused before anything is sent.
    let before = b.state.sends.load(Ordering::SeqCst);
    let err = p.send(Message::new("bad topic!", "x")).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidMessage { .. }), "{err:?}");
    assert_eq!(b.state.sends.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn heartbeats_announce_producer_and_consumer_groups() {
    let ns = namesrv().await;
    let leader = FakeBroker::start(&ns).await;
    let follower = FakeBroker::start(&ns).await;
    leader.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    follower.register("broker-a", 1, 1, &[(TOPIC, 1)]).await;

    let mut cfg = client_config(&ns);
    cfg.heartbeat_interval = Duration::from_millis(200);
    let instance = ClientInstance::start(cfg).unwrap();
    let p = Producer::with_instance(instance.clone(), ProducerConfig::new("PG")).unwrap();
    let c = PullConsumer::with_instance(instance.clone(), "CG").unwrap();
    c.subscribe(TOPIC, "TagA").unwrap();
    p.fetch_publish_queues(TOPIC).await.unwrap();

    let has_groups = |st: &FakeState| {
        st.heartbeats.lock().unwrap().iter().any(|hb| {
            hb.client_id == instance.client_id()
                && hb.producer_data_set.iter().any(|g| g.group_name == "PG")
                && hb.consumer_data_set.iter().any(|g| {
                    g.group_name == "CG"
                        && g.subscription_data_set.iter().any(|s| {
                            s.topic == TOPIC && s.sub_string == "TagA" && s.code_set == [2598919]
                        })
                })
        })
    };
    // Consumers heartbeat every broker of the route, followers included.
    wait_for("heartbeat on the leader", Duration::from_secs(5), || {
        has_groups(&leader.state)
    })
    .await;
    wait_for("heartbeat on the follower", Duration::from_secs(5), || {
        has_groups(&follower.state)
    })
    .await;
    assert!(instance.send_heartbeat_now().await >= 2);

    // Once the consumer is gone, its group leaves the heartbeats.
    drop(c);
    leader.state.heartbeats.lock().unwrap().clear();
    wait_for(
        "a heartbeat without the consumer group",
        Duration::from_secs(5),
        || {
            leader.state.heartbeats.lock().unwrap().iter().any(|hb| {
                hb.consumer_data_set.is_empty()
                    && hb.producer_data_set.iter().any(|g| g.group_name == "PG")
            })
        },
    )
    .await;
}

#[tokio::test]
async fn refusing_node_naming_the_leader_is_followed_before_the_nameserver_knows() {
    let ns = namesrv().await;
    let n0 = FakeBroker::start(&ns).await;
    let n1 = FakeBroker::start(&ns).await;
    n0.register("g1", 0, 1, &[(TOPIC, 1)]).await;
    n1.register("g1", 1, 1, &[(TOPIC, 1)]).await;
    let p = producer(&ns).await;
    p.send(Message::new(TOPIC, "warm")).await.unwrap();

    // n1 has won an election the nameserver has not heard of; n0 says so in its remark.
    n0.state.not_leader.store(true, Ordering::SeqCst);
    *n0.state.refuse_remark.lock().unwrap() = Some(format!(
        "[NOT_LEADER] broker g1 n0 is a follower; the leader is {}",
        n1.addr
    ));
    let r = p.send(Message::new(TOPIC, "redirected")).await.unwrap();
    let (host, _) = codec::decode_offset_msg_id(&r.offset_msg_id).unwrap();
    assert_eq!(host.to_string(), n1.addr);
    assert_eq!(n1.state.stored(TOPIC), 1);

    // A remark naming an address outside the group is not followed.
    *n0.state.refuse_remark.lock().unwrap() = Some("leader is 127.0.0.1:1".into());
    let err = p.send(Message::new(TOPIC, "nowhere")).await.unwrap_err();
    assert_eq!(
        err.broker_kind(),
        Some(BrokerErrorKind::ServiceNotAvailable)
    );
    assert_eq!(n1.state.stored(TOPIC), 1);
}

#[tokio::test]
async fn batches_are_stored_consecutively_and_pulled_back() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 2)]).await;
    let p = producer(&ns).await;
    let msgs: Vec<Message> = (0..3)
        .map(|i| {
            Message::new(TOPIC, format!("batch-{i}"))
                .with_tags("TagB")
                .with_keys([format!("bk{i}")])
                .with_flag(i)
        })
        .collect();
    let r = p.send_batch(msgs.clone()).await.unwrap();
    let ids: Vec<&str> = r.msg_id.split(',').collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(r.offset_msg_id.split(',').count(), 3);
    let h = b
        .state
        .send_headers
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(h.batch, Some(true));

    let c = PullConsumer::start(client_config(&ns), "CG").await.unwrap();
    let got = c
        .pull(&r.queue, r.queue_offset, 32, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(got.messages.len(), 3);
    for (i, (m, sent)) in got.messages.iter().zip(&msgs).enumerate() {
        assert_eq!(m.uniq_key(), Some(ids[i]));
        assert_eq!(m.body, sent.body);
        assert_eq!(m.keys(), sent.keys());
        assert_eq!(m.tags(), Some("TagB"));
        assert_eq!(m.flag, i as i32);
        assert_eq!(m.queue_offset, r.queue_offset + i as i64);
    }

    // Mixed topics and empty batches are refused before sending.
    let mixed = vec![Message::new(TOPIC, "a"), Message::new("Other", "b")];
    assert!(matches!(
        p.send_batch(mixed).await,
        Err(ClientError::InvalidMessage { .. })
    ));
    assert!(matches!(
        p.send_batch(vec![]).await,
        Err(ClientError::InvalidMessage { .. })
    ));
}

#[tokio::test]
async fn shutdown_unregisters_the_groups() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    let p = producer(&ns).await;
    p.send(Message::new(TOPIC, "x")).await.unwrap();
    let c = PullConsumer::start(client_config(&ns), "CG").await.unwrap();
    c.fetch_subscribe_queues(TOPIC).await.unwrap();
    p.shutdown().await;
    c.shutdown().await;
    let un = b.state.unregistered.lock().unwrap().clone();
    assert!(un.iter().any(|h| h.producer_group.as_deref() == Some("PG")));
    assert!(un.iter().any(|h| h.consumer_group.as_deref() == Some("CG")));
}

/// TEST DOUBLE: a nameserver that counts route lookups and answers with a fixed route in
/// fastjson's form (unquoted numeric `brokerAddrs` keys, as a Java nameserver sends to old
/// clients).
struct CountingNamesrv {
    lookups: AtomicUsize,
    route_json: String,
}

impl Processor for CountingNamesrv {
    fn process<'a>(
        &'a self,
        _ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        Box::pin(async move {
            if req.code != RequestCode::GetRouteinfoByTopic.code() {
                return Ok(Some(RemotingCommand::not_supported(&req)));
            }
            self.lookups.fetch_add(1, Ordering::SeqCst);
            // Slow enough that concurrent callers overlap.
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Some(
                RemotingCommand::response_to(&req).with_body(self.route_json.clone().into_bytes()),
            ))
        })
    }
}

#[tokio::test]
async fn concurrent_sends_share_one_route_lookup_and_read_fastjson_routes() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    let route_json = format!(
        r#"{{"brokerDatas":[{{"brokerAddrs":{{0:"{}"}},"brokerName":"broker-a","cluster":"C"}}],"filterServerTable":{{}},"queueDatas":[{{"brokerName":"broker-a","perm":6,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":2}}]}}"#,
        b.addr
    );
    let counting = Arc::new(CountingNamesrv {
        lookups: AtomicUsize::new(0),
        route_json,
    });
    let server = RemotingServer::bind("127.0.0.1:0", counting.clone(), ServerConfig::default())
        .await
        .unwrap();
    let p = Arc::new(
        Producer::start(
            ClientConfig::new(&server.local_addr().to_string()),
            ProducerConfig::new("PG"),
        )
        .await
        .unwrap(),
    );
    let sends: Vec<_> = (0..16)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.send(Message::new(TOPIC, format!("m{i}"))).await })
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap().unwrap().queue.broker_name, "broker-a");
    }
    assert_eq!(b.state.stored(TOPIC), 16);
    assert_eq!(counting.lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn send_waits_out_an_election_with_no_leader_in_the_route() {
    let ns = namesrv().await;
    let n0 = FakeBroker::start(&ns).await;
    let n1 = FakeBroker::start(&ns).await;
    n0.register("g1", 0, 1, &[(TOPIC, 1)]).await;
    n1.register("g1", 1, 1, &[(TOPIC, 1)]).await;
    let mut cfg = ProducerConfig::new("PG");
    cfg.retry_times_when_send_failed = 100;
    cfg.retry_backoff = Duration::from_millis(20);
    cfg.send_timeout = Duration::from_secs(10);
    let p = Arc::new(Producer::start(client_config(&ns), cfg).await.unwrap());
    p.send(Message::new(TOPIC, "before")).await.unwrap();

    // The leader dies: its server stops and its nameserver connection closes, so the
    // nameserver drops it and the group has no brokerId 0 until n1 registers as leader.
    drop(n0);
    let sender = {
        let p = p.clone();
        tokio::spawn(async move { p.send(Message::new(TOPIC, "during")).await })
    };
    // Wait until the producer has fetched the leaderless route (and is backing off).
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let route = p.instance().route(TOPIC).await.unwrap();
        if route.leader_addr("g1").is_none() {
            break;
        }
        assert!(
            Instant::now() < end,
            "producer never saw the leaderless route"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!sender.is_finished());
    n1.register("g1", 0, 2, &[(TOPIC, 1)]).await;
    let r = sender.await.unwrap().unwrap();
    let (host, _) = codec::decode_offset_msg_id(&r.offset_msg_id).unwrap();
    assert_eq!(host.to_string(), n1.addr);
    assert_eq!(n1.state.stored(TOPIC), 1);
}

#[tokio::test]
async fn lookups_by_id_key_uniq_key_and_time() {
    let ns = namesrv().await;
    let mut n0 = FakeBroker::start(&ns).await;
    // n1 serves the same bytes, as a replica does.
    let n1 = FakeBroker::start_with(&ns, n0.state.clone()).await;
    n0.register("g1", 0, 1, &[(TOPIC, 1)]).await;
    n1.register("g1", 1, 1, &[(TOPIC, 1)]).await;
    let p = producer(&ns).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        let m = Message::new(TOPIC, format!("m{i}")).with_keys([format!("k{i}"), "common".into()]);
        sent.push(p.send(m).await.unwrap());
    }
    let inst = p.instance();
    let m = inst
        .view_message(&sent[1].offset_msg_id, None)
        .await
        .unwrap();
    assert_eq!(
        (&m.body[..], m.msg_id()),
        (&b"m1"[..], sent[1].msg_id.as_str())
    );

    let by_key = inst
        .query_messages_by_key(TOPIC, "k2", 32, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(&by_key[0].body[..], b"m2");
    let common = inst
        .query_messages_by_key(TOPIC, "common", 32, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(common.len(), 3);
    assert!(inst
        .query_messages_by_key(TOPIC, "nope", 32, 0, i64::MAX)
        .await
        .unwrap()
        .is_empty());
    let by_uniq = inst
        .query_messages_by_uniq_key(TOPIC, &sent[0].msg_id, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(by_uniq.len(), 1);
    assert_eq!(&by_uniq[0].body[..], b"m0");

    let c = PullConsumer::start(client_config(&ns), "CG").await.unwrap();
    let q = MessageQueue::new(TOPIC, "g1", 0);
    let third = c
        .pull(&q, 2, 1, Duration::from_secs(3))
        .await
        .unwrap()
        .messages[0]
        .clone();
    assert_eq!(c.search_offset(&q, third.store_timestamp).await.unwrap(), 2);
    assert_eq!(
        c.search_offset(&q, third.store_timestamp - 1)
            .await
            .unwrap(),
        2
    );
    assert_eq!(c.search_offset(&q, 0).await.unwrap(), 0);

    // The store host stops answering: with the topic named, its group's replica answers.
    n0.stop_serving().await;
    assert!(inst
        .view_message(&sent[2].offset_msg_id, None)
        .await
        .is_err());
    let m = inst
        .view_message(&sent[2].offset_msg_id, Some(TOPIC))
        .await
        .unwrap();
    assert_eq!(&m.body[..], b"m2");
}

#[tokio::test]
async fn consumer_ids_changed_notifications_reach_event_subscribers() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    b.state.notify_on_heartbeat.store(true, Ordering::SeqCst);
    let instance = ClientInstance::start(client_config(&ns)).unwrap();
    let mut events = instance.events();
    let c = PullConsumer::with_instance(instance.clone(), "CG").unwrap();
    c.subscribe(TOPIC, "*").unwrap();
    c.fetch_subscribe_queues(TOPIC).await.unwrap();
    assert!(instance.send_heartbeat_now().await >= 1);
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ev,
        ClientEvent::ConsumerIdsChanged {
            group: "CG".into(),
            broker: b.addr.clone(),
        }
    );
}

#[tokio::test]
async fn heartbeat_task_stops_when_the_last_handle_is_dropped() {
    let ns = namesrv().await;
    let b = FakeBroker::start(&ns).await;
    b.register("broker-a", 0, 1, &[(TOPIC, 1)]).await;
    let mut cfg = client_config(&ns);
    cfg.heartbeat_interval = Duration::from_millis(50);
    let p = Producer::start(cfg, ProducerConfig::new("PG"))
        .await
        .unwrap();
    p.fetch_publish_queues(TOPIC).await.unwrap();
    wait_for("periodic heartbeats", Duration::from_secs(5), || {
        b.state.heartbeats.lock().unwrap().len() >= 3
    })
    .await;
    drop(p);
    // A heartbeat already on the wire may still land; after that, silence for ten periods.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = b.state.heartbeats.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.state.heartbeats.lock().unwrap().len(), before);
}
