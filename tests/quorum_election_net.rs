//! The election runtime (`ferrokeeper::quorum`) over real sockets: three and
//! five in-process electors on 127.0.0.1 elect the voter with the best
//! (epoch, zxid, sid); when the leader's elector is shut down the others
//! elect again among themselves; garbage on an election port (random bytes,
//! an unknown sid, an oversized frame, silence) is disconnected and the
//! election still completes. Every wait is bounded; every elector is shut
//! down (threads joined, sockets closed) before a test returns.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ferrokeeper::quorum::cnx::{CnxEvent, CnxManager};
use ferrokeeper::quorum::elector::{Decision, Elector, ElectorSettings, History};
use ferrokeeper::quorum::ensemble::{CnxSettings, Ensemble, Member};
use ferrokeeper::quorum::wire_io;
use ferrokeeper::zab::election::{ServerState, Sid, Timing};
use ferrokeeper::zab::election_wire::{self as ew, ElectionAddr};

/// Bound on one election (connections, finalize wait, a few resends).
const ELECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on a garbage connection being closed by the server.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(20);

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn members(voters: Sid, observers: Sid) -> Vec<Member> {
    (1..=voters + observers)
        .map(|sid| Member {
            sid,
            host: "127.0.0.1".into(),
            quorum_port: free_port(),
            election_port: free_port(),
            observer: sid > voters,
            client: None,
        })
        .collect()
}

fn cnx_settings() -> CnxSettings {
    CnxSettings {
        connect_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_millis(500),
        ..CnxSettings::default()
    }
}

/// A server whose election port is bound, its elector not started yet.
struct Bound {
    cnx: CnxManager,
    events: Receiver<CnxEvent>,
    settings: ElectorSettings,
}

fn bind(members: &[Member], sid: Sid) -> Bound {
    let ensemble = Ensemble::new(sid, members.to_vec()).expect("ensemble");
    let settings = ElectorSettings {
        voters: ensemble.voters(),
        config_text: ensemble.config_text(),
        timing: Timing::default(),
        tick_interval: TICK,
    };
    let (cnx, events) = CnxManager::start(ensemble, cnx_settings()).expect("election port");
    Bound {
        cnx,
        events,
        settings,
    }
}

fn run(bound: Bound, history: History) -> Elector {
    Elector::spawn(bound.cnx, bound.events, bound.settings, history).expect("elector thread")
}

fn start(members: &[Member], sid: Sid, history: History) -> Elector {
    run(bind(members, sid), history)
}

/// Every server's port is bound before any elector starts, so no dial is
/// refused and every vote is in before the finalize wait ends.
fn start_all(members: &[Member], histories: &[History]) -> Vec<Elector> {
    let voters: Vec<Bound> = (1..=histories.len() as Sid)
        .map(|sid| bind(members, sid))
        .collect();
    voters
        .into_iter()
        .zip(histories)
        .map(|(b, h)| run(b, *h))
        .collect()
}

fn history(current_epoch: i64, counter: i64) -> History {
    History {
        last_zxid: (current_epoch << 32) | counter,
        current_epoch,
    }
}

fn decision_of(e: &Elector) -> Decision {
    e.decisions()
        .recv_timeout(ELECTION_TIMEOUT)
        .unwrap_or_else(|_| {
            panic!(
                "server {} decided nothing in {ELECTION_TIMEOUT:?}",
                e.my_sid()
            )
        })
}

/// Every elector decides, all for `leader`, which alone leads.
fn assert_elected(electors: &[&Elector], leader: Sid) {
    for e in electors {
        let d = decision_of(e);
        assert_eq!(d.vote.leader, leader, "server {}: {d:?}", e.my_sid());
        let want = if e.my_sid() == leader {
            ServerState::Leading
        } else {
            ServerState::Following
        };
        assert_eq!(d.state, want, "server {}: {d:?}", e.my_sid());
    }
}

#[test]
fn three_electors_elect_the_best_vote() {
    let m = members(3, 0);
    // Same epoch: the largest zxid wins although its sid is not the largest.
    let histories = [history(1, 5), history(1, 9), history(1, 7)];
    let electors = start_all(&m, &histories);
    assert_elected(&electors.iter().collect::<Vec<_>>(), 2);
}

#[test]
fn five_electors_elect_the_best_epoch_then_zxid_then_sid() {
    let m = members(5, 0);
    // Server 1's epoch beats every larger zxid; 4 and 5 tie below it.
    let histories = [
        history(3, 1),
        history(2, 90),
        history(2, 50),
        history(2, 99),
        history(2, 99),
    ];
    let electors = start_all(&m, &histories);
    assert_elected(&electors.iter().collect::<Vec<_>>(), 1);
}

