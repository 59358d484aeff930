//! Cluster control: real `raftmq` processes, one per node, each in its own network namespace
//! (or all on 127.0.0.1 in loopback mode), with its own data directory and log file inside
//! the run folder.
//!
//! Owns the node table (name, address, port, command line, child process), starting a node and
//! waiting until its port accepts connections, stopping, `kill -9`, SIGSTOP/SIGCONT and
//! restarting a node with the same command on the same address. It also locates or builds the
//! `raftmq` binary and writes the nameserver's config and each broker member's `broker.conf`
//! (DLedger keys: `dLegerPeers`, `dLegerSelfId`, ...). Dropping a [`Cluster`] kills every
//! process it started and then deletes its namespaces; nodes also die with the harness
//! process (PR_SET_PDEATHSIG).
//!
//! It does not decide when or what to break (that is [`crate::nemesis`]) and knows nothing of
//! the history or the checker.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{self, NetError, Netns, Topology};

/// Errors from cluster control.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Net(#[from] NetError),
    /// A file or directory of the run folder could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A node's process could not be started.
    #[error("starting node {node} ({command}): {source}")]
    Spawn {
        node: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A node's process exited while it should be running.
    #[error("node {node} exited ({status}) before it was ready; last log lines:\n{log_tail}")]
    Exited {
        node: String,
        status: String,
        log_tail: String,
    },
    /// A node did not accept connections in time.
    #[error("node {node} did not accept connections on {addr} within {waited:?}")]
    NotReady {
        node: String,
        addr: SocketAddr,
        waited: Duration,
    },
    /// Sending a signal failed.
    #[error("signal {signal} to node {node} (pid {pid}): {source}")]
    Signal {
        node: String,
        pid: u32,
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The operation needs a running (or a stopped) node.
    #[error("node {node}: {reason}")]
    State { node: String, reason: String },
    /// No node with this index.
    #[error("no node {index} (the cluster has {len})")]
    NoNode { index: usize, len: usize },
    /// Building the `raftmq` binary failed or its path could not be found.
    #[error("building raftmq: {0}")]
    Build(String),
    /// A group administration step (find the leader, remove, add, promote, transfer) failed.
    #[error("group administration ({step}): {reason}")]
    Admin { step: String, reason: String },
}

/// How nodes are networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetMode {
    /// Each node in its own network namespace on a private bridge; partitions and network
    /// faults are available. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
    Namespaces,
    /// Every node on 127.0.0.1 with its own ports; kill and pause only.
    Loopback,
}

/// Where and how a cluster runs.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The `raftmq` binary.
    pub binary: PathBuf,
    /// Run folder: node data directories and logs go under `DIR/nodes/NAME/`.
    pub dir: PathBuf,
    pub mode: NetMode,
    /// Namespace-name prefix, unique on this machine ([`netns::unique_prefix`]).
    pub prefix: String,
    /// How long a started node may take to accept connections.
    pub start_timeout: Duration,
}

/// One node: a process slot with a fixed address and command line.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub ip: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    netns: Option<String>,
    args: Vec<OsString>,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

