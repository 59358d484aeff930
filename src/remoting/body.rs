//! JSON bodies exchanged between clients and the broker (protocol.md §4.3, §4.6), with the
//! field names and quirks real clients use. Route and cluster bodies belong to the
//! nameserver (`namesrv::bodies`).
//!
//! Reading is lenient where clients differ: the Go client sends `codeSet` entries as strings
//! and `subVersion` in nanoseconds; unknown fields (5.x additions) are ignored; missing sets
//! are empty. Writing follows [`super::json`]: standard JSON, except `MessageQueue`-keyed
//! tables, which use fastjson's object-key form because that is what the Java admin parses.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::json::{self, object_key_map, JsonError, ObjectWriter};

/// A queue of a topic on one broker group. Ordered by (topic, brokerName, queueId).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
}

impl MessageQueue {
    /// A queue from its parts.
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        MessageQueue {
            topic: topic.into(),
            broker_name: broker_name.into(),
            queue_id,
        }
    }
}

/// `ConsumeType`: pull/lite (`CONSUME_ACTIVELY`) or push (`CONSUME_PASSIVELY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumeType {
    ConsumeActively,
    ConsumePassively,
    /// A name this table does not know (newer clients).
    #[serde(other)]
    Unknown,
}

/// `MessageModel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageModel {
    Clustering,
    Broadcasting,
    #[serde(other)]
    Unknown,
}

/// `ConsumeFromWhere`, deprecated values included (old clients still send them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumeFromWhere {
    ConsumeFromLastOffset,
    ConsumeFromFirstOffset,
    ConsumeFromTimestamp,
    ConsumeFromLastOffsetAndFromMinWhenBootFirst,
    ConsumeFromMinOffset,
    ConsumeFromMaxOffset,
    #[serde(other)]
    Unknown,
}

/// `HeartbeatData`: the HEART_BEAT (34) body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(default)]
    pub producer_data_set: Vec<ProducerData>,
    #[serde(default)]
    pub consumer_data_set: Vec<ConsumerData>,
    /// 5.x heartbeat V2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_fingerprint: Option<i32>,
    /// 5.x heartbeat V2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_sub: Option<bool>,
}

/// A producer group the client belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerData {
    pub group_name: String,
}

/// A consumer group the client belongs to, with its subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerData {
    pub group_name: String,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
    #[serde(default)]
    pub subscription_data_set: Vec<SubscriptionData>,
    #[serde(default)]
    pub unit_mode: bool,
}

/// One topic subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionData {
    #[serde(default)]
    pub class_filter_mode: bool,
    pub topic: String,
    /// Expression as written (`TagA || TagB`, `*`, or SQL92).
    pub sub_string: String,
    #[serde(default)]
    pub tags_set: Vec<String>,
    /// Tag hash codes as the client computed them (numbers from Java, strings from Go).
    /// Servers should recompute them from `tags_set` rather than trust these.
    #[serde(default, deserialize_with = "lenient_i32_vec")]
    pub code_set: Vec<i32>,
    /// Java: ms timestamp of subscribe; Go: Unix nanoseconds.
    #[serde(default)]
    pub sub_version: i64,
    /// `TAG` (default when absent) or `SQL92`.
    #[serde(default = "default_expression_type")]
    pub expression_type: String,
}

fn default_expression_type() -> String {
    "TAG".to_owned()
}

/// Accepts `[1, "2", -3]`: numbers or numeric strings.
fn lenient_i32_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrString {
        Num(i64),
        Str(String),
    }
    let raw = Option::<Vec<NumOrString>>::deserialize(d)?.unwrap_or_default();
    raw.into_iter()
        .map(|v| match v {
            // Java hash codes are i32; a wider number is truncated as Java's (int) cast would.
            NumOrString::Num(n) => Ok(n as i32),
            NumOrString::Str(s) => s.trim().parse::<i64>().map(|n| n as i32).map_err(|_| {
                serde::de::Error::custom(format!("codeSet entry {s:?} is not a number"))
            }),
        })
        .collect()
}

/// LOCK_BATCH_MQ (41) request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    pub consumer_group: String,
    pub client_id: String,
    #[serde(default)]
    pub mq_set: Vec<MessageQueue>,
    /// 5.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_this_broker: Option<bool>,
}

/// UNLOCK_BATCH_MQ (42) request body (same shape as the lock request).
pub type UnlockBatchRequestBody = LockBatchRequestBody;

/// LOCK_BATCH_MQ (41) response body: the queues now held by the requesting client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet", default)]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

/// GET_CONSUMER_LIST_BY_GROUP (38) response body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumerListByGroupResponseBody {
    pub consumer_id_list: Vec<String>,
}

