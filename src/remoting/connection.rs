//! One full-duplex remoting connection, shared by the server and the client.
//!
//! A RocketMQ connection carries requests both ways: the client sends requests and the broker
//! answers, but the broker also sends its own requests (NOTIFY_CONSUMER_IDS_CHANGED,
//! CHECK_TRANSACTION_STATE, ...) over the same socket. Each side tells "response to my
//! request" from "new request from the peer" by flag bit 0 and correlates responses by opaque
//! in its own pending table (§1.5). So both ends run the same machinery:
//!
//! * a **reader** (the connection task) that decodes frames with [`FrameCodec`], completes
//!   pending requests, and spawns one task per incoming request so a long-polling request
//!   never blocks the ones behind it (responses go out as they complete, out of order);
//! * a **writer** task that owns the write half, batches queued frames into one flush, and
//!   is the only place that writes to the socket;
//! * a [`ConnContext`]: a cheap clonable handle to send requests, oneways and responses,
//!   and to observe the connection closing.
//!
//! This module knows nothing about what requests mean; that is the [`Processor`]'s job.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::code::ResponseCode;
use super::codec::FrameCodec;
use super::command::{RemotingCommand, FLAG_ONEWAY, FLAG_RESPONSE};
use super::error::{ProcessError, RemotingError};

/// A boxed, sendable future (what [`Processor::process`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a processor produces for one request: a response, nothing (no answer at all), or an
/// error that the connection turns into a `SYSTEM_ERROR` response with the error text.
pub type ProcessResult = Result<Option<RemotingCommand>, ProcessError>;

/// Serves the requests that arrive on connections (server side: client requests; client
/// side: requests the server initiates).
///
/// The connection fixes up every response before sending it: opaque copied from the
/// request, response flag set, header encoding = the request's. Responses to oneway
/// requests are dropped. Unknown codes should be answered with
/// [`RemotingCommand::not_supported`]. A panic inside `process` is caught and answered with
/// `SYSTEM_ERROR`; it never takes the connection down.
pub trait Processor: Send + Sync + 'static {
    /// Handles one request. Runs in its own task, concurrently with other requests of the
    /// same connection; it may take as long as it likes (long polling).
    fn process<'a>(
        &'a self,
        ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult>;

    /// Called once when a connection is established, before its first request.
    fn on_connected(&self, _ctx: &ConnContext) {}

    /// Called once when a connection has closed (peer closed, error, idle timeout or
    /// shutdown). The nameserver uses it to drop a broker at once.
    fn on_disconnected(&self, _ctx: &ConnContext) {}
}

/// A processor that answers every request with REQUEST_CODE_NOT_SUPPORTED; the default for
/// clients that do not expect server-initiated requests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotSupportedProcessor;

impl Processor for NotSupportedProcessor {
    fn process<'a>(
        &'a self,
        _ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        Box::pin(async move { Ok(Some(RemotingCommand::not_supported(&req))) })
    }
}

/// The processor table: routes each request code to the processor registered for it, and
/// answers codes nobody registered with REQUEST_CODE_NOT_SUPPORTED (remark
/// `" request type <code> not supported"`, as Java). Connection open/close events go to every
/// distinct registered processor once.
#[derive(Default, Clone)]
pub struct ProcessorTable {
    table: HashMap<i32, Arc<dyn Processor>>,
    /// Distinct processors in registration order, for connection events.
    distinct: Vec<Arc<dyn Processor>>,
}

impl fmt::Debug for ProcessorTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut codes: Vec<_> = self.table.keys().copied().collect();
        codes.sort_unstable();
        f.debug_struct("ProcessorTable")
            .field("codes", &codes)
            .finish()
    }
}

