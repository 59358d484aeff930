//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320).
//!
//! The request becomes stored-message bytes (RocketMQ layout, one full record per message,
//! BODYCRC computed, STOREHOST = this node, born host = the client's socket address), the
//! proposer sequences queue offsets and store timestamps and proposes one entry, and the
//! answer comes once that entry is committed and applied: msgId = offsetMsgId(s), queueId,
//! queueOffset of the first message. Bodies are stored as sent (compressed ones included).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use raftmq_raft::RaftGroupError;
use raftmq_store::message::{
    self, offset_msg_id, parse_properties, property, sysflag, MessageError, StoredMessage,
};
use raftmq_store::metadata::TopicConfig;

use super::{error_response, not_leader};
use crate::broker::topic::{resolve_for_send, SendTopic};
use crate::broker::BrokerState;
use crate::namesrv::bodies::PERM_WRITE;
use crate::remoting::header::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use crate::remoting::{ConnContext, ProcessResult, RemotingCommand, RequestCode, ResponseCode};

static NEXT_QUEUE: AtomicUsize = AtomicUsize::new(0);

/// One message of a batch wire body (§5.6).
struct BatchItem<'a> {
    flag: i32,
    body: &'a [u8],
    properties: &'a str,
}

/// Split a SEND_BATCH_MESSAGE body into its messages.
fn parse_batch(buf: &[u8]) -> Result<Vec<BatchItem<'_>>, String> {
    let mut out = vec![];
    let mut at = 0usize;
    let rd_i32 = |b: &[u8], o: usize| -> Option<i32> {
        b.get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .map(i32::from_be_bytes)
    };
    while at < buf.len() {
        let bad = |why: &str| format!("batch message at byte {at}: {why}");
        let total = rd_i32(buf, at).ok_or_else(|| bad("truncated size"))?;
        if total < 22 || at + total as usize > buf.len() {
            return Err(bad(&format!("size {total} does not fit")));
        }
        let rec = &buf[at..at + total as usize];
        let flag = rd_i32(rec, 12).ok_or_else(|| bad("truncated flag"))?;
        let body_len = rd_i32(rec, 16).ok_or_else(|| bad("truncated body length"))?;
        if body_len < 0 || 20 + body_len as usize + 2 > rec.len() {
            return Err(bad(&format!("body length {body_len} does not fit")));
        }
        let body = &rec[20..20 + body_len as usize];
        let p = 20 + body_len as usize;
        let props_len = rec
            .get(p..p + 2)
            .and_then(|s| s.try_into().ok())
            .map(i16::from_be_bytes)
            .ok_or_else(|| bad("truncated properties length"))?;
        if props_len < 0 || p + 2 + props_len as usize != rec.len() {
            return Err(bad(&format!("properties length {props_len} does not fit")));
        }
        let properties =
            std::str::from_utf8(&rec[p + 2..]).map_err(|_| bad("properties are not UTF-8"))?;
        out.push(BatchItem {
            flag,
            body,
            properties,
        });
        at += total as usize;
    }
    if out.is_empty() {
        return Err("empty batch".into());
    }
    Ok(out)
}

