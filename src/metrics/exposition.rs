//! The Prometheus text exposition format (0.0.4) as ZooKeeper 3.9 writes it
//! through the Prometheus Java client 0.9 (`TextFormat.write004`): `# HELP`
//! and `# TYPE` before each family, help text equal to the name, label sets
//! closed with `,}`, values as Java prints doubles (`5.0`, `1.2345678E7`).
//!
//! ZooKeeper's names (`ZooKeeperServer.registerMetrics`) are all gauges there,
//! counters included, so they are gauges here too; its `ServerMetrics`
//! summaries are summaries (see `write_summaries`). Ferrokeeper's own
//! metrics carry a `ferrokeeper_` prefix and Prometheus' naming conventions.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::histogram::HistogramSnapshot;
use super::summary::{Snapshot, Summary};
use super::MetricsSources;
use crate::server::stats::{ServerStats, ShardCounters, Totals};

/// The content type of the 0.0.4 text format (what Prometheus' servlet sends).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
    Summary,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
        }
    }
}

/// ZooKeeper's `DetailLevel`: its Prometheus provider gives a BASIC summary
/// the median only and an ADVANCED one 0.5, 0.9 and 0.99.
#[derive(Clone, Copy)]
enum Detail {
    Basic,
    Advanced,
}

impl Detail {
    fn quantiles(self) -> &'static [(f64, &'static str)] {
        match self {
            Detail::Basic => &[(0.5, "0.5")],
            Detail::Advanced => &[(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99")],
        }
    }
}

/// Divisors from what the recorders hold (microseconds) to ZooKeeper's
/// milliseconds and Prometheus' seconds (a division prints cleaner than a
/// product with 1e-3: `0.06`, not `0.060000000000000005`).
const US_PER_MS: f64 = 1e3;
const US_PER_S: f64 = 1e6;
/// For summaries of counts (batch sizes).
const AS_IS: f64 = 1.0;

#[derive(Default)]
struct Writer<'a> {
    out: String,
    /// Families asked for with `?name[]=...`; empty = all.
    only: &'a [String],
}

impl Writer<'_> {
    fn wanted(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }

    fn header(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One ZooKeeper gauge: help text is the name, as ZooKeeper registers it.
    fn zk_gauge(&mut self, name: &str, value: f64) {
        if !self.wanted(name) {
            return;
        }
        self.header(name, Kind::Gauge, name);
        let _ = writeln!(self.out, "{name} {}", java_double(value));
    }

    fn own(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        if !self.wanted(name) {
            return;
        }
        self.header(name, kind, help);
        let _ = writeln!(self.out, "{name} {}", java_double(value));
    }

    /// One of ZooKeeper's summaries, as the Java client writes it: a sample
    /// per quantile over `window` (NaN without observations), then the
    /// cumulative `_count` and `_sum`; values divided by `unit`.
    fn zk_summary(
        &mut self,
        name: &str,
        detail: Detail,
        snap: &Snapshot,
        window: &Snapshot,
        unit: f64,
    ) {
        self.header(name, Kind::Summary, name);
        for (q, label) in detail.quantiles() {
            let value = window.quantile(*q).map_or(f64::NAN, |v| v / unit);
            let value = java_double(value);
            let _ = writeln!(self.out, "{name}{{quantile=\"{label}\",}} {value}");
        }
        let _ = writeln!(
            self.out,
            "{name}_count {}",
            java_double(snap.count() as f64)
        );
        let sum = java_double(snap.sum() as f64 / unit);
        let _ = writeln!(self.out, "{name}_sum {sum}");
    }

    /// A histogram with cumulative `le` buckets; bounds and sum divided by `unit`.
    fn histogram(&mut self, name: &str, help: &str, snap: &HistogramSnapshot, unit: f64) {
        if !self.wanted(name) {
            return;
        }
        self.header(name, Kind::Histogram, help);
        for (bound, count) in snap.bounds.iter().zip(&snap.cumulative) {
            let le = java_double(*bound as f64 / unit);
            let count = java_double(*count as f64);
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{le}\",}} {count}");
        }
        let count = java_double(snap.count as f64);
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\",}} {count}");
        let _ = writeln!(self.out, "{name}_count {count}");
        let sum = java_double(snap.sum as f64 / unit);
        let _ = writeln!(self.out, "{name}_sum {sum}");
    }

    /// One family with a `shard` label, one sample per shard.
    fn per_shard(&mut self, name: &str, help: &str, values: impl Iterator<Item = u64>) {
        if !self.wanted(name) {
            return;
        }
        self.header(name, Kind::Gauge, help);
        for (shard, value) in values.enumerate() {
            let value = java_double(value as f64);
            let _ = writeln!(self.out, "{name}{{shard=\"{shard}\",}} {value}");
        }
    }
}