impl ProcessorTable {
    /// An empty table (every code unsupported).
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `codes` to `processor`; a code registered twice goes to the later processor.
    pub fn register<C: Into<i32>>(
        mut self,
        codes: impl IntoIterator<Item = C>,
        processor: Arc<dyn Processor>,
    ) -> Self {
        if !self.distinct.iter().any(|p| Arc::ptr_eq(p, &processor)) {
            self.distinct.push(processor.clone());
        }
        for code in codes {
            self.table.insert(code.into(), processor.clone());
        }
        self
    }

    /// Whether a code has a processor.
    pub fn handles(&self, code: i32) -> bool {
        self.table.contains_key(&code)
    }
}

impl Processor for ProcessorTable {
    fn process<'a>(
        &'a self,
        ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        match self.table.get(&req.code) {
            Some(p) => p.process(ctx, req),
            None => {
                debug!(
                    conn = ctx.id(),
                    code = req.code,
                    "request code not supported"
                );
                Box::pin(async move { Ok(Some(RemotingCommand::not_supported(&req))) })
            }
        }
    }

    fn on_connected(&self, ctx: &ConnContext) {
        for p in &self.distinct {
            p.on_connected(ctx);
        }
    }

    fn on_disconnected(&self, ctx: &ConnContext) {
        for p in &self.distinct {
            p.on_disconnected(ctx);
        }
    }
}

/// Per-connection limits, shared by server and client configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConnOptions {
    pub codec: FrameCodec,
    /// Close after this long with neither a frame read nor a frame written.
    pub idle_timeout: Option<Duration>,
    /// Requests processed concurrently per connection; beyond it requests get SYSTEM_BUSY.
    pub max_inflight: usize,
    /// Frames queued for the writer before senders wait.
    pub write_queue: usize,
    /// On shutdown, how long in-flight requests may still finish and be answered.
    pub shutdown_grace: Duration,
}

/// Process-wide connection ids, so server and client connections never share one.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

struct Shared {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    codec: FrameCodec,
    tx: mpsc::Sender<Bytes>,
    /// Requests we sent and await a response for, by opaque. A std mutex: no await while held.
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    next_opaque: AtomicI32,
    closed: watch::Sender<bool>,
    /// Milliseconds since `epoch` of the last frame read or written (idle detection).
    last_activity_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_activity_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }
}

/// Handle to one connection: who the peer is, and how to talk to it.
///
/// Clone it freely (it is an `Arc`); the broker keeps one per registered client to send
/// NOTIFY_CONSUMER_IDS_CHANGED or CHECK_TRANSACTION_STATE later. Equality and hashing use
/// the connection id.
#[derive(Clone)]
pub struct ConnContext {
    shared: Arc<Shared>,
}

impl fmt::Debug for ConnContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnContext")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.peer)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PartialEq for ConnContext {
    fn eq(&self, other: &Self) -> bool {
        self.shared.id == other.shared.id
    }
}

impl Eq for ConnContext {}

impl Hash for ConnContext {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.shared.id.hash(state);
    }
}

/// Removes a pending entry when an invoke finishes in any way (response, timeout, caller
/// dropped the future), so the table never leaks.
struct PendingGuard<'a> {
    shared: &'a Shared,
    opaque: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.shared.pending.lock() {
            pending.remove(&self.opaque);
        }
    }
}

