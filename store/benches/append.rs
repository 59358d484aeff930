//! Commitlog benchmark, printed as ratios to the machine's own limits measured in the same
//! run: sequential write bandwidth (dd-style 1 MiB writes + fdatasync) and the fdatasync rate
//! of 4 KiB and 64 KiB writes.
//!
//! Measures append throughput of 1 KiB records (Async and Sync, 1/16/64 appender threads),
//! random reads by index and by position, and the recovery time of a commitlog after an
//! unclean stop. Bounded: every phase stops after its time budget or count.
//!
//! Environment knobs (all optional):
//! - `RAFTMQ_BENCH_DIR`: where to write (default: the system temp dir);
//! - `RAFTMQ_BENCH_SECS`: seconds per append configuration (default 2);
//! - `RAFTMQ_BENCH_RECOVERY_MB`: commitlog size for the recovery phase (default 128;
//!   2048 for the 2 GiB figure);
//! - `RAFTMQ_BENCH_SEGMENT_MB`: segment size (default 64; RocketMQ's default is 1024).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftmq_store::commitlog::{
    CommitLog, CommitLogConfig, EntryId, EntryKind, FlushMode, NewEntry,
};
use raftmq_store::io::StdFileSystem;

const RECORD: usize = 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Limits {
    seq_mb_s: f64,
    fsync_4k: f64,
    fsync_64k: f64,
    overwrite_4k: f64,
    msync_1k: f64,
}

