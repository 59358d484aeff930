//! `BrokerConfig`: a broker node's settings, read from RocketMQ `broker.conf` keys.
//!
//! An existing DLedger `broker.conf` starts a raftmq node: the same key names, the same units
//! and defaults. Keys RocketMQ knows but raftmq does not act on are reported as "no effect";
//! keys nobody knows are reported as unknown (both are warnings, never silently dropped).
//! `conf/broker.example.conf` documents every key. This module only describes settings; it
//! opens nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use raftmq_raft::RaftGroupConfig;
use raftmq_store::config::{FlushMode, RetentionConfig};

use crate::config::{ConfigError, Leftovers, Properties};

/// Settings of one broker node (one member of a broker group).
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `brokerClusterName`. Default `DefaultCluster`.
    pub broker_cluster_name: String,
    /// `brokerName`: the group's name as clients see it. Default `broker-a`.
    pub broker_name: String,
    /// `brokerIP1`: the address clients reach this node at (also the STOREHOST of messages).
    /// Default `127.0.0.1`.
    pub broker_ip1: IpAddr,
    /// `listenPort`: remoting port. Default 10911; 0 picks a free port.
    pub listen_port: u16,
    /// `namesrvAddr`: `host:port;host:port`. Empty = register nowhere.
    pub namesrv_addr: Vec<String>,
    /// `storePathRootDir`. Default `$HOME/store`.
    pub store_path_root_dir: PathBuf,
    /// `dLegerGroup`. Default = `brokerName`.
    pub dleger_group: String,
    /// `dLegerPeers`: `n0-host:port;n1-host:port;...`. Empty (default): a group of one whose
    /// peer transport listens on `brokerIP1:(listenPort + 1)`.
    pub dleger_peers: String,
    /// `dLegerSelfId`. Default `n0`.
    pub dleger_self_id: String,
    /// `raftHeartbeatIntervalMs` (raftmq): the leader's heartbeat period. Default 50.
    pub raft_heartbeat_interval: Duration,
    /// `raftElectionTimeoutMinMs` / `raftElectionTimeoutMaxMs` (raftmq): the randomized
    /// election timeout. A follower that stops hearing from its leader campaigns after the
    /// leader lease (= the maximum) plus a random value in `[min, max)`. Defaults 200 / 300.
    pub raft_election_timeout_min: Duration,
    pub raft_election_timeout_max: Duration,
    /// `dLegerJoin` (raftmq): this node joins a running group (added with `raftmq admin
    /// add-learner`) and never initialises a group itself, even on an empty store.
    /// `dLegerPeers` then needs only this node's own entry. Default false.
    pub dleger_join: bool,
    /// `peerBrokerAddrs` (raftmq): `n0-host:port;n1-host:port;...`, the remoting address of
    /// every member, so a follower can name the leader when it refuses a write. Optional.
    pub peer_broker_addrs: String,
    /// `flushDiskType`: `SYNC_FLUSH` or `ASYNC_FLUSH` (default, as RocketMQ).
    pub flush_disk_type: FlushMode,
    /// `mapedFileSizeCommitLog` (bytes). Default 1 GiB.
    pub maped_file_size_commit_log: u64,
    /// `mapedFileSizeConsumeQueue` (bytes, multiple of 20). Default 6 000 000.
    pub maped_file_size_consume_queue: u64,
    /// `maxMessageSize` (bytes of one stored record). Default 4 MiB.
    pub max_message_size: usize,
    /// `autoCreateTopicEnable`: create unknown topics from `TBW102` on first send. Default true.
    pub auto_create_topic_enable: bool,
    /// `autoCreateSubscriptionGroup`. Default true.
    pub auto_create_subscription_group: bool,
    /// `defaultTopicQueueNums`: queues of TBW102 (and the cap of auto-created topics). Default 8.
    pub default_topic_queue_nums: i32,
    /// `brokerPermission`: 6 = read|write. Default 6.
    pub broker_permission: i32,
    /// `longPollingEnable`. Default true.
    pub long_polling_enable: bool,
    /// `shortPollingTimeMills` (ms): hold time without long polling. Default 1000.
    pub short_polling_time: Duration,
    /// `registerBrokerTimeoutMills` (ms). Default 6000.
    pub register_broker_timeout: Duration,
    /// `registerNameServerPeriod` (ms): re-registration period. Default 30 000.
    pub register_name_server_period: Duration,
    /// `deleteWhen`: hour(s) of day when expired segments are deleted. Default `04`.
    pub delete_when: String,
    /// `fileReservedTime` (hours): a sealed commitlog segment is kept this long after its
    /// last write. Default 72; 0 = deletable as soon as it is sealed.
    pub file_reserved_time: u32,
    /// `cleanResourceInterval` (ms): how often retention runs. Default 10 000.
    pub clean_resource_interval: Duration,
    /// `diskMaxUsedSpaceRatio` (percent): above it, expired segments go at any hour.
    /// Default 75; 10..=95.
    pub disk_max_used_space_ratio: u8,
    /// `diskSpaceCleanForciblyRatio` (percent): above it, sealed segments go even if not
    /// expired, and the leader purges past what a lagging member has matched (it comes back
    /// through a snapshot). Default 85; 10..=100 (100 = never).
    pub disk_space_clean_forcibly_ratio: u8,
    /// `messageIndexEnable`. Default true.
    pub message_index_enable: bool,
    /// `traceOn` reported in send responses. Default true.
    pub trace_on: bool,
    /// `regionId` reported in send responses. Default `DefaultRegion`.
    pub region_id: String,
    /// `channelExpiredTimeout` (ms): a client channel silent this long (no heartbeat) is
    /// dropped and its consumer group told. Default 120 000.
    pub channel_expired_timeout: Duration,
}

