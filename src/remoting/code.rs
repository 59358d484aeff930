//! Request, response and language codes of the RocketMQ remoting protocol.
//!
//! These numbers are part of the wire protocol shared with every RocketMQ client ever
//! shipped. **A code is never renumbered and never reused.** A code that stops being served
//! stays listed here so nobody hands its number to something else. Where RocketMQ versions
//! disagree on a number's meaning (response codes 209–211 mean ACL failures in 4.x and
//! POP polling results in 5.x) the number is left out on purpose.
//!
//! [`RemotingCommand::code`](super::RemotingCommand::code) stays a plain `i32` because a peer
//! may send any number; [`RequestCode::from_code`] and [`ResponseCode::from_code`] map the
//! known ones back.

/// Declares a `#[repr(i32)]` code enum with its RocketMQ wire name and lookup helpers.
macro_rules! wire_codes {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )*
        }

        impl $name {
            /// Every known code, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The number carried on the wire.
            pub const fn code(self) -> i32 {
                self as i32
            }

            /// Maps a wire number back to a known code.
            pub fn from_code(code: i32) -> Option<Self> {
                match code {
                    $( $value => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// The constant's name in RocketMQ (`SEND_MESSAGE`, `TOPIC_NOT_EXIST`, ...), for logs.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )*
                }
            }
        }

        impl From<$name> for i32 {
            fn from(code: $name) -> i32 {
                code as i32
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", self.name(), self.code())
            }
        }
    };
}

