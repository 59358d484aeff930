//! Property test: random append / truncate / purge / reopen / kill / power-loss sequences
//! against a simple in-memory model of the log.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::collections::BTreeMap;

use commitlog_util::*;
use proptest::prelude::*;
use raftmq_store::commitlog::{CommitLog, EntryId};
use raftmq_store::io::FaultyFileSystem;

#[derive(Clone, Debug)]
enum Op {
    /// Append `n` entries and wait until durable; `bump` starts a new term first.
    Append { n: u64, bump: bool },
    /// Append without waiting for durability.
    AppendNoWait { n: u64 },
    /// Truncate the last `back` entries.
    Truncate { back: u64 },
    /// Purge the first `k` entries (may run past the end).
    Purge { k: u64 },
    /// Mark the entry `back` places before the last as committed.
    Commit { back: u64 },
    /// Save a vote (durable on return, ordered after earlier appends).
    Vote,
    /// Snapshot install: empty the log, restart after `skip` more entries, `gap` bytes on.
    Reset { skip: u64, gap: u64 },
    /// Clean close and reopen.
    Reopen,
    /// Process killed: the page cache survives.
    Kill,
    /// Power cut: only what was made durable survives.
    PowerLoss,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..6, any::<bool>()).prop_map(|(n, bump)| Op::Append { n, bump }),
        3 => (1u64..6).prop_map(|n| Op::AppendNoWait { n }),
        2 => (0u64..12).prop_map(|back| Op::Truncate { back }),
        1 => (0u64..20).prop_map(|k| Op::Purge { k }),
        2 => (0u64..8).prop_map(|back| Op::Commit { back }),
        1 => Just(Op::Vote),
        1 => (0u64..30, 0u64..20_000).prop_map(|(skip, gap)| Op::Reset { skip, gap }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Kill),
        1 => Just(Op::PowerLoss),
    ]
}

#[derive(Default, Debug)]
struct Model {
    /// index → term of every present entry.
    terms: BTreeMap<u64, u64>,
    first: u64,
    next: u64,
    purged: Option<EntryId>,
    term: u64,
    /// Entries below this index are durable.
    durable_next: u64,
    votes: u64,
}

impl Model {
    fn last(&self) -> Option<EntryId> {
        self.terms.iter().next_back().map(|(i, t)| id(*i, *t))
    }
}

fn check(log: &CommitLog, m: &Model) {
    let st = log.state();
    if m.votes > 0 {
        assert_eq!(log.vote(), Some(m.votes.to_be_bytes().to_vec()), "vote");
    }
    assert_eq!(st.next_index, m.next, "next_index");
    assert_eq!(st.last, m.last(), "last");
    assert_eq!(st.purged, m.purged, "purged");
    for (i, t) in &m.terms {
        let e = log
            .entry(*i)
            .unwrap()
            .unwrap_or_else(|| panic!("entry {i} missing"));
        assert_eq!(e.id, id(*i, *t));
        assert_eq!(e.payload, payload(*i, *t));
    }
    if m.first > 0 {
        assert_eq!(log.entry(m.first - 1).unwrap(), None);
    }
    assert_eq!(log.entry(m.next).unwrap(), None);
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (mut log, _) = open_with(dir.path(), fs.clone());
    let mut m = Model {
        term: 1,
        ..Default::default()
    };
    for op in ops {
        match op {
            Op::Append { n, bump } => {
                if bump {
                    m.term += 1;
                }
                let es = (m.next..m.next + n).map(|i| entry(i, m.term)).collect();
                append_durable(&log, es);
                for i in m.next..m.next + n {
                    m.terms.insert(i, m.term);
                }
                m.next += n;
                m.durable_next = m.next;
            }
            Op::AppendNoWait { n } => {
                let es = (m.next..m.next + n).map(|i| entry(i, m.term)).collect();
                log.append(es, Box::new(|_| {})).unwrap();
                for i in m.next..m.next + n {
                    m.terms.insert(i, m.term);
                }
                m.next += n;
            }
            Op::Truncate { back } => {
                let from = m.next.saturating_sub(back).max(m.first);
                log.truncate(from).unwrap();
                m.terms.retain(|i, _| *i < from);
                m.next = from;
                m.durable_next = from;
            }
            Op::Purge { k } => {
                if k == 0 {
                    continue;
                }
                let upto_index = m.first + k - 1;
                let term = m.terms.get(&upto_index).copied().unwrap_or(m.term);
                let upto = id(upto_index, term);
                if m.purged.is_some_and(|p| p.index >= upto_index) {
                    continue;
                }
                log.purge(upto).unwrap();
                m.terms.retain(|i, _| *i > upto_index);
                m.purged = Some(upto);
                m.first = upto_index + 1;
                if m.next < m.first {
                    m.next = m.first;
                }
                m.durable_next = m.next;
            }
            Op::Commit { back } => {
                let Some(last) = m.last() else { continue };
                let i = last.index.saturating_sub(back);
                if let Some(t) = m.terms.get(&i) {
                    log.save_committed(id(i, *t)).unwrap();
                    assert_eq!(log.committed(), Some(id(i, *t)));
                }
            }
            Op::Vote => {
                m.votes += 1;
                log.save_vote(m.votes.to_be_bytes().to_vec()).unwrap();
                m.durable_next = m.next;
            }
            Op::Reset { skip, gap } => {
                let seg = small_cfg().segment_size;
                let mut pos = log.state().next_pos + gap;
                if seg - pos % seg < 8 {
                    pos += 8;
                }
                let purged = id(m.next + skip, m.term);
                log.reset(purged, pos).unwrap();
                assert_eq!(log.state().next_pos, pos);
                m.terms.clear();
                m.purged = Some(purged);
                m.first = purged.index + 1;
                m.next = m.first;
                m.durable_next = m.next;
            }
            Op::Reopen => {
                drop(log);
                let (l, rep) = open_with(dir.path(), fs.clone());
                assert!(rep.clean);
                log = l;
                m.durable_next = m.next;
            }
            Op::Kill => {
                fs.crash();
                drop(log);
                fs.restart();
                let (l, rep) = open_with(dir.path(), fs.clone());
                assert!(!rep.clean);
                log = l;
                m.durable_next = m.next;
            }
            Op::PowerLoss => {
                fs.crash();
                drop(log);
                fs.power_loss().unwrap();
                let (l, _) = open_with(dir.path(), fs.clone());
                log = l;
                let got = log.state().next_index;
                assert!(
                    got >= m.durable_next && got <= m.next,
                    "recovered next {got}, durable {} model {}",
                    m.durable_next,
                    m.next
                );
                m.terms.retain(|i, _| *i < got);
                m.next = got;
                m.durable_next = got;
            }
        }
        check(&log, &m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]
    #[test]
    fn commitlog_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

#[test]
fn model_run_touching_every_operation() {
    use Op::*;
    run(vec![
        Append { n: 5, bump: false },
        AppendNoWait { n: 30 },
        Kill,
        Truncate { back: 7 },
        Append { n: 4, bump: true },
        Purge { k: 10 },
        Commit { back: 2 },
        Vote,
        PowerLoss,
        AppendNoWait { n: 3 },
        PowerLoss,
        Reopen,
        Purge { k: 50 },
        Append { n: 2, bump: true },
        Reopen,
    ]);
}
