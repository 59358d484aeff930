//! PULL_MESSAGE (11): consumequeue lookup, tag filtering, long polling.
//!
//! Messages are found through the queue's consumequeue units (committed and dispatched
//! only), filtered first by the unit's tags hash code and then by the exact TAGS property,
//! and returned as the stored bytes read from the commitlog, unchanged. Offsets outside the
//! queue give PULL_OFFSET_MOVED with the corrected next offset; a pull at the queue's end
//! with FLAG_SUSPEND is held until the queue advances or the client's suspend time ends
//! (see `long_polling`), then answered PULL_NOT_FOUND.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use raftmq_store::message::MessageView;

use crate::broker::client_manager::Subscription;
use crate::broker::long_polling::wait_beyond;
use crate::broker::BrokerState;
use crate::namesrv::bodies::PERM_READ;
use crate::remoting::header::pull::{
    PullMessageRequestHeader, PullMessageResponseHeader, PULL_FLAG_COMMIT_OFFSET,
    PULL_FLAG_SUBSCRIPTION, PULL_FLAG_SUSPEND,
};
use crate::remoting::{ConnContext, ProcessResult, RemotingCommand, ResponseCode};

/// Most messages per pull.
const MAX_MSGS: i32 = 32;
/// Most body bytes per pull (RocketMQ's in-memory transfer cap).
const MAX_BYTES: usize = 256 * 1024;
/// Most consumequeue units scanned per pull when filtering.
const MAX_SCAN: usize = 800;

/// Outcome of one look at the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Found,
    NoMatched,
    NoMessageInQueue,
    OffsetTooSmall,
    OffsetOverflowOne,
    OffsetOverflowBadly,
}

/// Whether a pull with the suspend flag waits for new messages instead of answering at once:
/// every answer that would be PULL_NOT_FOUND, as RocketMQ holds them. That includes an empty
/// queue read from offset 0 (a consumer group's still-empty retry queue, which clients pull
/// continuously); without the hold such a client spins on immediate answers.
fn holdable(status: Status, request_offset: i64) -> bool {
    match status {
        Status::OffsetOverflowOne => true,
        Status::NoMessageInQueue => request_offset == 0,
        _ => false,
    }
}

impl Status {
    fn name(&self) -> &'static str {
        match self {
            Status::Found => "FOUND",
            Status::NoMatched => "NO_MATCHED_MESSAGE",
            Status::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
            Status::OffsetTooSmall => "OFFSET_TOO_SMALL",
            Status::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            Status::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
        }
    }
}

/// What one look at the queue produced.
pub struct Looked {
    pub status: Status,
    pub next: i64,
    pub min: i64,
    pub max: i64,
    pub body: Bytes,
}

/// Read up to `max_msgs` matching messages of a queue starting at `offset`.
pub fn look(
    state: &BrokerState,
    topic: &str,
    queue_id: i32,
    offset: i64,
    max_msgs: i32,
    sub: &Subscription,
) -> Result<Looked, String> {
    let (min, max) = state
        .node
        .sm
        .with_dispatcher(|d| (d.min_offset(topic, queue_id), d.max_offset(topic, queue_id)));
    let out = |status, next| Looked {
        status,
        next,
        min,
        max,
        body: Bytes::new(),
    };
    if max <= 0 {
        return Ok(out(Status::NoMessageInQueue, 0));
    }
    if offset < min {
        return Ok(out(Status::OffsetTooSmall, min));
    }
    if offset == max {
        return Ok(out(Status::OffsetOverflowOne, offset));
    }
    if offset > max {
        return Ok(out(Status::OffsetOverflowBadly, max));
    }
    let want = max_msgs.clamp(1, MAX_MSGS) as usize;
    let scan = if sub.is_all() {
        want
    } else {
        MAX_SCAN.max(want)
    };
    let units = state
        .node
        .sm
        .with_dispatcher(|d| d.units(topic, queue_id, offset, scan))
        .map_err(|e| e.to_string())?;
    let mut body = BytesMut::new();
    let mut found = 0usize;
    let mut next = offset;
    for (o, u) in units {
        if found >= want || (found > 0 && body.len() + u.size.max(0) as usize > MAX_BYTES) {
            break;
        }
        next = o + 1;
        if !sub.matches_code(u.tags_code) {
            continue;
        }
        let bytes = state.node.read_message(u.phys_offset, u.size)?;
        if !sub.is_all() {
            let view = MessageView::parse(&bytes).map_err(|e| e.to_string())?;
            if !sub.matches_tag(view.tags()) {
                continue;
            }
        }
        body.extend_from_slice(&bytes);
        found += 1;
    }
    Ok(Looked {
        status: if found > 0 {
            Status::Found
        } else {
            Status::NoMatched
        },
        next,
        min,
        max,
        body: body.freeze(),
    })
}

