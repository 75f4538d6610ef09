//! Seeded deterministic simulation of fast leader election
//! (`ferrokeeper::zab::election`): 3, 5 or 7 voters and up to two observers
//! with random last zxids and epochs, a network with random delays, lost
//! messages, partitions of any shape and crashes with restarts, each server
//! ticking at its own rate. Invariants are checked after every step; after
//! the faults stop, one leader must be established (every voter following
//! it, every observer observing it) within a bounded simulated time. With no
//! faults at all, the leader is the voter with the best (epoch, zxid, sid).
//!
//! `ZAB_SIM_SEEDS=N` runs seeds 0..N (default 1,000); `ZAB_SIM_SEED=S` replays
//! one seed, printing its trace. A failing seed prints the command replaying it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use ferrokeeper::zab::election::{
    Action, Election, Input, Notification, ServerState, Sid, Timing, Vote,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Faults happen only before this; afterwards the network is whole.
const FAULTS_END_MS: u64 = 5_000;
/// After the faults stop, an established leader within this long. Bounded by
/// the resend interval a long partition can grow to (doubling from 200 ms).
const SETTLE_MS: u64 = 30_000;
/// A follower whose leader is gone, or a leader without a quorum, gives up
/// after this long (standing in for ZAB's sync timeouts).
const LOST_LEADER_MS: u64 = 300;

#[derive(Debug)]
enum Event {
    Deliver {
        from: Sid,
        to: Sid,
        msg: Notification,
        incarnation: u32,
    },
    Tick(Sid),
    Crash(Sid),
    Restart(Sid),
    Partition(Vec<(Sid, Sid)>),
    Heal,
}

struct Server {
    election: Election,
    last_zxid: i64,
    current_epoch: i64,
    up: bool,
    /// Messages to an earlier incarnation are lost with it.
    incarnation: u32,
    tick_ms: u64,
    /// Since when its decision has lacked a leader (or a leader its quorum).
    unsupported_since_ms: Option<u64>,
    last_round: i64,
    /// (leader, peerEpoch) of every notification each voter sent it since
    /// its election last started.
    heard: BTreeMap<Sid, BTreeSet<(Sid, i64)>>,
}

