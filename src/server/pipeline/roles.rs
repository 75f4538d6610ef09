//! The pipeline as an ensemble member: LOOKING until the election decides,
//! then leading ([`super::leading`]) or following/observing
//! ([`super::following`]) until that role ends, then LOOKING again.
//!
//! Invariants at every role change (what the ZAB cores require):
//! - the log is durable and the working tree equals it: no batch is in
//!   flight, and the tree holds every logged txn (a learner applies
//!   proposals to the working tree as it logs them; `published` is the
//!   committed state shards serve);
//! - a request whose outcome is unknown (proposed or forwarded, not seen
//!   committed) is not answered: its connection is closed, as ZooKeeper's
//!   are when it loses its leader, so the client never gets a false answer.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glommio::channels::shared_channel::ConnectedSender;
use tracing::{error, info, warn};

use super::following::Following;
use super::leading::Leading;
use super::waiters::Waiters;
use super::Pipeline;
use crate::limits::quorum as qlimits;
use crate::proto::SessionId;
use crate::quorum::elector::{Decision, Elector};
use crate::quorum::ensemble::Ensemble;
use crate::replica::events::{QuorumEvent, QuorumQueue};
use crate::replica::history::TxnHistory;
use crate::replica::link::LinkId;
use crate::replica::secure::{Admission, LinkStream};
use crate::replica::status::Mode;
use crate::replica::ZabStart;
use crate::server::batch::{Batch, BatchBounds};
use crate::server::inbox::Inbox;
use crate::server::log::{LogDone, LogRequest};
use crate::server::messages::{CloseReason, ToShard, WriteOutcome};
use crate::session::Passwords;
use crate::storage::epochs::{persist_accepted_epoch, persist_current_epoch, Epochs};
use crate::tree::acl::AuthInfo;
use crate::zab::election::Sid;
use crate::zab::election_wire::ServerState;
use crate::zab::leader::LearnerKind;

/// Where a Ferrokeeper-only ensemble keeps the key its session passwords
/// derive from, so that every server checks every password while nobody who
/// only knows a session id (as `cons` shows it) can compute one. The first
/// leader writes 32 random bytes there in a txn, readable by nobody but the
/// super user (a digest ACL with a random password). With
/// `ferrokeeper.sessionPasswords=zookeeper` (mixed ensembles: Apache servers
/// derive passwords from the id alone) it is not used.
pub(super) const PASSWORD_KEY_PATH: &str = "/zookeeper/ferrokeeper-session-key";

/// The channels the pipeline's loop owns, lent to the role code.
pub(in crate::server) struct Io<'a> {
    pub outbox: &'a [ConnectedSender<ToShard>],
    pub log_tx: &'a ConnectedSender<LogRequest>,
    pub queue: &'a Rc<Inbox>,
    pub bounds: BatchBounds,
}

/// A write a learner forwarded (REQUEST), waiting for the leader's batch.
pub(super) struct Forwarded {
    pub from: Sid,
    pub session_id: SessionId,
    pub cxid: i32,
    pub op: i32,
    pub body: Bytes,
    pub auth: AuthInfo,
}

pub(super) enum Role {
    Looking,
    Leading(Box<Leading>),
    Following(Box<Following>),
}

