//! Client management, consumer send-back and transaction headers — protocol.md §3.4–§3.6,
//! including the requests the broker sends to clients (§2.2).

use super::command_header;

command_header! {
    /// UNREGISTER_CLIENT (35) request.
    pub struct UnregisterClientRequestHeader {
        client_id: String => "clientID",
        producer_group: Option<String> => "producerGroup",
        consumer_group: Option<String> => "consumerGroup",
    }
}

command_header! {
    /// GET_CONSUMER_LIST_BY_GROUP (38) request.
    pub struct GetConsumerListByGroupRequestHeader {
        consumer_group: String => "consumerGroup",
    }
}

command_header! {
    /// NOTIFY_CONSUMER_IDS_CHANGED (40), broker → consumer, oneway.
    pub struct NotifyConsumerIdsChangedRequestHeader {
        consumer_group: String => "consumerGroup",
    }
}

command_header! {
    /// CONSUMER_SEND_MSG_BACK (36) request.
    pub struct ConsumerSendMsgBackRequestHeader {
        /// Commitlog (physical) offset of the failed message.
        offset: i64 => "offset",
        group: String => "group",
        /// 0: broker chooses (3 + reconsumeTimes); > 0 explicit; < 0 straight to DLQ.
        delay_level: i32 => "delayLevel",
        origin_msg_id: Option<String> => "originMsgId",
        origin_topic: Option<String> => "originTopic",
        unit_mode: Option<bool> => "unitMode",
        max_reconsume_times: Option<i32> => "maxReconsumeTimes",
        /// 5.x / Go: target broker name.
        broker_name: Option<String> => "bname",
    }
}

/// `commitOrRollback` values (MessageSysFlag transaction bits).
pub mod transaction_state {
    /// No decision yet: the broker waits for a check.
    pub const NOT_TYPE: i32 = 0;
    /// Commit the half message.
    pub const COMMIT: i32 = 8;
    /// Roll the half message back.
    pub const ROLLBACK: i32 = 12;
}

command_header! {
    /// END_TRANSACTION (37) request (sent oneway by Java and Go).
    pub struct EndTransactionRequestHeader {
        producer_group: String => "producerGroup",
        /// Consume-queue offset of the half message.
        tran_state_table_offset: i64 => "tranStateTableOffset",
        /// Commitlog offset of the half message.
        commit_log_offset: i64 => "commitLogOffset",
        /// See [`transaction_state`].
        commit_or_rollback: i32 => "commitOrRollback",
        from_transaction_check: Option<bool> => "fromTransactionCheck",
        msg_id: String => "msgId",
        transaction_id: Option<String> => "transactionId",
        /// 5.x.
        topic: Option<String> => "topic",
    }
}

command_header! {
    /// CHECK_TRANSACTION_STATE (39), broker → producer, oneway. Body: the half message.
    pub struct CheckTransactionStateRequestHeader {
        tran_state_table_offset: i64 => "tranStateTableOffset",
        commit_log_offset: i64 => "commitLogOffset",
        msg_id: Option<String> => "msgId",
        transaction_id: Option<String> => "transactionId",
        offset_msg_id: Option<String> => "offsetMsgId",
    }
}

command_header! {
    /// GET_CONSUMER_RUNNING_INFO (307), admin → broker → consumer.
    pub struct GetConsumerRunningInfoRequestHeader {
        consumer_group: String => "consumerGroup",
        client_id: String => "clientId",
        jstack_enable: Option<bool> => "jstackEnable",
    }
}

command_header! {
    /// CONSUME_MESSAGE_DIRECTLY (309), admin → broker → consumer.
    pub struct ConsumeMessageDirectlyResultRequestHeader {
        consumer_group: String => "consumerGroup",
        client_id: Option<String> => "clientId",
        msg_id: Option<String> => "msgId",
        broker_name: Option<String> => "brokerName",
    }
}

command_header! {
    /// GET_CONSUMER_STATUS_FROM_CLIENT (221), broker → consumer.
    pub struct GetConsumerStatusRequestHeader {
        topic: String => "topic",
        group: String => "group",
        client_addr: Option<String> => "clientAddr",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::{CommandHeader, RemotingCommand, RequestCode};

    #[test]
    fn end_transaction_round_trip() {
        let h = EndTransactionRequestHeader {
            producer_group: "PG".into(),
            tran_state_table_offset: 7,
            commit_log_offset: 1024,
            commit_or_rollback: transaction_state::COMMIT,
            from_transaction_check: Some(true),
            msg_id: "ABC".into(),
            transaction_id: None,
            topic: None,
        };
        let cmd = RemotingCommand::request(RequestCode::EndTransaction).with_header(&h);
        assert_eq!(cmd.ext_str("commitOrRollback"), Ok("8"));
        assert_eq!(
            EndTransactionRequestHeader::from_ext(&cmd.ext_fields),
            Ok(h)
        );
    }

    #[test]
    fn unregister_client_uses_capitalised_client_id_key() {
        let cmd =
            RemotingCommand::request(RequestCode::UnregisterClient).with_ext("clientID", "c1");
        let h: UnregisterClientRequestHeader = cmd.decode_header().unwrap();
        assert_eq!(h.client_id, "c1");
        assert_eq!(h.producer_group, None);
    }
}
