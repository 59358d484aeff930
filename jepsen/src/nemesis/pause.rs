//! `pause`: SIGSTOP of target nodes (their sockets stay open, nothing answers), then SIGCONT.

use super::NemesisError;
use crate::cluster::Cluster;

/// SIGSTOP every running target.
pub fn pause(cluster: &mut Cluster, targets: &[usize]) -> Result<(), NemesisError> {
    for &i in targets {
        let n = cluster.node(i)?;
        if n.is_running() && !n.is_paused() {
            cluster.pause(i)?;
        }
    }
    Ok(())
}

/// SIGCONT every paused target.
pub fn resume(cluster: &mut Cluster, targets: &[usize]) -> Result<(), NemesisError> {
    for &i in targets {
        if cluster.node(i)?.is_paused() {
            cluster.resume(i)?;
        }
    }
    Ok(())
}
