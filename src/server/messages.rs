//! What travels between executors. Shards send owned request bytes to the
//! pipeline; the pipeline sends each shard one commit notice per batch holding
//! the new tree version, the batch's watch events and that shard's replies.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::proto::{ErrorCode, SessionId, Zxid};
use crate::session::ConnRef;
use crate::tree::acl::AuthInfo;
use crate::tree::{DataTree, TreeEvent, TxnResult};

/// A write request, forwarded as the frame's body bytes (no re-encoding).
pub struct WriteMsg {
    pub conn: ConnRef,
    pub session_id: SessionId,
    pub xid: i32,
    pub op: i32,
    pub body: Bytes,
    pub auth: Arc<AuthInfo>,
}

/// A client handshake that needs the session table.
pub struct ConnectMsg {
    pub conn: ConnRef,
    /// 0 asks for a new session.
    pub session_id: SessionId,
    pub password: [u8; 16],
    pub timeout_ms: i32,
    pub last_zxid_seen: Zxid,
    pub peer_ip: IpAddr,
    /// The client accepts a read-only server (`ConnectRequest.readOnly`).
    pub read_only: bool,
}

pub enum ToPipeline {
    Write(WriteMsg),
    Connect(ConnectMsg),
    /// Sessions with client activity since the last report.
    Touch(Vec<SessionId>),
    /// A connection closed without closeSession; the session lives on until expiry.
    Disconnected {
        conn: ConnRef,
        session_id: SessionId,
    },
    /// Nothing to do but turn the loop: a gather asks for the pipeline's
    /// sessions (`server::gather`).
    Wake,
}

pub enum WriteOutcome {
    Txn(TxnResult),
    Error(ErrorCode),
    Sync(String),
    /// closeSession applied: reply, then close the connection.
    SessionClosed,
}

pub struct WriteReply {
    pub conn_id: u64,
    pub xid: i32,
    pub zxid: Zxid,
    pub outcome: WriteOutcome,
}

pub enum ConnectOutcome {
    Granted {
        session_id: SessionId,
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// A read-only server's session (see `pipeline::read_only`): the client
    /// is told so, and its writes are answered NOTREADONLY by its shard.
    GrantedReadOnly {
        session_id: SessionId,
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// Unknown/expired session or wrong password: the client is told "expired".
    Expired,
    /// The client has seen a newer zxid than this server has (never serve it an older view).
    TooNew,
}

pub struct ConnectReply {
    pub conn_id: u64,
    pub outcome: ConnectOutcome,
}

/// Why the pipeline asks a shard to close a connection.
#[derive(Clone, Copy, Debug)]
pub enum CloseReason {
    SessionExpired,
    SessionMoved,
    /// A write of this connection was proposed or forwarded and this server
    /// lost its leader before seeing it committed: the outcome is unknown,
    /// so the client gets ConnectionLoss (as from ZooKeeper) rather than an answer.
    LeaderLost,
    /// The AdminServer's restore replaced the database: the client
    /// reconnects, and its session goes on if the snapshot holds it.
    Restored,
}

/// One per batch per shard. The shard handles the parts in this order:
/// events (against the old and new versions), adopt the version, replies,
/// connect results, closes — so every event precedes the replies that reflect it.
pub struct CommitNotice {
    pub version: DataTree,
    pub events: Arc<Vec<(Zxid, TreeEvent)>>,
    pub replies: Vec<WriteReply>,
    pub connects: Vec<ConnectReply>,
    pub closes: Vec<(u64, CloseReason)>,
    /// Live sessions after this batch (for mntr/srvr).
    pub session_count: usize,
    /// When the batch went to the log and came back durable; `None` for a
    /// batch published without logging (nothing to time).
    pub timing: Option<CommitTiming>,
}

/// A logged batch's milestones, for the shards' commit summaries.
#[derive(Clone, Copy, Debug)]
pub struct CommitTiming {
    pub submitted: Instant,
    pub durable: Instant,
}

pub enum ToShard {
    Commit(Box<CommitNotice>),
}