fn respond(req: &RemotingCommand, l: Looked, request_offset: i64) -> RemotingCommand {
    let code = match l.status {
        Status::Found => ResponseCode::Success,
        Status::NoMatched => ResponseCode::PullRetryImmediately,
        Status::NoMessageInQueue if request_offset != 0 => ResponseCode::PullOffsetMoved,
        Status::NoMessageInQueue | Status::OffsetOverflowOne => ResponseCode::PullNotFound,
        Status::OffsetTooSmall | Status::OffsetOverflowBadly => ResponseCode::PullOffsetMoved,
    };
    let mut resp = RemotingCommand::error_to(req, code, l.status.name()).with_header(
        &PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: l.next,
            min_offset: l.min,
            max_offset: l.max,
            ..Default::default()
        },
    );
    if l.status == Status::Found {
        resp = resp.with_body(l.body);
    }
    resp
}

pub async fn process(
    state: &Arc<BrokerState>,
    ctx: &ConnContext,
    req: RemotingCommand,
) -> ProcessResult {
    let h: PullMessageRequestHeader = req.decode_header()?;
    let topic = match state.topics.get(&state.node, &h.topic) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Ok(Some(RemotingCommand::error_to(
                &req,
                ResponseCode::TopicNotExist,
                format!("topic[{}] not exist, apply first please!", h.topic),
            )))
        }
        Err(e) => return Ok(Some(super::error_response(state, &req, e))),
    };
    if topic.perm & PERM_READ == 0 || state.topics.broker_perm() & PERM_READ == 0 {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::NoPermission,
            format!("the topic[{}] pulling message is forbidden", h.topic),
        )));
    }
    if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums.max(topic.write_queue_nums) {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                h.queue_id, h.topic, topic.read_queue_nums
            ),
        )));
    }
    let group_disabled = state
        .node
        .sm
        .with_metadata(|m| m.group(&h.consumer_group))
        .ok()
        .flatten()
        .is_some_and(|g| !g.consume_enable);
    if group_disabled {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::NoPermission,
            format!("subscription group no permission, {}", h.consumer_group),
        )));
    }
    let sub = if h.has_flag(PULL_FLAG_SUBSCRIPTION) {
        Subscription::parse(
            &h.topic,
            h.subscription.as_deref().unwrap_or("*"),
            h.sub_version,
            h.expression_type.as_deref().unwrap_or("TAG"),
        )
    } else {
        match state.clients.subscription(&h.consumer_group, &h.topic) {
            Some(s) => s,
            None => {
                return Ok(Some(RemotingCommand::error_to(
                    &req,
                    ResponseCode::SubscriptionNotExist,
                    format!(
                        "the consumer's subscription not exist, group: {} topic: {}",
                        h.consumer_group, h.topic
                    ),
                )))
            }
        }
    };
    if sub.expression_type != "TAG" {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SubscriptionParseFailed,
            format!("expression type {} is not supported", sub.expression_type),
        )));
    }
    if h.has_flag(PULL_FLAG_COMMIT_OFFSET)
        && h.commit_offset >= 0
        && state.node.check_writable().is_ok()
    {
        state
            .offsets
            .submit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
    }

    let mut rx = state.polls.subscribe(&h.topic, h.queue_id);
    let look_now = || {
        look(
            state,
            &h.topic,
            h.queue_id,
            h.queue_offset,
            h.max_msg_nums,
            &sub,
        )
    };
    let first = match look_now() {
        Ok(l) => l,
        Err(e) => {
            return Ok(Some(RemotingCommand::error_to(
                &req,
                ResponseCode::SystemError,
                e,
            )))
        }
    };
    let hold = if state.cfg.long_polling_enable {
        Duration::from_millis(h.suspend_timeout_millis.clamp(0, 120_000) as u64)
    } else {
        state.cfg.short_polling_time
    };
    if !holdable(first.status, h.queue_offset) || !h.has_flag(PULL_FLAG_SUSPEND) || hold.is_zero() {
        return Ok(Some(respond(&req, first, h.queue_offset)));
    }
    // Long poll: wait for the queue to grow past the requested offset, re-look each time.
    let deadline = tokio::time::Instant::now() + hold;
    let mut last = first;
    let mut spurious = false;
    loop {
        let woke = if spurious {
            // The channel was ahead of the dispatcher: wait for its next change instead.
            tokio::select! {
                r = rx.changed() => r.is_ok(),
                _ = tokio::time::sleep_until(deadline) => false,
                _ = ctx.closed() => false,
            }
        } else {
            wait_beyond(&mut rx, h.queue_offset, deadline, ctx.closed()).await
        };
        if !woke {
            if ctx.is_closed() {
                return Ok(None);
            }
            // Deadline (or a lost wake-up): one final look.
            return match look_now() {
                Ok(l) => Ok(Some(respond(&req, l, h.queue_offset))),
                Err(_) => Ok(Some(respond(&req, last, h.queue_offset))),
            };
        }
        match look_now() {
            Ok(l) if holdable(l.status, h.queue_offset) => {
                last = l;
                spurious = true;
            }
            Ok(l) => return Ok(Some(respond(&req, l, h.queue_offset))),
            Err(e) => {
                return Ok(Some(RemotingCommand::error_to(
                    &req,
                    ResponseCode::SystemError,
                    e,
                )))
            }
        }
    }
}
