//! Server side of the peer transport: accepts peers and dispatches their requests to Raft.
//!
//! Each connection starts with a [`Hello`] handshake that must name this node's group and id
//! and must not come from this node itself; otherwise the server answers `HelloReject` and
//! closes. After that, requests are served concurrently (up to a bound per connection, beyond
//! which the server stops reading: back-pressure) and responses go back tagged with the
//! request's `req_id`, in completion order. A malformed frame closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use super::client::read_frame;
use super::frame::{self, Frame, FrameKind};
use super::{Hello, TransportConfig, TransportError};
use crate::codec;
use crate::types::typ;

/// Largest first frame accepted from a peer that has not completed the handshake.
const HELLO_MAX_FRAME: usize = 4096;

/// A bound, not yet serving, peer listener (so the address is known before Raft starts).
pub struct PeerListener {
    listener: TcpListener,
    cfg: Arc<TransportConfig>,
}

impl PeerListener {
    pub async fn bind(addr: &str, cfg: TransportConfig) -> std::io::Result<PeerListener> {
        let listener = TcpListener::bind(addr).await?;
        Ok(PeerListener {
            listener,
            cfg: Arc::new(cfg),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Start accepting peers; requests go to `raft`.
    pub fn serve(self, raft: typ::Raft) -> std::io::Result<PeerServer> {
        let local_addr = self.listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(self.listener, self.cfg, raft, stop_rx));
        Ok(PeerServer {
            local_addr,
            accept,
            _stop: stop_tx,
        })
    }
}

/// A serving peer listener; dropping it stops accepting and closes every peer connection.
pub struct PeerServer {
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
    /// Dropped with the server: every connection task watches it and exits.
    _stop: watch::Sender<bool>,
}

impl PeerServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    cfg: Arc<TransportConfig>,
    raft: typ::Raft,
    stop: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(cfg.max_inbound_connections));
    loop {
        let permit = match limit.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(cause = %e, "peer accept failed");
                // Bounded pause so a persistent accept error (e.g. EMFILE) does not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let cfg = cfg.clone();
        let raft = raft.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, remote, cfg.clone(), raft, stop).await {
                tracing::debug!(%remote, node = cfg.self_id, cause = %e, "peer connection ended");
            }
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    cfg: Arc<TransportConfig>,
    raft: typ::Raft,
    mut stop: watch::Receiver<bool>,
) -> Result<(), TransportError> {
    let addr = remote.to_string();
    let io_err = |source| TransportError::Io {
        addr: addr.clone(),
        source,
    };
    stream.set_nodelay(true).map_err(io_err)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(64 * 1024);

    // Handshake.
    let first = tokio::time::timeout(
        cfg.handshake_timeout,
        read_frame(&mut rd, &mut buf, HELLO_MAX_FRAME, &addr),
    )
    .await
    .map_err(|_| TransportError::Closed { addr: addr.clone() })??;
    let Some(first) = first else { return Ok(()) };
    let verdict = if first.kind != FrameKind::Hello {
        Err(format!("expected a hello frame, got {:?}", first.kind))
    } else {
        match codec::decode::<Hello>(&first.body, 4096) {
            Ok(h) => h.check(&cfg).map(|_| h),
            Err(e) => Err(format!("malformed hello: {e}")),
        }
    };
    let hello = match verdict {
        Ok(h) => {
            let ok = frame::encode(FrameKind::HelloOk, 0, &[], cfg.max_frame_bytes).map_err(
                |source| TransportError::Frame {
                    addr: addr.clone(),
                    source,
                },
            )?;
            wr.write_all(&ok).await.map_err(io_err)?;
            h
        }
        Err(reason) => {
            tracing::warn!(%remote, node = cfg.self_id, %reason, "refusing peer");
            let reason = reason.into_bytes();
            if let Ok(rej) = frame::encode(FrameKind::HelloReject, 0, &reason, cfg.max_frame_bytes)
            {
                let _ = wr.write_all(&rej).await;
                let _ = wr.shutdown().await;
            }
            return Err(TransportError::Rejected {
                addr,
                reason: "handshake refused".into(),
            });
        }
    };
    tracing::debug!(%remote, node = cfg.self_id, from = hello.from, "peer connected");

    let (tx, rx) = mpsc::channel::<Bytes>(cfg.max_inflight_per_connection);
    let writer = tokio::spawn(write_responses(wr, rx));
    let inflight = Arc::new(Semaphore::new(cfg.max_inflight_per_connection));
    // Set by a request task that could not decode its request: the connection is closed.
    let bad = Arc::new(tokio::sync::Notify::new());
    let result = loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, &mut buf, cfg.max_frame_bytes, &addr) => f,
            _ = stop.changed() => break Err(TransportError::Closed { addr: addr.clone() }),
            _ = bad.notified() => break Err(TransportError::Closed { addr: addr.clone() }),
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let Some(resp_kind) = frame.kind.response() else {
            break Err(TransportError::UnexpectedKind {
                addr: addr.clone(),
                got: frame.kind,
            });
        };
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            break Ok(());
        };
        let raft = raft.clone();
        let tx = tx.clone();
        let cfg = cfg.clone();
        let bad = bad.clone();
        tokio::spawn(async move {
            let req_id = frame.req_id;
            match handle(&raft, frame, cfg.max_frame_bytes).await {
                Ok(body) => match frame::encode(resp_kind, req_id, &body, cfg.max_frame_bytes) {
                    Ok(bytes) => {
                        let _ = tx.send(bytes).await;
                    }
                    Err(e) => {
                        tracing::error!(cause = %e, req_id, "response exceeds the frame limit")
                    }
                },
                Err(e) => {
                    tracing::warn!(cause = %e, req_id, "undecodable peer request; closing the connection");
                    bad.notify_one();
                }
            }
            drop(permit);
        });
    };
    drop(tx);
    if result.is_err() {
        writer.abort();
    }
    result
}

