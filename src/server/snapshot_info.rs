//! The newest snapshot on disk, for the AdminServer's `last_snapshot`
//! (ZooKeeper's `FileSnap.getLastSnapshotInfo`): set from the snapshot that
//! recovery loaded, then by every snapshot written. Written by the log
//! stage's snapshot thread, read by the AdminServer's thread.

use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::UNIX_EPOCH;

use crate::storage::format::{parse_zxid_name, SNAPSHOT_PREFIX};

pub struct LastSnapshot {
    zxid: AtomicI64,
    /// The file's modification time in seconds, as ZooKeeper reports it
    /// (`lastModified() / 1000`).
    unix_s: AtomicI64,
}

impl Default for LastSnapshot {
    fn default() -> LastSnapshot {
        // ZooKeeper answers -1 and -1 before any snapshot.
        LastSnapshot {
            zxid: AtomicI64::new(-1),
            unix_s: AtomicI64::new(-1),
        }
    }
}

impl LastSnapshot {
    /// Records the snapshot file at `path` (its zxid is in its name).
    pub fn record(&self, path: &Path) {
        let Some(zxid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| parse_zxid_name(n, SNAPSHOT_PREFIX))
        else {
            return;
        };
        let unix_s = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_secs() as i64);
        // Time first: a reader that sees the new zxid sees its time or a newer one.
        self.unix_s.store(unix_s, Relaxed);
        self.zxid.store(zxid, Relaxed);
    }

    /// (zxid, seconds since the epoch), -1 each before any snapshot.
    pub fn get(&self) -> (i64, i64) {
        (self.zxid.load(Relaxed), self.unix_s.load(Relaxed))
    }
}
