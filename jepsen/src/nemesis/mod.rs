//! The nemesis: faults applied to a running [`Cluster`], each with a recorded start and end in
//! the history (`f = fault`, `phase = start | end`), on a seeded random schedule.
//!
//! * [`kill`]: `kill -9` then restart;
//! * [`pause`]: SIGSTOP then SIGCONT;
//! * [`partition`]: packet drops between nodes (nftables / iptables in the nodes' namespaces);
//! * [`net`]: delay, jitter, reordering (tc netem), a slow link (tc tbf) and loss (nftables);
//! * [`disk`]: power cuts that drop un-fsynced writes (optionally tearing the final one), and
//!   bit flips or truncation in a stopped node's segment file.
//! * [`membership`]: leadership transfer, or a node removed, wiped and replaced by a new id.
//!
//! Targets are chosen per fault: one node, the leader, a minority, a majority or all nodes.
//! The leader is whatever the caller's leader probe says; without one, leader-targeted faults
//! fail (and are recorded as failed), they never silently hit another node.
//!
//! A fault whose start fails is recorded `fail` and undone as far as possible; a run holding
//! one is never reported valid by the checker. This module knows the cluster and the history
//! record format; it knows nothing of the workload or the checker.

pub mod disk;
pub mod kill;
pub mod membership;
pub mod net;
pub mod partition;
pub mod pause;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, ClusterError, NetMode};
use crate::history::Recorder;
use crate::history::{HistoryError, Op, OpF, OpType, Phase, Process};
use crate::netns::NetError;

pub use disk::DiskMode;
pub use net::NetFault;
pub use partition::{Firewall, Grudge};

/// Errors applying or undoing a fault.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The fault cannot run in this setup.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The leader was asked for but is not known.
    #[error("the leader is not known")]
    NoLeader,
    /// A disk fault could not be applied or its node did not come back as expected.
    #[error("disk: {0}")]
    Disk(String),
    /// Nodes refused to start after disk damage (as they must when the damage reaches their
    /// commit point) and stay down until an operator replaces them.
    #[error("{} refused to start and {} left down until replaced (remove from the group, wipe, add back under a new id): {reasons}", nodes.join(", "), if nodes.len() == 1 { "is" } else { "are" })]
    LeftDown { nodes: Vec<String>, reasons: String },
}

/// A small seeded generator (SplitMix64): the same seed gives the same schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform duration in `[lo, hi]`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis();
        let extra = self.below(u64::try_from(span).unwrap_or(u64::MAX).saturating_add(1));
        lo + Duration::from_millis(extra)
    }

    /// `k` distinct indices out of `0..n`, in random order.
    pub fn choose(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = usize::try_from(self.below(i as u64 + 1)).unwrap_or(0);
            all.swap(i, j);
        }
        all.truncate(k.min(n));
        all
    }
}

/// Which nodes a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    One,
    Leader,
    /// `(n-1)/2` nodes: the group keeps a quorum.
    Minority,
    /// `n/2+1` nodes: the group loses its quorum.
    Majority,
    All,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "one" => Ok(Target::One),
            "leader" => Ok(Target::Leader),
            "minority" => Ok(Target::Minority),
            "majority" => Ok(Target::Majority),
            "all" => Ok(Target::All),
            other => Err(format!(
                "unknown target {other:?} (known: one, leader, minority, majority, all)"
            )),
        }
    }
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::One,
        Target::Leader,
        Target::Minority,
        Target::Majority,
        Target::All,
    ];

    /// Node indices for this target among `n` nodes.
    pub fn resolve(
        self,
        n: usize,
        leader: Option<usize>,
        rng: &mut Rng,
    ) -> Result<Vec<usize>, NemesisError> {
        Ok(match self {
            Target::One => rng.choose(n, 1),
            Target::Leader => vec![leader.ok_or(NemesisError::NoLeader)?],
            Target::Minority => rng.choose(n, n.saturating_sub(1) / 2),
            Target::Majority => rng.choose(n, n / 2 + 1),
            Target::All => (0..n).collect(),
        })
    }
}

