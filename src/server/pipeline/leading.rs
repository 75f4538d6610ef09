//! The pipeline as the leader: it drives a `zab::leader::Leader` core.
//! Writes (its own clients' and learners' REQUESTs) are prepped and applied
//! to the working tree as in a standalone server; each txn is proposed to
//! the participants as it is prepped, its batch is group-committed to the
//! local log, and the batch is published (answered) once the core commits
//! its last txn: a quorum of voters, the leader's fdatasync included, holds it.
//!
//! A learner's link is identified by its first packet (FOLLOWERINFO or
//! OBSERVERINFO); a link that says something else first, names a server
//! not in the ensemble, or cannot keep up with its send queue is closed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, error, info, warn};

use super::roles::{Forwarded, Io, Role};
use super::Pipeline;
use crate::limits::quorum as qlimits;
use crate::proto::jute::Reader;
use crate::proto::{perms, Acl, ErrorCode, Id, SessionId};
use crate::replica::link::{self, LinkId, LinkOut};
use crate::replica::secure::LinkStream;
use crate::replica::status::{Mode, ObserverInfo};
use crate::server::batch::Batch;
use crate::server::inbox::Inbox;
use crate::server::messages::{
    CommitTiming, ConnectOutcome, ConnectReply, ToPipeline, WriteOutcome, WriteReply,
};
use crate::tree::acl::digest;
use crate::tree::acl::AuthInfo;
use crate::tree::{CreateKind, CreateReq, WriteReq};
use crate::tree::{TxnHeader, TxnOp};
use crate::zab::election::Sid;
use crate::zab::leader::{Action, Input, Leader, LearnerKind, Packet, ProposeError, Timing};
use crate::zab::quorum_wire::{
    self as qw, decode_ack_epoch, decode_learner_info_packet, leader_info_packet,
    new_leader_packet, QuorumPacket,
};
use crate::zab::snap_wire::encode::SnapEncoder;
use crate::zab::sync::SyncKind;
use crate::zab::txn_wire::encode_txn_op;
use rand::Rng;

/// ZooKeeper's client opcodes a learner forwards besides writes.
const OP_SYNC: i32 = 9;
const OP_CREATE_SESSION: i32 = -10;
const OP_CLOSE_SESSION: i32 = -11;

pub(super) struct Leading {
    pub core: Leader,
    links: HashMap<LinkId, Rc<LinkOut>>,
    sid_of: HashMap<LinkId, Sid>,
    link_of: BTreeMap<Sid, LinkId>,
    /// Forwarded syncs: the learner, and the zxid that must be committed
    /// before its SYNC goes out (`Leader.processSync`).
    syncs: VecDeque<(Sid, i64)>,
    /// Which server holds each session's client, as far as this leadership
    /// has seen (created, or revalidated there): a request from another
    /// server gets SESSIONMOVED (`SessionTrackerImpl.checkSession`). A
    /// session not listed (from before this leadership) is not checked.
    owners: HashMap<SessionId, Sid>,
    /// The last PROPOSAL's frame: encoded once, queued on every learner's link.
    proposal_frame: Option<(i64, Rc<[u8]>)>,
}

impl Leading {
    pub fn close_all(&self) {
        self.links.values().for_each(|l| l.close());
    }
}

impl Pipeline {
    fn leading(&mut self) -> &mut Leading {
        match &mut self.zab_mut().role {
            Role::Leading(l) => l,
            _ => unreachable!("called while leading"),
        }
    }

    pub(super) fn is_leading(&self) -> bool {
        matches!(self.zab.as_ref().map(|z| &z.role), Some(Role::Leading(_)))
    }

