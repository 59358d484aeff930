//! The remoting TCP server: accept loop, connection limit, graceful shutdown.
//!
//! Each accepted socket runs the connection driver of `connection` in its own task, with
//! the shared [`Processor`]. Shutdown follows the broadcast + completion idiom: a `watch` signal tells
//! the accept loop and every connection to stop, and each connection task holds a clone of a
//! completion sender, so [`ServerHandle::shutdown`] returns once the last one has finished.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::codec::{FrameCodec, DEFAULT_MAX_FRAME};
use super::connection::{run_connection, shutdown_signal, ConnOptions, Processor};
use super::error::RemotingError;

/// Server settings. Defaults follow the Java server where it has one.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted or sent, including the length word. Default 16 MiB.
    pub max_frame: usize,
    /// Connections served at once; further connections are accepted and closed at once with a
    /// warning, so clients fail fast instead of hanging in the backlog. Default 10 000.
    pub max_connections: usize,
    /// Close a connection with no frame read or written for this long. Default 120 s
    /// (`serverChannelMaxIdleTimeSeconds`); clients heartbeat every 30 s.
    pub idle_timeout: Option<Duration>,
    /// Requests processed concurrently per connection; further requests are answered
    /// SYSTEM_BUSY (`[OVERLOAD]...`, which clients treat as retryable). Default 1024.
    pub max_inflight_per_connection: usize,
    /// On shutdown, how long in-flight requests may still be answered. Default 3 s.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 10_000,
            idle_timeout: Some(Duration::from_secs(120)),
            max_inflight_per_connection: 1024,
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

impl ServerConfig {
    fn conn_options(&self) -> ConnOptions {
        ConnOptions {
            codec: FrameCodec::new(self.max_frame),
            idle_timeout: self.idle_timeout,
            max_inflight: self.max_inflight_per_connection,
            write_queue: 1024,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// Entry point: see [`RemotingServer::bind`].
#[derive(Debug)]
pub struct RemotingServer;

/// A running server. Dropping it signals shutdown without waiting; call
/// [`ServerHandle::shutdown`] to wait for every connection to finish.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RemotingServer {
    /// Binds `addr` (use port 0 for an ephemeral port) and starts serving with `processor`.
    pub async fn bind(
        addr: &str,
        processor: Arc<dyn Processor>,
        config: ServerConfig,
    ) -> Result<ServerHandle, RemotingError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RemotingError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| RemotingError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        info!(%local_addr, "remoting server listening");
        let task = tokio::spawn(accept_loop(listener, processor, config, shutdown_rx));
        Ok(ServerHandle {
            local_addr,
            shutdown_tx,
            task: Some(task),
        })
    }
}

impl ServerHandle {
    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every connection (in-flight requests get
    /// `shutdown_grace` to be answered) and waits until all connection tasks have ended.
    pub async fn shutdown(mut self) {
        self.shutdown_tx.send_replace(true);
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                warn!(cause = %e, "accept loop ended abnormally");
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown_tx.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    processor: Arc<dyn Processor>,
    config: ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let opts = config.conn_options();
    // Every connection task holds a clone; `recv` returns None once all have finished.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown_signal(&mut shutdown) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE or a connection reset during the handshake: back off briefly.
                warn!(cause = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, max = config.max_connections, "connection limit reached, closing new connection");
            drop(stream);
            continue;
        };
        let processor = processor.clone();
        let opts = opts.clone();
        let shutdown = shutdown.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            run_connection(stream, processor, opts, shutdown, |_| {}).await;
            drop(permit);
            drop(done);
        });
    }
    drop(listener);
    drop(done_tx);
    let _ = done_rx.recv().await;
    info!(?local, "remoting server stopped");
}
