//! The pipeline executor: the single writer. It owns the session table and the
//! working tree (the newest state, including batches not yet durable). Per
//! batch it preps each write against that state, assigns zxids, and hands the
//! txns to the log executor; only when the log reports the batch synced does
//! it publish the new version with events and replies to every shard. While
//! one batch syncs, the next is prepared (at most `LOG_BATCHES_IN_FLIGHT_MAX`).

mod admin;
mod following;
mod leading;
mod read_only;
mod roles;
mod waiters;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use tracing::{debug, error, info, warn};

use super::batch::{Batch, BatchBounds, Pending};
use super::gather::ShardGather;
use super::inbox::{forward_log, forward_shard, Inbox};
use super::log::{LogDone, LogRequest};
use super::messages::*;
use super::quota_log::QuotaLog;
use super::session_dump::{self, SessionEntry, SessionList};
use super::stats::{self, ServerStats};
use crate::clock::unix_ms;
use crate::config::Config;
use crate::limits;
use crate::proto::{CreateMode, ErrorCode, Request, SessionId, Zxid};
use crate::replica::ZabStart;
use crate::session::{ConnRef, Passwords, SessionTable};
use crate::storage::OpenSessions;
use crate::tree::acl::AuthInfo;
use crate::tree::{
    data_len, CreateKind, CreateReq, DataTree, PrepOptions, TxnHeader, TxnOp, TxnResult, WriteReq,
};

pub struct Pipeline {
    cfg: Arc<Config>,
    tree: DataTree,
    sessions: SessionTable,
    /// Batches handed to the log executor, oldest first.
    in_flight: VecDeque<Pending>,
    next_seq: u64,
    /// The version shards have; the working tree returns to it if a batch
    /// cannot be logged.
    published: DataTree,
    /// Set when the log failed: writes are refused, reads go on.
    log_failed: bool,
    next_zxid: Zxid,
    started: Instant,
    prep_options: PrepOptions,
    /// Quota limits writes went over (`enforceQuota`), logged rate limited.
    quota_log: QuotaLog,
    /// The identity the server itself acts with (session close, reaping).
    system_auth: AuthInfo,
    published_zxid: Arc<AtomicI64>,
    stats: Arc<ServerStats>,
    /// Durable batches waiting for their commit (a leader's: a quorum's ACKs).
    committing: VecDeque<Pending>,
    /// The ensemble's part; None for a standalone server.
    zab: Option<roles::Zab>,
    /// Answers `dump`'s request for the session table, and the
    /// AdminServer's jobs.
    gather: Arc<ShardGather>,
    /// An AdminServer restore waiting for the batches in flight.
    restoring: Option<admin::PendingRestore>,
}

