//! `ferrokeeper [zoo.cfg]`: with no argument, a standalone server on
//! 127.0.0.1:2181 with data under ./data; with a path, ZooKeeper's config file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferrokeeper::config::Config;
use tracing::{error, info, warn};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "A ZooKeeper-compatible coordination server")]
struct Cli {
    /// zoo.cfg to read (as ZooKeeper's QuorumPeerMain takes it).
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cfg = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(cfg) => cfg,
            Err(e) => {
                error!("invalid configuration: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    for warning in &cfg.warnings {
        warn!("{warning}");
    }
    if !cfg.servers.is_empty() {
        warn!("server.N lines found: replication is not implemented yet; running standalone");
    }
    run(cfg)
}

fn run(cfg: Config) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            error!("cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let server = match ferrokeeper::server::start(cfg) {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // The main thread only watches for a signal or an executor that died.
    while !stop.load(Ordering::Relaxed) && !server.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let crashed = server.is_finished() && !stop.load(Ordering::Relaxed);
    info!("shutting down");
    server.shutdown();
    if crashed {
        error!("an executor stopped unexpectedly");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
