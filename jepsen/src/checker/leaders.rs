//! Raft roles as observed during the run: election safety and durable terms.
//!
//! Role observations (`f = role`) ask every node for its role and term. Two Raft facts must
//! hold in every observation, however stale:
//! * `split_brain`: at most one node is ever leader of a given term (election safety; two
//!   leaders of one term can both acknowledge writes);
//! * `term_regressions`: a node's term never goes down, across restarts included. The term and
//!   vote are persisted before they are used; a term that falls back after a crash means the
//!   node forgot a vote and could vote twice in one term.
//!
//! Terms are per broker group: with several groups (observations carry `group`), a leader of
//! term 3 in one group and a leader of term 3 in another are no split brain.
//!
//! Both fail the run. Nodes that did not answer (`down`) and roles without a term are skipped.
//! A node wiped and added back is a new Raft member and must be observed under a new name
//! (its new id), or its fresh term would count as a regression.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::{sample, CheckConfig, Index};
use crate::history::{OpF, OpType};

#[derive(Debug, Clone, Serialize)]
pub struct SplitBrainExample {
    /// Broker group (absent when the observations name none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub term: u64,
    /// The first leader seen for the term and the other one, with the lines that saw them.
    pub leaders: Vec<(String, usize)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TermRegressionExample {
    pub node: String,
    pub before: u64,
    pub after: u64,
    pub line: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LeadersReport {
    /// Successful role observations.
    pub observations: usize,
    /// Distinct (group, term) pairs in which some node was seen as leader.
    pub leader_terms: usize,
    /// Terms with more than one leader.
    pub split_brain: usize,
    /// Observations of a node reporting a lower term than it had reported before.
    pub term_regressions: usize,
    pub split_brain_examples: Vec<SplitBrainExample>,
    pub term_regression_examples: Vec<TermRegressionExample>,
}

impl LeadersReport {
    pub fn holds(&self) -> bool {
        self.split_brain == 0 && self.term_regressions == 0
    }
}

pub fn check(ix: &Index<'_>, config: &CheckConfig) -> LeadersReport {
    let h = ix.history;
    let mut rep = LeadersReport::default();
    let mut leader_of: HashMap<(Option<&str>, u64), (&str, usize)> = HashMap::new();
    let mut split_terms: HashSet<(Option<&str>, u64)> = HashSet::new();
    let mut last_term: HashMap<&str, u64> = HashMap::new();
    for (i, op) in h.ops().iter().enumerate() {
        if op.f != OpF::Role || op.kind != OpType::Ok {
            continue;
        }
        rep.observations += 1;
        let line = h.line(i);
        for n in op.nodes.iter().flatten() {
            let Some(term) = n.term else { continue };
            if n.role == "down" {
                continue;
            }
            if let Some(prev) = last_term.insert(&n.node, term) {
                if term < prev {
                    rep.term_regressions += 1;
                    sample(&mut rep.term_regression_examples, config.examples, || {
                        TermRegressionExample {
                            node: n.node.clone(),
                            before: prev,
                            after: term,
                            line,
                        }
                    });
                }
            }
            if n.role != "leader" {
                continue;
            }
            let key = (n.group.as_deref(), term);
            let (first, first_line) = *leader_of.entry(key).or_insert((&n.node, line));
            if first != n.node && split_terms.insert(key) {
                rep.split_brain += 1;
                sample(&mut rep.split_brain_examples, config.examples, || {
                    SplitBrainExample {
                        group: n.group.clone(),
                        term,
                        leaders: vec![(first.to_owned(), first_line), (n.node.clone(), line)],
                    }
                });
            }
        }
    }
    rep.leader_terms = leader_of.len();
    rep
}
