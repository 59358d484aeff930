//! Live history recording: appends operations to a JSON-lines file as they happen, stamping
//! each with the time since the run began.
//!
//! Shared by every actor of a run (nemesis, producers, consumers). Times are taken under the
//! file's lock, so lines are written in non-decreasing `time_ns` order as the history format
//! requires. It knows the record format ([`crate::history::Op`]) and nothing of what produced
//! the operations.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::history::{HistoryError, Op};

/// Appends operations to a history file.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    path: PathBuf,
    out: Mutex<Sink>,
}

#[derive(Debug)]
struct Sink {
    w: BufWriter<File>,
    last_ns: u64,
    lines: u64,
}

impl Recorder {
    /// Creates (truncates) the history file; time zero is now.
    pub fn create(path: &Path) -> Result<Recorder, HistoryError> {
        let file = File::create(path).map_err(|source| HistoryError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Recorder {
            start: Instant::now(),
            path: path.to_owned(),
            out: Mutex::new(Sink {
                w: BufWriter::new(file),
                last_ns: 0,
                lines: 0,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Nanoseconds since the recorder was created.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Stamps `op` with the current time (never earlier than the previous line) and appends
    /// it. Returns the time written.
    pub fn record(&self, mut op: Op) -> Result<u64, HistoryError> {
        let mut sink = self.out.lock().unwrap_or_else(|p| p.into_inner());
        op.time_ns = self.now_ns().max(sink.last_ns);
        sink.last_ns = op.time_ns;
        let io = |source| HistoryError::Io {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut sink.w, &op).map_err(|e| io(std::io::Error::other(e)))?;
        sink.w.write_all(b"\n").map_err(io)?;
        sink.lines += 1;
        Ok(op.time_ns)
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).lines
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&self) -> Result<(), HistoryError> {
        let mut sink = self.out.lock().unwrap_or_else(|p| p.into_inner());
        sink.w.flush().map_err(|source| HistoryError::Io {
            path: self.path.clone(),
            source,
        })
    }
}