pub(super) struct Zab {
    pub ensemble: Ensemble,
    pub elector: Elector,
    pub events: Rc<QuorumQueue>,
    pub epochs: Epochs,
    pub history: TxnHistory,
    pub role: Role,
    listener: Option<std::net::TcpListener>,
    next_id: u64,
    pub last_tick_ms: u64,
    /// Leader: REQUESTs from learners, taken into batches like shard messages.
    pub forwarded: VecDeque<Forwarded>,
    /// What a lost leader's learner clients still wait for (see `waiters`),
    /// until the next role settles it.
    pub carried: Option<Waiters>,
    /// Leader: its clients' writes carried from its time as a learner, run
    /// before anything else once it is active.
    pub replay: VecDeque<crate::server::messages::WriteMsg>,
    /// Quorum-port connections accepted while LOOKING: a learner may have
    /// heard the decision first; its link is adopted if we lead.
    pub early_links: Vec<LinkStream>,
    /// Quorum TLS (`sslQuorum`); None: plaintext links.
    pub quorum_tls: Option<std::sync::Arc<crate::tls::QuorumTls>>,
    /// When this server last became LOOKING (pipeline clock, ms).
    pub looking_since_ms: u64,
    /// Read-only mode, while it serves (see `read_only`).
    pub read_only: Option<super::read_only::ReadOnly>,
    /// Shard messages held while read-only, for the next role to take first.
    pub held: VecDeque<crate::server::messages::ToPipeline>,
}

impl Zab {
    pub fn new(start: ZabStart) -> Zab {
        Zab {
            ensemble: start.ensemble,
            elector: start.elector,
            events: Rc::new(QuorumQueue::default()),
            epochs: start.epochs,
            history: TxnHistory::new(0),
            role: Role::Looking,
            listener: Some(start.quorum_listener),
            next_id: 1,
            last_tick_ms: 0,
            forwarded: VecDeque::new(),
            early_links: Vec::new(),
            quorum_tls: start.quorum_tls,
            carried: None,
            replay: VecDeque::new(),
            looking_since_ms: 0,
            read_only: None,
            held: VecDeque::new(),
        }
    }

    pub fn me(&self) -> Sid {
        self.ensemble.my_sid
    }

    /// A fresh id for a link or a connect attempt.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

impl Pipeline {
    pub(super) fn zab_mut(&mut self) -> &mut Zab {
        self.zab.as_mut().expect("an ensemble member")
    }

    /// `/zookeeper/config` holds the ensemble's config text on every
    /// member, set locally (not a txn) as `initConfigInZKDatabase` does.
    pub(super) fn set_config_node(&mut self) {
        let text = self.zab_mut().ensemble.config_text();
        self.tree
            .init_config_node(Some(Bytes::from(text)), 0, crate::clock::unix_ms());
    }

    /// Takes the ensemble's password key from the tree (see [`PASSWORD_KEY_PATH`]).
    pub(super) fn refresh_passwords(&mut self) {
        if self.cfg.zookeeper_session_passwords {
            return;
        }
        let key = self
            .tree
            .get(PASSWORD_KEY_PATH)
            .and_then(|node| node.data.as_deref().and_then(|d| d.get(..16)))
            .map(|d| <[u8; 16]>::try_from(d).expect("16 bytes"));
        if let Some(key) = key {
            self.sessions.set_passwords(Passwords::Keyed(key));
        }
    }

    /// Whether this ensemble keeps its password key in the tree and has none yet.
    pub(super) fn lacks_password_key(&self) -> bool {
        !self.cfg.zookeeper_session_passwords && !self.tree.contains(PASSWORD_KEY_PATH)
    }

    /// Starts the quorum listener; the election's first round is running.
    pub(super) fn start_zab(&mut self) {
        self.set_config_node();
        self.refresh_passwords();
        let last_zxid = self.tree.last_zxid();
        let status = self.stats.clone();
        let now = self.now_ms();
        let zab = self.zab_mut();
        zab.looking_since_ms = now;
        zab.history = TxnHistory::new(last_zxid);
        status.replica.set_voters(zab.ensemble.voters().len());
        status.replica.set_mode(Mode::Looking, None);
        if let Some(listener) = zab.listener.take() {
            let admission = Admission::new(zab.quorum_tls.clone());
            glommio::spawn_local(accept_loop(listener, zab.events.clone(), admission)).detach();
        }
        info!("LOOKING: electing a leader from zxid 0x{last_zxid:x}");
    }

    pub(super) fn stop_zab(&mut self) {
        if let Some(mut zab) = self.zab.take() {
            match &zab.role {
                Role::Leading(l) => l.close_all(),
                Role::Following(f) => f.close(),
                Role::Looking => {}
            }
            zab.elector.shutdown();
        }
    }