/// The kinds of fault, as named on the command line and in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Kill,
    Pause,
    Partition,
    Net,
    Disk,
    Membership,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Net => "net",
            FaultKind::Disk => "disk",
            FaultKind::Membership => "membership",
        }
    }

    /// Whether the fault needs network namespaces.
    pub fn needs_namespaces(self) -> bool {
        matches!(self, FaultKind::Partition | FaultKind::Net)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "kill" => Ok(FaultKind::Kill),
            "pause" => Ok(FaultKind::Pause),
            "partition" => Ok(FaultKind::Partition),
            "net" => Ok(FaultKind::Net),
            "disk" => Ok(FaultKind::Disk),
            "membership" => Ok(FaultKind::Membership),
            other => Err(format!(
                "unknown nemesis {other:?} (known: kill, pause, partition, net, membership, disk)"
            )),
        }
    }
}

/// A fault in effect: what to undo at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    Killed(Vec<usize>),
    Paused(Vec<usize>),
    Partitioned(Grudge),
    Degraded(Vec<usize>),
    /// A disk fault: its nodes are down until the end restarts them.
    Disk(DiskMode, Vec<usize>),
    Membership(membership::Change),
}

/// Finds the leader's node index of a group (by its position in the nemesis's groups), if
/// known.
pub type LeaderProbe<'a> = Box<dyn FnMut(&Cluster, usize) -> Option<usize> + 'a>;

/// An applied fault and its target names, or the error (already recorded `fail`) and the
/// target names.
pub type StartResult = Result<(Active, Vec<String>), (NemesisError, Vec<String>)>;

/// Applies faults to a cluster and records each start and end.
pub struct Nemesis<'a> {
    cluster: &'a mut Cluster,
    recorder: &'a Recorder,
    rng: Rng,
    firewall: Option<Firewall>,
    leader: LeaderProbe<'a>,
    net_fault: NetFault,
    /// Whether the kernel has netem (probed at the first `net` fault).
    netem: Option<bool>,
    /// Whether the kernel has the tbf qdisc (probed once, when first needed).
    tbf: Option<bool>,
    /// Whether NFQUEUE works for the userspace scheduler (probed once, when netem is missing).
    nfqueue: Option<bool>,
    /// Seeds of the userspace scheduler, apart from the schedule's generator.
    net_rng: Rng,
    /// Cluster indices the faults may hit, per broker group (never the nameserver). Each
    /// fault picks one group and its targets among that group's members.
    groups: Vec<Vec<usize>>,
    /// Target kinds kill, pause and net choose from (never empty).
    targets: Vec<Target>,
    /// Disk faults to choose from (never empty).
    disk_modes: Vec<DiskMode>,
    /// Whether the nodes run a `raftmq` built with the `failpoints` feature (power cuts).
    failpoints: bool,
    /// Outcome text of the last disk action (start or end), taken by the schedule.
    disk_outcome: Option<String>,
    /// Nodes whose files the running disk fault edited, with what was done.
    damaged: std::collections::BTreeMap<usize, String>,
    /// Nodes that refused to start after disk damage and were left down.
    left_down: Vec<usize>,
}

/// The result of one scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    pub kind: FaultKind,
    pub targets: Vec<String>,
    /// Error text if the start failed (then nothing stays applied).
    pub start_error: Option<String>,
    /// Error text if the end (heal, restart, resume) failed.
    pub end_error: Option<String>,
    /// What exactly was applied, when the kind alone does not say (the `net` degradation).
    pub detail: Option<String>,
}

impl<'a> Nemesis<'a> {
    /// A nemesis over `cluster` recording to `recorder`, with its own seeded generator. Leader
    /// targets fail until [`Nemesis::with_leader`] gives a probe.
    pub fn new(cluster: &'a mut Cluster, recorder: &'a Recorder, seed: u64) -> Self {
        let firewall = match cluster.mode() {
            NetMode::Namespaces => Firewall::detect().ok(),
            NetMode::Loopback => None,
        };
        let members = (0..cluster.len()).collect();
        Nemesis {
            targets: Target::ALL.to_vec(),
            disk_modes: DiskMode::ALL.to_vec(),
            failpoints: false,
            disk_outcome: None,
            damaged: std::collections::BTreeMap::new(),
            left_down: Vec::new(),
            netem: None,
            tbf: None,
            nfqueue: None,
            net_rng: Rng::new(seed ^ 0x6e65_7471),
            groups: vec![members],
            cluster,
            recorder,
            rng: Rng::new(seed),
            firewall,
            leader: Box::new(|_, _| None),
            net_fault: NetFault {
                delay_ms: 100,
                jitter_ms: 50,
                ..NetFault::default()
            },
        }
    }

