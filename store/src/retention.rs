//! Retention: which sealed commitlog segments may be deleted now.
//!
//! RocketMQ's `CleanCommitLogService` rules, as a pure decision over `SegmentInfo`s: a
//! sealed segment expires `fileReservedTime` hours after its last write; expired segments go
//! when the hour is in `deleteWhen`, when disk use exceeds `diskMaxUsedSpaceRatio`, or on a
//! manual trigger; above `diskSpaceCleanForciblyRatio` they go regardless of age. Oldest first,
//! never the active segment, stop at the first segment that may not go, at most
//! `max_segments_per_round`, and never past the caller's bound (the entry index up to which
//! the derived state is checkpointed: a purge must not remove what a restart would replay).

use std::time::{Duration, SystemTime};

use crate::commitlog::{CommitLog, EntryId, SegmentInfo};
use crate::config::RetentionConfig;
use crate::error::Result;

/// What the caller knows about "now".
#[derive(Clone, Copy, Debug)]
pub struct RetentionClock {
    pub now: SystemTime,
    /// Local hour of day, 0..=23 (see `local_hour`).
    pub hour: u8,
    /// Used space of the commitlog's disk in percent.
    pub disk_used_percent: u8,
    /// An operator asked for deletion (TRIGGER_DELETE_FILES).
    pub manual: bool,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Bases of the segments to delete, oldest first.
    pub segments: Vec<u64>,
    /// Purge the log up to this index (the last entry starting in the last deleted segment).
    pub purge_upto_index: Option<u64>,
    /// Why deletion runs (`"time"`, `"disk"`, `"forced"`, `"manual"`), if it does.
    pub reason: Option<&'static str>,
}

/// Decides which segments may go. `bound_index`: no segment holding an entry above it is
/// deleted.
pub fn plan(
    cfg: &RetentionConfig,
    segments: &[SegmentInfo],
    clock: RetentionClock,
    bound_index: u64,
) -> Result<RetentionPlan> {
    cfg.validate()?;
    let forced = clock.disk_used_percent > cfg.disk_space_clean_forcibly_ratio;
    let reason = if forced {
        Some("forced")
    } else if clock.manual {
        Some("manual")
    } else if clock.disk_used_percent > cfg.disk_max_used_space_ratio {
        Some("disk")
    } else if cfg.delete_hours()?.contains(&clock.hour) {
        Some("time")
    } else {
        None
    };
    let mut out = RetentionPlan {
        segments: Vec::new(),
        purge_upto_index: None,
        reason,
    };
    if reason.is_none() {
        return Ok(out);
    }
    let reserved = Duration::from_secs(cfg.file_reserved_hours.saturating_mul(3600));
    for seg in segments {
        if out.segments.len() >= cfg.max_segments_per_round || !seg.sealed {
            break;
        }
        let Some(last) = seg.last_index else { break };
        if last > bound_index {
            break;
        }
        let expired = seg
            .mtime
            .checked_add(reserved)
            .is_some_and(|t| t <= clock.now);
        if !expired && !forced {
            break;
        }
        out.segments.push(seg.base);
        out.purge_upto_index = Some(last);
    }
    if out.segments.is_empty() {
        out.reason = None;
    }
    Ok(out)
}

/// The local hour of `t` (the `deleteWhen` clock), via the C library's time zone rules.
pub fn local_hour(t: SystemTime) -> u8 {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    #[cfg(unix)]
    {
        let Ok(tt) = libc::time_t::try_from(secs) else {
            return 0;
        };
        // SAFETY: tm is plain data; localtime_r fills it from valid pointers.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call.
        let ok = unsafe { !libc::localtime_r(&tt, &mut tm).is_null() };
        if ok {
            return u8::try_from(tm.tm_hour).unwrap_or(0);
        }
    }
    ((secs / 3600) % 24) as u8
}

/// Runs one retention round on `log`: plans with the real clock and disk usage, then purges.
/// Returns the purged id, if anything was deleted.
pub fn run_once(
    log: &CommitLog,
    cfg: &RetentionConfig,
    bound_index: u64,
    manual: bool,
) -> Result<Option<EntryId>> {
    let now = SystemTime::now();
    let disk = log.disk_space()?;
    let clock = RetentionClock {
        now,
        hour: local_hour(now),
        disk_used_percent: disk.used_percent(),
        manual,
    };
    let p = plan(cfg, &log.segments(), clock, bound_index)?;
    let Some(upto) = p.purge_upto_index else {
        return Ok(None);
    };
    let Some(e) = log.entry(upto)? else {
        return Ok(None);
    };
    tracing::info!(
        segments = p.segments.len(),
        upto,
        reason = p.reason.unwrap_or(""),
        "retention purge"
    );
    log.purge(e.id)?;
    Ok(Some(e.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    fn seg(
        base: u64,
        last: Option<u64>,
        age_hours: u64,
        sealed: bool,
        now: SystemTime,
    ) -> SegmentInfo {
        SegmentInfo {
            base,
            size: 100,
            first_index: last.map(|l| l.saturating_sub(9)),
            last_index: last,
            mtime: now - Duration::from_secs(age_hours * H),
            sealed,
        }
    }

    fn clock(now: SystemTime, hour: u8, disk: u8) -> RetentionClock {
        RetentionClock {
            now,
            hour,
            disk_used_percent: disk,
            manual: false,
        }
    }

    fn segs(now: SystemTime) -> Vec<SegmentInfo> {
        vec![
            seg(0, Some(9), 100, true, now),
            seg(100, Some(19), 80, true, now),
            seg(200, Some(29), 10, true, now),
            seg(300, Some(39), 200, false, now),
        ]
    }

    #[test]
    fn expired_segments_go_at_the_delete_hour_oldest_first() {
        let now = SystemTime::now();
        let cfg = RetentionConfig::default();
        let p = plan(&cfg, &segs(now), clock(now, 4, 10), u64::MAX).unwrap();
        assert_eq!(p.segments, vec![0, 100]);
        assert_eq!(p.purge_upto_index, Some(19));
        assert_eq!(p.reason, Some("time"));
        // Outside the hour and with room on disk, nothing goes.
        let p = plan(&cfg, &segs(now), clock(now, 5, 10), u64::MAX).unwrap();
        assert!(p.segments.is_empty());
    }

    #[test]
    fn full_disk_deletes_at_any_hour_and_forced_ignores_age_but_never_the_active_segment() {
        let now = SystemTime::now();
        let cfg = RetentionConfig::default();
        let p = plan(&cfg, &segs(now), clock(now, 13, 80), u64::MAX).unwrap();
        assert_eq!(p.segments, vec![0, 100]);
        assert_eq!(p.reason, Some("disk"));
        let p = plan(&cfg, &segs(now), clock(now, 13, 90), u64::MAX).unwrap();
        assert_eq!(p.segments, vec![0, 100, 200]);
        assert_eq!(p.reason, Some("forced"));
    }

    #[test]
    fn never_past_the_caller_bound() {
        let now = SystemTime::now();
        let cfg = RetentionConfig::default();
        let p = plan(&cfg, &segs(now), clock(now, 13, 90), 25).unwrap();
        assert_eq!(p.segments, vec![0, 100]);
        assert_eq!(p.purge_upto_index, Some(19));
        let p = plan(&cfg, &segs(now), clock(now, 13, 90), 5).unwrap();
        assert!(p.segments.is_empty());
        assert_eq!(p.reason, None);
    }

    #[test]
    fn local_hour_is_an_hour() {
        assert!(local_hour(SystemTime::now()) < 24);
    }
}
