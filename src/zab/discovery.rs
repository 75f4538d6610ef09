//! ZAB discovery — agreeing on a new epoch after an election — as pure state
//! machines for both sides, facts from ZooKeeper 3.9's `Leader`
//! (`getEpochToPropose`, `waitForEpochAck`) and `Learner.registerWithLeader`:
//!
//! 1. each learner sends FOLLOWERINFO/OBSERVERINFO carrying its acceptedEpoch
//!    (as the epoch of the packet's zxid);
//! 2. once the leader and a quorum of voters have connected, the leader
//!    proposes `max(acceptedEpoch of them all, its own) + 1`, persists it as
//!    its acceptedEpoch and sends LEADERINFO(newEpoch) to each learner;
//! 3. a learner persists newEpoch as its acceptedEpoch and answers ACKEPOCH
//!    with its currentEpoch and last zxid (-1 instead of the epoch when it
//!    had accepted newEpoch already); a learner whose acceptedEpoch is newer
//!    than the leader's proposal refuses;
//! 4. once the leader and a quorum of voters acked, the epoch is established
//!    and sync can begin — unless a voter is ahead of the leader (a newer
//!    currentEpoch, or the same with a newer zxid): then the leader must step
//!    down, or it would truncate committed txns (ZOOKEEPER-4643's danger).
//!
//! Either wait is bounded by initLimit ticks; past it the leader gives up.
//! No I/O here: persisting an epoch is an action the runtime performs (and
//! fsyncs) before it sends what follows it.

use std::collections::{BTreeMap, BTreeSet};

use super::election::Sid;

/// What a server's epochs and log say about it (`StateSummary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub current_epoch: i64,
    pub last_zxid: i64,
}