fn props_vec(raw: &str) -> Vec<(String, String)> {
    parse_properties(raw)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn illegal(req: &RemotingCommand, why: impl Into<String>) -> ProcessResult {
    Ok(Some(RemotingCommand::error_to(
        req,
        ResponseCode::MessageIllegal,
        why,
    )))
}

pub async fn process(
    state: &Arc<BrokerState>,
    ctx: &ConnContext,
    req: RemotingCommand,
) -> ProcessResult {
    let h = SendMessageRequestHeader::decode(&req)?;
    let batch = req.code == RequestCode::SendBatchMessage.code();
    if let Err(e) = state.node.check_writable() {
        return Ok(Some(error_response(state, &req, e)));
    }
    if state.topics.broker_perm() & PERM_WRITE == 0 {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::NoPermission,
            format!(
                "the broker[{}] sending message is forbidden",
                state.cfg.broker_name
            ),
        )));
    }
    let header_props = h.properties.clone().unwrap_or_default();
    let hp = props_vec(&header_props);
    if hp
        .iter()
        .any(|(k, v)| k == property::TRAN_MSG && v == "true")
        || h.sys_flag & sysflag::TRANSACTION_MASK != 0
    {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::NoPermission,
            "transactional messages are not supported by this broker yet",
        )));
    }

    // Topic: existing, auto-created from the template, or refused.
    let topic_cfg = match resolve_topic(state, &h).await {
        Ok(t) => t,
        Err(resp) => return Ok(Some(resp.into_response(&req, state))),
    };
    if topic_cfg.perm & PERM_WRITE == 0 {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::NoPermission,
            format!("the topic[{}] sending message is forbidden", h.topic),
        )));
    }
    let queues = topic_cfg.write_queue_nums.max(topic_cfg.read_queue_nums);
    let queue_id = if h.queue_id < 0 {
        let w = topic_cfg.write_queue_nums.max(1) as usize;
        (NEXT_QUEUE.fetch_add(1, Ordering::Relaxed) % w) as i32
    } else {
        h.queue_id
    };
    if queue_id >= queues {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!(
                "request queueId[{queue_id}] is illegal, topic {} has {queues} queues",
                h.topic
            ),
        )));
    }
    let mut sys_flag = h.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
    if topic_cfg.topic_filter_type == "MULTI_TAG" {
        sys_flag |= sysflag::MULTI_TAGS;
    }
    let cluster = ("CLUSTER".to_string(), state.cfg.broker_cluster_name.clone());
    let body = req.body.clone().unwrap_or_default();
    let template = StoredMessage {
        topic: h.topic.clone(),
        queue_id,
        flag: h.flag,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag,
        born_timestamp: h.born_timestamp,
        born_host: ctx.peer_addr(),
        store_timestamp: 0,
        store_host: state.addr,
        reconsume_times: h.reconsume_times.unwrap_or(0),
        prepared_transaction_offset: 0,
        body: vec![],
        properties: vec![],
    };
    let max = state.cfg.max_message_size;
    let mut bytes = BytesMut::new();
    let mut uniq = None;
    if batch {
        if h.topic.starts_with(crate::broker::topic::RETRY_PREFIX) {
            return illegal(&req, "batch messages cannot be sent to a retry topic");
        }
        let items = match parse_batch(&body) {
            Ok(i) => i,
            Err(e) => return illegal(&req, e),
        };
        for it in items {
            let mut props = props_vec(it.properties);
            for (k, v) in &hp {
                if !props.iter().any(|(pk, _)| pk == k) {
                    props.push((k.clone(), v.clone()));
                }
            }
            if !props.iter().any(|(k, _)| k == "CLUSTER") {
                props.push(cluster.clone());
            }
            if uniq.is_none() {
                uniq = props
                    .iter()
                    .find(|(k, _)| k == property::UNIQ_KEY)
                    .map(|(_, v)| v.clone());
            }
            let m = StoredMessage {
                flag: it.flag,
                body: it.body.to_vec(),
                properties: props,
                ..template.clone()
            };
            match m.encode_with_limit(max) {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => return illegal(&req, encode_error(e)),
            }
        }
    } else {
        let mut props = hp;
        if !props.iter().any(|(k, _)| k == "CLUSTER") {
            props.push(cluster);
        }
        uniq = props
            .iter()
            .find(|(k, _)| k == property::UNIQ_KEY)
            .map(|(_, v)| v.clone());
        let delay = props
            .iter()
            .find(|(k, _)| k == property::DELAY)
            .and_then(|(_, v)| v.parse::<i32>().ok())
            .unwrap_or(0);
        let mut m = StoredMessage {
            body: body.to_vec(),
            properties: props,
            ..template
        };
        if delay > 0 {
            crate::broker::schedule::to_schedule(&mut m, delay);
        }
        match m.encode_with_limit(max) {
            Ok(b) => bytes.extend_from_slice(&b),
            Err(e) => return illegal(&req, encode_error(e)),
        }
    }

    let appended = match state.node.proposer.send(bytes).await {
        Ok(a) => a,
        Err(RaftGroupError::NotLeader { .. }) => {
            return Ok(Some(not_leader(
                state,
                &req,
                state.node.leader_addr().as_deref(),
            )))
        }
        Err(e) => {
            tracing::warn!(topic = %h.topic, cause = %e, "send failed");
            return Ok(Some(RemotingCommand::error_to(
                &req,
                ResponseCode::SystemError,
                format!("store failed: {e}"),
            )));
        }
    };
    let Some(first) = appended.first() else {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            "store returned no message",
        )));
    };
    let msg_id = appended
        .iter()
        .map(|a| offset_msg_id(state.addr, a.phys_offset))
        .collect::<Vec<_>>()
        .join(",");
    let resp = RemotingCommand::response_to(&req).with_header(&SendMessageResponseHeader {
        msg_id,
        queue_id: first.queue_id,
        queue_offset: first.queue_offset,
        transaction_id: uniq,
        batch_uniq_id: None,
        msg_region: Some(state.cfg.region_id.clone()),
        trace_on: Some(state.cfg.trace_on.to_string()),
    });
    Ok(Some(resp))
}

