//! Prometheus histograms (cumulative `le` buckets) for Ferrokeeper's own
//! metrics. Unlike a summary they aggregate across servers, so their bucket
//! bounds are fixed and exact: a few atomics per bound, written by one
//! executor (relaxed load and store), read by the metrics thread.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::server::stats;

/// Log sync bounds in microseconds: 50 µs (NVMe with a write cache) to 10 s
/// (a disk in trouble), Prometheus' usual 1-2.5-5 steps.
pub const SYNC_BOUNDS_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Group-commit batch bounds in txns, powers of two up to the default
/// `maxBatchSize` (1000) and beyond for raised limits.
pub const BATCH_BOUNDS_TXNS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384];

pub struct Histogram {
    /// Inclusive upper bounds, ascending; one more bucket catches the rest.
    bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// Cumulative counts per bound (`le`), then the total and the sum.
pub struct HistogramSnapshot {
    pub bounds: &'static [u64],
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Single writer (the executor that owns it).
    pub fn record(&self, value: u64) {
        let index = self.bounds.partition_point(|&b| b < value);
        stats::add(&self.counts[index], 1);
        stats::add(&self.sum, value);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative: Vec<u64> = self
            .counts
            .iter()
            .map(|c| {
                running += c.load(Relaxed);
                running
            })
            .collect();
        let count = cumulative.pop().unwrap_or(0);
        HistogramSnapshot {
            bounds: self.bounds,
            cumulative,
            count,
            sum: self.sum.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_cumulative() {
        let h = Histogram::new(&[10, 100]);
        for v in [0, 10, 11, 100, 101, 5000] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative, [2, 4]);
        assert_eq!((s.count, s.sum), (6, 5222));
    }
}
