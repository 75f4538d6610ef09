//! The pipeline as a follower or an observer: it drives a
//! `zab::learner::Learner` core over its link to the leader.
//!
//! Proposals (and an observer's INFORMs) are applied to the working tree as
//! they are logged, so the tree always equals the log (what a later role
//! change needs); each keeps the tree version after it, and a COMMIT
//! publishes the version of the txn it names. Clients' writes, syncs and
//! new sessions are forwarded as REQUESTs; their answers come from the
//! commits (matched by session and cxid, in order, as ZooKeeper's
//! CommitProcessor does) and from SYNC for syncs. Session touches travel in
//! the PING replies; expiry is the leader's.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::net::TcpStream;
use tracing::{info, warn};

use super::roles::{Io, Role};
use super::waiters::{Proposed, SyncWait, Waiters, Waiting};
use super::Pipeline;
use crate::limits::quorum as qlimits;
use crate::proto::jute::Reader;
use crate::proto::{ErrorCode, Id, Request, SessionId};
use crate::replica::events::QuorumEvent;
use crate::replica::link::{self, LinkId, LinkOut};
use crate::replica::secure::{self, LinkStream};
use crate::replica::status::Mode;
use crate::server::batch::Batch;
use crate::server::log::{Reset, ResetDone};
use crate::server::messages::{
    CloseReason, ConnectMsg, ConnectOutcome, ConnectReply, ToPipeline, WriteMsg, WriteOutcome,
    WriteReply,
};
use crate::session::{ConnRef, Passwords, SessionTable};
use crate::tls::QuorumTls;
use crate::tree::{TxnHeader, TxnOp, TxnResult};
use crate::zab::election::Sid;
use crate::zab::leader::LearnerKind;
use crate::zab::learner::{Action, Input, Learner, Packet, Timing};
use crate::zab::quorum_wire::{
    self as qw, ack_epoch_packet, decode_leader_info, learner_info_packet, AckEpoch, LearnerInfo,
    QuorumPacket,
};
use crate::zab::snap_wire::load::LoadedSnap;
use crate::zab::txn_wire::decode_txn_op;

const OP_SYNC: i32 = 9;
const OP_RECONFIG: i32 = 16;
const OP_CREATE_SESSION: i32 = -10;

pub(super) struct Following {
    leader: Sid,
    kind: LearnerKind,
    attempt: u64,
    link: Option<Rc<LinkOut>>,
    core: Option<Learner>,
    pub serving: bool,
    /// Proposals to append as the next group commit.
    pub log_batch: Vec<(TxnHeader, TxnOp)>,
    /// The snapshot after a SNAP packet, until the core loads it.
    snapshot: Option<LoadedSnap>,
    /// What this server's clients wait for (carried over a lost leader).
    pub w: Waiters,
    last_commit_seen: i64,
    touched: HashSet<SessionId>,
    last_ping_zxid: i64,
}

impl Following {
    /// The leader this server follows (or tries to).
    pub fn leader(&self) -> Sid {
        self.leader
    }

    /// Whether another forwarded request fits (`LEARNER_FORWARDED_MAX`).
    pub fn has_room(&self) -> bool {
        self.w.count() < qlimits::LEARNER_FORWARDED_MAX
    }

    pub fn link_id(&self) -> Option<LinkId> {
        self.link.as_ref().map(|l| l.id)
    }

    pub fn close(&self) {
        if let Some(link) = &self.link {
            link.close();
        }
    }

    /// Leaving the leader: what the clients wait for goes to the next role.
    pub fn into_waiters(self) -> Waiters {
        self.close();
        self.w
    }
}

impl Pipeline {
    fn following(&mut self) -> &mut Following {
        match &mut self.zab_mut().role {
            Role::Following(f) => f,
            _ => unreachable!("called while following"),
        }
    }

    pub(super) fn is_learner(&self) -> bool {
        self.is_following()
    }

    fn is_following(&self) -> bool {
        matches!(self.zab.as_ref().map(|z| &z.role), Some(Role::Following(_)))
    }

