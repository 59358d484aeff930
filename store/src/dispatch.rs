//! The dispatcher: turns committed log entries into consumequeue units and index entries.
//!
//! Owns `consumequeue/` and `index/` under the store root and the dispatch checkpoint
//! (`checkpoint`). It is RocketMQ's reput service driven by commit: the state machine hands it
//! committed entries in index order; each message of a `Messages` entry gets a unit in its
//! queue (transaction types NOT and COMMIT only) and index entries for its UNIQ_KEY and KEYS
//! (all but ROLLBACK). Queue offsets were assigned by the leader; the dispatcher only checks
//! that each queue continues exactly where it stands, since a gap means the log and the
//! derived files disagree.
//!
//! Crash safety: units and index entries go to the mappings without fsync.
//! [`Dispatcher::checkpoint`] flushes them and then atomically records how far they reach. On
//! open, everything past the checkpoint is trimmed, so re-applying the entries after it
//! rewrites the same units at the same places and the index skips what it already has.
//!
//! It knows the stored-message layout (`crate::message`) and the entry type of the commitlog,
//! but nothing of Raft libraries or sockets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::DispatchCheckpoint;
use crate::commitlog::{EntryId, EntryKind, StoredEntry};
use crate::consume_queue::{ConsumeQueue, CqUnit, PhysReader, DEFAULT_UNITS_PER_FILE};
use crate::error::{Result, StoreError};
use crate::format::HEADER_LEN;
use crate::index_file::{build_key, IndexConfig, IndexStore};
use crate::io::{FileSystem, StdFileSystem};
use crate::message::{iter_batch, property, validate_topic_name, MessageView};

/// Topic whose consumequeue tags code holds the delivery time of a delayed message.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// RocketMQ `messageDelayLevel` default (`1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m
/// 30m 1h 2h`) in milliseconds.
pub const DEFAULT_DELAY_LEVELS_MS: [i64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// Dispatcher settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchConfig {
    /// Units per consumequeue file (`mapedFileSizeConsumeQueue` / 20; default 300,000).
    pub cq_units_per_file: u64,
    /// Index file geometry (`maxHashSlotNum`, `maxIndexNum`).
    pub index: IndexConfig,
    /// `messageIndexEnable` (default true): build the key index at all.
    pub index_enabled: bool,
    /// Delay of each level in ms (`messageDelayLevel`), for SCHEDULE_TOPIC_XXXX tags codes.
    pub delay_levels_ms: Vec<i64>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            cq_units_per_file: DEFAULT_UNITS_PER_FILE,
            index: IndexConfig::default(),
            index_enabled: true,
            delay_levels_ms: DEFAULT_DELAY_LEVELS_MS.to_vec(),
        }
    }
}

impl DispatchConfig {
    /// Units per file for a RocketMQ `mapedFileSizeConsumeQueue` in bytes (rounded up to
    /// whole 20-byte units, as RocketMQ does).
    pub fn cq_units_for_file_size(bytes: u64) -> u64 {
        bytes.div_ceil(crate::consume_queue::CQ_UNIT_SIZE).max(1)
    }
}

/// One message of an applied entry, as the send path reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchedMessage {
    pub topic: String,
    pub queue_id: i32,
    /// Queue offset carried by the message (0 for PREPARED / ROLLBACK records).
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub size: i32,
    pub store_timestamp: i64,
    pub tags_code: i64,
    /// Whether it got a consumequeue unit (transaction type NOT or COMMIT).
    pub consumable: bool,
    /// The client-generated id (UNIQ_KEY), if any.
    pub uniq_key: Option<String>,
}

/// Called with (topic, queue id, new max offset) after a queue advanced: long polling wakes
/// suspended pulls from here. It runs inside `dispatch`, with the dispatcher borrowed
/// mutably (and, through [`crate::store::Store`], its write lock held), so it must only hand
/// the event off (notify a channel or a condition), never read the store itself.
pub type QueueAdvancedHook = Box<dyn Fn(&str, i32, i64) + Send + Sync>;

