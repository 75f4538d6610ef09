//! Retention: keep the newest N snapshots (at least 3) and the log segments
//! that recovery from the oldest kept one needs; remove the rest. Used by
//! autopurge and by `ferrokeeper purge`.

use std::fs;
use std::path::{Path, PathBuf};

use super::device::{list_names, sync_dir};
use super::limits::SNAPSHOTS_RETAINED_MIN;
use super::recovery::list_segments;
use super::snapshot::list_snapshots;
use super::{IoContext, StorageError};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub removed_snapshots: Vec<PathBuf>,
    pub removed_logs: Vec<PathBuf>,
}

/// Removes all but the newest `retain` snapshots (never fewer than 3) in
/// `snap_dir` and the segments in `log_dir` holding only txns before the
/// oldest kept snapshot. Safe while the server appends: the active segment
/// is always the newest, which is always kept.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> Result<PurgeReport, StorageError> {
    let retain = retain.max(SNAPSHOTS_RETAINED_MIN);
    let snapshots = list_snapshots(snap_dir).ctx(|| format!("listing {}", snap_dir.display()))?;
    let mut report = PurgeReport::default();
    if snapshots.len() < retain {
        return Ok(report);
    }
    let (old, kept) = snapshots.split_at(snapshots.len() - retain);
    let oldest_kept_zxid = kept[0].0;
    for (_, name) in old {
        report.removed_snapshots.push(snap_dir.join(name));
    }
    let segments =
        list_segments(list_names(log_dir).ctx(|| format!("listing {}", log_dir.display()))?);
    for pair in segments.windows(2) {
        // Segment 0 holds zxids below the next one's first: all already in
        // the snapshot if that first zxid is at most the snapshot's successor.
        if pair[1].0 <= oldest_kept_zxid + 1 {
            report.removed_logs.push(log_dir.join(&pair[0].1));
        }
    }
    for path in report.removed_snapshots.iter().chain(&report.removed_logs) {
        fs::remove_file(path).ctx(|| format!("removing {}", path.display()))?;
    }
    sync_dir(snap_dir).ctx(|| format!("fsync of {}", snap_dir.display()))?;
    sync_dir(log_dir).ctx(|| format!("fsync of {}", log_dir.display()))?;
    Ok(report)
}
