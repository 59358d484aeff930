//! Cluster control and nemeses on real processes in real network namespaces: three
//! `raftmq namesrv` processes, each in its own namespace on a private bridge, probed over TCP
//! and with real RocketMQ requests from the clients' namespace (the hub).
//!
//! Needs root; fails (never skips) without it.

#![allow(clippy::unwrap_used)]

mod nemesis_support;

use std::time::{Duration, Instant};

use nemesis_support::{ask, connects, eventually, namespaces_with, namesrv_cluster};
use raftmq_jepsen::cluster::NetMode;
use raftmq_jepsen::nemesis::{net, partition, Firewall, NemesisError, NetFault, Rng};
use raftmq_jepsen::netns::NetError;

const SHORT: Duration = Duration::from_millis(300);
const OK_WITHIN: Duration = Duration::from_secs(2);

fn partition_and_heal_with(fw: Firewall) {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    let ns = |i: usize| c.node(i).unwrap().netns().unwrap().to_owned();
    let addr = |i: usize| c.node(i).unwrap().addr();
    let hub = c.client_netns().map(str::to_owned);
    // Every node reaches every other node.
    for a in 0..3 {
        for b in 0..3 {
            assert!(
                connects(Some(&ns(a)), addr(b), OK_WITHIN),
                "{a} -> {b} before the partition"
            );
        }
    }
    // Isolate n0: it cannot reach n1/n2 nor be reached; n1 <-> n2 and the hub still work.
    partition::partition(&c, &partition::isolate(3, 0), fw).unwrap();
    assert!(!connects(Some(&ns(0)), addr(1), SHORT), "n0 -> n1 during");
    assert!(!connects(Some(&ns(0)), addr(2), SHORT), "n0 -> n2 during");
    assert!(!connects(Some(&ns(1)), addr(0), SHORT), "n1 -> n0 during");
    assert!(!connects(Some(&ns(2)), addr(0), SHORT), "n2 -> n0 during");
    assert!(
        connects(Some(&ns(1)), addr(2), OK_WITHIN),
        "n1 -> n2 during"
    );
    assert!(
        connects(Some(&ns(2)), addr(1), OK_WITHIN),
        "n2 -> n1 during"
    );
    assert!(
        connects(hub.as_deref(), addr(0), OK_WITHIN),
        "hub -> n0 during"
    );
    // Heal restores everything.
    partition::heal(&c, fw).unwrap();
    for a in 0..3 {
        for b in 0..3 {
            assert!(
                connects(Some(&ns(a)), addr(b), OK_WITHIN),
                "{a} -> {b} after heal"
            );
        }
    }
    // Heal is idempotent.
    partition::heal(&c, fw).unwrap();
}

#[test]
fn nft_partition_drops_packets_and_heal_restores_them() {
    partition_and_heal_with(Firewall::Nft);
}

#[test]
fn iptables_partition_drops_packets_and_heal_restores_them() {
    partition_and_heal_with(Firewall::Iptables);
}

#[test]
fn bridge_and_split_partitions_cut_exactly_their_links() {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    let ns = |i: usize| c.node(i).unwrap().netns().unwrap().to_owned();
    let addr = |i: usize| c.node(i).unwrap().addr();
    let mut rng = Rng::new(7);
    for _ in 0..2 {
        let g = partition::bridge(3, &mut rng);
        partition::partition(&c, &g, Firewall::Nft).unwrap();
        for a in 0..3 {
            for b in 0..3 {
                if a == b {
                    continue;
                }
                let cut = g.get(&a).is_some_and(|s| s.contains(&b));
                assert_eq!(
                    connects(Some(&ns(a)), addr(b), if cut { SHORT } else { OK_WITHIN }),
                    !cut,
                    "bridge {g:?}: {a} -> {b}"
                );
            }
        }
        let (minority, g) = partition::split(3, &mut rng);
        assert_eq!(minority.len(), 1);
        partition::partition(&c, &g, Firewall::Nft).unwrap();
        let m = *minority.iter().next().unwrap();
        for b in (0..3).filter(|&b| b != m) {
            assert!(!connects(Some(&ns(m)), addr(b), SHORT), "split: {m} -> {b}");
        }
        partition::heal(&c, Firewall::Nft).unwrap();
    }
}

