//! Start-up recovery: the newest snapshot that verifies, then every complete
//! batch of the log after its zxid. An incomplete batch at the very end of
//! the log (a crash during its write: never acknowledged) is truncated;
//! damage anywhere else stops recovery with the file and offset, because
//! skipping it would silently drop acknowledged txns.

use std::fs;
use std::path::Path;

use tracing::{info, warn};

use super::device::{list_names, LogDevice, LogStore, TMP_SUFFIX};
use super::epochs::{ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE};
use super::format::{
    decode_txn, parse_zxid_name, record_at, zxid_follows, DbId, RecordAt, SegmentHeader,
    LOG_PREFIX, SEGMENT_HEADER_BYTES,
};
use super::sessions::OpenSessions;
use super::snapshot::{list_snapshots, read_snapshot, LoadedSnapshot};
use super::{IoContext, StorageError};
use crate::tree::{DataTree, TxnHeader, TxnOp};

/// Where appending continues. `segment: None` means "start a new segment".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTail {
    pub segment: Option<String>,
    /// Offset just after the last complete batch of `segment`.
    pub end_bytes: u64,
    pub last_zxid: i64,
}

pub struct Recovered {
    pub tree: DataTree,
    /// The last txn recovered (0 for a fresh database); the next is its successor.
    pub last_zxid: i64,
    /// Sessions created and not closed, with their timeouts (ms).
    pub sessions: OpenSessions,
    pub tail: LogTail,
    pub snapshot_zxid: Option<i64>,
    pub replayed_txns: u64,
}

/// Recovers the state from the snapshots in `snap_dir` and the log in `store`.
/// May truncate a torn log tail and remove leftover temporary files.
pub fn recover<S: LogStore>(
    snap_dir: &Path,
    store: &mut S,
    db_id: DbId,
) -> Result<Recovered, StorageError> {
    let started = std::time::Instant::now();
    remove_temp_files(snap_dir)?;
    let snapshot = newest_valid_snapshot(snap_dir, db_id)?;
    let snapshot_ms = started.elapsed().as_millis();
    let snapshot_zxid = snapshot.as_ref().map(|s| s.zxid);
    let mut replay = match snapshot {
        Some(s) => Replay::new(s.tree, s.sessions, s.zxid),
        None => Replay::new(DataTree::new(), OpenSessions::new(), 0),
    };
    let mut tail = replay_log(store, db_id, &mut replay)?;
    if replay.last_zxid < replay.base_zxid {
        // Only reachable if log files were lost or forceSync was off.
        warn!(
            "the write-ahead log ends at zxid {:#x}, before the snapshot at {:#x}",
            replay.last_zxid, replay.base_zxid
        );
        replay.last_zxid = replay.base_zxid;
        tail = LogTail {
            segment: None,
            end_bytes: 0,
            last_zxid: replay.base_zxid,
        };
    }
    let log_ms = started.elapsed().as_millis() - snapshot_ms;
    info!(
        "recovered zxid {:#x} in {} ms: snapshot {:?} loaded in {snapshot_ms} ms, log read in {log_ms} ms, {} txns replayed, {} open sessions",
        replay.last_zxid,
        snapshot_ms + log_ms,
        snapshot_zxid,
        replay.replayed_txns,
        replay.sessions.len()
    );
    replay.tree.set_last_zxid(replay.last_zxid);
    Ok(Recovered {
        tree: replay.tree,
        last_zxid: replay.last_zxid,
        sessions: replay.sessions,
        tail,
        snapshot_zxid,
        replayed_txns: replay.replayed_txns,
    })
}

