//! Interop of our ZooKeeper server-to-server codecs (`ferrokeeper::zab`) with a real
//! Apache ZooKeeper 3.8 server (Debian's `zookeeper` package).
//!
//! Apache runs as server 1 of a 3-server ensemble on 127.0.0.1; this test plays server 3
//! (server 2 never shows up):
//! 1. Apache dials our election port E3: we decode its handshake (V1, sid 1, "127.0.0.1:E1")
//!    and see it drop the connection, because the smaller sid never keeps the connection it
//!    initiated (`QuorumCnxManager.startConnection`).
//! 2. We dial Apache's E1 with our handshake (sid 3 > 1, so Apache keeps it,
//!    `QuorumCnxManager.handleConnection`), read its LOOKING notification with our decoder,
//!    and answer with our own notification voting for server 1 with its zxid and epochs.
//!    With 2 of 3 votes Apache becomes LEADING, which it tells us when we repeat our vote
//!    (`WorkerReceiver.run` answers LOOKING peers with its decided vote).
//! 3. We connect to Apache's quorum port Q1 as a follower: FOLLOWERINFO (sid 3) ->
//!    LEADERINFO (new epoch = Apache's epoch + 1, protocol 0x10000) -> ACKEPOCH -> DIFF and
//!    NEWLEADER (with the config text), all through our quorum-packet codec.
//!
//! Every wait is bounded; the Java process is killed and the temp dir removed on drop. If
//! Java or the ZooKeeper jars are missing the test fails (tests/run-all.sh installs them).

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::apache::{self, ScratchDir};
use ferrokeeper::zab::election_wire::{self as ew, ElectionAddr, InitialMessage, ServerState};
use ferrokeeper::zab::quorum_wire::{self as qw, QuorumPacket};
use ferrokeeper::zab::WireError;

/// Bound on every step (JVM start, election, leader start-up).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Granularity of the bounded waits.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const READ_SLICE: Duration = Duration::from_millis(500);
/// How often we repeat our vote while waiting for Apache to report LEADING.
const REVOTE_INTERVAL: Duration = Duration::from_millis(500);

/// Our sid and Apache's.
const OUR_SID: i64 = 3;
const APACHE_SID: i64 = 1;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Process and directory guards

/// The Java process, killed (SIGKILL) and reaped on drop.
struct JavaServer {
    child: Child,
    log: PathBuf,
}

impl JavaServer {
    fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
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

/// Ports of the 3-server ensemble. E3 is held by our listener from the start.
struct Ports {
    client: u16,
    quorum: [u16; 3],
    election: [u16; 3],
}

fn write_config(dir: &Path, ports: &Ports) -> PathBuf {
    let data = dir.join("data");
    fs::write(data.join("myid"), format!("{APACHE_SID}\n")).expect("write myid");
    let mut cfg = format!(
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
         clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n",
        data.display(),
        ports.client
    );
    for i in 0..3 {
        cfg.push_str(&format!(
            "server.{}=127.0.0.1:{}:{}\n",
            i + 1,
            ports.quorum[i],
            ports.election[i]
        ));
    }
    let path = dir.join("zoo.cfg");
    fs::write(&path, cfg).expect("write zoo.cfg");
    path
}

fn start_apache(dir: &Path, cfg: &Path) -> JavaServer {
    let log = dir.join("zookeeper.log");
    let child = apache::spawn_quorum_peer(dir, cfg, &log, &["-Xms256m", "-Xmx256m"]);
    JavaServer { child, log }
}

// ---------------------------------------------------------------------------------------------
// Bounded socket I/O through our stream decoders

/// A socket plus the bytes received but not yet decoded.
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(sock: TcpStream) -> Conn {
        let _ = sock.set_nodelay(true);
        Conn {
            sock,
            buf: Vec::new(),
        }
    }

