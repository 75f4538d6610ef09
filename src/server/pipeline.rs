//! The pipeline executor: the single writer. It owns the session table and the
//! working tree (the newest state, including changes of the current batch that
//! are not yet logged). Per batch it preps each write against that state,
//! assigns zxids, passes the txns through the log stage, and only then
//! publishes the new version with events and replies to every shard.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use tracing::{debug, error, info, warn};

use super::bell::Bell;
use super::log::LogStage;
use super::messages::*;
use crate::config::Config;
use crate::limits;
use crate::proto::{ErrorCode, Request, SessionId, Zxid};
use crate::session::{ConnRef, SessionTable};
use crate::storage::{Opened, StorageError};
use crate::tree::acl::AuthInfo;
use crate::tree::{
    data_len, CreateKind, CreateReq, DataTree, PrepOptions, TreeEvent, TxnHeader, TxnOp, TxnResult,
    WriteReq,
};

/// Everything the batch being built will publish.
struct Batch {
    txns: Vec<(TxnHeader, TxnOp)>,
    /// Sessions created by this batch (undone if the log append fails).
    created_sessions: Vec<SessionId>,
    txn_bytes: usize,
    events: Vec<(Zxid, TreeEvent)>,
    replies: Vec<Vec<WriteReply>>,
    connects: Vec<Vec<ConnectReply>>,
    closes: Vec<Vec<(u64, CloseReason)>>,
    requests: usize,
}

