//! The nameserver: a registry of broker groups and topic routes that clients ask where to send
//! and pull (protocol.md §8).
//!
//! It owns the route table ([`route::RouteInfoManager`]), broker liveness ([`liveness`]), the KV
//! config ([`kvconfig`]), the JSON bodies it exchanges ([`bodies`]) and the request processor
//! ([`processor`]); [`client`] is the other side, what brokers and tools call on nameservers.
//! It knows the remoting protocol only through the processor and the remoting server and
//! client; it knows nothing of storage or Raft internals: a Raft group member simply registers
//! with its term and role (see [`route`] for the rules).
//! Several nameservers are independent and keep no shared state; brokers register with each.
//!
//! Entry points: [`Namesrv::bind`] then [`Namesrv::serve`], or [`run`] for both.

pub mod bodies;
pub mod client;
pub mod kvconfig;
pub mod liveness;
pub mod processor;
pub mod route;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::config::{ConfigError, NamesrvConfig};
use crate::remoting::{RemotingError, RemotingServer, ServerConfig, ServerHandle};
use kvconfig::{KvConfig, KvConfigError};
use liveness::LivenessScanner;
use processor::{NamesrvProcessor, NamesrvState};
use route::RouteInfoManager;

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the tables hold
/// plain maps that every method leaves consistent, and one bad request must not take the
/// nameserver down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why the nameserver could not start.
#[derive(Debug, thiserror::Error)]
pub enum NamesrvError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    KvConfig(#[from] KvConfigError),
    #[error(transparent)]
    Remoting(#[from] RemotingError),
}

/// A bound, serving nameserver. Dropping it stops the liveness scan and signals the server to
/// stop; [`Namesrv::shutdown`] also waits for connections to finish.
#[derive(Debug)]
pub struct Namesrv {
    server: ServerHandle,
    state: Arc<NamesrvState>,
    _scanner: LivenessScanner,
}

impl Namesrv {
    /// Validates the config, opens the KV store, binds `bindAddress:listenPort` (port 0 = any
    /// free port) and starts serving and scanning.
    pub async fn bind(config: NamesrvConfig) -> Result<Namesrv, NamesrvError> {
        config.validate()?;
        let kv = match &config.kv_config_path {
            Some(path) => KvConfig::open(path)?,
            None => KvConfig::in_memory(),
        };
        let routes = Arc::new(Mutex::new(RouteInfoManager::new()));
        let scanner = LivenessScanner::spawn(
            routes.clone(),
            config.scan_not_active_broker_interval,
            config.broker_channel_expired_time,
        );
        let server_config = ServerConfig {
            idle_timeout: Some(config.server_channel_max_idle_time),
            ..ServerConfig::default()
        };
        let addr = SocketAddr::new(config.bind_address, config.listen_port).to_string();
        let state = Arc::new(NamesrvState {
            config,
            routes,
            kv: Mutex::new(kv),
        });
        let processor = Arc::new(NamesrvProcessor::new(state.clone()));
        let server = RemotingServer::bind(&addr, processor, server_config).await?;
        tracing::info!(
            addr = %server.local_addr(),
            kv_config = ?state.config.kv_config_path,
            expire_ms = state.config.broker_channel_expired_time.as_millis() as u64,
            scan_ms = state.config.scan_not_active_broker_interval.as_millis() as u64,
            "nameserver started"
        );
        Ok(Namesrv {
            server,
            state,
            _scanner: scanner,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The shared state (route table, KV config), for in-process inspection.
    pub fn state(&self) -> &Arc<NamesrvState> {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops gracefully.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), NamesrvError> {
        shutdown.await;
        self.shutdown().await;
        Ok(())
    }

    /// Stops accepting, closes connections (in-flight requests are answered) and waits.
    pub async fn shutdown(self) {
        let Namesrv {
            server, _scanner, ..
        } = self;
        drop(_scanner);
        server.shutdown().await;
    }
}

/// Runs a nameserver with `config` until `shutdown` resolves.
pub async fn run(
    config: NamesrvConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NamesrvError> {
    Namesrv::bind(config).await?.serve(shutdown).await
}