    /// Reads until `decode` stops asking for more (`WireError::Truncated`) or the deadline.
    fn read_decoded<T>(
        &mut self,
        what: &str,
        deadline: Instant,
        decode: impl Fn(&[u8]) -> Result<(T, usize), WireError>,
    ) -> Result<T, String> {
        loop {
            match decode(&self.buf) {
                Ok((v, used)) => {
                    self.buf.drain(..used);
                    return Ok(v);
                }
                Err(WireError::Truncated) => {}
                Err(e) => return Err(format!("{what}: our decoder rejected Apache's bytes: {e}")),
            }
            match self.read_some(deadline)? {
                0 => return Err(format!("{what}: Apache closed the connection")),
                _ => continue,
            }
        }
    }

    /// One bounded read into `buf`; Ok(0) on EOF.
    fn read_some(&mut self, deadline: Instant) -> Result<usize, String> {
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out after {STEP_TIMEOUT:?} waiting for Apache"
                ));
            }
            let _ = self.sock.set_read_timeout(Some(left.min(READ_SLICE)));
            match self.sock.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let _ = self.sock.set_write_timeout(Some(STEP_TIMEOUT));
        self.sock
            .write_all(bytes)
            .map_err(|e| format!("write: {e}"))
    }

    fn read_notification(&mut self, deadline: Instant) -> Result<ew::Notification, String> {
        let payload = self.read_decoded("election frame", deadline, |b| {
            ew::decode_election_frame(b).map(|(p, used)| (p.to_vec(), used))
        })?;
        ew::decode_notification(&payload).map_err(|e| format!("notification: {e}"))
    }

    fn send_notification(&mut self, n: &ew::Notification) -> Result<(), String> {
        let payload = ew::encode_notification(n).map_err(|e| e.to_string())?;
        let mut frame = Vec::new();
        ew::encode_election_frame(&payload, &mut frame).map_err(|e| e.to_string())?;
        self.send(&frame)
    }

    fn read_packet(&mut self, deadline: Instant) -> Result<QuorumPacket, String> {
        self.read_decoded("quorum packet", deadline, qw::decode_quorum_packet)
    }

    fn send_packet(&mut self, p: &QuorumPacket) -> Result<(), String> {
        let mut out = Vec::new();
        qw::encode_quorum_packet(p, &mut out).map_err(|e| e.to_string())?;
        self.send(&out)
    }
}

