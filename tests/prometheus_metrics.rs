//! ZooKeeper's Prometheus endpoint (`metricsProvider.className=...PrometheusMetricsProvider`),
//! against the built binary: ZooKeeper's metric names and `# TYPE` lines, values that move
//! with the tree, output that `promtool check metrics` accepts (promtool missing is a
//! failure: `tests/run-all.sh` installs it), the connection bound, and bad config lines.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::Conn;
use common::{expect_startup_failure, free_port, http, is_apache, Server};

const PROMETHEUS_CLASS: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
/// Bound on one HTTP exchange and on waiting for a value to move.
const WAIT: Duration = Duration::from_secs(10);

/// ZooKeeper 3.9's gauges (ZooKeeperServer.registerMetrics) that Ferrokeeper exports.
const ZK_GAUGES: &[&str] = &[
    "avg_latency",
    "max_latency",
    "min_latency",
    "packets_received",
    "packets_sent",
    "num_alive_connections",
    "outstanding_requests",
    "uptime",
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "approximate_data_size",
    "global_sessions",
    "local_sessions",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
    "connection_drop_probability",
    "outstanding_tls_handshake",
];

/// ZooKeeper's own names that promtool's lint dislikes ("should not have _count suffix"):
/// the names are ZooKeeper's, so this one lint is expected for exactly these.
const ZK_NAMES_ENDING_IN_COUNT: &[&str] = &[
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
];

/// ZooKeeper 3.9's `ServerMetrics` summaries (ADVANCED: 0.5, 0.9 and 0.99
/// quantiles; BASIC: the median) that Ferrokeeper exports.
const ZK_ADVANCED_SUMMARIES: &[&str] = &[
    "readlatency",
    "updatelatency",
    "propagation_latency",
    "local_write_committed_time_ms",
    "sync_processor_queue_flush_time_ms",
    "sync_processor_queue_and_flush_time_ms",
];
const ZK_BASIC_SUMMARIES: &[&str] = &[
    "fsynctime",
    "snapshottime",
    "dbinittime",
    "sync_processor_batch_size",
    "write_batch_time_in_commit_processor",
];

/// ZooKeeper's names with `_ms` in them, which promtool's lint flags ("abbreviated units").
const ZK_NAMES_WITH_MS: &[&str] = &[
    "local_write_committed_time_ms",
    "sync_processor_queue_flush_time_ms",
    "sync_processor_queue_and_flush_time_ms",
];

/// A server with the endpoint on a free loopback port; returns it and the endpoint.
fn start_with_metrics() -> (Server, SocketAddr) {
    let port = free_port();
    let port_text = port.to_string();
    let server = Server::start(&[
        ("metricsProvider.className", PROMETHEUS_CLASS),
        ("metricsProvider.httpHost", "127.0.0.1"),
        ("metricsProvider.httpPort", &port_text),
        ("metricsProvider.exportJvmInfo", "true"),
    ]);
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// Sample name (with labels) -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (name.to_string(), value)
        })
        .collect()
}

fn value(text: &str, name: &str) -> f64 {
    *samples(text)
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
}

/// Scrapes until `done` holds for the value of `name` (bounded by WAIT).
fn wait_for(addr: SocketAddr, name: &str, done: impl Fn(f64) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(addr);
        if done(value(&text, name)) {
            return text;
        }
        assert!(Instant::now() < deadline, "{name} did not move:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `promtool check metrics` on `text`: must parse, and lint only ZooKeeper's `_count` and
/// `_ms` names.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (Debian package `prometheus`; tests/run-all.sh installs it)");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finished");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // 0: clean; 3: lint problems only (1 would be a parse error).
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(3)),
        "promtool {code:?}:\n{report}\n{text}"
    );
    for problem in report.lines().filter(|l| !l.trim().is_empty()) {
        let allowed = ZK_NAMES_ENDING_IN_COUNT.iter().any(|name| {
            problem == format!("{name} non-histogram and non-summary metrics should not have \"_count\" suffix")
        }) || ZK_NAMES_WITH_MS.iter().any(|name| {
            problem == format!("{name} metric names should not contain abbreviated units")
        });
        assert!(allowed, "unexpected promtool finding: {problem}\n{text}");
    }
}

