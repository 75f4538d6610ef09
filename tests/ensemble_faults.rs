//! Real processes of our binary as an ensemble on 127.0.0.1, every server-to-server link
//! through a fault proxy the test controls (tests/common/ensemble.rs). Each test makes
//! writes, injects a fault, writes on, heals, and then checks the two things a fault
//! test must: no acknowledged write is lost, and every server converges to the same state.
//!
//! tickTime is 200 ms here (syncLimit 5 = 1 s, initLimit 10 = 2 s), so failure detection
//! takes about a second instead of ZooKeeper's default ten.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::ensemble::Ensemble;
use common::ensemble_client::{assert_converged, ensure_node, write_acked, write_until, Client};
use common::raw::{create_body, multi_body, Acl, MultiOp};

const FAST: &[(&str, &str)] = &[("tickTime", "200")];
const SETTLE: Duration = Duration::from_secs(30);
const WRITES: Duration = Duration::from_secs(60);
/// Longest a client of a surviving server may wait for a write when the leader dies.
const FAILOVER_MAX: Duration = Duration::from_millis(200);

fn all(ens: &Ensemble) -> Vec<usize> {
    ens.sids().collect()
}

fn others(ens: &Ensemble, not: &[usize]) -> Vec<usize> {
    ens.sids().filter(|s| !not.contains(s)).collect()
}

fn followers(ens: &Ensemble, leader: usize) -> Vec<usize> {
    ens.sids()
        .filter(|&s| s != leader && !ens.is_observer(s))
        .collect()
}

/// Whether `sid`'s log has a line containing `text`.
fn logged(ens: &Ensemble, sid: usize, text: &str) -> bool {
    ens.log_tail(sid, 100_000).contains(text)
}

#[test]
fn writes_through_every_server_reach_every_server() {
    let ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let acked = write_acked(&ens, &sids, "/t", "w", 60, WRITES);
    // Each writer above moved between servers only on errors; write once through each.
    for &sid in &sids {
        let mut c = Client::connect(&ens, sid).expect("connect");
        assert!(c.create(&format!("/t/on-{sid}"), b"x").expect("create"));
        // Read-your-writes on the server the write went through, without a sync.
        let reply = c
            .call(3, &common::raw::path_watch(&format!("/t/on-{sid}"), false))
            .expect("exists");
        assert_eq!(reply.err, 0, "own write not visible on server {sid}");
    }
    let list = assert_converged(&ens, &sids, "/t", &acked, SETTLE);
    assert_eq!(list.len(), 63);
    // What monitoring reads, as ZooKeeper prints it for each role.
    let leader = ens.wait_for_leader(SETTLE);
    let mntr = ens.four_letter(leader, "mntr").expect("mntr");
    for row in [
        "zk_server_state\tleader",
        "zk_synced_followers\t2",
        "zk_peer_state\tleading - broadcast",
        "zk_quorum_size\t3",
    ] {
        assert!(mntr.contains(row), "leader mntr lacks {row:?}:\n{mntr}");
    }
    let follower = followers(&ens, leader)[0];
    let mntr = ens.four_letter(follower, "mntr").expect("mntr");
    assert!(
        mntr.contains("zk_peer_state\tfollowing - broadcast"),
        "{mntr}"
    );
    assert!(!mntr.contains("zk_synced_followers"), "{mntr}");
    let conf = ens.four_letter(follower, "conf").expect("conf");
    assert!(
        conf.contains("initLimit=10\nsyncLimit=5\nelectionAlg=3\n"),
        "{conf}"
    );
    assert!(conf.contains("membership: \nserver.1="), "{conf}");
    // /zookeeper/config holds the ensemble's config text on every server.
    for &sid in &sids {
        let mut c = Client::connect(&ens, sid).expect("connect");
        let reply = c
            .call(4, &common::raw::path_watch("/zookeeper/config", false))
            .expect("getData");
        let (data, _) = reply.data();
        let text = String::from_utf8(data.unwrap_or_default()).unwrap();
        assert!(
            text.starts_with("server.1=") && text.ends_with("version=0"),
            "{text}"
        );
    }
}

