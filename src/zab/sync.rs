//! How a leader brings one learner up to date after discovery: DIFF, TRUNC
//! or SNAP, chosen from the learner's last logged zxid and the leader's
//! retained committed history (ZooKeeper's `LearnerHandler.syncFollower`,
//! `shared/docs/zk-quorum.md` section 3.4), with one deliberate change: a
//! TRUNC is sent only when it is provably safe.
//!
//! Why the change: ZooKeeper sends `TRUNC(max)` to a learner whose zxid is
//! above the leader's newest, whatever its epoch. A learner that logged
//! `(1,3), (2,1)` under a leader holding `(1,1)..(1,5)` would cut after
//! `(1,5)`, keep `(1,3)` and never receive `(1,4)`, `(1,5)`. The facts that
//! make a TRUNC safe: one leader per epoch proposes each zxid of that epoch
//! once, and every log holds the txns of an epoch without gaps (learners
//! refuse discontinuous proposals). So if the learner's last zxid and the
//! truncation point share an epoch, the learner holds that point with the
//! leader's content and agrees with the leader up to it. Otherwise the
//! leader sends a SNAP, which any ZooKeeper learner accepts.

use super::quorum_wire::epoch_of;

/// How the learner's state is first made to match the leader's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    /// The learner's log is a prefix of the leader's history: keep it.
    Diff,
    /// The learner cuts its log after this zxid (and drops any snapshot
    /// above it, ZOOKEEPER-4837), then continues as a DIFF from there.
    Trunc(i64),
    /// The learner replaces its state with the leader's snapshot at the
    /// leader's last committed zxid.
    Snap,
}

/// A learner's sync: the opening packet, then PROPOSAL+COMMIT pairs for
/// every committed txn above `send_after` up to the leader's last
/// committed zxid. (The leader adds its outstanding proposals after these.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPlan {
    pub kind: SyncKind,
    /// The zxid the learner holds once the opening packet took effect.
    pub send_after: i64,
    /// The leader's last committed zxid: DIFF's and SNAP's packet zxid.
    pub last_committed: i64,
}

/// What the leader can send txn by txn.
#[derive(Clone, Copy, Debug)]
pub struct History<'a> {
    /// The zxid the retained txns follow (the leader's oldest point it can
    /// DIFF from: 0 on a fresh ensemble, else its oldest snapshot's zxid).
    pub base_zxid: i64,
    /// The zxids of the retained committed txns after `base_zxid`, ascending.
    pub committed: &'a [i64],
    /// The epoch the leader proposes in and its last proposed zxid: a
    /// learner that logged this leader's own proposals holds its history.
    pub proposing: Option<(i64, i64)>,
}

impl History<'_> {
    pub fn last_committed(&self) -> i64 {
        self.committed.last().copied().unwrap_or(self.base_zxid)
    }
}

