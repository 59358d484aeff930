//! Shared helpers of the `nemesis_*` tests: the `raftmq` binary, clusters of real nameserver
//! processes (the broker's stand-in for testing cluster control), and probes run from the
//! clients' namespace.
//!
//! The binary comes from `$RAFTMQ_BIN` if set, otherwise from
//! `cargo build -p raftmq --bin raftmq` run once per test binary (a no-op when up to date);
//! its path is read from cargo's JSON artifact messages, so `CARGO_TARGET_DIR` is honoured.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use raftmq::namesrv::client::NamesrvClient;
use raftmq::remoting::ClientConfig;
use raftmq_jepsen::cluster::{self, Cluster, ClusterConfig, NetMode};
use raftmq_jepsen::netns;

pub fn raftmq_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        cluster::raftmq_binary(&ws, false).expect("building the raftmq binary")
    })
    .clone()
}

/// Fails loudly (never skips) when network namespaces cannot be created here.
pub fn require_namespaces() {
    assert!(
        netns::namespaces_available(),
        "`ip netns add` failed: these tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and \
         iproute2; they do not skip"
    );
    if let Err(e) = raftmq_jepsen::setup::ensure_tools() {
        panic!("network tools missing: {e}");
    }
}

/// `n` nameserver nodes `n0..`, each started and accepting connections.
pub fn namesrv_cluster(n: usize, mode: NetMode) -> (tempfile::TempDir, Cluster) {
    if mode == NetMode::Namespaces {
        require_namespaces();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig {
        binary: raftmq_bin(),
        dir: dir.path().to_owned(),
        mode,
        prefix: netns::unique_prefix(),
        start_timeout: Duration::from_secs(20),
    };
    let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut c = Cluster::create(config, &names, |_| match mode {
        NetMode::Namespaces => Ok(9876),
        NetMode::Loopback => cluster::free_port(),
    })
    .unwrap();
    for i in 0..n {
        let args = cluster::namesrv_command(c.node(i).unwrap()).unwrap();
        c.set_command(i, args).unwrap();
        c.start(i).unwrap();
    }
    (dir, c)
}

/// One GET_BROKER_CLUSTER_INFO request to `addr` from namespace `ns` (or here), bounded by
/// `timeout`; `Ok(elapsed)` if it was answered.
pub fn ask(ns: Option<&str>, addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let f = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let cfg = ClientConfig {
                connect_timeout: timeout,
                ..ClientConfig::default()
            };
            let client = NamesrvClient::new(&[addr.to_string()], cfg, timeout);
            let start = Instant::now();
            match tokio::time::timeout(timeout + Duration::from_millis(500), client.cluster_info())
                .await
            {
                Ok(Ok(_)) => Ok(start.elapsed()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            }
        })
    };
    match ns {
        Some(ns) => netns::run_in_netns(ns, f).unwrap(),
        None => f(),
    }
}

/// TCP connect from `ns` to `addr` within `timeout`.
pub fn connects(ns: Option<&str>, addr: SocketAddr, timeout: Duration) -> bool {
    netns::tcp_connect_in(ns, addr, timeout).unwrap().is_ok()
}

/// Polls `cond` every 50 ms until it holds or `within` passes.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Namespaces currently present whose names start with `prefix`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    netns::ip(&["netns", "list"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}
