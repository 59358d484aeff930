//! The broker's request processors, one module per family, behind one [`Processor`].
//!
//! - [`send`]: SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE, CONSUMER_SEND_MSG_BACK.
//! - [`pull`]: PULL_MESSAGE with tag filtering and long polling.
//! - [`offset`]: consumer offsets, queue min/max, time search.
//! - [`heartbeat`]: HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP, queue locks.
//! - [`admin`]: topic administration and broker information.
//! - [`query`]: VIEW_MESSAGE_BY_ID, QUERY_MESSAGE.
//! - [`group`]: raftmq group administration (status, add learner, promote, remove, transfer).

pub mod admin;
pub mod group;
pub mod heartbeat;
pub mod offset;
pub mod pull;
pub mod query;
pub mod send;

use std::sync::{Arc, OnceLock};

use super::{BrokerError, BrokerState};
use crate::remoting::{
    BoxFuture, ConnContext, ProcessResult, Processor, ProcessorTable, RemotingCommand, RequestCode,
    ResponseCode,
};

/// Routes every served code to its module; answers SYSTEM_BUSY until the broker is built.
pub struct BrokerProcessor {
    state: Arc<OnceLock<Arc<BrokerState>>>,
}

/// The codes this broker serves.
pub const CODES: &[RequestCode] = &[
    RequestCode::SendMessage,
    RequestCode::SendMessageV2,
    RequestCode::SendBatchMessage,
    RequestCode::ConsumerSendMsgBack,
    RequestCode::PullMessage,
    RequestCode::QueryConsumerOffset,
    RequestCode::UpdateConsumerOffset,
    RequestCode::GetMaxOffset,
    RequestCode::GetMinOffset,
    RequestCode::GetEarliestMsgStoretime,
    RequestCode::SearchOffsetByTimestamp,
    RequestCode::HeartBeat,
    RequestCode::UnregisterClient,
    RequestCode::GetConsumerListByGroup,
    RequestCode::LockBatchMq,
    RequestCode::UnlockBatchMq,
    RequestCode::GetConsumerConnectionList,
    RequestCode::GetProducerConnectionList,
    RequestCode::GetTopicStatsInfo,
    RequestCode::GetConsumeStats,
    RequestCode::UpdateAndCreateTopic,
    RequestCode::DeleteTopicInBroker,
    RequestCode::GetAllTopicConfig,
    RequestCode::GetBrokerRuntimeInfo,
    RequestCode::GetBrokerConfig,
    RequestCode::UpdateAndCreateSubscriptiongroup,
    RequestCode::GetAllSubscriptiongroupConfig,
    RequestCode::DeleteSubscriptiongroup,
    RequestCode::ViewMessageById,
    RequestCode::QueryMessage,
    RequestCode::RaftmqGroupStatus,
    RequestCode::RaftmqAddLearner,
    RequestCode::RaftmqPromote,
    RequestCode::RaftmqRemoveNode,
    RequestCode::RaftmqTransferLeader,
];

/// The processor table of a broker whose state will be put in `state`.
pub fn table(state: Arc<OnceLock<Arc<BrokerState>>>) -> ProcessorTable {
    ProcessorTable::new().register(CODES.iter().copied(), Arc::new(BrokerProcessor { state }))
}