impl ConnContext {
    /// Unique id of this connection within the process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The peer's address (`ip:port` as the broker reports client addresses).
    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.peer
    }

    /// Our side's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// True once the connection has closed; sends fail from then on.
    pub fn is_closed(&self) -> bool {
        *self.shared.closed.borrow()
    }

    /// Resolves when the connection closes (at once if it already has).
    pub async fn closed(&self) {
        let mut rx = self.shared.closed.subscribe();
        // The sender lives in `shared`, which we hold, so `wait_for` cannot fail.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Asks the connection to close; in-flight sends may still be written.
    pub fn close(&self) {
        self.mark_closed();
    }

    /// Number of requests awaiting a response (for tests and metrics).
    pub fn pending_requests(&self) -> usize {
        self.shared.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    fn next_opaque(&self) -> i32 {
        // Non-negative like the C++ client's counter; wraps after 2^31 requests.
        self.shared.next_opaque.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    /// Encodes and queues one frame for the writer.
    pub async fn send(&self, cmd: &RemotingCommand) -> Result<(), RemotingError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let bytes = self
            .shared
            .codec
            .encode_to_bytes(cmd)
            .map_err(RemotingError::Encode)?;
        self.shared
            .tx
            .send(bytes)
            .await
            .map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> RemotingError {
        RemotingError::ConnectionClosed {
            peer: self.shared.peer,
        }
    }

    /// Sends a request and waits for its response. The opaque is assigned here. On timeout
    /// the pending entry is removed and a late response is dropped.
    pub async fn invoke(
        &self,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let opaque = self.next_opaque();
        cmd.opaque = opaque;
        cmd.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        let code = cmd.code;
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .map_err(|_| self.closed_error())?
            .insert(opaque, tx);
        let _guard = PendingGuard {
            shared: &self.shared,
            opaque,
        };
        // A close that happened before the insert would never drain this entry.
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let exchange = async {
            self.send(&cmd).await?;
            rx.await.map_err(|_| self.closed_error())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RemotingError::Timeout {
                peer: self.shared.peer.to_string(),
                code,
                opaque,
                timeout,
            }),
        }
    }

    /// Sends a request that gets no response (flag bit 1 set).
    pub async fn invoke_oneway(&self, mut cmd: RemotingCommand) -> Result<(), RemotingError> {
        cmd.opaque = self.next_opaque();
        cmd.flag = (cmd.flag & !FLAG_RESPONSE) | FLAG_ONEWAY;
        self.send(&cmd).await
    }

    /// Like [`invoke_oneway`](Self::invoke_oneway) but never waits: fails at once if the
    /// connection's write queue is full (a client that stopped reading). For notifications
    /// fanned out to many clients, where one slow client must not stall the rest.
    pub fn try_invoke_oneway(&self, mut cmd: RemotingCommand) -> Result<(), RemotingError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        cmd.opaque = self.next_opaque();
        cmd.flag = (cmd.flag & !FLAG_RESPONSE) | FLAG_ONEWAY;
        let bytes = self
            .shared
            .codec
            .encode_to_bytes(&cmd)
            .map_err(RemotingError::Encode)?;
        self.shared.tx.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RemotingError::Backpressure {
                peer: self.shared.peer,
            },
            mpsc::error::TrySendError::Closed(_) => self.closed_error(),
        })
    }

    /// Marks the connection closed and fails every pending invoke.
    fn mark_closed(&self) {
        self.shared.closed.send_replace(true);
        if let Ok(mut pending) = self.shared.pending.lock() {
            // Dropping the senders wakes each waiter with "connection closed".
            pending.clear();
        }
    }

    /// Hands a response to the invoke waiting for it.
    fn complete(&self, resp: RemotingCommand) {
        let waiter = self
            .shared
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&resp.opaque));
        match waiter {
            Some(tx) => {
                let _ = tx.send(resp);
            }
            None => debug!(
                conn = self.shared.id,
                opaque = resp.opaque,
                "response for no pending request (late after timeout?)"
            ),
        }
    }
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndReason {
    PeerClosed,
    Error,
    Idle,
    Closed,
    Shutdown,
}

