//! Network namespaces for the harness: creating and deleting them, running commands and
//! threads inside them, and the private bridged network that connects a cluster's nodes.
//!
//! Everything here happens inside namespaces this module creates. The host's interfaces,
//! addresses and routes are never touched: veth pairs are created with both ends already in
//! harness namespaces (`ip -n HUB link add ... peer ... netns NODE`), and the private /24
//! ([`SUBNET`]) exists only on those interfaces. Nothing leaves the machine.
//!
//! It knows nothing of raftmq processes or faults; cluster control and the nemeses use it.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

/// The first three octets of the private network inside a harness topology.
pub const SUBNET: [u8; 3] = [10, 77, 0];

/// Address of the hub's bridge, where the harness's own clients run.
pub const HUB_ADDR: Ipv4Addr = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 1);

/// Interface name of a node's end of its veth pair.
pub const NODE_IF: &str = "eth0";

/// Errors from namespace and network commands.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A command could not be started (program missing?).
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    /// Entering a namespace with setns(2) failed.
    #[error("entering network namespace {name}: {source}")]
    Enter {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// The kernel lacks a feature a fault needs (for example the netem qdisc).
    #[error("{what} is not available in this kernel: {detail}")]
    Unsupported { what: String, detail: String },
    /// A thread running inside a namespace panicked.
    #[error("thread inside network namespace {name} panicked")]
    ThreadPanicked { name: String },
}