    /// Whether requests are taken from the inbox now.
    pub(super) fn takes_requests(&self) -> bool {
        match self.zab.as_ref().map(|z| &z.role) {
            None => !self.is_restoring(),
            Some(Role::Looking) => false,
            Some(Role::Leading(l)) => l.core.is_active(),
            Some(Role::Following(f)) => f.serving,
        }
    }

    /// Whether this server expires sessions and reaps nodes.
    pub(super) fn owns_sessions(&self) -> bool {
        match self.zab.as_ref().map(|z| &z.role) {
            None => true,
            Some(Role::Leading(l)) => l.core.is_active(),
            Some(_) => false,
        }
    }

    /// Packets, link ends and connections waiting for the pipeline.
    pub(super) fn has_quorum_events(&self) -> bool {
        self.zab.as_ref().is_some_and(|z| !z.events.is_empty())
    }

    /// A leader's requests besides the shards': learners' REQUESTs and its
    /// clients' writes carried from its time as a learner.
    pub(super) fn has_queued_requests(&self) -> bool {
        self.zab.as_ref().is_some_and(|z| {
            !z.forwarded.is_empty()
                || !z.replay.is_empty()
                || (!z.held.is_empty() && z.read_only.is_none())
        })
    }

    /// Whether a bound stops this server from taking requests now (the
    /// leader's outstanding proposals, a learner's forwarded requests):
    /// the loop then waits for commits instead of spinning.
    pub(super) fn at_a_bound(&self) -> bool {
        match self.zab.as_ref().map(|z| &z.role) {
            Some(Role::Leading(l)) => {
                l.core.outstanding() + 1 >= qlimits::OUTSTANDING_PROPOSALS_MAX
            }
            Some(Role::Following(f)) => !f.has_room(),
            _ => false,
        }
    }

    /// The quorum queue's bell, or a future that never completes.
    pub(super) fn zab_bell(&self) -> impl std::future::Future<Output = ()> {
        let events = self.zab.as_ref().map(|z| z.events.clone());
        async move {
            match events {
                Some(events) => events.bell.wait().await,
                None => std::future::pending().await,
            }
        }
    }

    /// How long the loop may sleep with nothing to do.
    pub(super) fn wait_interval(&self) -> Duration {
        let tick = Duration::from_millis(self.cfg.tick_time_ms as u64);
        match self.zab.as_ref().map(|z| &z.role) {
            None => tick / 2,
            Some(Role::Looking) => Duration::from_millis(qlimits::DECISION_POLL_INTERVAL_MS),
            Some(_) => Duration::from_millis(qlimits::ZAB_TICK_INTERVAL_MS).min(tick / 2),
        }
    }

    /// Decisions, quorum events and ticks.
    pub(super) async fn zab_poll(&mut self, io: &Io<'_>) {
        if self.zab.is_none() {
            return;
        }
        if matches!(self.zab_mut().role, Role::Looking) {
            if let Ok(decision) = self.zab_mut().elector.decisions().try_recv() {
                self.on_decision(decision, io).await;
            }
        }
        if matches!(self.zab_mut().role, Role::Looking) {
            self.read_only_poll(io).await;
        }
        for _ in 0..qlimits::QUORUM_EVENTS_MAX {
            let Some(event) = self.zab_mut().events.pop() else {
                break;
            };
            self.on_quorum_event(event, io).await;
        }
        let now = self.now_ms();
        let zab = self.zab_mut();
        if now >= zab.last_tick_ms + qlimits::ZAB_TICK_INTERVAL_MS {
            zab.last_tick_ms = now;
            self.zab_tick(now, io).await;
        }
    }

    async fn zab_tick(&mut self, now_ms: u64, io: &Io<'_>) {
        match &self.zab_mut().role {
            Role::Leading(_) => self.leader_tick(now_ms, io).await,
            Role::Following(_) => self.learner_tick(now_ms, io).await,
            Role::Looking => {}
        }
    }