    /// Sets how the leader is found (for example by asking the nodes for their role).
    pub fn with_leader(mut self, mut probe: impl FnMut(&Cluster) -> Option<usize> + 'a) -> Self {
        self.leader = Box::new(move |c, _| probe(c));
        self
    }

    /// Sets how the leader of group `g` (a position in [`Self::with_groups`]) is found.
    pub fn with_group_leader(
        mut self,
        probe: impl FnMut(&Cluster, usize) -> Option<usize> + 'a,
    ) -> Self {
        self.leader = Box::new(probe);
        self
    }

    /// Restricts faults to these cluster indices (default: every node). Targets such as
    /// "minority" are computed over this set.
    pub fn with_members(mut self, members: Vec<usize>) -> Self {
        self.groups = vec![members];
        self
    }

    /// Several broker groups (cluster indices of each group's members): every fault first
    /// picks a group at random, then its targets among that group's members only. Empty
    /// groups are dropped; with one group this is [`Self::with_members`].
    pub fn with_groups(mut self, groups: Vec<Vec<usize>>) -> Self {
        let groups: Vec<Vec<usize>> = groups.into_iter().filter(|g| !g.is_empty()).collect();
        if !groups.is_empty() {
            self.groups = groups;
        }
        self
    }

    /// Restricts the targets kill, pause and net choose from (an empty list keeps all).
    pub fn with_targets(mut self, targets: Vec<Target>) -> Self {
        if !targets.is_empty() {
            self.targets = targets;
        }
        self
    }

    /// Sets the disk faults to choose from (an empty list keeps all) and whether the nodes'
    /// binary has the `failpoints` feature; without it power cuts are recorded as failed.
    pub fn with_disk(mut self, modes: Vec<DiskMode>, failpoints: bool) -> Self {
        if !modes.is_empty() {
            self.disk_modes = modes;
        }
        self.failpoints = failpoints;
        self
    }

    /// Sets the link degradation the `net` fault applies.
    pub fn with_net_fault(mut self, fault: NetFault) -> Self {
        self.net_fault = fault;
        self
    }

