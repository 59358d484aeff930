//! Startup recovery: find the true end of the log and make the files agree with it.
//!
//! Clean start (no `abort` marker and the meta holds the end written at shutdown): check the
//! last record and the slot after it, done. Otherwise scan forward from the last known-good
//! point (the committed entry from the meta file, else the start of the log), checking every
//! record's magic, version, position field, CRC32C, index contiguity and term monotonicity,
//! and rewrite entry-index units that disagree. The first failing slot is the end. A failure
//! at or before the committed entry is corruption before the tail: fatal, with file and
//! offset (rebuild the node under a new id). After an unclean stop the records of the
//! segment holding the committed entry, and of the one before it, are checked too, up to
//! that entry (`verify_before_committed`). After the end, the header is zeroed and later
//! segments are deleted, so stale bytes can never be read back as records.

use std::time::Instant;

use super::entry_index::EntryIndex;
use super::tail::TailCache;
use super::{EntryId, Inner, Meta, RecoveryReport};
use crate::config::{CommitLogConfig, RecoveryMode};
use crate::error::{Result, StoreError};
use crate::format::{self, IndexUnit, Slot, END_MARKER_LEN, HEADER_LEN};
use crate::segment::SegmentList;

/// Where a scan stands.
struct Cursor {
    pos: u64,
    next_index: u64,
    last: Option<EntryId>,
    prev_term: u64,
    /// Position of an end marker passed with no record accepted since.
    marker_at: Option<u64>,
}

/// Outcome of checking one slot.
enum Step {
    Record(format::RecordHeader),
    Marker(u64),
    End,
    Bad {
        offset_in_file: u64,
        file: std::path::PathBuf,
        reason: String,
    },
}

fn check_slot(segments: &SegmentList, cur: &Cursor) -> Result<Step> {
    let Some(seg) = segments.get(cur.pos) else {
        return Ok(Step::End);
    };
    let file = seg.path().to_path_buf();
    let local = cur.pos - seg.base();
    let avail = seg.end() - cur.pos;
    let bad = |reason: String| Step::Bad {
        offset_in_file: local,
        file: file.clone(),
        reason,
    };
    if avail < END_MARKER_LEN as u64 {
        return Ok(bad(format!("only {avail} bytes before the segment end")));
    }
    let mut head = [0u8; HEADER_LEN];
    let n = avail.min(HEADER_LEN as u64) as usize;
    seg.read_at(cur.pos, &mut head[..n])?;
    let h = match format::decode_slot(&head[..n]) {
        Ok(Slot::Empty) => return Ok(Step::End),
        Ok(Slot::EndMarker { len }) => {
            if u64::from(len) != avail {
                return Ok(bad(format!(
                    "end marker covers {len} bytes, {avail} remain"
                )));
            }
            return Ok(Step::Marker(seg.end()));
        }
        Ok(Slot::Record(h)) => h,
        Err(e) => return Ok(bad(e.0)),
    };
    if h.pos != cur.pos {
        return Ok(bad(format!(
            "record says pos {}, found at {}",
            h.pos, cur.pos
        )));
    }
    if h.id.index != cur.next_index {
        return Ok(bad(format!(
            "record index {} does not follow {}",
            h.id.index, cur.next_index
        )));
    }
    if h.id.term < cur.prev_term {
        return Ok(bad(format!(
            "record term {} is below the previous term {}",
            h.id.term, cur.prev_term
        )));
    }
    if h.record_len() + END_MARKER_LEN as u64 > avail {
        return Ok(bad(format!(
            "record of {} bytes overruns the segment",
            h.record_len()
        )));
    }
    let mut payload = vec![0u8; h.payload_len as usize];
    seg.read_at(cur.pos + HEADER_LEN as u64, &mut payload)?;
    if !format::crc_matches(&head, &payload) {
        return Ok(bad(format!("CRC mismatch in entry {}", h.id.index)));
    }
    Ok(Step::Record(h))
}

fn unit_of(h: &format::RecordHeader) -> IndexUnit {
    IndexUnit {
        pos: h.pos,
        record_len: u32::try_from(h.record_len()).expect("invariant: record fits a segment"),
        kind: h.kind,
        term: h.id.term,
        leader: h.id.leader,
    }
}

/// Verifies the record of `index` against its unit; `Ok(None)` when either is missing or
/// they disagree.
fn verified_unit(segments: &SegmentList, index: &EntryIndex, i: u64) -> Result<Option<IndexUnit>> {
    let Some(u) = index.get(i)? else {
        return Ok(None);
    };
    let cur = Cursor {
        pos: u.pos,
        next_index: i,
        last: None,
        prev_term: 0,
        marker_at: None,
    };
    match check_slot(segments, &cur)? {
        Step::Record(h) if unit_of(&h) == u => Ok(Some(u)),
        _ => Ok(None),
    }
}

