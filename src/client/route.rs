//! Topic routes: asking the nameservers where a topic lives (GET_ROUTEINFO_BY_TOPIC) and the
//! queues and broker addresses a route gives producers and consumers (protocol.md §4.2).
//!
//! A [`TopicRoute`] wraps the nameserver's [`TopicRouteData`] (the `namesrv::bodies` type,
//! reused as is). For a Raft broker group the nameserver lists the current leader as
//! brokerId 0, so "the master" here is always the leader the client must write to.
//! [`RouteTable`] caches routes per topic and refreshes them when they are older than the
//! refresh interval or when a caller reports a failure.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::namesrv::bodies::{TopicRouteData, PERM_READ, PERM_WRITE};
use crate::remoting::body::MessageQueue;
use crate::remoting::header::namesrv::GetRouteInfoRequestHeader;
use crate::remoting::{json, RemotingCommand, RequestCode, ResponseCode};

use super::error::{ClientError, ClientResult};
use super::{lock, Transport};

/// Broker id under which the nameserver lists a group's leader (`MixAll.MASTER_ID`).
pub const MASTER_ID: i64 = 0;
/// Topic a producer falls back to when its topic is unknown, so the broker auto-creates it.
pub const DEFAULT_TOPIC: &str = "TBW102";
/// How long a provisional route is used before the nameservers are asked again.
pub const PROVISIONAL_TTL: Duration = Duration::from_secs(1);
/// Queues a producer asks for when a topic is auto-created (Java and Go default).
pub const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;

/// A topic's route as of some instant.
#[derive(Debug, Clone)]
pub struct TopicRoute {
    /// The topic this route is for.
    pub topic: String,
    /// The nameserver's answer (for a provisional route: the default topic's). Read-only:
    /// the write queues are derived from it once.
    data: TopicRouteData,
    /// True when the topic is unknown and this route was built from [`DEFAULT_TOPIC`]'s so
    /// the first send can auto-create it.
    pub provisional: bool,
    fetched_at: Instant,
    /// `write_queues`, computed once: a producer picks from them on every send.
    write_queues: Vec<MessageQueue>,
}

impl TopicRoute {
    /// A route fetched now.
    pub fn new(topic: impl Into<String>, data: TopicRouteData) -> Self {
        let mut route = TopicRoute {
            topic: topic.into(),
            data,
            provisional: false,
            fetched_at: Instant::now(),
            write_queues: Vec::new(),
        };
        route.write_queues = route.compute_write_queues();
        route
    }

    /// The route a producer uses for an unknown topic: the default topic's brokers, with at
    /// most `queue_nums` write queues each (as the Java producer does).
    pub fn provisional(
        topic: impl Into<String>,
        default: &TopicRouteData,
        queue_nums: i32,
    ) -> Self {
        let mut data = default.clone();
        for q in &mut data.queue_datas {
            q.write_queue_nums = q.write_queue_nums.min(queue_nums);
            q.read_queue_nums = q.read_queue_nums.min(queue_nums);
        }
        TopicRoute {
            provisional: true,
            ..TopicRoute::new(topic, data)
        }
    }

    /// The nameserver's answer this route was built from.
    pub fn data(&self) -> &TopicRouteData {
        &self.data
    }

    /// When this route was fetched.
    pub fn age(&self) -> Duration {
        self.fetched_at.elapsed()
    }

    /// The leader's (brokerId 0) address of a broker group.
    pub fn leader_addr(&self, broker_name: &str) -> Option<&str> {
        self.data
            .broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
            .and_then(|b| b.broker_addrs.get(&MASTER_ID))
            .map(String::as_str)
    }