/// Chooses the sync for a learner whose last logged zxid is `peer_zxid`.
pub fn plan_sync(peer_zxid: i64, history: History<'_>, force_snapshot: bool) -> SyncPlan {
    let last = history.last_committed();
    let plan = |kind, send_after| SyncPlan {
        kind,
        send_after,
        last_committed: last,
    };
    if force_snapshot {
        return plan(SyncKind::Snap, last);
    }
    if peer_zxid == last || peer_zxid == history.base_zxid {
        return plan(SyncKind::Diff, peer_zxid);
    }
    if peer_zxid > last {
        // A learner that logged proposals of this very leader got them
        // after a sync with it, so it holds the history up to `last`; it
        // drops the uncommitted ones and receives them again.
        let own_proposals = history
            .proposing
            .is_some_and(|(epoch, proposed)| epoch_of(peer_zxid) == epoch && peer_zxid <= proposed);
        return if own_proposals || epoch_of(peer_zxid) == epoch_of(last) {
            plan(SyncKind::Trunc(last), last)
        } else {
            plan(SyncKind::Snap, last)
        };
    }
    if peer_zxid < history.base_zxid {
        return plan(SyncKind::Snap, last);
    }
    match history.committed.binary_search(&peer_zxid) {
        Ok(_) => plan(SyncKind::Diff, peer_zxid),
        Err(next) => {
            // The learner logged a txn the leader does not have; cut back
            // to the leader's txn just below it when that is provably shared.
            let below = match next {
                0 => history.base_zxid,
                n => history.committed[n - 1],
            };
            if epoch_of(below) == epoch_of(peer_zxid) {
                plan(SyncKind::Trunc(below), below)
            } else {
                plan(SyncKind::Snap, last)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::quorum_wire::make_zxid;

    fn z(epoch: i64, counter: i64) -> i64 {
        make_zxid(epoch, counter)
    }

    fn history(base_zxid: i64, committed: &[i64]) -> History<'_> {
        History {
            base_zxid,
            committed,
            proposing: None,
        }
    }

    #[test]
    fn a_learner_at_the_leaders_last_txn_gets_an_empty_diff() {
        let log = [z(1, 1), z(1, 2)];
        let p = plan_sync(z(1, 2), history(0, &log), false);
        assert_eq!(p.kind, SyncKind::Diff);
        assert_eq!(p.send_after, z(1, 2));
        assert_eq!(p.last_committed, z(1, 2));
    }

    #[test]
    fn a_learner_behind_inside_the_history_gets_a_diff_of_the_rest() {
        let log = [z(1, 1), z(1, 2), z(2, 1)];
        let p = plan_sync(z(1, 1), history(0, &log), false);
        assert_eq!((p.kind, p.send_after), (SyncKind::Diff, z(1, 1)));
        // An empty learner on a fresh ensemble replays everything.
        let p = plan_sync(0, history(0, &log), false);
        assert_eq!((p.kind, p.send_after), (SyncKind::Diff, 0));
    }

    #[test]
    fn a_learner_older_than_the_retained_history_gets_a_snapshot() {
        let log = [z(3, 5), z(3, 6)];
        let p = plan_sync(z(2, 9), history(z(3, 4), &log), false);
        assert_eq!((p.kind, p.send_after), (SyncKind::Snap, z(3, 6)));
    }

    #[test]
    fn a_learner_ahead_in_the_same_epoch_is_truncated() {
        let log = [z(1, 1), z(1, 2)];
        let p = plan_sync(z(1, 4), history(0, &log), false);
        assert_eq!((p.kind, p.send_after), (SyncKind::Trunc(z(1, 2)), z(1, 2)));
    }

    #[test]
    fn a_learner_ahead_in_a_newer_epoch_gets_a_snapshot_not_zookeepers_trunc() {
        // ZooKeeper would TRUNC(1,5) and lose (1,4), (1,5) on this learner
        // if its log is (1,1)..(1,3), (2,1).
        let log = [z(1, 1), z(1, 2), z(1, 3), z(1, 4), z(1, 5)];
        let p = plan_sync(z(2, 1), history(0, &log), false);
        assert_eq!(p.kind, SyncKind::Snap);
    }

    #[test]
    fn a_learner_with_a_txn_the_leader_lacks_is_cut_back_within_its_epoch() {
        // Leader: (1,1) (1,2) (2,1). Learner logged (1,3) that never committed.
        let log = [z(1, 1), z(1, 2), z(2, 1)];
        let p = plan_sync(z(1, 3), history(0, &log), false);
        assert_eq!((p.kind, p.send_after), (SyncKind::Trunc(z(1, 2)), z(1, 2)));
        // Learner logged (2,5) in an epoch whose start the leader lacks: snapshot.
        let log = [z(1, 1), z(3, 1)];
        let p = plan_sync(z(2, 5), history(0, &log), false);
        assert_eq!(p.kind, SyncKind::Snap);
    }

    #[test]
    fn an_epoch_start_zxid_the_leader_never_logged_gets_a_snapshot() {
        let log = [z(1, 1), z(2, 1)];
        let p = plan_sync(z(2, 0), history(0, &log), false);
        assert_eq!(p.kind, SyncKind::Snap);
    }

    #[test]
    fn a_learner_holding_this_leaders_uncommitted_proposals_is_truncated() {
        // Committed up to (1,5); this leader of epoch 2 proposed (2,1)..(2,3).
        let log = [z(1, 4), z(1, 5)];
        let mut h = history(0, &log);
        h.proposing = Some((2, z(2, 3)));
        let p = plan_sync(z(2, 2), h, false);
        assert_eq!((p.kind, p.send_after), (SyncKind::Trunc(z(1, 5)), z(1, 5)));
        // Another leader's epoch-2 txns are not provably this leader's.
        h.proposing = Some((3, z(3, 1)));
        assert_eq!(plan_sync(z(2, 2), h, false).kind, SyncKind::Snap);
    }

    #[test]
    fn forced_snapshot_wins() {
        let log = [z(1, 1)];
        let p = plan_sync(z(1, 1), history(0, &log), true);
        assert_eq!((p.kind, p.send_after), (SyncKind::Snap, z(1, 1)));
    }
}
