//! Durable state: the write-ahead log (group-committed), snapshots of tree
//! versions, recovery at start-up, retention, and the per-database secret.
//! The byte formats and the crash analysis are in `docs/storage.md`.
//!
//! How the pipeline uses it:
//! 1. start: [`open`] → recovered tree, last zxid, open sessions, and a [`Wal`]
//!    positioned after the last complete batch;
//! 2. per batch: [`Wal::append_batch`] (encode, one write, one fdatasync),
//!    acknowledge only after it returns; feed [`SnapPolicy::record_txns`];
//! 3. when it says so: [`Wal::roll`], then [`write_snapshot`] of a tree clone
//!    and the [`OpenSessions`] clone on a helper thread;
//! 4. periodically or from `ferrokeeper purge`: [`purge`];
//! 5. shutdown: [`Wal::close`].
//!
//! In an ensemble, [`epochs`] keeps ZAB's acceptedEpoch and currentEpoch, and
//! [`truncate::truncate_after`] performs a learner's TRUNC (then reopen).
//! [`usage`] sums the directories' sizes for the operator commands.

pub mod device;
pub mod epochs;
pub mod format;
mod open;
mod policy;
pub mod purge;
pub mod recovery;
mod secret;
mod sessions;
pub mod snapshot;
pub mod truncate;
mod uring;
pub mod usage;
pub mod wal;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod truncate_tests;

use std::io;

pub use device::{FileDevice, FsLogStore, LogDevice, LogStore};
pub use format::DbId;
pub use open::{open, Opened, StorageOptions};
pub use policy::SnapPolicy;
pub use purge::{purge, PurgeReport};
pub use recovery::{recover, LogTail, Recovered};
pub use secret::{load_db_id, load_or_create_secret};
pub use sessions::OpenSessions;
pub use snapshot::write_snapshot;
pub use wal::{Wal, WalOptions};

/// The storage layer's bounds live with all the others in `crate::limits`.
pub use crate::limits::storage as limits;

#[derive(thiserror::Error, Debug)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Damage that recovery must not paper over: committed txns could be lost.
    #[error("corrupt write-ahead log {file} at offset {offset}: {reason}")]
    CorruptLog {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error("write-ahead log gap in {file}: expected zxid {expected:#x}, found {found:#x} (missing or deleted log segment?)")]
    LogGap {
        file: String,
        expected: i64,
        found: i64,
    },
    #[error("{0}")]
    Invalid(String),
}

impl StorageError {
    pub fn io(context: impl Into<String>, source: io::Error) -> StorageError {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Attaches what was being done to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(context(), e))
    }
}
