//! Remoting server and client over real TCP on 127.0.0.1: request/response in both header
//! encodings, out-of-order answers, oneway, server-initiated requests, timeouts, reconnect,
//! connection limit, idle timeout, shutdown, and bad input that must never hurt other
//! connections.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use raftmq::remoting::{
    BoxFuture, ClientConfig, ConnContext, FrameCodec, ProcessError, ProcessResult, Processor,
    ProcessorTable, RemotingClient, RemotingCommand, RemotingError, RemotingServer, RequestCode,
    ResponseCode, SerializeType, ServerConfig, ServerHandle,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

const T: Duration = Duration::from_secs(5);

/// Test codes outside RocketMQ's ranges.
const ECHO: i32 = 105;
const FAIL: i32 = 1000;
const GATED: i32 = 1001;
const PANIC: i32 = 1002;
const NOTIFY_ME: i32 = 1003;
const ASK_ME: i32 = 1004;
const CLOSE_ME: i32 = 1005;
const NEVER: i32 = 1006;
const RECORD: i32 = 1007;

struct TestProcessor {
    /// Released by the test to let GATED requests finish.
    gate: Semaphore,
    oneways: AtomicUsize,
    oneway_seen: Notify,
    connected: AtomicUsize,
    disconnected: AtomicUsize,
    disconnect_seen: Notify,
    /// Answer of the client to ASK_ME's server-initiated request.
    asked: Mutex<Option<String>>,
}

impl Default for TestProcessor {
    fn default() -> Self {
        TestProcessor {
            gate: Semaphore::new(0),
            oneways: AtomicUsize::new(0),
            oneway_seen: Notify::new(),
            connected: AtomicUsize::new(0),
            disconnected: AtomicUsize::new(0),
            disconnect_seen: Notify::new(),
            asked: Mutex::new(None),
        }
    }
}

impl Processor for TestProcessor {
    fn process<'a>(
        &'a self,
        ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        Box::pin(async move {
            match req.code {
                ECHO => {
                    let topic = req.ext_str("topic")?;
                    Ok(Some(
                        RemotingCommand::response_to(&req)
                            .with_ext("topic", topic)
                            .with_body(req.body.clone().unwrap_or_default()),
                    ))
                }
                FAIL => Err(ProcessError::msg("boom")),
                GATED => {
                    self.gate.acquire().await.unwrap().forget();
                    Ok(Some(
                        RemotingCommand::response_to(&req).with_remark("gated"),
                    ))
                }
                PANIC => panic!("processor bug"),
                NOTIFY_ME => {
                    let notify = RemotingCommand::request(RequestCode::NotifyConsumerIdsChanged)
                        .with_ext("consumerGroup", "CG");
                    ctx.invoke_oneway(notify).await?;
                    Ok(Some(RemotingCommand::response_to(&req)))
                }
                ASK_ME => {
                    let ask = RemotingCommand::request(RequestCode::GetConsumerRunningInfo)
                        .with_ext("consumerGroup", "CG");
                    let answer = ctx.invoke(ask, T).await?;
                    *self.asked.lock().unwrap() = answer.remark.clone();
                    Ok(Some(RemotingCommand::response_to(&req)))
                }
                CLOSE_ME => {
                    ctx.close();
                    Ok(None)
                }
                NEVER => Ok(None),
                RECORD => {
                    self.oneways.fetch_add(1, Ordering::SeqCst);
                    self.oneway_seen.notify_one();
                    Ok(Some(
                        RemotingCommand::response_to(&req).with_remark("must not be sent"),
                    ))
                }
                _ => Ok(Some(RemotingCommand::not_supported(&req))),
            }
        })
    }

    fn on_connected(&self, _ctx: &ConnContext) {
        self.connected.fetch_add(1, Ordering::SeqCst);
    }

    fn on_disconnected(&self, _ctx: &ConnContext) {
        self.disconnected.fetch_add(1, Ordering::SeqCst);
        self.disconnect_seen.notify_one();
    }
}

async fn start(config: ServerConfig) -> (Arc<TestProcessor>, ServerHandle) {
    let p = Arc::new(TestProcessor::default());
    let server = RemotingServer::bind("127.0.0.1:0", p.clone(), config)
        .await
        .unwrap();
    (p, server)
}

fn client(server: &ServerHandle) -> RemotingClient {
    RemotingClient::new(server.local_addr().to_string(), ClientConfig::default())
}

