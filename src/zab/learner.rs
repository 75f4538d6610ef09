//! A follower's or an observer's side of ZAB after an election, as a pure
//! state machine: discovery (FOLLOWERINFO/OBSERVERINFO, LEADERINFO,
//! ACKEPOCH), sync (DIFF/TRUNC/SNAP, queued proposals, NEWLEADER,
//! UPTODATE) and broadcast (PROPOSAL, ACK after fsync, COMMIT in order,
//! INFORM), after ZooKeeper's `Learner`, `Follower` and `Observer`
//! (`shared/docs/zk-quorum.md` sections 3.3, 3.6, 3.7 and 6).
//!
//! The ordering at NEWLEADER is the one that closes ZOOKEEPER-3911, 4643,
//! 4646 and 4685: every proposal received during sync is durable first,
//! then currentEpoch is written, then NEWLEADER is acknowledged, and only
//! after UPTODATE are proposals acknowledged — each after its own fsync.
//!
//! Actions are performed in order. [`Action::PersistAcceptedEpoch`],
//! [`Action::PersistCurrentEpoch`], [`Action::Truncate`] and
//! [`Action::LoadSnapshot`] are durable before anything later in the same
//! list is performed; [`Action::Append`] is not (group commit): the runtime
//! reports [`Input::Durable`] when the log is synced.
//!
//! At start the runtime's log must be durable and its memory equal to its
//! log (it votes with its last logged zxid).

use std::collections::VecDeque;

use super::discovery::{learner_on_leader_info, LearnerAction, Summary};
use super::leader::LearnerKind;
use super::quorum_wire::{counter_of, epoch_of, make_zxid};
use crate::limits::quorum::LEARNER_PENDING_PROPOSALS_MAX;

/// The learner's timing, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// initLimit x tickTime: the leader's silence allowed until UPTODATE.
    pub init_limit_ms: u64,
    /// syncLimit x tickTime: the leader's silence allowed after it.
    pub sync_limit_ms: u64,
}

/// A packet from the leader (payloads travel beside it in the runtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    LeaderInfo {
        new_epoch: i64,
    },
    Diff {
        zxid: i64,
    },
    Trunc {
        zxid: i64,
    },
    /// SNAP; the runtime has loaded the snapshot stream that follows.
    Snap {
        zxid: i64,
    },
    Proposal {
        zxid: i64,
    },
    Commit {
        zxid: i64,
    },
    Inform {
        zxid: i64,
    },
    NewLeader {
        zxid: i64,
    },
    UpToDate,
    Ping,
    /// The local log is durable up to this zxid.
    Durable {
        zxid: i64,
    },
    Tick,
}