/// A temporary file is a write interrupted by a crash; nothing refers to it,
/// except an epoch's, which `epochs::load_epochs` reads back (ZOOKEEPER-4269)
/// and removes itself.
fn remove_temp_files(dir: &Path) -> Result<(), StorageError> {
    let names = match list_names(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(format!("listing {}", dir.display()), e)),
    };
    let epoch_temps = [ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE].map(|f| format!("{f}{TMP_SUFFIX}"));
    for name in names
        .iter()
        .filter(|n| n.ends_with(TMP_SUFFIX) && !epoch_temps.contains(n))
    {
        let path = dir.join(name);
        warn!("removing interrupted write {}", path.display());
        fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Newest first; a snapshot that fails to verify is skipped with a warning
/// (an older one plus more of the log gives the same state).
fn newest_valid_snapshot(dir: &Path, db_id: DbId) -> Result<Option<LoadedSnapshot>, StorageError> {
    let snapshots = list_snapshots(dir).ctx(|| format!("listing {}", dir.display()))?;
    for (zxid, name) in snapshots.iter().rev() {
        let path = dir.join(name);
        match read_snapshot(&path, db_id, *zxid) {
            Ok(loaded) => return Ok(Some(loaded)),
            Err(reason) => warn!("skipping snapshot {}: {reason}", path.display()),
        }
    }
    if !snapshots.is_empty() {
        warn!(
            "no snapshot in {} verifies; replaying the log from the start",
            dir.display()
        );
    }
    Ok(None)
}

struct Replay {
    tree: DataTree,
    sessions: OpenSessions,
    /// The snapshot's zxid: txns up to it are already in `tree`.
    base_zxid: i64,
    last_zxid: i64,
    replayed_txns: u64,
}

impl Replay {
    fn new(tree: DataTree, sessions: OpenSessions, base_zxid: i64) -> Replay {
        Replay {
            tree,
            sessions,
            base_zxid,
            last_zxid: base_zxid,
            replayed_txns: 0,
        }
    }

    /// True for a txn the snapshot already holds (nothing replayed yet).
    fn holds(&self, zxid: i64) -> bool {
        zxid <= self.base_zxid && self.last_zxid == self.base_zxid
    }

    /// Applies one complete batch; txns the snapshot already holds are skipped.
    fn apply_batch(
        &mut self,
        batch: &[(TxnHeader, TxnOp)],
        file: &str,
    ) -> Result<(), StorageError> {
        let mut events = Vec::new();
        for (hdr, op) in batch {
            if self.holds(hdr.zxid) {
                continue;
            }
            if !zxid_follows(self.last_zxid, hdr.zxid) {
                return Err(StorageError::LogGap {
                    file: file.to_string(),
                    expected: self.last_zxid + 1,
                    found: hdr.zxid,
                });
            }
            events.clear();
            self.tree.apply(hdr, op, &mut events);
            self.sessions.apply(hdr, op);
            self.last_zxid = hdr.zxid;
            self.replayed_txns += 1;
        }
        Ok(())
    }
}

/// Log segments as (first zxid, name), oldest first.
pub fn list_segments(names: Vec<String>) -> Vec<(i64, String)> {
    let mut segments: Vec<(i64, String)> = names
        .into_iter()
        .filter_map(|n| parse_zxid_name(&n, LOG_PREFIX).map(|z| (z, n)))
        .collect();
    segments.sort();
    segments
}

fn replay_log<S: LogStore>(
    store: &mut S,
    db_id: DbId,
    replay: &mut Replay,
) -> Result<LogTail, StorageError> {
    let names = store
        .list()
        .ctx(|| format!("listing {}", store.display("")))?;
    let segments = list_segments(names);
    // Segments that end before the snapshot's successor are not needed.
    let first = segments
        .iter()
        .rposition(|(zxid, _)| *zxid <= replay.base_zxid + 1)
        .unwrap_or(0);
    let mut tail = LogTail {
        segment: None,
        end_bytes: 0,
        last_zxid: replay.last_zxid,
    };
    let needed = &segments[first.min(segments.len())..];
    for (i, (zxid_in_name, name)) in needed.iter().enumerate() {
        let is_last = i + 1 == needed.len();
        let file = store.display(name);
        let bytes = store.read(name).ctx(|| format!("reading {file}"))?;
        if !check_header(&bytes, &file, *zxid_in_name, db_id, is_last)? {
            warn!("removing log segment {file}: its header was never completely written");
            store.remove(name).ctx(|| format!("removing {file}"))?;
            store
                .sync_dir()
                .ctx(|| format!("fsync of the directory of {file}"))?;
            continue;
        }
        let end_bytes = replay_segment(&bytes, &file, replay, is_last)?;
        let torn_tail = end_bytes < bytes.len() && !bytes[end_bytes..].iter().all(|b| *b == 0);
        drop(bytes); // a mapping is not kept across the truncation
        if torn_tail {
            truncate(store, name, end_bytes as u64)?;
        }
        let has_records = end_bytes > SEGMENT_HEADER_BYTES;
        // An empty last segment is reused only if its name is the next zxid.
        let reusable = has_records || zxid_follows(replay.last_zxid, *zxid_in_name);
        tail = LogTail {
            segment: reusable.then(|| name.clone()),
            end_bytes: end_bytes as u64,
            last_zxid: replay.last_zxid,
        };
    }
    Ok(tail)
}

/// Ok(true): a usable header. Ok(false): the last segment, whose header is
/// torn and which holds nothing else (its creation was interrupted).
fn check_header(
    bytes: &[u8],
    file: &str,
    zxid_in_name: i64,
    db_id: DbId,
    is_last: bool,
) -> Result<bool, StorageError> {
    let corrupt = |offset: u64, reason: &str| StorageError::CorruptLog {
        file: file.to_string(),
        offset,
        reason: reason.to_string(),
    };
    match SegmentHeader::decode(bytes) {
        Err(reason) => {
            let rest = bytes.get(SEGMENT_HEADER_BYTES..).unwrap_or(&[]);
            if is_last && rest.iter().all(|b| *b == 0) {
                Ok(false)
            } else {
                Err(corrupt(0, reason))
            }
        }
        Ok(h) if h.db_id != db_id => Err(corrupt(
            8,
            "segment of another database (database id differs)",
        )),
        Ok(h) if h.first_zxid != zxid_in_name => {
            Err(corrupt(24, "header zxid differs from the file name"))
        }
        Ok(_) => Ok(true),
    }
}

/// Replays the complete batches of one segment; returns the offset after
/// the last one. Whatever follows it must be a torn tail of the last segment.
fn replay_segment(
    bytes: &[u8],
    file: &str,
    replay: &mut Replay,
    is_last: bool,
) -> Result<usize, StorageError> {
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut committed_end = offset;
    let mut batch = Vec::new();
    let stop = loop {
        match record_at(bytes, offset) {
            RecordAt::End => break None,
            RecordAt::Bad(reason) => break Some(reason),
            RecordAt::Valid {
                zxid,
                batch_end,
                payload,
                next_offset,
            } => {
                // A txn the snapshot holds is checksummed (record_at) but not
                // decoded: after a clean stop that is the whole last segment.
                if !replay.holds(zxid) {
                    let txn = decode_txn(zxid, payload).map_err(|e| StorageError::CorruptLog {
                        file: file.to_string(),
                        offset: offset as u64,
                        reason: format!("record does not decode: {e}"),
                    })?;
                    batch.push(txn);
                }
                offset = next_offset;
                if batch_end {
                    replay.apply_batch(&batch, file)?;
                    batch.clear();
                    committed_end = offset;
                }
            }
        }
    };
    check_tail(bytes, file, committed_end, offset, stop, is_last)?;
    Ok(committed_end)
}

/// Decides whether what follows the last complete batch may be dropped:
/// only at the end of the last segment, and only if no valid record follows
/// the damage (a valid record after it means the damage is not a torn write).
fn check_tail(
    bytes: &[u8],
    file: &str,
    committed_end: usize,
    stop_offset: usize,
    stop: Option<&'static str>,
    is_last: bool,
) -> Result<(), StorageError> {
    let incomplete = stop.is_some() || stop_offset > committed_end;
    let corrupt = |offset: usize, reason: &str| StorageError::CorruptLog {
        file: file.to_string(),
        offset: offset as u64,
        reason: reason.to_string(),
    };
    if let Some(later) = valid_record_after(bytes, stop_offset) {
        let reason = stop.unwrap_or("zeroed bytes inside the log");
        return Err(corrupt(
            stop_offset,
            &format!("{reason}; a valid record follows at offset {later}"),
        ));
    }
    if incomplete && !is_last {
        let reason = stop.unwrap_or("incomplete batch");
        return Err(corrupt(
            stop_offset,
            &format!("{reason} in a segment that is not the last"),
        ));
    }
    if incomplete {
        warn!(
            "{file}: torn tail at offset {stop_offset} ({}); truncating to offset {committed_end}",
            stop.unwrap_or("incomplete batch")
        );
    }
    Ok(())
}

/// The first offset after `from` where a valid record starts. Only the
/// non-zero part is searched, so a preallocated tail costs one pass.
fn valid_record_after(bytes: &[u8], from: usize) -> Option<usize> {
    let last_non_zero = bytes.iter().rposition(|b| *b != 0)?;
    (from + 1..=last_non_zero)
        .find(|offset| matches!(record_at(bytes, *offset), RecordAt::Valid { .. }))
}

fn truncate<S: LogStore>(store: &mut S, name: &str, len_bytes: u64) -> Result<(), StorageError> {
    let file = store.display(name);
    let mut device = store.open(name).ctx(|| format!("opening {file}"))?;
    device
        .set_len(len_bytes)
        .ctx(|| format!("truncating {file}"))?;
    device.sync_data().ctx(|| format!("fdatasync {file}"))
}
