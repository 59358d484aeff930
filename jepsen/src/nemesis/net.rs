//! `net`: degraded links on target nodes. Delay, jitter and reordering use the `netem` queueing
//! discipline (`tc qdisc ... netem`) on the node's interface; random loss uses an nftables
//! rule (`numgen random mod 100 < P drop`), which works even in kernels built without netem.
//! A slow link uses the token-bucket filter (`tc qdisc ... tbf rate R latency L`): what the
//! node sends beyond the rate waits in the queue for up to L (real queueing delay, growing with
//! the traffic), and is dropped past it. Kernels without netem usually still have tbf; there a
//! slow link stands in for fixed delay.
//! Where netem is missing, delay, jitter, reordering and loss can instead go through the
//! harness's own userspace scheduler ([`crate::netq`]): an iptables `NFQUEUE` rule on the
//! node's interface and a scheduler thread bound to that queue inside the node's namespace.
//! Everything is installed inside the nodes' own namespaces.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::NemesisError;
use crate::cluster::{Cluster, NetMode};
use crate::netns::{self, NetError, NODE_IF};
use crate::netq;

/// nftables table of the loss rules.
pub const NFT_TABLE: &str = "raftmq_jepsen_net";

/// The NFQUEUE queue number the userspace scheduler binds in each node's namespace (queues
/// are per namespace, so every node can use the same number).
pub const NFQUEUE_NUM: u16 = 7;

/// Running userspace schedulers, by namespace.
static SCHEDULERS: Mutex<BTreeMap<String, netq::Running>> = Mutex::new(BTreeMap::new());

/// One link degradation applied to every target's outgoing traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetFault {
    /// Added one-way delay in milliseconds (netem).
    pub delay_ms: u32,
    /// Delay variation in milliseconds (netem).
    pub jitter_ms: u32,
    /// Percentage of packets sent at once, ahead of delayed ones (netem `reorder`; needs a
    /// delay).
    pub reorder_pct: u8,
    /// Percentage of outgoing packets dropped (nftables).
    pub loss_pct: u8,
    /// Outgoing bandwidth limit in kbit/s (tbf); 0 for none. Packets wait up to
    /// `queue_ms` in the queue.
    pub rate_kbit: u32,
    /// Longest wait in the tbf queue in milliseconds (with `rate_kbit`).
    pub queue_ms: u32,
    /// Delay, jitter, reordering and loss by the harness's userspace scheduler (NFQUEUE)
    /// instead of netem and nftables.
    pub nfqueue: bool,
    /// Seed of the scheduler's per-packet choices (with `nfqueue`).
    pub seed: u64,
}

impl NetFault {
    /// Short text for the history, for example `delay=100ms±50ms loss=10%`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.delay_ms > 0 {
            parts.push(format!("delay={}ms±{}ms", self.delay_ms, self.jitter_ms));
        }
        if self.reorder_pct > 0 {
            parts.push(format!("reorder={}%", self.reorder_pct));
        }
        if self.loss_pct > 0 {
            parts.push(format!("loss={}%", self.loss_pct));
        }
        if self.rate_kbit > 0 {
            parts.push(format!(
                "rate={}kbit queue<={}ms",
                self.rate_kbit, self.queue_ms
            ));
        }
        if self.nfqueue {
            parts.push("via nfqueue".into());
        }
        parts.join(" ")
    }

    fn needs_netem(&self) -> bool {
        self.delay_ms > 0 || self.jitter_ms > 0 || self.reorder_pct > 0
    }
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<String, NetError> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]).args(args);
    netns::run(&mut c)
}

fn node_ns(cluster: &Cluster, i: usize) -> Result<String, NemesisError> {
    let node = cluster.node(i)?;
    if cluster.mode() != NetMode::Namespaces {
        return Err(NemesisError::Unsupported(
            "net faults need network namespaces (loopback mode)".into(),
        ));
    }
    node.netns()
        .map(str::to_owned)
        .ok_or_else(|| NemesisError::Unsupported(format!("node {} has no namespace", node.name)))
}