    fn learner_timing(&self) -> Timing {
        let tick = self.cfg.tick_time_ms as u64;
        Timing {
            init_limit_ms: tick * self.cfg.init_limit_ticks as u64,
            sync_limit_ms: tick * self.cfg.sync_limit_ticks as u64,
        }
    }

    pub(super) fn start_following(&mut self, leader: Sid, kind: LearnerKind) {
        let deadline = Duration::from_millis(self.learner_timing().init_limit_ms);
        let zab = self.zab_mut();
        let attempt = zab.next_id();
        let addr = zab
            .ensemble
            .members
            .get(&leader)
            .map(|m| (m.quorum_socket_addr(), m.host.clone()));
        let events = zab.events.clone();
        let tls = zab.quorum_tls.clone();
        let carried = zab.carried.take().unwrap_or_default();
        zab.role = Role::Following(Box::new(Following {
            leader,
            kind,
            attempt,
            link: None,
            core: None,
            serving: false,
            log_batch: Vec::new(),
            snapshot: None,
            w: carried,
            last_commit_seen: 0,
            touched: HashSet::new(),
            last_ping_zxid: 0,
        }));
        info!("{}: connecting to leader {leader}", role_name(kind));
        glommio::spawn_local(async move {
            let event = match addr {
                Some((Ok(addr), host)) => {
                    connect(attempt, addr, deadline, tls.as_deref(), &host).await
                }
                Some((Err(e), _)) => QuorumEvent::ConnectFailed {
                    attempt,
                    why: format!("cannot resolve the leader's address: {e}"),
                },
                None => QuorumEvent::ConnectFailed {
                    attempt,
                    why: format!("server {leader} is not in the ensemble"),
                },
            };
            events.push(event);
        })
        .detach();
    }

    pub(super) async fn on_connected(&mut self, attempt: u64, stream: LinkStream, io: &Io<'_>) {
        let now = self.now_ms();
        let timing = self.learner_timing();
        let last_logged = self.tree.last_zxid();
        let zab = self.zab_mut();
        let (events, epochs) = (zab.events.clone(), zab.epochs);
        let id = zab.next_id();
        let Role::Following(f) = &mut zab.role else {
            return;
        };
        if f.attempt != attempt || f.link.is_some() {
            return;
        }
        f.link = Some(link::spawn(id, stream, events, true));
        let (core, actions) = Learner::new(
            f.kind,
            timing,
            epochs.accepted,
            epochs.current,
            last_logged,
            now,
        );
        f.core = Some(core);
        self.learner_actions(actions, None, io).await;
    }

    pub(super) async fn on_connect_failed(&mut self, attempt: u64, why: String, io: &Io<'_>) {
        let ours = matches!(&self.zab_mut().role, Role::Following(f) if f.attempt == attempt);
        if ours {
            self.become_looking(&format!("cannot connect to the leader: {why}"), io)
                .await;
        }
    }

    pub(super) async fn learner_tick(&mut self, now_ms: u64, io: &Io<'_>) {
        let Some(core) = self.following().core.as_mut() else {
            return;
        };
        let actions = core.step(now_ms, Input::Tick);
        self.learner_actions(actions, None, io).await;
    }

    pub(super) async fn learner_durable(&mut self, zxid: i64, io: &Io<'_>) {
        let now = self.now_ms();
        let Some(core) = self.following().core.as_mut() else {
            return;
        };
        let actions = core.step(now, Input::Durable { zxid });
        self.learner_actions(actions, None, io).await;
    }