    pub fn cluster(&mut self) -> &mut Cluster {
        self.cluster
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn names(&self, idx: &[usize]) -> Vec<String> {
        idx.iter()
            .filter_map(|&i| self.cluster.node(i).ok().map(|n| n.name.clone()))
            .collect()
    }

    fn record(
        &self,
        kind: OpType,
        fault: FaultKind,
        phase: Phase,
        targets: &[String],
        error: Option<String>,
    ) -> Result<(), NemesisError> {
        self.record_with(kind, fault, phase, targets, error, None)
    }

    fn record_with(
        &self,
        kind: OpType,
        fault: FaultKind,
        phase: Phase,
        targets: &[String],
        error: Option<String>,
        detail: Option<String>,
    ) -> Result<(), NemesisError> {
        let mut op = Op::new(0, Process::Named("nemesis".into()), kind, OpF::Fault);
        op.fault = Some(fault.name().to_owned());
        op.phase = Some(phase);
        op.targets = Some(targets.to_vec());
        op.error = error;
        op.detail = detail;
        self.recorder.record(op)?;
        Ok(())
    }

    /// Picks targets for `kind` at random (partition: isolate one, split or bridge) and
    /// applies it, recording the start. Returns the active fault and the target names, or the
    /// error recorded as `fail`.
    pub fn start(&mut self, kind: FaultKind) -> StartResult {
        // One group: no draw, so single-group schedules stay what they were for a seed.
        let group = match self.groups.len() {
            0 | 1 => 0,
            n => usize::try_from(self.rng.below(n as u64)).unwrap_or(0),
        };
        let members = self.groups.get(group).cloned().unwrap_or_default();
        let n = members.len();
        let leader_index = (self.leader)(self.cluster, group);
        // The leader as a position among the members.
        let leader = leader_index.and_then(|l| members.iter().position(|&m| m == l));
        match kind {
            FaultKind::Kill | FaultKind::Pause | FaultKind::Net => {
                let pick = self.rng.below(self.targets.len() as u64);
                let target = self.targets[usize::try_from(pick).unwrap_or(0)];
                let target = if kind == FaultKind::Net && target == Target::All {
                    Target::Minority
                } else {
                    target
                };
                let idx = match target.resolve(n, leader, &mut self.rng) {
                    Ok(pos) => pos.into_iter().map(|p| members[p]).collect::<Vec<_>>(),
                    Err(e) => {
                        let t = vec![format!("{target:?}").to_lowercase()];
                        return self.fail_start(kind, t, e);
                    }
                };
                self.start_on(kind, &idx)
            }
            FaultKind::Partition => {
                let grudge = match self.rng.below(3) {
                    0 => {
                        let one = leader.unwrap_or_else(|| {
                            usize::try_from(self.rng.below(n as u64)).unwrap_or(0)
                        });
                        partition::isolate(n, one)
                    }
                    1 => partition::split(n, &mut self.rng).1,
                    _ => partition::bridge(n, &mut self.rng),
                };
                let grudge: Grudge = grudge
                    .into_iter()
                    .map(|(a, peers)| (members[a], peers.into_iter().map(|p| members[p]).collect()))
                    .collect();
                self.start_partition(grudge)
            }
            FaultKind::Disk => {
                let pick = self.rng.below(self.disk_modes.len() as u64);
                let mode = self.disk_modes[usize::try_from(pick).unwrap_or(0)];
                // Damage to files goes to a minority (the group keeps a quorum of intact
                // replicas); power cuts pick their targets like kill.
                let target = if mode == DiskMode::Corrupt {
                    Target::Minority
                } else {
                    let pick = self.rng.below(self.targets.len() as u64);
                    self.targets[usize::try_from(pick).unwrap_or(0)]
                };
                let idx = match target.resolve(n, leader, &mut self.rng) {
                    Ok(pos) if !pos.is_empty() => {
                        pos.into_iter().map(|p| members[p]).collect::<Vec<_>>()
                    }
                    Ok(_) => {
                        let t = vec![format!("{target:?}").to_lowercase()];
                        let e = NemesisError::Unsupported(format!(
                            "disk {mode}: no {target:?} among the {n} members still up \
                             (members left down after disk damage are out of the group's faults)"
                        ));
                        return self.fail_start(kind, t, e);
                    }
                    Err(e) => {
                        let t = vec![format!("{target:?}").to_lowercase()];
                        return self.fail_start(kind, t, e);
                    }
                };
                self.start_disk(mode, &idx)
            }
            FaultKind::Membership => self.start_membership(),
        }
    }

    /// Applies a membership change (transfer or removal, chosen at random), recording its
    /// start.
    pub fn start_membership(&mut self) -> StartResult {
        let kind = FaultKind::Membership;
        if let Err(e) = self.record(OpType::Invoke, kind, Phase::Start, &[], None) {
            return Err((e, Vec::new()));
        }
        match membership::start(self.cluster, &mut self.rng) {
            Ok((change, targets)) => {
                match self.record(OpType::Ok, kind, Phase::Start, &targets, None) {
                    Ok(()) => Ok((Active::Membership(change), targets)),
                    Err(e) => Err((e, targets)),
                }
            }
            Err((e, targets)) => {
                let _ = self.record(
                    OpType::Fail,
                    kind,
                    Phase::Start,
                    &targets,
                    Some(e.to_string()),
                );
                Err((e, targets))
            }
        }
    }

    /// Applies a disk fault to the given nodes, recording its start with what it did.
    pub fn start_disk(&mut self, mode: DiskMode, idx: &[usize]) -> StartResult {
        let kind = FaultKind::Disk;
        let targets = self.names(idx);
        let desc = format!("{mode}");
        if let Err(e) = self.record_with(
            OpType::Invoke,
            kind,
            Phase::Start,
            &targets,
            None,
            Some(desc),
        ) {
            return Err((e, targets));
        }
        let res = if mode.needs_failpoints() && !self.failpoints {
            Err(NemesisError::Unsupported(format!(
                "disk {mode} needs a raftmq binary built with the failpoints feature"
            )))
        } else {
            match mode {
                DiskMode::PowerCut => disk::power_cut(self.cluster, idx, false),
                DiskMode::Torn => disk::power_cut(self.cluster, idx, true),
                DiskMode::Corrupt => {
                    self.damaged.clear();
                    disk::corrupt(self.cluster, idx, &mut self.rng, &mut self.damaged)
                }
            }
        };
        let active = Active::Disk(mode, idx.to_vec());
        match res {
            Ok(outcomes) => {
                let detail = format!("{mode}: {}", outcomes.join("; "));
                self.disk_outcome = Some(detail.clone());
                match self.record_with(OpType::Ok, kind, Phase::Start, &targets, None, Some(detail))
                {
                    Ok(()) => Ok((active, targets)),
                    Err(e) => Err((e, targets)),
                }
            }
            Err(e) => {
                let text = format!("{mode}: {e}");
                let res = self.finish_start(kind, targets, Err(e), active);
                self.disk_outcome = Some(text);
                res
            }
        }
    }

    /// Names of the nodes left down because they refused to start after disk damage (they
    /// await replacement: remove from the group, wipe, add back under a new id).
    pub fn left_down(&self) -> Vec<String> {
        self.names(&self.left_down)
    }

    /// Outcome text of the last disk action, if not taken yet.
    pub fn take_disk_outcome(&mut self) -> Option<String> {
        self.disk_outcome.take()
    }

    /// The `net` degradation actually applied: the configured one; when it needs netem and
    /// the kernel has none, the same delay, jitter, reordering and loss through the harness's
    /// userspace scheduler (NFQUEUE); without that either, a slow link (tbf: 2 Mbit/s,
    /// queueing delay up to the delay plus jitter) with at least 10% packet loss (nftables);
    /// or loss only (at least 30%) when even tbf is missing.
    pub fn effective_net_fault(&mut self) -> NetFault {
        let f = self.net_fault;
        if f.delay_ms == 0 && f.jitter_ms == 0 && f.reorder_pct == 0 {
            return f;
        }
        let netem = *self
            .netem
            .get_or_insert_with(|| net::netem_available(self.cluster));
        if netem {
            return f;
        }
        let nfqueue = *self
            .nfqueue
            .get_or_insert_with(|| net::nfqueue_available(self.cluster));
        if nfqueue {
            return NetFault {
                nfqueue: true,
                seed: self.net_rng.next_u64(),
                ..f
            };
        }
        let tbf = *self
            .tbf
            .get_or_insert_with(|| net::tbf_available(self.cluster));
        if tbf {
            NetFault {
                rate_kbit: 2_000,
                queue_ms: (f.delay_ms + f.jitter_ms).max(50),
                loss_pct: f.loss_pct.max(10),
                ..NetFault::default()
            }
        } else {
            NetFault {
                loss_pct: f.loss_pct.max(30),
                ..NetFault::default()
            }
        }
    }

    fn fail_start<T>(
        &mut self,
        kind: FaultKind,
        targets: Vec<String>,
        e: NemesisError,
    ) -> Result<T, (NemesisError, Vec<String>)> {
        let _ = self.record(OpType::Invoke, kind, Phase::Start, &targets, None);
        let _ = self.record(
            OpType::Fail,
            kind,
            Phase::Start,
            &targets,
            Some(e.to_string()),
        );
        Err((e, targets))
    }

    /// Applies a kill, pause or net fault to the given nodes, recording its start.
    pub fn start_on(&mut self, kind: FaultKind, idx: &[usize]) -> StartResult {
        let targets = self.names(idx);
        if let Err(e) = self.record(OpType::Invoke, kind, Phase::Start, &targets, None) {
            return Err((e, targets));
        }
        let net_fault = if kind == FaultKind::Net {
            self.effective_net_fault()
        } else {
            self.net_fault
        };
        let (res, active) = match kind {
            FaultKind::Kill => (kill::kill(self.cluster, idx), Active::Killed(idx.to_vec())),
            FaultKind::Pause => (
                pause::pause(self.cluster, idx),
                Active::Paused(idx.to_vec()),
            ),
            FaultKind::Net => (
                net::apply(self.cluster, idx, &net_fault),
                Active::Degraded(idx.to_vec()),
            ),
            FaultKind::Partition => (
                Err(NemesisError::Unsupported(
                    "use start_partition for partitions".into(),
                )),
                Active::Partitioned(Grudge::new()),
            ),
            FaultKind::Disk => (
                Err(NemesisError::Unsupported(
                    "use start_disk for disk faults".into(),
                )),
                Active::Disk(DiskMode::PowerCut, Vec::new()),
            ),
            FaultKind::Membership => (
                Err(NemesisError::Unsupported(
                    "use start_membership for membership changes".into(),
                )),
                Active::Degraded(Vec::new()),
            ),
        };
        self.finish_start(kind, targets, res, active)
    }

    /// Installs a partition, recording its start; targets are `"a -/- b,c"` descriptions.
    pub fn start_partition(&mut self, grudge: Grudge) -> StartResult {
        let targets = partition::describe(self.cluster, &grudge);
        if let Err(e) = self.record(
            OpType::Invoke,
            FaultKind::Partition,
            Phase::Start,
            &targets,
            None,
        ) {
            return Err((e, targets));
        }
        let res = match self.firewall {
            Some(fw) => partition::partition(self.cluster, &grudge, fw),
            None => Err(NemesisError::Unsupported(match self.cluster.mode() {
                NetMode::Loopback => "partition needs network namespaces (loopback mode)".into(),
                NetMode::Namespaces => "partition needs nft or iptables".into(),
            })),
        };
        self.finish_start(
            FaultKind::Partition,
            targets,
            res,
            Active::Partitioned(grudge),
        )
    }

    fn finish_start(
        &mut self,
        kind: FaultKind,
        targets: Vec<String>,
        res: Result<(), NemesisError>,
        active: Active,
    ) -> StartResult {
        match res {
            Ok(()) => match self.record(OpType::Ok, kind, Phase::Start, &targets, None) {
                Ok(()) => Ok((active, targets)),
                Err(e) => Err((e, targets)),
            },
            Err(e) => {
                // Undo whatever part was applied; the window is recorded as failed.
                let _ = self.undo(&active);
                let _ = self.record(
                    OpType::Fail,
                    kind,
                    Phase::Start,
                    &targets,
                    Some(e.to_string()),
                );
                Err((e, targets))
            }
        }
    }

    fn undo(&mut self, active: &Active) -> Result<(), NemesisError> {
        match active {
            Active::Killed(idx) => kill::restart(self.cluster, idx),
            Active::Paused(idx) => pause::resume(self.cluster, idx),
            Active::Degraded(idx) => net::clear(self.cluster, idx),
            Active::Membership(change) => membership::end(self.cluster, change),
            Active::Partitioned(_) => match self.firewall {
                Some(fw) => partition::heal(self.cluster, fw),
                None => Ok(()),
            },
            Active::Disk(mode, idx) => {
                let damaged = std::mem::take(&mut self.damaged);
                let r = disk::restart(self.cluster, idx, &damaged)?;
                let mut text = format!("{mode} end: {}", r.outcomes.join("; "));
                // Neither cut nor refused: a replica now holds damage nobody noticed.
                let undetected = r
                    .undetected
                    .iter()
                    .map(|(i, d)| {
                        let n = self.names(&[*i]).join("");
                        format!("{n} restarted without cutting or refusing the damage ({d})")
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                if !undetected.is_empty() {
                    text.push_str(&format!("; {undetected}"));
                }
                for d in &r.repaired {
                    text.push_str(&format!("; {d}"));
                }
                let mut err = None;
                if !r.refused.is_empty() {
                    // Refusing is right when the damage reaches the commit point; the node
                    // stays down and out of later faults until it is replaced.
                    let nodes = self.names(&r.refused.iter().map(|(i, _)| *i).collect::<Vec<_>>());
                    let reasons = r
                        .refused
                        .iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.left_down.extend(r.refused.iter().map(|(i, _)| *i));
                    for g in &mut self.groups {
                        g.retain(|m| !r.refused.iter().any(|(i, _)| i == m));
                    }
                    text.push_str(&format!("; refused to start: {reasons}"));
                    err = Some(NemesisError::LeftDown { nodes, reasons });
                }
                if !undetected.is_empty() {
                    err = Some(NemesisError::Disk(match err {
                        Some(e) => format!("damage not detected at restart: {undetected}; {e}"),
                        None => format!("damage not detected at restart: {undetected}"),
                    }));
                }
                self.disk_outcome = Some(text);
                match err {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
        }
    }

    /// Ends an active fault (restart, resume, heal, clear), recording the end: `ok` if undone,
    /// `info` with the error otherwise (the window then counts as never healed). The fault is
    /// undone even when the history cannot be written, so the cluster never stays broken.
    pub fn end(
        &mut self,
        kind: FaultKind,
        active: &Active,
        targets: &[String],
    ) -> Result<(), NemesisError> {
        if let Err(e) = self.record(OpType::Invoke, kind, Phase::End, targets, None) {
            let _ = self.undo(active);
            return Err(e);
        }
        let res = self.undo(active);
        let detail = if kind == FaultKind::Disk {
            self.disk_outcome.clone()
        } else {
            None
        };
        match res {
            Ok(()) => {
                self.record_with(OpType::Ok, kind, Phase::End, targets, None, detail)?;
                Ok(())
            }
            Err(e) => {
                self.record_with(
                    OpType::Info,
                    kind,
                    Phase::End,
                    targets,
                    Some(e.to_string()),
                    detail,
                )?;
                Err(e)
            }
        }
    }

    /// Runs faults from `kinds` one at a time until `deadline` or until `stop` returns true:
    /// a quiet gap of `gap.0..=gap.1`, then a fault held for `hold.0..=hold.1`, then its end.
    /// Every fault in effect is ended before returning. `progress` is told of each fault.
    pub fn run_schedule(
        &mut self,
        kinds: &[FaultKind],
        deadline: Instant,
        gap: (Duration, Duration),
        hold: (Duration, Duration),
        mut stop: impl FnMut() -> bool,
        mut progress: impl FnMut(&FaultRecord),
    ) -> Vec<FaultRecord> {
        let mut log = Vec::new();
        if kinds.is_empty() {
            return log;
        }
        let bounded_sleep = |until: Instant, stop: &mut dyn FnMut() -> bool| {
            while Instant::now() < until && !stop() {
                std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
            }
        };
        loop {
            let quiet = Instant::now() + self.rng.duration(gap.0, gap.1);
            bounded_sleep(quiet.min(deadline), &mut stop);
            if Instant::now() >= deadline || stop() {
                break;
            }
            let kind = kinds[usize::try_from(self.rng.below(kinds.len() as u64)).unwrap_or(0)];
            let held = self.rng.duration(hold.0, hold.1);
            let mut rec = FaultRecord {
                kind,
                targets: Vec::new(),
                start_error: None,
                end_error: None,
                detail: None,
            };
            if kind == FaultKind::Net {
                let f = self.effective_net_fault();
                let mut d = f.describe();
                if f.nfqueue {
                    d.push_str(" (no netem in this kernel: the harness's packet scheduler)");
                } else if f != self.net_fault {
                    d.push_str(if f.rate_kbit > 0 {
                        " (no netem in this kernel: a slow link and loss instead of fixed delay)"
                    } else {
                        " (no netem or tbf in this kernel: loss instead of delay)"
                    });
                }
                rec.detail = Some(d);
            }
            self.disk_outcome = None;
            match self.start(kind) {
                Ok((active, targets)) => {
                    rec.targets.clone_from(&targets);
                    let started = self.disk_outcome.take();
                    let until = (Instant::now() + held).min(deadline);
                    bounded_sleep(until, &mut stop);
                    if let Err(e) = self.end(kind, &active, &targets) {
                        rec.end_error = Some(e.to_string());
                    }
                    let ended = self.disk_outcome.take();
                    let parts: Vec<String> = started.into_iter().chain(ended).collect();
                    if !parts.is_empty() {
                        rec.detail = Some(parts.join(" | "));
                    }
                    if let Active::Membership(change) = &active {
                        rec.detail = Some(membership::describe(self.cluster, change, true));
                    }
                }
                Err((e, targets)) => {
                    rec.targets = targets;
                    rec.start_error = Some(e.to_string());
                    if let Some(d) = self.disk_outcome.take() {
                        rec.detail = Some(d);
                    }
                }
            }
            progress(&rec);
            log.push(rec);
        }
        log
    }
}
