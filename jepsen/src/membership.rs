//! Membership control of the cluster's broker group: which cluster slots are members under
//! which Raft id, finding the leader, leadership transfer, and replacing a node (remove it from
//! the group, wipe it, bring a new node with a new id and an empty store into its slot, add it
//! as a learner, promote it).
//!
//! Every change goes through the brokers' group administration requests
//! ([`raftmq::admin::GroupAdmin`]), sent from the clients' namespace, exactly as an operator's
//! `raftmq admin` would. A replaced node never comes back under its old id: its slot keeps its
//! address and namespace but gets a new name `n<new id>`, a new data directory
//! `nodes/<new name>/data` and a new log `nodes/<new name>/node.log`; the old log stays.
//!
//! This module knows the cluster and the admin protocol; it knows nothing of the history, the
//! nemesis schedule or the checker.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use raftmq::admin::{GroupAdmin, GroupStatus};

use crate::cluster::{BrokerGroupSpec, Cluster, ClusterError};
use crate::netns;

/// One member of the group: its cluster slot, Raft id and Raft transport port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Cluster node index.
    pub index: usize,
    /// Raft id (`n<id>`, also the node's name).
    pub id: u64,
    /// Port of its Raft transport on the node's address.
    pub raft_port: u16,
}

/// The broker group a cluster runs: its `broker.conf` settings and members.
#[derive(Debug, Clone)]
pub struct GroupLayout {
    pub spec: BrokerGroupSpec,
    pub members: Vec<Member>,
    /// The next unused Raft id (ids are never reused).
    next_id: u64,
}

impl GroupLayout {
    /// A group whose members are cluster nodes `members[k]` with Raft id `k` and Raft port
    /// `raft_ports[k]` (the layout [`crate::cluster::broker_command`] writes).
    pub fn new(spec: BrokerGroupSpec, members: &[usize], raft_ports: &[u16]) -> Self {
        let members: Vec<Member> = members
            .iter()
            .zip(raft_ports)
            .enumerate()
            .map(|(k, (&index, &raft_port))| Member {
                index,
                id: k as u64,
                raft_port,
            })
            .collect();
        GroupLayout {
            next_id: members.len() as u64,
            spec,
            members,
        }
    }

    /// The member in cluster slot `index`.
    pub fn member(&self, index: usize) -> Option<&Member> {
        self.members.iter().find(|m| m.index == index)
    }
}

/// A node taken out of the group, its process killed and its data wiped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Cluster node index (the slot stays).
    pub index: usize,
    pub old_name: String,
    pub old_id: u64,
}

/// A node replaced by a new one in the same slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub index: usize,
    pub old_name: String,
    pub old_id: u64,
    pub new_name: String,
    pub new_id: u64,
}

/// How long one administration step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn admin_err(step: impl Into<String>, reason: impl ToString) -> ClusterError {
    ClusterError::Admin {
        step: step.into(),
        reason: reason.to_string(),
    }
}

/// Runs `f`'s future on a fresh runtime in namespace `ns` (or here).
fn block_in<T: Send, F>(ns: Option<&str>, f: impl FnOnce() -> F + Send) -> Result<T, ClusterError>
where
    F: std::future::Future<Output = T>,
{
    let run = move || -> Result<T, ClusterError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| admin_err("runtime", e))?;
        Ok(rt.block_on(f()))
    };
    match ns {
        Some(ns) => netns::run_in_netns(ns, run)?,
        None => run(),
    }
}

impl Cluster {
    /// Declares a broker group the cluster runs (needed by the membership calls below); it
    /// replaces a declared group of the same name.
    pub fn set_group(&mut self, layout: GroupLayout) {
        self.groups.retain(|g| g.spec.name != layout.spec.name);
        self.groups.push(layout);
    }

    /// The first declared broker group's layout (the only one in a one-group run).
    pub fn group_layout(&self) -> Option<&GroupLayout> {
        self.groups.first()
    }

    /// Every declared broker group, in the order declared.
    pub fn group_layouts(&self) -> &[GroupLayout] {
        &self.groups
    }

    /// The layout of the group slot `i` is a member of.
    fn layout_of(&self, i: usize) -> Result<&GroupLayout, ClusterError> {
        self.groups
            .iter()
            .find(|g| g.member(i).is_some())
            .ok_or_else(|| admin_err("layout", format!("slot {i} is in no declared broker group")))
    }

