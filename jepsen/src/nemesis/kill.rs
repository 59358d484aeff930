//! `kill`: `kill -9` of target nodes, and their restart with the same command, address and
//! data directory.

use super::NemesisError;
use crate::cluster::Cluster;

/// `kill -9` every target that is running (a paused node dies too).
pub fn kill(cluster: &mut Cluster, targets: &[usize]) -> Result<(), NemesisError> {
    for &i in targets {
        if cluster.node(i)?.is_running() {
            cluster.kill(i)?;
        }
    }
    Ok(())
}

/// Restarts every target that is not running and waits until it accepts connections.
pub fn restart(cluster: &mut Cluster, targets: &[usize]) -> Result<(), NemesisError> {
    for &i in targets {
        if !cluster.node(i)?.is_running() {
            cluster.start(i)?;
        }
    }
    Ok(())
}
