//! Fast leader election (ZooKeeper's `FastLeaderElection`) as a pure state
//! machine, in the style of etcd raft's `Step`/`Ready`: [`Election::step`]
//! takes an input (a notification received, a tick, a peer's connection
//! going down or up) with the current time, and returns the actions to take
//! (notifications to send, the decision). No sockets, clocks or threads.
//!
//! It follows ZooKeeper's rules, so a Ferrokeeper server and Apache servers
//! elect the same leader from the same votes (facts from `FastLeaderElection`
//! and `Vote` in 3.9; see `shared/docs/zk-quorum.md` section 2):
//! - votes are ordered by (peerEpoch, zxid, sid); a non-voter never wins;
//! - a LOOKING server adopts a newer round, ignores an older one, adopts a
//!   better vote within its round, and decides once a quorum of the round's
//!   votes equals its proposal and no better vote arrives for `finalize_wait`;
//! - FOLLOWING/LEADING notifications let a server join an established
//!   leader: a quorum of them naming the same (leader, peerEpoch), the
//!   leader's own LEADING notification among them;
//! - a decided server answers LOOKING senders with its decided vote.
//!
//! Deliberate changes (issue 10's fast election):
//! - when every voter that is not known to be down has sent a vote of this
//!   round equal to the proposal, it decides at once instead of waiting
//!   `finalize_wait`. A voter is known down when its election connection
//!   failed and dialling it was refused, or when it is the leader the ZAB
//!   layer just lost ([`Input::LeaderLost`]), until it is heard from again.
//!   Deciding without a voter's vote is what the finalize wait's timeout
//!   does anyway: safe, because the best vote of any quorum has every
//!   committed txn (a quorum acked each one); the wait only helps pick the
//!   best of several possible leaders;
//! - a LOOKING voter answers a worse vote of its round with its own, so a
//!   peer that missed its notification learns it at once, not at a resend.

use std::collections::{BTreeMap, BTreeSet};

pub use super::election_wire::ServerState;
use super::election_wire::{self, NOTIFICATION_VERSION};

/// A server id (`myid`); ZooKeeper sends it as a long.
pub type Sid = i64;

/// A proposed leader with the epoch and last zxid it was proposed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub leader: Sid,
    pub zxid: i64,
    pub peer_epoch: i64,
}

impl Vote {
    /// A non-voter's initial vote: below every real one.
    pub const NONE: Vote = Vote {
        leader: i64::MIN,
        zxid: i64::MIN,
        peer_epoch: i64::MIN,
    };

    fn order_key(&self) -> (i64, i64, Sid) {
        (self.peer_epoch, self.zxid, self.leader)
    }
}

/// What one notification carries (the sender is the connection's sid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    pub state: ServerState,
    pub vote: Vote,
    /// The sender's election round (`logicalclock`, "electionEpoch").
    pub round: i64,
}

impl Notification {
    /// The election's view of a notification read off the wire (its format
    /// version and config text are the runtime's business).
    pub fn from_wire(n: &election_wire::Notification) -> Notification {
        Notification {
            state: n.state,
            vote: Vote {
                leader: n.leader,
                zxid: n.zxid,
                peer_epoch: n.peer_epoch,
            },
            round: n.election_epoch,
        }
    }