#[test]
fn leader_killed_and_restarted_loses_no_acknowledged_write() {
    let mut ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let mut acked = write_acked(&ens, &sids, "/t", "before", 50, WRITES);
    let leader = ens.wait_for_leader(SETTLE);
    ens.kill(leader);
    let survivors = others(&ens, &[leader]);
    let new_leader = ens.wait_for_leader(SETTLE);
    assert_ne!(new_leader, leader);
    acked.extend(write_acked(&ens, &survivors, "/t", "during", 50, WRITES));
    ens.restart(leader);
    ens.wait_settled(SETTLE);
    acked.extend(write_acked(&ens, &sids, "/t", "after", 20, WRITES));
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
}

#[test]
fn follower_killed_then_catches_up_by_diff() {
    let mut ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let leader = ens.wait_for_leader(SETTLE);
    let follower = followers(&ens, leader)[0];
    let mut acked = write_acked(&ens, &sids, "/t", "before", 30, WRITES);
    ens.kill(follower);
    acked.extend(write_acked(
        &ens,
        &others(&ens, &[follower]),
        "/t",
        "lag",
        200,
        WRITES,
    ));
    ens.restart(follower);
    ens.wait_settled(SETTLE);
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
    // The leader kept the txns it logged: the lagging follower got a DIFF, not a SNAP.
    assert!(
        logged(&ens, follower, "DIFF from the leader"),
        "{}",
        ens.report()
    );
}

#[test]
fn minority_partition_writes_go_on() {
    let ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let leader = ens.wait_for_leader(SETTLE);
    let follower = followers(&ens, leader)[0];
    let majority = others(&ens, &[follower]);
    ens.isolate(follower);
    let acked = write_acked(&ens, &majority, "/t", "w", 100, WRITES);
    // The cut-off follower notices its leader is silent and stops serving as a follower.
    ens.wait_until(SETTLE, "the isolated follower leaves its leader", |e| {
        e.mode(follower).is_none()
    });
    ens.heal(follower);
    ens.wait_settled(SETTLE);
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
}

#[test]
fn isolated_leader_steps_down_and_rejoins() {
    let ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let mut acked = write_acked(&ens, &sids, "/t", "before", 30, WRITES);
    let old = ens.wait_for_leader(SETTLE);
    // A client of the old leader (clients do not go through the proxies) keeps talking to it.
    let mut stranded = Client::connect(&ens, old).expect("connect to the leader");
    ens.isolate(old);
    let majority = others(&ens, &[old]);
    // Without a quorum the old leader must not acknowledge this; if it did, the write
    // must survive like any other (it cannot: the majority never saw it).
    if let Ok(true) = stranded.create("/t/stranded", b"x") {
        acked.push("stranded".to_string());
    }
    // The majority elects a new leader; the old one stops leading (syncLimit) on its own.
    ens.wait_until(SETTLE, "a new leader among the majority", |e| {
        majority
            .iter()
            .any(|&s| e.mode(s).as_deref() == Some("leader"))
    });
    ens.wait_until(SETTLE, "the old leader steps down", |e| {
        e.mode(old).as_deref() != Some("leader")
    });
    acked.extend(write_acked(&ens, &majority, "/t", "during", 50, WRITES));
    ens.heal(old);
    ens.wait_settled(SETTLE);
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
}

#[test]
fn rolling_restart_of_every_server_under_load() {
    let mut ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    // A writer keeps writing through all three servers the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let addrs = sids.iter().map(|&s| ens.client_addr(s)).collect();
    let writer = write_until(addrs, "/t".into(), "load".into(), stop.clone());
    let mut acked = Vec::new();
    for &sid in &sids {
        ens.stop(sid);
        acked.extend(write_acked(
            &ens,
            &others(&ens, &[sid]),
            "/t",
            &format!("down{sid}"),
            20,
            WRITES,
        ));
        ens.restart(sid);
        ens.wait_settled(SETTLE);
    }
    stop.store(true, Ordering::Relaxed);
    let load = writer.join().expect("the writer thread");
    assert!(
        load.len() > 50,
        "the writer made {} writes during the restarts",
        load.len()
    );
    acked.extend(load);
    acked.sort();
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
}

