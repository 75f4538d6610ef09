//! Replication on ZooKeeper 3.8/3.9's own server-to-server protocols, built
//! as pure cores (no sockets, clocks or files) that a runtime will drive: so
//! far the wire formats, byte for byte, fast leader election, and the
//! leader's and learners' discovery, sync and broadcast. The
//! protocol facts were checked against the Apache sources (`release-3.9.5`,
//! same formats in `release-3.8.0`); the project's notes on them are
//! `zk-quorum.md` in the team's workbench (sections 1-3).
//!
//! Submodules:
//! - [`election`] fast leader election as a state machine: notifications,
//!   ticks and peer connectivity in, notifications to send and the decision
//!   out (driven by the seeded simulator in `tests/zab_election_sim.rs`).
//! - [`discovery`] ZAB discovery for the leader and its learners: the new
//!   epoch from a quorum's accepted epochs, ACKEPOCH, and stepping down when
//!   a voter is ahead of the leader.
//! - [`sync`] the leader's choice of DIFF, TRUNC or SNAP for a learner
//!   (TRUNC only when provably safe).
//! - [`leader`] the leader after its election: discovery, each learner's
//!   sync, the NEWLEADER barrier, proposals, ACK counting, commits in order,
//!   pings and the liveness rules.
//! - [`learner`] a follower or an observer: discovery, sync with the
//!   durable-before-ACK ordering, ACKs after fsync, COMMIT/INFORM in order.
//! - [`election_wire`] the election port: the connection handshake
//!   (`QuorumCnxManager.InitialMessage`), the `int length` frame
//!   (`QuorumCnxManager.SendWorker/RecvWorker`) and fast-leader-election
//!   notifications (`FastLeaderElection.buildMsg`, `WorkerReceiver.run`).
//! - [`quorum_wire`] the quorum (learner) port: `QuorumPacket` as jute writes
//!   it, the packet type constants of `Leader`, `LearnerInfo`, LEADERINFO,
//!   ACKEPOCH, NEWLEADER payloads and the zxid/epoch helpers (`ZxidUtils`).
//! - [`txn_wire`] txns as ZooKeeper writes them (PROPOSAL data, log records), to/from `TxnOp`.
//! - [`snap_wire`] the DataTree serialization (SNAP sync, `snapshot.*` files) as bounded streams.
//!
//! Every decoder returns [`WireError`] on bad input and never panics; every
//! length read from the wire is checked against a bound in
//! `crate::limits::quorum` before anything is sliced or allocated.

pub mod discovery;
pub mod election;
pub mod election_wire;
pub mod leader;
pub mod learner;
pub mod quorum_wire;
pub mod snap_wire;
pub mod sync;
pub mod txn_wire;

use crate::proto::jute::DecodeError;

/// Why bytes from a peer could not be decoded.
///
/// [`WireError::Truncated`] on a stream decoder means "not enough bytes yet":
/// the caller may wait for more input. Every other variant is final (the
/// caller drops the message or the connection, as the decoder documents).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("truncated input")]
    Truncated,
    #[error("{what}: length {len} outside the allowed range 0..={max}")]
    BadLength {
        what: &'static str,
        len: i64,
        max: usize,
    },
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    #[error("unknown election protocol version {0}")]
    UnknownProtocolVersion(i64),
    #[error("badly formed election address {0:?}")]
    BadAddress(String),
    #[error("unknown server state {0}")]
    UnknownServerState(i32),
    #[error("expected packet type {expected}, got {got}")]
    UnexpectedPacketType { expected: i32, got: i32 },
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}

impl WireError {
    /// True when more input could still make the decode succeed.
    pub fn is_truncated(&self) -> bool {
        matches!(self, WireError::Truncated)
    }
}

impl From<DecodeError> for WireError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Truncated => WireError::Truncated,
            DecodeError::NegativeLength(n) => WireError::BadLength {
                what: "jute length",
                len: i64::from(n),
                max: 0,
            },
            DecodeError::TooLong { len, max } => WireError::BadLength {
                what: "jute length",
                len: i64::try_from(len).unwrap_or(i64::MAX),
                max,
            },
            DecodeError::InvalidUtf8 => WireError::InvalidUtf8("jute string"),
            DecodeError::NullString => WireError::Invalid("null string"),
            DecodeError::UnknownOpcode(_) | DecodeError::BadMultiOp(_) => {
                WireError::Invalid("client opcode in a quorum record")
            }
            DecodeError::Invalid(why) => WireError::Invalid(why),
        }
    }
}