/// Runs one connection until it ends. `on_ready` receives the context before the first frame
/// is read (the client uses it to publish the connection). Returns when the socket is closed
/// and the writer has finished.
pub(crate) async fn run_connection(
    stream: TcpStream,
    processor: Arc<dyn Processor>,
    opts: ConnOptions,
    mut shutdown: watch::Receiver<bool>,
    on_ready: impl FnOnce(ConnContext),
) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(e) => {
            debug!(cause = %e, "connection gone before it started");
            return;
        }
    };
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // Small request/response frames: latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(opts.write_queue.max(1));
    let (closed_tx, _) = watch::channel(false);
    let ctx = ConnContext {
        shared: Arc::new(Shared {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            local,
            codec: opts.codec,
            tx,
            pending: Mutex::new(HashMap::new()),
            next_opaque: AtomicI32::new(1),
            closed: closed_tx,
            last_activity_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }),
    };
    let conn = ctx.id();
    debug!(conn, %peer, "connection open");
    let writer = tokio::spawn(write_loop(wr, rx, ctx.clone()));
    on_ready(ctx.clone());
    processor.on_connected(&ctx);

    let mut tasks = JoinSet::new();
    let reason = read_loop(rd, &ctx, &processor, &opts, &mut shutdown, &mut tasks).await;
    match reason {
        EndReason::Idle => info!(conn, %peer, "closing idle connection"),
        EndReason::Shutdown => debug!(conn, %peer, "closing connection for shutdown"),
        _ => debug!(conn, %peer, ?reason, "connection ended"),
    }

    if reason == EndReason::Shutdown {
        // Let in-flight requests finish and be answered, for a bounded time.
        let _ = tokio::time::timeout(opts.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
    } else {
        // The peer is gone: answers cannot be delivered, but a request's side effects (a send
        // being replicated) should still complete, so the tasks run on, detached.
        tasks.detach_all();
    }
    ctx.mark_closed();
    // The writer drains what is queued; a peer that stopped reading must not hold us forever.
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
    processor.on_disconnected(&ctx);
    debug!(conn, %peer, "connection closed");
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    ctx: &ConnContext,
    processor: &Arc<dyn Processor>,
    opts: &ConnOptions,
    shutdown: &mut watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> EndReason {
    let conn = ctx.id();
    let peer = ctx.peer_addr();
    let inflight = Arc::new(Semaphore::new(opts.max_inflight.max(1)));
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut closed_rx = ctx.shared.closed.subscribe();
    // The stop signals and the idle timer live across reads: building them anew on every turn
    // of the loop cost a timer registration and two watch registrations per read.
    let stop = async {
        tokio::select! {
            _ = shutdown_signal(shutdown) => EndReason::Shutdown,
            _ = shutdown_signal(&mut closed_rx) => EndReason::Closed,
        }
    };
    tokio::pin!(stop);
    let idle_timer = tokio::time::sleep_until(
        opts.idle_timeout
            .map_or_else(Instant::now, |idle| ctx.shared.last_activity() + idle),
    );
    tokio::pin!(idle_timer);
    loop {
        // Phase one and two: take every whole frame already buffered.
        loop {
            match opts.codec.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    if cmd.is_response() {
                        ctx.complete(cmd);
                        continue;
                    }
                    match inflight.clone().try_acquire_owned() {
                        Ok(permit) => {
                            tasks.spawn(handle_request(
                                processor.clone(),
                                ctx.clone(),
                                cmd,
                                permit,
                            ));
                        }
                        // Too many requests in flight: reject like Java's full thread pool
                        // instead of pausing the reader, so responses to our own requests
                        // keep flowing (a pause could deadlock handlers awaiting the peer).
                        Err(_) => {
                            debug!(
                                conn,
                                code = cmd.code,
                                "too many requests in flight, SYSTEM_BUSY"
                            );
                            if !cmd.is_oneway() {
                                let busy = RemotingCommand::error_to(
                                    &cmd,
                                    ResponseCode::SystemBusy,
                                    "[OVERLOAD]system busy, start flow control for a while",
                                );
                                let ctx = ctx.clone();
                                tasks.spawn(async move {
                                    let _ = ctx.send(&busy).await;
                                });
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(conn, %peer, cause = %e, "closing connection: invalid frame");
                    return EndReason::Error;
                }
            }
        }
        // A partial frame announces its size: make room for all of it at once instead of
        // growing the buffer step by step (the length was already checked against the limit).
        if let Some(word) = buf.get(..4) {
            let total =
                4 + i32::from_be_bytes([word[0], word[1], word[2], word[3]]).max(0) as usize;
            if total > buf.len() {
                buf.reserve(total - buf.len());
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => {
                    if !buf.is_empty() {
                        debug!(conn, %peer, buffered = buf.len(), "peer closed mid-frame");
                    }
                    return EndReason::PeerClosed;
                }
                Ok(_) => ctx.shared.touch(),
                Err(e) => {
                    debug!(conn, %peer, cause = %e, "read failed");
                    return EndReason::Error;
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        warn!(conn, %peer, "request task panicked");
                    }
                }
            }
            () = &mut idle_timer, if opts.idle_timeout.is_some() => {
                if let Some(idle) = opts.idle_timeout {
                    // Fires at the deadline the last activity it knew of set; re-armed if
                    // there was activity since.
                    let due = ctx.shared.last_activity() + idle;
                    if due <= Instant::now() {
                        return EndReason::Idle;
                    }
                    idle_timer.as_mut().reset(due);
                }
            }
            reason = &mut stop => return reason,
        }
    }
}

/// Resolves when a `watch<bool>` flag (shutdown or closed) turns true or its sender is gone
/// (the owner was dropped). Returns `()` so no borrow of the value crosses an await.
pub(crate) async fn shutdown_signal(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Processes one request and sends its response (unless oneway).
async fn handle_request(
    processor: Arc<dyn Processor>,
    ctx: ConnContext,
    req: RemotingCommand,
    permit: OwnedSemaphorePermit,
) {
    let opaque = req.opaque;
    let oneway = req.is_oneway();
    let ty = req.serialize_type;
    let code = req.code;
    let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| processor.process(&ctx, req)))
    {
        Ok(fut) => CatchUnwind(fut).await,
        Err(_) => Err(()),
    };
    let mut resp = match outcome {
        Ok(Ok(Some(resp))) => resp,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            debug!(conn = ctx.id(), code, opaque, cause = %e, "request failed");
            RemotingCommand::response(ResponseCode::SystemError, e.to_string())
        }
        Err(()) => {
            warn!(conn = ctx.id(), code, opaque, "processor panicked");
            RemotingCommand::response(
                ResponseCode::SystemError,
                format!("internal error while processing request code {code}"),
            )
        }
    };
    // Processing is over: free the slot before the response can reach the peer, so a peer
    // that saw the answer never hits a stale in-flight limit.
    drop(permit);
    if oneway {
        return;
    }
    resp.opaque = opaque;
    resp.flag = (resp.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
    resp.serialize_type = ty;
    if let Err(e) = ctx.send(&resp).await {
        debug!(conn = ctx.id(), code, opaque, cause = %e, "response not sent");
    }
}

/// Polls a boxed future, turning a panic into `Err(())`.
struct CatchUnwind<'a, T>(BoxFuture<'a, T>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// The only writer of the socket: writes queued frames, flushing once per batch.
async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>, ctx: ConnContext) {
    let mut w = BufWriter::new(wr);
    let mut closed = ctx.shared.closed.subscribe();
    let result: std::io::Result<()> = async {
        loop {
            tokio::select! {
                biased;
                frame = rx.recv() => {
                    let Some(frame) = frame else { break };
                    w.write_all(&frame).await?;
                    while let Ok(frame) = rx.try_recv() {
                        w.write_all(&frame).await?;
                    }
                    w.flush().await?;
                    ctx.shared.touch();
                }
                _ = shutdown_signal(&mut closed) => {
                    while let Ok(frame) = rx.try_recv() {
                        w.write_all(&frame).await?;
                    }
                    w.flush().await?;
                    break;
                }
            }
        }
        w.shutdown().await
    }
    .await;
    if let Err(e) = result {
        debug!(conn = ctx.id(), peer = %ctx.peer_addr(), cause = %e, "write failed");
    }
    // Either way, nothing more can be written: wake the reader and pending invokes.
    ctx.mark_closed();
}