    /// Where to send reads for a broker group: the leader, else the lowest listed id.
    pub fn read_addr(&self, broker_name: &str) -> Option<&str> {
        let b = self
            .data
            .broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)?;
        b.broker_addrs
            .get(&MASTER_ID)
            .or_else(|| b.broker_addrs.values().next())
            .map(String::as_str)
    }

    /// Queues a producer may write: for each writable queue data (sorted by broker name)
    /// whose group has a leader, queue ids `0..writeQueueNums`.
    ///
    /// A non-empty `orderTopicConf` (`brokerName:queueCount;...`) overrides the queue data,
    /// as for Java producers of ordered topics.
    pub fn write_queues(&self) -> &[MessageQueue] {
        &self.write_queues
    }

    fn compute_write_queues(&self) -> Vec<MessageQueue> {
        if let Some(conf) = self
            .data
            .order_topic_conf
            .as_deref()
            .filter(|c| !c.is_empty())
        {
            return conf
                .split(';')
                .filter_map(|item| {
                    let (name, n) = item.split_once(':')?;
                    let n: i32 = n.trim().parse().ok()?;
                    let name = name.trim();
                    self.leader_addr(name)?;
                    Some(
                        (0..n.max(0)).map(move |id| {
                            MessageQueue::new(self.topic.clone(), name.to_owned(), id)
                        }),
                    )
                })
                .flatten()
                .collect();
        }
        let mut qds: Vec<_> = self
            .data
            .queue_datas
            .iter()
            .filter(|q| q.perm & PERM_WRITE != 0 && self.leader_addr(&q.broker_name).is_some())
            .collect();
        qds.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        qds.iter()
            .flat_map(|q| {
                (0..q.write_queue_nums.max(0))
                    .map(|id| MessageQueue::new(self.topic.clone(), q.broker_name.clone(), id))
            })
            .collect()
    }

    /// Queues a consumer may read: for each readable queue data, queue ids
    /// `0..readQueueNums`, sorted.
    pub fn read_queues(&self) -> Vec<MessageQueue> {
        let mut out: Vec<MessageQueue> = self
            .data
            .queue_datas
            .iter()
            .filter(|q| q.perm & PERM_READ != 0)
            .flat_map(|q| {
                (0..q.read_queue_nums.max(0))
                    .map(|id| MessageQueue::new(self.topic.clone(), q.broker_name.clone(), id))
            })
            .collect();
        out.sort();
        out
    }

    /// Every broker address in the route; with `leaders_only`, brokerId 0 only.
    pub fn broker_addrs(&self, leaders_only: bool) -> BTreeSet<String> {
        self.data
            .broker_datas
            .iter()
            .flat_map(|b| b.broker_addrs.iter())
            .filter(|(id, _)| !leaders_only || **id == MASTER_ID)
            .map(|(_, addr)| addr.clone())
            .collect()
    }
}

