//! `raftmq-jepsen`: a Jepsen-style chaos harness for raftmq broker groups.
//!
//! Layout:
//! * [`history`]: the operation record (invoke / ok / fail / info, one JSON line each), its
//!   reader, writer and concurrent recorder, and validation;
//! * [`checker`]: one module per property (lost, unexpected, duplicate, inconsistent, order,
//!   offsets, leaders, availability) over a history, the verdict that combines them, and
//!   replica comparison over store directories;
//! * [`report`]: `results.json` and a self-contained `report.html` with SVG plots.
//!
//! The checker reads only the history file; it knows nothing of clusters, sockets or the
//! broker's code. Cluster control, nemeses and the workload that produce histories live beside
//! it and drive the `raftmq` binary and the project's client.

pub mod checker;
pub mod history;
pub mod report;