wire_codes! {
    /// Request codes: client → broker/nameserver, and broker → client (§2.1, §2.2).
    RequestCode {
        SendMessage = 10 => "SEND_MESSAGE",
        PullMessage = 11 => "PULL_MESSAGE",
        QueryMessage = 12 => "QUERY_MESSAGE",
        QueryBrokerOffset = 13 => "QUERY_BROKER_OFFSET",
        QueryConsumerOffset = 14 => "QUERY_CONSUMER_OFFSET",
        UpdateConsumerOffset = 15 => "UPDATE_CONSUMER_OFFSET",
        UpdateAndCreateTopic = 17 => "UPDATE_AND_CREATE_TOPIC",
        GetAllTopicConfig = 21 => "GET_ALL_TOPIC_CONFIG",
        GetTopicConfigList = 22 => "GET_TOPIC_CONFIG_LIST",
        GetTopicNameList = 23 => "GET_TOPIC_NAME_LIST",
        UpdateBrokerConfig = 25 => "UPDATE_BROKER_CONFIG",
        GetBrokerConfig = 26 => "GET_BROKER_CONFIG",
        TriggerDeleteFiles = 27 => "TRIGGER_DELETE_FILES",
        GetBrokerRuntimeInfo = 28 => "GET_BROKER_RUNTIME_INFO",
        SearchOffsetByTimestamp = 29 => "SEARCH_OFFSET_BY_TIMESTAMP",
        GetMaxOffset = 30 => "GET_MAX_OFFSET",
        GetMinOffset = 31 => "GET_MIN_OFFSET",
        GetEarliestMsgStoretime = 32 => "GET_EARLIEST_MSG_STORETIME",
        ViewMessageById = 33 => "VIEW_MESSAGE_BY_ID",
        HeartBeat = 34 => "HEART_BEAT",
        UnregisterClient = 35 => "UNREGISTER_CLIENT",
        ConsumerSendMsgBack = 36 => "CONSUMER_SEND_MSG_BACK",
        EndTransaction = 37 => "END_TRANSACTION",
        GetConsumerListByGroup = 38 => "GET_CONSUMER_LIST_BY_GROUP",
        /// Broker → producer, oneway.
        CheckTransactionState = 39 => "CHECK_TRANSACTION_STATE",
        /// Broker → consumer, oneway.
        NotifyConsumerIdsChanged = 40 => "NOTIFY_CONSUMER_IDS_CHANGED",
        LockBatchMq = 41 => "LOCK_BATCH_MQ",
        UnlockBatchMq = 42 => "UNLOCK_BATCH_MQ",
        GetAllConsumerOffset = 43 => "GET_ALL_CONSUMER_OFFSET",
        GetAllDelayOffset = 45 => "GET_ALL_DELAY_OFFSET",
        CheckClientConfig = 46 => "CHECK_CLIENT_CONFIG",
        /// 4.x only (ACL admin).
        UpdateAndCreateAclConfig = 50 => "UPDATE_AND_CREATE_ACL_CONFIG",
        /// 4.x only (ACL admin).
        DeleteAclConfig = 51 => "DELETE_ACL_CONFIG",
        /// 4.x only (ACL admin).
        GetBrokerClusterAclInfo = 52 => "GET_BROKER_CLUSTER_ACL_INFO",
        /// 4.x only (ACL admin).
        UpdateGlobalWhiteAddrsConfig = 53 => "UPDATE_GLOBAL_WHITE_ADDRS_CONFIG",
        PutKvConfig = 100 => "PUT_KV_CONFIG",
        GetKvConfig = 101 => "GET_KV_CONFIG",
        DeleteKvConfig = 102 => "DELETE_KV_CONFIG",
        RegisterBroker = 103 => "REGISTER_BROKER",
        UnregisterBroker = 104 => "UNREGISTER_BROKER",
        GetRouteinfoByTopic = 105 => "GET_ROUTEINFO_BY_TOPIC",
        GetBrokerClusterInfo = 106 => "GET_BROKER_CLUSTER_INFO",
        UpdateAndCreateSubscriptiongroup = 200 => "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP",
        GetAllSubscriptiongroupConfig = 201 => "GET_ALL_SUBSCRIPTIONGROUP_CONFIG",
        GetTopicStatsInfo = 202 => "GET_TOPIC_STATS_INFO",
        GetConsumerConnectionList = 203 => "GET_CONSUMER_CONNECTION_LIST",
        GetProducerConnectionList = 204 => "GET_PRODUCER_CONNECTION_LIST",
        WipeWritePermOfBroker = 205 => "WIPE_WRITE_PERM_OF_BROKER",
        GetAllTopicListFromNameserver = 206 => "GET_ALL_TOPIC_LIST_FROM_NAMESERVER",
        DeleteSubscriptiongroup = 207 => "DELETE_SUBSCRIPTIONGROUP",
        GetConsumeStats = 208 => "GET_CONSUME_STATS",
        /// Legacy.
        ResetConsumerOffsetInConsumer = 211 => "RESET_CONSUMER_OFFSET_IN_CONSUMER",
        /// Legacy.
        ResetConsumerOffsetInBroker = 212 => "RESET_CONSUMER_OFFSET_IN_BROKER",
        DeleteTopicInBroker = 215 => "DELETE_TOPIC_IN_BROKER",
        DeleteTopicInNamesrv = 216 => "DELETE_TOPIC_IN_NAMESRV",
        GetKvlistByNamespace = 219 => "GET_KVLIST_BY_NAMESPACE",
        /// Broker → consumer, oneway.
        ResetConsumerClientOffset = 220 => "RESET_CONSUMER_CLIENT_OFFSET",
        /// Broker → consumer, sync.
        GetConsumerStatusFromClient = 221 => "GET_CONSUMER_STATUS_FROM_CLIENT",
        InvokeBrokerToResetOffset = 222 => "INVOKE_BROKER_TO_RESET_OFFSET",
        InvokeBrokerToGetConsumerStatus = 223 => "INVOKE_BROKER_TO_GET_CONSUMER_STATUS",
        GetTopicsByCluster = 224 => "GET_TOPICS_BY_CLUSTER",
        QueryTopicConsumeByWho = 300 => "QUERY_TOPIC_CONSUME_BY_WHO",
        GetSystemTopicListFromNs = 304 => "GET_SYSTEM_TOPIC_LIST_FROM_NS",
        GetSystemTopicListFromBroker = 305 => "GET_SYSTEM_TOPIC_LIST_FROM_BROKER",
        /// Admin → broker → consumer, sync.
        GetConsumerRunningInfo = 307 => "GET_CONSUMER_RUNNING_INFO",
        /// Admin → broker → consumer, sync.
        ConsumeMessageDirectly = 309 => "CONSUME_MESSAGE_DIRECTLY",
        /// Send with the one-letter header keys of §3.1.
        SendMessageV2 = 310 => "SEND_MESSAGE_V2",
        GetBrokerConsumeStats = 317 => "GET_BROKER_CONSUME_STATS",
        UpdateNamesrvConfig = 318 => "UPDATE_NAMESRV_CONFIG",
        GetNamesrvConfig = 319 => "GET_NAMESRV_CONFIG",
        /// Batch send, one-letter header keys.
        SendBatchMessage = 320 => "SEND_BATCH_MESSAGE",
        QueryConsumeQueue = 321 => "QUERY_CONSUME_QUEUE",
        QueryDataVersion = 322 => "QUERY_DATA_VERSION",
        ResumeCheckHalfMessage = 323 => "RESUME_CHECK_HALF_MESSAGE",
        SendReplyMessage = 324 => "SEND_REPLY_MESSAGE",
        SendReplyMessageV2 = 325 => "SEND_REPLY_MESSAGE_V2",
        /// Broker → client, sync.
        PushReplyMessageToClient = 326 => "PUSH_REPLY_MESSAGE_TO_CLIENT",
        AddWritePermOfBroker = 327 => "ADD_WRITE_PERM_OF_BROKER",
        /// 5.x.
        GetAllProducerInfo = 328 => "GET_ALL_PRODUCER_INFO",
        /// 5.x.
        GetTopicConfig = 351 => "GET_TOPIC_CONFIG",
        /// 5.x.
        LitePullMessage = 361 => "LITE_PULL_MESSAGE",
        /// 5.x.
        QueryAssignment = 400 => "QUERY_ASSIGNMENT",
        /// 5.x.
        SetMessageRequestMode = 401 => "SET_MESSAGE_REQUEST_MODE",
        /// 5.x (nameserver).
        BrokerHeartbeat = 904 => "BROKER_HEARTBEAT",
        /// 5.x; above i16, so JSON headers only.
        PopMessage = 200050 => "POP_MESSAGE",
        /// 5.x.
        AckMessage = 200051 => "ACK_MESSAGE",
        /// 5.x.
        PeekMessage = 200052 => "PEEK_MESSAGE",
        /// 5.x.
        ChangeMessageInvisibletime = 200053 => "CHANGE_MESSAGE_INVISIBLETIME",
        /// 5.x.
        Notification = 200054 => "NOTIFICATION",
        /// 5.x.
        PollingInfo = 200055 => "POLLING_INFO",
        /// 5.x.
        BatchAckMessage = 200151 => "BATCH_ACK_MESSAGE",
        // raftmq group administration: 9101..=9199 is unused by every RocketMQ release
        // (whose codes stop at 3010 plus the 5.x POP codes); see docs/admin.md.
        /// raftmq: Raft group status of the answering node (any member answers).
        RaftmqGroupStatus = 9101 => "RAFTMQ_GROUP_STATUS",
        /// raftmq: add a learner (leader only).
        RaftmqAddLearner = 9102 => "RAFTMQ_ADD_LEARNER",
        /// raftmq: make a learner a voter (leader only).
        RaftmqPromote = 9103 => "RAFTMQ_PROMOTE",
        /// raftmq: remove a member from the group (leader only).
        RaftmqRemoveNode = 9104 => "RAFTMQ_REMOVE_NODE",
        /// raftmq: hand leadership to another voter (leader only).
        RaftmqTransferLeader = 9105 => "RAFTMQ_TRANSFER_LEADER",
    }
}