/// One client connection as admin bodies describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub client_id: String,
    pub client_addr: String,
    /// Language name (`JAVA`, `GO`, ...).
    pub language: String,
    pub version: i32,
}

/// GET_CONSUMER_CONNECTION_LIST (203) response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerConnection {
    pub connection_set: Vec<Connection>,
    pub subscription_table: BTreeMap<String, SubscriptionData>,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

/// GET_PRODUCER_CONNECTION_LIST (204) response body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerConnection {
    pub connection_set: Vec<Connection>,
}

/// Per-queue entry of TopicStatsTable (GET_TOPIC_STATS_INFO 202).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicOffset {
    pub min_offset: i64,
    pub max_offset: i64,
    pub last_update_timestamp: i64,
}

/// Per-queue entry of ConsumeStats (GET_CONSUME_STATS 208).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetWrapper {
    pub broker_offset: i64,
    pub consumer_offset: i64,
    pub last_timestamp: i64,
}

/// `{"offsetTable":{{mq}:{...},...}}` — TopicStatsTable.
pub fn encode_topic_stats_table(
    table: &BTreeMap<MessageQueue, TopicOffset>,
) -> Result<Vec<u8>, JsonError> {
    let body = ObjectWriter::new()
        .raw_field("offsetTable", &object_key_map(table.iter())?)?
        .finish();
    Ok(body.into_bytes())
}

/// `{"consumeTps":D,"offsetTable":{{mq}:{...},...}}` — ConsumeStats.
pub fn encode_consume_stats(
    table: &BTreeMap<MessageQueue, OffsetWrapper>,
    consume_tps: f64,
) -> Result<Vec<u8>, JsonError> {
    let body = ObjectWriter::new()
        .field("consumeTps", &consume_tps)?
        .raw_field("offsetTable", &object_key_map(table.iter())?)?
        .finish();
    Ok(body.into_bytes())
}

/// `{"offsetTable":{{mq}:offset,...}}` — ResetOffsetBody.
pub fn encode_reset_offset_body(table: &BTreeMap<MessageQueue, i64>) -> Result<Vec<u8>, JsonError> {
    let body = ObjectWriter::new()
        .raw_field("offsetTable", &object_key_map(table.iter())?)?
        .finish();
    Ok(body.into_bytes())
}

