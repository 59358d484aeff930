//! RocketMQ-style `key=value` configuration files and the typed configs built from them.
//!
//! Ops bring the `.conf`/`.properties` files they already have for `mqnamesrv` and `mqbroker`, so
//! the file format is Java's `Properties` text format (the subset real RocketMQ configs use):
//! `#` or `!` comment lines, `key=value`, `key:value` or `key value`, surrounding whitespace
//! trimmed, a trailing `\` continues the logical line, and the escapes `\t \n \r \f \\ \uXXXX`.
//!
//! Loading is two steps: [`Properties`] keeps the raw pairs with their line numbers, then a
//! [`PropReader`] hands out typed values and remembers which keys were taken. Keys nobody took are
//! reported (a `warn!` each) rather than silently ignored: a typo such as `listenPrt=9877` must not
//! go unnoticed. Keys that RocketMQ knows but raftmq does not act on are declared as such, so the
//! warning can say "recognised, no effect" instead of "unknown".
//!
//! This module knows nothing of sockets or of the nameserver's internals; it only describes
//! settings. The broker reuses [`Properties`] and [`PropReader`] for `broker.conf`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid properties file (for example a bad `\u` escape).
    #[error("{origin}:{line}: {reason}")]
    Syntax {
        origin: String,
        line: usize,
        reason: String,
    },
    /// A key is present but its value does not parse or is out of range.
    #[error("{origin}:{line}: invalid value {value:?} for `{key}`: {reason}")]
    Invalid {
        origin: String,
        line: usize,
        key: String,
        value: String,
        reason: String,
    },
    /// The values parse one by one but do not make sense together (checked by `validate`).
    #[error("invalid configuration: {0}")]
    Inconsistent(String),
}

/// One `key=value` pair and where it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    /// 1-based line where the logical line starts.
    pub line: usize,
}

/// The raw pairs of a properties file, in key order. A key given twice keeps the last value, as
/// `java.util.Properties` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// File name (or another label) used in error messages.
    pub origin: String,
    pub entries: BTreeMap<String, Entry>,
}

impl Properties {
    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses properties text; `origin` labels error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut props = Properties {
            origin: origin.to_string(),
            entries: BTreeMap::new(),
        };
        let mut lines = text.lines().enumerate().peekable();
        while let Some((idx, first)) = lines.next() {
            let start_line = idx + 1;
            let trimmed = first.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                continue;
            }
            // Join continuation lines: an odd number of trailing backslashes continues.
            let mut logical = trimmed.to_string();
            while ends_with_continuation(&logical) {
                logical.pop();
                match lines.next() {
                    Some((_, next)) => logical.push_str(next.trim_start()),
                    None => break,
                }
            }
            let (raw_key, raw_value) = split_key_value(&logical);
            let syntax = |reason: String| ConfigError::Syntax {
                origin: origin.to_string(),
                line: start_line,
                reason,
            };
            let key = unescape(raw_key).map_err(syntax)?;
            let value = unescape(raw_value).map_err(syntax)?;
            props.entries.insert(
                key,
                Entry {
                    value: value.trim_end().to_string(),
                    line: start_line,
                },
            );
        }
        Ok(props)
    }

    /// A reader that hands out typed values and tracks which keys were used.
    pub fn reader(&self) -> PropReader<'_> {
        PropReader {
            props: self,
            taken: BTreeSet::new(),
            ignored: BTreeSet::new(),
        }
    }
}

fn ends_with_continuation(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or whitespace (Java `Properties` rules); whitespace
/// around the separator is skipped.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut end = line.len();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '=' | ':' | ' ' | '\t' | '\x0c' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let key = &line[..end];
    let mut rest = line[end..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0c']);
    }
    (key, rest)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or_else(|| format!("bad \\u escape `\\u{hex}`"))?;
                out.push(
                    char::from_u32(code).ok_or_else(|| format!("\\u{hex} is not a character"))?,
                );
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// Typed access to a [`Properties`], remembering which keys were consumed.
pub struct PropReader<'a> {
    props: &'a Properties,
    taken: BTreeSet<String>,
    ignored: BTreeSet<String>,
}

