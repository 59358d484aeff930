//! Headers of the requests the nameserver serves (protocol.md §3.9, §2.1).

use super::command_header;

command_header! {
    /// REGISTER_BROKER (103) request. Body: RegisterBrokerBody (JSON, or zlib when `compressed`).
    pub struct RegisterBrokerRequestHeader {
        broker_name: String => "brokerName",
        /// `ip:port` of the broker's listen port.
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        /// `ip:haPort`.
        ha_server_addr: String => "haServerAddr",
        /// 0 = master (for a Raft group: the leader).
        broker_id: i64 => "brokerId",
        /// Java primitive, default false.
        compressed: bool => "compressed" = false,
        /// CRC32 of the body masked with 0x7FFFFFFF; 0 = not checked. Java default 0.
        body_crc32: i32 => "bodyCrc32" = 0,
        /// 5.x.
        heartbeat_timeout_millis: Option<i64> => "heartbeatTimeoutMillis",
        /// 5.x.
        enable_acting_master: Option<bool> => "enableActingMaster",
        /// raftmq extension (ignored by Java nameservers): the Raft term in which the broker
        /// holds its role, so a stale former leader cannot overwrite the current one.
        raft_term: Option<u64> => "raftTerm",
        /// raftmq extension: the broker's Raft node id within its group.
        raft_node_id: Option<u64> => "raftNodeId",
    }
}

command_header! {
    /// REGISTER_BROKER (103) response.
    pub struct RegisterBrokerResponseHeader {
        ha_server_addr: Option<String> => "haServerAddr",
        /// The current master's address, filled for slaves.
        master_addr: Option<String> => "masterAddr",
        /// raftmq extension: the group's current term, sent back when a registration is
        /// rejected as stale.
        raft_term: Option<u64> => "raftTerm",
    }
}

command_header! {
    /// UNREGISTER_BROKER (104) request.
    pub struct UnRegisterBrokerRequestHeader {
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        broker_id: i64 => "brokerId",
    }
}

command_header! {
    /// GET_ROUTEINFO_BY_TOPIC (105) request.
    pub struct GetRouteInfoRequestHeader {
        topic: String => "topic",
        /// Ask for standard JSON (quoted numeric keys); implied by request version ≥ 401.
        accept_standard_json_only: Option<bool> => "acceptStandardJsonOnly",
    }
}

command_header! {
    /// PUT_KV_CONFIG (100) request.
    pub struct PutKvConfigRequestHeader {
        namespace: String => "namespace",
        key: String => "key",
        value: String => "value",
    }
}

command_header! {
    /// GET_KV_CONFIG (101) request.
    pub struct GetKvConfigRequestHeader {
        namespace: String => "namespace",
        key: String => "key",
    }
}

command_header! {
    /// GET_KV_CONFIG (101) response (absent value → response code QUERY_NOT_FOUND).
    pub struct GetKvConfigResponseHeader {
        value: Option<String> => "value",
    }
}

command_header! {
    /// DELETE_KV_CONFIG (102) request.
    pub struct DeleteKvConfigRequestHeader {
        namespace: String => "namespace",
        key: String => "key",
    }
}

