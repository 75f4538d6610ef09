//! When to take a snapshot: after `snapCount` txns, randomised into
//! [snapCount/2, snapCount] so the servers of an ensemble do not all
//! snapshot at the same moment (ZooKeeper does the same).

use rand::Rng;

pub struct SnapPolicy {
    snap_count: u64,
    threshold_txns: u64,
    since_snapshot_txns: u64,
}

impl SnapPolicy {
    pub fn new(snap_count: u64, rng: &mut impl Rng) -> SnapPolicy {
        let snap_count = snap_count.max(2);
        SnapPolicy {
            snap_count,
            threshold_txns: Self::draw(snap_count, rng),
            since_snapshot_txns: 0,
        }
    }

    fn draw(snap_count: u64, rng: &mut impl Rng) -> u64 {
        rng.gen_range(snap_count / 2..=snap_count)
    }

    /// Counts a logged batch; true when a snapshot is due. The count then
    /// restarts with a fresh random threshold.
    pub fn record_txns(&mut self, txns: u64, rng: &mut impl Rng) -> bool {
        self.since_snapshot_txns += txns;
        if self.since_snapshot_txns < self.threshold_txns {
            return false;
        }
        self.since_snapshot_txns = 0;
        self.threshold_txns = Self::draw(self.snap_count, rng);
        true
    }

    pub fn threshold_txns(&self) -> u64 {
        self.threshold_txns
    }
}
