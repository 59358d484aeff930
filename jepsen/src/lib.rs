//! `raftmq-jepsen`: a Jepsen-style chaos harness for raftmq broker groups.
//!
//! Layout:
//! * [`history`]: the operation record (invoke / ok / fail / info, one JSON line each), its
//!   reader, writer and concurrent recorder, and validation;
//! * [`checker`]: one module per property (lost, unexpected, duplicate, inconsistent, order,
//!   offsets, leaders, availability) over a history, the verdict that combines them, and
//!   replica comparison over store directories;
//! * [`report`]: `results.json` and a self-contained `report.html` with SVG plots;
//! * [`netns`]: network namespaces, the private bridged network of a run;
//! * [`cluster`]: real `raftmq` processes, one per node, started, killed, paused, restarted;
//! * [`membership`]: the broker group's members; leadership transfer and node replacement
//!   (remove, wipe, new id, add as learner, promote) through the brokers' admin requests;
//! * [`nemesis`]: faults (kill, pause, partition, net) with recorded windows, on a seeded
//!   schedule;
//! * [`observer`]: records every node's Raft role and term at a fixed period;
//! * [`run`]: one chaos run (nodes up, seeded nemesis schedule, fault windows recorded);
//! * [`workload`]: producers and consumers over the project client, recording the history;
//! * [`setup`]: checks for (and installs) the network tools namespace mode needs.
//!
//! The checker reads only the history file; it knows nothing of clusters, sockets or the
//! broker's code. Cluster control, nemeses and the workload that produce histories live beside
//! it and drive the `raftmq` binary and the project's client.

pub mod checker;
pub mod cluster;
pub mod history;
pub mod membership;
pub mod nemesis;
pub mod netns;
pub mod netq;
pub mod observer;
pub mod report;
pub mod run;
pub mod setup;
pub mod workload;