impl Batch {
    fn new(shards: usize) -> Self {
        Batch {
            txns: Vec::new(),
            created_sessions: Vec::new(),
            txn_bytes: 0,
            events: Vec::new(),
            replies: (0..shards).map(|_| Vec::new()).collect(),
            connects: (0..shards).map(|_| Vec::new()).collect(),
            closes: (0..shards).map(|_| Vec::new()).collect(),
            requests: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.requests >= limits::BATCH_REQUESTS_MAX || self.txn_bytes >= limits::BATCH_BYTES_MAX
    }

    fn is_empty(&self) -> bool {
        self.requests == 0
            && self.txns.is_empty()
            && self.connects.iter().all(Vec::is_empty)
            && self.closes.iter().all(Vec::is_empty)
    }
}

pub struct Pipeline {
    cfg: Arc<Config>,
    tree: DataTree,
    sessions: SessionTable,
    log: LogStage,
    /// The version shards have; the working tree returns to it if a batch
    /// cannot be logged.
    published: DataTree,
    /// Set when the log failed: writes are refused, reads go on.
    log_failed: bool,
    next_zxid: Zxid,
    started: Instant,
    prep_options: PrepOptions,
    /// The identity the server itself acts with (session close, reaping).
    system_auth: AuthInfo,
    published_zxid: Arc<AtomicI64>,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Pipeline {
    /// Starts from what recovery found: the tree, the last zxid, and the
    /// sessions still open (they expire on their normal schedule unless their
    /// clients reconnect, as in ZooKeeper).
    pub fn new(cfg: Arc<Config>, published_zxid: Arc<AtomicI64>, opened: Opened) -> Self {
        let server_id = cfg.my_id.unwrap_or(0) as u8;
        let prep_options = PrepOptions {
            extended_types_enabled: cfg.extended_types_enabled,
        };
        let Opened {
            recovered,
            wal,
            db_id,
            secret,
        } = opened;
        let mut sessions = SessionTable::new(server_id, unix_ms() as u64, secret);
        for (id, timeout_ms) in recovered.sessions.iter() {
            sessions.insert(id, timeout_ms, None, 0);
        }
        let log = LogStage::new(&cfg, wal, db_id, recovered.sessions);
        Pipeline {
            published: recovered.tree.clone(),
            tree: recovered.tree,
            sessions,
            log,
            log_failed: false,
            next_zxid: recovered.last_zxid + 1,
            started: Instant::now(),
            prep_options,
            system_auth: AuthInfo::superuser(),
            published_zxid,
            cfg,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The pipeline's main loop: wait for work or a tick, take what is queued
    /// into one batch, log it, publish it. Ends when every shard is gone.
    pub async fn run(
        mut self,
        inbox: Vec<ConnectedReceiver<ToPipeline>>,
        outbox: Vec<ConnectedSender<ToShard>>,
    ) {
        let tick = Duration::from_millis(self.cfg.tick_time_ms as u64);
        let queue = Rc::new(Inbox::new(inbox.len()));
        for (shard, rx) in inbox.into_iter().enumerate() {
            glommio::spawn_local(forward(shard, rx, queue.clone())).detach();
        }
        let mut next_expiry_ms = self.now_ms() + tick.as_millis() as u64;
        let mut next_reap_ms = self.now_ms() + self.cfg.container_check_interval_ms;
        let purge_interval_ms = self.cfg.autopurge_purge_interval_hours as u64 * 3_600_000;
        let mut next_purge_ms = self.now_ms() + purge_interval_ms;
        // Publish the initial version so shards serve the built-in nodes.
        self.publish(Batch::new(outbox.len()), &outbox).await;
        while queue.open.get() > 0 || !queue.is_empty() {
            if queue.is_empty() {
                futures_lite::future::or(queue.bell.wait(), async {
                    glommio::timer::sleep(tick / 2).await;
                })
                .await;
            }
            let mut batch = Batch::new(outbox.len());
            while !batch.is_full() {
                let Some(msg) = queue.pop() else { break };
                self.handle(msg, &mut batch);
            }
            queue.ring_space();
            let now = self.now_ms();
            if now >= next_expiry_ms {
                self.expire_sessions(now, &mut batch);
                next_expiry_ms = now + tick.as_millis() as u64 / 2;
            }
            if now >= next_reap_ms {
                self.reap(&mut batch);
                next_reap_ms = now + self.cfg.container_check_interval_ms;
            }
            if purge_interval_ms > 0 && now >= next_purge_ms {
                self.log.purge_old();
                next_purge_ms = now + purge_interval_ms;
            }
            if !batch.is_empty() {
                self.publish(batch, &outbox).await;
            }
        }
        info!(
            "pipeline stopping; {} txns logged",
            self.log.appended_total()
        );
        self.log.shutdown(&self.published);
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
        }
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
        } else {
            self.sessions.touch(msg.session_id, self.now_ms());
            self.execute_write(&msg, batch)
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

    fn execute_write(&mut self, msg: &WriteMsg, batch: &mut Batch) -> WriteOutcome {
        let request = match Request::decode(msg.op, &msg.body) {
            Ok(r) => r,
            Err(e) => {
                warn!("pipeline: undecodable write op {}: {e}", msg.op);
                return WriteOutcome::Error(ErrorCode::MarshallingError);
            }
        };
        let header = self.header(msg.session_id, msg.xid);
        match request {
            Request::Sync { path } => WriteOutcome::Sync(path.to_string()),
            Request::Reconfig { .. } => WriteOutcome::Error(ErrorCode::ReconfigDisabled),
            Request::CloseSession => {
                self.sessions.begin_close(msg.session_id);
                self.commit_txn(header, TxnOp::CloseSession, batch);
                self.sessions.remove(msg.session_id);
                WriteOutcome::SessionClosed
            }
            other => {
                let Some(req) = write_req(&other, &msg.body) else {
                    return WriteOutcome::Error(ErrorCode::Unimplemented);
                };
                match self.tree.prep(&header, req, &msg.auth, &self.prep_options) {
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
        for session in self.sessions.take_expired(now_ms) {
            info!("session 0x{:x} expired", session.id);
            let header = self.header(session.id, 0);
            self.commit_txn(header, TxnOp::CloseSession, batch);
            self.sessions.remove(session.id);
            if let Some(ConnRef { shard, conn_id }) = session.owner {
                batch.closes[shard].push((conn_id, CloseReason::SessionExpired));
            }
        }
    }

    /// Deletes empty containers that had children and expired TTL nodes.
    fn reap(&mut self, batch: &mut Batch) {
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

    /// A batch that could not be made durable is not acknowledged: the
    /// working tree returns to the published version, the batch's writes and
    /// new sessions fail, and from now on writes are refused while reads go on.
    fn log_failure(&mut self, e: &StorageError, batch: &mut Batch) {
        error!("write-ahead log failed: {e}; refusing writes from now on, still serving reads");
        self.log_failed = true;
        self.tree = self.published.clone();
        self.next_zxid = self.published.last_zxid() + 1;
        batch.events.clear();
        for reply in batch.replies.iter_mut().flatten() {
            if matches!(
                reply.outcome,
                WriteOutcome::Txn(_) | WriteOutcome::SessionClosed
            ) {
                reply.outcome = WriteOutcome::Error(ErrorCode::SystemError);
                reply.zxid = self.next_zxid - 1;
            }
        }
        for id in batch.created_sessions.drain(..) {
            self.sessions.remove(id);
            for connect in batch.connects.iter_mut().flatten() {
                if matches!(connect.outcome, ConnectOutcome::Granted { session_id, .. } if session_id == id)
                {
                    connect.outcome = ConnectOutcome::Expired;
                }
            }
        }
    }

    /// Logs the batch, then sends every shard the new version, the events and its replies.
    async fn publish(&mut self, mut batch: Batch, outbox: &[ConnectedSender<ToShard>]) {
        match self.log.append(&batch.txns) {
            Ok(()) => {
                self.published = self.tree.clone();
                self.log.after_commit(batch.txns.len(), &self.tree);
            }
            Err(e) => self.log_failure(&e, &mut batch),
        }
        // Announce before sending, so no shard answers a read from an older
        // version once any shard has answered this batch's writes.
        self.published_zxid
            .store(self.next_zxid - 1, Ordering::Release);
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
            };
            // A closed shard (shutting down) no longer needs notices.
            let _ = outbox[shard].send(ToShard::Commit(Box::new(notice))).await;
        }
    }
}

/// Maps a decoded write request onto the tree's prep input; None for ops that
/// are not tree writes.
fn write_req<'a>(request: &'a Request<'a>, body: &'a Bytes) -> Option<WriteReq<'a>> {
    let data = |slice: &Option<&[u8]>| slice.map(|s| body.slice_ref(s));
    Some(match request {
        Request::Create { op, req } => WriteReq::Create(CreateReq {
            path: req.path,
            data: data(&req.data),
            acl: &req.acl,
            flags: req.flags,
            ttl_ms: req.ttl_ms,
            kind: CreateKind::from_opcode(*op)?,
        }),
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
        Request::Multi(ops) => WriteReq::Multi(
            ops.iter()
                .map(|o| write_req(o, body))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

fn txn_size_estimate(op: &TxnOp) -> usize {
    match op {
        TxnOp::Create { path, data, .. } => path.len() + data_len(data) + 64,
        TxnOp::SetData { path, data, .. } => path.len() + data_len(data) + 32,
        TxnOp::Multi(ops) => ops.iter().map(txn_size_estimate).sum(),
        _ => 64,
    }
}

/// Messages from all shards, in arrival order, bounded: a forwarder stops
/// taking from its shard's channel while the queue is full, which is the
/// backpressure to that shard.
struct Inbox {
    queue: RefCell<VecDeque<ToPipeline>>,
    /// Rung when a message arrives or a shard's channel closes.
    bell: Bell,
    /// One per forwarder, rung when the pipeline has taken messages.
    space: Vec<Bell>,
    open: Cell<usize>,
}

impl Inbox {
    fn new(shards: usize) -> Self {
        Inbox {
            queue: RefCell::new(VecDeque::new()),
            bell: Bell::new(),
            space: (0..shards).map(|_| Bell::new()).collect(),
            open: Cell::new(shards),
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    fn pop(&self) -> Option<ToPipeline> {
        self.queue.borrow_mut().pop_front()
    }

    fn ring_space(&self) {
        self.space.iter().for_each(Bell::ring);
    }
}

/// Moves one shard's messages into the inbox. Each `recv` future runs to
/// completion (dropping pending glommio receives would leak their wakers).
async fn forward(shard: usize, rx: ConnectedReceiver<ToPipeline>, inbox: Rc<Inbox>) {
    while let Some(msg) = rx.recv().await {
        inbox.queue.borrow_mut().push_back(msg);
        inbox.bell.ring();
        while inbox.queue.borrow().len() >= limits::PIPELINE_INBOX_MAX {
            inbox.space[shard].wait().await;
        }
    }
    inbox.open.set(inbox.open.get() - 1);
    inbox.bell.ring();
}