impl Node {
    /// Gives a stopped node's slot to a new node `name` with its own (empty) data directory
    /// `root/data` and log `root/node.log`; its command line is cleared.
    pub(crate) fn reincarnate(&mut self, name: &str, root: &Path) -> Result<(), ClusterError> {
        if self.child.is_some() {
            return Err(ClusterError::State {
                node: self.name.clone(),
                reason: "still running, cannot be replaced".into(),
            });
        }
        let data_dir = root.join("data");
        std::fs::create_dir_all(&data_dir).map_err(io_err(&data_dir))?;
        self.name = name.to_owned();
        self.data_dir = data_dir;
        self.log_path = root.join("node.log");
        self.args.clear();
        self.paused = false;
        self.starts = 0;
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The network namespace the node runs in (`None` in loopback mode).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// How many times the node's process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }
}

/// A set of nodes and, in namespace mode, their private network. A node keeps its slot (index,
/// address, namespace) for the whole run; [`Cluster::replace_node`] gives the slot a new name,
/// Raft id and data directory.
#[derive(Debug)]
pub struct Cluster {
    // Field order matters: processes are killed (Drop) before the namespaces go.
    nodes: Vec<Node>,
    topo: Option<Topology>,
    config: ClusterConfig,
    /// The broker group's layout, for membership changes ([`crate::membership`]).
    pub(crate) groups: Vec<crate::membership::GroupLayout>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A free TCP port on 127.0.0.1 (bound and released at once), never one this process handed
/// out before. A run takes every node's port before it starts any node, and the kernel may
/// give a just-released port out again: the nameserver and a broker of one run were once
/// handed the same port, and the broker could not start.
pub fn free_port() -> Result<u16, ClusterError> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    const TRIES: usize = 64;
    for _ in 0..TRIES {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(io_err(Path::new("127.0.0.1:0")))?;
        let port = l
            .local_addr()
            .map(|a| a.port())
            .map_err(io_err(Path::new("127.0.0.1:0")))?;
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port)
        {
            return Ok(port);
        }
    }
    Err(io_err(Path::new("127.0.0.1:0"))(std::io::Error::other(
        format!("no port that was not handed out already after {TRIES} tries"),
    )))
}

