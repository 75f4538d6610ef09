//! Seeded deterministic simulation of a whole ZAB ensemble: fast leader
//! election (`zab::election`), then the leader and learner cores
//! (`zab::leader`, `zab::learner`: discovery, DIFF/TRUNC/SNAP sync,
//! NEWLEADER, broadcast) over a simulated network and simulated disks, with
//! client writes proposed to whichever server leads.
//!
//! Faults: random delays, election messages lost, partitions of any shape
//! (a quorum connection across a cut goes silent but stays open, as a real
//! partition looks), connections dropped, crashes (a disk loses what was not
//! synced) and restarts, each server ticking at its own rate, leaders that
//! retain only part of their history (so lagging learners get SNAPs), and
//! leaders that force SNAP syncs.
//!
//! Invariants, checked as the run goes:
//! - at most one activated leader per epoch;
//! - the committed sequence (every txn a leader committed, i.e. acknowledged
//!   to a client) only grows, and no two commits disagree;
//! - a txn is committed only when a quorum of voters holds it durably;
//! - every activated leader's history holds every txn committed before;
//! - every serving server's applied state is a prefix of the committed sequence;
//! - zxids strictly increase in every log; acceptedEpoch >= currentEpoch;
//! - no learner sees a packet out of ZAB's order from our leader (a protocol
//!   violation is a bug, not a fault);
//! - after the faults stop, one leader is established, every server serves
//!   its committed state and all of them converge within a bounded time.
//!
//! `ZAB_ENSEMBLE_SEEDS=N` runs seeds 0..N (default 1,000; set it high for a
//! soak); `ZAB_ENSEMBLE_SEED=S` replays one seed with its trace. A failing
//! seed prints the command replaying it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use ferrokeeper::zab::election::{self, Election, Notification, ServerState, Sid};
use ferrokeeper::zab::leader::{self, Leader, LearnerKind, Packet as LeaderPacket};
use ferrokeeper::zab::learner::{self, Learner, Packet as LearnerPacket};
use ferrokeeper::zab::sync::SyncKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Faults happen only before this; afterwards the network is whole.
const FAULTS_END_MS: u64 = 4_000;
/// Client writes stop this long after the faults.
const WRITES_END_MS: u64 = FAULTS_END_MS + 500;
/// After the faults stop, convergence within this long (election resends
/// back off to 60 s in theory; in practice a few seconds settle it).
const SETTLE_MS: u64 = 40_000;
const LEADER_TIMING: leader::Timing = leader::Timing {
    init_limit_ms: 400,
    sync_limit_ms: 200,
    ping_interval_ms: 20,
};
const LEARNER_TIMING: learner::Timing = learner::Timing {
    init_limit_ms: 400,
    sync_limit_ms: 200,
};
/// Connection attempts to a decided leader, 50 ms apart, before re-electing
/// (`Learner.connectToLeader` tries 5 times).
const CONNECT_TRIES: u32 = 5;

type Value = u64;
type Entry = (i64, Value);

#[derive(Debug, Clone)]
struct ToLearner {
    input: learner::Input,
    value: Option<Value>,
    snapshot: Option<Vec<Entry>>,
}

#[derive(Debug)]
enum Event {
    Election {
        from: Sid,
        to: Sid,
        msg: Notification,
        incarnation: u32,
    },
    ToLeader {
        conn: usize,
        packet: LearnerPacket,
    },
    ToLearner {
        conn: usize,
        msg: ToLearner,
    },
    /// The connection closed; `to` learns it.
    Closed {
        conn: usize,
        to: Sid,
    },
    Connect {
        learner: Sid,
        leader: Sid,
        role_gen: u64,
        tries_left: u32,
    },
    Flush {
        sid: Sid,
        incarnation: u32,
    },
    Tick {
        sid: Sid,
        incarnation: u32,
    },
    Crash(Sid),
    Restart(Sid),
    Partition(Vec<(Sid, Sid)>),
    DropConnections,
    Heal,
    ClientWrite,
}

#[derive(Default)]
struct Disk {
    log: Vec<Entry>,
    durable_len: usize,
    accepted_epoch: i64,
    current_epoch: i64,
}

impl Disk {
    fn last_zxid(&self) -> i64 {
        self.log.last().map_or(0, |e| e.0)
    }

    fn holds_durably(&self, entry: Entry) -> bool {
        self.log[..self.durable_len]
            .binary_search_by_key(&entry.0, |e| e.0)
            .is_ok_and(|i| self.log[i] == entry)
    }
}

enum Role {
    Down,
    Looking,
    Leading {
        core: Box<Leader>,
        conns: BTreeMap<Sid, usize>,
    },
    Learning {
        core: Option<Learner>,
        leader: Sid,
        conn: Option<usize>,
    },
}

struct Server {
    voter: bool,
    disk: Disk,
    role: Role,
    election: Election,
    incarnation: u32,
    /// Bumped at every role change: stale connection attempts are ignored.
    role_gen: u64,
    tick_ms: u64,
    /// Entries of the log applied to memory.
    applied_len: usize,
    serving: bool,
    flush_scheduled: bool,
}

struct Conn {
    learner: Sid,
    leader: Sid,
    open: bool,
    /// Cut by a partition: open on both ends, nothing delivered.
    silent: bool,
    /// FIFO per direction: the next delivery is never before the last.
    last_to_leader_ms: u64,
    last_to_learner_ms: u64,
}

