//! HEART_BEAT (34), UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38),
//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42).

use std::sync::Arc;

use crate::broker::client_manager::ClientInfo;
use crate::broker::BrokerState;
use crate::remoting::body::{
    GetConsumerListByGroupResponseBody, HeartbeatData, LockBatchRequestBody, LockBatchResponseBody,
};
use crate::remoting::header::client::{
    GetConsumerListByGroupRequestHeader, UnregisterClientRequestHeader,
};
use crate::remoting::{json, ConnContext, ProcessResult, RemotingCommand, ResponseCode};

pub async fn heartbeat(
    state: &Arc<BrokerState>,
    ctx: &ConnContext,
    req: RemotingCommand,
) -> ProcessResult {
    let body = req.body.clone().unwrap_or_default();
    let hb: HeartbeatData = json::from_slice(&body)?;
    let info = ClientInfo {
        client_id: hb.client_id.clone(),
        language: req.language,
        version: req.version,
    };
    for p in &hb.producer_data_set {
        state.clients.register_producer(&p.group_name, &info, ctx);
    }
    for c in &hb.consumer_data_set {
        if state.clients.register_consumer(c, &info, ctx) {
            tracing::info!(group = %c.group_name, client = %hb.client_id, "consumer group changed");
            state.clients.notify_changed(&c.group_name);
        }
        if state.cfg.auto_create_subscription_group && state.node.check_writable().is_ok() {
            let known = state
                .node
                .sm
                .with_metadata(|m| m.group(&c.group_name))
                .ok()
                .flatten()
                .is_some();
            if !known {
                let group = raftmq_store::metadata::SubscriptionGroupConfig::new(&c.group_name);
                if let Err(e) = state
                    .node
                    .write(raftmq_raft::BrokerCommand::UpsertSubscriptionGroup { group })
                    .await
                {
                    tracing::debug!(group = %c.group_name, cause = %e, "subscription group not created");
                }
            }
        }
        match state
            .topics
            .ensure_retry_topic(&state.node, &c.group_name)
            .await
        {
            Ok(true) => state.registrar.register_soon(),
            Ok(false) => {}
            Err(e) => tracing::debug!(group = %c.group_name, cause = %e, "retry topic not created"),
        }
    }
    Ok(Some(RemotingCommand::response_to(&req)))
}

pub fn unregister(
    state: &Arc<BrokerState>,
    ctx: &ConnContext,
    req: RemotingCommand,
) -> ProcessResult {
    let h: UnregisterClientRequestHeader = req.decode_header()?;
    for g in state.clients.unregister(
        ctx,
        h.producer_group.as_deref(),
        h.consumer_group.as_deref(),
    ) {
        state.clients.notify_changed(&g);
    }
    Ok(Some(RemotingCommand::response_to(&req)))
}

pub fn consumer_list(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GetConsumerListByGroupRequestHeader = req.decode_header()?;
    let ids = state.clients.consumer_ids(&h.consumer_group);
    if ids.is_empty() {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!("no consumer for this group, {}", h.consumer_group),
        )));
    }
    let body = json::to_vec(&GetConsumerListByGroupResponseBody {
        consumer_id_list: ids,
    })?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}

pub fn lock_batch(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let body: LockBatchRequestBody = json::from_slice(req.body.as_deref().unwrap_or_default())?;
    let ok = state
        .locks
        .lock(&body.consumer_group, &body.client_id, &body.mq_set);
    let resp = json::to_vec(&LockBatchResponseBody { lock_ok_mq_set: ok })?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(resp)))
}

pub fn unlock_batch(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let body: LockBatchRequestBody = json::from_slice(req.body.as_deref().unwrap_or_default())?;
    state
        .locks
        .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
    Ok(Some(RemotingCommand::response_to(&req)))
}
