//! A learner's TRUNC: cut the durable state back to a zxid, so that a
//! restart (or the reload that follows) recovers exactly the txns up to it.
//!
//! Two ZooKeeper bugs set the rules:
//! - ZOOKEEPER-4837: ZooKeeper cuts its log but keeps snapshots above the
//!   cut, so the next load takes the newer snapshot and resurrects the
//!   truncated txns. Here every snapshot above the cut is deleted first.
//! - ZOOKEEPER-5094: an interrupted truncation can leave memory ahead of the
//!   log. Here nothing is changed in memory: the caller reloads from disk
//!   (`storage::open`) after this returns, and every crash point below leaves
//!   files that recover to a prefix of the old log no shorter than the cut.
//!
//! Order, each step durable before the next:
//! 1. delete snapshots above the cut (fsync of the directory);
//! 2. delete log segments that start above it, newest first, so a crash
//!    leaves a contiguous prefix;
//! 3. in the segment holding the cut, mark the cut's record as the end of
//!    its batch (recovery replays whole batches only; a cut inside a batch
//!    would otherwise drop the txns before it) and fdatasync;
//! 4. truncate that segment after the record and fdatasync.
//!
//! A crash after step 3 recovers the old log (the rest of the old batch
//! still ends in its own BATCH_END); a crash after step 4 recovers the cut.

use std::fs;
use std::path::Path;

use tracing::info;

use super::device::{sync_dir, LogDevice, LogStore};
use super::format::{mark_batch_end, record_at, RecordAt, SEGMENT_HEADER_BYTES};
use super::recovery::list_segments;
use super::snapshot::list_snapshots;
use super::{IoContext, StorageError};

/// What a truncation removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TruncateReport {
    pub removed_snapshots: Vec<String>,
    pub removed_segments: Vec<String>,
    /// Records cut from the segment that holds the cut.
    pub records_cut: usize,
}

/// Cuts snapshots and the log after `zxid` (see the module docs).
pub fn truncate_after<S: LogStore>(
    snap_dir: &Path,
    store: &mut S,
    zxid: i64,
) -> Result<TruncateReport, StorageError> {
    let mut report = TruncateReport::default();
    remove_snapshots_after(snap_dir, zxid, &mut report)?;
    let names = store
        .list()
        .ctx(|| format!("listing {}", store.display("")))?;
    let segments = list_segments(names);
    for (first_zxid, name) in segments.iter().rev() {
        if *first_zxid <= zxid {
            if let Some(cut) = cut_segment(store, name, zxid)? {
                report.records_cut = cut;
                break;
            }
        }
        let file = store.display(name);
        store.remove(name).ctx(|| format!("removing {file}"))?;
        store
            .sync_dir()
            .ctx(|| format!("fsync of the directory of {file}"))?;
        report.removed_segments.push(name.clone());
    }
    info!(
        "truncated after {zxid:#x}: {} snapshots, {} segments and {} records removed",
        report.removed_snapshots.len(),
        report.removed_segments.len(),
        report.records_cut
    );
    Ok(report)
}

fn remove_snapshots_after(
    dir: &Path,
    zxid: i64,
    report: &mut TruncateReport,
) -> Result<(), StorageError> {
    let snapshots = list_snapshots(dir).ctx(|| format!("listing {}", dir.display()))?;
    for (_, name) in snapshots.into_iter().filter(|(z, _)| *z > zxid) {
        let path = dir.join(&name);
        fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
        report.removed_snapshots.push(name);
    }
    if !report.removed_snapshots.is_empty() {
        sync_dir(dir).ctx(|| format!("fsync of {}", dir.display()))?;
    }
    Ok(())
}

/// Steps 3 and 4 on the segment whose records include the cut; returns
/// how many records followed it, or None when it holds nothing at or below
/// the cut (then the caller removes it like the later ones).
fn cut_segment<S: LogStore>(
    store: &mut S,
    name: &str,
    zxid: i64,
) -> Result<Option<usize>, StorageError> {
    let file = store.display(name);
    let bytes = store.read(name).ctx(|| format!("reading {file}"))?;
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut cut: Option<(usize, usize, bool)> = None; // (start, end, batch_end)
    let mut after = 0;
    while let RecordAt::Valid {
        zxid: record_zxid,
        batch_end,
        next_offset,
        ..
    } = record_at(&bytes, offset)
    {
        if record_zxid <= zxid {
            cut = Some((offset, next_offset, batch_end));
        } else {
            after += 1;
        }
        offset = next_offset;
    }
    let Some((start, end, batch_end)) = cut else {
        return Ok(if after == 0 { Some(0) } else { None });
    };
    if after == 0 {
        return Ok(Some(0));
    }
    let mut record = bytes[start..end].to_vec();
    drop(bytes); // no mapping is kept across the writes
    let mut device = store.open(name).ctx(|| format!("opening {file}"))?;
    if !batch_end {
        mark_batch_end(&mut record);
        device
            .write_at(start as u64, &record[..SEGMENT_RECORD_HEAD_BYTES])
            .ctx(|| format!("writing {file}"))?;
        device.sync_data().ctx(|| format!("fdatasync {file}"))?;
    }
    device
        .set_len(end as u64)
        .ctx(|| format!("truncating {file}"))?;
    device.sync_data().ctx(|| format!("fdatasync {file}"))?;
    Ok(Some(after))
}

/// The record header bytes `mark_batch_end` changes (len, crc, zxid, flags).
const SEGMENT_RECORD_HEAD_BYTES: usize = super::format::RECORD_HEADER_BYTES;