/// A packet to the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
    /// FOLLOWERINFO or OBSERVERINFO with `acceptedEpoch << 32`.
    LearnerInfo {
        kind: LearnerKind,
        accepted_epoch: i64,
    },
    AckEpoch {
        current_epoch: Option<i64>,
        last_zxid: i64,
    },
    Ack {
        zxid: i64,
    },
    /// The PING echo (the runtime adds the session touches).
    Ping,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Packet),
    /// Durably, before anything later in the list.
    PersistAcceptedEpoch(i64),
    /// Durably, before anything later in the list.
    PersistCurrentEpoch(i64),
    /// Cut the log after `zxid`, delete every snapshot above it
    /// (ZOOKEEPER-4837), and reload memory from what is left; durably, and
    /// all or nothing (a half-done truncation must not be served, ZOOKEEPER-5094).
    Truncate {
        zxid: i64,
    },
    /// Make the received snapshot (at `zxid`) this server's durable state,
    /// replacing its log.
    LoadSnapshot {
        zxid: i64,
    },
    /// Log this txn (group commit; report [`Input::Durable`]).
    Append {
        zxid: i64,
    },
    /// Apply every logged txn up to and including `zxid`, in order.
    Apply {
        zxid: i64,
    },
    /// Synced: serve clients.
    Serve,
    /// Leave this leader: close the connection, back to election.
    Leave(LeaveReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// The leader proposes an epoch older than one this server accepted.
    StaleEpoch {
        leader_epoch: i64,
        accepted_epoch: i64,
    },
    /// A packet out of ZAB's order; Apache calls `System.exit` for some.
    Protocol(&'static str),
    /// A proposal's zxid does not continue the log (ZOOKEEPER-4925's check).
    Discontinuous { last_zxid: i64, zxid: i64 },
    /// A COMMIT that does not match the oldest pending proposal.
    CommitMismatch { expected: Option<i64>, got: i64 },
    /// More pending proposals than `LEARNER_PENDING_PROPOSALS_MAX`.
    TooManyPending,
    /// Nothing from the leader within the limit.
    LeaderSilent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitLeaderInfo,
    AwaitSyncStart,
    /// DIFF/TRUNC/SNAP taken; collecting the history.
    Syncing,
    /// NEWLEADER received; its ACK waits for the log to be durable.
    AwaitDurable {
        new_epoch: i64,
    },
    /// NEWLEADER acknowledged; waiting for UPTODATE.
    AwaitUpToDate {
        new_epoch: i64,
    },
    Broadcast,
    Left,
}

/// One learner's time under one leader.
pub struct Learner {
    kind: LearnerKind,
    timing: Timing,
    accepted_epoch: i64,
    current_epoch: i64,
    phase: Phase,
    last_logged: i64,
    durable_zxid: i64,
    last_applied: i64,
    /// Logged proposals not yet committed (participants), oldest first.
    pending: VecDeque<i64>,
    /// Logged proposals not yet acknowledged, oldest first.
    unacked: VecDeque<i64>,
    last_heard_ms: u64,
}

impl Learner {
    /// Connected to the leader: returns the FOLLOWERINFO/OBSERVERINFO to send.
    /// `last_logged` is this server's durable, applied log end.
    pub fn new(
        kind: LearnerKind,
        timing: Timing,
        accepted_epoch: i64,
        current_epoch: i64,
        last_logged: i64,
        now_ms: u64,
    ) -> (Learner, Vec<Action>) {
        let learner = Learner {
            kind,
            timing,
            accepted_epoch,
            current_epoch,
            phase: Phase::AwaitLeaderInfo,
            last_logged,
            durable_zxid: last_logged,
            last_applied: last_logged,
            pending: VecDeque::new(),
            unacked: VecDeque::new(),
            last_heard_ms: now_ms,
        };
        let hello = Action::Send(Packet::LearnerInfo {
            kind,
            accepted_epoch,
        });
        (learner, vec![hello])
    }

    pub fn is_serving(&self) -> bool {
        self.phase == Phase::Broadcast
    }

    pub fn has_left(&self) -> bool {
        self.phase == Phase::Left
    }

    pub fn last_logged(&self) -> i64 {
        self.last_logged
    }

    pub fn last_applied(&self) -> i64 {
        self.last_applied
    }

    pub fn accepted_epoch(&self) -> i64 {
        self.accepted_epoch
    }

    pub fn current_epoch(&self) -> i64 {
        self.current_epoch
    }

    pub fn step(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Left {
            return out;
        }
        if !matches!(input, Input::Durable { .. } | Input::Tick) {
            self.last_heard_ms = now_ms;
        }
        let result = match input {
            Input::LeaderInfo { new_epoch } => self.on_leader_info(new_epoch, &mut out),
            Input::Diff { zxid } => self.on_sync_start(SyncStart::Diff, zxid, &mut out),
            Input::Trunc { zxid } => self.on_sync_start(SyncStart::Trunc, zxid, &mut out),
            Input::Snap { zxid } => self.on_sync_start(SyncStart::Snap, zxid, &mut out),
            Input::Proposal { zxid } => self.on_proposal(zxid, &mut out),
            Input::Commit { zxid } => self.on_commit(zxid, &mut out),
            Input::Inform { zxid } => self.on_inform(zxid, &mut out),
            Input::NewLeader { zxid } => self.on_new_leader(zxid, &mut out),
            Input::UpToDate => self.on_up_to_date(&mut out),
            Input::Ping => {
                // ZooKeeper ignores PINGs until UPTODATE.
                if self.phase == Phase::Broadcast {
                    out.push(Action::Send(Packet::Ping));
                }
                Ok(())
            }
            Input::Durable { zxid } => {
                self.on_durable(zxid, &mut out);
                Ok(())
            }
            Input::Tick => self.on_tick(now_ms),
        };
        if let Err(reason) = result {
            self.phase = Phase::Left;
            out.push(Action::Leave(reason));
        }
        out
    }

    fn on_leader_info(&mut self, new_epoch: i64, out: &mut Vec<Action>) -> Result<(), LeaveReason> {
        if self.phase != Phase::AwaitLeaderInfo {
            return Err(LeaveReason::Protocol("LEADERINFO out of order"));
        }
        let summary = Summary {
            current_epoch: self.current_epoch,
            last_zxid: self.last_logged,
        };
        for action in learner_on_leader_info(new_epoch, self.accepted_epoch, summary) {
            match action {
                LearnerAction::PersistAcceptedEpoch(e) => {
                    self.accepted_epoch = e;
                    out.push(Action::PersistAcceptedEpoch(e));
                }
                LearnerAction::SendAckEpoch {
                    current_epoch,
                    last_zxid,
                } => out.push(Action::Send(Packet::AckEpoch {
                    current_epoch,
                    last_zxid,
                })),
                LearnerAction::Refuse {
                    leader_epoch,
                    accepted_epoch,
                } => {
                    return Err(LeaveReason::StaleEpoch {
                        leader_epoch,
                        accepted_epoch,
                    })
                }
            }
        }
        self.phase = Phase::AwaitSyncStart;
        Ok(())
    }

    fn on_sync_start(
        &mut self,
        start: SyncStart,
        zxid: i64,
        out: &mut Vec<Action>,
    ) -> Result<(), LeaveReason> {
        if self.phase != Phase::AwaitSyncStart {
            // Apache exits (13) on a bad first sync packet; leaving is enough.
            return Err(LeaveReason::Protocol("DIFF/TRUNC/SNAP out of order"));
        }
        match start {
            // Everything logged is in the leader's history: it is committed.
            SyncStart::Diff => {
                if self.last_applied < self.last_logged {
                    out.push(Action::Apply {
                        zxid: self.last_logged,
                    });
                }
            }
            SyncStart::Trunc => {
                if zxid > self.last_logged {
                    return Err(LeaveReason::Protocol("TRUNC above the log's end"));
                }
                out.push(Action::Truncate { zxid });
                self.durable_zxid = zxid;
                self.last_logged = zxid;
            }
            SyncStart::Snap => {
                out.push(Action::LoadSnapshot { zxid });
                self.durable_zxid = zxid;
                self.last_logged = zxid;
            }
        }
        self.last_applied = self.last_logged;
        self.phase = Phase::Syncing;
        Ok(())
    }

    fn syncing(&self) -> bool {
        matches!(
            self.phase,
            Phase::Syncing | Phase::AwaitDurable { .. } | Phase::AwaitUpToDate { .. }
        )
    }

    /// A txn continues the log if it is the next of the same epoch, or
    /// opens a newer epoch (ZooKeeper 3.9.4's `enforceContinuousProposal`).
    fn check_continues(&self, zxid: i64) -> Result<(), LeaveReason> {
        let last = self.last_logged;
        let next_in_epoch = epoch_of(zxid) == epoch_of(last) && zxid == last + 1;
        let newer_epoch = epoch_of(zxid) > epoch_of(last) && counter_of(zxid) >= 1;
        if next_in_epoch || newer_epoch {
            Ok(())
        } else {
            Err(LeaveReason::Discontinuous {
                last_zxid: last,
                zxid,
            })
        }
    }

    fn log(&mut self, zxid: i64, out: &mut Vec<Action>) -> Result<(), LeaveReason> {
        self.check_continues(zxid)?;
        // Committed proposals leave `pending` but wait in `unacked` for this
        // server's own fsync: both queues are bounded.
        if self.pending.len().max(self.unacked.len()) >= LEARNER_PENDING_PROPOSALS_MAX {
            return Err(LeaveReason::TooManyPending);
        }
        self.last_logged = zxid;
        out.push(Action::Append { zxid });
        Ok(())
    }

    fn on_proposal(&mut self, zxid: i64, out: &mut Vec<Action>) -> Result<(), LeaveReason> {
        if self.kind == LearnerKind::Observer && self.phase == Phase::Broadcast {
            // `Observer.processPacket` ignores live PROPOSALs (it gets INFORMs).
            return Ok(());
        }
        if !(self.syncing() || self.phase == Phase::Broadcast) {
            return Err(LeaveReason::Protocol("PROPOSAL before the sync started"));
        }
        self.log(zxid, out)?;
        self.pending.push_back(zxid);
        if self.kind == LearnerKind::Participant {
            self.unacked.push_back(zxid);
        }
        if self.phase == Phase::Broadcast {
            self.ack_durable(out);
        }
        Ok(())
    }

    fn on_commit(&mut self, zxid: i64, out: &mut Vec<Action>) -> Result<(), LeaveReason> {
        if self.kind == LearnerKind::Observer && self.phase == Phase::Broadcast {
            return Ok(());
        }
        if !(self.syncing() || self.phase == Phase::Broadcast) {
            return Err(LeaveReason::Protocol("COMMIT before the sync started"));
        }
        let expected = self.pending.front().copied();
        if expected != Some(zxid) {
            // Apache exits (12); the safe thing is to re-sync.
            return Err(LeaveReason::CommitMismatch {
                expected,
                got: zxid,
            });
        }
        self.pending.pop_front();
        if self.syncing() {
            // Part of the committed history: the leader wants no ACK for it.
            self.unacked.retain(|&z| z != zxid);
        }
        self.last_applied = zxid;
        out.push(Action::Apply { zxid });
        Ok(())
    }

    fn on_inform(&mut self, zxid: i64, out: &mut Vec<Action>) -> Result<(), LeaveReason> {
        if self.kind != LearnerKind::Observer {
            return Err(LeaveReason::Protocol("INFORM to a participant"));
        }
        if !(self.syncing() || self.phase == Phase::Broadcast) {
            return Err(LeaveReason::Protocol("INFORM before the sync started"));
        }
        if !self.pending.is_empty() {
            // Sync proposals are always followed by their COMMITs first.
            return Err(LeaveReason::Protocol("INFORM with proposals pending"));
        }
        self.log(zxid, out)?;
        self.last_applied = zxid;
        out.push(Action::Apply { zxid });
        Ok(())
    }

    fn on_new_leader(&mut self, zxid: i64, out: &mut Vec<Action>) -> Result<(), LeaveReason> {
        if self.phase != Phase::Syncing {
            return Err(LeaveReason::Protocol("NEWLEADER out of order"));
        }
        let new_epoch = epoch_of(zxid);
        if counter_of(zxid) != 0 || new_epoch != self.accepted_epoch {
            return Err(LeaveReason::Protocol("NEWLEADER for another epoch"));
        }
        self.phase = Phase::AwaitDurable { new_epoch };
        self.ack_new_leader_when_durable(out);
        Ok(())
    }

    /// ZOOKEEPER-4646/4643/3911: the history received must be durable
    /// before currentEpoch is written, and both before the ACK.
    fn ack_new_leader_when_durable(&mut self, out: &mut Vec<Action>) {
        let Phase::AwaitDurable { new_epoch } = self.phase else {
            return;
        };
        if self.durable_zxid < self.last_logged {
            return;
        }
        self.current_epoch = new_epoch;
        out.push(Action::PersistCurrentEpoch(new_epoch));
        out.push(Action::Send(Packet::Ack {
            zxid: make_zxid(new_epoch, 0),
        }));
        self.phase = Phase::AwaitUpToDate { new_epoch };
    }

    fn on_up_to_date(&mut self, out: &mut Vec<Action>) -> Result<(), LeaveReason> {
        let Phase::AwaitUpToDate { new_epoch } = self.phase else {
            return Err(LeaveReason::Protocol("UPTODATE before the NEWLEADER ACK"));
        };
        self.phase = Phase::Broadcast;
        out.push(Action::Send(Packet::Ack {
            zxid: make_zxid(new_epoch, 0),
        }));
        out.push(Action::Serve);
        self.ack_durable(out);
        Ok(())
    }

    fn on_durable(&mut self, zxid: i64, out: &mut Vec<Action>) {
        self.durable_zxid = self.durable_zxid.max(zxid.min(self.last_logged));
        match self.phase {
            Phase::AwaitDurable { .. } => self.ack_new_leader_when_durable(out),
            Phase::Broadcast => self.ack_durable(out),
            _ => {}
        }
    }

    /// ACKs, in order, every logged proposal that is durable.
    fn ack_durable(&mut self, out: &mut Vec<Action>) {
        while let Some(&zxid) = self.unacked.front() {
            if zxid > self.durable_zxid {
                break;
            }
            self.unacked.pop_front();
            out.push(Action::Send(Packet::Ack { zxid }));
        }
    }

    fn on_tick(&mut self, now_ms: u64) -> Result<(), LeaveReason> {
        let limit_ms = match self.phase {
            Phase::Broadcast => self.timing.sync_limit_ms,
            _ => self.timing.init_limit_ms,
        };
        if now_ms.saturating_sub(self.last_heard_ms) > limit_ms {
            return Err(LeaveReason::LeaderSilent);
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum SyncStart {
    Diff,
    Trunc,
    Snap,
}
