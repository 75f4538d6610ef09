//! The election runtime (`ferrokeeper::quorum`) in mixed ensembles with real
//! Apache ZooKeeper 3.8 servers (Debian's `zookeeper` package), all on
//! 127.0.0.1 with free ports:
//! 1. Apache servers 1 and 2 (epoch 1) and our elector as server 3 (epoch 0,
//!    zxid 0): Apache's server 2 has the best vote. Both Apache servers end up
//!    LEADING/FOLLOWING server 2 (`srvr` says so), and our elector decides
//!    FOLLOWING 2. Apache then waits for us on its quorum port; we only check
//!    the election.
//! 2. Our electors as servers 2 and 3 (epoch 1, zxids 3 and 5) and a fresh
//!    Apache server 1: ours elect 3, and Apache's log shows it FOLLOWING and
//!    dialling server 3's quorum port (which does not exist yet, so it fails).
//!
//! Every wait is bounded; the JVMs are killed and the temp dirs removed on
//! drop. A missing Java or ZooKeeper install fails the test (tests/run-all.sh
//! installs them).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::apache::{self, ScratchDir};
use ferrokeeper::quorum::cnx::CnxManager;
use ferrokeeper::quorum::elector::{Decision, Elector, ElectorSettings, History};
use ferrokeeper::quorum::ensemble::{CnxSettings, Ensemble, Member};
use ferrokeeper::zab::election::{ServerState, Sid, Timing};

/// JVM start-up plus an election, on a shared 2-core machine.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);
/// Granularity of the bounded waits on Apache's log and `srvr`.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// Processes, directories, ports

/// One Apache server, killed (SIGKILL) and reaped on drop.
struct JavaServer {
    sid: Sid,
    child: Child,
    log: PathBuf,
    client_port: u16,
}

impl JavaServer {
    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "--- Apache server {} log (tail)\n{}",
            self.sid,
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }

    fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for JavaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// The 3-server ensemble: every member's ports, and a client port each.
struct Layout {
    members: Vec<Member>,
    client_ports: Vec<u16>,
}

fn layout() -> Layout {
    Layout {
        members: (1..=3)
            .map(|sid| Member {
                sid,
                host: "127.0.0.1".into(),
                quorum_port: free_port(),
                election_port: free_port(),
                observer: false,
                client: None,
            })
            .collect(),
        client_ports: (0..3).map(|_| free_port()).collect(),
    }
}

/// zoo.cfg, myid and (if `epoch` > 0) the epoch files of an Apache server:
/// `currentEpoch` is the peerEpoch of its initial vote (`QuorumPeer.loadDataBase`).
fn write_apache_dir(root: &Path, layout: &Layout, sid: Sid, epoch: i64) -> PathBuf {
    let dir = root.join(format!("zk{sid}"));
    let data = dir.join("data");
    fs::create_dir_all(data.join("version-2")).expect("data dir");
    fs::write(data.join("myid"), format!("{sid}\n")).expect("myid");
    if epoch > 0 {
        for file in ["currentEpoch", "acceptedEpoch"] {
            fs::write(data.join("version-2").join(file), epoch.to_string()).expect("epoch file");
        }
    }
    let mut cfg = format!(
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
         clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n",
        data.display(),
        layout.client_ports[sid as usize - 1]
    );
    for m in &layout.members {
        cfg.push_str(&format!(
            "server.{}=127.0.0.1:{}:{}\n",
            m.sid, m.quorum_port, m.election_port
        ));
    }
    fs::write(dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
    dir
}

fn start_apache(dir: &Path, sid: Sid, client_port: u16) -> JavaServer {
    let log = dir.join("zookeeper.log");
    let cfg = dir.join("zoo.cfg");
    let child =
        apache::spawn_quorum_peer(dir, &cfg, &log, &["-Xms128m", "-Xmx128m", "-Xshare:auto"]);
    JavaServer {
        sid,
        child,
        log,
        client_port,
    }
}

// ---------------------------------------------------------------------------------------------
// Our side

/// Binds our election port (so Apache's first dials reach it).
fn bind_ours(
    layout: &Layout,
    sid: Sid,
) -> (
    CnxManager,
    crossbeam_channel::Receiver<ferrokeeper::quorum::cnx::CnxEvent>,
    ElectorSettings,
) {
    let ensemble = Ensemble::new(sid, layout.members.clone()).expect("ensemble");
    let settings = ElectorSettings {
        voters: ensemble.voters(),
        config_text: ensemble.config_text(),
        timing: Timing::default(),
        tick_interval: Duration::from_millis(20),
    };
    let cnx_settings = CnxSettings {
        handshake_timeout: Duration::from_secs(5),
        ..CnxSettings::default()
    };
    let (cnx, events) = CnxManager::start(ensemble, cnx_settings).expect("our election port");
    (cnx, events, settings)
}

fn decision_within(e: &Elector, java: &mut [&mut JavaServer]) -> Result<Decision, String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(d) = e.decisions().recv_timeout(POLL_INTERVAL * 5) {
            return Ok(d);
        }
        for j in java.iter_mut() {
            if j.has_exited() {
                return Err(format!("Apache server {} exited", j.sid));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "our server {} decided nothing in {STEP_TIMEOUT:?}",
                e.my_sid()
            ));
        }
    }
}