#[test]
fn kill_9_ends_the_process_and_restart_brings_it_back_on_the_same_address() {
    let (_dir, mut c) = namesrv_cluster(3, NetMode::Namespaces);
    let hub = c.client_netns().map(str::to_owned);
    let addr = c.node(1).unwrap().addr();
    let pid = c.node(1).unwrap().pid().unwrap();
    assert!(ask(hub.as_deref(), addr, OK_WITHIN).is_ok());

    c.kill(1).unwrap();
    assert!(!c.node(1).unwrap().is_running());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still exists after kill -9"
    );
    assert!(
        !connects(hub.as_deref(), addr, SHORT),
        "killed node accepts"
    );
    assert!(ask(hub.as_deref(), addr, SHORT).is_err());
    // The others are untouched.
    assert!(ask(hub.as_deref(), c.node(0).unwrap().addr(), OK_WITHIN).is_ok());

    c.start(1).unwrap();
    let pid2 = c.node(1).unwrap().pid().unwrap();
    assert_ne!(pid, pid2);
    assert_eq!(c.node(1).unwrap().addr(), addr);
    assert_eq!(c.node(1).unwrap().starts(), 2);
    assert!(ask(hub.as_deref(), addr, OK_WITHIN).is_ok());
    // The log file kept both runs' output.
    let log = std::fs::read_to_string(&c.node(1).unwrap().log_path).unwrap();
    assert!(!log.is_empty());
}

#[test]
fn sigstop_makes_requests_time_out_and_sigcont_recovers() {
    let (_dir, mut c) = namesrv_cluster(3, NetMode::Namespaces);
    let hub = c.client_netns().map(str::to_owned);
    let addr = c.node(2).unwrap().addr();
    assert!(ask(hub.as_deref(), addr, OK_WITHIN).is_ok());

    c.pause(2).unwrap();
    let started = Instant::now();
    let r = ask(hub.as_deref(), addr, Duration::from_millis(700));
    assert!(r.is_err(), "a paused node answered: {r:?}");
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(c.node(2).unwrap().is_paused());
    assert!(ask(hub.as_deref(), c.node(0).unwrap().addr(), OK_WITHIN).is_ok());

    c.resume(2).unwrap();
    assert!(eventually(Duration::from_secs(5), || ask(
        hub.as_deref(),
        addr,
        OK_WITHIN
    )
    .is_ok()));
}

#[test]
fn net_loss_drops_packets_and_clear_restores_them() {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    let hub = c.client_netns().map(str::to_owned);
    let addr = c.node(0).unwrap().addr();
    let fault = NetFault {
        loss_pct: 100,
        ..NetFault::default()
    };
    net::apply(&c, &[0], &fault).unwrap();
    assert!(
        !connects(hub.as_deref(), addr, SHORT),
        "100% loss yet connected"
    );
    assert!(connects(
        hub.as_deref(),
        c.node(1).unwrap().addr(),
        OK_WITHIN
    ));
    net::clear(&c, &[0]).unwrap();
    assert!(ask(hub.as_deref(), addr, OK_WITHIN).is_ok());
}

/// Delay needs the kernel's netem qdisc. Where it exists the added delay must be measured;
/// where the kernel lacks it (CONFIG_NET_SCH_NETEM unset) the fault must refuse with a typed
/// error and leave nothing behind, so a run records it as a failed fault.
#[test]
fn net_delay_is_measurable_or_refused_cleanly() {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    let hub = c.client_netns().map(str::to_owned);
    let addr = c.node(0).unwrap().addr();
    let base = ask(hub.as_deref(), addr, OK_WITHIN).unwrap();
    let fault = NetFault {
        delay_ms: 150,
        ..NetFault::default()
    };
    if net::netem_available(&c) {
        net::apply(&c, &[0], &fault).unwrap();
        // A fresh connection and one request: at least two delayed packets from the node.
        let slow = ask(hub.as_deref(), addr, Duration::from_secs(5)).unwrap();
        assert!(
            slow >= Duration::from_millis(280) && slow > base,
            "delay not measurable: {slow:?} (base {base:?})"
        );
        net::clear(&c, &[0]).unwrap();
        let fast = ask(hub.as_deref(), addr, OK_WITHIN).unwrap();
        assert!(fast < Duration::from_millis(150), "{fast:?} after clear");
    } else {
        eprintln!("NOTE: this kernel has no netem qdisc; checking that delay is refused");
        let err = net::apply(&c, &[0], &fault).unwrap_err();
        assert!(
            matches!(err, NemesisError::Net(NetError::Unsupported { .. })),
            "{err:?}"
        );
        let ns = c.node(0).unwrap().netns().unwrap().to_owned();
        let q = raftmq_jepsen::netns::run(
            std::process::Command::new("ip").args(["netns", "exec", &ns, "tc", "qdisc", "show"]),
        )
        .unwrap();
        assert!(!q.contains("netem"), "{q}");
        assert!(ask(hub.as_deref(), addr, OK_WITHIN).is_ok());
    }
}

