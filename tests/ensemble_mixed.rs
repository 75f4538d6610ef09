//! Mixed ensembles, as a user migrating node by node runs them: Ferrokeeper and Apache
//! ZooKeeper (Debian's package) servers in one 3-server ensemble, each side leading once.
//! Concurrent writers go through every member, so each follower has several proposals in
//! flight and receives COMMITs in the middle of a burst of proposals (Apache's leader
//! commits txn by txn). Every acknowledged write must be on every member afterwards, and
//! every member's tree digest (`hash`, ZooKeeper's DataTree digest) at each logged zxid
//! the same.
//!
//! Every wait is bounded; the processes are stopped when the ensemble is dropped.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ensemble::Ensemble;
use common::ensemble_client::{assert_converged, ensure_node, write_until};

/// Concurrent writing sessions, spread over the members.
const WRITERS: usize = 9;
/// Acknowledged writes to reach before the writers stop.
const WRITES_MIN: usize = 3000;
const WRITES_WITHIN: Duration = Duration::from_secs(60);
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);
/// What the README tells users of mixed ensembles to set: session passwords derived as
/// ZooKeeper derives them, so a session moves between Apache and Ferrokeeper servers.
const MIXED_CFG: &[(&str, &str)] = &[("ferrokeeper.sessionPasswords", "zookeeper")];

/// Writes through every member from `WRITERS` sessions until `WRITES_MIN` are
/// acknowledged, then checks that every member holds every one of them.
fn writes_converge(ens: &Ensemble, parent: &str) {
    let sids: Vec<usize> = ens.sids().collect();
    ensure_node(ens, &sids, parent);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let sid = sids[w % sids.len()];
            write_until(
                vec![ens.client_addr(sid)],
                parent.to_string(),
                format!("w{w}"),
                stop.clone(),
            )
        })
        .collect();
    // The writers report only when they stop; the parent's child count says how far they are.
    let deadline = Instant::now() + WRITES_WITHIN;
    let leader = ens.leader().expect("a leader");
    loop {
        let written = common::ensemble_client::Client::connect(ens, leader)
            .and_then(|mut c| c.synced_children(parent))
            .map_or(0, |c| c.len());
        if written >= WRITES_MIN {
            break;
        }
        if Instant::now() >= deadline {
            stop.store(true, Ordering::Relaxed);
            panic!(
                "{written} of {WRITES_MIN} writes within {WRITES_WITHIN:?}\n{}",
                ens.report()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer thread"))
        .collect();
    assert!(acked.len() >= WRITES_MIN, "{} acknowledged", acked.len());
    let mut sorted = acked;
    sorted.sort();
    let all = assert_converged(ens, &sids, parent, &sorted, CONVERGE_WITHIN);
    assert!(all.len() >= sorted.len());
    digests_agree(ens);
}

/// Every member logged ZooKeeper's tree digest at the same zxids (each 128th)
/// with the same value: the trees were equal txn by txn, whichever server
/// implementation applied them.
fn digests_agree(ens: &Ensemble) {
    let logs: Vec<(usize, BTreeMap<String, String>)> = ens
        .sids()
        .map(|sid| {
            let text = ens.four_letter(sid, "hash").unwrap_or_default();
            let log = text
                .lines()
                .filter_map(|l| l.split_once(": "))
                .map(|(z, d)| (z.to_string(), d.to_string()))
                .collect();
            (sid, log)
        })
        .collect();
    let (first_sid, first) = &logs[0];
    let common: Vec<&String> = first
        .keys()
        .filter(|z| logs.iter().all(|(_, log)| log.contains_key(*z)))
        .collect();
    assert!(common.len() >= 10, "few common digests: {logs:?}");
    for (sid, log) in &logs {
        for zxid in &common {
            assert_eq!(
                log[*zxid], first[*zxid],
                "digest at zxid {zxid}: server {sid} and server {first_sid} differ"
            );
        }
    }
}

#[test]
fn ferrokeeper_followers_of_an_apache_leader_take_concurrent_writes_and_converge() {
    // Fresh logs everywhere: the largest sid of the first two wins their election.
    let ens = Ensemble::start_mixed(3, &[3], &[1, 3], MIXED_CFG);
    assert_eq!(ens.leader(), Some(3), "{}", ens.report());
    writes_converge(&ens, "/under-apache");
}

#[test]
fn an_apache_follower_of_our_leader_takes_concurrent_writes_and_converges() {
    let ens = Ensemble::start_mixed(3, &[1], &[1, 3], MIXED_CFG);
    assert_eq!(ens.leader(), Some(3), "{}", ens.report());
    writes_converge(&ens, "/under-ferrokeeper");
}