/// Whether the kernel offers the netem qdisc (tried on the loopback of node 0's namespace).
pub fn netem_available(cluster: &Cluster) -> bool {
    let Ok(ns) = node_ns(cluster, 0) else {
        return false;
    };
    let ok = in_ns(
        &ns,
        "tc",
        &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
    )
    .is_ok();
    if ok {
        let _ = in_ns(&ns, "tc", &["qdisc", "del", "dev", "lo", "root"]);
    }
    ok
}

/// Whether the kernel offers the tbf qdisc (tried on the loopback of node 0's namespace).
pub fn tbf_available(cluster: &Cluster) -> bool {
    let Ok(ns) = node_ns(cluster, 0) else {
        return false;
    };
    let args = [
        "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1gbit", "burst", "64kbit", "latency",
        "10ms",
    ];
    let ok = in_ns(&ns, "tc", &args).is_ok();
    if ok {
        let _ = in_ns(&ns, "tc", &["qdisc", "del", "dev", "lo", "root"]);
    }
    ok
}

/// Applies `fault` to every target. If a part cannot be applied (for example the kernel has
/// no netem), the targets are cleared again and the error says why.
pub fn apply(cluster: &Cluster, targets: &[usize], fault: &NetFault) -> Result<(), NemesisError> {
    let r = apply_inner(cluster, targets, fault);
    if r.is_err() {
        let _ = clear(cluster, targets);
    }
    r
}

fn apply_inner(cluster: &Cluster, targets: &[usize], fault: &NetFault) -> Result<(), NemesisError> {
    for &i in targets {
        let ns = node_ns(cluster, i)?;
        if fault.nfqueue {
            if fault.rate_kbit > 0 {
                return Err(NemesisError::Unsupported(
                    "a rate limit through the userspace scheduler".into(),
                ));
            }
            start_scheduler(&ns, i, fault)?;
            continue;
        }
        if fault.needs_netem() {
            let delay = format!("{}ms", fault.delay_ms);
            let jitter = format!("{}ms", fault.jitter_ms);
            let mut args = vec!["qdisc", "replace", "dev", NODE_IF, "root", "netem", "delay"];
            args.push(&delay);
            if fault.jitter_ms > 0 {
                args.push(&jitter);
            }
            let reorder = format!("{}%", fault.reorder_pct);
            if fault.reorder_pct > 0 {
                args.extend(["reorder", &reorder]);
            }
            if let Err(e) = in_ns(&ns, "tc", &args) {
                return Err(match &e {
                    NetError::Failed { stderr, .. } if stderr.contains("unknown") => {
                        NemesisError::Net(NetError::Unsupported {
                            what: "the netem qdisc (CONFIG_NET_SCH_NETEM)".into(),
                            detail: stderr.clone(),
                        })
                    }
                    _ => e.into(),
                });
            }
        }
        if fault.rate_kbit > 0 {
            if fault.needs_netem() {
                return Err(NemesisError::Unsupported(
                    "a rate limit and netem delay on one link".into(),
                ));
            }
            let rate = format!("{}kbit", fault.rate_kbit);
            let latency = format!("{}ms", fault.queue_ms.max(1));
            let args = [
                "qdisc", "replace", "dev", NODE_IF, "root", "tbf", "rate", &rate, "burst",
                "16kbit", "latency", &latency,
            ];
            if let Err(e) = in_ns(&ns, "tc", &args) {
                return Err(match &e {
                    NetError::Failed { stderr, .. } if stderr.contains("unknown") => {
                        NemesisError::Net(NetError::Unsupported {
                            what: "the tbf qdisc (CONFIG_NET_SCH_TBF)".into(),
                            detail: stderr.clone(),
                        })
                    }
                    _ => e.into(),
                });
            }
        }
        if fault.loss_pct > 0 {
            in_ns(&ns, "nft", &["add", "table", "inet", NFT_TABLE])?;
            in_ns(
                &ns,
                "nft",
                &[
                    "add",
                    "chain",
                    "inet",
                    NFT_TABLE,
                    "output",
                    "{ type filter hook output priority 0; policy accept; }",
                ],
            )?;
            let pct = fault.loss_pct.min(100).to_string();
            let mut rule = vec!["add", "rule", "inet", NFT_TABLE, "output"];
            if fault.loss_pct < 100 {
                rule.extend(["numgen", "random", "mod", "100", "lt", &pct]);
            }
            rule.push("drop");
            in_ns(&ns, "nft", &rule)?;
        }
    }
    Ok(())
}

