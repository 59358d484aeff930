//! Topic administration and broker information: UPDATE_AND_CREATE_TOPIC (17),
//! DELETE_TOPIC_IN_BROKER (215), GET_ALL_TOPIC_CONFIG (21), GET_BROKER_RUNTIME_INFO (28).
//!
//! Topic changes are replicated through the group (leader only) and trigger a registration
//! with the nameservers.

use std::collections::BTreeMap;
use std::sync::Arc;

use raftmq_store::metadata::TopicConfig;

use crate::broker::BrokerState;
use crate::namesrv::bodies::{KvTable, TopicConfigSerializeWrapper};
use crate::remoting::header::admin::{CreateTopicRequestHeader, DeleteTopicRequestHeader};
use crate::remoting::{ProcessError, ProcessResult, RemotingCommand, ResponseCode};

pub async fn create_topic(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: CreateTopicRequestHeader = req.decode_header()?;
    if let Err(e) = raftmq_store::message::validate_topic_name(&h.topic) {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            e.to_string(),
        )));
    }
    if h.topic == state.cfg.broker_cluster_name
        || h.topic == crate::broker::topic::TBW102 && h.perm & 1 == 0
    {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!("the topic[{}] is conflict with system topic.", h.topic),
        )));
    }
    if !(1..=1024).contains(&h.read_queue_nums)
        || !(1..=1024).contains(&h.write_queue_nums)
        || h.perm & !7 != 0
    {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!(
                "invalid queue numbers {}/{} or perm {}",
                h.read_queue_nums, h.write_queue_nums, h.perm
            ),
        )));
    }
    let t = TopicConfig {
        topic_name: h.topic.clone(),
        read_queue_nums: h.read_queue_nums,
        write_queue_nums: h.write_queue_nums,
        perm: h.perm,
        topic_filter_type: if h.topic_filter_type.is_empty() {
            "SINGLE_TAG".into()
        } else {
            h.topic_filter_type.clone()
        },
        topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
        order: h.order,
    };
    match state.topics.put(&state.node, t).await {
        Ok(()) => {
            state.registrar.register_soon();
            Ok(Some(RemotingCommand::response_to(&req)))
        }
        Err(e) => Ok(Some(super::error_response(state, &req, e))),
    }
}

pub async fn delete_topic(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: DeleteTopicRequestHeader = req.decode_header()?;
    match state.topics.delete(&state.node, &h.topic).await {
        Ok(()) => Ok(Some(RemotingCommand::response_to(&req))),
        Err(e) => Ok(Some(super::error_response(state, &req, e))),
    }
}

pub fn all_topic_config(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let topics = state
        .topics
        .all(&state.node)
        .map_err(|e| ProcessError::msg(e.to_string()))?;
    let wrapper = TopicConfigSerializeWrapper {
        data_version: state.topics.data_version(),
        topic_config_table: topics
            .iter()
            .map(|t| (t.topic_name.clone(), crate::broker::topic::to_wire(t)))
            .collect(),
    };
    let body = serde_json::to_vec(&wrapper).map_err(|e| ProcessError::msg(e.to_string()))?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}

pub fn runtime_info(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let m = state.node.group.metrics();
    let role = state.node.role();
    let mut table = BTreeMap::new();
    table.insert("brokerVersionDesc".to_string(), "raftmq".to_string());
    table.insert(
        "brokerRole".to_string(),
        if role.is_leader {
            "SYNC_MASTER"
        } else {
            "SLAVE"
        }
        .to_string(),
    );
    table.insert("raftTerm".to_string(), m.term.to_string());
    table.insert("raftNodeId".to_string(), m.id.to_string());
    table.insert(
        "raftLeader".to_string(),
        m.leader.map(|l| l.to_string()).unwrap_or_default(),
    );
    table.insert(
        "raftAppliedIndex".to_string(),
        m.applied_index.map(|i| i.to_string()).unwrap_or_default(),
    );
    let st = state.node.log.state();
    table.insert("commitLogMinOffset".to_string(), st.first_pos.to_string());
    table.insert("commitLogMaxOffset".to_string(), st.next_pos.to_string());
    let body =
        serde_json::to_vec(&KvTable { table }).map_err(|e| ProcessError::msg(e.to_string()))?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}
