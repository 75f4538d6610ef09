//! Connections of all shards, for `cons`/`stat`/`wchs`. Entries are added and
//! removed at connect and close only; the counters inside are atomics written
//! by the owning shard alone, so the hot path takes no lock.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};

use hashbrown::HashMap;
use serde_json::json;

pub struct ConnInfo {
    pub peer: SocketAddr,
    /// Accepted on the secure client port.
    pub secure: bool,
    pub established_unix_ms: i64,
    pub session_id: AtomicI64,
    pub timeout_ms: AtomicI32,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub queued: AtomicU64,
    pub last_op: AtomicI32,
    pub last_cxid: AtomicI32,
    pub last_zxid: AtomicI64,
    latency: Latency,
}

/// A connection's response times, as ZooKeeper's `ServerCnxn` keeps them
/// (`updateStatsForResponse`); `crst` resets them.
struct Latency {
    last_response_unix_ms: AtomicI64,
    last_ms: AtomicU64,
    /// `u64::MAX` until the first response (shown as 0, as Java shows its
    /// `Long.MAX_VALUE`).
    min_ms: AtomicU64,
    max_ms: AtomicU64,
    total_ms: AtomicU64,
    count: AtomicU64,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            last_response_unix_ms: AtomicI64::new(0),
            last_ms: AtomicU64::new(0),
            min_ms: AtomicU64::new(u64::MAX),
            max_ms: AtomicU64::new(0),
            total_ms: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// ZooKeeper's per-connection latency figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyView {
    pub last_response_unix_ms: i64,
    pub last_ms: u64,
    pub min_ms: u64,
    pub avg_ms: u64,
    pub max_ms: u64,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, secure: bool) -> Self {
        ConnInfo {
            peer,
            secure,
            established_unix_ms: crate::clock::unix_ms(),
            session_id: AtomicI64::new(0),
            timeout_ms: AtomicI32::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            last_op: AtomicI32::new(0),
            last_cxid: AtomicI32::new(0),
            last_zxid: AtomicI64::new(0),
            latency: Latency::new(),
        }
    }

    /// A response went out `latency_ms` after its request arrived. Only the
    /// owning shard writes, so plain loads and stores suffice.
    pub fn record_response(&self, latency_ms: u64) {
        let l = &self.latency;
        l.last_response_unix_ms
            .store(crate::clock::unix_ms(), Relaxed);
        l.last_ms.store(latency_ms, Relaxed);
        l.total_ms
            .store(l.total_ms.load(Relaxed) + latency_ms, Relaxed);
        l.count.store(l.count.load(Relaxed) + 1, Relaxed);
        if latency_ms > l.max_ms.load(Relaxed) {
            l.max_ms.store(latency_ms, Relaxed);
        }
        if latency_ms < l.min_ms.load(Relaxed) {
            l.min_ms.store(latency_ms, Relaxed);
        }
    }

    pub fn latency(&self) -> LatencyView {
        let l = &self.latency;
        let count = l.count.load(Relaxed);
        let min = l.min_ms.load(Relaxed);
        LatencyView {
            last_response_unix_ms: l.last_response_unix_ms.load(Relaxed),
            last_ms: l.last_ms.load(Relaxed),
            min_ms: if min == u64::MAX { 0 } else { min },
            avg_ms: l.total_ms.load(Relaxed).checked_div(count).unwrap_or(0),
            max_ms: l.max_ms.load(Relaxed),
        }
    }

    /// `crst`: ZooKeeper's `ServerCnxn.resetStats` (packet counts and
    /// latencies; the response time goes back to the connection's start).
    pub fn reset_stats(&self) {
        self.received.store(0, Relaxed);
        self.sent.store(0, Relaxed);
        let l = &self.latency;
        l.last_response_unix_ms.store(0, Relaxed);
        l.last_ms.store(0, Relaxed);
        l.min_ms.store(u64::MAX, Relaxed);
        l.max_ms.store(0, Relaxed);
        l.total_ms.store(0, Relaxed);
        l.count.store(0, Relaxed);
    }

    /// One `cons` line, as `ServerCnxn.dumpConnectionInfo` prints it: the
    /// session's fields only once it has one, `lcxid` only when not negative.
    pub fn line(&self) -> String {
        let mut line = format!(
            "/{}[1](queued={},recved={},sent={}",
            self.peer,
            self.queued.load(Relaxed),
            self.received.load(Relaxed),
            self.sent.load(Relaxed),
        );
        let session_id = self.session_id.load(Relaxed);
        if session_id != 0 {
            let l = self.latency();
            line.push_str(&format!(
                ",sid=0x{:x},lop={},est={},to={}",
                session_id,
                op_name(self.last_op.load(Relaxed)),
                self.established_unix_ms,
                self.timeout_ms.load(Relaxed),
            ));
            let cxid = self.last_cxid.load(Relaxed);
            if cxid >= 0 {
                line.push_str(&format!(",lcxid=0x{cxid:x}"));
            }
            line.push_str(&format!(
                ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
                self.last_zxid.load(Relaxed),
                l.last_response_unix_ms,
                l.last_ms,
                l.min_ms,
                l.avg_ms,
                l.max_ms
            ));
        }
        line.push(')');
        line
    }

    /// `ServerCnxn.getConnectionInfo(brief)` as the AdminServer's JSON has it.
    pub fn json(&self, brief: bool) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        put("remote_socket_address", json!(self.peer.to_string()));
        put("interest_ops", json!(1));
        put("outstanding_requests", json!(self.queued.load(Relaxed)));
        put("packets_received", json!(self.received.load(Relaxed)));
        put("packets_sent", json!(self.sent.load(Relaxed)));
        if !brief {
            let l = self.latency();
            put("session_id", json!(self.session_id.load(Relaxed)));
            put("last_operation", json!(op_name(self.last_op.load(Relaxed))));
            put("established", json!(self.established_unix_ms));
            put("session_timeout", json!(self.timeout_ms.load(Relaxed)));
            put("last_cxid", json!(self.last_cxid.load(Relaxed)));
            put("last_zxid", json!(self.last_zxid.load(Relaxed)));
            put("last_response_time", json!(l.last_response_unix_ms));
            put("last_latency", json!(l.last_ms));
            put("min_latency", json!(l.min_ms));
            put("avg_latency", json!(l.avg_ms));
            put("max_latency", json!(l.max_ms));
        }
        serde_json::Value::Object(m)
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

    /// The connections of one port (plain or secure) as JSON, by address.
    pub fn json(&self, secure: bool, brief: bool) -> Vec<serde_json::Value> {
        let mut conns: Vec<Arc<ConnInfo>> = self
            .lock()
            .values()
            .filter(|c| c.secure == secure)
            .cloned()
            .collect();
        conns.sort_by_key(|c| c.peer);
        conns.iter().map(|c| c.json(brief)).collect()
    }

    /// `crst`: every connection's counters back to zero.
    pub fn reset_stats(&self) {
        for conn in self.lock().values() {
            conn.reset_stats();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, u64), Arc<ConnInfo>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}