/// One scrape: reads relaxed atomics only (a value may be a few updates old).
/// `only` names the families to write (the Prometheus servlet's `name[]`
/// query parameters); empty = all.
pub fn render(src: &MetricsSources, only: &[String]) -> String {
    let mut w = Writer {
        out: String::new(),
        only,
    };
    let totals = src.stats.totals();
    write_server_stats(&mut w, &src.stats, &totals);
    write_tree(&mut w, src);
    write_process(&mut w);
    write_summaries(&mut w, src);
    write_ferrokeeper(&mut w, src, &totals);
    w.out
}

/// One summary over every shard's recorder.
fn merged(stats: &ServerStats, recorder: fn(&ShardCounters) -> &Summary) -> Snapshot {
    let mut all = Snapshot::default();
    for shard in &stats.shards {
        all.merge(&recorder(shard).snapshot());
    }
    all
}

/// ZooKeeper's `ServerMetrics` summaries that have an equivalent here, in
/// milliseconds (fractional: the recorders hold microseconds, where
/// ZooKeeper observes whole milliseconds), quantiles over the Java client's
/// sliding 10 minutes (`window.rs`), `_count` and `_sum` since startup.
///
/// How ZooKeeper's processors map onto Ferrokeeper's executors:
/// PrepRequestProcessor = the pipeline's prep of a batch; SyncRequestProcessor
/// and FileTxnLog = the log executor (group commit, fdatasync);
/// CommitProcessor and FinalRequestProcessor = a shard applying the commit
/// notice and answering. Without an equivalent, so not exported:
/// prep_processor_queue_*, prep_process_time, proposal_process_time,
/// commit_process_time, read/write_commitproc_time_ms,
/// read/write_final_proc_time_ms (no per-request queue between these steps),
/// server_write_committed_time_ms, proposal_latency, quorum_ack_latency,
/// ack_latency, commit_propagation_latency, follower/observer_sync_time,
/// election_time, learner_* (no replication served yet),
/// sync_processor_queue_size/_time_ms (the log takes whole batches off a
/// channel bounded at a few batches), restore_time (no restore command),
/// jvm_pause_time_ms, netty_queued_buffer_capacity (no JVM, no Netty), and
/// the per-namespace and watch-count summaries.
fn write_summaries(w: &mut Writer, src: &MetricsSources) {
    let now = Instant::now();
    let mut windows = src.windows.lock().unwrap_or_else(|e| e.into_inner());
    for (name, detail, unit, source) in ZK_SUMMARIES {
        if !w.wanted(name) {
            continue;
        }
        let cumulative = source(&src.stats);
        let window = windows.windowed(name, now, &cumulative);
        w.zk_summary(name, *detail, &cumulative, &window, *unit);
    }
}

/// Reads one summary's recorders (merged over shards where per shard).
type Source = fn(&ServerStats) -> Snapshot;