#[test]
fn wiped_follower_catches_up_by_snap_with_100k_znodes() {
    let mut ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/big");
    let leader = ens.wait_for_leader(SETTLE);
    // 100,000 znodes in 100 multis of 1,000 creates.
    let mut c = Client::connect(&ens, leader).expect("connect");
    for batch in 0..100 {
        let ops: Vec<MultiOp> = (0..1000)
            .map(|i| MultiOp {
                op: 1,
                body: create_body(
                    &format!("/big/n{batch:03}-{i:04}"),
                    b"0123456789",
                    &Acl::world_all(),
                    0,
                ),
            })
            .collect();
        let reply = c.call(14, &multi_body(&ops)).expect("multi");
        assert_eq!(reply.err, 0, "multi {batch}");
    }
    let acked: Vec<String> = (0..100)
        .flat_map(|b| (0..1000).map(move |i| format!("n{b:03}-{i:04}")))
        .collect();
    drop(c);
    // Restart everything with the follower's data gone: no server keeps the txns in
    // memory after a restart, so the follower at zxid 0 must get a SNAP.
    let follower = followers(&ens, leader)[0];
    for &sid in &sids {
        ens.stop(sid);
    }
    ens.wipe(follower);
    for &sid in &sids {
        ens.restart(sid);
    }
    ens.wait_settled(SETTLE);
    assert_converged(&ens, &sids, "/big", &acked, SETTLE);
    assert!(
        logged(&ens, follower, "SNAP from the leader"),
        "{}",
        ens.report()
    );
    assert!(
        logged(&ens, follower, "installed a snapshot as the durable state"),
        "{}",
        ens.report()
    );
}

#[test]
fn observer_syncs_and_serves_reads() {
    let ens = Ensemble::start(3, 1, FAST);
    let observer = ens
        .sids()
        .find(|&s| ens.is_observer(s))
        .expect("an observer");
    assert_eq!(ens.mode(observer).as_deref(), Some("observer"));
    let voters = others(&ens, &[observer]);
    ensure_node(&ens, &voters, "/t");
    let mut acked = write_acked(&ens, &voters, "/t", "w", 30, WRITES);
    // Writes through the observer are forwarded too.
    acked.extend(write_acked(&ens, &[observer], "/t", "obs", 10, WRITES));
    assert_converged(&ens, &all(&ens), "/t", &acked, SETTLE);
}

#[test]
fn five_servers_survive_two_failures() {
    let mut ens = Ensemble::start(5, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let mut acked = write_acked(&ens, &sids, "/t", "before", 30, WRITES);
    let leader = ens.wait_for_leader(SETTLE);
    let follower = followers(&ens, leader)[0];
    ens.kill(leader);
    ens.kill(follower);
    let survivors = others(&ens, &[leader, follower]);
    acked.extend(write_acked(&ens, &survivors, "/t", "during", 30, WRITES));
    ens.restart(leader);
    ens.restart(follower);
    ens.wait_settled(SETTLE);
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
}

/// Bytes a connection to `addr` gets before the server closes it, or None if it stays
/// open past `within` (what a leader must never do with a bad peer).
fn closed_after(addr: std::net::SocketAddr, send: &[u8], within: Duration) -> Option<usize> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(within)).ok()?;
    let _ = s.write_all(send);
    let mut got = 0;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
}

