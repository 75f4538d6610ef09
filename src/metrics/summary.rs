//! Lock-free recorders behind ZooKeeper's Prometheus summaries.
//!
//! ZooKeeper observes into a Prometheus Java `Summary` (CKMS quantiles under
//! a lock). Here each executor owns its recorders: a fixed array of atomic
//! counters over log-linear buckets (HdrHistogram's layout: 32 buckets per
//! power of two), so recording is two relaxed loads and stores into memory
//! only that executor writes, and the metrics thread reads the counters and
//! computes quantiles at scrape time. (The `hdrhistogram` crate records
//! through `&mut`, which would need a lock or a swap to share with the scrape
//! thread; the bucket layout is the part that matters and is this.)
//!
//! A bucket is at most 1/32 of its lower bound wide and a quantile is
//! reported as its bucket's middle (kept within the largest value seen), so
//! the error is below 1/64 (1.6%) of the value, exact below 64. Values saturate at the last bucket (2^41 units:
//! 25 days in microseconds).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::server::stats;

/// log2 of the buckets per power of two.
const SUB_BITS: u32 = 5;
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// The highest power of two with buckets of its own.
const TOP_EXPONENT: u32 = 40;
/// Values 0..64 get a bucket each; each power of two above gets 32.
pub const BUCKETS: usize = SUB_BUCKETS + (TOP_EXPONENT - SUB_BITS + 1) as usize * SUB_BUCKETS;

/// Counts per bucket plus the exact sum. Record through [`record_n`]
/// (single writer) or [`record_shared`] (any thread), never both on one.
///
/// [`record_n`]: Summary::record_n
/// [`record_shared`]: Summary::record_shared
pub struct Summary {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    /// So no quantile exceeds what was observed (a lone 11.06 ms is not 11.14).
    max: AtomicU64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

/// The bucket a value falls in.
fn bucket_of(value: u64) -> usize {
    if value < (2 * SUB_BUCKETS) as u64 {
        return value as usize;
    }
    let exponent = (63 - value.leading_zeros()).min(TOP_EXPONENT);
    let shift = exponent - SUB_BITS;
    let sub = ((value >> shift) as usize).min(2 * SUB_BUCKETS - 1) - SUB_BUCKETS;
    SUB_BUCKETS + shift as usize * SUB_BUCKETS + sub
}

/// The smallest and largest value of a bucket.
fn bucket_range(index: usize) -> (u64, u64) {
    if index < 2 * SUB_BUCKETS {
        return (index as u64, index as u64);
    }
    let shift = (index / SUB_BUCKETS - 1) as u32;
    let sub = (index % SUB_BUCKETS + SUB_BUCKETS) as u64;
    let low = sub << shift;
    (low, low + (1u64 << shift) - 1)
}

impl Summary {
    /// One value, from the recorder's only writer (its executor).
    pub fn record(&self, value: u64) {
        self.record_n(value, 1);
    }

    /// `n` observations of one value (a batch's txns share its timing).
    /// Single writer: a relaxed load and store, no locked instruction.
    pub fn record_n(&self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        stats::add(&self.buckets[bucket_of(value)], n);
        stats::add(&self.sum, value.saturating_mul(n));
        if value > self.max.load(Relaxed) {
            self.max.store(value, Relaxed);
        }
    }

    /// One value from whichever thread (snapshot threads come and go): an
    /// atomic add, for recorders off the request path.
    pub fn record_shared(&self, value: u64) {
        self.buckets[bucket_of(value)].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
        self.max.fetch_max(value, Relaxed);
    }

    /// The counters as of now (each a relaxed load: a sample racing with a
    /// scrape may be in the sum and not yet in its bucket, or the reverse).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum: self.sum.load(Relaxed),
            max: self.max.load(Relaxed),
        }
    }
}

/// One or several recorders' counters, read on the metrics thread.
#[derive(Clone, Debug)]
pub struct Snapshot {
    counts: Vec<u64>,
    sum: u64,
    max: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            counts: vec![0; BUCKETS],
            sum: 0,
            max: 0,
        }
    }
}