/// Name, quantiles, unit divisor and recorders of each exported summary.
const ZK_SUMMARIES: &[(&str, Detail, f64, Source)] = &[
    // ServerStats.updateLatency: requests with a txn header (writes) vs the rest.
    ("readlatency", Detail::Advanced, US_PER_MS, |s| {
        merged(s, |c| &c.read_latency_us)
    }),
    ("updatelatency", Detail::Advanced, US_PER_MS, |s| {
        merged(s, |c| &c.update_latency_us)
    }),
    // FinalRequestProcessor: txn created (prep) -> applied. Per write answered.
    ("propagation_latency", Detail::Advanced, US_PER_MS, |s| {
        merged(s, |c| &c.propagation_us)
    }),
    // CommitProcessor: commit known -> processed; here durable -> applied.
    (
        "local_write_committed_time_ms",
        Detail::Advanced,
        US_PER_MS,
        |s| merged(s, |c| &c.write_committed_us),
    ),
    (
        "write_batch_time_in_commit_processor",
        Detail::Basic,
        US_PER_MS,
        |s| merged(s, |c| &c.commit_apply_us),
    ),
    // FileTxnLog.commit, with forceSync only.
    ("fsynctime", Detail::Basic, US_PER_MS, |s| {
        s.log.fsync_us.snapshot()
    }),
    ("snapshottime", Detail::Basic, US_PER_MS, |s| {
        s.log.snapshot_us.snapshot()
    }),
    ("dbinittime", Detail::Basic, US_PER_MS, |s| {
        s.log.db_init_us.snapshot()
    }),
    // SyncRequestProcessor.flush: one group commit.
    ("sync_processor_batch_size", Detail::Basic, AS_IS, |s| {
        s.log.batch_txns.snapshot()
    }),
    (
        "sync_processor_queue_flush_time_ms",
        Detail::Advanced,
        US_PER_MS,
        |s| s.log.flush_us.snapshot(),
    ),
    (
        "sync_processor_queue_and_flush_time_ms",
        Detail::Advanced,
        US_PER_MS,
        |s| s.pipeline.queue_and_flush_us.snapshot(),
    ),
];

/// `ServerStats` gauges of `ZooKeeperServer.registerMetrics`.
fn write_server_stats(w: &mut Writer, stats: &ServerStats, t: &Totals) {
    w.zk_gauge("avg_latency", t.latency_avg_ms as f64);
    w.zk_gauge("max_latency", t.latency_max_ms as f64);
    w.zk_gauge("min_latency", t.latency_min_ms as f64);
    w.zk_gauge("packets_received", t.packets_received as f64);
    w.zk_gauge("packets_sent", t.packets_sent as f64);
    w.zk_gauge("num_alive_connections", t.connections as f64);
    w.zk_gauge("outstanding_requests", t.outstanding as f64);
    w.zk_gauge("uptime", stats.started.elapsed().as_millis() as f64);
    w.zk_gauge("watch_count", t.watch_count as f64);
    w.zk_gauge("global_sessions", stats.session_count() as f64);
    // Ferrokeeper has no local sessions (ZooKeeper's default,
    // localSessionsEnabled=false, also reports 0), no TLS client port and no
    // connection-drop throttling: these are true zeros, not placeholders.
    w.zk_gauge("local_sessions", 0.0);
    w.zk_gauge("outstanding_tls_handshake", 0.0);
    w.zk_gauge("connection_drop_probability", 0.0);
}

/// The data tree's gauges (`zkDb`/`DataTree` in ZooKeeper).
fn write_tree(w: &mut Writer, src: &MetricsSources) {
    let tree = &src.tree;
    w.zk_gauge("znode_count", tree.znode_count.load(Relaxed) as f64);
    w.zk_gauge(
        "ephemerals_count",
        tree.ephemerals_count.load(Relaxed) as f64,
    );
    let data_bytes = tree.approximate_data_bytes.load(Relaxed);
    w.zk_gauge("approximate_data_size", data_bytes as f64);
}

/// File descriptors, as the JVM's OperatingSystemMXBean reports them.
fn write_process(w: &mut Writer) {
    if let Some(open) = open_fd_count() {
        w.zk_gauge("open_file_descriptor_count", open as f64);
    }
    if let Some(max) = max_fd_count() {
        w.zk_gauge("max_file_descriptor_count", max as f64);
    }
}

