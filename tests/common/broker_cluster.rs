//! Test harness: a real `raftmq namesrv` and a group of real `raftmq broker` processes on
//! 127.0.0.1 with ephemeral ports and a temporary directory, plus the few RocketMQ requests
//! the broker tests make (send, pull, offsets) written out over `RemotingClient`.
//!
//! Every process started here is killed when the cluster is dropped (only those).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftmq::remoting::{ClientConfig, RemotingClient, RemotingCommand, RequestCode};
use raftmq_store::message::{iter_batch, MessageView};
use serde_json::Value;

pub const RPC: Duration = Duration::from_secs(10);

/// One request within `RPC`; a transport failure fails the test.
pub async fn rpc(c: &RemotingClient, req: RemotingCommand) -> RemotingCommand {
    c.invoke(req, RPC).await.expect("request failed")
}

/// A free loopback port (bound and released), never one this test process handed out
/// before: ports are picked before the nodes start, and the kernel readily gives a
/// just-released port out again (15 repeats in 500 draws on this VM).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Spawn the binary and read its one-line banner `<prefix> <addr>` from stdout.
fn spawn(args: &[&str], prefix: &str, log: PathBuf) -> (Child, String) {
    try_spawn(args, prefix, log).unwrap_or_else(|e| panic!("{e}"))
}

/// As [`spawn`], with the failure (and the process's log tail) as an error.
fn try_spawn(args: &[&str], prefix: &str, log: PathBuf) -> Result<(Child, String), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.strip_prefix(&prefix) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => Ok((child, addr)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            // The last lines that are not backtrace frames, oldest first.
            let mut tail: Vec<&str> = text
                .lines()
                .rev()
                .filter(|l| {
                    let t = l.trim_start();
                    !(t.starts_with("at ")
                        || t.split_once(':')
                            .is_some_and(|(n, _)| n.parse::<u32>().is_ok()))
                })
                .take(15)
                .collect();
            tail.reverse();
            // Named up front: a backtrace can push the cause out of the tail, and callers
            // retry on other ports when a port was taken.
            let busy = if text.contains("Address already in use") {
                "Address already in use: "
            } else {
                ""
            };
            Err(format!(
                "{busy}{args:?} printed no banner ({e}); log tail:\n{}",
                tail.join("\n")
            ))
        }
    }
}

pub struct Node {
    pub id: usize,
    pub conf: PathBuf,
    pub addr: String,
    pub child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub namesrv: String,
    ns_child: Child,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// A nameserver and an `n`-node group `broker-a`.
    pub fn start(n: usize) -> Cluster {
        Self::start_with(n, "")
    }

