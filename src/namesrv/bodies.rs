//! JSON bodies the nameserver reads and writes, with the field names real clients parse
//! (protocol.md §4): TopicRouteData, ClusterInfo, TopicList, KVTable, and the broker's
//! RegisterBrokerBody / TopicConfigSerializeWrapper / DataVersion.
//!
//! Output is standard JSON: map keys that are numbers in Java (`brokerAddrs` broker ids) are
//! written quoted (`{"0":"ip:port"}`), which Java, Go and C++ clients all accept. Input structs
//! tolerate missing optional fields and unknown fields (5.x additions such as `attributes`,
//! `stateVersion`, `zoneName`), because brokers of several versions register here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Permission bit: the queue may be read (`PermName.PERM_READ`).
pub const PERM_READ: i32 = 4;
/// Permission bit: the queue may be written (`PermName.PERM_WRITE`).
pub const PERM_WRITE: i32 = 2;
/// Permission bit: the topic is a template whose config new topics inherit.
pub const PERM_INHERIT: i32 = 1;

/// `DataVersion`: a broker's topic-config version; the counter increments on every topic change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataVersion {
    #[serde(default)]
    pub counter: i64,
    #[serde(default)]
    pub timestamp: i64,
    /// 5.x only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_version: Option<i64>,
}

/// `TopicConfig` as brokers send it inside a registration (§4.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    pub topic_name: String,
    #[serde(default = "default_queue_nums")]
    pub read_queue_nums: i32,
    #[serde(default = "default_queue_nums")]
    pub write_queue_nums: i32,
    #[serde(default = "default_perm")]
    pub perm: i32,
    #[serde(default = "default_filter_type")]
    pub topic_filter_type: String,
    #[serde(default)]
    pub topic_sys_flag: i32,
    #[serde(default)]
    pub order: bool,
    /// 5.x topic attributes (`+key=value`), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
}

fn default_queue_nums() -> i32 {
    16
}
fn default_perm() -> i32 {
    PERM_READ | PERM_WRITE
}
fn default_filter_type() -> String {
    "SINGLE_TAG".to_string()
}

impl TopicConfig {
    /// A config with RocketMQ's class defaults for everything but the queue counts.
    pub fn new(topic: &str, queues: i32) -> Self {
        TopicConfig {
            topic_name: topic.to_string(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: default_perm(),
            topic_filter_type: default_filter_type(),
            topic_sys_flag: 0,
            order: false,
            attributes: None,
        }
    }
}

/// `TopicConfigSerializeWrapper`: a broker's whole (or incremental) topic table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    #[serde(default)]
    pub data_version: DataVersion,
    #[serde(default)]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

/// `RegisterBrokerBody` (uncompressed form): the REGISTER_BROKER request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    #[serde(default)]
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
    #[serde(default)]
    pub filter_server_list: Vec<String>,
}

/// `QueueData`: one broker group's queues of one topic, as routes carry it.
///
/// The flag is written under both names: `topicSysFlag` (Java ≥ 4.9.0) and `topicSynFlag`
/// (older Java and the Go client, which still reads the old name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    #[serde(default)]
    pub topic_sys_flag: i32,
    #[serde(default)]
    pub topic_syn_flag: i32,
}

impl QueueData {
    /// The queue data a topic config gives this broker group.
    pub fn from_topic_config(broker_name: &str, tc: &TopicConfig) -> Self {
        QueueData {
            broker_name: broker_name.to_string(),
            read_queue_nums: tc.read_queue_nums,
            write_queue_nums: tc.write_queue_nums,
            perm: tc.perm,
            topic_sys_flag: tc.topic_sys_flag,
            topic_syn_flag: tc.topic_sys_flag,
        }
    }
}

/// `BrokerData`: one broker group and its member addresses keyed by brokerId (0 = the master,
/// which for a Raft group is the current leader).
///
/// Written with 5.x's `enableActingMaster` field, always `false` (a Raft group has no acting
/// master): Java's fastjson writes it on every `BrokerData`, and clients that deserialize
/// strictly (the crates.io `rocketmq-client-rust`, whose field has no default) reject a route
/// without it. Reading accepts it or its absence.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    /// Serialized with quoted keys: `{"0":"10.0.0.1:10911"}`.
    pub broker_addrs: BTreeMap<i64, String>,
}

impl Serialize for BrokerData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            cluster: &'a str,
            broker_name: &'a str,
            broker_addrs: &'a BTreeMap<i64, String>,
            enable_acting_master: bool,
        }
        Wire {
            cluster: &self.cluster,
            broker_name: &self.broker_name,
            broker_addrs: &self.broker_addrs,
            enable_acting_master: false,
        }
        .serialize(serializer)
    }
}

/// `TopicRouteData`: the GET_ROUTEINFO_BY_TOPIC response body (§4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueData>,
    pub broker_datas: Vec<BrokerData>,
    /// brokerAddr → filter server addresses; always present, usually empty.
    #[serde(default)]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
}

/// `ClusterInfo`: the GET_BROKER_CLUSTER_INFO response body (§4.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    pub cluster_addr_table: BTreeMap<String, Vec<String>>,
}

/// `TopicList`: topic names, and for the system-topic list a broker address to ask.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicList {
    pub topic_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
}

