//! The sliding window of ZooKeeper's summary quantiles. The Prometheus Java
//! client computes a Summary's quantiles over the last 10 minutes
//! (`maxAgeSeconds` 600, 5 age buckets: it rotates every 2 minutes, so a
//! quantile covers the last 8 to 10 minutes), while `_count` and `_sum` are
//! cumulative. The recorders here only ever count up, so the scrape keeps
//! copies of them taken at most every 2 minutes and reports quantiles over
//! the difference from the oldest copy not older than 10 minutes. All of it
//! happens on the metrics thread; the executors are not involved.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::summary::Snapshot;

/// The Java client's `maxAgeSeconds` default.
pub const WINDOW: Duration = Duration::from_secs(600);
/// `WINDOW` / the Java client's `ageBuckets` default (5).
pub const ROTATE_EVERY: Duration = Duration::from_secs(120);

/// Per summary name, the copies taken at rotation times, oldest first.
pub struct SummaryWindows {
    started: Instant,
    copies: HashMap<&'static str, VecDeque<(Instant, Snapshot)>>,
}

impl Default for SummaryWindows {
    fn default() -> Self {
        SummaryWindows::new(Instant::now())
    }
}

impl SummaryWindows {
    /// Until 10 minutes have passed, the window starts at `started` (empty).
    pub fn new(started: Instant) -> Self {
        SummaryWindows {
            started,
            copies: HashMap::new(),
        }
    }

    /// The observations of `name` within the window, given its counters
    /// `now`. After a pause in scraping longer than the window, the copy
    /// before the pause stays the base until a newer one is old enough:
    /// more than 10 minutes then, never nothing.
    pub fn windowed(&mut self, name: &'static str, now: Instant, current: &Snapshot) -> Snapshot {
        let started = self.started;
        let copies = self
            .copies
            .entry(name)
            .or_insert_with(|| VecDeque::from([(started, Snapshot::default())]));
        while copies.len() > 1 && copies[0].0 + WINDOW < now {
            copies.pop_front();
        }
        let mut window = current.clone();
        if let Some((_, base)) = copies.front() {
            window.subtract(base);
        }
        let due = copies
            .back()
            .is_none_or(|(at, _)| *at + ROTATE_EVERY <= now);
        if due {
            copies.push_back((now, current.clone()));
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::summary::Summary;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn quantiles_forget_what_is_older_than_the_window() {
        let t0 = Instant::now();
        let mut windows = SummaryWindows::new(t0);
        let s = Summary::default();
        s.record_n(50, 100);
        // Within the first 10 minutes: everything since start.
        let w = windows.windowed("x", at(t0, 60), &s.snapshot());
        assert_eq!(w.quantile(0.5), Some(50.0));
        windows.windowed("x", at(t0, 120), &s.snapshot());
        s.record_n(10, 100);
        for minute in 3..=11 {
            windows.windowed("x", at(t0, minute * 60), &s.snapshot());
        }
        // At 11:30 the base is the copy of 2:00 (after the 50s): only the 10s.
        let w = windows.windowed("x", at(t0, 690), &s.snapshot());
        assert_eq!((w.count(), w.quantile(0.99)), (100, Some(10.0)));
        // Nothing new for a while: an empty window, as the Java client's NaN.
        let w = windows.windowed("x", at(t0, 2000), &s.snapshot());
        assert_eq!(w.quantile(0.5), None);
    }

    #[test]
    fn a_pause_in_scraping_keeps_the_last_copy_as_base() {
        let t0 = Instant::now();
        let mut windows = SummaryWindows::new(t0);
        let s = Summary::default();
        windows.windowed("x", at(t0, 100), &s.snapshot());
        s.record(7);
        let w = windows.windowed("x", at(t0, 5000), &s.snapshot());
        assert_eq!(w.quantile(0.5), Some(7.0));
    }
}