/// RocketMQ broker keys accepted for compatibility that change nothing in raftmq.
const BROKER_IGNORED_KEYS: &[&str] = &[
    "brokerId",
    "brokerRole",
    "storePathCommitLog",
    "storePathConsumeQueue",
    "storePathIndex",
    "storeCheckpoint",
    "abortFile",
    "haListenPort",
    "brokerIP2",
    "rocketmqHome",
    "namesrvAddrs",
    "serverWorkerThreads",
    "serverSelectorThreads",
    "sendMessageThreadPoolNums",
    "pullMessageThreadPoolNums",
    "queryMessageThreadPoolNums",
    "adminBrokerThreadPoolNums",
    "clientManageThreadPoolNums",
    "consumerManageThreadPoolNums",
    "useReentrantLockWhenPutMessage",
    "transientStorePoolEnable",
    "warmMapedFileEnable",
    "flushIntervalCommitLog",
    "flushCommitLogTimed",
    "flushConsumeQueueLeastPages",
    "destroyMapedFileIntervalForcibly",
    "redeleteHangedFileInterval",
    "slaveReadEnable",
    "offsetCheckInSlave",
    "waitTimeMillsInSendQueue",
    "osPageCacheBusyTimeOutMills",
    "sendThreadPoolQueueCapacity",
    "pullThreadPoolQueueCapacity",
    "fetchNamesrvAddrByAddressServer",
    "aclEnable",
    "storeReplyMessageEnable",
    "traceTopicEnable",
    "msgTraceTopicName",
    "isEnableBatchPush",
    "enablePropertyFilter",
    "filterSupportRetry",
    "dLegerPreferredLeaderId",
    "sendMessageWithVIPChannel",
    "enableControllerMode",
];