    async fn on_decision(&mut self, decision: Decision, io: &Io<'_>) {
        let leader = decision.vote.leader;
        info!(
            "election decided in round {}: {:?}, leader {leader}",
            decision.round, decision.state
        );
        self.end_read_only(io).await;
        let early = std::mem::take(&mut self.zab_mut().early_links);
        match decision.state {
            ServerState::Leading => {
                self.start_leading(io).await;
                for stream in early {
                    if self.is_leading() {
                        self.adopt_learner_link(stream);
                    }
                }
            }
            ServerState::Following => self.start_following(leader, LearnerKind::Participant),
            ServerState::Observing => self.start_following(leader, LearnerKind::Observer),
            ServerState::Looking => {
                self.become_looking("the election returned LOOKING", io)
                    .await
            }
        }
        // The role's first actions (a leader's LEADERINFOs) go out at once.
        self.zab_tick(self.now_ms(), io).await;
    }

    async fn on_quorum_event(&mut self, event: QuorumEvent, io: &Io<'_>) {
        match event {
            QuorumEvent::Accepted { stream } => self.on_accepted(stream),
            QuorumEvent::Packet { link, packet } => match self.zab_mut().role {
                Role::Leading(_) => self.on_learner_packet(link, packet, io).await,
                Role::Following(_) => self.on_leader_packet(link, packet, io).await,
                Role::Looking => {}
            },
            QuorumEvent::Snapshot { link, zxid, loaded } => {
                self.on_snapshot(link, zxid, loaded.map(|snap| *snap), io)
                    .await
            }
            QuorumEvent::LinkClosed { link, why } => self.on_link_closed(link, why, io).await,
            QuorumEvent::Connected { attempt, stream } => {
                self.on_connected(attempt, stream, io).await
            }
            QuorumEvent::ConnectFailed { attempt, why } => {
                self.on_connect_failed(attempt, why, io).await
            }
        }
    }

    fn on_accepted(&mut self, stream: LinkStream) {
        let zab = self.zab_mut();
        match &zab.role {
            Role::Leading(_) => self.adopt_learner_link(stream),
            Role::Looking if zab.early_links.len() < qlimits::LINKS_MAX => {
                zab.early_links.push(stream)
            }
            // Not leading: the learner retries, and re-elects if it must.
            _ => drop(stream),
        }
    }

    async fn on_link_closed(&mut self, link: LinkId, why: String, io: &Io<'_>) {
        match &self.zab_mut().role {
            Role::Leading(_) => self.learner_link_closed(link, why, io).await,
            Role::Following(f) if f.link_id() == Some(link) => {
                self.become_looking(&format!("lost the leader: {why}"), io)
                    .await
            }
            _ => {}
        }
    }

    /// The role ended: back to the election, with the log durable and every
    /// request of unknown outcome closed.
    pub(super) async fn become_looking(&mut self, why: &str, io: &Io<'_>) {
        let role = std::mem::replace(&mut self.zab_mut().role, Role::Looking);
        warn!("LOOKING: {why}");
        let now = self.now_ms();
        self.zab_mut().looking_since_ms = now;
        let lost_leader = match &role {
            Role::Following(f) => Some(f.leader()),
            _ => None,
        };
        self.stats.replica.set_mode(Mode::Looking, None);
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        match role {
            Role::Leading(leading) => {
                leading.close_all();
                let zab = self.zab_mut();
                let replay = std::mem::take(&mut zab.replay);
                let carried = zab.carried.get_or_insert_with(Waiters::default);
                replay.into_iter().for_each(|w| carried.push_unsent(w));
            }
            Role::Following(following) => {
                let zab = self.zab_mut();
                debug_assert!(zab.carried.is_none(), "a follower takes what it carries");
                zab.carried = Some(following.into_waiters());
            }
            Role::Looking => {}
        }
        self.zab_mut().forwarded.clear();
        self.drain_log(io).await;
        // Durable but uncommitted: their outcome is the next leader's call.
        for pending in std::mem::take(&mut self.committing) {
            abandon_batch(pending.batch, &mut batch);
        }
        self.publish_answers(batch, io.outbox).await;
        let (last_zxid, current_epoch) = (self.tree.last_zxid(), self.zab_mut().epochs.current);
        self.zab_mut()
            .elector
            .start(last_zxid, current_epoch, lost_leader);
    }

