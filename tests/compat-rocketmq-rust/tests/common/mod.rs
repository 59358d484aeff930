//! Shared harness of the compatibility tests: the `raftmq` binary, processes started from it
//! (killed when dropped), free loopback ports, and the third-party client's runtime.
//!
//! The `raftmq` binary is found as `$RAFTMQ_BIN` when set; otherwise it is built with
//! `cargo build -p raftmq --bin raftmq` into the target directory this test executable was
//! built in (`<target>/debug/deps/<test>` → `<target>/debug/raftmq`), so
//! `cargo test -p compat-rocketmq-rust` works on its own with any `CARGO_TARGET_DIR`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig, TelemetryHandle};
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

/// Path of the `raftmq` binary (built once per test executable).
pub fn raftmq_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("RAFTMQ_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current test executable path");
        // <target>/<profile>/deps/<test-exe>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in <target>/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir
            .parent()
            .expect("profile directory has a parent")
            .to_path_buf();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&workspace)
            .args(["build", "-p", "raftmq", "--bin", "raftmq"])
            .env("CARGO_TARGET_DIR", &target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("running cargo build for the raftmq binary");
        assert!(status.success(), "cargo build -p raftmq failed: {status}");
        let bin = profile_dir.join("raftmq");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}

/// A child process started by a test: stdout lines are read by a thread (so the pipe never
/// fills) and handed over through a channel; dropping it sends SIGKILL and reaps it.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    lines: Receiver<String>,
}

impl Proc {
    /// Starts `raftmq <args>` with logs on stderr (inherited, so a failing test shows them;
    /// errors only unless `RAFTMQ_LOG` gives a filter) and stdout piped.
    pub fn start(name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(raftmq_bin());
        cmd.args(args)
            .env(
                "RUST_LOG",
                std::env::var("RAFTMQ_LOG").unwrap_or_else(|_| "error,openraft=off".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // If the test process dies without running destructors (killed by a timeout), the
        // kernel kills the child too instead of leaving a broker running.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure runs in the forked child before exec and only calls prctl,
            // which is async-signal-safe and touches no memory shared with the parent.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning raftmq {args:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child: Some(child),
            lines: rx,
        }
    }

    /// Waits (bounded) for a stdout line starting with `prefix`; returns the rest of it.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no line starting with {prefix:?} within {timeout:?}",
                        self.name
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "{}: exited ({status:?}) before printing {prefix:?}",
                        self.name
                    )
                }
            }
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether `port` can be bound on 127.0.0.1 now.
fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A base port `p` such that `p`, `p+10`, `p+20` and the Raft ports 30000 above them are
/// free now (the layout `raftmq dev --broker-port p` and our 3-process groups use). Ports
/// are taken from a per-process spread to keep parallel tests apart.
pub fn free_group_base() -> u16 {
    static NEXT: Mutex<u32> = Mutex::new(0);
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::process::id() % 500;
    for _ in 0..500 {
        let slot = (seed + *next) % 500;
        *next += 1;
        // 20000..34970, step 30: slots never overlap each other's +10/+20 ports.
        let base = 20_000 + (slot as u16) * 30;
        let all = [0u16, 10, 20, 30_000, 30_010, 30_020];
        if all.iter().all(|off| port_free(base + off)) {
            return base;
        }
    }
    panic!("no free port group found");
}

static RUNTIME_OWNER: LazyLock<RuntimeOwner> = LazyLock::new(|| {
    RuntimeOwner::plan(RuntimeConfig::for_parallelism("compat-client", 2))
        .expect("client runtime configuration is valid")
        .build()
        .expect("client runtime starts")
});

