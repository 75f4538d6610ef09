//! Property test of durability: random batches of random txns are appended
//! to a simulated disk that crashes at random points — between the write and
//! the sync of a batch, inside the WAL's own steps (segment creation,
//! preallocation) and inside recovery itself. After every crash, recovery
//! must give exactly the state after the last acknowledged batch, or the
//! state after the interrupted batch if the crash happened to persist all of
//! it; never a partial batch, never less than what was acknowledged.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::sim::SimStore;
use super::tests::{tree_state, Model, TempDir, TreeState};
use super::*;
use crate::tree::DataTree;

const SEEDS: u64 = 150;
const BATCHES_PER_SEED: usize = 60;

/// A state the test may expect after a crash (O(1) clones; compared only
/// after a crash, which keeps the test fast).
struct Expected {
    tree: DataTree,
    sessions: OpenSessions,
}

impl Expected {
    fn of(model: &Model) -> Expected {
        Expected {
            tree: model.tree.clone(),
            sessions: model.sessions.clone(),
        }
    }

    fn state(&self) -> TreeState {
        tree_state(&self.tree)
    }
}

fn wal_options(db_id: DbId) -> WalOptions {
    WalOptions {
        db_id,
        prealloc_bytes: 512,
        segment_bytes_max: 2048,
        force_sync: true,
    }
}

/// Recovers, crashing inside recovery now and then (it must survive that too).
fn recover_with_crashes(
    store: &SimStore,
    snap_dir: &Path,
    db_id: DbId,
    rng: &mut StdRng,
) -> Recovered {
    loop {
        if rng.gen_bool(0.3) {
            store.fail_after(rng.gen_range(0..3));
        }
        match recover(snap_dir, &mut store.clone(), db_id) {
            Ok(recovered) => {
                store.crash(rng); // disarms; recovery synced what it changed
                return recovered;
            }
            Err(StorageError::Io { .. }) => {
                store.crash(rng);
            }
            Err(e) => panic!("recovery failed: {e}"),
        }
    }
}

fn run_seed(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let snap_dir = TempDir::new("crash");
    let store = SimStore::new();
    let db_id = [seed as u8; 16];
    let mut model = Model::new();
    let mut acked = Expected::of(&model);
    let recovered = recover_with_crashes(&store, snap_dir.path(), db_id, &mut rng);
    let mut wal = Wal::resume(store.clone(), wal_options(db_id), &recovered.tail).expect("resume");
    for step in 0..BATCHES_PER_SEED {
        if rng.gen_bool(0.05) {
            write_snapshot(snap_dir.path(), db_id, &acked.tree, &acked.sessions).expect("snapshot");
            wal.roll();
        }
        let txns = rng.gen_range(1..6);
        let batch = model.batch(&mut rng, txns);
        let crash = rng.gen_bool(0.2);
        if crash && rng.gen() {
            store.fail_after(rng.gen_range(0..6));
        }
        let write_only = crash && rng.gen_bool(0.3);
        let result = if write_only {
            wal.write_batch(&batch)
        } else {
            wal.append_batch(&batch)
        };
        if result.is_ok() && !write_only {
            acked = Expected::of(&model);
        }
        if !crash {
            result.expect("no fault armed");
            continue;
        }
        let pending = Expected::of(&model);
        drop(wal);
        store.crash(&mut rng);
        let recovered = recover_with_crashes(&store, snap_dir.path(), db_id, &mut rng);
        let state = tree_state(&recovered.tree);
        let expected = if state == acked.state() {
            &acked
        } else {
            &pending
        };
        assert_eq!(
            state,
            expected.state(),
            "seed {seed} step {step}: neither acked nor pending state"
        );
        assert_eq!(
            recovered.sessions, expected.sessions,
            "seed {seed} step {step}"
        );
        assert_eq!(
            recovered.last_zxid,
            expected.tree.last_zxid(),
            "seed {seed} step {step}"
        );
        model = Model::resume(
            recovered.tree.clone(),
            recovered.sessions.clone(),
            recovered.last_zxid,
        );
        acked = Expected::of(&model);
        wal = Wal::resume(store.clone(), wal_options(db_id), &recovered.tail).expect("resume");
    }
}

#[test]
fn recovery_after_random_crashes_gives_the_last_acknowledged_state() {
    for seed in 0..SEEDS {
        run_seed(seed);
    }
}