struct Sim {
    rng: StdRng,
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    servers: BTreeMap<Sid, Server>,
    voters: BTreeSet<Sid>,
    cut: BTreeSet<(Sid, Sid)>,
    faults: bool,
    trace: bool,
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let voter_count = [3, 5, 7][rng.gen_range(0..3)];
        let observers = rng.gen_range(0..=2);
        let voters: BTreeSet<Sid> = (1..=voter_count).collect();
        let faults = !seed.is_multiple_of(4); // every fourth seed runs fault-free
        let mut sim = Sim {
            rng,
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            servers: BTreeMap::new(),
            voters: voters.clone(),
            cut: BTreeSet::new(),
            faults,
            trace,
        };
        for sid in 1..=voter_count + observers {
            // A server may have accepted a newer epoch than its last txn's.
            let zxid_epoch = sim.rng.gen_range(0..3);
            let server = Server {
                election: Election::new(sid, voters.clone(), Timing::default()),
                last_zxid: (zxid_epoch << 32) | sim.rng.gen_range(0..4),
                current_epoch: zxid_epoch + sim.rng.gen_range(0..2),
                up: false, // until its first start below
                incarnation: 0,
                tick_ms: sim.rng.gen_range(5..60),
                unsupported_since_ms: None,
                last_round: 0,
                heard: BTreeMap::new(),
            };
            sim.servers.insert(sid, server);
            let start_ms = sim.rng.gen_range(0..100);
            sim.schedule(start_ms, Event::Restart(sid));
        }
        if faults {
            sim.schedule_faults();
        }
        sim
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.events.push(Some(event));
        self.queue
            .push(Reverse((at_ms, self.seq, self.events.len() - 1)));
        self.seq += 1;
    }

    fn schedule_faults(&mut self) {
        let sids: Vec<Sid> = self.servers.keys().copied().collect();
        for _ in 0..self.rng.gen_range(1..6) {
            let at = self.rng.gen_range(0..FAULTS_END_MS);
            match self.rng.gen_range(0..3) {
                0 => {
                    let sid = sids[self.rng.gen_range(0..sids.len())];
                    self.schedule(at, Event::Crash(sid));
                    let back = (at + self.rng.gen_range(50..2_000)).min(FAULTS_END_MS);
                    self.schedule(back, Event::Restart(sid));
                }
                _ => {
                    let mut links = Vec::new();
                    for &a in &sids {
                        for &b in &sids {
                            if a < b && self.rng.gen_bool(0.3) {
                                links.push((a, b));
                            }
                        }
                    }
                    self.schedule(at, Event::Partition(links));
                    let heal = (at + self.rng.gen_range(50..3_000)).min(FAULTS_END_MS);
                    self.schedule(heal, Event::Heal);
                }
            }
        }
        self.schedule(FAULTS_END_MS, Event::Heal);
    }

    fn connected(&self, a: Sid, b: Sid) -> bool {
        let up = |s: Sid| self.servers[&s].up;
        a == b || (up(a) && up(b) && !self.cut.contains(&(a.min(b), a.max(b))))
    }

    fn run(&mut self, seed: u64) {
        let end_ms = FAULTS_END_MS + SETTLE_MS;
        while let Some(Reverse((at, _, index))) = self.queue.pop() {
            if at > end_ms {
                break;
            }
            self.now_ms = at;
            let event = self.events[index].take().expect("each event runs once");
            if self.trace {
                println!("{at:>6} ms {event:?}");
            }
            self.handle(event);
            self.check_invariants(seed);
            if self.now_ms > FAULTS_END_MS && self.established().is_some() {
                return self.check_outcome(seed);
            }
        }
        panic!(
            "seed {seed}: no established leader {SETTLE_MS} ms after the faults stopped; \
             states {:?}\nreplay: ZAB_SIM_SEED={seed} cargo test --release --test zab_election_sim -- --nocapture",
            self.states()
        );
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver {
                from,
                to,
                msg,
                incarnation,
            } => {
                if self.connected(from, to) && self.servers[&to].incarnation == incarnation {
                    if self.voters.contains(&from) {
                        let heard = &mut self.servers.get_mut(&to).expect("server").heard;
                        let vote = (msg.vote.leader, msg.vote.peer_epoch);
                        heard.entry(from).or_default().insert(vote);
                    }
                    self.step(to, Input::Received { from, msg });
                }
            }
            Event::Tick(sid) => {
                if self.servers[&sid].up {
                    self.step(sid, Input::Tick);
                    self.watch_leader(sid);
                    let tick = self.servers[&sid].tick_ms;
                    self.schedule(self.now_ms + tick, Event::Tick(sid));
                }
            }
            Event::Crash(sid) => {
                self.servers.get_mut(&sid).expect("server").up = false;
                self.tell_peers(sid, Input::PeerDown(sid));
            }
            Event::Restart(sid) => self.restart(sid),
            Event::Partition(links) => {
                for (a, b) in links {
                    if self.cut.insert((a, b)) {
                        self.step_if_up(a, Input::PeerDown(b));
                        self.step_if_up(b, Input::PeerDown(a));
                    }
                }
            }
            Event::Heal => {
                for (a, b) in std::mem::take(&mut self.cut) {
                    self.step_if_up(a, Input::PeerUp(b));
                    self.step_if_up(b, Input::PeerUp(a));
                }
            }
        }
    }

    fn restart(&mut self, sid: Sid) {
        let voters = self.voters.clone();
        let server = self.servers.get_mut(&sid).expect("server");
        if server.up {
            return; // a restart scheduled for a server that is running
        }
        server.up = true;
        server.incarnation += 1;
        server.election = Election::new(sid, voters, Timing::default());
        server.last_round = 0;
        server.unsupported_since_ms = None;
        server.heard.clear();
        let (zxid, epoch, tick) = (server.last_zxid, server.current_epoch, server.tick_ms);
        let actions = server.election.start(self.now_ms, zxid, epoch);
        self.perform(sid, actions);
        self.tell_peers(sid, Input::PeerUp(sid));
        self.schedule(self.now_ms + tick, Event::Tick(sid));
    }

    fn tell_peers(&mut self, sid: Sid, input: Input) {
        let peers: Vec<Sid> = self.servers.keys().copied().filter(|&p| p != sid).collect();
        for peer in peers {
            if !self.cut.contains(&(sid.min(peer), sid.max(peer))) {
                self.step_if_up(peer, input);
            }
        }
    }

    fn step_if_up(&mut self, sid: Sid, input: Input) {
        if self.servers[&sid].up {
            self.step(sid, input);
        }
    }

    fn step(&mut self, sid: Sid, input: Input) {
        let now = self.now_ms;
        let actions = self
            .servers
            .get_mut(&sid)
            .expect("server")
            .election
            .step(now, input);
        self.perform(sid, actions);
    }

    fn perform(&mut self, sid: Sid, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, msg } => {
                    if !self.servers.contains_key(&to) {
                        continue;
                    }
                    // A connection drop loses what was in flight.
                    if self.faults && self.now_ms < FAULTS_END_MS && self.rng.gen_bool(0.05) {
                        continue;
                    }
                    let delay = if to == sid {
                        0
                    } else {
                        self.rng.gen_range(0..40)
                    };
                    let incarnation = self.servers[&to].incarnation;
                    self.schedule(
                        self.now_ms + delay,
                        Event::Deliver {
                            from: sid,
                            to,
                            msg,
                            incarnation,
                        },
                    );
                }
                Action::Decided { state, vote } => {
                    if self.trace {
                        println!("         server {sid} decided {state:?} {vote:?}");
                    }
                    self.check_decision_has_a_quorum(sid, vote);
                }
            }
        }
    }

    /// Stands in for ZAB: a follower whose leader is not leading it (down,
    /// cut off, or decided otherwise), or a leader without a quorum of
    /// followers, starts a new election after LOST_LEADER_MS.
    fn watch_leader(&mut self, sid: Sid) {
        let state = self.servers[&sid].election.state();
        let supported = match state {
            ServerState::Looking => true,
            ServerState::Leading => self.followers_of(sid) * 2 > self.voters.len(),
            ServerState::Following | ServerState::Observing => {
                let leader = self.servers[&sid].election.current_vote().leader;
                self.connected(sid, leader)
                    && self.servers[&leader].election.state() == ServerState::Leading
                    && self.servers[&leader].election.current_vote().leader == leader
            }
        };
        let now = self.now_ms;
        let server = self.servers.get_mut(&sid).expect("server");
        if supported {
            server.unsupported_since_ms = None;
            return;
        }
        let since = *server.unsupported_since_ms.get_or_insert(now);
        if now - since >= LOST_LEADER_MS {
            server.unsupported_since_ms = None;
            server.heard.clear();
            let (zxid, epoch) = (server.last_zxid, server.current_epoch);
            let actions = server.election.start(now, zxid, epoch);
            self.perform(sid, actions);
        }
    }

    /// A decision stands on a quorum of voters that named the same leader
    /// and epoch to the deciding server during this election (not
    /// necessarily in their latest notification: like ZooKeeper, a server
    /// waiting out finalizeWait drops votes that are not better).
    fn check_decision_has_a_quorum(&self, sid: Sid, vote: Vote) {
        let backing = self.servers[&sid]
            .heard
            .values()
            .filter(|votes| votes.contains(&(vote.leader, vote.peer_epoch)))
            .count();
        assert!(
            backing * 2 > self.voters.len(),
            "server {sid} decided {vote:?} on {backing} of {} voters' notifications",
            self.voters.len()
        );
    }

    /// Voters (itself included) that follow `leader` and reach it.
    fn followers_of(&self, leader: Sid) -> usize {
        self.voters
            .iter()
            .filter(|&&v| {
                let e = &self.servers[&v].election;
                self.connected(v, leader)
                    && e.state() != ServerState::Looking
                    && e.current_vote().leader == leader
            })
            .count()
    }

    fn check_invariants(&mut self, seed: u64) {
        let voters = self.voters.clone();
        for (&sid, server) in self.servers.iter_mut() {
            if !server.up {
                continue;
            }
            let e = &server.election;
            let vote = e.current_vote();
            let ok = match e.state() {
                ServerState::Looking => true,
                ServerState::Leading => vote.leader == sid && voters.contains(&sid),
                ServerState::Following => {
                    vote.leader != sid && voters.contains(&sid) && voters.contains(&vote.leader)
                }
                ServerState::Observing => !voters.contains(&sid) && voters.contains(&vote.leader),
            };
            assert!(
                ok,
                "seed {seed}: server {sid} is {:?} with {vote:?}",
                e.state()
            );
            // A LOOKING server's round only grows; joining an established
            // leader adopts the leader's round, which may be smaller
            // (FastLeaderElection's outofelection path).
            if e.state() == ServerState::Looking {
                assert!(
                    e.round() >= server.last_round,
                    "seed {seed}: server {sid}'s round went back"
                );
            }
            server.last_round = e.round();
        }
    }

    /// The one leader every server follows or observes, if there is one.
    fn established(&self) -> Option<Sid> {
        let leaders: Vec<Sid> = self
            .servers
            .iter()
            .filter(|(_, s)| s.up && s.election.state() == ServerState::Leading)
            .map(|(&sid, _)| sid)
            .collect();
        let [leader] = leaders[..] else { return None };
        let all_follow = self.servers.iter().all(|(&sid, s)| {
            let expected = if sid == leader {
                ServerState::Leading
            } else if self.voters.contains(&sid) {
                ServerState::Following
            } else {
                ServerState::Observing
            };
            s.election.state() == expected && s.election.current_vote().leader == leader
        });
        all_follow.then_some(leader)
    }

    fn check_outcome(&self, seed: u64) {
        let leader = self.established().expect("established");
        if self.faults {
            return;
        }
        let best = self
            .voters
            .iter()
            .max_by_key(|&&v| {
                let s = &self.servers[&v];
                (s.current_epoch, s.last_zxid, v)
            })
            .copied()
            .expect("voters");
        assert_eq!(
            leader,
            best,
            "seed {seed}: without faults the best vote must win ({:?})",
            self.states()
        );
    }

    fn states(&self) -> Vec<(Sid, ServerState, Vote, i64)> {
        self.servers
            .iter()
            .map(|(&sid, s)| {
                (
                    sid,
                    s.election.state(),
                    s.election.current_vote(),
                    s.election.round(),
                )
            })
            .collect()
    }
}

#[test]
fn seeded_elections_converge_on_one_leader() {
    if let Ok(seed) = std::env::var("ZAB_SIM_SEED") {
        let seed: u64 = seed.parse().expect("ZAB_SIM_SEED is a number");
        Sim::new(seed, true).run(seed);
        return;
    }
    let seeds: u64 = std::env::var("ZAB_SIM_SEEDS")
        .map(|n| n.parse().expect("ZAB_SIM_SEEDS is a number"))
        .unwrap_or(1_000);
    for seed in 0..seeds {
        Sim::new(seed, false).run(seed);
    }
}
