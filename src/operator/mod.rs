//! Operator commands as ZooKeeper users know them from zkServer.sh: `start`
//! (in the background, returning once the server answers), `stop`, `restart`,
//! `status`, `print-cmd` and `version`. `start-foreground` is the server
//! itself (`src/main.rs`); `start` runs it again from this binary.
//!
//! Files, as zkServer.sh places them:
//! - pid file: `$ZOOPIDFILE`, else `<dataDir>/zookeeper_server.pid`;
//! - server output: `$ZOO_LOG_DIR/ferrokeeper.out`, `ZOO_LOG_DIR` defaulting
//!   to `<dataDir>/../logs` (created by `start`).
//!
//! Every command prints progress on stdout and returns its failure as one
//! line for the caller to print on stderr; [`OperatorError::exit_code`] is
//! 2 for a bad configuration and 1 for everything else.

pub mod daemon;
pub mod pidfile;
pub mod probe;
pub mod systemd;

use std::ffi::OsStr;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};
use pidfile::PidFileState;

/// How long `start` waits for the server to answer by default: recovery runs
/// before the port opens (about 1 s per million znodes).
pub const START_WAIT_DEFAULT: Duration = Duration::from_secs(30);
/// How long `stop` waits for the server to exit by default: it writes a final
/// snapshot on SIGTERM (about 2 s per million znodes).
pub const STOP_WAIT_DEFAULT: Duration = Duration::from_secs(60);
/// Bound on each connect, write and read of one four-letter probe, so a port
/// held by something that never answers costs a probe this much at most.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// `status` allows a busy server longer to answer than a startup probe.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server that failed to start gets to exit on SIGTERM before
/// SIGKILL.
const FAILED_START_GRACE: Duration = Duration::from_secs(10);
/// Lines of the server log shown when a start fails.
const LOG_TAIL_LINES: usize = 20;

pub const PID_FILE_NAME: &str = "zookeeper_server.pid";
pub const LOG_FILE_NAME: &str = "ferrokeeper.out";
pub const PID_FILE_ENV: &str = "ZOOPIDFILE";
pub const LOG_DIR_ENV: &str = "ZOO_LOG_DIR";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Failed(String),
}

impl OperatorError {
    /// 2 for a configuration error (as the server itself exits), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            OperatorError::Config(_) => 2,
            OperatorError::Failed(_) => 1,
        }
    }
}

fn failed(message: impl Into<String>) -> OperatorError {
    OperatorError::Failed(message.into())
}

/// Where a server's pid file and output go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub pid_file: PathBuf,
    pub log_dir: PathBuf,
    pub log_file: PathBuf,
}

impl Paths {
    /// From `dataDir` and the values of `ZOOPIDFILE` and `ZOO_LOG_DIR` (an
    /// empty value counts as unset, as in a shell script).
    pub fn resolve(data_dir: &Path, pid_env: Option<&OsStr>, log_env: Option<&OsStr>) -> Paths {
        let data_dir = absolute(data_dir);
        let set = |value: Option<&OsStr>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
        let pid_file = set(pid_env).map_or_else(|| data_dir.join(PID_FILE_NAME), |p| absolute(&p));
        // Lexically: dataDir may not exist yet, so `..` cannot be resolved.
        let beside_data = || data_dir.parent().unwrap_or(&data_dir).join("logs");
        let log_dir = set(log_env).map_or_else(beside_data, |p| absolute(&p));
        let log_file = log_dir.join(LOG_FILE_NAME);
        Paths {
            pid_file,
            log_dir,
            log_file,
        }
    }

    pub fn from_env(data_dir: &Path) -> Paths {
        Paths::resolve(
            data_dir,
            std::env::var_os(PID_FILE_ENV).as_deref(),
            std::env::var_os(LOG_DIR_ENV).as_deref(),
        )
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A configured server: its config file (none: the built-in defaults), the
/// parsed config and where its files go.
pub struct Target {
    pub config_path: Option<PathBuf>,
    pub cfg: Config,
    pub paths: Paths,
    /// Keys the file sets; `Config` fills in defaults, and `status` must know
    /// whether `clientPort` was given at all.
    declared_keys: Vec<String>,
}

impl Target {
    pub fn load(config: Option<&Path>) -> Result<Target, OperatorError> {
        let (config_path, cfg, declared_keys) = match config {
            Some(path) => {
                let cfg = Config::load(path)?;
                let text = std::fs::read_to_string(path).unwrap_or_default();
                (Some(absolute(path)), cfg, declared_keys(&text))
            }
            None => (None, Config::default(), Vec::new()),
        };
        let paths = Paths::from_env(&cfg.data_dir);
        Ok(Target {
            config_path,
            cfg,
            paths,
            declared_keys,
        })
    }

    fn declares(&self, key: &str) -> bool {
        self.declared_keys.iter().any(|k| k == key)
    }

    /// Where the client port is reached from this host.
    pub fn client_addr(&self) -> SocketAddr {
        probe::reachable_addr(self.cfg.client_address, self.cfg.client_port)
    }

    /// zkServer.sh prints the config it uses on stderr, so scripts parsing
    /// stdout do not see it.
    fn announce(&self) {
        match &self.config_path {
            Some(path) => eprintln!("Using config: {}", path.display()),
            None => eprintln!("Using config: none (built-in defaults: 127.0.0.1:2181, ./data)"),
        }
    }
}

/// The keys of zoo.cfg text, in order (the split rule of `Config::parse`).
fn declared_keys(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, _)| key.trim().to_string())
        .collect()
}

