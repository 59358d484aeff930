//! The remoting TCP client: one lazily opened connection to one address.
//!
//! Used by the broker to register with each nameserver and by the admin CLI and tests. The
//! connection is opened on first use; after it fails or closes, the next call opens a new one
//! (no background reconnect loop, so an unreachable peer costs nothing while unused).
//! Requests the server initiates on this connection go to the client's [`Processor`].

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

use super::codec::{FrameCodec, DEFAULT_MAX_FRAME};
use super::command::RemotingCommand;
use super::connection::{
    run_connection, ConnContext, ConnOptions, NotSupportedProcessor, Processor,
};
use super::error::RemotingError;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Largest frame accepted or sent, including the length word. Default 16 MiB.
    pub max_frame: usize,
    /// Time allowed to open the TCP connection. Default 3 s (Java's `connectTimeoutMillis`).
    pub connect_timeout: Duration,
    /// Close the connection after this long without traffic; `None` (default) keeps it open.
    pub idle_timeout: Option<Duration>,
    /// Server-initiated requests processed at once; more get SYSTEM_BUSY. Default 64.
    pub max_inflight: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_frame: DEFAULT_MAX_FRAME,
            connect_timeout: Duration::from_secs(3),
            idle_timeout: None,
            max_inflight: 64,
        }
    }
}

/// A client for one remote address.
pub struct RemotingClient {
    addr: String,
    config: ClientConfig,
    handler: Arc<dyn Processor>,
    /// Held across the connect `.await` on purpose: concurrent callers wait for one connect
    /// attempt instead of racing to open several sockets.
    conn: tokio::sync::Mutex<Option<ConnContext>>,
    /// Tells the connection task to stop when the client is closed or dropped.
    shutdown_tx: watch::Sender<bool>,
}

impl std::fmt::Debug for RemotingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotingClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RemotingClient {
    /// A client for `addr` (`host:port`) that answers server-initiated requests with
    /// REQUEST_CODE_NOT_SUPPORTED. Nothing is connected until the first call.
    pub fn new(addr: impl Into<String>, config: ClientConfig) -> Self {
        Self::with_handler(addr, config, Arc::new(NotSupportedProcessor))
    }

    /// A client whose server-initiated requests (NOTIFY_CONSUMER_IDS_CHANGED,
    /// CHECK_TRANSACTION_STATE, ...) go to `handler`.
    pub fn with_handler(
        addr: impl Into<String>,
        config: ClientConfig,
        handler: Arc<dyn Processor>,
    ) -> Self {
        let (shutdown_tx, _) = watch::channel(false);
        RemotingClient {
            addr: addr.into(),
            config,
            handler,
            conn: tokio::sync::Mutex::new(None),
            shutdown_tx,
        }
    }

    /// The remote address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The open connection, opening a new one if there is none or the last one closed.
    pub async fn connection(&self) -> Result<ConnContext, RemotingError> {
        let mut slot = self.conn.lock().await;
        if let Some(ctx) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(ctx.clone());
        }
        let ctx = self.connect().await?;
        *slot = Some(ctx.clone());
        Ok(ctx)
    }

    async fn connect(&self) -> Result<ConnContext, RemotingError> {
        let connect_err = |reason: String| RemotingError::Connect {
            addr: self.addr.clone(),
            reason,
        };
        let stream =
            tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(&self.addr))
                .await
                .map_err(|_| {
                    connect_err(format!("timed out after {:?}", self.config.connect_timeout))
                })?
                .map_err(|e| connect_err(e.to_string()))?;
        let opts = ConnOptions {
            codec: FrameCodec::new(self.config.max_frame),
            idle_timeout: self.config.idle_timeout,
            max_inflight: self.config.max_inflight,
            write_queue: 1024,
            shutdown_grace: Duration::from_millis(200),
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(run_connection(
            stream,
            self.handler.clone(),
            opts,
            self.shutdown_tx.subscribe(),
            move |ctx| {
                let _ = ready_tx.send(ctx);
            },
        ));
        ready_rx
            .await
            .map_err(|_| connect_err("connection closed during setup".to_owned()))
    }

    /// Sends a request and waits up to `timeout` for its response (connect time excluded).
    /// A connection that fails is replaced on the next call.
    pub async fn invoke(
        &self,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        self.connection().await?.invoke(cmd, timeout).await
    }

    /// Sends a oneway request.
    pub async fn invoke_oneway(&self, cmd: RemotingCommand) -> Result<(), RemotingError> {
        self.connection().await?.invoke_oneway(cmd).await
    }

    /// Closes the current connection, if any; the next call reconnects.
    pub async fn close_connection(&self) {
        if let Some(ctx) = self.conn.lock().await.take() {
            ctx.close();
        }
    }
}

impl Drop for RemotingClient {
    fn drop(&mut self) {
        self.shutdown_tx.send_replace(true);
    }
}
