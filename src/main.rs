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
#[command(
    version,
    about = "A ZooKeeper-compatible coordination server",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// zoo.cfg to read (as ZooKeeper's QuorumPeerMain takes it).
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Delete old snapshots and the logs they no longer need (like zkCleanup.sh).
    Purge {
        /// zoo.cfg naming dataDir/dataLogDir (default: ./data).
        config: Option<PathBuf>,
        /// Snapshots to keep (at least 3).
        #[arg(short = 'n', long, default_value_t = 3)]
        count: usize,
    },
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
    if let Some(Command::Purge { config, count }) = &cli.command {
        return purge(config.as_deref(), *count);
    }
    let cfg = match load(cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    for warning in &cfg.warnings {
        warn!("{warning}");
    }
    if !cfg.servers.is_empty() {
        warn!("server.N lines found: replication is not implemented yet; running standalone");
    }
    run(cfg)
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    match path {
        Some(path) => Config::load(path).map_err(|e| {
            error!("invalid configuration: {e}");
            ExitCode::from(2)
        }),
        None => Ok(Config::default()),
    }
}

fn purge(config: Option<&std::path::Path>, count: usize) -> ExitCode {
    let cfg = match load(config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    match ferrokeeper::storage::purge(&cfg.data_dir, &cfg.data_log_dir, count) {
        Ok(report) => {
            println!("{report:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("purge failed: {e}");
            ExitCode::FAILURE
        }
    }
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
