//! Simulated power cuts for chaos tests (cargo feature `failpoints`, off by default; without
//! the feature this module does not exist).
//!
//! A broker built with the feature keeps its store on the store's
//! [`FaultyFileSystem`], which remembers what every file held at its last fsync. Two signals
//! cut the power:
//!
//! - `SIGUSR1`: every write that was not fsynced is dropped: files revert to their
//!   last-fsynced content, files whose creation was never made durable disappear;
//! - `SIGUSR2`: the same, but the first half of the final un-fsynced write to a commitlog
//!   segment stays (a torn write).
//!
//! Either way one JSON line saying what was undone (`{"torn":..,"report":{"reverted":[..],
//! "removed":[..],"dropped_bytes":..,"torn":{..}}}` or `{"torn":..,"error":".."}`) is
//! appended to `<storePathRootDir>/power-cut.jsonl`, and the process then SIGKILLs itself.
//! The page cache of the host survives, so a restarted node reads exactly the reverted files,
//! as after a real power cut.
//!
//! Not covered: the metadata tables (sled, under `meta/`) do not go through the file-system
//! seam and survive a cut as they survive a kill; directories count as always durable.
//! This module knows the store's fault-injecting file system and signals, nothing of Raft or
//! the protocol.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use raftmq_store::io::FaultyFileSystem;

/// Name of the report file inside the store root.
pub const REPORT_FILE: &str = "power-cut.jsonl";

/// Installs the SIGUSR1/SIGUSR2 handlers (call it before the store opens, inside a tokio
/// runtime, so a signal sent during start-up is not lost to its default action) and returns
/// the file system the broker must run its store on.
pub fn install(store_root: &Path) -> std::io::Result<Arc<FaultyFileSystem>> {
    use tokio::signal::unix::{signal, SignalKind};
    let fs = FaultyFileSystem::new();
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let report = store_root.join(REPORT_FILE);
    let f = fs.clone();
    tokio::spawn(async move {
        let torn = tokio::select! {
            _ = usr1.recv() => false,
            _ = usr2.recv() => true,
        };
        power_cut_and_die(&f, torn, &report);
    });
    Ok(fs)
}

/// Cuts the power on `fs` (see the module docs), appends the report line to `report` and
/// SIGKILLs the process. Never returns.
pub fn power_cut_and_die(fs: &FaultyFileSystem, torn: bool, report: &PathBuf) -> ! {
    tracing::warn!(torn, "power cut: dropping every write that was not fsynced");
    let line = match fs.power_cut(torn) {
        Ok(r) => serde_json::json!({ "torn": torn, "report": r }),
        Err(e) => serde_json::json!({ "torn": torn, "error": e.to_string() }),
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(report)
        .and_then(|mut f| {
            writeln!(f, "{line}")?;
            f.sync_all()
        });
    if let Err(e) = written {
        tracing::error!(path = %report.display(), cause = %e, "power-cut report not written");
    }
    // SAFETY: kill(2) of our own pid with a valid signal number.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; this only waits for it to land.
    loop {
        std::thread::park();
    }
}
