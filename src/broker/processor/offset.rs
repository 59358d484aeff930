//! Consumer offsets (QUERY/UPDATE_CONSUMER_OFFSET), queue bounds (GET_MAX/MIN_OFFSET,
//! GET_EARLIEST_MSG_STORETIME) and SEARCH_OFFSET_BY_TIMESTAMP.
//!
//! Committed offsets are replicated (`CommitOffsets` entries, batched by the offset
//! committer), so they survive restarts and failovers; reads come from the applied table.

use std::sync::Arc;

use raftmq_store::message::MessageView;

use crate::broker::BrokerState;
use crate::remoting::header::offset::{
    GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader,
    GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, OffsetResponseHeader,
    QueryConsumerOffsetRequestHeader, SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use crate::remoting::{ProcessResult, RemotingCommand, ResponseCode};

fn offset_resp(req: &RemotingCommand, offset: i64) -> ProcessResult {
    Ok(Some(
        RemotingCommand::response_to(req).with_header(&OffsetResponseHeader { offset }),
    ))
}

fn bounds(state: &BrokerState, topic: &str, queue_id: i32) -> (i64, i64) {
    state
        .node
        .sm
        .with_dispatcher(|d| (d.min_offset(topic, queue_id), d.max_offset(topic, queue_id)))
}

pub fn query_consumer_offset(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: QueryConsumerOffsetRequestHeader = req.decode_header()?;
    let stored = state
        .node
        .sm
        .with_metadata(|m| m.offset(&h.consumer_group, &h.topic, h.queue_id))
        .map_err(|e| crate::remoting::ProcessError::msg(e.to_string()))?;
    if let Some(o) = stored.filter(|o| *o >= 0) {
        return offset_resp(&req, o);
    }
    // A new group on a young queue (still starting at 0, with messages) starts at 0.
    let (min, max) = bounds(state, &h.topic, h.queue_id);
    if (min <= 0 && max > 0) || h.set_zero_if_not_found == Some(true) {
        return offset_resp(&req, 0);
    }
    Ok(Some(RemotingCommand::error_to(
        &req,
        ResponseCode::QueryNotFound,
        "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
    )))
}

pub async fn update_consumer_offset(
    state: &Arc<BrokerState>,
    req: RemotingCommand,
) -> ProcessResult {
    let h: UpdateConsumerOffsetRequestHeader = req.decode_header()?;
    if let Err(e) = state.node.check_writable() {
        return Ok(Some(super::error_response(state, &req, e)));
    }
    match state
        .offsets
        .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset)
        .await
    {
        Ok(()) => Ok(Some(RemotingCommand::response_to(&req))),
        Err(e) if e.starts_with("[NOT_LEADER]") => Ok(Some(super::not_leader(
            state,
            &req,
            state.node.leader_addr().as_deref(),
        ))),
        Err(e) => Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            e,
        ))),
    }
}

pub fn get_max_offset(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GetMaxOffsetRequestHeader = req.decode_header()?;
    offset_resp(&req, bounds(state, &h.topic, h.queue_id).1)
}

pub fn get_min_offset(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GetMinOffsetRequestHeader = req.decode_header()?;
    offset_resp(&req, bounds(state, &h.topic, h.queue_id).0)
}

/// Store timestamp of the message at `offset` of a queue, if it is there.
fn store_time_at(state: &BrokerState, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
    let unit = state
        .node
        .sm
        .with_dispatcher(|d| d.unit(topic, queue_id, offset))
        .ok()??;
    let bytes = state.node.read_message(unit.phys_offset, unit.size).ok()?;
    MessageView::parse(&bytes).ok().map(|v| v.store_timestamp())
}

pub fn get_earliest_msg_storetime(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GetEarliestMsgStoretimeRequestHeader = req.decode_header()?;
    let (min, _) = bounds(state, &h.topic, h.queue_id);
    match store_time_at(state, &h.topic, h.queue_id, min) {
        Some(timestamp) => Ok(Some(
            RemotingCommand::response_to(&req)
                .with_header(&GetEarliestMsgStoretimeResponseHeader { timestamp }),
        )),
        None => Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!("no message in {}:{}", h.topic, h.queue_id),
        ))),
    }
}

/// First offset whose store timestamp is at or after `ts` (binary search over the queue);
/// the queue's max offset when every message is older, its min when the queue is empty.
pub fn search_offset_by_time(state: &BrokerState, topic: &str, queue_id: i32, ts: i64) -> i64 {
    let (min, max) = bounds(state, topic, queue_id);
    let (mut lo, mut hi) = (min, max);
    // Invariant: every offset < lo is older than ts; every offset >= hi is not.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match store_time_at(state, topic, queue_id, mid) {
            Some(t) if t < ts => lo = mid + 1,
            Some(_) => hi = mid,
            // Unreadable (purged concurrently): search above it.
            None => lo = mid + 1,
        }
    }
    lo
}

pub fn search_offset(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: SearchOffsetRequestHeader = req.decode_header()?;
    offset_resp(
        &req,
        search_offset_by_time(state, &h.topic, h.queue_id, h.timestamp),
    )
}