    /// As [`Cluster::start`], with extra `broker.conf` lines for every node. Ports are picked
    /// free and released before the nodes bind them, so a concurrent test can take one in
    /// between: then the whole cluster is started again on other ports (at most 3 times).
    pub fn start_with(n: usize, extra: &str) -> Cluster {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(n, extra) {
                Ok(c) => return c,
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no free ports after 3 attempts: {last}");
    }

    fn try_start(n: usize, extra: &str) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().unwrap();
        let ns_conf = dir.path().join("namesrv.conf");
        std::fs::write(
            &ns_conf,
            format!(
                "bindAddress=127.0.0.1\nlistenPort=0\nkvConfigPath={}\n",
                dir.path().join("kvConfig.json").display()
            ),
        )
        .unwrap();
        let ns_conf = ns_conf.to_string_lossy().to_string();
        let (ns_child, namesrv) = spawn(
            &["namesrv", "-c", &ns_conf],
            "raftmq namesrv listening on",
            dir.path().join("namesrv.log"),
        );
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, r))| format!("n{i}-127.0.0.1:{r}"))
            .collect();
        let brokers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (b, _))| format!("n{i}-127.0.0.1:{b}"))
            .collect();
        let mut nodes = vec![];
        for (i, (port, _)) in ports.iter().enumerate() {
            let conf = dir.path().join(format!("broker-a-n{i}.conf"));
            let text = format!(
                "brokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerIP1=127.0.0.1\n\
                 listenPort={port}\nnamesrvAddr={namesrv}\nstorePathRootDir={}\n\
                 dLegerGroup=broker-a\ndLegerPeers={}\ndLegerSelfId=n{i}\npeerBrokerAddrs={}\n\
                 mapedFileSizeCommitLog=8388608\nmaxMessageSize=65536\n{extra}\n",
                dir.path().join(format!("store-n{i}")).display(),
                peers.join(";"),
                brokers.join(";"),
            );
            std::fs::write(&conf, text).unwrap();
            nodes.push(Node {
                id: i,
                conf,
                addr: format!("127.0.0.1:{port}"),
                child: None,
            });
        }
        let mut c = Cluster {
            dir,
            namesrv,
            ns_child,
            nodes,
        };
        for i in 0..n {
            c.try_start_node(i)?;
        }
        Ok(c)
    }

    /// (Re)start node `i` from its config file.
    pub fn start_node(&mut self, i: usize) {
        self.try_start_node(i).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_node(&mut self, i: usize) -> Result<(), String> {
        let log = self.dir.path().join(format!("broker-n{i}.log"));
        let log = {
            // Keep earlier logs of the node when it restarts.
            let mut p = log.clone();
            let mut k = 0;
            while p.exists() {
                k += 1;
                p = self.dir.path().join(format!("broker-n{i}.{k}.log"));
            }
            p
        };
        let conf = self.nodes[i].conf.to_string_lossy().to_string();
        let (child, addr) = try_spawn(&["broker", "-c", &conf], "raftmq broker listening on", log)?;
        assert_eq!(addr, self.nodes[i].addr);
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// `kill -9` node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM node `i` and wait for its exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let pid = c.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    c.kill().unwrap();
                    c.wait().unwrap();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn client(addr: &str) -> RemotingClient {
        RemotingClient::new(addr.to_string(), ClientConfig::default())
    }

    /// The address the nameserver routes `topic` writes to (brokerId 0), once it has one
    /// other than `not`.
    pub async fn leader_addr(&self, not: Option<&str>, timeout: Duration) -> String {
        let ns = Self::client(&self.namesrv);
        let deadline = Instant::now() + timeout;
        loop {
            let req = RemotingCommand::request(RequestCode::GetRouteinfoByTopic)
                .with_ext("topic", "TBW102");
            if let Ok(resp) = ns.invoke(req, RPC).await {
                if resp.code == 0 {
                    let v: Value = serde_json::from_slice(resp.body.as_deref().unwrap()).unwrap();
                    if let Some(a) = v["brokerDatas"][0]["brokerAddrs"]["0"].as_str() {
                        if Some(a) != not && self.nodes.iter().any(|n| n.addr == a) {
                            return a.to_string();
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader in the nameserver route"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = self.ns_child.kill();
        let _ = self.ns_child.wait();
        if std::thread::panicking() {
            if let Ok(fresh) = tempfile::tempdir() {
                let kept = std::mem::replace(&mut self.dir, fresh).keep();
                eprintln!("cluster files and logs kept in {}", kept.display());
            }
        }
    }
}

/// RocketMQ properties string.
pub fn props(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
        .collect()
}

/// A SEND_MESSAGE_V2 request (queueId -1: the broker picks).
pub fn send_req(topic: &str, queue_id: i32, properties: &str, body: &[u8]) -> RemotingCommand {
    RemotingCommand::request(RequestCode::SendMessageV2)
        .with_ext("a", "PG")
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", queue_id)
        .with_ext("f", 0)
        .with_ext("g", 1_700_000_000_000i64)
        .with_ext("h", 0)
        .with_ext("i", properties)
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_body(body.to_vec())
}

/// A pull with the subscription in the request (FLAG_SUBSCRIPTION, plus FLAG_SUSPEND when
/// `suspend_ms` > 0).
pub fn pull_req(
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    sub: &str,
    suspend_ms: i64,
) -> RemotingCommand {
    let flags = 0x4 | if suspend_ms > 0 { 0x2 } else { 0 };
    RemotingCommand::request(RequestCode::PullMessage)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", 32)
        .with_ext("sysFlag", flags)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", suspend_ms)
        .with_ext("subscription", sub)
        .with_ext("subVersion", 0)
        .with_ext("expressionType", "TAG")
}

/// One pulled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub queue_offset: i64,
    pub body: Vec<u8>,
    pub tags: Option<String>,
    pub keys: Vec<String>,
    pub uniq: Option<String>,
    pub phys: i64,
}

pub fn decode(body: &[u8]) -> Vec<Pulled> {
    iter_batch(body)
        .map(|r| {
            let (_, v): (usize, MessageView<'_>) = r.unwrap();
            assert!(v.body_crc_ok());
            Pulled {
                queue_offset: v.queue_offset(),
                body: v.body().to_vec(),
                tags: v.tags().map(String::from),
                keys: v.keys().map(String::from).collect(),
                uniq: v.uniq_key().map(String::from),
                phys: v.physical_offset(),
            }
        })
        .collect()
}

/// Pull every message of `topic` (all `queues`) matching `sub` from `addr`, from offset 0.
pub async fn drain(
    addr: &str,
    topic: &str,
    queues: i32,
    sub: &str,
) -> BTreeMap<(i32, i64), Pulled> {
    let c = Cluster::client(addr);
    let mut out = BTreeMap::new();
    for q in 0..queues {
        let mut offset = 0;
        for _ in 0..10_000 {
            let resp = c
                .invoke(pull_req("drain", topic, q, offset, sub, 0), RPC)
                .await
                .unwrap();
            if [2, 17].contains(&resp.code) {
                // Busy or the topic not known (yet) on this node.
                break;
            }
            let next: i64 = resp.ext_fields["nextBeginOffset"].parse().unwrap();
            match resp.code {
                0 => {
                    for m in decode(resp.body.as_deref().unwrap()) {
                        out.insert((q, m.queue_offset), m);
                    }
                }
                20 => {}
                19 | 21 => break,
                other => panic!("pull {topic}:{q}@{offset}: code {other} {:?}", resp.remark),
            }
            offset = next;
        }
    }
    out
}
