//! Connections of all shards, for `cons`/`stat`/`wchs`. Entries are added and
//! removed at connect and close only; the counters inside are atomics written
//! by the owning shard alone, so the hot path takes no lock.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;

pub struct ConnInfo {
    pub peer: SocketAddr,
    pub established_unix_ms: i64,
    pub session_id: AtomicI64,
    pub timeout_ms: AtomicI32,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub queued: AtomicU64,
    pub last_op: AtomicI32,
    pub last_cxid: AtomicI32,
    pub last_zxid: AtomicI64,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        ConnInfo {
            peer,
            established_unix_ms: now,
            session_id: AtomicI64::new(0),
            timeout_ms: AtomicI32::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            last_op: AtomicI32::new(0),
            last_cxid: AtomicI32::new(0),
            last_zxid: AtomicI64::new(0),
        }
    }

    /// One `cons` line, in ZooKeeper's shape.
    pub fn line(&self) -> String {
        format!(
            "/{}[1](queued={},recved={},sent={},sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x})",
            self.peer,
            self.queued.load(Relaxed),
            self.received.load(Relaxed),
            self.sent.load(Relaxed),
            self.session_id.load(Relaxed),
            op_name(self.last_op.load(Relaxed)),
            self.established_unix_ms,
            self.timeout_ms.load(Relaxed),
            self.last_cxid.load(Relaxed),
            self.last_zxid.load(Relaxed),
        )
    }
}

/// ZooKeeper's short op names (`Request.op2String` abbreviations used by cons).
fn op_name(op: i32) -> &'static str {
    use crate::proto::op::*;
    match op {
        CREATE | CREATE2 | CREATE_CONTAINER | CREATE_TTL => "CREA",
        DELETE => "DELE",
        EXISTS => "EXIS",
        GET_DATA => "GETD",
        SET_DATA => "SETD",
        GET_ACL => "GETA",
        SET_ACL => "SETA",
        GET_CHILDREN | GET_CHILDREN2 => "GETC",
        SYNC => "SYNC",
        PING => "PING",
        MULTI => "MULT",
        CLOSE_SESSION => "CLOS",
        SET_WATCHES | SET_WATCHES2 => "SETW",
        _ => "NA",
    }
}

#[derive(Default)]
pub struct ConnRegistry {
    conns: Mutex<HashMap<(usize, u64), Arc<ConnInfo>>>,
}

impl ConnRegistry {
    pub fn insert(&self, shard: usize, conn_id: u64, info: Arc<ConnInfo>) {
        self.lock().insert((shard, conn_id), info);
    }

    pub fn remove(&self, shard: usize, conn_id: u64) {
        self.lock().remove(&(shard, conn_id));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.lock().values().map(|c| c.line()).collect();
        lines.sort();
        lines
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, u64), Arc<ConnInfo>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}
