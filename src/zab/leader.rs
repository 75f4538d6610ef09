//! The leader's side of ZAB after an election, as a pure state machine:
//! discovery (through [`LeaderDiscovery`]), the sync of each learner, the
//! NEWLEADER barrier, and broadcast (proposals, ACK counting, commits in
//! zxid order), with ZooKeeper's liveness rules (`Leader.lead`,
//! `LearnerHandler`, `shared/docs/zk-quorum.md` sections 3.3-3.7 and 6).
//!
//! Inputs are packets from learners, the leader's own log becoming durable,
//! and ticks; outputs are [`Action`]s the runtime performs in order. An
//! action that persists ([`Action::PersistAcceptedEpoch`],
//! [`Action::PersistCurrentEpoch`]) must be durable before any later action
//! of the same list is performed. [`Action::Append`] is not such a barrier:
//! the leader's own ACK counts only once the runtime reports
//! [`Input::Durable`] (group commit), so a write is acknowledged only once a
//! quorum of voters — the leader's fdatasync included — holds it.
//!
//! The history handed to [`Leader::new`] must be durable and applied: the
//! runtime makes its log durable and its memory equal to its log before it
//! votes (`shared/docs/zk-quorum.md` 9(b)3).
//!
//! Payloads never pass through here: proposals are named by zxid, and the
//! runtime reads their bytes from its log when it performs a send.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::discovery::{self, LeaderDiscovery, StepDownReason, Summary};
use super::election::Sid;
use super::quorum_wire::{counter_of, make_zxid};
use super::sync::{plan_sync, History, SyncPlan};
use crate::limits::quorum::{COMMITTED_HISTORY_TXNS_MAX, OUTSTANDING_PROPOSALS_MAX};

/// The highest counter ZooKeeper lets a leader use: at it, the leader steps
/// down so that the next epoch starts at counter 0 (ZOOKEEPER-1277).
pub const COUNTER_MAX: i64 = 0xffff_ffff;

/// A participant (votes, ACKs proposals) or an observer (gets INFORMs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnerKind {
    Participant,
    Observer,
}

/// The leader's timing, in ms (ZooKeeper's ticks times `tickTime`).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// initLimit x tickTime: each discovery wait, the NEWLEADER barrier, and
    /// a syncing learner's silence.
    pub init_limit_ms: u64,
    /// syncLimit x tickTime: a synced learner's silence, or its oldest
    /// unacknowledged proposal's age, before it is dropped.
    pub sync_limit_ms: u64,
    /// tickTime / 2: how often synced learners are pinged.
    pub ping_interval_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// FOLLOWERINFO or OBSERVERINFO.
    LearnerInfo {
        from: Sid,
        kind: LearnerKind,
        accepted_epoch: i64,
    },
    /// ACKEPOCH; `current_epoch` None for the -1 of a learner that had
    /// accepted the new epoch already.
    AckEpoch {
        from: Sid,
        current_epoch: Option<i64>,
        last_zxid: i64,
    },
    /// ACK: of NEWLEADER or UPTODATE (counter 0) or of a proposal.
    Ack {
        from: Sid,
        zxid: i64,
    },
    /// Any other packet from the learner (a PING reply): it is alive.
    Heard {
        from: Sid,
    },
    /// The learner's connection closed.
    LearnerGone {
        from: Sid,
    },
    /// The leader's own log is durable up to this zxid.
    Durable {
        zxid: i64,
    },
    Tick,
}