impl PropReader<'_> {
    fn invalid(&self, key: &str, entry: &Entry, reason: impl Display) -> ConfigError {
        ConfigError::Invalid {
            origin: self.props.origin.clone(),
            line: entry.line,
            key: key.to_string(),
            value: entry.value.clone(),
            reason: reason.to_string(),
        }
    }

    /// The raw string value, if present.
    pub fn string(&mut self, key: &str) -> Option<String> {
        self.taken.insert(key.to_string());
        self.props.entries.get(key).map(|e| e.value.clone())
    }

    /// A value parsed with `FromStr`, or `default` when the key is absent.
    pub fn parse_or<T>(&mut self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.taken.insert(key.to_string());
        match self.props.entries.get(key) {
            None => Ok(default),
            Some(e) => e.value.parse().map_err(|err| self.invalid(key, e, err)),
        }
    }

    /// A boolean as Java's `Boolean.parseBoolean` would read it, but strict: only
    /// `true`/`false` (any case) are accepted, so `ture` is an error instead of `false`.
    pub fn bool_or(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        self.taken.insert(key.to_string());
        match self.props.entries.get(key) {
            None => Ok(default),
            Some(e) => match e.value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.invalid(key, e, "expected true or false")),
            },
        }
    }

    /// A duration written in milliseconds (RocketMQ's convention for `*Interval`/`*Time` keys),
    /// required to lie in `min..=max`.
    pub fn millis_or(
        &mut self,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        self.taken.insert(key.to_string());
        match self.props.entries.get(key) {
            None => Ok(default),
            Some(e) => {
                let ms: u64 = e.value.parse().map_err(|err| self.invalid(key, e, err))?;
                let d = Duration::from_millis(ms);
                if d < min || d > max {
                    return Err(self.invalid(
                        key,
                        e,
                        format!(
                            "must be between {} and {} milliseconds",
                            min.as_millis(),
                            max.as_millis()
                        ),
                    ));
                }
                Ok(d)
            }
        }
    }

    /// Declares keys that RocketMQ understands but raftmq does not act on; they are reported
    /// as "no effect" rather than "unknown".
    pub fn recognise_ignored(&mut self, keys: &[&str]) {
        for k in keys {
            if self.props.entries.contains_key(*k) {
                self.ignored.insert((*k).to_string());
            }
        }
    }

    /// Keys present in the file that no typed getter asked for and that were not declared
    /// as recognised: typos, or settings for something else.
    pub fn unknown_keys(&self) -> Vec<(String, usize)> {
        self.props
            .entries
            .iter()
            .filter(|(k, _)| !self.taken.contains(*k) && !self.ignored.contains(*k))
            .map(|(k, e)| (k.clone(), e.line))
            .collect()
    }

    /// Recognised RocketMQ keys present in the file that have no effect in raftmq.
    pub fn ignored_keys(&self) -> Vec<(String, usize)> {
        self.ignored
            .iter()
            .filter_map(|k| self.props.entries.get(k).map(|e| (k.clone(), e.line)))
            .collect()
    }

    /// The keys nobody consumed, split into unknown and recognised-but-ignored.
    pub fn leftovers(&self) -> Leftovers {
        Leftovers {
            unknown: self.unknown_keys(),
            ignored: self.ignored_keys(),
        }
    }
}

/// Keys of a config file that had no effect, with their line numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Not a key of this config at all (typos, settings for something else).
    pub unknown: Vec<(String, usize)>,
    /// A RocketMQ key that raftmq accepts but does not act on.
    pub ignored: Vec<(String, usize)>,
}

