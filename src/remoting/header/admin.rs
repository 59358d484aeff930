//! Topic and group administration headers — protocol.md §3.8, §2.1.

use super::command_header;

command_header! {
    /// UPDATE_AND_CREATE_TOPIC (17) request.
    pub struct CreateTopicRequestHeader {
        topic: String => "topic",
        /// Usually `TBW102`.
        default_topic: String => "defaultTopic",
        read_queue_nums: i32 => "readQueueNums",
        write_queue_nums: i32 => "writeQueueNums",
        perm: i32 => "perm",
        /// `SINGLE_TAG` / `MULTI_TAG`.
        topic_filter_type: String => "topicFilterType",
        topic_sys_flag: Option<i32> => "topicSysFlag",
        order: bool => "order",
        /// 5.x: `+key=value,...`.
        attributes: Option<String> => "attributes",
        /// 5.x.
        force: Option<bool> => "force",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_BROKER (215) request.
    pub struct DeleteTopicRequestHeader {
        topic: String => "topic",
    }
}

command_header! {
    /// GET_TOPIC_STATS_INFO (202) request.
    pub struct GetTopicStatsInfoRequestHeader {
        topic: String => "topic",
    }
}

command_header! {
    /// GET_CONSUME_STATS (208) request.
    pub struct GetConsumeStatsRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: Option<String> => "topic",
    }
}

command_header! {
    /// GET_CONSUMER_CONNECTION_LIST (203) request.
    pub struct GetConsumerConnectionListRequestHeader {
        consumer_group: String => "consumerGroup",
    }
}

command_header! {
    /// GET_PRODUCER_CONNECTION_LIST (204) request.
    pub struct GetProducerConnectionListRequestHeader {
        producer_group: String => "producerGroup",
    }
}

command_header! {
    /// DELETE_SUBSCRIPTIONGROUP (207) request.
    pub struct DeleteSubscriptionGroupRequestHeader {
        group_name: String => "groupName",
    }
}

command_header! {
    /// INVOKE_BROKER_TO_RESET_OFFSET (222) and RESET_CONSUMER_CLIENT_OFFSET (220) request.
    pub struct ResetOffsetRequestHeader {
        group: String => "group",
        topic: String => "topic",
        /// 5.x; −1 (the default) = all queues.
        queue_id: i32 => "queueId" = -1,
        /// 5.x.
        offset: Option<i64> => "offset",
        timestamp: i64 => "timestamp",
        is_force: bool => "isForce",
    }
}

command_header! {
    /// GET_ALL_TOPIC_CONFIG (21) response (5.x adds the count).
    pub struct GetAllTopicConfigResponseHeader {
        total_topic_num: Option<i32> => "totalTopicNum",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::{CommandHeader, RemotingCommand, RequestCode};

    #[test]
    fn reset_offset_defaults_queue_id_to_all() {
        let cmd = RemotingCommand::request(RequestCode::InvokeBrokerToResetOffset)
            .with_ext("group", "CG")
            .with_ext("topic", "T")
            .with_ext("timestamp", 0)
            .with_ext("isForce", true);
        let h: ResetOffsetRequestHeader = cmd.decode_header().unwrap();
        assert_eq!(h.queue_id, -1);
        assert!(h.is_force);
        assert_eq!(h.offset, None);
    }

    #[test]
    fn create_topic_requires_order() {
        let cmd = RemotingCommand::request(RequestCode::UpdateAndCreateTopic)
            .with_ext("topic", "T")
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", 4)
            .with_ext("writeQueueNums", 4)
            .with_ext("perm", 6)
            .with_ext("topicFilterType", "SINGLE_TAG");
        assert!(CreateTopicRequestHeader::from_ext(&cmd.ext_fields).is_err());
        let h: CreateTopicRequestHeader = cmd.with_ext("order", false).decode_header().unwrap();
        assert_eq!(h.perm, 6);
    }
}
