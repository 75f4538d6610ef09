//! `ferrokeeper [zoo.cfg]`: with no argument, a standalone server on
//! 127.0.0.1:2181 with data under ./data; with a path, ZooKeeper's config file.
//! `ferrokeeper start|stop|restart|status|print-cmd|version [zoo.cfg]` are
//! zkServer.sh's operator commands (`ferrokeeper::operator`);
//! `start-foreground` is the bare form, and what `start` runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferrokeeper::config::Config;
use ferrokeeper::operator::{self, OperatorError};
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
    /// Start the server in the background; returns once it answers on its client port.
    ///
    /// Pid file: $ZOOPIDFILE or <dataDir>/zookeeper_server.pid; output:
    /// $ZOO_LOG_DIR/ferrokeeper.out (ZOO_LOG_DIR defaults to <dataDir>/../logs).
    Start {
        /// zoo.cfg to read (default: 127.0.0.1:2181, data under ./data).
        config: Option<PathBuf>,
        /// Seconds to wait for the server to answer before giving up.
        #[arg(long, default_value_t = operator::START_WAIT_DEFAULT.as_secs())]
        wait_secs: u64,
    },
    /// Run the server in the foreground, as a bare `ferrokeeper [zoo.cfg]` does (for systemd).
    StartForeground {
        /// zoo.cfg to read (default: 127.0.0.1:2181, data under ./data).
        config: Option<PathBuf>,
    },
    /// Stop the server named by the pid file (SIGTERM; waits for it to exit).
    Stop {
        /// zoo.cfg to read (locates the pid file).
        config: Option<PathBuf>,
        /// Seconds to wait for the server to exit (it writes a final snapshot).
        #[arg(long, default_value_t = operator::STOP_WAIT_DEFAULT.as_secs())]
        wait_secs: u64,
    },
    /// Stop the server if it runs, then start it.
    Restart {
        /// zoo.cfg to read.
        config: Option<PathBuf>,
        /// Seconds to wait for the old server to exit.
        #[arg(long, default_value_t = operator::STOP_WAIT_DEFAULT.as_secs())]
        stop_wait_secs: u64,
        /// Seconds to wait for the new server to answer.
        #[arg(long, default_value_t = operator::START_WAIT_DEFAULT.as_secs())]
        wait_secs: u64,
    },
    /// Ask the configured client port for `srvr` and print the server's mode.
    Status {
        /// zoo.cfg to read (clientPort, clientPortAddress).
        config: Option<PathBuf>,
    },
    /// Print the command line `start` runs, and its pid and log files.
    PrintCmd {
        /// zoo.cfg to read.
        config: Option<PathBuf>,
    },
    /// Print the version and the ZooKeeper release it is compatible with.
    Version,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: `start` sends this to a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let secs = Duration::from_secs;
    match cli.command {
        None => serve(cli.config.as_deref()),
        Some(Command::StartForeground { config }) => serve(config.as_deref()),
        Some(Command::Purge { config, count }) => purge(config.as_deref(), count),
        Some(Command::Start { config, wait_secs }) => {
            report(operator::start(config.as_deref(), secs(wait_secs)))
        }
        Some(Command::Stop { config, wait_secs }) => {
            report(operator::stop(config.as_deref(), secs(wait_secs)))
        }
        Some(Command::Restart {
            config,
            stop_wait_secs,
            wait_secs,
        }) => report(operator::restart(
            config.as_deref(),
            secs(stop_wait_secs),
            secs(wait_secs),
        )),
        Some(Command::Status { config }) => report(operator::status(config.as_deref())),
        Some(Command::PrintCmd { config }) => report(operator::print_cmd(config.as_deref())),
        Some(Command::Version) => {
            println!("{}", operator::version_text());
            ExitCode::SUCCESS
        }
    }
}

/// An operator command's outcome: its failure as one line on stderr.
fn report(result: Result<(), OperatorError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The server in the foreground: the bare form and `start-foreground`.
fn serve(config: Option<&Path>) -> ExitCode {
    let cfg = match load(config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    for warning in &cfg.warnings {
        warn!("{warning}");
    }
    run(cfg)
}

fn load(path: Option<&Path>) -> Result<Config, ExitCode> {
    match path {
        Some(path) => Config::load(path).map_err(|e| {
            error!("invalid configuration: {e}");
            ExitCode::from(2)
        }),
        None => Ok(Config::default()),
    }
}

fn purge(config: Option<&Path>, count: usize) -> ExitCode {
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
    // `start` returns only after every shard's listener is bound.
    operator::systemd::notify_ready();
    // The main thread only watches for a signal or an executor that died.
    while !stop.load(Ordering::Relaxed) && !server.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let crashed = server.is_finished() && !stop.load(Ordering::Relaxed);
    info!("shutting down");
    operator::systemd::notify_stopping();
    server.shutdown();
    if crashed {
        error!("an executor stopped unexpectedly");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