/// Reads the `offsetTable` of any of the bodies above (fastjson object keys, or standard
/// JSON whose keys hold MessageQueue JSON text).
pub fn decode_offset_table<V: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<BTreeMap<MessageQueue, V>, JsonError> {
    let value = json::parse_lenient(body)?;
    let table = value
        .get("offsetTable")
        .and_then(|t| t.as_object())
        .ok_or_else(|| JsonError {
            offset: 0,
            reason: "offsetTable is missing or not an object".to_owned(),
        })?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        let mq: MessageQueue = json::parse_object_key(k)?;
        let v: V = serde_json::from_value(v.clone()).map_err(|e| JsonError {
            offset: 0,
            reason: format!("offsetTable value for {k}: {e}"),
        })?;
        out.insert(mq, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// protocol.md §4.3 (annotations removed), as a Java push consumer sends it.
    const JAVA_HEARTBEAT: &str = r#"{"clientID":"10.0.0.9@12345#987654321","producerDataSet":[{"groupName":"PG"}],"consumerDataSet":[{"groupName":"CG","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","unitMode":false,"subscriptionDataSet":[{"classFilterMode":false,"topic":"TopicTest","subString":"TagA || TagB","tagsSet":["TagA","TagB"],"codeSet":[2598919,2598920],"subVersion":1700000000000,"expressionType":"TAG"}]}]}"#;

    #[test]
    fn golden_java_heartbeat() {
        let hb: HeartbeatData = json::from_slice(JAVA_HEARTBEAT.as_bytes()).unwrap();
        assert_eq!(hb.client_id, "10.0.0.9@12345#987654321");
        assert_eq!(hb.producer_data_set[0].group_name, "PG");
        let cd = &hb.consumer_data_set[0];
        assert_eq!(cd.consume_type, ConsumeType::ConsumePassively);
        assert_eq!(cd.message_model, MessageModel::Clustering);
        assert_eq!(
            cd.consume_from_where,
            ConsumeFromWhere::ConsumeFromLastOffset
        );
        let sd = &cd.subscription_data_set[0];
        assert_eq!(sd.code_set, vec![2_598_919, 2_598_920]);
        assert_eq!(sd.tags_set, vec!["TagA", "TagB"]);
        // Round trip through our writer.
        let again: HeartbeatData = json::from_slice(&json::to_vec(&hb).unwrap()).unwrap();
        assert_eq!(again, hb);
    }

    #[test]
    fn golden_go_heartbeat_with_string_codes_and_no_producers() {
        let text = r#"{"clientID":"10.0.0.9@4242","consumerDataSet":[{"groupName":"CG","consumeType":"CONSUME_PASSIVELY","messageModel":"BROADCASTING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","unitMode":false,"subscriptionDataSet":[{"classFilterMode":false,"topic":"T","subString":"*","tagsSet":[],"codeSet":["2598919"],"subVersion":1700000000000000000,"expressionType":"TAG"}]}]}"#;
        let hb: HeartbeatData = json::from_slice(text.as_bytes()).unwrap();
        assert!(hb.producer_data_set.is_empty());
        let sd = &hb.consumer_data_set[0].subscription_data_set[0];
        assert_eq!(sd.code_set, vec![2_598_919]);
        assert_eq!(sd.sub_version, 1_700_000_000_000_000_000);
        assert_eq!(
            hb.consumer_data_set[0].message_model,
            MessageModel::Broadcasting
        );
    }

    #[test]
    fn unknown_enum_names_and_fields_are_tolerated() {
        let text = r#"{"clientID":"c","consumerDataSet":[{"groupName":"CG","consumeType":"CONSUME_POP","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_SOMEWHERE","subscriptionDataSet":[{"topic":"T","subString":"*","attributes":{}}]}],"heartbeatFingerprint":7,"futureField":1}"#;
        let hb: HeartbeatData = json::from_slice(text.as_bytes()).unwrap();
        let cd = &hb.consumer_data_set[0];
        assert_eq!(cd.consume_type, ConsumeType::Unknown);
        assert_eq!(cd.consume_from_where, ConsumeFromWhere::Unknown);
        assert_eq!(cd.subscription_data_set[0].expression_type, "TAG");
        assert_eq!(hb.heartbeat_fingerprint, Some(7));
    }

    #[test]
    fn bad_code_set_entry_is_an_error() {
        let text = r#"{"clientID":"c","consumerDataSet":[{"groupName":"CG","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"topic":"T","subString":"*","codeSet":["x"]}]}]}"#;
        assert!(json::from_slice::<HeartbeatData>(text.as_bytes()).is_err());
    }

    #[test]
    fn golden_lock_bodies() {
        let text = r#"{"consumerGroup":"G","clientId":"C","mqSet":[{"topic":"t","brokerName":"b","queueId":0}]}"#;
        let req: LockBatchRequestBody = json::from_slice(text.as_bytes()).unwrap();
        assert_eq!(req.mq_set, vec![MessageQueue::new("t", "b", 0)]);
        let resp = LockBatchResponseBody {
            lock_ok_mq_set: req.mq_set.clone(),
        };
        assert_eq!(
            String::from_utf8(json::to_vec(&resp).unwrap()).unwrap(),
            r#"{"lockOKMQSet":[{"topic":"t","brokerName":"b","queueId":0}]}"#
        );
        let ids = GetConsumerListByGroupResponseBody {
            consumer_id_list: vec!["id1".into()],
        };
        assert_eq!(
            json::to_vec(&ids).unwrap(),
            br#"{"consumerIdList":["id1"]}"#
        );
    }

    #[test]
    fn offset_tables_use_fastjson_object_keys_and_read_back() {
        let mut table = BTreeMap::new();
        table.insert(
            MessageQueue::new("t", "b", 0),
            TopicOffset {
                min_offset: 0,
                max_offset: 10,
                last_update_timestamp: 5,
            },
        );
        let body = encode_topic_stats_table(&table).unwrap();
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"offsetTable":{{"topic":"t","brokerName":"b","queueId":0}:{"minOffset":0,"maxOffset":10,"lastUpdateTimestamp":5}}}"#
        );
        assert_eq!(decode_offset_table::<TopicOffset>(&body).unwrap(), table);

        // A real broker's ResetOffsetBody (fields in fastjson's alphabetical order).
        let real = br#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:11110,{"brokerName":"b","queueId":1,"topic":"t"}:0}}"#;
        let parsed = decode_offset_table::<i64>(real).unwrap();
        assert_eq!(parsed[&MessageQueue::new("t", "b", 0)], 11110);
        let back = encode_reset_offset_body(&parsed).unwrap();
        assert_eq!(decode_offset_table::<i64>(&back).unwrap(), parsed);

        let mut cs = BTreeMap::new();
        cs.insert(MessageQueue::new("t", "b", 1), OffsetWrapper::default());
        let body = encode_consume_stats(&cs, 1.5).unwrap();
        assert!(body.starts_with(br#"{"consumeTps":1.5,"offsetTable":{{"#));
    }
}
