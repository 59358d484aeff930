//! Client side of the peer transport: openraft's `RaftNetworkFactory` / `RaftNetwork` over TCP.
//!
//! One [`PeerClient`] per target owns one persistent connection, shared by every `RaftNetwork`
//! openraft creates for that target (replication stream, votes, snapshots). Requests are
//! pipelined: each gets a `req_id`, and a reader task routes responses back by id. The
//! connection is made lazily with a handshake; after a failure the next attempt waits an
//! exponentially growing backoff, and requests arriving meanwhile fail at once as
//! `Unreachable`. Every request is bounded by `RPCOption::hard_ttl()`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use openraft::error::{InstallSnapshotError, RPCError, RaftError};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::frame::{self, Frame, FrameKind};
use super::{timeout_error, to_rpc_error, Hello, TransportConfig, TransportError};
use crate::codec;
use crate::types::{typ, NodeId, PeerNode, TypeConfig};

/// Creates [`TcpNetwork`] clients; shares one connection per target between them.
#[derive(Clone)]
pub struct TcpNetworkFactory {
    shared: Arc<FactoryShared>,
}

struct FactoryShared {
    cfg: Arc<TransportConfig>,
    /// Set by [`TcpNetworkFactory::close`]: every later request fails as unreachable.
    closed: AtomicBool,
    peers: Mutex<HashMap<NodeId, Arc<PeerClient>>>,
}

