//! What a learner's clients wait for: writes, new sessions, resumed
//! sessions and syncs forwarded to the leader, and the txns it logged but
//! has not published. It outlives a leader: when the leader is lost, this
//! state is carried into the next role instead of closing every waiting
//! client (ConnectionLoss), because the next sync tells which forwarded
//! requests were committed:
//! - the new leader's history holds every committed txn, so after a DIFF or
//!   a TRUNC each forwarded request is either answered from a txn of the
//!   sync (matched by session and cxid, as always), or was never committed
//!   and never will be (the new leader cuts every other log to its own),
//!   and is sent again to the new leader once the learner is synced;
//! - a SNAP says nothing about single txns: then the waiting clients are
//!   closed as before, their outcome unknown.
//!
//! A learner that becomes the leader answers the requests whose txns it had
//! logged when it activates (its log is the new epoch's history) and runs
//! the rest as its own clients' requests.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::proto::{SessionId, Zxid};
use crate::server::batch::Batch;
use crate::server::messages::{
    CloseReason, ConnectOutcome, ConnectReply, WriteMsg, WriteOutcome, WriteReply,
};
use crate::session::ConnRef;
use crate::session::SessionTable;
use crate::tree::acl::AuthInfo;
use crate::tree::{DataTree, TreeEvent, TxnHeader, TxnResult};

/// ZooKeeper's closeSession opcode.
const OP_CLOSE_SESSION: i32 = -11;

/// A logged txn not yet published.
pub(super) struct Proposed {
    pub header: TxnHeader,
    /// The tree after this txn; None when the next txn was already waiting
    /// as it was applied (see `Pipeline::append_proposal`).
    pub version: Option<DataTree>,
    pub events: Vec<(Zxid, TreeEvent)>,
    pub result: TxnResult,
    /// For a closeSession: the connection that held the session here.
    pub closed_owner: Option<ConnRef>,
}

/// A forwarded write waiting for its commit; the request is kept to send it
/// again to a new leader.
pub(super) struct Waiting {
    pub conn: ConnRef,
    pub xid: i32,
    pub op: i32,
    pub body: Bytes,
    pub auth: Arc<AuthInfo>,
}

impl Waiting {
    pub fn to_write(&self, session_id: SessionId) -> WriteMsg {
        WriteMsg {
            conn: self.conn,
            session_id,
            xid: self.xid,
            op: self.op,
            body: self.body.clone(),
            auth: self.auth.clone(),
        }
    }
}

/// A forwarded sync: waiting for SYNC, then for the commits before it.
pub(super) struct SyncWait {
    pub conn: ConnRef,
    pub session_id: SessionId,
    pub xid: i32,
    pub path: String,
    pub body: Bytes,
    pub release_zxid: i64,
}

#[derive(Default)]
pub(super) struct Waiters {
    pub proposed: VecDeque<Proposed>,
    pub pending: HashMap<SessionId, VecDeque<Waiting>>,
    pub pending_count: usize,
    /// New sessions waiting for their createSession commit: (connection, timeout).
    pub connects: HashMap<SessionId, (ConnRef, i32)>,
    /// Resumed sessions waiting for the leader's REVALIDATE answer
    /// (session, connection, timeout), in the order asked.
    pub revalidating: VecDeque<(SessionId, ConnRef, i32)>,
    /// Syncs waiting for SYNC.
    pub syncs: VecDeque<SyncWait>,
    /// Syncs that got SYNC, waiting for the commits received before it.
    pub released: VecDeque<SyncWait>,
}

impl Waiters {
    pub fn count(&self) -> usize {
        self.pending_count + self.syncs.len() + self.connects.len() + self.revalidating.len()
    }

    /// Closes every waiting client (their outcome is unknown); keeps the
    /// logged txns, which are still the log's.
    pub fn close_clients(&mut self, batch: &mut Batch) {
        let lost = |batch: &mut Batch, conn: ConnRef| {
            batch.closes[conn.shard].push((conn.conn_id, CloseReason::LeaderLost))
        };
        for waiting in std::mem::take(&mut self.pending).into_values().flatten() {
            lost(batch, waiting.conn);
        }
        self.pending_count = 0;
        for (conn, _) in std::mem::take(&mut self.connects).into_values() {
            lost(batch, conn);
        }
        for (_, conn, _) in std::mem::take(&mut self.revalidating) {
            lost(batch, conn);
        }
        let syncs = std::mem::take(&mut self.syncs);
        for sync in syncs.into_iter().chain(std::mem::take(&mut self.released)) {
            lost(batch, sync.conn);
        }
    }