command_header! {
    /// GET_KVLIST_BY_NAMESPACE (219) request.
    pub struct GetKvListByNamespaceRequestHeader {
        namespace: String => "namespace",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_NAMESRV (216) request.
    pub struct DeleteTopicFromNamesrvRequestHeader {
        topic: String => "topic",
        /// 5.x: restrict to one cluster.
        cluster_name: Option<String> => "clusterName",
    }
}

command_header! {
    /// QUERY_DATA_VERSION (322) request. Body: DataVersion JSON.
    pub struct QueryDataVersionRequestHeader {
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        broker_id: i64 => "brokerId",
    }
}

command_header! {
    /// QUERY_DATA_VERSION (322) response.
    pub struct QueryDataVersionResponseHeader {
        changed: Option<bool> => "changed",
    }
}

command_header! {
    /// GET_TOPICS_BY_CLUSTER (224) request.
    pub struct GetTopicsByClusterRequestHeader {
        cluster: String => "cluster",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205) / ADD_WRITE_PERM_OF_BROKER (327) request.
    pub struct WipeWritePermOfBrokerRequestHeader {
        broker_name: String => "brokerName",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205) response.
    pub struct WipeWritePermOfBrokerResponseHeader {
        wipe_topic_count: i32 => "wipeTopicCount",
    }
}

command_header! {
    /// ADD_WRITE_PERM_OF_BROKER (327) response.
    pub struct AddWritePermOfBrokerResponseHeader {
        add_topic_count: i32 => "addTopicCount",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::{CommandHeader, ExtFields, HeaderError, RemotingCommand, RequestCode};

    fn ext(pairs: &[(&str, &str)]) -> ExtFields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn register_broker_defaults_and_round_trip() {
        let e = ext(&[
            ("brokerName", "broker-a"),
            ("brokerAddr", "10.0.0.1:10911"),
            ("clusterName", "DefaultCluster"),
            ("haServerAddr", "10.0.0.1:10912"),
            ("brokerId", "0"),
            ("unknownKey", "ignored"),
        ]);
        let h = RegisterBrokerRequestHeader::from_ext(&e).unwrap();
        assert_eq!(h.broker_id, 0);
        assert!(!h.compressed);
        assert_eq!(h.body_crc32, 0);
        assert_eq!(h.heartbeat_timeout_millis, None);
        assert_eq!(h.raft_term, None);

        let cmd = RemotingCommand::request(RequestCode::RegisterBroker).with_header(&h);
        assert_eq!(cmd.ext_str("compressed"), Ok("false"));
        assert_eq!(cmd.ext_str("bodyCrc32"), Ok("0"));
        assert!(cmd.ext_opt_str("heartbeatTimeoutMillis").is_none());
        assert_eq!(
            cmd.decode_header::<RegisterBrokerRequestHeader>().unwrap(),
            h
        );
    }

    #[test]
    fn raft_extension_fields_round_trip() {
        let h = RegisterBrokerRequestHeader {
            broker_name: "g1".into(),
            broker_addr: "127.0.0.1:10911".into(),
            cluster_name: "C".into(),
            ha_server_addr: "127.0.0.1:10912".into(),
            broker_id: 0,
            raft_term: Some(7),
            raft_node_id: Some(2),
            ..Default::default()
        };
        let mut ext = ExtFields::new();
        h.to_ext(&mut ext);
        assert_eq!(&ext["raftTerm"], "7");
        assert_eq!(RegisterBrokerRequestHeader::from_ext(&ext), Ok(h));
        ext.insert("raftTerm", "-1");
        assert!(RegisterBrokerRequestHeader::from_ext(&ext).is_err());
    }

    #[test]
    fn missing_and_malformed_fields_name_the_field() {
        let e = ext(&[
            ("brokerName", "b"),
            ("brokerAddr", "a"),
            ("clusterName", "c"),
        ]);
        assert_eq!(
            UnRegisterBrokerRequestHeader::from_ext(&e),
            Err(HeaderError::Missing { field: "brokerId" })
        );
        let e = ext(&[
            ("brokerName", "b"),
            ("brokerAddr", "a"),
            ("clusterName", "c"),
            ("brokerId", "zero"),
        ]);
        assert!(matches!(
            UnRegisterBrokerRequestHeader::from_ext(&e),
            Err(HeaderError::Malformed {
                field: "brokerId",
                ..
            })
        ));
    }

    #[test]
    fn route_request_optional_flag() {
        let h = GetRouteInfoRequestHeader::from_ext(&ext(&[("topic", "T")])).unwrap();
        assert_eq!(h.accept_standard_json_only, None);
        let h = GetRouteInfoRequestHeader::from_ext(&ext(&[
            ("topic", "T"),
            ("acceptStandardJsonOnly", "True"),
        ]))
        .unwrap();
        assert_eq!(h.accept_standard_json_only, Some(true));
    }
}
