//! openraft's `RaftStateMachine` over the store's dispatcher and metadata tables.
//!
//! `apply` is RocketMQ's reput service driven by commit: a `Messages` entry goes to the
//! [`Dispatcher`] (consumequeue units, index entries, queue-contiguity check; a gap is
//! corruption and stops the node), other commands update the [`Metadata`] tables, and every
//! entry yields exactly one [`CommandResult`]. The applied id and the last membership live in
//! the dispatcher's checkpoint (membership in its opaque `extra` bytes), so `applied_state`
//! after a restart is the last checkpoint and openraft re-applies from there (re-dispatch is
//! idempotent). Checkpoints are taken every `checkpoint_every` entries or interval, after the
//! metadata tables are flushed.
//!
//! Snapshots are taken at segment boundaries (openraft.md §3.5): when the first entry of a
//! new commitlog segment is applied, the state as of the last entry of the previous segment
//! is captured and persisted (`snapshots/<index>.snap`, atomic replace). It carries the
//! metadata tables, the queue-offset table, the applied id, membership and the commitlog
//! position just past the applied entry. `build_snapshot` serves the boundary snapshot at
//! the log's purge point (or the one a pending purge selected), never a newer one: a
//! follower that installs it then lacks nothing the leader still retains (openraft.md §3.5's
//! trap). Snapshots below the purge point are deleted. Installing one resets the
//! dispatcher and, when the local log ends before the snapshot, restarts the commitlog at that
//! position so record positions stay identical to the leader's. openraft never snapshots or
//! purges by itself (`SnapshotPolicy::Never`).
//!
//! Blocking work (file writes, fsyncs) runs on tokio's blocking pool.

// openraft's trait methods return its `StorageError` (over 200 bytes); helpers share it.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StoredMembership,
};
use raftmq_store::commitlog::{CommitLog, EntryKind, StoredEntry};
use raftmq_store::dispatch::Dispatcher;
use raftmq_store::format::HEADER_LEN;
use raftmq_store::message::PHYSICAL_OFFSET_OFFSET;
use raftmq_store::metadata::{Metadata, TopicTable};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::command::{AppendedMessage, BrokerCommand, CommandResult};
use crate::entry::{entry_id, log_id, to_new_entry};
use crate::proposer::QueueOffsetSource;
use crate::types::{typ, NodeId, PeerNode, TypeConfig};

type SE = StorageError<NodeId>;

fn serr<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: &E,
) -> SE {
    StorageError::IO {
        source: openraft::StorageIOError::new(subject, verb, AnyError::new(e)),
    }
}

fn smerr(verb: ErrorVerb, msg: impl Into<String>) -> SE {
    let e = std::io::Error::other(msg.into());
    serr(ErrorSubject::StateMachine, verb, &e)
}

/// How often the state machine checkpoints (whichever comes first).
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    pub every_entries: u64,
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_entries: 10_000,
            every: Duration::from_secs(1),
        }
    }
}

struct Inner {
    log: CommitLog,
    dispatcher: Dispatcher,
    metadata: Metadata,
    membership: StoredMembership<NodeId, PeerNode>,
    policy: CheckpointPolicy,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    current: Option<StoredSnapshot>,
    segment_size: u64,
    snapshot_dir: Option<PathBuf>,
    /// Segment-boundary snapshots by last index.
    boundaries: BTreeMap<u64, StoredSnapshot>,
    /// Boundary chosen by a purge in progress ([`StateMachine::select_purge_point`]).
    purge_target: Option<u64>,
}

const SNAPSHOT_EXT: &str = "snap";

/// A snapshot's metadata and bytes.
type StoredSnapshot = (SnapshotMeta<NodeId, PeerNode>, Vec<u8>);

/// The state machine of one node (cheap to clone; clones share state).
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
}

/// What a snapshot carries (behind a version byte).
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, PeerNode>,
    next_pos: u64,
    queues: Vec<(String, i32, i64)>,
    metadata: Vec<u8>,
}