    /// Syncs are idempotent: every one not answered is asked again.
    pub fn syncs_to_resend(&mut self) -> Vec<SyncWait> {
        let mut all: Vec<SyncWait> = std::mem::take(&mut self.released).into();
        all.extend(std::mem::take(&mut self.syncs));
        all
    }

    /// Answers the waiting client a committed txn belongs to, if it is here:
    /// a new session's handshake, or the oldest forwarded write of its
    /// session (matched by cxid); a closeSession nobody here asked for
    /// closes the session's connection (the leader expired it).
    pub fn answer(
        &mut self,
        header: &TxnHeader,
        result: TxnResult,
        closed_owner: Option<ConnRef>,
        sessions: &SessionTable,
        batch: &mut Batch,
    ) {
        let id = header.session_id;
        if matches!(result, TxnResult::Session) {
            if let Some((conn, _)) = self.connects.remove(&id) {
                batch.connects[conn.shard].push(ConnectReply {
                    conn_id: conn.conn_id,
                    outcome: ConnectOutcome::Granted {
                        session_id: id,
                        timeout_ms: sessions.get(id).map_or(0, |s| s.timeout_ms),
                        password: sessions.password(id),
                    },
                });
                return;
            }
        }
        let mine = self
            .pending
            .get(&id)
            .and_then(|q| q.front())
            .is_some_and(|w| w.xid == header.cxid);
        if !mine {
            if let Some(conn) = closed_owner {
                batch.closes[conn.shard].push((conn.conn_id, CloseReason::SessionExpired));
            }
            return;
        }
        let waiting = self.pop_pending(id).expect("checked");
        let outcome = match result {
            TxnResult::Error(code) => WriteOutcome::Error(code),
            _ if waiting.op == OP_CLOSE_SESSION => WriteOutcome::SessionClosed,
            other => WriteOutcome::Txn(other),
        };
        batch.replies[waiting.conn.shard].push(WriteReply {
            conn_id: waiting.conn.conn_id,
            xid: waiting.xid,
            zxid: header.zxid,
            outcome,
        });
    }

    /// Answers every logged txn this server proposed or received for its
    /// clients, with its events (a learner that became the leader commits them).
    pub fn answer_proposed(&mut self, sessions: &SessionTable, batch: &mut Batch) {
        for p in std::mem::take(&mut self.proposed) {
            batch.events.extend(p.events);
            self.answer(&p.header, p.result, p.closed_owner, sessions, batch);
        }
    }

    fn pop_pending(&mut self, id: SessionId) -> Option<Waiting> {
        let queue = self.pending.get_mut(&id)?;
        let waiting = queue.pop_front()?;
        if queue.is_empty() {
            self.pending.remove(&id);
        }
        self.pending_count -= 1;
        Some(waiting)
    }

    /// A client's write that has not been sent to any leader yet (a leader
    /// stepped down before running it): it waits like a forwarded one, and
    /// is sent once this server has a leader again.
    pub fn push_unsent(&mut self, write: WriteMsg) {
        self.pending
            .entry(write.session_id)
            .or_default()
            .push_back(Waiting {
                conn: write.conn,
                xid: write.xid,
                op: write.op,
                body: write.body,
                auth: write.auth,
            });
        self.pending_count += 1;
    }

    /// Every forwarded write still waiting, oldest first within a session,
    /// as its client's request (a learner that became the leader runs them).
    pub fn take_writes(&mut self) -> Vec<WriteMsg> {
        let mut writes = Vec::with_capacity(self.pending_count);
        for (id, queue) in std::mem::take(&mut self.pending) {
            writes.extend(queue.iter().map(|w| w.to_write(id)));
        }
        self.pending_count = 0;
        writes
    }
}
