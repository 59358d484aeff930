//! VIEW_MESSAGE_BY_ID (33) and QUERY_MESSAGE (12): messages by commitlog offset and by key.

use std::sync::Arc;

use bytes::BytesMut;
use raftmq_store::message::MessageView;

use crate::broker::BrokerState;
use crate::remoting::header::offset::{
    QueryMessageRequestHeader, QueryMessageResponseHeader, ViewMessageRequestHeader,
    UNIQUE_KEY_QUERY,
};
use crate::remoting::{ProcessResult, RemotingCommand, ResponseCode};

/// The stored message at a commitlog offset (its size read from its own TOTALSIZE).
pub(crate) fn message_at(state: &BrokerState, offset: i64) -> Result<bytes::Bytes, String> {
    let st = state.node.log.state();
    if offset < st.first_pos as i64 || offset + 4 > st.next_pos as i64 {
        return Err(format!("offset {offset} is outside the commitlog"));
    }
    let head = state.node.read_message(offset, 4)?;
    let size = head
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_be_bytes)
        .ok_or("short read")?;
    let bytes = state.node.read_message(offset, size)?;
    MessageView::parse(&bytes).map_err(|e| format!("no message at offset {offset}: {e}"))?;
    Ok(bytes)
}

pub fn view_message(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: ViewMessageRequestHeader = req.decode_header()?;
    match message_at(state, h.offset) {
        Ok(b) => Ok(Some(RemotingCommand::response_to(&req).with_body(b))),
        Err(e) => Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!("can not find message by the offset, {}: {e}", h.offset),
        ))),
    }
}

pub fn query_message(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: QueryMessageRequestHeader = req.decode_header()?;
    let uniq = req.ext_opt_str(UNIQUE_KEY_QUERY) == Some("true");
    let max = if uniq { 32 } else { h.max_num.clamp(1, 64) } as usize;
    let positions = state
        .node
        .sm
        .with_dispatcher(|d| {
            d.query_by_key(&h.topic, &h.key, max, h.begin_timestamp, h.end_timestamp)
        })
        .map_err(|e| crate::remoting::ProcessError::msg(e.to_string()))?;
    let mut body = BytesMut::new();
    let mut last_ts = 0i64;
    let mut last_phys = 0i64;
    for p in positions {
        let Ok(b) = message_at(state, p) else {
            continue;
        };
        let Ok(v) = MessageView::parse(&b) else {
            continue;
        };
        // The index hashes keys: check the key really is this message's.
        let hit = if uniq {
            v.uniq_key() == Some(h.key.as_str())
        } else {
            v.keys().any(|k| k == h.key) || v.uniq_key() == Some(h.key.as_str())
        };
        if v.topic() != h.topic || !hit {
            continue;
        }
        last_ts = last_ts.max(v.store_timestamp());
        last_phys = last_phys.max(p);
        body.extend_from_slice(&b);
    }
    if body.is_empty() {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::QueryNotFound,
            "can not find message, maybe time range not correct",
        )));
    }
    Ok(Some(
        RemotingCommand::response_to(&req)
            .with_header(&QueryMessageResponseHeader {
                index_last_update_timestamp: last_ts,
                index_last_update_phyoffset: last_phys,
            })
            .with_body(body.freeze()),
    ))
}