    pub(super) async fn on_leader_packet(
        &mut self,
        link: LinkId,
        packet: QuorumPacket,
        io: &Io<'_>,
    ) {
        let now = self.now_ms();
        if self.following().link_id() != Some(link) {
            return;
        }
        let mut payload = None;
        let input = match packet.packet_type {
            qw::LEADERINFO => match decode_leader_info(&packet) {
                Ok(info) => Input::LeaderInfo {
                    new_epoch: info.new_epoch,
                },
                Err(e) => return self.leave_leader(&format!("bad LEADERINFO: {e}"), io).await,
            },
            qw::DIFF => {
                info!("DIFF from the leader up to 0x{:x}", packet.zxid);
                Input::Diff { zxid: packet.zxid }
            }
            qw::TRUNC => Input::Trunc { zxid: packet.zxid },
            // The core steps once the snapshot that follows is loaded.
            qw::SNAP => return,
            qw::PROPOSAL | qw::INFORM => {
                let data = packet.data.unwrap_or_default();
                match decode_txn_op(&data) {
                    Ok((header, op, _digest)) if header.zxid == packet.zxid => {
                        payload = Some((header, op, Rc::<[u8]>::from(data)));
                    }
                    Ok(_) => {
                        return self
                            .leave_leader("a txn whose zxid is not its packet's", io)
                            .await
                    }
                    Err(e) => return self.leave_leader(&format!("bad txn: {e}"), io).await,
                }
                if packet.packet_type == qw::INFORM {
                    self.following().last_commit_seen = packet.zxid;
                    Input::Inform { zxid: packet.zxid }
                } else {
                    Input::Proposal { zxid: packet.zxid }
                }
            }
            qw::COMMIT => {
                self.following().last_commit_seen = packet.zxid;
                Input::Commit { zxid: packet.zxid }
            }
            qw::NEWLEADER => Input::NewLeader { zxid: packet.zxid },
            qw::UPTODATE => Input::UpToDate,
            qw::PING => {
                self.following().last_ping_zxid = packet.zxid;
                Input::Ping
            }
            qw::SYNC => return self.on_sync_reply(io).await,
            qw::REVALIDATE => return self.on_revalidated(packet.data.as_deref(), io).await,
            other => {
                warn!("ignoring quorum packet type {other} from the leader");
                return;
            }
        };
        let Some(core) = self.following().core.as_mut() else {
            return;
        };
        let actions = core.step(now, input);
        self.learner_actions(actions, payload, io).await;
    }

    pub(super) async fn on_snapshot(
        &mut self,
        link: LinkId,
        zxid: i64,
        loaded: Result<LoadedSnap, String>,
        io: &Io<'_>,
    ) {
        if !self.is_following() || self.following().link_id() != Some(link) {
            return;
        }
        let mut snap = match loaded {
            Ok(snap) => snap,
            Err(e) => {
                return self
                    .leave_leader(&format!("bad snapshot from the leader: {e}"), io)
                    .await
            }
        };
        snap.tree.set_last_zxid(zxid);
        info!(
            "SNAP from the leader at 0x{zxid:x}: {} znodes",
            snap.tree.node_count()
        );
        let now = self.now_ms();
        let f = self.following();
        f.snapshot = Some(snap);
        let Some(core) = f.core.as_mut() else { return };
        let actions = core.step(now, Input::Snap { zxid });
        self.learner_actions(actions, None, io).await;
    }

    async fn leave_leader(&mut self, why: &str, io: &Io<'_>) {
        self.become_looking(why, io).await;
    }