fn write_ferrokeeper(w: &mut Writer, src: &MetricsSources, t: &Totals) {
    let log = &src.stats.log;
    w.histogram(
        "ferrokeeper_log_sync_seconds",
        "fdatasync of the write-ahead log, one per group commit (forceSync=yes)",
        &log.fsync_histogram_us.snapshot(),
        US_PER_S,
    );
    w.histogram(
        "ferrokeeper_group_commit_txns",
        "Txns made durable by one log write and sync",
        &log.batch_histogram_txns.snapshot(),
        AS_IS,
    );
    let in_flight = &src.stats.pipeline.log_batches_in_flight;
    w.own(
        "ferrokeeper_log_batches_in_flight",
        Kind::Gauge,
        "Batches handed to the log executor and not yet durable",
        in_flight.load(Relaxed) as f64,
    );
    let shards = &src.stats.shards;
    w.per_shard(
        "ferrokeeper_shard_client_buffer_bytes",
        "Bytes held for the shard's clients (unsent replies and events, unanswered requests, receive buffers)",
        shards.iter().map(|c| c.client_buffer_bytes.load(Relaxed)),
    );
    w.per_shard(
        "ferrokeeper_shard_outstanding_requests",
        "Requests of the shard's connections in flight",
        shards.iter().map(|c| c.outstanding.load(Relaxed)),
    );
    w.per_shard(
        "ferrokeeper_shard_connections",
        "Client connections the shard serves",
        shards.iter().map(|c| c.connections.load(Relaxed)),
    );
    w.own(
        "ferrokeeper_client_buffer_limit_bytes",
        Kind::Gauge,
        "Bound on bytes held for all clients together (ferrokeeper.maxClientBufferBytes)",
        src.client_buffer_limit_bytes as f64,
    );
    w.own(
        "ferrokeeper_slow_clients_closed_total",
        Kind::Counter,
        "Connections closed because their client stopped reading",
        t.slow_clients_closed as f64,
    );
    w.own(
        "ferrokeeper_rejected_frames_total",
        Kind::Counter,
        "Client connections closed for a bad frame (over jute.maxbuffer, malformed, or a protocol error)",
        t.frames_rejected as f64,
    );
    w.own(
        "ferrokeeper_last_zxid",
        Kind::Gauge,
        "Newest zxid applied (exact below 2^53)",
        src.tree.last_zxid.load(Relaxed) as f64,
    );
}

/// Entries of /proc/self/fd, less the one the listing itself holds open.
fn open_fd_count() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.count() as u64).saturating_sub(1))
}

/// The soft RLIMIT_NOFILE (what the JVM reports as the maximum).
fn max_fd_count() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some(limit.rlim_cur)
}