/// A QuorumPacket as jute writes it: type, zxid, data (length-prefixed), no authinfo.
fn packet(packet_type: i32, zxid: i64, data: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&packet_type.to_be_bytes());
    out.extend_from_slice(&zxid.to_be_bytes());
    match data {
        Some(d) => {
            out.extend_from_slice(&(d.len() as i32).to_be_bytes());
            out.extend_from_slice(d);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out
}

#[test]
fn bad_peers_on_the_quorum_port_are_disconnected_and_change_nothing() {
    let ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let mut acked = write_acked(&ens, &sids, "/t", "before", 10, WRITES);
    let leader = ens.wait_for_leader(SETTLE);
    let quorum = std::net::SocketAddr::from(([127, 0, 0, 1], ens.peer_ports(leader).0));
    let within = Duration::from_secs(10);
    let learner_info = |sid: i64| {
        let mut li = sid.to_be_bytes().to_vec();
        li.extend_from_slice(&0x10000i32.to_be_bytes());
        li.extend_from_slice(&0i64.to_be_bytes());
        packet(11, 0, Some(&li))
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("an oversized data length", {
            let mut p = 11i32.to_be_bytes().to_vec();
            p.extend_from_slice(&0i64.to_be_bytes());
            p.extend_from_slice(&i32::MAX.to_be_bytes());
            p
        }),
        ("an ACK before saying who it is", packet(3, 0, None)),
        ("an unknown server id", learner_info(99)),
        ("the leader's own server id", learner_info(leader as i64)),
    ];
    for (what, bytes) in cases {
        assert!(
            closed_after(quorum, &bytes, within).is_some(),
            "a peer sending {what} was not disconnected\n{}",
            ens.report()
        );
    }
    // The ensemble did not notice: same leader, writes go on, every server converges.
    assert_eq!(ens.wait_for_leader(SETTLE), leader);
    acked.extend(write_acked(&ens, &sids, "/t", "after", 10, WRITES));
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
    let log = ens.log_tail(leader, 100_000);
    assert!(log.contains("is not a learner of this ensemble"), "{log}");
    assert!(log.contains("first packet is not a LearnerInfo"), "{log}");
}

#[test]
fn a_session_moves_between_servers() {
    use common::raw::{Conn, ConnectRequest};
    let ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    let leader = ens.wait_for_leader(SETTLE);
    let (a, b) = {
        let f = followers(&ens, leader);
        (f[0], f[1])
    };
    // A session made on follower a, with an ephemeral node.
    let mut on_a = Conn::connect(ens.client_addr(a), 20_000);
    let (id, passwd) = (on_a.session_id(), on_a.passwd());
    assert_ne!(id, 0);
    assert_eq!(
        (id >> 56) as usize,
        a,
        "session ids carry the creating server's id"
    );
    assert_eq!(on_a.create("/eph", b"", 1).err, 0);
    // The same session resumed on follower b (the leader revalidates it)...
    let resume = ConnectRequest::resume(20_000, id, &passwd);
    let mut on_b = Conn::connect_with(ens.client_addr(b), &resume).expect("resume on b");
    assert_eq!(
        on_b.session_id(),
        id,
        "the session was not resumed on server {b}"
    );
    assert_eq!(on_b.create("/from-b", b"", 0).err, 0);
    // ...so the old connection's writes get SESSIONMOVED, as from ZooKeeper.
    assert_eq!(on_a.create("/from-a", b"", 0).err, -118);
    // And on the leader too, where the session was never seen.
    let mut on_leader = Conn::connect_with(ens.client_addr(leader), &resume).expect("resume");
    assert_eq!(on_leader.session_id(), id);
    assert_eq!(on_b.create("/from-b-again", b"", 0).err, -118);
    assert_eq!(on_leader.create("/from-leader", b"", 0).err, 0);
    // A wrong password is refused everywhere, and so is the one ZooKeeper would derive
    // from the session id alone: a Ferrokeeper ensemble's passwords are keyed.
    let derived = ferrokeeper::session::SessionTable::with_passwords(
        0,
        0,
        ferrokeeper::session::Passwords::ZooKeeper,
    )
    .password(id);
    assert_ne!(passwd, derived.to_vec());
    for &sid in &sids {
        for wrong in [[0u8; 16], derived] {
            let bad = ConnectRequest::resume(20_000, id, &wrong);
            let c = Conn::connect_with(ens.client_addr(sid), &bad).expect("handshake");
            assert_eq!(c.session_id(), 0, "server {sid} took a wrong password");
        }
    }
    assert_converged(
        &ens,
        &sids,
        "/",
        &["eph".into(), "from-b".into(), "from-leader".into()],
        SETTLE,
    );
    // Closing the session removes its ephemeral everywhere.
    assert_eq!(on_leader.close_session().err, 0);
    ens.wait_until(SETTLE, "the ephemeral to go with its session", |e| {
        e.sids().all(|sid| {
            Client::connect(e, sid)
                .and_then(|mut c| c.synced_children("/"))
                .is_ok_and(|children| !children.contains(&"eph".to_string()))
        })
    });
}

/// Writes `count` creates back to back on one connection from a thread; returns, per
/// write, its error code and when its answer came. Panics if the connection fails:
/// the point is that it must not.
fn one_connection_writer(
    addr: std::net::SocketAddr,
    prefix: String,
    count: usize,
) -> std::thread::JoinHandle<Vec<(i32, std::time::Instant)>> {
    std::thread::spawn(move || {
        let mut c = Client::connect_addr(addr).expect("connect");
        (0..count)
            .map(|i| {
                let body = create_body(&format!("/t/{prefix}-{i:05}"), b"v", &Acl::world_all(), 0);
                let reply = c
                    .call(1, &body)
                    .unwrap_or_else(|e| panic!("write {i}: the connection failed: {e}"));
                (reply.err, std::time::Instant::now())
            })
            .collect()
    })
}

#[test]
fn clients_of_a_surviving_server_keep_their_connection_when_the_leader_dies() {
    let mut ens = Ensemble::start(3, 0, &[]);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let leader = ens.wait_for_leader(SETTLE);
    // One writer on each follower: one of them becomes the next leader, the other follows it.
    let writers: Vec<_> = followers(&ens, leader)
        .into_iter()
        .map(|sid| {
            (
                sid,
                one_connection_writer(ens.client_addr(sid), format!("s{sid}"), 400),
            )
        })
        .collect();
    ens.wait_until(SETTLE, "writes under way", |e| {
        Client::connect(e, leader)
            .and_then(|mut c| c.synced_children("/t"))
            .is_ok_and(|list| list.len() > 100)
    });
    let killed_at = std::time::Instant::now();
    ens.kill(leader);
    let mut acked = Vec::new();
    for (sid, writer) in writers {
        let answers = writer
            .join()
            .unwrap_or_else(|_| panic!("writer on {sid}\n{}", ens.report()));
        // Every create of a fresh path succeeds exactly once: an answer of NODEEXISTS would
        // mean a write was run twice, any other code that it was lost.
        for (i, (err, _)) in answers.iter().enumerate() {
            assert_eq!(
                *err,
                0,
                "write {i} through server {sid} answered {err}\n{}",
                ens.report()
            );
        }
        let times: Vec<_> = answers.iter().map(|(_, at)| *at).collect();
        let gap = times
            .windows(2)
            .filter(|w| w[1] > killed_at)
            .map(|w| w[1].duration_since(w[0].max(killed_at)))
            .max()
            .unwrap_or_default();
        eprintln!("server {sid}: longest wait for a write after the leader's kill: {gap:?}");
        // Issue 10's target at the default tickTime; ZooKeeper's finalize wait alone is
        // 200 ms, and measured here it is 10-40 ms.
        assert!(
            gap < FAILOVER_MAX,
            "server {sid}: a write waited {gap:?} after the leader's kill\n{}",
            ens.report()
        );
        acked.extend((0..400).map(|i| format!("s{sid}-{i:05}")));
    }
    ens.restart(leader);
    ens.wait_settled(SETTLE);
    acked.sort();
    acked.dedup();
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
}

#[test]
fn concurrent_writers_through_followers_at_the_default_tick_never_stall_the_leader() {
    // tickTime 2000: a leader whose pipeline stalled would lose its learners only after
    // syncLimit (10 s), so a stall shows as a long run and a step-down in the logs.
    let ens = Ensemble::start(3, 0, &[]);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let leader = ens.wait_for_leader(SETTLE);
    let addrs: Vec<_> = followers(&ens, leader)
        .iter()
        .map(|&s| ens.client_addr(s))
        .collect();
    let started = std::time::Instant::now();
    let writers: Vec<_> = (0..16)
        .map(|i| one_connection_writer(addrs[i % addrs.len()], format!("c{i}"), 150))
        .collect();
    let mut acked = Vec::new();
    for (i, writer) in writers.into_iter().enumerate() {
        let answers = writer
            .join()
            .unwrap_or_else(|_| panic!("writer {i}\n{}", ens.report()));
        assert!(
            answers.iter().all(|(err, _)| *err == 0),
            "writer {i}: {answers:?}"
        );
        acked.extend((0..150).map(|n| format!("c{i}-{n:05}")));
    }
    let took = started.elapsed();
    for sid in ens.sids() {
        let log = ens.log_tail(sid, 100_000);
        for sign in ["stepped down", "left the leader", "dropped: Silent"] {
            assert!(
                !log.contains(sign),
                "server {sid} logged {sign:?}\n{}",
                ens.report()
            );
        }
    }
    assert!(
        took < Duration::from_secs(8),
        "2,400 writes took {took:?}\n{}",
        ens.report()
    );
    acked.sort();
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
}