/// Decode one request, call Raft, encode its `Result` (a Raft error travels to the caller).
async fn handle(
    raft: &typ::Raft,
    frame: Frame,
    max_frame: usize,
) -> Result<Vec<u8>, TransportError> {
    let limit = max_frame as u64;
    let body = match frame.kind {
        FrameKind::AppendEntries => {
            let req: typ::AppendEntriesRequest = codec::decode(&frame.body, limit)?;
            codec::encode(&raft.append_entries(req).await)?
        }
        FrameKind::Vote => {
            let req: typ::VoteRequest = codec::decode(&frame.body, limit)?;
            codec::encode(&raft.vote(req).await)?
        }
        FrameKind::InstallSnapshot => {
            let req: typ::InstallSnapshotRequest = codec::decode(&frame.body, limit)?;
            codec::encode(&raft.install_snapshot(req).await)?
        }
        FrameKind::Admin => {
            let req: super::AdminRequest = codec::decode(&frame.body, limit)?;
            tracing::info!(node = raft_id(raft), ?req, "admin request from a peer");
            codec::encode(&req.execute(raft).await)?
        }
        other => {
            return Err(TransportError::UnexpectedKind {
                addr: String::new(),
                got: other,
            })
        }
    };
    Ok(body)
}

fn raft_id(raft: &typ::Raft) -> crate::types::NodeId {
    raft.metrics().borrow().id
}

async fn write_responses(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    let mut wr = BufWriter::new(wr);
    while let Some(first) = rx.recv().await {
        let mut res = wr.write_all(&first).await;
        while res.is_ok() {
            match rx.try_recv() {
                Ok(more) => res = wr.write_all(&more).await,
                Err(_) => break,
            }
        }
        if res.is_ok() {
            res = wr.flush().await;
        }
        if res.is_err() {
            return;
        }
    }
}
