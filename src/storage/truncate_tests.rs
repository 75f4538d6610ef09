//! `truncate_after`: the cut recovers exactly the txns up to it, snapshots
//! above it are gone (ZOOKEEPER-4837), appending continues after it, and a
//! crash between its steps recovers the old log, never less than the cut.

use std::fs;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::format::{mark_batch_end, record_at, RecordAt, SEGMENT_HEADER_BYTES};
use super::tests::{segments_in, small_options, tree_state, Model, TempDir};
use super::truncate::truncate_after;
use super::*;
use crate::tree::{DataTree, TxnHeader, TxnOp};

/// A log of many small segments with a snapshot early and one late;
/// returns every txn in order.
fn build(dir: &std::path::Path, seed: u64) -> (Vec<(TxnHeader, TxnOp)>, i64, i64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::new();
    let mut opened = open(&small_options(dir)).expect("open");
    let mut txns = Vec::new();
    let mut snapshots = Vec::new();
    for round in 0..3 {
        for _ in 0..15 {
            let n = rng.gen_range(2..6);
            let batch = model.batch(&mut rng, n);
            opened.wal.append_batch(&batch).expect("append");
            txns.extend(batch);
        }
        if round < 2 {
            write_snapshot(dir, opened.db_id, &model.tree, &model.sessions).expect("snapshot");
            snapshots.push(model.tree.last_zxid());
            opened.wal.roll();
        }
    }
    opened.wal.close().expect("close");
    (txns, snapshots[0], snapshots[1])
}

fn state_at(txns: &[(TxnHeader, TxnOp)], zxid: i64) -> DataTree {
    let mut tree = DataTree::new();
    let mut events = Vec::new();
    for (hdr, op) in txns.iter().filter(|(h, _)| h.zxid <= zxid) {
        tree.apply(hdr, op, &mut events);
        events.clear();
    }
    tree
}

/// A zxid inside a batch (not its last txn) between the two snapshots.
fn cut_inside_a_batch(dir: &std::path::Path, low: i64, high: i64) -> i64 {
    for name in segments_in(dir) {
        let bytes = fs::read(dir.join(&name)).expect("read");
        let mut offset = SEGMENT_HEADER_BYTES;
        while let RecordAt::Valid {
            zxid,
            batch_end,
            next_offset,
            ..
        } = record_at(&bytes, offset)
        {
            if zxid > low + 3 && zxid < high && !batch_end {
                return zxid;
            }
            offset = next_offset;
        }
    }
    panic!("no batch with several txns between {low} and {high}");
}

#[test]
fn a_cut_recovers_exactly_the_txns_up_to_it_and_drops_newer_snapshots() {
    let dir = TempDir::new("trunc");
    let (txns, early, late) = build(dir.path(), 11);
    let cut = cut_inside_a_batch(dir.path(), early, late);
    let segments_before = segments_in(dir.path()).len();

    let mut store = FsLogStore::new(dir.path()).expect("store");
    let report = truncate_after(dir.path(), &mut store, cut).expect("truncate");
    assert_eq!(report.removed_snapshots, [format::snapshot_name(late)]);
    assert!(report.records_cut > 0, "{report:?}");
    assert!(!report.removed_segments.is_empty(), "{report:?}");
    assert_eq!(
        segments_in(dir.path()).len(),
        segments_before - report.removed_segments.len()
    );

    let mut reopened = open(&small_options(dir.path())).expect("reopen");
    assert_eq!(reopened.recovered.last_zxid, cut);
    assert_eq!(
        tree_state(&reopened.recovered.tree),
        tree_state(&state_at(&txns, cut))
    );
    // The log continues after the cut, and recovers again with the new txns.
    let mut model = Model::resume(
        reopened.recovered.tree.clone(),
        reopened.recovered.sessions.clone(),
        cut,
    );
    let mut rng = StdRng::seed_from_u64(99);
    for _ in 0..5 {
        let batch = model.batch(&mut rng, 3);
        reopened
            .wal
            .append_batch(&batch)
            .expect("append after the cut");
    }
    reopened.wal.close().expect("close");
    let again = open(&small_options(dir.path())).expect("reopen again");
    assert_eq!(tree_state(&again.recovered.tree), tree_state(&model.tree));
}

#[test]
fn a_crash_after_marking_the_batch_end_recovers_the_old_log() {
    let dir = TempDir::new("trunc-crash");
    let (txns, early, late) = build(dir.path(), 12);
    let cut = cut_inside_a_batch(dir.path(), early, late);
    // Step 3 alone, as a crash right after its fdatasync leaves it.
    for name in segments_in(dir.path()) {
        let path = dir.path().join(&name);
        let mut bytes = fs::read(&path).expect("read");
        let mut offset = SEGMENT_HEADER_BYTES;
        while let RecordAt::Valid {
            zxid, next_offset, ..
        } = record_at(&bytes, offset)
        {
            if zxid == cut {
                mark_batch_end(&mut bytes[offset..next_offset]);
                fs::write(&path, &bytes).expect("write");
                break;
            }
            offset = next_offset;
        }
    }
    let last = txns.last().expect("txns").0.zxid;
    let reopened = open(&small_options(dir.path())).expect("reopen");
    assert_eq!(reopened.recovered.last_zxid, last);
    assert_eq!(
        tree_state(&reopened.recovered.tree),
        tree_state(&state_at(&txns, last))
    );
}

#[test]
fn a_cut_at_the_end_or_below_every_segment_is_handled() {
    let dir = TempDir::new("trunc-edges");
    let (txns, _, _) = build(dir.path(), 13);
    let last = txns.last().expect("txns").0.zxid;
    let mut store = FsLogStore::new(dir.path()).expect("store");
    let report = truncate_after(dir.path(), &mut store, last).expect("no-op cut");
    assert_eq!(report, truncate::TruncateReport::default());
    // Cutting to zero removes every segment and snapshot: an empty database.
    let report = truncate_after(dir.path(), &mut store, 0).expect("cut to 0");
    assert_eq!(report.removed_snapshots.len(), 2);
    assert!(segments_in(dir.path()).is_empty(), "{report:?}");
    let reopened = open(&small_options(dir.path())).expect("reopen");
    assert_eq!(reopened.recovered.last_zxid, 0);
}