    pub(super) async fn start_leading(&mut self, io: &Io<'_>) {
        let now = self.now_ms();
        let tick = self.cfg.tick_time_ms as u64;
        let timing = Timing {
            init_limit_ms: tick * self.cfg.init_limit_ticks as u64,
            sync_limit_ms: tick * self.cfg.sync_limit_ticks as u64,
            ping_interval_ms: (tick / 2).max(1),
        };
        let last_zxid = self.tree.last_zxid();
        let zab = self.zab_mut();
        if zab.history.last_zxid() != last_zxid {
            zab.history.reset(last_zxid);
        }
        let (core, actions) = Leader::new(
            zab.me(),
            zab.ensemble.voters(),
            timing,
            zab.epochs.accepted,
            zab.epochs.current,
            zab.history.base(),
            &zab.history.zxids(),
            now,
        );
        zab.role = Role::Leading(Box::new(Leading {
            core,
            links: HashMap::new(),
            sid_of: HashMap::new(),
            link_of: BTreeMap::new(),
            syncs: VecDeque::new(),
            proposal_frame: None,
            owners: HashMap::new(),
        }));
        info!("LEADING: discovery from zxid 0x{last_zxid:x}");
        self.leader_actions(actions, io).await;
    }

    pub(super) fn adopt_learner_link(&mut self, stream: LinkStream) {
        let id = self.zab_mut().next_id();
        let events = self.zab_mut().events.clone();
        let leading = self.leading();
        if leading.links.len() >= qlimits::LINKS_MAX {
            warn!(
                "quorum port: {} links open already; closing a new one",
                qlimits::LINKS_MAX
            );
            return;
        }
        let out = link::spawn(id, stream, events, false);
        leading.links.insert(id, out);
    }

    pub(super) async fn learner_link_closed(&mut self, link: LinkId, why: String, io: &Io<'_>) {
        let now = self.now_ms();
        let leading = self.leading();
        leading.links.remove(&link);
        let Some(sid) = leading.sid_of.remove(&link) else {
            return;
        };
        info!("learner {sid} left: {why}");
        if leading.link_of.get(&sid) != Some(&link) {
            return; // replaced by a newer connection of the same server
        }
        leading.link_of.remove(&sid);
        let actions = leading.core.step(now, Input::LearnerGone { from: sid });
        self.leader_actions(actions, io).await;
    }

    fn close_link(&mut self, link: LinkId, why: &str) {
        if let Some(out) = self.leading().links.get(&link) {
            warn!("closing quorum link {link}: {why}");
            out.close();
        }
    }

    pub(super) async fn on_learner_packet(
        &mut self,
        link: LinkId,
        packet: QuorumPacket,
        io: &Io<'_>,
    ) {
        let now = self.now_ms();
        if let Some(out) = self.leading().links.get(&link) {
            let counters = &out.learner;
            counters
                .packets_received
                .set(counters.packets_received.get() + 1);
            if packet.packet_type == qw::REQUEST {
                counters.requests.set(counters.requests.get() + 1);
            }
        }
        let Some(&sid) = self.leading().sid_of.get(&link) else {
            return self.on_learner_hello(link, packet, io).await;
        };
        let input = match packet.packet_type {
            qw::ACKEPOCH => match decode_ack_epoch(&packet) {
                Ok(ack) => Input::AckEpoch {
                    from: sid,
                    current_epoch: (ack.current_epoch >= 0).then_some(i64::from(ack.current_epoch)),
                    last_zxid: ack.last_logged_zxid,
                },
                Err(e) => return self.close_link(link, &format!("bad ACKEPOCH: {e}")),
            },
            qw::ACK => Input::Ack {
                from: sid,
                zxid: packet.zxid,
            },
            qw::PING => {
                self.touch_from_ping(packet.data.as_deref());
                Input::Heard { from: sid }
            }
            qw::REQUEST => {
                if let Err(why) = self.take_request(sid, packet) {
                    return self.close_link(link, why);
                }
                Input::Heard { from: sid }
            }
            qw::REVALIDATE => {
                self.revalidate(link, packet.data.as_deref());
                Input::Heard { from: sid }
            }
            other => {
                debug!("learner {sid}: ignoring packet type {other}");
                Input::Heard { from: sid }
            }
        };
        let actions = self.leading().core.step(now, input);
        self.leader_actions(actions, io).await;
    }