#[test]
fn five_electors_tie_broken_by_the_largest_sid() {
    let m = members(5, 0);
    let electors = start_all(&m, &[history(0, 0); 5]);
    assert_elected(&electors.iter().collect::<Vec<_>>(), 5);
}

#[test]
fn the_others_elect_again_when_the_leader_goes_away() {
    let m = members(3, 0);
    let histories = [history(1, 5), history(1, 7), history(1, 9)];
    let mut electors = start_all(&m, &histories);
    assert_elected(&electors.iter().collect::<Vec<_>>(), 3);

    // The leader's elector stops: its sockets close, its port refuses.
    let mut leader = electors.pop().expect("leader");
    leader.shutdown();
    // What the ZAB layer does when it loses its leader: a new round.
    let lost_at = Instant::now();
    for (e, h) in electors.iter().zip(histories) {
        e.start(h.last_zxid, h.current_epoch, None);
    }
    // A decision for the leader that left can still come first: its last
    // LEADING notification and server 1's FOLLOWING one (sent before server
    // 1 began its new round) make a quorum for it, FastLeaderElection's rule
    // for joining a running ensemble. The ZAB layer then fails to reach that
    // leader and starts again, as ZooKeeper's follower does; so does this.
    for (e, h) in electors.iter().zip(histories) {
        let deadline = Instant::now() + ELECTION_TIMEOUT;
        loop {
            let d = decision_of(e);
            if d.vote.leader == 3 && Instant::now() < deadline {
                eprintln!(
                    "server {} followed the gone leader: {d:?}; again",
                    e.my_sid()
                );
                e.start(h.last_zxid, h.current_epoch, Some(3));
                continue;
            }
            assert_eq!(d.vote.leader, 2, "server {}: {d:?}", e.my_sid());
            let want = if e.my_sid() == 2 {
                ServerState::Leading
            } else {
                ServerState::Following
            };
            assert_eq!(d.state, want, "server {}: {d:?}", e.my_sid());
            break;
        }
    }
    eprintln!("re-elected in {:?}", lost_at.elapsed());
    // The shut-down leader's port is closed: nothing listens there any more.
    let addr = SocketAddr::from(([127, 0, 0, 1], m[2].election_port));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Garbage on the election port

/// True once the server has closed `sock` (EOF or reset), within CLOSE_TIMEOUT.
fn closed_by_server(sock: &mut TcpStream) -> bool {
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = sock.set_read_timeout(Some(left));
        match sock.read(&mut buf) {
            Ok(0) => return true,
            // A kept connection may send us its vote first; keep reading.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

fn dial(port: u16) -> TcpStream {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to the election port")
}

fn handshake(sid: Sid, port: u16) -> Vec<u8> {
    let addr = ElectionAddr {
        host: "127.0.0.1".into(),
        port,
    };
    ew::encode_initial_message(sid, &addr).expect("handshake")
}

/// Deterministic bytes that are not a handshake: the first long is negative
/// and neither protocol version.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

#[test]
fn garbage_peers_are_disconnected_and_the_election_completes() {
    // Three voters and an observer (sid 4) that never runs: a garbage peer
    // may claim its sid, which is in the config.
    let m = members(3, 1);
    let first = start(&m, 1, history(1, 3));
    let port = m[0].election_port;

    let mut random = dial(port);
    random.write_all(&random_bytes(256)).expect("write");
    let mut unknown = dial(port);
    unknown
        .write_all(&handshake(99, free_port()))
        .expect("write");
    let mut oversized = dial(port);
    let mut bytes = handshake(4, m[3].election_port);
    bytes.extend_from_slice(&(ew::ELECTION_FRAME_BYTES_MAX as u32 + 1).to_be_bytes());
    oversized.write_all(&bytes).expect("write");
    let mut silent = dial(port);
    let mut own_sid = dial(port);
    own_sid
        .write_all(&handshake(1, free_port()))
        .expect("write");
    let mut huge_addr = dial(port);
    let mut bad = handshake(2, 1);
    bad[16..20].copy_from_slice(&(4096i32).to_be_bytes());
    huge_addr.write_all(&bad).expect("write");

    for (what, sock) in [
        ("random bytes", &mut random),
        ("unknown sid", &mut unknown),
        ("oversized frame", &mut oversized),
        ("silence (handshake timeout)", &mut silent),
        ("our own sid", &mut own_sid),
        ("oversized handshake address", &mut huge_addr),
    ] {
        assert!(
            closed_by_server(sock),
            "{what}: connection not closed within {CLOSE_TIMEOUT:?}"
        );
    }

    let second = start(&m, 2, history(1, 8));
    let third = start(&m, 3, history(1, 2));
    assert_elected(&[&first, &second, &third], 2);
}

/// Reads a dialler's handshake and first notification; Err if it closes first.
fn read_hello_and_vote(sock: &mut TcpStream) -> Result<(Sid, ew::Notification), String> {
    sock.set_read_timeout(Some(CLOSE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut read_more = |buf: &mut Vec<u8>| -> Result<(), String> {
        let mut chunk = [0u8; 1024];
        match sock.read(&mut chunk) {
            Ok(0) => Err("closed".to_string()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let (hello, used) = loop {
        match ew::decode_initial_message(&buf) {
            Ok(done) => break done,
            Err(e) if e.is_truncated() => read_more(&mut buf)?,
            Err(e) => return Err(format!("handshake: {e}")),
        }
    };
    buf.drain(..used);
    loop {
        match ew::decode_election_frame(&buf) {
            Ok((payload, _)) => {
                let n = ew::decode_notification(payload).map_err(|e| e.to_string())?;
                return Ok((hello.sid(), n));
            }
            Err(e) if e.is_truncated() => read_more(&mut buf)?,
            Err(e) => return Err(format!("frame: {e}")),
        }
    }
}

#[test]
fn a_smaller_sid_dialling_is_closed_and_dialled_back() {
    // We play server 1 of a 2-voter ensemble whose server 2 runs: dialling
    // 2, our connection is closed and 2 dials our port with its handshake.
    let m = members(2, 0);
    let ours = TcpListener::bind(("127.0.0.1", m[0].election_port)).expect("bind server 1's port");
    let mut server2 = start(&m, 2, history(0, 0));
    let mut conn = dial(m[1].election_port);
    conn.write_all(&handshake(1, m[0].election_port))
        .expect("write");
    assert!(
        closed_by_server(&mut conn),
        "the larger sid kept a connection the smaller one made"
    );

    // Server 2 dialled us at its start too, and closes that connection when
    // it dials back (ZooKeeper's acceptor finishes its old connection), so
    // the first one accepted may be closed: take the one that talks.
    let deadline = Instant::now() + ELECTION_TIMEOUT;
    let (sid, n) = loop {
        assert!(Instant::now() < deadline, "server 2 never dialled back");
        let Some(mut back) = wire_io::accept_within(&ours, CLOSE_TIMEOUT).expect("accept") else {
            continue;
        };
        match read_hello_and_vote(&mut back) {
            Ok(got) => break got,
            Err(e) => eprintln!("a connection from server 2 ended: {e}"),
        }
    };
    assert_eq!(sid, 2);
    // Its LOOKING vote for itself, with the ensemble's config text.
    assert_eq!((n.state, n.leader), (ServerState::Looking, 2));
    let config = n.config_text().expect("UTF-8 config");
    assert!(
        config.contains("server.2=127.0.0.1:") && config.ends_with("version=0"),
        "{config:?}"
    );
    server2.shutdown();
}

#[test]
fn a_peer_that_accepts_and_closes_is_not_dialled_in_a_loop() {
    // We play server 1 of a 2-voter ensemble and close every connection server 2 makes
    // as soon as it is accepted (as a proxy whose target is gone does). Server 2, the
    // larger sid, keeps the connections it dials: it dials again at once after the first
    // loss only, then at its (doubling) resends.
    let m = members(2, 0);
    let ours = TcpListener::bind(("127.0.0.1", m[0].election_port)).expect("bind server 1's port");
    ours.set_nonblocking(true).expect("nonblocking");
    let mut server2 = start(&m, 2, history(0, 0));
    let window = Duration::from_millis(1500);
    let until = Instant::now() + window;
    let mut accepted = 0;
    while Instant::now() < until {
        match ours.accept() {
            Ok((sock, _)) => {
                accepted += 1;
                drop(sock);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK / 4),
            Err(e) => panic!("accept: {e}"),
        }
    }
    server2.shutdown();
    // A dial per resend (200, 400, 800 ms apart) plus one redial: a handful, not a loop.
    assert!(
        (1..=12).contains(&accepted),
        "{accepted} connections in {window:?}"
    );
}