    async fn learner_actions(
        &mut self,
        actions: Vec<Action>,
        mut payload: Option<(TxnHeader, TxnOp, Rc<[u8]>)>,
        io: &Io<'_>,
    ) {
        for action in actions {
            if !self.is_following() {
                return;
            }
            match action {
                Action::Send(packet) => self.learner_send(packet),
                Action::PersistAcceptedEpoch(epoch) => {
                    if self.persist_epoch(true, epoch).is_err() {
                        return self.leave_leader("cannot write acceptedEpoch", io).await;
                    }
                }
                Action::PersistCurrentEpoch(epoch) => {
                    if self.persist_epoch(false, epoch).is_err() {
                        return self.leave_leader("cannot write currentEpoch", io).await;
                    }
                }
                Action::Truncate { zxid } => {
                    info!("TRUNC from the leader: cutting the log after 0x{zxid:x}");
                    let result = self.reset_log(Reset::TruncateAfter(zxid), io).await;
                    if let Err(e) = self.install_state(result, Some(zxid), io).await {
                        return self
                            .leave_leader(&format!("truncation failed: {e}"), io)
                            .await;
                    }
                    self.zab_mut().history.truncate_after(zxid);
                }
                Action::LoadSnapshot { zxid } => {
                    let Some(snap) = self.following().snapshot.take() else {
                        return self.leave_leader("no snapshot to load", io).await;
                    };
                    let mut sessions = crate::storage::OpenSessions::new();
                    for (id, timeout_ms) in snap.sessions {
                        sessions.insert(id, timeout_ms);
                    }
                    let reset = Reset::Install(Box::new(ResetDone {
                        tree: snap.tree,
                        sessions,
                    }));
                    let result = self.reset_log(reset, io).await;
                    if let Err(e) = self.install_state(result, None, io).await {
                        return self
                            .leave_leader(&format!("installing the snapshot failed: {e}"), io)
                            .await;
                    }
                    self.zab_mut().history.reset(zxid);
                }
                Action::Append { zxid } => match payload.take() {
                    Some((header, op, bytes)) if header.zxid == zxid => {
                        self.append_proposal(header, op, bytes)
                    }
                    _ => {
                        return self
                            .leave_leader("a txn to log without its payload", io)
                            .await
                    }
                },
                Action::Apply { zxid } => self.publish_applied(zxid, io).await,
                Action::Serve => self.serve(),
                Action::Leave(reason) => {
                    return self
                        .leave_leader(&format!("left the leader: {reason:?}"), io)
                        .await
                }
            }
        }
    }

    fn serve(&mut self) {
        let (kind, leader) = {
            let f = self.following();
            f.serving = true;
            (f.kind, f.leader)
        };
        self.resend_waiting();
        let current = self.zab_mut().epochs.current;
        self.zab_mut().elector.update_epoch(current);
        let mode = match kind {
            LearnerKind::Participant => Mode::Follower,
            LearnerKind::Observer => Mode::Observer,
        };
        self.stats.replica.set_mode(mode, Some(leader as u64));
        info!(
            "{}: synced with leader {leader} at zxid 0x{:x}, serving",
            role_name(kind),
            self.tree.last_zxid()
        );
    }

    /// The state a TRUNC or SNAP left on disk becomes memory; it is
    /// committed (the leader's history), so shards serve it at once.
    async fn install_state(
        &mut self,
        result: Result<ResetDone, String>,
        kept_upto: Option<i64>,
        io: &Io<'_>,
    ) -> Result<(), String> {
        let state = result?;
        let passwords = if self.cfg.zookeeper_session_passwords {
            Passwords::ZooKeeper
        } else {
            Passwords::Keyed([0; 16])
        };
        let mut sessions = SessionTable::with_passwords(
            self.cfg.my_id.unwrap_or(0) as u8,
            crate::clock::unix_ms() as u64,
            passwords,
        );
        let now = self.now_ms();
        for (id, timeout_ms) in state.sessions.iter() {
            let owner = self.sessions.get(id).and_then(|s| s.owner);
            sessions.insert(id, timeout_ms, owner, now);
        }
        self.sessions = sessions;
        self.tree = state.tree;
        self.set_config_node();
        self.refresh_passwords();
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        self.settle_logged(kept_upto, &mut batch);
        if self.tree.last_zxid() > self.published.last_zxid() || !batch.is_empty() {
            let version = self.tree.clone();
            self.publish(batch, version, None, io.outbox).await;
        }
        Ok(())
    }

    /// After a TRUNC to `kept_upto`, the logged txns up to it are committed
    /// (the leader's history): their clients are answered; those above were
    /// cut and their requests are asked again once synced. After a SNAP
    /// (None) nothing says which were committed: their clients are closed.
    fn settle_logged(&mut self, kept_upto: Option<i64>, batch: &mut Batch) {
        let proposed = std::mem::take(&mut self.following().w.proposed);
        let Some(upto) = kept_upto else {
            self.following().w.close_clients(batch);
            return;
        };
        for p in proposed.into_iter().take_while(|p| p.header.zxid <= upto) {
            batch.events.extend(p.events);
            self.answer_local(&p.header, p.result, p.closed_owner, batch);
        }
    }

