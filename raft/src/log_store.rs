//! openraft's `RaftLogStorage` / `RaftLogReader` over the store's [`CommitLog`].
//!
//! The commitlog does the real work (one writer, group commit, the meta file holding vote,
//! committed and purge pointers); appends copy on the calling core's thread, so an ASYNC_FLUSH
//! append completes without a thread hand-off. This adapter converts ids and payloads
//! ([`crate::entry`]) and forwards the store's durability completion to openraft's
//! `LogFlushed` callback. Calls that wait for an fsync (`save_vote`, `truncate`, `purge`,
//! `reset`) run on tokio's blocking pool so they never stall the runtime's workers.
//! Replication reads are capped by bytes and always return at least one entry.

// openraft's trait methods return its `StorageError` (over 200 bytes); helpers share it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};
use raftmq_store::commitlog::{CommitLog, EntryId};

use crate::codec;
use crate::entry::{entry_id, from_stored, log_id, to_new_entry};
use crate::types::{typ, NodeId, TypeConfig};

/// The Raft log of one node: a handle on its commitlog (cheap to clone).
#[derive(Clone)]
pub struct LogStore {
    log: CommitLog,
    max_read_bytes: usize,
}

fn serr<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: &E,
) -> StorageError<NodeId> {
    StorageError::IO {
        source: openraft::StorageIOError::new(subject, verb, AnyError::new(e)),
    }
}

impl LogStore {
    /// `max_read_bytes` caps one replication read (`limited_get_log_entries`).
    pub fn new(log: CommitLog, max_read_bytes: usize) -> Self {
        LogStore {
            log,
            max_read_bytes,
        }
    }

    pub fn commit_log(&self) -> &CommitLog {
        &self.log
    }

    async fn blocking<T, F>(
        &self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
        f: F,
    ) -> Result<T, StorageError<NodeId>>
    where
        T: Send + 'static,
        F: FnOnce(&CommitLog) -> raftmq_store::Result<T> + Send + 'static,
    {
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || f(&log)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(serr(subject, verb, &e)),
            Err(join) => Err(serr(subject, verb, &join)),
        }
    }

    fn read(
        &self,
        start: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<typ::Entry>, StorageError<NodeId>> {
        if start >= end {
            return Ok(vec![]);
        }
        let stored = self
            .log
            .entries(start, end, max_bytes)
            .map_err(|e| serr(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
        stored
            .into_iter()
            .map(|s| {
                let index = s.id.index;
                from_stored(s).map_err(|e| serr(ErrorSubject::LogIndex(index), ErrorVerb::Read, &e))
            })
            .collect()
    }
}

fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<typ::Entry>, StorageError<NodeId>> {
        let (start, end) = bounds(&range);
        // Clamp to what exists so an unbounded range does not mean an unbounded scan.
        let st = self.log.state();
        let end = end.min(st.next_index);
        self.read(start, end, usize::MAX)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<typ::Entry>, StorageError<NodeId>> {
        self.read(start, end, self.max_read_bytes)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let st = self.log.state();
        let last_purged_log_id = st.purged.as_ref().map(log_id);
        let last_log_id = st.last.as_ref().map(log_id).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = codec::encode_versioned(vote)
            .map_err(|e| serr(ErrorSubject::Vote, ErrorVerb::Write, &e))?;
        self.blocking(ErrorSubject::Vote, ErrorVerb::Write, move |log| {
            log.save_vote(bytes)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        match self.log.vote() {
            None => Ok(None),
            Some(b) => codec::decode_versioned(&b)
                .map(Some)
                .map_err(|e| serr(ErrorSubject::Vote, ErrorVerb::Read, &e)),
        }
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        if let Some(c) = committed {
            self.log
                .save_committed(entry_id(&c))
                .map_err(|e| serr(ErrorSubject::Store, ErrorVerb::Write, &e))?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.log.committed().as_ref().map(log_id))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = typ::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records = Vec::new();
        for e in entries {
            records.push(
                to_new_entry(&e)
                    .map_err(|err| serr(ErrorSubject::Log(e.log_id), ErrorVerb::Write, &err))?,
            );
        }
        let Some(first) = records.first().map(|r| r.id) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let st = self.log.state();
        if first.index > st.next_index {
            // The log cannot hold a hole. openraft never appends past the end (a follower
            // truncates or installs a snapshot first), but its storage suite appends to an
            // empty or short log at a higher index: restart the log just below the first new
            // entry, as a snapshot install does, keeping record positions contiguous.
            tracing::warn!(
                first = first.index,
                next = st.next_index,
                "append past the end of the log; restarting the log there"
            );
            let purged = EntryId {
                index: first.index - 1,
                term: first.term,
                leader: first.leader,
            };
            let pos = st.next_pos;
            self.blocking(ErrorSubject::Logs, ErrorVerb::Write, move |log| {
                log.reset(purged, pos)
            })
            .await?;
        }
        if first.index < st.next_index {
            // Appending over existing entries replaces them (openraft truncates a conflicting
            // suffix itself before appending; the storage suite relies on replacement, even
            // below the purge point, which restarts the log there).
            let first_present = st.purged.map(|p| p.index + 1).unwrap_or(0);
            if first.index >= first_present {
                tracing::debug!(
                    first = first.index,
                    next = st.next_index,
                    "append replaces a suffix"
                );
                let from = first.index;
                self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |log| {
                    log.truncate(from)
                })
                .await?;
            } else if let Some(below) = first.index.checked_sub(1) {
                tracing::warn!(
                    first = first.index,
                    first_present,
                    "append below the purge point; restarting the log there"
                );
                let purged = EntryId {
                    index: below,
                    term: first.term,
                    leader: first.leader,
                };
                let pos = st.first_pos;
                self.blocking(ErrorSubject::Logs, ErrorVerb::Write, move |log| {
                    log.reset(purged, pos)
                })
                .await?;
            } else {
                let e = std::io::Error::other(format!(
                    "cannot append index 0 below the purge point {first_present}"
                ));
                return Err(serr(ErrorSubject::Logs, ErrorVerb::Write, &e));
            }
        }
        let last = records.last().map(|r| r.id).unwrap_or(first);
        self.log
            .append(records, Box::new(move |res| callback.log_io_completed(res)))
            .map_err(|e| serr(ErrorSubject::Log(log_id(&last)), ErrorVerb::Write, &e))?;
        Ok(())
    }

    async fn truncate(&mut self, since: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let from = since.index;
        self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |log| {
            log.truncate(from)
        })
        .await
    }

    async fn purge(&mut self, upto: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let id = entry_id(&upto);
        self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |log| {
            log.purge(id)
        })
        .await
    }
}