// --- start -------------------------------------------------------------------

/// `start`: runs the server in the background and returns once it answers on
/// its client port.
pub fn start(config: Option<&Path>, wait: Duration) -> Result<(), OperatorError> {
    let target = Target::load(config)?;
    target.announce();
    start_target(&target, wait)
}

fn start_target(target: &Target, wait: Duration) -> Result<(), OperatorError> {
    let paths = &target.paths;
    prepare_dirs(paths)?;
    claim_pid_file(&paths.pid_file)?;
    // Only this run's log lines explain this run's failure.
    let log_offset_bytes = std::fs::metadata(&paths.log_file).map_or(0, |m| m.len());
    print!("Starting ferrokeeper ... ");
    let _ = io::stdout().flush();
    match launch(target, wait) {
        Ok(()) => {
            println!("STARTED");
            Ok(())
        }
        Err(reason) => {
            println!("FAILED TO START");
            let _ = pidfile::remove_if_names(&paths.pid_file, std::process::id());
            Err(explain_failed_start(
                &paths.log_file,
                log_offset_bytes,
                reason,
            ))
        }
    }
}

fn prepare_dirs(paths: &Paths) -> Result<(), OperatorError> {
    let pid_dir = paths.pid_file.parent().unwrap_or(Path::new("/"));
    for dir in [pid_dir, paths.log_dir.as_path()] {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Refuses a pid file naming a live server, replaces a stale one, and claims
/// the file with our own pid until the server's is known, so a second
/// `start` racing this one is refused rather than starting a twin.
fn claim_pid_file(path: &Path) -> Result<(), OperatorError> {
    let state = pidfile::read_state(path)
        .map_err(|e| failed(format!("cannot read pid file {}: {e}", path.display())))?;
    match state {
        PidFileState::Running(pid) => {
            return Err(failed(format!(
                "ferrokeeper already running as process {pid} (pid file {})",
                path.display()
            )))
        }
        PidFileState::Stale { reason } => {
            eprintln!(
                "warning: replacing stale pid file {}: {reason}",
                path.display()
            );
            remove_file_if_present(path)?;
        }
        PidFileState::Missing => {}
    }
    pidfile::create_exclusive(path, std::process::id()).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => failed(format!(
            "another ferrokeeper start created {} meanwhile",
            path.display()
        )),
        _ => failed(format!("cannot write pid file {}: {e}", path.display())),
    })
}

fn remove_file_if_present(path: &Path) -> Result<(), OperatorError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(failed(format!("cannot remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Spawns the server and waits until it serves; on failure nothing is left
/// running and the pid file no longer names the child.
fn launch(target: &Target, wait: Duration) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let paths = &target.paths;
    let mut child = daemon::spawn_server(&exe, target.config_path.as_deref(), &paths.log_file)
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let pid = child.id();
    let result = pidfile::replace(&paths.pid_file, pid)
        .map_err(|e| format!("cannot write pid file {}: {e}", paths.pid_file.display()))
        .and_then(|()| wait_serving(&mut child, target.client_addr(), wait));
    if result.is_err() {
        daemon::terminate_child(&mut child, FAILED_START_GRACE);
        let _ = pidfile::remove_if_names(&paths.pid_file, pid);
    }
    result
}

/// Waits until `child` answers `srvr` on `addr` from a socket it owns itself
/// (another server on the port answers too, while ours fails to bind), at most
/// `wait`, or until it exits.
fn wait_serving(child: &mut Child, addr: SocketAddr, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Err(format!("the server exited during startup ({status})")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot watch the server process: {e}")),
        }
        if serves(child.id(), addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the server did not answer on {addr} within {} s",
                wait.as_secs()
            ));
        }
        std::thread::sleep(daemon::POLL_INTERVAL);
    }
}

