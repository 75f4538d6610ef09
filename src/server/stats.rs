//! Server counters for the four-letter words. Each shard writes only its own
//! cache-padded slot (relaxed atomics, no sharing on the hot path); readers sum.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_utils::CachePadded;

/// Every counter here has one writer, the shard (or connection) that owns it,
/// so an update is a relaxed load and store: no locked read-modify-write on
/// the request path. Readers on other threads may see a value a few updates
/// old, and an `srst` racing with the owner may be lost: fine for statistics.
pub fn add(counter: &AtomicU64, delta: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(delta), Relaxed);
}

/// See [`add`]; never goes below zero.
pub fn sub(counter: &AtomicU64, delta: u64) {
    counter.store(counter.load(Relaxed).saturating_sub(delta), Relaxed);
}

#[derive(Default)]
pub struct ShardCounters {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub connections: AtomicU64,
    pub outstanding: AtomicU64,
    pub latency_total_ms: AtomicU64,
    pub latency_count: AtomicU64,
    pub latency_max_ms: AtomicU64,
    pub latency_min_ms: AtomicU64,
    pub watch_count: AtomicU64,
    pub watched_paths: AtomicU64,
    pub watching_connections: AtomicU64,
    pub session_count: AtomicU64,
    pub frames_rejected: AtomicU64,
    /// Bytes held for the shard's clients (`Shard::client_bytes`).
    pub client_buffer_bytes: AtomicU64,
    /// Connections closed because their client stopped reading.
    pub slow_clients_closed: AtomicU64,
}

pub struct ServerStats {
    pub shards: Vec<CachePadded<ShardCounters>>,
    pub started: Instant,
}

/// Sums of all shards' counters at one moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub connections: u64,
    pub outstanding: u64,
    pub latency_avg_ms: u64,
    pub latency_max_ms: u64,
    pub latency_min_ms: u64,
    pub watch_count: u64,
    /// Summed over shards: a path watched on two shards counts twice.
    pub watched_paths: u64,
    pub watching_connections: u64,
    pub frames_rejected: u64,
    pub client_buffer_bytes: u64,
    pub slow_clients_closed: u64,
}

impl ServerStats {
    pub fn new(shards: usize) -> Self {
        let shards = (0..shards)
            .map(|_| {
                let c = ShardCounters::default();
                c.latency_min_ms.store(u64::MAX, Relaxed);
                CachePadded::new(c)
            })
            .collect();
        ServerStats {
            shards,
            started: Instant::now(),
        }
    }

    pub fn record_latency(&self, shard: usize, ms: u64) {
        let c = &self.shards[shard];
        add(&c.latency_total_ms, ms);
        add(&c.latency_count, 1);
        if ms > c.latency_max_ms.load(Relaxed) {
            c.latency_max_ms.store(ms, Relaxed);
        }
        if ms < c.latency_min_ms.load(Relaxed) {
            c.latency_min_ms.store(ms, Relaxed);
        }
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            latency_min_ms: u64::MAX,
            ..Totals::default()
        };
        let (mut lat_total, mut lat_count) = (0, 0);
        for c in &self.shards {
            t.packets_received += c.packets_received.load(Relaxed);
            t.packets_sent += c.packets_sent.load(Relaxed);
            t.connections += c.connections.load(Relaxed);
            t.outstanding += c.outstanding.load(Relaxed);
            t.watch_count += c.watch_count.load(Relaxed);
            t.watched_paths += c.watched_paths.load(Relaxed);
            t.watching_connections += c.watching_connections.load(Relaxed);
            t.frames_rejected += c.frames_rejected.load(Relaxed);
            t.client_buffer_bytes += c.client_buffer_bytes.load(Relaxed);
            t.slow_clients_closed += c.slow_clients_closed.load(Relaxed);
            t.latency_max_ms = t.latency_max_ms.max(c.latency_max_ms.load(Relaxed));
            t.latency_min_ms = t.latency_min_ms.min(c.latency_min_ms.load(Relaxed));
            lat_total += c.latency_total_ms.load(Relaxed);
            lat_count += c.latency_count.load(Relaxed);
        }
        if t.latency_min_ms == u64::MAX {
            t.latency_min_ms = 0;
        }
        t.latency_avg_ms = lat_total.checked_div(lat_count).unwrap_or(0);
        t
    }

    /// Live sessions as of the newest commit any shard saw.
    pub fn session_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|c| c.session_count.load(Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// `srst`: reset the latency and packet counters.
    pub fn reset(&self) {
        for c in &self.shards {
            c.packets_received.store(0, Relaxed);
            c.packets_sent.store(0, Relaxed);
            c.latency_total_ms.store(0, Relaxed);
            c.latency_count.store(0, Relaxed);
            c.latency_max_ms.store(0, Relaxed);
            c.latency_min_ms.store(u64::MAX, Relaxed);
        }
    }
}
