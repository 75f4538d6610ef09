//! One batch of the write pipeline: the txns it logs and everything it will
//! publish once they are durable (events, replies, handshake results, closes).

use std::time::Instant;

use crate::proto::{ErrorCode, SessionId, Zxid};
use crate::tree::{DataTree, TreeEvent, TxnHeader, TxnOp};

use super::messages::{CloseReason, ConnectOutcome, ConnectReply, WriteOutcome, WriteReply};

/// How large a batch may grow (zoo.cfg `maxBatchSize`, `ferrokeeper.maxBatchBytes`).
#[derive(Clone, Copy)]
pub struct BatchBounds {
    pub requests_max: usize,
    pub bytes_max: usize,
}

pub struct Batch {
    bounds: BatchBounds,
    pub txns: Vec<(TxnHeader, TxnOp)>,
    /// Sessions created by this batch (undone if the log append fails).
    pub created_sessions: Vec<SessionId>,
    pub txn_bytes: usize,
    pub events: Vec<(Zxid, TreeEvent)>,
    /// Per shard.
    pub replies: Vec<Vec<WriteReply>>,
    pub connects: Vec<Vec<ConnectReply>>,
    pub closes: Vec<Vec<(u64, CloseReason)>>,
    pub requests: usize,
}

impl Batch {
    pub fn new(shards: usize, bounds: BatchBounds) -> Self {
        Batch {
            bounds,
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

    pub fn is_full(&self) -> bool {
        self.requests >= self.bounds.requests_max || self.txn_bytes >= self.bounds.bytes_max
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0
            && self.txns.is_empty()
            && self.connects.iter().all(Vec::is_empty)
            && self.closes.iter().all(Vec::is_empty)
    }

    /// The batch could not be made durable: its writes fail with `zxid` as
    /// the last good zxid, its new sessions are refused, it fires no events.
    pub fn fail(&mut self, zxid: Zxid) {
        self.events.clear();
        for reply in self.replies.iter_mut().flatten() {
            if matches!(
                reply.outcome,
                WriteOutcome::Txn(_) | WriteOutcome::SessionClosed
            ) {
                reply.outcome = WriteOutcome::Error(ErrorCode::SystemError);
                reply.zxid = zxid;
            }
        }
        for connect in self.connects.iter_mut().flatten() {
            let created = matches!(connect.outcome,
                ConnectOutcome::Granted { session_id, .. } if self.created_sessions.contains(&session_id));
            if created {
                connect.outcome = ConnectOutcome::Expired;
            }
        }
    }
}

/// A batch handed to the log executor, waiting for its fdatasync.
pub struct Pending {
    pub seq: u64,
    pub batch: Batch,
    /// The tree as of this batch: published once the batch is durable.
    pub version: DataTree,
    /// Handed to the log at; with `txns`, for the pipeline's summaries.
    pub submitted: Instant,
    pub txns: usize,
}