fn accept_within(listener: &TcpListener, java: &mut JavaServer) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(sock);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("accept: {e}")),
        }
        ensure!(
            !java.has_exited(),
            "Apache exited before dialling our election port"
        );
        ensure!(
            Instant::now() < deadline,
            "Apache did not dial our election port within {STEP_TIMEOUT:?}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Connects, retrying while the port is not open yet (the JVM is starting, or the
/// quorum port opens only once the peer is LEADING).
fn connect_within(port: u16, what: &str, java: &mut JavaServer) -> Result<Conn, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(sock) => return Ok(Conn::new(sock)),
            Err(e) => {
                ensure!(
                    !java.has_exited(),
                    "Apache exited before opening its {what}"
                );
                ensure!(
                    Instant::now() < deadline,
                    "could not connect to Apache's {what} ({addr}) within {STEP_TIMEOUT:?}: {e}"
                );
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario

/// A notification with its config as text, for the test log.
fn show(n: &ew::Notification) -> String {
    format!(
        "{:?} leader {} zxid {:#x} round {} peerEpoch {} version {} config {:?}",
        n.state,
        n.leader,
        n.zxid,
        n.election_epoch,
        n.peer_epoch,
        n.version,
        n.config_text()
    )
}

/// Step 1: Apache's handshake on our election port, then its close (it has the smaller sid).
fn check_apache_handshake(
    e3: &TcpListener,
    java: &mut JavaServer,
    ports: &Ports,
) -> Result<(), String> {
    let mut conn = Conn::new(accept_within(e3, java)?);
    let deadline = Instant::now() + STEP_TIMEOUT;
    let msg = conn.read_decoded("handshake", deadline, ew::decode_initial_message)?;
    eprintln!("Apache's handshake: {msg:?}");
    let want = InitialMessage::Versioned {
        protocol_version: ew::PROTOCOL_VERSION_V1,
        sid: APACHE_SID,
        addrs: vec![ElectionAddr {
            host: "127.0.0.1".into(),
            port: ports.election[0],
        }],
    };
    ensure!(
        msg == want,
        "Apache's handshake decoded as {msg:?}, expected {want:?}"
    );
    ensure!(
        !ew::initiator_keeps_connection(APACHE_SID, OUR_SID),
        "our sid rule disagrees with QuorumCnxManager.startConnection"
    );
    // Apache, the initiator with the smaller sid, closes without sending anything else.
    ensure!(
        conn.buf.is_empty(),
        "unexpected bytes after the handshake: {:?}",
        conn.buf
    );
    match conn.read_some(deadline)? {
        0 => Ok(()),
        n => Err(format!("Apache sent {n} more bytes instead of closing")),
    }
}

/// Step 2: our handshake to E1, Apache's notification, our vote, Apache LEADING.
/// Returns Apache's first notification (its initial vote).
fn elect_apache(java: &mut JavaServer, ports: &Ports) -> Result<(Conn, ew::Notification), String> {
    let mut conn = connect_within(ports.election[0], "election port", java)?;
    let our_addr = ElectionAddr {
        host: "127.0.0.1".into(),
        port: ports.election[2],
    };
    let hello = ew::encode_initial_message(OUR_SID, &our_addr).map_err(|e| e.to_string())?;
    conn.send(&hello)?;
    ensure!(
        ew::acceptor_keeps_connection(APACHE_SID, OUR_SID) == ew::AcceptDecision::Keep,
        "our sid rule disagrees with QuorumCnxManager.handleConnection"
    );

    let deadline = Instant::now() + STEP_TIMEOUT;
    let theirs = conn.read_notification(deadline)?;
    eprintln!("Apache's notification: {}", show(&theirs));
    ensure!(
        theirs.state == ServerState::Looking,
        "Apache's first state: {:?}",
        theirs.state
    );
    ensure!(
        theirs.leader == APACHE_SID,
        "Apache's first vote: {theirs:?}"
    );
    ensure!(
        theirs.version == ew::NOTIFICATION_VERSION,
        "notification version: {theirs:?}"
    );
    ensure!(theirs.election_epoch >= 1, "election round: {theirs:?}");
    // Fresh data dir: no txns and epoch 0 (QuorumPeer.loadDataBase).
    ensure!(
        theirs.zxid == 0 && theirs.peer_epoch == 0,
        "fresh server's vote: {theirs:?}"
    );
    let config = theirs.config_text().ok_or("config is not UTF-8")?;
    let server1 = format!(
        "server.1=127.0.0.1:{}:{}:participant\n",
        ports.quorum[0], ports.election[0]
    );
    ensure!(
        config.contains(&server1) && config.ends_with("version=0"),
        "config text in Apache's notification: {config:?}"
    );

    // Vote for server 1 with its own zxid, round and epoch (and config, so it does not
    // see a newer config and restart the election).
    let vote = ew::Notification {
        state: ServerState::Looking,
        ..theirs.clone()
    };
    conn.send_notification(&vote)?;
    wait_for_leading(&mut conn, &vote)?;
    Ok((conn, theirs))
}

/// Repeats our LOOKING vote until Apache answers with its decided LEADING vote.
fn wait_for_leading(conn: &mut Conn, vote: &ew::Notification) -> Result<(), String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let slice = (Instant::now() + REVOTE_INTERVAL).min(deadline);
        match conn.read_notification(slice) {
            Ok(n) if n.state == ServerState::Leading => {
                eprintln!("Apache's decided vote: {}", show(&n));
                ensure!(n.leader == APACHE_SID, "LEADING notification names {n:?}");
                return Ok(());
            }
            Ok(n) => ensure!(
                n.state == ServerState::Looking && n.leader == APACHE_SID,
                "unexpected notification while waiting for LEADING: {n:?}"
            ),
            Err(e) if e.starts_with("timed out") => {
                ensure!(
                    Instant::now() < deadline,
                    "Apache never reported LEADING: {e}"
                );
                conn.send_notification(vote)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Step 3: discovery on the quorum port as follower 3.
fn follow_apache(
    java: &mut JavaServer,
    ports: &Ports,
    vote: &ew::Notification,
) -> Result<(), String> {
    let mut conn = connect_within(ports.quorum[0], "quorum port", java)?;
    let accepted_epoch = 0;
    let info = qw::LearnerInfo {
        sid: OUR_SID,
        protocol_version: qw::ZAB_PROTOCOL_VERSION,
        config_version: Some(0),
    };
    conn.send_packet(&qw::learner_info_packet(
        qw::LearnerKind::Follower,
        accepted_epoch,
        &info,
    ))?;

    let deadline = Instant::now() + STEP_TIMEOUT;
    let p = conn.read_packet(deadline)?;
    let li = qw::decode_leader_info(&p).map_err(|e| format!("LEADERINFO: {e} in {p:?}"))?;
    eprintln!("Apache's LEADERINFO: {p:?} = {li:?}");
    // newEpoch = max(acceptedEpoch of the leader and of us) + 1 (Leader.getEpochToPropose).
    let want_epoch = vote.peer_epoch.max(accepted_epoch) + 1;
    ensure!(
        li.new_epoch == want_epoch && qw::counter_of(p.zxid) == 0,
        "LEADERINFO zxid {:#x}: epoch {} (want {want_epoch})",
        p.zxid,
        li.new_epoch
    );
    ensure!(
        li.protocol_version == qw::ZAB_PROTOCOL_VERSION,
        "LEADERINFO: {li:?}"
    );
    ensure!(
        p.data.as_ref().map(Vec::len) == Some(4) && p.authinfo.is_none(),
        "LEADERINFO layout: {p:?}"
    );

    // ACKEPOCH with our (empty) history: same zxid as the leader, so it answers DIFF.
    let ack = qw::AckEpoch {
        current_epoch: 0,
        last_logged_zxid: vote.zxid,
    };
    conn.send_packet(&qw::ack_epoch_packet(&ack))?;
    let diff = conn.read_packet(deadline)?;
    ensure!(
        diff.packet_type == qw::DIFF && diff.zxid == vote.zxid,
        "expected DIFF({:#x}), got {diff:?}",
        vote.zxid
    );
    let newleader = conn.read_packet(deadline)?;
    eprintln!(
        "Apache's sync start: {diff:?}, then NEWLEADER zxid {:#x}",
        newleader.zxid
    );
    let (epoch, config) = qw::decode_new_leader(&newleader)
        .map_err(|e| format!("NEWLEADER: {e} in {newleader:?}"))?;
    ensure!(
        epoch == want_epoch,
        "NEWLEADER epoch {epoch}, want {want_epoch}"
    );
    let config = config.map(String::from_utf8_lossy).unwrap_or_default();
    ensure!(
        config.contains(&format!(
            "server.3=127.0.0.1:{}:{}",
            ports.quorum[2], ports.election[2]
        )),
        "NEWLEADER config: {config:?}"
    );
    Ok(())
}

#[test]
fn apache_elects_itself_with_our_vote_and_answers_our_followerinfo() {
    apache::require_install();
    let dir = ScratchDir::new("zabwire");
    // Held from before Apache starts, so its first dial of server 3 reaches us.
    let e3 = TcpListener::bind("127.0.0.1:0").expect("bind E3");
    let ports = Ports {
        client: free_port(),
        quorum: [free_port(), free_port(), free_port()],
        election: [
            free_port(),
            free_port(),
            e3.local_addr().expect("E3 addr").port(),
        ],
    };
    let cfg = write_config(dir.path(), &ports);
    let mut java = start_apache(dir.path(), &cfg);

    let result = check_apache_handshake(&e3, &mut java, &ports)
        .map_err(|e| format!("step 1 (Apache's handshake): {e}"))
        .and_then(|()| {
            elect_apache(&mut java, &ports).map_err(|e| format!("step 2 (election): {e}"))
        })
        .and_then(|(_election_conn, vote)| {
            // Keep the election connection open while we follow.
            follow_apache(&mut java, &ports, &vote).map_err(|e| format!("step 3 (discovery): {e}"))
        });
    if let Err(e) = result {
        panic!(
            "{e}\n--- zoo.cfg\n{}\n--- Apache log (tail)\n{}",
            fs::read_to_string(&cfg).unwrap_or_default(),
            java.log_tail(60)
        );
    }
}