/// One 1 KiB write into a fallocated, mapped file followed by `msync(MS_SYNC)` of its page:
/// the floor under one group commit of this store (its segments are such files).
fn msync_rate(dir: &Path) -> f64 {
    let path = dir.join("mapped.bin");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let len = 64u64 << 20;
    f.set_len(len).unwrap();
    f.sync_all().unwrap();
    let mut map = unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap();
    let start = Instant::now();
    let mut n = 0usize;
    while n < 20_000 && start.elapsed() < Duration::from_secs(2) {
        let at = (n * 1024) % (len as usize - 1024);
        map[at..at + 1024].fill(0x77);
        map.flush_range(at, 1024).unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(map);
    std::fs::remove_file(&path).unwrap();
    rate
}

/// 4 KiB overwrites inside a preallocated file, each followed by fdatasync (no size or
/// allocation change to journal): the operation an msync of a preallocated segment costs.
fn overwrite_sync_rate(dir: &Path) -> f64 {
    let path = dir.join("prealloc.bin");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let buf = vec![0x3Cu8; 4096];
    let slots = 4096u64;
    for i in 0..slots {
        f.write_all_at(&buf, i * 4096).unwrap();
    }
    f.sync_all().unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while n < 20_000 && start.elapsed() < Duration::from_secs(2) {
        f.write_all_at(&buf, (n % slots) * 4096).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    rate
}

/// dd-style: 1 MiB writes, one fdatasync at the end, up to 256 MiB or 3 s.
fn seq_bandwidth(dir: &Path) -> f64 {
    let path = dir.join("seq.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5Au8; 1 << 20];
    let start = Instant::now();
    let mut written = 0u64;
    while written < 256 << 20 && start.elapsed() < Duration::from_secs(3) {
        f.write_all(&chunk).unwrap();
        written += chunk.len() as u64;
    }
    f.sync_data().unwrap();
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    written as f64 / (1 << 20) as f64 / secs
}

/// Appending writes of `size` bytes, each followed by fdatasync; up to 2 s or 5000 ops.
fn fsync_rate(dir: &Path, size: usize) -> f64 {
    let path = dir.join("fsync.bin");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let buf = vec![0xA5u8; size];
    let start = Instant::now();
    let mut n = 0u64;
    while n < 5000 && start.elapsed() < Duration::from_secs(2) {
        f.write_all_at(&buf, n * size as u64).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    rate
}

fn cfg(flush: FlushMode) -> CommitLogConfig {
    CommitLogConfig {
        segment_size: env_u64("RAFTMQ_BENCH_SEGMENT_MB", 64) << 20,
        flush,
        ..Default::default()
    }
}

fn record(i: u64) -> NewEntry {
    NewEntry {
        id: EntryId {
            index: i,
            term: 1,
            leader: 1,
        },
        kind: EntryKind::Command,
        payload: Bytes::from(vec![(i % 251) as u8; RECORD]),
    }
}

struct AppendResult {
    appends: u64,
    secs: f64,
    flushes: u64,
}

/// `threads` closed-loop appenders for `secs` seconds: each takes the next index and appends
/// under one lock (as a leader does), then waits for its completion outside it.
fn append_run(dir: &Path, flush: FlushMode, threads: usize, secs: u64) -> AppendResult {
    let (log, _) = CommitLog::open(dir, cfg(flush), Arc::new(StdFileSystem)).unwrap();
    let next = Arc::new(Mutex::new(0u64));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (log, next) = (log.clone(), next.clone());
            std::thread::spawn(move || {
                let mut mine = 0u64;
                while Instant::now() < deadline && mine < 2_000_000 {
                    let (tx, rx) = channel();
                    {
                        // Index assignment and the copy in one critical section, as on a
                        // leader; the wait for durability happens outside it.
                        let mut n = next.lock().unwrap();
                        log.append(
                            vec![record(*n)],
                            Box::new(move |r| {
                                let _ = tx.send(r.is_ok());
                            }),
                        )
                        .unwrap();
                        *n += 1;
                    }
                    assert!(rx.recv().unwrap(), "append failed");
                    mine += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let appends = *next.lock().unwrap();
    let flushes = log.flush_count();
    log.close().unwrap();
    AppendResult {
        appends,
        secs,
        flushes,
    }
}

fn fresh(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let base = std::env::var("RAFTMQ_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let root = tempfile::Builder::new()
        .prefix("raftmq-bench-")
        .tempdir_in(&base)
        .unwrap();
    let secs = env_u64("RAFTMQ_BENCH_SECS", 2);
    println!(
        "raftmq-store commitlog benchmark in {}",
        root.path().display()
    );
    println!("record size {RECORD} B, {secs} s per append run\n");

    println!("[1/4] machine limits");
    let limits = Limits {
        seq_mb_s: seq_bandwidth(root.path()),
        fsync_4k: fsync_rate(root.path(), 4096),
        fsync_64k: fsync_rate(root.path(), 65536),
        overwrite_4k: overwrite_sync_rate(root.path()),
        msync_1k: msync_rate(root.path()),
    };
    println!(
        "  sequential write (1 MiB writes + fdatasync): {:>10.1} MiB/s",
        limits.seq_mb_s
    );
    println!(
        "  fdatasync after 4 KiB write:                 {:>10.0} /s",
        limits.fsync_4k
    );
    println!(
        "  fdatasync after 64 KiB write:                {:>10.0} /s",
        limits.fsync_64k
    );
    println!(
        "  fdatasync after 4 KiB overwrite (prealloc.): {:>10.0} /s",
        limits.overwrite_4k
    );
    println!(
        "  msync after 1 KiB write into a mapping:      {:>10.0} /s\n",
        limits.msync_1k
    );

    println!("[2/4] append throughput (1 KiB records, closed-loop appenders)");
    println!(
        "  {:<6} {:>7} {:>12} {:>10} {:>10} {:>12} {:>12} {:>12}",
        "mode", "threads", "appends/s", "MiB/s", "group", "vs fsync4k", "vs msync", "vs seq bw"
    );
    let mut sync_rates = Vec::new();
    for flush in [FlushMode::Sync, FlushMode::Async] {
        for threads in [1usize, 16, 64] {
            let dir = fresh(root.path(), "append");
            let r = append_run(&dir, flush, threads, secs);
            let rate = r.appends as f64 / r.secs;
            let mib = rate * RECORD as f64 / (1 << 20) as f64;
            let group = r.appends as f64 / r.flushes.max(1) as f64;
            println!(
                "  {:<6} {:>7} {:>12.0} {:>10.1} {:>10.1} {:>11.2}x {:>11.2}x {:>11.3}x",
                format!("{flush:?}"),
                threads,
                rate,
                mib,
                group,
                rate / limits.fsync_4k,
                rate / limits.msync_1k,
                mib / limits.seq_mb_s
            );
            if flush == FlushMode::Sync {
                sync_rates.push((threads, rate));
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    let single = sync_rates[0].1;
    let many = sync_rates[2].1;
    println!(
        "  group commit: Sync 64 appenders / Sync 1 appender = {:.1}x (target >= 20x)\n",
        many / single
    );

    println!("[3/4] random reads");
    let dir = fresh(root.path(), "reads");
    let n = 100_000u64;
    {
        let (log, _) =
            CommitLog::open(&dir, cfg(FlushMode::Async), Arc::new(StdFileSystem)).unwrap();
        let mut positions = Vec::with_capacity(n as usize);
        for chunk in 0..(n / 100) {
            let es = (chunk * 100..chunk * 100 + 100).map(record).collect();
            positions.extend(log.append(es, Box::new(|_| {})).unwrap());
        }
        log.flush().unwrap();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let start = Instant::now();
        let mut reads = 0u64;
        while start.elapsed() < Duration::from_secs(1) {
            let i = rnd() % n;
            let e = log.entry(i).unwrap().unwrap();
            assert_eq!(e.payload.len(), RECORD);
            reads += 1;
        }
        let by_index = reads as f64 / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut reads = 0u64;
        while start.elapsed() < Duration::from_secs(1) {
            let i = (rnd() % n) as usize;
            let b = log.read_at(positions[i] + 48, RECORD).unwrap();
            assert_eq!(b.len(), RECORD);
            reads += 1;
        }
        let by_pos = reads as f64 / start.elapsed().as_secs_f64();
        println!("  entry(index), CRC checked:  {by_index:>10.0} /s  ({n} entries)");
        println!("  read_at(pos, 1 KiB):        {by_pos:>10.0} /s\n");
        log.close().unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let mb = env_u64("RAFTMQ_BENCH_RECOVERY_MB", 128);
    println!("[4/4] recovery after an unclean stop ({mb} MiB commitlog)");
    let dir = fresh(root.path(), "recovery");
    let records = (mb << 20) / (RECORD as u64 + 48);
    {
        let (log, _) =
            CommitLog::open(&dir, cfg(FlushMode::Async), Arc::new(StdFileSystem)).unwrap();
        let start = Instant::now();
        let mut i = 0u64;
        while i < records {
            let k = (records - i).min(256);
            let es = (i..i + k).map(record).collect();
            log.append(es, Box::new(|_| {})).unwrap();
            i += k;
            if i % (records / 10).max(1) < k {
                println!("  filling: {:>3}%", i * 100 / records);
            }
        }
        log.flush().unwrap();
        println!(
            "  filled {records} records in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        log.close().unwrap();
    }
    // An unclean stop: the abort marker is present, so open must scan every record.
    std::fs::write(dir.join("abort"), b"").unwrap();
    let start = Instant::now();
    let (log, report) =
        CommitLog::open(&dir, cfg(FlushMode::Sync), Arc::new(StdFileSystem)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(log.state().next_index, records);
    assert!(!report.clean);
    println!(
        "  recovery: {secs:.2} s, {} records scanned, {:.0} MiB/s, {:.0} records/s",
        report.records_scanned,
        mb as f64 / secs,
        report.records_scanned as f64 / secs
    );
    log.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    println!("\ndone");
}