/// One request; returns (status code, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let reply = http::request(addr, method, path, WAIT);
    (reply.status, reply.body)
}

#[test]
fn metrics_use_zookeeper_names_and_move_with_the_tree() {
    let (server, metrics) = start_with_metrics();
    let before = scrape(metrics);
    for name in ZK_GAUGES {
        assert!(
            before.contains(&format!("\n# TYPE {name} gauge\n")),
            "no `# TYPE {name} gauge` in:\n{before}"
        );
    }
    for name in [
        "ferrokeeper_shard_client_buffer_bytes",
        "ferrokeeper_shard_outstanding_requests",
    ] {
        assert!(before.contains(&format!("# TYPE {name} gauge\n")), "{name}");
        assert!(
            before.contains(&format!("{name}{{shard=\"1\",}} ")),
            "{name} per shard"
        );
    }
    promtool_check(&before);
    let znodes = value(&before, "znode_count");
    let ephemerals = value(&before, "ephemerals_count");
    let watches = value(&before, "watch_count");

    let mut conn = Conn::connect(server.addr(), 30_000);
    let created = 5;
    for i in 0..created {
        let reply = conn.create(&format!("/prom{i}"), b"data", 0);
        assert_eq!(reply.err, 0, "create /prom{i}");
    }
    assert_eq!(conn.create("/prom-eph", b"", 1).err, 0, "create ephemeral");
    for path in ["/prom0", "/prom1"] {
        let (_, reply) = conn.get_data(path, true);
        assert_eq!(reply.err, 0, "getData {path}");
    }

    // Shard 0 publishes the tree's counts after it applies a commit, which
    // may be a moment after another shard answered the create.
    wait_for(metrics, "znode_count", |n| {
        n == znodes + created as f64 + 1.0
    });
    let after = wait_for(metrics, "ephemerals_count", |n| n == ephemerals + 1.0);
    assert_eq!(value(&after, "znode_count"), znodes + created as f64 + 1.0);
    assert_eq!(value(&after, "watch_count"), watches + 2.0, "{after}");
    assert!(value(&after, "num_alive_connections") >= 1.0, "{after}");
    assert!(value(&after, "global_sessions") >= 1.0, "{after}");
    assert!(value(&after, "packets_received") >= 8.0, "{after}");
    assert!(
        value(&after, "approximate_data_size") > value(&before, "approximate_data_size"),
        "{after}"
    );
    assert!(value(&after, "max_file_descriptor_count") > 0.0, "{after}");
    promtool_check(&after);

    // ZooKeeper's Jetty serves only /metrics and forbids TRACE.
    assert_eq!(http(metrics, "GET", "/").0, 404);
    let (status, only) = http(metrics, "GET", "/metrics?name[]=znode_count&name[]=uptime");
    assert_eq!(status, 200);
    let names: Vec<&str> = only.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    assert_eq!(
        names,
        ["# TYPE uptime gauge", "# TYPE znode_count gauge"],
        "{only}"
    );
    assert_eq!(http(metrics, "TRACE", "/metrics").0, 403);
    assert_eq!(http(metrics, "DELETE", "/metrics").0, 405);
}

