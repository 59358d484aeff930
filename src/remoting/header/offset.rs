//! Offset and query headers — protocol.md §3.3.

use super::command_header;

command_header! {
    /// QUERY_CONSUMER_OFFSET (14) request.
    pub struct QueryConsumerOffsetRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        /// 5.x.
        set_zero_if_not_found: Option<bool> => "setZeroIfNotFound",
    }
}

command_header! {
    /// Responses carrying one `offset`: QUERY_CONSUMER_OFFSET, GET_MAX_OFFSET, GET_MIN_OFFSET,
    /// SEARCH_OFFSET_BY_TIMESTAMP.
    pub struct OffsetResponseHeader {
        offset: i64 => "offset",
    }
}

command_header! {
    /// UPDATE_CONSUMER_OFFSET (15) request (usually oneway).
    pub struct UpdateConsumerOffsetRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        commit_offset: i64 => "commitOffset",
    }
}

command_header! {
    /// GET_MAX_OFFSET (30) request.
    pub struct GetMaxOffsetRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
        /// 5.x.
        committed: Option<bool> => "committed",
    }
}

command_header! {
    /// GET_MIN_OFFSET (31) request.
    pub struct GetMinOffsetRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME (32) request.
    pub struct GetEarliestMsgStoretimeRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME (32) response.
    pub struct GetEarliestMsgStoretimeResponseHeader {
        timestamp: i64 => "timestamp",
    }
}

command_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29) request.
    pub struct SearchOffsetRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
        timestamp: i64 => "timestamp",
        /// 5.x: `lower` / `upper`.
        boundary_type: Option<String> => "boundaryType",
    }
}

command_header! {
    /// QUERY_MESSAGE (12) request. An ext field `_UNIQUE_KEY_QUERY`=`true` (see
    /// [`UNIQUE_KEY_QUERY`]) means `key` is a UNIQ_KEY.
    pub struct QueryMessageRequestHeader {
        topic: String => "topic",
        key: String => "key",
        max_num: i32 => "maxNum",
        begin_timestamp: i64 => "beginTimestamp",
        end_timestamp: i64 => "endTimestamp",
    }
}

/// Ext key marking a QUERY_MESSAGE by unique key.
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

command_header! {
    /// QUERY_MESSAGE (12) response.
    pub struct QueryMessageResponseHeader {
        index_last_update_timestamp: i64 => "indexLastUpdateTimestamp",
        index_last_update_phyoffset: i64 => "indexLastUpdatePhyoffset",
    }
}

command_header! {
    /// VIEW_MESSAGE_BY_ID (33) request.
    pub struct ViewMessageRequestHeader {
        /// Commitlog (physical) offset.
        offset: i64 => "offset",
        /// 5.x.
        topic: Option<String> => "topic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::{CommandHeader, RemotingCommand, RequestCode};

    #[test]
    fn offset_headers_round_trip() {
        let h = UpdateConsumerOffsetRequestHeader {
            consumer_group: "CG".into(),
            topic: "T".into(),
            queue_id: 3,
            commit_offset: 42,
        };
        let cmd = RemotingCommand::request(RequestCode::UpdateConsumerOffset).with_header(&h);
        assert_eq!(cmd.ext_str("commitOffset"), Ok("42"));
        assert_eq!(
            UpdateConsumerOffsetRequestHeader::from_ext(&cmd.ext_fields),
            Ok(h)
        );
        let resp =
            RemotingCommand::response(0, "").with_header(&OffsetResponseHeader { offset: -1 });
        assert_eq!(resp.ext_i64("offset"), Ok(-1));
    }
}
