//! An N-server ensemble of real `ferrokeeper` processes on 127.0.0.1, every server-to-server
//! link through a [`FaultProxy`] the test controls.
//!
//! Servers are named by their id (`myid`, the N of `server.N`), 1..=n: participants first,
//! then observers. For every ordered pair (i, j), i != j, there are two proxies, one to j's
//! real quorum port and one to j's real election port; in server i's zoo.cfg the `server.j`
//! line names those proxies, and the `server.i` line i's own real ports. So every connection
//! i opens to j flows through link (i -> j), both directions of it. Client ports are not
//! proxied: a test always reaches every server directly.
//!
//! A consequence for the server under test: each server's zoo.cfg lists different addresses
//! for its peers, so a server must dial the addresses of its own config (as ZooKeeper does
//! with a static config), not ones learnt from a peer.
//!
//! Faults: a link (either direction of a pair) can be silenced or cut, and a server isolated
//! (every link to and from it silenced). Explicit link faults win over isolation; healing a
//! server lifts only its isolation. Processes die with the test (the `tests/common` child
//! registry); dropping the `Ensemble` stops them, its proxies, and removes its directories.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::fault_proxy::{FaultProxy, Mode};

/// Bound on every process answering `ruok` after a start or restart.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on `start` electing a leader.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The same with JVMs starting on a shared 2-core machine.
const APACHE_ELECTION_TIMEOUT: Duration = Duration::from_secs(90);
/// SIGTERM grace before SIGKILL in `stop` and on drop.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Bound on one four-letter word (connect, write, read to EOF).
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(2);
/// Launch attempts when a process exits during startup (a port picked as free was taken).
const LAUNCH_ATTEMPTS: usize = 3;
/// Log lines per server in a failure report.
const REPORT_LINES: usize = 40;
const POLL: Duration = Duration::from_millis(50);

/// Keys the harness sets per server; `extra_cfg` may not override them.
const OWNED_KEYS: &[&str] = &[
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "peerType",
    "admin.serverPort",
];

/// The two proxies of one direction of one pair.
pub struct Link {
    pub quorum: FaultProxy,
    pub election: FaultProxy,
}

impl Link {
    fn start(quorum: SocketAddr, election: SocketAddr) -> Link {
        Link {
            quorum: FaultProxy::start(quorum),
            election: FaultProxy::start(election),
        }
    }
    fn set_mode(&self, mode: Mode) {
        self.quorum.set_mode(mode);
        self.election.set_mode(mode);
    }
}

/// One server: its directory (zoo.cfg, logs, data/myid), ports and process.
struct Member {
    sid: usize,
    observer: bool,
    /// Run by Apache ZooKeeper rather than Ferrokeeper.
    apache: bool,
    dir: PathBuf,
    client_port: u16,
    quorum_port: u16,
    election_port: u16,
    /// The AdminServer's port, used when `extra_cfg` sets
    /// `admin.enableServer=true`.
    admin_port: u16,
    child: Option<Child>,
}