/// Idle connections beyond the bound are refused, and never delay client traffic.
#[test]
fn idle_scrapers_are_bounded_and_do_not_stall_clients() {
    let (server, metrics) = start_with_metrics();
    let idle: Vec<TcpStream> = (0..ferrokeeper::limits::metrics::CONNECTIONS_MAX)
        .map(|_| TcpStream::connect_timeout(&metrics, WAIT).expect("idle connection"))
        .collect();
    // Until the accept loop has taken all of them, one more may still be
    // served; once it has, the next is refused (bounded wait, no sleep).
    let deadline = Instant::now() + WAIT;
    while http(metrics, "GET", "/metrics").0 != 503 {
        assert!(
            Instant::now() < deadline,
            "a connection beyond the bound is refused"
        );
    }
    let started = Instant::now();
    assert_eq!(server.four_letter("ruok"), "imok");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "client port stalled"
    );
    drop(idle);
    let deadline = Instant::now() + WAIT;
    while http(metrics, "GET", "/metrics").0 != 200 {
        assert!(Instant::now() < deadline, "endpoint did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_metrics_port_names_file_and_line() {
    let port = free_port();
    let (cfg, stderr) = expect_startup_failure(
        &format!(
            "dataDir=DATA\nclientPort={port}\nmetricsProvider.className={PROMETHEUS_CLASS}\n\
         metricsProvider.httpPort=70000\n"
        ),
        WAIT,
    );
    assert!(stderr.contains(&format!("{cfg}:4: ")), "{stderr}");
    assert!(stderr.contains("70000 is out of range"), "{stderr}");
}

#[test]
fn unknown_metrics_provider_class_stops_startup() {
    let port = free_port();
    let (cfg, stderr) = expect_startup_failure(
        &format!(
        "dataDir=DATA\nclientPort={port}\nmetricsProvider.className=com.example.NoSuchProvider\n"
        ),
        WAIT,
    );
    assert!(stderr.contains(&format!("{cfg}:3: ")), "{stderr}");
    assert!(stderr.contains("com.example.NoSuchProvider"), "{stderr}");
}

/// Like ZooKeeper, a metrics port that cannot be bound stops startup.
#[test]
fn metrics_port_in_use_stops_startup() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let metrics_port = taken.local_addr().expect("addr").port();
    let port = free_port();
    let (_, stderr) = expect_startup_failure(
        &format!(
        "dataDir=DATA\nclientPort={port}\nadmin.enableServer=false\nclientPortAddress=127.0.0.1\n\
         metricsProvider.className={PROMETHEUS_CLASS}\nmetricsProvider.httpHost=127.0.0.1\n\
         metricsProvider.httpPort={metrics_port}\n"
        ),
        WAIT,
    );
    assert!(
        stderr.contains("cannot start the /metrics endpoint"),
        "{stderr}"
    );
}

/// The quantile samples of one summary, in the order written.
fn quantiles(text: &str, name: &str, labels: &[&str]) -> Vec<f64> {
    labels
        .iter()
        .map(|q| value(text, &format!("{name}{{quantile=\"{q}\",}}")))
        .collect()
}

