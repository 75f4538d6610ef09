//! Server counters for the four-letter words. Each shard writes only its own
//! cache-padded slot (relaxed atomics, no sharing on the hot path); readers sum.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::metrics::histogram::{Histogram, BATCH_BOUNDS_TXNS, SYNC_BOUNDS_US};
use crate::metrics::summary::Summary;

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
    /// mntr's watch_count: ZooKeeper's data plus child watch managers.
    pub watch_count: AtomicU64,
    /// wchs's three: ZooKeeper's data watch manager only.
    pub data_watches: AtomicU64,
    pub watched_paths: AtomicU64,
    pub watching_connections: AtomicU64,
    pub session_count: AtomicU64,
    pub frames_rejected: AtomicU64,
    /// Bytes held for the shard's clients (`Shard::client_bytes`).
    pub client_buffer_bytes: AtomicU64,
    /// Connections closed because their client stopped reading.
    pub slow_clients_closed: AtomicU64,
    /// ZooKeeper's `readlatency`/`updatelatency`, in microseconds.
    pub read_latency_us: Summary,
    pub update_latency_us: Summary,
    /// Per write answered: the log made its batch durable -> this shard
    /// applied it (`local_write_committed_time_ms`).
    pub write_committed_us: Summary,
    /// Per write answered: its batch went to the log -> this shard applied
    /// it (`propagation_latency`: prep to final processing, standalone).
    pub propagation_us: Summary,
    /// Applying one commit notice with writes in it
    /// (`write_batch_time_in_commit_processor`).
    pub commit_apply_us: Summary,
}

/// Which of ZooKeeper's latency summaries a request counts in: writes (and
/// everything else the pipeline orders: sync, closeSession) are `updatelatency`,
/// requests a shard answers alone (reads, pings, setWatches) `readlatency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Read,
    Write,
}

/// Written by the pipeline executor only.
#[derive(Default)]
pub struct PipelineStats {
    /// Per txn: its batch handed to the log -> the log reported it durable
    /// (`sync_processor_queue_and_flush_time_ms`).
    pub queue_and_flush_us: Summary,
    /// Batches handed to the log and not yet durable.
    pub log_batches_in_flight: AtomicU64,
}

/// Written by the log executor only, but `snapshot_us` (snapshot threads)
/// and `db_init_us` (startup).
pub struct LogStats {
    /// One fdatasync of the log (`fsynctime`); only with forceSync.
    pub fsync_us: Summary,
    /// The same syncs as a histogram (`ferrokeeper_log_sync_seconds`).
    pub fsync_histogram_us: Histogram,
    /// Writing and syncing one batch (`sync_processor_queue_flush_time_ms`).
    pub flush_us: Summary,
    /// Txns per group commit (`sync_processor_batch_size`).
    pub batch_txns: Summary,
    pub batch_histogram_txns: Histogram,
    /// Writing one snapshot (`snapshottime`), from its thread.
    pub snapshot_us: Summary,
    /// Recovery at startup: snapshot load and log replay (`dbinittime`).
    pub db_init_us: Summary,
}

impl Default for LogStats {
    fn default() -> Self {
        LogStats {
            fsync_us: Summary::default(),
            fsync_histogram_us: Histogram::new(SYNC_BOUNDS_US),
            flush_us: Summary::default(),
            batch_txns: Summary::default(),
            batch_histogram_txns: Histogram::new(BATCH_BOUNDS_TXNS),
            snapshot_us: Summary::default(),
            db_init_us: Summary::default(),
        }
    }
}

pub struct ServerStats {
    pub shards: Vec<CachePadded<ShardCounters>>,
    pub pipeline: CachePadded<PipelineStats>,
    pub log: CachePadded<LogStats>,
    /// This server's role in its ensemble (standalone without one).
    pub replica: crate::replica::status::ReplicaStatus,
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
    /// wchs's "Total watches" (data watches and both addWatch modes).
    pub data_watches: u64,
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
            pipeline: CachePadded::default(),
            log: CachePadded::default(),
            replica: crate::replica::status::ReplicaStatus::standalone(),
            started: Instant::now(),
        }
    }

    /// One request answered by `shard`, `elapsed` after it arrived.
    pub fn record_latency(&self, shard: usize, kind: RequestKind, elapsed: Duration) {
        let c = &self.shards[shard];
        let us = elapsed.as_micros() as u64;
        match kind {
            RequestKind::Read => c.read_latency_us.record(us),
            RequestKind::Write => c.update_latency_us.record(us),
        }
        let ms = us / 1000;
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
            t.data_watches += c.data_watches.load(Relaxed);
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

    /// `srst`: reset the latency and packet counters. As in ZooKeeper (whose
    /// srst resets `ServerStats`, not `ServerMetrics`), the summaries stay.
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
