//! Real processes of our binary as an ensemble on 127.0.0.1, every server-to-server link
//! through a fault proxy the test controls (tests/common/ensemble.rs). Each test makes
//! writes, injects a fault, writes on, heals, and then checks the two things a fault
//! test must: no acknowledged write is lost, and every server converges to the same state.
//!
//! tickTime is 200 ms here (syncLimit 5 = 1 s, initLimit 10 = 2 s), so failure detection
//! takes about a second instead of ZooKeeper's default ten.

mod common;

use std::time::Duration;

use common::ensemble::Ensemble;
use common::ensemble_client::{assert_converged, ensure_node, write_acked, Client};

const FAST: &[(&str, &str)] = &[("tickTime", "200")];
const SETTLE: Duration = Duration::from_secs(30);
const WRITES: Duration = Duration::from_secs(60);

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
fn rolling_restart_of_every_server() {
    let mut ens = Ensemble::start(3, 0, FAST);
    let sids = all(&ens);
    ensure_node(&ens, &sids, "/t");
    let mut acked = Vec::new();
    for &sid in &sids {
        acked.extend(write_acked(
            &ens,
            &sids,
            "/t",
            &format!("pre{sid}"),
            20,
            WRITES,
        ));
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
    assert_converged(&ens, &sids, "/t", &acked, SETTLE);
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