/// Reads and writes through a client show up in ZooKeeper's latency
/// summaries: counts equal to the requests made, sums and quantiles plausible.
#[test]
fn request_latency_summaries_use_zookeeper_names_and_count_requests() {
    let (server, metrics) = start_with_metrics();
    let before = scrape(metrics);
    for name in ZK_ADVANCED_SUMMARIES.iter().chain(ZK_BASIC_SUMMARIES) {
        assert!(
            before.contains(&format!("\n# TYPE {name} summary\n")),
            "no `# TYPE {name} summary` in:\n{before}"
        );
    }
    assert_eq!(
        quantiles(&before, "readlatency", &["0.5", "0.9", "0.99"]).len(),
        3
    );
    assert!(
        !before.contains("fsynctime{quantile=\"0.9\""),
        "BASIC: median only"
    );
    promtool_check(&before);

    let (writes, reads) = (7u32, 5u32);
    let mut conn = Conn::connect(server.addr(), 30_000);
    for i in 0..writes {
        assert_eq!(
            conn.create(&format!("/lat{i}"), b"x", 0).err,
            0,
            "create /lat{i}"
        );
    }
    for i in 0..reads {
        assert_eq!(
            conn.get_data(&format!("/lat{i}"), false).1.err,
            0,
            "getData"
        );
    }
    let updates_before = value(&before, "updatelatency_count");
    let reads_before = value(&before, "readlatency_count");
    // The reply is sent right after the latency is recorded: wait for it to be scraped.
    wait_for(metrics, "updatelatency_count", |n| {
        n >= updates_before + writes as f64
    });
    let after = wait_for(metrics, "readlatency_count", |n| {
        n >= reads_before + reads as f64
    });
    promtool_check(&after);
    if is_apache() {
        return; // Apache also counts its session creation: the names are what matters there.
    }
    assert_eq!(
        value(&after, "updatelatency_count"),
        writes as f64,
        "{after}"
    );
    assert_eq!(value(&after, "readlatency_count"), reads as f64, "{after}");
    for name in ["updatelatency", "readlatency"] {
        assert!(
            value(&after, &format!("{name}_sum")) > 0.0,
            "{name}:\n{after}"
        );
        let q = quantiles(&after, name, &["0.5", "0.9", "0.99"]);
        assert!(q[0] >= 0.0 && q[0] <= q[1] && q[1] <= q[2], "{name} {q:?}");
        // A write waits for its fdatasync; a read answered in the same
        // executor turn can take under a microsecond and record 0.
        if name == "updatelatency" {
            assert!(q[0] > 0.0, "{name} {q:?}");
        }
        // Every request took less than the whole test; none is an hour long.
        assert!(q[2] < 3_600_000.0, "{name} {q:?}");
    }
    // The createSession txn and each create were fsynced in some batches.
    let txns = value(&after, "sync_processor_batch_size_sum");
    assert!(txns >= (writes + 1) as f64, "{after}");
    let syncs = value(&after, "fsynctime_count");
    assert!(syncs >= 1.0 && syncs <= txns, "{after}");
    assert_eq!(value(&after, "ferrokeeper_log_sync_seconds_count"), syncs);
    assert_eq!(
        value(&after, "sync_processor_queue_and_flush_time_ms_count"),
        txns
    );
    assert_eq!(
        value(&after, "ferrokeeper_log_sync_seconds_bucket{le=\"+Inf\",}"),
        syncs
    );
    for name in ["propagation_latency", "local_write_committed_time_ms"] {
        assert_eq!(
            value(&after, &format!("{name}_count")),
            writes as f64,
            "{name}"
        );
    }
    assert_eq!(value(&after, "dbinittime_count"), 1.0, "{after}");
}

/// Stops the Prometheus server a test started, however the test ends.
struct Scraper(std::process::Child);

impl Drop for Scraper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One query to Prometheus' HTTP API; `None` while it is not serving yet. (Go keeps
/// HTTP/1.1 connections open, so this asks it to close rather than use `http`.)
fn prometheus_query(api: SocketAddr, expr: &str) -> Option<String> {
    use std::io::Read;
    let mut stream = TcpStream::connect_timeout(&api, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    let request = format!(
        "GET /api/v1/query?query={expr} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// A real Prometheus server (Debian's `prometheus`, installed with promtool) scrapes
/// the endpoint: its query API returns our znode_count and a summary's quantile.
#[test]
fn a_prometheus_server_scrapes_the_endpoint() {
    let (server, metrics) = start_with_metrics();
    let web_port = free_port();
    let config = server.dir().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferrokeeper\n    \
             static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            server.dir().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "prometheus is required (Debian package `prometheus`; tests/run-all.sh installs it)",
        );
    let _scraper = Scraper(child);
    let api = SocketAddr::from(([127, 0, 0, 1], web_port));
    let query = |expr: &str| prometheus_query(api, expr);
    // Startup and the first scrape take a few seconds; bounded like every wait here.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Some(body) = query("znode_count").filter(|b| b.contains("\"value\":[")) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned znode_count"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(body.contains("\"job\":\"ferrokeeper\""), "{body}");
    // Scraped with the same scrape: a summary's quantile sample, by its label.
    let quantile = query("readlatency%7Bquantile%3D%220.99%22%7D").unwrap_or_default();
    assert!(quantile.contains("\"quantile\":\"0.99\""), "{quantile}");
}