/// Builds and queries the consumequeues and the key index from committed entries.
pub struct Dispatcher {
    root: PathBuf,
    cq_root: PathBuf,
    fs: Arc<dyn FileSystem>,
    cfg: DispatchConfig,
    queues: QueueTable,
    index: IndexStore,
    applied: Option<EntryId>,
    next_pos: u64,
    extra: Vec<u8>,
    hook: Option<QueueAdvancedHook>,
    reader: Option<Arc<dyn PhysReader + Send + Sync>>,
    /// Queues to empty at their next offset once a checkpoint records it (a topic deletion).
    resets: BTreeSet<(String, i32)>,
    /// Set when a write, flush or file operation failed half-way: the files no longer match
    /// the in-memory state, so every later mutation is refused until a reopen restores the
    /// last checkpoint.
    poisoned: Option<String>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("root", &self.root)
            .field("applied", &self.applied)
            .field("next_pos", &self.next_pos)
            .field("queues", &self.queues.len())
            .finish()
    }
}

/// The open consumequeues, by topic then queue id (lookups by `&str` allocate nothing).
#[derive(Default)]
struct QueueTable(HashMap<String, BTreeMap<i32, ConsumeQueue>>);

impl QueueTable {
    fn get(&self, topic: &str, queue_id: i32) -> Option<&ConsumeQueue> {
        self.0.get(topic)?.get(&queue_id)
    }
    fn get_mut(&mut self, topic: &str, queue_id: i32) -> Option<&mut ConsumeQueue> {
        self.0.get_mut(topic)?.get_mut(&queue_id)
    }
    fn insert(&mut self, topic: &str, queue_id: i32, cq: ConsumeQueue) {
        self.0
            .entry(topic.to_owned())
            .or_default()
            .insert(queue_id, cq);
    }
    fn remove(&mut self, topic: &str, queue_id: i32) -> Option<ConsumeQueue> {
        let qs = self.0.get_mut(topic)?;
        let cq = qs.remove(&queue_id);
        if qs.is_empty() {
            self.0.remove(topic);
        }
        cq
    }
    fn keys(&self) -> Vec<(String, i32)> {
        self.iter().map(|(t, q, _)| (t.to_owned(), q)).collect()
    }
    fn iter(&self) -> impl Iterator<Item = (&str, i32, &ConsumeQueue)> {
        self.0
            .iter()
            .flat_map(|(t, qs)| qs.iter().map(move |(q, cq)| (t.as_str(), *q, cq)))
    }
    fn values_mut(&mut self) -> impl Iterator<Item = &mut ConsumeQueue> {
        self.0.values_mut().flat_map(|qs| qs.values_mut())
    }
    fn drain(&mut self) -> Vec<ConsumeQueue> {
        std::mem::take(&mut self.0)
            .into_values()
            .flat_map(|qs| qs.into_values())
            .collect()
    }
    fn len(&self) -> usize {
        self.0.values().map(BTreeMap::len).sum()
    }
}

/// A message that passed every check and is about to be written.
struct Planned {
    msg: DispatchedMessage,
    keys: Vec<String>,
}

fn corruption(entry: &StoredEntry, reason: String) -> StoreError {
    StoreError::corruption(PathBuf::from("commitlog"), entry.pos, reason)
}

impl Dispatcher {
    /// Opens the derived files under `root` on the real file system.
    pub fn open(root: &Path, cfg: DispatchConfig) -> Result<Dispatcher> {
        Self::open_with_fs(root, cfg, StdFileSystem::arc())
    }