impl Snapshot {
    /// Adds another recorder's counters (one summary over all shards).
    pub fn merge(&mut self, other: &Snapshot) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Removes an earlier copy of the same recorders, leaving what was
    /// observed since (the maximum stays: it only bounds quantiles).
    pub fn subtract(&mut self, earlier: &Snapshot) {
        for (mine, theirs) in self.counts.iter_mut().zip(&earlier.counts) {
            *mine = mine.saturating_sub(*theirs);
        }
        self.sum = self.sum.saturating_sub(earlier.sum);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// The `q` quantile (0..=1) as the middle of the bucket holding the
    /// value of rank ceil(q * count), at most the largest value; `None` with no observations (the Java
    /// client then reports NaN).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bucket_range(index);
                let middle = (low as f64 + high as f64) / 2.0;
                // A racing writer may have counted before raising max.
                return Some(middle.min(self.max.max(low) as f64));
            }
        }
        unreachable!("rank is at most the count")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let mut next = 0;
        for index in 0..BUCKETS {
            let (low, high) = bucket_range(index);
            assert_eq!(low, next, "bucket {index}");
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(high), index);
            // Width at most 1/32 of the lower bound above the exact range.
            assert!(low < 64 || (high - low + 1) * 32 <= low, "bucket {index}");
            next = high + 1;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_bucket_error() {
        let s = Summary::default();
        for v in 1..=100_000u64 {
            s.record(v);
        }
        let snap = s.snapshot();
        assert_eq!(snap.count(), 100_000);
        assert_eq!(snap.sum(), 100_000 * 100_001 / 2);
        for (q, exact) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = snap.quantile(q).expect("values recorded");
            let error = (got - exact).abs() / exact;
            assert!(error <= 1.0 / 64.0, "q{q}: {got} vs {exact}");
        }
        assert_eq!(Summary::default().snapshot().quantile(0.5), None);
        let lone = Summary::default();
        lone.record(11_059);
        assert_eq!(lone.snapshot().quantile(0.5), Some(11_059.0));
    }

    #[test]
    fn small_values_are_exact() {
        let s = Summary::default();
        s.record_n(3, 9);
        s.record(40);
        let snap = s.snapshot();
        assert_eq!(snap.quantile(0.5), Some(3.0));
        assert_eq!(snap.quantile(0.9), Some(3.0));
        assert_eq!(snap.quantile(1.0), Some(40.0));
        assert_eq!((snap.count(), snap.sum()), (10, 67));
    }

    /// One writer per recorder (as each executor has) while a scraper reads
    /// and merges: reads never go backwards and nothing is lost.
    #[test]
    fn concurrent_writers_and_scraper_agree() {
        const WRITERS: usize = 4;
        const PER_WRITER: u64 = 50_000;
        let recorders: Arc<Vec<Summary>> =
            Arc::new((0..WRITERS).map(|_| Summary::default()).collect());
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let recorders = recorders.clone();
                std::thread::spawn(move || {
                    for v in 0..PER_WRITER {
                        recorders[w].record(v % 1000);
                    }
                })
            })
            .collect();
        let merged = |r: &[Summary]| {
            let mut all = Snapshot::default();
            r.iter().for_each(|s| all.merge(&s.snapshot()));
            all
        };
        let mut last = 0;
        while !writers.iter().all(|w| w.is_finished()) {
            let count = merged(&recorders).count();
            assert!(count >= last, "count went back from {last} to {count}");
            last = count;
        }
        writers.into_iter().for_each(|w| w.join().expect("writer"));
        let all = merged(&recorders);
        assert_eq!(all.count(), WRITERS as u64 * PER_WRITER);
        assert_eq!(all.sum(), WRITERS as u64 * 50 * (999 * 1000 / 2));
        let shared = Arc::new(Summary::default());
        let threads: Vec<_> = (0..WRITERS)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| shared.record_shared(7)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("writer"));
        assert_eq!(shared.snapshot().count(), WRITERS as u64 * 1000);
    }
}