    /// Logs a proposal: applied to the working tree now, published on COMMIT.
    fn append_proposal(&mut self, header: TxnHeader, op: TxnOp, bytes: Rc<[u8]>) {
        let mut events = Vec::new();
        let result = self.tree.apply(&header, &op, &mut events);
        let now = self.now_ms();
        let mut closed_owner = None;
        match &op {
            TxnOp::CreateSession { timeout_ms } => {
                let owner = self
                    .following()
                    .w
                    .connects
                    .get(&header.session_id)
                    .map(|c| c.0);
                self.sessions
                    .insert(header.session_id, *timeout_ms, owner, now);
            }
            TxnOp::CloseSession => {
                closed_owner = self
                    .sessions
                    .remove(header.session_id)
                    .and_then(|s| s.owner);
            }
            TxnOp::Create { path, .. } if path == super::roles::PASSWORD_KEY_PATH => {
                self.refresh_passwords()
            }
            _ => {}
        }
        let zxid = header.zxid;
        self.zab_mut().history.push(zxid, bytes);
        // A version kept here makes the next txn copy the tree's path to its
        // node. When the next txn is already waiting, the version is skipped:
        // the COMMIT that names this txn then waits for one that names a
        // kept version (the burst's last). Per-txn versions were a fifth of
        // a follower's CPU under writes.
        let link = self.following().link_id();
        let next_waiting = link.is_some_and(|l| {
            self.zab_mut()
                .events
                .next_is_packet(l, &[qw::PROPOSAL, qw::INFORM])
        });
        let version = (!next_waiting).then(|| self.tree.clone());
        let f = self.following();
        f.log_batch.push((header, op));
        f.w.proposed.push_back(Proposed {
            header,
            version,
            events: events.into_iter().map(|e| (zxid, e)).collect(),
            result,
            closed_owner,
        });
    }

    /// COMMIT (or INFORM) up to `zxid`: publish its version with the
    /// events and the answers to this server's forwarded requests. Without
    /// a kept version at `zxid`, up to the last kept one below it; when
    /// every applied txn is committed, the working tree itself.
    async fn publish_applied(&mut self, zxid: i64, io: &Io<'_>) {
        let all_committed = self.tree.last_zxid() <= zxid;
        let proposed = &self.following().w.proposed;
        let take = if all_committed {
            proposed.len()
        } else {
            proposed
                .iter()
                .rposition(|p| p.header.zxid <= zxid && p.version.is_some())
                .map_or(0, |i| i + 1)
        };
        if take == 0 && self.tree.last_zxid() != zxid {
            return;
        }
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        let mut version = None;
        for _ in 0..take {
            let p = self.following().w.proposed.pop_front().expect("counted");
            batch.events.extend(p.events);
            self.answer_local(&p.header, p.result, p.closed_owner, &mut batch);
            version = p.version;
        }
        // `take == 0` here is a DIFF's start: the logged history is committed.
        let version = match version {
            Some(v) if !all_committed => v,
            _ => self.tree.clone(),
        };
        self.release_learner_syncs(version.last_zxid(), &mut batch);
        self.publish(batch, version, None, io.outbox).await;
    }

    /// Matches a committed txn to this server's waiting client, if any.
    fn answer_local(
        &mut self,
        header: &TxnHeader,
        result: TxnResult,
        closed_owner: Option<ConnRef>,
        batch: &mut Batch,
    ) {
        let zab = self.zab.as_mut().expect("an ensemble member");
        let Role::Following(f) = &mut zab.role else {
            return;
        };
        f.w.answer(header, result, closed_owner, &self.sessions, batch);
    }

    /// SYNC from the leader: the oldest forwarded sync may be answered once
    /// every commit received before it is published.
    async fn on_sync_reply(&mut self, io: &Io<'_>) {
        let f = self.following();
        let Some(mut sync) = f.w.syncs.pop_front() else {
            warn!("SYNC from the leader with no sync waiting");
            return;
        };
        sync.release_zxid = f.last_commit_seen;
        f.w.released.push_back(sync);
        let published = self.published.last_zxid();
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        self.release_learner_syncs(published, &mut batch);
        if !batch.is_empty() {
            self.publish_answers(batch, io.outbox).await;
        }
    }