fn default_store_root() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join("store"))
        .unwrap_or_else(|| PathBuf::from("store"))
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_ip1: IpAddr::V4(Ipv4Addr::LOCALHOST),
            listen_port: 10911,
            namesrv_addr: Vec::new(),
            store_path_root_dir: default_store_root(),
            dleger_group: String::new(),
            dleger_peers: String::new(),
            dleger_self_id: "n0".into(),
            dleger_join: false,
            peer_broker_addrs: String::new(),
            raft_heartbeat_interval: RaftGroupConfig::DEFAULT_HEARTBEAT_INTERVAL,
            raft_election_timeout_min: RaftGroupConfig::DEFAULT_ELECTION_TIMEOUT_MIN,
            raft_election_timeout_max: RaftGroupConfig::DEFAULT_ELECTION_TIMEOUT_MAX,
            flush_disk_type: FlushMode::Async,
            maped_file_size_commit_log: 1 << 30,
            maped_file_size_consume_queue: 300_000 * 20,
            max_message_size: 4 << 20,
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
            broker_permission: 6,
            long_polling_enable: true,
            short_polling_time: Duration::from_millis(1000),
            register_broker_timeout: Duration::from_millis(6000),
            register_name_server_period: Duration::from_secs(30),
            delete_when: "04".into(),
            file_reserved_time: 72,
            clean_resource_interval: Duration::from_secs(10),
            disk_max_used_space_ratio: 75,
            disk_space_clean_forcibly_ratio: 85,
            message_index_enable: true,
            trace_on: true,
            region_id: "DefaultRegion".into(),
            channel_expired_timeout: Duration::from_secs(120),
        }
    }
}

impl BrokerConfig {
    /// Builds the config from parsed properties; absent keys take their defaults. Unknown and
    /// no-effect keys are logged (a warning each).
    pub fn from_properties(props: &Properties) -> Result<Self, ConfigError> {
        let (cfg, leftovers) = Self::from_properties_checked(props)?;
        leftovers.report(&props.origin);
        Ok(cfg)
    }

