//! Message lookups on a [`ClientInstance`]: by offsetMsgId (VIEW_MESSAGE_BY_ID) and by key or
//! UNIQ_KEY (QUERY_MESSAGE, the broker's hash index), protocol.md §3.3.
//!
//! An offsetMsgId names the store host that wrote the message and its commitlog offset.
//! Replicas of a Raft group hold the same bytes at the same offsets, so when that host is
//! unreachable (a leader that died) the lookup is retried on the other members of its group
//! when the caller names the topic whose route lists it.

use crate::remoting::header::offset::{
    QueryMessageRequestHeader, ViewMessageRequestHeader, UNIQUE_KEY_QUERY,
};
use crate::remoting::{RemotingCommand, RequestCode, ResponseCode};

use super::error::{ClientError, ClientResult};
use super::message::MessageExt;
use super::ClientInstance;

/// Most messages a unique-key query returns (the broker forces this too).
const UNIQ_KEY_QUERY_MAX: i32 = 32;

impl ClientInstance {
    /// The message with `offset_msg_id`, read from the broker that stored it. With `topic`,
    /// other members of that broker's group (from the topic's route) are tried when the
    /// store host cannot be reached.
    pub async fn view_message(
        &self,
        offset_msg_id: &str,
        topic: Option<&str>,
    ) -> ClientResult<MessageExt> {
        let (host, offset) = raftmq_store::message::decode_offset_msg_id(offset_msg_id)
            .map_err(|e| ClientError::Config(format!("bad offsetMsgId: {e}")))?;
        let store_host = host.to_string();
        let mut addrs = vec![store_host.clone()];
        if let Some(topic) = topic {
            let route = self.core().route(topic).await?;
            if let Some(group) = route
                .data()
                .broker_datas
                .iter()
                .find(|b| b.broker_addrs.values().any(|a| *a == store_host))
            {
                addrs.extend(
                    group
                        .broker_addrs
                        .values()
                        .filter(|a| **a != store_host)
                        .cloned(),
                );
            }
        }
        let header = ViewMessageRequestHeader {
            offset,
            topic: topic.map(str::to_owned),
        };
        let mut last = None;
        for addr in &addrs {
            let req = RemotingCommand::request(RequestCode::ViewMessageById).with_header(&header);
            let resp = match self.core().net.invoke(addr, req).await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            if resp.response_code() != Some(ResponseCode::Success) {
                return Err(ClientError::broker(addr, resp.code, resp.remark));
            }
            let body = resp.body.as_deref().unwrap_or_default();
            return MessageExt::decode_batch(body, addr)?
                .into_iter()
                .next()
                .ok_or_else(|| ClientError::BadResponse {
                    addr: addr.clone(),
                    reason: "VIEW_MESSAGE_BY_ID answered without a message".to_owned(),
                });
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no address to ask".to_owned())))
    }

    /// Messages of `topic` whose KEYS contain `key`, stored between `begin_ms` and `end_ms`
    /// (store timestamps), at most `max_num` per broker group. Asks the leader of every group
    /// of the topic's route; a group with no match (QUERY_NOT_FOUND) contributes nothing.
    pub async fn query_messages_by_key(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ms: i64,
        end_ms: i64,
    ) -> ClientResult<Vec<MessageExt>> {
        let found = self
            .query(topic, key, max_num, begin_ms, end_ms, false)
            .await?;
        Ok(found
            .into_iter()
            .filter(|m| m.keys().contains(&key))
            .collect())
    }

    /// The messages of `topic` with UNIQ_KEY `uniq_key` (more than one if a retried send
    /// stored it twice), stored between `begin_ms` and `end_ms`.
    pub async fn query_messages_by_uniq_key(
        &self,
        topic: &str,
        uniq_key: &str,
        begin_ms: i64,
        end_ms: i64,
    ) -> ClientResult<Vec<MessageExt>> {
        let found = self
            .query(topic, uniq_key, UNIQ_KEY_QUERY_MAX, begin_ms, end_ms, true)
            .await?;
        Ok(found
            .into_iter()
            .filter(|m| m.uniq_key() == Some(uniq_key))
            .collect())
    }

    async fn query(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ms: i64,
        end_ms: i64,
        unique: bool,
    ) -> ClientResult<Vec<MessageExt>> {
        let route = self.core().route(topic).await?;
        let header = QueryMessageRequestHeader {
            topic: topic.to_owned(),
            key: key.to_owned(),
            max_num,
            begin_timestamp: begin_ms,
            end_timestamp: end_ms,
        };
        let mut out = Vec::new();
        let mut groups: Vec<&str> = route
            .data()
            .broker_datas
            .iter()
            .map(|b| b.broker_name.as_str())
            .collect();
        groups.sort_unstable();
        for group in groups {
            let Some(addr) = route.read_addr(group) else {
                continue;
            };
            let mut req = RemotingCommand::request(RequestCode::QueryMessage).with_header(&header);
            if unique {
                req = req.with_ext(UNIQUE_KEY_QUERY, "true");
            }
            let resp = self.core().net.invoke(addr, req).await?;
            match resp.response_code() {
                Some(ResponseCode::Success) => {
                    let body = resp.body.as_deref().unwrap_or_default();
                    out.extend(
                        MessageExt::decode_batch(body, addr)?
                            .into_iter()
                            .filter(|m| m.topic == topic),
                    );
                }
                Some(ResponseCode::QueryNotFound) => {}
                _ => return Err(ClientError::broker(addr, resp.code, resp.remark)),
            }
        }
        Ok(out)
    }
}