impl Pipeline {
    /// Starts from what recovery found: the tree, the last zxid, and the
    /// sessions still open (they expire on their normal schedule unless their
    /// clients reconnect, as in ZooKeeper).
    pub fn new(
        cfg: Arc<Config>,
        published_zxid: Arc<AtomicI64>,
        stats: Arc<ServerStats>,
        gather: Arc<ShardGather>,
        start: PipelineStart,
    ) -> Self {
        let server_id = cfg.my_id.unwrap_or(0) as u8;
        let prep_options = PrepOptions {
            extended_types_enabled: cfg.extended_types_enabled,
            enforce_quota: cfg.enforce_quota,
            x509_acls: cfg.tls.secure_client_port.is_some(),
        };
        // Every server of an ensemble must accept every session's password.
        // (A Ferrokeeper ensemble's key comes from its tree: `refresh_passwords`.)
        let passwords = match start.zab {
            Some(_) if cfg.zookeeper_session_passwords => Passwords::ZooKeeper,
            Some(_) => Passwords::Keyed([0; 16]),
            None => Passwords::Keyed(start.secret),
        };
        let mut sessions = SessionTable::with_passwords(server_id, unix_ms() as u64, passwords);
        for (id, timeout_ms) in start.sessions.iter() {
            sessions.insert(id, timeout_ms, None, 0);
        }
        Pipeline {
            published: start.tree.clone(),
            next_zxid: start.tree.last_zxid() + 1,
            tree: start.tree,
            sessions,
            in_flight: VecDeque::new(),
            next_seq: 0,
            log_failed: false,
            started: Instant::now(),
            prep_options,
            quota_log: QuotaLog::default(),
            system_auth: AuthInfo::superuser(),
            published_zxid,
            stats,
            committing: VecDeque::new(),
            zab: start.zab.map(roles::Zab::new),
            gather,
            restoring: None,
            cfg,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The pipeline's main loop: wait for work, a log completion or a tick;
    /// publish what the log made durable; take what is queued into the next
    /// batch and hand it to the log. Ends when every shard is gone.
    pub async fn run(mut self, channels: PipelineChannels) {
        let PipelineChannels {
            inbox,
            outbox,
            log_tx,
            log_rx,
        } = channels;
        let queue = Inbox::new(inbox.len());
        for (shard, rx) in inbox.into_iter().enumerate() {
            glommio::spawn_local(forward_shard(shard, rx, queue.clone())).detach();
        }
        glommio::spawn_local(forward_log(log_rx, queue.clone())).detach();
        let mut timers = Timers::new(&self.cfg, self.now_ms());
        let bounds = BatchBounds {
            requests_max: self.cfg.batch_requests_max,
            bytes_max: self.cfg.batch_bytes_max,
        };
        let io = roles::Io {
            outbox: &outbox,
            log_tx: &log_tx,
            queue: &queue,
            bounds,
        };
        let flush_delay = Duration::from_millis(self.cfg.flush_delay_ms);
        match self.zab.is_some() {
            // An ensemble member serves nothing until it has a leader.
            true => self.start_zab(),
            // Publish the recovered version so shards serve it.
            false => {
                self.submit(Batch::new(outbox.len(), bounds), &outbox, &log_tx)
                    .await
            }
        }
        // Once every shard is gone, requests held for want of a leader are dropped.
        while queue.open.get() > 0
            || (!queue.is_empty() && self.takes_requests())
            || !self.in_flight.is_empty()
        {
            // Wait unless a completion is ready, or there is work and room for
            // another batch. (Never loop without awaiting: the forwarders that
            // deliver completions run on this executor.)
            // Requests are the shards' messages and a leader's forwarded and
            // replayed writes alike: with no room to take them, the loop must
            // wait (which lets the tasks that deliver completions and packets run).
            let window_full = self.in_flight.len() >= limits::LOG_BATCHES_IN_FLIGHT_MAX;
            let no_requests = queue.is_empty() && !self.has_queued_requests();
            let idle = no_requests || window_full || !self.takes_requests() || self.at_a_bound();
            if !queue.has_log_done() && idle && !self.has_quorum_events() {
                let wait = self.wait_interval();
                let bells = futures_lite::future::or(queue.bell.wait(), self.zab_bell());
                futures_lite::future::or(bells, async {
                    glommio::timer::sleep(wait).await;
                })
                .await;
            }
            self.gather.answer_sessions_if_asked(|| self.session_list());
            while let Some(done) = queue.pop_log_done() {
                self.complete(done, &io).await;
            }
            self.run_admin_jobs(&io).await;
            self.zab_poll(&io).await;
            if self.in_flight.len() >= limits::LOG_BATCHES_IN_FLIGHT_MAX {
                continue;
            }
            let mut batch = Batch::new(outbox.len(), bounds);
            self.fill(&queue, &mut batch, &io);
            if !flush_delay.is_zero() && batch.requests > 0 && !batch.is_full() {
                // flushDelay: trade latency for larger batches (fewer syncs).
                glommio::timer::sleep(flush_delay).await;
                self.fill(&queue, &mut batch, &io);
            }
            self.run_timers(&mut timers, &mut batch, &log_tx).await;
            self.submit_follower_log(&io).await;
            if !batch.is_empty() {
                self.submit(batch, &outbox, &log_tx).await;
            }
        }
        self.stop_zab();
        let version = self.published.clone();
        let _ = log_tx.send(LogRequest::Shutdown { version }).await;
        info!("pipeline stopped");
    }

    /// Takes queued messages into `batch` until it is full or the queue is
    /// empty; nothing while this server cannot take requests (an ensemble
    /// member without a leader holds them, up to the inbox's bound).
    fn fill(&mut self, queue: &Inbox, batch: &mut Batch, io: &roles::Io<'_>) {
        while !batch.is_full() && self.takes_requests() {
            if self.zab.is_some() {
                if !self.fill_one_replicated(queue, batch, io) {
                    break;
                }
                continue;
            }
            let Some(msg) = queue.pop() else { break };
            self.handle(msg, batch);
        }
        queue.ring_space();
    }

    async fn run_timers(
        &mut self,
        timers: &mut Timers,
        batch: &mut Batch,
        log_tx: &ConnectedSender<LogRequest>,
    ) {
        let now = self.now_ms();
        // Only a standalone server or an active leader expires and reaps.
        let owner = self.owns_sessions();
        if owner && now >= timers.next_expiry_ms {
            self.expire_sessions(now, batch);
            timers.next_expiry_ms = now + self.cfg.tick_time_ms as u64 / 2;
        }
        if owner && now >= timers.next_reap_ms {
            self.reap(batch);
            timers.next_reap_ms = now + self.cfg.container_check_interval_ms;
        }
        if timers.purge_interval_ms > 0 && now >= timers.next_purge_ms {
            let _ = log_tx.send(LogRequest::Purge).await;
            timers.next_purge_ms = now + timers.purge_interval_ms;
        }
    }

    fn handle(&mut self, msg: ToPipeline, batch: &mut Batch) {
        let now = self.now_ms();
        match msg {
            ToPipeline::Write(write) => self.handle_write(write, batch),
            ToPipeline::Connect(connect) => self.handle_connect(connect, batch),
            ToPipeline::Touch(ids) => {
                for id in ids {
                    self.sessions.touch(id, now);
                }
            }
            ToPipeline::Disconnected { conn, session_id } => self.sessions.detach(session_id, conn),
            // The loop's turn already answered the gather.
            ToPipeline::Wake => {}
        }
    }

    /// The session table for `dump`, at most `SESSION_GATHER_MAX` sessions.
    fn session_list(&self) -> SessionList {
        let tick_ms = self.cfg.tick_time_ms as u64;
        let now_ms = self.now_ms();
        let elapsed_now_ms = crate::clock::elapsed_ms();
        let mut list = SessionList {
            expiring: self.owns_sessions(),
            ..SessionList::default()
        };
        for s in self.sessions.iter() {
            if list.sessions.len() == limits::admin::SESSION_GATHER_MAX {
                list.truncated = true;
                break;
            }
            let deadline_ms = elapsed_now_ms + s.deadline_ms.saturating_sub(now_ms);
            list.sessions.push(SessionEntry {
                id: s.id,
                timeout_ms: s.timeout_ms,
                expiry_ms: session_dump::round_to_next_tick(deadline_ms, tick_ms),
            });
        }
        list
    }

    fn header(&self, session_id: SessionId, cxid: i32) -> TxnHeader {
        TxnHeader {
            session_id,
            cxid,
            zxid: self.next_zxid,
            time_ms: unix_ms(),
        }
    }

    /// Applies a prepared txn to the working tree and queues it for the log.
    fn commit_txn(&mut self, header: TxnHeader, op: TxnOp, batch: &mut Batch) -> TxnResult {
        // A leader proposes the txn before applying it (its record names
        // what the tree held before, for closeSession's ephemerals).
        let op = self.propose_txn(&header, op);
        let mut events = Vec::new();
        let result = self.tree.apply(&header, &op, &mut events);
        let zxid = header.zxid;
        batch.events.extend(events.into_iter().map(|e| (zxid, e)));
        batch.txn_bytes += txn_size_estimate(&op);
        batch.txns.push((header, op));
        self.next_zxid += 1;
        result
    }

    fn handle_write(&mut self, msg: WriteMsg, batch: &mut Batch) {
        batch.requests += 1;
        let last_zxid = self.next_zxid - 1;
        let outcome = if self.log_failed {
            WriteOutcome::Error(ErrorCode::SystemError)
        } else if !self.sessions.is_live(msg.session_id) {
            WriteOutcome::Error(ErrorCode::SessionExpired)
        } else if self.moved_away(msg.session_id, None) {
            WriteOutcome::Error(ErrorCode::SessionMoved)
        } else {
            self.sessions.touch(msg.session_id, self.now_ms());
            self.execute_write(msg.session_id, msg.xid, msg.op, &msg.body, &msg.auth, batch)
        };
        let zxid = match &outcome {
            WriteOutcome::Txn(_) | WriteOutcome::SessionClosed => self.next_zxid - 1,
            _ => last_zxid,
        };
        batch.replies[msg.conn.shard].push(WriteReply {
            conn_id: msg.conn.conn_id,
            xid: msg.xid,
            zxid,
            outcome,
        });
    }

    /// Preps and applies one write of a live session (a client's, or one a
    /// learner forwarded) into `batch`.
    fn execute_write(
        &mut self,
        session_id: SessionId,
        xid: i32,
        op: i32,
        body: &Bytes,
        auth: &AuthInfo,
        batch: &mut Batch,
    ) -> WriteOutcome {
        let request = match Request::decode(op, body) {
            Ok(r) => r,
            Err(e) => {
                warn!("pipeline: undecodable write op {op}: {e}");
                return WriteOutcome::Error(ErrorCode::MarshallingError);
            }
        };
        let header = self.header(session_id, xid);
        match request {
            Request::Sync { path } => WriteOutcome::Sync(path.to_string()),
            Request::Reconfig { .. } => WriteOutcome::Error(ErrorCode::ReconfigDisabled),
            Request::CloseSession => {
                self.sessions.begin_close(session_id);
                self.commit_txn(header, TxnOp::CloseSession, batch);
                self.sessions.remove(session_id);
                self.forget_owner(session_id);
                WriteOutcome::SessionClosed
            }
            other => {
                let Some(req) = write_req(body, &other) else {
                    return WriteOutcome::Error(ErrorCode::Unimplemented);
                };
                let mut exceeded = Vec::new();
                let prepped = self.tree.prep_noting_quotas(
                    &header,
                    req,
                    auth,
                    &self.prep_options,
                    &mut exceeded,
                );
                for over in exceeded {
                    self.quota_log.note(over.to_string(), Instant::now());
                }
                match prepped {
                    Ok(op) => WriteOutcome::Txn(self.commit_txn(header, op, batch)),
                    Err(code) => WriteOutcome::Error(code),
                }
            }
        }
    }

    fn handle_connect(&mut self, msg: ConnectMsg, batch: &mut Batch) {
        let outcome = if msg.last_zxid_seen > self.next_zxid - 1 {
            ConnectOutcome::TooNew
        } else if msg.session_id == 0 {
            self.create_session(&msg, batch)
        } else {
            self.reattach_session(&msg, batch)
        };
        batch.connects[msg.conn.shard].push(ConnectReply {
            conn_id: msg.conn.conn_id,
            outcome,
        });
    }

    fn create_session(&mut self, msg: &ConnectMsg, batch: &mut Batch) -> ConnectOutcome {
        if self.log_failed || self.sessions.is_full() {
            warn!(
                "session table full; refusing a new session from {}",
                msg.peer_ip
            );
            return ConnectOutcome::Expired;
        }
        batch.requests += 1;
        let timeout_ms = self.cfg.negotiate_timeout_ms(msg.timeout_ms);
        let session_id = self.sessions.allocate_id();
        let header = self.header(session_id, 0);
        self.commit_txn(header, TxnOp::CreateSession { timeout_ms }, batch);
        self.sessions
            .insert(session_id, timeout_ms, Some(msg.conn), self.now_ms());
        self.own_session_here(session_id);
        batch.created_sessions.push(session_id);
        debug!("session 0x{session_id:x} created, timeout {timeout_ms} ms");
        ConnectOutcome::Granted {
            session_id,
            timeout_ms,
            password: self.sessions.password(session_id),
        }
    }

    fn reattach_session(&mut self, msg: &ConnectMsg, batch: &mut Batch) -> ConnectOutcome {
        let now = self.now_ms();
        match self
            .sessions
            .attach(msg.session_id, &msg.password, msg.conn, now)
        {
            Ok((previous, timeout_ms)) => {
                if let Some(old) = previous {
                    batch.closes[old.shard].push((old.conn_id, CloseReason::SessionMoved));
                }
                self.own_session_here(msg.session_id);
                ConnectOutcome::Granted {
                    session_id: msg.session_id,
                    timeout_ms,
                    password: self.sessions.password(msg.session_id),
                }
            }
            Err(_) => ConnectOutcome::Expired,
        }
    }

    /// Closes sessions whose deadline passed: their ephemerals go (with events)
    /// and their connections are closed.
    fn expire_sessions(&mut self, now_ms: u64, batch: &mut Batch) {
        if self.log_failed {
            return; // closing a session is a txn, which can no longer be logged
        }
        for session in self.sessions.take_expired(now_ms) {
            info!("session 0x{:x} expired", session.id);
            let header = self.header(session.id, 0);
            self.commit_txn(header, TxnOp::CloseSession, batch);
            self.sessions.remove(session.id);
            self.forget_owner(session.id);
            if let Some(ConnRef { shard, conn_id }) = session.owner {
                batch.closes[shard].push((conn_id, CloseReason::SessionExpired));
            }
        }
    }

    /// Deletes empty containers that had children and expired TTL nodes.
    fn reap(&mut self, batch: &mut Batch) {
        if self.log_failed {
            return;
        }
        let now = unix_ms();
        let candidates = self
            .tree
            .expired_containers_and_ttls(now, limits::REAP_PER_PASS_MAX);
        for path in candidates {
            let header = self.header(0, 0);
            let req = WriteReq::DeleteContainer { path: &path };
            if let Ok(op) = self
                .tree
                .prep(&header, req, &self.system_auth, &self.prep_options)
            {
                debug!("reaping {path}");
                self.commit_txn(header, op, batch);
            }
        }
    }

    /// Hands a batch to the log executor; a batch without txns that has
    /// nothing ahead of it is published at once (nothing to make durable).
    async fn submit(
        &mut self,
        mut batch: Batch,
        outbox: &[ConnectedSender<ToShard>],
        log_tx: &ConnectedSender<LogRequest>,
    ) {
        let version = self.tree.clone();
        let nothing_ahead = self.in_flight.is_empty() && self.committing.is_empty();
        // A learner's own batches carry no txns: its log batches go apart.
        if batch.txns.is_empty() && (nothing_ahead || self.is_learner()) {
            self.publish(batch, version, None, outbox).await;
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let txns = std::mem::take(&mut batch.txns);
        let txn_count = txns.len();
        // Before the send: waiting for room in the log's queue is queue time.
        let submitted = Instant::now();
        let request = LogRequest::Append {
            seq,
            txns,
            version: version.clone(),
        };
        if log_tx.send(request).await.is_err() {
            error!("the log executor is gone; refusing writes");
        }
        self.in_flight.push_back(Pending {
            seq,
            batch,
            version,
            submitted,
            txns: txn_count,
        });
        let in_flight = &self.stats.pipeline.log_batches_in_flight;
        stats::add(in_flight, 1);
    }

    /// The log finished the oldest batch in flight: publish it, or fail it.
    async fn complete(&mut self, done: LogDone, io: &roles::Io<'_>) {
        if self.zab.is_some() {
            return self.complete_replicated(done, io).await;
        }
        let outbox = io.outbox;
        let pending = self
            .in_flight
            .pop_front()
            .expect("a completion has a batch");
        assert_eq!(pending.seq, done.seq, "the log completes batches in order");
        let Pending {
            mut batch,
            version,
            submitted,
            txns,
            ..
        } = pending;
        let pipeline = &self.stats.pipeline;
        stats::sub(&pipeline.log_batches_in_flight, 1);
        let durable = Instant::now();
        let flushed_us = durable.duration_since(submitted).as_micros() as u64;
        match done.result {
            Ok(()) => {
                // ZooKeeper times each request of a flush; they share ours.
                pipeline
                    .queue_and_flush_us
                    .record_n(flushed_us, txns as u64);
                let timing = CommitTiming { submitted, durable };
                self.publish(batch, version, Some(timing), outbox).await
            }
            Err(e) => {
                self.log_failure(&e);
                for &id in &batch.created_sessions {
                    self.sessions.remove(id);
                }
                batch.fail(self.published.last_zxid());
                let published = self.published.clone();
                self.publish(batch, published, None, outbox).await;
            }
        }
    }

    /// The log could not make a batch durable: nothing of it (or of the
    /// batches after it) is acknowledged, the working tree returns to the
    /// published version, and from now on writes are refused while reads go on.
    fn log_failure(&mut self, e: &str) {
        if !self.log_failed {
            error!("write-ahead log failed: {e}; refusing writes from now on, still serving reads");
        }
        self.log_failed = true;
        self.tree = self.published.clone();
        self.next_zxid = self.published.last_zxid() + 1;
    }

    /// Sends answers that need no new version (connects, closes, errors,
    /// answers to txns already published) with the version shards have.
    async fn publish_answers(&mut self, batch: Batch, outbox: &[ConnectedSender<ToShard>]) {
        let version = self.published.clone();
        self.publish(batch, version, None, outbox).await;
    }

    /// Sends every shard the version, the events and its part of the batch.
    async fn publish(
        &mut self,
        batch: Batch,
        version: DataTree,
        timing: Option<CommitTiming>,
        outbox: &[ConnectedSender<ToShard>],
    ) {
        // Announce before sending, so no shard answers a read from an older
        // version once any shard has answered this batch's writes.
        self.published_zxid
            .store(version.last_zxid(), Ordering::Release);
        self.published = version;
        let events = Arc::new(batch.events);
        let parts = batch
            .replies
            .into_iter()
            .zip(batch.connects)
            .zip(batch.closes);
        for (shard, ((replies, connects), closes)) in parts.enumerate() {
            let notice = CommitNotice {
                version: self.published.clone(),
                events: events.clone(),
                replies,
                connects,
                closes,
                session_count: self.sessions.len(),
                timing,
            };
            // A closed shard (shutting down) no longer needs notices.
            let _ = outbox[shard].send(ToShard::Commit(Box::new(notice))).await;
        }
    }
}

/// Where the pipeline starts: what recovery found.
pub struct PipelineStart {
    pub tree: DataTree,
    pub sessions: OpenSessions,
    pub secret: [u8; 16],
    /// Set for an ensemble member.
    pub zab: Option<ZabStart>,
}

pub struct PipelineChannels {
    pub inbox: Vec<ConnectedReceiver<ToPipeline>>,
    pub outbox: Vec<ConnectedSender<ToShard>>,
    pub log_tx: ConnectedSender<LogRequest>,
    pub log_rx: ConnectedReceiver<LogDone>,
}

/// When the periodic jobs run next (monotonic ms of the pipeline's clock).
struct Timers {
    next_expiry_ms: u64,
    next_reap_ms: u64,
    next_purge_ms: u64,
    purge_interval_ms: u64,
}

impl Timers {
    fn new(cfg: &Config, now_ms: u64) -> Self {
        let purge_interval_ms = cfg.autopurge_purge_interval_hours as u64 * 3_600_000;
        Timers {
            next_expiry_ms: now_ms + cfg.tick_time_ms as u64,
            next_reap_ms: now_ms + cfg.container_check_interval_ms,
            next_purge_ms: now_ms + purge_interval_ms,
            purge_interval_ms,
        }
    }
}

/// Maps a decoded write request (borrowing from `body`, its frame) onto the
/// tree's prep input; None for ops that are not tree writes.
fn write_req<'a>(body: &Bytes, request: &'a Request<'a>) -> Option<WriteReq<'a>> {
    // Txn data shares the frame without a copy: the txn lives only until its
    // batch is logged and applied, and the node takes its own copy then.
    let data = |slice: &Option<&[u8]>| slice.map(|bytes| body.slice_ref(bytes));
    Some(match request {
        Request::Create { op, req } => WriteReq::Create(CreateReq {
            path: req.path,
            data: data(&req.data),
            acl: &req.acl,
            flags: req.flags,
            ttl_ms: req.ttl_ms,
            kind: CreateKind::from_opcode(*op)?,
        }),
        Request::Multi(ops) => WriteReq::Multi(
            ops.iter()
                .map(|op| multi_write_req(body, op))
                .collect::<Option<_>>()?,
        ),
        Request::Delete { path, version } => WriteReq::Delete {
            path,
            version: *version,
        },
        Request::SetData {
            path,
            data: bytes,
            version,
        } => WriteReq::SetData {
            path,
            data: data(bytes),
            version: *version,
        },
        Request::SetAcl { path, acl, version } => WriteReq::SetAcl {
            path,
            acl,
            version: *version,
        },
        Request::Check { path, version } => WriteReq::Check {
            path,
            version: *version,
        },
        _ => return None,
    })
}

/// A multi's op: as ZooKeeper's MultiOperationRecord rebuilds a create from
/// its flags (`Op.create`), container and TTL flags make a container or TTL
/// node whatever the op's code; other flags a plain create(2).
fn multi_write_req<'a>(body: &Bytes, request: &'a Request<'a>) -> Option<WriteReq<'a>> {
    let mut req = write_req(body, request)?;
    if let WriteReq::Create(create) = &mut req {
        create.kind = match CreateMode::from_flags(create.flags) {
            Some(CreateMode::Container) => CreateKind::Container,
            Some(mode) if mode.is_ttl() => CreateKind::Ttl,
            _ if create.kind == CreateKind::Create2 => CreateKind::Create2,
            _ => CreateKind::Create,
        };
    }
    Some(req)
}

fn txn_size_estimate(op: &TxnOp) -> usize {
    match op {
        TxnOp::Create { path, data, .. } => path.len() + data_len(data) + 64,
        TxnOp::SetData { path, data, .. } => path.len() + data_len(data) + 32,
        TxnOp::Multi(ops) => ops.iter().map(txn_size_estimate).sum(),
        _ => 64,
    }
}
