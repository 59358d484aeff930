//! Commitlog retention on every node: old segments really go.
//!
//! Every `cleanResourceInterval` the node asks the store's retention rules
//! (`fileReservedTime`, `deleteWhen`, `diskMaxUsedSpaceRatio`, `diskSpaceCleanForciblyRatio`)
//! which sealed segments may go, and hands the last entry of the last of them to the group's
//! compaction: snapshot at the newest segment boundary at or below it, purge the log up to
//! that snapshot, then drop the consumequeue and index files wholly below the new start of
//! the log (consumers' minOffset moves). On the leader the purge also stays at or below what
//! every member has matched, so a member that is down or slow is not forced onto the snapshot
//! path; only when the disk is above `diskSpaceCleanForciblyRatio` does the leader purge
//! past it. Followers decide for their own files by the same rules.
//!
//! This module decides when; what a purge does is the raft crate's and the store's business.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use raftmq_store::retention::{self, RetentionClock};

use super::BrokerState;

/// Longest one compaction (snapshot + purge) may take before the round gives up.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs retention rounds until the task is aborted.
pub async fn run(state: Arc<BrokerState>) {
    let period = state.cfg.clean_resource_interval;
    loop {
        tokio::time::sleep(period).await;
        match round(&state).await {
            Ok(Some(upto)) => tracing::info!(
                node = state.node.group.id(),
                upto,
                first_pos = state.node.log.state().first_pos,
                "retention: log compacted"
            ),
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(node = state.node.group.id(), %reason, "retention round failed")
            }
        }
    }
}

/// One retention round: returns the index the log was purged to, if it was.
pub async fn round(state: &BrokerState) -> Result<Option<u64>, String> {
    let node = &state.node;
    let cfg = state.cfg.retention_config();
    let log = node.log.clone();
    let plan = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        let disk = log.disk_space().map_err(|e| e.to_string())?;
        let clock = RetentionClock {
            now,
            hour: retention::local_hour(now),
            disk_used_percent: disk.used_percent(),
            manual: false,
        };
        retention::plan(&cfg, &log.segments(), clock, u64::MAX).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("retention planning task: {e}"))??;
    let Some(upto) = plan.purge_upto_index else {
        return Ok(None);
    };
    let force = plan.reason == Some("forced");
    tracing::debug!(
        node = node.group.id(),
        upto,
        segments = plan.segments.len(),
        reason = plan.reason.unwrap_or(""),
        force,
        "retention: segments may go"
    );
    node.group
        .compact(&node.sm, &node.log, Some(upto), force, COMPACT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())
}