/// Binds a scheduler in `ns`, then sends the node's outgoing packets to it. The rule is
/// installed only once the queue is bound, and carries `--queue-bypass`: packets pass if
/// the scheduler goes away.
fn start_scheduler(ns: &str, node: usize, fault: &NetFault) -> Result<(), NemesisError> {
    let shape = netq::Shape {
        delay: Duration::from_millis(u64::from(fault.delay_ms)),
        jitter: Duration::from_millis(u64::from(fault.jitter_ms)),
        reorder_pct: fault.reorder_pct,
        loss_pct: fault.loss_pct,
    };
    let seed = fault.seed ^ (node as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let running = netq::Running::start(ns, NFQUEUE_NUM, shape, seed)?;
    SCHEDULERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(ns.to_owned(), running);
    nfqueue_rule(ns, "-A")?;
    Ok(())
}

/// Adds (`-A`) or deletes (`-D`) the rule sending `ns`'s outgoing packets to the queue.
fn nfqueue_rule(ns: &str, op: &str) -> Result<String, NetError> {
    let queue = NFQUEUE_NUM.to_string();
    let rule = [
        "-w",
        op,
        "OUTPUT",
        "-o",
        NODE_IF,
        "-j",
        "NFQUEUE",
        "--queue-num",
        &queue,
        "--queue-bypass",
    ];
    in_ns(ns, "iptables", &rule)
}

/// Removes the NFQUEUE rule and stops the scheduler of `ns` (held packets are sent at once).
fn stop_scheduler(ns: &str) -> Result<(), NemesisError> {
    let running = SCHEDULERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(ns);
    if crate::setup::has_program("iptables") {
        let rules = in_ns(ns, "iptables", &["-w", "-S", "OUTPUT"])?;
        if rules.contains("NFQUEUE") {
            nfqueue_rule(ns, "-D")?;
        }
    }
    if let Some(r) = running {
        let stats = r.stop().map_err(|e| NetError::Unsupported {
            what: "the packet scheduler".into(),
            detail: e.to_string(),
        })?;
        tracing::info!(netns = ns, ?stats, "packet scheduler stopped");
    }
    Ok(())
}

/// Whether NFQUEUE works here: a scheduler binds a queue in node 0's namespace and an
/// iptables NFQUEUE rule installs (both removed again).
pub fn nfqueue_available(cluster: &Cluster) -> bool {
    let Ok(ns) = node_ns(cluster, 0) else {
        return false;
    };
    if !crate::setup::has_program("iptables") {
        return false;
    }
    let Ok(running) = netq::Running::start(&ns, NFQUEUE_NUM + 1, netq::Shape::default(), 0) else {
        return false;
    };
    let rule = [
        "-w",
        "-A",
        "OUTPUT",
        "-o",
        "lo",
        "-p",
        "udp",
        "--dport",
        "9",
        "-j",
        "NFQUEUE",
        "--queue-num",
        "8",
        "--queue-bypass",
    ];
    let ok = in_ns(&ns, "iptables", &rule).is_ok();
    if ok {
        let mut del = rule;
        del[1] = "-D";
        let _ = in_ns(&ns, "iptables", &del);
    }
    ok && running.stop().is_ok()
}

/// Removes every link degradation from the targets.
pub fn clear(cluster: &Cluster, targets: &[usize]) -> Result<(), NemesisError> {
    for &i in targets {
        let ns = node_ns(cluster, i)?;
        stop_scheduler(&ns)?;
        let qdiscs = in_ns(&ns, "tc", &["qdisc", "show", "dev", NODE_IF])?;
        if qdiscs.contains("netem") || qdiscs.contains("tbf") {
            in_ns(&ns, "tc", &["qdisc", "del", "dev", NODE_IF, "root"])?;
        }
        if crate::setup::has_program("nft") {
            let tables = in_ns(&ns, "nft", &["list", "tables"])?;
            if tables
                .lines()
                .any(|l| l.trim() == format!("table inet {NFT_TABLE}"))
            {
                in_ns(&ns, "nft", &["delete", "table", "inet", NFT_TABLE])?;
            }
        }
    }
    Ok(())
}
