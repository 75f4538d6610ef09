//! Which sessions are open, as far as the txn stream says: a session is
//! created and closed only by logged txns, so replaying the log rebuilds this
//! set exactly, and a snapshot stores it next to the tree of the same zxid.

use crate::tree::{TxnHeader, TxnOp};

/// Session id -> timeout (ms). A persistent map, so the pipeline can hand a
/// clone to the snapshot thread in O(1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenSessions {
    timeouts_ms: imbl::OrdMap<i64, i32>,
}

impl OpenSessions {
    pub fn new() -> OpenSessions {
        OpenSessions::default()
    }

    /// Follows one logged txn (anything but session txns is ignored).
    pub fn apply(&mut self, hdr: &TxnHeader, op: &TxnOp) {
        match op {
            TxnOp::CreateSession { timeout_ms } => {
                self.timeouts_ms.insert(hdr.session_id, *timeout_ms);
            }
            TxnOp::CloseSession => {
                self.timeouts_ms.remove(&hdr.session_id);
            }
            _ => {}
        }
    }

    pub fn insert(&mut self, session_id: i64, timeout_ms: i32) {
        self.timeouts_ms.insert(session_id, timeout_ms);
    }

    /// (session id, timeout ms), sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        self.timeouts_ms.iter().map(|(id, t)| (*id, *t))
    }

    pub fn len(&self) -> usize {
        self.timeouts_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timeouts_ms.is_empty()
    }
}
