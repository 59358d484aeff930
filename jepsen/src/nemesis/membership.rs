//! `membership`: changes of the group's membership and leadership while the workload runs.
//!
//! Each fault is one of, chosen by the seeded generator:
//! * **transfer**: the leader hands leadership to a random other member (`raftmq admin
//!   transfer-leader`); the window covers the hand-over and the hold after it;
//! * **replace**: a random member (the leader too: leadership moves away first) is removed
//!   from the group, killed and wiped; for the hold the group runs with the others only; at
//!   the end a new node with a new Raft id (`n3`, `n4`, ...) and an empty store takes the
//!   slot, joins as a learner, catches up and is promoted
//!   ([`Cluster::remove_member`], [`Cluster::add_replacement`]).
//!
//! A replaced node never returns under its old id. Targets are recorded as node names (the
//! transfer as `from`, `to`); the run's fault list says which node replaced which.

use super::{NemesisError, Rng};
use crate::cluster::Cluster;
use crate::membership::Removed;
use std::time::Duration;

/// A membership change in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Leadership moved from slot `from` to slot `to` (nothing to undo).
    Transferred { from: usize, to: usize },
    /// A member was removed and wiped; the end brings in its replacement.
    Removed(Removed),
}

/// Applies a transfer or a removal, picked by `rng`; returns the change and target names.
pub fn start(
    cluster: &mut Cluster,
    rng: &mut Rng,
) -> Result<(Change, Vec<String>), (NemesisError, Vec<String>)> {
    let layouts = cluster.group_layouts();
    // One group: no draw, so single-group schedules stay what they were for a seed.
    let g = match layouts.len() {
        0 => {
            return Err((
                NemesisError::Unsupported("membership needs a broker group".into()),
                vec![],
            ))
        }
        1 => 0,
        n => usize::try_from(rng.below(n as u64)).unwrap_or(0),
    };
    let slots: Vec<usize> = layouts[g].members.iter().map(|m| m.index).collect();
    let replace = rng.below(2) == 1;
    let pick = usize::try_from(rng.below(slots.len() as u64)).unwrap_or(0);
    let name = |c: &Cluster, i: usize| c.node(i).map(|n| n.name.clone()).unwrap_or_default();
    if replace {
        let victim = slots[pick];
        let targets = vec![name(cluster, victim)];
        match cluster.remove_member(victim) {
            Ok(r) => Ok((Change::Removed(r), targets)),
            Err(e) => Err((e.into(), targets)),
        }
    } else {
        let leader = match cluster.group_leader_of(slots[0], Duration::from_secs(10)) {
            Ok((l, _)) => l,
            Err(_) => return Err((NemesisError::NoLeader, vec!["leader".into()])),
        };
        let others: Vec<usize> = slots.iter().copied().filter(|&s| s != leader).collect();
        let Some(&to) = others.get(pick % others.len().max(1)) else {
            return Err((
                NemesisError::Unsupported("no other member to lead".into()),
                vec![name(cluster, leader)],
            ));
        };
        let targets = vec![name(cluster, leader), name(cluster, to)];
        match cluster.transfer_leadership(to) {
            Ok(from) => Ok((Change::Transferred { from, to }, targets)),
            Err(e) => Err((e.into(), targets)),
        }
    }
}

/// Ends a change: a removed node is replaced by a new one; a transfer needs nothing.
pub fn end(cluster: &mut Cluster, change: &Change) -> Result<(), NemesisError> {
    match change {
        Change::Transferred { .. } => Ok(()),
        Change::Removed(r) => {
            // A failed start may have left the slot already refilled.
            let refilled = cluster
                .group_layouts()
                .iter()
                .find_map(|g| g.member(r.index))
                .is_some_and(|m| m.id != r.old_id);
            if !refilled {
                cluster.add_replacement(r)?;
            }
            Ok(())
        }
    }
}

/// One line for the run's fault list.
pub fn describe(cluster: &Cluster, change: &Change, ended: bool) -> String {
    let name = |i: usize| cluster.node(i).map(|n| n.name.clone()).unwrap_or_default();
    match change {
        Change::Transferred { from, to } => {
            format!("leadership transferred {} -> {}", name(*from), name(*to))
        }
        Change::Removed(r) if ended && name(r.index) != r.old_name => format!(
            "{} removed and wiped, replaced by {}",
            r.old_name,
            name(r.index)
        ),
        Change::Removed(r) => format!("{} removed and wiped", r.old_name),
    }
}