    fn release_learner_syncs(&mut self, published_zxid: i64, batch: &mut Batch) {
        let f = self.following();
        while f
            .w
            .released
            .front()
            .is_some_and(|s| s.release_zxid <= published_zxid)
        {
            let sync = f.w.released.pop_front().expect("not empty");
            batch.requests += 1;
            batch.replies[sync.conn.shard].push(WriteReply {
                conn_id: sync.conn.conn_id,
                xid: sync.xid,
                zxid: published_zxid,
                outcome: WriteOutcome::Sync(sync.path),
            });
        }
    }

    fn learner_send(&mut self, packet: Packet) {
        let me = self.zab_mut().me();
        let f = self.following();
        let Some(link) = f.link.clone() else { return };
        let packet = match packet {
            Packet::LearnerInfo {
                kind,
                accepted_epoch,
            } => {
                let kind = match kind {
                    LearnerKind::Participant => qw::LearnerKind::Follower,
                    LearnerKind::Observer => qw::LearnerKind::Observer,
                };
                let info = LearnerInfo {
                    sid: me,
                    protocol_version: qw::ZAB_PROTOCOL_VERSION,
                    config_version: Some(0),
                };
                learner_info_packet(kind, accepted_epoch, &info)
            }
            Packet::AckEpoch {
                current_epoch,
                last_zxid,
            } => ack_epoch_packet(&AckEpoch {
                current_epoch: current_epoch.map_or(qw::ACKEPOCH_ALREADY_ACCEPTED, |e| e as i32),
                last_logged_zxid: last_zxid,
            }),
            Packet::Ack { zxid } => QuorumPacket::bare(qw::ACK, zxid),
            Packet::Ping => {
                let touched: Vec<SessionId> = f.touched.drain().collect();
                let zxid = f.last_ping_zxid;
                let mut data = Vec::new();
                for id in touched {
                    if let Some(s) = self.sessions.get(id) {
                        data.extend_from_slice(&id.to_be_bytes());
                        data.extend_from_slice(&s.timeout_ms.to_be_bytes());
                    }
                }
                QuorumPacket::with_data(qw::PING, zxid, data)
            }
        };
        if !link.send(&packet) {
            warn!("the link to the leader is full or closed; leaving it");
            link.close();
        }
    }

    /// A shard's message while serving as a learner.
    pub(super) fn learner_handle(&mut self, msg: ToPipeline, batch: &mut Batch, _io: &Io<'_>) {
        match msg {
            ToPipeline::Write(write) => self.forward_write(write, batch),
            ToPipeline::Connect(connect) => self.learner_connect(connect, batch),
            ToPipeline::Touch(ids) => {
                let f = self.following();
                for id in ids {
                    if f.touched.len() < crate::limits::SESSIONS_MAX {
                        f.touched.insert(id);
                    }
                }
            }
            ToPipeline::Disconnected { conn, session_id } => self.sessions.detach(session_id, conn),
            ToPipeline::Wake => {}
        }
    }

    /// Whether another forwarded request fits (backpressure otherwise).
    pub(super) fn learner_has_room(&mut self) -> bool {
        self.following().has_room()
    }