#[test]
fn dropping_the_cluster_kills_processes_and_deletes_namespaces() {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    let prefix = c.config().prefix.clone();
    let pids: Vec<u32> = c.nodes().iter().map(|n| n.pid().unwrap()).collect();
    assert_eq!(namespaces_with(&prefix).len(), 4, "hub + 3 nodes");
    drop(c);
    assert!(namespaces_with(&prefix).is_empty());
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let prefix = std::sync::Mutex::new(String::new());
    let r = std::panic::catch_unwind(|| {
        let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
        *prefix.lock().unwrap() = c.config().prefix.clone();
        panic!("boom");
    });
    assert!(r.is_err());
    let prefix = prefix.into_inner().unwrap();
    assert!(!prefix.is_empty());
    assert!(namespaces_with(&prefix).is_empty());
}

#[test]
fn net_partial_loss_drops_about_that_share_of_packets() {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    let hub = c.client_netns().unwrap().to_owned();
    let node_ns = c.node(0).unwrap().netns().unwrap().to_owned();
    net::apply(
        &c,
        &[0],
        &NetFault {
            loss_pct: 30,
            ..NetFault::default()
        },
    )
    .unwrap();
    const SENT: usize = 400;
    let target: std::net::SocketAddr = (raftmq_jepsen::netns::HUB_ADDR, 40_123).into();
    let received = std::thread::scope(|s| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let hub = &hub;
        let rx = s.spawn(move || {
            raftmq_jepsen::netns::run_in_netns(hub, move || {
                let sock = std::net::UdpSocket::bind(target).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                ready_tx.send(()).unwrap();
                let mut n = 0usize;
                let mut buf = [0u8; 64];
                while sock.recv(&mut buf).is_ok() {
                    n += 1;
                }
                n
            })
            .unwrap()
        });
        ready_rx.recv().unwrap();
        raftmq_jepsen::netns::run_in_netns(&node_ns, || {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for i in 0..SENT {
                // A packet dropped on output fails the send with EPERM: that is the loss.
                let _ = sock.send_to(&(i as u32).to_be_bytes(), target);
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
        .unwrap();
        rx.join().unwrap()
    });
    net::clear(&c, &[0]).unwrap();
    // Binomial(400, 0.7): mean 280, sd 9.2; the bounds are about 6 sd away.
    assert!(
        (225..=335).contains(&received),
        "{received} of {SENT} datagrams arrived with 30% loss"
    );
}

/// Seconds to push `bytes` over TCP from node 0's namespace to a listener in the hub.
fn bulk_send_secs(hub: &str, node_ns: &str, port: u16, bytes: usize) -> f64 {
    use std::io::{Read, Write};
    let target: std::net::SocketAddr = (raftmq_jepsen::netns::HUB_ADDR, port).into();
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let rx = s.spawn(move || {
            raftmq_jepsen::netns::run_in_netns(hub, move || {
                let l = std::net::TcpListener::bind(target).unwrap();
                ready_tx.send(()).unwrap();
                let (mut conn, _) = l.accept().unwrap();
                let mut got = 0usize;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = conn.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                got
            })
            .unwrap()
        });
        ready_rx.recv().unwrap();
        let started = std::time::Instant::now();
        raftmq_jepsen::netns::run_in_netns(node_ns, || {
            let mut conn =
                std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
            conn.write_all(&vec![7u8; bytes]).unwrap();
        })
        .unwrap();
        assert_eq!(rx.join().unwrap(), bytes);
        started.elapsed().as_secs_f64()
    })
}

#[test]
fn a_slow_link_delays_a_bulk_transfer_and_clear_restores_it() {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    assert!(
        net::tbf_available(&c),
        "this kernel has no tbf qdisc: the slow-link fault cannot be checked"
    );
    let hub = c.client_netns().unwrap().to_owned();
    let node_ns = c.node(0).unwrap().netns().unwrap().to_owned();
    const BYTES: usize = 256 * 1024;
    let fast = bulk_send_secs(&hub, &node_ns, 40_124, BYTES);
    let slow_link = NetFault {
        rate_kbit: 2_000,
        queue_ms: 150,
        ..NetFault::default()
    };
    net::apply(&c, &[0], &slow_link).unwrap();
    // 2 Mbit/s is 250 KB/s: 256 KiB takes about a second (less the first burst).
    let slow = bulk_send_secs(&hub, &node_ns, 40_125, BYTES);
    net::clear(&c, &[0]).unwrap();
    let again = bulk_send_secs(&hub, &node_ns, 40_126, BYTES);
    assert!(slow >= 0.7, "256 KiB at 2 Mbit/s took {slow:.3} s");
    assert!(
        fast < 0.35 && again < 0.35,
        "unshaped: {fast:.3} s, after clear {again:.3} s"
    );
}

