//! The log stage of the write pipeline. Every batch passes through `append`
//! before it is applied and published; until the durable write-ahead log lands
//! this stage keeps the most recent txns in memory only (bounded).

use std::collections::VecDeque;

use crate::limits;
use crate::tree::{TxnHeader, TxnOp};

pub struct LoggedTxn {
    pub header: TxnHeader,
    pub op: TxnOp,
}

#[derive(Default)]
pub struct MemoryLog {
    recent: VecDeque<LoggedTxn>,
    appended_total: u64,
}

impl MemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one batch. The durable log will fdatasync here before returning.
    pub async fn append(&mut self, batch: Vec<LoggedTxn>) -> std::io::Result<()> {
        self.appended_total += batch.len() as u64;
        for txn in batch {
            if self.recent.len() == limits::MEMORY_LOG_TXNS_MAX {
                self.recent.pop_front();
            }
            self.recent.push_back(txn);
        }
        Ok(())
    }

    pub fn appended_total(&self) -> u64 {
        self.appended_total
    }

    pub fn last(&self) -> Option<&LoggedTxn> {
        self.recent.back()
    }
}
