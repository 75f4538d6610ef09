//! The Prometheus text exposition format (0.0.4) as ZooKeeper 3.9 writes it
//! through the Prometheus Java client 0.9 (`TextFormat.write004`): `# HELP`
//! and `# TYPE` before each family, help text equal to the name, label sets
//! closed with `,}`, values as Java prints doubles (`5.0`, `1.2345678E7`).
//!
//! ZooKeeper's names (`ZooKeeperServer.registerMetrics`) are all gauges there,
//! counters included, so they are gauges here too. Ferrokeeper's own metrics
//! carry a `ferrokeeper_` prefix and Prometheus' naming conventions.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::MetricsSources;
use crate::server::stats::{ServerStats, Totals};

/// The content type of the 0.0.4 text format (what Prometheus' servlet sends).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

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
    write_ferrokeeper(&mut w, src, &totals);
    w.out
}

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
    use std::sync::Arc;

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

    #[test]
    fn every_family_has_help_and_type_and_zookeeper_names() {
        let stats = Arc::new(ServerStats::new(2));
        let tree = Arc::new(TreeGauges::default());
        tree.znode_count.store(5, Relaxed);
        let src = MetricsSources {
            stats,
            tree,
            client_buffer_limit_bytes: 1 << 20,
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
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
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