fn iptables_output(ns: &str) -> String {
    raftmq_jepsen::netns::run(
        std::process::Command::new("ip")
            .args(["netns", "exec", ns, "iptables", "-w", "-S", "OUTPUT"]),
    )
    .unwrap()
}

/// This kernel has no netem; delay goes through the harness's userspace scheduler (an
/// NFQUEUE rule and a thread bound to the queue in the node's namespace). The added delay
/// must be measurable on a real request, and clear must restore the link and remove the rule.
#[test]
fn net_delay_through_nfqueue_is_measurable_and_cleared() {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    assert!(
        net::nfqueue_available(&c),
        "NFQUEUE is not usable here (CONFIG_NETFILTER_NETLINK_QUEUE, the xt NFQUEUE target)"
    );
    let hub = c.client_netns().map(str::to_owned);
    let addr = c.node(0).unwrap().addr();
    let ns = c.node(0).unwrap().netns().unwrap().to_owned();
    let base = ask(hub.as_deref(), addr, OK_WITHIN).unwrap();
    let fault = NetFault {
        delay_ms: 150,
        nfqueue: true,
        seed: 1,
        ..NetFault::default()
    };
    assert!(
        fault.describe().contains("via nfqueue"),
        "{}",
        fault.describe()
    );
    net::apply(&c, &[0], &fault).unwrap();
    assert!(iptables_output(&ns).contains("NFQUEUE"));
    // A fresh connection and one request: at least two delayed packets from the node.
    let slow = ask(hub.as_deref(), addr, Duration::from_secs(5)).unwrap();
    assert!(
        slow >= Duration::from_millis(280) && slow > base,
        "delay not measurable: {slow:?} (base {base:?})"
    );
    // Other nodes are untouched.
    let other = ask(hub.as_deref(), c.node(1).unwrap().addr(), OK_WITHIN).unwrap();
    assert!(other < Duration::from_millis(150), "{other:?} to n1");
    net::clear(&c, &[0]).unwrap();
    assert!(
        !iptables_output(&ns).contains("NFQUEUE"),
        "rule left behind"
    );
    let fast = ask(hub.as_deref(), addr, OK_WITHIN).unwrap();
    assert!(fast < Duration::from_millis(150), "{fast:?} after clear");
}

/// Jitter larger than the gap between packets reorders them for real: numbered UDP datagrams
/// sent 1 ms apart from a node arrive at the hub out of order, all of them (no loss asked),
/// and in order again after clear.
#[test]
fn net_jitter_through_nfqueue_reorders_packets() {
    let (_dir, c) = namesrv_cluster(3, NetMode::Namespaces);
    let hub = c.client_netns().unwrap().to_owned();
    let node_ns = c.node(0).unwrap().netns().unwrap().to_owned();
    let fault = NetFault {
        delay_ms: 20,
        jitter_ms: 15,
        reorder_pct: 10,
        nfqueue: true,
        seed: 5,
        ..NetFault::default()
    };
    const N: u32 = 200;
    let inversions = |port: u16| -> (usize, usize) {
        let target: std::net::SocketAddr = (raftmq_jepsen::netns::HUB_ADDR, port).into();
        std::thread::scope(|s| {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let hub = hub.as_str();
            let rx = s.spawn(move || {
                raftmq_jepsen::netns::run_in_netns(hub, move || {
                    let sock = std::net::UdpSocket::bind(target).unwrap();
                    sock.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                    ready_tx.send(()).unwrap();
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4];
                    while seen.len() < N as usize {
                        match sock.recv(&mut buf) {
                            Ok(4) => seen.push(u32::from_be_bytes(buf)),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    seen
                })
                .unwrap()
            });
            ready_rx.recv().unwrap();
            raftmq_jepsen::netns::run_in_netns(&node_ns, || {
                let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                for i in 0..N {
                    sock.send_to(&i.to_be_bytes(), target).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .unwrap();
            let seen = rx.join().unwrap();
            let inv = seen.windows(2).filter(|w| w[1] < w[0]).count();
            (seen.len(), inv)
        })
    };
    net::apply(&c, &[0], &fault).unwrap();
    let (got, inv) = inversions(40_131);
    net::clear(&c, &[0]).unwrap();
    assert_eq!(got, N as usize, "datagrams lost without a loss setting");
    assert!(inv >= 10, "only {inv} out-of-order arrivals of {N}");
    let (got, inv) = inversions(40_132);
    assert_eq!((got, inv), (N as usize, 0), "after clear");
}