/// A double as Java's `Double.toString` prints it (what ZooKeeper's output
/// carries): plain with at least one decimal in [1e-3, 1e7), else
/// `d.dddE<exp>`; NaN and infinities as Prometheus spells them.
fn java_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let magnitude = value.abs();
    if value == 0.0 || (1e-3..1e7).contains(&magnitude) {
        // Debug keeps a ".0" on whole numbers, as Java does.
        return format!("{value:?}");
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::TreeGauges;
    use crate::server::stats::RequestKind;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(5.0), "5.0");
        assert_eq!(java_double(2.5), "2.5");
        assert_eq!(java_double(9_999_999.0), "9999999.0");
        assert_eq!(java_double(10_000_000.0), "1.0E7");
        assert_eq!(java_double(12_345_678.0), "1.2345678E7");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(f64::NAN), "NaN");
    }

    /// A sample's family: itself, or a summary's or histogram's base name.
    fn family_of<'a>(text: &str, sample: &'a str) -> &'a str {
        for suffix in ["_count", "_sum", "_bucket"] {
            if let Some(base) = sample.strip_suffix(suffix) {
                let summary = text.contains(&format!("# TYPE {base} summary\n"));
                if summary || text.contains(&format!("# TYPE {base} histogram\n")) {
                    return base;
                }
            }
        }
        sample
    }

    fn sources(stats: Arc<ServerStats>) -> MetricsSources {
        MetricsSources {
            stats,
            tree: Arc::new(TreeGauges::default()),
            client_buffer_limit_bytes: 1 << 20,
            windows: Default::default(),
        }
    }

    #[test]
    fn summaries_are_written_as_zookeepers_java_client_does() {
        let stats = Arc::new(ServerStats::new(2));
        let us = Duration::from_micros;
        stats.record_latency(0, RequestKind::Read, us(20));
        stats.record_latency(1, RequestKind::Read, us(40));
        stats.record_latency(1, RequestKind::Write, us(50));
        let only = |name: &str| render(&sources(stats.clone()), &[name.to_string()]);
        // Summed over shards, in (fractional) milliseconds.
        assert_eq!(
            only("readlatency"),
            "# HELP readlatency readlatency\n# TYPE readlatency summary\n\
             readlatency{quantile=\"0.5\",} 0.02\nreadlatency{quantile=\"0.9\",} 0.04\n\
             readlatency{quantile=\"0.99\",} 0.04\nreadlatency_count 2.0\nreadlatency_sum 0.06\n"
        );
        assert!(only("updatelatency").contains("updatelatency_count 1.0\nupdatelatency_sum 0.05\n"));
        // BASIC summaries carry the median only; none observed yet is NaN.
        assert_eq!(
            only("fsynctime"),
            "# HELP fsynctime fsynctime\n# TYPE fsynctime summary\n\
             fsynctime{quantile=\"0.5\",} NaN\nfsynctime_count 0.0\nfsynctime_sum 0.0\n"
        );
        stats.log.fsync_histogram_us.record(700);
        let sync = only("ferrokeeper_log_sync_seconds");
        assert!(sync.contains("# TYPE ferrokeeper_log_sync_seconds histogram\n"));
        assert!(sync.contains("ferrokeeper_log_sync_seconds_bucket{le=\"5.0E-4\",} 0.0\n"));
        assert!(sync.contains("ferrokeeper_log_sync_seconds_bucket{le=\"0.001\",} 1.0\n"));
        assert!(sync.contains("ferrokeeper_log_sync_seconds_bucket{le=\"+Inf\",} 1.0\n"));
        assert!(sync.ends_with(
            "ferrokeeper_log_sync_seconds_count 1.0\nferrokeeper_log_sync_seconds_sum 7.0E-4\n"
        ));
    }

    #[test]
    fn every_family_has_help_and_type_and_zookeeper_names() {
        let stats = Arc::new(ServerStats::new(2));
        let tree = Arc::new(TreeGauges::default());
        tree.znode_count.store(5, Relaxed);
        let src = MetricsSources {
            stats,
            tree,
            client_buffer_limit_bytes: 1 << 20,
            windows: Default::default(),
        };
        let text = render(&src, &[]);
        let only = render(&src, &["znode_count".to_string()]);
        assert_eq!(
            only,
            "# HELP znode_count znode_count\n# TYPE znode_count gauge\nznode_count 5.0\n"
        );
        assert!(text.contains(
            "# HELP znode_count znode_count\n# TYPE znode_count gauge\nznode_count 5.0\n"
        ));
        assert!(text.contains("ferrokeeper_shard_outstanding_requests{shard=\"1\",} 0.0\n"));
        assert!(text.contains("ferrokeeper_client_buffer_limit_bytes 1048576.0\n"));
        let mut names = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let sample = line.split(['{', ' ']).next().unwrap_or_default();
            let name = family_of(&text, sample);
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{sample} has no TYPE"
            );
            names.push(name);
        }
        for zk in [
            "avg_latency",
            "num_alive_connections",
            "watch_count",
            "global_sessions",
        ] {
            assert!(names.contains(&zk), "{zk} missing");
        }
    }
}