/// A client runtime for the third-party client (one owner per test executable).
pub fn client_runtime(scope: &'static str) -> Arc<ClientRuntime> {
    ClientRuntime::try_new(
        RUNTIME_OWNER.root_context().component(scope),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("client runtime is valid")
}

/// A name unique within this test run (groups, topics).
pub fn unique(kind: &str) -> String {
    static N: Mutex<u32> = Mutex::new(0);
    let mut n = N.lock().unwrap_or_else(|e| e.into_inner());
    *n += 1;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{kind}_{}_{ms}_{}", std::process::id(), *n)
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until<F: FnMut() -> bool>(timeout: Duration, mut cond: F) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub mod scenarios;

/// `raftmq dev` on free loopback ports with its data in a temporary directory.
pub struct Dev {
    pub proc: Proc,
    pub namesrv: String,
    pub dir: tempfile::TempDir,
}

impl Dev {
    /// Starts it and waits until it reports a leader.
    pub fn start() -> Dev {
        let dir = tempfile::tempdir().expect("temporary directory");
        let base = free_group_base().to_string();
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8 temp path");
        let mut proc = Proc::start(
            "raftmq dev",
            &["dev", "-p", "0", "--broker-port", &base, "--data", data],
        );
        let namesrv = proc.wait_line(
            "raftmq dev: nameserver listening on",
            Duration::from_secs(120),
        );
        proc.wait_line("raftmq dev: ready", Duration::from_secs(60));
        Dev { proc, namesrv, dir }
    }
}

/// Starts `raftmq namesrv` on a free loopback port with its KV config under `dir` (the
/// default is in `$HOME`, which parallel nameservers would share); returns it and its address.
pub fn start_namesrv(dir: &Path) -> (Proc, String) {
    let conf = dir.join("namesrv.conf");
    let kv = dir.join("kvConfig.json");
    std::fs::write(&conf, format!("kvConfigPath={}\n", kv.display()))
        .expect("writing namesrv config");
    let conf = conf.to_str().expect("utf-8 temp path").to_string();
    let mut p = Proc::start(
        "raftmq namesrv",
        &["namesrv", "-c", &conf, "-p", "0", "--listen", "127.0.0.1"],
    );
    let addr = p.wait_line("raftmq namesrv listening on", Duration::from_secs(120));
    (p, addr)
}

/// A 3-process broker group `broker-a` (three `raftmq broker` processes, one Raft group) and a
/// `raftmq namesrv` process, all on free loopback ports, data in a temporary directory.
pub struct Group {
    pub namesrv_proc: Proc,
    pub namesrv: String,
    /// Indexed by node (n0, n1, n2); `None` once killed.
    pub brokers: Vec<Option<Proc>>,
    /// Remoting address of each node.
    pub broker_addrs: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Group {
    /// Starts the processes and waits until the nameserver shows a leader (brokerId 0) for
    /// the auto-create template topic TBW102.
    pub async fn start() -> Group {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (namesrv_proc, namesrv) = start_namesrv(dir.path());
        let base = free_group_base();
        let ports: Vec<u16> = (0..3).map(|i| base + i * 10).collect();
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("n{i}-127.0.0.1:{}", p + 30_000))
            .collect();
        let broker_addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let peer_brokers: Vec<String> = broker_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("n{i}-{a}"))
            .collect();
        let mut brokers = vec![];
        for (i, port) in ports.iter().enumerate() {
            let conf = dir.path().join(format!("broker-a-n{i}.conf"));
            let store = dir.path().join(format!("broker-a-n{i}"));
            let text = format!(
                "brokerClusterName=DefaultCluster\n\
                 brokerName=broker-a\n\
                 brokerIP1=127.0.0.1\n\
                 listenPort={port}\n\
                 namesrvAddr={namesrv}\n\
                 storePathRootDir={}\n\
                 enableDLegerCommitLog=true\n\
                 dLegerGroup=broker-a\n\
                 dLegerPeers={}\n\
                 dLegerSelfId=n{i}\n\
                 peerBrokerAddrs={}\n\
                 flushDiskType=ASYNC_FLUSH\n\
                 mapedFileSizeCommitLog=67108864\n\
                 autoCreateTopicEnable=true\n",
                store.display(),
                peers.join(";"),
                peer_brokers.join(";"),
            );
            std::fs::write(&conf, text).expect("writing broker config");
            let conf = conf.to_str().expect("utf-8 temp path").to_string();
            let mut p = Proc::start(&format!("broker-a-n{i}"), &["broker", "-c", &conf]);
            p.wait_line("raftmq broker listening on", Duration::from_secs(120));
            brokers.push(Some(p));
        }
        let group = Group {
            namesrv_proc,
            namesrv,
            brokers,
            broker_addrs,
            dir,
        };
        assert!(
            group
                .leader_for("TBW102", Duration::from_secs(60))
                .await
                .is_some(),
            "no leader registered for broker-a within 60 s"
        );
        group
    }

    /// The node the nameserver shows as brokerId 0 for `topic`, once it shows one.
    pub async fn leader_for(&self, topic: &str, timeout: Duration) -> Option<usize> {
        let ns = raftmq::namesrv::client::NamesrvClient::new(
            std::slice::from_ref(&self.namesrv),
            raftmq::remoting::ClientConfig::default(),
            Duration::from_secs(3),
        );
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(route)) = ns.topic_route(topic).await {
                let leader = route
                    .broker_datas
                    .iter()
                    .find(|b| b.broker_name == "broker-a")
                    .and_then(|b| b.broker_addrs.get(&0).cloned());
                if let Some(addr) = leader {
                    if let Some(i) = self.broker_addrs.iter().position(|a| *a == addr) {
                        if self.brokers[i].is_some() {
                            return Some(i);
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// `kill -9` of node `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.brokers[i].take() {
            p.kill9();
        }
    }
}
