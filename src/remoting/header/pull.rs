//! PULL_MESSAGE (11) request and response headers — protocol.md §3.2.

use super::command_header;

/// PullSysFlag bit 0: store `commitOffset` for the group.
pub const PULL_FLAG_COMMIT_OFFSET: i32 = 0x1;
/// PullSysFlag bit 1: the broker may hold the request (long polling).
pub const PULL_FLAG_SUSPEND: i32 = 0x2;
/// PullSysFlag bit 2: use this request's `subscription`/`expressionType`.
pub const PULL_FLAG_SUBSCRIPTION: i32 = 0x4;
/// PullSysFlag bit 3: legacy class-filter mode.
pub const PULL_FLAG_CLASS_FILTER: i32 = 0x8;
/// PullSysFlag bit 4: lite pull consumer.
pub const PULL_FLAG_LITE_PULL_MESSAGE: i32 = 0x10;

command_header! {
    /// PULL_MESSAGE (11) request.
    pub struct PullMessageRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        /// Logical offset to start from.
        queue_offset: i64 => "queueOffset",
        max_msg_nums: i32 => "maxMsgNums",
        /// PullSysFlag bits (`PULL_FLAG_*`).
        sys_flag: i32 => "sysFlag",
        commit_offset: i64 => "commitOffset",
        /// Long-poll hold time (Java 15000, Go 20000).
        suspend_timeout_millis: i64 => "suspendTimeoutMillis",
        /// Tag expression; meaningful only with [`PULL_FLAG_SUBSCRIPTION`].
        subscription: Option<String> => "subscription",
        sub_version: i64 => "subVersion",
        /// `TAG` (default) or `SQL92`.
        expression_type: Option<String> => "expressionType",
        /// 5.x.
        max_msg_bytes: Option<i32> => "maxMsgBytes",
        /// 5.x / Go: target broker name.
        broker_name: Option<String> => "bname",
    }
}

impl PullMessageRequestHeader {
    /// Whether a PullSysFlag bit is set.
    pub fn has_flag(&self, flag: i32) -> bool {
        self.sys_flag & flag != 0
    }
}

command_header! {
    /// PULL_MESSAGE (11) response.
    pub struct PullMessageResponseHeader {
        /// Broker id to pull from next (0 = master).
        suggest_which_broker_id: i64 => "suggestWhichBrokerId",
        next_begin_offset: i64 => "nextBeginOffset",
        min_offset: i64 => "minOffset",
        /// Next offset to be written.
        max_offset: i64 => "maxOffset",
        /// 5.x.
        offset_delta: Option<i64> => "offsetDelta",
        /// 5.x.
        topic_sys_flag: Option<i32> => "topicSysFlag",
        /// 5.x.
        group_sys_flag: Option<i32> => "groupSysFlag",
        /// 5.x.
        forbidden_type: Option<i32> => "forbiddenType",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::{CommandHeader, ExtFields, HeaderError};

    #[test]
    fn java_push_consumer_pull_parses_without_subscription() {
        let ext: ExtFields = [
            ("consumerGroup", "CG"),
            ("topic", "T"),
            ("queueId", "1"),
            ("queueOffset", "100"),
            ("maxMsgNums", "32"),
            ("sysFlag", "3"),
            ("commitOffset", "90"),
            ("suspendTimeoutMillis", "15000"),
            ("subVersion", "1700000000000"),
            ("expressionType", "TAG"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let h = PullMessageRequestHeader::from_ext(&ext).unwrap();
        assert!(h.has_flag(PULL_FLAG_SUSPEND) && h.has_flag(PULL_FLAG_COMMIT_OFFSET));
        assert!(!h.has_flag(PULL_FLAG_SUBSCRIPTION));
        assert_eq!(h.subscription, None);
        let mut back = ExtFields::new();
        h.to_ext(&mut back);
        assert_eq!(back, ext);

        let mut missing = ext.clone();
        missing.remove("suspendTimeoutMillis");
        assert_eq!(
            PullMessageRequestHeader::from_ext(&missing),
            Err(HeaderError::Missing {
                field: "suspendTimeoutMillis"
            })
        );
    }
}