impl StateMachine {
    /// Wrap opened store components; the membership comes from the dispatcher checkpoint.
    /// Boundary snapshots are persisted under `snapshot_dir` (kept in memory only if `None`).
    pub fn new(
        log: CommitLog,
        dispatcher: Dispatcher,
        metadata: Metadata,
        policy: CheckpointPolicy,
        snapshot_dir: Option<PathBuf>,
    ) -> Result<Self, SE> {
        let boundaries = match &snapshot_dir {
            Some(d) => load_boundaries(d)?,
            None => BTreeMap::new(),
        };
        let segment_size = log.config().segment_size;
        let membership = if dispatcher.extra().is_empty() {
            StoredMembership::default()
        } else {
            codec::decode_versioned(dispatcher.extra())
                .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?
        };
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(Inner {
                log,
                dispatcher,
                metadata,
                membership,
                policy,
                since_checkpoint: 0,
                last_checkpoint: Instant::now(),
                current: None,
                segment_size,
                snapshot_dir,
                boundaries,
                purge_target: None,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the state with the lock held, on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, SE>
    where
        T: Send + 'static,
        F: FnOnce(&mut Inner) -> Result<T, SE> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut g)
        })
        .await
        .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Write, &e))?
    }

    /// Flush metadata and derived files and persist the dispatch checkpoint now.
    pub async fn checkpoint(&self) -> Result<(), SE> {
        self.blocking(|g| g.checkpoint()).await
    }

    /// Run `f` with the dispatcher (read paths of the broker: consumequeue lookups).
    pub fn with_dispatcher<T>(&self, f: impl FnOnce(&Dispatcher) -> T) -> T {
        f(&self.lock().dispatcher)
    }

    /// Call `hook(topic, queue_id, new max offset)` whenever a queue advances (only committed
    /// messages are ever dispatched): long polling wakes suspended pulls from here.
    pub fn set_queue_advanced_hook(&self, hook: raftmq_store::dispatch::QueueAdvancedHook) {
        self.lock().dispatcher.set_queue_advanced_hook(hook);
    }

    /// Run `f` with the metadata tables.
    pub fn with_metadata<T>(&self, f: impl FnOnce(&Metadata) -> T) -> T {
        f(&self.lock().metadata)
    }

    /// The applied topic configs, readable without the state machine's lock.
    pub fn topic_table(&self) -> Arc<TopicTable> {
        self.lock().metadata.topic_table()
    }

    /// Ids of the segment-boundary snapshots kept, oldest first.
    pub fn boundary_snapshots(&self) -> Vec<LogId<NodeId>> {
        self.lock()
            .boundaries
            .values()
            .filter_map(|(m, _)| m.last_log_id)
            .collect()
    }

    /// Id of the snapshot last built or installed (what a follower would be sent).
    pub fn current_snapshot(&self) -> Option<LogId<NodeId>> {
        self.lock()
            .current
            .as_ref()
            .and_then(|(m, _)| m.last_log_id)
    }

    /// Choose the boundary a purge is about to go to: the newest at or below `bound`.
    /// Until the purge is done, `build_snapshot` serves that one. Returns its id.
    pub fn select_purge_point(&self, bound: u64) -> Option<LogId<NodeId>> {
        let mut g = self.lock();
        let (idx, id) = g
            .boundaries
            .range(..=bound)
            .next_back()
            .and_then(|(i, (m, _))| m.last_log_id.map(|l| (*i, l)))?;
        g.purge_target = Some(idx);
        Some(id)
    }

    /// Forget snapshots below the log's purge point (they can never be served again).
    pub async fn prune_snapshots(&self) -> Result<(), SE> {
        self.blocking(|g| {
            let Some(p) = g.log.state().purged.map(|p| p.index) else {
                return Ok(());
            };
            if g.purge_target.is_some_and(|t| t <= p) {
                g.purge_target = None;
            }
            let old: Vec<u64> = g.boundaries.range(..p).map(|(i, _)| *i).collect();
            for i in old {
                g.boundaries.remove(&i);
                if let Some(d) = &g.snapshot_dir {
                    let path = d.join(snapshot_file(i));
                    if let Err(e) = std::fs::remove_file(&path) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            return Err(smerr(
                                ErrorVerb::Delete,
                                format!("{}: {e}", path.display()),
                            ));
                        }
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Delete consumequeue and index files wholly below commitlog position `pos` (after the
    /// log was purged).
    pub async fn purge_derived_below(&self, pos: u64) -> Result<(), SE> {
        self.blocking(move |g| {
            g.dispatcher
                .purge_below_pos(pos)
                .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Delete, &e))
        })
        .await
    }

    /// The queue-offset source for the proposer.
    pub fn queue_offsets(&self) -> Arc<dyn QueueOffsetSource> {
        Arc::new(self.clone())
    }
}

impl QueueOffsetSource for StateMachine {
    fn next_queue_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.lock().dispatcher.max_offset(topic, queue_id)
    }
}

impl Inner {
    fn checkpoint(&mut self) -> Result<(), SE> {
        self.metadata
            .flush()
            .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Write, &e))?;
        let extra = codec::encode_versioned(&self.membership)
            .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Write, &e))?;
        self.dispatcher.set_extra(extra);
        self.dispatcher
            .checkpoint()
            .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Write, &e))?;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    fn applied(&self) -> Option<LogId<NodeId>> {
        self.dispatcher.applied().as_ref().map(log_id)
    }

    /// The stored record of `e`: message batches carry their position in their first
    /// PHYSICALOFFSET; other records are read back from the log.
    fn stored(&self, e: &typ::Entry) -> Result<StoredEntry, SE> {
        let id = entry_id(&e.log_id);
        if let EntryPayload::Normal(BrokerCommand::PutMessages { bytes }) = &e.payload {
            let phys = bytes
                .get(PHYSICAL_OFFSET_OFFSET..PHYSICAL_OFFSET_OFFSET + 8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
                .ok_or_else(|| {
                    smerr(
                        ErrorVerb::Read,
                        format!("entry {} holds no message", id.index),
                    )
                })?;
            let pos = (phys as u64)
                .checked_sub(HEADER_LEN as u64)
                .ok_or_else(|| {
                    smerr(
                        ErrorVerb::Read,
                        format!("entry {}: bad physical offset {phys}", id.index),
                    )
                })?;
            return Ok(StoredEntry {
                id,
                kind: EntryKind::Messages,
                pos,
                payload: bytes.clone(),
            });
        }
        match self.log.entry(id.index) {
            Ok(Some(s)) if s.id == id => Ok(s),
            Ok(_) => {
                // Not in the local log (only the storage test suite applies such entries):
                // place it just past the applied entry.
                let rec = to_new_entry(e)
                    .map_err(|err| serr(ErrorSubject::Apply(e.log_id), ErrorVerb::Read, &err))?;
                Ok(StoredEntry {
                    id,
                    kind: rec.kind,
                    pos: self.dispatcher.next_pos(),
                    payload: rec.payload,
                })
            }
            Err(err) => Err(serr(ErrorSubject::Apply(e.log_id), ErrorVerb::Read, &err)),
        }
    }

    /// Apply entries here, on the caller's thread, for as long as they are light; returns the
    /// results and the entries left from the first that is not.
    fn apply_light(
        &mut self,
        entries: Vec<typ::Entry>,
    ) -> Result<(Vec<CommandResult>, Vec<typ::Entry>), SE> {
        let mut out = Vec::with_capacity(entries.len());
        let mut it = entries.into_iter();
        while let Some(e) = it.next() {
            let stored = self.stored(&e)?;
            if !self.is_light(&e, &stored) {
                let mut rest = Vec::with_capacity(it.len() + 1);
                rest.push(e);
                rest.extend(it);
                return Ok((out, rest));
            }
            out.push(self.apply_stored(e, stored)?);
            self.since_checkpoint = self.since_checkpoint.saturating_add(1);
        }
        Ok((out, Vec::new()))
    }

    /// Whether applying `e` is memory work only: a message batch or an offset commit (mapped
    /// consumequeue and index files, sled's cache) that follows the last applied entry within
    /// its segment. A membership change or topic admin may checkpoint, the first entry of a
    /// segment takes a boundary snapshot, and both fsync.
    fn is_light(&self, e: &typ::Entry, stored: &StoredEntry) -> bool {
        let light_kind = matches!(
            e.payload,
            EntryPayload::Blank
                | EntryPayload::Normal(BrokerCommand::PutMessages { .. })
                | EntryPayload::Normal(BrokerCommand::CommitOffsets { .. })
        );
        let follows = self
            .dispatcher
            .applied()
            .is_some_and(|a| stored.id.index == a.index + 1);
        light_kind && follows && !self.starts_segment(stored)
    }

    /// Whether `stored` is the first entry of a commitlog segment.
    fn starts_segment(&self, stored: &StoredEntry) -> bool {
        let prev_end = self.dispatcher.next_pos();
        prev_end > 0 && stored.pos / self.segment_size > (prev_end - 1) / self.segment_size
    }

    fn checkpoint_due(&self) -> bool {
        self.since_checkpoint >= self.policy.every_entries
            || self.last_checkpoint.elapsed() >= self.policy.every
    }

    fn apply_one(&mut self, e: typ::Entry) -> Result<CommandResult, SE> {
        let stored = self.stored(&e)?;
        self.apply_stored(e, stored)
    }

    fn apply_stored(&mut self, e: typ::Entry, stored: StoredEntry) -> Result<CommandResult, SE> {
        let lid = e.log_id;
        let aerr =
            |err: &dyn std::fmt::Display| smerr(ErrorVerb::Write, format!("apply {lid}: {err}"));
        if let Some(a) = self.dispatcher.applied() {
            if stored.id.index > a.index + 1 && stored.kind != EntryKind::Messages {
                // openraft applies contiguously; only its storage suite skips indexes. A
                // skipped message batch would be a lost message and stays an error.
                tracing::warn!(
                    applied = a.index,
                    index = stored.id.index,
                    "apply skips indexes"
                );
                let prev = raftmq_store::commitlog::EntryId {
                    index: stored.id.index - 1,
                    ..stored.id
                };
                let pos = self.dispatcher.next_pos();
                self.dispatcher.reset_applied(Some(prev), pos);
            }
        }
        if let Some(a) = self.dispatcher.applied() {
            if stored.id.index == a.index + 1 && self.starts_segment(&stored) {
                self.capture_boundary()?;
            }
        }
        let dispatched = self.dispatcher.dispatch(&stored).map_err(|err| {
            tracing::error!(index = lid.index, cause = %err, "dispatch failed; stopping");
            serr(ErrorSubject::Apply(lid), ErrorVerb::Write, &err)
        })?;
        let mut result = CommandResult::default();
        match e.payload {
            EntryPayload::Blank => {}
            EntryPayload::Membership(m) => {
                self.membership = StoredMembership::new(Some(lid), m);
                // Membership must survive a restart together with the applied id.
                self.since_checkpoint = self.policy.every_entries;
            }
            EntryPayload::Normal(BrokerCommand::PutMessages { .. }) => {
                result.messages = dispatched
                    .into_iter()
                    .map(|d| AppendedMessage {
                        topic: d.topic,
                        queue_id: d.queue_id,
                        queue_offset: d.queue_offset,
                        phys_offset: d.phys_offset,
                        size: d.size,
                        store_timestamp: d.store_timestamp,
                    })
                    .collect();
            }
            EntryPayload::Normal(BrokerCommand::DeleteTopic { topic }) => {
                self.delete_topic(&topic).map_err(|err| aerr(&err))?;
                // Empty the topic's queues, crash-safely: the checkpoint records which queues
                // go before their files do, and an open finishes a clear a crash cut short.
                if self.dispatcher.mark_topic_deleted(&topic) > 0 {
                    self.checkpoint()?;
                    self.dispatcher.clear_marked().map_err(|err| aerr(&err))?;
                }
            }
            EntryPayload::Normal(cmd) => self.apply_command(cmd).map_err(|err| aerr(&err))?,
        }
        Ok(result)
    }

    fn apply_command(&mut self, cmd: BrokerCommand) -> raftmq_store::Result<()> {
        let md = &self.metadata;
        match cmd {
            BrokerCommand::PutMessages { .. } => Ok(()),
            BrokerCommand::CommitOffsets { offsets } => {
                for o in offsets {
                    md.commit_offset(&o.group, &o.topic, o.queue_id, o.offset)?;
                }
                Ok(())
            }
            BrokerCommand::UpsertTopic { topic } => md.put_topic(&topic),
            BrokerCommand::DeleteTopic { topic } => self.delete_topic(&topic),
            BrokerCommand::UpsertSubscriptionGroup { group } => md.put_group(&group),
            BrokerCommand::DeleteSubscriptionGroup { group } => md.delete_group(&group).map(|_| ()),
        }
    }

    /// A topic's config and every group's offsets on it go (RocketMQ's deleteTopic); its
    /// queues are emptied by the caller.
    fn delete_topic(&self, topic: &str) -> raftmq_store::Result<()> {
        self.metadata.delete_topic(topic)?;
        self.metadata.delete_topic_offsets(topic)?;
        Ok(())
    }

    /// The snapshot of the state as applied right now.
    fn snapshot_now(&self) -> Result<StoredSnapshot, SE> {
        let metadata = self
            .metadata
            .export()
            .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?;
        let next_pos = self.dispatcher.next_pos();
        let payload = SnapshotPayload {
            applied: self.applied(),
            membership: self.membership.clone(),
            next_pos,
            queues: self.dispatcher.queue_table(),
            metadata,
        };
        let bytes = codec::encode_versioned(&payload)
            .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?;
        let meta = SnapshotMeta {
            last_log_id: payload.applied,
            last_membership: payload.membership,
            snapshot_id: match payload.applied {
                Some(l) => format!(
                    "{}-{}-{}-{}",
                    l.leader_id.term, l.leader_id.node_id, l.index, next_pos
                ),
                None => format!("empty-{next_pos}"),
            },
        };
        Ok((meta, bytes))
    }

    /// Capture and persist the state as of the last entry of the segment just finished.
    fn capture_boundary(&mut self) -> Result<(), SE> {
        let snap = self.snapshot_now()?;
        self.keep_boundary(snap)
    }

    fn keep_boundary(&mut self, snap: StoredSnapshot) -> Result<(), SE> {
        let Some(idx) = snap.0.last_log_id.map(|l| l.index) else {
            return Ok(());
        };
        if let Some(dir) = &self.snapshot_dir {
            store_snapshot(dir, idx, &snap)?;
        }
        tracing::debug!(snapshot = %snap.0.snapshot_id, "segment-boundary snapshot");
        self.boundaries.insert(idx, snap);
        Ok(())
    }

    /// The snapshot to hand to openraft: the boundary at the pending purge target, else at
    /// the log's purge point (or the first above it), else the newest boundary, else (no
    /// segment rolled yet) the current state.
    fn served(&mut self) -> Result<StoredSnapshot, SE> {
        if let Some(t) = self.purge_target {
            if let Some(s) = self.boundaries.get(&t) {
                return Ok(s.clone());
            }
        }
        if let Some(p) = self.log.state().purged {
            if let Some((_, s)) = self.boundaries.range(p.index..).next() {
                return Ok(s.clone());
            }
        } else if let Some((_, s)) = self.boundaries.iter().next_back() {
            return Ok(s.clone());
        }
        self.checkpoint()?;
        self.snapshot_now()
    }

    fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SE> {
        let (meta, bytes) = self.served()?;
        self.current = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }

    fn install(&mut self, meta: &SnapshotMeta<NodeId, PeerNode>, data: Vec<u8>) -> Result<(), SE> {
        let snap = |e: &dyn std::error::Error| {
            smerr(
                ErrorVerb::Write,
                format!("install snapshot {}: {e}", meta.snapshot_id),
            )
        };
        let p: SnapshotPayload = codec::decode_versioned(&data).map_err(|e| snap(&e))?;
        if p.applied != meta.last_log_id {
            return Err(smerr(
                ErrorVerb::Write,
                format!(
                    "snapshot {} claims {:?} but holds {:?}",
                    meta.snapshot_id, meta.last_log_id, p.applied
                ),
            ));
        }
        let applied = p.applied.as_ref().map(entry_id);
        // A crash from here on is finished at the next open (see `install_marker`).
        if let (Some(dir), Some(a)) = (&self.snapshot_dir, applied) {
            install_marker::write(dir, a, p.next_pos).map_err(|e| snap(&e))?;
        }
        self.metadata.import(&p.metadata).map_err(|e| snap(&e))?;
        // Durable before the dispatcher's checkpoint says the snapshot is applied.
        self.metadata.flush().map_err(|e| snap(&e))?;
        let extra = codec::encode_versioned(&p.membership).map_err(|e| snap(&e))?;
        self.dispatcher.set_extra(extra);
        self.dispatcher
            .reset(applied, p.next_pos, &p.queues)
            .map_err(|e| snap(&e))?;
        // Keep record positions aligned with the leader: a log that ends before the snapshot
        // restarts right after it, at the leader's position.
        if let Some(a) = applied {
            let st = self.log.state();
            if st.next_index <= a.index + 1 {
                self.log.reset(a, p.next_pos).map_err(|e| snap(&e))?;
            }
        }
        self.membership = p.membership;
        self.checkpoint()?;
        if let Some(dir) = &self.snapshot_dir {
            install_marker::remove(dir).map_err(|e| snap(&e))?;
        }
        let snap = (meta.clone(), data);
        // Everything below it is gone here too: keep only what can still be served.
        self.boundaries.clear();
        if let Some(dir) = &self.snapshot_dir {
            for i in list_snapshots(dir)? {
                let _ = std::fs::remove_file(dir.join(snapshot_file(i)));
            }
        }
        self.purge_target = None;
        self.keep_boundary(snap.clone())?;
        self.current = Some(snap);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SE> {
        self.blocking(|g| g.build_snapshot()).await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerNode>), SE> {
        let g = self.lock();
        Ok((g.applied(), g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, SE>
    where
        I: IntoIterator<Item = typ::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<typ::Entry> = entries.into_iter().collect();
        // Light entries (nearly all: message batches) are applied right here; a hand-off to
        // the blocking pool and back costs more than dispatching them. Whatever may fsync
        // goes there, with the rest of the batch behind it to keep the order.
        let (mut out, rest, due) = {
            let mut g = self.lock();
            let (out, rest) = g.apply_light(entries)?;
            let due = g.checkpoint_due();
            (out, rest, due)
        };
        if rest.is_empty() && !due {
            return Ok(out);
        }
        let more = self
            .blocking(move |g| {
                let mut out = Vec::with_capacity(rest.len());
                for e in rest {
                    out.push(g.apply_one(e)?);
                    g.since_checkpoint = g.since_checkpoint.saturating_add(1);
                }
                if g.checkpoint_due() {
                    g.checkpoint()?;
                }
                Ok(out)
            })
            .await?;
        out.extend(more);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SE> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SE> {
        let meta = meta.clone();
        let data = snapshot.into_inner();
        self.blocking(move |g| g.install(&meta, data)).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SE> {
        let g = self.lock();
        Ok(g.current.as_ref().map(|(m, d)| Snapshot {
            meta: m.clone(),
            snapshot: Box::new(Cursor::new(d.clone())),
        }))
    }
}

/// The mark of a snapshot install under way, `snapshots/installing`: the snapshot's last
/// entry and the commitlog position just past it, as text (`index term leader next_pos`).
///
/// An install imports the metadata, resets the dispatcher to the snapshot (its checkpoint
/// then names the snapshot's entry) and, when the local log ends before the snapshot,
/// restarts the commitlog right after it. A crash between the last two leaves the state
/// machine ahead of the log; without the mark that looks like an ASYNC log that lost its
/// tail (whose derived files are rolled back), and openraft would purge the log at the old
/// end's position, misaligned with the leader's. With it, the open restarts the log at the
/// snapshot's position instead ([`crate::storage::open_storage`]).
pub mod install_marker {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use raftmq_store::commitlog::EntryId;

    /// File name inside the snapshot directory.
    pub const FILE: &str = "installing";

    fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    fn sync_dir(dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    /// Records, durably, that the snapshot ending at `applied` is being installed.
    pub fn write(dir: &Path, applied: EntryId, next_pos: u64) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let text = format!(
            "{} {} {} {next_pos}\n",
            applied.index, applied.term, applied.leader
        );
        let tmp = dir.join(format!("{FILE}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path(dir))?;
        sync_dir(dir)
    }

    /// The install under way, if a crash interrupted one.
    pub fn read(dir: &Path) -> std::io::Result<Option<(EntryId, u64)>> {
        let text = match std::fs::read_to_string(path(dir)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: malformed install mark {text:?}", path(dir).display()),
            )
        };
        let n: Vec<u64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let [index, term, leader, next_pos] = n[..] else {
            return Err(bad());
        };
        Ok(Some((
            EntryId {
                index,
                term,
                leader,
            },
            next_pos,
        )))
    }

    /// The install is complete.
    pub fn remove(dir: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path(dir)) {
            Ok(()) => sync_dir(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn snapshot_file(index: u64) -> String {
    format!("{index:020}.{SNAPSHOT_EXT}")
}

fn list_snapshots(dir: &Path) -> Result<Vec<u64>, SE> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(smerr(ErrorVerb::Read, format!("{}: {e}", dir.display()))),
    };
    let mut out = vec![];
    for ent in rd {
        let ent = ent.map_err(|e| smerr(ErrorVerb::Read, format!("{}: {e}", dir.display())))?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(&format!(".{SNAPSHOT_EXT}")) {
            if let Ok(i) = stem.parse::<u64>() {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn load_boundaries(dir: &Path) -> Result<BTreeMap<u64, StoredSnapshot>, SE> {
    let mut out = BTreeMap::new();
    for i in list_snapshots(dir)? {
        let path = dir.join(snapshot_file(i));
        let bytes = std::fs::read(&path)
            .map_err(|e| smerr(ErrorVerb::Read, format!("{}: {e}", path.display())))?;
        let snap: StoredSnapshot = codec::decode_versioned(&bytes)
            .map_err(|e| smerr(ErrorVerb::Read, format!("{}: {e}", path.display())))?;
        out.insert(i, snap);
    }
    Ok(out)
}

/// Atomic replace: temp file, fsync, rename, fsync the directory.
fn store_snapshot(dir: &Path, index: u64, snap: &StoredSnapshot) -> Result<(), SE> {
    let werr = |what: &str, e: std::io::Error| {
        smerr(ErrorVerb::Write, format!("{what} {}: {e}", dir.display()))
    };
    let bytes = codec::encode_versioned(snap)
        .map_err(|e| serr(ErrorSubject::StateMachine, ErrorVerb::Write, &e))?;
    std::fs::create_dir_all(dir).map_err(|e| werr("create", e))?;
    let name = snapshot_file(index);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| werr("create", e))?;
        f.write_all(&bytes).map_err(|e| werr("write", e))?;
        f.sync_all().map_err(|e| werr("fsync", e))?;
    }
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| werr("rename", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| werr("fsync dir", e))?;
    Ok(())
}
