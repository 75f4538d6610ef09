//! Operator commands an ensemble member answers differently from a
//! standalone server, against a 3-server Ferrokeeper ensemble.

mod common;

use std::time::Duration;

use common::ensemble::Ensemble;

/// `dump` as ZooKeeper's session trackers print it: the leader (which
/// expires sessions) by expiry time, a follower its global sessions with
/// their timeouts (`LearnerSessionTracker`).
#[test]
fn dump_lists_sessions_as_leader_and_learner_trackers() {
    let ens = Ensemble::start(3, 0, &[]);
    let leader = ens.wait_for_leader(Duration::from_secs(30));
    let follower = ens.sids().find(|s| *s != leader).unwrap();
    let conn = common::raw::Conn::connect(ens.client_addr(follower), 12_000);
    let id = conn.session_id();
    ens.wait_until(Duration::from_secs(20), "the session on every dump", |e| {
        e.sids().all(|s| {
            e.four_letter(s, "dump")
                .is_some_and(|d| d.contains(&format!("0x{id:x}")))
        })
    });
    let on_leader = ens.four_letter(leader, "dump").unwrap();
    assert!(
        on_leader.starts_with("SessionTracker dump:\nSession Sets ("),
        "{on_leader}"
    );
    assert!(on_leader.contains(&format!("\t0x{id:x}\n")), "{on_leader}");
    let on_follower = ens.four_letter(follower, "dump").unwrap();
    assert!(
        on_follower.starts_with("SessionTracker dump:\nGlobal Sessions("),
        "{on_follower}"
    );
    assert!(
        on_follower.contains(&format!("\n0x{id:x}\t12000ms\n")),
        "{on_follower}"
    );
    drop(conn);
}
