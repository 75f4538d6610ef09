//! ZooKeeper's Prometheus endpoint (`metricsProvider.className=...PrometheusMetricsProvider`):
//! `GET /metrics` in the text exposition format, under ZooKeeper 3.9's metric
//! names, on a thread of its own.
//!
//! The HTTP thread reads only what the server already publishes for other
//! threads: the relaxed atomics of [`ServerStats`] (per-shard counters and
//! the executors' [`summary`] and [`histogram`] buckets) and the tree's
//! counts in [`TreeGauges`], which shard 0 stores after each commit. It never
//! sends to a shard or the pipeline, so a scraper cannot slow client traffic.

pub mod exposition;
pub mod histogram;
pub mod http;
pub mod summary;
pub mod window;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::server::stats::ServerStats;
use crate::tree::DataTree;

pub use http::MetricsServer;

/// The tree's counts as of the newest commit shard 0 applied: copies of
/// O(1) fields of its tree version, so the HTTP thread needs no tree.
#[derive(Default)]
pub struct TreeGauges {
    pub znode_count: AtomicU64,
    pub ephemerals_count: AtomicU64,
    pub approximate_data_bytes: AtomicI64,
    pub last_zxid: AtomicI64,
}

impl TreeGauges {
    /// Called by one shard only (one writer), after it took a new version.
    pub fn publish(&self, tree: &DataTree) {
        self.znode_count.store(tree.zk_node_count() as u64, Relaxed);
        self.ephemerals_count
            .store(tree.ephemeral_count() as u64, Relaxed);
        self.approximate_data_bytes
            .store(tree.approximate_data_bytes(), Relaxed);
        self.last_zxid.store(tree.last_zxid(), Relaxed);
    }
}

/// Everything a scrape reads; cheap to clone into the HTTP thread.
#[derive(Clone)]
pub struct MetricsSources {
    pub stats: Arc<ServerStats>,
    pub tree: Arc<TreeGauges>,
    /// The server-wide client buffer bound in force (all shards together).
    pub client_buffer_limit_bytes: u64,
    /// Quantile windows, shared by the endpoint's connections (scrapes only).
    pub windows: Arc<Mutex<window::SummaryWindows>>,
}
