//! Test harness for the wire-level integration tests.
//!
//! `Server::start` runs our `ferrokeeper` binary (or, with `FERROKEEPER_TEST_TARGET=apache`,
//! the real Apache ZooKeeper from the Debian package) on a free loopback port with a generated
//! zoo.cfg, and waits (bounded) until `ruok` answers `imok`. Dropping the `Server` stops it.
//! Servers shared by a whole test file live in a `OnceLock` static; those are stopped by an
//! `atexit` hook, and every server process also gets `PR_SET_PDEATHSIG` so nothing outlives
//! the test process even if it is killed.

#![allow(dead_code)]

pub mod apache;
pub mod ensemble;
pub mod ensemble_client;
pub mod fault_proxy;
pub mod http;
pub mod mixed;
pub mod node;
pub mod raw;
pub mod tls;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

pub use zookeeper_client as zk;

/// Classpath of the Debian package's ZooKeeper.
const APACHE_CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/*";

/// True when the tests run against Apache ZooKeeper (3.8.0 here) instead of ferrokeeper.
pub fn is_apache() -> bool {
    std::env::var("FERROKEEPER_TEST_TARGET")
        .map(|v| v.eq_ignore_ascii_case("apache"))
        .unwrap_or(false)
}

/// Guard for assertions of ZooKeeper 3.9 behaviour that the 3.8.0 reference server on this
/// machine does not have. Returns false (skip) only under the apache target.
pub fn check_39_behaviour(what: &str) -> bool {
    if is_apache() {
        eprintln!("note: skipping 3.9-only assertion under the apache (3.8) target: {what}");
        false
    } else {
        true
    }
}

/// `user:base64(sha1("user:password"))`, the digest-scheme id of a user.
pub fn digest_id(user: &str, password: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let hash = sha1::Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: a long-lived spawner thread (so PR_SET_PDEATHSIG, which is tied to the
// spawning *thread*, only fires when the test process dies) and an atexit cleanup of servers
// that are never dropped (the shared ones in statics).

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("server-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static, so this thread lives until the process exits.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    })
}

fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may already have died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .expect("spawner alive");
    rx.recv().expect("spawner reply")
}

/// (pid, dir) of every server not yet stopped.
static LIVE: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn cleanup_at_exit() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for (pid, _) in &live {
        unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
    }
    for (pid, dir) in &live {
        terminate_pid(*pid, Duration::from_secs(3));
        let _ = fs::remove_dir_all(dir);
    }
}

fn register(pid: u32, dir: &Path) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| unsafe {
        libc::atexit(cleanup_at_exit);
    });
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, dir.to_path_buf()));
}

fn unregister(pid: u32) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pid);
}

/// SIGTERM (already sent or sent here), wait up to `grace`, then SIGKILL; reaps the child.
fn terminate_pid(pid: u32, grace: Duration) {
    let pid = pid as libc::pid_t;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid || r < 0 {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

/// A port nothing listens on right now (picked by the kernel).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().unwrap().port()
}

/// Removes directories left behind by test processes that were killed (no atexit cleanup).
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("ferrokeeper-test-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn fresh_dir() -> PathBuf {
    static CLEAN: Once = Once::new();
    CLEAN.call_once(remove_stale_dirs);
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "ferrokeeper-test-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    ));
    fs::create_dir_all(dir.join("data")).expect("create temp dir");
    dir
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One `ruok` probe: true if the server answered `imok`.
fn ruok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(1000)));
    if s.write_all(b"ruok").is_err() {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out.starts_with(b"imok")
}

/// Whether the server serves requests: `ruok` answers `imok` and `srvr` reports a `Mode:`
/// (ZooKeeper answers `imok` before it serves requests). If `srvr` is not whitelisted, `ruok`
/// alone decides.
fn ready(addr: SocketAddr) -> bool {
    if !ruok(addr) {
        return false;
    }
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(1000)));
    if s.write_all(b"srvr").is_err() {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.contains("Mode:") || text.contains("not in the whitelist")
}

// ---------------------------------------------------------------------------------------------

/// A running server (ferrokeeper or Apache ZooKeeper) on 127.0.0.1.
pub struct Server {
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
    port: u16,
}

impl Server {
    /// Starts a server with the default test config plus `extra_cfg` (an extra key replaces a
    /// default key of the same name). Panics (with the server's log tail) if it does not come up.
    pub fn start(extra_cfg: &[(&str, &str)]) -> Server {
        Server::start_checked(extra_cfg).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `start`, but returns the failure report instead of panicking.
    pub fn start_checked(extra_cfg: &[(&str, &str)]) -> Result<Server, String> {
        let mut last = String::new();
        // A port picked as free may be taken before the server binds it, which makes the
        // server exit: retry a few times in that case (not when it hangs without answering).
        for _ in 0..3 {
            match Server::try_start(extra_cfg) {
                Ok(s) => return Ok(s),
                Err((e, exited)) => {
                    last = e;
                    if !exited {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// Err((report, whether the process exited by itself)).
    fn try_start(extra_cfg: &[(&str, &str)]) -> Result<Server, (String, bool)> {
        let apache = is_apache();
        let dir = fresh_dir();
        let port = free_port();
        let data = dir.join("data");
        let mut cfg: Vec<(String, String)> = vec![
            ("tickTime".into(), "2000".into()),
            ("initLimit".into(), "10".into()),
            ("syncLimit".into(), "5".into()),
            ("dataDir".into(), data.display().to_string()),
            ("clientPort".into(), port.to_string()),
            ("clientPortAddress".into(), "127.0.0.1".into()),
            ("4lw.commands.whitelist".into(), "*".into()),
            ("extendedTypesEnabled".into(), "true".into()),
            ("admin.enableServer".into(), "false".into()),
        ];
        if !apache {
            // Two shards even on small machines (whose default is one), so
            // the tests cover sessions and watches spread over shards.
            cfg.push(("ferrokeeper.shards".into(), "2".into()));
        }
        for (k, v) in extra_cfg {
            match cfg.iter_mut().find(|(ck, _)| ck == k) {
                Some(e) => e.1 = v.to_string(),
                None => cfg.push((k.to_string(), v.to_string())),
            }
        }
        let mut text = String::from("# generated by tests/common\n");
        for (k, v) in &cfg {
            text.push_str(&format!("{k}={v}\n"));
        }
        let cfg_path = dir.join("zoo.cfg");
        fs::write(&cfg_path, text).map_err(|e| (format!("write zoo.cfg: {e}"), false))?;

        let stdout_path = dir.join("stdout.log");
        let stderr_path = dir.join("stderr.log");
        let stdout = fs::File::create(&stdout_path).map_err(|e| (e.to_string(), false))?;
        let stderr = fs::File::create(&stderr_path).map_err(|e| (e.to_string(), false))?;

        let mut cmd = if apache {
            let mut c = Command::new("java");
            c.arg("-Xms256m")
                .arg("-Xmx256m")
                .arg("-XX:+UseSerialGC")
                .arg("-XX:TieredStopAtLevel=1");
            c.arg(format!("-Dzookeeper.log.dir={}", dir.display()));
            c.arg("-Dzookeeper.root.logger=INFO,CONSOLE");
            c.arg("-Dzookeeper.admin.enableServer=false");
            // Keys ZooKeeper only reads as JVM system properties.
            for (k, v) in &cfg {
                if k == "jute.maxbuffer" {
                    c.arg(format!("-Djute.maxbuffer={v}"));
                } else if k == "DigestAuthenticationProvider.superDigest" {
                    c.arg(format!(
                        "-Dzookeeper.DigestAuthenticationProvider.superDigest={v}"
                    ));
                } else if k.starts_with("zookeeper.") {
                    c.arg(format!("-D{k}={v}"));
                }
            }
            c.arg("-cp").arg(APACHE_CLASSPATH);
            c.arg("org.apache.zookeeper.server.quorum.QuorumPeerMain");
            c.arg(&cfg_path);
            c
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"));
            c.arg(&cfg_path);
            if std::env::var_os("RUST_LOG").is_none() {
                c.env("RUST_LOG", "info");
            }
            c
        };
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = spawn(cmd).map_err(|e| (format!("spawn server: {e}"), false))?;
        let pid = child.id();
        register(pid, &dir);
        let mut server = Server {
            child: Some(child),
            pid,
            dir,
            port,
        };

        let budget = if apache {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(20)
        };
        let deadline = Instant::now() + budget;
        loop {
            if ready(server.addr()) {
                return Ok(server);
            }
            let exited = server.child.as_mut().unwrap().try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let why = match exited {
                    Some(st) => format!("exited with {st}"),
                    None => format!("no `imok` within {budget:?}"),
                };
                let msg = format!(
                    "{} server on port {} failed to start: {}\n--- zoo.cfg\n{}\n--- stderr (tail)\n{}\n--- stdout (tail)\n{}",
                    if apache { "apache" } else { "ferrokeeper" },
                    port,
                    why,
                    fs::read_to_string(&cfg_path).unwrap_or_default(),
                    tail(&stderr_path, 40),
                    tail(&stdout_path, 40),
                );
                server.stop();
                return Err((msg, exited.is_some()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    /// Last lines of the server's stderr and stdout, for diagnostics.
    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "--- stderr\n{}\n--- stdout\n{}",
            tail(&self.dir.join("stderr.log"), lines),
            tail(&self.dir.join("stdout.log"), lines)
        )
    }
    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server: SIGTERM, then SIGKILL after a deadline; removes its directory.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate_pid(child.id(), Duration::from_secs(5));
            drop(child);
            unregister(self.pid);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }

    // --- clients -------------------------------------------------------------------------

    /// A `zookeeper-client` session with the crate's default settings.
    pub async fn client(&self) -> zk::Client {
        self.connect(zk::Client::connector()).await
    }
    /// A `zookeeper-client` session requesting `ms` as session timeout.
    pub async fn client_with_timeout(&self, ms: u64) -> zk::Client {
        self.connect(zk::Client::connector().with_session_timeout(Duration::from_millis(ms)))
            .await
    }
    /// A `zookeeper-client` session that authenticates with (scheme, auth) on connect.
    pub async fn client_with_auth(&self, scheme: &str, auth: &[u8]) -> zk::Client {
        self.connect(zk::Client::connector().with_auth(scheme, auth))
            .await
    }
    /// Connects with a custom connector, bounded in time.
    pub async fn connect(&self, connector: zk::Connector) -> zk::Client {
        self.try_connect(connector)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.connect_string()))
    }
    pub async fn try_connect(&self, connector: zk::Connector) -> Result<zk::Client, zk::Error> {
        match tokio::time::timeout(
            Duration::from_secs(20),
            connector.connect(&self.connect_string()),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(zk::Error::Timeout),
        }
    }

    // --- raw protocol --------------------------------------------------------------------

    /// A raw TCP connection (no handshake), with bounded read/write timeouts.
    pub fn tcp(&self) -> TcpStream {
        raw::tcp(self.addr())
    }
    /// A raw session (handshake done) requesting a 30 s session timeout.
    pub fn raw(&self) -> raw::Conn {
        raw::Conn::connect(self.addr(), 30_000)
    }
    pub fn raw_with_timeout(&self, ms: i32) -> raw::Conn {
        raw::Conn::connect(self.addr(), ms)
    }
    /// Sends raw bytes on a fresh connection.
    pub fn send_raw(&self, bytes: &[u8]) -> TcpStream {
        let mut s = self.tcp();
        s.write_all(bytes).expect("send raw bytes");
        s
    }
    /// Four-letter word on a fresh connection; returns the full answer.
    pub fn four_letter(&self, word: &str) -> String {
        raw::four_letter(self.addr(), word)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server shared by all tests of one test file: started lazily on first use, stopped at
/// process exit.
/// Storage for a test file's shared server (`static SERVER: Shared = Shared::new();`). A failed
/// start is remembered, so the other tests of the file fail at once with the same report.
pub type Shared = OnceLock<Result<Server, String>>;

pub fn shared(cell: &'static Shared, extra_cfg: &[(&str, &str)]) -> &'static Server {
    match cell.get_or_init(|| Server::start_checked(extra_cfg)) {
        Ok(s) => s,
        Err(e) => panic!("shared server failed to start:\n{e}"),
    }
}

/// Polls `f` until it returns `Some`, at most `timeout`; panics with `what` otherwise.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Awaits `fut` for at most `secs` seconds, panicking with `what` on timeout.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// The default ACL list for creates through zookeeper-client.
pub fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}
pub fn mode(m: zk::CreateMode) -> zk::CreateOptions<'static> {
    m.with_acls(zk::Acls::anyone_all())
}

/// Runs a test body with an overall deadline, so a server that never answers fails the test
/// instead of hanging it (zookeeper-client requests have no timeout of their own).
pub async fn bounded<F: std::future::Future<Output = ()>>(secs: u64, body: F) {
    if tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .is_err()
    {
        panic!("test did not finish within {secs} s");
    }
}

/// Runs our binary on `cfg_text` (written as zoo.cfg in a fresh temp dir;
/// `DATA` in it becomes a data dir there) and expects it to exit with an
/// error within `wait`; returns (zoo.cfg path, stderr).
pub fn expect_startup_failure(cfg_text: &str, wait: Duration) -> (String, String) {
    let dir = fresh_dir();
    let cfg = dir.join("zoo.cfg");
    let text = cfg_text.replace("DATA", &dir.join("data").display().to_string());
    fs::write(&cfg, text).expect("write zoo.cfg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrokeeper");
    let deadline = Instant::now() + wait;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferrokeeper kept running with a config it should refuse:\n{cfg_text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(!status.success(), "exit status {status}");
    let _ = fs::remove_dir_all(&dir);
    (cfg.display().to_string(), stderr)
}