    /// A link's first packet names the learner.
    async fn on_learner_hello(&mut self, link: LinkId, packet: QuorumPacket, io: &Io<'_>) {
        let now = self.now_ms();
        let (kind, accepted_epoch, info) = match decode_learner_info_packet(&packet) {
            Ok(hello) => hello,
            Err(e) => {
                return self.close_link(link, &format!("first packet is not a LearnerInfo: {e}"))
            }
        };
        let sid = info.sid;
        let zab = self.zab_mut();
        if sid == zab.me() || !zab.ensemble.members.contains_key(&sid) {
            return self.close_link(
                link,
                &format!("server id {sid} is not a learner of this ensemble"),
            );
        }
        let kind = match kind {
            qw::LearnerKind::Follower => LearnerKind::Participant,
            qw::LearnerKind::Observer => LearnerKind::Observer,
        };
        let leading = self.leading();
        if let Some(old) = leading.link_of.insert(sid, link) {
            leading.sid_of.remove(&old);
            if let Some(out) = leading.links.get(&old) {
                out.close();
            }
        }
        leading.sid_of.insert(link, sid);
        info!("learner {sid} connected ({kind:?}, accepted epoch {accepted_epoch})");
        let actions = leading.core.step(
            now,
            Input::LearnerInfo {
                from: sid,
                kind,
                accepted_epoch,
            },
        );
        self.leader_actions(actions, io).await;
    }

    /// A PING reply's `{long sessionId, int timeout}*`: sessions touched on the learner.
    fn touch_from_ping(&mut self, data: Option<&[u8]>) {
        let Some(data) = data else { return };
        let now = self.now_ms();
        let mut r = Reader::new(data);
        while let (Ok(id), Ok(_timeout)) = (r.i64(), r.i32()) {
            self.sessions.touch(id, now);
        }
    }

    /// REVALIDATE `{long sessionId, int timeout}`: is the session alive?
    /// Answered `{long sessionId, bool valid}` (`LearnerHandler.run`).
    fn revalidate(&mut self, link: LinkId, data: Option<&[u8]>) {
        let Some(id) = data.and_then(|d| Reader::new(d).i64().ok()) else {
            return self.close_link(link, "bad REVALIDATE");
        };
        let now = self.now_ms();
        let valid = self.sessions.touch(id, now);
        if valid {
            let leading = self.leading();
            if let Some(&sid) = leading.sid_of.get(&link) {
                leading.owners.insert(id, sid);
            }
        }
        let mut reply = id.to_be_bytes().to_vec();
        reply.push(u8::from(valid));
        let packet = QuorumPacket::with_data(qw::REVALIDATE, -1, reply);
        if let Some(out) = self.leading().links.get(&link) {
            out.send(&packet);
        }
    }

