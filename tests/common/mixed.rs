//! Hand-built ensembles of Ferrokeeper and Apache processes, for the tests
//! whose Apache member needs a zoo.cfg of its own (quorum TLS, an observer
//! line): free ports per member, the `server.N` lines, each member's
//! directory and zoo.cfg, our server's process, and the logs for a report.
//! (`tests/common/ensemble.rs` runs the usual ensembles through proxies.)

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::raw;

/// A child process killed and reaped when the test lets go of it.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One member's ports.
pub struct Peer {
    pub quorum: u16,
    pub election: u16,
    pub client: u16,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// `n` members on free ports.
pub fn peers(n: usize) -> Vec<Peer> {
    (0..n)
        .map(|_| Peer {
            quorum: free_port(),
            election: free_port(),
            client: free_port(),
        })
        .collect()
}

/// The `server.N=...` lines, sids from 1; `role(sid)` adds `:observer`
/// or `:participant` when it returns one.
pub fn server_lines(peers: &[Peer], role: impl Fn(usize) -> Option<&'static str>) -> String {
    let mut lines = String::new();
    for (i, p) in peers.iter().enumerate() {
        let suffix = role(i + 1).map(|r| format!(":{r}")).unwrap_or_default();
        lines.push_str(&format!(
            "server.{}=127.0.0.1:{}:{}{suffix}\n",
            i + 1,
            p.quorum,
            p.election
        ));
    }
    lines
}

/// Writes `dir/data/myid` and `dir/zoo.cfg`: `timing` (tickTime and the
/// limits), the member's data dir and client port, four-letter words on and
/// the AdminServer off, then `extra` and the server lines. Returns the
/// config's path.
pub fn write_peer_cfg(
    dir: &Path,
    sid: usize,
    client_port: u16,
    timing: &str,
    extra: &str,
    lines: &str,
) -> PathBuf {
    let data = dir.join("data");
    fs::create_dir_all(&data).expect("data dir");
    fs::write(data.join("myid"), format!("{sid}\n")).expect("myid");
    let cfg = dir.join("zoo.cfg");
    let text = format!(
        "{timing}dataDir={}\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n\
         4lw.commands.whitelist=*\nadmin.enableServer=false\n{extra}{lines}",
        data.display(),
    );
    fs::write(&cfg, text).expect("zoo.cfg");
    cfg
}

/// Our server on `cfg` in `dir`, logging to `dir/server.log`.
pub fn spawn_ferrokeeper(dir: &Path, cfg: &Path) -> Proc {
    let log = fs::File::create(dir.join("server.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
        .arg(cfg)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn ferrokeeper");
    Proc(child)
}

/// The last `lines` lines of each (server id, log file), for a failure report.
pub fn log_tails(logs: &[(usize, PathBuf)], lines: usize) -> String {
    logs.iter()
        .map(|(sid, path)| {
            let text = fs::read_to_string(path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            format!(
                "--- server {sid}\n{}",
                all[all.len().saturating_sub(lines)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `srvr`'s `Mode:` on the client port; None while it does not answer.
pub fn mode(port: u16) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    raw::four_letter(addr, "srvr")
        .lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::to_string)
}

/// Polls `cond` (every 100 ms) until it holds; past `within` fails with
/// `report()`.
pub fn wait_for(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> bool,
    report: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