    fn forward_write(&mut self, w: WriteMsg, batch: &mut Batch) {
        batch.requests += 1;
        let error = if w.op == OP_RECONFIG {
            Some(ErrorCode::ReconfigDisabled)
        } else if !self.sessions.is_live(w.session_id) {
            Some(ErrorCode::SessionExpired)
        } else {
            None
        };
        if let Some(code) = error {
            let zxid = self.published.last_zxid();
            batch.replies[w.conn.shard].push(WriteReply {
                conn_id: w.conn.conn_id,
                xid: w.xid,
                zxid,
                outcome: WriteOutcome::Error(code),
            });
            return;
        }
        let f = self.following();
        if w.op == OP_SYNC {
            let path = match Request::decode(w.op, &w.body) {
                Ok(Request::Sync { path }) => path.to_string(),
                _ => "/".to_string(),
            };
            f.w.syncs.push_back(SyncWait {
                conn: w.conn,
                session_id: w.session_id,
                xid: w.xid,
                path,
                body: w.body.clone(),
                release_zxid: 0,
            });
        } else {
            f.w.pending
                .entry(w.session_id)
                .or_default()
                .push_back(Waiting {
                    conn: w.conn,
                    xid: w.xid,
                    op: w.op,
                    body: w.body.clone(),
                    auth: w.auth.clone(),
                });
            f.w.pending_count += 1;
        }
        self.send_request(w.session_id, w.xid, w.op, &w.body, Some(auth_ids(&w.auth)));
    }

    fn learner_connect(&mut self, c: ConnectMsg, batch: &mut Batch) {
        let outcome = if c.last_zxid_seen > self.published.last_zxid() {
            ConnectOutcome::TooNew
        } else if c.session_id == 0 {
            if self.sessions.is_full() {
                ConnectOutcome::Expired
            } else {
                let id = self.sessions.allocate_id();
                let timeout_ms = self.cfg.negotiate_timeout_ms(c.timeout_ms);
                self.following().w.connects.insert(id, (c.conn, timeout_ms));
                let body = timeout_ms.to_be_bytes();
                self.send_request(id, 0, OP_CREATE_SESSION, &body, None);
                return;
            }
        } else {
            let now = self.now_ms();
            match self.sessions.attach(c.session_id, &c.password, c.conn, now) {
                Ok((previous, timeout_ms)) => {
                    if let Some(old) = previous {
                        batch.closes[old.shard].push((old.conn_id, CloseReason::SessionMoved));
                    }
                    // The leader confirms the session is alive and moves it here
                    // (`Learner.validateSession`); the handshake waits for that.
                    let id = c.session_id;
                    self.following()
                        .w
                        .revalidating
                        .push_back((id, c.conn, timeout_ms));
                    let mut body = id.to_be_bytes().to_vec();
                    body.extend_from_slice(&timeout_ms.to_be_bytes());
                    self.send_packet(QuorumPacket::with_data(qw::REVALIDATE, -1, body));
                    return;
                }
                Err(_) => ConnectOutcome::Expired,
            }
        };
        batch.connects[c.conn.shard].push(ConnectReply {
            conn_id: c.conn.conn_id,
            outcome,
        });
    }

    fn send_request(
        &mut self,
        session_id: SessionId,
        cxid: i32,
        op: i32,
        body: &[u8],
        auth: Option<Vec<Id>>,
    ) {
        let mut data = Vec::with_capacity(16 + body.len());
        data.extend_from_slice(&session_id.to_be_bytes());
        data.extend_from_slice(&cxid.to_be_bytes());
        data.extend_from_slice(&op.to_be_bytes());
        data.extend_from_slice(body);
        let packet = QuorumPacket {
            packet_type: qw::REQUEST,
            zxid: -1,
            data: Some(data),
            authinfo: auth,
        };
        self.send_packet(packet);
    }

    fn send_packet(&mut self, packet: QuorumPacket) {
        if let Some(link) = self.following().link.clone() {
            if !link.send(&packet) {
                warn!("the link to the leader is full or closed; leaving it");
                link.close();
            }
        }
    }

