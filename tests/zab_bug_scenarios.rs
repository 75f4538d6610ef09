//! ZooKeeper's replication bugs as scenarios against our ZAB cores
//! (`ferrokeeper::zab::{leader, learner, sync}`): each test replays the
//! sequence of packets and local events that broke Apache ZooKeeper and
//! checks the order of the actions our cores take, so reintroducing the
//! bug fails the test. (`tests/zab_ensemble_sim.rs` checks the same
//! properties end to end under random faults; these pin the exact windows.)
//! Bug numbers are ZOOKEEPER-n; `shared/docs/zk-quorum.md` section 7 has them.

use ferrokeeper::zab::leader::{self, Leader, LearnerKind, Packet as ToLearner};
use ferrokeeper::zab::learner::{self, Action, Input, Learner, LeaveReason, Packet as ToLeader};
use ferrokeeper::zab::quorum_wire::make_zxid;
use ferrokeeper::zab::sync::{plan_sync, History, SyncKind};

const LEARNER_TIMING: learner::Timing = learner::Timing {
    init_limit_ms: 10_000,
    sync_limit_ms: 5_000,
};
const LEADER_TIMING: leader::Timing = leader::Timing {
    init_limit_ms: 10_000,
    sync_limit_ms: 5_000,
    ping_interval_ms: 1_000,
};

fn z(epoch: i64, counter: i64) -> i64 {
    make_zxid(epoch, counter)
}

/// A follower at `last_zxid` (epochs 1/1) that accepted epoch 2 and got DIFF.
fn follower_in_diff_sync(last_zxid: i64) -> Learner {
    let (mut f, _) = Learner::new(LearnerKind::Participant, LEARNER_TIMING, 1, 1, last_zxid, 0);
    let out = f.step(0, Input::LeaderInfo { new_epoch: 2 });
    assert_eq!(out[0], Action::PersistAcceptedEpoch(2));
    f.step(0, Input::Diff { zxid: last_zxid });
    f
}

fn position(actions: &[Action], wanted: &Action) -> Option<usize> {
    actions.iter().position(|a| a == wanted)
}

fn newleader_ack() -> Action {
    Action::Send(ToLeader::Ack { zxid: z(2, 0) })
}

#[test]
fn zookeeper_4646_and_3911_newleader_is_acked_only_once_the_sync_is_durable() {
    let mut f = follower_in_diff_sync(z(1, 3));
    // The leader sends its history above ours and an outstanding proposal.
    f.step(0, Input::Proposal { zxid: z(1, 4) });
    f.step(0, Input::Commit { zxid: z(1, 4) });
    f.step(0, Input::Proposal { zxid: z(1, 5) });
    let out = f.step(0, Input::NewLeader { zxid: z(2, 0) });
    assert_eq!(position(&out, &newleader_ack()), None, "{out:?}");
    // Half of it durable: still no ACK (3.8.0-3.8.4 acked here).
    let out = f.step(1, Input::Durable { zxid: z(1, 4) });
    assert_eq!(position(&out, &newleader_ack()), None, "{out:?}");
    let out = f.step(2, Input::Durable { zxid: z(1, 5) });
    assert!(position(&out, &newleader_ack()).is_some(), "{out:?}");
}

#[test]
fn zookeeper_4643_current_epoch_is_written_after_the_txns_and_before_the_ack() {
    let mut f = follower_in_diff_sync(z(1, 3));
    f.step(0, Input::Proposal { zxid: z(1, 4) });
    let out = f.step(0, Input::NewLeader { zxid: z(2, 0) });
    // A crash here must not leave currentEpoch 2 over a log without (1,4):
    // such a server would win the next election and truncate others.
    assert!(
        !out.contains(&Action::PersistCurrentEpoch(2)),
        "currentEpoch written before the txns are durable: {out:?}"
    );
    let out = f.step(1, Input::Durable { zxid: z(1, 4) });
    let epoch_at = position(&out, &Action::PersistCurrentEpoch(2)).expect("epoch written");
    let ack_at = position(&out, &newleader_ack()).expect("NEWLEADER acked");
    assert!(epoch_at < ack_at, "{out:?}");
    assert_eq!(f.current_epoch(), 2);
}

#[test]
fn zookeeper_4643_a_leader_steps_down_when_a_voter_is_ahead_of_it() {
    // Leader 1 at (epoch 1, (1,3)); voter 2 reports currentEpoch 1 with (1,5).
    let (mut l, _) = Leader::new(1, [1, 2, 3].into(), LEADER_TIMING, 1, 1, 0, &[z(1, 3)], 0);
    l.step(0, learner_info(2));
    let out = l.step(
        0,
        leader::Input::AckEpoch {
            from: 2,
            current_epoch: Some(1),
            last_zxid: z(1, 5),
        },
    );
    assert!(
        matches!(out.last(), Some(leader::Action::StepDown(_))),
        "a leader behind a voter would truncate its committed txns: {out:?}"
    );
}