impl Leftovers {
    /// Logs one warning per key.
    pub fn report(&self, origin: &str) {
        for (key, line) in &self.unknown {
            tracing::warn!(origin, line, key, "unknown config key, ignored");
        }
        for (key, line) in &self.ignored {
            tracing::warn!(
                origin,
                line,
                key,
                "RocketMQ config key has no effect in raftmq"
            );
        }
    }
}

/// Nameserver settings. Key names are RocketMQ's (`NamesrvConfig`, `NettyServerConfig`) where
/// one exists, so an existing `namesrv.conf` keeps working; `conf/namesrv.conf` documents each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesrvConfig {
    /// `bindAddress`: address to listen on. Default `0.0.0.0` (as RocketMQ), because brokers on
    /// other hosts must reach the nameserver; `raftmq dev` binds `127.0.0.1` instead.
    pub bind_address: IpAddr,
    /// `listenPort`: TCP port, default 9876. `0` picks a free port (tests).
    pub listen_port: u16,
    /// `scanNotActiveBrokerInterval` (ms): how often expired brokers are looked for.
    /// Default 10 000, range 100..=600 000.
    pub scan_not_active_broker_interval: Duration,
    /// `brokerChannelExpiredTime` (ms): a broker not heard from for this long is removed.
    /// Default 120 000 (RocketMQ's fixed `BROKER_CHANNEL_EXPIRED_TIME`), range 1 000..=3 600 000.
    pub broker_channel_expired_time: Duration,
    /// `orderMessageEnable`: add `orderTopicConf` from KV namespace `ORDER_TOPIC_CONFIG` to
    /// routes. Default false.
    pub order_message_enable: bool,
    /// `kvConfigPath`: the persistent KV config file, in RocketMQ's `kvConfig.json` layout.
    /// Empty = keep KV config in memory only. Default `$HOME/namesrv/kvConfig.json`, as
    /// RocketMQ's.
    pub kv_config_path: Option<PathBuf>,
    /// `serverChannelMaxIdleTimeSeconds`: close connections idle for this long. Default 120.
    pub server_channel_max_idle_time: Duration,
}

/// RocketMQ nameserver keys accepted for compatibility that change nothing in raftmq.
const NAMESRV_IGNORED_KEYS: &[&str] = &[
    "rocketmqHome",
    "configStorePath",
    "productEnvName",
    "clusterTest",
    "serverWorkerThreads",
    "serverCallbackExecutorThreads",
    "serverSelectorThreads",
    "serverOnewaySemaphoreValue",
    "serverAsyncSemaphoreValue",
    "serverSocketSndBufSize",
    "serverSocketRcvBufSize",
    "serverPooledByteBufAllocatorEnable",
    "useEpollNativeSelector",
    "defaultThreadPoolNums",
    "clientRequestThreadPoolNums",
    "clientRequestThreadPoolQueueCapacity",
    "defaultThreadPoolQueueCapacity",
    "unRegisterBrokerQueueCapacity",
    "supportActingMaster",
    "enableAllTopicList",
    "enableTopicList",
    "notifyMinBrokerIdChanged",
    "enableSplitRegistration",
    "needWaitForService",
    "waitSecondsForService",
    "enableControllerInNamesrv",
];

impl Default for NamesrvConfig {
    fn default() -> Self {
        let kv_config_path = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join("namesrv").join("kvConfig.json"));
        NamesrvConfig {
            bind_address: IpAddr::from([0, 0, 0, 0]),
            listen_port: 9876,
            scan_not_active_broker_interval: Duration::from_secs(10),
            broker_channel_expired_time: Duration::from_secs(120),
            order_message_enable: false,
            kv_config_path,
            server_channel_max_idle_time: Duration::from_secs(120),
        }
    }
}

impl NamesrvConfig {
    /// Builds the config from parsed properties; absent keys take their defaults. Unknown keys
    /// are logged (a warning each), not fatal.
    pub fn from_properties(props: &Properties) -> Result<Self, ConfigError> {
        let (cfg, leftovers) = Self::from_properties_checked(props)?;
        leftovers.report(&props.origin);
        Ok(cfg)
    }

