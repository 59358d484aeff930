//! Typed configuration of the commitlog and its retention policy.
//!
//! Owns `CommitLogConfig`, `FlushMode`, `RecoveryMode` and `RetentionConfig` with their
//! RocketMQ names, defaults and `validate()`. Parsing `broker.conf` happens in the app; this
//! module only knows typed values.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::format;

/// When an append counts as done (`flushDiskType`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlushMode {
    /// SYNC_FLUSH: completions fire after msync/fdatasync. What the Raft contract assumes.
    #[default]
    Sync,
    /// ASYNC_FLUSH: completions fire after the page-cache write; a power loss on a majority
    /// can lose acknowledged entries. Data is still flushed by the writer in the background.
    Async,
}

/// How recovery treats a bad record at the tail of the log.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryMode {
    /// Cut the log at the first bad record past the committed point (a torn last write).
    #[default]
    TolerateTailCorruption,
    /// Any bad record is an error; only a clean end of log is accepted.
    AbsoluteConsistency,
}

/// Default segment size (`mapedFileSizeCommitLog`): 1 GiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 1 << 30;
/// Default entry-index file size: 4 Mi units of 32 bytes (128 MiB).
pub const DEFAULT_INDEX_FILE_SIZE: u64 = 4 * 1024 * 1024 * format::INDEX_UNIT_LEN as u64;

/// Commitlog settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct CommitLogConfig {
    /// Bytes per segment file (`mapedFileSizeCommitLog`). Default 1 GiB; at least 4 KiB.
    /// Must be the same on every replica: it decides where records roll over.
    pub segment_size: u64,
    /// Bytes per entry-index file; a multiple of 32. Default 128 MiB (4 Mi entries).
    pub index_file_size: u64,
    /// `flushDiskType`. Default `sync`.
    pub flush: FlushMode,
    /// Default `tolerate-tail-corruption`.
    pub recovery: RecoveryMode,
    /// `flushIntervalCommitLog`: how often `Async` mode syncs dirty data, in milliseconds.
    /// Default 500; 1..=60000. Unused in `Sync` mode (every group is synced).
    pub flush_interval_ms: u64,
}

impl Default for CommitLogConfig {
    fn default() -> Self {
        CommitLogConfig {
            segment_size: DEFAULT_SEGMENT_SIZE,
            index_file_size: DEFAULT_INDEX_FILE_SIZE,
            flush: FlushMode::Sync,
            recovery: RecoveryMode::TolerateTailCorruption,
            flush_interval_ms: 500,
        }
    }
}

impl CommitLogConfig {
    /// Checks ranges before anything is opened.
    pub fn validate(&self) -> Result<()> {
        if self.segment_size < 4096 || self.segment_size > u64::from(u32::MAX) {
            return Err(StoreError::InvalidArgument(format!(
                "segment-size {} must be within [4096, {}]",
                self.segment_size,
                u32::MAX
            )));
        }
        if self.index_file_size < format::INDEX_UNIT_LEN as u64
            || self.index_file_size % format::INDEX_UNIT_LEN as u64 != 0
        {
            return Err(StoreError::InvalidArgument(format!(
                "index-file-size {} must be a positive multiple of {}",
                self.index_file_size,
                format::INDEX_UNIT_LEN
            )));
        }
        if !(1..=60_000).contains(&self.flush_interval_ms) {
            return Err(StoreError::InvalidArgument(format!(
                "flush-interval-ms {} must be within 1..=60000",
                self.flush_interval_ms
            )));
        }
        Ok(())
    }
}

/// Retention policy (RocketMQ `CleanCommitLogService`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct RetentionConfig {
    /// `fileReservedTime`: hours a sealed segment is kept after its last write. Default 72.
    pub file_reserved_hours: u64,
    /// `deleteWhen`: `;`-separated hours of the day (0-23, local time of the caller's clock)
    /// in which expired segments are deleted. Default `"04"`.
    pub delete_when: String,
    /// `diskMaxUsedSpaceRatio`: percent of the disk above which expired segments are deleted
    /// at any hour. Default 75; 10..=95.
    pub disk_max_used_space_ratio: u8,
    /// `diskSpaceCleanForciblyRatio`: percent above which sealed segments are deleted even if
    /// not expired. Default 85.
    pub disk_space_clean_forcibly_ratio: u8,
    /// Most segments deleted per round. Default 10.
    pub max_segments_per_round: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            file_reserved_hours: 72,
            delete_when: "04".into(),
            disk_max_used_space_ratio: 75,
            disk_space_clean_forcibly_ratio: 85,
            max_segments_per_round: 10,
        }
    }
}

impl RetentionConfig {
    /// Parses `delete_when` into hours; errors on anything but 0..=23.
    pub fn delete_hours(&self) -> Result<Vec<u8>> {
        self.delete_when
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse::<u8>() {
                Ok(h) if h < 24 => Ok(h),
                _ => Err(StoreError::InvalidArgument(format!(
                    "deleteWhen hour {s:?} is not within 0..=23"
                ))),
            })
            .collect()
    }

    /// Checks ranges before use.
    pub fn validate(&self) -> Result<()> {
        self.delete_hours()?;
        if !(10..=95).contains(&self.disk_max_used_space_ratio) {
            return Err(StoreError::InvalidArgument(format!(
                "diskMaxUsedSpaceRatio {} must be within 10..=95",
                self.disk_max_used_space_ratio
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rocketmq_defaults_and_valid() {
        let c = CommitLogConfig::default();
        assert_eq!(c.segment_size, 1073741824);
        assert_eq!(c.flush, FlushMode::Sync);
        c.validate().unwrap();
        let r = RetentionConfig::default();
        assert_eq!(r.delete_hours().unwrap(), vec![4]);
        r.validate().unwrap();
    }

    #[test]
    fn bad_values_are_rejected() {
        let c = CommitLogConfig {
            segment_size: 100,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let r = RetentionConfig {
            delete_when: "04;25".into(),
            ..Default::default()
        };
        assert!(r.validate().is_err());
    }
}