/// Cache of topic routes, filled from the nameservers.
#[derive(Debug)]
pub struct RouteTable {
    namesrv_addrs: Vec<String>,
    ttl: Duration,
    routes: Mutex<HashMap<String, Arc<TopicRoute>>>,
    /// Nameserver to try first next time (rotates past one that failed).
    first_ns: Mutex<usize>,
    /// One lookup at a time per topic.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RouteTable {
    /// A table asking `namesrv_addrs` in turn; `ttl` is the refresh interval.
    pub fn new(namesrv_addrs: Vec<String>, ttl: Duration) -> Self {
        RouteTable {
            namesrv_addrs,
            ttl,
            routes: Mutex::new(HashMap::new()),
            first_ns: Mutex::new(0),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// The cached route of `topic`, however old.
    pub fn cached(&self, topic: &str) -> Option<Arc<TopicRoute>> {
        lock(&self.routes).get(topic).cloned()
    }

    /// Every cached route.
    pub fn all(&self) -> Vec<Arc<TopicRoute>> {
        lock(&self.routes).values().cloned().collect()
    }

    /// Topics with a cached route.
    pub fn topics(&self) -> Vec<String> {
        lock(&self.routes).keys().cloned().collect()
    }

    /// Stores a route; returns true when it brings broker addresses no cached route had.
    pub fn insert(&self, route: TopicRoute) -> bool {
        let mut routes = lock(&self.routes);
        let known: BTreeSet<String> = routes
            .values()
            .flat_map(|r| r.broker_addrs(false))
            .collect();
        let new_addrs = route.broker_addrs(false).iter().any(|a| !known.contains(a));
        routes.insert(route.topic.clone(), Arc::new(route));
        new_addrs
    }

    /// The route of `topic`: the cached one if there is one (the background task refreshes
    /// it every interval), else one fetched now. A route older than twice the refresh
    /// interval (the background task is not keeping up) is fetched again, and so is a
    /// provisional one after [`PROVISIONAL_TTL`] (to pick up the auto-created topic).
    pub(crate) async fn get(&self, net: &Transport, topic: &str) -> ClientResult<Arc<TopicRoute>> {
        if let Some(r) = self.cached(topic) {
            let max_age = if r.provisional {
                PROVISIONAL_TTL.min(self.ttl)
            } else {
                self.ttl * 2
            };
            if r.age() < max_age {
                return Ok(r);
            }
        }
        self.refresh_if_older(net, topic, Instant::now()).await
    }

    /// Fetches `topic`'s route now and caches it (the periodic refresh).
    pub(crate) async fn refresh(
        &self,
        net: &Transport,
        topic: &str,
    ) -> ClientResult<Arc<TopicRoute>> {
        self.refresh_if_older(net, topic, Instant::now()).await
    }

    /// Fetches `topic`'s route unless the cached one was fetched after `since` (a caller
    /// that saw a failure at `since` needs a route at least that new). Concurrent callers
    /// for one topic wait for a single lookup instead of each asking the nameservers. A
    /// stale cached route is returned if every nameserver is unreachable (not if they say
    /// the topic does not exist).
    pub(crate) async fn refresh_if_older(
        &self,
        net: &Transport,
        topic: &str,
        since: Instant,
    ) -> ClientResult<Arc<TopicRoute>> {
        let flight = lock(&self.in_flight)
            .entry(topic.to_owned())
            .or_default()
            .clone();
        // Held across the lookup on purpose: the other callers wait for its result.
        let _one_lookup = flight.lock().await;
        if let Some(r) = self.cached(topic) {
            if r.fetched_at > since {
                return Ok(r);
            }
        }
        match self.fetch(net, topic).await {
            Ok(data) => {
                let route = TopicRoute::new(topic, data);
                if self.insert(route) {
                    net.wake_heartbeat();
                }
                self.cached(topic).ok_or_else(|| ClientError::NoRoute {
                    topic: topic.to_owned(),
                    reason: "route vanished from the cache".to_owned(),
                })
            }
            Err(e @ ClientError::TopicNotExist { .. }) => Err(e),
            Err(e) => match self.cached(topic) {
                Some(stale) => {
                    tracing::warn!(topic, cause = %e, "route refresh failed, using the cached route");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    /// Asks each nameserver in turn (starting after the last one that failed) for `topic`'s
    /// route. TOPIC_NOT_EXIST only when every nameserver that answered said so.
    pub(crate) async fn fetch(&self, net: &Transport, topic: &str) -> ClientResult<TopicRouteData> {
        if self.namesrv_addrs.is_empty() {
            return Err(ClientError::Config("no nameserver address".to_owned()));
        }
        let n = self.namesrv_addrs.len();
        let first = *lock(&self.first_ns) % n;
        let mut not_exist = false;
        let mut last_err = None;
        for i in 0..n {
            let idx = (first + i) % n;
            let addr = &self.namesrv_addrs[idx];
            let req = RemotingCommand::request(RequestCode::GetRouteinfoByTopic).with_header(
                &GetRouteInfoRequestHeader {
                    topic: topic.to_owned(),
                    accept_standard_json_only: None,
                },
            );
            let result = net.invoke(addr, req).await;
            let resp = match result {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::debug!(namesrv = %addr, topic, cause = %e, "route lookup failed");
                    *lock(&self.first_ns) = idx + 1;
                    last_err = Some(e);
                    continue;
                }
            };
            match resp.response_code() {
                Some(ResponseCode::Success) => {
                    let body = resp.body.as_deref().unwrap_or_default();
                    return json::from_slice::<TopicRouteData>(body).map_err(|e| {
                        ClientError::BadResponse {
                            addr: addr.clone(),
                            reason: format!("TopicRouteData of {topic:?}: {e}"),
                        }
                    });
                }
                Some(ResponseCode::TopicNotExist) => not_exist = true,
                _ => last_err = Some(ClientError::broker(addr, resp.code, resp.remark)),
            }
        }
        if not_exist {
            return Err(ClientError::TopicNotExist {
                topic: topic.to_owned(),
            });
        }
        Err(ClientError::NoRoute {
            topic: topic.to_owned(),
            reason: last_err
                .map(|e| e.to_string())
                .unwrap_or_else(|| "no nameserver answered".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namesrv::bodies::{BrokerData, QueueData, TopicConfig};
    use std::collections::BTreeMap;

    fn route() -> TopicRoute {
        let mut ro = QueueData::from_topic_config("broker-c", &TopicConfig::new("T", 2));
        ro.perm = PERM_READ;
        let data = TopicRouteData {
            order_topic_conf: None,
            queue_datas: vec![
                QueueData::from_topic_config("broker-b", &TopicConfig::new("T", 2)),
                QueueData::from_topic_config("broker-a", &TopicConfig::new("T", 3)),
                ro,
                // A group without a leader gets no write queues.
                QueueData::from_topic_config("broker-d", &TopicConfig::new("T", 1)),
            ],
            broker_datas: vec![
                BrokerData {
                    cluster: "C".into(),
                    broker_name: "broker-a".into(),
                    broker_addrs: BTreeMap::from([(0, "a0".into()), (1, "a1".into())]),
                },
                BrokerData {
                    cluster: "C".into(),
                    broker_name: "broker-b".into(),
                    broker_addrs: BTreeMap::from([(0, "b0".into())]),
                },
                BrokerData {
                    cluster: "C".into(),
                    broker_name: "broker-c".into(),
                    broker_addrs: BTreeMap::from([(0, "c0".into())]),
                },
                BrokerData {
                    cluster: "C".into(),
                    broker_name: "broker-d".into(),
                    broker_addrs: BTreeMap::from([(2, "d2".into())]),
                },
            ],
            filter_server_table: BTreeMap::new(),
        };
        TopicRoute::new("T", data)
    }

    #[test]
    fn write_queues_need_write_perm_and_a_leader() {
        let r = route();
        let qs: Vec<(String, i32)> = r
            .write_queues()
            .iter()
            .map(|q| (q.broker_name.clone(), q.queue_id))
            .collect();
        let expect: Vec<(String, i32)> = [("broker-a", 0), ("broker-a", 1), ("broker-a", 2)]
            .into_iter()
            .chain([("broker-b", 0), ("broker-b", 1)])
            .map(|(b, q)| (b.to_owned(), q))
            .collect();
        assert_eq!(qs, expect);
        assert_eq!(r.leader_addr("broker-a"), Some("a0"));
        assert_eq!(r.leader_addr("broker-d"), None);
        assert_eq!(r.read_addr("broker-d"), Some("d2"));
    }

    #[test]
    fn read_queues_need_read_perm() {
        let qs = route().read_queues();
        assert_eq!(qs.len(), 3 + 2 + 2 + 1);
        assert!(qs.iter().any(|q| q.broker_name == "broker-c"));
        assert_eq!(route().broker_addrs(true).len(), 3);
        assert_eq!(route().broker_addrs(false).len(), 5);
    }

    #[test]
    fn order_topic_conf_overrides_write_queues() {
        let mut data = route().data;
        data.order_topic_conf = Some("broker-b:3;broker-d:2;junk".into());
        let r = TopicRoute::new("T", data);
        let qs = r.write_queues();
        // broker-d has no leader; "junk" does not parse.
        assert_eq!(qs.len(), 3);
        assert!(qs.iter().all(|q| q.broker_name == "broker-b"));
    }

    #[test]
    fn provisional_route_caps_queue_counts() {
        let r = TopicRoute::provisional("New", &route().data, 2);
        assert!(r.provisional);
        assert!(r
            .write_queues()
            .iter()
            .all(|q| q.topic == "New" && q.queue_id < 2));
    }
}