    /// REQUEST `{long sessionId, int cxid, int type}` + the request body,
    /// with the client's auth ids.
    fn take_request(&mut self, from: Sid, packet: QuorumPacket) -> Result<(), &'static str> {
        let data = Bytes::from(packet.data.ok_or("REQUEST without data")?);
        let mut r = Reader::new(&data);
        let (Ok(session_id), Ok(cxid), Ok(op)) = (r.i64(), r.i32(), r.i32()) else {
            return Err("REQUEST too short");
        };
        let ids: Vec<Id> = packet.authinfo.unwrap_or_default();
        let is_super = ids.iter().any(|id| id.scheme == "super");
        let zab = self.zab_mut();
        if zab.forwarded.len() >= crate::limits::PIPELINE_INBOX_MAX {
            return Err("too many forwarded requests queued");
        }
        zab.forwarded.push_back(Forwarded {
            from,
            session_id,
            cxid,
            op,
            body: data.slice(16..),
            auth: AuthInfo { ids, is_super },
        });
        Ok(())
    }

    pub(super) async fn leader_tick(&mut self, now_ms: u64, io: &Io<'_>) {
        let actions = self.leading().core.step(now_ms, Input::Tick);
        self.leader_actions(actions, io).await;
        if matches!(self.zab_mut().role, Role::Leading(_)) {
            self.publish_observers();
        }
    }

    /// The synced observers' link details for the AdminServer's
    /// `observers` (a few entries, every ZAB tick).
    fn publish_observers(&mut self) {
        let status = self.stats.clone();
        let leading = self.leading();
        let observers = leading
            .core
            .synced_observer_sids()
            .filter_map(|sid| {
                let out = leading.links.get(leading.link_of.get(&sid)?)?;
                let (queued_packets, queued_bytes) = out.queued();
                let c = &out.learner;
                Some(ObserverInfo {
                    remote_socket_address: out.remote_address().to_string(),
                    sid,
                    established_unix_ms: c.established_unix_ms.get(),
                    queued_packets,
                    queued_bytes,
                    packets_received: c.packets_received.get(),
                    packets_sent: out.packets_sent(),
                    requests: c.requests.get(),
                    last_zxid: c.last_zxid.get(),
                })
            })
            .collect();
        status.replica.set_observers(observers);
    }

    /// The leader's own log is durable up to `zxid`.
    pub(super) async fn leader_durable(&mut self, zxid: i64, io: &Io<'_>) {
        let now = self.now_ms();
        let actions = self.leading().core.step(now, Input::Durable { zxid });
        self.leader_actions(actions, io).await;
        let committed = self.leading().core.last_committed();
        self.publish_committed(committed, io).await;
    }

    /// Takes one forwarded or local request; false if there is none, or
    /// no room for more proposals (backpressure until commits free some).
    pub(super) fn leader_take_one(&mut self, queue: &Inbox, batch: &mut Batch) -> bool {
        let outstanding = self.leading().core.outstanding() + batch.txns.len();
        // A request makes at most one txn, a session close one per session.
        if outstanding + 1 >= qlimits::OUTSTANDING_PROPOSALS_MAX {
            return false;
        }
        if let Some(write) = self.zab_mut().replay.pop_front() {
            self.handle(ToPipeline::Write(write), batch);
            return true;
        }
        if let Some(forwarded) = self.zab_mut().forwarded.pop_front() {
            self.handle_forwarded(forwarded, batch);
            return true;
        }
        match self.next_message(queue) {
            Some(msg) => {
                self.handle(msg, batch);
                true
            }
            None => false,
        }
    }

    /// A learner's request. Every outcome but a sync is a txn (failures as
    /// error txns), since the learner answers its client from the commit.
    fn handle_forwarded(&mut self, f: Forwarded, batch: &mut Batch) {
        batch.requests += 1;
        let now = self.now_ms();
        let header = self.header(f.session_id, f.cxid);
        match f.op {
            OP_CREATE_SESSION => {
                let requested = Reader::new(&f.body).i32().unwrap_or(0);
                let timeout_ms = self.cfg.negotiate_timeout_ms(requested);
                if self.sessions.get(f.session_id).is_none() {
                    self.sessions.insert(f.session_id, timeout_ms, None, now);
                }
                self.leading().owners.insert(f.session_id, f.from);
                self.commit_txn(header, TxnOp::CreateSession { timeout_ms }, batch);
            }
            OP_SYNC => {
                let zxid = self.leading().core.last_proposed();
                self.leading().syncs.push_back((f.from, zxid));
                self.release_syncs();
            }
            _ if self.moved_away(f.session_id, Some(f.from)) => {
                self.commit_txn(header, TxnOp::Error(ErrorCode::SessionMoved), batch);
            }
            OP_CLOSE_SESSION if self.sessions.is_live(f.session_id) => {
                self.sessions.begin_close(f.session_id);
                self.commit_txn(header, TxnOp::CloseSession, batch);
                self.sessions.remove(f.session_id);
                self.forget_owner(f.session_id);
            }
            _ if !self.sessions.is_live(f.session_id) => {
                self.commit_txn(header, TxnOp::Error(ErrorCode::SessionExpired), batch);
            }
            op => {
                self.sessions.touch(f.session_id, now);
                let outcome = self.execute_write(f.session_id, f.cxid, op, &f.body, &f.auth, batch);
                match outcome {
                    WriteOutcome::Error(code) => {
                        let header = self.header(f.session_id, f.cxid);
                        self.commit_txn(header, TxnOp::Error(code), batch);
                    }
                    WriteOutcome::Sync(_) | WriteOutcome::Txn(_) | WriteOutcome::SessionClosed => {}
                }
            }
        }
    }

    /// Whether the session's client is known to be on another server than
    /// `at` (a learner, or None for this leader's own clients).
    pub(super) fn moved_away(&mut self, session_id: SessionId, at: Option<Sid>) -> bool {
        if !self.is_leading() {
            return false;
        }
        let me = self.zab_mut().me();
        let at = at.unwrap_or(me);
        self.leading()
            .owners
            .get(&session_id)
            .is_some_and(|&owner| owner != at)
    }

    /// A closed or expired session's owner is forgotten, so the map stays
    /// bounded by the live sessions (`SESSIONS_MAX`).
    pub(super) fn forget_owner(&mut self, session_id: SessionId) {
        if self.is_leading() {
            self.leading().owners.remove(&session_id);
        }
    }

    /// This leader's own client created or resumed the session.
    pub(super) fn own_session_here(&mut self, session_id: SessionId) {
        if self.is_leading() {
            let me = self.zab_mut().me();
            self.leading().owners.insert(session_id, me);
        }
    }

    /// Sends SYNC for every forwarded sync whose zxid is committed.
    fn release_syncs(&mut self) {
        let leading = self.leading();
        let committed = leading.core.last_committed();
        while let Some(&(sid, zxid)) = leading.syncs.front() {
            if zxid > committed {
                break;
            }
            leading.syncs.pop_front();
            if let Some(out) = leading.link_of.get(&sid).and_then(|l| leading.links.get(l)) {
                out.send(&QuorumPacket::bare(qw::SYNC, 0));
            }
        }
    }

    /// The leader's hook in `commit_txn`: propose the txn to the
    /// participants and keep its bytes for syncs. Returns the op to apply
    /// (an error txn if the op has no ZooKeeper record: never diverge).
    pub(super) fn propose_txn(&mut self, header: &TxnHeader, op: TxnOp) -> TxnOp {
        if !self.is_leading() {
            return op;
        }
        let mut bytes = Vec::new();
        let op = match encode_txn_op(header, &op, &self.tree, None, &mut bytes) {
            Ok(()) => op,
            Err(e) => {
                error!(
                    "txn 0x{:x} has no ZooKeeper record ({e}); logging an error txn",
                    header.zxid
                );
                let op = TxnOp::Error(ErrorCode::MarshallingError);
                bytes.clear();
                let _ = encode_txn_op(header, &op, &self.tree, None, &mut bytes);
                op
            }
        };
        let now = self.now_ms();
        match self.leading().core.propose(now) {
            Ok((zxid, actions)) => {
                debug_assert_eq!(zxid, header.zxid, "the pipeline and the core count alike");
                let bytes: Rc<[u8]> = bytes.into();
                self.zab_mut().history.push(zxid, bytes);
                let base = self.zab_mut().history.base();
                let leading = self.leading();
                let committed = leading.core.last_committed();
                leading.core.trim_history(base.min(committed));
                for action in actions {
                    if let Action::Send { to, packet } = action {
                        self.leader_send(to, packet);
                    }
                }
            }
            Err(ProposeError::CounterExhausted) => {
                error!("zxid counter used up (ZOOKEEPER-1277): stepping down for a new epoch")
            }
            Err(e) => error!("proposal refused ({e:?}): the txn stays unproposed"),
        }
        op
    }

    async fn leader_actions(&mut self, actions: Vec<Action>, io: &Io<'_>) {
        for action in actions {
            if !self.is_leading() {
                return;
            }
            match action {
                Action::PersistAcceptedEpoch(epoch) => {
                    if self.persist_epoch(true, epoch).is_err() {
                        return self.become_looking("cannot write acceptedEpoch", io).await;
                    }
                }
                Action::PersistCurrentEpoch(epoch) => {
                    if self.persist_epoch(false, epoch).is_err() {
                        return self.become_looking("cannot write currentEpoch", io).await;
                    }
                }
                Action::Send { to, packet } => self.leader_send(to, packet),
                // The batch holding the txn is already on its way to the log.
                Action::Append { .. } => {}
                Action::Commit { zxid } => self.publish_committed(zxid, io).await,
                Action::Activate { epoch } => self.activate(epoch, io).await,
                Action::Drop { sid, reason } => {
                    if let Some(&link) = self.leading().link_of.get(&sid) {
                        self.close_link(link, &format!("learner {sid} dropped: {reason:?}"));
                    }
                }
                Action::StepDown(reason) => {
                    return self
                        .become_looking(&format!("stepped down as leader: {reason:?}"), io)
                        .await
                }
            }
        }
        let stats = self.status();
        let leading = self.leading();
        stats.replica.set_learners(
            leading.sid_of.len(),
            leading.core.synced_followers(),
            leading.core.synced_observers(),
        );
        stats.replica.set_pending_syncs(leading.syncs.len());
    }

    /// A quorum acknowledged NEWLEADER: serve writes, with every session's
    /// clock restarted (no session expires because of the failover).
    async fn activate(&mut self, epoch: i64, io: &Io<'_>) {
        self.next_zxid = qw::make_zxid(epoch, 1);
        let now = self.now_ms();
        self.sessions.touch_all(now);
        self.settle_carried(io).await;
        if self.lacks_password_key() {
            self.create_password_key(io).await;
        }
        let me = self.zab_mut().me();
        self.zab_mut().elector.update_epoch(epoch);
        self.stats.replica.set_mode(Mode::Leader, Some(me as u64));
        info!(
            "LEADING: epoch {epoch} established, serving from zxid 0x{:x}",
            self.tree.last_zxid()
        );
    }

    /// A learner that became the leader: the txns it had logged for its
    /// clients are committed now (its log is the new epoch's history), and
    /// their answers go out with the version that holds them, events first.
    fn answer_carried_logged(&mut self, batch: &mut Batch) {
        let zab = self.zab.as_mut().expect("an ensemble member");
        if let Some(w) = zab.carried.as_mut() {
            w.answer_proposed(&self.sessions, batch);
        }
    }

    /// At activation, what its clients still waited for as a learner: writes
    /// it never logged run as its own clients' (no leader committed them);
    /// resumed sessions are answered from its table, syncs at once (all is
    /// committed), and new sessions in doubt are closed (their client
    /// simply connects again).
    async fn settle_carried(&mut self, io: &Io<'_>) {
        let Some(mut w) = self.zab_mut().carried.take() else {
            return;
        };
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        w.answer_proposed(&self.sessions, &mut batch);
        let replay = w.take_writes();
        let now = self.now_ms();
        for (id, conn, timeout_ms) in std::mem::take(&mut w.revalidating) {
            let outcome = if self.sessions.touch(id, now) {
                self.own_session_here(id);
                ConnectOutcome::Granted {
                    session_id: id,
                    timeout_ms,
                    password: self.sessions.password(id),
                }
            } else {
                ConnectOutcome::Expired
            };
            batch.connects[conn.shard].push(ConnectReply {
                conn_id: conn.conn_id,
                outcome,
            });
        }
        let zxid = self.published.last_zxid();
        for sync in w.syncs_to_resend() {
            batch.replies[sync.conn.shard].push(WriteReply {
                conn_id: sync.conn.conn_id,
                xid: sync.xid,
                zxid,
                outcome: WriteOutcome::Sync(sync.path),
            });
        }
        w.close_clients(&mut batch);
        if !replay.is_empty() {
            info!(
                "running {} requests of this server's clients that no leader committed",
                replay.len()
            );
        }
        self.zab_mut().replay.extend(replay);
        self.publish_answers(batch, io.outbox).await;
    }

    /// The first leader of a Ferrokeeper ensemble writes its password key
    /// (see `roles::PASSWORD_KEY_PATH`) before it serves anything.
    async fn create_password_key(&mut self, io: &Io<'_>) {
        let mut rng = rand::thread_rng();
        let key: [u8; 32] = rng.gen();
        let lock: [u8; 16] = rng.gen();
        let lock: String = lock.iter().map(|b| format!("{b:02x}")).collect();
        let acl = [Acl {
            perms: perms::ALL,
            id: Id::new("digest", &digest(&format!("ferrokeeper:{lock}"))),
        }];
        let header = self.header(0, 0);
        let req = WriteReq::Create(CreateReq {
            path: super::roles::PASSWORD_KEY_PATH,
            data: Some(Bytes::copy_from_slice(&key)),
            acl: &acl,
            flags: 0,
            ttl_ms: None,
            kind: CreateKind::Create,
        });
        match self
            .tree
            .prep(&header, req, &self.system_auth, &self.prep_options)
        {
            Ok(op) => {
                let mut batch = Batch::new(io.outbox.len(), io.bounds);
                self.commit_txn(header, op, &mut batch);
                self.refresh_passwords();
                self.submit(batch, io.outbox, io.log_tx).await;
            }
            Err(code) => error!("cannot create the session password key: {code:?}"),
        }
    }

    fn leader_send(&mut self, to: Sid, packet: Packet) {
        let published = self.published.clone();
        let sessions: Vec<(i64, i32)> = match packet {
            Packet::Sync { plan, .. } if plan.kind == SyncKind::Snap => {
                self.sessions.iter().map(|s| (s.id, s.timeout_ms)).collect()
            }
            _ => Vec::new(),
        };
        let zab = self.zab.as_mut().expect("an ensemble member");
        let ensemble = &zab.ensemble;
        let history = &zab.history;
        let Role::Leading(leading) = &mut zab.role else {
            return;
        };
        let Some(out) = leading
            .link_of
            .get(&to)
            .and_then(|l| leading.links.get(l))
            .cloned()
        else {
            return;
        };
        if let Some(zxid) = packet_zxid(&packet) {
            out.learner.last_zxid.set(zxid);
        }
        let sent = match packet {
            Packet::LeaderInfo { new_epoch } => out.send(&leader_info_packet(new_epoch)),
            Packet::Sync { plan, proposals_to } => {
                let after = match plan.kind {
                    SyncKind::Diff => {
                        out.send(&QuorumPacket::bare(qw::DIFF, plan.last_committed));
                        plan.send_after
                    }
                    SyncKind::Trunc(zxid) => {
                        out.send(&QuorumPacket::bare(qw::TRUNC, zxid));
                        plan.send_after
                    }
                    SyncKind::Snap => {
                        // The published version is immutable and at most one
                        // batch behind the last commit; the txns between go
                        // after it as PROPOSAL+COMMIT pairs.
                        let at = published.last_zxid();
                        out.send(&QuorumPacket::bare(qw::SNAP, at));
                        out.send_snapshot(SnapEncoder::new(published, sessions));
                        at
                    }
                };
                send_history(&out, history, after, plan.last_committed, proposals_to)
            }
            // Formatted here only: once per learner sync, never per proposal
            // (it was 29% of a leader's CPU under writes).
            Packet::NewLeader { new_epoch } => out.send(&new_leader_packet(
                new_epoch,
                ensemble.config_text().as_bytes(),
            )),
            Packet::UpToDate => out.send(&QuorumPacket::bare(qw::UPTODATE, -1)),
            Packet::Proposal { zxid } => match &leading.proposal_frame {
                Some((at, frame)) if *at == zxid => out.send_frame(frame.clone()),
                _ => match history.get(zxid).map(|txn| {
                    link::encode_frame(&QuorumPacket::with_data(qw::PROPOSAL, zxid, txn.to_vec()))
                }) {
                    Some(Ok(frame)) => {
                        leading.proposal_frame = Some((zxid, frame.clone()));
                        out.send_frame(frame)
                    }
                    _ => false,
                },
            },
            Packet::Commit { zxid } => out.send(&QuorumPacket::bare(qw::COMMIT, zxid)),
            Packet::Inform { zxid } => match history.get(zxid) {
                Some(txn) => out.send(&QuorumPacket::with_data(qw::INFORM, zxid, txn.to_vec())),
                None => false,
            },
            Packet::Ping => out.send(&QuorumPacket::bare(qw::PING, leading.core.last_proposed())),
        };
        if !sent {
            warn!("learner {to}: send queue full or history missing; dropping it");
            out.close();
        }
    }

    /// Publishes every durable batch up to `zxid` (committed).
    pub(super) async fn publish_committed(&mut self, zxid: i64, io: &Io<'_>) {
        while let Some(front) = self.committing.front() {
            if front.version.last_zxid() > zxid {
                break;
            }
            let pending = self.committing.pop_front().expect("not empty");
            let timing = CommitTiming {
                submitted: pending.submitted,
                durable: Instant::now(),
            };
            self.publish(pending.batch, pending.version, Some(timing), io.outbox)
                .await;
        }
        // The history a new leader inherited: committed by NEWLEADER's quorum.
        let inherited = self.committing.is_empty() && self.in_flight.is_empty();
        if inherited && self.published.last_zxid() < zxid && self.tree.last_zxid() == zxid {
            let mut batch = Batch::new(io.outbox.len(), io.bounds);
            self.answer_carried_logged(&mut batch);
            let version = self.tree.clone();
            self.publish(batch, version, None, io.outbox).await;
        }
        if self.is_leading() {
            self.release_syncs();
        }
    }
}

