//! The elector thread: owns one fast-leader-election core
//! (`zab::election::Election`) and the election connections
//! ([`CnxManager`]), and moves everything between them — received
//! notifications, peer up/down and ticks in; notifications out through the
//! connections; each decision out on a channel for the ZAB layer.
//!
//! The ZAB layer asks for a new round ([`Elector::start`]) when it loses its
//! leader or its quorum, and raises the decided vote's epoch once the new
//! epoch is established ([`Elector::update_epoch`], ZOOKEEPER-1732), so
//! servers that start later join the running leader.
//!
//! Every notification carries the ensemble's config text
//! (`QuorumMaj.toString()`, `version=0`): an Apache peer parses it, and one
//! whose version is newer than its own would restart its election.

use std::collections::BTreeSet;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender, TrySendError};

use super::cnx::{CnxEvent, CnxManager};
use crate::limits::quorum as limits;
use crate::zab::election::{Action, Election, Input, Notification, ServerState, Sid, Timing, Vote};

/// The end of an election round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// LEADING, FOLLOWING or OBSERVING.
    pub state: ServerState,
    pub vote: Vote,
    /// The round (`logicalclock`) it was decided in.
    pub round: i64,
}

/// What a new round starts from: this server's last logged zxid and its
/// current epoch (`lookForLeader`'s initial vote).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    pub last_zxid: i64,
    pub current_epoch: i64,
}

/// How the elector runs its core.
#[derive(Clone, Debug)]
pub struct ElectorSettings {
    pub voters: BTreeSet<Sid>,
    /// `QuorumVerifier.toString()` of the ensemble, sent in every notification.
    pub config_text: String,
    pub timing: Timing,
    pub tick_interval: Duration,
}

enum Command {
    Start(History, Option<Sid>),
    UpdateEpoch(i64),
}

/// A running elector; dropping it (or [`Elector::shutdown`]) stops its
/// thread and closes its connections.
pub struct Elector {
    commands: Option<Sender<Command>>,
    decisions: Receiver<Decision>,
    thread: Option<JoinHandle<()>>,
    my_sid: Sid,
}

impl Elector {
    /// Starts the thread, which begins the first round at once from `history`.
    pub fn spawn(
        cnx: CnxManager,
        events: Receiver<CnxEvent>,
        settings: ElectorSettings,
        history: History,
    ) -> std::io::Result<Elector> {
        let my_sid = cnx.my_sid();
        let (commands, commands_rx) =
            crossbeam_channel::bounded(limits::ELECTION_COMMANDS_CHANNEL_CAP);
        let (decisions_tx, decisions) =
            crossbeam_channel::bounded(limits::ELECTION_DECISIONS_CHANNEL_CAP);
        let worker = Worker {
            election: Election::new(my_sid, settings.voters.clone(), settings.timing),
            config: settings.config_text.into_bytes(),
            cnx,
            decisions: decisions_tx,
            epoch_start: Instant::now(),
        };
        let tick = settings.tick_interval;
        let thread = std::thread::Builder::new()
            .name(format!("fk-elector-{my_sid}"))
            .spawn(move || worker.run(events, commands_rx, tick, history))?;
        Ok(Elector {
            commands: Some(commands),
            decisions,
            thread: Some(thread),
            my_sid,
        })
    }

    pub fn my_sid(&self) -> Sid {
        self.my_sid
    }

    /// Decisions, one per round, in order.
    pub fn decisions(&self) -> &Receiver<Decision> {
        &self.decisions
    }

    /// A new round (the leader was lost): LOOKING again, voting for itself.
    /// `lost_leader`, if any, is not waited for (see `Input::LeaderLost`).
    pub fn start(&self, last_zxid: i64, current_epoch: i64, lost_leader: Option<Sid>) {
        self.command(Command::Start(
            History {
                last_zxid,
                current_epoch,
            },
            lost_leader,
        ));
    }

    /// The decided vote now names `new_epoch` (`QuorumPeer.updateElectionVote`).
    pub fn update_epoch(&self, new_epoch: i64) {
        self.command(Command::UpdateEpoch(new_epoch));
    }

    fn command(&self, cmd: Command) {
        if let Some(tx) = &self.commands {
            // Blocks only if the elector is behind by a whole channel of
            // commands; fails only after it stopped.
            let _ = tx.send(cmd);
        }
    }

    /// Stops the thread and closes every election connection.
    pub fn shutdown(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Elector {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    election: Election,
    config: Vec<u8>,
    cnx: CnxManager,
    decisions: Sender<Decision>,
    epoch_start: Instant,
}

impl Worker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch_start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn run(
        mut self,
        events: Receiver<CnxEvent>,
        commands: Receiver<Command>,
        tick_interval: Duration,
        history: History,
    ) {
        self.start_round(history);
        let ticker = crossbeam_channel::tick(tick_interval);
        loop {
            select! {
                recv(events) -> event => match event {
                    Ok(event) => self.on_event(event),
                    Err(_) => break,
                },
                recv(commands) -> cmd => match cmd {
                    Ok(Command::Start(history, lost_leader)) => {
                        self.start_round(history);
                        if let Some(sid) = lost_leader {
                            self.step(Input::LeaderLost(sid));
                        }
                    }
                    Ok(Command::UpdateEpoch(epoch)) => self.election.update_epoch(epoch),
                    Err(_) => break,
                },
                recv(ticker) -> _ => self.step(Input::Tick),
            }
        }
        self.cnx.shutdown();
    }

    fn start_round(&mut self, history: History) {
        let now = self.now_ms();
        let actions = self
            .election
            .start(now, history.last_zxid, history.current_epoch);
        tracing::info!(
            sid = self.cnx.my_sid(),
            round = self.election.round(),
            zxid = format_args!("{:#x}", history.last_zxid),
            epoch = history.current_epoch,
            "LOOKING"
        );
        self.perform(actions);
    }

    fn on_event(&mut self, event: CnxEvent) {
        let input = match event {
            CnxEvent::Message { from, msg } => Input::Received {
                from,
                msg: Notification::from_wire(&msg),
            },
            CnxEvent::PeerUp(sid) => Input::PeerUp(sid),
            CnxEvent::PeerDown(sid) => Input::PeerDown(sid),
        };
        self.step(input);
    }

    fn step(&mut self, input: Input) {
        let now = self.now_ms();
        let actions = self.election.step(now, input);
        self.perform(actions);
    }

    fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, msg } => self.cnx.send(to, &msg.to_wire(self.config.clone())),
                Action::Decided { state, vote } => self.report(state, vote),
            }
        }
    }

    fn report(&self, state: ServerState, vote: Vote) {
        let decision = Decision {
            state,
            vote,
            round: self.election.round(),
        };
        tracing::info!(
            sid = self.cnx.my_sid(),
            ?state,
            leader = vote.leader,
            zxid = format_args!("{:#x}", vote.zxid),
            epoch = vote.peer_epoch,
            round = decision.round,
            "election decided"
        );
        if let Err(TrySendError::Full(_)) = self.decisions.try_send(decision) {
            tracing::warn!("election decisions channel full: nobody reads it; decision dropped");
        }
    }
}