    /// Like [`NamesrvConfig::from_properties`], but returns the unknown and ignored keys
    /// instead of logging them.
    pub fn from_properties_checked(props: &Properties) -> Result<(Self, Leftovers), ConfigError> {
        let d = NamesrvConfig::default();
        let mut r = props.reader();
        let cfg = NamesrvConfig {
            bind_address: r.parse_or("bindAddress", d.bind_address)?,
            listen_port: r.parse_or("listenPort", d.listen_port)?,
            scan_not_active_broker_interval: r.millis_or(
                "scanNotActiveBrokerInterval",
                d.scan_not_active_broker_interval,
                Duration::from_millis(100),
                Duration::from_secs(600),
            )?,
            broker_channel_expired_time: r.millis_or(
                "brokerChannelExpiredTime",
                d.broker_channel_expired_time,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )?,
            order_message_enable: r.bool_or("orderMessageEnable", d.order_message_enable)?,
            kv_config_path: match r.string("kvConfigPath") {
                None => d.kv_config_path,
                Some(s) if s.is_empty() => None,
                Some(s) => Some(PathBuf::from(s)),
            },
            server_channel_max_idle_time: Duration::from_secs(r.parse_or(
                "serverChannelMaxIdleTimeSeconds",
                d.server_channel_max_idle_time.as_secs(),
            )?),
        };
        r.recognise_ignored(NAMESRV_IGNORED_KEYS);
        cfg.validate()?;
        Ok((cfg, r.leftovers()))
    }

    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_properties(&Properties::load(path)?)
    }

    /// The effective settings as `key=value` lines (GET_NAMESRV_CONFIG answers with this,
    /// as Java does with its properties).
    pub fn to_properties_text(&self) -> String {
        let kv_path = self
            .kv_config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!(
            "bindAddress={}\nbrokerChannelExpiredTime={}\nkvConfigPath={}\nlistenPort={}\norderMessageEnable={}\nscanNotActiveBrokerInterval={}\nserverChannelMaxIdleTimeSeconds={}\n",
            self.bind_address,
            self.broker_channel_expired_time.as_millis(),
            kv_path,
            self.listen_port,
            self.order_message_enable,
            self.scan_not_active_broker_interval.as_millis(),
            self.server_channel_max_idle_time.as_secs(),
        )
    }

    /// Checks the settings together; runs before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_channel_expired_time <= self.scan_not_active_broker_interval {
            return Err(ConfigError::Inconsistent(format!(
                "brokerChannelExpiredTime ({} ms) must be longer than scanNotActiveBrokerInterval ({} ms)",
                self.broker_channel_expired_time.as_millis(),
                self.scan_not_active_broker_interval.as_millis()
            )));
        }
        if self.server_channel_max_idle_time.is_zero() {
            return Err(ConfigError::Inconsistent(
                "serverChannelMaxIdleTimeSeconds must be at least 1".to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_properties_subset() {
        let text = "# comment\n! also comment\n\nlistenPort=9877\nbrokerName : broker-a\nkey value with spaces  \nlong=a\\\n   b\\\n c\nuni=\\u0041\\t|\nempty=\n";
        let p = Properties::parse(text, "t.conf").unwrap();
        let get = |k: &str| p.entries.get(k).map(|e| e.value.as_str());
        assert_eq!(get("listenPort"), Some("9877"));
        assert_eq!(get("brokerName"), Some("broker-a"));
        assert_eq!(get("key"), Some("value with spaces"));
        assert_eq!(get("long"), Some("abc"));
        assert_eq!(get("uni"), Some("A\t|"));
        assert_eq!(get("empty"), Some(""));
        assert_eq!(p.entries["listenPort"].line, 4);
        assert_eq!(p.entries["long"].line, 7);
    }

    #[test]
    fn last_duplicate_wins() {
        let p = Properties::parse("a=1\na=2\n", "t").unwrap();
        assert_eq!(p.entries["a"].value, "2");
        assert_eq!(p.entries["a"].line, 2);
    }

    #[test]
    fn bad_unicode_escape_is_a_syntax_error_with_line() {
        let err = Properties::parse("ok=1\nbad=\\u00G1\n", "x.conf").unwrap_err();
        match err {
            ConfigError::Syntax { line, origin, .. } => {
                assert_eq!(line, 2);
                assert_eq!(origin, "x.conf");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn namesrv_defaults_when_empty() {
        let cfg = NamesrvConfig::from_properties(&Properties::parse("", "t").unwrap()).unwrap();
        let d = NamesrvConfig::default();
        assert_eq!(cfg, d);
        assert_eq!(cfg.listen_port, 9876);
        assert_eq!(cfg.broker_channel_expired_time, Duration::from_secs(120));
        assert_eq!(cfg.scan_not_active_broker_interval, Duration::from_secs(10));
    }

    #[test]
    fn namesrv_typed_values_and_unknown_keys() {
        let p = Properties::parse(
            "listenPort=10000\nbindAddress=127.0.0.1\nscanNotActiveBrokerInterval=5000\nbrokerChannelExpiredTime=30000\norderMessageEnable=TRUE\nkvConfigPath=\nlistenPrt=1\nrocketmqHome=/opt\n",
            "t",
        )
        .unwrap();
        let cfg = NamesrvConfig::from_properties(&p).unwrap();
        assert_eq!(cfg.listen_port, 10000);
        assert_eq!(cfg.bind_address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(
            cfg.scan_not_active_broker_interval,
            Duration::from_millis(5000)
        );
        assert_eq!(cfg.broker_channel_expired_time, Duration::from_secs(30));
        assert!(cfg.order_message_enable);
        assert_eq!(cfg.kv_config_path, None);

        let (_, leftovers) = NamesrvConfig::from_properties_checked(&p).unwrap();
        assert_eq!(leftovers.unknown, vec![("listenPrt".to_string(), 7)]);
        assert_eq!(leftovers.ignored, vec![("rocketmqHome".to_string(), 8)]);
    }

    #[test]
    fn invalid_values_name_key_and_line() {
        let p = Properties::parse("\nlistenPort=98765\n", "n.conf").unwrap();
        let err = NamesrvConfig::from_properties(&p).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("n.conf:2"), "{msg}");
        assert!(msg.contains("listenPort"), "{msg}");

        let p = Properties::parse("orderMessageEnable=ture\n", "n.conf").unwrap();
        assert!(matches!(
            NamesrvConfig::from_properties(&p),
            Err(ConfigError::Invalid { .. })
        ));

        let p = Properties::parse("scanNotActiveBrokerInterval=5\n", "n.conf").unwrap();
        assert!(matches!(
            NamesrvConfig::from_properties(&p),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn expiry_must_exceed_scan_interval() {
        let p = Properties::parse(
            "scanNotActiveBrokerInterval=20000\nbrokerChannelExpiredTime=10000\n",
            "t",
        )
        .unwrap();
        assert!(matches!(
            NamesrvConfig::from_properties(&p),
            Err(ConfigError::Inconsistent(_))
        ));
    }

    #[test]
    fn properties_text_round_trips() {
        let cfg = NamesrvConfig {
            listen_port: 1234,
            kv_config_path: None,
            order_message_enable: true,
            ..NamesrvConfig::default()
        };
        let text = cfg.to_properties_text();
        let back = NamesrvConfig::from_properties(&Properties::parse(&text, "t").unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn missing_file_is_io_error_with_path() {
        let err = Properties::load(Path::new("/nonexistent/raftmq/namesrv.conf")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/raftmq/namesrv.conf"));
        assert!(
            std::error::Error::source(&err).is_some(),
            "the io error is the source"
        );
    }
}