fn encode_error(e: MessageError) -> String {
    match e {
        MessageError::TooLarge { size, max } => {
            format!("the message body size {size} exceeds the maximum {max} (maxMessageSize)")
        }
        other => other.to_string(),
    }
}

/// A refusal decided while resolving the topic.
enum Refusal {
    Code(ResponseCode, String),
    Broker(crate::broker::BrokerError),
}

impl Refusal {
    fn into_response(self, req: &RemotingCommand, state: &BrokerState) -> RemotingCommand {
        match self {
            Refusal::Code(c, r) => RemotingCommand::error_to(req, c, r),
            Refusal::Broker(e) => error_response(state, req, e),
        }
    }
}

async fn resolve_topic(
    state: &Arc<BrokerState>,
    h: &SendMessageRequestHeader,
) -> Result<TopicConfig, Refusal> {
    let existing = state
        .topics
        .get(&state.node, &h.topic)
        .map_err(Refusal::Broker)?;
    let template = if existing.is_none() && state.cfg.auto_create_topic_enable {
        state
            .topics
            .get(&state.node, &h.default_topic)
            .map_err(Refusal::Broker)?
    } else {
        None
    };
    match resolve_for_send(&h.topic, existing, template, h.default_topic_queue_nums) {
        SendTopic::Existing(t) => Ok(t),
        SendTopic::Create(t) => {
            // One creation at a time: concurrent first sends to a new topic create it once.
            let _creating = state.topics.creation_lock().await;
            if let Some(existing) = state
                .topics
                .get(&state.node, &h.topic)
                .map_err(Refusal::Broker)?
            {
                return Ok(existing);
            }
            tracing::info!(topic = %t.topic_name, queues = t.write_queue_nums, "auto-creating topic");
            state
                .topics
                .put(&state.node, t.clone())
                .await
                .map_err(Refusal::Broker)?;
            state.registrar.register_soon();
            Ok(t)
        }
        SendTopic::Refused(c, r) => Err(Refusal::Code(c, r)),
    }
}

