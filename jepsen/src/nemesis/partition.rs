//! `partition`: real packet drops between nodes, installed with nftables (or iptables when
//! `nft` is missing) inside each node's own network namespace, and healing.
//!
//! A partition is a [`Grudge`]: for each node, the peers whose packets it drops, both
//! incoming (source address) and outgoing (destination address). Established connections are
//! cut as well, since nothing exempts them. The harness's clients (on the hub) are never
//! dropped: a partition separates nodes from each other, not from every client.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Command;

use super::{NemesisError, Rng};
use crate::cluster::{Cluster, NetMode};
use crate::netns::{self, NetError};

/// nftables table the partition rules live in (inside node namespaces only).
pub const NFT_TABLE: &str = "raftmq_jepsen_partition";

/// For each node, the peers whose traffic it drops.
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;

/// Which firewall front end installs the drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    Nft,
    Iptables,
}

impl Firewall {
    /// `nft` if installed, else `iptables`, else an error naming both.
    pub fn detect() -> Result<Firewall, NemesisError> {
        if crate::setup::has_program("nft") {
            Ok(Firewall::Nft)
        } else if crate::setup::has_program("iptables") {
            Ok(Firewall::Iptables)
        } else {
            Err(NemesisError::Unsupported(
                "partition needs nft or iptables (run `raftmq-jepsen setup`)".into(),
            ))
        }
    }
}

/// Splits nodes `0..n` into components that cannot reach each other.
pub fn components(n: usize, parts: &[BTreeSet<usize>]) -> Grudge {
    let mut g = Grudge::new();
    for part in parts {
        for &a in part {
            let others: BTreeSet<usize> = (0..n).filter(|b| !part.contains(b)).collect();
            g.insert(a, others);
        }
    }
    g
}

/// Node `node` cut off from all others.
pub fn isolate(n: usize, node: usize) -> Grudge {
    let one: BTreeSet<usize> = [node].into();
    let rest: BTreeSet<usize> = (0..n).filter(|&b| b != node).collect();
    components(n, &[one, rest])
}

/// A random minority (`(n-1)/2` nodes) against the majority.
pub fn split(n: usize, rng: &mut Rng) -> (BTreeSet<usize>, Grudge) {
    let minority: BTreeSet<usize> = rng
        .choose(n, (n.saturating_sub(1)) / 2)
        .into_iter()
        .collect();
    let majority: BTreeSet<usize> = (0..n).filter(|b| !minority.contains(b)).collect();
    let g = components(n, &[minority.clone(), majority]);
    (minority, g)
}

/// Jepsen's bridge: two halves that cannot see each other and one node (the bridge) that
/// sees both. With 3 nodes: `a` and `c` are cut, `b` talks to both.
pub fn bridge(n: usize, rng: &mut Rng) -> Grudge {
    let mut order = rng.choose(n, n);
    let Some(middle) = order.pop() else {
        return Grudge::new();
    };
    let half = order.len() / 2;
    let left: BTreeSet<usize> = order[..half].iter().copied().collect();
    let right: BTreeSet<usize> = order[half..].iter().copied().collect();
    let mut g = Grudge::new();
    for &a in &left {
        g.insert(a, right.clone());
    }
    for &b in &right {
        g.insert(b, left.clone());
    }
    g.insert(middle, BTreeSet::new());
    g
}

/// Describes a grudge for the history: `"n0 -/- n1,n2"` per node that drops someone.
pub fn describe(cluster: &Cluster, g: &Grudge) -> Vec<String> {
    let name = |i: usize| cluster.node(i).map(|n| n.name.clone()).unwrap_or_default();
    g.iter()
        .filter(|(_, peers)| !peers.is_empty())
        .map(|(&a, peers)| {
            let list: Vec<String> = peers.iter().map(|&p| name(p)).collect();
            format!("{} -/- {}", name(a), list.join(","))
        })
        .collect()
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<String, NetError> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]).args(args);
    netns::run(&mut c)
}

/// Installs `grudge` (after healing any earlier partition).
pub fn partition(cluster: &Cluster, grudge: &Grudge, fw: Firewall) -> Result<(), NemesisError> {
    if cluster.mode() != NetMode::Namespaces {
        return Err(NemesisError::Unsupported(
            "partition needs network namespaces (loopback mode)".into(),
        ));
    }
    heal(cluster, fw)?;
    for (&a, peers) in grudge {
        if peers.is_empty() {
            continue;
        }
        let node = cluster.node(a)?;
        let ns = node.netns().ok_or_else(|| {
            NemesisError::Unsupported(format!("node {} has no namespace", node.name))
        })?;
        let addrs: Vec<IpAddr> = peers
            .iter()
            .map(|&p| cluster.node(p).map(|n| n.ip))
            .collect::<Result<_, _>>()?;
        match fw {
            Firewall::Nft => {
                let set = format!(
                    "{{ {} }}",
                    addrs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                in_ns(ns, "nft", &["add", "table", "inet", NFT_TABLE])?;
                for (chain, dir) in [("input", "saddr"), ("output", "daddr")] {
                    in_ns(
                        ns,
                        "nft",
                        &[
                            "add",
                            "chain",
                            "inet",
                            NFT_TABLE,
                            chain,
                            &format!("{{ type filter hook {chain} priority 0; policy accept; }}"),
                        ],
                    )?;
                    in_ns(
                        ns,
                        "nft",
                        &[
                            "add", "rule", "inet", NFT_TABLE, chain, "ip", dir, &set, "drop",
                        ],
                    )?;
                }
            }
            Firewall::Iptables => {
                for addr in &addrs {
                    let a = addr.to_string();
                    in_ns(
                        ns,
                        "iptables",
                        &["-w", "-A", "INPUT", "-s", &a, "-j", "DROP"],
                    )?;
                    in_ns(
                        ns,
                        "iptables",
                        &["-w", "-A", "OUTPUT", "-d", &a, "-j", "DROP"],
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Removes every partition rule from every node.
pub fn heal(cluster: &Cluster, fw: Firewall) -> Result<(), NemesisError> {
    for node in cluster.nodes() {
        let Some(ns) = node.netns() else { continue };
        match fw {
            Firewall::Nft => {
                let tables = in_ns(ns, "nft", &["list", "tables"])?;
                if tables
                    .lines()
                    .any(|l| l.trim() == format!("table inet {NFT_TABLE}"))
                {
                    in_ns(ns, "nft", &["delete", "table", "inet", NFT_TABLE])?;
                }
            }
            Firewall::Iptables => {
                in_ns(ns, "iptables", &["-w", "-F", "INPUT"])?;
                in_ns(ns, "iptables", &["-w", "-F", "OUTPUT"])?;
            }
        }
    }
    Ok(())
}