/// Renders a command for error messages.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion; its stdout on success, a [`NetError`] with stderr otherwise.
pub fn run(cmd: &mut Command) -> Result<String, NetError> {
    let command = describe(cmd);
    let out = cmd.output().map_err(|source| NetError::Spawn {
        command: command.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Failed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip ARGS...`.
pub fn ip(args: &[&str]) -> Result<String, NetError> {
    run(Command::new("ip").args(args))
}

/// A network namespace created by the harness, deleted (with every interface inside it) when
/// dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// `ip netns add NAME`, then brings up its loopback. Fails if the name exists.
    pub fn create(name: &str) -> Result<Netns, NetError> {
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<String, NetError> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// A command that runs `program` inside this namespace (`ip netns exec NAME program`).
    /// `ip netns exec` replaces itself with the program, so the child's pid is the program's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `program ARGS...` inside this namespace to completion.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, NetError> {
        run(self.command(program).args(args))
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    /// Sockets opened by `f` live in the namespace.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
        run_in_netns(&self.name, f)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            tracing::warn!(netns = %self.name, error = %e, "could not delete network namespace");
        }
    }
}

/// Moves the calling thread into the named network namespace (setns(2) on
/// `/run/netns/NAME`). Threads it spawns afterwards inherit the namespace.
pub fn enter_netns(name: &str) -> Result<(), NetError> {
    let path = format!("/run/netns/{name}");
    let enter = |source| NetError::Enter {
        name: name.to_owned(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(enter)?;
    // SAFETY: setns only reads the descriptor, which stays open for the call; it changes the
    // network namespace of this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(enter(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Runs `f` on a scoped thread inside namespace `name` and returns its result.
pub fn run_in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            enter_netns(name)?;
            Ok(f())
        });
        handle.join().map_err(|_| NetError::ThreadPanicked {
            name: name.to_owned(),
        })?
    })
}

/// A private network: a hub namespace holding a bridge (address [`HUB_ADDR`]), and one
/// namespace per node attached to it by a veth pair, node `i` at `10.77.0.(10+i)`.
/// Dropping it deletes every namespace, which removes the veths and the bridge with them.
#[derive(Debug)]
pub struct Topology {
    // Nodes first: they are dropped before the hub.
    nodes: Vec<Netns>,
    hub: Netns,
}

impl Topology {
    /// Namespace of the hub for `prefix`.
    pub fn hub_name(prefix: &str) -> String {
        format!("{prefix}-hub")
    }

    /// Namespace of node `i` for `prefix`.
    pub fn node_name(prefix: &str, i: usize) -> String {
        format!("{prefix}-n{i}")
    }

    /// Address of node `i` (at most 200 nodes).
    pub fn node_addr(i: usize) -> Ipv4Addr {
        let last = u8::try_from(10 + i.min(200)).unwrap_or(u8::MAX);
        Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], last)
    }

    /// Builds the hub and `nodes` node namespaces named after `prefix` (which must be unique
    /// on this machine; see [`unique_prefix`]). On error, whatever was created is deleted.
    pub fn create(prefix: &str, nodes: usize) -> Result<Topology, NetError> {
        let hub = Netns::create(&Self::hub_name(prefix))?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])?;
        hub.ip(&["addr", "add", &format!("{HUB_ADDR}/24"), "dev", "br0"])?;
        hub.ip(&["link", "set", "br0", "up"])?;
        let mut topo = Topology {
            nodes: Vec::with_capacity(nodes),
            hub,
        };
        for i in 0..nodes {
            let ns = Netns::create(&Self::node_name(prefix, i))?;
            let hub_if = format!("v{i}");
            topo.hub.ip(&[
                "link",
                "add",
                &hub_if,
                "type",
                "veth",
                "peer",
                "name",
                NODE_IF,
                "netns",
                ns.name(),
            ])?;
            topo.nodes.push(ns);
            let ns = &topo.nodes[i];
            topo.hub.ip(&["link", "set", &hub_if, "master", "br0"])?;
            topo.hub.ip(&["link", "set", &hub_if, "up"])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/24", Self::node_addr(i)),
                "dev",
                NODE_IF,
            ])?;
            ns.ip(&["link", "set", NODE_IF, "up"])?;
            ns.ip(&["route", "add", "default", "via", &HUB_ADDR.to_string()])?;
        }
        Ok(topo)
    }

    pub fn hub(&self) -> &Netns {
        &self.hub
    }

    pub fn nodes(&self) -> &[Netns] {
        &self.nodes
    }

    pub fn node(&self, i: usize) -> Option<&Netns> {
        self.nodes.get(i)
    }
}

/// A namespace-name prefix unique to this process and moment: `rj<pid>x<nanos>`, short enough
/// for interface-name limits, distinct across concurrent test runs.
pub fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "rj{}x{:x}{}",
        std::process::id(),
        nanos % 0x10000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every namespace whose name starts with `prefix` (leftovers of a crashed run).
/// Returns how many were deleted.
pub fn delete_leftovers(prefix: &str) -> Result<usize, NetError> {
    let list = ip(&["netns", "list"])?;
    let mut n = 0;
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name.starts_with(prefix) {
            ip(&["netns", "delete", name])?;
            n += 1;
        }
    }
    Ok(n)
}

/// Deletes harness namespaces (`rj<pid>x...`) whose creating process no longer runs: what an
/// interrupted run left behind. Namespaces of live runs are kept. Returns the names deleted.
pub fn delete_stale() -> Result<Vec<String>, NetError> {
    let list = ip(&["netns", "list"])?;
    let mut gone = Vec::new();
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("rj")
            .and_then(|rest| rest.split('x').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            ip(&["netns", "delete", name])?;
            gone.push(name.to_owned());
        }
    }
    Ok(gone)
}

/// Whether this process may create network namespaces (tries one and deletes it).
pub fn namespaces_available() -> bool {
    let name = format!("{}-probe", unique_prefix());
    Netns::create(&name).is_ok()
}

/// Connects to `addr` over TCP from inside `ns` (or the current namespace when `None`).
pub fn tcp_connect_in(
    ns: Option<&str>,
    addr: std::net::SocketAddr,
    timeout: Duration,
) -> Result<std::io::Result<()>, NetError> {
    let f = || std::net::TcpStream::connect_timeout(&addr, timeout).map(|_| ());
    match ns {
        Some(name) => run_in_netns(name, f),
        None => Ok(f()),
    }
}