impl TcpNetworkFactory {
    pub fn new(cfg: TransportConfig) -> Self {
        TcpNetworkFactory {
            shared: Arc::new(FactoryShared {
                cfg: Arc::new(cfg),
                closed: AtomicBool::new(false),
                peers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The shared client of `target` at `addr` (replaced if the address changed).
    pub fn peer(&self, target: NodeId, addr: &str) -> Arc<PeerClient> {
        let mut peers = self.shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get(&target) {
            if p.addr == addr {
                return p.clone();
            }
        }
        let p = Arc::new(PeerClient::new(
            target,
            addr.to_string(),
            self.shared.cfg.clone(),
        ));
        peers.insert(target, p.clone());
        p
    }

    /// Send an administrative request to `target` at `addr`.
    pub async fn admin(
        &self,
        target: NodeId,
        addr: &str,
        req: super::AdminRequest,
        timeout: Duration,
    ) -> Result<(), String> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err("transport closed".into());
        }
        let peer = self.peer(target, addr);
        let call = async {
            let body = codec::encode(&req).map_err(|e| e.to_string())?;
            let f = peer
                .call(FrameKind::Admin, &body)
                .await
                .map_err(|e| e.to_string())?;
            if f.kind != FrameKind::AdminResponse {
                return Err(format!("unexpected response {:?}", f.kind));
            }
            let res: Result<(), String> =
                codec::decode(&f.body, 1 << 20).map_err(|e| e.to_string())?;
            res
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| format!("admin request to n{target} timed out"))?
    }

    /// Refuse every further request and drop every connection (a stopped node).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.disconnect_all();
    }

    /// Drop every connection (they reconnect on the next request).
    pub fn disconnect_all(&self) {
        let peers = self.shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        for p in peers.values() {
            p.disconnect();
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for TcpNetworkFactory {
    type Network = TcpNetwork;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> TcpNetwork {
        TcpNetwork {
            target,
            node: node.clone(),
            self_id: self.shared.cfg.self_id,
            peer: self.peer(target, &node.raft_addr),
            shared: self.shared.clone(),
        }
    }
}

/// openraft's view of one target.
pub struct TcpNetwork {
    target: NodeId,
    node: PeerNode,
    self_id: NodeId,
    peer: Arc<PeerClient>,
    shared: Arc<FactoryShared>,
}

impl TcpNetwork {
    async fn rpc<Req, Resp, E>(
        &self,
        action: RPCTypes,
        kind: FrameKind,
        req: &Req,
        entries: usize,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, PeerNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.target == self.self_id {
            return Err(to_rpc_error(
                TransportError::SelfTarget(self.target),
                action,
                entries,
            ));
        }
        if self.shared.closed.load(Ordering::SeqCst) {
            let closed = TransportError::Closed {
                addr: self.peer.addr.clone(),
            };
            return Err(to_rpc_error(closed, action, entries));
        }
        let ttl = option.hard_ttl();
        let call = async {
            let body = codec::encode(req)?;
            let frame = self.peer.call(kind, &body).await?;
            let expected = kind.response();
            if Some(frame.kind) != expected {
                return Err(TransportError::UnexpectedKind {
                    addr: self.peer.addr.clone(),
                    got: frame.kind,
                });
            }
            let res: Result<Resp, RaftError<NodeId, E>> =
                codec::decode(&frame.body, self.peer.cfg.max_frame_bytes as u64)?;
            Ok(res)
        };
        match tokio::time::timeout(ttl, call).await {
            Err(_) => Err(timeout_error(action, self.self_id, self.target, ttl)),
            Ok(Err(e)) => {
                if matches!(e, TransportError::RequestTooLarge { .. }) && entries <= 1 {
                    tracing::error!(target_node = self.target, cause = %e, ?action,
                        "a single request exceeds the frame limit; raise max_frame_bytes");
                } else {
                    tracing::debug!(target_node = self.target, cause = %e, ?action, "peer rpc failed");
                }
                Err(to_rpc_error(e, action, entries))
            }
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(remote))) => Err(RPCError::RemoteError(
                openraft::error::RemoteError::new_with_node(self.target, self.node.clone(), remote),
            )),
        }
    }
}

impl RaftNetwork<TypeConfig> for TcpNetwork {
    async fn append_entries(
        &mut self,
        rpc: typ::AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<typ::AppendEntriesResponse, typ::RPCError> {
        let n = rpc.entries.len();
        self.rpc(
            RPCTypes::AppendEntries,
            FrameKind::AppendEntries,
            &rpc,
            n,
            &option,
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: typ::InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<typ::InstallSnapshotResponse, typ::RPCError<InstallSnapshotError>> {
        self.rpc(
            RPCTypes::InstallSnapshot,
            FrameKind::InstallSnapshot,
            &rpc,
            0,
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: typ::VoteRequest,
        option: RPCOption,
    ) -> Result<typ::VoteResponse, typ::RPCError> {
        self.rpc(RPCTypes::Vote, FrameKind::Vote, &rpc, 0, &option)
            .await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

/// The connection (and reconnect state) to one target.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    cfg: Arc<TransportConfig>,
    next_req_id: AtomicU64,
    /// A tokio mutex: it is held across connect + handshake so that concurrent requests wait
    /// for one attempt instead of each dialling.
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    conn: Option<Arc<Conn>>,
    failures: u32,
    retry_at: Option<Instant>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Frame>>>>;

struct Conn {
    tx: mpsc::Sender<Bytes>,
    pending: Pending,
    alive: Arc<AtomicBool>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

fn fail_all(alive: &AtomicBool, pending: &Pending) {
    alive.store(false, Ordering::SeqCst);
    // Dropping the senders wakes every waiter with an error.
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// Removes a request's pending slot when the caller stops waiting (e.g. on timeout).
struct PendingGuard<'a> {
    pending: &'a Pending,
    req_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.req_id);
    }
}

impl PeerClient {
    fn new(target: NodeId, addr: String, cfg: Arc<TransportConfig>) -> Self {
        PeerClient {
            target,
            addr,
            cfg,
            next_req_id: AtomicU64::new(1),
            slot: tokio::sync::Mutex::new(Slot::default()),
        }
    }

    /// Close the current connection, if any.
    pub fn disconnect(&self) {
        if let Ok(mut slot) = self.slot.try_lock() {
            slot.conn = None;
        }
    }

    /// Send one request frame and wait for its response frame.
    pub async fn call(&self, kind: FrameKind, body: &[u8]) -> Result<Frame, TransportError> {
        let req_id = self.next_req_id.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode(kind, req_id, body, self.cfg.max_frame_bytes).map_err(|_| {
            TransportError::RequestTooLarge {
                size: body.len() + frame::LEN_BYTES + frame::META_BYTES,
                max: self.cfg.max_frame_bytes,
            }
        })?;
        let conn = self.connection().await?;
        let (tx, rx) = oneshot::channel();
        conn.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req_id, tx);
        let _guard = PendingGuard {
            pending: &conn.pending,
            req_id,
        };
        let closed = || TransportError::Closed {
            addr: self.addr.clone(),
        };
        if !conn.alive.load(Ordering::SeqCst) {
            return Err(closed());
        }
        conn.tx.send(bytes).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())
    }

    async fn connection(&self) -> Result<Arc<Conn>, TransportError> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = &slot.conn {
            if c.alive.load(Ordering::SeqCst) {
                return Ok(c.clone());
            }
            slot.conn = None;
        }
        if let Some(at) = slot.retry_at {
            if Instant::now() < at {
                return Err(TransportError::BackingOff {
                    addr: self.addr.clone(),
                    failures: slot.failures,
                });
            }
        }
        match self.connect().await {
            Ok(conn) => {
                if slot.failures > 0 {
                    tracing::info!(target_node = self.target, addr = %self.addr, "peer reconnected");
                }
                slot.failures = 0;
                slot.retry_at = None;
                let conn = Arc::new(conn);
                slot.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                slot.failures = slot.failures.saturating_add(1);
                let shift = slot.failures.saturating_sub(1).min(16);
                let wait = self
                    .cfg
                    .backoff_min
                    .saturating_mul(1u32 << shift)
                    .min(self.cfg.backoff_max);
                slot.retry_at = Some(Instant::now() + wait);
                if slot.failures == 1 || slot.failures % 50 == 0 {
                    tracing::warn!(target_node = self.target, addr = %self.addr, cause = %e,
                        failures = slot.failures, "cannot reach peer");
                }
                Err(e)
            }
        }
    }

    async fn connect(&self) -> Result<Conn, TransportError> {
        let cerr = |source| TransportError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let stream =
            match tokio::time::timeout(self.cfg.connect_timeout, TcpStream::connect(&self.addr))
                .await
            {
                Err(_) => {
                    return Err(cerr(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connect timed out",
                    )))
                }
                Ok(r) => r.map_err(cerr)?,
            };
        stream.set_nodelay(true).map_err(cerr)?;
        let (mut rd, mut wr) = stream.into_split();
        let hello = Hello {
            version: frame::PROTOCOL_VERSION,
            group: self.cfg.group.clone(),
            from: self.cfg.self_id,
            to: self.target,
        };
        let hs = async {
            let body = codec::encode(&hello)?;
            let f = frame::encode(FrameKind::Hello, 0, &body, self.cfg.max_frame_bytes).map_err(
                |source| TransportError::Frame {
                    addr: self.addr.clone(),
                    source,
                },
            )?;
            wr.write_all(&f).await.map_err(cerr)?;
            let mut buf = BytesMut::with_capacity(256);
            let reply = read_frame(&mut rd, &mut buf, self.cfg.max_frame_bytes, &self.addr)
                .await?
                .ok_or_else(|| TransportError::Closed {
                    addr: self.addr.clone(),
                })?;
            match reply.kind {
                FrameKind::HelloOk => Ok(buf),
                FrameKind::HelloReject => Err(TransportError::Rejected {
                    addr: self.addr.clone(),
                    reason: String::from_utf8_lossy(&reply.body).into_owned(),
                }),
                got => Err(TransportError::UnexpectedKind {
                    addr: self.addr.clone(),
                    got,
                }),
            }
        };
        let buf = match tokio::time::timeout(self.cfg.handshake_timeout, hs).await {
            Err(_) => {
                return Err(cerr(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "handshake timed out",
                )))
            }
            Ok(r) => r?,
        };

        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel::<Bytes>(self.cfg.max_inflight_per_connection);
        let reader = tokio::spawn(read_loop(
            rd,
            buf,
            pending.clone(),
            alive.clone(),
            self.cfg.max_frame_bytes,
            self.addr.clone(),
        ));
        let writer = tokio::spawn(write_loop(
            wr,
            rx,
            pending.clone(),
            alive.clone(),
            self.addr.clone(),
        ));
        Ok(Conn {
            tx,
            pending,
            alive,
            reader,
            writer,
        })
    }
}

/// Read one frame (`Ok(None)` on a clean EOF between frames).
pub(crate) async fn read_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max_frame: usize,
    addr: &str,
) -> Result<Option<Frame>, TransportError> {
    loop {
        if let Some(f) = frame::parse(buf, max_frame).map_err(|source| TransportError::Frame {
            addr: addr.to_string(),
            source,
        })? {
            return Ok(Some(f));
        }
        let n = rd
            .read_buf(buf)
            .await
            .map_err(|source| TransportError::Io {
                addr: addr.to_string(),
                source,
            })?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(TransportError::Closed {
                addr: addr.to_string(),
            });
        }
    }
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    pending: Pending,
    alive: Arc<AtomicBool>,
    max_frame: usize,
    addr: String,
) {
    loop {
        match read_frame(&mut rd, &mut buf, max_frame, &addr).await {
            Ok(Some(f)) => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&f.req_id);
                // A missing waiter gave up (timeout); its late response is dropped.
                if let Some(w) = waiter {
                    let _ = w.send(f);
                }
            }
            Ok(None) => {
                tracing::debug!(%addr, "peer closed the connection");
                break;
            }
            Err(e) => {
                tracing::debug!(%addr, cause = %e, "peer connection read failed");
                break;
            }
        }
    }
    fail_all(&alive, &pending);
}

async fn write_loop(
    wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    pending: Pending,
    alive: Arc<AtomicBool>,
    addr: String,
) {
    let mut wr = BufWriter::new(wr);
    while let Some(first) = rx.recv().await {
        let mut res = wr.write_all(&first).await;
        // Coalesce whatever is already queued into one flush.
        while res.is_ok() {
            match rx.try_recv() {
                Ok(more) => res = wr.write_all(&more).await,
                Err(_) => break,
            }
        }
        if res.is_ok() {
            res = wr.flush().await;
        }
        if let Err(e) = res {
            tracing::debug!(%addr, cause = %e, "peer connection write failed");
            break;
        }
    }
    fail_all(&alive, &pending);
}