/// A packet the leader sends (payloads are looked up by zxid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
    LeaderInfo {
        new_epoch: i64,
    },
    /// The opening of a sync (DIFF, TRUNC or SNAP), PROPOSAL+COMMIT pairs
    /// for the committed txns in `(plan.send_after, plan.last_committed]`,
    /// then a PROPOSAL without COMMIT for each logged txn in
    /// `(plan.last_committed, proposals_to]` (a participant's share of the
    /// outstanding proposals; an observer gets none and hears of them by
    /// INFORM). Live packets queued after it follow it on the connection.
    Sync {
        plan: SyncPlan,
        proposals_to: i64,
    },
    NewLeader {
        new_epoch: i64,
    },
    UpToDate,
    Proposal {
        zxid: i64,
    },
    Commit {
        zxid: i64,
    },
    /// An observer's committed txn (the proposal's bytes).
    Inform {
        zxid: i64,
    },
    Ping,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Durably, before anything later in the list is performed.
    PersistAcceptedEpoch(i64),
    /// Durably, before anything later in the list is performed.
    PersistCurrentEpoch(i64),
    Send {
        to: Sid,
        packet: Packet,
    },
    /// Log this proposal (group commit; report [`Input::Durable`]).
    Append {
        zxid: i64,
    },
    /// A quorum holds the history or this proposal: apply up to `zxid` and
    /// answer its clients.
    Commit {
        zxid: i64,
    },
    /// A quorum acknowledged NEWLEADER: the leader serves writes.
    Activate {
        epoch: i64,
    },
    /// Close this learner's connection.
    Drop {
        sid: Sid,
        reason: DropReason,
    },
    /// Stop leading: back to election. Nothing else follows.
    StepDown(LeaderStepDown),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Silent for longer than its limit.
    Silent,
    /// Its oldest unacknowledged proposal is older than syncLimit.
    Lagging,
    /// A packet out of ZAB's order (for example a proposal's ACK before the
    /// NEWLEADER ACK).
    OutOfOrder(&'static str),
    /// A second connection claimed this sid.
    Replaced,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderStepDown {
    Discovery(StepDownReason),
    /// No quorum acknowledged NEWLEADER within initLimit.
    NewLeaderTimeout,
    /// Fewer than a quorum of voters are synced and alive.
    LostQuorum,
    /// The epoch's counter is used up (ZOOKEEPER-1277).
    CounterExhausted,
}

/// Why [`Leader::propose`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Not (or no longer) an active leader: hold the write or fail it.
    NotActive,
    /// `OUTSTANDING_PROPOSALS_MAX` are in flight: apply backpressure.
    Full,
    /// The epoch's counter is used up (ZOOKEEPER-1277): the leader has
    /// stepped down; go back to election.
    CounterExhausted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LearnerPhase {
    /// Connected, LEADERINFO sent or pending; no ACKEPOCH yet.
    Discovering,
    /// Sync and NEWLEADER queued; its ACK is the next packet expected.
    Syncing,
    /// NEWLEADER acknowledged; UPTODATE not yet sent (leader not active).
    NewLeaderAcked,
    /// UPTODATE sent: live broadcast.
    UpToDate,
}

struct LearnerSlot {
    kind: LearnerKind,
    phase: LearnerPhase,
    last_zxid: Option<i64>,
    deadline_ms: u64,
    /// Highest proposal zxid it acknowledged.
    acked_zxid: i64,
}

struct Outstanding {
    acks: BTreeSet<Sid>,
    proposed_ms: u64,
}

/// One leadership, from the election's decision to stepping down.
pub struct Leader {
    me: Sid,
    voters: BTreeSet<Sid>,
    timing: Timing,
    discovery: LeaderDiscovery,
    /// Set once a quorum acknowledged the new epoch.
    epoch: Option<i64>,
    active: bool,
    stepped_down: bool,
    /// NEWLEADER barrier deadline once the epoch is established.
    activate_deadline_ms: u64,
    learners: BTreeMap<Sid, LearnerSlot>,
    newleader_acks: BTreeSet<Sid>,
    /// Retained committed zxids after `history_base`, for DIFF.
    history: VecDeque<i64>,
    history_base: i64,
    last_committed: i64,
    last_proposed: i64,
    durable_zxid: i64,
    outstanding: BTreeMap<i64, Outstanding>,
    next_ping_ms: u64,
    force_snapshot: bool,
}

impl Leader {
    /// Starts leading. `history` is this server's durable, applied log
    /// after `history_base` (ascending zxids); `accepted_epoch` and
    /// `current_epoch` are its persisted epochs.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: Sid,
        voters: BTreeSet<Sid>,
        timing: Timing,
        accepted_epoch: i64,
        current_epoch: i64,
        history_base: i64,
        history: &[i64],
        now_ms: u64,
    ) -> (Leader, Vec<Action>) {
        let last_zxid = history.last().copied().unwrap_or(history_base);
        let summary = Summary {
            current_epoch,
            last_zxid,
        };
        let (discovery, first) = LeaderDiscovery::new(
            me,
            voters.clone(),
            accepted_epoch,
            summary,
            now_ms,
            timing.init_limit_ms,
        );
        let mut leader = Leader {
            me,
            voters,
            timing,
            discovery,
            epoch: None,
            active: false,
            stepped_down: false,
            activate_deadline_ms: u64::MAX,
            learners: BTreeMap::new(),
            newleader_acks: BTreeSet::new(),
            history: VecDeque::new(),
            history_base,
            last_committed: last_zxid,
            last_proposed: last_zxid,
            durable_zxid: last_zxid,
            outstanding: BTreeMap::new(),
            next_ping_ms: now_ms,
            force_snapshot: false,
        };
        for &zxid in history {
            leader.retain_committed(zxid);
        }
        let mut out = Vec::new();
        leader.discovery_actions(now_ms, first, &mut out);
        (leader, out)
    }

    /// `zookeeper.forceSnapshotSync`: every learner gets a SNAP.
    pub fn force_snapshot_sync(&mut self, on: bool) {
        self.force_snapshot = on;
    }

    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    pub fn is_active(&self) -> bool {
        self.active && !self.stepped_down
    }

    pub fn last_committed(&self) -> i64 {
        self.last_committed
    }

    pub fn last_proposed(&self) -> i64 {
        self.last_proposed
    }

    /// Outstanding (proposed, not committed) proposals.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Synced voters besides the leader (`zk_synced_followers`).
    pub fn synced_followers(&self) -> usize {
        self.count_learners(LearnerKind::Participant)
    }

    /// Synced observers (`zk_synced_observers`).
    pub fn synced_observers(&self) -> usize {
        self.count_learners(LearnerKind::Observer)
    }

    /// The synced observers' ids (the `observers` command lists them).
    pub fn synced_observer_sids(&self) -> impl Iterator<Item = Sid> + '_ {
        self.learners
            .iter()
            .filter(|(_, l)| l.kind == LearnerKind::Observer && l.phase == LearnerPhase::UpToDate)
            .map(|(sid, _)| *sid)
    }

    fn count_learners(&self, kind: LearnerKind) -> usize {
        self.learners
            .values()
            .filter(|l| l.kind == kind && l.phase == LearnerPhase::UpToDate)
            .count()
    }

    /// Proposes a new txn: on success its zxid, and the actions that send
    /// it to the participants and log it.
    pub fn propose(&mut self, now_ms: u64) -> Result<(i64, Vec<Action>), ProposeError> {
        let Some(epoch) = self.epoch.filter(|_| self.is_active()) else {
            return Err(ProposeError::NotActive);
        };
        if self.outstanding.len() >= OUTSTANDING_PROPOSALS_MAX {
            return Err(ProposeError::Full);
        }
        let counter = counter_of(self.last_proposed) + 1;
        if counter >= COUNTER_MAX {
            self.stepped_down = true;
            self.active = false;
            return Err(ProposeError::CounterExhausted);
        }
        let zxid = make_zxid(epoch, counter);
        self.last_proposed = zxid;
        self.outstanding.insert(
            zxid,
            Outstanding {
                acks: BTreeSet::new(),
                proposed_ms: now_ms,
            },
        );
        let mut out = Vec::new();
        for (&sid, slot) in &self.learners {
            if slot.kind == LearnerKind::Participant && slot.phase != LearnerPhase::Discovering {
                out.push(Action::Send {
                    to: sid,
                    packet: Packet::Proposal { zxid },
                });
            }
        }
        out.push(Action::Append { zxid });
        Ok((zxid, out))
    }

    pub fn step(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stepped_down {
            return out;
        }
        match input {
            Input::LearnerInfo {
                from,
                kind,
                accepted_epoch,
            } => self.on_learner_info(now_ms, from, kind, accepted_epoch, &mut out),
            Input::AckEpoch {
                from,
                current_epoch,
                last_zxid,
            } => self.on_ack_epoch(now_ms, from, current_epoch, last_zxid, &mut out),
            Input::Ack { from, zxid } => self.on_ack(now_ms, from, zxid, &mut out),
            Input::Heard { from } => self.refresh(now_ms, from),
            Input::LearnerGone { from } => {
                self.learners.remove(&from);
                self.forget(from);
            }
            Input::Durable { zxid } => {
                self.durable_zxid = self.durable_zxid.max(zxid);
                let me = self.me;
                for (_, o) in self.outstanding.range_mut(..=zxid) {
                    o.acks.insert(me);
                }
                self.try_commit(&mut out);
            }
            Input::Tick => self.on_tick(now_ms, &mut out),
        }
        out
    }

    fn on_learner_info(
        &mut self,
        now_ms: u64,
        from: Sid,
        kind: LearnerKind,
        accepted_epoch: i64,
        out: &mut Vec<Action>,
    ) {
        if from == self.me {
            out.push(Action::Drop {
                sid: from,
                reason: DropReason::OutOfOrder("a learner claims the leader's own sid"),
            });
            return;
        }
        // A participant entry must name a voter: an unlisted server may only observe.
        let kind = if self.voters.contains(&from) {
            kind
        } else {
            LearnerKind::Observer
        };
        if self.learners.contains_key(&from) {
            out.push(Action::Drop {
                sid: from,
                reason: DropReason::Replaced,
            });
            self.forget(from);
        }
        self.learners.insert(
            from,
            LearnerSlot {
                kind,
                phase: LearnerPhase::Discovering,
                last_zxid: None,
                deadline_ms: now_ms + self.timing.init_limit_ms,
                acked_zxid: 0,
            },
        );
        let accepted_epoch = if kind == LearnerKind::Participant {
            accepted_epoch
        } else {
            // An observer's epoch neither counts toward nor raises the new one.
            -1
        };
        let actions = self.discovery.step(
            now_ms,
            self.timing.init_limit_ms,
            discovery::LeaderInput::LearnerInfo {
                from,
                accepted_epoch,
            },
        );
        self.discovery_actions(now_ms, actions, out);
    }

    fn on_ack_epoch(
        &mut self,
        now_ms: u64,
        from: Sid,
        current_epoch: Option<i64>,
        last_zxid: i64,
        out: &mut Vec<Action>,
    ) {
        let Some(slot) = self.learners.get_mut(&from) else {
            return;
        };
        if slot.phase != LearnerPhase::Discovering {
            out.push(Action::Drop {
                sid: from,
                reason: DropReason::OutOfOrder("a second ACKEPOCH"),
            });
            self.learners.remove(&from);
            return;
        }
        slot.last_zxid = Some(last_zxid);
        slot.deadline_ms = now_ms + self.timing.init_limit_ms;
        let observer = slot.kind == LearnerKind::Observer;
        if self.epoch.is_some() {
            self.start_sync(now_ms, from, out);
            return;
        }
        // An observer's ACKEPOCH must not count toward the voters' quorum.
        let current_epoch = if observer { None } else { current_epoch };
        let actions = self.discovery.step(
            now_ms,
            self.timing.init_limit_ms,
            discovery::LeaderInput::AckEpoch {
                from,
                current_epoch,
                last_zxid,
            },
        );
        self.discovery_actions(now_ms, actions, out);
    }

    fn discovery_actions(
        &mut self,
        now_ms: u64,
        actions: Vec<discovery::LeaderAction>,
        out: &mut Vec<Action>,
    ) {
        for action in actions {
            match action {
                discovery::LeaderAction::PersistAcceptedEpoch(e) => {
                    out.push(Action::PersistAcceptedEpoch(e))
                }
                discovery::LeaderAction::SendLeaderInfo { to, new_epoch } => {
                    if to != self.me {
                        out.push(Action::Send {
                            to,
                            packet: Packet::LeaderInfo { new_epoch },
                        });
                    }
                }
                discovery::LeaderAction::Established { new_epoch, .. } => {
                    self.establish(now_ms, new_epoch, out)
                }
                discovery::LeaderAction::StepDown(reason) => {
                    out.extend(self.step_down(LeaderStepDown::Discovery(reason)));
                    return;
                }
            }
        }
    }

    /// A quorum acknowledged the epoch: this history is the epoch's start.
    fn establish(&mut self, now_ms: u64, epoch: i64, out: &mut Vec<Action>) {
        self.epoch = Some(epoch);
        self.activate_deadline_ms = now_ms + self.timing.init_limit_ms;
        // `Leader.lead` writes currentEpoch once the epoch is acknowledged;
        // its own history is durable, so it counts itself for NEWLEADER.
        out.push(Action::PersistCurrentEpoch(epoch));
        self.newleader_acks.insert(self.me);
        let waiting: Vec<Sid> = self
            .learners
            .iter()
            .filter(|(_, s)| s.phase == LearnerPhase::Discovering && s.last_zxid.is_some())
            .map(|(&sid, _)| sid)
            .collect();
        for sid in waiting {
            self.start_sync(now_ms, sid, out);
        }
        self.try_activate(out);
    }

    fn start_sync(&mut self, now_ms: u64, sid: Sid, out: &mut Vec<Action>) {
        let Some(epoch) = self.epoch else { return };
        let Some(peer_zxid) = self.learners.get(&sid).map(|s| s.last_zxid.unwrap_or(0)) else {
            return;
        };
        let proposing = self.active.then_some((epoch, self.last_proposed));
        let plan = plan_sync(
            peer_zxid,
            History {
                base_zxid: self.history_base,
                committed: self.history.make_contiguous(),
                proposing,
            },
            self.force_snapshot,
        );
        let Some(slot) = self.learners.get_mut(&sid) else {
            return;
        };
        let proposals_to = match slot.kind {
            LearnerKind::Participant => self.last_proposed,
            LearnerKind::Observer => self.last_committed,
        };
        slot.phase = LearnerPhase::Syncing;
        slot.deadline_ms = now_ms + self.timing.init_limit_ms;
        out.push(Action::Send {
            to: sid,
            packet: Packet::Sync { plan, proposals_to },
        });
        out.push(Action::Send {
            to: sid,
            packet: Packet::NewLeader { new_epoch: epoch },
        });
    }

    fn on_ack(&mut self, now_ms: u64, from: Sid, zxid: i64, out: &mut Vec<Action>) {
        let Some(epoch) = self.epoch else { return };
        let Some(slot) = self.learners.get_mut(&from) else {
            return;
        };
        if counter_of(zxid) == 0 {
            if slot.phase == LearnerPhase::Syncing && zxid == make_zxid(epoch, 0) {
                slot.deadline_ms = now_ms + self.timing.sync_limit_ms;
                if self.active {
                    slot.phase = LearnerPhase::UpToDate;
                    out.push(Action::Send {
                        to: from,
                        packet: Packet::UpToDate,
                    });
                } else {
                    slot.phase = LearnerPhase::NewLeaderAcked;
                    if slot.kind == LearnerKind::Participant {
                        self.newleader_acks.insert(from);
                    }
                    self.try_activate(out);
                }
            } else if slot.phase == LearnerPhase::Syncing {
                // ZOOKEEPER-4685: anything but the NEWLEADER ACK first is out of order.
                self.drop_learner(from, DropReason::OutOfOrder("ACK before NEWLEADER's"), out);
            } else {
                slot.deadline_ms = now_ms + self.timing.sync_limit_ms;
            }
            return;
        }
        if slot.phase == LearnerPhase::Syncing {
            self.drop_learner(from, DropReason::OutOfOrder("ACK before NEWLEADER's"), out);
            return;
        }
        slot.deadline_ms = now_ms + self.timing.sync_limit_ms;
        if slot.kind != LearnerKind::Participant {
            return;
        }
        slot.acked_zxid = slot.acked_zxid.max(zxid);
        // ACKs of committed or unknown zxids are ignored.
        if let Some(o) = self.outstanding.get_mut(&zxid) {
            o.acks.insert(from);
            self.try_commit(out);
        }
    }

    fn try_activate(&mut self, out: &mut Vec<Action>) {
        if self.active || !self.is_quorum(&self.newleader_acks) {
            return;
        }
        let Some(epoch) = self.epoch else { return };
        self.active = true;
        // The whole history is now held by a quorum: it is committed.
        out.push(Action::Commit {
            zxid: self.last_committed,
        });
        out.push(Action::Activate { epoch });
        self.last_proposed = make_zxid(epoch, 0).max(self.last_proposed);
        for (&sid, slot) in self.learners.iter_mut() {
            if slot.phase == LearnerPhase::NewLeaderAcked {
                slot.phase = LearnerPhase::UpToDate;
                out.push(Action::Send {
                    to: sid,
                    packet: Packet::UpToDate,
                });
            }
        }
    }

    fn is_quorum(&self, sids: &BTreeSet<Sid>) -> bool {
        sids.iter().filter(|s| self.voters.contains(s)).count() * 2 > self.voters.len()
    }

    /// Commits outstanding proposals in zxid order while the oldest has a quorum.
    fn try_commit(&mut self, out: &mut Vec<Action>) {
        while let Some((&zxid, oldest)) = self.outstanding.first_key_value() {
            if !self.is_quorum(&oldest.acks) {
                break;
            }
            self.outstanding.remove(&zxid);
            self.last_committed = zxid;
            self.retain_committed(zxid);
            out.push(Action::Commit { zxid });
            for (&sid, slot) in &self.learners {
                let packet = match (slot.kind, slot.phase) {
                    (_, LearnerPhase::Discovering) => continue,
                    (LearnerKind::Participant, _) => Packet::Commit { zxid },
                    (LearnerKind::Observer, _) => Packet::Inform { zxid },
                };
                out.push(Action::Send { to: sid, packet });
            }
        }
    }

    fn retain_committed(&mut self, zxid: i64) {
        self.history.push_back(zxid);
        if self.history.len() > COMMITTED_HISTORY_TXNS_MAX {
            if let Some(oldest) = self.history.pop_front() {
                self.history_base = oldest;
            }
        }
    }

    fn refresh(&mut self, now_ms: u64, from: Sid) {
        let (init, sync) = (self.timing.init_limit_ms, self.timing.sync_limit_ms);
        if let Some(slot) = self.learners.get_mut(&from) {
            slot.deadline_ms = now_ms
                + match slot.phase {
                    LearnerPhase::Discovering | LearnerPhase::Syncing => init,
                    LearnerPhase::NewLeaderAcked | LearnerPhase::UpToDate => sync,
                };
        }
    }

    fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        if self.epoch.is_none() {
            let actions = self.discovery.step(
                now_ms,
                self.timing.init_limit_ms,
                discovery::LeaderInput::Tick,
            );
            self.discovery_actions(now_ms, actions, out);
            return;
        }
        if !self.active && now_ms >= self.activate_deadline_ms {
            out.extend(self.step_down(LeaderStepDown::NewLeaderTimeout));
            return;
        }
        let oldest_unacked = |acked: i64| {
            self.outstanding
                .range(acked + 1..)
                .next()
                .map(|(_, o)| o.proposed_ms)
        };
        let mut dropped = Vec::new();
        for (&sid, slot) in &self.learners {
            if now_ms >= slot.deadline_ms {
                dropped.push((sid, DropReason::Silent));
            } else if slot.kind == LearnerKind::Participant && slot.phase == LearnerPhase::UpToDate
            {
                if let Some(proposed_ms) = oldest_unacked(slot.acked_zxid) {
                    if now_ms.saturating_sub(proposed_ms) > self.timing.sync_limit_ms {
                        dropped.push((sid, DropReason::Lagging));
                    }
                }
            }
        }
        for (sid, reason) in dropped {
            self.drop_learner(sid, reason, out);
        }
        if self.active {
            let mut synced: BTreeSet<Sid> = self
                .learners
                .iter()
                .filter(|(_, s)| s.phase == LearnerPhase::UpToDate)
                .map(|(&sid, _)| sid)
                .collect();
            synced.insert(self.me);
            if !self.is_quorum(&synced) {
                out.extend(self.step_down(LeaderStepDown::LostQuorum));
                return;
            }
        }
        if now_ms >= self.next_ping_ms {
            self.next_ping_ms = now_ms + self.timing.ping_interval_ms;
            for (&sid, slot) in &self.learners {
                if slot.phase == LearnerPhase::UpToDate {
                    out.push(Action::Send {
                        to: sid,
                        packet: Packet::Ping,
                    });
                }
            }
        }
    }

    /// A learner that acknowledged NEWLEADER stays counted for the barrier:
    /// its ACK said the history is durable on it, and that stays true.
    fn drop_learner(&mut self, sid: Sid, reason: DropReason, out: &mut Vec<Action>) {
        self.learners.remove(&sid);
        self.forget(sid);
        out.push(Action::Drop { sid, reason });
    }

    /// A learner's connection ended. Its ACKs of outstanding proposals no
    /// longer count: when it comes back its sync may cut them from its log
    /// (TRUNC to the last commit) and it ACKs them again once re-logged.
    /// Counting the old ACKs would commit a txn fewer than a quorum hold.
    fn forget(&mut self, sid: Sid) {
        self.discovery.learner_gone(sid);
        for o in self.outstanding.values_mut() {
            o.acks.remove(&sid);
        }
    }

    fn step_down(&mut self, reason: LeaderStepDown) -> Vec<Action> {
        self.stepped_down = true;
        self.active = false;
        vec![Action::StepDown(reason)]
    }

    /// The runtime no longer holds the txns up to `base` (its memory bound):
    /// a learner behind it gets a SNAP.
    pub fn trim_history(&mut self, base: i64) {
        while self.history.front().is_some_and(|&z| z <= base) {
            self.history.pop_front();
        }
        self.history_base = self.history_base.max(base);
    }

    /// The highest zxid of this leader's own log that is durable.
    pub fn durable_zxid(&self) -> i64 {
        self.durable_zxid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        init_limit_ms: 10_000,
        sync_limit_ms: 5_000,
        ping_interval_ms: 1_000,
    };

    /// Leader 1 of three voters, active at epoch 2 with learner 2 synced.
    fn active() -> Leader {
        let (mut l, _) = Leader::new(1, [1, 2, 3].into(), TIMING, 1, 1, 0, &[], 0);
        l.step(
            0,
            Input::LearnerInfo {
                from: 2,
                kind: LearnerKind::Participant,
                accepted_epoch: 1,
            },
        );
        l.step(
            0,
            Input::AckEpoch {
                from: 2,
                current_epoch: Some(1),
                last_zxid: 0,
            },
        );
        l.step(
            0,
            Input::Ack {
                from: 2,
                zxid: make_zxid(2, 0),
            },
        );
        assert!(l.is_active());
        l
    }

    #[test]
    fn zookeeper_1277_the_leader_steps_down_before_the_counter_wraps() {
        let mut l = active();
        l.last_proposed = make_zxid(2, COUNTER_MAX - 2);
        let (zxid, _) = l.propose(0).expect("one counter left");
        assert_eq!(counter_of(zxid), COUNTER_MAX - 1);
        assert_eq!(l.propose(0), Err(ProposeError::CounterExhausted));
        assert!(!l.is_active(), "a new epoch must start at counter 0");
        assert_eq!(l.propose(0), Err(ProposeError::NotActive));
    }

    #[test]
    fn proposals_beyond_the_outstanding_bound_are_refused() {
        let mut l = active();
        for _ in 0..OUTSTANDING_PROPOSALS_MAX {
            l.propose(0).expect("room");
        }
        assert_eq!(l.propose(0), Err(ProposeError::Full));
        let first = make_zxid(2, 1);
        l.step(0, Input::Durable { zxid: first });
        l.step(
            0,
            Input::Ack {
                from: 2,
                zxid: first,
            },
        );
        assert!(l.propose(0).is_ok(), "a commit frees room");
    }
}