fn serves(pid: u32, addr: SocketAddr) -> bool {
    // The /proc check first: it is cheap, and spares a probe that would wait
    // out its timeout on somebody else's silent listener.
    if probe::listens_on(pid, addr.port()) == Some(false) {
        return false;
    }
    probe::four_letter(addr, "srvr", PROBE_TIMEOUT)
        .is_ok_and(|reply| probe::is_server_reply(&reply))
}

/// Prints the tail of the server log on stderr and makes the one-line reason,
/// with the server's own last error (say, the port in use) when it logged one.
fn explain_failed_start(log_file: &Path, log_offset_bytes: u64, reason: String) -> OperatorError {
    let tail = daemon::log_tail(log_file, log_offset_bytes, LOG_TAIL_LINES).unwrap_or_default();
    if !tail.is_empty() {
        eprintln!("--- last lines of {}:", log_file.display());
        for line in &tail {
            eprintln!("{line}");
        }
        eprintln!("---");
    }
    match daemon::last_error(&tail) {
        Some(cause) => failed(format!("ferrokeeper did not start: {reason}: {cause}")),
        None => failed(format!(
            "ferrokeeper did not start: {reason} (see {})",
            log_file.display()
        )),
    }
}

// --- stop ----------------------------------------------------------------------

/// What `stop` found.
enum Stopped {
    Stopped,
    /// Nothing was running; why, for the caller to report.
    NotRunning(String),
}

/// `stop`: SIGTERM to the server of the pid file; returns once it exited.
pub fn stop(config: Option<&Path>, wait: Duration) -> Result<(), OperatorError> {
    let target = Target::load(config)?;
    target.announce();
    match stop_target(&target, wait)? {
        Stopped::Stopped => Ok(()),
        Stopped::NotRunning(why) => Err(failed(why)),
    }
}

fn stop_target(target: &Target, wait: Duration) -> Result<Stopped, OperatorError> {
    let path = &target.paths.pid_file;
    let state = pidfile::read_state(path)
        .map_err(|e| failed(format!("cannot read pid file {}: {e}", path.display())))?;
    let pid = match state {
        PidFileState::Missing => {
            return Ok(Stopped::NotRunning(format!(
                "no ferrokeeper to stop (could not find file {})",
                path.display()
            )))
        }
        PidFileState::Stale { reason } => {
            remove_file_if_present(path)?;
            return Ok(Stopped::NotRunning(format!(
                "no ferrokeeper to stop ({reason}; removed the stale pid file {})",
                path.display()
            )));
        }
        PidFileState::Running(pid) => pid,
    };
    print!("Stopping ferrokeeper ... ");
    let _ = io::stdout().flush();
    if let Err(e) = daemon::send_signal(pid, libc::SIGTERM) {
        println!("FAILED");
        return Err(failed(format!("cannot signal process {pid}: {e}")));
    }
    if !daemon::wait_gone(pid, wait) {
        println!("FAILED");
        return Err(failed(format!(
            "process {pid} still runs {} s after SIGTERM (a final snapshot of a large \
             database takes a while); pid file {} kept",
            wait.as_secs(),
            path.display()
        )));
    }
    remove_pid_file_of(path, pid)?;
    println!("STOPPED");
    Ok(Stopped::Stopped)
}

fn remove_pid_file_of(path: &Path, pid: u32) -> Result<(), OperatorError> {
    pidfile::remove_if_names(path, pid)
        .map_err(|e| failed(format!("cannot remove pid file {}: {e}", path.display())))
}

/// `restart`: `stop` (nothing running is fine), then `start`.
pub fn restart(
    config: Option<&Path>,
    stop_wait: Duration,
    start_wait: Duration,
) -> Result<(), OperatorError> {
    let target = Target::load(config)?;
    target.announce();
    if let Stopped::NotRunning(why) = stop_target(&target, stop_wait)? {
        eprintln!("{why}");
    }
    start_target(&target, start_wait)
}

// --- status, print-cmd, version --------------------------------------------------