    /// The notification to send, in the current format with `config`
    /// (`QuorumVerifier.toString()` bytes).
    pub fn to_wire(&self, config: Vec<u8>) -> election_wire::Notification {
        election_wire::Notification {
            state: self.state,
            leader: self.vote.leader,
            zxid: self.vote.zxid,
            election_epoch: self.round,
            peer_epoch: self.vote.peer_epoch,
            version: NOTIFICATION_VERSION,
            config,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A notification from another server (or our own, looped back).
    Received {
        from: Sid,
        msg: Notification,
    },
    /// Time passed: resends when nothing arrived for a while, ends the
    /// finalize wait.
    Tick,
    /// The election connection to `sid` failed or came back.
    PeerDown(Sid),
    PeerUp(Sid),
    /// The ZAB layer lost its leader `sid` (its link closed or went silent):
    /// not waited for, like a peer down, until it is heard from again. A
    /// paused or cut-off leader keeps its election connection open, so only
    /// this tells the new round not to wait the finalize wait for its vote.
    LeaderLost(Sid),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Send {
        to: Sid,
        msg: Notification,
    },
    /// The election is over: lead, follow or observe `vote.leader`.
    Decided {
        state: ServerState,
        vote: Vote,
    },
}

/// Timing, in ms, as ZooKeeper names it.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `finalizeWait`: how long a quorum's agreement must stand.
    pub finalize_wait_ms: u64,
    /// `minNotificationInterval`: resend after this long without input...
    pub min_notification_interval_ms: u64,
    /// ...doubling up to `maxNotificationInterval`.
    pub max_notification_interval_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            finalize_wait_ms: 200,
            min_notification_interval_ms: 200,
            max_notification_interval_ms: 60_000,
        }
    }
}

/// A vote as stored from a notification (`Vote` with its state and round).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stored {
    vote: Vote,
    round: i64,
    state: ServerState,
}

impl Stored {
    /// `Vote.equals`: all fields when either side is LOOKING, otherwise
    /// only (leader, peerEpoch): an established leader's followers report
    /// different zxids (ZOOKEEPER-1805/1732).
    fn matches(&self, other: &Stored) -> bool {
        if self.state == ServerState::Looking || other.state == ServerState::Looking {
            self.vote == other.vote && self.round == other.round
        } else {
            self.vote.leader == other.vote.leader && self.vote.peer_epoch == other.vote.peer_epoch
        }
    }
}

/// A LOOKING notification as `recvset` keeps it.
fn looking_stored(msg: Notification) -> Stored {
    Stored {
        vote: msg.vote,
        round: msg.round,
        state: ServerState::Looking,
    }
}

/// One server's election.
pub struct Election {
    me: Sid,
    voters: BTreeSet<Sid>,
    timing: Timing,
    state: ServerState,
    round: i64,
    initial: Vote,
    proposal: Vote,
    /// Votes of this round (`recvset`).
    votes: BTreeMap<Sid, Stored>,
    /// Votes of servers that are out of the election (`outofelection`).
    settled: BTreeMap<Sid, Stored>,
    down: BTreeSet<Sid>,
    /// Set while a quorum agrees: decide at this time unless a better vote comes.
    finalize_at_ms: Option<u64>,
    resend_at_ms: u64,
    resend_interval_ms: u64,
    decided: Option<Vote>,
}