    /// Broker addresses of the running members of `layout`, with their slots.
    fn member_addrs(&self, layout: &GroupLayout) -> Result<Vec<(usize, String)>, ClusterError> {
        let mut out = Vec::new();
        for m in &layout.members {
            let n = self.node(m.index)?;
            if n.is_running() && !n.is_paused() {
                out.push((m.index, n.addr().to_string()));
            }
        }
        Ok(out)
    }

    /// The first group's leader (see [`Cluster::group_leader_of`]).
    pub fn group_leader(&self, timeout: Duration) -> Result<(usize, GroupStatus), ClusterError> {
        let first = self
            .groups
            .first()
            .and_then(|g| g.members.first())
            .ok_or_else(|| admin_err("layout", "the cluster runs no declared broker group"))?;
        self.group_leader_of(first.index, timeout)
    }

    /// The leader (slot and its status) of the group slot `member` belongs to, asking every
    /// running member, for up to `timeout` (an election may be under way).
    pub fn group_leader_of(
        &self,
        member: usize,
        timeout: Duration,
    ) -> Result<(usize, GroupStatus), ClusterError> {
        let addrs = self.member_addrs(self.layout_of(member)?)?;
        let ns = self.client_netns().map(str::to_owned);
        let deadline = Instant::now() + timeout;
        loop {
            let a = addrs.clone();
            let found = block_in(ns.as_deref(), move || async move {
                for (i, addr) in a {
                    let admin = GroupAdmin::new(addr).with_status_timeout(Duration::from_secs(2));
                    if let Ok(s) = admin.status().await {
                        if s.is_leader() {
                            return Some((i, s));
                        }
                    }
                }
                None
            })?;
            if let Some(f) = found {
                return Ok(f);
            }
            if Instant::now() >= deadline {
                return Err(admin_err(
                    "find leader",
                    format!("no running member leads after {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs one admin call against the broker in slot `at`.
    fn admin_call<F, Fut>(&self, at: usize, step: &str, call: F) -> Result<(), ClusterError>
    where
        F: FnOnce(GroupAdmin) -> Fut + Send,
        Fut: std::future::Future<Output = Result<(), raftmq::admin::AdminError>>,
    {
        let addr = self.node(at)?.addr().to_string();
        let ns = self.client_netns().map(str::to_owned);
        let res = block_in(ns.as_deref(), move || {
            call(GroupAdmin::new(addr).with_change_timeout(STEP_TIMEOUT))
        })?;
        res.map_err(|e| admin_err(step, e))
    }

    /// Hands leadership to the member in slot `to` (no-op if it leads); returns the slot
    /// that led before.
    pub fn transfer_leadership(&mut self, to: usize) -> Result<usize, ClusterError> {
        let target = self
            .layout_of(to)?
            .member(to)
            .ok_or_else(|| admin_err("transfer", format!("slot {to} is not a member")))?
            .id;
        let (leader, _) = self.group_leader_of(to, Duration::from_secs(10))?;
        if leader != to {
            self.admin_call(
                leader,
                &format!("transfer leadership to n{target}"),
                |a| async move { a.transfer_leader(target).await },
            )?;
        }
        Ok(leader)
    }

    /// Takes the member in slot `i` out of the group (leadership moves away from it first),
    /// kills its process and deletes its data directory. The slot stays empty until
    /// [`Cluster::add_replacement`].
    pub fn remove_member(&mut self, i: usize) -> Result<Removed, ClusterError> {
        let layout = self.layout_of(i)?;
        let me = layout
            .member(i)
            .cloned()
            .ok_or_else(|| admin_err("remove", format!("slot {i} is not a member")))?;
        let others: Vec<usize> = layout
            .members
            .iter()
            .map(|m| m.index)
            .filter(|&x| x != i)
            .collect();
        let (mut leader, _) = self.group_leader_of(i, Duration::from_secs(10))?;
        if leader == i {
            let to = others
                .iter()
                .copied()
                .find(|&o| self.node(o).is_ok_and(|n| n.is_running() && !n.is_paused()))
                .ok_or_else(|| admin_err("remove", "no other running member to lead"))?;
            self.transfer_leadership(to)?;
            leader = self.group_leader_of(i, Duration::from_secs(10))?.0;
            if leader == i {
                return Err(admin_err("remove", "leadership did not move away"));
            }
        }
        let id = me.id;
        self.admin_call(leader, &format!("remove n{id}"), |a| async move {
            a.remove_node(id).await
        })?;
        let node = self.node(i)?;
        let old_name = node.name.clone();
        let data_dir = node.data_dir.clone();
        if node.is_running() {
            self.kill(i)?;
        }
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).map_err(|source| ClusterError::Io {
                path: data_dir.clone(),
                source,
            })?;
        }
        tracing::info!(node = %old_name, "removed from the group and wiped");
        Ok(Removed {
            index: i,
            old_name,
            old_id: id,
        })
    }

    /// Starts a new node (new Raft id, new name, empty store, `dLegerJoin=true`) in the slot
    /// of `removed`, adds it to the group as a learner (returns once it caught up) and
    /// promotes it to voter.
    pub fn add_replacement(&mut self, removed: &Removed) -> Result<Replaced, ClusterError> {
        let i = removed.index;
        let (new_id, raft_port, spec, peers) = {
            let layout = self
                .groups
                .iter_mut()
                .find(|g| g.member(i).is_some())
                .ok_or_else(|| admin_err("layout", format!("slot {i} is in no declared group")))?;
            let pos = layout
                .members
                .iter()
                .position(|m| m.index == i)
                .ok_or_else(|| admin_err("replace", format!("slot {i} is not a member")))?;
            if layout.members[pos].id != removed.old_id {
                return Err(admin_err(
                    "replace",
                    format!("slot {i} already holds n{}", layout.members[pos].id),
                ));
            }
            let new_id = layout.next_id;
            layout.next_id += 1;
            layout.members[pos].id = new_id;
            (
                new_id,
                layout.members[pos].raft_port,
                layout.spec.clone(),
                layout.members.clone(),
            )
        };
        let new_name = member_name(&removed.old_name, new_id);
        let root = self.config().dir.join("nodes").join(&new_name);
        self.node_mut(i)?.reincarnate(&new_name, &root)?;
        let args = join_command(self, &peers, i, new_id, &spec)?;
        self.set_command(i, args)?;
        self.start(i)?;
        let node = self.node(i)?;
        let raft_addr = format!("{}:{raft_port}", node.ip);
        let broker_addr = node.addr().to_string();
        let (leader, _) = self.group_leader_of(i, Duration::from_secs(10))?;
        self.admin_call(leader, &format!("add learner {new_name}"), |a| async move {
            a.add_learner(new_id, &raft_addr, Some(&broker_addr)).await
        })?;
        let (leader, _) = self.group_leader_of(i, Duration::from_secs(10))?;
        self.admin_call(leader, &format!("promote {new_name}"), |a| async move {
            a.promote(new_id).await
        })?;
        tracing::info!(old = %removed.old_name, new = %new_name, "node replaced");
        Ok(Replaced {
            index: i,
            old_name: removed.old_name.clone(),
            old_id: removed.old_id,
            new_name,
            new_id,
        })
    }

    /// Replaces the member in slot `old`: removes it from the group, wipes it, and brings a
    /// new node with a new Raft id and an empty store into the slot as a voter. Works whether
    /// the old node runs, is down, or refuses to start (a majority of the others must run).
    pub fn replace_node(&mut self, old: usize) -> Result<Replaced, ClusterError> {
        let removed = self.remove_member(old)?;
        self.add_replacement(&removed)
    }
}

/// The name of Raft id `id` in the group of the node named `like`: the same letters, the new
/// id (`n3` in a run with one group, `a3` or `b3` with several).
pub fn member_name(like: &str, id: u64) -> String {
    let prefix = like.trim_end_matches(|c: char| c.is_ascii_digit());
    let prefix = if prefix.is_empty() { "n" } else { prefix };
    format!("{prefix}{id}")
}

/// Writes `broker.conf` for a node joining the group as `n<id>` in slot `i` and returns the
/// arguments that run it.
fn join_command(
    cluster: &Cluster,
    members: &[Member],
    i: usize,
    id: u64,
    spec: &BrokerGroupSpec,
) -> Result<Vec<OsString>, ClusterError> {
    let mut peers = Vec::new();
    let mut brokers = Vec::new();
    for m in members {
        let n = cluster.node(m.index)?;
        peers.push(format!("n{}-{}:{}", m.id, n.ip, m.raft_port));
        brokers.push(format!("n{}-{}", m.id, n.addr()));
    }
    crate::cluster::write_broker_conf(cluster, i, spec, id, &peers, &brokers, true)
}