    /// Synced with a new leader: what the previous one never committed is
    /// asked of this one, in each session's order (see `waiters`).
    fn resend_waiting(&mut self) {
        let w = &mut self.following().w;
        let mut writes: Vec<(SessionId, i32, i32, Bytes, Vec<Id>)> = Vec::new();
        for (&id, queue) in &w.pending {
            for waiting in queue {
                let ids = auth_ids(&waiting.auth);
                writes.push((id, waiting.xid, waiting.op, waiting.body.clone(), ids));
            }
        }
        let connects: Vec<(SessionId, i32)> =
            w.connects.iter().map(|(&id, &(_, t))| (id, t)).collect();
        let revalidating: Vec<(SessionId, i32)> =
            w.revalidating.iter().map(|&(id, _, t)| (id, t)).collect();
        let syncs = w.syncs_to_resend();
        let resent = writes.len() + connects.len() + revalidating.len() + syncs.len();
        if resent > 0 {
            info!("asking the new leader again for {resent} forwarded requests the old one did not commit");
        }
        for (id, timeout_ms) in connects {
            self.send_request(id, 0, OP_CREATE_SESSION, &timeout_ms.to_be_bytes(), None);
        }
        for (id, timeout_ms) in revalidating {
            let mut body = id.to_be_bytes().to_vec();
            body.extend_from_slice(&timeout_ms.to_be_bytes());
            self.send_packet(QuorumPacket::with_data(qw::REVALIDATE, -1, body));
        }
        for (id, xid, op, body, ids) in writes {
            self.send_request(id, xid, op, &body, Some(ids));
        }
        for sync in syncs {
            self.send_request(sync.session_id, sync.xid, OP_SYNC, &sync.body, None);
            self.following().w.syncs.push_back(sync);
        }
    }

    /// REVALIDATE's answer `{long sessionId, bool valid}`: the held handshake
    /// of that session is granted, or told its session expired.
    async fn on_revalidated(&mut self, data: Option<&[u8]>, io: &Io<'_>) {
        let mut r = Reader::new(data.unwrap_or_default());
        let (Ok(id), Ok(valid)) = (r.i64(), r.bool()) else {
            return self.leave_leader("bad REVALIDATE answer", io).await;
        };
        let f = self.following();
        let Some(at) = f.w.revalidating.iter().position(|(s, _, _)| *s == id) else {
            return;
        };
        let (_, conn, timeout_ms) = f.w.revalidating.remove(at).expect("found");
        let outcome = if valid {
            ConnectOutcome::Granted {
                session_id: id,
                timeout_ms,
                password: self.sessions.password(id),
            }
        } else {
            self.sessions.detach(id, conn);
            ConnectOutcome::Expired
        };
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        batch.connects[conn.shard].push(ConnectReply {
            conn_id: conn.conn_id,
            outcome,
        });
        self.publish_answers(batch, io.outbox).await;
    }
}

/// The ids a REQUEST carries for the leader's ACL checks (`super` for a
/// super user, as ZooKeeper's `AuthenticationProvider` names it).
fn auth_ids(auth: &crate::tree::acl::AuthInfo) -> Vec<Id> {
    let mut ids = auth.ids.clone();
    if auth.is_super {
        ids.push(Id::new("super", ""));
    }
    ids
}

fn role_name(kind: LearnerKind) -> &'static str {
    match kind {
        LearnerKind::Participant => "FOLLOWING",
        LearnerKind::Observer => "OBSERVING",
    }
}

/// Connects to the leader's quorum port, retrying until `within` ends (the
/// leader may still be opening its port).
/// Connects to the leader's quorum port, retrying until `within`; then
/// TLS over it with `sslQuorum` (a failed handshake is not retried here:
/// the learner's next attempt dials again).
async fn connect(
    attempt: u64,
    addr: std::net::SocketAddr,
    within: Duration,
    tls: Option<&QuorumTls>,
    host: &str,
) -> QuorumEvent {
    let started = std::time::Instant::now();
    let retry = Duration::from_millis(qlimits::LEARNER_CONNECT_RETRY_MS);
    loop {
        let left = within.saturating_sub(started.elapsed());
        match TcpStream::connect_timeout(addr, left.max(retry)).await {
            Ok(stream) => {
                return match secure::connect(stream, tls, host).await {
                    Ok(stream) => QuorumEvent::Connected { attempt, stream },
                    Err(why) => QuorumEvent::ConnectFailed {
                        attempt,
                        why: format!("{addr}: {why}"),
                    },
                }
            }
            Err(e) if started.elapsed() + retry >= within => {
                return QuorumEvent::ConnectFailed {
                    attempt,
                    why: format!("{addr}: {e}"),
                }
            }
            Err(_) => glommio::timer::sleep(retry).await,
        }
    }
}