impl Election {
    /// A server that is not LOOKING yet; `start` begins a round.
    pub fn new(me: Sid, voters: BTreeSet<Sid>, timing: Timing) -> Election {
        Election {
            me,
            voters,
            timing,
            state: ServerState::Looking,
            round: 0,
            initial: Vote::NONE,
            proposal: Vote::NONE,
            votes: BTreeMap::new(),
            settled: BTreeMap::new(),
            down: BTreeSet::new(),
            finalize_at_ms: None,
            resend_at_ms: 0,
            resend_interval_ms: timing.min_notification_interval_ms,
            decided: None,
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn round(&self) -> i64 {
        self.round
    }

    /// The vote this server stands by: its proposal while LOOKING, its
    /// decision after.
    pub fn current_vote(&self) -> Vote {
        self.decided.unwrap_or(self.proposal)
    }

    /// `QuorumPeer.updateElectionVote` (ZOOKEEPER-1732): once the leader
    /// is active (on the leader) or UPTODATE arrived (on a learner), the
    /// decided vote carries the new epoch, so every member of the ensemble
    /// names the same (leader, peerEpoch) to a server that starts up later.
    pub fn update_epoch(&mut self, new_epoch: i64) {
        if let Some(vote) = self.decided.as_mut() {
            vote.peer_epoch = new_epoch;
        }
    }

    fn is_voter(&self, sid: Sid) -> bool {
        self.voters.contains(&sid)
    }

    fn has_quorum(&self, sids: usize) -> bool {
        sids * 2 > self.voters.len()
    }

    /// `lookForLeader`'s start: a new round, voting for itself (a voter) with
    /// its last logged zxid and current epoch.
    pub fn start(&mut self, now_ms: u64, last_zxid: i64, current_epoch: i64) -> Vec<Action> {
        self.state = ServerState::Looking;
        self.decided = None;
        self.round += 1;
        self.initial = if self.is_voter(self.me) {
            Vote {
                leader: self.me,
                zxid: last_zxid,
                peer_epoch: current_epoch,
            }
        } else {
            Vote::NONE
        };
        self.proposal = self.initial;
        self.votes.clear();
        self.settled.clear();
        self.finalize_at_ms = None;
        self.resend_interval_ms = self.timing.min_notification_interval_ms;
        self.resend_at_ms = now_ms + self.resend_interval_ms;
        let mut out = Vec::new();
        self.notify_all(&mut out);
        out
    }

    pub fn step(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Received { from, msg } => self.receive(now_ms, from, msg, &mut out),
            Input::Tick => self.tick(now_ms, &mut out),
            Input::PeerDown(sid) | Input::LeaderLost(sid) => {
                self.down.insert(sid);
                self.try_fast_decision(&mut out);
            }
            Input::PeerUp(sid) => {
                // A new connection's SendWorker re-sends the last message.
                self.down.remove(&sid);
                out.push(Action::Send {
                    to: sid,
                    msg: self.notification(),
                });
            }
        }
        out
    }

    fn notification(&self) -> Notification {
        Notification {
            state: self.state,
            vote: self.current_vote(),
            round: self.round,
        }
    }

    /// To every voter, itself included (ZooKeeper loops its own vote back).
    fn notify_all(&self, out: &mut Vec<Action>) {
        let msg = self.notification();
        out.extend(self.voters.iter().map(|&to| Action::Send { to, msg }));
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        if self.state != ServerState::Looking {
            return;
        }
        if self.finalize_at_ms.is_some_and(|at| now_ms >= at) {
            self.decide(self.proposal, out);
            return;
        }
        if now_ms >= self.resend_at_ms {
            // Nothing decided for a while: say it again, less often each time.
            self.notify_all(out);
            self.resend_interval_ms =
                (self.resend_interval_ms * 2).min(self.timing.max_notification_interval_ms);
            self.resend_at_ms = now_ms + self.resend_interval_ms;
        }
    }

    fn receive(&mut self, now_ms: u64, from: Sid, msg: Notification, out: &mut Vec<Action>) {
        // Heard from: alive after all (a lost leader that was only slow).
        self.down.remove(&from);
        if !self.is_voter(from) {
            // A non-voter (observer) gets our vote at once, never counted.
            if from != self.me {
                out.push(Action::Send {
                    to: from,
                    msg: self.notification(),
                });
            }
            return;
        }
        if self.state != ServerState::Looking {
            // Decided: help a LOOKING voter find the leader (with the round
            // it was decided in, as WorkerReceiver sends getCurrentVote()).
            if msg.state == ServerState::Looking && from != self.me {
                out.push(Action::Send {
                    to: from,
                    msg: self.notification(),
                });
            }
            return;
        }
        if msg.state == ServerState::Looking && msg.round < self.round && from != self.me {
            // An old round: tell it ours.
            out.push(Action::Send {
                to: from,
                msg: self.notification(),
            });
        }
        if !self.is_voter(msg.vote.leader) {
            return; // `validVoter(n.leader)`: a vote for a non-voter counts for nothing
        }
        match msg.state {
            ServerState::Looking => self.receive_looking(now_ms, from, msg, out),
            ServerState::Following | ServerState::Leading => self.receive_settled(from, msg, out),
            ServerState::Observing => {}
        }
    }

    /// A vote beats the proposal (`totalOrderPredicate`).
    fn beats(&self, vote: &Vote, than: &Vote) -> bool {
        self.is_voter(vote.leader) && vote.order_key() > than.order_key()
    }

    fn receive_looking(
        &mut self,
        now_ms: u64,
        from: Sid,
        msg: Notification,
        out: &mut Vec<Action>,
    ) {
        // ZOOKEEPER-261: a server whose database is untrusted (last zxid -1)
        // takes no part, and nobody counts a vote carrying zxid -1.
        if self.initial.zxid == -1 || msg.vote.zxid == -1 {
            return;
        }
        if let Some(at) = self.finalize_at_ms {
            if !self.beats(&msg.vote, &self.proposal) {
                // ZooKeeper drains such notifications while it waits, and
                // each one restarts the wait. One of this round still counts
                // towards deciding at once.
                if msg.round == self.round {
                    self.answer_worse_vote(from, &msg, out);
                    self.votes.insert(from, looking_stored(msg));
                    if self.try_fast_decision(out) {
                        return;
                    }
                }
                self.finalize_at_ms = Some(at.max(now_ms + self.timing.finalize_wait_ms));
                return;
            }
            self.finalize_at_ms = None;
        }
        if msg.round > self.round {
            self.round = msg.round;
            self.votes.clear();
            self.proposal = if self.beats(&msg.vote, &self.initial) {
                msg.vote
            } else {
                self.initial
            };
            self.notify_all(out);
        } else if msg.round < self.round {
            return;
        } else if self.beats(&msg.vote, &self.proposal) {
            self.proposal = msg.vote;
            self.notify_all(out);
        } else {
            self.answer_worse_vote(from, &msg, out);
        }
        self.votes.insert(from, looking_stored(msg));
        let target = self.proposal_stored();
        let agreeing = self.count_matching(&self.votes, &target);
        if self.has_quorum(agreeing) && !self.try_fast_decision(out) {
            self.finalize_at_ms = Some(now_ms + self.timing.finalize_wait_ms);
        }
    }

    /// A voter of this round still proposes a worse vote than ours: tell it ours now.
    /// ZooKeeper sends nothing here, and the sender learns our vote only at its next
    /// resend (200 ms or more), e.g. when our first notification reached it while it
    /// was still following the old leader. One message, and none comes back: the sender
    /// adopts our vote, which then equals ours.
    fn answer_worse_vote(&self, from: Sid, msg: &Notification, out: &mut Vec<Action>) {
        if from != self.me && msg.vote != self.proposal {
            out.push(Action::Send {
                to: from,
                msg: self.notification(),
            });
        }
    }

    fn proposal_stored(&self) -> Stored {
        Stored {
            vote: self.proposal,
            round: self.round,
            state: ServerState::Looking,
        }
    }

    fn count_matching(&self, votes: &BTreeMap<Sid, Stored>, target: &Stored) -> usize {
        votes
            .iter()
            .filter(|(sid, stored)| self.is_voter(**sid) && stored.matches(target))
            .count()
    }

    /// Decides now if every voter not known to be down has voted for the
    /// proposal in this round and they form a quorum: no better vote can come.
    fn try_fast_decision(&mut self, out: &mut Vec<Action>) -> bool {
        if self.state != ServerState::Looking || self.proposal == Vote::NONE {
            return false;
        }
        let target = self.proposal_stored();
        let mut agreeing = 0;
        for sid in &self.voters {
            match self.votes.get(sid) {
                Some(stored) if stored.matches(&target) => agreeing += 1,
                None if self.down.contains(sid) => {}
                _ => return false,
            }
        }
        if !self.has_quorum(agreeing) {
            return false;
        }
        self.decide(self.proposal, out);
        true
    }

    /// A FOLLOWING or LEADING server's vote: join its leader once a quorum
    /// of one of the sets reports it and the leader itself is LEADING.
    fn receive_settled(&mut self, from: Sid, msg: Notification, out: &mut Vec<Action>) {
        let stored = Stored {
            vote: msg.vote,
            round: msg.round,
            state: msg.state,
        };
        if msg.round == self.round {
            self.votes.insert(from, stored);
            if self.has_quorum(self.count_matching(&self.votes, &stored))
                && self.check_leader(&self.votes, msg.vote.leader, msg.round)
            {
                self.decide(msg.vote, out);
                return;
            }
        }
        self.settled.insert(from, stored);
        if self.has_quorum(self.count_matching(&self.settled, &stored))
            && self.check_leader(&self.settled, msg.vote.leader, msg.round)
        {
            self.round = msg.round;
            self.decide(msg.vote, out);
        }
    }

    /// `checkLeader`: the named leader says it is LEADING, or it is this
    /// server and the round is its own.
    fn check_leader(&self, votes: &BTreeMap<Sid, Stored>, leader: Sid, round: i64) -> bool {
        if leader == self.me {
            self.round == round
        } else {
            votes
                .get(&leader)
                .is_some_and(|stored| stored.state == ServerState::Leading)
        }
    }

    fn decide(&mut self, vote: Vote, out: &mut Vec<Action>) {
        self.state = if vote.leader == self.me {
            ServerState::Leading
        } else if self.is_voter(self.me) {
            ServerState::Following
        } else {
            ServerState::Observing
        };
        self.decided = Some(vote);
        self.finalize_at_ms = None;
        out.push(Action::Decided {
            state: self.state,
            vote,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(n: i64) -> BTreeSet<Sid> {
        (1..=n).collect()
    }

    fn looking(leader: Sid, zxid: i64, epoch: i64, round: i64) -> Notification {
        Notification {
            state: ServerState::Looking,
            vote: Vote {
                leader,
                zxid,
                peer_epoch: epoch,
            },
            round,
        }
    }

    fn decided(actions: &[Action]) -> Option<(ServerState, Vote)> {
        actions.iter().find_map(|a| match a {
            Action::Decided { state, vote } => Some((*state, *vote)),
            _ => None,
        })
    }

    /// `e` receives `msg` from `from` at `now_ms`.
    fn hear(e: &mut Election, now_ms: u64, from: Sid, msg: Notification) -> Vec<Action> {
        e.step(now_ms, Input::Received { from, msg })
    }

    #[test]
    fn notifications_go_through_the_wire_format_unchanged() {
        let n = Notification {
            state: ServerState::Following,
            vote: Vote {
                leader: 3,
                zxid: 0x2_0000_0007,
                peer_epoch: 2,
            },
            round: 9,
        };
        let payload =
            election_wire::encode_notification(&n.to_wire(b"version=0".to_vec())).expect("encodes");
        let decoded = election_wire::decode_notification(&payload).expect("decodes");
        assert_eq!(Notification::from_wire(&decoded), n);
        assert_eq!(decoded.config_text(), Some("version=0"));
    }

    #[test]
    fn start_votes_for_itself_to_every_voter() {
        let mut e = Election::new(2, voters(3), Timing::default());
        let out = e.start(0, 0x1_0000_0005, 1);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|a| matches!(a, Action::Send { msg, .. }
            if *msg == looking(2, 0x1_0000_0005, 1, 1))));
    }

    #[test]
    fn the_highest_epoch_then_zxid_then_sid_wins() {
        let e = Election::new(1, voters(3), Timing::default());
        let v = |leader, zxid, peer_epoch| Vote {
            leader,
            zxid,
            peer_epoch,
        };
        assert!(e.beats(&v(1, 0, 2), &v(3, 100, 1)), "epoch first");
        assert!(e.beats(&v(1, 7, 1), &v(3, 6, 1)), "then zxid");
        assert!(e.beats(&v(3, 7, 1), &v(2, 7, 1)), "then sid");
        assert!(!e.beats(&v(9, 7, 9), &v(2, 7, 1)), "a non-voter never wins");
    }

    #[test]
    fn a_quorum_decides_after_the_finalize_wait_unless_a_better_vote_comes() {
        let mut e = Election::new(3, voters(3), Timing::default());
        e.start(0, 10, 1);
        // Its own vote and server 2's adoption of it: a quorum, not everyone.
        assert!(decided(&e.step(
            1,
            Input::Received {
                from: 3,
                msg: looking(3, 10, 1, 1)
            }
        ))
        .is_none());
        assert!(decided(&e.step(
            2,
            Input::Received {
                from: 2,
                msg: looking(3, 10, 1, 1)
            }
        ))
        .is_none());
        assert!(decided(&e.step(150, Input::Tick)).is_none());
        // A worse vote restarts the wait (ZooKeeper drains it).
        e.step(
            190,
            Input::Received {
                from: 1,
                msg: looking(1, 5, 1, 1),
            },
        );
        assert!(decided(&e.step(250, Input::Tick)).is_none());
        let (state, vote) = decided(&e.step(391, Input::Tick)).expect("decides");
        assert_eq!((state, vote.leader), (ServerState::Leading, 3));
    }

    #[test]
    fn when_every_voter_agrees_it_decides_without_waiting() {
        let mut e = Election::new(1, voters(3), Timing::default());
        e.start(0, 5, 1);
        for from in [1, 2] {
            let out = e.step(
                1,
                Input::Received {
                    from,
                    msg: looking(3, 9, 1, 1),
                },
            );
            assert!(decided(&out).is_none());
        }
        let out = e.step(
            2,
            Input::Received {
                from: 3,
                msg: looking(3, 9, 1, 1),
            },
        );
        assert_eq!(decided(&out).map(|d| d.0), Some(ServerState::Following));
    }

    #[test]
    fn a_voter_known_down_is_not_waited_for() {
        let mut e = Election::new(2, voters(3), Timing::default());
        e.start(0, 9, 1);
        e.step(1, Input::PeerDown(1));
        e.step(
            1,
            Input::Received {
                from: 2,
                msg: looking(3, 9, 1, 1),
            },
        );
        let out = e.step(
            2,
            Input::Received {
                from: 3,
                msg: looking(3, 9, 1, 1),
            },
        );
        assert_eq!(
            decided(&out),
            Some((
                ServerState::Following,
                Vote {
                    leader: 3,
                    zxid: 9,
                    peer_epoch: 1
                }
            ))
        );
    }

    #[test]
    fn a_lost_leader_is_not_waited_for_until_it_is_heard_from() {
        // Server 3 led and went silent (paused): its election connection is still up.
        let mut e = Election::new(2, voters(3), Timing::default());
        e.start(0, 9, 1);
        e.step(0, Input::LeaderLost(3));
        hear(&mut e, 1, 2, looking(2, 9, 1, 1));
        let out = hear(&mut e, 1, 1, looking(2, 9, 1, 1));
        assert_eq!(decided(&out).map(|d| d.0), Some(ServerState::Leading));
        // Heard from again, it is waited for in the next round.
        let mut e = Election::new(2, voters(3), Timing::default());
        e.start(0, 9, 1);
        e.step(0, Input::LeaderLost(3));
        hear(&mut e, 0, 3, looking(3, 5, 1, 0));
        hear(&mut e, 1, 2, looking(2, 9, 1, 1));
        let out = hear(&mut e, 1, 1, looking(2, 9, 1, 1));
        assert!(decided(&out).is_none(), "{out:?}");
    }

    #[test]
    fn a_worse_vote_of_the_same_round_is_answered_with_ours() {
        // Server 2 proposes itself in round 1; server 1 missed that notification (it was
        // still following) and proposes itself: 1 hears 2's vote at once, not at a resend.
        let mut e = Election::new(2, voters(3), Timing::default());
        e.start(0, 9, 1);
        let out = hear(&mut e, 1, 1, looking(1, 9, 1, 1));
        assert_eq!(
            out,
            vec![Action::Send {
                to: 1,
                msg: looking(2, 9, 1, 1)
            }]
        );
        // Once it votes as we do, nothing more is sent to it.
        let out = hear(&mut e, 2, 1, looking(2, 9, 1, 1));
        assert!(
            !out.iter().any(|a| matches!(a, Action::Send { .. })),
            "{out:?}"
        );
    }

    #[test]
    fn a_newer_round_is_adopted_and_an_older_one_answered() {
        let mut e = Election::new(1, voters(3), Timing::default());
        e.start(0, 50, 2);
        let out = e.step(
            1,
            Input::Received {
                from: 2,
                msg: looking(2, 10, 1, 7),
            },
        );
        assert_eq!(e.round(), 7);
        // Its own vote (epoch 2) beats the sender's: it keeps proposing itself.
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Send { msg, .. } if *msg == looking(1, 50, 2, 7))));
        let out = e.step(
            2,
            Input::Received {
                from: 3,
                msg: looking(3, 99, 2, 3),
            },
        );
        assert_eq!(
            out,
            vec![Action::Send {
                to: 3,
                msg: looking(1, 50, 2, 7)
            }]
        );
    }

    #[test]
    fn a_newcomer_joins_an_established_leader_only_with_its_leading_notification() {
        let mut e = Election::new(4, voters(5), Timing::default());
        e.start(0, 3, 1);
        let settled = |state| Notification {
            state,
            vote: Vote {
                leader: 2,
                zxid: 0x2_0000_0010,
                peer_epoch: 2,
            },
            round: 5,
        };
        // A quorum (3 of 5) follows server 2, but 2 itself has not said it leads.
        for from in [1, 3, 5] {
            let out = e.step(
                1,
                Input::Received {
                    from,
                    msg: settled(ServerState::Following),
                },
            );
            assert!(decided(&out).is_none(), "no LEADING notification yet");
        }
        let out = e.step(
            2,
            Input::Received {
                from: 2,
                msg: settled(ServerState::Leading),
            },
        );
        assert_eq!(decided(&out).map(|d| d.0), Some(ServerState::Following));
        assert_eq!(e.round(), 5);
    }

    #[test]
    fn a_decided_server_answers_looking_voters_and_observers() {
        let mut e = Election::new(1, voters(3), Timing::default());
        e.start(0, 5, 1);
        e.step(0, Input::PeerDown(3));
        e.step(
            1,
            Input::Received {
                from: 1,
                msg: looking(1, 5, 1, 1),
            },
        );
        assert!(decided(&e.step(
            1,
            Input::Received {
                from: 2,
                msg: looking(1, 5, 1, 1)
            }
        ))
        .is_some());
        let out = e.step(
            2,
            Input::Received {
                from: 3,
                msg: looking(3, 1, 1, 4),
            },
        );
        assert_eq!(
            out,
            vec![Action::Send {
                to: 3,
                msg: Notification {
                    state: ServerState::Leading,
                    vote: Vote {
                        leader: 1,
                        zxid: 5,
                        peer_epoch: 1
                    },
                    round: 1
                }
            }]
        );
        let out = e.step(
            3,
            Input::Received {
                from: 9,
                msg: looking(9, 0, 0, 1),
            },
        );
        assert!(
            matches!(out[..], [Action::Send { to: 9, .. }]),
            "observer answered: {out:?}"
        );
    }

    #[test]
    fn votes_for_non_voters_and_with_zxid_minus_one_count_for_nothing() {
        let mut e = Election::new(1, voters(3), Timing::default());
        e.start(0, 5, 1);
        for (from, msg) in [
            (2, looking(7, 99, 9, 1)), // leader 7 is not a voter
            (2, looking(3, -1, 9, 1)), // ZOOKEEPER-261
            (3, looking(3, -1, 9, 1)),
        ] {
            assert!(e.step(1, Input::Received { from, msg }).is_empty());
        }
        assert_eq!(e.current_vote().leader, 1);
        // A server with zxid -1 ignores LOOKING votes altogether.
        let mut untrusted = Election::new(2, voters(3), Timing::default());
        untrusted.start(0, -1, 0);
        let out = untrusted.step(
            1,
            Input::Received {
                from: 3,
                msg: looking(3, 9, 1, 1),
            },
        );
        assert!(out.is_empty());
        assert_eq!(untrusted.current_vote().leader, 2);
    }

    #[test]
    fn silence_resends_with_a_doubling_interval() {
        let mut e = Election::new(1, voters(3), Timing::default());
        e.start(0, 0, 0);
        assert!(e.step(199, Input::Tick).is_empty());
        assert_eq!(e.step(200, Input::Tick).len(), 3);
        assert!(e.step(599, Input::Tick).is_empty());
        assert_eq!(e.step(600, Input::Tick).len(), 3);
    }
}