/// `srvr`'s "Mode: ..." line, once the server answers with one.
fn mode_within(java: &mut JavaServer) -> Result<String, String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], java.client_port));
    loop {
        if let Some(mode) = srvr_mode(&addr) {
            return Ok(mode);
        }
        if java.has_exited() {
            return Err(format!("Apache server {} exited", java.sid));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "Apache server {} never served srvr with a Mode",
                java.sid
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn srvr_mode(addr: &SocketAddr) -> Option<String> {
    let mut sock = TcpStream::connect_timeout(addr, Duration::from_secs(1)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    sock.write_all(b"srvr").ok()?;
    let mut text = String::new();
    sock.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(|m| m.trim().to_string())
}

/// Waits until `java`'s log has a line containing every one of `needles`.
fn log_line_within(java: &mut JavaServer, needles: &[&str]) -> Result<String, String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let text = java.log_text();
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return Ok(line.to_string());
        }
        if java.has_exited() {
            return Err(format!("Apache server {} exited", java.sid));
        }
        if Instant::now() >= deadline {
            return Err(format!("no log line with {needles:?} in {STEP_TIMEOUT:?}"));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn expect(cond: bool, what: String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what)
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

#[test]
fn our_elector_follows_the_leader_two_apache_servers_elect() {
    apache::require_install();
    let root = ScratchDir::new("election-apache-2of3");
    let layout = layout();
    let (cnx, events, settings) = bind_ours(&layout, 3);
    let mut javas: Vec<JavaServer> = (1..=2)
        .map(|sid| {
            let dir = write_apache_dir(&root.0, &layout, sid, 1);
            start_apache(&dir, sid, layout.client_ports[sid as usize - 1])
        })
        .collect();
    // Our vote (epoch 0, zxid 0) loses to both Apache votes (epoch 1).
    let history = History {
        last_zxid: 0,
        current_epoch: 0,
    };
    let mut ours = Elector::spawn(cnx, events, settings, history).expect("elector");

    let result = (|| {
        let d = {
            let (a, b) = javas.split_at_mut(1);
            decision_within(&ours, &mut [&mut a[0], &mut b[0]])?
        };
        eprintln!("our decision: {d:?}");
        // Which Apache server leads depends on start-up timing: when server 2's election
        // port opens late, servers 1 and 3 (ours) already make a quorum for 1, which is
        // FastLeaderElection's rule too. What must hold is that we follow the server the
        // Apache pair ends up with, at its epoch.
        expect(
            d.state == ServerState::Following && d.vote.peer_epoch == 1,
            format!("our decision {d:?}, want FOLLOWING with epoch 1"),
        )?;
        let modes = [mode_within(&mut javas[0])?, mode_within(&mut javas[1])?];
        eprintln!("Apache 1: {}, Apache 2: {}", modes[0], modes[1]);
        let leader = modes.iter().position(|m| m == "leader");
        let follower = modes.iter().position(|m| m == "follower");
        expect(
            matches!((leader, follower), (Some(l), Some(f)) if l != f),
            format!("Apache modes: server 1 {}, server 2 {}", modes[0], modes[1]),
        )?;
        let leader_sid = leader.map_or(0, |l| l as i64 + 1);
        expect(
            d.vote.leader == leader_sid,
            format!("our decision {d:?}, but Apache server {leader_sid} leads"),
        )
    })();
    ours.shutdown();
    if let Err(e) = result {
        let logs: Vec<String> = javas.iter().map(|j| j.log_tail(40)).collect();
        panic!("{e}\n{}", logs.join("\n"));
    }
}

#[test]
fn an_apache_server_follows_the_leader_our_electors_elect() {
    apache::require_install();
    let root = ScratchDir::new("election-apache-1of3");
    let layout = layout();
    let bound: Vec<_> = [2, 3].iter().map(|&sid| bind_ours(&layout, sid)).collect();
    let dir = write_apache_dir(&root.0, &layout, 1, 0);
    let mut java = start_apache(&dir, 1, layout.client_ports[0]);

    let result = (|| {
        // Start ours once Apache is LOOKING, so it takes part in the round.
        log_line_within(&mut java, &["- LOOKING"])?;
        let histories = [(2, 0x1_0000_0003i64), (3, 0x1_0000_0005i64)];
        let mut ours: Vec<Elector> = bound
            .into_iter()
            .zip(histories)
            .map(|((cnx, events, settings), (_, zxid))| {
                let h = History {
                    last_zxid: zxid,
                    current_epoch: 1,
                };
                Elector::spawn(cnx, events, settings, h).expect("elector")
            })
            .collect();
        let outcome: Result<(), String> = (|| {
            for e in &ours {
                let d = decision_within(e, &mut [&mut java])?;
                eprintln!("our server {}: {d:?}", e.my_sid());
                expect(
                    d.vote.leader == 3,
                    format!("server {} decided {d:?}", e.my_sid()),
                )?;
            }
            let following = log_line_within(&mut java, &["- FOLLOWING"])?;
            eprintln!("Apache: {following}");
            // Its learner dials the leader's quorum port: server 3's.
            let q3 = format!(":{}", layout.members[2].quorum_port);
            let dialling = log_line_within(&mut java, &["connecting to", q3.as_str()])?;
            eprintln!("Apache: {dialling}");
            Ok(())
        })();
        for e in &mut ours {
            e.shutdown();
        }
        outcome
    })();
    if let Err(e) = result {
        panic!("{e}\n{}", java.log_tail(60));
    }
}