    /// Waits for every batch in flight to be durable (a role change needs
    /// the log durable). Their replies are abandoned: not committed.
    async fn drain_log(&mut self, io: &Io<'_>) {
        while !self.in_flight.is_empty() {
            match io.queue.pop_log_done() {
                Some(done) => {
                    let pending = self.in_flight.pop_front().expect("a batch in flight");
                    crate::server::stats::sub(&self.stats.pipeline.log_batches_in_flight, 1);
                    if let Err(e) = done.result {
                        self.log_failure(&e);
                    }
                    self.publish_abandoned(pending.batch, io).await;
                }
                None => io.queue.bell.wait().await,
            }
        }
    }

    /// Publishes what may be answered of a batch whose txns will not be
    /// (see [`abandon_batch`]), with the version shards already have.
    async fn publish_abandoned(&mut self, from: Batch, io: &Io<'_>) {
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        abandon_batch(from, &mut batch);
        self.publish_answers(batch, io.outbox).await;
    }

    /// Sends a reset to the log and waits for its answer (nothing else is
    /// in flight: the caller drained the log first).
    pub(super) async fn reset_log(
        &mut self,
        reset: crate::server::log::Reset,
        io: &Io<'_>,
    ) -> Result<crate::server::log::ResetDone, String> {
        self.drain_log(io).await;
        let seq = self.next_seq;
        self.next_seq += 1;
        if io
            .log_tx
            .send(LogRequest::Reset { seq, reset })
            .await
            .is_err()
        {
            return Err("the log executor is gone".into());
        }
        loop {
            match io.queue.pop_log_done() {
                Some(LogDone {
                    seq: got,
                    result,
                    reset,
                }) => {
                    debug_assert_eq!(got, seq, "only the reset is in flight");
                    result?;
                    return reset
                        .map(|r| *r)
                        .ok_or_else(|| "no state after the reset".into());
                }
                None => io.queue.bell.wait().await,
            }
        }
    }

    /// Writes an epoch file (fsync'ed; small and rare, so on this thread).
    pub(super) fn persist_epoch(&mut self, accepted: bool, epoch: i64) -> Result<(), String> {
        let dir = self.cfg.data_dir.clone();
        let result = if accepted {
            persist_accepted_epoch(&dir, epoch)
        } else {
            persist_current_epoch(&dir, epoch)
        };
        if let Err(e) = result {
            error!("cannot write an epoch file in {}: {e}", dir.display());
            return Err(e.to_string());
        }
        let epochs = &mut self.zab_mut().epochs;
        if accepted {
            epochs.accepted = epoch;
        } else {
            epochs.current = epoch;
        }
        Ok(())
    }

