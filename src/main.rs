//! The `raftmq` command line. Thin on purpose: it parses flags, loads config files, installs
//! logging and signal handling, and calls into the library (`raftmq::namesrv`), which is what
//! the tests drive directly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use raftmq::config::NamesrvConfig;
use raftmq::namesrv::Namesrv;

#[derive(Debug, Parser)]
#[command(
    name = "raftmq",
    version,
    about = "A RocketMQ-compatible message broker whose commitlog is a Raft log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a nameserver (like `mqnamesrv`). Brokers register with it; clients ask it for routes.
    Namesrv(NamesrvArgs),
    /// Local development setup on loopback: starts a nameserver on 127.0.0.1 (port 9876 by
    /// default). Broker nodes (a 3-node Raft group) join it once the broker lands in this
    /// command; for now only the nameserver runs.
    Dev(DevArgs),
}

#[derive(Debug, Args)]
struct NamesrvArgs {
    /// Config file in RocketMQ `key=value` format (see conf/namesrv.conf).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Port to listen on (overrides `listenPort`; default 9876; 0 picks a free port).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    port: Option<u16>,
    /// Address to bind (overrides `bindAddress`; default 0.0.0.0, i.e. all interfaces, as
    /// RocketMQ does, because remote brokers must reach it; use 127.0.0.1 for local-only).
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Option<IpAddr>,
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Directory for all local data (the nameserver's KV config lives in `<DIR>/namesrv`).
    /// Without it, nothing is persisted.
    #[arg(long = "data", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Nameserver port on 127.0.0.1.
    #[arg(
        short = 'p',
        long = "port",
        value_name = "PORT",
        default_value_t = 9876
    )]
    port: u16,
}

fn namesrv_config(args: &NamesrvArgs) -> anyhow::Result<NamesrvConfig> {
    let mut cfg = match &args.config {
        Some(path) => NamesrvConfig::load(path)
            .with_context(|| format!("loading nameserver config {}", path.display()))?,
        None => NamesrvConfig::default(),
    };
    if let Some(port) = args.port {
        cfg.listen_port = port;
    }
    if let Some(addr) = args.listen {
        cfg.bind_address = addr;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn dev_config(args: &DevArgs) -> anyhow::Result<NamesrvConfig> {
    let mut cfg = NamesrvConfig {
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: args.port,
        ..NamesrvConfig::default()
    };
    cfg.kv_config_path = args
        .data
        .as_ref()
        .map(|dir| dir.join("namesrv").join("kvConfig"));
    if let Some(dir) = &args.data {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Installs the SIGTERM and SIGINT (Ctrl-C) handlers now, before anything is bound or
/// announced, so a signal sent right after start-up is never lost to the default action; the
/// returned future resolves when either arrives.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received, shutting down");
    })
}

async fn serve_namesrv(cfg: NamesrvConfig, banner: &str) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let requested = SocketAddr::new(cfg.bind_address, cfg.listen_port);
    let server = Namesrv::bind(cfg)
        .await
        .with_context(|| format!("starting nameserver on {requested}"))?;
    let addr = server.local_addr();
    // One machine-readable line on stdout (scripts and tests read the port from it);
    // everything else goes to the log on stderr.
    println!("{banner} {addr}");
    server.serve(shutdown).await?;
    tracing::info!("nameserver stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    raftmq::telemetry::init();
    match cli.command {
        Command::Namesrv(args) => {
            let cfg = namesrv_config(&args)?;
            serve_namesrv(cfg, "raftmq namesrv listening on").await
        }
        Command::Dev(args) => {
            let cfg = dev_config(&args)?;
            serve_namesrv(cfg, "raftmq dev: nameserver listening on").await
        }
    }
}