#[test]
fn zookeeper_4685_proposals_are_acked_only_after_uptodate() {
    let mut f = follower_in_diff_sync(z(1, 3));
    f.step(0, Input::Proposal { zxid: z(1, 4) });
    f.step(0, Input::NewLeader { zxid: z(2, 0) });
    let out = f.step(1, Input::Durable { zxid: z(1, 4) });
    // The NEWLEADER ACK is the first packet; no proposal ACK before UPTODATE.
    let acks: Vec<&Action> = out
        .iter()
        .filter(|a| matches!(a, Action::Send(ToLeader::Ack { .. })))
        .collect();
    assert_eq!(acks, [&newleader_ack()], "{out:?}");
    let live = f.step(2, Input::Proposal { zxid: z(2, 1) });
    assert!(
        live.iter().all(|a| !matches!(a, Action::Send(_))),
        "{live:?}"
    );
    let out = f.step(3, Input::UpToDate);
    let proposal_acks: Vec<&Action> = out
        .iter()
        .filter(|a| matches!(a, Action::Send(ToLeader::Ack { zxid }) if *zxid != z(2, 0)))
        .collect();
    // (1,4) is durable and still outstanding: acked now; (2,1) waits for its fsync.
    assert_eq!(
        proposal_acks,
        [&Action::Send(ToLeader::Ack { zxid: z(1, 4) })],
        "{out:?}"
    );
}

#[test]
fn zookeeper_4685_a_leader_drops_a_learner_whose_first_ack_is_not_newleaders() {
    let (mut l, _) = Leader::new(1, [1, 2, 3].into(), LEADER_TIMING, 1, 1, 0, &[], 0);
    l.step(0, learner_info(2));
    l.step(0, ack_epoch(2));
    let out = l.step(
        0,
        leader::Input::Ack {
            from: 2,
            zxid: z(2, 1),
        },
    );
    assert!(
        matches!(
            out.as_slice(),
            [leader::Action::Drop {
                sid: 2,
                reason: leader::DropReason::OutOfOrder(_)
            }]
        ),
        "{out:?}"
    );
}

#[test]
fn zookeeper_4394_and_4925_commits_apply_in_order_and_gaps_are_refused() {
    let mut f = follower_in_diff_sync(z(1, 3));
    f.step(0, Input::Proposal { zxid: z(1, 4) });
    f.step(0, Input::NewLeader { zxid: z(2, 0) });
    f.step(1, Input::Durable { zxid: z(1, 4) });
    // 3.9.3's NPE: a COMMIT between the NEWLEADER ACK and UPTODATE.
    let out = f.step(2, Input::Commit { zxid: z(1, 4) });
    assert_eq!(out, [Action::Apply { zxid: z(1, 4) }]);
    f.step(3, Input::UpToDate);
    assert!(f.is_serving());
    // 3.9.4's check: a proposal that skips a zxid of its epoch is refused
    // (the first of a newer epoch may start anywhere).
    let out = f.step(4, Input::Proposal { zxid: z(2, 1) });
    assert_eq!(out, [Action::Append { zxid: z(2, 1) }]);
    let out = f.step(4, Input::Proposal { zxid: z(2, 3) });
    assert!(
        matches!(
            out.last(),
            Some(Action::Leave(LeaveReason::Discontinuous { .. }))
        ),
        "{out:?}"
    );
}

#[test]
fn a_commit_for_another_proposal_leaves_the_leader_instead_of_exiting() {
    // Apache calls System.exit(12); re-syncing is the safe and live answer.
    let mut f = follower_in_diff_sync(z(1, 3));
    f.step(0, Input::NewLeader { zxid: z(2, 0) });
    f.step(1, Input::UpToDate);
    f.step(2, Input::Proposal { zxid: z(2, 1) });
    f.step(2, Input::Proposal { zxid: z(2, 2) });
    let out = f.step(3, Input::Commit { zxid: z(2, 2) });
    assert_eq!(
        out,
        [Action::Leave(LeaveReason::CommitMismatch {
            expected: Some(z(2, 1)),
            got: z(2, 2)
        })]
    );
}

#[test]
fn a_bad_first_sync_packet_leaves_instead_of_exiting() {
    // Apache calls System.exit(13) when the first packet is not DIFF/TRUNC/SNAP.
    let (mut f, _) = Learner::new(LearnerKind::Participant, LEARNER_TIMING, 1, 1, z(1, 3), 0);
    f.step(0, Input::LeaderInfo { new_epoch: 2 });
    let out = f.step(0, Input::Proposal { zxid: z(1, 4) });
    assert!(
        matches!(out.as_slice(), [Action::Leave(LeaveReason::Protocol(_))]),
        "{out:?}"
    );
}