    /// Like [`BrokerConfig::from_properties`], but returns the unknown and ignored keys
    /// instead of logging them.
    pub fn from_properties_checked(props: &Properties) -> Result<(Self, Leftovers), ConfigError> {
        let d = BrokerConfig::default();
        let mut r = props.reader();
        let broker_name = r.string("brokerName").unwrap_or(d.broker_name);
        let flush = match r.string("flushDiskType").as_deref() {
            None | Some("ASYNC_FLUSH") => FlushMode::Async,
            Some("SYNC_FLUSH") => FlushMode::Sync,
            Some(other) => {
                return Err(ConfigError::Inconsistent(format!(
                    "flushDiskType {other:?}: expected SYNC_FLUSH or ASYNC_FLUSH"
                )))
            }
        };
        let cfg = BrokerConfig {
            broker_cluster_name: r
                .string("brokerClusterName")
                .unwrap_or(d.broker_cluster_name),
            dleger_group: r
                .string("dLegerGroup")
                .unwrap_or_else(|| broker_name.clone()),
            broker_name,
            broker_ip1: r.parse_or("brokerIP1", d.broker_ip1)?,
            listen_port: r.parse_or("listenPort", d.listen_port)?,
            namesrv_addr: r
                .string("namesrvAddr")
                .map(|s| {
                    s.split(';')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            store_path_root_dir: r
                .string("storePathRootDir")
                .map(PathBuf::from)
                .unwrap_or(d.store_path_root_dir),
            dleger_peers: r.string("dLegerPeers").unwrap_or(d.dleger_peers),
            dleger_self_id: r.string("dLegerSelfId").unwrap_or(d.dleger_self_id),
            dleger_join: r.bool_or("dLegerJoin", d.dleger_join)?,
            peer_broker_addrs: r.string("peerBrokerAddrs").unwrap_or_default(),
            raft_heartbeat_interval: r.millis_or(
                "raftHeartbeatIntervalMs",
                d.raft_heartbeat_interval,
                Duration::from_millis(10),
                Duration::from_secs(10),
            )?,
            raft_election_timeout_min: r.millis_or(
                "raftElectionTimeoutMinMs",
                d.raft_election_timeout_min,
                Duration::from_millis(20),
                Duration::from_secs(60),
            )?,
            raft_election_timeout_max: r.millis_or(
                "raftElectionTimeoutMaxMs",
                d.raft_election_timeout_max,
                Duration::from_millis(30),
                Duration::from_secs(120),
            )?,
            flush_disk_type: flush,
            maped_file_size_commit_log: r
                .parse_or("mapedFileSizeCommitLog", d.maped_file_size_commit_log)?,
            maped_file_size_consume_queue: r
                .parse_or("mapedFileSizeConsumeQueue", d.maped_file_size_consume_queue)?,
            max_message_size: r.parse_or("maxMessageSize", d.max_message_size)?,
            auto_create_topic_enable: r
                .bool_or("autoCreateTopicEnable", d.auto_create_topic_enable)?,
            auto_create_subscription_group: r.bool_or(
                "autoCreateSubscriptionGroup",
                d.auto_create_subscription_group,
            )?,
            default_topic_queue_nums: r
                .parse_or("defaultTopicQueueNums", d.default_topic_queue_nums)?,
            broker_permission: r.parse_or("brokerPermission", d.broker_permission)?,
            long_polling_enable: r.bool_or("longPollingEnable", d.long_polling_enable)?,
            short_polling_time: r.millis_or(
                "shortPollingTimeMills",
                d.short_polling_time,
                Duration::from_millis(10),
                Duration::from_secs(60),
            )?,
            register_broker_timeout: r.millis_or(
                "registerBrokerTimeoutMills",
                d.register_broker_timeout,
                Duration::from_millis(100),
                Duration::from_secs(60),
            )?,
            register_name_server_period: r.millis_or(
                "registerNameServerPeriod",
                d.register_name_server_period,
                Duration::from_millis(100),
                Duration::from_secs(60),
            )?,
            delete_when: r.string("deleteWhen").unwrap_or(d.delete_when),
            file_reserved_time: r.parse_or("fileReservedTime", d.file_reserved_time)?,
            clean_resource_interval: r.millis_or(
                "cleanResourceInterval",
                d.clean_resource_interval,
                Duration::from_millis(50),
                Duration::from_secs(3600),
            )?,
            disk_max_used_space_ratio: r
                .parse_or("diskMaxUsedSpaceRatio", d.disk_max_used_space_ratio)?,
            disk_space_clean_forcibly_ratio: r.parse_or(
                "diskSpaceCleanForciblyRatio",
                d.disk_space_clean_forcibly_ratio,
            )?,
            message_index_enable: r.bool_or("messageIndexEnable", d.message_index_enable)?,
            trace_on: r.bool_or("traceOn", d.trace_on)?,
            region_id: r.string("regionId").unwrap_or(d.region_id),
            channel_expired_timeout: r.millis_or(
                "channelExpiredTimeout",
                d.channel_expired_timeout,
                Duration::from_millis(100),
                Duration::from_secs(24 * 3600),
            )?,
        };
        if !r.bool_or("enableDLegerCommitLog", true)? {
            tracing::warn!(
                origin = %props.origin,
                "enableDLegerCommitLog=false has no effect: every raftmq broker is a Raft group"
            );
        }
        r.recognise_ignored(BROKER_IGNORED_KEYS);
        cfg.validate()?;
        Ok((cfg, r.leftovers()))
    }

    /// Loads and validates a `broker.conf`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_properties(&Properties::load(path)?)
    }

    /// Checks the settings together; runs before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Inconsistent(s));
        if self.broker_name.is_empty() || self.broker_cluster_name.is_empty() {
            return bad("brokerName and brokerClusterName must not be empty".into());
        }
        if self.maped_file_size_consume_queue == 0 || self.maped_file_size_consume_queue % 20 != 0 {
            return bad(format!(
                "mapedFileSizeConsumeQueue {} must be a positive multiple of 20",
                self.maped_file_size_consume_queue
            ));
        }
        if self.max_message_size < 1024 || self.max_message_size > (64 << 20) {
            return bad(format!(
                "maxMessageSize {} outside 1 KiB..=64 MiB",
                self.max_message_size
            ));
        }
        if !(1..=1024).contains(&self.default_topic_queue_nums) {
            return bad(format!(
                "defaultTopicQueueNums {} outside 1..=1024",
                self.default_topic_queue_nums
            ));
        }
        if self.broker_permission & !7 != 0 {
            return bad(format!(
                "brokerPermission {} has bits other than 1|2|4",
                self.broker_permission
            ));
        }
        if !(10..=100).contains(&self.disk_space_clean_forcibly_ratio) {
            return bad(format!(
                "diskSpaceCleanForciblyRatio {} outside 10..=100",
                self.disk_space_clean_forcibly_ratio
            ));
        }
        self.retention_config()
            .validate()
            .map_err(|e| ConfigError::Inconsistent(e.to_string()))?;
        self.raft_group().map(|_| ())
    }