/// A raw socket speaking frames, to control bytes exactly.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn connect(server: &ServerHandle) -> Raw {
        Raw {
            stream: TcpStream::connect(server.local_addr()).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, cmd: &RemotingCommand) {
        let bytes = FrameCodec::default().encode_to_bytes(cmd).unwrap();
        self.stream.write_all(&bytes).await.unwrap();
    }

    /// Next frame, or None if the server closed the connection.
    async fn recv(&mut self) -> Option<RemotingCommand> {
        tokio::time::timeout(T, async {
            loop {
                if let Some(cmd) = FrameCodec::default().decode(&mut self.buf).unwrap() {
                    return Some(cmd);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("no frame and no close within the deadline")
    }
}

fn req(code: i32, opaque: i32, ty: SerializeType) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code)
        .with_ext("topic", "TopicTest")
        .with_serialize_type(ty);
    cmd.opaque = opaque;
    cmd
}

#[tokio::test]
async fn responses_use_the_request_encoding_and_echo_opaque() {
    let (_p, server) = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    for (opaque, ty) in [(7, SerializeType::Json), (8, SerializeType::RocketMq)] {
        raw.send(&req(ECHO, opaque, ty).with_body(&b"payload"[..]))
            .await;
        let resp = raw.recv().await.unwrap();
        assert!(resp.is_response());
        assert_eq!(resp.opaque, opaque);
        assert_eq!(resp.serialize_type, ty);
        assert_eq!(resp.code, ResponseCode::Success.code());
        assert_eq!(resp.ext_str("topic"), Ok("TopicTest"));
        assert_eq!(resp.body.as_deref(), Some(&b"payload"[..]));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_code_and_processor_errors_get_error_responses() {
    let (_p, server) = start(ServerConfig::default()).await;
    let c = client(&server);
    let resp = c.invoke(RemotingCommand::request(4242), T).await.unwrap();
    assert_eq!(resp.code, ResponseCode::RequestCodeNotSupported.code());
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 4242 not supported")
    );

    let resp = c.invoke(RemotingCommand::request(FAIL), T).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SystemError.code());
    assert_eq!(resp.remark.as_deref(), Some("boom"));

    // Missing required ext field: SYSTEM_ERROR with Java's wording, connection stays usable.
    let resp = c.invoke(RemotingCommand::request(ECHO), T).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SystemError.code());
    assert_eq!(
        resp.remark.as_deref(),
        Some("the custom field <topic> is null")
    );

    let resp = c.invoke(RemotingCommand::request(PANIC), T).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SystemError.code());

    let resp = c
        .invoke(req(ECHO, 0, SerializeType::Json), T)
        .await
        .unwrap();
    assert_eq!(resp.code, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_request_does_not_block_later_ones_on_the_same_connection() {
    let (p, server) = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    raw.send(&req(GATED, 1, SerializeType::Json)).await;
    raw.send(&req(ECHO, 2, SerializeType::Json)).await;
    let first = raw.recv().await.unwrap();
    assert_eq!(first.opaque, 2, "the fast request is answered first");
    p.gate.add_permits(1);
    let second = raw.recv().await.unwrap();
    assert_eq!(second.opaque, 1);
    assert_eq!(second.remark.as_deref(), Some("gated"));
    server.shutdown().await;
}

#[tokio::test]
async fn oneway_requests_are_processed_but_never_answered() {
    let (p, server) = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    let mut oneway = req(RECORD, 1, SerializeType::Json);
    oneway.mark_oneway();
    raw.send(&oneway).await;
    let mut failing = RemotingCommand::request(FAIL);
    failing.opaque = 2;
    failing.mark_oneway();
    raw.send(&failing).await;
    raw.send(&req(ECHO, 3, SerializeType::Json)).await;
    let resp = raw.recv().await.unwrap();
    assert_eq!(resp.opaque, 3, "no frame for the oneways");
    tokio::time::timeout(T, async {
        while p.oneways.load(Ordering::SeqCst) == 0 {
            p.oneway_seen.notified().await;
        }
    })
    .await
    .unwrap();

    // Through the client API as well.
    let c = client(&server);
    c.invoke_oneway(req(RECORD, 0, SerializeType::Json))
        .await
        .unwrap();
    tokio::time::timeout(T, async {
        while p.oneways.load(Ordering::SeqCst) < 2 {
            p.oneway_seen.notified().await;
        }
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Records what the server sends to the client.
#[derive(Default)]
struct ClientHandler {
    seen: Mutex<Vec<(i32, bool, String)>>,
    notify: Notify,
}

impl Processor for ClientHandler {
    fn process<'a>(
        &'a self,
        _ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        Box::pin(async move {
            let group = req.ext_str("consumerGroup")?.to_owned();
            self.seen
                .lock()
                .unwrap()
                .push((req.code, req.is_oneway(), group.clone()));
            self.notify.notify_one();
            Ok(Some(
                RemotingCommand::response_to(&req).with_remark(format!("running:{group}")),
            ))
        })
    }
}

#[tokio::test]
async fn server_initiated_requests_reach_the_client_handler() {
    let (p, server) = start(ServerConfig::default()).await;
    let handler = Arc::new(ClientHandler::default());
    let c = RemotingClient::with_handler(
        server.local_addr().to_string(),
        ClientConfig::default(),
        handler.clone(),
    );
    let resp = c
        .invoke(RemotingCommand::request(NOTIFY_ME), T)
        .await
        .unwrap();
    assert_eq!(resp.code, 0);
    tokio::time::timeout(T, async {
        while handler.seen.lock().unwrap().is_empty() {
            handler.notify.notified().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        handler.seen.lock().unwrap()[0],
        (
            RequestCode::NotifyConsumerIdsChanged.code(),
            true,
            "CG".to_owned()
        )
    );

    // A sync server → client request, answered by the client handler.
    let resp = c.invoke(RemotingCommand::request(ASK_ME), T).await.unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(p.asked.lock().unwrap().as_deref(), Some("running:CG"));
    server.shutdown().await;
}

#[tokio::test]
async fn invoke_timeout_removes_the_pending_entry() {
    let (_p, server) = start(ServerConfig::default()).await;
    let c = client(&server);
    let err = c
        .invoke(RemotingCommand::request(NEVER), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemotingError::Timeout { code: NEVER, .. }),
        "{err}"
    );
    let conn = c.connection().await.unwrap();
    assert_eq!(conn.pending_requests(), 0);
    // The connection is still fine.
    assert_eq!(
        c.invoke(req(ECHO, 0, SerializeType::Json), T)
            .await
            .unwrap()
            .code,
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_reconnects_on_next_use_after_the_connection_closes() {
    let (p, server) = start(ServerConfig::default()).await;
    let c = client(&server);
    let first = c.connection().await.unwrap();
    let err = c
        .invoke(RemotingCommand::request(CLOSE_ME), T)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemotingError::ConnectionClosed { .. }),
        "{err}"
    );
    tokio::time::timeout(T, first.closed()).await.unwrap();
    let resp = c
        .invoke(req(ECHO, 0, SerializeType::RocketMq), T)
        .await
        .unwrap();
    assert_eq!(resp.code, 0);
    assert_ne!(c.connection().await.unwrap().id(), first.id());
    tokio::time::timeout(T, async {
        while p.disconnected.load(Ordering::SeqCst) < 1 {
            p.disconnect_seen.notified().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(p.connected.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn connect_failure_is_an_error_not_a_hang() {
    // Bind then drop to get a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = RemotingClient::new(addr.to_string(), ClientConfig::default());
    let err = c
        .invoke(RemotingCommand::request(ECHO), T)
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn disconnect_is_observed_by_the_processor_and_the_context() {
    let (p, server) = start(ServerConfig::default()).await;
    let c = client(&server);
    c.invoke(req(ECHO, 0, SerializeType::Json), T)
        .await
        .unwrap();
    c.close_connection().await;
    tokio::time::timeout(T, async {
        while p.disconnected.load(Ordering::SeqCst) < 1 {
            p.disconnect_seen.notified().await;
        }
    })
    .await
    .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let config = ServerConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..ServerConfig::default()
    };
    let (_p, server) = start(config).await;
    let mut raw = Raw::connect(&server).await;
    raw.send(&req(ECHO, 1, SerializeType::Json)).await;
    assert!(raw.recv().await.is_some());
    let started = std::time::Instant::now();
    assert!(
        raw.recv().await.is_none(),
        "server closes the idle connection"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_others_keep_working() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let (_p, server) = start(config).await;
    let mut first = Raw::connect(&server).await;
    first.send(&req(ECHO, 1, SerializeType::Json)).await;
    assert!(first.recv().await.is_some());
    let mut second = Raw::connect(&server).await;
    second.send(&req(ECHO, 1, SerializeType::Json)).await;
    assert!(second.recv().await.is_none(), "over the limit: closed");
    first.send(&req(ECHO, 2, SerializeType::Json)).await;
    assert_eq!(first.recv().await.unwrap().opaque, 2);
    // Freeing the slot lets a new connection in.
    drop(first);
    let deadline = std::time::Instant::now() + T;
    loop {
        let mut third = Raw::connect(&server).await;
        third.send(&req(ECHO, 3, SerializeType::Json)).await;
        if third.recv().await.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_answers_in_flight_requests_then_completes() {
    let (p, server) = start(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    raw.send(&req(GATED, 9, SerializeType::Json)).await;
    // Make sure the request is in flight before shutting down.
    raw.send(&req(ECHO, 10, SerializeType::Json)).await;
    assert_eq!(raw.recv().await.unwrap().opaque, 10);
    let shutdown = tokio::spawn(server.shutdown());
    p.gate.add_permits(1);
    let resp = raw.recv().await.unwrap();
    assert_eq!(resp.opaque, 9);
    assert!(raw.recv().await.is_none(), "closed after shutdown");
    tokio::time::timeout(T, shutdown).await.unwrap().unwrap();
}

// ------------------------------------------------------------------------------------------
// Bad input: the offending connection is closed (or answered with an error); others live on.
// ------------------------------------------------------------------------------------------

async fn assert_healthy(raw: &mut Raw, opaque: i32) {
    raw.send(&req(ECHO, opaque, SerializeType::Json)).await;
    let resp = raw.recv().await.unwrap();
    assert_eq!((resp.opaque, resp.code), (opaque, 0));
}

async fn bad_bytes_close_only_their_connection(server_config: ServerConfig, bytes: &[u8]) {
    let (_p, server) = start(server_config).await;
    let mut good = Raw::connect(&server).await;
    assert_healthy(&mut good, 1).await;
    let mut bad = Raw::connect(&server).await;
    bad.stream.write_all(bytes).await.unwrap();
    assert!(bad.recv().await.is_none(), "bad connection closed");
    assert_healthy(&mut good, 2).await;
    server.shutdown().await;
}

#[tokio::test]
async fn frame_over_the_limit_closes_the_connection() {
    let config = ServerConfig {
        max_frame: 4096,
        ..ServerConfig::default()
    };
    // Only the length word is needed to reject it.
    bad_bytes_close_only_their_connection(config, &[0, 0, 0x10, 0]).await;
}

#[tokio::test]
async fn header_length_past_the_frame_closes_the_connection() {
    bad_bytes_close_only_their_connection(
        ServerConfig::default(),
        &[0, 0, 0, 6, 0, 0, 0, 99, b'{', b'}'],
    )
    .await;
}

#[tokio::test]
async fn invalid_json_header_closes_the_connection() {
    let mut frame = vec![0, 0, 0, 9, 0, 0, 0, 5];
    frame.extend_from_slice(b"{code");
    bad_bytes_close_only_their_connection(ServerConfig::default(), &frame).await;
}

#[tokio::test]
async fn unknown_serialize_type_closes_the_connection() {
    bad_bytes_close_only_their_connection(
        ServerConfig::default(),
        &[0, 0, 0, 6, 7, 0, 0, 2, b'{', b'}'],
    )
    .await;
}

#[tokio::test]
async fn negative_length_closes_the_connection() {
    bad_bytes_close_only_their_connection(ServerConfig::default(), &[0xFF, 0xFF, 0xFF, 0xF0]).await;
}

#[tokio::test]
async fn truncated_binary_header_closes_the_connection() {
    // Binary header of 5 bytes (needs at least 21).
    bad_bytes_close_only_their_connection(
        ServerConfig::default(),
        &[0, 0, 0, 9, 1, 0, 0, 5, 0, 105, 0, 1, 0x99],
    )
    .await;
}

// ------------------------------------------------------------------------------------------
// Golden bytes and the processor table
// ------------------------------------------------------------------------------------------

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// The protocol.md §1.1 and §1.4 worked examples, written out by hand and sent raw: the
/// server decodes both and answers each in the encoding it was asked in.
#[tokio::test]
async fn hand_written_fact_sheet_frames_are_served_in_their_own_encoding() {
    let (_p, server) = start(ServerConfig::default()).await;
    let mut json = hex("00000087 00000083");
    json.extend_from_slice(br#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":409}"#);
    let mut binary = hex("0000002D 01000029 0069 00 0199 00000007 00000000 00000000 00000014 0005");
    binary.extend_from_slice(b"topic");
    binary.extend_from_slice(&hex("00000009"));
    binary.extend_from_slice(b"TopicTest");

    let mut raw = Raw::connect(&server).await;
    raw.stream.write_all(&json).await.unwrap();
    raw.stream.write_all(&binary).await.unwrap();
    for expected_type in [0u8, 1u8] {
        // Read the raw response bytes to check the serialize-type byte on the wire.
        let mut head = [0u8; 8];
        tokio::time::timeout(T, raw.stream.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head[4], expected_type);
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let mut rest = vec![0u8; len - 4];
        tokio::time::timeout(T, raw.stream.read_exact(&mut rest))
            .await
            .unwrap()
            .unwrap();
        let mut frame = BytesMut::from(&head[..]);
        frame.extend_from_slice(&rest);
        let resp = FrameCodec::default().decode(&mut frame).unwrap().unwrap();
        assert_eq!((resp.opaque, resp.code, resp.flag), (7, 0, 1));
        assert_eq!(resp.ext_str("topic"), Ok("TopicTest"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn processor_table_routes_by_code_and_rejects_unknown_codes() {
    let a = Arc::new(TestProcessor::default());
    let b = Arc::new(TestProcessor::default());
    let table = ProcessorTable::new()
        .register([ECHO], a.clone())
        .register([FAIL, RECORD], b.clone())
        .register([RequestCode::HeartBeat], b.clone());
    assert!(table.handles(34) && !table.handles(GATED));
    let server = RemotingServer::bind("127.0.0.1:0", Arc::new(table), ServerConfig::default())
        .await
        .unwrap();
    let c = client(&server);
    assert_eq!(
        c.invoke(req(ECHO, 0, SerializeType::Json), T)
            .await
            .unwrap()
            .code,
        0
    );
    assert_eq!(
        c.invoke(RemotingCommand::request(FAIL), T)
            .await
            .unwrap()
            .code,
        1
    );
    let resp = c.invoke(RemotingCommand::request(GATED), T).await.unwrap();
    assert_eq!(resp.code, ResponseCode::RequestCodeNotSupported.code());
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 1001 not supported")
    );
    c.close_connection().await;
    for p in [&a, &b] {
        tokio::time::timeout(T, async {
            while p.disconnected.load(Ordering::SeqCst) < 1 {
                p.disconnect_seen.notified().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(
            p.connected.load(Ordering::SeqCst),
            1,
            "each processor told once"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn try_invoke_oneway_reaches_the_peer_without_waiting() {
    let (p, server) = start(ServerConfig::default()).await;
    let c = client(&server);
    let conn = c.connection().await.unwrap();
    conn.try_invoke_oneway(RemotingCommand::request(RECORD))
        .unwrap();
    tokio::time::timeout(T, async {
        while p.oneways.load(Ordering::SeqCst) < 1 {
            p.oneway_seen.notified().await;
        }
    })
    .await
    .unwrap();
    conn.close();
    tokio::time::timeout(T, conn.closed()).await.unwrap();
    assert!(matches!(
        conn.try_invoke_oneway(RemotingCommand::request(RECORD)),
        Err(RemotingError::ConnectionClosed { .. })
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_get_system_busy() {
    let config = ServerConfig {
        max_inflight_per_connection: 1,
        ..ServerConfig::default()
    };
    let (p, server) = start(config).await;
    let mut raw = Raw::connect(&server).await;
    raw.send(&req(GATED, 1, SerializeType::Json)).await;
    raw.send(&req(ECHO, 2, SerializeType::RocketMq)).await;
    let busy = raw.recv().await.unwrap();
    assert_eq!(busy.opaque, 2);
    assert_eq!(busy.code, ResponseCode::SystemBusy.code());
    assert_eq!(busy.serialize_type, SerializeType::RocketMq);
    assert!(busy.remark.unwrap().starts_with("[OVERLOAD]"));
    p.gate.add_permits(1);
    assert_eq!(raw.recv().await.unwrap().opaque, 1);
    // The slot is free again.
    assert_healthy(&mut raw, 3).await;
    server.shutdown().await;
}

#[tokio::test]
async fn large_bodies_cross_in_both_directions() {
    let (_p, server) = start(ServerConfig::default()).await;
    let c = client(&server);
    let body: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let resp = c
        .invoke(
            req(ECHO, 0, SerializeType::RocketMq).with_body(body.clone()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(resp.body.as_deref(), Some(&body[..]));
    server.shutdown().await;
}

#[tokio::test]
async fn active_connections_outlive_the_idle_timeout() {
    let config = ServerConfig {
        idle_timeout: Some(Duration::from_millis(600)),
        ..ServerConfig::default()
    };
    let (_p, server) = start(config).await;
    let mut raw = Raw::connect(&server).await;
    // Traffic every 100 ms for 1.5 s: more than two idle periods in total, none idle.
    for opaque in 0..15 {
        assert_healthy(&mut raw, opaque).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}