impl Summary {
    /// `StateSummary.isMoreRecentThan`.
    pub fn is_more_recent_than(&self, other: &Summary) -> bool {
        (self.current_epoch, self.last_zxid) > (other.current_epoch, other.last_zxid)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderInput {
    /// FOLLOWERINFO or OBSERVERINFO from `from`.
    LearnerInfo {
        from: Sid,
        accepted_epoch: i64,
    },
    /// ACKEPOCH from `from`; `current_epoch` is None for the -1 of a learner
    /// that had accepted the new epoch already.
    AckEpoch {
        from: Sid,
        current_epoch: Option<i64>,
        last_zxid: i64,
    },
    Tick,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderAction {
    /// Durably, before anything that follows in this list is sent.
    PersistAcceptedEpoch(i64),
    SendLeaderInfo {
        to: Sid,
        new_epoch: i64,
    },
    /// A quorum acked `new_epoch`: sync the learners (with what each acked).
    Established {
        new_epoch: i64,
        acked: BTreeMap<Sid, Summary>,
    },
    /// Give up leading: back to election.
    StepDown(StepDownReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepDownReason {
    /// No quorum connected (or acked) within initLimit ticks.
    Timeout,
    /// This voter's state is newer than the leader's.
    LearnerAhead {
        sid: Sid,
        learner: Summary,
        leader: Summary,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Collecting acceptedEpochs until a quorum has connected.
    Connecting,
    /// The new epoch is proposed; collecting ACKEPOCHs.
    Acking,
    /// A quorum acked: late learners still get LEADERINFO, their ACKEPOCH
    /// is not waited for (`waitForEpochAck` returns once the election
    /// finished).
    Established,
    SteppedDown,
}

/// The leader's side.
pub struct LeaderDiscovery {
    me: Sid,
    voters: BTreeSet<Sid>,
    summary: Summary,
    /// The epoch to propose so far; final once the phase is Acking.
    epoch: i64,
    phase: Phase,
    connected: BTreeSet<Sid>,
    /// Learners waiting for LEADERINFO (observers and late voters too).
    waiting: BTreeSet<Sid>,
    acked: BTreeMap<Sid, Summary>,
    deadline_ms: u64,
}

impl LeaderDiscovery {
    /// Starts leading: `accepted_epoch` and `summary` are this server's own;
    /// each wait may last `init_limit_ms` (initLimit x tickTime).
    pub fn new(
        me: Sid,
        voters: BTreeSet<Sid>,
        accepted_epoch: i64,
        summary: Summary,
        now_ms: u64,
        init_limit_ms: u64,
    ) -> (LeaderDiscovery, Vec<LeaderAction>) {
        let mut leader = LeaderDiscovery {
            me,
            voters,
            summary,
            epoch: -1,
            phase: Phase::Connecting,
            connected: BTreeSet::new(),
            waiting: BTreeSet::new(),
            acked: BTreeMap::new(),
            deadline_ms: now_ms + init_limit_ms,
        };
        let mut out = Vec::new();
        // The leader counts itself in both quorums, as `Leader.lead` does.
        leader.connect(me, accepted_epoch, &mut out);
        leader.ack(me, Some(summary.current_epoch), summary.last_zxid, &mut out);
        (leader, out)
    }

    /// The learner's connection closed: it hears LEADERINFO only if it
    /// connects again (what it sent before still counts: its epoch was
    /// read, and its ACKEPOCH was persisted on its side).
    pub fn learner_gone(&mut self, sid: Sid) {
        self.waiting.remove(&sid);
    }

    /// The proposed epoch, once a quorum has connected.
    pub fn new_epoch(&self) -> Option<i64> {
        (self.phase != Phase::Connecting).then_some(self.epoch)
    }

    pub fn step(
        &mut self,
        now_ms: u64,
        init_limit_ms: u64,
        input: LeaderInput,
    ) -> Vec<LeaderAction> {
        let mut out = Vec::new();
        match self.phase {
            Phase::SteppedDown => return out,
            Phase::Established => {
                if let LeaderInput::LearnerInfo { from, .. } = input {
                    out.push(LeaderAction::SendLeaderInfo {
                        to: from,
                        new_epoch: self.epoch,
                    });
                }
                return out;
            }
            Phase::Connecting | Phase::Acking => {}
        }
        match input {
            LeaderInput::LearnerInfo {
                from,
                accepted_epoch,
            } => {
                let phase = self.phase;
                self.connect(from, accepted_epoch, &mut out);
                if phase == Phase::Connecting && self.phase == Phase::Acking {
                    // The ACKEPOCH wait gets its own initLimit.
                    self.deadline_ms = now_ms + init_limit_ms;
                }
            }
            LeaderInput::AckEpoch {
                from,
                current_epoch,
                last_zxid,
            } => self.ack(from, current_epoch, last_zxid, &mut out),
            LeaderInput::Tick => {
                if now_ms >= self.deadline_ms {
                    self.phase = Phase::SteppedDown;
                    out.push(LeaderAction::StepDown(StepDownReason::Timeout));
                }
            }
        }
        out
    }

    fn has_quorum(&self, sids: &BTreeSet<Sid>) -> bool {
        sids.iter().filter(|s| self.voters.contains(s)).count() * 2 > self.voters.len()
    }

    fn connect(&mut self, from: Sid, accepted_epoch: i64, out: &mut Vec<LeaderAction>) {
        if from != self.me {
            self.waiting.insert(from);
        }
        if self.phase == Phase::Connecting {
            if accepted_epoch >= self.epoch {
                self.epoch = accepted_epoch + 1;
            }
            if self.voters.contains(&from) {
                self.connected.insert(from);
            }
            if self.connected.contains(&self.me) && self.has_quorum(&self.connected) {
                self.phase = Phase::Acking;
                out.push(LeaderAction::PersistAcceptedEpoch(self.epoch));
            } else {
                return;
            }
        }
        // Everyone who connected so far, or connects later, hears the epoch.
        for to in std::mem::take(&mut self.waiting) {
            out.push(LeaderAction::SendLeaderInfo {
                to,
                new_epoch: self.epoch,
            });
        }
    }

    fn ack(
        &mut self,
        from: Sid,
        current_epoch: Option<i64>,
        last_zxid: i64,
        out: &mut Vec<LeaderAction>,
    ) {
        if let Some(current_epoch) = current_epoch {
            let learner = Summary {
                current_epoch,
                last_zxid,
            };
            if learner.is_more_recent_than(&self.summary) {
                self.phase = Phase::SteppedDown;
                out.push(LeaderAction::StepDown(StepDownReason::LearnerAhead {
                    sid: from,
                    learner,
                    leader: self.summary,
                }));
                return;
            }
            if self.voters.contains(&from) {
                self.acked.insert(from, learner);
            }
        }
        let acked: BTreeSet<Sid> = self.acked.keys().copied().collect();
        if self.phase == Phase::Acking && acked.contains(&self.me) && self.has_quorum(&acked) {
            self.phase = Phase::Established;
            out.push(LeaderAction::Established {
                new_epoch: self.epoch,
                acked: self.acked.clone(),
            });
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LearnerAction {
    /// Durably, before the ACKEPOCH is sent.
    PersistAcceptedEpoch(i64),
    /// ACKEPOCH: `current_epoch` None is sent as -1.
    SendAckEpoch {
        current_epoch: Option<i64>,
        last_zxid: i64,
    },
    /// The leader's epoch is older than one this server accepted: leave it.
    Refuse {
        leader_epoch: i64,
        accepted_epoch: i64,
    },
}

/// The learner's answer to LEADERINFO(new_epoch) (`registerWithLeader`).
pub fn learner_on_leader_info(
    new_epoch: i64,
    accepted_epoch: i64,
    summary: Summary,
) -> Vec<LearnerAction> {
    if new_epoch > accepted_epoch {
        vec![
            LearnerAction::PersistAcceptedEpoch(new_epoch),
            LearnerAction::SendAckEpoch {
                current_epoch: Some(summary.current_epoch),
                last_zxid: summary.last_zxid,
            },
        ]
    } else if new_epoch == accepted_epoch {
        // It acked this epoch before and must not ack it twice.
        vec![LearnerAction::SendAckEpoch {
            current_epoch: None,
            last_zxid: summary.last_zxid,
        }]
    } else {
        vec![LearnerAction::Refuse {
            leader_epoch: new_epoch,
            accepted_epoch,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT_LIMIT_MS: u64 = 20_000;

    fn summary(current_epoch: i64, last_zxid: i64) -> Summary {
        Summary {
            current_epoch,
            last_zxid,
        }
    }

    fn leader(
        me: Sid,
        n: i64,
        accepted: i64,
        own: Summary,
    ) -> (LeaderDiscovery, Vec<LeaderAction>) {
        LeaderDiscovery::new(me, (1..=n).collect(), accepted, own, 0, INIT_LIMIT_MS)
    }

    fn info(from: Sid, accepted_epoch: i64) -> LeaderInput {
        LeaderInput::LearnerInfo {
            from,
            accepted_epoch,
        }
    }

    fn ack(from: Sid, current_epoch: i64, last_zxid: i64) -> LeaderInput {
        LeaderInput::AckEpoch {
            from,
            current_epoch: Some(current_epoch),
            last_zxid,
        }
    }

    #[test]
    fn a_quorum_of_connections_fixes_the_epoch_above_every_accepted_one() {
        let (mut l, out) = leader(3, 5, 4, summary(4, 0x4_0000_0009));
        assert!(out.is_empty());
        assert!(
            l.step(1, INIT_LIMIT_MS, info(1, 6)).is_empty(),
            "2 of 5: no quorum yet"
        );
        let out = l.step(2, INIT_LIMIT_MS, info(9, 7)); // an observer: never counted
        assert!(out.is_empty());
        let out = l.step(3, INIT_LIMIT_MS, info(2, 5));
        assert_eq!(
            out,
            vec![
                LeaderAction::PersistAcceptedEpoch(8),
                LeaderAction::SendLeaderInfo {
                    to: 1,
                    new_epoch: 8
                },
                LeaderAction::SendLeaderInfo {
                    to: 2,
                    new_epoch: 8
                },
                LeaderAction::SendLeaderInfo {
                    to: 9,
                    new_epoch: 8
                },
            ],
            "max(4, 6, 7, 5) + 1, persisted before it is sent"
        );
        // A late learner gets the fixed epoch, whatever it accepted.
        assert_eq!(
            l.step(4, INIT_LIMIT_MS, info(4, 20)),
            vec![LeaderAction::SendLeaderInfo {
                to: 4,
                new_epoch: 8
            }]
        );
        assert_eq!(l.new_epoch(), Some(8));
    }

    #[test]
    fn a_quorum_of_acks_establishes_the_epoch() {
        let (mut l, _) = leader(1, 3, 1, summary(1, 0x1_0000_0005));
        l.step(1, INIT_LIMIT_MS, info(2, 1));
        let out = l.step(2, INIT_LIMIT_MS, ack(2, 1, 0x1_0000_0004));
        let LeaderAction::Established { new_epoch, acked } = &out[0] else {
            panic!("{out:?}");
        };
        assert_eq!(*new_epoch, 2);
        assert_eq!(acked[&2], summary(1, 0x1_0000_0004));
        assert!(
            l.step(3, INIT_LIMIT_MS, ack(3, 1, 0)).is_empty(),
            "not waited for"
        );
        assert_eq!(
            l.step(4, INIT_LIMIT_MS, info(3, 0)),
            vec![LeaderAction::SendLeaderInfo {
                to: 3,
                new_epoch: 2
            }],
            "a learner that connects late still learns the epoch"
        );
        assert!(l
            .step(INIT_LIMIT_MS * 5, INIT_LIMIT_MS, LeaderInput::Tick)
            .is_empty());
    }

    #[test]
    fn a_voter_ahead_of_the_leader_makes_it_step_down() {
        // The danger of ZOOKEEPER-4643: leading with a shorter history
        // would truncate txns a quorum may have committed.
        for (theirs, why) in [
            (summary(2, 0x1_0000_0001), "newer epoch"),
            (summary(1, 0x1_0000_0009), "same epoch, newer zxid"),
        ] {
            let (mut l, _) = leader(1, 3, 1, summary(1, 0x1_0000_0005));
            l.step(1, INIT_LIMIT_MS, info(2, 2));
            let out = l.step(
                2,
                INIT_LIMIT_MS,
                ack(2, theirs.current_epoch, theirs.last_zxid),
            );
            assert_eq!(
                out,
                vec![LeaderAction::StepDown(StepDownReason::LearnerAhead {
                    sid: 2,
                    learner: theirs,
                    leader: summary(1, 0x1_0000_0005),
                })],
                "{why}"
            );
        }
    }

    #[test]
    fn an_ack_of_an_epoch_already_accepted_is_not_counted() {
        let (mut l, _) = leader(1, 3, 1, summary(1, 5));
        l.step(1, INIT_LIMIT_MS, info(2, 1));
        let again = LeaderInput::AckEpoch {
            from: 2,
            current_epoch: None,
            last_zxid: 5,
        };
        assert!(l.step(2, INIT_LIMIT_MS, again).is_empty());
        assert!(matches!(
            l.step(3, INIT_LIMIT_MS, ack(3, 1, 5))[..],
            [LeaderAction::Established { .. }]
        ));
    }

    #[test]
    fn each_wait_is_bounded_by_init_limit() {
        let (mut l, _) = leader(1, 3, 1, summary(1, 5));
        assert!(l
            .step(INIT_LIMIT_MS - 1, INIT_LIMIT_MS, LeaderInput::Tick)
            .is_empty());
        assert_eq!(
            l.step(INIT_LIMIT_MS, INIT_LIMIT_MS, LeaderInput::Tick),
            vec![LeaderAction::StepDown(StepDownReason::Timeout)]
        );
        // The ACKEPOCH wait starts when the epoch is fixed.
        let (mut l, _) = leader(1, 3, 1, summary(1, 5));
        l.step(15_000, INIT_LIMIT_MS, info(2, 1));
        assert!(l.step(30_000, INIT_LIMIT_MS, LeaderInput::Tick).is_empty());
        assert_eq!(
            l.step(35_000, INIT_LIMIT_MS, LeaderInput::Tick),
            vec![LeaderAction::StepDown(StepDownReason::Timeout)]
        );
    }

    #[test]
    fn a_learner_persists_a_newer_epoch_before_acking_and_refuses_an_older_one() {
        let own = summary(3, 0x3_0000_0002);
        assert_eq!(
            learner_on_leader_info(5, 4, own),
            vec![
                LearnerAction::PersistAcceptedEpoch(5),
                LearnerAction::SendAckEpoch {
                    current_epoch: Some(3),
                    last_zxid: 0x3_0000_0002
                },
            ]
        );
        assert_eq!(
            learner_on_leader_info(4, 4, own),
            vec![LearnerAction::SendAckEpoch {
                current_epoch: None,
                last_zxid: 0x3_0000_0002
            }]
        );
        assert_eq!(
            learner_on_leader_info(3, 4, own),
            vec![LearnerAction::Refuse {
                leader_epoch: 3,
                accepted_epoch: 4
            }]
        );
    }
}