    /// The commitlog retention rules (`fileReservedTime`, `deleteWhen`, disk ratios).
    pub fn retention_config(&self) -> RetentionConfig {
        RetentionConfig {
            file_reserved_hours: u64::from(self.file_reserved_time),
            delete_when: self.delete_when.clone(),
            disk_max_used_space_ratio: self.disk_max_used_space_ratio,
            disk_space_clean_forcibly_ratio: self.disk_space_clean_forcibly_ratio,
            ..RetentionConfig::default()
        }
    }

    /// The Raft group settings (`dLegerGroup`, `dLegerPeers`, `dLegerSelfId`).
    ///
    /// Without `dLegerPeers` the node is a group of one whose peer transport listens on
    /// `brokerIP1:(listenPort + 1)`: a standalone broker is still a Raft group.
    pub fn raft_group(&self) -> Result<RaftGroupConfig, ConfigError> {
        let peers = if self.dleger_peers.is_empty() {
            format!(
                "{}-{}",
                self.dleger_self_id,
                SocketAddr::new(self.broker_ip1, self.listen_port.wrapping_add(1))
            )
        } else {
            self.dleger_peers.clone()
        };
        let group = if self.dleger_group.is_empty() {
            &self.broker_name
        } else {
            &self.dleger_group
        };
        let mut g = RaftGroupConfig::from_dledger(group, &peers, &self.dleger_self_id)
            .map_err(|e| ConfigError::Inconsistent(format!("DLedger settings: {e}")))?;
        g.heartbeat_interval = self.raft_heartbeat_interval;
        g.election_timeout_min = self.raft_election_timeout_min;
        g.election_timeout_max = self.raft_election_timeout_max;
        g.validate().map_err(|e| {
            ConfigError::Inconsistent(format!(
                "raftHeartbeatIntervalMs / raftElectionTimeoutMinMs / raftElectionTimeoutMaxMs: {e}"
            ))
        })?;
        Ok(g)
    }