impl Processor for BrokerProcessor {
    fn process<'a>(
        &'a self,
        ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        Box::pin(async move {
            let Some(state) = self.state.get() else {
                return Ok(Some(RemotingCommand::error_to(
                    &req,
                    ResponseCode::SystemBusy,
                    "broker is starting",
                )));
            };
            let Some(code) = RequestCode::from_code(req.code) else {
                return Ok(Some(RemotingCommand::not_supported(&req)));
            };
            match code {
                RequestCode::SendMessage
                | RequestCode::SendMessageV2
                | RequestCode::SendBatchMessage => send::process(state, ctx, req).await,
                RequestCode::ConsumerSendMsgBack => send::send_back(state, req).await,
                RequestCode::PullMessage => pull::process(state, ctx, req).await,
                RequestCode::QueryConsumerOffset => offset::query_consumer_offset(state, req),
                RequestCode::UpdateConsumerOffset => {
                    offset::update_consumer_offset(state, req).await
                }
                RequestCode::GetMaxOffset => offset::get_max_offset(state, req),
                RequestCode::GetMinOffset => offset::get_min_offset(state, req),
                RequestCode::GetEarliestMsgStoretime => {
                    offset::get_earliest_msg_storetime(state, req)
                }
                RequestCode::SearchOffsetByTimestamp => offset::search_offset(state, req),
                RequestCode::HeartBeat => heartbeat::heartbeat(state, ctx, req).await,
                RequestCode::UnregisterClient => heartbeat::unregister(state, ctx, req),
                RequestCode::GetConsumerListByGroup => heartbeat::consumer_list(state, req),
                RequestCode::LockBatchMq => heartbeat::lock_batch(state, req),
                RequestCode::UnlockBatchMq => heartbeat::unlock_batch(state, req),
                RequestCode::GetConsumerConnectionList => admin::consumer_connections(state, req),
                RequestCode::GetProducerConnectionList => admin::producer_connections(state, req),
                RequestCode::GetTopicStatsInfo => admin::topic_stats(state, req),
                RequestCode::GetConsumeStats => admin::consume_stats(state, req),
                RequestCode::UpdateAndCreateTopic => admin::create_topic(state, req).await,
                RequestCode::DeleteTopicInBroker => admin::delete_topic(state, req).await,
                RequestCode::GetAllTopicConfig => admin::all_topic_config(state, req),
                RequestCode::GetBrokerRuntimeInfo => admin::runtime_info(state, req),
                RequestCode::GetBrokerConfig => admin::broker_config(state, req),
                RequestCode::UpdateAndCreateSubscriptiongroup => {
                    admin::create_group(state, req).await
                }
                RequestCode::GetAllSubscriptiongroupConfig => admin::all_group_config(state, req),
                RequestCode::DeleteSubscriptiongroup => admin::delete_group(state, req).await,
                RequestCode::ViewMessageById => query::view_message(state, req),
                RequestCode::QueryMessage => query::query_message(state, req),
                RequestCode::RaftmqGroupStatus => group::group_status(state, req),
                RequestCode::RaftmqAddLearner => group::add_learner(state, req).await,
                RequestCode::RaftmqPromote => group::promote(state, req).await,
                RequestCode::RaftmqRemoveNode => group::remove_node(state, req).await,
                RequestCode::RaftmqTransferLeader => group::transfer_leader(state, req).await,
                _ => Ok(Some(RemotingCommand::not_supported(&req))),
            }
        })
    }

    fn on_disconnected(&self, ctx: &ConnContext) {
        if let Some(state) = self.state.get() {
            for g in state.clients.connection_closed(ctx.id()) {
                state.clients.notify_changed(&g);
            }
        }
    }
}

/// The answer to a write this node cannot take: SERVICE_NOT_AVAILABLE, which producers
/// retry on another broker, with the leader's address in the remark.
pub fn not_leader(
    state: &BrokerState,
    req: &RemotingCommand,
    leader_addr: Option<&str>,
) -> RemotingCommand {
    let role = state.node.role();
    let remark = match (role.is_leader, leader_addr) {
        (true, _) => format!(
            "[NOT_LEADER] broker {} n{} was just elected (term {}) and is not ready for writes yet; retry",
            state.cfg.broker_name,
            state.node.group.id(),
            role.term
        ),
        (false, Some(a)) => format!(
            "[NOT_LEADER] broker {} n{} is a follower; the leader is {a}",
            state.cfg.broker_name,
            state.node.group.id()
        ),
        (false, None) => format!(
            "[NOT_LEADER] broker {} n{} is a follower; no leader known",
            state.cfg.broker_name,
            state.node.group.id()
        ),
    };
    RemotingCommand::error_to(req, ResponseCode::ServiceNotAvailable, remark)
}

/// Map a broker error to a response.
pub fn error_response(
    state: &BrokerState,
    req: &RemotingCommand,
    e: BrokerError,
) -> RemotingCommand {
    match e {
        BrokerError::NotLeader { leader_addr } => not_leader(state, req, leader_addr.as_deref()),
        other => RemotingCommand::error_to(req, ResponseCode::SystemError, other.to_string()),
    }
}