    /// Takes one request into the batch for a serving ensemble member;
    /// false when there is nothing to take (or no room for proposals).
    pub(super) fn fill_one_replicated(
        &mut self,
        queue: &Inbox,
        batch: &mut Batch,
        io: &Io<'_>,
    ) -> bool {
        let (leading, following) = match &self.zab_mut().role {
            Role::Leading(_) => (true, false),
            Role::Following(_) => (false, true),
            Role::Looking => (false, false),
        };
        match () {
            _ if leading => self.leader_take_one(queue, batch),
            _ if following && !self.learner_has_room() => false,
            _ if following => match self.next_message(queue) {
                Some(msg) => {
                    self.learner_handle(msg, batch, io);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// A log completion on an ensemble member.
    pub(super) async fn complete_replicated(&mut self, done: LogDone, io: &Io<'_>) {
        let pending = self
            .in_flight
            .pop_front()
            .expect("a completion has a batch");
        assert_eq!(pending.seq, done.seq, "the log completes batches in order");
        crate::server::stats::sub(&self.stats.pipeline.log_batches_in_flight, 1);
        if let Err(e) = done.result {
            self.log_failure(&e);
            self.publish_abandoned(pending.batch, io).await;
            self.become_looking("the log failed", io).await;
            return;
        }
        let durable = pending.version.last_zxid();
        match &self.zab_mut().role {
            Role::Leading(_) => {
                self.committing.push_back(pending);
                self.leader_durable(durable, io).await;
            }
            Role::Following(_) => self.learner_durable(durable, io).await,
            Role::Looking => {}
        }
    }

    /// Appends a learner's logged proposals as one group commit.
    pub(super) async fn submit_follower_log(&mut self, io: &Io<'_>) {
        let Some(Role::Following(f)) = self.zab.as_mut().map(|z| &mut z.role) else {
            return;
        };
        if f.log_batch.is_empty()
            || self.in_flight.len() >= crate::limits::LOG_BATCHES_IN_FLIGHT_MAX
        {
            return;
        }
        let txns = std::mem::take(&mut f.log_batch);
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        batch.txns = txns;
        self.submit_log_only(batch, io.log_tx).await;
    }

    /// Hands a batch to the log without anything to publish when it is
    /// durable (a learner publishes on COMMIT).
    async fn submit_log_only(&mut self, mut batch: Batch, log_tx: &ConnectedSender<LogRequest>) {
        let version = self.tree.clone();
        let seq = self.next_seq;
        self.next_seq += 1;
        let txns = std::mem::take(&mut batch.txns);
        let count = txns.len();
        let request = LogRequest::Append {
            seq,
            txns,
            version: version.clone(),
        };
        if log_tx.send(request).await.is_err() {
            error!("the log executor is gone");
        }
        self.in_flight.push_back(crate::server::batch::Pending {
            seq,
            batch,
            version,
            submitted: std::time::Instant::now(),
            txns: count,
        });
        crate::server::stats::add(&self.stats.pipeline.log_batches_in_flight, 1);
    }

    pub(super) fn status(&self) -> Arc<crate::server::stats::ServerStats> {
        self.stats.clone()
    }
}

/// A batch whose txns may or may not commit: its write replies become
/// closes (the client sees ConnectionLoss, as with ZooKeeper), other
/// replies and handshakes still go out; no events (nothing is published).
pub(super) fn abandon_batch(from: Batch, into: &mut Batch) {
    for (shard, replies) in from.replies.into_iter().enumerate() {
        for reply in replies {
            match reply.outcome {
                WriteOutcome::Txn(_) | WriteOutcome::SessionClosed => {
                    into.closes[shard].push((reply.conn_id, CloseReason::LeaderLost))
                }
                _ => into.replies[shard].push(reply),
            }
        }
    }
    for (shard, connects) in from.connects.into_iter().enumerate() {
        for connect in connects {
            into.closes[shard].push((connect.conn_id, CloseReason::LeaderLost));
        }
    }
    for (shard, closes) in from.closes.into_iter().enumerate() {
        into.closes[shard].extend(closes);
    }
}

/// Hands every connection to this server's quorum port to the pipeline (TLS ones
/// after their handshake).
async fn accept_loop(
    listener: std::net::TcpListener,
    events: Rc<QuorumQueue>,
    admission: Admission,
) {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the fd comes from a bound std listener this task now owns.
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
    loop {
        match listener.accept().await {
            Ok(stream) => {
                admission.admit(stream, &events);
                events.wait_for_room().await;
            }
            Err(e) => {
                warn!("quorum port accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(qlimits::LEARNER_CONNECT_RETRY_MS))
                    .await;
            }
        }
    }
}