    /// The effective settings as `key=value` lines (GET_BROKER_CONFIG answers with this).
    pub fn to_properties_text(&self) -> String {
        let flush = match self.flush_disk_type {
            FlushMode::Sync => "SYNC_FLUSH",
            FlushMode::Async => "ASYNC_FLUSH",
        };
        let pairs: Vec<(&str, String)> = vec![
            ("brokerClusterName", self.broker_cluster_name.clone()),
            ("brokerName", self.broker_name.clone()),
            ("brokerIP1", self.broker_ip1.to_string()),
            ("listenPort", self.listen_port.to_string()),
            ("namesrvAddr", self.namesrv_addr.join(";")),
            (
                "storePathRootDir",
                self.store_path_root_dir.display().to_string(),
            ),
            ("enableDLegerCommitLog", "true".into()),
            ("dLegerGroup", self.dleger_group.clone()),
            ("dLegerPeers", self.dleger_peers.clone()),
            ("dLegerSelfId", self.dleger_self_id.clone()),
            ("dLegerJoin", self.dleger_join.to_string()),
            ("peerBrokerAddrs", self.peer_broker_addrs.clone()),
            (
                "raftHeartbeatIntervalMs",
                self.raft_heartbeat_interval.as_millis().to_string(),
            ),
            (
                "raftElectionTimeoutMinMs",
                self.raft_election_timeout_min.as_millis().to_string(),
            ),
            (
                "raftElectionTimeoutMaxMs",
                self.raft_election_timeout_max.as_millis().to_string(),
            ),
            ("flushDiskType", flush.into()),
            (
                "mapedFileSizeCommitLog",
                self.maped_file_size_commit_log.to_string(),
            ),
            (
                "mapedFileSizeConsumeQueue",
                self.maped_file_size_consume_queue.to_string(),
            ),
            ("maxMessageSize", self.max_message_size.to_string()),
            (
                "autoCreateTopicEnable",
                self.auto_create_topic_enable.to_string(),
            ),
            (
                "autoCreateSubscriptionGroup",
                self.auto_create_subscription_group.to_string(),
            ),
            (
                "defaultTopicQueueNums",
                self.default_topic_queue_nums.to_string(),
            ),
            ("brokerPermission", self.broker_permission.to_string()),
            ("longPollingEnable", self.long_polling_enable.to_string()),
            (
                "shortPollingTimeMills",
                self.short_polling_time.as_millis().to_string(),
            ),
            (
                "registerBrokerTimeoutMills",
                self.register_broker_timeout.as_millis().to_string(),
            ),
            (
                "registerNameServerPeriod",
                self.register_name_server_period.as_millis().to_string(),
            ),
            ("deleteWhen", self.delete_when.clone()),
            ("fileReservedTime", self.file_reserved_time.to_string()),
            (
                "cleanResourceInterval",
                self.clean_resource_interval.as_millis().to_string(),
            ),
            (
                "diskMaxUsedSpaceRatio",
                self.disk_max_used_space_ratio.to_string(),
            ),
            (
                "diskSpaceCleanForciblyRatio",
                self.disk_space_clean_forcibly_ratio.to_string(),
            ),
            ("messageIndexEnable", self.message_index_enable.to_string()),
            ("traceOn", self.trace_on.to_string()),
            ("regionId", self.region_id.clone()),
            (
                "channelExpiredTimeout",
                self.channel_expired_timeout.as_millis().to_string(),
            ),
        ];
        pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// The address clients reach this node at (`brokerIP1:listenPort`).
    pub fn broker_addr(&self, bound_port: u16) -> SocketAddr {
        SocketAddr::new(self.broker_ip1, bound_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dledger_conf_parses_and_reports_unknown_keys() {
        let text = "brokerClusterName=C\nbrokerName=broker-b\nlistenPort=20911\n\
                    namesrvAddr=127.0.0.1:9876;127.0.0.1:9877\nenableDLegerCommitLog=true\n\
                    dLegerGroup=broker-b\ndLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913\n\
                    dLegerSelfId=n1\nflushDiskType=SYNC_FLUSH\nmaxMessageSize=1048576\nlistenPrt=1\n\
                    brokerRole=SYNC_MASTER\n";
        let props = Properties::parse(text, "t.conf").unwrap();
        let cfg = BrokerConfig::from_properties(&props).unwrap();
        assert_eq!(cfg.broker_name, "broker-b");
        assert_eq!(cfg.listen_port, 20911);
        assert_eq!(cfg.namesrv_addr, vec!["127.0.0.1:9876", "127.0.0.1:9877"]);
        assert_eq!(cfg.flush_disk_type, FlushMode::Sync);
        assert_eq!(cfg.max_message_size, 1 << 20);
        let g = cfg.raft_group().unwrap();
        assert_eq!(g.self_id, 1);
        assert_eq!(g.peers.len(), 3);
        let (_, left) = BrokerConfig::from_properties_checked(&props).unwrap();
        assert_eq!(left.unknown, vec![("listenPrt".to_string(), 11)]);
        assert_eq!(left.ignored, vec![("brokerRole".to_string(), 12)]);
    }

    #[test]
    fn raft_timing_keys_reach_the_group() {
        let d = BrokerConfig::default().raft_group().unwrap();
        assert_eq!(d.heartbeat_interval, Duration::from_millis(50));
        assert_eq!(d.election_timeout_min, Duration::from_millis(200));
        assert_eq!(d.election_timeout_max, Duration::from_millis(300));
        let text = "raftHeartbeatIntervalMs=100\nraftElectionTimeoutMinMs=500\n\
                    raftElectionTimeoutMaxMs=900\n";
        let cfg = BrokerConfig::from_properties(&Properties::parse(text, "t").unwrap()).unwrap();
        let g = cfg.raft_group().unwrap();
        assert_eq!(g.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(g.election_timeout_min, Duration::from_millis(500));
        assert_eq!(g.election_timeout_max, Duration::from_millis(900));
    }

    #[test]
    fn properties_text_round_trips() {
        let text = "brokerName=broker-z\nlistenPort=1234\nflushDiskType=SYNC_FLUSH\n\
                    namesrvAddr=127.0.0.1:1;127.0.0.1:2\nshortPollingTimeMills=500\n";
        let cfg = BrokerConfig::from_properties(&Properties::parse(text, "t").unwrap()).unwrap();
        let again = Properties::parse(&cfg.to_properties_text(), "again").unwrap();
        let (back, left) = BrokerConfig::from_properties_checked(&again).unwrap();
        assert_eq!(back, cfg);
        assert!(left.unknown.is_empty(), "{:?}", left.unknown);
    }

    #[test]
    fn bad_values_are_errors() {
        for text in [
            "flushDiskType=SOMETIMES\n",
            "maxMessageSize=12\n",
            "listenPort=x\n",
            "dLegerPeers=n0-127.0.0.1:1\ndLegerSelfId=n5\n",
            "mapedFileSizeConsumeQueue=7\n",
            "raftHeartbeatIntervalMs=300\n",
            "raftElectionTimeoutMinMs=400\nraftElectionTimeoutMaxMs=400\n",
            "raftElectionTimeoutMaxMs=5\n",
            "deleteWhen=25\n",
            "diskMaxUsedSpaceRatio=99\n",
            "diskSpaceCleanForciblyRatio=5\n",
            "cleanResourceInterval=1\n",
        ] {
            let props = Properties::parse(text, "t.conf").unwrap();
            assert!(BrokerConfig::from_properties(&props).is_err(), "{text}");
        }
    }

    #[test]
    fn standalone_is_a_group_of_one() {
        let cfg = BrokerConfig {
            listen_port: 30911,
            ..BrokerConfig::default()
        };
        let g = cfg.raft_group().unwrap();
        assert_eq!(g.peers.len(), 1);
        assert_eq!(g.peers[&0].raft_addr, "127.0.0.1:30912");
    }

    #[test]
    fn shipped_conf_files_parse_without_unknown_keys() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        for name in [
            "broker.example.conf",
            "broker-a-n0.conf",
            "broker-a-n1.conf",
            "broker-a-n2.conf",
        ] {
            let props = Properties::load(&dir.join(name)).unwrap();
            let (cfg, left) = BrokerConfig::from_properties_checked(&props).unwrap();
            assert!(left.unknown.is_empty(), "{name}: {:?}", left.unknown);
            assert_eq!(cfg.broker_name, "broker-a", "{name}");
        }
        let mut ports = std::collections::BTreeSet::new();
        for i in 0..3 {
            for g in ["a", "b"] {
                let cfg = BrokerConfig::load(&dir.join(format!("broker-{g}-n{i}.conf"))).unwrap();
                assert_eq!(cfg.broker_name, format!("broker-{g}"));
                let raft = cfg.raft_group().unwrap();
                assert_eq!(raft.self_id, i);
                assert!(ports.insert(cfg.listen_port), "remoting ports are distinct");
                let own = raft.self_node().unwrap().raft_addr.clone();
                assert!(ports.insert(own.rsplit(':').next().unwrap().parse().unwrap()));
            }
        }
        let n2 = BrokerConfig::load(&dir.join("broker-a-n2.conf")).unwrap();
        let g = n2.raft_group().unwrap();
        assert_eq!((g.self_id, g.peers.len()), (2, 3));
        assert_eq!(n2.listen_port, 10931);
    }
}