/// `KVTable`: a KV namespace's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvTable {
    pub table: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::json::to_vec as to_json;

    #[test]
    fn route_data_field_names_and_quoted_ids() {
        let route = TopicRouteData {
            order_topic_conf: None,
            queue_datas: vec![QueueData::from_topic_config(
                "broker-a",
                &TopicConfig::new("T", 4),
            )],
            broker_datas: vec![BrokerData {
                cluster: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([
                    (0, "10.0.0.1:10911".to_string()),
                    (2, "10.0.0.2:10911".to_string()),
                ]),
            }],
            filter_server_table: BTreeMap::new(),
        };
        let text = String::from_utf8(to_json(&route).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"queueDatas":[{"brokerName":"broker-a","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicSysFlag":0,"topicSynFlag":0}],"brokerDatas":[{"cluster":"DefaultCluster","brokerName":"broker-a","brokerAddrs":{"0":"10.0.0.1:10911","2":"10.0.0.2:10911"},"enableActingMaster":false}],"filterServerTable":{}}"#
        );
        let back: TopicRouteData = serde_json::from_str(&text).unwrap();
        assert_eq!(back, route);
    }

    /// The crates.io Rust client (`rocketmq-client-rust` 1.0.0) reads routes with plain serde
    /// into structs without defaults: every field below is required except the `Option`s, and
    /// broker ids are `u64` map keys. This mirror of its types must accept our output.
    #[test]
    fn route_parses_in_a_strict_reader_like_the_rust_client() {
        use std::collections::HashMap;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct StrictQueueData {
            #[serde(rename = "brokerName")]
            broker_name: String,
            #[serde(rename = "readQueueNums")]
            read_queue_nums: u32,
            #[serde(rename = "writeQueueNums")]
            write_queue_nums: u32,
            perm: u32,
            #[serde(rename = "topicSysFlag")]
            topic_sys_flag: u32,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct StrictBrokerData {
            cluster: String,
            #[serde(rename = "brokerName")]
            broker_name: String,
            #[serde(rename = "brokerAddrs")]
            broker_addrs: HashMap<u64, String>,
            #[serde(rename = "zoneName")]
            zone_name: Option<String>,
            #[serde(rename = "enableActingMaster")]
            enable_acting_master: bool,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct StrictRoute {
            #[serde(rename = "orderTopicConf")]
            order_topic_conf: Option<String>,
            #[serde(rename = "queueDatas")]
            queue_datas: Vec<StrictQueueData>,
            #[serde(rename = "brokerDatas")]
            broker_datas: Vec<StrictBrokerData>,
            #[serde(rename = "filterServerTable")]
            filter_server_table: HashMap<String, Vec<String>>,
        }
        let route = TopicRouteData {
            order_topic_conf: None,
            queue_datas: vec![QueueData::from_topic_config(
                "broker-a",
                &TopicConfig::new("T", 4),
            )],
            broker_datas: vec![BrokerData {
                cluster: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([(0, "127.0.0.1:10911".to_string())]),
            }],
            filter_server_table: BTreeMap::new(),
        };
        let bytes = to_json(&route).unwrap();
        let strict: StrictRoute = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(strict.broker_datas[0].broker_addrs[&0], "127.0.0.1:10911");
        assert!(!strict.broker_datas[0].enable_acting_master);
        assert_eq!(strict.queue_datas[0].write_queue_nums, 4);
        // Our own reader still takes a Java route without the field.
        let java = r#"{"brokerDatas":[{"brokerAddrs":{"0":"h:1"},"brokerName":"a","cluster":"C"}],"filterServerTable":{},"queueDatas":[]}"#;
        let back: TopicRouteData = serde_json::from_str(java).unwrap();
        assert_eq!(back.broker_datas[0].broker_addrs[&0], "h:1");
    }

    #[test]
    fn register_body_as_a_java_broker_sends_it() {
        // fastjson output of RegisterBrokerBody from a 5.x broker (extra fields included).
        let text = r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"TopicTest":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4},"TBW102":{"order":false,"perm":7,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TBW102","topicSysFlag":0,"writeQueueNums":8}}}}"#;
        let body: RegisterBrokerBody = serde_json::from_str(text).unwrap();
        let w = &body.topic_config_serialize_wrapper;
        assert_eq!(w.data_version.counter, 3);
        assert_eq!(w.topic_config_table["TBW102"].perm, 7);
        assert_eq!(w.topic_config_table["TopicTest"].write_queue_nums, 4);
    }

    #[test]
    fn cluster_info_and_kv_shapes() {
        let mut ci = ClusterInfo::default();
        ci.cluster_addr_table
            .insert("C".into(), vec!["broker-a".to_string()]);
        ci.broker_addr_table.insert(
            "broker-a".into(),
            BrokerData {
                cluster: "C".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([(0, "h:1".to_string())]),
            },
        );
        assert_eq!(
            String::from_utf8(to_json(&ci).unwrap()).unwrap(),
            r#"{"brokerAddrTable":{"broker-a":{"cluster":"C","brokerName":"broker-a","brokerAddrs":{"0":"h:1"},"enableActingMaster":false}},"clusterAddrTable":{"C":["broker-a"]}}"#
        );
        let kv = KvTable {
            table: BTreeMap::from([("k".to_string(), "v".to_string())]),
        };
        assert_eq!(to_json(&kv).unwrap(), br#"{"table":{"k":"v"}}"#);
        let tl = TopicList {
            topic_list: vec!["a".into()],
            broker_addr: None,
        };
        assert_eq!(to_json(&tl).unwrap(), br#"{"topicList":["a"]}"#);
    }
}