struct Sim {
    seed: u64,
    rng: StdRng,
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    servers: BTreeMap<Sid, Server>,
    voters: BTreeSet<Sid>,
    conns: Vec<Conn>,
    cut: BTreeSet<(Sid, Sid)>,
    faults: bool,
    trace: bool,
    /// Every txn committed by a leader, in order: what clients were told.
    committed: Vec<Entry>,
    /// epoch -> the leader activated in it.
    activated: BTreeMap<i64, Sid>,
    next_value: Value,
    /// The value of the write being proposed (its Append follows its sends).
    proposing: Option<Entry>,
    /// The payload of the packet being delivered to a learner.
    incoming: Option<ToLearner>,
    stats: Stats,
    /// Crashes still to inject at the moments that matter (see `maybe_crash`).
    targeted_crashes_left: u32,
}

/// What a run exercised, summed over seeds so the test can insist that
/// the simulation reaches the paths it is meant to prove.
#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    writes_proposed: u64,
    committed: u64,
    activations: u64,
    diffs: u64,
    truncs: u64,
    snaps: u64,
    /// Crashes that lost logged but unsynced txns.
    lossy_crashes: u64,
    learners_left: u64,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.writes_proposed += o.writes_proposed;
        self.committed += o.committed;
        self.activations += o.activations;
        self.diffs += o.diffs;
        self.truncs += o.truncs;
        self.snaps += o.snaps;
        self.lossy_crashes += o.lossy_crashes;
        self.learners_left += o.learners_left;
    }
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let voter_count: i64 = [3, 3, 5, 7][rng.gen_range(0..4)];
        let observers: i64 = rng.gen_range(0..=1);
        let voters: BTreeSet<Sid> = (1..=voter_count).collect();
        let faults = !seed.is_multiple_of(4); // every fourth seed runs fault-free
        let mut sim = Sim {
            seed,
            rng,
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            servers: BTreeMap::new(),
            voters: voters.clone(),
            conns: Vec::new(),
            cut: BTreeSet::new(),
            faults,
            trace,
            committed: Vec::new(),
            activated: BTreeMap::new(),
            next_value: 1,
            proposing: None,
            incoming: None,
            stats: Stats::default(),
            targeted_crashes_left: 0,
        };
        if faults {
            sim.targeted_crashes_left = sim.rng.gen_range(0..4);
        }
        for sid in 1..=voter_count + observers {
            let server = Server {
                voter: voters.contains(&sid),
                disk: Disk::default(),
                role: Role::Down,
                election: Election::new(sid, voters.clone(), election::Timing::default()),
                incarnation: 0,
                role_gen: 0,
                tick_ms: sim.rng.gen_range(5..40),
                applied_len: 0,
                serving: false,
                flush_scheduled: false,
            };
            sim.servers.insert(sid, server);
            let start_ms = sim.rng.gen_range(0..100);
            sim.schedule(start_ms, Event::Restart(sid));
        }
        let mut at = 0;
        while at < WRITES_END_MS {
            at += sim.rng.gen_range(1..30);
            sim.schedule(at, Event::ClientWrite);
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
        for _ in 0..self.rng.gen_range(1..10) {
            let at = self.rng.gen_range(0..FAULTS_END_MS);
            match self.rng.gen_range(0..5) {
                0 | 1 => {
                    let sid = sids[self.rng.gen_range(0..sids.len())];
                    self.schedule(at, Event::Crash(sid));
                    let back = (at + self.rng.gen_range(20..1_500)).min(FAULTS_END_MS);
                    self.schedule(back, Event::Restart(sid));
                }
                2 => self.schedule(at, Event::DropConnections),
                _ => {
                    let mut links = Vec::new();
                    if self.rng.gen_bool(0.5) {
                        // Isolate one server from all others.
                        let lone = sids[self.rng.gen_range(0..sids.len())];
                        for &other in &sids {
                            if other != lone {
                                links.push((lone.min(other), lone.max(other)));
                            }
                        }
                    } else {
                        for &a in &sids {
                            for &b in &sids {
                                if a < b && self.rng.gen_bool(0.3) {
                                    links.push((a, b));
                                }
                            }
                        }
                    }
                    self.schedule(at, Event::Partition(links));
                    let heal = (at + self.rng.gen_range(50..2_000)).min(FAULTS_END_MS);
                    self.schedule(heal, Event::Heal);
                }
            }
        }
        self.schedule(FAULTS_END_MS, Event::Heal);
    }

    /// Crashes `sid` within a few ms of a step that persists or
    /// acknowledges something, now and then: the windows between a write
    /// and its fsync, or an fsync and the ACK, are where ZooKeeper's
    /// durability bugs lived (ZOOKEEPER-3911, 4643, 4646), and random crash
    /// times alone rarely land in them.
    fn maybe_crash(&mut self, sid: Sid) {
        if self.targeted_crashes_left == 0
            || self.now_ms >= FAULTS_END_MS
            || !self.rng.gen_bool(0.03)
        {
            return;
        }
        let at = self.now_ms + self.rng.gen_range(0..8);
        if at >= FAULTS_END_MS {
            return; // its restart could not come after it
        }
        self.targeted_crashes_left -= 1;
        self.schedule(at, Event::Crash(sid));
        let back = (at + self.rng.gen_range(20..800)).min(FAULTS_END_MS);
        self.schedule(back, Event::Restart(sid));
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {}: at {} ms: {what}\nstates: {}\nreplay: ZAB_ENSEMBLE_SEED={} cargo test --release --test zab_ensemble_sim -- --nocapture",
            self.seed,
            self.now_ms,
            self.states(),
            self.seed
        );
    }

    fn states(&self) -> String {
        let mut s = String::new();
        for (sid, server) in &self.servers {
            let role = match &server.role {
                Role::Down => "down".to_string(),
                Role::Looking => "looking".to_string(),
                Role::Leading { core, .. } => format!(
                    "leading epoch {:?} active {} committed {:#x}",
                    core.epoch(),
                    core.is_active(),
                    core.last_committed()
                ),
                Role::Learning { core, leader, .. } => format!(
                    "learning from {leader} serving {}",
                    core.as_ref().is_some_and(|c| c.is_serving())
                ),
            };
            s.push_str(&format!(
                "\n  {sid}: {role}; log {} (durable {}, last {:#x}), applied {}, epochs {}/{}",
                server.disk.log.len(),
                server.disk.durable_len,
                server.disk.last_zxid(),
                server.applied_len,
                server.disk.accepted_epoch,
                server.disk.current_epoch
            ));
        }
        s.push_str(&format!("\n  committed: {}", self.committed.len()));
        s
    }

    fn linked(&self, a: Sid, b: Sid) -> bool {
        a == b || !self.cut.contains(&(a.min(b), a.max(b)))
    }

    fn up(&self, sid: Sid) -> bool {
        !matches!(self.servers[&sid].role, Role::Down)
    }

    fn delay(&mut self) -> u64 {
        self.rng.gen_range(0..15)
    }

    // ---------------------------------------------------------------------
    // The run

    fn run(&mut self) {
        let end_ms = FAULTS_END_MS + SETTLE_MS;
        while let Some(Reverse((at, _, index))) = self.queue.pop() {
            if at > end_ms {
                break;
            }
            self.now_ms = at;
            let event = self.events[index].take().expect("each event runs once");
            if self.trace && !matches!(event, Event::Tick { .. } | Event::Flush { .. }) {
                println!("{at:>6} ms {event:?}");
            }
            self.handle(event);
            if self.now_ms > WRITES_END_MS && self.converged() {
                return;
            }
        }
        self.fail(format!(
            "no convergence {SETTLE_MS} ms after the faults stopped"
        ));
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Election {
                from,
                to,
                msg,
                incarnation,
            } => {
                if self.up(from)
                    && self.up(to)
                    && self.linked(from, to)
                    && self.servers[&to].incarnation == incarnation
                {
                    self.step_election(to, election::Input::Received { from, msg });
                }
            }
            Event::ToLeader { conn, packet } => self.deliver_to_leader(conn, packet),
            Event::ToLearner { conn, msg } => self.deliver_to_learner(conn, msg),
            Event::Closed { conn, to } => self.on_closed(conn, to),
            Event::Connect {
                learner,
                leader,
                role_gen,
                tries_left,
            } => self.connect(learner, leader, role_gen, tries_left),
            Event::Flush { sid, incarnation } => self.flush(sid, incarnation),
            Event::Tick { sid, incarnation } => {
                if self.up(sid) && self.servers[&sid].incarnation == incarnation {
                    self.tick(sid);
                    let tick = self.servers[&sid].tick_ms;
                    self.schedule(self.now_ms + tick, Event::Tick { sid, incarnation });
                }
            }
            Event::Crash(sid) => self.crash(sid),
            Event::Restart(sid) => self.restart(sid),
            Event::Partition(links) => {
                for (a, b) in links {
                    if self.cut.insert((a, b)) {
                        self.step_election_if_up(a, election::Input::PeerDown(b));
                        self.step_election_if_up(b, election::Input::PeerDown(a));
                    }
                }
                self.silence_cut_connections();
            }
            Event::DropConnections => {
                let open: Vec<usize> = (0..self.conns.len())
                    .filter(|&c| self.conns[c].open && self.rng.gen_bool(0.5))
                    .collect();
                for conn in open {
                    let (l, ld) = (self.conns[conn].learner, self.conns[conn].leader);
                    self.close(conn, l);
                    self.close(conn, ld);
                }
            }
            Event::Heal => {
                for (a, b) in std::mem::take(&mut self.cut) {
                    self.step_election_if_up(a, election::Input::PeerUp(b));
                    self.step_election_if_up(b, election::Input::PeerUp(a));
                }
            }
            Event::ClientWrite => self.client_write(),
        }
    }

    fn silence_cut_connections(&mut self) {
        for c in 0..self.conns.len() {
            let (l, ld) = (self.conns[c].learner, self.conns[c].leader);
            if self.conns[c].open && !self.linked(l, ld) {
                self.conns[c].silent = true;
            }
        }
    }

    fn tick(&mut self, sid: Sid) {
        let now = self.now_ms;
        self.step_election(sid, election::Input::Tick);
        let server = self.servers.get_mut(&sid).expect("server");
        match &mut server.role {
            Role::Leading { core, .. } => {
                let actions = core.step(now, leader::Input::Tick);
                self.perform_leader(sid, actions);
            }
            Role::Learning {
                core: Some(core), ..
            } => {
                let actions = core.step(now, learner::Input::Tick);
                self.perform_learner(sid, actions);
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------------
    // Servers: start, crash, roles

    fn restart(&mut self, sid: Sid) {
        if self.up(sid) {
            return;
        }
        let voters = self.voters.clone();
        let server = self.servers.get_mut(&sid).expect("server");
        server.incarnation += 1;
        server.election = Election::new(sid, voters, election::Timing::default());
        // Recovery replays the whole log into memory.
        server.applied_len = server.disk.log.len();
        let incarnation = server.incarnation;
        let tick = server.tick_ms;
        self.look(sid);
        let peers: Vec<Sid> = self.servers.keys().copied().filter(|&p| p != sid).collect();
        for peer in peers {
            if self.linked(sid, peer) {
                self.step_election_if_up(peer, election::Input::PeerUp(sid));
            }
        }
        self.schedule(self.now_ms + tick, Event::Tick { sid, incarnation });
    }

    fn crash(&mut self, sid: Sid) {
        if !self.up(sid) {
            return;
        }
        self.end_role(sid);
        let server = self.servers.get_mut(&sid).expect("server");
        server.role = Role::Down;
        server.role_gen += 1;
        let durable = server.disk.durable_len;
        if server.disk.log.len() > durable {
            self.stats.lossy_crashes += 1;
        }
        server.disk.log.truncate(durable);
        server.applied_len = 0;
        server.flush_scheduled = false;
        let peers: Vec<Sid> = self.servers.keys().copied().filter(|&p| p != sid).collect();
        for peer in peers {
            self.step_election_if_up(peer, election::Input::PeerDown(sid));
        }
    }

    /// Closes the role's connections (the peers hear of it unless silent).
    fn end_role(&mut self, sid: Sid) {
        let conns: Vec<usize> = match &self.servers[&sid].role {
            Role::Leading { conns, .. } => conns.values().copied().collect(),
            Role::Learning { conn, .. } => conn.iter().copied().collect(),
            _ => Vec::new(),
        };
        for conn in conns {
            let other = if self.conns[conn].leader == sid {
                self.conns[conn].learner
            } else {
                self.conns[conn].leader
            };
            self.close(conn, other);
        }
        let server = self.servers.get_mut(&sid).expect("server");
        server.serving = false;
    }

    /// Back to election: the log is made durable and memory equals the log
    /// before the server votes (the runtime's duty the cores rely on).
    fn look(&mut self, sid: Sid) {
        self.end_role(sid);
        let now = self.now_ms;
        let server = self.servers.get_mut(&sid).expect("server");
        server.role = Role::Looking;
        server.role_gen += 1;
        server.disk.durable_len = server.disk.log.len();
        server.applied_len = server.disk.log.len();
        let (zxid, epoch) = (server.disk.last_zxid(), server.disk.current_epoch);
        let actions = server.election.start(now, zxid, epoch);
        self.perform_election(sid, actions);
    }

    fn step_election_if_up(&mut self, sid: Sid, input: election::Input) {
        if self.up(sid) {
            self.step_election(sid, input);
        }
    }

    fn step_election(&mut self, sid: Sid, input: election::Input) {
        let now = self.now_ms;
        let actions = self
            .servers
            .get_mut(&sid)
            .expect("server")
            .election
            .step(now, input);
        self.perform_election(sid, actions);
    }

    fn perform_election(&mut self, sid: Sid, actions: Vec<election::Action>) {
        for action in actions {
            match action {
                election::Action::Send { to, msg } => {
                    if !self.servers.contains_key(&to) {
                        continue;
                    }
                    if self.faults && self.now_ms < FAULTS_END_MS && self.rng.gen_bool(0.05) {
                        continue; // lost with a dropped election connection
                    }
                    let delay = if to == sid { 0 } else { self.delay() };
                    let incarnation = self.servers[&to].incarnation;
                    self.schedule(
                        self.now_ms + delay,
                        Event::Election {
                            from: sid,
                            to,
                            msg,
                            incarnation,
                        },
                    );
                }
                election::Action::Decided { state, vote } => {
                    if matches!(self.servers[&sid].role, Role::Looking) {
                        self.decided(sid, state, vote.leader);
                    }
                }
            }
        }
    }

    fn decided(&mut self, sid: Sid, state: ServerState, leader_sid: Sid) {
        if self.trace {
            println!("         server {sid} decided {state:?} of {leader_sid}");
        }
        let now = self.now_ms;
        let retain_from = self.rng.gen_range(0..=self.servers[&sid].disk.log.len());
        let force_snapshot = self.rng.gen_bool(0.1);
        let server = self.servers.get_mut(&sid).expect("server");
        server.role_gen += 1;
        match state {
            ServerState::Leading => {
                // Retain only part of the history, as a leader that
                // snapshotted and purged would: learners behind get SNAPs.
                let log = &server.disk.log;
                let base = if retain_from == 0 {
                    0
                } else {
                    log[retain_from - 1].0
                };
                let history: Vec<i64> = log[retain_from..].iter().map(|e| e.0).collect();
                let (mut core, actions) = Leader::new(
                    sid,
                    self.voters.clone(),
                    LEADER_TIMING,
                    server.disk.accepted_epoch,
                    server.disk.current_epoch,
                    base,
                    &history,
                    now,
                );
                core.force_snapshot_sync(force_snapshot);
                server.role = Role::Leading {
                    core: Box::new(core),
                    conns: BTreeMap::new(),
                };
                self.perform_leader(sid, actions);
            }
            ServerState::Following | ServerState::Observing => {
                server.role = Role::Learning {
                    core: None,
                    leader: leader_sid,
                    conn: None,
                };
                let role_gen = server.role_gen;
                let delay = self.delay();
                self.schedule(
                    now + delay,
                    Event::Connect {
                        learner: sid,
                        leader: leader_sid,
                        role_gen,
                        tries_left: CONNECT_TRIES,
                    },
                );
            }
            ServerState::Looking => {}
        }
    }

    // ---------------------------------------------------------------------
    // Quorum connections

    fn connect(&mut self, learner_sid: Sid, leader_sid: Sid, role_gen: u64, tries_left: u32) {
        if !self.up(learner_sid) || self.servers[&learner_sid].role_gen != role_gen {
            return;
        }
        let accepting = self.up(leader_sid)
            && self.linked(learner_sid, leader_sid)
            && matches!(self.servers[&leader_sid].role, Role::Leading { .. });
        if !accepting {
            if tries_left > 1 {
                self.schedule(
                    self.now_ms + 50,
                    Event::Connect {
                        learner: learner_sid,
                        leader: leader_sid,
                        role_gen,
                        tries_left: tries_left - 1,
                    },
                );
            } else {
                self.look(learner_sid);
            }
            return;
        }
        let conn = self.conns.len();
        self.conns.push(Conn {
            learner: learner_sid,
            leader: leader_sid,
            open: true,
            silent: false,
            last_to_leader_ms: self.now_ms,
            last_to_learner_ms: self.now_ms,
        });
        let now = self.now_ms;
        // A new connection from a sid replaces its old one at once, so
        // nothing meant for the old one goes down the new one.
        let previous = match &mut self.servers.get_mut(&leader_sid).expect("leader").role {
            Role::Leading { conns, core } => conns.insert(learner_sid, conn).map(|previous| {
                let gone = leader::Input::LearnerGone { from: learner_sid };
                (previous, core.step(now, gone))
            }),
            _ => None,
        };
        if let Some((previous, actions)) = previous {
            self.close(previous, learner_sid);
            self.perform_leader(leader_sid, actions);
        }
        let server = self.servers.get_mut(&learner_sid).expect("learner");
        let kind = if server.voter {
            LearnerKind::Participant
        } else {
            LearnerKind::Observer
        };
        let (core, actions) = Learner::new(
            kind,
            LEARNER_TIMING,
            server.disk.accepted_epoch,
            server.disk.current_epoch,
            server.disk.last_zxid(),
            now,
        );
        if let Role::Learning {
            core: slot,
            conn: c,
            ..
        } = &mut server.role
        {
            *slot = Some(core);
            *c = Some(conn);
        }
        self.perform_learner(learner_sid, actions);
    }

    /// Closes `conn`; `to` hears of it after a delay unless the link is silent.
    fn close(&mut self, conn: usize, to: Sid) {
        let c = &mut self.conns[conn];
        if !c.open {
            return;
        }
        c.open = false;
        if !c.silent {
            let at = self.now_ms + self.rng.gen_range(0..15);
            self.schedule(at, Event::Closed { conn, to });
        }
    }

    fn on_closed(&mut self, conn: usize, to: Sid) {
        if !self.up(to) {
            return;
        }
        let now = self.now_ms;
        let learner_sid = self.conns[conn].learner;
        match &mut self.servers.get_mut(&to).expect("server").role {
            Role::Leading { core, conns } if conns.get(&learner_sid) == Some(&conn) => {
                conns.remove(&learner_sid);
                let actions = core.step(now, leader::Input::LearnerGone { from: learner_sid });
                self.perform_leader(to, actions);
            }
            Role::Learning { conn: Some(c), .. } if *c == conn => self.look(to),
            _ => {}
        }
    }

    fn send_on(&mut self, conn: usize, event_for: impl FnOnce(usize) -> Event, to_leader: bool) {
        let c = &self.conns[conn];
        if !c.open || c.silent {
            return;
        }
        let delay = self.delay();
        let c = &mut self.conns[conn];
        let last = if to_leader {
            &mut c.last_to_leader_ms
        } else {
            &mut c.last_to_learner_ms
        };
        let at = (self.now_ms + delay).max(*last);
        *last = at;
        self.schedule(at, event_for(conn));
    }

    fn deliver_to_leader(&mut self, conn: usize, packet: LearnerPacket) {
        let c = &self.conns[conn];
        let (from, to) = (c.learner, c.leader);
        if c.silent || !self.up(to) {
            return;
        }
        let now = self.now_ms;
        let input = match packet {
            LearnerPacket::LearnerInfo {
                kind,
                accepted_epoch,
            } => leader::Input::LearnerInfo {
                from,
                kind,
                accepted_epoch,
            },
            LearnerPacket::AckEpoch {
                current_epoch,
                last_zxid,
            } => leader::Input::AckEpoch {
                from,
                current_epoch,
                last_zxid,
            },
            LearnerPacket::Ack { zxid } => leader::Input::Ack { from, zxid },
            LearnerPacket::Ping => leader::Input::Heard { from },
        };
        if let Role::Leading { core, conns } = &mut self.servers.get_mut(&to).expect("s").role {
            if conns.get(&from) == Some(&conn) {
                let actions = core.step(now, input);
                self.perform_leader(to, actions);
            }
        }
    }

    fn deliver_to_learner(&mut self, conn: usize, msg: ToLearner) {
        let c = &self.conns[conn];
        let to = c.learner;
        if c.silent || !self.up(to) {
            return;
        }
        let now = self.now_ms;
        if let Role::Learning {
            core: Some(core),
            conn: Some(mine),
            ..
        } = &mut self.servers.get_mut(&to).expect("s").role
        {
            if *mine == conn {
                let input = msg.input;
                self.incoming = Some(msg);
                let actions = core.step(now, input);
                self.perform_learner(to, actions);
                self.incoming = None;
            }
        }
    }

    // ---------------------------------------------------------------------
    // Disks

    fn append(&mut self, sid: Sid, entry: Entry) {
        let server = self.servers.get_mut(&sid).expect("server");
        if let Some(&(last, _)) = server.disk.log.last() {
            if entry.0 <= last {
                let what = format!("server {sid} logged {:#x} after {last:#x}", entry.0);
                self.fail(what);
            }
        }
        server.disk.log.push(entry);
        if !server.flush_scheduled {
            server.flush_scheduled = true;
            let incarnation = server.incarnation;
            let at = self.now_ms + self.rng.gen_range(1..12);
            self.schedule(at, Event::Flush { sid, incarnation });
        }
    }

    fn flush(&mut self, sid: Sid, incarnation: u32) {
        if !self.up(sid) || self.servers[&sid].incarnation != incarnation {
            return;
        }
        let now = self.now_ms;
        let server = self.servers.get_mut(&sid).expect("server");
        server.flush_scheduled = false;
        server.disk.durable_len = server.disk.log.len();
        let zxid = server.disk.last_zxid();
        match &mut server.role {
            Role::Leading { core, .. } => {
                let actions = core.step(now, leader::Input::Durable { zxid });
                self.perform_leader(sid, actions);
            }
            Role::Learning {
                core: Some(core), ..
            } => {
                let actions = core.step(now, learner::Input::Durable { zxid });
                self.perform_learner(sid, actions);
            }
            _ => {}
        }
    }

    fn persist_epochs(&mut self, sid: Sid, accepted: Option<i64>, current: Option<i64>) {
        let disk = &mut self.servers.get_mut(&sid).expect("server").disk;
        if let Some(e) = accepted {
            disk.accepted_epoch = e;
        }
        if let Some(e) = current {
            disk.current_epoch = e;
        }
        if disk.accepted_epoch < disk.current_epoch {
            let what = format!(
                "server {sid}: acceptedEpoch {} < currentEpoch {}",
                disk.accepted_epoch, disk.current_epoch
            );
            self.fail(what);
        }
    }

    // ---------------------------------------------------------------------
    // The leader's actions

    fn client_write(&mut self) {
        let leaders: Vec<Sid> = self
            .servers
            .iter()
            .filter(|(_, s)| matches!(&s.role, Role::Leading { core, .. } if core.is_active()))
            .map(|(&sid, _)| sid)
            .collect();
        if leaders.is_empty() {
            return;
        }
        let sid = leaders[self.rng.gen_range(0..leaders.len())];
        let now = self.now_ms;
        let value = self.next_value;
        let Role::Leading { core, .. } = &mut self.servers.get_mut(&sid).expect("s").role else {
            return;
        };
        match core.propose(now) {
            Ok((zxid, actions)) => {
                self.next_value += 1;
                self.stats.writes_proposed += 1;
                self.proposing = Some((zxid, value));
                self.perform_leader(sid, actions);
                self.proposing = None;
            }
            Err(leader::ProposeError::CounterExhausted) => self.look(sid),
            Err(_) => {}
        }
    }

    fn leader_entry(&self, sid: Sid, zxid: i64) -> Entry {
        if let Some(p) = self.proposing.filter(|p| p.0 == zxid) {
            return p;
        }
        let log = &self.servers[&sid].disk.log;
        match log.binary_search_by_key(&zxid, |e| e.0) {
            Ok(i) => log[i],
            Err(_) => self.fail(format!("leader {sid} sends {zxid:#x}, not in its log")),
        }
    }

    fn perform_leader(&mut self, sid: Sid, actions: Vec<leader::Action>) {
        for action in actions {
            if self.trace {
                println!("         leader {sid}: {action:?}");
            }
            match action {
                leader::Action::PersistAcceptedEpoch(e) => self.persist_epochs(sid, Some(e), None),
                leader::Action::PersistCurrentEpoch(e) => self.persist_epochs(sid, None, Some(e)),
                leader::Action::Send { to, packet } => self.leader_send(sid, to, packet),
                leader::Action::Append { zxid } => {
                    let entry = self.leader_entry(sid, zxid);
                    self.append(sid, entry);
                    self.maybe_crash(sid);
                }
                leader::Action::Commit { zxid } => self.leader_commit(sid, zxid),
                leader::Action::Activate { epoch } => {
                    if let Some(&other) = self.activated.get(&epoch) {
                        self.fail(format!("epoch {epoch} activated by {other} and by {sid}"));
                    }
                    self.activated.insert(epoch, sid);
                    self.stats.activations += 1;
                    let server = self.servers.get_mut(&sid).expect("s");
                    server.serving = true;
                    server.election.update_epoch(epoch);
                }
                leader::Action::Drop {
                    sid: learner,
                    reason,
                } => {
                    if let leader::DropReason::OutOfOrder(why) = reason {
                        self.fail(format!("leader {sid} dropped {learner}: {why}"));
                    }
                    let conn = match &mut self.servers.get_mut(&sid).expect("s").role {
                        Role::Leading { conns, .. } => conns.remove(&learner),
                        _ => None,
                    };
                    if let Some(conn) = conn {
                        self.close(conn, learner);
                    }
                }
                leader::Action::StepDown(_) => {
                    self.look(sid);
                    return;
                }
            }
        }
    }

    fn leader_send(&mut self, sid: Sid, to: Sid, packet: LeaderPacket) {
        let Role::Leading { conns, .. } = &self.servers[&sid].role else {
            return;
        };
        let Some(&conn) = conns.get(&to) else { return };
        let msgs = self.expand(sid, packet);
        for msg in msgs {
            self.send_on(conn, |conn| Event::ToLearner { conn, msg }, false);
        }
    }

    fn input(input: learner::Input) -> ToLearner {
        ToLearner {
            input,
            value: None,
            snapshot: None,
        }
    }

    /// The packets a leader action puts on the wire, with their payloads.
    fn expand(&mut self, sid: Sid, packet: LeaderPacket) -> Vec<ToLearner> {
        let log = &self.servers[&sid].disk.log;
        let with_value = |input: learner::Input, zxid: i64| ToLearner {
            input,
            value: Some(self.leader_entry(sid, zxid).1),
            snapshot: None,
        };
        match packet {
            LeaderPacket::LeaderInfo { new_epoch } => {
                vec![Self::input(learner::Input::LeaderInfo { new_epoch })]
            }
            LeaderPacket::Sync { plan, proposals_to } => {
                match plan.kind {
                    SyncKind::Diff => self.stats.diffs += 1,
                    SyncKind::Trunc(_) => self.stats.truncs += 1,
                    SyncKind::Snap => self.stats.snaps += 1,
                }
                let mut out = vec![match plan.kind {
                    SyncKind::Diff => Self::input(learner::Input::Diff {
                        zxid: plan.last_committed,
                    }),
                    SyncKind::Trunc(zxid) => Self::input(learner::Input::Trunc { zxid }),
                    SyncKind::Snap => ToLearner {
                        input: learner::Input::Snap {
                            zxid: plan.last_committed,
                        },
                        value: None,
                        snapshot: Some(
                            log.iter()
                                .copied()
                                .filter(|e| e.0 <= plan.last_committed)
                                .collect(),
                        ),
                    },
                }];
                for &(zxid, value) in log.iter().filter(|e| e.0 > plan.send_after) {
                    if zxid <= plan.last_committed {
                        out.push(ToLearner {
                            input: learner::Input::Proposal { zxid },
                            value: Some(value),
                            snapshot: None,
                        });
                        out.push(Self::input(learner::Input::Commit { zxid }));
                    } else if zxid <= proposals_to {
                        out.push(ToLearner {
                            input: learner::Input::Proposal { zxid },
                            value: Some(value),
                            snapshot: None,
                        });
                    }
                }
                out
            }
            LeaderPacket::NewLeader { new_epoch } => {
                vec![Self::input(learner::Input::NewLeader {
                    zxid: new_epoch << 32,
                })]
            }
            LeaderPacket::UpToDate => vec![Self::input(learner::Input::UpToDate)],
            LeaderPacket::Proposal { zxid } => {
                vec![with_value(learner::Input::Proposal { zxid }, zxid)]
            }
            LeaderPacket::Commit { zxid } => vec![Self::input(learner::Input::Commit { zxid })],
            LeaderPacket::Inform { zxid } => {
                vec![with_value(learner::Input::Inform { zxid }, zxid)]
            }
            LeaderPacket::Ping => vec![Self::input(learner::Input::Ping)],
        }
    }

    /// A leader committed everything up to `zxid` in its log.
    fn leader_commit(&mut self, sid: Sid, zxid: i64) {
        let activating = !self.servers[&sid].serving;
        let log = &self.servers[&sid].disk.log;
        let n = log.partition_point(|e| e.0 <= zxid);
        let prefix: Vec<Entry> = log[..n].to_vec();
        if activating && n < self.committed.len() {
            self.fail(format!(
                "leader {sid} activates with {n} txns, but {} were committed",
                self.committed.len()
            ));
        }
        self.check_prefix(&format!("leader {sid}'s commit"), &prefix);
        for &entry in &prefix[self.committed.len().min(n)..] {
            let holders = self
                .servers
                .values()
                .filter(|s| s.voter && s.disk.holds_durably(entry))
                .count();
            if holders * 2 <= self.voters.len() {
                self.fail(format!(
                    "leader {sid} commits {:#x} held durably by {holders} voters",
                    entry.0
                ));
            }
            self.committed.push(entry);
        }
        self.servers.get_mut(&sid).expect("s").applied_len = n;
    }

    /// `entries` and the committed sequence must agree where both have txns.
    fn check_prefix(&self, who: &str, entries: &[Entry]) {
        let common = entries.len().min(self.committed.len());
        if let Some(i) = (0..common).find(|&i| entries[i] != self.committed[i]) {
            self.fail(format!(
                "{who}: txn {i} is {:x?}, the committed one is {:x?}",
                entries[i], self.committed[i]
            ));
        }
    }

    // ---------------------------------------------------------------------
    // The learner's actions

    fn perform_learner(&mut self, sid: Sid, actions: Vec<learner::Action>) {
        for action in actions {
            if self.trace {
                println!("         learner {sid}: {action:?}");
            }
            match action {
                learner::Action::Send(packet) => {
                    let conn = match &self.servers[&sid].role {
                        Role::Learning { conn: Some(c), .. } => *c,
                        _ => continue,
                    };
                    self.send_on(conn, |conn| Event::ToLeader { conn, packet }, true);
                    if matches!(packet, LearnerPacket::Ack { .. }) {
                        self.maybe_crash(sid);
                    }
                }
                learner::Action::PersistAcceptedEpoch(e) => self.persist_epochs(sid, Some(e), None),
                learner::Action::PersistCurrentEpoch(e) => {
                    self.persist_epochs(sid, None, Some(e));
                    self.maybe_crash(sid);
                }
                learner::Action::Truncate { zxid } => {
                    let disk = &mut self.servers.get_mut(&sid).expect("s").disk;
                    disk.log.retain(|e| e.0 <= zxid);
                    disk.durable_len = disk.log.len();
                    let len = disk.log.len();
                    self.servers.get_mut(&sid).expect("s").applied_len = len;
                }
                learner::Action::LoadSnapshot { zxid } => {
                    let snapshot = self
                        .incoming
                        .as_mut()
                        .and_then(|m| m.snapshot.take())
                        .unwrap_or_else(|| self.fail("SNAP without a snapshot".into()));
                    if snapshot.last().map_or(0, |e| e.0) != zxid {
                        self.fail(format!("server {sid}: SNAP({zxid:#x}) of another zxid"));
                    }
                    let server = self.servers.get_mut(&sid).expect("s");
                    server.disk.log = snapshot;
                    server.disk.durable_len = server.disk.log.len();
                    server.applied_len = server.disk.log.len();
                }
                learner::Action::Append { zxid } => {
                    let value = self
                        .incoming
                        .as_ref()
                        .and_then(|m| m.value)
                        .unwrap_or_else(|| self.fail(format!("no payload for {zxid:#x}")));
                    self.append(sid, (zxid, value));
                    self.maybe_crash(sid);
                }
                learner::Action::Apply { zxid } => self.learner_apply(sid, zxid),
                learner::Action::Serve => {
                    let server = &self.servers[&sid];
                    let applied = server.disk.log[..server.applied_len].to_vec();
                    if applied.len() > self.committed.len() {
                        self.fail(format!(
                            "server {sid} serves {} txns, {} are committed",
                            applied.len(),
                            self.committed.len()
                        ));
                    }
                    self.check_prefix(&format!("server {sid}'s served state"), &applied);
                    let server = self.servers.get_mut(&sid).expect("s");
                    server.serving = true;
                    let epoch = server.disk.current_epoch;
                    server.election.update_epoch(epoch);
                }
                learner::Action::Leave(reason) => {
                    if !matches!(
                        reason,
                        learner::LeaveReason::LeaderSilent
                            | learner::LeaveReason::StaleEpoch { .. }
                    ) {
                        self.fail(format!("learner {sid} left its leader: {reason:?}"));
                    }
                    self.stats.learners_left += 1;
                    self.look(sid);
                    return;
                }
            }
        }
    }

    fn learner_apply(&mut self, sid: Sid, zxid: i64) {
        let server = &self.servers[&sid];
        let n = server.disk.log.partition_point(|e| e.0 <= zxid);
        if n == 0 || server.disk.log[n - 1].0 != zxid {
            self.fail(format!("server {sid} applies {zxid:#x}, not in its log"));
        }
        if server.serving {
            let from = server.applied_len.min(n);
            let new = server.disk.log[from..n].to_vec();
            if n > self.committed.len() || self.committed[from..n] != new[..] {
                self.fail(format!(
                    "server {sid} applies {zxid:#x}, not committed as such"
                ));
            }
        }
        self.servers.get_mut(&sid).expect("s").applied_len = n;
    }

    // ---------------------------------------------------------------------
    // The outcome

    fn converged(&self) -> bool {
        let leaders: Vec<Sid> = self
            .servers
            .iter()
            .filter(|(_, s)| matches!(&s.role, Role::Leading { core, .. } if core.is_active()))
            .map(|(&sid, _)| sid)
            .collect();
        let [leader] = leaders[..] else { return false };
        let Role::Leading { core, .. } = &self.servers[&leader].role else {
            return false;
        };
        if core.outstanding() > 0 {
            return false;
        }
        let n = self.committed.len();
        self.servers.iter().all(|(&sid, s)| {
            let follows = match &s.role {
                Role::Leading { .. } => sid == leader,
                Role::Learning {
                    core: Some(c),
                    leader: l,
                    ..
                } => *l == leader && c.is_serving(),
                _ => false,
            };
            follows && s.serving && s.applied_len == n && s.disk.log[..n] == self.committed[..]
        })
    }
}

fn run_seed(seed: u64, trace: bool) -> Stats {
    let mut sim = Sim::new(seed, trace);
    sim.run();
    sim.stats.committed = sim.committed.len() as u64;
    sim.stats
}

#[test]
fn seeded_ensembles_keep_every_commit_and_converge() {
    if let Ok(seed) = std::env::var("ZAB_ENSEMBLE_SEED") {
        let seed: u64 = seed.parse().expect("ZAB_ENSEMBLE_SEED is a number");
        println!("seed {seed}: {:?}", run_seed(seed, true));
        return;
    }
    let seeds: u64 = std::env::var("ZAB_ENSEMBLE_SEEDS")
        .map(|n| n.parse().expect("ZAB_ENSEMBLE_SEEDS is a number"))
        .unwrap_or(1_000);
    let mut total = Stats::default();
    for seed in 0..seeds {
        total.add(run_seed(seed, false));
    }
    println!("{seeds} seeds: {total:?}");
    // The runs must reach what they are meant to prove, not converge on
    // empty logs or fault-free paths only.
    if seeds >= 1_000 {
        assert!(total.committed > seeds * 50, "{total:?}");
        assert!(total.activations > seeds, "{total:?}");
        for (what, n) in [
            ("DIFF syncs", total.diffs),
            ("TRUNC syncs", total.truncs),
            ("SNAP syncs", total.snaps),
            ("crashes losing unsynced txns", total.lossy_crashes),
            ("learners leaving a leader", total.learners_left),
        ] {
            assert!(n > seeds / 50, "too few {what}: {total:?}");
        }
    }
}