#[test]
fn zookeeper_4837_a_truncation_is_one_durable_action_before_anything_else() {
    // The runtime cuts the log, deletes snapshots above the point and
    // reloads memory in `Truncate`; nothing is logged or applied before it.
    let (mut f, _) = Learner::new(LearnerKind::Participant, LEARNER_TIMING, 1, 1, z(1, 7), 0);
    f.step(0, Input::LeaderInfo { new_epoch: 2 });
    let out = f.step(0, Input::Trunc { zxid: z(1, 5) });
    assert_eq!(out, [Action::Truncate { zxid: z(1, 5) }]);
    assert_eq!(f.last_logged(), z(1, 5));
    // A TRUNC above what we hold is a leader's error, not a cut.
    let (mut g, _) = Learner::new(LearnerKind::Participant, LEARNER_TIMING, 1, 1, z(1, 2), 0);
    g.step(0, Input::LeaderInfo { new_epoch: 2 });
    let out = g.step(0, Input::Trunc { zxid: z(1, 5) });
    assert!(
        matches!(out.as_slice(), [Action::Leave(LeaveReason::Protocol(_))]),
        "{out:?}"
    );
}

#[test]
fn zookeepers_trunc_across_epochs_becomes_a_snapshot() {
    // `LearnerHandler.syncFollower` sends TRUNC(max) to a learner above the
    // leader's newest zxid in any epoch; a learner with (1,1)..(1,3),(2,1)
    // would then never receive the leader's (1,4),(1,5).
    let committed = [z(1, 1), z(1, 2), z(1, 3), z(1, 4), z(1, 5)];
    let history = History {
        base_zxid: 0,
        committed: &committed,
        proposing: None,
    };
    assert_eq!(plan_sync(z(2, 1), history, false).kind, SyncKind::Snap);
}

#[test]
fn acks_from_a_learner_that_reconnected_do_not_count_again() {
    // Found by tests/zab_ensemble_sim.rs (seed 6543 before the fix): a
    // follower ACKed (2,1), reconnected, was truncated back to the last
    // commit, and the leader still counted its old ACK toward the quorum.
    let mut l = active_leader(5);
    let (zxid, _) = l.propose(0).expect("active");
    l.step(0, leader::Input::Durable { zxid });
    l.step(0, leader::Input::Ack { from: 2, zxid });
    l.step(0, leader::Input::LearnerGone { from: 2 });
    let out = l.step(0, leader::Input::Ack { from: 3, zxid });
    assert!(
        !out.contains(&leader::Action::Commit { zxid }),
        "committed on a forgotten ACK: {out:?}"
    );
    let out = l.step(0, leader::Input::Ack { from: 4, zxid });
    assert!(out.contains(&leader::Action::Commit { zxid }), "{out:?}");
}

#[test]
fn a_write_commits_only_with_the_leaders_own_fsync_in_the_quorum() {
    let mut l = active_leader(3);
    let (zxid, out) = l.propose(0).expect("active");
    assert!(out.contains(&leader::Action::Append { zxid }));
    // One follower's ACK is not a quorum of 3 without the leader's own log.
    let out = l.step(0, leader::Input::Ack { from: 2, zxid });
    assert!(!out.contains(&leader::Action::Commit { zxid }), "{out:?}");
    let out = l.step(0, leader::Input::Durable { zxid });
    assert!(out.contains(&leader::Action::Commit { zxid }), "{out:?}");
    assert!(out.iter().any(|a| matches!(
        a,
        leader::Action::Send {
            to: 2,
            packet: ToLearner::Commit { .. }
        }
    )));
}

fn learner_info(from: i64) -> leader::Input {
    leader::Input::LearnerInfo {
        from,
        kind: LearnerKind::Participant,
        accepted_epoch: 1,
    }
}

fn ack_epoch(from: i64) -> leader::Input {
    leader::Input::AckEpoch {
        from,
        current_epoch: Some(1),
        last_zxid: 0,
    }
}

/// Leader 1 of `voters` servers at epoch 2, every learner synced.
fn active_leader(voters: i64) -> Leader {
    let (mut l, _) = Leader::new(1, (1..=voters).collect(), LEADER_TIMING, 1, 1, 0, &[], 0);
    for sid in 2..=voters {
        l.step(0, learner_info(sid));
    }
    for sid in 2..=voters {
        l.step(0, ack_epoch(sid));
    }
    for sid in 2..=voters {
        l.step(
            0,
            leader::Input::Ack {
                from: sid,
                zxid: z(2, 0),
            },
        );
    }
    assert!(l.is_active());
    l
}