/// After an unclean stop, checks every record of the segment holding the committed entry
/// `committed` and of the segment before it, up to that entry: damage there (a flipped bit,
/// a torn page) is corruption before the tail and fails the open with its file and offset,
/// instead of being served and replicated from. Older segments are not read at start-up
/// (their records are still CRC-checked on every read). Skipped when the entry index cannot
/// say where that range starts.
fn verify_before_committed(
    segments: &SegmentList,
    index: &EntryIndex,
    first_index: u64,
    first_pos: u64,
    committed: u64,
) -> Result<()> {
    let Some(cu) = index.get(committed)? else {
        return Ok(());
    };
    let size = segments.file_size();
    let seg_base = segments.base_of(cu.pos);
    let from_pos = seg_base.saturating_sub(size).max(first_pos);
    // The first entry at or after `from_pos` (binary search over the entry index).
    let (mut lo, mut hi) = (first_index, committed);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match index.get(mid)? {
            Some(u) if u.pos >= from_pos => hi = mid,
            Some(_) => lo = mid + 1,
            None => return Ok(()),
        }
    }
    let Some(start) = index.get(lo)? else {
        return Ok(());
    };
    let mut cur = Cursor {
        pos: start.pos,
        next_index: lo,
        last: None,
        prev_term: 0,
        marker_at: None,
    };
    while cur.next_index < committed {
        match check_slot(segments, &cur)? {
            Step::Record(h) => {
                cur.pos += h.record_len();
                cur.next_index += 1;
                cur.prev_term = h.id.term;
            }
            Step::Marker(next) => cur.pos = next,
            Step::End => {
                let file = segments
                    .get(cur.pos)
                    .map(|s| s.path().to_path_buf())
                    .unwrap_or_else(|| segments.dir().to_path_buf());
                let offset = cur.pos - segments.base_of(cur.pos);
                return Err(StoreError::corruption(
                    file,
                    offset,
                    format!(
                        "entry {} before the committed entry {committed} is missing (corruption before the tail)",
                        cur.next_index
                    ),
                ));
            }
            Step::Bad {
                offset_in_file,
                file,
                reason,
            } => {
                return Err(StoreError::corruption(
                    file,
                    offset_in_file,
                    format!(
                        "entry {} before the committed entry {committed} is damaged (corruption before the tail): {reason}",
                        cur.next_index
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Recovers the log; returns the in-memory state and what was found.
pub(crate) fn recover(
    cfg: &CommitLogConfig,
    meta: &Meta,
    clean: bool,
    mut segments: SegmentList,
    mut index: EntryIndex,
) -> Result<(Inner, RecoveryReport)> {
    let started = Instant::now();
    let mut report = RecoveryReport {
        clean,
        ..Default::default()
    };
    let first_index = meta.start_index;
    let first_pos = meta.start_pos;
    if first_index > super::MAX_INDEX + 1 || first_pos > super::MAX_POS {
        return Err(StoreError::corruption(
            segments.dir().join(super::meta::META_FILE),
            0,
            format!("meta start ({first_index}, {first_pos}) is out of range"),
        ));
    }

    // Clean start: trust the end recorded at shutdown once it checks out.
    if let (true, Some((ni, np))) = (clean, meta.clean_end) {
        let tail_ok = if ni > first_index {
            match verified_unit(&segments, &index, ni - 1)? {
                Some(u) => u.pos + u64::from(u.record_len) == np,
                None => false,
            }
        } else {
            ni == first_index && np == first_pos
        };
        let after = Cursor {
            pos: np,
            next_index: ni,
            last: None,
            prev_term: 0,
            marker_at: None,
        };
        let end_ok = matches!(check_slot(&segments, &after)?, Step::End);
        if tail_ok && end_ok {
            let last = if ni > first_index {
                index.get(ni - 1)?.map(|u| EntryId {
                    index: ni - 1,
                    term: u.term,
                    leader: u.leader,
                })
            } else {
                None
            };
            report.elapsed = started.elapsed();
            return Ok((
                Inner {
                    segments,
                    index,
                    first_index,
                    first_pos,
                    next_index: ni,
                    next_pos: np,
                    last,
                    purged: meta.purged,
                    tail: TailCache::default(),
                },
                report,
            ));
        }
        tracing::warn!(
            next_index = ni,
            next_pos = np,
            "clean end in meta does not match the log; scanning"
        );
    }

    // Scan start: just after the committed entry when it is present and intact.
    let committed = meta.committed.filter(|c| c.index >= first_index);
    let mut cur = Cursor {
        pos: first_pos,
        next_index: first_index,
        last: None,
        prev_term: meta.purged.map(|p| p.term).unwrap_or(0),
        marker_at: None,
    };
    if let Some(c) = committed {
        if let Some(u) = verified_unit(&segments, &index, c.index)? {
            if u.term != c.term {
                return Err(StoreError::corruption(
                    segments.dir().join(super::meta::META_FILE),
                    0,
                    format!(
                        "committed entry {} has term {} in the log but {} in the meta file",
                        c.index, u.term, c.term
                    ),
                ));
            }
            if !clean {
                verify_before_committed(&segments, &index, first_index, first_pos, c.index)?;
            }
            cur = Cursor {
                pos: u.pos + u64::from(u.record_len),
                next_index: c.index + 1,
                last: Some(EntryId {
                    index: c.index,
                    term: u.term,
                    leader: u.leader,
                }),
                prev_term: u.term,
                marker_at: None,
            };
        }
    }

    let (scan_pos, scan_index) = (cur.pos, cur.next_index);
    let cut = loop {
        match check_slot(&segments, &cur)? {
            Step::Record(h) => {
                let u = unit_of(&h);
                if index.get(h.id.index)? != Some(u) {
                    index.put(h.id.index, &u)?;
                    report.index_units_rebuilt += 1;
                }
                report.records_scanned += 1;
                cur.pos += h.record_len();
                cur.next_index += 1;
                cur.prev_term = h.id.term;
                cur.last = Some(h.id);
                cur.marker_at = None;
            }
            Step::Marker(next) => {
                cur.marker_at.get_or_insert(cur.pos);
                cur.pos = next;
            }
            Step::End => break None,
            Step::Bad {
                offset_in_file,
                file,
                reason,
            } => break Some((file, offset_in_file, reason)),
        }
    };

    if let Some(c) = committed {
        if c.index >= cur.next_index {
            let (file, offset, reason) = cut.clone().unwrap_or_else(|| {
                (
                    segments.dir().to_path_buf(),
                    cur.pos,
                    "log ends here".to_string(),
                )
            });
            return Err(StoreError::corruption(
                file,
                offset,
                format!(
                    "committed entry {} is missing or damaged (corruption before the tail): {reason}",
                    c.index
                ),
            ));
        }
    }
    if let Some((file, offset, reason)) = &cut {
        if cfg.recovery == RecoveryMode::AbsoluteConsistency {
            return Err(StoreError::corruption(
                file.clone(),
                *offset,
                reason.clone(),
            ));
        }
        tracing::warn!(file = %file.display(), offset, reason = %reason, next_index = cur.next_index, "cutting the commitlog tail");
        report.cut_reason = Some(format!("{}@{offset}: {reason}", file.display()));
    }

    // The end is before any end marker that no record followed: an entry placed later may
    // be smaller and fit where the marker is, exactly as on the leader.
    let next_pos = cur.marker_at.unwrap_or(cur.pos);
    if let Some(seg) = segments.get(next_pos) {
        let n = (seg.end() - next_pos).min(HEADER_LEN as u64) as usize;
        let mut head = [0u8; HEADER_LEN];
        seg.read_at(next_pos, &mut head[..n])?;
        if head[..n].iter().any(|b| *b != 0) {
            if cut.is_some() {
                // Count the claimed record length when the header is readable, else the header.
                report.bytes_cut += match format::decode_slot(&head[..n]) {
                    Ok(Slot::Record(h)) => h.record_len().min(seg.end() - next_pos),
                    _ => n as u64,
                };
            }
            seg.write_at(next_pos, &[0u8; HEADER_LEN][..n])?;
            seg.flush(next_pos, next_pos + n as u64)?;
        }
    }
    let seg_size = segments.file_size();
    report.bytes_cut += segments.remove_from(segments.base_of(next_pos) + seg_size)?;
    // A purge persists its mark before deleting; finish a deletion a crash interrupted.
    segments.remove_below(first_pos)?;
    index.remove_below(first_index)?;
    index.remove_from(cur.next_index)?;
    // After a kill the scanned records may sit only in the page cache: make them durable
    // before anything is acknowledged on top of them.
    segments.flush(scan_pos, next_pos)?;
    index.flush(scan_index, cur.next_index)?;

    report.elapsed = started.elapsed();
    Ok((
        Inner {
            segments,
            index,
            first_index,
            first_pos,
            next_index: cur.next_index,
            next_pos,
            last: cur.last,
            purged: meta.purged,
            tail: TailCache::default(),
        },
        report,
    ))
}