impl Cluster {
    /// Prepares `names.len()` nodes: the network (in namespace mode) and each node's data
    /// directory and log path. No process runs yet: give each node its command with
    /// [`Cluster::set_command`] (the address is known by then) and [`Cluster::start`] it.
    /// `port` gives each node's listening port: in namespace mode every node has its own
    /// address, so the same port is fine; in loopback mode pass distinct ports
    /// (see [`free_port`]).
    pub fn create(
        config: ClusterConfig,
        names: &[&str],
        mut port: impl FnMut(usize) -> Result<u16, ClusterError>,
    ) -> Result<Cluster, ClusterError> {
        let topo = match config.mode {
            NetMode::Namespaces => Some(Topology::create(&config.prefix, names.len())?),
            NetMode::Loopback => None,
        };
        let mut nodes = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let root = config.dir.join("nodes").join(name);
            let data_dir = root.join("data");
            std::fs::create_dir_all(&data_dir).map_err(io_err(&data_dir))?;
            let (ip, ns) = match &topo {
                Some(t) => (
                    IpAddr::V4(Topology::node_addr(i)),
                    t.node(i).map(|n| n.name().to_owned()),
                ),
                None => (IpAddr::V4(Ipv4Addr::LOCALHOST), None),
            };
            nodes.push(Node {
                name: (*name).to_owned(),
                ip,
                port: port(i)?,
                data_dir,
                log_path: root.join("node.log"),
                netns: ns,
                args: Vec::new(),
                child: None,
                paused: false,
                starts: 0,
            });
        }
        Ok(Cluster {
            nodes,
            topo,
            config,
            groups: Vec::new(),
        })
    }

    pub fn mode(&self) -> NetMode {
        self.config.mode
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> Result<&Node, ClusterError> {
        let len = self.nodes.len();
        self.nodes
            .get(i)
            .ok_or(ClusterError::NoNode { index: i, len })
    }

    pub(crate) fn node_mut(&mut self, i: usize) -> Result<&mut Node, ClusterError> {
        let len = self.nodes.len();
        self.nodes
            .get_mut(i)
            .ok_or(ClusterError::NoNode { index: i, len })
    }

    /// The node's network namespace handle (namespace mode only).
    pub fn netns(&self, i: usize) -> Option<&Netns> {
        self.topo.as_ref().and_then(|t| t.node(i))
    }

    /// The namespace the harness's clients run in: the hub (namespace mode) or `None`
    /// (loopback: the current namespace).
    pub fn client_netns(&self) -> Option<&str> {
        self.topo.as_ref().map(|t| t.hub().name())
    }

    /// Sets the command line (arguments after the binary) node `i` runs on every start.
    pub fn set_command(&mut self, i: usize, args: Vec<OsString>) -> Result<(), ClusterError> {
        self.node_mut(i)?.args = args;
        Ok(())
    }

    /// Starts node `i` and waits until its port accepts connections from the client
    /// namespace. The log file is appended to, so restarts keep earlier output.
    pub fn start(&mut self, i: usize) -> Result<(), ClusterError> {
        let binary = self.config.binary.clone();
        let node = self.node_mut(i)?;
        if node.child.is_some() {
            return Err(ClusterError::State {
                node: node.name.clone(),
                reason: "already running".into(),
            });
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .map_err(io_err(&node.log_path))?;
        let log2 = log.try_clone().map_err(io_err(&node.log_path))?;
        let mut cmd = match &node.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        cmd.args(&node.args)
            .current_dir(&node.data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // If the harness dies without dropping the cluster (SIGKILL, abort), the node dies
        // with it instead of running on unowned. The signal follows the thread that started
        // the node, so start nodes from a thread that outlives them.
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| ClusterError::Spawn {
            node: node.name.clone(),
            command: format!("{cmd:?}"),
            source,
        })?;
        tracing::info!(node = %node.name, pid = child.id(), addr = %node.addr(), "started");
        node.child = Some(child);
        node.paused = false;
        node.starts += 1;
        self.wait_ready(i)
    }

    /// Waits until node `i` accepts TCP connections (from the client namespace), failing
    /// early with its log tail if the process exits.
    pub fn wait_ready(&mut self, i: usize) -> Result<(), ClusterError> {
        let timeout = self.config.start_timeout;
        let client_ns = self.client_netns().map(str::to_owned);
        let deadline = Instant::now() + timeout;
        let addr = self.node(i)?.addr();
        loop {
            if let Some(status) = self.try_reap(i)? {
                let node = self.node(i)?;
                return Err(ClusterError::Exited {
                    node: node.name.clone(),
                    status,
                    log_tail: log_tail(&node.log_path, 2000),
                });
            }
            if netns::tcp_connect_in(client_ns.as_deref(), addr, Duration::from_millis(200))?
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::NotReady {
                    node: self.node(i)?.name.clone(),
                    addr,
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// If node `i`'s process has exited, forgets it and returns how it ended.
    pub fn try_reap(&mut self, i: usize) -> Result<Option<String>, ClusterError> {
        let node = self.node_mut(i)?;
        let Some(child) = node.child.as_mut() else {
            return Ok(None);
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                node.child = None;
                node.paused = false;
                Ok(Some(status.to_string()))
            }
            Ok(None) => Ok(None),
            Err(source) => Err(ClusterError::Io {
                path: node.log_path.clone(),
                source,
            }),
        }
    }

    fn signal(
        &mut self,
        i: usize,
        sig: libc::c_int,
        name: &'static str,
    ) -> Result<(), ClusterError> {
        let node = self.node_mut(i)?;
        let Some(child) = node.child.as_ref() else {
            return Err(ClusterError::State {
                node: node.name.clone(),
                reason: format!("not running, cannot send {name}"),
            });
        };
        let pid = child.id();
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            return Err(ClusterError::State {
                node: node.name.clone(),
                reason: format!("pid {pid} out of range"),
            });
        };
        // SAFETY: kill(2) with a pid of a child we have not reaped yet (it cannot have been
        // recycled) and a valid signal number.
        let rc = unsafe { libc::kill(raw, sig) };
        if rc != 0 {
            return Err(ClusterError::Signal {
                node: node.name.clone(),
                pid,
                signal: name,
                source: std::io::Error::last_os_error(),
            });
        }
        tracing::info!(node = %node.name, pid, signal = name, "signalled");
        Ok(())
    }

    /// `kill -9` node `i` and reaps it. Its data directory and address stay for a restart.
    pub fn kill(&mut self, i: usize) -> Result<(), ClusterError> {
        self.signal(i, libc::SIGKILL, "SIGKILL")?;
        let node = self.node_mut(i)?;
        if let Some(mut child) = node.child.take() {
            child.wait().map_err(io_err(&node.log_path))?;
        }
        node.paused = false;
        Ok(())
    }

    /// Stops node `i` gracefully (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&mut self, i: usize, grace: Duration) -> Result<(), ClusterError> {
        if self.node(i)?.paused {
            self.resume(i)?;
        }
        self.signal(i, libc::SIGTERM, "SIGTERM")?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.try_reap(i)?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill(i)
    }

    /// SIGSTOP node `i`, then waits until every thread of the process is stopped (kill(2)
    /// only queues the signal; a busy thread can run on for a moment).
    pub fn pause(&mut self, i: usize) -> Result<(), ClusterError> {
        self.signal(i, libc::SIGSTOP, "SIGSTOP")?;
        self.node_mut(i)?.paused = true;
        self.wait_thread_states(i, true)
    }

    /// SIGCONT node `i`, then waits until no thread of the process is stopped.
    pub fn resume(&mut self, i: usize) -> Result<(), ClusterError> {
        self.signal(i, libc::SIGCONT, "SIGCONT")?;
        self.node_mut(i)?.paused = false;
        self.wait_thread_states(i, false)
    }

    fn wait_thread_states(&self, i: usize, stopped: bool) -> Result<(), ClusterError> {
        let node = self.node(i)?;
        let Some(pid) = node.pid() else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match thread_states(pid) {
                Some(states) if states.iter().all(|&s| (s == 'T') == stopped) => return Ok(()),
                Some(_) => {}
                // Gone: nothing left to wait for (a later call reports it).
                None => return Ok(()),
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::State {
                    node: node.name.clone(),
                    reason: format!(
                        "threads of pid {pid} not {} after 5 s",
                        if stopped { "stopped" } else { "running" }
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the running nodes among `idx` together: SIGCONT to paused ones, SIGTERM to all at
    /// once, then waits until every one has exited, and `kill -9`s those still running after
    /// `grace`. Returns the names of the nodes that had to be killed. Signalling them together
    /// keeps a member stopping early from seeing the others elect and append without it.
    pub fn stop_together(
        &mut self,
        idx: &[usize],
        grace: Duration,
    ) -> Result<Vec<String>, ClusterError> {
        let mut waiting = Vec::new();
        for &i in idx {
            if !self.node(i)?.is_running() {
                continue;
            }
            if self.node(i)?.paused {
                self.resume(i)?;
            }
            self.signal(i, libc::SIGTERM, "SIGTERM")?;
            waiting.push(i);
        }
        let deadline = Instant::now() + grace;
        while !waiting.is_empty() && Instant::now() < deadline {
            let mut still = Vec::with_capacity(waiting.len());
            for i in waiting {
                if self.try_reap(i)?.is_none() {
                    still.push(i);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut killed = Vec::new();
        for i in waiting {
            killed.push(self.node(i)?.name.clone());
            self.kill(i)?;
        }
        Ok(killed)
    }

    /// Stops every running node (SIGCONT first if paused), in order.
    pub fn stop_all(&mut self, grace: Duration) -> Result<(), ClusterError> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_some() {
                self.stop(i, grace)?;
            }
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The scheduler state letter of every thread of `pid` (`/proc/PID/task/*/stat`), `None` if
/// the process is gone.
fn thread_states(pid: u32) -> Option<Vec<char>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut states = Vec::new();
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue; // the thread just exited
        };
        // "tid (comm) S ...": the state follows the last ')'.
        if let Some(s) = stat
            .rfind(')')
            .and_then(|p| stat[p + 1..].trim_start().chars().next())
        {
            states.push(s);
        }
    }
    Some(states)
}

/// The last `max` bytes of a log file (empty if unreadable).
pub fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

/// Writes `DIR/namesrv.conf` for a nameserver on `ip:port` keeping its KV config in
/// `data_dir`, and returns the arguments that run it (`namesrv -c FILE`).
pub fn namesrv_command(node: &Node) -> Result<Vec<OsString>, ClusterError> {
    let conf = node.data_dir.join("namesrv.conf");
    let text = format!(
        "# written by raftmq-jepsen\nlistenPort={}\nbindAddress={}\nkvConfigPath={}\n",
        node.port,
        node.ip,
        node.data_dir.join("kvConfig.json").display()
    );
    std::fs::write(&conf, text).map_err(io_err(&conf))?;
    Ok(vec!["namesrv".into(), "-c".into(), conf.into_os_string()])
}

/// The `raftmq` binary: `$RAFTMQ_BIN` if set, otherwise built with
/// `cargo build -p raftmq --bin raftmq` in `workspace` (release if `release`), its path taken
/// from cargo's own artifact report, so `CARGO_TARGET_DIR` and profiles are honoured.
pub fn raftmq_binary(workspace: &Path, release: bool) -> Result<PathBuf, ClusterError> {
    raftmq_binary_with(workspace, release, false)
}

/// The `raftmq` binary built with the `failpoints` feature (power cuts for the disk
/// nemesis): `$RAFTMQ_FAILPOINTS_BIN` if set, otherwise
/// `cargo build -p raftmq --bin raftmq --features failpoints`, hard-linked to
/// `raftmq-failpoints` beside cargo's output so a later plain build cannot replace it.
pub fn raftmq_failpoints_binary(workspace: &Path, release: bool) -> Result<PathBuf, ClusterError> {
    raftmq_binary_with(workspace, release, true)
}

/// Whether `binary` was built with the `failpoints` feature (`raftmq failpoints` succeeds).
pub fn has_failpoints(binary: &Path) -> bool {
    Command::new(binary)
        .arg("failpoints")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn raftmq_binary_with(
    workspace: &Path,
    release: bool,
    failpoints: bool,
) -> Result<PathBuf, ClusterError> {
    let var = if failpoints {
        "RAFTMQ_FAILPOINTS_BIN"
    } else {
        "RAFTMQ_BIN"
    };
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(ClusterError::Build(format!(
            "{var}={} is not a file",
            p.display()
        )));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args([
        "build",
        "-p",
        "raftmq",
        "--bin",
        "raftmq",
        "--message-format=json",
    ]);
    if release {
        cmd.arg("--release");
    }
    if failpoints {
        cmd.args(["--features", "failpoints"]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| ClusterError::Build(format!("running cargo: {e}")))?;
    if !out.status.success() {
        return Err(ClusterError::Build(format!(
            "cargo build exited {}",
            out.status
        )));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" && v["target"]["name"] == "raftmq" {
            if let Some(exe) = v["executable"].as_str() {
                let exe = PathBuf::from(exe);
                if !failpoints {
                    return Ok(exe);
                }
                let mut name = exe.file_name().unwrap_or_default().to_os_string();
                name.push("-failpoints");
                let link = exe.with_file_name(name);
                let _ = std::fs::remove_file(&link);
                std::fs::hard_link(&exe, &link)
                    .or_else(|_| std::fs::copy(&exe, &link).map(|_| ()))
                    .map_err(|e| ClusterError::Build(format!("{}: {e}", link.display())))?;
                if !has_failpoints(&link) {
                    return Err(ClusterError::Build(format!(
                        "{} lacks the failpoints feature: another build replaced {} in \
                         between; build again",
                        link.display(),
                        exe.display()
                    )));
                }
                return Ok(link);
            }
        }
    }
    Err(ClusterError::Build(
        "cargo reported no executable for the raftmq binary".into(),
    ))
}

/// One broker group to generate `broker.conf` files for.
#[derive(Debug, Clone)]
pub struct BrokerGroupSpec {
    /// `brokerName` and `dLegerGroup`, for example `broker-a`.
    pub name: String,
    /// `brokerClusterName`.
    pub cluster: String,
    /// `namesrvAddr`.
    pub namesrv: String,
    /// `flushDiskType`: `SYNC_FLUSH` (acknowledged once fsynced on a majority) or
    /// `ASYNC_FLUSH`.
    pub flush_disk_type: String,
    /// `mapedFileSizeCommitLog` in bytes.
    pub segment_bytes: u64,
    /// `mapedFileSizeConsumeQueue` in bytes (a multiple of 20).
    pub consume_queue_bytes: u64,
    /// `messageIndexEnable` (the key index preallocates about 400 MiB per node).
    pub message_index: bool,
}

/// Writes `DIR/broker.conf` for member `pos` of a group whose members are the cluster nodes
/// `members` (Raft ids `n0`, `n1`, ... in that order; Raft transport of member `k` on
/// `raft_ports[k]` of its node's address), and returns the arguments that run it
/// (`broker -c FILE`).
pub fn broker_command(
    cluster: &Cluster,
    members: &[usize],
    raft_ports: &[u16],
    pos: usize,
    spec: &BrokerGroupSpec,
) -> Result<Vec<OsString>, ClusterError> {
    if raft_ports.len() != members.len() {
        return Err(ClusterError::State {
            node: spec.name.clone(),
            reason: format!(
                "{} members but {} Raft ports",
                members.len(),
                raft_ports.len()
            ),
        });
    }
    let mut peers = Vec::new();
    let mut brokers = Vec::new();
    for (k, &m) in members.iter().enumerate() {
        let n = cluster.node(m)?;
        peers.push(format!("n{k}-{}:{}", n.ip, raft_ports[k]));
        brokers.push(format!("n{k}-{}", n.addr()));
    }
    let me = members.get(pos).copied().ok_or(ClusterError::NoNode {
        index: pos,
        len: members.len(),
    })?;
    write_broker_conf(cluster, me, spec, pos as u64, &peers, &brokers, false)
}

/// Writes `DIR/broker.conf` for cluster node `i` as Raft member `n<id>` of `spec`'s group
/// (`peers`: `dLegerPeers` entries, `brokers`: `peerBrokerAddrs` entries; `join`: a node
/// added to a running group, `dLegerJoin=true`) and returns the arguments that run it.
pub(crate) fn write_broker_conf(
    cluster: &Cluster,
    i: usize,
    spec: &BrokerGroupSpec,
    id: u64,
    peers: &[String],
    brokers: &[String],
    join: bool,
) -> Result<Vec<OsString>, ClusterError> {
    let node = cluster.node(i)?;
    let conf = node.data_dir.join("broker.conf");
    let (role, join_line) = if join {
        ("joins as a replacement node", "dLegerJoin=true\n")
    } else {
        ("initial member", "")
    };
    let text = format!(
        "# written by raftmq-jepsen: n{id} of {group} ({role})\n\
         brokerClusterName={cluster}\n\
         brokerName={group}\n\
         brokerIP1={ip}\n\
         listenPort={port}\n\
         namesrvAddr={namesrv}\n\
         storePathRootDir={store}\n\
         enableDLegerCommitLog=true\n\
         dLegerGroup={group}\n\
         dLegerPeers={peers}\n\
         dLegerSelfId=n{id}\n\
         {join_line}\
         peerBrokerAddrs={brokers}\n\
         flushDiskType={flush}\n\
         mapedFileSizeCommitLog={seg}\n\
         mapedFileSizeConsumeQueue={cq}\n\
         autoCreateTopicEnable=true\n\
         autoCreateSubscriptionGroup=true\n\
         messageIndexEnable={index}\n\
         # retention by age only: a full shared disk must not delete what the checker reads\n\
         diskSpaceCleanForciblyRatio=100\n",
        cluster = spec.cluster,
        group = spec.name,
        ip = node.ip,
        port = node.port,
        namesrv = spec.namesrv,
        store = node.data_dir.join("store").display(),
        peers = peers.join(";"),
        brokers = brokers.join(";"),
        flush = spec.flush_disk_type,
        seg = spec.segment_bytes,
        cq = spec.consume_queue_bytes,
        index = spec.message_index,
    );
    std::fs::write(&conf, text).map_err(io_err(&conf))?;
    Ok(vec!["broker".into(), "-c".into(), conf.into_os_string()])
}

/// Whether `binary` has a `broker` subcommand (`raftmq broker --help` succeeds).
pub fn has_broker_command(binary: &Path) -> bool {
    Command::new(binary)
        .args(["broker", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        // 500 draws from ~28k ephemeral ports repeat one with near certainty unless the
        // handed-out set prevents it.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let p = free_port().unwrap();
            assert!(seen.insert(p), "port {p} handed out twice");
        }
    }
}