impl Member {
    fn cfg_path(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

/// Link faults the test asked for; the mode of every proxy follows from them.
#[derive(Default)]
struct Faults {
    isolated: BTreeSet<usize>,
    /// By (smaller id, larger id): both directions of the pair.
    links: BTreeMap<(usize, usize), Mode>,
}

impl Faults {
    fn mode(&self, from: usize, to: usize) -> Mode {
        let pair = (from.min(to), from.max(to));
        if let Some(m) = self.links.get(&pair) {
            *m
        } else if self.isolated.contains(&from) || self.isolated.contains(&to) {
            Mode::Silence
        } else {
            Mode::Pass
        }
    }
}

pub struct Ensemble {
    members: Vec<Member>,
    /// `links[i-1][j-1]`: link (i -> j); `None` on the diagonal.
    links: Vec<Vec<Option<Link>>>,
    extra_cfg: Vec<(String, String)>,
    faults: Mutex<Faults>,
}

impl Ensemble {
    /// Starts `participants` + `observers` servers and waits until exactly one reports
    /// `Mode: leader` and every other one `follower` (participants) or `observer`. Panics,
    /// with every server's log tail, if that does not happen within 30 s.
    pub fn start(participants: usize, observers: usize, extra_cfg: &[(&str, &str)]) -> Ensemble {
        let ens = Ensemble::start_unchecked(participants, observers, extra_cfg);
        ens.wait_settled(ELECTION_TIMEOUT);
        ens
    }

    /// As `start`, with the servers `apache` run by Apache ZooKeeper (Debian's package)
    /// instead of Ferrokeeper: the node-by-node migration a user makes. The servers `first`
    /// are started first and elect among themselves (so a test chooses who leads: a quorum
    /// of them votes for the largest sid), then the others join. The servers dial each
    /// other directly, so the fault controls do not apply.
    pub fn start_mixed(
        participants: usize,
        apache: &[usize],
        first: &[usize],
        extra_cfg: &[(&str, &str)],
    ) -> Ensemble {
        super::apache::require_install();
        let ens = Ensemble::launch(participants, 0, extra_cfg, apache, first);
        ens.wait_settled(APACHE_ELECTION_TIMEOUT);
        ens
    }

    /// Starts the servers and waits only until each answers `ruok`.
    pub fn start_unchecked(
        participants: usize,
        observers: usize,
        extra_cfg: &[(&str, &str)],
    ) -> Ensemble {
        Ensemble::launch(participants, observers, extra_cfg, &[], &[])
    }

    fn launch(
        participants: usize,
        observers: usize,
        extra_cfg: &[(&str, &str)],
        apache: &[usize],
        first: &[usize],
    ) -> Ensemble {
        assert!(participants >= 1, "an ensemble needs a participant");
        for (k, _) in extra_cfg {
            assert!(
                !OWNED_KEYS.contains(k) && !k.starts_with("server."),
                "extra_cfg may not set {k}: the harness sets it per server"
            );
        }
        let extra: Vec<(String, String)> = extra_cfg
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut last = String::new();
        for _ in 0..LAUNCH_ATTEMPTS {
            let mut ens = Ensemble::build(participants, observers, extra.clone(), apache);
            match ens.launch_all(first) {
                Ok(()) => return ens,
                // A port picked as free may be taken before the server binds it; the server
                // then exits, and a new set of ports is worth a try. A hang is not retried.
                Err((report, exited)) => {
                    last = report;
                    if !exited {
                        break;
                    }
                }
            }
        }
        panic!("ensemble failed to start:\n{last}");
    }

    /// Directories, ports, proxies and configs; no process yet.
    fn build(
        participants: usize,
        observers: usize,
        extra_cfg: Vec<(String, String)>,
        apache: &[usize],
    ) -> Ensemble {
        let n = participants + observers;
        // The ports stay bound until the proxies have theirs, so the kernel cannot hand a
        // proxy a port picked for a server.
        let mut reserved = Vec::with_capacity(3 * n);
        let mut reserve = || {
            let l = TcpListener::bind("127.0.0.1:0").expect("reserve a port");
            let port = l.local_addr().expect("reserved port").port();
            reserved.push(l);
            port
        };
        let members: Vec<Member> = (1..=n)
            .map(|sid| Member {
                sid,
                observer: sid > participants,
                apache: apache.contains(&sid),
                dir: super::fresh_dir(),
                client_port: reserve(),
                quorum_port: reserve(),
                election_port: reserve(),
                admin_port: reserve(),
                child: None,
            })
            .collect();
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let links = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        (i != j).then(|| {
                            let to = &members[j];
                            Link::start(addr(to.quorum_port), addr(to.election_port))
                        })
                    })
                    .collect()
            })
            .collect();
        drop(reserved);
        let ens = Ensemble {
            members,
            links,
            extra_cfg,
            faults: Mutex::new(Faults::default()),
        };
        for m in &ens.members {
            ens.write_files(m);
        }
        ens
    }

    /// zoo.cfg (in the server's directory) and data/myid.
    fn write_files(&self, m: &Member) {
        let mut cfg: Vec<(String, String)> = vec![
            ("tickTime".into(), "2000".into()),
            ("initLimit".into(), "10".into()),
            ("syncLimit".into(), "5".into()),
            ("dataDir".into(), m.data_dir().display().to_string()),
            ("clientPort".into(), m.client_port.to_string()),
            ("clientPortAddress".into(), "127.0.0.1".into()),
            ("4lw.commands.whitelist".into(), "*".into()),
            ("admin.enableServer".into(), "false".into()),
            ("admin.serverAddress".into(), "127.0.0.1".into()),
            ("admin.serverPort".into(), m.admin_port.to_string()),
            // Several processes share the machine: one shard each.
            ("ferrokeeper.shards".into(), "1".into()),
        ];
        if m.observer {
            cfg.push(("peerType".into(), "observer".into()));
        }
        for (k, v) in &self.extra_cfg {
            match cfg.iter_mut().find(|(ck, _)| ck == k) {
                Some(e) => e.1 = v.clone(),
                None => cfg.push((k.clone(), v.clone())),
            }
        }
        let mut text = format!(
            "# generated by tests/common/ensemble.rs for server {}\n",
            m.sid
        );
        for (k, v) in &cfg {
            text.push_str(&format!("{k}={v}\n"));
        }
        for peer in &self.members {
            text.push_str(&self.server_line(m.sid, peer));
        }
        fs::write(m.cfg_path(), text).expect("write zoo.cfg");
        fs::write(m.data_dir().join("myid"), format!("{}\n", m.sid)).expect("write myid");
    }

    /// The `server.N` line for `peer` in the config of server `of`: its real ports in its own
    /// config, the proxies of link (of -> peer) in every other.
    fn server_line(&self, of: usize, peer: &Member) -> String {
        // Mixed ensembles dial each other directly: through a proxy, a peer's port accepts
        // before the server behind it listens, and an Apache leader opens its quorum port
        // only once it has decided, after ours have.
        let direct = self.members.iter().any(|m| m.apache);
        let (quorum, election) = if peer.sid == of || direct {
            (peer.quorum_port, peer.election_port)
        } else {
            let link = self.link(of, peer.sid);
            (link.quorum.port(), link.election.port())
        };
        let role = if peer.observer {
            "observer"
        } else {
            "participant"
        };
        format!(
            "server.{}=127.0.0.1:{quorum}:{election}:{role};127.0.0.1:{}\n",
            peer.sid, peer.client_port
        )
    }

    // --- processes -----------------------------------------------------------------------

    /// Spawns every server, then waits for each to answer `ruok`; the servers `first`
    /// before the others, which start once those agree on a leader.
    /// Err((report, whether a process exited by itself)).
    fn launch_all(&mut self, first: &[usize]) -> Result<(), (String, bool)> {
        let (first, rest): (Vec<usize>, Vec<usize>) =
            self.sids().partition(|sid| first.contains(sid));
        for &sid in &first {
            self.spawn(sid);
        }
        for &sid in &first {
            self.await_ruok(sid)?;
        }
        if !first.is_empty() {
            let settled = |ens: &Ensemble| {
                let modes: Vec<Option<String>> = first.iter().map(|&s| ens.mode(s)).collect();
                let leaders = modes
                    .iter()
                    .filter(|m| m.as_deref() == Some("leader"))
                    .count();
                let followers = modes
                    .iter()
                    .filter(|m| m.as_deref() == Some("follower"))
                    .count();
                leaders == 1 && leaders + followers == first.len()
            };
            if !self.try_wait_until(APACHE_ELECTION_TIMEOUT, settled) {
                let report = format!("servers {first:?} elected no leader\n{}", self.report());
                return Err((report, false));
            }
        }
        for &sid in &rest {
            self.spawn(sid);
        }
        for &sid in &rest {
            self.await_ruok(sid)?;
        }
        Ok(())
    }

    fn spawn(&mut self, sid: usize) {
        self.set_listening(sid, true);
        let m = self.member(sid);
        assert!(m.child.is_none(), "server {sid} is already running");
        let log = |name: &str| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(m.dir.join(name))
                .expect("open server log")
        };
        let (stdout, mut stderr) = (log("stdout.log"), log("stderr.log"));
        // A restart appends to the same logs; the marker tells the runs apart.
        let _ = writeln!(stderr, "=== harness: starting server {sid}");
        let mut cmd = if m.apache {
            super::apache::quorum_peer_command(&m.dir, &m.cfg_path(), &["-Xmx256m"])
        } else {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"));
            cmd.arg(m.cfg_path())
                .current_dir(&m.dir)
                .stdin(Stdio::null());
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.env("RUST_LOG", "info");
            }
            cmd
        };
        cmd.stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr));
        let child = super::spawn(cmd).unwrap_or_else(|e| panic!("spawn server {sid}: {e}"));
        super::register(child.id(), &m.dir);
        self.member_mut(sid).child = Some(child);
    }

    /// Err((report, whether the process exited by itself)).
    fn await_ruok(&mut self, sid: usize) -> Result<(), (String, bool)> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let addr = self.client_addr(sid);
            if super::ruok(addr) {
                return Ok(());
            }
            let exited = self.reap_if_exited(sid);
            if exited || Instant::now() >= deadline {
                let why = if exited {
                    "exited".to_string()
                } else {
                    format!("no `imok` within {READY_TIMEOUT:?}")
                };
                let report = format!("server {sid} {why}\n{}", self.report());
                return Err((report, exited));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the process of `sid` has exited by itself (and reaps it if so).
    fn reap_if_exited(&mut self, sid: usize) -> bool {
        let m = self.member_mut(sid);
        let Some(child) = m.child.as_mut() else {
            return false;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            let pid = child.id();
            m.child = None;
            super::unregister(pid);
            return true;
        }
        false
    }

    /// SIGKILL: the server gets no chance to flush or say goodbye.
    pub fn kill(&mut self, sid: usize) {
        // First, so nobody reaches the proxies between the death and the refusal.
        self.set_listening(sid, false);
        if let Some(mut child) = self.member_mut(sid).child.take() {
            let _ = child.kill();
            let _ = child.wait();
            super::unregister(child.id());
        }
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self, sid: usize) {
        self.set_listening(sid, false);
        if let Some(child) = self.member_mut(sid).child.take() {
            super::terminate_pid(child.id(), STOP_GRACE);
            super::unregister(child.id());
        }
    }

    /// A stopped server's ports refuse connections: so do the proxies the others reach it
    /// through (a proxy that accepted and closed would look like a live peer).
    fn set_listening(&mut self, sid: usize, listening: bool) {
        for row in &mut self.links {
            if let Some(link) = row[sid - 1].as_mut() {
                for proxy in [&mut link.quorum, &mut link.election] {
                    if listening {
                        proxy.listen_again();
                    } else {
                        proxy.refuse();
                    }
                }
            }
        }
    }

    /// Starts a stopped server again with the same config and data dir, and waits for `ruok`.
    pub fn restart(&mut self, sid: usize) {
        assert!(!self.is_running(sid), "restart({sid}): it is running");
        self.spawn(sid);
        if let Err((report, _)) = self.await_ruok(sid) {
            panic!("restart of server {sid} failed: {report}");
        }
    }

    /// Deletes everything in a stopped server's data dir except `myid`.
    pub fn wipe(&mut self, sid: usize) {
        assert!(!self.is_running(sid), "wipe({sid}): stop it first");
        let data = self.member(sid).data_dir();
        for entry in fs::read_dir(&data).expect("read data dir").flatten() {
            if entry.file_name() == "myid" {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.unwrap_or_else(|e| panic!("wipe {}: {e}", path.display()));
        }
    }

    /// Whether the server's process is alive.
    pub fn is_running(&mut self, sid: usize) -> bool {
        !self.reap_if_exited(sid) && self.member(sid).child.is_some()
    }

    pub fn pid(&self, sid: usize) -> Option<u32> {
        self.member(sid).pid()
    }

    // --- faults --------------------------------------------------------------------------

    /// Silences every link to and from `sid`, quorum and election: connections stay open,
    /// nothing flows.
    pub fn isolate(&self, sid: usize) {
        self.member(sid);
        self.change_faults(|f| {
            f.isolated.insert(sid);
        });
    }

    /// Lifts the isolation of `sid` (links faulted with `cut_link`/`silence_link` stay so).
    pub fn heal(&self, sid: usize) {
        self.change_faults(|f| {
            f.isolated.remove(&sid);
        });
    }

    /// Lifts every fault: all links pass.
    pub fn heal_all(&self) {
        self.change_faults(|f| *f = Faults::default());
    }

    /// Closes both directions of the pair's links, and keeps closing new connections.
    pub fn cut_link(&self, a: usize, b: usize) {
        self.fault_link(a, b, Some(Mode::Cut));
    }

    /// Silences both directions of the pair's links.
    pub fn silence_link(&self, a: usize, b: usize) {
        self.fault_link(a, b, Some(Mode::Silence));
    }

    /// Lifts a `cut_link`/`silence_link` fault (isolation of either server still applies).
    pub fn heal_link(&self, a: usize, b: usize) {
        self.fault_link(a, b, None);
    }

    /// Silences every link between servers of different groups; links within a group and
    /// those of servers in no group are left as they are.
    pub fn partition(&self, groups: &[&[usize]]) {
        let group_of = |sid: usize| groups.iter().position(|g| g.contains(&sid));
        self.change_faults(|f| {
            for a in 1..=self.members.len() {
                for b in a + 1..=self.members.len() {
                    if let (Some(ga), Some(gb)) = (group_of(a), group_of(b)) {
                        if ga != gb {
                            f.links.insert((a, b), Mode::Silence);
                        }
                    }
                }
            }
        });
    }

    fn fault_link(&self, a: usize, b: usize, mode: Option<Mode>) {
        assert_ne!(a, b, "a link joins two servers");
        self.member(a);
        self.member(b);
        self.change_faults(|f| {
            let pair = (a.min(b), a.max(b));
            match mode {
                Some(m) => f.links.insert(pair, m),
                None => f.links.remove(&pair),
            };
        });
    }

    /// Applies `change`, then sets every proxy whose mode it changed; returns once they all
    /// act on their new mode.
    fn change_faults(&self, change: impl FnOnce(&mut Faults)) {
        let mut faults = self.faults();
        change(&mut faults);
        for from in self.sids() {
            for to in self.sids().filter(|&to| to != from) {
                let link = self.link(from, to);
                let mode = faults.mode(from, to);
                if link.quorum.mode() != mode || link.election.mode() != mode {
                    link.set_mode(mode);
                }
            }
        }
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The proxies of link (from -> to): `from`'s connections to `to`.
    pub fn link(&self, from: usize, to: usize) -> &Link {
        assert_ne!(from, to, "a link joins two servers");
        self.links[from - 1][to - 1]
            .as_ref()
            .expect("off the diagonal")
    }

    // --- observing -----------------------------------------------------------------------

    /// `Mode:` of `srvr` (leader, follower, observer, standalone), or None if the server does
    /// not answer one (down, or not serving, e.g. during an election).
    pub fn mode(&self, sid: usize) -> Option<String> {
        let text = self.four_letter(sid, "srvr")?;
        text.lines()
            .find_map(|l| l.strip_prefix("Mode:"))
            .map(|m| m.trim().to_string())
    }

    /// The one server reporting `Mode: leader`; None if none or several do.
    pub fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = self
            .sids()
            .filter(|&s| self.mode(s).as_deref() == Some("leader"))
            .collect();
        match leaders[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Waits until exactly one server reports `Mode: leader`; returns it.
    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        let mut found = None;
        self.wait_until(timeout, "exactly one leader", |ens| {
            found = ens.leader();
            found.is_some()
        });
        found.expect("set by the wait")
    }

    /// Waits until exactly one server leads and every other running server follows
    /// (participants) or observes (observers); returns the leader.
    pub fn wait_settled(&self, timeout: Duration) -> usize {
        let mut found = None;
        self.wait_until(
            timeout,
            "one leader, every other server in its role",
            |ens| {
                found = ens.settled();
                found.is_some()
            },
        );
        found.expect("set by the wait")
    }

    fn settled(&self) -> Option<usize> {
        let mut leader = None;
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            match (self.mode(m.sid).as_deref(), m.observer) {
                (Some("leader"), false) if leader.is_none() => leader = Some(m.sid),
                (Some("follower"), false) | (Some("observer"), true) => {}
                _ => return None,
            }
        }
        leader
    }

    /// Polls `cond` until it holds, at most `timeout`; panics with `what` and every server's
    /// log tail otherwise.
    pub fn wait_until(&self, timeout: Duration, what: &str, cond: impl FnMut(&Ensemble) -> bool) {
        if !self.try_wait_until(timeout, cond) {
            panic!(
                "timed out after {timeout:?} waiting for: {what}\n{}",
                self.report()
            );
        }
    }

    /// Polls `cond` until it holds, at most `timeout`; whether it did.
    pub fn try_wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&Ensemble) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// A four-letter word's answer, or None if the server does not answer within a bound.
    pub fn four_letter(&self, sid: usize, word: &str) -> Option<String> {
        four_letter(self.client_addr(sid), word)
    }

    // --- addresses and files ----------------------------------------------------------------

    /// Server ids, 1..=n.
    pub fn sids(&self) -> impl Iterator<Item = usize> {
        1..=self.members.len()
    }
    pub fn size(&self) -> usize {
        self.members.len()
    }
    pub fn is_observer(&self, sid: usize) -> bool {
        self.member(sid).observer
    }
    pub fn client_addr(&self, sid: usize) -> SocketAddr {
        self.member(sid).client_addr()
    }
    /// Where the server's AdminServer listens if `admin.enableServer=true`.
    pub fn admin_addr(&self, sid: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.member(sid).admin_port))
    }
    /// Every server's client address, comma-separated.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client_addr().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
    /// (quorum, election): the ports the server itself listens on.
    pub fn peer_ports(&self, sid: usize) -> (u16, u16) {
        let m = self.member(sid);
        (m.quorum_port, m.election_port)
    }
    pub fn dir(&self, sid: usize) -> &Path {
        &self.member(sid).dir
    }
    pub fn data_dir(&self, sid: usize) -> PathBuf {
        self.member(sid).data_dir()
    }
    pub fn cfg_path(&self, sid: usize) -> PathBuf {
        self.member(sid).cfg_path()
    }

    /// Last lines of the server's stderr and stdout.
    pub fn log_tail(&self, sid: usize, lines: usize) -> String {
        let dir = &self.member(sid).dir;
        format!(
            "--- stderr\n{}\n--- stdout\n{}",
            super::tail(&dir.join("stderr.log"), lines),
            super::tail(&dir.join("stdout.log"), lines)
        )
    }

    /// Every server's state, zoo.cfg and log tail, for failure messages. Asks no server
    /// anything, so it is quick even when they hang.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let state = match m.pid() {
                Some(pid) => format!("pid {pid}"),
                None => "not running".to_string(),
            };
            out.push_str(&format!(
                "=== server {} ({state}, client port {})\n--- zoo.cfg\n{}{}\n",
                m.sid,
                m.client_port,
                fs::read_to_string(m.cfg_path()).unwrap_or_default(),
                self.log_tail(m.sid, REPORT_LINES)
            ));
        }
        out
    }

    fn member(&self, sid: usize) -> &Member {
        assert!(
            (1..=self.members.len()).contains(&sid),
            "no server {sid} in an ensemble of {}",
            self.members.len()
        );
        &self.members[sid - 1]
    }
    fn member_mut(&mut self, sid: usize) -> &mut Member {
        self.member(sid);
        &mut self.members[sid - 1]
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        // SIGTERM to all first, so they shut down side by side, then reap each.
        let children: Vec<Child> = self
            .members
            .iter_mut()
            .filter_map(|m| m.child.take())
            .collect();
        for c in &children {
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        }
        for c in &children {
            super::terminate_pid(c.id(), STOP_GRACE);
            super::unregister(c.id());
        }
        // Proxies stop (threads joined) when dropped.
        self.links.clear();
        for m in &self.members {
            let _ = fs::remove_dir_all(&m.dir);
        }
    }
}

/// A four-letter word on a fresh connection, read to EOF, all within `FOUR_LETTER_TIMEOUT`.
fn four_letter(addr: SocketAddr, word: &str) -> Option<String> {
    let deadline = Instant::now() + FOUR_LETTER_TIMEOUT;
    let mut s = TcpStream::connect_timeout(&addr, FOUR_LETTER_TIMEOUT).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A reset after the answer still ends it.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => break,
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