    /// Opens the derived files under `root` through `fs`, trimming everything the dispatch
    /// checkpoint does not cover so that re-dispatching the entries after
    /// [`Dispatcher::applied_index`] is exact.
    pub fn open_with_fs(
        root: &Path,
        cfg: DispatchConfig,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Dispatcher> {
        fs.create_dir_all(root)?;
        let cq_root = root.join("consumequeue");
        fs.create_dir_all(&cq_root)?;
        let checkpoint =
            DispatchCheckpoint::load(fs.as_ref(), root)?.unwrap_or_else(|| DispatchCheckpoint {
                index_end_phy: -1,
                ..DispatchCheckpoint::default()
            });
        let index = IndexStore::open(Arc::clone(&fs), &root.join("index"), cfg.index)?;
        let mut d = Dispatcher {
            root: root.to_path_buf(),
            cq_root,
            fs,
            cfg,
            queues: QueueTable::default(),
            index,
            applied: checkpoint.applied,
            next_pos: checkpoint.next_pos,
            extra: checkpoint.extra.clone(),
            hook: None,
            reader: None,
            resets: BTreeSet::new(),
            poisoned: None,
        };
        d.open_queues()?;
        d.restore_to_checkpoint(&checkpoint)?;
        tracing::info!(
            root = %d.root.display(),
            applied = ?d.applied,
            next_pos = d.next_pos,
            queues = d.queues.len(),
            "dispatcher opened"
        );
        Ok(d)
    }

    fn cq_dir(&self, topic: &str, queue_id: i32) -> PathBuf {
        self.cq_root.join(topic).join(queue_id.to_string())
    }

    /// Opens every `consumequeue/<topic>/<queueId>/` directory.
    fn open_queues(&mut self) -> Result<()> {
        let read =
            |dir: &Path| std::fs::read_dir(dir).map_err(|e| StoreError::io("read_dir", dir, e));
        for topic_entry in read(&self.cq_root)? {
            let topic_entry =
                topic_entry.map_err(|e| StoreError::io("read_dir", &self.cq_root, e))?;
            let topic_path = topic_entry.path();
            if !topic_path.is_dir() {
                continue;
            }
            let Some(topic) = topic_path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
            else {
                continue;
            };
            if validate_topic_name(&topic).is_err() {
                tracing::warn!(path = %topic_path.display(), "ignoring stray consumequeue dir");
                continue;
            }
            for q in read(&topic_path)? {
                let q = q.map_err(|e| StoreError::io("read_dir", &topic_path, e))?;
                let qpath = q.path();
                let Some(qid) = qpath
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                let cq = ConsumeQueue::open(
                    Arc::clone(&self.fs),
                    &qpath,
                    &topic,
                    qid,
                    self.cfg.cq_units_per_file,
                )?;
                self.queues.insert(&topic, qid, cq);
            }
        }
        Ok(())
    }

    /// Cuts every derived file back to exactly what `checkpoint` describes: queues end at
    /// their recorded next offsets (queues it does not know are removed: all their units are
    /// newer), and index entries at or past its position go. Units past a checkpoint may
    /// survive a crash in the page cache, or only partly (a power cut keeps whichever pages
    /// the kernel had written back), so positions alone cannot be trusted here.
    fn restore_to_checkpoint(&mut self, checkpoint: &DispatchCheckpoint) -> Result<()> {
        let keys = self.queues.keys();
        for key in keys {
            match checkpoint.queues.get(&key) {
                Some(_) if checkpoint.resets.contains(&key) => {}
                Some(next) => {
                    if let Some(cq) = self.queues.get_mut(&key.0, key.1) {
                        cq.restore_end(*next)?;
                    }
                }
                None => {
                    if let Some(cq) = self.queues.remove(&key.0, key.1) {
                        tracing::info!(topic = %key.0, queue_id = key.1, "removing queue newer than the checkpoint");
                        cq.destroy()?;
                    }
                }
            }
        }
        for (topic, qid) in &checkpoint.resets {
            let Some(&next) = checkpoint.queues.get(&(topic.clone(), *qid)) else {
                return Err(StoreError::corruption(
                    self.cq_dir(topic, *qid),
                    0,
                    "the dispatch checkpoint resets a queue it does not list",
                ));
            };
            tracing::info!(topic = %topic, queue_id = qid, next, "emptying the queue of a deleted topic");
            self.open_queue(topic, *qid)?.clear_at(next)?;
        }
        for ((topic, qid), next) in &checkpoint.queues {
            if self.queues.get(topic, *qid).is_none() && *next > 0 {
                return Err(StoreError::corruption(
                    self.cq_dir(topic, *qid),
                    0,
                    format!("consumequeue is missing but the dispatch checkpoint says it ends at {next}"),
                ));
            }
        }
        let pos = i64::try_from(checkpoint.next_pos).map_err(|_| {
            StoreError::InvalidArgument(format!("position {} beyond i64", checkpoint.next_pos))
        })?;
        // Nothing was indexed at the checkpoint: whatever the index holds is newer, or left
        // from before a reset.
        let keep_below = if checkpoint.index_end_phy < 0 { 0 } else { pos };
        self.index.truncate_from_pos(keep_below)
    }

    /// Drops units and index entries at commitlog position `pos` or later.
    fn trim_to(&mut self, pos: u64) -> Result<()> {
        let pos = i64::try_from(pos)
            .map_err(|_| StoreError::InvalidArgument(format!("position {pos} beyond i64")))?;
        for cq in self.queues.values_mut() {
            cq.truncate_from_pos(pos)?;
        }
        self.index.truncate_from_pos(pos)
    }

    /// Last applied entry index.
    pub fn applied_index(&self) -> Option<u64> {
        self.applied.map(|id| id.index)
    }

    /// Last applied entry id.
    pub fn applied(&self) -> Option<EntryId> {
        self.applied
    }

    /// Commitlog position just past the last applied entry.
    pub fn next_pos(&self) -> u64 {
        self.next_pos
    }

    /// Opaque state-machine bytes kept in the checkpoint (for example the last membership).
    pub fn extra(&self) -> &[u8] {
        &self.extra
    }

    /// Replaces the opaque bytes persisted with the next checkpoint.
    pub fn set_extra(&mut self, extra: Vec<u8>) {
        self.extra = extra;
    }

    /// Installs the hook called after a queue advanced.
    pub fn set_queue_advanced_hook(&mut self, hook: QueueAdvancedHook) {
        self.hook = Some(hook);
    }

    /// Installs the reader used by [`Dispatcher::search_offset_by_time`].
    pub fn set_phys_reader(&mut self, reader: Arc<dyn PhysReader + Send + Sync>) {
        self.reader = Some(reader);
    }

    fn delivery_time(&self, view: &MessageView<'_>) -> i64 {
        let level = view
            .property(property::DELAY)
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(0);
        let delay = match level {
            0 => 0,
            l => self
                .cfg
                .delay_levels_ms
                .get(l.min(self.cfg.delay_levels_ms.len()).saturating_sub(1))
                .copied()
                .unwrap_or(0),
        };
        view.store_timestamp().saturating_add(delay)
    }

    /// Applies one committed entry. Entries must come in index order; an entry at or below
    /// the applied index is already in the files and only reported.
    ///
    /// A `Messages` entry is checked completely (layout, physical offsets, queue
    /// contiguity) before anything is written, so a bad entry changes nothing.
    pub fn dispatch(&mut self, entry: &StoredEntry) -> Result<Vec<DispatchedMessage>> {
        let already = self.applied.is_some_and(|a| entry.id.index <= a.index);
        if !already {
            if let Some(a) = self.applied {
                if entry.id.index != a.index + 1 {
                    return Err(StoreError::IndexGap {
                        expected: a.index + 1,
                        got: entry.id.index,
                    });
                }
            }
        }
        let planned = if entry.kind == EntryKind::Messages {
            self.plan(entry, already)?
        } else {
            Vec::new()
        };
        if already {
            return Ok(planned.into_iter().map(|p| p.msg).collect());
        }
        self.check_poison()?;
        let advanced = self.guard(|d| d.write_planned(&planned))?;
        self.applied = Some(entry.id);
        self.next_pos = entry
            .pos
            .saturating_add(HEADER_LEN as u64)
            .saturating_add(entry.payload.len() as u64);
        if let Some(hook) = &self.hook {
            for ((topic, qid), max) in &advanced {
                hook(topic, *qid, *max);
            }
        }
        Ok(planned.into_iter().map(|p| p.msg).collect())
    }

    /// True once a failed write or flush poisoned the dispatcher.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    fn check_poison(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => Err(StoreError::Fatal(format!("dispatcher poisoned: {reason}"))),
            None => Ok(()),
        }
    }

    /// Runs a mutation; an error poisons the dispatcher and comes back as `Fatal`.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.check_poison()?;
        f(self).map_err(|e| {
            tracing::error!(cause = %e, root = %self.root.display(), "derived files left inconsistent; dispatcher poisoned");
            self.poisoned = Some(e.to_string());
            StoreError::Fatal(format!("dispatcher poisoned: {e}"))
        })
    }

    /// Writes the units and index entries of a checked entry; returns the queues that
    /// advanced with their new max offsets.
    fn write_planned(&mut self, planned: &[Planned]) -> Result<BTreeMap<(String, i32), i64>> {
        let mut advanced: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for p in planned {
            let m = &p.msg;
            if m.consumable {
                self.open_queue(&m.topic, m.queue_id)?.put(
                    m.queue_offset,
                    CqUnit {
                        phys_offset: m.phys_offset,
                        size: m.size,
                        tags_code: m.tags_code,
                    },
                )?;
                advanced.insert((m.topic.clone(), m.queue_id), m.queue_offset + 1);
            }
            if self.cfg.index_enabled && !p.keys.is_empty() {
                self.index
                    .add_message(m.phys_offset, m.store_timestamp, &p.keys)?;
            }
        }
        Ok(advanced)
    }

    /// The queue, opened (and created when new) on first use.
    fn open_queue(&mut self, topic: &str, queue_id: i32) -> Result<&mut ConsumeQueue> {
        if self.queues.get(topic, queue_id).is_none() {
            let dir = self.cq_dir(topic, queue_id);
            let cq = ConsumeQueue::open(
                Arc::clone(&self.fs),
                &dir,
                topic,
                queue_id,
                self.cfg.cq_units_per_file,
            )?;
            self.queues.insert(topic, queue_id, cq);
        }
        Ok(self
            .queues
            .get_mut(topic, queue_id)
            .expect("invariant: queue inserted above"))
    }

    /// Deleting a topic, step 1 (after the deleting entry was dispatched): marks every queue
    /// of `topic` to be emptied at its next offset. Returns how many there are. The caller then
    /// writes a checkpoint, which records the marks, and calls [`Dispatcher::clear_marked`]:
    /// a crash in between is finished by the next open, which empties marked queues again.
    pub fn mark_topic_deleted(&mut self, topic: &str) -> usize {
        self.resets.extend(
            self.queues
                .iter()
                .filter(|(t, _, _)| *t == topic)
                .map(|(t, q, _)| (t.to_owned(), q)),
        );
        self.resets.len()
    }

    /// Deleting a topic, step 2: empties the marked queues (files gone, offsets kept).
    pub fn clear_marked(&mut self) -> Result<()> {
        let marked = std::mem::take(&mut self.resets);
        self.guard(|d| {
            for (topic, qid) in &marked {
                if let Some(cq) = d.queues.get_mut(topic, *qid) {
                    let next = cq.max_offset();
                    cq.clear_at(next)?;
                }
            }
            Ok(())
        })
    }

    /// Decodes and checks every message of a `Messages` entry.
    fn plan(&self, entry: &StoredEntry, already: bool) -> Result<Vec<Planned>> {
        let base = entry.pos.saturating_add(HEADER_LEN as u64);
        // Keys borrow the entry's bytes: no allocation per message.
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        let mut out = Vec::new();
        for item in iter_batch(&entry.payload) {
            let (off, view) =
                item.map_err(|e| corruption(entry, format!("entry {}: {e}", entry.id.index)))?;
            let expected_phys = base.saturating_add(off as u64);
            if view.physical_offset() != expected_phys as i64 {
                return Err(corruption(
                    entry,
                    format!(
                        "entry {}: message at payload offset {off} carries PHYSICALOFFSET {} but lies at {expected_phys}",
                        entry.id.index,
                        view.physical_offset()
                    ),
                ));
            }
            let topic = view.topic();
            validate_topic_name(topic)
                .map_err(|e| corruption(entry, format!("entry {}: {e}", entry.id.index)))?;
            let tx = view.transaction_type();
            let consumable = tx.is_consumable();
            if consumable && !already {
                let key = (topic, view.queue_id());
                let expected = match next.get(&key) {
                    Some(n) => *n,
                    None => self.max_offset(topic, view.queue_id()),
                };
                if view.queue_offset() != expected {
                    return Err(StoreError::QueueOffsetGap {
                        topic: topic.to_owned(),
                        queue_id: view.queue_id(),
                        expected,
                        got: view.queue_offset(),
                    });
                }
                next.insert(key, expected + 1);
            }
            let props = view.index_properties();
            let tags_code = if topic == SCHEDULE_TOPIC {
                self.delivery_time(&view)
            } else {
                props.tags_code()
            };
            let keys = if tx == crate::message::TransactionType::Rollback {
                Vec::new()
            } else {
                props
                    .uniq_key
                    .into_iter()
                    .chain(props.keys())
                    .map(|k| build_key(topic, k))
                    .collect()
            };
            out.push(Planned {
                msg: DispatchedMessage {
                    topic: topic.to_owned(),
                    queue_id: view.queue_id(),
                    queue_offset: view.queue_offset(),
                    phys_offset: view.physical_offset(),
                    size: view.total_size() as i32,
                    store_timestamp: view.store_timestamp(),
                    tags_code,
                    consumable,
                    uniq_key: props.uniq_key.map(str::to_owned),
                },
                keys,
            });
        }
        Ok(out)
    }

    /// Flushes every consumequeue and index file, then atomically writes the checkpoint.
    /// A failure poisons the dispatcher: after a failed fsync nobody knows what is on disk.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.guard(|d| {
            for cq in d.queues.values_mut() {
                cq.flush()?;
            }
            d.index.flush()?;
            let cp = d.snapshot_checkpoint();
            cp.store(d.fs.as_ref(), &d.root)
        })
    }

    /// The checkpoint as it would be written now.
    pub fn snapshot_checkpoint(&self) -> DispatchCheckpoint {
        DispatchCheckpoint {
            applied: self.applied,
            next_pos: self.next_pos,
            queues: self
                .queues
                .iter()
                .map(|(t, q, cq)| ((t.to_owned(), q), cq.max_offset()))
                .collect(),
            index_end_phy: self.index.end_phy_offset(),
            extra: self.extra.clone(),
            resets: self.resets.clone(),
        }
    }

    /// Every queue with its next offset (the leader's sequencer seeds from this).
    pub fn queue_table(&self) -> Vec<(String, i32, i64)> {
        let mut v: Vec<_> = self
            .queues
            .iter()
            .map(|(t, q, cq)| (t.to_owned(), q, cq.max_offset()))
            .collect();
        v.sort();
        v
    }

    /// Rolls back units and index entries of messages at commitlog position `pos` or later
    /// (the commitlog lost its tail). The applied position moves back to `pos` when it was
    /// past it; the caller sets the applied entry with [`Dispatcher::reset_applied`].
    pub fn truncate_from_pos(&mut self, pos: u64) -> Result<()> {
        self.guard(|d| d.trim_to(pos))?;
        if pos < self.next_pos {
            tracing::warn!(pos, next_pos = self.next_pos, "derived files rolled back");
            self.next_pos = pos;
        }
        Ok(())
    }

    /// Sets the applied entry and position (after a rollback, or a snapshot install).
    pub fn reset_applied(&mut self, applied: Option<EntryId>, next_pos: u64) {
        self.applied = applied;
        self.next_pos = next_pos;
    }

    /// Empties every queue and the index and restarts each queue of `queues` at its next
    /// offset (a follower installing a snapshot: its log restarts at `next_pos`), then
    /// writes a checkpoint.
    pub fn reset(
        &mut self,
        applied: Option<EntryId>,
        next_pos: u64,
        queues: &[(String, i32, i64)],
    ) -> Result<()> {
        for (topic, _, next) in queues {
            validate_topic_name(topic)?;
            if !(0..=crate::consume_queue::MAX_QUEUE_OFFSET).contains(next) {
                return Err(StoreError::InvalidArgument(format!(
                    "queue {topic} cannot restart at {next}"
                )));
            }
        }
        // The target state is made durable first, every queue marked for emptying and the
        // index empty: a crash while the files are replaced leaves a checkpoint that the next
        // open completes (it empties the marked queues, removes unlisted ones and the index),
        // never one that names files already gone.
        let target = DispatchCheckpoint {
            applied,
            next_pos,
            queues: queues
                .iter()
                .map(|(t, q, next)| ((t.clone(), *q), *next))
                .collect(),
            index_end_phy: -1,
            extra: self.extra.clone(),
            resets: queues.iter().map(|(t, q, _)| (t.clone(), *q)).collect(),
        };
        self.guard(|d| target.store(d.fs.as_ref(), &d.root))?;
        self.guard(|d| d.reset_files(queues))?;
        self.applied = applied;
        self.next_pos = next_pos;
        self.checkpoint()
    }

    fn reset_files(&mut self, queues: &[(String, i32, i64)]) -> Result<()> {
        for cq in self.queues.drain() {
            cq.destroy()?;
        }
        self.index.truncate_from_pos(0)?;
        for (topic, qid, next) in queues {
            let dir = self.cq_dir(topic, *qid);
            let mut cq = ConsumeQueue::open(
                Arc::clone(&self.fs),
                &dir,
                topic,
                *qid,
                self.cfg.cq_units_per_file,
            )?;
            if *next > 0 {
                cq.start_at(*next)?;
            }
            self.queues.insert(topic, *qid, cq);
        }
        Ok(())
    }

    /// Deletes consumequeue and index files wholly below commitlog position `pos`.
    pub fn purge_below_pos(&mut self, pos: u64) -> Result<()> {
        let pos = i64::try_from(pos)
            .map_err(|_| StoreError::InvalidArgument(format!("position {pos} beyond i64")))?;
        self.guard(|d| {
            for cq in d.queues.values_mut() {
                cq.purge_below_pos(pos)?;
            }
            d.index.purge_below_pos(pos)
        })
    }

    /// Next offset to be written in a queue (0 for an unknown queue).
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queues
            .get(topic, queue_id)
            .map_or(0, ConsumeQueue::max_offset)
    }

    /// First readable offset of a queue (0 for an unknown queue).
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queues
            .get(topic, queue_id)
            .map_or(0, ConsumeQueue::min_offset)
    }

    /// The unit at `offset`, or `None` outside the queue's range.
    pub fn unit(&self, topic: &str, queue_id: i32, offset: i64) -> Result<Option<CqUnit>> {
        match self.queues.get(topic, queue_id) {
            Some(cq) => cq.get(offset),
            None => Ok(None),
        }
    }

    /// Up to `max` units from `offset` (a pull reads its batch with one call).
    pub fn units(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<(i64, CqUnit)>> {
        let Some(cq) = self.queues.get(topic, queue_id) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut o = offset.max(cq.min_offset());
        while out.len() < max {
            match cq.get(o)? {
                Some(u) => out.push((o, u)),
                None => break,
            }
            o += 1;
        }
        Ok(out)
    }

    /// First offset whose message was stored at or after `ts` (ms), using the installed
    /// [`PhysReader`].
    pub fn search_offset_by_time(&self, topic: &str, queue_id: i32, ts: i64) -> Result<i64> {
        let reader = self.reader.as_ref().ok_or_else(|| {
            StoreError::InvalidArgument("no commitlog reader installed for time search".into())
        })?;
        self.search_offset_by_time_with(topic, queue_id, ts, reader.as_ref())
    }

    /// As [`Dispatcher::search_offset_by_time`] with an explicit reader.
    pub fn search_offset_by_time_with(
        &self,
        topic: &str,
        queue_id: i32,
        ts: i64,
        reader: &dyn PhysReader,
    ) -> Result<i64> {
        match self.queues.get(topic, queue_id) {
            Some(cq) => cq.search_offset_by_time(ts, reader),
            None => Ok(0),
        }
    }

    /// Commitlog positions of messages of `topic` indexed under `key` (a KEYS token or a
    /// UNIQ_KEY) stored in `[begin, end]` ms, newest first, at most `max`.
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Result<Vec<i64>> {
        self.index.query(topic, key, max, begin, end)
    }

    /// The index (for tools and tests).
    pub fn index(&self) -> &IndexStore {
        &self.index
    }

    /// Paths of a queue's files (for tools and tests).
    pub fn queue_files(&self, topic: &str, queue_id: i32) -> Vec<PathBuf> {
        self.queues
            .get(topic, queue_id)
            .map(ConsumeQueue::file_paths)
            .unwrap_or_default()
    }
}

// The state machine moves the dispatcher to its worker; pull paths share it.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Dispatcher>();
};