/// `status`: asks the configured client port for `srvr` and prints its mode.
pub fn status(config: Option<&Path>) -> Result<(), OperatorError> {
    let target = Target::load(config)?;
    target.announce();
    if !target.declares("clientPort") && target.declares("secureClientPort") {
        return Err(failed(
            "only secureClientPort is set: status over TLS is not supported yet",
        ));
    }
    let addr = target.client_addr();
    println!(
        "Client port found: {}. Client address: {}.",
        addr.port(),
        addr.ip()
    );
    let reply = probe::four_letter(addr, "srvr", STATUS_TIMEOUT).map_err(|e| {
        failed(format!(
            "Error contacting service. It is probably not running. ({addr}: {e})"
        ))
    })?;
    let mode = probe::parse_srvr_mode(&reply)
        .map_err(|e| failed(format!("Error contacting service: {e}")))?;
    println!("Mode: {}", mode.as_str());
    Ok(())
}

/// `print-cmd`: the command line `start` runs, and where its files go.
pub fn print_cmd(config: Option<&Path>) -> Result<(), OperatorError> {
    let target = Target::load(config)?;
    target.announce();
    let exe =
        std::env::current_exe().map_err(|e| failed(format!("cannot find this binary: {e}")))?;
    let mut words = vec![
        shell_quote(&exe.to_string_lossy()),
        "start-foreground".into(),
    ];
    if let Some(path) = &target.config_path {
        words.push(shell_quote(&path.to_string_lossy()));
    }
    let paths = &target.paths;
    println!(
        "{} >> {} 2>&1 < /dev/null",
        words.join(" "),
        shell_quote(&paths.log_file.to_string_lossy())
    );
    println!("pid file: {}", paths.pid_file.display());
    println!("log file: {}", paths.log_file.display());
    Ok(())
}

/// `version`: ours and the ZooKeeper release we follow (the one `srvr` reports).
pub fn version_text() -> String {
    let zk = crate::ops::ZK_COMPAT_VERSION;
    format!(
        "ferrokeeper {}, compatible with Apache ZooKeeper {} (reports {zk} to clients)",
        env!("CARGO_PKG_VERSION"),
        major_minor(zk)
    )
}

fn major_minor(version: &str) -> &str {
    match version.match_indices('.').nth(1) {
        Some((second_dot, _)) => &version[..second_dot],
        None => version,
    }
}

/// `word` as one shell word: unchanged when it has no special characters,
/// else single-quoted.
fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-=:+@,%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_zkserver_sh() {
        let paths = Paths::resolve(Path::new("/var/lib/fk/data"), None, None);
        assert_eq!(
            paths.pid_file,
            PathBuf::from("/var/lib/fk/data/zookeeper_server.pid")
        );
        assert_eq!(paths.log_dir, PathBuf::from("/var/lib/fk/logs"));
        assert_eq!(
            paths.log_file,
            PathBuf::from("/var/lib/fk/logs/ferrokeeper.out")
        );
    }

    #[test]
    fn environment_overrides_paths_and_empty_means_unset() {
        let pid = OsStr::new("/run/fk.pid");
        let logs = OsStr::new("/var/log/fk");
        let paths = Paths::resolve(Path::new("/d/data"), Some(pid), Some(logs));
        assert_eq!(paths.pid_file, PathBuf::from("/run/fk.pid"));
        assert_eq!(paths.log_file, PathBuf::from("/var/log/fk/ferrokeeper.out"));
        let empty = OsStr::new("");
        let paths = Paths::resolve(Path::new("/d/data"), Some(empty), Some(empty));
        assert_eq!(
            paths.pid_file,
            PathBuf::from("/d/data/zookeeper_server.pid")
        );
        assert_eq!(paths.log_dir, PathBuf::from("/d/logs"));
    }

    #[test]
    fn relative_data_dir_is_made_absolute() {
        let paths = Paths::resolve(Path::new("data"), None, None);
        assert!(paths.pid_file.is_absolute());
        assert!(paths.pid_file.ends_with("data/zookeeper_server.pid"));
        assert_eq!(
            paths.log_dir.parent(),
            paths.pid_file.parent().and_then(Path::parent)
        );
    }

    #[test]
    fn finds_declared_keys() {
        let keys = declared_keys("# c\n\n tickTime = 2000\nsecureClientPort=2281\n!x=1\n");
        assert_eq!(keys, ["tickTime", "secureClientPort"]);
    }

    #[test]
    fn version_names_the_zookeeper_line() {
        assert_eq!(major_minor("3.9.2"), "3.9");
        assert_eq!(major_minor("3"), "3");
        let text = version_text();
        assert!(
            text.contains("compatible with Apache ZooKeeper 3.9"),
            "{text}"
        );
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    }

    #[test]
    fn quotes_shell_words() {
        assert_eq!(shell_quote("/usr/bin/ferrokeeper"), "/usr/bin/ferrokeeper");
        assert_eq!(shell_quote("/tmp/my dir/zoo.cfg"), "'/tmp/my dir/zoo.cfg'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