/// PROPOSAL+COMMIT for the committed txns in `(after, committed]`, then a
/// PROPOSAL for each in `(committed, proposals_to]`; false if the history
/// does not hold them all (or the queue is full).
fn send_history(
    out: &LinkOut,
    history: &crate::replica::history::TxnHistory,
    after: i64,
    committed: i64,
    proposals_to: i64,
) -> bool {
    if after < history.base() && committed > after {
        return false;
    }
    for (zxid, txn) in history.range(after, proposals_to) {
        let proposal = QuorumPacket::with_data(qw::PROPOSAL, zxid, txn.to_vec());
        if !out.send(&proposal) {
            return false;
        }
        if zxid <= committed && !out.send(&QuorumPacket::bare(qw::COMMIT, zxid)) {
            return false;
        }
    }
    true
}

/// The zxid a packet to a learner carries, as LearnerHandler records its
/// `lastZxid` (none for LEADERINFO, NEWLEADER's epoch, UPTODATE and PING).
fn packet_zxid(packet: &Packet) -> Option<i64> {
    match packet {
        Packet::Proposal { zxid } | Packet::Commit { zxid } | Packet::Inform { zxid } => {
            Some(*zxid)
        }
        Packet::Sync { plan, .. } => Some(plan.last_committed),
        _ => None,
    }
}