/// CONSUMER_SEND_MSG_BACK (36): a consumer could not process the message at commitlog
/// `offset`; store a copy in the group's retry topic (`%RETRY%<group>`), or in its dead-letter
/// topic (`%DLQ%<group>`) once it was reconsumed `maxReconsumeTimes` (16) times or when
/// `delayLevel` < 0. The copy keeps body, flag, tags and keys, counts one more reconsume, and
/// records the original topic (`RETRY_TOPIC`) and id (`ORIGIN_MESSAGE_ID`). Retry copies wait
/// in the schedule topic for their delay level (`delayLevel`, or 3 + reconsumes when 0);
/// dead letters are stored at once.
pub async fn send_back(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    use crate::remoting::header::client::ConsumerSendMsgBackRequestHeader;
    let h: ConsumerSendMsgBackRequestHeader = req.decode_header()?;
    if let Err(e) = state.node.check_writable() {
        return Ok(Some(error_response(state, &req, e)));
    }
    let bytes = match super::query::message_at(state, h.offset) {
        Ok(b) => b,
        Err(e) => {
            return Ok(Some(RemotingCommand::error_to(
                &req,
                ResponseCode::SystemError,
                format!("look message by offset failed, {}: {e}", h.offset),
            )))
        }
    };
    let view = match message::MessageView::parse(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Some(RemotingCommand::error_to(
                &req,
                ResponseCode::SystemError,
                e.to_string(),
            )))
        }
    };
    let mut m = view.to_owned_message();
    let group_max = state
        .node
        .sm
        .with_metadata(|m| m.group(&h.group))
        .ok()
        .flatten()
        .map(|g| g.retry_max_times)
        .unwrap_or(16);
    let max_times = h.max_reconsume_times.unwrap_or(group_max);
    let dead = h.delay_level < 0 || m.reconsume_times >= max_times;
    let topic = if dead {
        format!("{}{}", crate::broker::topic::DLQ_PREFIX, h.group)
    } else {
        format!("{}{}", crate::broker::topic::RETRY_PREFIX, h.group)
    };
    match state.topics.get(&state.node, &topic) {
        Ok(Some(_)) => {}
        Ok(None) => {
            if let Err(e) = state
                .topics
                .put(&state.node, crate::broker::topic::retry_topic(&topic))
                .await
            {
                return Ok(Some(error_response(state, &req, e)));
            }
            state.registrar.register_soon();
        }
        Err(e) => return Ok(Some(error_response(state, &req, e))),
    }
    let origin_topic = h.origin_topic.clone().unwrap_or_else(|| m.topic.clone());
    let origin_id = h
        .origin_msg_id
        .clone()
        .or_else(|| view.uniq_key().map(String::from))
        .unwrap_or_else(|| view.offset_msg_id());
    let set = |props: &mut Vec<(String, String)>, k: &str, v: String| {
        if !props.iter().any(|(pk, _)| pk == k) {
            props.push((k.to_string(), v));
        }
    };
    set(&mut m.properties, property::RETRY_TOPIC, origin_topic);
    set(&mut m.properties, property::ORIGIN_MESSAGE_ID, origin_id);
    let level = if h.delay_level == 0 {
        3 + m.reconsume_times
    } else {
        h.delay_level
    };
    m.topic = topic;
    m.queue_id = 0;
    m.reconsume_times += 1;
    m.store_host = state.addr;
    if !dead {
        crate::broker::schedule::to_schedule(&mut m, level);
    }
    let encoded = match m.encode_with_limit(state.cfg.max_message_size) {
        Ok(b) => b,
        Err(e) => return illegal(&req, encode_error(e)),
    };
    match state.node.proposer.send(BytesMut::from(&encoded[..])).await {
        Ok(_) => Ok(Some(RemotingCommand::response_to(&req))),
        Err(RaftGroupError::NotLeader { .. }) => Ok(Some(not_leader(
            state,
            &req,
            state.node.leader_addr().as_deref(),
        ))),
        Err(e) => Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!("store failed: {e}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(flag: i32, body: &[u8], props: &str) -> Vec<u8> {
        let total = 20 + body.len() + 2 + props.len();
        let mut v = vec![];
        v.extend_from_slice(&(total as i32).to_be_bytes());
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&flag.to_be_bytes());
        v.extend_from_slice(&(body.len() as i32).to_be_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(&(props.len() as i16).to_be_bytes());
        v.extend_from_slice(props.as_bytes());
        v
    }

    #[test]
    fn batch_body_parses_and_rejects_garbage() {
        let mut b = wire(1, b"hello", "KEYS\u{1}k1\u{2}");
        b.extend(wire(2, b"", ""));
        let items = parse_batch(&b).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].flag, items[0].body, items[0].properties),
            (1, &b"hello"[..], "KEYS\u{1}k1\u{2}")
        );
        assert_eq!(items[1].body.len(), 0);
        assert!(parse_batch(&b[..b.len() - 1]).is_err());
        assert!(parse_batch(&[0, 0, 0, 5]).is_err());
        assert!(parse_batch(&[]).is_err());
        let mut bad = wire(1, b"x", "");
        bad[16..20].copy_from_slice(&100i32.to_be_bytes());
        assert!(parse_batch(&bad).is_err());
    }
}
