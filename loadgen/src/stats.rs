//! Latency recording: one set of histograms per thread, per op kind, in
//! microseconds; per-second interval histograms go to the main thread.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::workload::OpKind;

/// 1 µs .. 1 hour at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Error code used for a request lost with its connection (ZooKeeper's
/// CONNECTIONLOSS) and for a failed connect/handshake.
pub const CONNECTION_LOSS: i32 = -4;

/// What one thread sends the main thread at the end of each second.
pub struct Interval {
    /// Seconds since the run started (0-based): covers [sec, sec+1).
    pub sec: u64,
    pub hists: Vec<(OpKind, Histogram<u64>)>,
    pub errors: u64,
}

pub struct ThreadStats {
    /// Measured period only (after warmup), per kind.
    pub totals: Vec<Histogram<u64>>,
    pub errors: BTreeMap<i32, u64>,
    interval: Vec<Histogram<u64>>,
    interval_errors: u64,
}

impl Default for ThreadStats {
    fn default() -> Self {
        ThreadStats::new()
    }
}

impl ThreadStats {
    pub fn new() -> ThreadStats {
        ThreadStats {
            totals: (0..OpKind::COUNT).map(|_| new_histogram()).collect(),
            errors: BTreeMap::new(),
            interval: (0..OpKind::COUNT).map(|_| new_histogram()).collect(),
            interval_errors: 0,
        }
    }

    #[inline]
    pub fn record(&mut self, kind: OpKind, latency_ns: u64, measuring: bool) {
        let us = (latency_ns / 1000).max(1);
        self.interval[kind.index()].saturating_record(us);
        if measuring {
            self.totals[kind.index()].saturating_record(us);
        }
    }

    pub fn error(&mut self, code: i32, measuring: bool) {
        self.interval_errors += 1;
        if measuring {
            *self.errors.entry(code).or_default() += 1;
        }
    }

    /// Takes the interval histograms (those with samples) and resets them.
    pub fn take_interval(&mut self, sec: u64) -> Interval {
        let mut hists = Vec::new();
        for kind in OpKind::ALL {
            let h = &mut self.interval[kind.index()];
            if !h.is_empty() {
                hists.push((kind, h.clone()));
                h.reset();
            }
        }
        let errors = std::mem::take(&mut self.interval_errors);
        Interval { sec, hists, errors }
    }
}
