//! Transactions: the validated, fully resolved form of a write. `prep` makes
//! them from requests; `apply` (and WAL recovery) replays them without any
//! ACL or request context, so each op carries everything apply needs.

use super::node::Data;
use super::path::PathRef;
use std::sync::Arc;

use crate::proto::{op, Acl, ErrorCode, EventType, Stat};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    /// Wall-clock time of the write (ctime/mtime), ms since the Unix epoch.
    pub time_ms: i64,
}

/// Which create opcode a create came from: decides the reply shape
/// (create: path only; the others: path and Stat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateKind {
    Create,
    Create2,
    Container,
    Ttl,
}

impl CreateKind {
    pub fn from_opcode(opcode: i32) -> Option<CreateKind> {
        Some(match opcode {
            op::CREATE => CreateKind::Create,
            op::CREATE2 => CreateKind::Create2,
            op::CREATE_CONTAINER => CreateKind::Container,
            op::CREATE_TTL => CreateKind::Ttl,
            _ => return None,
        })
    }

    pub fn opcode(self) -> i32 {
        match self {
            CreateKind::Create => op::CREATE,
            CreateKind::Create2 => op::CREATE2,
            CreateKind::Container => op::CREATE_CONTAINER,
            CreateKind::Ttl => op::CREATE_TTL,
        }
    }

    /// Whether the reply carries the new node's Stat.
    pub fn returns_stat(self) -> bool {
        self != CreateKind::Create
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    Create {
        /// Final path (sequential suffix already appended).
        path: String,
        data: Data,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        /// The parent's cversion after this create.
        parent_cversion: i32,
        kind: CreateKind,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Data,
        /// The node's version after this write.
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        /// The node's aversion after this write.
        version: i32,
    },
    /// A version check inside a multi; `version` is the node's version seen.
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<TxnOp>),
    CreateSession {
        timeout_ms: i32,
    },
    /// Deletes every ephemeral of the header's session.
    CloseSession,
    /// A failed single write, logged so that its zxid is accounted for.
    Error(ErrorCode),
    /// A failed multi: per op Ok before the failure, the failing code, then
    /// RuntimeInconsistency. Changes nothing.
    MultiError(Vec<ErrorCode>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResult {
    Created {
        path: String,
        stat: Stat,
        kind: CreateKind,
    },
    Deleted,
    SetData(Stat),
    SetAcl(Stat),
    Checked,
    Multi(Vec<TxnResult>),
    Session,
    Error(ErrorCode),
    MultiError(Vec<ErrorCode>),
}

impl TxnResult {
    /// Whether the txn changed nothing because it failed.
    pub fn is_error(&self) -> bool {
        matches!(self, TxnResult::Error(_) | TxnResult::MultiError(_))
    }
}

/// A change that may fire watches. `acl` is the ACL of the node the event
/// is about (the parent's for NodeChildrenChanged, the deleted node's for
/// NodeDeleted), so delivery can check READ like ZooKeeper does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEvent {
    pub event: EventType,
    pub path: PathRef,
    pub acl: Arc<[Acl]>,
}

/// Per-op codes of a failed multi, as ZooKeeper reports them.
pub fn multi_error_codes(op_count: usize, failed_index: usize, code: ErrorCode) -> Vec<ErrorCode> {
    assert!(failed_index < op_count);
    (0..op_count)
        .map(|i| match i.cmp(&failed_index) {
            std::cmp::Ordering::Less => ErrorCode::Ok,
            std::cmp::Ordering::Equal => code,
            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
        })
        .collect()
}