wire_codes! {
    /// Response codes (§2.3). 209–211 are deliberately absent (meaning differs by version).
    ResponseCode {
        Success = 0 => "SUCCESS",
        SystemError = 1 => "SYSTEM_ERROR",
        SystemBusy = 2 => "SYSTEM_BUSY",
        RequestCodeNotSupported = 3 => "REQUEST_CODE_NOT_SUPPORTED",
        TransactionFailed = 4 => "TRANSACTION_FAILED",
        FlushDiskTimeout = 10 => "FLUSH_DISK_TIMEOUT",
        SlaveNotAvailable = 11 => "SLAVE_NOT_AVAILABLE",
        FlushSlaveTimeout = 12 => "FLUSH_SLAVE_TIMEOUT",
        MessageIllegal = 13 => "MESSAGE_ILLEGAL",
        ServiceNotAvailable = 14 => "SERVICE_NOT_AVAILABLE",
        VersionNotSupported = 15 => "VERSION_NOT_SUPPORTED",
        NoPermission = 16 => "NO_PERMISSION",
        TopicNotExist = 17 => "TOPIC_NOT_EXIST",
        TopicExistAlready = 18 => "TOPIC_EXIST_ALREADY",
        PullNotFound = 19 => "PULL_NOT_FOUND",
        PullRetryImmediately = 20 => "PULL_RETRY_IMMEDIATELY",
        PullOffsetMoved = 21 => "PULL_OFFSET_MOVED",
        QueryNotFound = 22 => "QUERY_NOT_FOUND",
        SubscriptionParseFailed = 23 => "SUBSCRIPTION_PARSE_FAILED",
        SubscriptionNotExist = 24 => "SUBSCRIPTION_NOT_EXIST",
        SubscriptionNotLatest = 25 => "SUBSCRIPTION_NOT_LATEST",
        SubscriptionGroupNotExist = 26 => "SUBSCRIPTION_GROUP_NOT_EXIST",
        FilterDataNotExist = 27 => "FILTER_DATA_NOT_EXIST",
        FilterDataNotLatest = 28 => "FILTER_DATA_NOT_LATEST",
        /// 5.x only; 4.x clients treat it as a generic failure.
        InvalidParameter = 29 => "INVALID_PARAMETER",
        TransactionShouldCommit = 200 => "TRANSACTION_SHOULD_COMMIT",
        TransactionShouldRollback = 201 => "TRANSACTION_SHOULD_ROLLBACK",
        TransactionStateUnknow = 202 => "TRANSACTION_STATE_UNKNOW",
        TransactionStateGroupWrong = 203 => "TRANSACTION_STATE_GROUP_WRONG",
        NoBuyerId = 204 => "NO_BUYER_ID",
        NotInCurrentUnit = 205 => "NOT_IN_CURRENT_UNIT",
        ConsumerNotOnline = 206 => "CONSUMER_NOT_ONLINE",
        ConsumeMsgTimeout = 207 => "CONSUME_MSG_TIMEOUT",
        NoMessage = 208 => "NO_MESSAGE",
        BrokerDispatchNotComplete = 212 => "BROKER_DISPATCH_NOT_COMPLETE",
        BroadcastConsumption = 213 => "BROADCAST_CONSUMPTION",
        FlowControl = 215 => "FLOW_CONTROL",
        /// 5.x.
        NotLeaderForQueue = 501 => "NOT_LEADER_FOR_QUEUE",
        /// 5.x.
        IllegalOperation = 604 => "ILLEGAL_OPERATION",
        /// 5.x.
        GoAway = 1500 => "GO_AWAY",
    }
}

wire_codes! {
    /// The sender's language (§1.2). JSON headers carry the name, binary headers the number.
    LanguageCode {
        Java = 0 => "JAVA",
        Cpp = 1 => "CPP",
        Dotnet = 2 => "DOTNET",
        Python = 3 => "PYTHON",
        Delphi = 4 => "DELPHI",
        Erlang = 5 => "ERLANG",
        Ruby = 6 => "RUBY",
        /// Also what an unknown name or number decodes to.
        Other = 7 => "OTHER",
        Http = 8 => "HTTP",
        Go = 9 => "GO",
        Php = 10 => "PHP",
        Oms = 11 => "OMS",
        Rust = 12 => "RUST",
        NodeJs = 13 => "NODE_JS",
    }
}

impl LanguageCode {
    /// Parses a JSON language name; names this table does not know become [`LanguageCode::Other`]
    /// because newer clients add languages and the field is informational only.
    pub fn from_name(name: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|l| l.name() == name)
            .unwrap_or(LanguageCode::Other)
    }

    /// Binary headers carry one byte; unknown values become [`LanguageCode::Other`].
    pub fn from_byte(b: u8) -> Self {
        Self::from_code(i32::from(b)).unwrap_or(LanguageCode::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = HashSet::new();
        for c in RequestCode::ALL {
            assert!(seen.insert(c.code()), "duplicate request code {c}");
            assert_eq!(RequestCode::from_code(c.code()), Some(*c));
        }
        let mut seen = HashSet::new();
        for c in ResponseCode::ALL {
            assert!(seen.insert(c.code()), "duplicate response code {c}");
            assert_eq!(ResponseCode::from_code(c.code()), Some(*c));
        }
    }

    /// Pins numbers from the fact sheet; a failing line here means a code was renumbered.
    #[test]
    fn well_known_numbers_are_pinned() {
        assert_eq!(RequestCode::SendMessage.code(), 10);
        assert_eq!(RequestCode::PullMessage.code(), 11);
        assert_eq!(RequestCode::HeartBeat.code(), 34);
        assert_eq!(RequestCode::NotifyConsumerIdsChanged.code(), 40);
        assert_eq!(RequestCode::RegisterBroker.code(), 103);
        assert_eq!(RequestCode::GetRouteinfoByTopic.code(), 105);
        assert_eq!(RequestCode::GetKvlistByNamespace.code(), 219);
        assert_eq!(RequestCode::SendMessageV2.code(), 310);
        assert_eq!(RequestCode::SendBatchMessage.code(), 320);
        assert_eq!(RequestCode::PopMessage.code(), 200_050);
        assert_eq!(ResponseCode::RequestCodeNotSupported.code(), 3);
        assert_eq!(ResponseCode::TopicNotExist.code(), 17);
        assert_eq!(ResponseCode::QueryNotFound.code(), 22);
        assert_eq!(ResponseCode::ConsumerNotOnline.code(), 206);
        assert_eq!(ResponseCode::from_code(209), None);
        assert_eq!(LanguageCode::Rust.code(), 12);
    }

    #[test]
    fn unknown_language_becomes_other() {
        assert_eq!(LanguageCode::from_name("GO"), LanguageCode::Go);
        assert_eq!(LanguageCode::from_name("COBOL"), LanguageCode::Other);
        assert_eq!(LanguageCode::from_byte(200), LanguageCode::Other);
    }
}
